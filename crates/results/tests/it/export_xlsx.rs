//! XLSX export, read back with calamine and by unzipping the workbook.

use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use selextract_results::ExportFormat;
use serde_json::json;

use crate::support::{columns, export, record, varied_records};

fn open(bytes: Vec<u8>) -> Xlsx<Cursor<Vec<u8>>> {
    open_workbook_from_rs(Cursor::new(bytes)).unwrap()
}

fn sheet_rows(workbook: &mut Xlsx<Cursor<Vec<u8>>>, name: &str) -> Vec<Vec<Data>> {
    let range = workbook.worksheet_range(name).unwrap();
    range.rows().map(<[Data]>::to_vec).collect()
}

fn zip_member(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut member = archive.by_name(name).unwrap();
    let mut text = String::new();
    member.read_to_string(&mut text).unwrap();
    text
}

fn text(value: &str) -> Data {
    Data::String(value.to_owned())
}

const FIELDS: [&str; 6] = ["title", "price", "count", "in_stock", "tags", "missing"];

#[test]
fn xlsx_export_reads_back_with_typed_cells_in_a_records_sheet() {
    let mut workbook = open(export(
        ExportFormat::Xlsx,
        &columns(&FIELDS),
        &varied_records(),
    ));
    assert_eq!(workbook.sheet_names(), ["records"]);
    let rows = sheet_rows(&mut workbook, "records");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], FIELDS.map(text));
    assert_eq!(
        rows[1],
        [
            text("Grüße aus Köln — 東京 🍣"),
            Data::Float(12.5),
            Data::Float(3.0),
            Data::Bool(true),
            text("a; b; c"),
            Data::Empty,
        ]
    );
    assert_eq!(
        rows[2],
        [
            text("Second, with \"quotes\"\nand a newline"),
            Data::Float(-4.0),
            Data::Float(0.0),
            Data::Bool(false),
            text("1; two; ; true"),
            text(r#"{"nested":{"deep":[1,2]}}"#),
        ]
    );
}

#[test]
fn xlsx_export_header_row_is_bold() {
    let bytes = export(
        ExportFormat::Xlsx,
        &columns(&["a", "b"]),
        &[record(json!({"a": "x", "b": "y"}))],
    );
    let styles = zip_member(&bytes, "xl/styles.xml");
    assert!(styles.contains("<b/>"), "no bold font in styles: {styles}");
    let sheet = zip_member(&bytes, "xl/worksheets/sheet1.xml");
    // Header cells carry the bold style (index 1); data cells the default.
    assert!(sheet.contains(r#"<c r="A1" s="1""#), "{sheet}");
    assert!(sheet.contains(r#"<c r="B1" s="1""#), "{sheet}");
    assert!(!sheet.contains(r#"<c r="A2" s="1""#), "{sheet}");
}

#[test]
fn xlsx_export_writes_formula_looking_text_as_plain_strings() {
    let payload = "=cmd|' /C calc'!A0";
    let bytes = export(
        ExportFormat::Xlsx,
        &columns(&["a"]),
        &[record(json!({"a": payload}))],
    );
    let sheet = zip_member(&bytes, "xl/worksheets/sheet1.xml");
    assert!(!sheet.contains("<f>"), "a formula was written: {sheet}");
    let mut workbook = open(bytes);
    assert_eq!(sheet_rows(&mut workbook, "records")[1], [text(payload)]);
}

#[test]
fn xlsx_export_of_zero_records_is_a_workbook_with_the_header_alone() {
    let mut workbook = open(export(ExportFormat::Xlsx, &columns(&["a", "b"]), &[]));
    assert_eq!(
        sheet_rows(&mut workbook, "records"),
        [[text("a"), text("b")]]
    );
}

#[test]
fn xlsx_export_truncates_text_to_the_excel_cell_limit_on_a_character_boundary() {
    // 'é' is one UTF-16 unit, '🍣' two: the limit falls in the middle of the last emoji.
    let long = format!("{}{}", "é".repeat(32_766), "🍣".repeat(10));
    let bytes = export(
        ExportFormat::Xlsx,
        &columns(&["a"]),
        &[record(json!({"a": long}))],
    );
    let mut workbook = open(bytes);
    let rows = sheet_rows(&mut workbook, "records");
    let Data::String(cell) = &rows[1][0] else {
        panic!("not text: {:?}", rows[1][0]);
    };
    assert_eq!(cell.encode_utf16().count(), 32_766);
    assert_eq!(cell.chars().count(), 32_766);
    assert!(long.starts_with(cell.as_str()));
}

#[test]
fn xlsx_export_keeps_integers_beyond_float_precision_as_text() {
    let records = [record(
        json!({"id": 9_007_199_254_740_993_u64, "small": 42}),
    )];
    let mut workbook = open(export(
        ExportFormat::Xlsx,
        &columns(&["id", "small"]),
        &records,
    ));
    assert_eq!(
        sheet_rows(&mut workbook, "records")[1],
        [text("9007199254740993"), Data::Float(42.0)]
    );
}

#[test]
fn xlsx_export_without_columns_takes_the_header_from_the_first_record() {
    let records = [record(json!({"z": "last", "a": "first"}))];
    let mut workbook = open(export(ExportFormat::Xlsx, &[], &records));
    assert_eq!(
        sheet_rows(&mut workbook, "records"),
        [[text("z"), text("a")], [text("last"), text("first")]]
    );
}

#[test]
fn xlsx_export_continues_on_a_second_sheet_after_1_048_575_records() {
    let buffer = crate::support::SharedBuffer::default();
    let mut writer =
        selextract_results::record_writer(ExportFormat::Xlsx, buffer.clone(), &columns(&["n"]))
            .unwrap();
    let total = 1_048_575 + 2;
    for n in 0..total {
        writer.write_record(&record(json!({"n": n}))).unwrap();
    }
    writer.finish().unwrap();
    let bytes = buffer.bytes();

    let workbook = zip_member(&bytes, "xl/workbook.xml");
    assert!(
        workbook.contains(r#"<sheet name="records" sheetId="1""#),
        "{workbook}"
    );
    assert!(
        workbook.contains(r#"<sheet name="records (2)" sheetId="2""#),
        "{workbook}"
    );
    let first = zip_member(&bytes, "xl/worksheets/sheet1.xml");
    assert!(
        first.contains(r#"<c r="A1048576"><v>1048574</v></c>"#),
        "last row of sheet 1"
    );
    let second = zip_member(&bytes, "xl/worksheets/sheet2.xml");
    assert!(
        second.contains(r#"<c r="A1" s="1""#),
        "header repeated: {second}"
    );
    assert!(
        second.contains(r#"<c r="A2"><v>1048575</v></c>"#),
        "{second}"
    );
    assert!(
        second.contains(r#"<c r="A3"><v>1048576</v></c>"#),
        "{second}"
    );
    assert!(!second.contains(r#"r="A4""#), "{second}");
}
