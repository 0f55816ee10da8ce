//! Run logs, worker heartbeats and flags.

use std::time::Duration;

use selextract_store::testing::owned_run_unchecked;
use selextract_store::{LogLine, Page, WorkerHeartbeat};

use crate::support::{Backend, both_backends, enqueue, task, test_store, user};

fn line(n: i64) -> LogLine {
    LogLine {
        ts_ms: 1_000 + n,
        level: if n % 2 == 0 { "info" } else { "warn" }.to_owned(),
        message: format!("line {n}"),
        fields: if n == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!({"n": n})
        },
    }
}

both_backends!(run_logs_page_in_append_order_with_totals);
async fn run_logs_page_in_append_order_with_totals(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 1).await;
    let books = task(&store, &alice, "books").await;
    let runs = enqueue(&store, &books, 5, 2).await;
    let first: Vec<LogLine> = (0..3).map(line).collect();
    let second: Vec<LogLine> = (3..5).map(line).collect();
    store.append_run_logs(&runs[0], &first).await.unwrap();
    store.append_run_logs(&runs[0], &[]).await.unwrap();
    store.append_run_logs(&runs[0], &second).await.unwrap();
    store.append_run_logs(&runs[1], &[line(99)]).await.unwrap();

    let page1 = store
        .list_run_logs(
            &owned_run_unchecked(&store, &runs[0])
                .await
                .unwrap()
                .unwrap(),
            Page::new(1, 2),
        )
        .await
        .unwrap();
    let page3 = store
        .list_run_logs(
            &owned_run_unchecked(&store, &runs[0])
                .await
                .unwrap()
                .unwrap(),
            Page::new(3, 2),
        )
        .await
        .unwrap();
    assert_eq!((page1.total_count, page3.total_count), (5, 5));
    assert_eq!(page1.items, [line(0), line(1)]);
    assert_eq!(page3.items, [line(4)]);
    let other = store
        .list_run_logs(
            &owned_run_unchecked(&store, &runs[1])
                .await
                .unwrap()
                .unwrap(),
            Page::new(1, 10),
        )
        .await
        .unwrap();
    assert_eq!(other.items, [line(99)]);
}

fn heartbeat(id: &str, at: i64, processed: u64) -> WorkerHeartbeat {
    WorkerHeartbeat {
        id: id.to_owned(),
        host: "host-a".to_owned(),
        pid: 4242,
        started_at_ms: 500,
        heartbeat_at_ms: at,
        active_runs: 2,
        processed,
    }
}

both_backends!(live_workers_are_those_with_a_recent_heartbeat);
async fn live_workers_are_those_with_a_recent_heartbeat(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    store
        .upsert_worker_heartbeat(&heartbeat("w-old", 1_000, 1))
        .await
        .unwrap();
    store
        .upsert_worker_heartbeat(&heartbeat("w-new", 1_000, 1))
        .await
        .unwrap();
    store
        .upsert_worker_heartbeat(&heartbeat("w-new", 50_000, 9))
        .await
        .unwrap();
    let live = store
        .list_live_workers(Duration::from_secs(30), 60_000)
        .await
        .unwrap();
    assert_eq!(live, [heartbeat("w-new", 50_000, 9)]);
    let all = store
        .list_live_workers(Duration::from_secs(3600), 60_000)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    store.remove_worker("w-new").await.unwrap();
    assert!(
        store
            .list_live_workers(Duration::from_secs(30), 60_000)
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(flags_are_set_replaced_and_cleared);
async fn flags_are_set_replaced_and_cleared(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    assert_eq!(store.get_flag("maintenance").await.unwrap(), None);
    store
        .set_flag("maintenance", Some("upgrading"))
        .await
        .unwrap();
    store
        .set_flag("maintenance", Some("back soon"))
        .await
        .unwrap();
    assert_eq!(
        store.get_flag("maintenance").await.unwrap().as_deref(),
        Some("back soon")
    );
    store.set_flag("maintenance", None).await.unwrap();
    assert_eq!(store.get_flag("maintenance").await.unwrap(), None);
}
