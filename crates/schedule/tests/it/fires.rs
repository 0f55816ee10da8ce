//! Ordinary fires: both field counts, UTC, a zone without DST changes in the window,
//! `upcoming`, `min_interval` and the stored local-time text.

use std::time::Duration;

use selextract_schedule::{CronSchedule, Fire, FireKind, format_local, parse_local};

use crate::{local, utc};

#[test]
fn five_field_expressions_fire_on_the_minute() {
    let schedule = CronSchedule::parse("*/15 * * * *", "UTC").unwrap();
    assert_eq!(schedule.cron(), "*/15 * * * *");
    assert_eq!(schedule.timezone(), "UTC");
    let fire = schedule.next_after(local("2026-05-01T10:07:31")).unwrap();
    assert_eq!(
        fire,
        Fire {
            local: local("2026-05-01T10:15:00"),
            kind: FireKind::At(utc("2026-05-01T10:15:00")),
        }
    );
    assert_eq!(
        schedule.upcoming(utc("2026-05-01T10:15:00"), 4),
        vec![
            utc("2026-05-01T10:30:00"),
            utc("2026-05-01T10:45:00"),
            utc("2026-05-01T11:00:00"),
            utc("2026-05-01T11:15:00"),
        ]
    );
}

#[test]
fn six_field_expressions_take_seconds_first() {
    let schedule = CronSchedule::parse("10,40 * * * * *", "UTC").unwrap();
    assert_eq!(
        schedule.upcoming(utc("2026-05-01T10:00:10"), 3),
        vec![
            utc("2026-05-01T10:00:40"),
            utc("2026-05-01T10:01:10"),
            utc("2026-05-01T10:01:40"),
        ]
    );
}

#[test]
fn next_after_is_strictly_after_the_given_local_time() {
    let schedule = CronSchedule::parse("0 9 * * *", "UTC").unwrap();
    let fire = schedule.next_after(local("2026-05-01T09:00:00")).unwrap();
    assert_eq!(fire.local, local("2026-05-02T09:00:00"));
}

#[test]
fn names_of_weekdays_and_months_are_accepted() {
    let schedule = CronSchedule::parse("0 8 * JAN MON", "UTC").unwrap();
    // 2027-01-04 is the first Monday of January 2027.
    assert_eq!(
        schedule.upcoming(utc("2026-05-01T00:00:00"), 2),
        vec![utc("2027-01-04T08:00:00"), utc("2027-01-11T08:00:00")]
    );
    let nickname = CronSchedule::parse("@daily", "UTC").unwrap();
    assert_eq!(
        nickname.upcoming(utc("2026-05-01T12:00:00"), 1),
        vec![utc("2026-05-02T00:00:00")]
    );
}

#[test]
fn fires_follow_the_wall_clock_of_the_zone() {
    // New York is on EDT (UTC-4) in July and on EST (UTC-5) in December.
    let schedule = CronSchedule::parse("0 9 * * *", "America/New_York").unwrap();
    assert_eq!(
        schedule.upcoming(utc("2026-07-01T00:00:00"), 1),
        vec![utc("2026-07-01T13:00:00")]
    );
    assert_eq!(
        schedule.upcoming(utc("2026-12-01T00:00:00"), 1),
        vec![utc("2026-12-01T14:00:00")]
    );
    assert_eq!(
        schedule.local_of(utc("2026-12-01T14:00:00")),
        local("2026-12-01T09:00:00")
    );
}

#[test]
fn min_interval_of_every_second_is_one_second() {
    let schedule = CronSchedule::parse("* * * * * *", "UTC").unwrap();
    assert_eq!(
        schedule.min_interval(utc("2026-05-01T00:00:00"), 16),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn min_interval_finds_the_smallest_gap_in_an_uneven_expression() {
    let schedule = CronSchedule::parse("0,5 0 * * *", "UTC").unwrap();
    assert_eq!(
        schedule.min_interval(utc("2026-05-01T00:00:00"), 16),
        Some(Duration::from_secs(5 * 60))
    );
}

#[test]
fn min_interval_needs_two_fires() {
    let schedule = CronSchedule::parse("* * * * * *", "UTC").unwrap();
    assert_eq!(schedule.min_interval(utc("2026-05-01T00:00:00"), 1), None);
    assert_eq!(schedule.min_interval(utc("2026-05-01T00:00:00"), 0), None);
}

#[test]
fn leap_day_expressions_find_the_next_leap_year() {
    let schedule = CronSchedule::parse("0 0 29 2 *", "UTC").unwrap();
    assert_eq!(
        schedule.upcoming(utc("2026-05-01T00:00:00"), 2),
        vec![utc("2028-02-29T00:00:00"), utc("2032-02-29T00:00:00")]
    );
}

#[test]
fn local_times_round_trip_through_their_canonical_text() {
    let time = local("2026-10-25T02:30:00");
    assert_eq!(format_local(time), "2026-10-25T02:30:00");
    assert_eq!(parse_local(&format_local(time)), Some(time));
    assert_eq!(parse_local("2026-10-25 02:30:00"), None);
    assert_eq!(parse_local("2026-10-25T02:30:00Z"), None);
    assert_eq!(parse_local(""), None);
}
