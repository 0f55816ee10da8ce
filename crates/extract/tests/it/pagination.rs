//! Next-link discovery and the stop selector, through `extract` and `find_next`.

use selextract_extract::{Extractor, NextPage, Page};
use serde_json::json;

use crate::{extractor, url};

fn paginated(next_selector: &str, stop_selector: Option<&str>) -> Extractor {
    extractor(json!({
        "fields": [{"name": "title", "selector": "title", "required": false}],
        "pagination": {"next_selector": next_selector, "stop_selector": stop_selector}
    }))
}

/// `extract().next` and `find_next`, which must agree.
fn next_of(extractor: &Extractor, page_url: &str, html: &str) -> NextPage {
    let page_url = url(page_url);
    let page = Page {
        url: &page_url,
        body: html.as_bytes(),
        content_type: None,
        rendered: false,
    };
    let full = extractor.extract(&page).next;
    let quick = extractor.find_next(&page);
    assert_eq!(full, quick, "find_next disagrees with extract on {html}");
    full
}

#[test]
fn the_next_link_is_made_absolute_and_loses_its_fragment() {
    let extractor = paginated("a.next", None);

    let next = next_of(
        &extractor,
        "https://shop.example/list/?page=1",
        r#"<a class="next" href="?page=2#top">Next</a>"#,
    );

    assert_eq!(
        next,
        NextPage {
            url: Some(url("https://shop.example/list/?page=2")),
            stop: false
        }
    );
}

#[test]
fn the_next_link_resolves_against_base_href_even_when_base_comes_later() {
    let extractor = paginated("a[rel=next]", None);

    let next = next_of(
        &extractor,
        "https://shop.example/list/1",
        r#"<body><a rel="next" href="page/2">2</a><base href="https://mirror.example/root/"></body>"#,
    );

    assert_eq!(next.url, Some(url("https://mirror.example/root/page/2")));
}

#[test]
fn hash_and_javascript_links_are_skipped_for_the_next_usable_one() {
    let extractor = paginated(".pager a", None);

    let next = next_of(
        &extractor,
        "https://shop.example/list",
        r##"<div class="pager"><a href="#">prev</a><a href="javascript:load(2)">2</a>
            <a href="mailto:x@example.com">mail</a><a>no href</a><a href=" /list?p=3 ">3</a></div>"##,
    );

    assert_eq!(next.url, Some(url("https://shop.example/list?p=3")));
}

#[test]
fn no_next_link_means_no_next_page() {
    let extractor = paginated("a.next", None);

    let next = next_of(
        &extractor,
        "https://shop.example/",
        r##"<a class="next disabled" href="#">Next</a><a href="/x">x</a>"##,
    );

    assert_eq!(
        next,
        NextPage {
            url: None,
            stop: false
        }
    );
}

#[test]
fn the_stop_selector_matching_anywhere_sets_stop() {
    let extractor = paginated("a.next", Some(".no-more-results"));

    let stopped = next_of(
        &extractor,
        "https://shop.example/",
        r#"<a class="next" href="/2">Next</a><footer><p class="no-more-results">End</p></footer>"#,
    );
    let running = next_of(
        &extractor,
        "https://shop.example/",
        r#"<a class="next" href="/2">Next</a>"#,
    );

    assert_eq!(
        stopped,
        NextPage {
            url: Some(url("https://shop.example/2")),
            stop: true
        }
    );
    assert_eq!(
        running,
        NextPage {
            url: Some(url("https://shop.example/2")),
            stop: false
        }
    );
}

#[test]
fn an_xpath_next_selector_may_select_the_href_attribute_or_the_link() {
    let attribute = paginated("//a[contains(., 'Next')]/@href", None);
    let element = paginated("//nav//a[last()]", Some("//p[@class='end']"));
    let html = r#"<nav><a href="/1">1</a><a href="/2">Next</a></nav>"#;

    assert_eq!(
        next_of(&attribute, "https://shop.example/", html).url,
        Some(url("https://shop.example/2"))
    );
    assert_eq!(
        next_of(&element, "https://shop.example/", html),
        NextPage {
            url: Some(url("https://shop.example/2")),
            stop: false
        }
    );
}

#[test]
fn links_inside_template_contents_are_not_next_links() {
    let extractor = paginated("a.next", Some(".stop"));

    let next = next_of(
        &extractor,
        "https://shop.example/",
        r#"<template><a class="next" href="/inert">n</a><i class="stop"></i></template><a class="next" href="/real">n</a>"#,
    );

    assert_eq!(
        next,
        NextPage {
            url: Some(url("https://shop.example/real")),
            stop: false
        }
    );
}

#[test]
fn links_inside_noscript_are_next_links_over_http_and_text_in_a_browser_snapshot() {
    let extractor = paginated("a.next", None);
    let html = r#"<noscript><a class="next" href="/noscript">n</a></noscript><a class="next" href="/real">n</a>"#;
    let page_url = url("https://shop.example/");
    let next_when = |rendered: bool| {
        let page = Page {
            url: &page_url,
            body: html.as_bytes(),
            content_type: None,
            rendered,
        };
        let full = extractor.extract(&page).next;
        assert_eq!(extractor.find_next(&page), full, "rendered: {rendered}");
        full.url
    };

    assert_eq!(next_when(false), Some(url("https://shop.example/noscript")));
    assert_eq!(next_when(true), Some(url("https://shop.example/real")));
}

#[test]
fn a_spec_without_pagination_has_no_next_page() {
    let extractor = extractor(json!({"fields": [{"name": "t", "selector": "a"}]}));
    let page_url = url("https://shop.example/");
    let page = Page {
        url: &page_url,
        body: br#"<a class="next" href="/2">t</a>"#,
        content_type: None,
        rendered: false,
    };

    assert_eq!(extractor.find_next(&page), NextPage::default());
    assert_eq!(extractor.extract(&page).next, NextPage::default());
}

#[test]
fn character_references_in_next_links_and_base_are_decoded_like_the_parser_does() {
    let extractor = paginated("a.next", None);

    let next = next_of(
        &extractor,
        "https://shop.example/",
        r#"<base href="/r&amp;d/"><a class="next" href="list?a=1&amp;b=2&copy=3&#x26;c">n</a>"#,
    );

    assert_eq!(
        next.url,
        Some(url("https://shop.example/r&d/list?a=1&b=2&copy=3&c"))
    );
}

#[test]
fn uppercase_markup_and_duplicate_attributes_read_as_the_parser_reads_them() {
    let extractor = paginated("a.next", None);

    let next = next_of(
        &extractor,
        "https://shop.example/",
        r#"<A CLASS="next" HREF="/first" href="/second">n</A>"#,
    );

    assert_eq!(next.url, Some(url("https://shop.example/first")));
}

#[test]
fn attribute_values_compare_as_the_css_rules_say_in_both_paths() {
    let by_rel = paginated("a[rel=next]", Some("div[data-state=done]"));
    let by_class = paginated("a.Next", None);
    let html = r#"<a rel="NEXT" href="/by-rel">n</a><a class="next" href="/by-class">n</a><div data-state="DONE"></div>"#;

    let rel = next_of(&by_rel, "https://shop.example/", html);
    let class = next_of(&by_class, "https://shop.example/", html);

    assert_eq!(
        rel,
        NextPage {
            url: Some(url("https://shop.example/by-rel")),
            stop: false
        }
    );
    assert_eq!(class.url, None);
}

#[test]
fn a_nul_in_a_next_href_reads_as_the_replacement_character_on_both_paths() {
    // The HTML tokenizer turns U+0000 in an attribute value into U+FFFD; the streaming
    // pass must read the href the same way (with and without a character reference).
    for (selector, href) in [("a[rel=next]", "?p=3\0"), ("a.next", "?p=3\0&amp;q=\0")] {
        let extractor = paginated(selector, None);
        let html = format!(r#"<a rel=next class=next href="{href}">n</a>"#);

        let next = next_of(&extractor, "https://shop.example/list", &html);

        let expected = href.replace('\0', "%EF%BF%BD").replace("&amp;", "&");
        assert_eq!(
            next.url.unwrap().as_str(),
            format!("https://shop.example/list{expected}")
        );
    }
}

#[test]
fn a_template_element_itself_is_matched_on_both_paths_its_contents_are_not() {
    // Found by the fuzzer: the streaming pass counted the template as its own contents.
    let extractor = paginated("template", Some("template"));
    let html = r#"<p>x</p><template href="/t"><template href="/inner"></template></template>"#;

    let next = next_of(&extractor, "https://shop.example/list", html);

    assert_eq!(next.url.unwrap().as_str(), "https://shop.example/t");
    assert!(next.stop);
}
