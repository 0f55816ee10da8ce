//! Integration tests of the scheduler against real databases: every test runs on a SQLite
//! store in a temp dir and on a fresh PostgreSQL schema (`both_backends!`), with time
//! driven through `now`.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grants;
mod scheduling;
mod scheduling_dst;
mod support;
