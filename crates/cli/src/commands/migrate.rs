//! `selextract migrate [--status | --dry-run]`: applies the pending database migrations (all
//! in one transaction), shows where the schema stands, or rehearses the migration and rolls
//! it back.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;
use selextract_store::{
    MigrationReport, MigrationState, MigrationStatus, SchemaStatus, SchemaVerdict,
};

use crate::platform::{self, CommonArgs};

/// `migrate --status` exits with this when migrations are pending (fresh or behind).
const EXIT_PENDING: u8 = 2;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit codes:
  0  migrate: the database is at this selextract's schema (or newer by expand migrations only)
     --status: the same, nothing to do
     --dry-run: every pending migration applied cleanly (and was rolled back), or none was pending
  1  an error: the database cannot be reached, a migration failed (nothing was applied), the
     migration history does not match this selextract (checksum mismatch, failed rows), or a
     contract migration took the database past this selextract's schema
  2  --status only: migrations are pending (run `selextract migrate`)")]
pub struct MigrateArgs {
    /// Show the applied, pending, mismatched and unknown (newer) migrations and the verdict;
    /// change nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub status: bool,
    /// Apply the pending migrations inside a transaction, report, and roll back: nothing
    /// changes, and a migration that would fail fails here.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(common: CommonArgs, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let settings = platform::load_settings(&common)?;
    let store = platform::connect_store(&settings).await?;
    if args.status {
        let status = store
            .schema_status()
            .await
            .context("reading the database's migrations")?;
        super::print_report(&render_status(&status))?;
        return Ok(match status.verdict {
            SchemaVerdict::Current | SchemaVerdict::AheadCompatible => ExitCode::SUCCESS,
            SchemaVerdict::Fresh | SchemaVerdict::Behind => ExitCode::from(EXIT_PENDING),
            SchemaVerdict::AheadIncompatible | SchemaVerdict::Mismatch => ExitCode::from(1),
        });
    }
    let report = if args.dry_run {
        store.migrate_dry_run().await
    } else {
        store.migrate().await
    }
    .context(if args.dry_run {
        "rehearsing the migrations (nothing was changed)"
    } else {
        "applying the migrations"
    })?;
    super::print_report(&render_report(&report))?;
    Ok(ExitCode::SUCCESS)
}

/// This build: `0.2.0-dev (commit …, schema 3)`.
fn this_build() -> String {
    crate::version::long_version()
}

/// The migrations as a table, then the verdict and what to do about it.
pub fn render_status(status: &SchemaStatus) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let database = status
        .database_version
        .map_or_else(|| "none (empty database)".to_owned(), |v| v.to_string());
    let _ = writeln!(out, "database schema  {database}");
    let _ = writeln!(out, "this selextract  {}", this_build());
    let _ = writeln!(out);
    let rows: Vec<(String, &MigrationStatus)> = status
        .migrations
        .iter()
        .map(|migration| {
            let mut state = migration.state.as_str().to_owned();
            if migration.state == MigrationState::UnknownNewer && migration.is_contract() {
                state.push_str(", contract");
            }
            (state, migration)
        })
        .collect();
    let width = rows
        .iter()
        .map(|(_, m)| m.description.len())
        .chain(["DESCRIPTION".len()])
        .max()
        .unwrap_or_default();
    let state_width = rows
        .iter()
        .map(|(state, _)| state.len())
        .chain(["STATE".len()])
        .max()
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{:>7}  {:<width$}  {:<state_width$}  APPLIED (UTC)",
        "VERSION", "DESCRIPTION", "STATE"
    );
    for (state, migration) in &rows {
        let _ = writeln!(
            out,
            "{:>7}  {:<width$}  {:<state_width$}  {}",
            migration.version,
            migration.description,
            state,
            migration.installed_on.as_deref().unwrap_or("-"),
        );
    }
    let _ = writeln!(out);
    let pending = status.with_state(MigrationState::Pending).count();
    let advice = match status.verdict {
        SchemaVerdict::Fresh => format!(
            "{pending} pending: `selextract migrate` (or the first `serve`) creates the schema"
        ),
        SchemaVerdict::Current => "nothing to do".to_owned(),
        SchemaVerdict::Behind => format!(
            "{pending} pending: back up the database, then run `selextract migrate` (rehearse \
             with `selextract migrate --dry-run`)"
        ),
        SchemaVerdict::AheadCompatible => "newer than this selextract by expand migrations \
                                           only: it runs against it, but upgrade it"
            .to_owned(),
        SchemaVerdict::AheadIncompatible | SchemaVerdict::Mismatch => status
            .problem()
            .map(|problem| problem.to_string())
            .unwrap_or_default(),
    };
    let _ = writeln!(out, "verdict: {} — {advice}", status.verdict.as_str());
    out
}

fn render_report(report: &MigrationReport) -> String {
    let mut out = String::new();
    let would = if report.dry_run {
        "would apply"
    } else {
        "applied"
    };
    for (version, description, took) in &report.applied {
        let _ = writeln!(
            out,
            "{would} migration {version} ({description}) in {} ms",
            took.as_millis()
        );
    }
    let version = report.version.unwrap_or(0);
    let known = report.before.known_version;
    let _ = match (report.dry_run, report.applied.is_empty()) {
        (_, true) if version > known => writeln!(
            out,
            "the database schema is at version {version}, newer than this selextract's schema \
             {known} by expand migrations only; nothing to apply"
        ),
        (_, true) => writeln!(
            out,
            "the database schema is at version {version}, this selextract's; nothing to apply"
        ),
        (true, false) => writeln!(
            out,
            "dry run: rolled back; the database is unchanged at version {} (migrating would \
             take it to {version})",
            report.before.database_version.unwrap_or(0)
        ),
        (false, false) => writeln!(out, "the database schema is at version {version}"),
    };
    out
}
