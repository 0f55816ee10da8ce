//! Extracts the given pages with the given task spec, `--rounds` times over, for instruction
//! counts and profiles of the extractor alone (`valgrind --tool=callgrind`, `perf record`):
//!
//! ```text
//! cargo build --release -p selextract-extract --example extract_pages
//! valgrind --tool=callgrind target/release/examples/extract_pages SPEC.json --rounds 5 PAGE.html…
//! ```
//!
//! The pages are read before the first round, so the counts are the extractor's; each page
//! is extracted as an HTTP page of `https://bench.example/` and the records are counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use selextract_extract::{Extractor, Page};

fn main() {
    let mut args = std::env::args().skip(1);
    let spec_path = args
        .next()
        .expect("usage: extract_pages SPEC.json [--rounds N] PAGE…");
    let mut rounds = 1usize;
    let mut paths = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--rounds" {
            rounds = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--rounds N");
        } else {
            paths.push(arg);
        }
    }
    let spec = std::fs::read_to_string(&spec_path).expect("reading the spec");
    let extractor = Extractor::new(&serde_json::from_str(&spec).expect("a task spec"))
        .expect("a spec that compiles");
    let pages: Vec<Vec<u8>> = paths
        .iter()
        .map(|path| std::fs::read(path).expect("reading a page"))
        .collect();
    let url = url::Url::parse("https://bench.example/catalog/page.html").unwrap();
    let mut records = 0usize;
    for _ in 0..rounds {
        for body in &pages {
            let extraction = extractor.extract(&Page {
                url: &url,
                body,
                content_type: Some("text/html"),
                rendered: false,
            });
            records += extraction.records.len();
        }
    }
    println!("{} pages × {rounds} rounds: {records} records", pages.len());
}
