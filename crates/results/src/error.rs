//! Errors of the exporters.

/// Why writing an export failed. Bad records are never an error: every JSON value has a
/// rendering in every format; only the output (or the XLSX temp files) can fail.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing export output: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("serialising JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Why a run-record storage operation failed. "Not found" has its own variant so that a
/// missing page never looks like an unreachable store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("results URL `{url}` uses scheme `{scheme}`; expected file://, s3:// or memory://")]
    UnsupportedScheme { url: String, scheme: String },
    #[error("results URL `{url}` is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("creating results directory {path}: {source}")]
    CreateDirectory {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid object key part `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("page object `{key}` not found")]
    NotFound { key: String },
    #[error("page object `{key}` line {line} is not a JSON object: {source}")]
    CorruptPage {
        key: String,
        line: usize,
        source: serde_json::Error,
    },
    #[error("serialising records: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("results storage probe read back different bytes than were written")]
    ProbeMismatch,
    #[error("results storage: {0}")]
    ObjectStore(#[from] object_store::Error),
}
