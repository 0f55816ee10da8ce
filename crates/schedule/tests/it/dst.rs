//! Daylight-saving changes: a skipped wall-clock time is reported, a repeated one fires once.
//! Europe/Berlin springs forward 2026-03-29 02:00 → 03:00 (01:00Z) and falls back
//! 2026-10-25 03:00 → 02:00 (01:00Z); America/New_York springs forward 2026-03-08 and falls
//! back 2026-11-01.

use selextract_schedule::{CronSchedule, Fire, FireKind};

use crate::{local, utc};

#[test]
fn a_wall_clock_time_in_the_spring_forward_gap_is_nonexistent() {
    let schedule = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    let skipped = schedule.next_after(local("2026-03-28T02:30:00")).unwrap();
    assert_eq!(
        skipped,
        Fire {
            local: local("2026-03-29T02:30:00"),
            kind: FireKind::Nonexistent,
        }
    );
    let next = schedule.next_after(skipped.local).unwrap();
    assert_eq!(
        next,
        Fire {
            local: local("2026-03-30T02:30:00"),
            kind: FireKind::At(utc("2026-03-30T00:30:00")),
        }
    );
}

#[test]
fn upcoming_leaves_out_nonexistent_fires() {
    let schedule = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        schedule.upcoming(utc("2026-03-28T12:00:00"), 2),
        vec![utc("2026-03-30T00:30:00"), utc("2026-03-31T00:30:00")]
    );
}

#[test]
fn a_wall_clock_time_that_occurs_twice_fires_once_at_its_earlier_instant() {
    let schedule = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
    let fire = schedule.next_after(local("2026-10-24T02:30:00")).unwrap();
    assert_eq!(
        fire,
        Fire {
            local: local("2026-10-25T02:30:00"),
            // 02:30 CEST; the second 02:30 (CET, 01:30Z) does not fire.
            kind: FireKind::At(utc("2026-10-25T00:30:00")),
        }
    );
    assert_eq!(
        schedule.upcoming(utc("2026-10-24T12:00:00"), 2),
        vec![utc("2026-10-25T00:30:00"), utc("2026-10-26T01:30:00")]
    );
}

#[test]
fn each_wall_clock_time_of_the_repeated_hour_fires_once() {
    let schedule = CronSchedule::parse("*/30 * * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        schedule.upcoming(utc("2026-10-24T23:15:00"), 5),
        vec![
            utc("2026-10-24T23:30:00"), // 01:30 CEST
            utc("2026-10-25T00:00:00"), // 02:00 CEST
            utc("2026-10-25T00:30:00"), // 02:30 CEST
            // 02:00 and 02:30 CET (01:00Z, 01:30Z) are the same wall-clock times: no fires.
            utc("2026-10-25T02:00:00"), // 03:00 CET
            utc("2026-10-25T02:30:00"), // 03:30 CET
        ]
    );
}

#[test]
fn upcoming_from_inside_the_second_pass_does_not_repeat_fires() {
    let schedule = CronSchedule::parse("*/30 * * * *", "Europe/Berlin").unwrap();
    // 01:15Z is 02:15 CET, the second pass: 02:30 already fired at 00:30Z.
    assert_eq!(
        schedule.upcoming(utc("2026-10-25T01:15:00"), 2),
        vec![utc("2026-10-25T02:00:00"), utc("2026-10-25T02:30:00")]
    );
}

#[test]
fn new_york_skips_its_spring_gap_and_fires_once_in_its_repeated_hour() {
    let schedule = CronSchedule::parse("30 2 * * *", "America/New_York").unwrap();
    let skipped = schedule.next_after(local("2026-03-07T02:30:00")).unwrap();
    assert_eq!(skipped.local, local("2026-03-08T02:30:00"));
    assert_eq!(skipped.kind, FireKind::Nonexistent);

    let hourly = CronSchedule::parse("30 * * * *", "America/New_York").unwrap();
    // 2026-11-01 01:30 happens at 05:30Z (EDT) and 06:30Z (EST); it fires at 05:30Z only.
    assert_eq!(
        hourly.upcoming(utc("2026-11-01T04:00:00"), 3),
        vec![
            utc("2026-11-01T04:30:00"), // 00:30 EDT
            utc("2026-11-01T05:30:00"), // 01:30 EDT
            utc("2026-11-01T07:30:00"), // 02:30 EST
        ]
    );
}

#[test]
fn min_interval_sees_the_gap_closed_by_a_repeated_hour() {
    // Around fall-back the hourly fires are 2 h apart once; far from it they are 1 h apart.
    let schedule = CronSchedule::parse("30 * * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        schedule.min_interval(utc("2026-10-24T23:00:00"), 16),
        Some(std::time::Duration::from_secs(3600))
    );
}
