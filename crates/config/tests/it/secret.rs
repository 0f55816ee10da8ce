//! Secrets in `Debug` and `Serialize`, and URL masking on hostile URLs.

use selextract_config::{ExposeSecret, MASK, SecretString, SecretUrl, mask_url};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Section {
    url: SecretUrl,
    #[serde(with = "selextract_config::optional_secret", default)]
    token: Option<SecretString>,
}

#[test]
fn a_url_password_is_masked_in_debug_and_serialize_but_exposed_on_request() {
    let url = SecretUrl::new("postgres://app:db-password@127.0.0.1:5432/selextract");
    let debug = format!("{url:?} {url:#?}");
    assert!(!debug.contains("db-password"), "{debug}");
    assert!(
        debug.contains("postgres://app:********@127.0.0.1:5432/selextract"),
        "{debug}"
    );
    let json = serde_json::to_string(&url).expect("serializes");
    assert_eq!(
        json,
        "\"postgres://app:********@127.0.0.1:5432/selextract\""
    );
    assert_eq!(
        url.expose_secret(),
        "postgres://app:db-password@127.0.0.1:5432/selextract"
    );
}

#[test]
fn passwords_the_url_parser_would_misread_are_masked_too() {
    let cases = [
        (
            "redis://:hunter2@127.0.0.1:6379/0",
            "redis://:********@127.0.0.1:6379/0",
        ),
        ("postgres://u:pa/ss@db/x", "postgres://u:********@db/x"),
        ("postgres://u:pa#ss@db/x", "postgres://u:********@db/x"),
        ("postgres://u:pa?ss@db/x", "postgres://u:********@db/x"),
        ("postgres://u:p@ss@w@rd@db/x", "postgres://u:********@db/x"),
        ("postgres://u:p:w:d@db/x", "postgres://u:********@db/x"),
        (
            "postgres://u:5432/pw@db:99999/x",
            "postgres://u:********@db:99999/x",
        ),
        (
            "https://ghp_TOKEN@proxy:3128",
            "https://********@proxy:3128",
        ),
        ("postgres://u:@db/x", "postgres://u:********@db/x"),
    ];
    for (raw, expected) in cases {
        assert_eq!(mask_url(raw), expected, "{raw}");
    }
}

#[test]
fn secret_query_parameters_are_masked_and_others_kept() {
    let masked = mask_url(
        "postgres://db/x?user=app&password=pw1&sslmode=require&sslpassword=pw2&p%61ssword=pw3#f",
    );
    assert_eq!(
        masked,
        "postgres://db/x?user=app&password=********&sslmode=require&sslpassword=********\
         &p%61ssword=********#f"
    );
    let masked = mask_url("redis://cache/0?AUTH_TOKEN=tok&Api-Key=k");
    assert!(
        !masked.contains("tok") && !masked.contains("=k"),
        "{masked}"
    );
}

#[test]
fn urls_without_secrets_are_shown_unchanged() {
    for raw in [
        "sqlite://./data/selextract.db",
        "sqlite::memory:",
        "/var/lib/selextract/selextract.db",
        "postgres://127.0.0.1:5432/selextract?sslmode=disable",
        "redis://127.0.0.1:6379/0",
        "",
    ] {
        assert_eq!(mask_url(raw), raw);
    }
}

#[test]
fn an_at_sign_outside_a_url_hides_the_whole_value() {
    assert_eq!(mask_url("user:password@host"), MASK);
}

#[test]
fn a_token_is_absent_from_debug_and_serializes_as_a_mask() {
    let section: Section =
        toml::from_str("url = \"redis://:pw-in-url@cache\"\ntoken = \"the-token\"\n")
            .expect("parses");
    let debug = format!("{section:?}");
    assert!(!debug.contains("the-token"), "{debug}");
    assert!(!debug.contains("pw-in-url"), "{debug}");
    let printed = toml::to_string(&section).expect("serializes");
    assert!(!printed.contains("the-token"), "{printed}");
    assert!(printed.contains("token = \"********\""), "{printed}");
    let token = section.token.as_ref().expect("set");
    assert_eq!(token.expose_secret(), "the-token");
}

#[test]
fn an_empty_or_blank_token_means_unset_and_prints_empty() {
    for raw in ["", "   "] {
        let section: Section =
            toml::from_str(&format!("url = \"\"\ntoken = \"{raw}\"\n")).expect("parses");
        assert!(section.token.is_none(), "{raw:?}");
        assert!(section.url.is_empty());
        let printed = toml::to_string(&section).expect("serializes");
        assert!(printed.contains("token = \"\""), "{printed}");
    }
}

#[test]
fn a_token_given_as_a_number_or_boolean_is_taken_as_its_text() {
    for (value, text) in [("12345678", "12345678"), ("true", "true"), ("2.5", "2.5")] {
        let section: Section =
            toml::from_str(&format!("url = \"\"\ntoken = {value}\n")).expect("parses");
        let token = section.token.as_ref().expect("set");
        assert_eq!(token.expose_secret(), text);
    }
}

#[test]
fn a_url_given_as_a_number_is_taken_as_its_text() {
    let section: Section = toml::from_str("url = 12345\n").expect("parses");
    assert_eq!(section.url.expose_secret(), "12345");
}

#[test]
fn a_secret_of_the_wrong_shape_is_an_error_that_does_not_echo_it() {
    for text in [
        "url = [\"postgres://u:pw-in-list@db/x\"]\n",
        "url = \"\"\ntoken = { value = \"tok-in-table\" }\n",
    ] {
        // Through a parsed value, as the CLI does: a parse from text quotes the line.
        let value: toml::Value = toml::from_str(text).expect("valid TOML");
        let error = value.try_into::<Section>().expect_err(text).to_string();
        assert!(
            !error.contains("pw-in-list") && !error.contains("tok-in-table"),
            "{error}"
        );
    }
}
