//! Integration tests of the REST API: the real router over a SQLite store in a temp dir and
//! a local result store, driven in process with `tower::ServiceExt::oneshot`.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod errors;
mod events;
mod isolation;
mod keys;
mod preview;
mod records;
mod serve;
mod support;
mod system;
mod tasks;
