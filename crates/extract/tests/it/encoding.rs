//! Pages in legacy encodings, declared by header, by `<meta>` only, or by a BOM.

use encoding_rs::{SHIFT_JIS, WINDOWS_1251};
use selextract_extract::{Page, decode_html};
use serde_json::json;

use crate::{extractor, records, url};

fn title_extractor() -> selextract_extract::Extractor {
    extractor(json!({"fields": [{"name": "title", "selector": "h1"}]}))
}

fn extract_bytes(body: &[u8], content_type: Option<&str>) -> selextract_extract::Extraction {
    let page_url = url("https://shop.example/");
    title_extractor().extract(&Page {
        url: &page_url,
        body,
        content_type,
        rendered: false,
    })
}

#[test]
fn windows_1251_declared_by_the_content_type_header_decodes_to_cyrillic() {
    let (body, _, _) = WINDOWS_1251.encode("<html><h1>Привет, мир</h1></html>");

    let extraction = extract_bytes(&body, Some("text/html; charset=windows-1251"));

    assert_eq!(records(&extraction), json!([{"title": "Привет, мир"}]));
    assert_eq!(extraction.diagnostics.encoding, "windows-1251");
}

#[test]
fn windows_1251_declared_only_by_meta_charset_decodes_to_cyrillic() {
    let (body, _, _) = WINDOWS_1251
        .encode(r#"<html><head><meta charset="windows-1251"></head><h1>Цена: 100 руб.</h1>"#);

    let extraction = extract_bytes(&body, Some("text/html"));

    assert_eq!(records(&extraction), json!([{"title": "Цена: 100 руб."}]));
    assert_eq!(extraction.diagnostics.encoding, "windows-1251");
}

#[test]
fn shift_jis_declared_by_meta_http_equiv_decodes_to_japanese() {
    let (body, _, _) = SHIFT_JIS.encode(
        r#"<html><head><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=Shift_JIS"></head><h1>日本語のテキスト</h1>"#,
    );

    let extraction = extract_bytes(&body, None);

    assert_eq!(records(&extraction), json!([{"title": "日本語のテキスト"}]));
    assert_eq!(extraction.diagnostics.encoding, "Shift_JIS");
}

#[test]
fn a_utf8_byte_order_mark_wins_over_a_wrong_header() {
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice("<h1>naïve café</h1>".as_bytes());

    let extraction = extract_bytes(&body, Some("text/html; charset=windows-1252"));

    assert_eq!(records(&extraction), json!([{"title": "naïve café"}]));
    assert_eq!(extraction.diagnostics.encoding, "UTF-8");
}

#[test]
fn the_header_charset_wins_over_meta_charset() {
    let (body, _, _) = WINDOWS_1251.encode(r#"<meta charset="utf-8"><h1>Да</h1>"#);

    let extraction = extract_bytes(&body, Some("text/html;charset=\"windows-1251\""));

    assert_eq!(records(&extraction), json!([{"title": "Да"}]));
}

#[test]
fn undeclared_invalid_utf8_falls_back_to_windows_1252() {
    let extraction = extract_bytes(b"<h1>caf\xe9</h1>", None);

    assert_eq!(records(&extraction), json!([{"title": "café"}]));
    assert_eq!(extraction.diagnostics.encoding, "windows-1252");
}

#[test]
fn undeclared_valid_utf8_is_read_as_utf8() {
    let (text, encoding) = decode_html("<p>Ärger</p>".as_bytes(), None);

    assert_eq!(text, "<p>Ärger</p>");
    assert_eq!(encoding.name(), "UTF-8");
}

#[test]
fn a_meta_charset_inside_a_comment_or_an_attribute_value_is_ignored() {
    let body = br#"<!-- <meta charset="koi8-r"> --><div title='<meta charset="koi8-r">'><meta charset="iso-8859-2"></div>"#;

    let (_, encoding) = decode_html(body, None);

    assert_eq!(encoding.name(), "ISO-8859-2");
}

#[test]
fn a_meta_charset_beyond_the_first_4_kib_is_not_seen() {
    let mut body = format!("<html><head><!-- {} -->", "x".repeat(5000)).into_bytes();
    body.extend_from_slice(b"<meta charset=\"windows-1251\"></head><h1>caf\xe9</h1>");

    let (text, encoding) = decode_html(&body, None);

    assert_eq!(encoding.name(), "windows-1252");
    assert!(text.ends_with("café</h1>"));
}

#[test]
fn an_unknown_header_charset_falls_through_to_the_meta_declaration() {
    let (body, _, _) = WINDOWS_1251.encode(
        r#"<meta http-equiv="content-type" content="text/html; charset=cp1251"><h1>Ок</h1>"#,
    );

    let extraction = extract_bytes(&body, Some("text/html; charset=no-such-charset"));

    assert_eq!(records(&extraction), json!([{"title": "Ок"}]));
}
