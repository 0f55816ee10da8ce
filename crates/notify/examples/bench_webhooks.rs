//! Webhook throughput of one process's delivery loop (docs/BENCHMARKS.md): N signed
//! deliveries queued at once, drained by `run_deliveries` with the default concurrency (16)
//! against a receiver on 127.0.0.1 that answers 200 at once (and, in a second round, after
//! 50 ms, like a receiver doing some work). Reports deliveries per second and the
//! per-attempt latency the loop recorded (p50/p95/p99), on SQLite and PostgreSQL (a fresh
//! database each, as the store's tests make them).
//!
//! `cargo run --release -p selextract-notify --example bench_webhooks [deliveries]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use selextract_mail::Mailer;
use selextract_notify::{NotifyConfig, NotifyDeps, RunEventInput, deliveries_for_run};
use selextract_spec::TaskSpec;
use selextract_store::testing::{Backend, TestDatabase};
use selextract_store::{
    DeliveryFilter, DeliveryState, NewTask, NewUser, Progress, RunState, Store,
};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("the number of deliveries"))
        .unwrap_or(5_000);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for delay in [Duration::ZERO, Duration::from_millis(50)] {
            let db = TestDatabase::create(backend).await;
            let store = db.migrated_store().await;
            let (addr, hits) = receiver(delay).await;
            let config = NotifyConfig {
                poll_interval: Duration::from_millis(10),
                allowed_private_addrs: vec![addr],
                public_url: Some("https://sx.example".to_owned()),
                ..NotifyConfig::default()
            };
            queue(&store, &config, addr, count).await;
            let started = Instant::now();
            let stop = CancellationToken::new();
            let deps = NotifyDeps {
                mailer: Arc::new(Mailer::disabled()),
                resolver: None,
                owner: "bench".to_owned(),
            };
            let looping = tokio::spawn(selextract_notify::run_deliveries(
                store.clone(),
                config.clone(),
                deps,
                stop.clone(),
            ));
            while hits.load(Ordering::SeqCst) < count || !all_settled(&store).await {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let elapsed = started.elapsed();
            stop.cancel();
            looping.await.unwrap().unwrap();
            let mut latencies = latencies(&store).await;
            latencies.sort_unstable();
            let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
            println!(
                "{:<8} receiver +{:>2} ms: {count} deliveries in {:.2} s = {:>6.0}/s; attempt latency p50 {} ms, p95 {} ms, p99 {} ms (concurrency {})",
                store.backend_name(),
                delay.as_millis(),
                elapsed.as_secs_f64(),
                count as f64 / elapsed.as_secs_f64(),
                at(0.5),
                at(0.95),
                at(0.99),
                config.concurrency,
            );
        }
    }
}

/// A receiver answering 200 after `delay`; counts requests.
async fn receiver(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let router = axum::Router::new().fallback(axum::routing::post(move || {
        let counted = counted.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            counted.fetch_add(1, Ordering::SeqCst);
            "ok"
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, hits)
}

/// `count` deliveries of one event document, each to its own path of the receiver.
async fn queue(store: &Store, config: &NotifyConfig, addr: SocketAddr, count: usize) {
    let user = store
        .create_user(NewUser {
            email: "bench@example.com".to_owned(),
            password_hash: None,
            is_admin: false,
            plan: "self-hosted".to_owned(),
            max_concurrent_runs: 1,
        })
        .await
        .unwrap();
    let spec = serde_json::json!({
        "name": "bench",
        "start_urls": ["https://shop.example/"],
        "fields": [{"name": "title", "selector": "h1"}],
        "notify": {"webhook_url": format!("http://{addr}/hook"), "on": ["completed"]},
    });
    let task = store
        .create_task(NewTask {
            user_id: user.id.clone(),
            name: "bench".to_owned(),
            spec: spec.clone(),
            priority: 5,
        })
        .await
        .unwrap();
    let run = store
        .enqueue_run(&user.id, &task.id, &spec, 5, 3)
        .await
        .unwrap();
    store.request_cancel(&user.id, &run.id).await.unwrap();
    let parsed: TaskSpec = serde_json::from_value(spec).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let template = deliveries_for_run(
        &RunEventInput {
            run: &run,
            task_name: "bench",
            spec: &parsed,
            state: RunState::Completed,
            reason: "ok",
            error: None,
            progress: &Progress::default(),
            changes: None,
        },
        config,
        now,
    )
    .remove(0);
    let deliveries: Vec<_> = (0..count)
        .map(|i| selextract_store::NewDelivery {
            id: uuid::Uuid::new_v4().to_string(),
            target: format!("http://{addr}/hook/{i}"),
            ..template.clone()
        })
        .collect();
    assert!(
        store
            .record_outcome(&run.id, &deliveries, now)
            .await
            .unwrap()
    );
}

async fn all_settled(store: &Store) -> bool {
    let user = store
        .find_user_by_email("bench@example.com")
        .await
        .unwrap()
        .unwrap();
    let filter = DeliveryFilter {
        state: Some(DeliveryState::Pending),
        limit: 1,
        ..DeliveryFilter::default()
    };
    store
        .list_deliveries(&user.id, &filter)
        .await
        .unwrap()
        .0
        .is_empty()
}

async fn latencies(store: &Store) -> Vec<i64> {
    let user = store
        .find_user_by_email("bench@example.com")
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let filter = DeliveryFilter {
            before: before.clone(),
            limit: 1000,
            ..DeliveryFilter::default()
        };
        let (page, more) = store.list_deliveries(&user.id, &filter).await.unwrap();
        out.extend(page.iter().filter_map(|d| d.last_latency_ms));
        before = page.last().map(|d| (d.created_at_ms, d.id.clone()));
        if !more {
            return out;
        }
    }
}
