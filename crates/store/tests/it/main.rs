//! Integration tests of selextract-store against a real SQLite file in a temp dir. Every
//! test gets its store from `support::test_store()`, so the same bodies can run against
//! PostgreSQL once that backend exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod connect;
mod ledger;
mod logs_workers_flags;
mod pages;
mod queue;
mod queue_scale;
mod runs;
mod support;
mod tasks;
