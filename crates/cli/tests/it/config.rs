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
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("metrics-secret-token"), "{out}");
    assert!(!out.contains("db-password"), "{out}");
    assert!(out.contains("postgres://app:"), "{out}");
}

#[test]
fn a_missing_config_file_named_on_the_command_line_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = config_print(dir.path(), &[], &["--config", "nope.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("nope.toml"), "{err}");
}
