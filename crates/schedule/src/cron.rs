//! [`CronSchedule`]: a cron expression bound to an IANA time zone, and the search for its
//! next fires.

use std::str::FromStr as _;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The longest cron expression accepted, in bytes. Real expressions are a few dozen bytes;
/// the bound keeps hostile input from costing parse time.
pub const MAX_CRON_BYTES: usize = 256;

/// How many fires [`CronSchedule::upcoming`] may pass over (nonexistent wall-clock times, or
/// wall-clock times that already fired in the first pass of a repeated hour) while collecting
/// its answer. The largest real gap is a skipped day (86,400 per-second fires); the bound
/// keeps the loop finite whatever the zone database says.
const MAX_PASSED_OVER_FIRES: usize = 200_000;

/// Why a schedule could not be built from its expression and zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse; the text names what is wrong with it.
    #[error("{0}")]
    Cron(String),
    /// The time zone is not an IANA name known to the bundled zone database.
    #[error("unknown time zone {0:?} (use an IANA name such as \"Europe/Berlin\" or \"UTC\")")]
    TimeZone(String),
    /// The expression parses but matches no date at all (e.g. 30 February).
    #[error("the expression never fires")]
    NeverFires,
}

/// A parsed cron expression in an IANA time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
    text: String,
    zone_name: String,
}

/// One fire of a schedule: the wall-clock time it is due at, and what that time is in the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    /// The wall-clock time in the schedule's zone.
    pub local: NaiveDateTime,
    /// Whether (and when) that wall-clock time happens.
    pub kind: FireKind,
}

/// What a wall-clock fire time maps to in the schedule's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireKind {
    /// The instant it fires at (the earlier one when the wall-clock time occurs twice).
    At(DateTime<Utc>),
    /// The wall-clock time does not exist (skipped by a spring-forward change): no run.
    Nonexistent,
}

impl CronSchedule {
    /// Parses `cron` in the IANA zone `timezone`.
    ///
    /// Accepts 5 fields (minute precision) or 6 fields (seconds first); month and weekday
    /// names (`JAN`, `MON`), `L`, `W`, `#` and the `@daily`-style nicknames as croner allows.
    /// Refuses expressions longer than [`MAX_CRON_BYTES`], non-ASCII text, and expressions
    /// that never fire.
    pub fn parse(cron: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let parsed = parse_cron(cron)?;
        let zone =
            Tz::from_str(timezone).map_err(|_| ScheduleError::TimeZone(timezone.to_owned()))?;
        let schedule = CronSchedule {
            cron: parsed,
            zone,
            text: cron.to_owned(),
            zone_name: timezone.to_owned(),
        };
        // An expression without a year field repeats within the 400-year Gregorian cycle, so
        // one search from a fixed point decides whether it fires at all, the same way on every
        // call (croner's search gives up after its own bounded number of steps).
        if schedule.next_after(never_fires_probe_start()).is_none() {
            return Err(ScheduleError::NeverFires);
        }
        Ok(schedule)
    }

    /// The expression as given.
    pub fn cron(&self) -> &str {
        &self.text
    }

    /// The zone name as given.
    pub fn timezone(&self) -> &str {
        &self.zone_name
    }

    /// The wall-clock time of `instant` in this schedule's zone.
    pub fn local_of(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant.with_timezone(&self.zone).naive_local()
    }

    /// The next wall-clock fire strictly after the local time `after`, or `None` if none
    /// exists (croner's search limit, or the end of its calendar).
    ///
    /// Wall-clock times are enumerated as naive local times, so croner's own time-zone
    /// handling never applies, and each wall-clock time comes up exactly once. Each is then
    /// mapped into the zone: a time that exists once is [`FireKind::At`] its instant; one that
    /// occurs twice (fall-back) is `At` its earlier instant, so it fires once; one that does
    /// not exist (spring-forward gap) is [`FireKind::Nonexistent`].
    pub fn next_after(&self, after: NaiveDateTime) -> Option<Fire> {
        let local = self.cron.find_next_occurrence(&after, false).ok()?;
        let kind = match self.zone.from_local_datetime(&local) {
            LocalResult::Single(instant) => FireKind::At(instant.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, later) => {
                FireKind::At(earlier.min(later).with_timezone(&Utc))
            }
            LocalResult::None => FireKind::Nonexistent,
        };
        Some(Fire { local, kind })
    }

    /// The next `n` fires that happen (nonexistent ones left out) strictly after the instant
    /// `after`, in order.
    ///
    /// The walk starts at the wall-clock time of `after`. Inside the second pass of a repeated
    /// hour the wall-clock times ahead already fired in the first pass (at their earlier
    /// instant), so only fires after `after` are kept.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(n.min(1024));
        let mut cursor = self.local_of(after);
        let mut passed_over = 0;
        while fires.len() < n && passed_over <= MAX_PASSED_OVER_FIRES {
            let Some(fire) = self.next_after(cursor) else {
                break;
            };
            cursor = fire.local;
            match fire.kind {
                FireKind::At(instant) if instant > after => fires.push(instant),
                FireKind::At(_) | FireKind::Nonexistent => passed_over += 1,
            }
        }
        fires
    }

    /// The smallest gap between consecutive firing instants among the next `sample` fires
    /// after `after` (`None` when there are fewer than 2) — used to enforce an operator's
    /// minimum interval.
    pub fn min_interval(&self, after: DateTime<Utc>, sample: usize) -> Option<std::time::Duration> {
        self.upcoming(after, sample)
            .windows(2)
            .filter_map(|pair| (pair[1] - pair[0]).to_std().ok())
            .min()
    }
}

/// Parses the expression with seconds optional and no year field, after the checks croner
/// does not make itself (length, ASCII, field count).
fn parse_cron(cron: &str) -> Result<Cron, ScheduleError> {
    if cron.len() > MAX_CRON_BYTES {
        return Err(ScheduleError::Cron(format!(
            "the cron expression is {} bytes long; at most {MAX_CRON_BYTES} are allowed",
            cron.len()
        )));
    }
    if let Some(bad) = cron
        .chars()
        .find(|c| !c.is_ascii() || (c.is_ascii_control() && *c != '\t'))
    {
        return Err(ScheduleError::Cron(format!(
            "the cron expression contains the character {bad:?}; only ASCII letters, digits, \
             spaces and * , - / ? L W # are allowed"
        )));
    }
    let trimmed = cron.trim();
    if trimmed.is_empty() {
        return Err(ScheduleError::Cron(
            "the cron expression is empty".to_owned(),
        ));
    }
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(ScheduleError::Cron(format!(
            "the cron expression {trimmed:?} has {fields} fields; expected 5 \
             (minute hour day-of-month month day-of-week) or 6 (seconds first)"
        )));
    }
    let parsed = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|error| {
            ScheduleError::Cron(format!("invalid cron expression {trimmed:?}: {error}"))
        })?;
    refuse_empty_fields(&parsed, trimmed)?;
    Ok(parsed)
}

/// Refuses a time-of-day or month field that matches no value at all (croner accepts
/// e.g. `", * * * *"`). Its search would otherwise step second by second to its limit before
/// giving up, which takes seconds of CPU per call.
fn refuse_empty_fields(cron: &Cron, text: &str) -> Result<(), ScheduleError> {
    let pattern = &cron.pattern;
    let empty = if !(0..=59).any(|v| pattern.second_match(v).unwrap_or(false)) {
        Some("second")
    } else if !(0..=59).any(|v| pattern.minute_match(v).unwrap_or(false)) {
        Some("minute")
    } else if !(0..=23).any(|v| pattern.hour_match(v).unwrap_or(false)) {
        Some("hour")
    } else if !(1..=12).any(|v| pattern.month_match(v).unwrap_or(false)) {
        Some("month")
    } else {
        None
    };
    if let Some(name) = empty {
        return Err(ScheduleError::Cron(format!(
            "invalid cron expression {text:?}: its {name} field matches no value"
        )));
    }
    Ok(())
}

/// Where the never-fires probe starts: a fixed date, so that `parse` is deterministic.
fn never_fires_probe_start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}
