//! `selextract user …` as real processes on both backends: passwords from standard input
//! stored as argon2id hashes, listing, disabling (a running server refuses the user's key,
//! and accepts it again once enabled), plan changes, and the last-admin guard.

#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use selextract_accounts::password::verify_password;
use selextract_store::testing::{Backend, TestDatabase};
use selextract_store::{Store, User, both_backends};

use crate::support::{Proc, binary, fast_env};

/// A database (the SQLite file's directory as data directory, or `DATABASE_URL` for
/// PostgreSQL) and the commands run against it.
struct Install {
    db: TestDatabase,
    data: tempfile::TempDir,
}

impl Install {
    async fn new(backend: Backend) -> Install {
        Install {
            db: TestDatabase::create(backend).await,
            data: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        fast_env(&mut cmd);
        let data_dir: PathBuf = match &self.db.sqlite_path {
            Some(path) => path
                .parent()
                .expect("the file has a directory")
                .to_path_buf(),
            None => {
                cmd.env("DATABASE_URL", &self.db.url);
                self.data.path().to_path_buf()
            }
        };
        cmd.arg("--data-dir").arg(data_dir).args(args);
        cmd
    }

    /// Runs `selextract args…` with `stdin` as its standard input.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("selextract starts");
        let mut input = child.stdin.take().expect("stdin piped");
        // The command may exit before reading everything; a broken pipe is its answer.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().expect("selextract ends")
    }

    fn run_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "selextract {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail and returns its error output.
    fn run_err(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "selextract {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    async fn store(&self) -> Store {
        self.db.connect().await.expect("the store opens")
    }

    async fn user(&self, email: &str) -> User {
        self.store()
            .await
            .find_user_by_email(email)
            .await
            .expect("lookup")
            .unwrap_or_else(|| panic!("no user {email}"))
    }

    /// `serve --no-worker` on this database, and the address it listens on.
    fn serve(&self) -> (Proc, String) {
        let mut child = self
            .command(&["serve", "--no-worker", "--bind", "127.0.0.1:0"])
            // Compare the credential revision on every request (default: once a second),
            // so a change made from the shell shows on the very next request.
            .env("SELEXTRACT__SERVER__CREDENTIAL_CHECK_INTERVAL_MS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let proc = Proc(child);
        let mut lines = BufReader::new(stdout).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| Some(line.split("listening on ").nth(1)?.trim().to_owned()))
            .expect("serve announced its address");
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        (proc, base)
    }
}

async fn tasks_status(base: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/tasks"))
        .bearer_auth(key)
        .send()
        .await
        .expect("the server answers")
        .status()
        .as_u16()
}

both_backends!(a_password_from_stdin_is_stored_as_an_argon2id_hash_that_verifies_only_it);
async fn a_password_from_stdin_is_stored_as_an_argon2id_hash_that_verifies_only_it(
    backend: Backend,
) {
    let install = Install::new(backend).await;
    let created = install.run_ok(
        &[
            "user",
            "create",
            "--email",
            "Ana@Example.com",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(
        created.starts_with("created user ana@example.com (")
            && created.contains("with a password"),
        "{created}"
    );
    let hash = install
        .user("ana@example.com")
        .await
        .password_hash
        .expect("a password hash is stored");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(verify_password("correct horse battery", &hash).expect("a PHC string"));
    assert!(!verify_password("correct horse battery\n", &hash).expect("a PHC string"));
    assert!(!verify_password("another password", &hash).expect("a PHC string"));

    // set-password replaces it (a CRLF line ending is not part of the password).
    let out = install.run_ok(
        &[
            "user",
            "set-password",
            "ana@example.com",
            "--password-stdin",
        ],
        "another password\r\nignored second line\n",
    );
    assert!(
        out.starts_with("set the password of user ana@example.com"),
        "{out}"
    );
    let new_hash = install
        .user("ana@example.com")
        .await
        .password_hash
        .expect("hash");
    assert!(verify_password("another password", &new_hash).expect("a PHC string"));
    assert!(!verify_password("correct horse battery", &new_hash).expect("a PHC string"));

    // Refused passwords change nothing and create nobody.
    let short = install.run_err(
        &[
            "user",
            "set-password",
            "ana@example.com",
            "--password-stdin",
        ],
        "too short\n",
    );
    assert!(short.contains("at least 10 characters"), "{short}");
    let long = install.run_err(
        &[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        &"x".repeat(2 << 20),
    );
    assert!(long.contains("at most 1024 bytes"), "{long}");
    let empty = install.run_err(
        &[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        "",
    );
    assert!(empty.contains("standard input is empty"), "{empty}");
    let flagless = install.run_err(&["user", "set-password", "ana@example.com"], "");
    assert!(flagless.contains("--password-stdin"), "{flagless}");
    assert_eq!(
        install.user("ana@example.com").await.password_hash,
        Some(new_hash)
    );
    assert!(
        install
            .store()
            .await
            .find_user_by_email("bob@example.com")
            .await
            .expect("lookup")
            .is_none()
    );
}

both_backends!(list_shows_every_user_as_a_table_and_as_json);
async fn list_shows_every_user_as_a_table_and_as_json(backend: Backend) {
    let install = Install::new(backend).await;
    install.run_ok(
        &["user", "create", "--email", "root@example.com", "--admin"],
        "",
    );
    install.run_ok(
        &[
            "user",
            "create",
            "--email",
            "bob@example.com",
            "--password-stdin",
        ],
        "bob's password\n",
    );
    let table = install.run_ok(&["user", "list"], "");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("EMAIL"), "{table}");
    assert!(
        lines[1].starts_with("root@example.com") && lines[1].contains(" yes "),
        "{table}"
    );
    assert!(
        lines[2].starts_with("bob@example.com") && lines[2].contains(" set "),
        "{table}"
    );
    assert_eq!(lines[3], "2 users");
    let json: serde_json::Value =
        serde_json::from_str(&install.run_ok(&["user", "list", "--json"], "")).expect("JSON");
    let users = json.as_array().expect("an array");
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "root@example.com");
    assert_eq!(users[0]["is_admin"], true);
    assert_eq!(users[0]["has_password"], false);
    assert_eq!(users[1]["email"], "bob@example.com");
    assert_eq!(users[1]["has_password"], true);
    assert_eq!(users[1]["disabled"], false);
    // The hash itself is never printed.
    assert!(users[1].get("password_hash").is_none(), "{json}");
}

both_backends!(a_disabled_users_key_is_refused_by_a_running_server_until_enabled);
async fn a_disabled_users_key_is_refused_by_a_running_server_until_enabled(backend: Backend) {
    let install = Install::new(backend).await;
    install.run_ok(&["user", "create", "--email", "ana@example.com"], "");
    let key = install
        .run_ok(&["key", "create", "--email", "ana@example.com"], "")
        .trim()
        .to_owned();
    let (_server, base) = install.serve();
    // The server verifies and caches the key first: disabling from the shell must reach
    // it all the same (through the store's credential revision).
    assert_eq!(tasks_status(&base, &key).await, 200);
    let out = install.run_ok(&["user", "disable", "ana@example.com"], "");
    assert!(out.starts_with("disabled user ana@example.com"), "{out}");
    assert!(install.user("ana@example.com").await.disabled);
    assert_eq!(tasks_status(&base, &key).await, 401);
    let out = install.run_ok(&["user", "enable", "ana@example.com"], "");
    assert!(out.starts_with("enabled user ana@example.com"), "{out}");
    assert_eq!(tasks_status(&base, &key).await, 200);
}

both_backends!(set_plan_names_an_unknown_plan_and_applies_a_known_one);
async fn set_plan_names_an_unknown_plan_and_applies_a_known_one(backend: Backend) {
    let install = Install::new(backend).await;
    install.run_ok(&["user", "create", "--email", "ana@example.com"], "");
    let error = install.run_err(&["user", "set-plan", "ana@example.com", "gold"], "");
    assert!(error.contains("no plan named \"gold\""), "{error}");
    assert_eq!(install.user("ana@example.com").await.plan, "self-hosted");
    let out = install.run_ok(&["user", "set-plan", "ana@example.com", "starter"], "");
    assert!(
        out.contains("from plan self-hosted to plan starter"),
        "{out}"
    );
    assert_eq!(install.user("ana@example.com").await.plan, "starter");
}

both_backends!(the_last_enabled_admin_is_neither_demoted_nor_disabled);
async fn the_last_enabled_admin_is_neither_demoted_nor_disabled(backend: Backend) {
    let install = Install::new(backend).await;
    install.run_ok(
        &["user", "create", "--email", "root@example.com", "--admin"],
        "",
    );
    install.run_ok(&["user", "create", "--email", "ana@example.com"], "");
    for verb in ["demote", "disable"] {
        let error = install.run_err(&["user", verb, "root@example.com"], "");
        assert!(
            error.contains(&format!("refusing to {verb} root@example.com"))
                && error.contains("last enabled administrator"),
            "{error}"
        );
    }
    let root = install.user("root@example.com").await;
    assert!(root.is_admin && !root.disabled);
    // With a second admin, the first may go.
    let out = install.run_ok(&["user", "promote", "ana@example.com"], "");
    assert!(out.starts_with("promoted user ana@example.com"), "{out}");
    let out = install.run_ok(&["user", "demote", "root@example.com"], "");
    assert!(out.starts_with("demoted user root@example.com"), "{out}");
    assert!(!install.user("root@example.com").await.is_admin);
    assert!(install.user("ana@example.com").await.is_admin);
    let error = install.run_err(&["user", "demote", "ana@example.com"], "");
    assert!(error.contains("last enabled administrator"), "{error}");
}

both_backends!(every_command_names_an_unknown_email);
async fn every_command_names_an_unknown_email(backend: Backend) {
    let install = Install::new(backend).await;
    for args in [
        &["user", "disable", "nobody@example.com"][..],
        &["user", "enable", "nobody@example.com"],
        &["user", "set-plan", "nobody@example.com", "starter"],
        &["user", "promote", "nobody@example.com"],
        &["user", "demote", "nobody@example.com"],
        &[
            "user",
            "set-password",
            "nobody@example.com",
            "--password-stdin",
        ],
    ] {
        let error = install.run_err(args, "a fine password\n");
        assert!(
            error.contains("no user with e-mail \"nobody@example.com\""),
            "{args:?}: {error}"
        );
    }
    let error = install.run_err(&["user", "create", "--email", "a@@example.com"], "");
    assert!(error.contains("exactly one @"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_hashed_with_the_configured_cost_and_a_bad_cost_names_its_key() {
    let install = Install::new(Backend::Sqlite).await;
    let with_env = |args: &[&str], env: &[(&str, &str)], stdin: &str| {
        let mut cmd = install.command(args);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("selextract starts");
        let mut input = child.stdin.take().expect("stdin piped");
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        child.wait_with_output().expect("selextract ends")
    };
    let cheap = [
        ("SELEXTRACT__AUTH__PASSWORD__MEMORY_KIB", "64"),
        ("SELEXTRACT__AUTH__PASSWORD__ITERATIONS", "1"),
        ("SELEXTRACT__AUTH__SIGNUP", "invite_only"),
    ];
    let out = with_env(
        &[
            "user",
            "create",
            "--email",
            "ana@example.com",
            "--password-stdin",
        ],
        &cheap,
        "a fine password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = install
        .user("ana@example.com")
        .await
        .password_hash
        .expect("hash");
    assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
    assert!(verify_password("a fine password", &hash).expect("a PHC string"));

    let printed = with_env(&["config", "print"], &cheap, "");
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.contains("[auth]\nsignup = \"invite_only\""),
        "{printed}"
    );
    assert!(
        printed.contains("[auth.password]\nmemory_kib = 64\niterations = 1\nparallelism = 1"),
        "{printed}"
    );

    let bad = with_env(
        &["user", "list"],
        &[("SELEXTRACT__AUTH__PASSWORD__MEMORY_KIB", "1")],
        "",
    );
    assert!(!bad.status.success());
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(
        error.contains("configuration key `auth.password`"),
        "{error}"
    );
    let bad = with_env(
        &["user", "list"],
        &[("SELEXTRACT__AUTH__SIGNUP", "anyone")],
        "",
    );
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(error.contains("`auth.signup`"), "{error}");
}

both_backends!(every_user_command_that_changes_something_is_audited_as_the_cli);
async fn every_user_command_that_changes_something_is_audited_as_the_cli(backend: Backend) {
    let install = Install::new(backend).await;
    let password = "correct horse battery staple ☃";
    install.run_ok(
        &["user", "create", "--email", "root@example.com", "--admin"],
        "",
    );
    install.run_ok(
        &[
            "user",
            "create",
            "--email",
            "ana@example.com",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    for args in [
        &["user", "disable", "ana@example.com"][..],
        &["user", "enable", "ana@example.com"],
        // Enabling an enabled user changes nothing and records nothing.
        &["user", "enable", "ana@example.com"],
        &["user", "set-plan", "ana@example.com", "starter"],
        &["user", "promote", "ana@example.com"],
        &["user", "demote", "ana@example.com"],
    ] {
        install.run_ok(args, "");
    }
    install.run_ok(
        &[
            "user",
            "set-password",
            "ana@example.com",
            "--password-stdin",
        ],
        &format!("{password}!\n"),
    );
    // A refused change records nothing.
    install.run_err(&["user", "demote", "root@example.com"], "");

    let store = install.store().await;
    let ana = install.user("ana@example.com").await;
    let entries = store
        .list_audit(&selextract_store::AuditFilter {
            user_id: Some(ana.id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit entries");
    let mut seen: Vec<(String, serde_json::Value)> = entries
        .iter()
        .map(|entry| {
            assert_eq!(entry.actor.as_deref(), Some("cli"), "{entry:?}");
            assert_eq!(entry.ip, None);
            assert_eq!(entry.user_id.as_deref(), Some(ana.id.as_str()));
            let details = entry.details.to_string();
            assert!(!details.contains(password), "{details}");
            assert!(!details.contains("argon2"), "{details}");
            (entry.event.clone(), entry.details["changes"].clone())
        })
        .collect();
    seen.reverse();
    let change = |field: &str, from: serde_json::Value, to: serde_json::Value| serde_json::json!({field: {"from": from, "to": to}});
    let null = serde_json::Value::Null;
    assert_eq!(
        seen,
        [
            ("signup".to_owned(), null.clone()),
            (
                "admin_user_changed".to_owned(),
                change("disabled", false.into(), true.into())
            ),
            (
                "admin_user_changed".to_owned(),
                change("disabled", true.into(), false.into())
            ),
            (
                "admin_user_changed".to_owned(),
                change("plan", "self-hosted".into(), "starter".into())
            ),
            (
                "admin_user_changed".to_owned(),
                change("is_admin", false.into(), true.into())
            ),
            (
                "admin_user_changed".to_owned(),
                change("is_admin", true.into(), false.into())
            ),
            ("password_changed".to_owned(), null),
        ]
    );
    let root = install.user("root@example.com").await;
    let root_entries = store
        .list_audit(&selextract_store::AuditFilter {
            user_id: Some(root.id),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("audit entries");
    let root_events: Vec<&str> = root_entries.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        root_events,
        ["signup"],
        "the refused demotion left no entry"
    );
}
