//! Integration tests of selextract-results: exporters and run-record storage.

// A failed unwrap is a failed test, which is what these assertions are for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod export_csv;
mod export_json;
mod export_stream;
mod export_xlsx;
mod format;
mod memory;
mod s3;
mod storage;
mod support;
