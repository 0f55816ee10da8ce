//! Integration tests of the REST API: the real router over a store on each backend (a SQLite
//! file in a temp dir and a fresh PostgreSQL schema, `support::both_backends!`) and a local
//! result store, driven in process with `tower::ServiceExt::oneshot`.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod admin_users;
mod analytics;
mod audit;
mod auth;
mod billing;
mod billing_deletion;
mod billing_support;
mod billing_webhooks;
mod changes;
mod deletion;
mod deliveries;
mod errors;
mod event_streams;
mod events;
mod hostile_requests;
mod isolation;
mod jwt;
mod keys;
mod login;
mod login_support;
mod nul_ids;
mod oidc;
mod oidc_refusals;
mod oidc_support;
mod outage;
mod preview;
mod records;
mod recovery;
mod recovery_invitations;
mod recovery_support;
mod recovery_verify;
mod schedules;
mod serve;
mod sessions;
mod shared_limits;
mod support;
mod system;
mod tasks;
mod user_metrics;
