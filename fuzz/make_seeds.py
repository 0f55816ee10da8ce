#!/usr/bin/env python3
"""Seed inputs for the fuzz targets, taken from the project's own test fixtures.

Usage: make_seeds.py REPO_ROOT SHARED_CORPUS_DIR OUT_DIR

Writes OUT_DIR/<target>/<sha1 of the input> (libFuzzer's naming, so reruns do not
duplicate):
- spec:      every JSON object written in the tests (the `json!` specs of the spec, extract,
             engine and server suites) and in the docs' ```json blocks;
- selectors: every selector in those specs;
- extract:   every HTML literal of the extract tests and the test kit's fixture pages, and
             the real-world pages of SHARED_CORPUS_DIR (when it exists), each behind a first
             byte that picks the fixed spec and content type (see fuzz/src/lib.rs);
- url_guard: every URL literal of the fetch and browser crates.
Generated seeds live under target/ and are not committed; fuzz/corpus/ holds the small
hand-written set and the inputs fuzzing found (regression-*), replayed on every run.
"""

import hashlib
import json
import re
import sys
from pathlib import Path

# Number of fixed specs in fuzz/src/lib.rs: the first byte of an `extract` input modulo
# this picks one; its top two bits pick the content type.
FIXED_SPECS = 6


def write(out: Path, target: str, data: bytes) -> None:
    directory = out / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def rust_sources(root: Path, globs):
    for pattern in globs:
        yield from sorted(root.glob(pattern))


def rust_string_literals(source: str):
    """Raw strings (r"…", r#"…"#) verbatim and plain strings with escapes undone."""
    for match in re.finditer(r'r(#*)"(.*?)"\1', source, re.S):
        yield match.group(2)
    for match in re.finditer(r'(?<![r#\w])"((?:[^"\\]|\\.)*)"', source, re.S):
        try:
            yield json.loads('"' + match.group(1).replace("\n", "\\n") + '"')
        except ValueError:
            continue


def balanced(source: str, start: int) -> str | None:
    """The text between the parenthesis at `start` and its partner, skipping strings."""
    depth, index, in_string = 0, start, False
    while index < len(source):
        char = source[index]
        if in_string:
            if char == "\\":
                index += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return source[start + 1 : index]
        index += 1
    return None


def json_objects(source: str):
    """Objects written with serde_json's `json!` macro that are plain JSON."""
    for match in re.finditer(r"json!\s*\(", source):
        body = balanced(source, match.end() - 1)
        if body is None:
            continue
        body = re.sub(r",(\s*[}\]])", r"\1", body)
        try:
            value = json.loads(body)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


SELECTOR_KEYS = {"selector", "item_selector", "next_selector", "stop_selector",
                 "container_selector", "next_page_selector", "wait_for_selector"}


def selectors_in(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in SELECTOR_KEYS and isinstance(inner, str):
                yield inner
            elif key == "selectors" and isinstance(inner, dict):
                # The original API shape: name → selector or {"selector": …}.
                for selector in inner.values():
                    if isinstance(selector, str):
                        yield selector
            yield from selectors_in(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from selectors_in(inner)


def main() -> None:
    root, shared, out = (Path(arg) for arg in sys.argv[1:4])

    specs = []
    for path in rust_sources(root, ["crates/*/tests/**/*.rs", "crates/*/src/**/*.rs"]):
        specs.extend(json_objects(path.read_text(errors="replace")))
    for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if path.exists():
            for block in re.findall(r"```json\n(.*?)```", path.read_text(), re.S):
                try:
                    specs.append(json.loads(block))
                except ValueError:
                    continue
    for spec in specs:
        write(out, "spec", json.dumps(spec, ensure_ascii=False).encode())
        for selector in selectors_in(spec):
            write(out, "selectors", selector.encode())

    pages = []
    for path in rust_sources(root, ["crates/extract/tests/**/*.rs", "crates/testkit/src/*.rs"]):
        for literal in rust_string_literals(path.read_text(errors="replace")):
            if len(literal) >= 16 and "<" in literal and ">" in literal:
                pages.append(literal.encode())
    for index, page in enumerate(pages):
        for spec_index in range(FIXED_SPECS):
            choice = spec_index | ((index % 4) << 6)
            write(out, "extract", bytes([choice & 0xFF]) + page)
    real_pages = sorted((shared / "real-pages").glob("*.html")) if shared.is_dir() else []
    for index, path in enumerate(real_pages):
        choice = (index % FIXED_SPECS) | (((index // FIXED_SPECS) % 4) << 6)
        write(out, "extract", bytes([choice]) + path.read_bytes())

    url = re.compile(r"^[a-z][a-z0-9+.-]*:(//)?[^\s{}]*$", re.I)
    for path in rust_sources(root, ["crates/fetch/**/*.rs", "crates/browser/**/*.rs"]):
        for literal in rust_string_literals(path.read_text(errors="replace")):
            if url.match(literal) and len(literal) < 512:
                write(out, "url_guard", literal.encode())

    counts = {target.name: len(list(target.iterdir())) for target in sorted(out.iterdir())}
    print("seeds:", ", ".join(f"{target} {count}" for target, count in counts.items()))


if __name__ == "__main__":
    main()
