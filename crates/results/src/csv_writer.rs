//! CSV writer: a header row of the spec's field names, then one row per record.
//!
//! Values are flattened as described in `cell`. Text that a spreadsheet would run as a
//! formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`, the
//! usual defence against CSV injection: scraped pages are untrusted and users open these
//! files in Excel. Numbers are written as numbers and never prefixed, so `-3` stays `-3`.

use std::io::Write;

use serde_json::{Map, Value};

use crate::cell::{Cell, cell_of, looks_like_formula};
use crate::{ExportError, RecordWriter};

/// Streams records as CSV; `csv::Writer` does the quoting and the buffering.
pub(crate) struct CsvRecordWriter<W: Write> {
    out: csv::Writer<W>,
    /// `None` until known: taken from the first record when no columns were given.
    columns: Option<Vec<String>>,
    header_written: bool,
    /// Reused for every guarded or numeric cell so a row costs no allocation.
    scratch: String,
}

impl<W: Write> CsvRecordWriter<W> {
    pub(crate) fn new(out: W, columns: &[String]) -> Self {
        Self {
            out: csv::Writer::from_writer(out),
            columns: (!columns.is_empty()).then(|| columns.to_vec()),
            header_written: false,
            scratch: String::new(),
        }
    }

    fn write_header_once(&mut self) -> Result<(), ExportError> {
        if self.header_written {
            return Ok(());
        }
        if let Some(columns) = &self.columns {
            self.out.write_record(columns)?;
        }
        self.header_written = true;
        Ok(())
    }

    fn write_cell(&mut self, cell: Cell<'_>) -> Result<(), ExportError> {
        self.scratch.clear();
        match cell {
            Cell::Empty => self.out.write_field("")?,
            Cell::Text(text) if looks_like_formula(&text) => {
                self.scratch.push('\'');
                self.scratch.push_str(&text);
                self.out.write_field(&self.scratch)?;
            }
            Cell::Text(text) => self.out.write_field(text.as_bytes())?,
            Cell::Number(number) => {
                use std::fmt::Write as _;
                // Writing into a String cannot fail.
                let _ = write!(self.scratch, "{number}");
                self.out.write_field(&self.scratch)?;
            }
            Cell::Bool(flag) => self.out.write_field(if flag { "true" } else { "false" })?,
        }
        Ok(())
    }
}

impl<W: Write + Send> RecordWriter for CsvRecordWriter<W> {
    fn write_record(&mut self, record: &Map<String, Value>) -> Result<(), ExportError> {
        if self.columns.is_none() {
            self.columns = Some(record.keys().cloned().collect());
        }
        self.write_header_once()?;
        // Taken out for the loop so the cells can borrow `self` mutably; put back below.
        let columns = self.columns.take().unwrap_or_default();
        let written = columns
            .iter()
            .try_for_each(|column| self.write_cell(cell_of(record.get(column))));
        self.columns = Some(columns);
        written?;
        // An empty iterator ends the row that `write_field` started.
        self.out.write_record(std::iter::empty::<&[u8]>())?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.write_header_once()?;
        self.out.flush()?;
        Ok(())
    }
}
