//! Integration tests of selextract-changes on a real (local directory or in-memory) result
//! store: keying, the diff and its detail, and the external sort with several spills
//! checked against a naive in-memory diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod diffing;
mod spills;
mod support;
