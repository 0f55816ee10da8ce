//! The settings tree (SPEC §10): built-in defaults → optional `selextract.toml` →
//! `SELEXTRACT__SECTION__KEY` environment variables (plus `DATABASE_URL`, `REDIS_URL`,
//! `RESULTS_URL`). Loaded once here, validated, then handed out as each part's own small
//! config struct. Unknown keys are errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: UrlSettings,
    pub results: UrlSettings,
    pub redis: UrlSettings,
    pub fetch: FetchSettings,
    pub worker: WorkerSettings,
    pub billing: selextract_store::Plans,
    pub compute_units: ComputeUnitSettings,
    /// Task limits (SPEC §2): the spec crate's own type, so its defaults are the only ones.
    pub limits: selextract_spec::Limits,
    pub metrics: MetricsSettings,
    pub browser: BrowserSettings,
}

/// Headless Chromium for `browser` and `auto` tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserSettings {
    /// Off: browser tasks are refused and auto tasks stay on HTTP.
    pub enabled: bool,
    /// Chromium binary; empty means the first of Debian's paths that exists.
    pub executable: String,
    pub max_browsers: usize,
    pub pages_per_browser: usize,
    pub recycle_after_pages: u64,
    pub recycle_after_minutes: u64,
    pub memory_cap_mb: u64,
    /// JavaScript heap limit of each renderer: a page that allocates past it crashes alone.
    pub js_heap_mb: u64,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            enabled: true,
            executable: String::new(),
            max_browsers: 2,
            pages_per_browser: 4,
            recycle_after_pages: 100,
            recycle_after_minutes: 30,
            memory_cap_mb: 1024,
            js_heap_mb: 512,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings::default(),
            database: UrlSettings::default(),
            results: UrlSettings::default(),
            redis: UrlSettings::default(),
            fetch: FetchSettings::default(),
            worker: WorkerSettings::default(),
            billing: selextract_store::Plans::default(),
            compute_units: ComputeUnitSettings::default(),
            limits: selextract_spec::Limits::default(),
            metrics: MetricsSettings::default(),
            browser: BrowserSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub request_body_limit_bytes: usize,
    pub rate_limit_per_minute: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("./data"),
            request_body_limit_bytes: 2 * 1024 * 1024,
            rate_limit_per_minute: 600,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrlSettings {
    /// Empty means the embedded default.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSettings {
    pub allow_private_networks: bool,
    pub allow_robots_txt_opt_out: bool,
    pub user_agent: String,
    pub max_body_bytes: u64,
    pub connect_timeout_ms: u64,
    pub proxies: Vec<String>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            allow_private_networks: false,
            allow_robots_txt_opt_out: true,
            user_agent: format!("Selextract/{}", env!("CARGO_PKG_VERSION")),
            max_body_bytes: 10 * 1024 * 1024,
            connect_timeout_ms: 10_000,
            proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSettings {
    /// Runs executed at once by one worker process.
    pub concurrency: usize,
    pub lease_seconds: u64,
    pub heartbeat_ms: u64,
    pub poll_ms: u64,
    pub grace_seconds: u64,
    pub max_attempts: u32,
    /// Pages in flight per run.
    pub engine_concurrency: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            concurrency: 4,
            lease_seconds: 30,
            heartbeat_ms: 500,
            poll_ms: 500,
            grace_seconds: 30,
            max_attempts: 3,
            engine_concurrency: 8,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeUnitSettings {
    pub http_page: u64,
    pub browser_page: u64,
    pub proxy_page: u64,
}

impl Default for ComputeUnitSettings {
    fn default() -> Self {
        ComputeUnitSettings {
            http_page: 1,
            browser_page: 5,
            proxy_page: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Client addresses allowed to read `/metrics` without a token.
    pub allow: Vec<std::net::IpAddr>,
    /// When set, `Authorization: Bearer <token>` also grants access (a secret).
    pub bearer_token: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            allow: vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            bearer_token: String::new(),
        }
    }
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
        tree = text
            .parse::<toml::Table>()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
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
    if settings.worker.concurrency == 0 {
        bail!("configuration key `worker.concurrency`: must be at least 1");
    }
    if settings.worker.lease_seconds == 0 {
        bail!("configuration key `worker.lease_seconds`: must be at least 1");
    }
    Ok((settings, sources))
}

/// Environment values are typed like TOML scalars when they parse as one (`true`, `42`),
/// else taken as strings; lists are written TOML-style (`["a", "b"]`).
fn env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if let Ok(table) = format!("v = {trimmed}").parse::<toml::Table>() {
            if let Some(value) = table.get("v") {
                return value.clone();
            }
        }
    }
    if let Ok(b) = trimmed.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = trimmed.parse::<f64>() {
        if trimmed.contains('.') {
            return toml::Value::Float(f);
        }
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
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("selextract.db").display()
            )
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
            self.results.url.clone()
        }
    }

    /// The effective settings as TOML with secrets masked.
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        let mut copy = self.clone();
        copy.database.url = mask_url_password(&self.database_url());
        copy.results.url = self.results_url();
        copy.redis.url = mask_url_password(&self.redis.url);
        if !copy.metrics.bearer_token.is_empty() {
            copy.metrics.bearer_token = "********".to_owned();
        }
        copy.fetch.proxies = self
            .fetch
            .proxies
            .iter()
            .map(|p| mask_url_password(p))
            .collect();
        Ok(toml::to_string_pretty(&copy)?)
    }
}

fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("********"));
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}
