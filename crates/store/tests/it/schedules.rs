//! Schedule rows and the tick claim at the store level: the row follows the spec (a changed
//! expression, zone or `enabled` restarts the cursor, anything else keeps it and the pause);
//! pause, resume and reads are scoped to the owner; the claim's compare-and-set lets exactly
//! one of many concurrent claimers record a tick; the UNIQUE guard; and a started tick's run
//! counts in the user's queue state like any enqueued run.

use selextract_store::{
    ClaimOutcome, FreshCursor, OverlapGuard, PlannedKind, PlannedTick, Plans, ScheduleTiming,
    Store, TickClaim, TickOutcome,
};

use crate::support::{Backend, T0, both_backends, task, test_store, user};

fn timing(cron: &str) -> ScheduleTiming {
    ScheduleTiming {
        cron: cron.to_owned(),
        timezone: "UTC".to_owned(),
        enabled: true,
    }
}

fn fresh(cursor: &str, next: i64) -> FreshCursor {
    FreshCursor {
        cursor_local: cursor.to_owned(),
        next_fire_at_ms: Some(next),
    }
}

fn claim(schedule_id: &str, seen: &str, new: &str, locals: &[&str]) -> TickClaim {
    TickClaim {
        schedule_id: schedule_id.to_owned(),
        seen_cursor: seen.to_owned(),
        ticks: locals
            .iter()
            .map(|local| PlannedTick {
                scheduled_local: (*local).to_owned(),
                scheduled_at_ms: Some(T0),
                kind: PlannedKind::Due,
                detail: None,
            })
            .collect(),
        new_cursor: new.to_owned(),
        next_fire_at_ms: Some(T0 + 1_000),
        overlap: OverlapGuard::SkipIfActive,
        max_attempts: 3,
        now_ms: T0,
    }
}

both_backends!(the_schedule_row_keeps_its_cursor_and_pause_unless_the_timing_changed);
async fn the_schedule_row_keeps_its_cursor_and_pause_unless_the_timing_changed(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 2).await;
    let job = task(&store, &alice, "job").await;
    let first = fresh("2026-01-01T00:00:00", T0);
    assert!(
        store
            .upsert_task_schedule(&alice.id, &job.id, &timing("* * * * *"), &first)
            .await
            .unwrap()
    );
    store
        .pause_task_schedule(&alice.id, &job.id, T0)
        .await
        .unwrap()
        .unwrap();

    let later = fresh("2026-02-01T00:00:00", T0 + 99);
    store
        .upsert_task_schedule(&alice.id, &job.id, &timing("* * * * *"), &later)
        .await
        .unwrap();
    let kept = store
        .find_task_schedule(&alice.id, &job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.cursor_local, "2026-01-01T00:00:00");
    assert_eq!(
        kept.paused_at_ms,
        Some(T0),
        "an unchanged schedule stays paused"
    );

    store
        .upsert_task_schedule(&alice.id, &job.id, &timing("*/5 * * * *"), &later)
        .await
        .unwrap();
    let restarted = store
        .find_task_schedule(&alice.id, &job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restarted.cursor_local, "2026-02-01T00:00:00");
    assert_eq!(restarted.next_fire_at_ms, Some(T0 + 99));

    // Another user reaches none of it.
    let bob = user(&store, "bob@example.com", 2).await;
    assert!(
        !store
            .upsert_task_schedule(&bob.id, &job.id, &timing("* * * * *"), &first)
            .await
            .unwrap()
    );
    assert!(
        store
            .find_task_schedule(&bob.id, &job.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .pause_task_schedule(&bob.id, &job.id, T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resume_task_schedule(&bob.id, &job.id, &first, T0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.delete_task_schedule(&bob.id, &job.id).await.unwrap());
    assert!(
        store
            .list_task_schedule_ticks(&bob.id, &job.id, None, 50)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .next_runs_of_tasks(&bob.id, std::slice::from_ref(&job.id))
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        store
            .delete_task_schedule(&alice.id, &job.id)
            .await
            .unwrap()
    );
    assert!(
        store
            .find_task_schedule(&alice.id, &job.id)
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(of_many_concurrent_claimers_exactly_one_records_the_tick);
async fn of_many_concurrent_claimers_exactly_one_records_the_tick(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 2).await;
    let job = task(&store, &alice, "job").await;
    store
        .upsert_task_schedule(
            &alice.id,
            &job.id,
            &timing("* * * * * *"),
            &fresh("2026-01-01T00:00:00", T0),
        )
        .await
        .unwrap();
    for round in 0..5u32 {
        let seen = format!("2026-01-01T00:00:0{round}");
        let new = format!("2026-01-01T00:00:0{}", round + 1);
        let mut racers = Vec::new();
        for _ in 0..8 {
            let store: Store = store.clone();
            let claim = claim(&job.id, &seen, &new, &[new.as_str()]);
            racers.push(tokio::spawn(async move {
                store
                    .claim_schedule_ticks(&claim, &Plans::default())
                    .await
                    .unwrap()
            }));
        }
        let mut claimed = 0;
        for racer in racers {
            match racer.await.unwrap() {
                ClaimOutcome::Claimed(ticks) => {
                    claimed += 1;
                    assert_eq!(ticks.len(), 1);
                }
                ClaimOutcome::NotClaimed => {}
                ClaimOutcome::TaskGone => panic!("the task exists"),
            }
        }
        assert_eq!(claimed, 1, "round {round}");
    }
    let ticks = store
        .list_task_schedule_ticks(&alice.id, &job.id, None, 50)
        .await
        .unwrap();
    assert_eq!(ticks.len(), 5);
    assert_eq!(
        ticks
            .iter()
            .filter(|t| t.outcome == TickOutcome::Started)
            .count(),
        1
    );
    let state = selextract_store::testing::queue_state_mismatches(&store)
        .await
        .unwrap();
    assert!(
        state.is_empty(),
        "queue counters follow the claim's run: {state:?}"
    );
}

both_backends!(a_tick_recorded_before_is_neither_recorded_nor_started_again);
async fn a_tick_recorded_before_is_neither_recorded_nor_started_again(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 2).await;
    let job = task(&store, &alice, "job").await;
    store
        .upsert_task_schedule(
            &alice.id,
            &job.id,
            &timing("* * * * * *"),
            &fresh("2026-01-01T00:00:00", T0),
        )
        .await
        .unwrap();
    let first = claim(
        &job.id,
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:01",
        &["2026-01-01T00:00:01"],
    );
    assert!(matches!(
        store
            .claim_schedule_ticks(&first, &Plans::default())
            .await
            .unwrap(),
        ClaimOutcome::Claimed(_)
    ));
    // A claim that names the same fire again (a cursor set back by hand) records nothing
    // for it: the UNIQUE guard.
    let mut again = claim(
        &job.id,
        "2026-01-01T00:00:01",
        "2026-01-01T00:00:02",
        &["2026-01-01T00:00:01"],
    );
    again.overlap = OverlapGuard::CancelActive;
    match store
        .claim_schedule_ticks(&again, &Plans::default())
        .await
        .unwrap()
    {
        ClaimOutcome::Claimed(ticks) => assert!(ticks.is_empty(), "{ticks:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store
            .list_task_schedule_ticks(&alice.id, &job.id, None, 50)
            .await
            .unwrap()
            .len(),
        1
    );
    let runs = store
        .list_runs(&alice.id, &job.id, selextract_store::Page::new(1, 10))
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1);
}

both_backends!(a_paused_schedule_is_not_due_and_cannot_be_claimed);
async fn a_paused_schedule_is_not_due_and_cannot_be_claimed(backend: Backend) {
    let (store, _db) = test_store(backend).await;
    let alice = user(&store, "alice@example.com", 2).await;
    let job = task(&store, &alice, "job").await;
    store
        .upsert_task_schedule(
            &alice.id,
            &job.id,
            &timing("* * * * * *"),
            &fresh("2026-01-01T00:00:00", T0),
        )
        .await
        .unwrap();
    assert_eq!(store.list_due_schedules(T0, 10).await.unwrap().len(), 1);
    store
        .pause_task_schedule(&alice.id, &job.id, T0)
        .await
        .unwrap()
        .unwrap();
    assert!(store.list_due_schedules(T0, 10).await.unwrap().is_empty());
    let paused = claim(
        &job.id,
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:01",
        &["2026-01-01T00:00:01"],
    );
    assert_eq!(
        store
            .claim_schedule_ticks(&paused, &Plans::default())
            .await
            .unwrap(),
        ClaimOutcome::NotClaimed
    );
    let resumed = store
        .resume_task_schedule(
            &alice.id,
            &job.id,
            &fresh("2026-03-01T00:00:00", T0 + 5),
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resumed.cursor_local, "2026-03-01T00:00:00",
        "resuming starts from now"
    );
    assert_eq!(resumed.paused_at_ms, None);
}
