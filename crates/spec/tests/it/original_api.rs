//! The original platform's API shape: conversion to spec v1 and errors in the input's terms.

use selextract_spec::InputShape;
use serde_json::{Value, json};

use crate::{canonical_json, errors_of, parse_ok, paths_of, single_error};

/// A task as the original API accepted it, with most options used.
fn original_api_task() -> Value {
    json!({
        "name": "Laptop prices",
        "description": "Nightly price check",
        "task_type": "monitoring",
        "priority": 8,
        "config": {
            "urls": ["https://shop.example/laptops", "https://shop.example/tablets"],
            "selectors": {
                "title": "h2.title",
                "price": {"selector": ".price", "type": "text"},
                "link": {"selector": "h2 a", "type": "href"},
                "photo": {"selector": "img.main", "type": "src"},
                "sku": {"selector": "div.sku", "type": "attribute", "attribute": "data-sku", "multiple": true}
            },
            "output_format": "csv",
            "javascript_enabled": true,
            "wait_for_selector": ".product-grid",
            "custom_headers": {"Accept-Language": "en-GB"},
            "cookies": {"currency": "GBP"},
            "schedule": "0 */6 * * *",
            "max_pages": 5,
            "next_page_selector": "a.next",
            "delay": 1.5,
            "timeout": 45,
            "use_proxy": true,
            "container_selector": "div.product"
        }
    })
}

fn optional_css_field(name: &str, selector: &str, field_type: &str) -> Value {
    json!({
        "name": name, "selector": selector, "selector_type": "css", "type": field_type,
        "attribute": null, "multiple": false, "required": false, "default": null, "transform": []
    })
}

#[test]
fn the_original_api_shape_converts_to_the_expected_canonical_spec() {
    let input = parse_ok(&original_api_task());
    assert_eq!(input.shape, InputShape::OriginalApi);
    assert_eq!(input.priority, Some(8));
    assert_eq!(input.start, None);
    let mut sku = optional_css_field("sku", "div.sku", "attribute");
    sku["attribute"] = json!("data-sku");
    sku["multiple"] = json!(true);
    let expected = json!({
        "version": 1,
        "name": "Laptop prices",
        "start_urls": ["https://shop.example/laptops", "https://shop.example/tablets"],
        "mode": "browser",
        "item_selector": "div.product",
        "item_selector_type": "css",
        "fields": [
            optional_css_field("title", "h2.title", "text"),
            optional_css_field("price", ".price", "text"),
            optional_css_field("link", "h2 a", "link"),
            optional_css_field("photo", "img.main", "image"),
            sku
        ],
        "pagination": {"next_selector": "a.next", "next_selector_type": "css", "max_pages": 5, "stop_selector": null, "scroll": false},
        "rate_limit": {"requests_per_minute": null, "delay_ms": 1500, "jitter_ms": 0, "concurrency_per_domain": 8},
        "respect_robots_txt": true,
        "headers": {"Accept-Language": "en-GB"},
        "cookies": {"currency": "GBP"},
        "timeout_ms": 45000,
        "max_retries": 3,
        "retry_delay_ms": 2000,
        "proxy": {"enabled": true, "country": null, "sticky_session": false, "max_failures": 3},
        "browser": {
            "wait_conditions": [{"type": "element", "selector": ".product-grid", "timeout_ms": 10000}],
            "load_images": false, "viewport_width": 1366, "viewport_height": 900, "user_agent": null
        },
        "output_format": "csv",
        "schedule": {"cron": "0 */6 * * *", "timezone": "UTC", "enabled": true, "overlap": "skip", "catch_up": "latest", "key_field": null, "change_threshold": null},
        "notify": null
    });
    assert_eq!(canonical_json(&input), expected);
}

#[test]
fn fields_keep_the_order_of_the_selectors_object() {
    let input = parse_ok(&original_api_task());
    let names: Vec<&str> = input
        .spec
        .spec()
        .fields
        .iter()
        .map(|field| field.name.as_str())
        .collect();
    assert_eq!(names, ["title", "price", "link", "photo", "sku"]);
}

#[test]
fn a_simple_task_with_a_single_url_converts_with_defaults() {
    let task = json!({"name": "One page", "task_type": "simple_scraping", "config": {"url": "https://a.example/", "selectors": {"h": "h1"}}});
    let input = parse_ok(&task);
    let json = canonical_json(&input);
    assert_eq!(json["start_urls"], json!(["https://a.example/"]));
    assert_eq!(json["mode"], "http");
    assert_eq!(json["pagination"], Value::Null);
    assert_eq!(json["schedule"], Value::Null);
    assert_eq!(
        json["fields"],
        json!([optional_css_field("h", "h1", "text")])
    );
    assert_eq!(input.priority, None);
}

#[test]
fn nulls_sent_for_unset_options_count_as_absent() {
    let task = json!({
        "name": "Nulls", "task_type": "bulk_scraping", "priority": null, "description": null,
        "config": {"urls": ["https://a.example/"], "selectors": {"h": "h1"}, "schedule": null, "delay": null,
                   "javascript_enabled": null, "pagination": null, "use_proxy": null}
    });
    let json = canonical_json(&parse_ok(&task));
    assert_eq!(json["mode"], "http");
    assert_eq!(json["rate_limit"]["delay_ms"], 0);
    assert_eq!(json["pagination"], Value::Null);
}

#[test]
fn pagination_spellings_of_the_original_api_all_convert() {
    let with_config = |pagination: Value| json!({"task_type": "advanced_scraping", "config": {"urls": ["https://a.example/"], "selectors": {"h": "h1"}, "pagination": pagination}});
    let pagination_of = |task: &Value| canonical_json(&parse_ok(task))["pagination"].clone();
    assert_eq!(
        pagination_of(&with_config(json!("li.next a")))["next_selector"],
        "li.next a"
    );
    let object = pagination_of(&with_config(
        json!({"enabled": true, "next_selector": "a.more", "max_pages": 3}),
    ));
    assert_eq!(
        (object["next_selector"].clone(), object["max_pages"].clone()),
        (json!("a.more"), json!(3))
    );
    assert_eq!(
        pagination_of(&with_config(
            json!({"enabled": false, "next_selector": "a.more"})
        )),
        Value::Null
    );
    assert_eq!(pagination_of(&with_config(json!(false))), Value::Null);
    // `true` alone asks for pagination with the next link found automatically.
    let automatic = pagination_of(&with_config(json!(true)));
    assert_eq!(
        (
            automatic["next_selector"].clone(),
            automatic["max_pages"].clone()
        ),
        (Value::Null, json!(50))
    );
}

#[test]
fn javascript_explicitly_off_keeps_http_even_with_a_wait_selector() {
    let task = json!({"config": {"urls": ["https://a.example/"], "selectors": {"h": "h1"},
                                 "javascript_enabled": false, "wait_for_selector": "#app"}});
    assert_eq!(canonical_json(&parse_ok(&task))["mode"], "http");
    let task = json!({"config": {"urls": ["https://a.example/"], "selectors": {"h": "h1"}, "wait_for_selector": "#app"}});
    assert_eq!(canonical_json(&parse_ok(&task))["mode"], "browser");
}

#[test]
fn monitoring_without_a_schedule_is_an_error_at_config_schedule() {
    let mut task = original_api_task();
    task["config"].as_object_mut().unwrap().remove("schedule");
    assert_eq!(
        single_error(&task),
        (
            "config.schedule".to_owned(),
            "required when task_type is \"monitoring\"".to_owned()
        )
    );
}

#[test]
fn unknown_keys_in_config_and_at_the_top_are_rejected_at_their_paths() {
    let mut task = original_api_task();
    task["config"]["retries"] = json!(3);
    task["owner"] = json!("alice");
    task["config"]["selectors"]["price"]["regex"] = json!("[0-9]+");
    assert_eq!(
        paths_of(&task),
        ["owner", "config.retries", "config.selectors.price.regex"]
    );
    assert!(errors_of(&task)[1].1.starts_with("unknown field `retries`"));
}

#[test]
fn validation_errors_point_into_config_selectors() {
    let task = json!({
        "name": "Bad selectors",
        "task_type": "simple_scraping",
        "config": {
            "urls": ["https://a.example/"],
            "selectors": {
                "title": "h1",
                "price": "span[",
                "image": {"selector": "img[", "type": "src"},
                "sku": {"selector": "div", "type": "attribute"}
            }
        }
    });
    let errors = errors_of(&task);
    assert_eq!(
        errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        [
            "config.selectors.price",
            "config.selectors.image.selector",
            "config.selectors.sku"
        ]
    );
    assert!(
        errors[0].1.starts_with("invalid CSS selector: "),
        "{errors:?}"
    );
    assert_eq!(errors[2].1, "required when type is \"attribute\"");
}

#[test]
fn conversion_errors_name_the_offending_input_value() {
    let task = json!({
        "task_type": "scraping",
        "priority": "high",
        "config": {
            "urls": ["https://a.example/"],
            "selectors": {"title": 5, "link": {"type": "href"}, "img": {"selector": "img", "type": "picture"}},
            "javascript_enabled": "yes",
            "delay": -1,
            "use_proxy": "sometimes"
        }
    });
    assert_eq!(
        paths_of(&task),
        [
            "priority",
            "task_type",
            "config.selectors.title",
            "config.selectors.link",
            "config.selectors.img.type",
            "config.javascript_enabled",
            "config.delay",
            "config.use_proxy",
        ]
    );
}

#[test]
fn missing_config_urls_and_selectors_are_reported_at_their_parent() {
    assert_eq!(
        single_error(&json!({"task_type": "simple_scraping"})),
        ("$".to_owned(), "missing field `config`".to_owned())
    );
    assert_eq!(paths_of(&json!({"config": {}})), ["config", "config"]);
    assert_eq!(paths_of(&json!({"config": []})), ["config"]);
}

#[test]
fn errors_in_converted_values_map_back_to_the_keys_the_user_sent() {
    let base = || json!({"name": "Paths", "config": {"urls": ["https://a.example/"], "selectors": {"h": "h1"}}});
    let with = |key: &str, value: Value| {
        let mut task = base();
        task["config"][key] = value;
        task
    };
    let mut two_urls = base();
    two_urls["config"]["urls"] = json!(["https://a.example/", "ftp://b.example/"]);
    assert_eq!(paths_of(&two_urls), ["config.urls[1]"]);

    let mut one_url = base();
    one_url["config"].as_object_mut().unwrap().remove("urls");
    one_url["config"]["url"] = json!("nope");
    assert_eq!(paths_of(&one_url), ["config.url"]);

    let (path, message) = single_error(&with("timeout", json!(0.05)));
    assert_eq!(path, "config.timeout");
    assert_eq!(
        message,
        "must be between 100 and 300000 (in milliseconds; `timeout` is in seconds)"
    );

    assert_eq!(
        paths_of(&with("custom_headers", json!({"Bad Header": "x"}))),
        ["config.custom_headers.Bad Header"]
    );
    assert_eq!(
        paths_of(&with("custom_headers", json!({"X-Num": 5}))),
        ["config.custom_headers.X-Num"]
    );
    // A header name may itself contain a dot; the path still names the whole key.
    assert_eq!(
        paths_of(&with("custom_headers", json!({"X.Trace": "a\nb"}))),
        ["config.custom_headers.X.Trace"]
    );
    assert_eq!(
        paths_of(&with("cookies", json!({"a": "1; b=2"}))),
        ["config.cookies.a"]
    );
    assert_eq!(
        paths_of(&with("schedule", json!("every day"))),
        ["config.schedule"]
    );
    assert_eq!(
        paths_of(&with(
            "schedule",
            json!({"cron": "* * * * *", "change_threshold": 2.0})
        )),
        ["config.schedule.change_threshold"]
    );
    assert_eq!(paths_of(&with("max_pages", json!(0))), ["config.max_pages"]);
    assert_eq!(
        paths_of(&with("next_page_selector", json!("a[")))[0],
        "config.next_page_selector"
    );
    assert_eq!(
        paths_of(&with("item_selector", json!("div[")))[0],
        "config.item_selector"
    );
    assert_eq!(
        paths_of(&with("wait_for_selector", json!("#a[")))[0],
        "config.wait_for_selector"
    );
    assert_eq!(
        paths_of(&with("output_format", json!("pdf"))),
        ["config.output_format"]
    );
    assert_eq!(
        paths_of(&with("selectors", json!({}))),
        ["config.selectors"]
    );

    let mut renamed = base();
    renamed["name"] = json!("");
    assert_eq!(paths_of(&renamed), ["name"]);
}

#[test]
fn synonyms_given_together_are_rejected() {
    let task = json!({"config": {"urls": ["https://a.example/"], "url": "https://b.example/", "selectors": {"h": "h1"},
                                 "item_selector": "div", "container_selector": "li", "proxy": true, "use_proxy": false}});
    assert_eq!(
        paths_of(&task),
        ["config.url", "config.container_selector", "config.proxy"]
    );
}

#[test]
fn a_task_type_alone_selects_the_original_api_shape() {
    let task = json!({"task_type": "simple_scraping", "start_urls": ["https://a.example/"]});
    assert_eq!(paths_of(&task), ["start_urls", "$"]);
    assert_eq!(errors_of(&task)[1].1, "missing field `config`");
}
