//! Chromium processes: launched in their own process group with a PID file, killed as a
//! whole tree, and reaped so that no zombie or orphan survives; stale trees left by a worker
//! that died are found through their PID files and command lines and killed at start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::BrowserError;

/// The command-line flags every pooled Chromium gets (besides its data dir and port).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-breakpad",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    // Out-of-process iframes would be separate targets that the page's request interception
    // does not see; keeping frames in the page's process keeps every request guarded.
    "--disable-features=IsolateOrigins,site-per-process,Translate,MediaRouter",
    "--disable-site-isolation-trials",
    "--no-default-browser-check",
    "--password-store=basic",
];

/// One running Chromium: the main process (our child, leader of its own process group) and
/// its data directory.
#[derive(Debug)]
pub(crate) struct ChromiumProcess {
    child: Child,
    pub(crate) pgid: i32,
    pub(crate) data_dir: PathBuf,
    pid_file: PathBuf,
    pub(crate) ws_url: String,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Makes this process the reaper of its orphaned descendants, so that Chromium helpers whose
/// parent was killed are re-parented to us (and reaped by [`kill_tree`]) instead of to an
/// init that may never reap them.
pub(crate) fn become_subreaper() {
    if let Err(error) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        tracing::debug!(%error, "cannot become child subreaper; orphaned Chromium helpers are left to init");
    }
}

/// Starts Chromium with a fresh data directory under `runtime_dir` and waits for its
/// DevTools address.
pub(crate) async fn launch(
    executable: &Path,
    runtime_dir: &Path,
    js_heap_mb: u64,
    launch_timeout: Duration,
    proxy_server: &str,
) -> Result<ChromiumProcess, BrowserError> {
    std::fs::create_dir_all(runtime_dir).map_err(|e| BrowserError::Io {
        what: "creating the browser runtime directory",
        message: e.to_string(),
    })?;
    let name = format!(
        "chromium-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let data_dir = runtime_dir.join(&name);
    let pid_file = runtime_dir.join(format!("{name}.pid"));
    let mut command = Command::new(executable);
    command
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", data_dir.display()))
        .arg("--remote-debugging-port=0")
        .arg(format!("--js-flags=--max-old-space-size={js_heap_mb}"))
        // Everything outside a render's own context goes to the pool's proxy, which refuses
        // it; loopback is not exempt.
        .arg(format!("--proxy-server={proxy_server}"))
        .arg("--proxy-bypass-list=<-loopback>")
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so the whole tree (zygotes, renderers, GPU and network
        // services) can be killed with one signal.
        .process_group(0)
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| BrowserError::Launch {
        executable: executable.display().to_string(),
        message: e.to_string(),
    })?;
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        return Err(BrowserError::Launch {
            executable: executable.display().to_string(),
            message: "exited at once".to_owned(),
        });
    };
    let mut process = ChromiumProcess {
        child,
        pgid: pid,
        data_dir,
        pid_file,
        ws_url: String::new(),
    };
    if let Err(e) = std::fs::write(&process.pid_file, format!("{pid}\n")) {
        process.kill_tree().await;
        return Err(BrowserError::Io {
            what: "writing the browser PID file",
            message: e.to_string(),
        });
    }
    match tokio::time::timeout(launch_timeout, read_ws_url(&mut process.child)).await {
        Ok(Some(url)) => {
            process.ws_url = url;
            Ok(process)
        }
        Ok(None) => {
            process.kill_tree().await;
            Err(BrowserError::Launch {
                executable: executable.display().to_string(),
                message: "exited before announcing its DevTools address".to_owned(),
            })
        }
        Err(_) => {
            process.kill_tree().await;
            Err(BrowserError::Launch {
                executable: executable.display().to_string(),
                message: format!("no DevTools address within {launch_timeout:?}"),
            })
        }
    }
}

/// Reads stderr until the `DevTools listening on ws://…` line, then keeps draining it in
/// the background: a full pipe would block Chromium.
async fn read_ws_url(child: &mut Child) -> Option<String> {
    let stderr = child.stderr.take()?;
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.split("DevTools listening on ").nth(1) {
            let url = rest.trim().to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Some(url);
        }
    }
    None
}

impl ChromiumProcess {
    /// Kills the whole process group, reaps the main process and every orphan, and removes
    /// the data directory and PID file.
    pub(crate) async fn kill_tree(&mut self) {
        kill_group(self.pgid);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        reap_group(self.pgid).await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_file(&self.pid_file);
    }

    /// Whether the main process has exited.
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

fn kill_group(pgid: i32) {
    if let Some(pid) = Pid::from_raw(pgid) {
        // ESRCH (already gone) is the common, harmless failure.
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// Waits (bounded) until no process of the group remains, reaping those re-parented to us.
async fn reap_group(pgid: i32) {
    for _ in 0..100 {
        let members = group_members(pgid);
        if members.is_empty() {
            return;
        }
        for pid in members {
            if let Some(pid) = Pid::from_raw(pid) {
                // Not our child (ECHILD) is fine: its parent reaps it.
                let _ = rustix::process::waitpid(Some(pid), WaitOptions::NOHANG);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(pid, ppid, pgrp, state)` of every process, read from `/proc/*/stat`.
fn process_table() -> Vec<(i32, i32, i32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut table = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        table.push((pid, ppid, pgrp, state));
    }
    table
}

/// The processes (zombies included) whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    process_table()
        .into_iter()
        .filter(|&(_, _, pgrp, _)| pgrp == pgid)
        .map(|(pid, ..)| pid)
        .collect()
}

/// Resident memory of the whole process group, in bytes.
pub fn group_rss_bytes(pgid: i32) -> u64 {
    // Linux reports `statm` in pages; 4 KiB pages on every platform this runs on.
    const PAGE: u64 = 4096;
    group_members(pgid)
        .into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/statm")).ok())
        .filter_map(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * PAGE)
        .sum()
}

/// The command line of a process, arguments joined by spaces.
fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `(pid, pgrp)` of live (non-zombie) processes whose command line mentions `needle`.
fn live_mentioning(needle: &str) -> impl Iterator<Item = (i32, i32)> + '_ {
    process_table()
        .into_iter()
        .filter(|&(_, _, _, state)| state != 'Z')
        .filter(move |&(pid, ..)| cmdline(pid).is_some_and(|c| c.contains(needle)))
        .map(|(pid, _, pgrp, _)| (pid, pgrp))
}

/// PIDs of live (non-zombie) processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    live_mentioning(needle).map(|(pid, _)| pid).collect()
}

/// The process groups of live processes whose command line mentions `needle`: one per
/// Chromium (each is the leader of its own group). Counting groups rather than processes keeps
/// a child the browser has forked but not yet exec'd — which still shows the browser's
/// command line for a moment — from counting as a second browser.
pub fn process_groups_mentioning(needle: &str) -> Vec<i32> {
    let mut groups: Vec<i32> = live_mentioning(needle).map(|(_, pgrp)| pgrp).collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Whether the worker process that launched the Chromium with this command line is alive
/// (data directories are named `chromium-{owner pid}-{n}`). This process counts as dead: a
/// pool starting here owns nothing yet.
fn owner_alive(cmdline: &str, runtime_dir: &str) -> bool {
    let marker = format!("{runtime_dir}/chromium-");
    let owner = cmdline
        .split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match owner {
        Some(owner) if owner == std::process::id() => false,
        Some(owner) => Path::new(&format!("/proc/{owner}")).exists(),
        None => false,
    }
}

/// Kills Chromium trees left under `runtime_dir` by a process that died without cleaning
/// up: those named by PID files and any process whose command line names the directory.
/// Returns how many trees were killed.
pub(crate) async fn reap_stale(runtime_dir: &Path) -> usize {
    let needle = runtime_dir.display().to_string();
    let mut groups: Vec<i32> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(runtime_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pid") {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok());
                // Only a process that still names our directory is ours (PIDs are reused), and
                // only when the worker that started it is gone.
                if let Some(pid) = pid
                    && cmdline(pid)
                        .is_some_and(|c| c.contains(&needle) && !owner_alive(&c, &needle))
                {
                    groups.push(pid);
                }
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    for pid in processes_mentioning(&needle) {
        if cmdline(pid).is_some_and(|c| owner_alive(&c, &needle)) {
            continue;
        }
        let pgrp = process_table()
            .into_iter()
            .find(|&(p, ..)| p == pid)
            .map_or(pid, |(_, _, pgrp, _)| pgrp);
        groups.push(pgrp);
    }
    groups.sort_unstable();
    groups.dedup();
    for &pgid in &groups {
        kill_group(pgid);
        reap_group(pgid).await;
    }
    if let Ok(entries) = std::fs::read_dir(runtime_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("chromium-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    groups.len()
}
