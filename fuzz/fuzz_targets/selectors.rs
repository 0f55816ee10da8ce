//! Selector compilation: an arbitrary string as the CSS and the XPath selector of fields,
//! items and pagination in an otherwise valid spec. Validation must refuse it or accept it
//! without panicking or overflowing the stack; an accepted selector must compile and run on
//! a page.
#![no_main]

use libfuzzer_sys::fuzz_target;
use selextract_extract::Extractor;
use selextract_fuzz::{FIXED_PAGE, extract_and_check, on_server_stack, validate_json};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let selector = String::from_utf8_lossy(data);
    on_server_stack(|| {
        for spec in specs_using(&selector) {
            let Ok(validated) = validate_json(spec) else {
                continue;
            };
            // These specs have no date transform, so everything validation accepted must
            // compile here too (otherwise a task is accepted whose selector matches nothing).
            if let Err(error) = Extractor::new(validated.spec()) {
                panic!("validation accepted a selector the extractor cannot compile: {error}");
            }
            let extractor = Extractor::from_validated(&validated);
            extract_and_check(&extractor, FIXED_PAGE.as_bytes(), None);
        }
    });
});

/// Every place a selector can go, once as CSS and once as XPath (and once untyped, where
/// the type is guessed from the text).
fn specs_using(selector: &str) -> Vec<Value> {
    let field = |name: &str| json!({"name": name, "selector": "h2", "required": false});
    let mut specs = Vec::new();
    for selector_type in ["css", "xpath"] {
        specs.push(json!({
            "fields": [
                {"name": "text", "selector": selector, "selector_type": selector_type,
                 "required": false},
                {"name": "link", "selector": selector, "selector_type": selector_type,
                 "type": "link", "multiple": true, "required": false}
            ]
        }));
        specs.push(json!({
            "item_selector": selector,
            "item_selector_type": selector_type,
            "fields": [
                field("title"),
                {"name": "inner", "selector": selector, "selector_type": selector_type,
                 "type": "html", "required": false}
            ]
        }));
        specs.push(json!({
            "fields": [field("title")],
            "pagination": {
                "next_selector": selector, "next_selector_type": selector_type,
                "stop_selector": selector
            }
        }));
    }
    specs.push(json!({
        "item_selector": selector,
        "fields": [field("title")],
        "pagination": {"next_selector": selector, "stop_selector": selector}
    }));
    specs
}
