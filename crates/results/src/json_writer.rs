//! JSON array and JSON Lines writers.
//!
//! The JSON array is written as `[\n{…},\n{…}\n]\n`: the opening bracket at once, each record
//! on its own line, the separating comma before the next record rather than after this one.
//! So output that was flushed but never finished (a Ctrl-C'd CLI) holds only complete
//! records and lacks only the closing `\n]\n`.

use std::io::{BufWriter, Write};

use serde_json::{Map, Value};

use crate::{ExportError, RecordWriter};

/// A streamed JSON array.
pub(crate) struct JsonArrayWriter<W: Write> {
    out: BufWriter<W>,
    records_written: u64,
}

impl<W: Write> JsonArrayWriter<W> {
    pub(crate) fn new(out: W) -> Result<Self, ExportError> {
        let mut out = BufWriter::new(out);
        out.write_all(b"[")?;
        Ok(Self {
            out,
            records_written: 0,
        })
    }
}

impl<W: Write + Send> RecordWriter for JsonArrayWriter<W> {
    fn write_record(&mut self, record: &Map<String, Value>) -> Result<(), ExportError> {
        let separator: &[u8] = if self.records_written == 0 {
            b"\n"
        } else {
            b",\n"
        };
        self.out.write_all(separator)?;
        serde_json::to_writer(&mut self.out, record)?;
        self.records_written += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.write_all(b"\n]\n")?;
        self.out.flush()?;
        Ok(())
    }
}

/// One JSON object per line.
pub(crate) struct JsonLinesWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> JsonLinesWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        Self {
            out: BufWriter::new(out),
        }
    }
}

impl<W: Write + Send> RecordWriter for JsonLinesWriter<W> {
    fn write_record(&mut self, record: &Map<String, Value>) -> Result<(), ExportError> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        self.out.flush()?;
        Ok(())
    }
}
