#!/usr/bin/env python3
"""Generate the benchmark catalogue: N pages, 20 items each, ~50 KB of realistic noise.

Usage: gen_catalogue.py OUT_DIR [PAGES]
Writes OUT_DIR/catalog/page-N.html (N = 1..PAGES), each linking to the next with a.next.
"""
import os
import random
import sys

out = sys.argv[1]
pages = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rng = random.Random(42)
os.makedirs(os.path.join(out, "catalog"), exist_ok=True)
words = ("alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega quartz "
         "copper velvet harbor meadow canyon lantern orbit pixel ribbon summit").split()

def sentence(n):
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."

nav = "".join(f'<li><a href="/category/{i}">{rng.choice(words).title()} {i}</a></li>' for i in range(120))
style = "<style>" + "".join(f".c{i}{{margin:{i}px;padding:{i % 7}px;color:#{i:06x}}}" for i in range(150)) + "</style>"
script = "<script>window.__STATE__=" + "{" + ",".join(f'"k{i}":"{sentence(4)}"' for i in range(60)) + "};</script>"

for p in range(1, pages + 1):
    items = []
    for i in range(20):
        pid = (p - 1) * 20 + i
        tags = "".join(f'<span class="tag">{rng.choice(words)}</span>' for _ in range(3))
        items.append(
            f'<div class="product" data-id="{pid}"><h2><a href="/item/{pid}">Product {pid} {rng.choice(words)}</a></h2>'
            f'<img src="/img/{pid}.jpg" alt="product {pid}"><span class="price">${pid % 997 + 0.99:.2f}</span>'
            f'<span class="stars" data-rating="{pid % 5 + 1}"></span><div class="tags">{tags}</div>'
            f'<p class="desc">{sentence(120)}</p></div>'
        )
    nxt = f'<a class="next" href="/catalog/page-{p + 1}.html">Next</a>' if p < pages else ""
    footer = "".join(f"<p>{sentence(30)}</p>" for _ in range(60))
    html = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Catalogue page {p}</title>{style}{script}</head>'
            f'<body><header><nav><ul>{nav}</ul></nav></header><main><h1>Page {p}</h1>'
            f'<div class="grid">{"".join(items)}</div><div class="pager">{nxt}</div></main>'
            f'<footer>{footer}</footer></body></html>')
    with open(os.path.join(out, "catalog", f"page-{p}.html"), "w") as f:
        f.write(html)
