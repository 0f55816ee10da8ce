//! selextract-scheduler: tasks that run themselves (SPEC §4 scheduler). Every `serve` and
//! `worker` process runs [`run_scheduler`]; each pass walks the due schedules' fires from
//! their cursors to now and claims them through the store.
//!
//! Architecture invariants:
//! - Exactly once: a tick is recorded only by the store's claim, one write transaction
//!   that moves the schedule's cursor with a compare-and-set, records the ticks and queues
//!   the runs. Never an in-memory timer alone; any number of processes may run the loop.
//! - Time is a parameter: [`process_schedule`] and [`walk_fires`] take `now`, so tests
//!   drive DST days and downtime against a real database.
//! - No SQL here (the store), no cron parsing here (the `schedule` crate): this crate
//!   decides which fires are missed, caught up or due.
//! - Installation jobs (`jobs.rs`) share the mechanism and must be idempotent: a job runs
//!   after its tick committed, and a crash mid-job is redone by the next tick.

mod config;
mod grants;
mod jobs;
mod process;
mod run_loop;
mod walk;

pub use config::SchedulerConfig;
pub use grants::{grant_this_month, issue_monthly_grants};
pub use jobs::{JobKind, SystemJob, run_job, system_job, system_jobs};
pub use process::{Processed, process_due_schedules, process_schedule};
pub use run_loop::{register_system_jobs, run_scheduler};
pub use walk::{COUNT_BOUND, Walk, WalkRules, fresh_cursor, instant_of, walk_fires};
