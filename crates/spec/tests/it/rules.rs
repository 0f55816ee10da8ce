//! One test per family of validation rules, each asserting the exact path and message.

use selextract_spec::Limits;
use serde_json::json;

use crate::{errors_of, errors_with_limits, parse_ok, paths_of, single_error, task_with};

fn error(path: &str, message: &str) -> (String, String) {
    (path.to_owned(), message.to_owned())
}

#[test]
fn version_must_be_1_and_name_must_be_short_and_not_blank() {
    assert_eq!(
        single_error(&task_with(|t| t["version"] = json!(2))),
        error("version", "unsupported version 2 (only 1 exists)")
    );
    assert_eq!(
        single_error(&task_with(|t| t["name"] = json!("   "))),
        error("name", "must not be empty")
    );
    assert_eq!(
        single_error(&task_with(|t| t["name"] = json!("x".repeat(201)))),
        error("name", "must be at most 200 characters")
    );
    // Characters, not bytes: 200 multi-byte characters are fine.
    parse_ok(&task_with(|t| t["name"] = json!("é".repeat(200))));
}

#[test]
fn start_urls_must_be_absolute_http_urls_with_a_host() {
    let task = task_with(|t| {
        t["start_urls"] = json!([
            "https://ok.example/a",
            "http://ok.example:8080/b?q=1",
            "/relative/path",
            "ftp://files.example/",
            "mailto:someone@example.com",
            "https://",
            "file:///etc/passwd",
            "example.com"
        ]);
    });
    let expected: Vec<_> = (2..8)
        .map(|i| error(&format!("start_urls[{i}]"), "not an absolute http(s) URL"))
        .collect();
    assert_eq!(errors_of(&task), expected);
}

#[test]
fn start_urls_must_number_between_one_and_the_limit() {
    assert_eq!(
        single_error(&task_with(|t| t["start_urls"] = json!([]))),
        error("start_urls", "must contain at least 1 URL")
    );
    let limits = Limits {
        max_start_urls: 2,
        ..Limits::default()
    };
    let three = task_with(|t| {
        t["start_urls"] = json!([
            "https://a.example/",
            "https://b.example/",
            "https://c.example/"
        ])
    });
    assert_eq!(
        errors_with_limits(&three, &limits),
        [error("start_urls", "at most 2 URLs allowed (got 3)")]
    );
}

#[test]
fn fields_must_number_between_one_and_the_limit_with_unique_non_empty_names() {
    assert_eq!(
        single_error(&task_with(|t| t["fields"] = json!([]))),
        error("fields", "must contain at least 1 field")
    );
    let limits = Limits {
        max_fields: 1,
        ..Limits::default()
    };
    let two = task_with(|t| {
        t["fields"] = json!([{"name": "a", "selector": "a"}, {"name": "b", "selector": "b"}])
    });
    assert_eq!(
        errors_with_limits(&two, &limits),
        [error("fields", "at most 1 fields allowed (got 2)")]
    );

    let task = task_with(|t| {
        t["fields"] = json!([
            {"name": "title", "selector": "h1"},
            {"name": "", "selector": "h2"},
            {"name": "title", "selector": "h3"},
            {"name": "body", "selector": "  "}
        ]);
    });
    assert_eq!(
        errors_of(&task),
        [
            error("fields[1].name", "must not be empty"),
            error("fields[2].name", "duplicate field name \"title\""),
            error("fields[3].selector", "must not be empty"),
        ]
    );
}

#[test]
fn invalid_css_selectors_are_caught_with_their_path() {
    let task = task_with(|t| {
        t["fields"] =
            json!([{"name": "a", "selector": "div["}, {"name": "b", "selector": "a::nonsense"}])
    });
    let errors = errors_of(&task);
    assert_eq!(
        errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        ["fields[0].selector", "fields[1].selector"]
    );
    for (_, message) in &errors {
        assert!(message.starts_with("invalid CSS selector: "), "{message}");
        assert!(!message.contains('\n'), "one line per error: {message}");
    }
}

#[test]
fn an_xpath_written_in_a_css_field_gets_a_hint() {
    let (path, message) = single_error(&task_with(|t| t["fields"][0]["selector"] = json!("//h1")));
    assert_eq!(path, "fields[0].selector");
    assert!(
        message.starts_with("invalid CSS selector: ")
            && message.contains("set the selector type to \"xpath\""),
        "{message}"
    );
}

#[test]
fn invalid_xpath_expressions_are_caught_with_their_path() {
    let task = task_with(|t| {
        t["fields"] = json!([
            {"name": "a", "selector": "//div[", "selector_type": "xpath"},
            {"name": "b", "selector": "//div[]", "selector_type": "xpath"},
            {"name": "c", "selector": "./span/text()", "selector_type": "xpath"}
        ]);
    });
    let errors = errors_of(&task);
    assert_eq!(
        errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        ["fields[0].selector", "fields[1].selector"]
    );
    assert!(
        errors
            .iter()
            .all(|(_, message)| message.starts_with("invalid XPath expression: ")),
        "{errors:?}"
    );
    assert_eq!(errors[1].1, "invalid XPath expression: empty predicate");
}

#[test]
fn item_next_and_stop_selectors_are_compiled_as_css_or_xpath_by_their_type() {
    let task = task_with(|t| {
        t["item_selector"] = json!("(//div");
        t["pagination"] =
            json!({"next_selector": "a[rel=", "stop_selector": "//p[", "max_pages": 5});
    });
    let errors = errors_of(&task);
    assert_eq!(
        errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        [
            "item_selector",
            "pagination.next_selector",
            "pagination.stop_selector"
        ]
    );
    assert!(
        errors[0].1.starts_with("invalid XPath expression"),
        "{errors:?}"
    );
    assert!(
        errors[1].1.starts_with("invalid CSS selector"),
        "{errors:?}"
    );
    assert!(
        errors[2].1.starts_with("invalid XPath expression"),
        "{errors:?}"
    );

    // An explicit type overrides the guess from the first characters.
    let explicit = task_with(|t| {
        t["item_selector"] = json!("#main .item");
        t["item_selector_type"] = json!("xpath");
        t["pagination"] = json!({"next_selector": "//a[@rel='next']", "next_selector_type": "css"});
    });
    assert_eq!(
        paths_of(&explicit),
        ["item_selector", "pagination.next_selector"]
    );
    parse_ok(&task_with(|t| {
        t["item_selector"] = json!("//div[@class='item']");
        t["pagination"] =
            json!({"next_selector": "//a[@rel='next']", "stop_selector": ".last-page"});
    }));
}

#[test]
fn attribute_fields_need_an_attribute_unless_an_xpath_selects_one() {
    assert_eq!(
        single_error(&task_with(|t| t["fields"][0]["type"] = json!("attribute"))),
        error("fields[0].attribute", "required when type is \"attribute\"")
    );
    parse_ok(&task_with(|t| {
        t["fields"][0] = json!({"name": "rating", "selector": "//span/@data-rating", "selector_type": "xpath", "type": "attribute"});
    }));
    parse_ok(&task_with(|t| {
        t["fields"][0] =
            json!({"name": "sku", "selector": "div", "type": "attribute", "attribute": "data-sku"});
    }));
    assert_eq!(
        single_error(&task_with(|t| t["fields"][0]["attribute"] = json!(""))),
        error("fields[0].attribute", "must not be empty")
    );
}

#[test]
fn a_default_is_only_allowed_on_optional_fields() {
    assert_eq!(
        single_error(&task_with(|t| t["fields"][0]["default"] = json!("n/a"))),
        error(
            "fields[0].default",
            "only allowed when \"required\" is false"
        )
    );
    parse_ok(&task_with(|t| {
        t["fields"][0]["default"] = json!("n/a");
        t["fields"][0]["required"] = json!(false);
    }));
    // `null` means no default.
    parse_ok(&task_with(|t| t["fields"][0]["default"] = json!(null)));
}

#[test]
fn transform_steps_must_be_usable() {
    let task = task_with(|t| {
        t["fields"] = json!([
            {"name": "a", "selector": "a", "transform": ["trim", {"regex": "[0-9"}]},
            {"name": "b", "selector": "b", "transform": [{"date": " "}, {"replace": ["", "x"]}, {"regex": "(\\d+)"}]}
        ]);
    });
    assert_eq!(
        errors_of(&task),
        [
            error(
                "fields[0].transform[1].regex",
                "invalid regular expression: unclosed character class"
            ),
            error("fields[1].transform[0].date", "must not be empty"),
            error("fields[1].transform[1].replace[0]", "must not be empty"),
        ]
    );
}

#[test]
fn pagination_max_pages_is_bounded_by_the_limit_and_scroll_needs_a_browser() {
    assert_eq!(
        single_error(&task_with(|t| t["pagination"] = json!({"max_pages": 0}))),
        error("pagination.max_pages", "must be between 1 and 10000")
    );
    assert_eq!(
        paths_of(&task_with(
            |t| t["pagination"] = json!({"max_pages": 10_001})
        )),
        ["pagination.max_pages"]
    );
    parse_ok(&task_with(|t| {
        t["pagination"] = json!({"max_pages": 10_000})
    }));
    let limits = Limits {
        max_pages_per_start_url: 20,
        ..Limits::default()
    };
    assert_eq!(
        errors_with_limits(
            &task_with(|t| t["pagination"] = json!({"max_pages": 21})),
            &limits
        ),
        [error("pagination.max_pages", "must be between 1 and 20")]
    );

    assert_eq!(
        single_error(&task_with(|t| t["pagination"] = json!({"scroll": true}))),
        error(
            "pagination.scroll",
            "only allowed when mode is \"browser\" or \"auto\""
        )
    );
    for mode in ["browser", "auto"] {
        parse_ok(&task_with(|t| {
            t["mode"] = json!(mode);
            t["pagination"] = json!({"scroll": true});
        }));
    }
}

#[test]
fn headers_are_limited_in_number_and_must_be_valid_http() {
    let task = task_with(|t| {
        t["headers"] = json!({
            "Accept-Language": "en",
            "Bad Header": "x",
            "X-Injected": "a\r\nEvil: yes",
            "X-Tab": "a\tb"
        });
    });
    assert_eq!(
        errors_of(&task),
        [
            error(
                "headers.Bad Header",
                "invalid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
            error(
                "headers.X-Injected",
                "header value must not contain CR, LF or other control characters"
            ),
        ]
    );
    let limits = Limits {
        max_headers: 1,
        ..Limits::default()
    };
    let two = task_with(|t| t["headers"] = json!({"A": "1", "B": "2"}));
    assert_eq!(
        errors_with_limits(&two, &limits),
        [error("headers", "at most 1 headers allowed (got 2)")]
    );
}

#[test]
fn cookies_need_names_and_values_that_cannot_smuggle_other_cookies() {
    let task = task_with(|t| {
        t["cookies"] = json!({"": "x", "session": "abc", "tracking": "1; admin=true", "a b": "1"})
    });
    assert_eq!(
        errors_of(&task),
        [
            error("cookies", "cookie names must not be empty"),
            error(
                "cookies.a b",
                "invalid cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ),
            error(
                "cookies.tracking",
                "cookie value must not contain ';' or control characters"
            ),
        ]
    );
}

#[test]
fn timeouts_and_retries_stay_within_their_ranges() {
    let task = task_with(|t| {
        t["timeout_ms"] = json!(99);
        t["max_retries"] = json!(11);
        t["retry_delay_ms"] = json!(60_001);
    });
    assert_eq!(
        errors_of(&task),
        [
            error("timeout_ms", "must be between 100 and 300000"),
            error("max_retries", "must be at most 10"),
            error("retry_delay_ms", "must be at most 60000"),
        ]
    );
    assert_eq!(
        paths_of(&task_with(|t| t["timeout_ms"] = json!(300_001))),
        ["timeout_ms"]
    );
    parse_ok(&task_with(|t| {
        t["timeout_ms"] = json!(100);
        t["max_retries"] = json!(10);
        t["retry_delay_ms"] = json!(60_000);
    }));
    parse_ok(&task_with(|t| t["timeout_ms"] = json!(300_000)));
}

#[test]
fn rate_limits_need_at_least_one_request() {
    let task = task_with(|t| {
        t["rate_limit"] = json!({"concurrency_per_domain": 0, "requests_per_minute": 0})
    });
    assert_eq!(
        errors_of(&task),
        [
            error(
                "rate_limit.concurrency_per_domain",
                "must be between 1 and 64"
            ),
            error("rate_limit.requests_per_minute", "must be at least 1"),
        ]
    );
    assert_eq!(
        paths_of(&task_with(
            |t| t["rate_limit"] = json!({"concurrency_per_domain": 65})
        )),
        ["rate_limit.concurrency_per_domain"]
    );
    parse_ok(&task_with(|t| {
        t["rate_limit"] = json!({"concurrency_per_domain": 64, "requests_per_minute": 1})
    }));
}

#[test]
fn browser_viewport_and_wait_conditions_are_checked() {
    let task = task_with(|t| {
        t["mode"] = json!("browser");
        t["browser"] = json!({
            "viewport_width": 99,
            "viewport_height": 10_001,
            "user_agent": "Bot\r\nX-Evil: 1",
            "wait_conditions": [
                {"type": "element", "selector": "#app", "timeout_ms": 120_000},
                {"type": "element", "selector": "//div[@id='app']"},
                {"type": "timeout", "timeout_ms": 120_001},
                {"type": "network_idle", "timeout_ms": 500_000}
            ]
        });
    });
    let errors = errors_of(&task);
    assert_eq!(
        errors
            .iter()
            .map(|(path, _)| path.as_str())
            .collect::<Vec<_>>(),
        [
            "browser.viewport_width",
            "browser.viewport_height",
            "browser.user_agent",
            "browser.wait_conditions[1].selector",
            "browser.wait_conditions[2].timeout_ms",
            "browser.wait_conditions[3].timeout_ms",
            "browser.wait_conditions",
        ]
    );
    assert_eq!(errors[0].1, "must be between 100 and 10000");
    // Element waits run `querySelector`, so even an XPath-looking selector is CSS here.
    assert!(
        errors[3].1.starts_with("invalid CSS selector"),
        "{errors:?}"
    );
    assert_eq!(errors[4].1, "must be at most 120000");
}

#[test]
fn schedules_need_a_cron_of_five_or_six_fields_and_sane_change_settings() {
    let task = task_with(|t| {
        t["schedule"] =
            json!({"cron": "0 * * *", "change_threshold": 1.5, "key_field": "sku", "timezone": ""});
    });
    assert_eq!(
        errors_of(&task),
        [
            error(
                "schedule.cron",
                "the cron expression \"0 * * *\" has 4 fields; expected 5 \
                 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
            ),
            error(
                "schedule.timezone",
                "unknown time zone \"\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"
            ),
            error("schedule.key_field", "no field named \"sku\""),
            error("schedule.change_threshold", "must be between 0 and 1"),
        ]
    );
    assert_eq!(
        paths_of(&task_with(
            |t| t["schedule"] = json!({"cron": "0 0 * * * * 2030"})
        )),
        ["schedule.cron"]
    );
    assert_eq!(
        paths_of(&task_with(
            |t| t["schedule"] = json!({"cron": "* * * * *", "change_threshold": -0.1})
        )),
        ["schedule.change_threshold"]
    );
    parse_ok(&task_with(
        |t| {
            t["schedule"] =
                json!({"cron": "0 */6 * * *", "change_threshold": 0.0, "key_field": "title"})
        },
    ));
    parse_ok(&task_with(|t| {
        t["schedule"] = json!({"cron": "30 0 */6 * * *", "change_threshold": 1.0})
    }));
}

#[test]
fn notify_targets_must_be_an_http_url_and_an_email_address() {
    let task = task_with(|t| {
        t["notify"] = json!({"webhook_url": "ftp://hooks.example/", "email": "ops@@example.com"})
    });
    assert_eq!(
        errors_of(&task),
        [
            error("notify.webhook_url", "not an absolute http(s) URL"),
            error("notify.email", "not an e-mail address")
        ]
    );
    for email in [
        "ops.example.com",
        "@example.com",
        "ops@",
        "ops team@example.com",
    ] {
        assert_eq!(
            paths_of(&task_with(|t| t["notify"] = json!({"email": email}))),
            ["notify.email"],
            "{email}"
        );
    }
    parse_ok(&task_with(
        |t| {
            t["notify"] =
                json!({"webhook_url": "https://hooks.example/x", "email": "ops@example.com"})
        },
    ));
}
