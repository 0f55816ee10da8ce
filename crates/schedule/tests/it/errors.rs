//! Errors name the problem, and no input makes parsing or searching panic or hang.

use selextract_schedule::{CronSchedule, MAX_CRON_BYTES, ScheduleError};

use crate::local;

fn cron_error(cron: &str) -> String {
    match CronSchedule::parse(cron, "UTC") {
        Err(ScheduleError::Cron(message)) => message,
        other => panic!("expected a cron error for {cron:?}, got {other:?}"),
    }
}

#[test]
fn an_unknown_time_zone_is_named_with_a_hint() {
    let error = CronSchedule::parse("0 9 * * *", "Mars/Olympus_Mons").unwrap_err();
    assert_eq!(
        error,
        ScheduleError::TimeZone("Mars/Olympus_Mons".to_owned())
    );
    assert_eq!(
        error.to_string(),
        "unknown time zone \"Mars/Olympus_Mons\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"
    );
    assert!(matches!(
        CronSchedule::parse("0 9 * * *", ""),
        Err(ScheduleError::TimeZone(_))
    ));
}

#[test]
fn a_wrong_number_of_fields_is_named() {
    let message = cron_error("every day at nine");
    assert!(message.contains("4 fields"), "{message}");
    let message = cron_error("0 0 0 1 1 * 2030");
    assert!(message.contains("7 fields"), "{message}");
}

#[test]
fn an_out_of_range_value_is_named() {
    let message = cron_error("99 * * * *");
    assert!(message.contains("99 * * * *"), "{message}");
    assert!(
        message.to_lowercase().contains("99") && message.len() > 20,
        "{message}"
    );
}

#[test]
fn a_zero_step_is_an_error() {
    let message = cron_error("*/0 * * * *");
    assert!(message.contains("*/0"), "{message}");
}

#[test]
fn an_empty_expression_is_an_error() {
    assert_eq!(cron_error(""), "the cron expression is empty");
    assert_eq!(cron_error("   "), "the cron expression is empty");
}

#[test]
fn an_expression_that_never_fires_is_refused_at_parse_time() {
    assert_eq!(
        CronSchedule::parse("0 0 30 2 *", "UTC").unwrap_err(),
        ScheduleError::NeverFires
    );
    assert_eq!(
        CronSchedule::parse("0 0 31 4,6,9,11 *", "Europe/Berlin").unwrap_err(),
        ScheduleError::NeverFires
    );
}

#[test]
fn a_very_long_expression_is_refused_before_parsing() {
    let long = "1,".repeat(10_000) + "2 * * * *";
    let message = cron_error(&long);
    assert!(
        message.contains(&format!("at most {MAX_CRON_BYTES}")),
        "{message}"
    );
}

#[test]
fn non_ascii_text_is_refused() {
    let message = cron_error("0 9 * * ＭＯＮ");
    assert!(message.contains("'Ｍ'"), "{message}");
    let message = cron_error("0 9 * * *\u{0}");
    assert!(message.contains("\\0"), "{message}");
}

#[test]
fn hostile_expressions_give_errors_never_panics() {
    let hostile = [
        "*/0 * * * *",
        "0/0 * * * *",
        "*/-1 * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
        "* * * 0 *",
        "* * * * 8",
        "5-1 * * * *",
        "1-99 * * * *",
        "*/99999999999999999999 * * * *",
        "99999999999999999999 * * * *",
        "- * * * *",
        ", * * * *",
        "/ * * * *",
        "L * * * *",
        "* * LW * *",
        "* * * * 5#9",
        "* * * * #",
        "* * * * +",
        "* * * * ++MON",
        "@",
        "@never",
        "@reboot",
        "? ? ? ? ?",
        "* * * * * * *",
        "1-",
        "x y z a b",
        "*/",
        "1,,2 * * * *",
        ", * * * *",
        "0 , * * *",
        "0 0 , * *",
        "0 0 * , *",
        "0 0 * * ,",
        ", , , , , ,",
    ];
    for cron in hostile {
        // Either outcome is fine for some of these (croner accepts a few); what matters is
        // that each returns, and that an accepted one can be searched.
        if let Ok(schedule) = CronSchedule::parse(cron, "UTC") {
            let _ = schedule.next_after(local("2026-05-01T00:00:00"));
        }
    }
    for cron in [
        "*/0 * * * *",
        "99 * * * *",
        "* 24 * * *",
        "* * * 13 *",
        "x y z a b",
    ] {
        assert!(
            matches!(
                CronSchedule::parse(cron, "UTC"),
                Err(ScheduleError::Cron(_))
            ),
            "{cron:?} should be refused"
        );
    }
}

#[test]
fn searching_near_the_end_of_the_calendar_returns_none_not_a_panic() {
    let schedule = CronSchedule::parse("* * * * * *", "UTC").unwrap();
    assert_eq!(schedule.next_after(local("9999-12-31T23:59:59")), None);
    assert!(schedule.upcoming(chrono_max(), 3).is_empty());
}

fn chrono_max() -> selextract_schedule::DateTime<selextract_schedule::Utc> {
    local("9999-12-31T23:59:59").and_utc()
}

#[test]
fn a_field_that_matches_nothing_is_named_without_a_long_search() {
    assert_eq!(
        cron_error(", * * * *"),
        "invalid cron expression \", * * * *\": its minute field matches no value"
    );
    assert_eq!(
        cron_error("0 , * * *"),
        "invalid cron expression \"0 , * * *\": its hour field matches no value"
    );
    assert_eq!(
        CronSchedule::parse("0 0 * * ,", "UTC").unwrap_err(),
        ScheduleError::NeverFires
    );
}
