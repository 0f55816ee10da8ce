//! The walk: from a schedule's cursor to now, which fires are missed, which is the catch-up
//! and which are processed on time. Pure: cron arithmetic only, `now` passed in.
//!
//! - A fire whose wall-clock time does not exist (DST gap) is `skipped_nonexistent_time`.
//! - A fire at most `misfire_grace` old is due: processed by the claim (overlap, balance).
//! - Older fires (the installation was down) are `missed`, except the latest of them, which
//!   under `catch_up = latest` is due too (its detail says `catch_up`) and under `none` is
//!   missed as well. At most `max_missed_rows` missed fires get a row each; the rest share
//!   one row whose `missed_count` says how many.
//! - The walk is bounded: after [`COUNT_BOUND`] late fires it stops counting and jumps to the
//!   latest late fire (found by probing backwards from the grace edge), and the shared row
//!   says the count is a lower bound.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use selextract_schedule::{CronSchedule, Fire, FireKind, format_local};
use selextract_spec::CatchUp;
use selextract_store::{PlannedKind, PlannedTick};

/// Late fires counted one by one before the walk jumps ahead (an every-second schedule
/// down for a month has 2.6 million).
pub const COUNT_BOUND: u64 = 10_000;

/// The rules a walk follows.
#[derive(Debug, Clone, Copy)]
pub struct WalkRules {
    pub misfire_grace: Duration,
    pub max_missed_rows: usize,
    pub catch_up: CatchUp,
}

/// The result of a walk: the ticks to record, in order, and where the cursor goes.
#[derive(Debug, Clone)]
pub struct Walk {
    pub ticks: Vec<PlannedTick>,
    pub new_cursor: NaiveDateTime,
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Late fires beyond the individual rows, folded into one row.
#[derive(Debug, Default)]
struct Folded {
    first: Option<NaiveDateTime>,
    last: Option<NaiveDateTime>,
    count: u64,
    /// The walk jumped: `count` is a lower bound.
    uncounted: bool,
}

/// Walks the fires of `cron` after `cursor` up to `now`.
pub fn walk_fires(
    cron: &CronSchedule,
    cursor: NaiveDateTime,
    now: DateTime<Utc>,
    rules: WalkRules,
) -> Walk {
    let grace = TimeDelta::from_std(rules.misfire_grace).unwrap_or(TimeDelta::MAX);
    let late_edge = now
        .checked_sub_signed(grace)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let late_edge_local = cron.local_of(late_edge);
    let now_local = cron.local_of(now);

    let mut ticks = Vec::new();
    let mut folded = Folded::default();
    let mut latest_late: Option<(NaiveDateTime, DateTime<Utc>)> = None;
    let mut late_total: u64 = 0;
    let mut jumped = false;
    let mut cursor = cursor;
    let mut next_fire_at = None;

    while let Some(fire) = cron.next_after(cursor) {
        if !is_due(&fire, now, now_local) {
            next_fire_at = Some(instant_of(cron, &fire));
            break;
        }
        cursor = fire.local;
        if is_late(&fire, late_edge, late_edge_local) {
            late_total += 1;
            let newest = match fire.kind {
                FireKind::At(at) => latest_late
                    .replace((fire.local, at))
                    .map(|(l, a)| (l, Some(a))),
                FireKind::Nonexistent => Some((fire.local, None)),
            };
            if let Some((local, at)) = newest {
                record_late(&mut ticks, &mut folded, rules, now, local, at);
            }
            if !jumped && folded.count >= COUNT_BOUND {
                jumped = true;
                if let Some(probe) = probe_before_edge(cron, cursor, late_edge, late_edge_local) {
                    folded.uncounted = true;
                    cursor = probe;
                }
            }
            continue;
        }
        if let Some(latest) = latest_late.take() {
            push_latest_late(&mut ticks, rules, latest, late_total);
        }
        ticks.push(on_time_tick(&fire));
    }
    if let Some(latest) = latest_late.take() {
        push_latest_late(&mut ticks, rules, latest, late_total);
    }
    if let Some(row) = folded_row(&folded) {
        // The folded row sorts after the individual rows and before the catch-up: insert
        // it where its first fire belongs.
        let position = ticks
            .iter()
            .position(|tick| tick.scheduled_local > row.scheduled_local)
            .unwrap_or(ticks.len());
        ticks.insert(position, row);
    }
    Walk {
        ticks,
        new_cursor: cursor,
        next_fire_at,
    }
}

/// A fresh cursor for a schedule starting at `now`: now's wall-clock time, and the next
/// fire after it. Inside the second pass of a repeated hour (autumn DST change) the
/// wall-clock times ahead already happened at their earlier instant; the cursor moves past
/// them (bounded), so a schedule created or resumed then does not fire for a time that is
/// already over.
pub fn fresh_cursor(cron: &CronSchedule, now: DateTime<Utc>) -> selextract_store::FreshCursor {
    let mut local = cron.local_of(now);
    let mut next = cron.next_after(local);
    let mut passed = 0;
    while let Some(fire) = next {
        match fire.kind {
            FireKind::At(at) if at <= now && passed < REPEATED_HOUR_BOUND => {
                local = fire.local;
                next = cron.next_after(local);
                passed += 1;
            }
            _ => break,
        }
    }
    selextract_store::FreshCursor {
        cursor_local: format_local(local),
        next_fire_at_ms: next.map(|fire| instant_of(cron, &fire).timestamp_millis()),
    }
}

/// Fires a fresh cursor may pass over in a repeated hour (an every-second schedule has
/// 3,600 there).
const REPEATED_HOUR_BOUND: u32 = 4_000;

fn is_due(fire: &Fire, now: DateTime<Utc>, now_local: NaiveDateTime) -> bool {
    match fire.kind {
        FireKind::At(at) => at <= now,
        FireKind::Nonexistent => fire.local <= now_local,
    }
}

fn is_late(fire: &Fire, late_edge: DateTime<Utc>, late_edge_local: NaiveDateTime) -> bool {
    match fire.kind {
        FireKind::At(at) => at < late_edge,
        FireKind::Nonexistent => fire.local < late_edge_local,
    }
}

/// When a fire is due: its instant, or for a wall-clock time that does not exist the first
/// instant whose wall-clock time reaches it (the end of the gap).
pub fn instant_of(cron: &CronSchedule, fire: &Fire) -> DateTime<Utc> {
    match fire.kind {
        FireKind::At(at) => at,
        FireKind::Nonexistent => first_instant_reaching(cron, fire.local),
    }
}

/// The first instant (to the second) whose wall-clock time is at or after `local`. Offsets
/// are within ±15 hours, so the answer lies within 15 hours of `local` read as UTC.
fn first_instant_reaching(cron: &CronSchedule, local: NaiveDateTime) -> DateTime<Utc> {
    // Whole seconds from the epoch, so the answer is a whole second.
    let guess = local.and_utc().timestamp();
    let span = 15 * 3600;
    let (mut low, mut high) = (guess - span, guess + span);
    let at = |seconds: i64| {
        DateTime::<Utc>::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if cron.local_of(at(middle)) >= local {
            high = middle;
        } else {
            low = middle;
        }
    }
    at(high)
}

/// A wall-clock time shortly before the grace edge whose next fire is still late, so the
/// walk can skip the fires between: probes 1 s, 2 s, 4 s, … before the edge.
fn probe_before_edge(
    cron: &CronSchedule,
    cursor: NaiveDateTime,
    late_edge: DateTime<Utc>,
    late_edge_local: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let mut back = TimeDelta::seconds(1);
    while back < TimeDelta::days(800) {
        let probe = cron.local_of(late_edge - back);
        if probe <= cursor {
            return None;
        }
        if let Some(fire) = cron.next_after(probe)
            && is_late(&fire, late_edge, late_edge_local)
        {
            return Some(probe);
        }
        back = back * 2;
    }
    None
}

fn record_late(
    ticks: &mut Vec<PlannedTick>,
    folded: &mut Folded,
    rules: WalkRules,
    now: DateTime<Utc>,
    local: NaiveDateTime,
    at: Option<DateTime<Utc>>,
) {
    let individual = ticks.len() < rules.max_missed_rows && folded.count == 0;
    if !individual {
        folded.first.get_or_insert(local);
        folded.last = Some(local);
        folded.count += 1;
        return;
    }
    ticks.push(match at {
        Some(at) => PlannedTick {
            scheduled_local: format_local(local),
            scheduled_at_ms: Some(at.timestamp_millis()),
            kind: PlannedKind::Missed { missed_count: 1 },
            detail: Some(format!(
                "missed: due {} s ago, past the misfire grace of {} s (the installation was down)",
                (now - at).num_seconds(),
                rules.misfire_grace.as_secs()
            )),
        },
        None => nonexistent_tick(local),
    });
}

fn push_latest_late(
    ticks: &mut Vec<PlannedTick>,
    rules: WalkRules,
    (local, at): (NaiveDateTime, DateTime<Utc>),
    late_total: u64,
) {
    let (kind, detail) = match rules.catch_up {
        CatchUp::Latest => (
            PlannedKind::Due,
            format!(
                "catch_up: the latest of {late_total} fires missed while the installation was down"
            ),
        ),
        CatchUp::None => (
            PlannedKind::Missed { missed_count: 1 },
            "missed: the installation was down; catch_up = none runs no missed fire".to_owned(),
        ),
    };
    ticks.push(PlannedTick {
        scheduled_local: format_local(local),
        scheduled_at_ms: Some(at.timestamp_millis()),
        kind,
        detail: Some(detail),
    });
}

fn on_time_tick(fire: &Fire) -> PlannedTick {
    match fire.kind {
        FireKind::At(at) => PlannedTick {
            scheduled_local: format_local(fire.local),
            scheduled_at_ms: Some(at.timestamp_millis()),
            kind: PlannedKind::Due,
            detail: None,
        },
        FireKind::Nonexistent => nonexistent_tick(fire.local),
    }
}

fn nonexistent_tick(local: NaiveDateTime) -> PlannedTick {
    PlannedTick {
        scheduled_local: format_local(local),
        scheduled_at_ms: None,
        kind: PlannedKind::Nonexistent,
        detail: Some(
            "this wall-clock time does not exist in the schedule's zone that day (DST change)"
                .to_owned(),
        ),
    }
}

fn folded_row(folded: &Folded) -> Option<PlannedTick> {
    let (first, last) = (folded.first?, folded.last?);
    let detail = if folded.uncounted {
        format!(
            "missed: at least {} fires from {} on, while the installation was down (counting \
             stopped after {COUNT_BOUND}; the fires up to {} were skipped without counting)",
            folded.count,
            format_local(first),
            format_local(last)
        )
    } else {
        format!(
            "missed: {} fires from {} to {}, while the installation was down",
            folded.count,
            format_local(first),
            format_local(last)
        )
    };
    Some(PlannedTick {
        scheduled_local: format_local(first),
        scheduled_at_ms: None,
        kind: PlannedKind::Missed {
            missed_count: folded.count,
        },
        detail: Some(detail),
    })
}
