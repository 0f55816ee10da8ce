//! Canonical input: deserialisation, defaults, unknown keys, wrong types and the options
//! that travel beside the spec.

use selextract_spec::{InputShape, Limits, TaskSpec, parse_task_input, validate};
use serde_json::{Value, json};

use crate::{canonical_json, errors_of, minimal_task, parse_ok, paths_of, single_error, task_with};

/// The example task of SPEC §2, verbatim.
fn spec_section_2_example() -> Value {
    json!({
      "name": "Product prices",
      "start_urls": ["https://shop.example/catalog?page=1"],
      "mode": "http",
      "item_selector": "div.product",
      "fields": [
        {"name": "title", "selector": "h2 a", "type": "text"},
        {"name": "url",   "selector": "h2 a", "type": "link"},
        {"name": "price", "selector": ".price", "type": "text", "transform": ["trim", {"regex": "[0-9.]+"}, "number"]},
        {"name": "rating","selector": "//span[@class='stars']/@data-rating", "selector_type": "xpath", "type": "attribute"},
        {"name": "image", "selector": "img", "type": "image"},
        {"name": "tags",  "selector": ".tag", "type": "text", "multiple": true, "required": false}
      ],
      "pagination": {"next_selector": "a.next", "max_pages": 50, "stop_selector": null},
      "rate_limit": {"requests_per_minute": null, "delay_ms": 0, "jitter_ms": 0, "concurrency_per_domain": 8},
      "respect_robots_txt": true,
      "headers": {}, "cookies": {},
      "timeout_ms": 30000, "max_retries": 3, "retry_delay_ms": 2000,
      "proxy": {"enabled": false, "country": null, "sticky_session": false, "max_failures": 3},
      "browser": {"wait_conditions": [], "load_images": false, "viewport_width": 1366, "viewport_height": 900, "user_agent": null},
      "output_format": "json",
      "schedule": null,
      "notify": null
    })
}

/// Every key of `expected` is in `actual` with an equal value (recursively); `actual` may
/// hold more keys, the defaults the example leaves out.
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, expected_value) in expected {
                let actual_value = actual
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} missing"));
                assert_contains(actual_value, expected_value, &format!("{path}.{key}"));
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            assert_eq!(actual.len(), expected.len(), "length of {path}");
            for (index, (actual, expected)) in actual.iter().zip(expected).enumerate() {
                assert_contains(actual, expected, &format!("{path}[{index}]"));
            }
        }
        _ => assert_eq!(actual, expected, "value at {path}"),
    }
}

#[test]
fn the_spec_section_2_example_validates_unchanged() {
    let example = spec_section_2_example();
    let input = parse_ok(&example);
    assert_eq!(input.shape, InputShape::Canonical);
    assert_contains(&canonical_json(&input), &example, "$");
    let deserialized: TaskSpec = serde_json::from_value(example).unwrap();
    assert_eq!(input.spec.spec(), &deserialized);
    assert_eq!(
        input.spec.start_urls()[0].as_str(),
        "https://shop.example/catalog?page=1"
    );
}

#[test]
fn omitted_keys_are_filled_with_their_defaults() {
    let input = parse_ok(&minimal_task());
    let expected = json!({
        "version": 1,
        "name": "Books",
        "start_urls": ["https://books.example/"],
        "mode": "http",
        "item_selector": null,
        "item_selector_type": null,
        "fields": [{
            "name": "title", "selector": "h1", "selector_type": "css", "type": "text",
            "attribute": null, "multiple": false, "required": true, "default": null, "transform": []
        }],
        "pagination": null,
        "rate_limit": {"requests_per_minute": null, "delay_ms": 0, "jitter_ms": 0, "concurrency_per_domain": 8},
        "respect_robots_txt": true,
        "headers": {},
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
    assert_eq!(input.priority, None);
    assert_eq!(input.start, None);
}

#[test]
fn nested_defaults_are_filled_inside_partly_given_objects() {
    let input = parse_ok(&task_with(|task| {
        task["pagination"] = json!({"next_selector": "a.next"});
        task["schedule"] = json!({"cron": "0 */6 * * *"});
        task["notify"] = json!({"email": "ops@example.com"});
        task["browser"] = json!({"wait_conditions": [{"type": "element", "selector": "#app"}]});
    }));
    let json = canonical_json(&input);
    assert_eq!(json["pagination"]["max_pages"], 50);
    assert_eq!(json["pagination"]["scroll"], false);
    assert_eq!(
        json["schedule"],
        json!({"cron": "0 */6 * * *", "timezone": "UTC", "enabled": true, "overlap": "skip", "catch_up": "latest", "key_field": null, "change_threshold": null})
    );
    assert_eq!(
        json["notify"]["on"],
        json!(["completed", "failed", "partial", "changed"])
    );
    assert_eq!(
        json["browser"]["wait_conditions"],
        json!([{"type": "element", "selector": "#app", "timeout_ms": 10000}])
    );
}

#[test]
fn an_unknown_top_level_key_is_rejected_at_its_path() {
    let (path, message) = single_error(&task_with(|task| task["colour"] = json!("red")));
    assert_eq!(path, "colour");
    assert!(message.starts_with("unknown field `colour`"), "{message}");
}

#[test]
fn an_unknown_key_inside_a_field_names_the_field_index() {
    let task = task_with(|task| {
        task["fields"] = json!([{"name": "title", "selector": "h1"}, {"name": "price", "selector": ".p", "colour": "red"}]);
    });
    assert_eq!(paths_of(&task), ["fields[1].colour"]);
}

#[test]
fn unknown_keys_deeper_in_the_spec_name_their_full_path() {
    assert_eq!(
        paths_of(&task_with(|task| task["rate_limit"] = json!({"burst": 3}))),
        ["rate_limit.burst"]
    );
    assert_eq!(
        paths_of(&task_with(
            |task| task["proxy"] = json!({"enabled": true, "pool": "x"})
        )),
        ["proxy.pool"]
    );
    assert_eq!(
        paths_of(&task_with(
            |task| task["fields"][0]["transform"] = json!(["trim", {"regexp": "x"}])
        )),
        ["fields[0].transform[1].regexp"]
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_path() {
    let (path, message) = single_error(&task_with(|task| task["timeout_ms"] = json!("30s")));
    assert_eq!(path, "timeout_ms");
    assert_eq!(message, "invalid type: string \"30s\", expected u64");

    let (path, _) = single_error(&task_with(|task| {
        task["fields"][0]["multiple"] = json!("yes")
    }));
    assert_eq!(path, "fields[0].multiple");
    let (path, _) = single_error(&task_with(|task| {
        task["start_urls"] = json!(["https://a.example/", 7])
    }));
    assert_eq!(path, "start_urls[1]");
    let (path, _) = single_error(&task_with(|task| task["mode"] = json!("turbo")));
    assert_eq!(path, "mode");
}

#[test]
fn a_missing_required_key_is_reported_at_the_object_that_lacks_it() {
    let task = json!({"fields": [{"name": "title", "selector": "h1"}]});
    assert_eq!(
        single_error(&task),
        ("$".to_owned(), "missing field `start_urls`".to_owned())
    );
    let task = task_with(|task| task["fields"] = json!([{"name": "title"}]));
    assert_eq!(
        single_error(&task),
        (
            "fields[0]".to_owned(),
            "missing field `selector`".to_owned()
        )
    );
}

#[test]
fn a_document_that_is_not_an_object_is_rejected_at_the_root() {
    for document in [json!([1, 2]), json!("task"), json!(null)] {
        assert_eq!(
            single_error(&document),
            ("$".to_owned(), "expected a JSON object".to_owned())
        );
    }
}

#[test]
fn transform_typos_name_the_step_and_list_the_choices() {
    let (path, message) = single_error(&task_with(|task| {
        task["fields"][0]["transform"] = json!(["trim", "trimm"])
    }));
    assert_eq!(path, "fields[0].transform[1]");
    assert!(
        message.contains("unknown variant `trimm`") && message.contains("`lowercase`"),
        "{message}"
    );

    let two_keys =
        task_with(|task| task["fields"][0]["transform"] = json!([{"regex": "a", "date": "%Y"}]));
    assert_eq!(
        single_error(&two_keys),
        (
            "fields[0].transform[0]".to_owned(),
            "a transform object has exactly one key".to_owned()
        )
    );

    let (path, _) = single_error(&task_with(|task| {
        task["fields"][0]["transform"] = json!([{"replace": ["a"]}])
    }));
    assert_eq!(path, "fields[0].transform[0].replace");
    let (path, _) = single_error(&task_with(|task| {
        task["fields"][0]["transform"] = json!([3])
    }));
    assert_eq!(path, "fields[0].transform[0]");
}

#[test]
fn every_transform_form_round_trips_through_the_canonical_json() {
    let transforms = json!(["trim", "lowercase", "uppercase", "number", "integer", "boolean",
        {"regex": "[0-9]+"}, {"replace": [",", ""]}, {"date": "%d/%m/%Y"}]);
    let input = parse_ok(&task_with(|task| {
        task["fields"][0]["transform"] = transforms.clone()
    }));
    assert_eq!(canonical_json(&input)["fields"][0]["transform"], transforms);
}

#[test]
fn priority_and_start_are_taken_from_beside_the_spec() {
    let input = parse_ok(&task_with(|task| {
        task["priority"] = json!(7);
        task["start"] = json!(false);
    }));
    assert_eq!(input.priority, Some(7));
    assert_eq!(input.start, Some(false));
    let json = canonical_json(&input);
    assert!(json.get("priority").is_none() && json.get("start").is_none());
}

#[test]
fn bad_priority_and_start_are_reported_together_with_spec_errors() {
    let task = task_with(|task| {
        task["priority"] = json!(11);
        task["start"] = json!("yes");
        task["timeout_ms"] = json!(1);
    });
    assert_eq!(paths_of(&task), ["priority", "start", "timeout_ms"]);
    assert_eq!(
        paths_of(&task_with(|task| task["priority"] = json!(0))),
        ["priority"]
    );
    assert_eq!(
        paths_of(&task_with(|task| task["priority"] = json!(2.5))),
        ["priority"]
    );
}

#[test]
fn whitespace_around_start_urls_and_name_is_trimmed() {
    let input = parse_ok(&task_with(|task| {
        task["name"] = json!("  Books \n");
        task["start_urls"] = json!(["  https://books.example/page/1\t"]);
    }));
    assert_eq!(input.spec.spec().name, "Books");
    assert_eq!(
        input.spec.spec().start_urls,
        ["https://books.example/page/1"]
    );
    assert_eq!(
        input.spec.start_urls()[0].as_str(),
        "https://books.example/page/1"
    );
}

#[test]
fn validate_accepts_a_spec_built_in_code_and_keeps_it_intact() {
    let spec: TaskSpec = serde_json::from_value(spec_section_2_example()).unwrap();
    let validated = validate(spec.clone(), &Limits::default()).unwrap();
    assert_eq!(validated.clone().into_spec(), spec);
    assert_eq!(
        serde_json::to_value(&validated).unwrap(),
        serde_json::to_value(&spec).unwrap()
    );
}

#[test]
fn a_canonical_task_with_a_url_key_beside_start_urls_stays_canonical() {
    let task = task_with(|task| task["url"] = json!("https://books.example/"));
    assert_eq!(paths_of(&task), ["url"]);
    let errors = parse_task_input(&task, &Limits::default()).unwrap_err();
    assert!(errors.0[0].message.starts_with("unknown field `url`"));
}

#[test]
fn errors_of_one_document_are_all_reported_at_once() {
    let task = json!({
        "name": "",
        "start_urls": ["https://ok.example/", "not a url", "ftp://files.example/"],
        "fields": [
            {"name": "title", "selector": "h1["},
            {"name": "title", "selector": "//a[", "selector_type": "xpath"},
            {"name": "price", "selector": ".p", "type": "attribute"}
        ],
        "pagination": {"max_pages": 0},
        "timeout_ms": 5
    });
    assert_eq!(
        paths_of(&task),
        [
            "name",
            "start_urls[1]",
            "start_urls[2]",
            "fields[0].selector",
            "fields[1].name",
            "fields[1].selector",
            "fields[2].attribute",
            "pagination.max_pages",
            "timeout_ms",
        ]
    );
    assert_eq!(errors_of(&task)[4].1, "duplicate field name \"title\"");
}
