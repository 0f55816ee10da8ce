//! Helpers to run `selextract` processes and talk to them over HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_selextract")
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Peak resident set size (VmHWM) of the process, in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb * 1024)
    }
}

/// Environment that makes leases short so tests see reclaims quickly.
pub fn fast_env(cmd: &mut Command) -> &mut Command {
    cmd.env("SELEXTRACT__WORKER__LEASE_SECONDS", "2")
        .env("SELEXTRACT__WORKER__HEARTBEAT_MS", "200")
        .env("SELEXTRACT__WORKER__POLL_MS", "100")
        .env("SELEXTRACT__WORKER__GRACE_SECONDS", "5")
        .env_remove("DATABASE_URL")
        .env_remove("RESULTS_URL")
        .env_remove("REDIS_URL")
}

/// A running `selextract serve`, with the address it listens on and the first-start key
/// (when this start printed one).
pub struct Server {
    pub proc: Proc,
    pub base: String,
    pub key: Option<String>,
    /// The one-time link to set the first admin's password (printed beside the key).
    pub setup_link: Option<String>,
}

pub fn start_server(data_dir: &Path, extra: &[&str]) -> Server {
    let mut cmd = Command::new(binary());
    fast_env(&mut cmd)
        .args([
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "serve",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("serve starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut base = None;
    let mut key = None;
    let mut setup_link = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            if base.is_some() {
                break;
            }
            continue;
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            base = Some(rest.trim().to_owned());
        }
        let trimmed = line.trim();
        if trimmed.starts_with("sk_") {
            key = Some(trimmed.to_owned());
        }
        if trimmed.contains("/account/reset-password?token=") {
            setup_link = Some(trimmed.to_owned());
        }
        if base.is_some() && key.is_some() && setup_link.is_some() {
            break;
        }
    }
    let base = base.expect("serve announced its address");
    Server {
        proc,
        base,
        key,
        setup_link,
    }
}

pub fn start_worker(data_dir: &Path) -> Proc {
    let mut cmd = Command::new(binary());
    fast_env(&mut cmd)
        .args([
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "worker",
            "--allow-private-networks",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc(cmd.spawn().expect("worker starts"))
}

pub fn run_ok(data_dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(binary());
    fast_env(&mut cmd)
        .args(["--data-dir", data_dir.to_str().expect("utf-8 path")])
        .args(args);
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "selextract {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, bytes::Bytes) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body"))
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON body")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("serialises"))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Poll a run until it is terminal.
    pub async fn wait_terminal(&self, run_id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let run = self.get_json(&format!("/api/v1/runs/{run_id}")).await;
            let state = run["state"].as_str().unwrap_or_default().to_owned();
            if ["completed", "failed", "cancelled", "partial"].contains(&state.as_str()) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {run_id} still {state} after {limit:?}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every record of a run through the paged records route.
    pub async fn all_records(&self, run_id: &str) -> Vec<Value> {
        let mut records = Vec::new();
        loop {
            let page = self
                .get_json(&format!(
                    "/api/v1/runs/{run_id}/records?offset={}&limit=1000",
                    records.len()
                ))
                .await;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return records;
            }
            records.extend(items);
        }
    }
}
