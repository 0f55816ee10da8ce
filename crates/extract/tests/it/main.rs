//! Integration tests of selextract-extract: one binary, one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalogue;
mod compile;
mod corpus;
mod deep;
mod encoding;
mod limits;
mod malformed;
mod noscript;
mod pagination;
mod transforms;
mod work;
mod xpath;

use selextract_extract::{Extraction, Extractor, Page};
use selextract_spec::TaskSpec;
use serde_json::Value;
use url::Url;

/// A task spec from the JSON a user would write; `start_urls` may be left out.
pub fn spec(mut json: Value) -> TaskSpec {
    let object = json.as_object_mut().expect("a spec is a JSON object");
    object
        .entry("start_urls")
        .or_insert_with(|| serde_json::json!(["https://shop.example/"]));
    serde_json::from_value(json).expect("a well-formed test spec")
}

pub fn extractor(json: Value) -> Extractor {
    Extractor::new(&spec(json)).expect("a spec that compiles")
}

pub fn url(text: &str) -> Url {
    Url::parse(text).expect("a valid test URL")
}

/// Extracts a UTF-8 page served without a Content-Type charset.
pub fn extract(extractor: &Extractor, page_url: &str, html: &str) -> Extraction {
    let page_url = url(page_url);
    extractor.extract(&Page {
        url: &page_url,
        body: html.as_bytes(),
        content_type: None,
        rendered: false,
    })
}

/// The records of an extraction as one JSON array, for whole-value comparisons.
pub fn records(extraction: &Extraction) -> Value {
    Value::Array(
        extraction
            .records
            .iter()
            .cloned()
            .map(Value::Object)
            .collect(),
    )
}
