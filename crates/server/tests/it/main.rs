//! Integration tests of the REST API: the real router over a SQLite store in a temp dir and
//! a local result store, driven in process with `tower::ServiceExt::oneshot`.

mod auth;
mod errors;
mod events;
mod isolation;
mod keys;
mod preview;
mod records;
mod support;
mod system;
mod tasks;
