//! The settings tree (SPEC §10): built-in defaults → optional `selextract.toml` →
//! `SELEXTRACT__SECTION__KEY` environment variables (plus `DATABASE_URL`, `REDIS_URL`,
//! `RESULTS_URL`). Loaded once here and validated. Sections deserialize straight into the
//! configuration type of the crate they configure, so each default lives in one place; the
//! CLI only fills in what one section lends another and the wiring that is not a setting
//! (`platform.rs`, `browser.rs`). Unknown keys are errors that name the key. Secrets are
//! `SecretString`/`SecretUrl` (proxy URLs are masked by the fetcher's config): neither
//! `Debug` nor `config print` shows them.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use selextract_config::{ExposeSecret, SecretUrl};
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: selextract_server::ServerConfig,
    pub database: DatabaseSettings,
    pub results: UrlSettings,
    pub redis: UrlSettings,
    pub fetch: selextract_fetch::HttpFetcherConfig,
    pub worker: selextract_worker::WorkerConfig,
    /// `[scheduler]`: how often every process looks for due schedules, the misfire grace
    /// and how many missed ticks get a row each.
    pub scheduler: selextract_scheduler::SchedulerConfig,
    pub billing: selextract_store::Plans,
    pub compute_units: selextract_engine::ComputeRates,
    /// Task limits (SPEC §2).
    pub limits: selextract_spec::Limits,
    pub metrics: selextract_server::MetricsConfig,
    pub browser: selextract_browser::BrowserPoolConfig,
    /// `[auth]`: signup policy and password hashing cost.
    pub auth: selextract_accounts::AuthConfig,
    /// `[smtp]`: the server that carries account mail (none by default).
    pub smtp: selextract_mail::SmtpConfig,
    /// `[notifications]`: retries, timeouts and concurrency of webhook, Slack and e-mail
    /// deliveries (the delivery loop of every process that runs workers).
    pub notifications: selextract_notify::NotifyConfig,
}

/// `[database]`: where the database is, and whether a starting `serve` or `worker` may
/// apply pending migrations itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Empty means the embedded SQLite file in the data directory. May carry a password,
    /// so it is a [`SecretUrl`].
    pub url: SecretUrl,
    /// Apply pending migrations when a process starts against an older schema. Off by
    /// default: an upgrade is a deliberate step (back up, then `selextract migrate`), and a
    /// fresh database is initialised either way.
    pub migrate_on_start: bool,
}

/// A section that is only a connection URL (`[results]`, `[redis]`). The URL
/// may carry a password, so it is a [`SecretUrl`]: masked in `Debug` and `config print`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlSettings {
    /// Empty means the embedded default (or, for Redis, none).
    pub url: SecretUrl,
}

/// Where the settings came from, for `config print`.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env_keys: Vec<String>,
}

/// Load the settings tree. `file` is `--config`; without it `./selextract.toml` is read
/// when present.
pub fn load(file: Option<&Path>) -> anyhow::Result<(Settings, Sources)> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(file, &env)
}

pub fn load_from(
    file: Option<&Path>,
    env: &[(String, String)],
) -> anyhow::Result<(Settings, Sources)> {
    let mut sources = Sources::default();
    let mut tree = toml::Table::new();
    let path = match file {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from("selextract.toml")).filter(|p| p.exists()),
    };
    if let Some(path) = path {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        tree = text.parse::<toml::Table>().map_err(|error| {
            // Name the place only: the error's own display quotes the offending line, which
            // may hold a password.
            let start = error.span().map_or(0, |span| span.start);
            let line = text.get(..start).unwrap_or_default().matches('\n').count() + 1;
            anyhow!(
                "{} is not valid TOML: line {line}: {}",
                path.display(),
                error.message()
            )
        })?;
        sources.file = Some(path);
    }
    for (name, value) in env {
        let path: Vec<String> = if let Some(rest) = name.strip_prefix("SELEXTRACT__") {
            rest.split("__").map(str::to_lowercase).collect()
        } else {
            match name.as_str() {
                "DATABASE_URL" => vec!["database".into(), "url".into()],
                "RESULTS_URL" => vec!["results".into(), "url".into()],
                "REDIS_URL" => vec!["redis".into(), "url".into()],
                _ => continue,
            }
        };
        if path.iter().any(String::is_empty) {
            bail!("{name}: malformed setting name (expected SELEXTRACT__SECTION__KEY)");
        }
        set_path(&mut tree, &path, env_value(value)).map_err(|e| anyhow!("{name}: {e}"))?;
        sources.env_keys.push(name.clone());
    }
    let settings: Settings =
        serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|error| {
            let key = error.path().to_string();
            anyhow!("configuration key `{key}`: {}", error.into_inner())
        })?;
    settings
        .billing
        .check()
        .map_err(|e| anyhow!("configuration key {e}"))?;
    settings
        .auth
        .password
        .check()
        .map_err(|e| anyhow!("configuration key `auth.password`: {e}"))?;
    selextract_accounts::oidc::check_oidc_config(
        &settings.auth.oidc,
        &settings.server.public_base_url(),
    )
    .map_err(|e| anyhow!("configuration key {e}"))?;
    if settings.worker.concurrency == 0 {
        bail!("configuration key `worker.concurrency`: must be at least 1");
    }
    if settings.scheduler.poll_interval.is_zero() {
        bail!("configuration key `scheduler.poll_ms`: must be at least 1");
    }
    let notifications = &settings.notifications;
    if notifications.concurrency == 0 {
        bail!("configuration key `notifications.concurrency`: must be at least 1");
    }
    if notifications.attempt_timeout.is_zero() || notifications.poll_interval.is_zero() {
        bail!(
            "configuration keys `notifications.attempt_timeout_ms` and \
             `notifications.poll_interval_ms`: must be at least 1"
        );
    }
    if notifications.initial_backoff > notifications.max_backoff {
        bail!(
            "configuration key `notifications.initial_backoff_ms`: must not exceed \
             `notifications.max_backoff_seconds`"
        );
    }
    if settings.worker.lease.is_zero() {
        bail!("configuration key `worker.lease_seconds`: must be at least 1");
    }
    Ok((settings, sources))
}

/// Environment values are typed like TOML scalars when they parse as one and print back
/// the same (`true`, `42`, but not `007`, which stays the string it is), else taken as
/// strings; lists are written TOML-style (`["a", "b"]`).
fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(table) = format!("v = {trimmed}").parse::<toml::Table>()
        && let Some(value) = table.get("v")
    {
        return value.clone();
    }
    if let Ok(b) = trimmed.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = trimmed.parse::<i64>()
        && i.to_string() == trimmed
    {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = trimmed.parse::<f64>()
        && trimmed.contains('.')
        && f.to_string() == trimmed
    {
        return toml::Value::Float(f);
    }
    toml::Value::String(raw.to_owned())
}

fn set_path(tree: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty setting name".to_owned());
    };
    let mut node = tree;
    for part in parents {
        let entry = node
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(table) => table,
            _ => return Err(format!("`{part}` is not a section")),
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

impl Settings {
    /// The configured database, or the embedded SQLite file in the data directory.
    pub fn database_url(&self) -> SecretUrl {
        if self.database.url.is_empty() {
            SecretUrl::new(format!(
                "sqlite://{}",
                self.server.data_dir.join("selextract.db").display()
            ))
        } else {
            self.database.url.clone()
        }
    }

    pub fn results_url(&self) -> String {
        if self.results.url.is_empty() {
            let dir = self.server.data_dir.join("results");
            let absolute = std::path::absolute(&dir).unwrap_or(dir);
            format!("file://{}", absolute.display())
        } else {
            self.results.url.expose_secret().to_owned()
        }
    }

    /// The effective settings as TOML, with the embedded defaults spelled out. Secrets are
    /// masked by their types' `Serialize`, so nothing here can forget one.
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        let mut effective = self.clone();
        effective.database.url = self.database_url();
        effective.results.url = SecretUrl::new(self.results_url());
        Ok(toml::to_string_pretty(&effective)?)
    }
}
