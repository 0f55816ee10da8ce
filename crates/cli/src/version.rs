//! The build's identity: release version, source commit and the database schema it needs,
//! as `selextract --version` prints it.

/// `0.2.0-dev (commit 0123456789ab, schema 3)`. The commit is set by `build.rs`
/// (`SELEXTRACT_COMMIT` at build time, else `git rev-parse`, else `unknown`).
pub fn long_version() -> String {
    format!(
        "{} (commit {}, schema {})",
        env!("CARGO_PKG_VERSION"),
        env!("SELEXTRACT_BUILD_COMMIT"),
        selextract_store::SCHEMA_VERSION
    )
}
