//! The original worker's job shape: conversion to spec v1 and errors in the input's terms.

use selextract_spec::InputShape;
use serde_json::{Value, json};

use crate::{canonical_json, errors_of, parse_ok, paths_of, single_error};

fn original_worker_job() -> Value {
    json!({
        "url": "https://news.example/latest",
        "item_selector": "article",
        "fields": [
            {"name": "headline", "selector": "h2"},
            {"name": "link", "selector": "h2 a", "type": "href"},
            {"name": "thumb", "selector": "img", "type": "src", "required": true},
            {"name": "tags", "selector": ".tag", "multiple": true},
            {"name": "author", "selector": "./span[@class='by']/text()"},
            {"name": "id", "selector": "a", "type": "attribute", "attribute": "data-id"}
        ],
        "pagination": {"enabled": true, "next_selector": "a.older", "max_pages": 3},
        "headers": {"User-Agent": "selextract-test"},
        "javascript": true
    })
}

fn field(name: &str, selector: &str, selector_type: &str, field_type: &str) -> Value {
    json!({
        "name": name, "selector": selector, "selector_type": selector_type, "type": field_type,
        "attribute": null, "multiple": false, "required": false, "default": null, "transform": []
    })
}

#[test]
fn the_original_worker_shape_converts_to_the_expected_canonical_spec() {
    let input = parse_ok(&original_worker_job());
    assert_eq!(input.shape, InputShape::OriginalWorker);
    let mut thumb = field("thumb", "img", "css", "image");
    thumb["required"] = json!(true);
    let mut tags = field("tags", ".tag", "css", "text");
    tags["multiple"] = json!(true);
    let mut id = field("id", "a", "css", "attribute");
    id["attribute"] = json!("data-id");
    let expected = json!({
        "version": 1,
        "name": "Untitled task",
        "start_urls": ["https://news.example/latest"],
        "mode": "browser",
        "item_selector": "article",
        "item_selector_type": null,
        "fields": [
            field("headline", "h2", "css", "text"),
            field("link", "h2 a", "css", "link"),
            thumb,
            tags,
            field("author", "./span[@class='by']/text()", "xpath", "text"),
            id
        ],
        "pagination": {"next_selector": "a.older", "next_selector_type": null, "max_pages": 3, "stop_selector": null, "scroll": false},
        "rate_limit": {"requests_per_minute": null, "delay_ms": 0, "jitter_ms": 0, "concurrency_per_domain": 8},
        "respect_robots_txt": true,
        "headers": {"User-Agent": "selextract-test"},
        "cookies": {},
        "timeout_ms": 30000,
        "max_retries": 3,
        "retry_delay_ms": 2000,
        "proxy": {"enabled": false, "country": null, "sticky_session": false, "max_failures": 3},
        "browser": {"wait_conditions": [], "load_images": false, "viewport_width": 1366, "viewport_height": 900, "user_agent": null},
        "output_format": "json",
        "schedule": null,
        "notify": null
    });
    assert_eq!(canonical_json(&input), expected);
}

#[test]
fn pagination_is_kept_only_when_enabled() {
    let mut job = original_worker_job();
    job["pagination"]["enabled"] = json!(false);
    assert_eq!(canonical_json(&parse_ok(&job))["pagination"], Value::Null);
    job["pagination"].as_object_mut().unwrap().remove("enabled");
    assert_eq!(canonical_json(&parse_ok(&job))["pagination"], Value::Null);
}

#[test]
fn javascript_false_means_plain_http() {
    let mut job = original_worker_job();
    job["javascript"] = json!(false);
    assert_eq!(canonical_json(&parse_ok(&job))["mode"], "http");
}

#[test]
fn a_job_with_start_urls_is_not_taken_for_a_worker_job() {
    let mut job = original_worker_job();
    job["start_urls"] = json!(["https://news.example/"]);
    let errors = errors_of(&job);
    assert_eq!(errors[0].0, "url");
    assert!(errors[0].1.starts_with("unknown field `url`"), "{errors:?}");
}

#[test]
fn errors_in_a_worker_job_name_the_paths_the_worker_used() {
    let mut job = original_worker_job();
    job["url"] = json!("news.example/latest");
    job["fields"][1]["selector"] = json!("h2 a[");
    job["pagination"]["max_pages"] = json!(0);
    assert_eq!(
        paths_of(&job),
        ["url", "fields[1].selector", "pagination.max_pages"]
    );
}

#[test]
fn unknown_keys_and_types_in_a_worker_job_are_rejected_at_their_paths() {
    let mut job = original_worker_job();
    job["retries"] = json!(2);
    job["fields"][0]["colour"] = json!("red");
    job["fields"][2]["type"] = json!("picture");
    job["pagination"]["step"] = json!(1);
    job["javascript"] = json!("on");
    assert_eq!(
        paths_of(&job),
        [
            "retries",
            "fields[0].colour",
            "fields[2].type",
            "pagination.step",
            "javascript"
        ]
    );
}

#[test]
fn a_worker_field_missing_its_selector_is_reported_at_the_field() {
    let mut job = original_worker_job();
    job["fields"][3].as_object_mut().unwrap().remove("selector");
    assert_eq!(
        single_error(&job),
        (
            "fields[3]".to_owned(),
            "missing field `selector`".to_owned()
        )
    );
}

#[test]
fn the_default_pages_limit_of_an_enabled_pagination_points_at_the_pagination_object() {
    let mut job = original_worker_job();
    job["pagination"]
        .as_object_mut()
        .unwrap()
        .remove("max_pages");
    let limits = selextract_spec::Limits {
        max_pages_per_start_url: 10,
        ..Default::default()
    };
    let errors = crate::errors_with_limits(&job, &limits);
    assert_eq!(
        errors,
        [(
            "pagination".to_owned(),
            "must be between 1 and 10".to_owned()
        )]
    );
}
