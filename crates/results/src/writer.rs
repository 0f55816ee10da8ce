//! The [`RecordWriter`] trait and the constructor that picks a writer for a format.

use std::io::Write;

use serde_json::{Map, Value};

use crate::{ExportError, ExportFormat, csv_writer, json_writer, xlsx_writer};

/// Writes records one at a time into an export, holding at most one record's worth of state
/// (XLSX keeps its rows in a temp file until [`RecordWriter::finish`]).
pub trait RecordWriter: Send {
    /// Appends one record.
    fn write_record(&mut self, record: &Map<String, Value>) -> Result<(), ExportError>;

    /// Flush buffered bytes so a reader (e.g. `tail -f`, or a Ctrl-C'd CLI) sees complete
    /// records. JSON, JSONL and CSV output then ends after a complete record; XLSX cannot be
    /// read before `finish`, so for it this does nothing.
    fn flush(&mut self) -> Result<(), ExportError>;

    /// Write the closing bytes (`]` for JSON, the zip for XLSX) and flush the output.
    fn finish(self: Box<Self>) -> Result<(), ExportError>;
}

/// Creates a writer for `format` that writes to `out`.
///
/// `columns` are the spec's field names in order. They are the CSV header and the XLSX header
/// row, and only those fields are written there (every record of a run has the same fields,
/// so the header is the union of field names); when `columns` is empty the header is taken
/// from the first record's keys instead. JSON and JSONL write every record whole and ignore
/// `columns`.
///
/// `out` is buffered here; pass it unbuffered.
pub fn record_writer<W: Write + Send + 'static>(
    format: ExportFormat,
    out: W,
    columns: &[String],
) -> Result<Box<dyn RecordWriter>, ExportError> {
    Ok(match format {
        ExportFormat::Json => Box::new(json_writer::JsonArrayWriter::new(out)?),
        ExportFormat::Jsonl => Box::new(json_writer::JsonLinesWriter::new(out)),
        ExportFormat::Csv => Box::new(csv_writer::CsvRecordWriter::new(out, columns)),
        ExportFormat::Xlsx => Box::new(xlsx_writer::XlsxRecordWriter::new(out, columns)?),
    })
}
