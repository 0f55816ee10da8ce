//! Integration tests of selextract-results: exporters and run-record storage.

mod export_csv;
mod export_json;
mod export_stream;
mod export_xlsx;
mod format;
mod memory;
mod storage;
mod support;
