//! DST days in Europe/Berlin, driven by explicit `now`: a wall-clock time the spring change
//! skips is recorded `skipped_nonexistent_time`; one the autumn change repeats fires once.

use selextract_scheduler::process_schedule;
use selextract_store::TickOutcome;
use serde_json::json;

use crate::support::{Backend, Env, both_backends, config, utc};

both_backends!(a_schedule_time_skipped_by_the_spring_change_is_recorded_as_nonexistent);
async fn a_schedule_time_skipped_by_the_spring_change_is_recorded_as_nonexistent(backend: Backend) {
    let env = Env::start(backend).await;
    let task = env
        .scheduled_task(
            json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"}),
            utc(2026, 3, 28, 12, 0, 0),
        )
        .await;
    // 02:30 does not exist on 29 March: due when the wall clock passes it, at 03:00 CEST.
    let schedule = env.schedule(&task).await;
    assert_eq!(
        schedule.next_fire_at_ms,
        Some(utc(2026, 3, 29, 1, 0, 0).timestamp_millis())
    );
    process_schedule(&env.store, &config(), &schedule, utc(2026, 3, 29, 1, 0, 5))
        .await
        .unwrap();
    let ticks = env.ticks(&task).await;
    assert_eq!(ticks.len(), 1);
    assert_eq!(ticks[0].scheduled_local, "2026-03-29T02:30:00");
    assert_eq!(ticks[0].outcome, TickOutcome::SkippedNonexistentTime);
    assert_eq!(ticks[0].scheduled_at_ms, None);
    assert_eq!(ticks[0].run_id, None);
    // The next fire is the next day's 02:30 CEST.
    let schedule = env.schedule(&task).await;
    assert_eq!(
        schedule.next_fire_at_ms,
        Some(utc(2026, 3, 30, 0, 30, 0).timestamp_millis())
    );
}

both_backends!(a_schedule_time_repeated_by_the_autumn_change_fires_once);
async fn a_schedule_time_repeated_by_the_autumn_change_fires_once(backend: Backend) {
    let env = Env::start(backend).await;
    let task = env
        .scheduled_task(
            json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"}),
            utc(2026, 10, 24, 12, 0, 0),
        )
        .await;
    // 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET).
    for now in [
        utc(2026, 10, 25, 0, 30, 5),
        utc(2026, 10, 25, 1, 0, 0),
        utc(2026, 10, 25, 1, 30, 5),
        utc(2026, 10, 25, 12, 0, 0),
    ] {
        let schedule = env.schedule(&task).await;
        process_schedule(&env.store, &config(), &schedule, now)
            .await
            .unwrap();
    }
    let ticks = env.ticks(&task).await;
    assert_eq!(ticks.len(), 1, "{ticks:?}");
    assert_eq!(ticks[0].scheduled_local, "2026-10-25T02:30:00");
    assert_eq!(ticks[0].outcome, TickOutcome::Started);
    assert_eq!(
        ticks[0].scheduled_at_ms,
        Some(utc(2026, 10, 25, 0, 30, 0).timestamp_millis())
    );
}

both_backends!(a_schedule_created_in_the_repeated_hour_does_not_fire_for_times_already_over);
async fn a_schedule_created_in_the_repeated_hour_does_not_fire_for_times_already_over(
    backend: Backend,
) {
    let env = Env::start(backend).await;
    // 01:15 UTC on 25 October 2026 is 02:15 CET, the second pass of 02:00–03:00 in Berlin;
    // 02:20 … 02:55 already happened at their CEST instants an hour ago.
    let created = utc(2026, 10, 25, 1, 15, 0);
    let task = env
        .scheduled_task(
            json!({"cron": "*/5 * * * *", "timezone": "Europe/Berlin"}),
            created,
        )
        .await;
    let schedule = env.schedule(&task).await;
    assert_eq!(
        schedule.next_fire_at_ms,
        Some(utc(2026, 10, 25, 2, 0, 0).timestamp_millis()),
        "the next fire is 03:00 CET"
    );
    process_schedule(
        &env.store,
        &config(),
        &schedule,
        created + chrono::TimeDelta::minutes(10),
    )
    .await
    .unwrap();
    assert!(env.ticks(&task).await.is_empty());
}
