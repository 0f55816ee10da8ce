//! Parsing as the page was fetched: over HTTP as a client without JavaScript (`<noscript>`
//! content is markup), a browser snapshot as the live DOM (`<noscript>` content is text).

use selextract_extract::{Extractor, NextPage, Page};
use serde_json::{Value, json};

use crate::{extractor, records, url};

const LAZY_IMAGE: &str = r#"<html><body><div class="card">
    <img data-srcset="placeholder.gif"><noscript><img src="real.jpg" alt="Real"></noscript>
    <p>Hello</p><noscript><p>Enable JavaScript</p></noscript>
</div></body></html>"#;

fn page_records(extractor: &Extractor, html: &str, rendered: bool) -> Value {
    let page_url = url("https://shop.example/item/");
    records(&extractor.extract(&Page {
        url: &page_url,
        body: html.as_bytes(),
        content_type: None,
        rendered,
    }))
}

fn both_nexts(extractor: &Extractor, html: &str, rendered: bool) -> (NextPage, NextPage) {
    let page_url = url("https://shop.example/list/");
    let page = Page {
        url: &page_url,
        body: html.as_bytes(),
        content_type: None,
        rendered,
    };
    (extractor.extract(&page).next, extractor.find_next(&page))
}

#[test]
fn an_http_page_shows_the_image_inside_noscript_and_a_rendered_one_does_not() {
    let extractor = extractor(json!({
        "fields": [
            {"name": "image", "selector": "img[src]", "type": "image", "required": false},
            {"name": "alt", "selector": "//img/@alt", "selector_type": "xpath", "required": false}
        ]
    }));

    assert_eq!(
        page_records(&extractor, LAZY_IMAGE, false),
        json!([{"image": "https://shop.example/item/real.jpg", "alt": "Real"}])
    );
    assert_eq!(
        page_records(&extractor, LAZY_IMAGE, true),
        json!([{"image": null, "alt": null}])
    );
}

#[test]
fn noscript_text_is_visible_text_of_an_http_page_and_skipped_on_a_rendered_one() {
    let extractor = extractor(json!({
        "fields": [{"name": "card", "selector": "div.card"}]
    }));

    assert_eq!(
        page_records(&extractor, LAZY_IMAGE, false),
        json!([{"card": "Hello Enable JavaScript"}])
    );
    assert_eq!(
        page_records(&extractor, LAZY_IMAGE, true),
        json!([{"card": "Hello"}])
    );
}

#[test]
fn inner_html_serialises_noscript_content_as_each_client_has_it() {
    let extractor = extractor(json!({
        "fields": [{"name": "html", "selector": "div.card", "type": "html"}]
    }));
    let html = r#"<div class="card"><noscript><img src="real.jpg"></noscript></div>"#;

    assert_eq!(
        page_records(&extractor, html, false),
        json!([{"html": "<noscript><img src=\"real.jpg\"></noscript>"}])
    );
    assert_eq!(
        page_records(&extractor, html, true),
        json!([{"html": "<noscript><img src=\"real.jpg\"></noscript>"}])
    );
}

#[test]
fn find_next_agrees_with_extract_on_links_inside_noscript_in_both_modes() {
    let streaming = extractor(json!({
        "fields": [{"name": "t", "selector": "title", "required": false}],
        "pagination": {"next_selector": "a.next", "stop_selector": ".last"}
    }));
    let full_parse = extractor(json!({
        "fields": [{"name": "t", "selector": "title", "required": false}],
        "pagination": {"next_selector": "body a.next", "stop_selector": "body .last"}
    }));
    let pages = [
        r#"<noscript><a class="next" href="/hidden">2</a></noscript><a class="next" href="/2">2</a>"#,
        r#"<head><noscript><link class="next" href="/head"></noscript></head><a class="next" href="/2">2</a>"#,
        r#"<noscript><span class="last"></span></noscript><a class="next" href="/2">2</a>"#,
        r#"<noscript><img alt="</noscript><a class='next' href='/attr'>"></noscript><a class="next" href="/2">"#,
        r#"<noscript><!-- </noscript> --><a class="next" href="/comment"></a></noscript>"#,
        r#"<noscript><template><a class="next" href="/inert"></a></template></noscript><a class="next" href="/2">"#,
    ];

    for html in pages {
        for rendered in [false, true] {
            for extractor in [&streaming, &full_parse] {
                let (full, quick) = both_nexts(extractor, html, rendered);
                assert_eq!(quick, full, "{html} (rendered: {rendered})");
            }
        }
    }
    let (http, _) = both_nexts(&streaming, pages[0], false);
    let (rendered, _) = both_nexts(&streaming, pages[0], true);
    assert_eq!(http.url.unwrap().path(), "/hidden");
    assert_eq!(rendered.url.unwrap().path(), "/2");
}
