//! Integration tests of the HTTP fetcher against the fixture site on 127.0.0.1.

// Tests fail by panicking; unwrap is the plainest way to say "this must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod body;
mod bombs;
mod fair_politeness;
mod guard;
mod politeness;
mod proxy;
mod redirects;
mod retries;
mod robots;
mod secrets;
mod shared_politeness;
mod support;
