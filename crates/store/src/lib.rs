//! selextract-store: the only crate with SQL. Users, API keys, tasks, runs and the durable
//! run queue, committed pages, run logs, the compute-unit ledger, worker heartbeats and
//! flags, on SQLite (one file shared by several processes) or PostgreSQL (any number of
//! processes on any number of machines), chosen by the database URL (see `db.rs` and
//! `dialect.rs`); the schema's version and migrations are in `migrate.rs`.
//!
//! Every method of [`Store`] is one atomic unit of work. Lookups return
//! `Result<Option<T>, StoreError>`; reads and writes of user-owned rows take the user id,
//! so a user never reaches another user's rows.

mod account_tokens;
mod activity;
mod analytics;
mod api_keys;
mod audit;
mod billing;
mod db;
mod deletion;
mod deliveries;
mod delivery_log;
mod dialect;
mod error;
mod kv;
mod ledger;
mod logs;
mod migrate;
mod model;
mod oidc_identities;
mod outcome;
mod owned;
mod pages;
mod plans;
mod queue;
mod run_changes;
mod runs;
mod schedule_claim;
mod schedules;
mod sessions;
mod subscriptions;
mod tasks;
#[cfg(feature = "test-support")]
pub mod testing;
mod user_list;
mod users;
mod wakeups;
mod workers;

pub use account_tokens::{AccountToken, AccountTokenPurpose, NewAccountToken};
pub use analytics::{ActiveRuns, DAY_MS, DayUsage, RecentRun};
pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use db::Store;
pub use deletion::{
    AccountDeletion, DeletionReport, LATE_WRITE_GRACE_MS, ObjectSweepReport, RunDeletion,
};
pub use deliveries::{AttemptRecorded, AttemptVerdict, Delivery, DeliveryAttempt, DeliveryState};
pub use delivery_log::{DeliveryFilter, NotifyTarget};
pub use error::StoreError;
pub use ledger::monthly_grant_key;
pub use migrate::{
    CONTRACT_PREFIX, MigrationReport, MigrationState, MigrationStatus, SCHEMA_VERSION,
    SchemaStatus, SchemaVerdict,
};
pub use model::*;
pub use oidc_identities::{NewOidcIdentity, OidcIdentity};
pub use outcome::{NewDelivery, RunChanges};
pub use owned::{OwnedRun, RunLease};
pub use pages::page_charge_key;
pub use plans::{Plan, Plans};
pub use run_changes::FeedToken;
pub use schedule_claim::{
    ClaimOutcome, OverlapGuard, PlannedKind, PlannedTick, RecordedTick, TickClaim,
};
pub use schedules::{
    FreshCursor, ScheduleRecord, ScheduleTick, ScheduleTiming, TaskNextRun, TickOutcome,
};
pub use sessions::{AccountStanding, FamilyStanding, NewSession, RefreshRotation, Session};
pub use subscriptions::{
    BillingChange, BillingEvent, BillingOutcome, InvoiceRecord, SubscriptionRecord,
};
pub use user_list::UserFilter;
pub use users::GuardedChange;
pub use wakeups::{QUEUE_CHANNEL, QueueWakeups};

/// Attempts a run gets before a lost worker fails it (`worker.max_attempts`), written on each
/// run when it is enqueued: one default for the API that enqueues and the worker settings.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
