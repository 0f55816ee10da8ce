//! Export format names, content types and extensions.

use std::path::Path;

use selextract_results::ExportFormat;

#[test]
fn every_format_parses_from_its_own_name() {
    for format in ExportFormat::ALL {
        assert_eq!(format.as_str().parse::<ExportFormat>(), Ok(format));
        assert_eq!(format.file_extension(), format.as_str());
    }
    assert_eq!("CSV".parse::<ExportFormat>(), Ok(ExportFormat::Csv));
}

#[test]
fn an_unknown_format_name_is_an_error_that_names_it() {
    let error = "parquet".parse::<ExportFormat>().unwrap_err();
    assert!(error.to_string().contains("parquet"), "{error}");
}

#[test]
fn the_format_of_a_path_comes_from_its_extension() {
    assert_eq!(
        ExportFormat::from_path(Path::new("out/items.JSONL")),
        Some(ExportFormat::Jsonl)
    );
    assert_eq!(
        ExportFormat::from_path(Path::new("items.ndjson")),
        Some(ExportFormat::Jsonl)
    );
    assert_eq!(
        ExportFormat::from_path(Path::new("items.xlsx")),
        Some(ExportFormat::Xlsx)
    );
    assert_eq!(
        ExportFormat::from_path(Path::new("items.json")),
        Some(ExportFormat::Json)
    );
    assert_eq!(
        ExportFormat::from_path(Path::new("items.csv")),
        Some(ExportFormat::Csv)
    );
    assert_eq!(ExportFormat::from_path(Path::new("items.txt")), None);
    assert_eq!(ExportFormat::from_path(Path::new("items")), None);
}

#[test]
fn content_types_are_the_registered_media_types() {
    assert_eq!(ExportFormat::Json.content_type(), "application/json");
    assert!(ExportFormat::Csv.content_type().starts_with("text/csv"));
    assert_eq!(
        ExportFormat::Xlsx.content_type(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
}
