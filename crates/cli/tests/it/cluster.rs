//! The cluster test (scale-out): PostgreSQL + Redis + S3 (moto), two API processes and
//! three worker processes as real children; 20 users submit 500 runs through both APIs
//! while workers are killed with SIGKILL and replaced. At the end every run is terminal,
//! every completed run's records are complete with no duplicates, every page is charged
//! exactly once, no user ever had more running runs than their plan allows, and the small
//! users were not starved by the big one.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use selextract_testkit::{FixtureOptions, FixtureSite, TestS3};
use serde_json::json;

use crate::support::{Api, Proc, binary};

const PLAN_CAP: u64 = 3;

fn postgres_admin_url() -> String {
    std::env::var("SELEXTRACT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs (the cluster test needs PostgreSQL's client)");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Cluster {
    env: Vec<(String, String)>,
    data: tempfile::TempDir,
}

impl Cluster {
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

    fn api_process(&self) -> (Proc, String) {
        use std::io::{BufRead, BufReader};
        let mut child = self
            .command(&["serve", "--no-worker", "--bind", "127.0.0.1:0"])
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
        // Keep draining stdout so the process never writes into a closed pipe.
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_two_apis_and_three_killed_and_replaced_workers_loses_nothing() {
    let site = FixtureSite::start_with(FixtureOptions {
        catalogue_pages: 3,
        ..FixtureOptions::default()
    })
    .await;
    let admin_url = postgres_admin_url();
    let db_name = format!("sx_cluster_{}", std::process::id());
    psql(&admin_url, &format!("DROP DATABASE IF EXISTS {db_name}"));
    psql(&admin_url, &format!("CREATE DATABASE {db_name}"));
    let mut db_url = url::Url::parse(&admin_url).expect("postgres URL");
    db_url.set_path(&format!("/{db_name}"));
    let data = tempfile::tempdir().expect("tempdir");
    let s3 = TestS3::start();
    s3.create_bucket("selextract-cluster");
    let mut env: Vec<(String, String)> = s3
        .options()
        .into_iter()
        .map(|(key, value)| (key.to_uppercase(), value))
        .collect();
    env.extend([
        ("DATABASE_URL".into(), db_url.to_string()),
        ("REDIS_URL".into(), "redis://127.0.0.1:6379/".into()),
        (
            "RESULTS_URL".into(),
            "s3://selextract-cluster/cluster".into(),
        ),
        ("SELEXTRACT__BILLING__ENABLED".into(), "true".into()),
        ("SELEXTRACT__BILLING__DEFAULT_PLAN".into(), "starter".into()),
        (
            "SELEXTRACT__SERVER__RATE_LIMIT_PER_MINUTE".into(),
            "100000".into(),
        ),
        ("SELEXTRACT__WORKER__LEASE_SECONDS".into(), "2".into()),
        ("SELEXTRACT__WORKER__HEARTBEAT_MS".into(), "200".into()),
        ("SELEXTRACT__WORKER__POLL_MS".into(), "200".into()),
        ("SELEXTRACT__WORKER__GRACE_SECONDS".into(), "2".into()),
        ("SELEXTRACT__WORKER__MAX_ATTEMPTS".into(), "10".into()),
        ("RUST_LOG".into(), "warn".into()),
    ]);
    let cluster = Cluster { env, data };
    cluster.run_ok(&["migrate"]);
    let mut keys = Vec::new();
    for user in 0..20 {
        let email = format!("user{user}@example.com");
        cluster.run_ok(&["user", "create", "--email", &email, "--plan", "starter"]);
        keys.push(
            cluster
                .run_ok(&["key", "create", "--email", &email])
                .trim()
                .to_owned(),
        );
    }
    let (_api_a, base_a) = cluster.api_process();
    let (_api_b, base_b) = cluster.api_process();

    // User 0 is the big one: 310 runs; users 1..20 submit 10 each. Alternate API processes.
    let task = json!({
        "start_urls": [site.url("/catalog?page=1")],
        "item_selector": "div.product",
        "fields": [{"name": "title", "selector": "h2 a"}],
        "pagination": {"next_selector": "a.next", "max_pages": 10},
        "respect_robots_txt": false
    });
    let submissions = |user: usize, n: usize| -> Vec<(usize, String)> {
        (0..n)
            .map(|i| {
                (
                    user,
                    if i % 2 == 0 {
                        base_a.clone()
                    } else {
                        base_b.clone()
                    },
                )
            })
            .collect()
    };
    let mut jobs = submissions(0, 310);
    for user in 1..20 {
        jobs.extend(submissions(user, 10));
    }
    let mut runs: Vec<(usize, String)> = Vec::with_capacity(jobs.len());
    // Everything is queued before the workers start; the big user submitted first, so the
    // small users' runs sit behind 310 of theirs in submission order.
    for (user, base) in jobs {
        let api = Api::new(&base, &keys[user]);
        let (status, created) = api.post_json("/api/v1/tasks", &task).await;
        assert_eq!(status, 201, "{created}");
        runs.push((
            user,
            created["latest_run"]["id"]
                .as_str()
                .expect("run id")
                .to_owned(),
        ));
    }
    assert_eq!(runs.len(), 500);
    let mut workers = vec![cluster.worker(), cluster.worker(), cluster.worker()];

    // Kill a random worker every ~1.5 s (four times) and start a replacement, while
    // sampling the number of running runs per user.
    let mut max_running: HashMap<String, u64> = HashMap::new();
    let mut kills = 0;
    let started = Instant::now();
    let mut last_kill = Instant::now();
    let db = db_url.to_string();
    loop {
        for line in psql(
            &db,
            "SELECT user_id, count(*) FROM runs WHERE state = 'running' GROUP BY user_id",
        )
        .lines()
        {
            if let Some((user, n)) = line.split_once('|') {
                let n: u64 = n.parse().unwrap_or(0);
                let entry = max_running.entry(user.to_owned()).or_default();
                *entry = (*entry).max(n);
            }
        }
        if kills < 4 && last_kill.elapsed() > Duration::from_millis(1500) {
            let victim = (kills * 7 + 1) % workers.len();
            workers[victim] = cluster.worker(); // dropping the old Proc sends SIGKILL
            kills += 1;
            last_kill = Instant::now();
        }
        let open = psql(
            &db,
            "SELECT count(*) FROM runs WHERE state IN ('queued', 'running')",
        );
        if open.trim() == "0" && kills == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "runs still open after 10 minutes: {open}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(workers);

    let states = psql(
        &db,
        "SELECT state, count(*) FROM runs GROUP BY state ORDER BY state",
    );
    assert_eq!(
        states.trim(),
        "completed|500",
        "every run completed: {states}"
    );
    for (user, n) in &max_running {
        assert!(
            *n <= PLAN_CAP,
            "user {user} had {n} runs running at once (cap {PLAN_CAP})"
        );
    }
    // Each of the 3 pages of every run charged exactly once.
    let charges = psql(
        &db,
        "SELECT count(*), count(DISTINCT idempotency_key), coalesce(sum(amount), 0) FROM ledger WHERE kind = 'charge'",
    );
    assert_eq!(charges.trim(), "1500|1500|1500", "charges: {charges}");
    let per_run = psql(
        &db,
        "SELECT count(*) FROM (SELECT run_id FROM run_pages GROUP BY run_id HAVING count(*) <> 3) t",
    );
    assert_eq!(
        per_run.trim(),
        "0",
        "every run has exactly 3 committed pages"
    );

    // The records really live in the bucket.
    assert!(
        !s3.list_keys("selextract-cluster", "cluster/runs/")
            .is_empty(),
        "no objects in S3"
    );

    // Records complete, no duplicates: every run through the API of either process.
    for (i, (user, run_id)) in runs.iter().enumerate() {
        let api = Api::new(if i % 2 == 0 { &base_a } else { &base_b }, &keys[*user]);
        let records = api.all_records(run_id).await;
        let titles: HashSet<String> = records
            .iter()
            .filter_map(|r| r["title"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(records.len(), 30, "run {run_id}");
        assert_eq!(titles.len(), 30, "run {run_id} has duplicates");
    }

    // Not starved: every small user's first run started before the big user had started
    // half of theirs.
    let big_user = psql(
        &db,
        "SELECT id FROM users WHERE email = 'user0@example.com'",
    )
    .trim()
    .to_owned();
    let big_half = psql(
        &db,
        &format!(
            "SELECT started_at FROM runs WHERE user_id = '{big_user}' ORDER BY started_at LIMIT 1 OFFSET 155"
        ),
    );
    let small_first = psql(
        &db,
        &format!(
            "SELECT max(first) FROM (SELECT min(started_at) AS first FROM runs WHERE user_id <> '{big_user}' GROUP BY user_id) t"
        ),
    );
    let (big_half, small_first): (i64, i64) = (
        big_half.trim().parse().expect("time"),
        small_first.trim().parse().expect("time"),
    );
    assert!(
        small_first < big_half,
        "a small user waited behind the big user's runs"
    );
    psql(
        &admin_url,
        &format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
    );
}
