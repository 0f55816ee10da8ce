//! Hostile tasks: selectors too long or too deep for a parser's stack, transform lists and
//! regular expressions that ask for unbounded memory, delays and waits beyond the
//! operator's maxima. Each is refused at its JSON path, naming the limit, before any work.

use selextract_spec::{Limits, build_regex, parse_task_input};
use serde_json::{Value, json};

use crate::{errors_of, errors_with_limits, parse_ok, task_with};

/// The stack tokio gives its blocking threads and Rust gives spawned threads: where the
/// API and the workers validate and extract.
const SMALL_STACK: usize = 2 * 1024 * 1024;

/// Runs `work` on a thread with a 2 MiB stack; a stack overflow aborts the test binary.
fn on_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

fn task_with_field_selector(selector: &str, selector_type: &str) -> Value {
    task_with(|task| {
        task["fields"][0]["selector"] = json!(selector);
        task["fields"][0]["selector_type"] = json!(selector_type);
    })
}

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

fn generous_selector_bytes() -> Limits {
    Limits {
        max_selector_bytes: 4 * 1024 * 1024,
        ..Limits::default()
    }
}

#[test]
fn an_xpath_of_2000_nested_parentheses_is_refused_without_parsing_it() {
    let task = task_with_field_selector(&nested("(", "//a", ")", 2000), "xpath");

    let errors = on_small_stack(move || errors_of(&task));

    assert_eq!(
        errors,
        [(
            "fields[0].selector".to_owned(),
            "nesting depth 2000 exceeds the limit of 32 (limits.max_selector_depth)".to_owned()
        )]
    );
}

#[test]
fn a_css_selector_of_2000_nested_nots_is_refused_by_length_and_by_depth() {
    let selector = nested(":not(", "a", ")", 2000);
    let task = task_with_field_selector(&selector, "css");

    let (by_default, with_room) = on_small_stack(move || {
        (
            errors_of(&task),
            errors_with_limits(&task, &generous_selector_bytes()),
        )
    });

    assert_eq!(
        by_default,
        [(
            "fields[0].selector".to_owned(),
            "selector of 12001 bytes exceeds the limit of 4096 (limits.max_selector_bytes)"
                .to_owned()
        )]
    );
    assert_eq!(
        with_room,
        [(
            "fields[0].selector".to_owned(),
            "nesting depth 2000 exceeds the limit of 32 (limits.max_selector_depth)".to_owned()
        )]
    );
}

#[test]
fn a_one_megabyte_selector_is_refused_by_its_length() {
    let selector = format!("a{}", "[href]".repeat(1024 * 1024 / 6));
    let task = task_with_field_selector(&selector, "css");

    let errors = errors_of(&task);

    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "fields[0].selector");
    assert!(
        errors[0]
            .1
            .ends_with("exceeds the limit of 4096 (limits.max_selector_bytes)"),
        "{errors:?}"
    );
}

#[test]
fn brackets_inside_quoted_strings_are_not_nesting() {
    let css = format!("a[title=\"{}\"]", "((([[[".repeat(20));
    let xpath = format!("//a[@title='{}']", ")))]]](((".repeat(20));

    parse_ok(&task_with_field_selector(&css, "css"));
    parse_ok(&task_with_field_selector(&xpath, "xpath"));
}

#[test]
fn a_quote_cannot_hide_the_brackets_that_follow_it() {
    // XPath strings have no escapes: the string is `\`, and 40 parentheses follow it.
    let xpath = format!("//a[@x=\"\\\"]{}", nested("(", "1", ")", 40));
    // A CSS string ends at a newline; the parser goes on reading after it.
    let css = format!("a[x=\"\n]{}", nested(":not(", "b", ")", 40));
    // A quote inside a CSS comment opens no string.
    let commented = format!("/* \" */ {}", nested(":not(", "b", ")", 40));

    for (selector, kind) in [(xpath, "xpath"), (css, "css"), (commented, "css")] {
        let errors = errors_of(&task_with_field_selector(&selector, kind));
        assert!(
            errors[0]
                .1
                .contains("exceeds the limit of 32 (limits.max_selector_depth)"),
            "{selector:?}: {errors:?}"
        );
    }
}

#[test]
fn depth_exactly_at_the_limit_is_accepted_and_parses_on_a_2_mib_stack() {
    let xpath = nested("(", "//a", ")", 32);
    let css = nested(":not(:is(", "a", "))", 16);
    let negations = format!("count(//a) > {}1", "-".repeat(31));

    let outcomes = on_small_stack(move || {
        [(xpath, "xpath"), (css, "css"), (negations, "xpath")].map(|(selector, kind)| {
            parse_task_input(
                &task_with_field_selector(&selector, kind),
                &Limits::default(),
            )
            .map(|_| ())
        })
    });

    for outcome in outcomes {
        assert_eq!(outcome, Ok(()));
    }
}

#[test]
fn depth_one_above_the_limit_is_refused() {
    let errors = errors_of(&task_with_field_selector(
        &nested(":not(", "a", ")", 33),
        "css",
    ));

    assert_eq!(
        errors[0].1,
        "nesting depth 33 exceeds the limit of 32 (limits.max_selector_depth)"
    );
}

#[test]
fn the_parsers_survive_depths_far_beyond_the_default_on_a_2_mib_stack() {
    // The margin behind the default of 32, in a debug build (larger frames): sxd-xpath
    // survives 1,000 nested parentheses on 2 MiB and overflows near 1,200; the CSS parser
    // (cssparser) refuses more than 75 nested blocks by itself.
    let limits = Limits {
        max_selector_depth: 128,
        ..Limits::default()
    };
    let xpath = nested("(", "//a", ")", 128);
    let xpath_negations = format!("{}count(//a)", "-".repeat(128));
    let xpath_sum = format!("1{}", "+1".repeat(2047));
    let css = nested(":not(", "a", ")", 75);
    let css_mixed = nested(":is(:not(", "a", "))", 37);

    let outcomes = on_small_stack(move || {
        [
            (xpath, "xpath"),
            (xpath_negations, "xpath"),
            (xpath_sum, "xpath"),
            (css, "css"),
            (css_mixed, "css"),
        ]
        .map(|(selector, kind)| {
            parse_task_input(&task_with_field_selector(&selector, kind), &limits).map(|_| ())
        })
    });

    for outcome in outcomes {
        assert_eq!(outcome, Ok(()));
    }
}

#[test]
fn css_deeper_than_the_css_parser_allows_is_an_error_even_with_the_depth_limit_raised() {
    let limits = Limits {
        max_selector_bytes: 1024 * 1024,
        max_selector_depth: 100_000,
        ..Limits::default()
    };
    let task = task_with_field_selector(&nested(":not(", "a", ")", 10_000), "css");

    let errors = on_small_stack(move || errors_with_limits(&task, &limits));

    assert_eq!(
        errors,
        [(
            "fields[0].selector".to_owned(),
            "invalid CSS selector: too many nested blocks".to_owned()
        )]
    );
}

#[test]
fn raised_limits_accept_what_the_defaults_refuse() {
    let task = task_with(|task| {
        task["fields"][0]["selector"] = json!(nested(":not(", "a", ")", 40));
        task["fields"][0]["transform"] = json!(vec!["trim"; 30]);
        task["rate_limit"] =
            json!({"delay_ms": 120_000, "jitter_ms": 90_000, "requests_per_minute": 100_000});
        task["browser"] =
            json!({"wait_conditions": vec![json!({"type": "timeout", "timeout_ms": 100_000}); 12]});
    });
    let raised = Limits {
        max_selector_depth: 64,
        max_transforms: 30,
        max_delay_ms: 120_000,
        max_jitter_ms: 90_000,
        max_requests_per_minute: 100_000,
        max_wait_conditions: 12,
        max_total_wait_ms: 1_200_000,
        ..Limits::default()
    };

    assert!(parse_task_input(&task, &Limits::default()).is_err());
    let input = parse_task_input(&task, &raised).unwrap();
    assert_eq!(input.spec.limits(), &raised);
}

#[test]
fn every_bound_is_refused_at_its_path_naming_the_limit() {
    let deep = nested(":not(", "a", ")", 33);
    let task = task_with(|task| {
        task["item_selector"] = json!(nested("(", "//div", ")", 33));
        task["item_selector_type"] = json!("xpath");
        task["fields"] = json!([
            {"name": "title", "selector": "h1", "transform": vec!["trim"; 21]},
            {"name": "price", "selector": ".price", "transform": [
                {"regex": "a".repeat(2049)},
                {"regex": "(a{1000}){1000}"}
            ]}
        ]);
        task["pagination"] = json!({"next_selector": deep, "stop_selector": "b".repeat(4097)});
        task["rate_limit"] =
            json!({"delay_ms": 60_001, "jitter_ms": 60_001, "requests_per_minute": 60_001});
        task["mode"] = json!("browser");
        task["browser"] = json!({"wait_conditions": [
            {"type": "element", "selector": deep, "timeout_ms": 70_000},
            {"type": "network_idle", "timeout_ms": 70_000}
        ]});
    });

    let errors = errors_of(&task);

    let expected = [
        ("item_selector", "nesting depth 33 exceeds the limit of 32 (limits.max_selector_depth)"),
        ("fields[0].transform", "21 steps exceed the limit of 20 (limits.max_transforms)"),
        ("fields[1].transform[0].regex", "pattern of 2049 bytes exceeds the limit of 2048 (limits.max_regex_bytes)"),
        ("fields[1].transform[1].regex", "the compiled pattern would exceed 4194304 bytes (counted repetitions such as {1000} multiply its size)"),
        ("pagination.next_selector", "nesting depth 33 exceeds the limit of 32 (limits.max_selector_depth)"),
        ("pagination.stop_selector", "selector of 4097 bytes exceeds the limit of 4096 (limits.max_selector_bytes)"),
        ("rate_limit.requests_per_minute", "60001 exceeds the limit of 60000 (limits.max_requests_per_minute)"),
        ("rate_limit.delay_ms", "60001 exceeds the limit of 60000 (limits.max_delay_ms)"),
        ("rate_limit.jitter_ms", "60001 exceeds the limit of 60000 (limits.max_jitter_ms)"),
        ("browser.wait_conditions[0].selector", "nesting depth 33 exceeds the limit of 32 (limits.max_selector_depth)"),
        ("browser.wait_conditions", "the timeouts add up to 140000 ms, more than the limit of 120000 ms (limits.max_total_wait_ms)"),
    ]
    .map(|(path, message)| (path.to_owned(), message.to_owned()));
    assert_eq!(errors, expected);
}

#[test]
fn more_wait_conditions_than_allowed_are_refused_as_a_whole() {
    let task = task_with(|task| {
        task["mode"] = json!("browser");
        task["browser"] =
            json!({"wait_conditions": vec![json!({"type": "timeout", "timeout_ms": 1}); 100_000]});
    });

    assert_eq!(
        errors_of(&task),
        [(
            "browser.wait_conditions".to_owned(),
            "100000 conditions exceed the limit of 10 (limits.max_wait_conditions)".to_owned()
        )]
    );
}

#[test]
fn a_million_transforms_are_refused_without_compiling_one() {
    let task = task_with(|task| {
        task["fields"][0]["transform"] =
            json!(vec![json!({"regex": "(a{1000}){1000}"}); 1_000_000]);
    });

    assert_eq!(
        errors_of(&task),
        [(
            "fields[0].transform".to_owned(),
            "1000000 steps exceed the limit of 20 (limits.max_transforms)".to_owned()
        )]
    );
}

#[test]
fn ordinary_patterns_with_unicode_classes_compile_within_the_size_limit() {
    for pattern in [
        r"\w{1,50}",
        r"(\d+[.,]\d{2})",
        r"[\p{L}\s]+",
        r"[\p{L}\s]{1,30}",
        r"(?i)^\s*(?:price|prix|preis)\s*:?\s*([\d.,]+)",
        r"\b[A-Z]{2,3}-\d{4,8}\b",
    ] {
        assert!(
            build_regex(pattern, &Limits::default()).is_ok(),
            "{pattern}"
        );
    }
}

#[test]
fn the_compatibility_shapes_meet_the_same_limits() {
    let api = json!({
        "name": "Deep",
        "task_type": "simple_scraping",
        "config": {
            "urls": ["https://a.example/"],
            "selectors": {"title": nested(":not(", "a", ")", 40)},
            "delay": 3600
        }
    });
    let worker = json!({
        "url": "https://news.example/",
        "fields": [{"name": "t", "selector": nested("(", "//a", ")", 2000)}]
    });

    let (api_errors, worker_errors) = on_small_stack(move || (errors_of(&api), errors_of(&worker)));

    assert_eq!(
        api_errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        ["config.selectors.title", "config.delay"],
        "{api_errors:?}"
    );
    assert!(api_errors[0].1.contains("limits.max_selector_depth"));
    assert!(api_errors[1].1.contains("limits.max_delay_ms"));
    assert_eq!(worker_errors[0].0, "fields[0].selector");
    assert!(worker_errors[0].1.contains("nesting depth 2000"));
}

#[test]
fn a_json_body_nested_100000_deep_is_an_error_not_a_crash() {
    let body = format!(
        "{{\"name\": \"x\", \"start_urls\": [], \"fields\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );

    let parsed = on_small_stack(move || {
        serde_json::from_str::<Value>(&body).map_err(|error| error.to_string())
    });

    let error = parsed.unwrap_err();
    assert!(error.starts_with("recursion limit exceeded"), "{error}");
}

#[test]
fn a_default_value_nested_as_deep_as_json_allows_is_accepted() {
    let default: Value = serde_json::from_str(&nested("[", "1", "]", 120)).unwrap();
    let task = task_with(|task| {
        task["fields"][0]["required"] = json!(false);
        task["fields"][0]["default"] = default;
    });

    on_small_stack(move || parse_ok(&task).spec.spec().fields.len());
}

#[test]
fn an_xpath_with_a_namespace_prefix_is_refused_at_its_path_naming_the_name() {
    // sxd-xpath accepts `//x:a` and then panics when it evaluates it: there is no
    // namespace to bind the prefix to.
    for (selector, name) in [
        ("//x:a", "x:a"),
        ("h2:n", "h2:n"),
        ("//a/@xml:lang", "xml:lang"),
        ("//svg:*", "svg:*"),
        ("descendant::x:a[@title='x:y']", "x:a"),
    ] {
        let task = task_with_field_selector(selector, "xpath");

        assert_eq!(
            errors_of(&task),
            [(
                "fields[0].selector".to_owned(),
                format!("namespace prefixes are not supported ({name})")
            )],
            "{selector}"
        );
    }
}

#[test]
fn axes_attributes_functions_and_colons_in_strings_are_not_namespace_prefixes() {
    for selector in [
        "child::div/descendant-or-self::a/attribute::href",
        "//a[@href][name()='a']",
        "//a[contains(@href, 'https://') or @title=\"x:y\"]",
    ] {
        parse_ok(&task_with_field_selector(selector, "xpath"));
    }
}

#[test]
fn the_default_extraction_work_budget_is_ten_million_steps() {
    assert_eq!(Limits::default().max_extraction_steps, 10_000_000);
}
