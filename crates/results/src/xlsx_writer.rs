//! XLSX writer on `rust_xlsxwriter` in constant-memory mode.
//!
//! Rows go to the worksheet's temp file as they are written, so memory stays flat however
//! many records there are; the zip is produced at `finish`, streamed straight into the output
//! (rust_xlsxwriter 0.102 zips through a non-seeking stream writer, so no second temp file
//! is needed). One worksheet "records" with a bold header row; cells keep their type
//! (strings, numbers, booleans), lists and nested values are flattened as in `cell`. Strings
//! are always written as strings, never as formulas, so `=cmd|…` is inert here without the
//! CSV writer's `'` prefix. A sheet holds 1,048,575 records under its header; the next ones
//! continue on "records (2)", "records (3)", … each with the header again.

use std::io::{BufWriter, Write};

use rust_xlsxwriter::{ColNum, Format, RowNum, Workbook, XlsxError};
use serde_json::{Map, Number, Value};

use crate::cell::{Cell, cell_of};
use crate::{ExportError, RecordWriter};

/// Rows in an Excel worksheet, the header row included.
const EXCEL_ROWS: RowNum = 1_048_576;
/// Columns in an Excel worksheet; further fields are not written.
const EXCEL_COLUMNS: usize = 16_384;
/// The longest text a cell can hold, in UTF-16 code units.
const EXCEL_CELL_TEXT_UNITS: usize = 32_767;
/// The largest integer an f64 (Excel's only number type) holds exactly.
const EXACT_F64_INTEGER: u64 = 1 << 53;

const SHEET_NAME: &str = "records";

/// Streams records into a workbook and writes the `.xlsx` bytes to `out` at the end.
pub(crate) struct XlsxRecordWriter<W: Write> {
    out: W,
    workbook: Workbook,
    header_format: Format,
    /// `None` until known: taken from the first record when no columns were given.
    columns: Option<Vec<String>>,
    /// Index of the worksheet being written, and the next row in it.
    sheet_index: usize,
    next_row: RowNum,
}

impl<W: Write> XlsxRecordWriter<W> {
    pub(crate) fn new(out: W, columns: &[String]) -> Result<Self, ExportError> {
        let mut writer = Self {
            out,
            workbook: Workbook::new(),
            header_format: Format::new().set_bold(),
            columns: None,
            sheet_index: 0,
            next_row: 0,
        };
        writer.start_sheet()?;
        if !columns.is_empty() {
            writer.set_columns(columns.to_vec())?;
        }
        Ok(writer)
    }

    /// Adds the next worksheet, named after its position, and makes it current.
    fn start_sheet(&mut self) -> Result<(), XlsxError> {
        let position = self.workbook.worksheets().len() + 1;
        let name = if position == 1 {
            SHEET_NAME.to_owned()
        } else {
            format!("{SHEET_NAME} ({position})")
        };
        self.workbook
            .add_worksheet_with_constant_memory()?
            .set_name(name)?;
        self.sheet_index = position - 1;
        self.next_row = 0;
        Ok(())
    }

    fn set_columns(&mut self, mut columns: Vec<String>) -> Result<(), XlsxError> {
        columns.truncate(EXCEL_COLUMNS);
        self.columns = Some(columns);
        self.write_header()
    }

    fn write_header(&mut self) -> Result<(), XlsxError> {
        let Some(columns) = &self.columns else {
            return Ok(());
        };
        let sheet = self.workbook.worksheet_from_index(self.sheet_index)?;
        for (index, column) in columns.iter().enumerate() {
            sheet.write_string_with_format(
                self.next_row,
                column_number(index),
                truncate_to_cell_limit(column),
                &self.header_format,
            )?;
        }
        self.next_row += 1;
        Ok(())
    }
}

impl<W: Write + Send> RecordWriter for XlsxRecordWriter<W> {
    fn write_record(&mut self, record: &Map<String, Value>) -> Result<(), ExportError> {
        if self.columns.is_none() {
            self.set_columns(record.keys().cloned().collect())?;
        }
        if self.next_row == EXCEL_ROWS {
            self.start_sheet()?;
            self.write_header()?;
        }
        let row = self.next_row;
        let sheet = self.workbook.worksheet_from_index(self.sheet_index)?;
        for (index, column) in self.columns.iter().flatten().enumerate() {
            let column_number = column_number(index);
            match cell_of(record.get(column)) {
                Cell::Empty => {}
                Cell::Text(text) => {
                    sheet.write_string(row, column_number, truncate_to_cell_limit(&text))?;
                }
                Cell::Number(number) => match exact_f64(number) {
                    Some(value) => {
                        sheet.write_number(row, column_number, value)?;
                    }
                    // Excel would round it (long IDs), so keep the digits as text.
                    None => {
                        sheet.write_string(row, column_number, number.to_string())?;
                    }
                },
                Cell::Bool(flag) => {
                    sheet.write_boolean(row, column_number, flag)?;
                }
            }
        }
        self.next_row += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ExportError> {
        // An XLSX file is a zip whose directory comes last: nothing is readable before
        // `finish`, so there is nothing useful to flush.
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), ExportError> {
        let mut out = BufWriter::new(&mut self.out);
        self.workbook.save_to_writer(&mut out)?;
        out.flush()?;
        Ok(())
    }
}

fn column_number(index: usize) -> ColNum {
    // Columns are truncated to EXCEL_COLUMNS (16,384), which fits in a u16.
    ColNum::try_from(index).unwrap_or(ColNum::MAX)
}

/// The number as Excel's f64 when that loses nothing a user would notice: integers beyond
/// 2^53 (long IDs) would be rounded, so those are kept as text instead.
fn exact_f64(number: &Number) -> Option<f64> {
    if let Some(integer) = number.as_i64() {
        return (integer.unsigned_abs() <= EXACT_F64_INTEGER).then_some(integer as f64);
    }
    if let Some(integer) = number.as_u64() {
        return (integer <= EXACT_F64_INTEGER).then_some(integer as f64);
    }
    number.as_f64()
}

/// Cuts text to Excel's per-cell limit (counted in UTF-16 units) on a character boundary.
fn truncate_to_cell_limit(text: &str) -> String {
    let mut units = 0;
    for (byte_index, character) in text.char_indices() {
        units += character.len_utf16();
        if units > EXCEL_CELL_TEXT_UNITS {
            return text[..byte_index].to_owned();
        }
    }
    text.to_owned()
}
