//! Integration tests of the fixture site: the documented records really are what a parser sees.

// Tests fail by panicking; unwrap is the plainest way to say "this must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http;
mod pages;
