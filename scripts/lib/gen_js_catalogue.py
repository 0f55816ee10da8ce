#!/usr/bin/env python3
"""Generate the browser benchmark catalogue: N pages whose 20 products exist only after
JavaScript runs (injected from an inline data array), ~20 KB each.

Usage: gen_js_catalogue.py OUT_DIR [PAGES]
"""
import json
import os
import random
import sys

out = sys.argv[1]
pages = int(sys.argv[2]) if len(sys.argv) > 2 else 200
rng = random.Random(7)
os.makedirs(os.path.join(out, "js"), exist_ok=True)
words = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega".split()
for p in range(1, pages + 1):
    items = [{"id": (p - 1) * 20 + i, "title": f"Product {(p - 1) * 20 + i}",
              "price": f"{rng.randint(1, 999)}.99",
              "desc": " ".join(rng.choice(words) for _ in range(60))} for i in range(20)]
    html = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>JS page {p}</title></head>
<body><div id="list"></div><script>
const items = {json.dumps(items)};
setTimeout(() => {{
  const list = document.getElementById('list');
  for (const it of items) {{
    const d = document.createElement('div'); d.className = 'product';
    d.innerHTML = '<h2><a href="/item/' + it.id + '">' + it.title + '</a></h2><span class="price">$' + it.price +
                  '</span><p>' + it.desc + '</p>';
    list.appendChild(d);
  }}
  const done = document.createElement('div'); done.id = 'done'; document.body.appendChild(done);
}}, 20);
</script></body></html>"""
    with open(os.path.join(out, "js", f"page-{p}.html"), "w") as f:
        f.write(html)
