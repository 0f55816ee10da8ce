//! Schedules with real processes (issue 12 proof): an every-second schedule records exactly
//! one tick per second whichever processes are up — two `serve` and two `worker` processes
//! on PostgreSQL with one worker SIGKILLed in the middle, one `serve` on SQLite — and after
//! the installation was stopped the ticks of the gap are `missed` and the catch-up policy
//! holds (`latest`: one catch-up run; `none`: none). Ticks are read from the database.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use selextract_store::{ScheduleTick, Store, TickOutcome};
use selextract_testkit::FixtureSite;
use serde_json::{Value, json};

use crate::support::{Api, Proc, binary};

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

/// One installation: a data directory and the environment every process gets.
struct Installation {
    env: Vec<(String, String)>,
    data: tempfile::TempDir,
}

impl Installation {
    fn new(extra: &[(&str, &str)]) -> Installation {
        let mut env: Vec<(String, String)> = vec![
            ("SELEXTRACT__WORKER__LEASE_SECONDS".into(), "2".into()),
            ("SELEXTRACT__WORKER__HEARTBEAT_MS".into(), "200".into()),
            ("SELEXTRACT__WORKER__POLL_MS".into(), "100".into()),
            ("SELEXTRACT__WORKER__GRACE_SECONDS".into(), "2".into()),
            (
                "SELEXTRACT__SERVER__RATE_LIMIT_PER_MINUTE".into(),
                "100000".into(),
            ),
            ("RUST_LOG".into(), "warn".into()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Installation {
            env,
            data: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(value) = std::env::var(key) {
                cmd.env(key, value);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.args(["--data-dir", self.data.path().to_str().expect("utf-8")])
            .args(args);
        cmd
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("runs");
        assert!(
            out.status.success(),
            "selextract {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `serve` (with `--no-worker` when asked); returns the process and its base URL.
    fn serve(&self, no_worker: bool) -> (Proc, String) {
        let mut args = vec!["serve", "--bind", "127.0.0.1:0", "--allow-private-networks"];
        if no_worker {
            args.push("--no-worker");
        }
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let stdout = child.stdout.take().expect("piped");
        let proc = Proc(child);
        let mut lines = BufReader::new(stdout).lines();
        let mut base = None;
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                base = Some(rest.trim().to_owned());
                break;
            }
        }
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        (proc, base.expect("serve announced its address"))
    }

    fn worker(&self) -> Proc {
        Proc(
            self.command(&["worker", "--allow-private-networks"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("worker starts"),
        )
    }

    /// A user and an API key, made with the CLI before any server runs.
    fn user_key(&self) -> String {
        self.run_ok(&["migrate"]);
        self.run_ok(&[
            "user",
            "create",
            "--email",
            "sched@example.com",
            "--plan",
            "self-hosted",
        ]);
        self.run_ok(&["key", "create", "--email", "sched@example.com"])
            .trim()
            .to_owned()
    }

    fn database_url(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}",
                    self.data.path().join("selextract.db").display()
                )
            })
    }
}

async fn create_scheduled_task(api: &Api, site: &FixtureSite, schedule: Value) -> String {
    let task = json!({
        "start_urls": [site.url("/catalog?page=1")],
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}],
        "respect_robots_txt": false,
        "schedule": schedule,
        "start": false
    });
    let (status, created) = api.post_json("/api/v1/tasks", &task).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().expect("task id").to_owned()
}

async fn ticks(store: &Store, task_id: &str) -> Vec<ScheduleTick> {
    store
        .list_schedule_ticks_any_user(task_id)
        .await
        .expect("ticks read")
}

/// Waits (polling, generous deadline) until the task has at least `n` ticks.
async fn wait_for_ticks(store: &Store, task_id: &str, n: usize) -> Vec<ScheduleTick> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let found = ticks(store, task_id).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "only {} ticks recorded",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn seconds_of(tick: &ScheduleTick) -> i64 {
    selextract_schedule::parse_local(&tick.scheduled_local)
        .expect("stored local time")
        .and_utc()
        .timestamp()
}

/// One tick per second from the first to the last: no second doubled or lost.
fn assert_contiguous(ticks: &[ScheduleTick]) {
    let mut seconds: Vec<i64> = ticks.iter().map(seconds_of).collect();
    seconds.sort_unstable();
    let first = seconds[0];
    let expected: Vec<i64> =
        (first..first + i64::try_from(seconds.len()).expect("small")).collect();
    assert_eq!(seconds, expected, "ticks are contiguous seconds, each once");
}

/// Every started tick has exactly one run, and the task has no other runs.
async fn assert_one_run_per_started_tick(store: &Store, ticks: &[ScheduleTick], user_runs: usize) {
    let started: Vec<&ScheduleTick> = ticks
        .iter()
        .filter(|t| t.outcome == TickOutcome::Started)
        .collect();
    for tick in &started {
        let run_id = tick
            .run_id
            .as_deref()
            .expect("a started tick names its run");
        assert!(
            store
                .find_run_any_user(run_id)
                .await
                .expect("read")
                .is_some(),
            "run {run_id} exists"
        );
    }
    let mut ids: Vec<&str> = started.iter().filter_map(|t| t.run_id.as_deref()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), started.len(), "no run shared by two ticks");
    assert_eq!(
        user_runs,
        started.len(),
        "the task's runs are exactly the started ticks'"
    );
}

async fn task_run_count(api: &Api, task_id: &str) -> usize {
    let runs = api
        .get_json(&format!("/api/v1/tasks/{task_id}/runs?page_size=100"))
        .await;
    usize::try_from(runs["total_count"].as_u64().expect("total_count")).expect("small")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_second_schedule_ticks_once_per_second_across_processes_on_postgres_with_a_worker_killed()
 {
    let site = FixtureSite::start().await;
    let admin_url = postgres_admin_url();
    let db_name = format!("sx_schedules_{}", std::process::id());
    psql(&admin_url, &format!("DROP DATABASE IF EXISTS {db_name}"));
    psql(&admin_url, &format!("CREATE DATABASE {db_name}"));
    let mut db_url = url::Url::parse(&admin_url).expect("postgres URL");
    db_url.set_path(&format!("/{db_name}"));
    let install = Installation::new(&[("DATABASE_URL", db_url.as_str())]);
    let key = install.user_key();
    let (_api_a, base_a) = install.serve(true);
    let (_api_b, _base_b) = install.serve(true);
    let mut worker_a = install.worker();
    let _worker_b = install.worker();
    let api = Api::new(&base_a, &key);
    let task_id = create_scheduled_task(
        &api,
        &site,
        json!({"cron": "* * * * * *", "timezone": "UTC"}),
    )
    .await;
    let store = Store::connect(&install.database_url())
        .await
        .expect("store");

    wait_for_ticks(&store, &task_id, 10).await;
    worker_a.0.kill().expect("SIGKILL");
    let _ = worker_a.0.wait();
    let before = ticks(&store, &task_id).await.len();
    let all = wait_for_ticks(&store, &task_id, before + 10).await;
    // Stop the schedule so the counts below stay put.
    let (status, _) = api
        .post_json(
            &format!("/api/v1/tasks/{task_id}/schedule/pause"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all_final = ticks(&store, &task_id).await;
    assert!(all_final.len() >= all.len());
    eprintln!("postgres: {} ticks recorded", all_final.len());
    assert_contiguous(&all_final);
    assert!(
        all_final.iter().all(|t| matches!(
            t.outcome,
            TickOutcome::Started | TickOutcome::SkippedOverlap
        )),
        "{all_final:?}"
    );
    let runs = task_run_count(&api, &task_id).await;
    assert_one_run_per_started_tick(&store, &all_final, runs).await;
    store.close().await;
    drop((_api_a, _api_b, _worker_b));
    psql(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_second_schedule_ticks_once_per_second_on_sqlite_with_one_process() {
    let site = FixtureSite::start().await;
    let install = Installation::new(&[]);
    let key = install.user_key();
    let (_serve, base) = install.serve(false);
    let api = Api::new(&base, &key);
    let task_id = create_scheduled_task(
        &api,
        &site,
        json!({"cron": "* * * * * *", "timezone": "UTC"}),
    )
    .await;
    let store = Store::connect(&install.database_url())
        .await
        .expect("store");
    wait_for_ticks(&store, &task_id, 20).await;
    let (status, _) = api
        .post_json(
            &format!("/api/v1/tasks/{task_id}/schedule/pause"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = ticks(&store, &task_id).await;
    eprintln!("sqlite: {} ticks recorded", all.len());
    assert_contiguous(&all);
    assert!(
        all.iter().all(|t| matches!(
            t.outcome,
            TickOutcome::Started | TickOutcome::SkippedOverlap
        )),
        "{all:?}"
    );
    let runs = task_run_count(&api, &task_id).await;
    assert_one_run_per_started_tick(&store, &all, runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_installation_records_missed_ticks_and_the_schedulers_catch_up_policy_holds() {
    let site = FixtureSite::start().await;
    let install = Installation::new(&[("SELEXTRACT__SCHEDULER__MISFIRE_GRACE_SECONDS", "1")]);
    let key = install.user_key();
    let (serve, base) = install.serve(false);
    let api = Api::new(&base, &key);
    let latest = create_scheduled_task(
        &api,
        &site,
        json!({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "latest", "overlap": "cancel_previous"}),
    )
    .await;
    let none = create_scheduled_task(
        &api,
        &site,
        json!({"cron": "* * * * * *", "timezone": "UTC", "catch_up": "none", "overlap": "cancel_previous"}),
    )
    .await;
    let store = Store::connect(&install.database_url())
        .await
        .expect("store");
    // Both tasks use cancel_previous: a run the SIGKILL leaves `running` (its lease not yet
    // taken over) would make `skip` record the catch-up as skipped_overlap, which is the
    // policy but not what this test is about; cancel_previous starts the catch-up run
    // whatever is still active.
    wait_for_ticks(&store, &none, 2).await;
    drop(serve); // SIGKILL: the installation is down.
    let down_at = chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (_serve, base) = install.serve(false);
    let api = Api::new(&base, &key);
    for task_id in [&latest, &none] {
        // Wait for ticks well past the restart.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let found = ticks(&store, task_id).await;
            if found.iter().any(|t| seconds_of(t) > down_at + 12) {
                break;
            }
            assert!(Instant::now() < deadline, "no ticks after the restart");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for task_id in [&latest, &none] {
        let (status, _) = api
            .post_json(
                &format!("/api/v1/tasks/{task_id}/schedule/pause"),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (task_id, catch_ups) in [(&latest, 1), (&none, 0)] {
        let all = ticks(&store, task_id).await;
        assert_contiguous(&all);
        let missed = all
            .iter()
            .filter(|t| t.outcome == TickOutcome::Missed)
            .count();
        assert!(
            missed >= 5,
            "{missed} missed ticks for a gap of 8 s: {all:?}"
        );
        let caught: Vec<&ScheduleTick> = all
            .iter()
            .filter(|t| {
                t.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("catch_up"))
            })
            .collect();
        assert_eq!(caught.len(), catch_ups, "{all:?}");
        for tick in caught {
            assert_eq!(tick.outcome, TickOutcome::Started);
        }
        eprintln!(
            "downtime ({}): {} ticks, {missed} missed",
            if catch_ups == 1 { "latest" } else { "none" },
            all.len()
        );
        let runs = task_run_count(&api, task_id).await;
        assert_one_run_per_started_tick(&store, &all, runs).await;
    }
}
