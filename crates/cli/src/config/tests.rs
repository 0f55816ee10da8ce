//! The settings tree loaded from a file and the environment: no secret in the `Debug` of the
//! settings or of anything built from them, while the code that connects still gets them.

#![allow(clippy::expect_used)]

use selextract_config::ExposeSecret;

use super::{Settings, load_from};
use crate::platform;

const TOKEN: &str = "metrics-token-7f3a";
const DATABASE_PASSWORD: &str = "db-pass-91c2";
const REDIS_PASSWORD: &str = "redis-pass-5e8d";
const PROXY_PASSWORD: &str = "proxy-pass-0b4c";

/// Settings with a secret in every place one can be: the metrics token from the file, the
/// database and Redis passwords from the environment, a proxy password in a list.
fn settings_with_secrets(dir: &std::path::Path) -> Settings {
    let file = dir.join("selextract.toml");
    std::fs::write(
        &file,
        format!(
            "[metrics]\nbearer_token = \"{TOKEN}\"\n\n[fetch]\nproxies = [\"http://scraper:{PROXY_PASSWORD}@127.0.0.1:3128\"]\n\n[browser]\nenabled = false\n"
        ),
    )
    .expect("write the settings file");
    let env = [
        (
            "DATABASE_URL".to_owned(),
            format!("postgres://app:{DATABASE_PASSWORD}@127.0.0.1:5432/selextract"),
        ),
        (
            "REDIS_URL".to_owned(),
            format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"),
        ),
        (
            "SELEXTRACT__SERVER__DATA_DIR".to_owned(),
            dir.display().to_string(),
        ),
    ];
    let (settings, _) = load_from(Some(&file), &env).expect("settings load");
    settings
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [TOKEN, DATABASE_PASSWORD, REDIS_PASSWORD, PROXY_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

#[test]
fn debug_of_the_settings_shows_no_secret_and_urls_with_their_password_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_with_secrets(dir.path());
    let debug = format!("{settings:?}\n{settings:#?}");
    assert_no_secret("Debug of the settings", &debug);
    assert!(
        debug.contains("postgres://app:********@127.0.0.1:5432/selextract"),
        "{debug}"
    );
    assert!(
        debug.contains("redis://:********@127.0.0.1:6379/0"),
        "{debug}"
    );
    // The fetcher's config shows a proxy by its address only.
    assert!(debug.contains("http://127.0.0.1:3128"), "{debug}");
    // The secrets are all there for the code that uses them.
    let token = settings.metrics.bearer_token.as_ref().expect("token set");
    assert_eq!(token.expose_secret(), TOKEN);
    assert!(
        settings
            .database_url()
            .expose_secret()
            .contains(DATABASE_PASSWORD)
    );
    assert!(settings.redis.url.expose_secret().contains(REDIS_PASSWORD));
}

#[test]
fn debug_of_the_server_and_worker_configs_shows_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_with_secrets(dir.path());
    let server = platform::server_config(&settings);
    let worker = platform::worker_config(&settings);
    assert_no_secret("Debug of ServerConfig", &format!("{server:?} {server:#?}"));
    assert_no_secret("Debug of WorkerConfig", &format!("{worker:?} {worker:#?}"));
    let token = server
        .metrics
        .bearer_token
        .as_ref()
        .expect("the server gets the token");
    assert_eq!(token.expose_secret(), TOKEN);
}

#[test]
fn the_masked_toml_shows_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_with_secrets(dir.path());
    let printed = settings.to_masked_toml().expect("prints");
    assert_no_secret("config print", &printed);
    assert!(printed.contains("bearer_token = \"********\""), "{printed}");
    // A proxy prints as the operator wrote it, password masked, without a path `Url` adds.
    assert!(
        printed.contains("\"http://scraper:********@127.0.0.1:3128\""),
        "{printed}"
    );
}

#[test]
fn a_proxy_that_is_not_a_url_is_an_error_naming_the_key_and_not_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("selextract.toml");
    std::fs::write(
        &file,
        format!("[fetch]\nproxies = [\"socks5h://127.0.0.1:1080\", \"http://u:{PROXY_PASSWORD}@[::1\"]\n"),
    )
    .expect("write");
    let error = load_from(Some(&file), &[])
        .expect_err("an unparsable proxy is refused")
        .to_string();
    assert!(error.contains("`fetch.proxies`"), "{error}");
    assert!(error.contains("entry 1"), "{error}");
    assert_no_secret("the proxy error", &error);
}

#[test]
fn wiring_that_is_not_a_setting_cannot_be_set_from_the_configuration() {
    for (name, key) in [
        ("SELEXTRACT__FETCH__RESOLVER", "fetch.resolver"),
        (
            "SELEXTRACT__FETCH__ALLOWED_PRIVATE_ADDRS",
            "fetch.allowed_private_addrs",
        ),
        ("SELEXTRACT__FETCH__HOST_LIMITS", "fetch.host_limits"),
        ("SELEXTRACT__BROWSER__RUNTIME_DIR", "browser.runtime_dir"),
        ("SELEXTRACT__BROWSER__GUARD", "browser.guard"),
        ("SELEXTRACT__BROWSER__PROXIES", "browser.proxies"),
        (
            "SELEXTRACT__BROWSER__MAX_SNAPSHOT_BYTES",
            "browser.max_snapshot_bytes",
        ),
    ] {
        let env = [(name.to_owned(), "[\"127.0.0.1\"]".to_owned())];
        let error = load_from(None, &env)
            .expect_err("wiring is not a setting")
            .to_string();
        assert!(error.contains(&format!("`{key}`")), "{name}: {error}");
    }
}

#[test]
fn private_networks_allowed_in_the_file_or_on_the_command_line_lift_the_guard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = settings_with_secrets(dir.path());
    assert!(!platform::fetcher_config(&settings, false).allow_private_networks);
    assert!(platform::fetcher_config(&settings, true).allow_private_networks);
    let mut open = settings.clone();
    open.fetch.allow_private_networks = true;
    assert!(platform::fetcher_config(&open, false).allow_private_networks);
}

#[tokio::test]
async fn debug_of_the_services_and_the_application_state_shows_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = settings_with_secrets(dir.path());
    // The embedded database, so that the services start without a PostgreSQL password; the
    // Redis clients built from the URL with a password connect only on first use.
    settings.database.url = Default::default();
    let services = platform::Services::start(&settings, false)
        .await
        .expect("services start");
    let (_recorder, metrics) = selextract_server::build_metrics_recorder();
    let state = selextract_server::AppState::new(
        services.store.clone(),
        services.results.clone(),
        services.http.clone(),
        services.waker.clone(),
        platform::server_config(&settings),
        metrics,
    )
    .with_rate_limiter(platform::rate_limiter(&settings).expect("rate limiter"));
    let limiter = selextract_server::RedisRateLimiter::new(settings.redis.url.expose_secret())
        .expect("a Redis URL");
    let politeness = selextract_fetch::RedisPoliteness::new(settings.redis.url.expose_secret())
        .expect("a Redis URL");
    let text = format!(
        "{services:?}\n{services:#?}\n{state:?}\n{state:#?}\n{:?}\n{limiter:?}\n{politeness:?}\n{:?}",
        services.worker_deps(),
        services.http,
    );
    assert_no_secret("Debug of the services and the state", &text);
    assert!(
        text.contains("bearer_token"),
        "the state shows its config: {text}"
    );
    services.shutdown().await;
}

#[test]
fn a_bearer_token_that_looks_like_a_number_is_kept_as_written() {
    for token in ["12345678", "0012345678", "1.50", "true"] {
        let env = [(
            "SELEXTRACT__METRICS__BEARER_TOKEN".to_owned(),
            token.to_owned(),
        )];
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("selextract.toml");
        std::fs::write(&file, "").expect("write");
        let (settings, _) = load_from(Some(&file), &env).expect("settings load");
        let loaded = settings.metrics.bearer_token.as_ref().expect("token set");
        assert_eq!(loaded.expose_secret(), token);
    }
}

#[test]
fn migrating_on_start_is_off_by_default_and_set_by_file_or_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (defaults, _) = load_from(None, &[]).expect("defaults load");
    assert!(!defaults.database.migrate_on_start);

    let file = dir.path().join("selextract.toml");
    std::fs::write(&file, "[database]\nmigrate_on_start = true\n").expect("write");
    let (from_file, _) = load_from(Some(&file), &[]).expect("file loads");
    assert!(from_file.database.migrate_on_start);
    assert!(from_file.database.url.is_empty());

    let env = [(
        "SELEXTRACT__DATABASE__MIGRATE_ON_START".to_owned(),
        "true".to_owned(),
    )];
    let (from_env, _) = load_from(None, &env).expect("environment loads");
    assert!(from_env.database.migrate_on_start);

    std::fs::write(&file, "[database]\nmigrate_on_start = \"yes\"\n").expect("write");
    let error = load_from(Some(&file), &[]).expect_err("a string is refused");
    assert!(
        error.to_string().contains("database.migrate_on_start"),
        "{error}"
    );
}

#[test]
fn lemon_squeezy_secrets_load_from_the_environment_and_are_never_shown() {
    const API_KEY: &str = "ls-api-key-4d1e";
    const SIGNING_SECRET: &str = "ls-signing-secret-9a7c";
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("selextract.toml");
    let settings_file = "[billing]\nenabled = true\ndefault_plan = \"free\"\n\n\
         [billing.lemon_squeezy]\nenabled = true\nstore_id = 7\nvariants = { starter = 11 }\n";
    std::fs::write(&file, settings_file).expect("write the settings file");
    let env = [
        (
            "SELEXTRACT__BILLING__LEMON_SQUEEZY__API_KEY".to_owned(),
            API_KEY.to_owned(),
        ),
        (
            "SELEXTRACT__BILLING__LEMON_SQUEEZY__SIGNING_SECRET".to_owned(),
            SIGNING_SECRET.to_owned(),
        ),
    ];
    let (settings, _) = load_from(Some(&file), &env).expect("settings load");
    let provider = &settings.billing.lemon_squeezy;
    assert_eq!(
        provider.api_key.as_ref().map(|k| k.expose_secret()),
        Some(API_KEY)
    );
    assert_eq!(provider.variant_for_plan("starter"), Some(11));
    let printed = settings.to_masked_toml().expect("prints");
    let debug = format!("{settings:?}");
    for text in [&printed, &debug] {
        assert!(
            !text.contains(API_KEY) && !text.contains(SIGNING_SECRET),
            "{text}"
        );
    }
    assert!(printed.contains("[billing.lemon_squeezy]"), "{printed}");

    // Without the secrets the provider cannot be enabled; a misspelt key is named.
    let error = load_from(Some(&file), &[])
        .expect_err("no api key")
        .to_string();
    assert!(error.contains("billing.lemon_squeezy.api_key"), "{error}");
    std::fs::write(&file, format!("{settings_file}api_kee = \"x\"\n")).expect("write");
    let error = load_from(Some(&file), &env).expect_err("typo").to_string();
    assert!(
        error.contains("billing.lemon_squeezy") && error.contains("api_kee"),
        "{error}"
    );
}

#[test]
fn scheduler_settings_have_defaults_load_from_file_and_environment_and_name_bad_keys() {
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tempdir");
    let (defaults, _) = load_from(None, &[]).expect("defaults load");
    assert_eq!(defaults.scheduler.poll_interval, Duration::from_millis(250));
    assert_eq!(defaults.scheduler.misfire_grace, Duration::from_secs(60));
    assert_eq!(defaults.scheduler.max_missed_rows, 100);

    let file = dir.path().join("selextract.toml");
    std::fs::write(
        &file,
        "[scheduler]\npoll_ms = 100\nmisfire_grace_seconds = 5\nmax_missed_rows = 7\n",
    )
    .expect("write");
    let env = [(
        "SELEXTRACT__SCHEDULER__MISFIRE_GRACE_SECONDS".to_owned(),
        "9".to_owned(),
    )];
    let (loaded, _) = load_from(Some(&file), &env).expect("loads");
    assert_eq!(loaded.scheduler.poll_interval, Duration::from_millis(100));
    assert_eq!(loaded.scheduler.misfire_grace, Duration::from_secs(9));
    assert_eq!(loaded.scheduler.max_missed_rows, 7);
    // The wiring fills in what other sections lend it.
    let config = platform::scheduler_config(&loaded);
    assert_eq!(config.max_attempts, loaded.worker.max_attempts);
    assert_eq!(config.plans, loaded.billing);

    std::fs::write(&file, "[scheduler]\npoll_ms = 0\n").expect("write");
    let error = load_from(Some(&file), &[]).expect_err("zero is refused");
    assert!(error.to_string().contains("scheduler.poll_ms"), "{error}");
    std::fs::write(&file, "[scheduler]\npoll_interval = \"250ms\"\n").expect("write");
    let error = load_from(Some(&file), &[]).expect_err("unknown key");
    assert!(error.to_string().contains("scheduler"), "{error}");
}

#[test]
fn notification_settings_load_validate_and_borrow_the_fetch_guard_and_public_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("selextract.toml");
    std::fs::write(
        &file,
        "[server]\npublic_url = \"https://sx.example/\"\n\n[notifications]\ninitial_backoff_ms = 100\nmax_backoff_seconds = 2\nretry_for_seconds = 60\ndisable_after = 3\n",
    )
    .expect("write");
    let (settings, _) = load_from(Some(&file), &[]).expect("settings load");
    let notify = platform::notify_config(&settings, false);
    assert_eq!(
        notify.initial_backoff,
        std::time::Duration::from_millis(100)
    );
    assert_eq!(notify.max_backoff, std::time::Duration::from_secs(2));
    assert_eq!(notify.retry_for, std::time::Duration::from_secs(60));
    assert_eq!(notify.disable_after, 3);
    assert_eq!(notify.public_url.as_deref(), Some("https://sx.example"));
    assert!(!notify.allow_private_networks);
    assert!(platform::notify_config(&settings, true).allow_private_networks);
    let mut open = settings.clone();
    open.fetch.allow_private_networks = true;
    assert!(platform::notify_config(&open, false).allow_private_networks);

    for (toml, key) in [
        (
            "[notifications]\nconcurrency = 0\n",
            "`notifications.concurrency`",
        ),
        (
            "[notifications]\ninitial_backoff_ms = 7200000\n",
            "`notifications.initial_backoff_ms`",
        ),
        (
            "[notifications]\nallow_private_networks = true\n",
            "allow_private_networks",
        ),
    ] {
        std::fs::write(&file, toml).expect("write");
        let error = load_from(Some(&file), &[])
            .expect_err("refused")
            .to_string();
        assert!(error.contains(key), "{toml}: {error}");
    }
}
