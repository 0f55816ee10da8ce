//! The export formats a user can ask for, and how each is named on the wire and on disk.

use std::path::Path;
use std::str::FromStr;

/// One of the four download formats of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// A JSON array, one record per line inside it.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// An Excel workbook.
    Xlsx,
}

/// A format name that is none of `json`, `jsonl`, `csv`, `xlsx`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format `{0}` (expected json, jsonl, csv or xlsx)")]
pub struct UnknownExportFormat(pub String);

impl ExportFormat {
    /// Every format, in the order they are offered to users.
    pub const ALL: [ExportFormat; 4] = [Self::Json, Self::Jsonl, Self::Csv, Self::Xlsx];

    /// The name used in `?format=` and in task specs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    /// The HTTP `Content-Type` of a download in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Jsonl => "application/jsonl",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The file extension, without the dot.
    pub fn file_extension(self) -> &'static str {
        self.as_str()
    }

    /// The format a file name asks for by its extension (case-insensitive); `ndjson` counts as
    /// JSONL because that is the other common name for it.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "ndjson" => Some(Self::Jsonl),
            other => other.parse().ok(),
        }
    }
}

impl FromStr for ExportFormat {
    type Err = UnknownExportFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownExportFormat(name.to_owned()))
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}
