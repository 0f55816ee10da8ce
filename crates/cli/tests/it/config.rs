//! Configuration: defaults → selextract.toml → SELEXTRACT__… environment, unknown keys
//! rejected by name, secrets masked by `config print`.

use std::process::Command;

fn config_print(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let mut cmd = Command::new(crate::support::binary());
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RESULTS_URL")
        .env_remove("REDIS_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(args)
        .args(["config", "print"])
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn environment_overrides_the_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("selextract.toml"),
        "[worker]\nconcurrency = 3\nlease_seconds = 40\n",
    )
    .expect("write");
    let (code, out, err) = config_print(
        dir.path(),
        &[("SELEXTRACT__WORKER__LEASE_SECONDS", "7")],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let printed: toml::Table = out.parse().expect("prints TOML");
    assert_eq!(
        printed["worker"]["concurrency"].as_integer(),
        Some(3),
        "from the file"
    );
    assert_eq!(
        printed["worker"]["lease_seconds"].as_integer(),
        Some(7),
        "from the environment"
    );
    assert_eq!(
        printed["worker"]["max_attempts"].as_integer(),
        Some(3),
        "the default"
    );
    assert_eq!(printed["server"]["bind"].as_str(), Some("127.0.0.1:8000"));
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("selextract.toml"),
        "[worker]\nconcurency = 3\n",
    )
    .expect("write");
    let (code, _, err) = config_print(dir.path(), &[], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("worker.concurency"), "{err}");
}

#[test]
fn an_unknown_environment_setting_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = config_print(
        dir.path(),
        &[("SELEXTRACT__FETCH__ALLOW_EVERYTHING", "true")],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("fetch.allow_everything"), "{err}");
    let (code, _, err) = config_print(
        dir.path(),
        &[("SELEXTRACT__WORKER__LEASE_SECONDS", "soon")],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("worker.lease_seconds"), "{err}");
}

#[test]
fn config_print_masks_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = config_print(
        dir.path(),
        &[
            ("SELEXTRACT__METRICS__BEARER_TOKEN", "metrics-secret-token"),
            (
                "DATABASE_URL",
                "postgres://app:db-password@127.0.0.1:5432/selextract",
            ),
            ("REDIS_URL", "redis://:redis-p@ss/word@127.0.0.1:6379/0"),
            (
                "SELEXTRACT__FETCH__PROXIES",
                "[\"http://scraper:proxy-password@127.0.0.1:3128\"]",
            ),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    for secret in [
        "metrics-secret-token",
        "db-password",
        "redis-p",
        "word@",
        "proxy-password",
    ] {
        assert!(!out.contains(secret), "{secret}: {out}");
    }
    assert!(
        out.contains("postgres://app:********@127.0.0.1:5432/selextract"),
        "{out}"
    );
    assert!(out.contains("redis://:********@127.0.0.1:6379/0"), "{out}");
    assert!(
        out.contains("http://scraper:********@127.0.0.1:3128"),
        "{out}"
    );
    assert!(out.contains("bearer_token = \"********\""), "{out}");
}

#[test]
fn config_print_keeps_every_key_and_its_unit_and_loads_back_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = config_print(
        dir.path(),
        &[
            ("SELEXTRACT__WORKER__HEARTBEAT_MS", "250"),
            ("SELEXTRACT__FETCH__HOST_MIN_INTERVAL_MS", "1500"),
            ("SELEXTRACT__SERVER__REQUEST_BODY_LIMIT_BYTES", "4096"),
            ("SELEXTRACT__METRICS__ALLOW", "[\"10.0.0.0/8\", \"::1\"]"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let printed: toml::Table = out.parse().expect("prints TOML");
    let keys = |section: &str| -> Vec<String> {
        let mut keys: Vec<String> = printed[section]
            .as_table()
            .unwrap_or_else(|| panic!("[{section}] printed: {out}"))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys("worker"),
        [
            "concurrency",
            "engine_concurrency",
            "grace_seconds",
            "heartbeat_ms",
            "lease_seconds",
            "max_attempts",
            "poll_ms"
        ]
    );
    assert_eq!(printed["worker"]["heartbeat_ms"].as_integer(), Some(250));
    assert_eq!(printed["worker"]["grace_seconds"].as_integer(), Some(30));
    for key in [
        "bind",
        "data_dir",
        "request_body_limit_bytes",
        "rate_limit_per_minute",
    ] {
        assert!(printed["server"].get(key).is_some(), "server.{key}: {out}");
    }
    assert_eq!(
        printed["server"]["request_body_limit_bytes"].as_integer(),
        Some(4096)
    );
    assert_eq!(
        keys("compute_units"),
        ["browser_page", "http_page", "proxy_page"]
    );
    assert_eq!(keys("metrics"), ["allow", "bearer_token"]);
    assert_eq!(
        printed["metrics"]["allow"].as_array().map(|a| a.len()),
        Some(2)
    );
    assert_eq!(printed["metrics"]["allow"][0].as_str(), Some("10.0.0.0/8"));
    assert_eq!(printed["metrics"]["allow"][1].as_str(), Some("::1"));
    assert_eq!(printed["metrics"]["bearer_token"].as_str(), Some(""));
    assert_eq!(
        keys("fetch"),
        [
            "allow_private_networks",
            "allow_robots_txt_opt_out",
            "allowed_networks",
            "connect_timeout_ms",
            "host_max_in_flight",
            "host_min_interval_ms",
            "max_body_bytes",
            "max_politeness_wait_ms",
            "max_redirects",
            "max_transfer_time_ms",
            "proxies",
            "proxy_cooldown_seconds",
            "proxy_max_failures",
            "read_timeout_ms",
            "user_agent"
        ]
    );
    assert_eq!(
        printed["fetch"]["connect_timeout_ms"].as_integer(),
        Some(10_000)
    );
    assert_eq!(
        printed["fetch"]["read_timeout_ms"].as_integer(),
        Some(30_000)
    );
    assert_eq!(
        printed["fetch"]["max_politeness_wait_ms"].as_integer(),
        Some(600_000)
    );
    assert_eq!(
        printed["fetch"]["host_min_interval_ms"].as_integer(),
        Some(1_500),
        "from the environment"
    );
    assert_eq!(
        printed["browser"]["recycle_after_minutes"].as_integer(),
        Some(30)
    );
    assert_eq!(printed["browser"]["memory_cap_mb"].as_integer(), Some(1024));
    assert_eq!(
        printed["browser"]["launch_timeout_seconds"].as_integer(),
        Some(20)
    );
    assert!(
        printed["database"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("sqlite://"))
    );

    // What was printed is a configuration file that loads to the same configuration.
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::write(copy.path().join("selextract.toml"), &out).expect("write");
    let (code, again, err) = config_print(copy.path(), &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, out);
}

#[test]
fn a_wrong_key_or_value_in_any_section_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, value, key) in [
        ("SELEXTRACT__SERVER__BND", "127.0.0.1:1", "server.bnd"),
        (
            "SELEXTRACT__SERVER__REQUEST_BODY_LIMIT",
            "1",
            "server.request_body_limit",
        ),
        ("SELEXTRACT__SERVER__METRICS", "{}", "server.metrics"),
        ("SELEXTRACT__WORKER__LEASE", "1", "worker.lease"),
        ("SELEXTRACT__WORKER__WORKER_ID", "me", "worker.worker_id"),
        (
            "SELEXTRACT__WORKER__HEARTBEAT_MS",
            "-1",
            "worker.heartbeat_ms",
        ),
        (
            "SELEXTRACT__WORKER__GRACE_SECONDS",
            "1.5",
            "worker.grace_seconds",
        ),
        (
            "SELEXTRACT__COMPUTE_UNITS__HTTP_PAGES",
            "1",
            "compute_units.http_pages",
        ),
        (
            "SELEXTRACT__COMPUTE_UNITS__HTTP_PAGE",
            "-1",
            "compute_units.http_page",
        ),
        ("SELEXTRACT__METRICS__ALOW", "[]", "metrics.alow"),
        (
            "SELEXTRACT__METRICS__ALLOW",
            "[\"localhost\"]",
            "metrics.allow",
        ),
        (
            "SELEXTRACT__METRICS__BEARER_TOKEN",
            "[]",
            "metrics.bearer_token",
        ),
        ("SELEXTRACT__DATABASE__USER", "app", "database.user"),
        (
            "SELEXTRACT__WORKER__LEASE_SECONDS",
            "0",
            "worker.lease_seconds",
        ),
    ] {
        let (code, _, err) = config_print(dir.path(), &[(name, value)], &[]);
        assert_eq!(code, 1, "{name}={value}");
        assert!(err.contains(&format!("`{key}`")), "{name}={value}: {err}");
    }
}

#[test]
fn a_missing_config_file_named_on_the_command_line_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = config_print(dir.path(), &[], &["--config", "nope.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("nope.toml"), "{err}");
}

fn postgres_admin_url() -> String {
    std::env::var("SELEXTRACT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs (this test needs PostgreSQL's client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `serve` at debug log level on PostgreSQL and Redis URLs with passwords and with a metrics
/// token: whatever it writes while starting, serving (the rate limiter fails to authenticate
/// to Redis, which has no password, and says so) and shutting down holds none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_writes_no_secret_to_its_logs_while_starting_serving_and_stopping() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;

    const DATABASE_PASSWORD: &str = "db-pass-3d9e";
    const REDIS_PASSWORD: &str = "redis-pass-c41a";
    const TOKEN: &str = "metrics-token-88b0";

    let admin_url = postgres_admin_url();
    let db_name = format!("sx_secrets_{}", std::process::id());
    psql(&admin_url, &format!("DROP DATABASE IF EXISTS {db_name}"));
    psql(&admin_url, &format!("CREATE DATABASE {db_name}"));
    let mut db_url = url::Url::parse(&admin_url).expect("postgres URL");
    db_url.set_path(&format!("/{db_name}"));
    // The test server trusts 127.0.0.1, so the password is carried but never checked.
    db_url
        .set_password(Some(DATABASE_PASSWORD))
        .expect("a URL with a host takes a password");

    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(crate::support::binary())
        .current_dir(data.path())
        .env("RUST_LOG", "debug")
        .env("DATABASE_URL", db_url.as_str())
        .env(
            "REDIS_URL",
            format!("redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"),
        )
        .env("SELEXTRACT__METRICS__BEARER_TOKEN", TOKEN)
        .env_remove("RESULTS_URL")
        .args(["--data-dir", data.path().to_str().expect("utf-8 path")])
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let mut printed = String::new();
    let mut base = None;
    let mut key = None;
    for line in stdout.by_ref().map_while(Result::ok) {
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = Some(rest.trim().to_owned());
        }
        if line.trim().starts_with("sk_") {
            key = Some(line.trim().to_owned());
        }
        if base.is_some() && key.is_some() {
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("serve announced its address: {printed}"));
    let key = key.unwrap_or_else(|| panic!("serve printed the first key: {printed}"));

    let client = reqwest::Client::new();
    let tasks = client
        .get(format!("{base}/api/v1/tasks"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("request sent");
    assert_eq!(tasks.status(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("request sent");
    assert_eq!(metrics.status(), 200);

    let pid = child.id().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(term.success());
    let status = child.wait().expect("serve exits");
    assert!(status.success(), "serve exited with {status}");
    for line in stdout.map_while(Result::ok) {
        printed.push_str(&line);
        printed.push('\n');
    }
    let logs = stderr_reader.join().expect("stderr read");
    psql(&admin_url, &format!("DROP DATABASE IF EXISTS {db_name}"));

    assert!(logs.contains("DEBUG"), "debug logs were written: {logs}");
    for secret in [DATABASE_PASSWORD, REDIS_PASSWORD, TOKEN] {
        assert!(!logs.contains(secret), "the logs show {secret}: {logs}");
        assert!(
            !printed.contains(secret),
            "stdout shows {secret}: {printed}"
        );
    }
}

#[test]
fn a_malformed_proxy_given_to_scrape_is_reported_with_its_password_masked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(crate::support::binary())
        .current_dir(dir.path())
        .args([
            "scrape",
            "--url",
            "http://127.0.0.1:9/",
            "--field",
            "title=h1",
            "--proxy",
            "http://scraper:proxy-pw#1@127.0.0.1:99999",
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a URL"), "{err}");
    assert!(
        err.contains("http://scraper:********@127.0.0.1:99999"),
        "{err}"
    );
    assert!(!err.contains("proxy-pw"), "{err}");
}

#[test]
fn a_settings_file_that_is_not_toml_is_an_error_naming_the_line_without_quoting_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("selextract.toml"),
        "[worker]\nconcurrency = 2\n\n[database]\nurl = \"postgres://app:db-password@127.0.0.1/x\n",
    )
    .expect("write");
    let (code, _, err) = config_print(dir.path(), &[], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("selextract.toml is not valid TOML: line 5"),
        "{err}"
    );
    assert!(!err.contains("db-password"), "{err}");
}

#[test]
fn oidc_providers_print_masked_and_a_bad_table_stops_the_start_naming_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("selextract.toml"),
        "[server]\npublic_url = \"https://scrape.example.com\"\n\
         [auth.oidc.google]\nclient_id = \"1234.apps\"\nclient_secret = \"oidc-client-secret-77\"\n",
    )
    .expect("write");
    let (code, out, err) = config_print(dir.path(), &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("oidc-client-secret-77"), "{out}");
    let printed: toml::Table = out.parse().expect("prints TOML");
    let google = &printed["auth"]["oidc"]["google"];
    assert_eq!(google["client_id"].as_str(), Some("1234.apps"));
    assert_eq!(google["client_secret"].as_str(), Some("********"));

    for (env, key) in [
        (
            [("SELEXTRACT__AUTH__OIDC__CORP__CLIENT_ID", "x")],
            "auth.oidc.corp.issuer",
        ),
        (
            [(
                "SELEXTRACT__AUTH__OIDC__GOOGLE__REDIRECT_URI",
                "https://x.example/callback",
            )],
            "auth.oidc.google.redirect_uri",
        ),
    ] {
        let (code, _, err) = config_print(dir.path(), &env, &[]);
        assert_ne!(code, 0);
        assert!(err.contains(key), "{key}: {err}");
        assert!(!err.contains("oidc-client-secret-77"), "{err}");
    }
}
