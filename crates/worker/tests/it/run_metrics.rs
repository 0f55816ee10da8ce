//! The worker's Prometheus metrics count newly committed pages and finished runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use selextract_store::RunState;

use crate::support::{Backend, RunningWorker, TestEnv, both_backends, pages_spec};

/// Keeps counters and histogram sample counts by `name{label=value,…}`.
#[derive(Default)]
struct CapturingRecorder {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<SampleCount>>>,
}

#[derive(Default)]
struct SampleCount(AtomicU64);

impl HistogramFn for SampleCount {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key_text(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|label| format!("{}={}", label.key(), label.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl CapturingRecorder {
    fn counter(&self, key: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        counters
            .get(key)
            .map_or(0, |value| value.load(Ordering::SeqCst))
    }

    fn samples(&self, key: &str) -> u64 {
        let histograms = self.histograms.lock().unwrap();
        histograms
            .get(key)
            .map_or(0, |value| value.0.load(Ordering::SeqCst))
    }
}

impl Recorder for CapturingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(key_text(key)).or_default().clone())
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(key_text(key)).or_default().clone())
    }
}

// A single-threaded runtime, so that the thread-local recorder sees every task of the run.
both_backends!(
    pages_records_compute_units_and_finished_runs_are_counted_by_mode_and_outcome,
    current_thread
);
async fn pages_records_compute_units_and_finished_runs_are_counted_by_mode_and_outcome(
    backend: Backend,
) {
    let recorder = CapturingRecorder::default();
    let _recording = metrics::set_default_local_recorder(&recorder);
    let env = TestEnv::start(backend).await;
    let user = env.user("a@example.com", "free", 8).await;
    let spec = pages_spec(&[env.site.url("/catalog?page=1"), env.site.url("/status/500")]);
    let run = env.enqueue(&user, spec).await;

    let worker = RunningWorker::spawn(env.config("worker-1"), env.deps());
    let finished = env.wait_until_finished(&run.id).await;
    worker.stop().await;

    assert_eq!(finished.state, RunState::Partial);
    assert_eq!(
        recorder.counter("selextract_pages_fetched_total{mode=http,outcome=ok}"),
        1
    );
    assert_eq!(
        recorder.counter("selextract_pages_fetched_total{mode=http,outcome=http_error}"),
        1
    );
    assert_eq!(recorder.counter("selextract_records_extracted_total{}"), 10);
    assert_eq!(
        recorder.counter("selextract_compute_units_consumed_total{mode=http}"),
        2
    );
    assert_eq!(
        recorder.counter("selextract_runs_total{status=partial,mode=http}"),
        1
    );
    assert_eq!(
        recorder.samples("selextract_run_duration_seconds{mode=http}"),
        1
    );
}
