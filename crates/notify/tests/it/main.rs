//! Integration tests of selextract-notify with real components: the store on both backends,
//! HTTP receivers on 127.0.0.1 (axum), the testkit's SMTP sink, and the delivery loop as
//! workers run it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod email;
mod events;
mod guard;
mod support;
mod sweep;
mod webhooks;
