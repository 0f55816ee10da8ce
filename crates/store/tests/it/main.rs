//! Integration tests of selextract-store against real databases: every test body runs twice,
//! on a SQLite file in a temp dir and on a fresh schema of the PostgreSQL server named by
//! `SELEXTRACT_TEST_POSTGRES_URL` (`support::both_backends!`); the PostgreSQL half fails when
//! that server cannot be reached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account_deletion;
mod account_deletion_audit;
mod account_tokens;
mod accounts;
mod connect;
mod deletion;
mod deliveries;
mod expand_columns;
mod ledger;
mod logs_workers_flags;
mod migrate;
mod outcome;
mod outcome_sweep;
mod pages;
mod queue;
mod queue_counters;
mod queue_scale;
mod rollback;
mod run_changes;
mod runs;
mod schedules;
mod statements;
mod subscriptions;
mod support;
mod tasks;
mod upgrade;
mod user_admin;
mod wakeups;
