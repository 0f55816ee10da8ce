//! Bookkeeping of live event streams (SSE): the per-user and per-process caps, the slot a
//! stream holds for as long as its response body exists, and the poll schedule that lets a
//! quiet stream slow down instead of reading the database every 250 ms forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::config::EventStreamConfig;
use crate::error::ApiError;

/// While a run is unfinished its state will change, so its stream never polls less often
/// than this, however long the run stays quiet.
const MAX_POLL_INTERVAL_WHILE_RUNNING: Duration = Duration::from_secs(1);

/// The open streams of this process, by user.
#[derive(Debug)]
pub(crate) struct EventStreams {
    max_per_user: usize,
    max_open: usize,
    open: Mutex<OpenStreams>,
    /// Reads of a task's latest run by all streams so far (for tests and diagnostics: the
    /// number of database polls, independent of wall-clock time).
    polls: AtomicU64,
}

#[derive(Debug, Default)]
struct OpenStreams {
    total: usize,
    per_user: HashMap<String, usize>,
}

impl EventStreams {
    pub(crate) fn new(config: &EventStreamConfig) -> Self {
        EventStreams {
            max_per_user: config.max_per_user,
            max_open: config.max_open,
            open: Mutex::new(OpenStreams::default()),
            polls: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OpenStreams> {
        // The counters stay consistent even if a holder panicked: every update is a single
        // increment or decrement done before any code that could panic.
        match self.open.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes a slot for a new stream of `user_id`, or refuses with `too_many_streams` when
    /// the user or the process is at its cap. The slot is given back when it is dropped.
    pub(crate) fn try_open(self: &Arc<Self>, user_id: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.lock();
        let users_streams = open.per_user.get(user_id).copied().unwrap_or(0);
        if users_streams >= self.max_per_user {
            return Err(ApiError::TooManyStreams(format!(
                "this account already has {users_streams} open event streams (the limit is {}); \
                 close one and retry",
                self.max_per_user
            )));
        }
        if open.total >= self.max_open {
            return Err(ApiError::TooManyStreams(
                "the server has too many open event streams; retry shortly".to_owned(),
            ));
        }
        open.total += 1;
        *open.per_user.entry(user_id.to_owned()).or_insert(0) += 1;
        record_open_gauge(open.total);
        Ok(StreamSlot {
            streams: Arc::clone(self),
            user_id: user_id.to_owned(),
        })
    }

    fn release(&self, user_id: &str) {
        let mut open = self.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_user.get_mut(user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_user.remove(user_id);
            }
        }
        record_open_gauge(open.total);
    }

    /// Streams open in this process now.
    pub(crate) fn open_streams(&self) -> usize {
        self.lock().total
    }

    pub(crate) fn record_poll(&self) {
        self.polls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
}

fn record_open_gauge(total: usize) {
    // A gauge is an f64; stream counts are far below 2^53, so the cast is exact.
    metrics::gauge!("selextract_event_streams_open").set(total as f64);
}

/// One stream's place under the caps. It lives inside the response body, so it is released
/// when the body is dropped: when the stream ends or the client disconnects.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    streams: Arc<EventStreams>,
    user_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.streams.release(&self.user_id);
    }
}

/// When a stream polls next: the base interval after news, doubling while nothing changes,
/// up to 1 s while a run is unfinished and up to the configured maximum when there is no
/// run to watch.
#[derive(Debug, Clone)]
pub(crate) struct PollSchedule {
    base: Duration,
    max_without_run: Duration,
    current: Duration,
}

impl PollSchedule {
    pub(crate) fn new(config: &EventStreamConfig) -> Self {
        let base = config.poll_interval.max(Duration::from_millis(1));
        PollSchedule {
            base,
            max_without_run: config.max_poll_interval.max(base),
            current: base,
        }
    }

    /// The interval after a poll that found something to report.
    pub(crate) fn after_news(&mut self) -> Duration {
        self.current = self.base;
        self.current
    }

    /// The interval after a poll that found nothing new.
    pub(crate) fn after_quiet(&mut self, run_unfinished: bool) -> Duration {
        let cap = if run_unfinished {
            MAX_POLL_INTERVAL_WHILE_RUNNING
                .min(self.max_without_run)
                .max(self.base)
        } else {
            self.max_without_run
        };
        self.current = self.current.saturating_mul(2).min(cap);
        self.current
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn config(base_ms: u64, max_ms: u64) -> EventStreamConfig {
        EventStreamConfig {
            poll_interval: Duration::from_millis(base_ms),
            max_poll_interval: Duration::from_millis(max_ms),
            ..EventStreamConfig::default()
        }
    }

    fn millis(durations: impl IntoIterator<Item = Duration>) -> Vec<u128> {
        durations.into_iter().map(|d| d.as_millis()).collect()
    }

    #[test]
    fn a_stream_without_a_run_backs_off_from_250_ms_to_5_s() {
        let mut schedule = PollSchedule::new(&EventStreamConfig::default());
        let intervals = millis((0..8).map(|_| schedule.after_quiet(false)));
        assert_eq!(intervals, [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
    }

    #[test]
    fn an_unfinished_run_is_polled_at_least_every_second_and_news_resets_the_interval() {
        let mut schedule = PollSchedule::new(&EventStreamConfig::default());
        let intervals = millis((0..4).map(|_| schedule.after_quiet(true)));
        assert_eq!(intervals, [500, 1000, 1000, 1000]);
        assert_eq!(schedule.after_news(), Duration::from_millis(250));
        assert_eq!(schedule.after_quiet(false), Duration::from_millis(500));
    }

    #[test]
    fn nonsensical_settings_still_give_a_positive_non_decreasing_schedule() {
        let mut schedule = PollSchedule::new(&config(0, 0));
        assert_eq!(schedule.after_quiet(false), Duration::from_millis(1));
        let mut schedule = PollSchedule::new(&config(800, 100));
        assert_eq!(schedule.after_quiet(true), Duration::from_millis(800));
        assert_eq!(schedule.after_quiet(false), Duration::from_millis(800));
        let mut schedule = PollSchedule::new(&config(u64::MAX, u64::MAX));
        assert_eq!(schedule.after_quiet(false), Duration::from_millis(u64::MAX));
    }

    #[test]
    fn caps_count_per_user_and_per_process_and_dropped_slots_are_given_back() {
        let streams = Arc::new(EventStreams::new(&EventStreamConfig {
            max_per_user: 2,
            max_open: 3,
            ..EventStreamConfig::default()
        }));
        let a1 = streams.try_open("a").expect("first of a");
        let _a2 = streams.try_open("a").expect("second of a");
        assert!(matches!(
            streams.try_open("a"),
            Err(ApiError::TooManyStreams(_))
        ));
        let _b1 = streams.try_open("b").expect("first of b");
        assert!(matches!(
            streams.try_open("b"),
            Err(ApiError::TooManyStreams(_))
        ));
        assert_eq!(streams.open_streams(), 3);
        drop(a1);
        assert_eq!(streams.open_streams(), 2);
        let _b2 = streams.try_open("b").expect("a slot was given back");
    }
}
