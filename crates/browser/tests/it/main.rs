//! Browser rendering tests in real Chromium against the testkit fixture site on 127.0.0.1.
//! Without Chromium they skip with a message, unless `SELEXTRACT_REQUIRE_CHROMIUM=1` (CI).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

mod guard;
mod pagination;
mod pool;
mod proxy;
mod render;
mod resilience;
mod secrets;
mod service_worker;
