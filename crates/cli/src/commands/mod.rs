//! One module per subcommand.

pub mod admin;
pub mod migrate;
pub mod scrape;
pub mod serve;
pub mod status;
pub mod user;
pub mod validate;
pub mod worker;

use std::io::Write;

use anyhow::Context;
use selextract_spec::{Limits, TaskInput, parse_task_input};

/// Read a task file (JSON, any accepted shape) and validate it against `limits` (the
/// configuration's `[limits]`, so a one-shot run obeys the same bounds as the platform).
pub fn load_task_file(
    path: &std::path::Path,
    limits: &Limits,
) -> anyhow::Result<Result<TaskInput, selextract_spec::ValidationErrors>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(parse_task_input(&value, limits))
}

/// Writes a command's report to stdout. A reader that went away (`selextract status | head`)
/// ends the output quietly, as `cat` does, instead of `print!`'s panic on the failed write.
pub fn print_report(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("writing to standard output"),
    }
}
