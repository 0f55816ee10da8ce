//! Ticks against a real database with time driven through `now`: concurrent claimers,
//! overlap policies, compute units, disabled owners, downtime (missed, catch-up, folding,
//! the walk bound) and deleted tasks.

use std::time::Duration;

use chrono::TimeDelta;
use selextract_schedule::format_local;
use selextract_scheduler::{Processed, SchedulerConfig, process_schedule};
use selextract_store::{Plans, RunState, Store, TickOutcome};
use serde_json::json;

use crate::support::{Backend, Env, both_backends, config, utc};

async fn process_at(
    env: &Env,
    config: &SchedulerConfig,
    task: &selextract_store::Task,
    now: chrono::DateTime<chrono::Utc>,
) -> Processed {
    let schedule = env.schedule(task).await;
    process_schedule(&env.store, config, &schedule, now)
        .await
        .unwrap()
}

async fn runs_of(store: &Store, user_id: &str, task_id: &str) -> Vec<selextract_store::Run> {
    store
        .list_runs(user_id, task_id, selextract_store::Page::new(1, 100))
        .await
        .unwrap()
        .items
}

both_backends!(eight_concurrent_claimers_record_each_tick_once);
async fn eight_concurrent_claimers_record_each_tick_once(backend: Backend) {
    let env = Env::start(backend).await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(json!({"cron": "* * * * * *", "timezone": "UTC"}), start)
        .await;
    let config = config();
    for second in 1..=12 {
        let now = start + TimeDelta::seconds(second);
        // Eight claimers read the schedule, then all race to claim the same fires.
        let schedule = env.schedule(&task).await;
        let mut racers = Vec::new();
        for _ in 0..8 {
            let store = env.store.clone();
            let config = config.clone();
            let schedule = schedule.clone();
            racers.push(tokio::spawn(async move {
                process_schedule(&store, &config, &schedule, now)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for racer in racers {
            if matches!(racer.await.unwrap(), Processed::Recorded(_)) {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "second {second}: exactly one claimer wins");
    }
    let ticks = env.ticks(&task).await;
    let seconds: Vec<String> = ticks
        .iter()
        .map(|tick| tick.scheduled_local.clone())
        .collect();
    let expected: Vec<String> = (1..=12)
        .map(|s| format_local((start + TimeDelta::seconds(s)).naive_utc()))
        .collect();
    assert_eq!(
        seconds, expected,
        "one tick per second, none doubled or lost"
    );
    let started: Vec<_> = ticks
        .iter()
        .filter(|tick| tick.outcome == TickOutcome::Started)
        .collect();
    assert_eq!(
        started.len(),
        1,
        "skip: the first run is still queued for the rest"
    );
    assert!(ticks.iter().all(|tick| matches!(
        tick.outcome,
        TickOutcome::Started | TickOutcome::SkippedOverlap
    )));
    let runs = runs_of(&env.store, &env.user.id, &task.id).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(started[0].run_id.as_deref(), Some(runs[0].id.as_str()));
    assert_eq!(runs[0].spec, task.spec, "the run snapshots the task's spec");
    assert_eq!(runs[0].priority, task.priority);
}

both_backends!(overlap_queue_keeps_one_run_waiting_behind_the_running_one);
async fn overlap_queue_keeps_one_run_waiting_behind_the_running_one(backend: Backend) {
    let env = Env::start(backend).await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(
            json!({"cron": "* * * * * *", "timezone": "UTC", "overlap": "queue"}),
            start,
        )
        .await;
    let config = config();
    process_at(&env, &config, &task, start + TimeDelta::seconds(1)).await;
    let claimed = env
        .store
        .claim_next_run(
            "w1",
            Duration::from_secs(30),
            (start + TimeDelta::seconds(1)).timestamp_millis(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.task_id, task.id);
    process_at(&env, &config, &task, start + TimeDelta::seconds(2)).await;
    process_at(&env, &config, &task, start + TimeDelta::seconds(3)).await;
    let outcomes: Vec<TickOutcome> = env.ticks(&task).await.iter().map(|t| t.outcome).collect();
    assert_eq!(
        outcomes,
        [
            TickOutcome::Started,
            TickOutcome::Started,
            TickOutcome::SkippedOverlap
        ],
        "one queued behind the running run, the next tick skipped"
    );
}

both_backends!(overlap_cancel_previous_cancels_the_active_runs_and_starts_anew);
async fn overlap_cancel_previous_cancels_the_active_runs_and_starts_anew(backend: Backend) {
    let env = Env::start(backend).await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(
            json!({"cron": "* * * * * *", "timezone": "UTC", "overlap": "cancel_previous"}),
            start,
        )
        .await;
    let config = config();
    process_at(&env, &config, &task, start + TimeDelta::seconds(1)).await;
    let running = env
        .store
        .claim_next_run(
            "w1",
            Duration::from_secs(30),
            (start + TimeDelta::seconds(1)).timestamp_millis(),
        )
        .await
        .unwrap()
        .unwrap();
    process_at(&env, &config, &task, start + TimeDelta::seconds(2)).await;
    process_at(&env, &config, &task, start + TimeDelta::seconds(3)).await;
    let ticks = env.ticks(&task).await;
    assert!(ticks.iter().all(|t| t.outcome == TickOutcome::Started));
    assert_eq!(ticks.len(), 3);
    let running = env
        .store
        .find_run_any_user(&running.id)
        .await
        .unwrap()
        .unwrap();
    assert!(running.cancel_requested, "the running run is asked to stop");
    let second = env
        .store
        .find_run_any_user(ticks[1].run_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.state,
        RunState::Cancelled,
        "the queued run is cancelled by the next tick"
    );
    let third = env
        .store
        .find_run_any_user(ticks[2].run_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.state, RunState::Queued);
}

both_backends!(a_limited_plan_without_compute_units_records_insufficient_compute_units);
async fn a_limited_plan_without_compute_units_records_insufficient_compute_units(backend: Backend) {
    let env = Env::start_with_plan(backend, "free").await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(json!({"cron": "* * * * * *", "timezone": "UTC"}), start)
        .await;
    let config = SchedulerConfig {
        plans: Plans {
            billing_enabled: true,
            ..Plans::default()
        },
        ..config()
    };
    process_at(&env, &config, &task, start + TimeDelta::seconds(1)).await;
    env.store
        .grant_compute_units(&env.user.id, 10, "test-grant")
        .await
        .unwrap();
    process_at(&env, &config, &task, start + TimeDelta::seconds(2)).await;
    let outcomes: Vec<TickOutcome> = env.ticks(&task).await.iter().map(|t| t.outcome).collect();
    assert_eq!(
        outcomes,
        [TickOutcome::InsufficientComputeUnits, TickOutcome::Started]
    );
    assert_eq!(runs_of(&env.store, &env.user.id, &task.id).await.len(), 1);
}

both_backends!(a_disabled_owner_gets_user_disabled_ticks_and_no_runs);
async fn a_disabled_owner_gets_user_disabled_ticks_and_no_runs(backend: Backend) {
    let env = Env::start(backend).await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(json!({"cron": "* * * * * *", "timezone": "UTC"}), start)
        .await;
    env.store
        .set_user_disabled(&env.user.id, true)
        .await
        .unwrap();
    process_at(&env, &config(), &task, start + TimeDelta::seconds(1)).await;
    let outcomes: Vec<TickOutcome> = env.ticks(&task).await.iter().map(|t| t.outcome).collect();
    assert_eq!(outcomes, [TickOutcome::UserDisabled]);
    assert!(runs_of(&env.store, &env.user.id, &task.id).await.is_empty());
}

both_backends!(after_downtime_missed_ticks_are_recorded_and_catch_up_latest_runs_one);
async fn after_downtime_missed_ticks_are_recorded_and_catch_up_latest_runs_one(backend: Backend) {
    for (catch_up, catch_up_runs) in [("latest", 1), ("none", 0)] {
        let env = Env::start(backend).await;
        let start = utc(2026, 6, 1, 12, 0, 0);
        let task = env
            .scheduled_task(
                json!({"cron": "0 * * * * *", "timezone": "UTC", "catch_up": catch_up}),
                start,
            )
            .await;
        // Down from 12:00 to 12:10:30: fires 12:01 … 12:09 are past the 60 s grace, 12:10
        // is on time.
        process_at(&env, &config(), &task, start + TimeDelta::seconds(630)).await;
        let ticks = env.ticks(&task).await;
        assert_eq!(ticks.len(), 10, "{catch_up}");
        let catch_ups: Vec<_> = ticks
            .iter()
            .filter(|t| {
                t.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("catch_up"))
            })
            .collect();
        assert_eq!(catch_ups.len(), catch_up_runs, "{catch_up}");
        if let Some(tick) = catch_ups.first() {
            assert_eq!(tick.scheduled_local, "2026-06-01T12:09:00");
            assert_eq!(tick.outcome, TickOutcome::Started);
        }
        let missed = ticks
            .iter()
            .filter(|t| t.outcome == TickOutcome::Missed)
            .count();
        assert_eq!(missed, 9 - catch_up_runs, "{catch_up}");
        let last = ticks.last().unwrap();
        assert_eq!(last.scheduled_local, "2026-06-01T12:10:00");
        let expected_last = if catch_up_runs == 1 {
            TickOutcome::SkippedOverlap
        } else {
            TickOutcome::Started
        };
        assert_eq!(last.outcome, expected_last, "{catch_up}");
        assert_eq!(runs_of(&env.store, &env.user.id, &task.id).await.len(), 1);
    }
}

both_backends!(a_long_outage_folds_missed_ticks_into_one_row_and_bounds_the_walk);
async fn a_long_outage_folds_missed_ticks_into_one_row_and_bounds_the_walk(backend: Backend) {
    let env = Env::start(backend).await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(json!({"cron": "* * * * * *", "timezone": "UTC"}), start)
        .await;
    let config = SchedulerConfig {
        max_missed_rows: 3,
        ..config()
    };
    // 1,000 s down: 939 fires past the 60 s grace (the last 61 are on time).
    process_at(&env, &config, &task, start + TimeDelta::seconds(1000)).await;
    let ticks = env.ticks(&task).await;
    let total: u64 = ticks.iter().map(|t| t.missed_count).sum();
    assert_eq!(total, 1000, "every fire is accounted for, once");
    let missed_rows = ticks
        .iter()
        .filter(|t| t.outcome == TickOutcome::Missed)
        .count();
    assert_eq!(missed_rows, 4, "three rows, then one for the rest");
    let folded = ticks.iter().find(|t| t.missed_count > 1).unwrap();
    assert_eq!(
        folded.missed_count,
        939 - 1 - 3,
        "less the catch-up and three rows"
    );

    // 30 days down: the walk stops counting and jumps; still one catch-up run.
    let later = start + TimeDelta::days(30);
    process_at(&env, &config, &task, later).await;
    let schedule = env.schedule(&task).await;
    assert_eq!(
        schedule.next_fire_at_ms,
        Some((later + TimeDelta::seconds(1)).timestamp_millis())
    );
    let new: Vec<_> = env
        .ticks(&task)
        .await
        .into_iter()
        .skip(ticks.len())
        .collect();
    let folded = new.iter().find(|t| t.missed_count > 1).unwrap();
    assert!(
        folded.detail.as_deref().unwrap().contains("at least"),
        "{folded:?}"
    );
    assert!(new.len() < 100, "{} rows", new.len());
    let catch_ups = new
        .iter()
        .filter(|t| {
            t.detail
                .as_deref()
                .is_some_and(|d| d.starts_with("catch_up"))
        })
        .count();
    assert_eq!(catch_ups, 1);
}

both_backends!(a_deleted_task_loses_its_schedule_at_the_next_tick);
async fn a_deleted_task_loses_its_schedule_at_the_next_tick(backend: Backend) {
    let env = Env::start(backend).await;
    let start = utc(2026, 6, 1, 12, 0, 0);
    let task = env
        .scheduled_task(json!({"cron": "* * * * * *", "timezone": "UTC"}), start)
        .await;
    let schedule = env.schedule(&task).await;
    env.store.delete_task(&env.user.id, &task.id).await.unwrap();
    let outcome = process_schedule(
        &env.store,
        &config(),
        &schedule,
        start + TimeDelta::seconds(1),
    )
    .await
    .unwrap();
    assert!(matches!(
        outcome,
        Processed::NotClaimed | Processed::TaskGone
    ));
    assert!(
        env.store
            .find_schedule_any_user(&task.id)
            .await
            .unwrap()
            .is_none()
    );
}

both_backends!(installation_jobs_are_scheduled_on_the_same_rows);
async fn installation_jobs_are_scheduled_on_the_same_rows(backend: Backend) {
    let env = Env::start(backend).await;
    for job in selextract_scheduler::system_jobs() {
        selextract_schedule::CronSchedule::parse(job.cron, job.timezone).unwrap();
    }
    selextract_scheduler::register_system_jobs(&env.store)
        .await
        .unwrap();
    // A second process registering again keeps the cursor.
    let first = env
        .store
        .find_schedule_any_user("system:monthly_grants")
        .await
        .unwrap()
        .unwrap();
    selextract_scheduler::register_system_jobs(&env.store)
        .await
        .unwrap();
    let again = env
        .store
        .find_schedule_any_user("system:monthly_grants")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.cursor_local, again.cursor_local);
    let now = chrono::Utc::now();
    let claimed = selextract_scheduler::process_due_schedules(&env.store, &config(), now)
        .await
        .unwrap();
    assert_eq!(
        claimed, 1,
        "a new installation catches up the job's last hourly fire"
    );
    let ticks = env
        .store
        .list_schedule_ticks_any_user("system:monthly_grants")
        .await
        .unwrap();
    assert_eq!(
        ticks
            .iter()
            .filter(|t| t.outcome == TickOutcome::Started)
            .count(),
        1
    );
}
