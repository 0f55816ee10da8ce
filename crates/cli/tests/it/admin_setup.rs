//! The first start's one-time link: the operator sets the admin's password in a browser
//! (here: plain HTTP requests), then logs in with it, without the CLI.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::start_server;

const PASSWORD: &str = "the operator's first password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_a_link_that_sets_the_admin_password_once() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = start_server(data.path(), &["--no-worker"]);
    assert!(server.key.is_some(), "the first start prints a key");
    let link = server
        .setup_link
        .clone()
        .expect("the first start prints a setup link");
    let prefix = format!("{}/account/reset-password?token=", server.base);
    let token = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link} does not start with {prefix}"))
        .to_owned();
    assert_eq!(token.len(), 43, "{link}");

    let client = reqwest::Client::new();
    let page = client.get(&link).send().await.expect("GET the link");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let html = page.text().await.expect("page text");
    assert!(html.contains("admin@localhost"), "{html}");

    // Before the password is set, logging in with it fails.
    let login = |password: &'static str| {
        let client = client.clone();
        let url = format!("{}/api/v1/auth/login", server.base);
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(json!({"email": "admin@localhost", "password": password}).to_string())
                .send()
                .await
                .expect("login request")
                .status()
        }
    };
    assert_eq!(login(PASSWORD).await, StatusCode::UNAUTHORIZED);

    let form = format!(
        "token={token}&new_password={p}&confirm_password={p}",
        p = PASSWORD.replace(' ', "+").replace('\'', "%27")
    );
    let done = client
        .post(format!("{}/account/reset-password", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .expect("POST the form");
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Password set"));
    assert_eq!(login(PASSWORD).await, StatusCode::OK);

    // The link works once.
    let again = client.get(&link).send().await.expect("GET the link again");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let replay = client
        .post(format!("{}/account/reset-password", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("POST the form again");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    drop(server);

    // A later start prints neither a key nor a link.
    let later = start_server(data.path(), &["--no-worker"]);
    assert_eq!(later.key, None);
    assert_eq!(later.setup_link, None);
}

/// `selextract` with `args`, the environment `env` and no database URLs from outside.
fn run(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(crate::support::binary());
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RESULTS_URL")
        .env_remove("REDIS_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn smtp_settings_print_masked_and_a_bad_sender_stops_serve_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SELEXTRACT__SMTP__HOST", "mail.example.com"),
        ("SELEXTRACT__SMTP__PASSWORD", "smtp-secret-password"),
        ("SELEXTRACT__SMTP__TLS", "tls"),
        ("SELEXTRACT__SERVER__PUBLIC_URL", "https://sx.example/"),
    ];
    let (code, out, err) = run(dir.path(), &env, &["config", "print"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("smtp-secret-password"), "{out}");
    assert!(out.contains("[smtp]"), "{out}");
    assert!(out.contains("host = \"mail.example.com\""), "{out}");
    assert!(out.contains("tls = \"tls\""), "{out}");
    assert!(
        out.contains("public_url = \"https://sx.example/\""),
        "{out}"
    );

    let (code, _, err) = run(
        dir.path(),
        &[("SELEXTRACT__SMTP__TLS", "ssl")],
        &["config", "print"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("smtp.tls"), "{err}");

    let data = dir.path().join("data");
    let (code, _, err) = run(
        dir.path(),
        &[("SELEXTRACT__SMTP__FROM", "not an address")],
        &[
            "--data-dir",
            data.to_str().expect("utf-8"),
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--no-worker",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("smtp.from"), "{err}");
}
