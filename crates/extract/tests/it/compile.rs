//! Compiling specs: errors name the JSON path; validated specs always compile.

use selextract_extract::{CompileError, Extractor, Page};
use selextract_spec::{Limits, validate};
use serde_json::json;

use crate::{extract, records, spec, url};

fn error_path(json: serde_json::Value) -> String {
    match Extractor::new(&spec(json)) {
        Ok(_) => panic!("the spec compiled"),
        Err(error) => error.path().to_owned(),
    }
}

#[test]
fn compile_errors_name_the_json_path_of_the_bad_value() {
    assert_eq!(
        error_path(json!({"item_selector": "div[", "fields": [{"name": "a", "selector": "b"}]})),
        "item_selector"
    );
    assert_eq!(
        error_path(
            json!({"fields": [{"name": "a", "selector": "b"}, {"name": "c", "selector": "p >> q"}]})
        ),
        "fields[1].selector"
    );
    assert_eq!(
        error_path(
            json!({"fields": [{"name": "a", "selector": "//p[", "selector_type": "xpath"}]})
        ),
        "fields[0].selector"
    );
    assert_eq!(
        error_path(
            json!({"fields": [{"name": "a", "selector": "b", "transform": ["trim", {"regex": "(unclosed"}]}]})
        ),
        "fields[0].transform[1].regex"
    );
    assert_eq!(
        error_path(
            json!({"fields": [{"name": "a", "selector": "b", "transform": [{"date": "%Y-%Q"}]}]})
        ),
        "fields[0].transform[0].date"
    );
    assert_eq!(
        error_path(json!({"fields": [{"name": "a", "selector": "b", "type": "attribute"}]})),
        "fields[0].attribute"
    );
    assert_eq!(
        error_path(
            json!({"fields": [{"name": "a", "selector": "b"}], "pagination": {"next_selector": "a:nope("}})
        ),
        "pagination.next_selector"
    );
    assert_eq!(
        error_path(
            json!({"fields": [{"name": "a", "selector": "b"}], "pagination": {"stop_selector": "//["}})
        ),
        "pagination.stop_selector"
    );
}

#[test]
fn a_compile_error_displays_its_path_and_cause() {
    let error = Extractor::new(&spec(
        json!({"fields": [{"name": "a", "selector": "div["}]}),
    ))
    .err()
    .unwrap();

    assert!(matches!(error, CompileError::InvalidCss { .. }));
    assert!(
        error
            .to_string()
            .starts_with("fields[0].selector: invalid CSS selector"),
        "{error}"
    );
}

#[test]
fn a_validated_spec_compiles_and_a_date_format_chrono_rejects_only_fails_its_values() {
    let validated = validate(
        spec(json!({"fields": [
            {"name": "title", "selector": "h1"},
            {"name": "when", "selector": "time", "transform": [{"date": "%Q"}]}
        ]})),
        &Limits::default(),
    )
    .expect("the spec is valid");

    let extractor = Extractor::from_validated(&validated);
    let page_url = url("https://shop.example/");
    let extraction = extractor.extract(&Page {
        url: &page_url,
        body: b"<h1>Hi</h1><time>2024</time>",
        content_type: None,
        rendered: false,
    });

    assert_eq!(records(&extraction), json!([{"title": "Hi", "when": null}]));
    assert_eq!(
        extraction.diagnostics.transform_failures.get("when"),
        Some(&1)
    );
    assert!(
        extraction
            .diagnostics
            .messages
            .iter()
            .any(|m| m.contains("fields[1].transform[0].date"))
    );
}

#[test]
fn the_extractor_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Extractor>();

    let shared = std::sync::Arc::new(crate::extractor(
        json!({"fields": [{"name": "t", "selector": "b"}]}),
    ));
    let handles: Vec<_> = (0..2)
        .map(|n| {
            let shared = std::sync::Arc::clone(&shared);
            std::thread::spawn(move || {
                extract(&shared, "https://shop.example/", &format!("<b>{n}</b>")).records
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();

    assert_eq!(results[0][0]["t"], json!("0"));
    assert_eq!(results[1][0]["t"], json!("1"));
}
