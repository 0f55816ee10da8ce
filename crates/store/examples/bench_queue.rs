//! Queue benchmark (run by `scripts/bench-queue`): claims per second with 4 and 16
//! concurrent claimers (each claim followed by finishing the run) on PostgreSQL and SQLite,
//! and on PostgreSQL the enqueue-to-start latency of an idle claimer woken by LISTEN/NOTIFY.
//! Each backend gets a fresh database (a new schema on PostgreSQL), dropped afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use selextract_store::testing::{Backend, TestDatabase};
use selextract_store::{NewTask, NewUser, Progress, RunState, Store, Task};
use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Notify, mpsc};

const LEASE: Duration = Duration::from_secs(300);
const USERS: usize = 64;
const RUNS_PER_ROUND: usize = 8_000;
const LATENCY_SAMPLES: usize = 300;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        for claimers in [4, 16] {
            let db = TestDatabase::create(backend).await;
            let store = connect(&db, claimers + 4).await;
            store.migrate().await.unwrap();
            let tasks = users_and_tasks(&store).await;
            enqueue_many(&store, &tasks, RUNS_PER_ROUND).await;
            let rate = claims_per_second(&store, claimers).await;
            println!(
                "{:<8} {claimers:>2} claimers: {rate:>7.0} claims/s (claim + finish, {RUNS_PER_ROUND} runs, {USERS} users)",
                store.backend_name()
            );
            store.close().await;
        }
    }
    let db = TestDatabase::create(Backend::Postgres).await;
    let store = connect(&db, 8).await;
    store.migrate().await.unwrap();
    let (p50, p99) = enqueue_to_start_latency(&db, &store).await;
    println!(
        "postgres enqueue-to-start (LISTEN/NOTIFY, {LATENCY_SAMPLES} samples): p50 {:.2} ms, p99 {:.2} ms",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    store.close().await;
}

async fn connect(db: &TestDatabase, connections: usize) -> Store {
    match db.backend {
        Backend::Postgres => {
            let options = PgConnectOptions::from_str(&db.url).unwrap();
            Store::connect_postgres(options, u32::try_from(connections).unwrap())
                .await
                .unwrap()
        }
        Backend::Sqlite => db.connect().await.unwrap(),
    }
}

async fn users_and_tasks(store: &Store) -> Vec<Task> {
    let mut tasks = Vec::new();
    for n in 0..USERS {
        let user = store
            .create_user(NewUser {
                email: format!("user{n}@example.com"),
                password_hash: None,
                is_admin: false,
                plan: "self-hosted".to_owned(),
                max_concurrent_runs: 1_000_000,
            })
            .await
            .unwrap();
        tasks.push(
            store
                .create_task(NewTask {
                    user_id: user.id,
                    name: "bench".to_owned(),
                    spec: serde_json::json!({"url": "http://127.0.0.1/"}),
                    priority: 5,
                })
                .await
                .unwrap(),
        );
    }
    tasks
}

async fn enqueue_many(store: &Store, tasks: &[Task], runs: usize) {
    let mut producers = Vec::new();
    for producer in 0..8 {
        let store = store.clone();
        let tasks = tasks.to_vec();
        producers.push(tokio::spawn(async move {
            for n in (producer..runs).step_by(8) {
                let task = &tasks[n % tasks.len()];
                store
                    .enqueue_run(&task.user_id, &task.id, &task.spec, 5, 3)
                    .await
                    .unwrap();
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
}

async fn claims_per_second(store: &Store, claimers: usize) -> f64 {
    let started = Instant::now();
    let mut handles = Vec::new();
    for n in 0..claimers {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("bench-{n}");
            let mut claimed = 0_u64;
            let mut idle_rounds = 0;
            // A claimer may see "nothing" while others hold the remaining users; it stops
            // after a few empty tries in a row.
            while idle_rounds < 3 {
                match store
                    .claim_next_run(&worker, LEASE, now_ms())
                    .await
                    .unwrap()
                {
                    Some(run) => {
                        idle_rounds = 0;
                        claimed += 1;
                        store
                            .finish_run(
                                &run.id,
                                &worker,
                                RunState::Completed,
                                "ok",
                                None,
                                &Progress::default(),
                                now_ms(),
                            )
                            .await
                            .unwrap();
                    }
                    None => idle_rounds += 1,
                }
            }
            claimed
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(
        total, RUNS_PER_ROUND as u64,
        "every run claimed exactly once"
    );
    total as f64 / elapsed.as_secs_f64()
}

/// An idle claimer in this process waits on the waker fed by LISTEN/NOTIFY; runs are
/// enqueued through another pool (another "process"), one at a time.
async fn enqueue_to_start_latency(db: &TestDatabase, store: &Store) -> (Duration, Duration) {
    let tasks = users_and_tasks(store).await;
    let producer = connect(db, 2).await;
    let waker = Arc::new(Notify::new());
    let _subscription = store.subscribe_queue_wakeups(waker.clone()).unwrap();
    // The subscription wakes once when listening starts.
    waker.notified().await;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let claimer_store = store.clone();
    let claimer = tokio::spawn(async move {
        loop {
            waker.notified().await;
            while let Some(run) = claimer_store
                .claim_next_run("latency", LEASE, now_ms())
                .await
                .unwrap()
            {
                if started_tx.send((run.id, Instant::now())).is_err() {
                    return;
                }
            }
        }
    });
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for n in 0..LATENCY_SAMPLES {
        let task = &tasks[n % tasks.len()];
        let enqueued_at = Instant::now();
        let run = producer
            .enqueue_run(&task.user_id, &task.id, &task.spec, 5, 3)
            .await
            .unwrap();
        let (started_id, started_at) = started_rx.recv().await.unwrap();
        assert_eq!(started_id, run.id);
        latencies.push(started_at - enqueued_at);
        // An idle gap, so that every sample starts from a waiting claimer.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    claimer.abort();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    (p50, p99)
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}
