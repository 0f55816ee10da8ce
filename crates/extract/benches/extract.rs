//! Throughput of the extractor on the real-page corpus and a generated catalogue page,
//! against scraper's raw parse-and-select (the baseline of the "≤ 1.5× CPU" bar).
//!
//! Run with `cargo bench -p selextract-extract`; prints MB/s and µs per page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use scraper::{Html, Selector};
use selextract_extract::{Extractor, Page};
use serde_json::{Value, json};
use url::Url;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/corpus/real-pages"
);
/// Each measurement runs whole passes over its pages for at least this long.
const BUDGET: Duration = Duration::from_millis(2500);

fn main() {
    let catalogue = vec![generated_catalogue()];
    println!(
        "generated catalogue page: {} KB, 20 items",
        catalogue[0].len() / 1024
    );
    let corpus = load_corpus();

    let catalogue_spec = catalogue_fields();
    let mut catalogue_xpath = catalogue_spec.clone();
    catalogue_xpath["fields"].as_array_mut().unwrap().push(json!(
        {"name": "rating", "selector": "//span[@class='stars']/@data-rating", "selector_type": "xpath",
         "type": "attribute", "required": false}
    ));
    report_set(
        "catalogue",
        &catalogue,
        &catalogue_spec,
        &catalogue_xpath,
        catalogue_baseline,
    );

    if let Some(corpus) = corpus {
        let links_spec = json!({
            "item_selector": "a",
            "fields": [
                {"name": "text", "selector": "span", "required": false},
                {"name": "url", "selector": "img", "type": "image", "required": false}
            ],
            "pagination": {"next_selector": "a[rel=next], a.next", "stop_selector": ".no-results"}
        });
        let mut links_xpath = links_spec.clone();
        links_xpath["fields"].as_array_mut().unwrap().push(json!(
            {"name": "title", "selector": "./@title", "selector_type": "xpath", "type": "attribute", "required": false}
        ));
        report_set("corpus", &corpus, &links_spec, &links_xpath, links_baseline);
    } else {
        println!("corpus directory {CORPUS} is absent: corpus measurements skipped");
    }
}

fn report_set(
    name: &str,
    pages: &[Vec<u8>],
    css: &Value,
    xpath: &Value,
    baseline: fn(&str) -> usize,
) {
    let bytes: usize = pages.iter().map(Vec::len).sum();
    println!(
        "\n{name}: {} pages, {:.1} MB",
        pages.len(),
        bytes as f64 / 1e6
    );
    let page_url = Url::parse("https://bench.example/list/page.html").unwrap();
    let css = compile(css);
    let xpath = compile(xpath);
    let quick_next = css_pagination(
        json!({"next_selector": "a[rel=next], a.next", "stop_selector": ".no-results"}),
    );
    let full_parse_next = css_pagination(
        json!({"next_selector": "nav a[rel=next]", "stop_selector": "div .no-results"}),
    );

    let base = measure("scraper parse + selects (baseline)", pages, |body| {
        baseline(&String::from_utf8_lossy(body))
    });
    let extract = measure("extract (CSS only)", pages, |body| {
        css.extract(&Page {
            url: &page_url,
            body,
            content_type: None,
            rendered: false,
        })
        .records
        .len()
    });
    measure("extract with an XPath field", pages, |body| {
        xpath
            .extract(&Page {
                url: &page_url,
                body,
                content_type: None,
                rendered: false,
            })
            .records
            .len()
    });
    measure("find_next (streaming, compound CSS)", pages, |body| {
        usize::from(
            quick_next
                .find_next(&Page {
                    url: &page_url,
                    body,
                    content_type: None,
                    rendered: false,
                })
                .url
                .is_some(),
        )
    });
    measure("find_next (full parse, combinators)", pages, |body| {
        usize::from(
            full_parse_next
                .find_next(&Page {
                    url: &page_url,
                    body,
                    content_type: None,
                    rendered: false,
                })
                .url
                .is_some(),
        )
    });
    println!(
        "  extract / baseline CPU: {:.2}x",
        extract.as_secs_f64() / base.as_secs_f64()
    );
}

fn compile(spec: &Value) -> Extractor {
    let mut spec = spec.clone();
    spec["start_urls"] = json!(["https://bench.example/"]);
    Extractor::new(&serde_json::from_value(spec).unwrap()).unwrap()
}

fn css_pagination(pagination: Value) -> Extractor {
    compile(
        &json!({"fields": [{"name": "t", "selector": "title", "required": false}], "pagination": pagination}),
    )
}

/// Runs `work` over every page, pass after pass, for at least [`BUDGET`]; prints and
/// returns the time of one pass.
fn measure(label: &str, pages: &[Vec<u8>], mut work: impl FnMut(&[u8]) -> usize) -> Duration {
    let bytes: usize = pages.iter().map(Vec::len).sum();
    for body in pages {
        black_box(work(body));
    }
    let started = Instant::now();
    let mut passes = 0u32;
    while started.elapsed() < BUDGET || passes < 2 {
        for body in pages {
            black_box(work(black_box(body)));
        }
        passes += 1;
    }
    let per_pass = started.elapsed() / passes;
    let mb_per_s = bytes as f64 / 1e6 / per_pass.as_secs_f64();
    let us_per_page = per_pass.as_secs_f64() * 1e6 / pages.len() as f64;
    println!("  {label:<40} {mb_per_s:>8.1} MB/s {us_per_page:>10.0} µs/page ({passes} passes)");
    per_pass
}

fn load_corpus() -> Option<Vec<Vec<u8>>> {
    let directory = Path::new(CORPUS);
    if !directory.is_dir() {
        return None;
    }
    let mut paths: Vec<_> = std::fs::read_dir(directory)
        .ok()?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "html")
        })
        .collect();
    paths.sort();
    Some(
        paths
            .iter()
            .map(|path| std::fs::read(path).unwrap())
            .collect(),
    )
}

fn catalogue_fields() -> Value {
    json!({
        "item_selector": "div.product",
        "fields": [
            {"name": "title", "selector": "h2 a"},
            {"name": "url", "selector": "h2 a", "type": "link"},
            {"name": "price", "selector": ".price", "transform": ["trim", {"regex": "[0-9.,]+"}, "number"]},
            {"name": "image", "selector": "img", "type": "image"},
            {"name": "tags", "selector": ".tag", "multiple": true, "required": false},
            {"name": "description", "selector": ".description", "required": false}
        ],
        "pagination": {"next_selector": "a.next"}
    })
}

/// The same selections done directly with scraper, the least any extractor must do.
fn catalogue_baseline(text: &str) -> usize {
    let html = Html::parse_document(text);
    let item = Selector::parse("div.product").unwrap();
    let fields =
        ["h2 a", ".price", "img", ".tag", ".description"].map(|s| Selector::parse(s).unwrap());
    let mut total = 0;
    for product in html.select(&item) {
        for (index, field) in fields.iter().enumerate() {
            for element in product.select(field) {
                total += match index {
                    0 => {
                        element.text().collect::<String>().len()
                            + element.attr("href").map_or(0, str::len)
                    }
                    2 => element.attr("src").map_or(0, str::len),
                    _ => element.text().collect::<String>().len(),
                };
            }
        }
    }
    total
}

fn links_baseline(text: &str) -> usize {
    let html = Html::parse_document(text);
    let item = Selector::parse("a").unwrap();
    let span = Selector::parse("span").unwrap();
    let img = Selector::parse("img").unwrap();
    let mut total = 0;
    for link in html.select(&item) {
        total += link
            .select(&span)
            .next()
            .map_or(0, |s| s.text().collect::<String>().len());
        total += link
            .select(&img)
            .next()
            .and_then(|i| i.attr("src"))
            .map_or(0, str::len);
    }
    total
}

/// A ~50 KB catalogue page with 20 products among realistic page chrome.
fn generated_catalogue() -> Vec<u8> {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Catalogue</title>\
         <style>body{font-family:sans-serif}.product{margin:1em}</style>\
         <script>window.dataLayer=[];function track(){return 1}</script></head><body>\
         <header><nav><ul>",
    );
    for n in 0..40 {
        html.push_str(&format!(
            "<li><a href=\"/category/{n}\">Category {n}</a></li>"
        ));
    }
    html.push_str("</ul></nav></header><main><div class=\"grid\">");
    for n in 0..20 {
        html.push_str(&format!(
            "<div class=\"product\" data-sku=\"SKU-{n}\"><div class=\"thumb\"><img src=\"/img/{n}.jpg\" \
             srcset=\"/img/{n}@2x.jpg 2x\" alt=\"Product {n}\"></div>\
             <h2><a href=\"/p/{n}?ref=grid\">Product number {n} with a long descriptive name</a></h2>\
             <div class=\"meta\"><span class=\"price\"> $1,{n:03}.99 </span>\
             <span class=\"stars\" data-rating=\"4.{n}\">★★★★☆</span>\
             <span class=\"tag\">new</span><span class=\"tag\">sale</span><span class=\"tag\">eco</span></div>\
             <p class=\"description\">{}</p>\
             <form action=\"/cart\" method=\"post\"><input type=\"hidden\" name=\"sku\" value=\"SKU-{n}\">\
             <button type=\"submit\">Add to cart</button></form></div>",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ".repeat(22)
        ));
    }
    html.push_str("</div><div class=\"pagination\"><a href=\"?page=1\">1</a><a class=\"next\" href=\"?page=2\">Next</a></div></main><footer>");
    for n in 0..30 {
        html.push_str(&format!(
            "<p><a href=\"/info/{n}\">Information page {n}</a> &middot; </p>"
        ));
    }
    html.push_str("</footer></body></html>");
    html.into_bytes()
}
