//! Request handlers, one module per resource. Each handler reads as a list of named steps.

pub(crate) mod account;
pub(crate) mod admin_users;
pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod billing;
pub(crate) mod billing_webhook;
pub(crate) mod changes;
pub(crate) mod changes_feed;
pub(crate) mod deliveries;
pub(crate) mod events;
pub(crate) mod keys;
pub(crate) mod login;
pub(crate) mod oidc;
pub(crate) mod preview;
pub(crate) mod recovery;
pub(crate) mod recovery_pages;
pub(crate) mod results;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod system;
pub(crate) mod tasks;
