//! Integration tests of the worker: every test runs on a real SQLite store in a temp dir and
//! on a fresh PostgreSQL schema (`support::both_backends!`), with local result storage and
//! the testkit fixture site on 127.0.0.1.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod budget;
mod cancellation;
mod completion;
mod concurrency;
mod deletion;
mod limits;
mod monitors;
mod outage;
mod reexecution;
mod run_metrics;
mod shutdown;
mod support;
mod upgrade;
mod waking;
