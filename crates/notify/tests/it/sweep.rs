//! The outcome sweep: a run failed by a lost worker's last attempt gets its `run.failed`
//! event once; a run cancelled in the queue gets none.

use std::time::Duration;

use selextract_notify::sweep_outcomes;
use selextract_store::RunState;
use selextract_store::testing::{Backend, test_store};
use serde_json::json;

use crate::support::{config, deliveries, task, user};

selextract_store::both_backends!(a_lost_workers_failed_run_notifies_once);
async fn a_lost_workers_failed_run_notifies_once(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let config = config(&[]);
    let alice = user(&store, "alice@example.com").await;
    let books = task(&store, &alice, "books", json!({"webhook_url": "https://hooks.example/x", "email": "ops@example.com", "on": ["failed", "completed"]})).await;
    let run = store
        .enqueue_run(&alice.id, &books.id, &books.spec, 5, 1)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = store
        .claim_next_run("w1", Duration::from_secs(1), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, run.id);
    // The worker vanished: its lease lapses and its only attempt fails the run.
    store.requeue_expired_runs(now + 2_000).await.unwrap();
    let cancelled = store
        .enqueue_run(&alice.id, &books.id, &books.spec, 5, 1)
        .await
        .unwrap();
    store
        .request_cancel(&alice.id, &cancelled.id)
        .await
        .unwrap();

    assert_eq!(
        sweep_outcomes(&store, &config, now + 3_000).await.unwrap(),
        2
    );
    assert_eq!(
        sweep_outcomes(&store, &config, now + 4_000).await.unwrap(),
        0
    );
    let all = deliveries(&store, &alice).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(
        all.iter()
            .all(|d| d.event == "run.failed" && d.run_id.as_deref() == Some(run.id.as_str()))
    );
    let mut channels: Vec<_> = all.iter().map(|d| d.channel.as_str()).collect();
    channels.sort();
    assert_eq!(channels, ["email", "webhook"]);
    let document = &all[0].payload;
    assert_eq!(document["run"]["state"], RunState::Failed.as_str());
    assert_eq!(document["run"]["reason"], "worker_lost_max_attempts");
}
