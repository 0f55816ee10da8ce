//! `schedule` and `notify`: the fields a monitor needs, their defaults, and every error path
//! (the cron and zone are checked by the same parser the scheduler fires with).

use selextract_spec::{CatchUp, Limits, NotifyEvent, Overlap};
use serde_json::json;

use crate::{canonical_json, errors_of, errors_with_limits, parse_ok, paths_of, task_with};

fn error(path: &str, message: &str) -> (String, String) {
    (path.to_owned(), message.to_owned())
}

fn with_schedule(schedule: serde_json::Value) -> serde_json::Value {
    task_with(|t| t["schedule"] = schedule)
}

fn with_notify(notify: serde_json::Value) -> serde_json::Value {
    task_with(|t| t["notify"] = notify)
}

#[test]
fn a_schedule_is_enabled_skips_overlaps_and_catches_up_the_latest_tick_by_default() {
    let input = parse_ok(&with_schedule(json!({"cron": "*/15 * * * *"})));
    let schedule = input.spec.spec().schedule.clone().unwrap();
    assert!(schedule.enabled);
    assert_eq!(schedule.overlap, Overlap::Skip);
    assert_eq!(schedule.catch_up, CatchUp::Latest);
}

#[test]
fn every_schedule_field_round_trips_through_the_canonical_json() {
    let schedule = json!({
        "cron": "0 30 2 * * MON-FRI",
        "timezone": "Europe/Berlin",
        "enabled": false,
        "overlap": "cancel_previous",
        "catch_up": "none",
        "key_field": "title",
        "change_threshold": 0.25
    });
    let input = parse_ok(&with_schedule(schedule.clone()));
    assert_eq!(canonical_json(&input)["schedule"], schedule);
    let parsed = input.spec.spec().schedule.clone().unwrap();
    assert!(!parsed.enabled);
    assert_eq!(parsed.overlap, Overlap::CancelPrevious);
    assert_eq!(parsed.catch_up, CatchUp::None);

    let queued = parse_ok(&with_schedule(
        json!({"cron": "@hourly", "overlap": "queue"}),
    ));
    assert_eq!(canonical_json(&queued)["schedule"]["overlap"], "queue");
}

#[test]
fn unknown_overlap_and_catch_up_policies_are_named_at_their_paths() {
    assert_eq!(
        paths_of(&with_schedule(
            json!({"cron": "* * * * *", "overlap": "cancel"})
        )),
        ["schedule.overlap"]
    );
    assert_eq!(
        paths_of(&with_schedule(
            json!({"cron": "* * * * *", "catch_up": "all"})
        )),
        ["schedule.catch_up"]
    );
    assert_eq!(
        paths_of(&with_schedule(
            json!({"cron": "* * * * *", "enabled": "yes"})
        )),
        ["schedule.enabled"]
    );
}

#[test]
fn a_cron_the_parser_refuses_is_reported_with_the_parsers_reason() {
    assert_eq!(
        errors_of(&with_schedule(json!({"cron": "*/0 * * * *"}))),
        [error(
            "schedule.cron",
            "invalid cron expression \"*/0 * * * *\": Component error: Step cannot be zero."
        )]
    );
    assert_eq!(
        errors_of(&with_schedule(json!({"cron": "99 * * * *"}))),
        [error(
            "schedule.cron",
            "invalid cron expression \"99 * * * *\": Component error: Number out of bounds."
        )]
    );
    assert_eq!(
        errors_of(&with_schedule(json!({"cron": "0 0 30 2 *"}))),
        [error("schedule.cron", "the expression never fires")]
    );
    let long = "1,".repeat(200) + "2 * * * *";
    assert_eq!(
        errors_of(&with_schedule(json!({ "cron": long }))),
        [error(
            "schedule.cron",
            "the cron expression is 409 bytes long; at most 256 are allowed"
        )]
    );
}

#[test]
fn an_unknown_time_zone_is_reported_at_schedule_timezone() {
    assert_eq!(
        errors_of(&with_schedule(
            json!({"cron": "0 9 * * *", "timezone": "Europe/Atlantis"})
        )),
        [error(
            "schedule.timezone",
            "unknown time zone \"Europe/Atlantis\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"
        )]
    );
}

#[test]
fn a_bad_cron_and_a_bad_zone_are_reported_together() {
    assert_eq!(
        paths_of(&with_schedule(
            json!({"cron": "every monday", "timezone": "CEST+1"})
        )),
        ["schedule.cron", "schedule.timezone"]
    );
}

#[test]
fn a_cron_in_a_zone_with_daylight_saving_is_accepted() {
    // 02:30 is skipped once a year in Berlin; the scheduler records that, validation allows it.
    parse_ok(&with_schedule(
        json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"}),
    ));
    parse_ok(&with_schedule(
        json!({"cron": "0 9 * * MON", "timezone": "America/New_York"}),
    ));
}

#[test]
fn the_minimum_schedule_interval_defaults_to_one_second() {
    assert_eq!(Limits::default().min_schedule_interval_ms, 1_000);
    parse_ok(&with_schedule(json!({"cron": "* * * * * *"})));
}

#[test]
fn a_cron_firing_more_often_than_the_minimum_interval_is_refused_naming_both_values() {
    let limits = Limits {
        min_schedule_interval_ms: 5_000,
        ..Limits::default()
    };
    assert_eq!(
        errors_with_limits(&with_schedule(json!({"cron": "* * * * * *"})), &limits),
        [error(
            "schedule.cron",
            "fires 1000 ms apart, more often than the minimum interval of 5000 ms \
             (limits.min_schedule_interval_ms)"
        )]
    );
    // The smallest gap counts, not the average: 0 and 2 seconds past each minute.
    assert_eq!(
        errors_with_limits(&with_schedule(json!({"cron": "0,2 * * * * *"})), &limits),
        [error(
            "schedule.cron",
            "fires 2000 ms apart, more often than the minimum interval of 5000 ms \
             (limits.min_schedule_interval_ms)"
        )]
    );
    // Exactly the minimum is allowed.
    assert!(
        selextract_spec::parse_task_input(
            &with_schedule(json!({"cron": "*/5 * * * * *"})),
            &limits
        )
        .is_ok()
    );
    let hourly_minimum = Limits {
        min_schedule_interval_ms: 3_600_000,
        ..Limits::default()
    };
    assert_eq!(
        errors_with_limits(
            &with_schedule(json!({"cron": "*/30 * * * *"})),
            &hourly_minimum
        ),
        [error(
            "schedule.cron",
            "fires 1800000 ms apart, more often than the minimum interval of 3600000 ms \
             (limits.min_schedule_interval_ms)"
        )]
    );
}

#[test]
fn the_minimum_interval_is_an_operator_setting_under_limits() {
    let limits: Limits =
        serde_json::from_value(json!({"min_schedule_interval_ms": 60_000})).unwrap();
    assert_eq!(limits.min_schedule_interval_ms, 60_000);
    assert_eq!(limits.max_fields, Limits::default().max_fields);
}

#[test]
fn notify_defaults_to_completion_failure_partial_and_change_events() {
    let input = parse_ok(&with_notify(
        json!({"webhook_url": "https://hooks.example/x"}),
    ));
    let notify = input.spec.spec().notify.clone().unwrap();
    assert_eq!(
        notify.on,
        [
            NotifyEvent::Completed,
            NotifyEvent::Failed,
            NotifyEvent::Partial,
            NotifyEvent::Changed
        ]
    );
    assert_eq!(notify.slack_webhook_url, None);
}

#[test]
fn a_slack_webhook_and_the_partial_event_round_trip() {
    let notify = json!({
        "webhook_url": null,
        "slack_webhook_url": "https://hooks.slack.example/services/T0/B0/x",
        "email": null,
        "on": ["partial", "changed"]
    });
    let input = parse_ok(&with_notify(notify.clone()));
    assert_eq!(canonical_json(&input)["notify"], notify);
}

#[test]
fn a_slack_webhook_must_be_an_http_url() {
    assert_eq!(
        errors_of(&with_notify(
            json!({"slack_webhook_url": "hooks.slack.example/x"})
        )),
        [error(
            "notify.slack_webhook_url",
            "not an absolute http(s) URL"
        )]
    );
    assert_eq!(
        paths_of(&with_notify(json!({"on": ["partially"]}))),
        ["notify.on[0]"]
    );
}
