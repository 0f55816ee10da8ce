//! selextract-store: the only crate with SQL. Users, API keys, tasks, runs and the durable
//! run queue, committed pages, run logs, the compute-unit ledger, worker heartbeats and
//! flags, on SQLite today (one file shared by several processes) and built so PostgreSQL
//! slots in as a second backend (see `db.rs` and `dialect.rs`).
//!
//! Every method of [`Store`] is one atomic unit of work. Lookups return
//! `Result<Option<T>, StoreError>`; reads and writes of user-owned rows take the user id,
//! so a user never reaches another user's rows.

mod api_keys;
mod billing;
mod db;
mod dialect;
mod error;
mod kv;
mod ledger;
mod logs;
mod model;
mod pages;
mod plans;
mod queue;
mod runs;
mod tasks;
mod users;
mod workers;

pub use db::Store;
pub use error::StoreError;
pub use model::*;
pub use pages::page_charge_key;
pub use plans::{Plan, Plans};
