//! A run's outcome written with its end (`outcome.rs`): the change summary and the
//! deliveries go in with the run's terminal state or not at all, only the worker holding the
//! lease writes them, nothing is queued twice, and runs settled elsewhere (a lost worker's
//! last attempt) get their outcome recorded exactly once (`outcome_sweep.rs`).

use std::time::Duration;

use selextract_store::testing::query_int;
use selextract_store::{NewDelivery, Progress, Run, RunChanges, RunState, Store, StoreError};
use serde_json::json;

use crate::support::{Backend, T0, both_backends, task, test_store, user};

pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// When a lease taken at `T0` has run out.
pub(crate) const EXPIRED: i64 = T0 + 30_000 + 1;

/// A run of a fresh task of a fresh user, claimed by `worker` at `T0`.
pub(crate) async fn claimed_run(store: &Store, worker: &str, max_attempts: u32) -> Run {
    let alice = user(store, "alice@example.com", 2).await;
    let prices = task(store, &alice, "prices").await;
    let queued = store
        .enqueue_run(&alice.id, &prices.id, &prices.spec, 5, max_attempts)
        .await
        .unwrap();
    let run = store
        .claim_next_run(worker, LEASE, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.id, queued.id);
    run
}

pub(crate) fn changes_of(run: &Run) -> RunChanges {
    RunChanges {
        run_id: run.id.clone(),
        task_id: run.task_id.clone(),
        user_id: run.user_id.clone(),
        previous_run_id: Some("019ad3a3-0000-7000-8000-0000000000aa".to_owned()),
        key_field: Some("url".to_owned()),
        previous_records: 40,
        records: 42,
        added: 3,
        removed: 1,
        changed: 2,
        unchanged: 37,
        changed_fraction: 6.0 / 42.0,
        passed_threshold: true,
        detail_items: 6,
        detail_chunk_size: 500,
        snapshot_chunks: 1,
        created_at_ms: T0 + 5_000,
    }
}

pub(crate) fn delivery(
    run: &Run,
    id: &str,
    event: &str,
    channel: &str,
    target: &str,
) -> NewDelivery {
    NewDelivery {
        id: id.to_owned(),
        user_id: run.user_id.clone(),
        task_id: Some(run.task_id.clone()),
        run_id: Some(run.id.clone()),
        event: event.to_owned(),
        channel: channel.to_owned(),
        target: target.to_owned(),
        payload: json!({"event": event, "run_id": run.id}),
        next_attempt_at_ms: T0 + 5_000,
        give_up_at_ms: T0 + 5_000 + 86_400_000,
        created_at_ms: T0 + 5_000,
    }
}

pub(crate) fn progress() -> Progress {
    Progress {
        pages_done: 5,
        pages_failed: 0,
        pages_known: 5,
        records: 42,
        bytes: 9_000,
        compute_units: 5,
    }
}

/// One integer selected about run `run_id` (`{run}` in `sql` stands for its quoted id).
pub(crate) async fn int_about(store: &Store, run_id: &str, sql: &str) -> i64 {
    // Run ids are UUIDs the store generated: nothing to escape.
    query_int(store, &sql.replace("{run}", &format!("'{run_id}'")))
        .await
        .unwrap()
}

pub(crate) async fn deliveries_of(store: &Store, run_id: &str) -> i64 {
    int_about(
        store,
        run_id,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE run_id = {run}",
    )
    .await
}

pub(crate) async fn change_rows_of(store: &Store, run_id: &str) -> i64 {
    int_about(
        store,
        run_id,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM run_changes WHERE run_id = {run}",
    )
    .await
}

/// The run's `outcome_recorded_at`, -1 when NULL.
pub(crate) async fn outcome_recorded_at(store: &Store, run_id: &str) -> i64 {
    int_about(
        store,
        run_id,
        "SELECT CAST(COALESCE(outcome_recorded_at, -1) AS BIGINT) FROM runs WHERE id = {run}",
    )
    .await
}

pub(crate) async fn ids_without_outcome(store: &Store) -> Vec<String> {
    store
        .runs_without_outcome(100)
        .await
        .unwrap()
        .into_iter()
        .map(|run| run.id)
        .collect()
}

both_backends!(finishing_with_the_outcome_writes_the_end_the_changes_and_the_deliveries);
async fn finishing_with_the_outcome_writes_the_end_the_changes_and_the_deliveries(
    backend: Backend,
) {
    let (store, _db) = test_store(backend).await;
    let run = claimed_run(&store, "w1", 3).await;
    let changes = changes_of(&run);
    let deliveries = [
        delivery(
            &run,
            "d-1",
            "run.completed",
            "webhook",
            "https://hooks.example.com/a",
        ),
        delivery(
            &run,
            "d-2",
            "changes.detected",
            "email",
            "alice@example.com",
        ),
    ];
    let finished = store
        .finish_run_with_outcome(
            &run.id,
            "w1",
            RunState::Completed,
            "ok",
            None,
            &progress(),
            T0 + 5_000,
            Some(&changes),
            &deliveries,
        )
        .await
        .unwrap();
    assert!(finished);

    let after = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(after.state, RunState::Completed);
    assert_eq!(after.reason.as_deref(), Some("ok"));
    assert_eq!(after.finished_at_ms, Some(T0 + 5_000));
    assert_eq!(after.lease_until_ms, None);
    assert_eq!(after.progress, progress());
    assert_eq!(outcome_recorded_at(&store, &run.id).await, T0 + 5_000);
    assert!(ids_without_outcome(&store).await.is_empty());

    // The change summary, as given.
    assert_eq!(change_rows_of(&store, &run.id).await, 1);
    let summary = int_about(
        &store,
        &run.id,
        "SELECT CAST(added * 1000000 + removed * 10000 + changed * 100 + passed_threshold \
         AS BIGINT) FROM run_changes WHERE run_id = {run} AND records = 42 \
         AND previous_records = 40 AND unchanged = 37 AND key_field = 'url' \
         AND previous_run_id = '019ad3a3-0000-7000-8000-0000000000aa' AND detail_items = 6 \
         AND detail_chunk_size = 500 AND snapshot_chunks = 1",
    )
    .await;
    assert_eq!(summary, 3_010_201);

    // Both deliveries, pending and untried, due when the outcome said.
    assert_eq!(deliveries_of(&store, &run.id).await, 2);
    let pending = int_about(
        &store,
        &run.id,
        &format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE run_id = {{run}} \
             AND state = 'pending' AND attempts = 0 AND lease_owner IS NULL \
             AND next_attempt_at = {} AND give_up_at = {} AND created_at = {} \
             AND user_id = '{}' AND task_id = '{}'",
            T0 + 5_000,
            T0 + 5_000 + 86_400_000,
            T0 + 5_000,
            run.user_id,
            run.task_id
        ),
    )
    .await;
    assert_eq!(pending, 2);
    let webhook = int_about(
        &store,
        &run.id,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE run_id = {run} \
         AND id = 'd-1' AND event = 'run.completed' AND channel = 'webhook' \
         AND target = 'https://hooks.example.com/a'",
    )
    .await;
    assert_eq!(webhook, 1);
}

both_backends!(a_worker_that_no_longer_holds_the_lease_writes_nothing);
async fn a_worker_that_no_longer_holds_the_lease_writes_nothing(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = claimed_run(&store, "w1", 3).await;
    // w1 stops renewing; its run goes back to the queue and w2 takes it.
    let report = store.requeue_expired_runs(EXPIRED).await.unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&run.id));
    let retaken = store
        .claim_next_run("w2", LEASE, EXPIRED)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retaken.id, run.id);

    let finished = store
        .finish_run_with_outcome(
            &run.id,
            "w1",
            RunState::Completed,
            "ok",
            None,
            &progress(),
            EXPIRED + 1_000,
            Some(&changes_of(&run)),
            &[delivery(
                &run,
                "d-1",
                "run.completed",
                "webhook",
                "https://h.example.com/",
            )],
        )
        .await
        .unwrap();
    assert!(!finished, "a worker without the lease finished the run");

    let after = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(after.state, RunState::Running);
    assert_eq!(after.lease_owner.as_deref(), Some("w2"));
    assert_eq!(after.finished_at_ms, None);
    assert_eq!(after.progress, Progress::default());
    assert_eq!(outcome_recorded_at(&store, &run.id).await, -1);
    assert_eq!(change_rows_of(&store, &run.id).await, 0);
    assert_eq!(deliveries_of(&store, &run.id).await, 0);

    // The holder finishes it, with its own outcome.
    assert!(
        store
            .finish_run_with_outcome(
                &run.id,
                "w2",
                RunState::Completed,
                "ok",
                None,
                &progress(),
                EXPIRED + 2_000,
                Some(&changes_of(&run)),
                &[delivery(
                    &run,
                    "d-2",
                    "run.completed",
                    "webhook",
                    "https://h.example.com/"
                )],
            )
            .await
            .unwrap()
    );
    assert_eq!(change_rows_of(&store, &run.id).await, 1);
    assert_eq!(deliveries_of(&store, &run.id).await, 1);
}

both_backends!(recording_an_outcome_again_inserts_nothing_twice);
async fn recording_an_outcome_again_inserts_nothing_twice(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = claimed_run(&store, "w1", 3).await;
    let deliveries = [
        delivery(
            &run,
            "d-1",
            "run.completed",
            "webhook",
            "https://h.example.com/",
        ),
        delivery(
            &run,
            "d-2",
            "run.completed",
            "slack",
            "https://hooks.slack.com/x",
        ),
    ];
    let finish = |now: i64, deliveries: Vec<NewDelivery>| {
        let store = store.clone();
        let run = run.clone();
        async move {
            store
                .finish_run_with_outcome(
                    &run.id,
                    "w1",
                    RunState::Completed,
                    "ok",
                    None,
                    &progress(),
                    now,
                    Some(&changes_of(&run)),
                    &deliveries,
                )
                .await
                .unwrap()
        }
    };
    assert!(finish(T0 + 5_000, deliveries.to_vec()).await);
    // The same call again (a retry after a lost answer): the run is no longer running.
    assert!(!finish(T0 + 6_000, deliveries.to_vec()).await);
    // The sweep's path: the outcome is recorded already.
    let again = [
        delivery(
            &run,
            "d-3",
            "run.completed",
            "webhook",
            "https://h.example.com/",
        ),
        delivery(&run, "d-4", "run.completed", "email", "alice@example.com"),
    ];
    assert!(
        !store
            .record_outcome(&run.id, &again, T0 + 7_000)
            .await
            .unwrap()
    );

    assert_eq!(change_rows_of(&store, &run.id).await, 1);
    assert_eq!(deliveries_of(&store, &run.id).await, 2);
    assert_eq!(outcome_recorded_at(&store, &run.id).await, T0 + 5_000);
    let run_end = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(run_end.finished_at_ms, Some(T0 + 5_000));
}

both_backends!(one_delivery_per_run_event_channel_and_target);
async fn one_delivery_per_run_event_channel_and_target(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = claimed_run(&store, "w1", 3).await;
    // The same (run, event, channel, target) twice under two ids: the unique key keeps one.
    let deliveries = [
        delivery(
            &run,
            "d-1",
            "run.completed",
            "webhook",
            "https://h.example.com/",
        ),
        delivery(
            &run,
            "d-2",
            "run.completed",
            "webhook",
            "https://h.example.com/",
        ),
        delivery(
            &run,
            "d-3",
            "run.completed",
            "webhook",
            "https://other.example.com/",
        ),
    ];
    assert!(
        store
            .finish_run_with_outcome(
                &run.id,
                "w1",
                RunState::Completed,
                "ok",
                None,
                &progress(),
                T0 + 5_000,
                None,
                &deliveries,
            )
            .await
            .unwrap()
    );
    assert_eq!(deliveries_of(&store, &run.id).await, 2);
    let kept = int_about(
        &store,
        &run.id,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE run_id = {run} \
         AND id IN ('d-1', 'd-3')",
    )
    .await;
    assert_eq!(kept, 2, "the first of the duplicates is kept");
    // No change summary was given (not a monitor): none is written.
    assert_eq!(change_rows_of(&store, &run.id).await, 0);
}

both_backends!(a_run_cannot_finish_in_a_non_terminal_state);
async fn a_run_cannot_finish_in_a_non_terminal_state(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let run = claimed_run(&store, "w1", 3).await;
    for state in [RunState::Queued, RunState::Running] {
        let error = store
            .finish_run_with_outcome(
                &run.id,
                "w1",
                state,
                "ok",
                None,
                &progress(),
                T0 + 5_000,
                Some(&changes_of(&run)),
                &[delivery(
                    &run,
                    "d-1",
                    "run.completed",
                    "webhook",
                    "https://h.example.com/",
                )],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::InvalidArgument(message) if message.contains(state.as_str())),
            "{state}: {error:?}"
        );
    }
    let after = store.find_run_any_user(&run.id).await.unwrap().unwrap();
    assert_eq!(after.state, RunState::Running);
    assert_eq!(after.lease_owner.as_deref(), Some("w1"));
    assert_eq!(change_rows_of(&store, &run.id).await, 0);
    assert_eq!(deliveries_of(&store, &run.id).await, 0);

    // Nor is the outcome of an unfinished run recorded by the sweep's path.
    let early = [delivery(
        &run,
        "d-2",
        "run.failed",
        "webhook",
        "https://h.example.com/",
    )];
    assert!(
        !store
            .record_outcome(&run.id, &early, T0 + 6_000)
            .await
            .unwrap()
    );
    assert_eq!(deliveries_of(&store, &run.id).await, 0);
    assert_eq!(outcome_recorded_at(&store, &run.id).await, -1);
}
