//! Run-record storage and streaming exporters: where a run's records live and how they leave.
//!
//! Part one is synchronous and knows nothing of storage: [`record_writer`] turns records into
//! JSON, JSONL, CSV or XLSX over any [`std::io::Write`], one record at a time, in constant
//! memory. Part two, [`ResultStore`], keeps records per page in object storage, and
//! [`export_stream`] streams them back out through the same writers as bytes.

mod cell;
mod csv_writer;
mod error;
mod export_stream;
mod format;
mod json_writer;
mod storage;
mod writer;
mod xlsx_writer;

pub use error::{ExportError, StorageError};
pub use export_stream::export_stream;
pub use format::{ExportFormat, UnknownExportFormat};
pub use storage::{PageObject, Record, ResultStore, change_object_key, page_object_key};
pub use writer::{RecordWriter, record_writer};
