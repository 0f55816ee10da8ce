//! `selextract status [--json]` (SPEC §9): the installation's workers, queue and recent
//! outcomes, read from the shared database — the same data as the admin API routes.

use std::fmt::Write as _;

use anyhow::Context;
use selextract_server::status::{SystemStatus, collect_status};
use selextract_store::SchemaStatus;

use crate::platform::{self, CommonArgs};

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(common: CommonArgs, args: StatusArgs) -> anyhow::Result<()> {
    let settings = platform::load_settings(&common)?;
    let store = platform::open_store(&settings).await?;
    let status = collect_status(&store, env!("CARGO_PKG_VERSION"), platform::now_ms())
        .await
        .context("reading the status from the database")?;
    let schema = store
        .schema_status()
        .await
        .context("reading the database schema version")?;
    let text = if args.json {
        let mut value = serde_json::to_value(&status).context("serialising the status")?;
        if let Some(object) = value.as_object_mut() {
            object.insert(
                "schema".to_owned(),
                serde_json::json!({
                    "database": schema.database_version,
                    "binary": schema.known_version,
                    "verdict": schema.verdict.as_str(),
                }),
            );
        }
        serde_json::to_string_pretty(&value).context("serialising the status")?
    } else {
        render_text(&status, &schema)
    };
    super::print_report(&format!("{text}\n"))?;
    Ok(())
}

/// The status for a terminal: a few aligned sections.
fn render_text(status: &SystemStatus, schema: &SchemaStatus) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "Selextract {}", status.version);
    let _ = writeln!(
        out,
        "schema     {} (this selextract: {}, {})",
        schema.database_version.unwrap_or(0),
        schema.known_version,
        schema.verdict.as_str()
    );
    let _ = writeln!(out, "as of      {}", status.generated_at);
    let _ = writeln!(out);
    let _ = writeln!(out, "Workers ({} live)", status.workers.len());
    if status.workers.is_empty() {
        let _ = writeln!(out, "  none with a heartbeat in the last 30 s");
    }
    for worker in &status.workers {
        let _ = writeln!(
            out,
            "  {:<40} host {:<20} heartbeat {:>5.1}s ago  active {:>3}  processed {:>6}  up {}",
            worker.id,
            worker.host,
            worker.heartbeat_age_seconds,
            worker.active_runs,
            worker.processed,
            human_duration(worker.uptime_seconds),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "Queue");
    for (state, count) in &status.queue.depth {
        let _ = writeln!(out, "  {state:<10} {count:>8}");
    }
    match status.queue.oldest_queued_age_seconds {
        Some(age) => {
            let _ = writeln!(out, "  oldest queued run waiting {}", human_duration(age));
        }
        None => {
            let _ = writeln!(out, "  nothing queued");
        }
    }
    let _ = writeln!(out);
    let hour = &status.last_hour;
    let _ = writeln!(out, "Last hour");
    let _ = writeln!(out, "  runs finished  {}", hour.finished_total);
    for (state, count) in &hour.finished {
        let _ = writeln!(out, "    {state:<10} {count:>8}");
    }
    let rate = hour
        .success_rate
        .map_or_else(|| "n/a".to_owned(), |rate| format!("{:.1} %", rate * 100.0));
    let _ = writeln!(out, "  success rate   {rate}");
    let _ = writeln!(out);
    let _ = write!(
        out,
        "Compute units today (UTC)  {}",
        status.compute_units_today
    );
    out
}

fn human_duration(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    match whole {
        0..60 => format!("{whole}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60),
    }
}
