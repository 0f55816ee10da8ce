//! `selextract validate task.json`: print the normalised spec, or the errors.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The task file (canonical v1, or either compatibility shape).
    pub task: PathBuf,
}

pub fn run(common: &crate::platform::CommonArgs, args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let (settings, _) = crate::config::load(common.config.as_deref())?;
    match super::load_task_file(&args.task, &settings.limits)? {
        Ok(input) => {
            super::print_report(&format!("{}\n", serde_json::to_string_pretty(&input.spec)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{} is not a valid task:", args.task.display());
            for error in &errors.0 {
                eprintln!("  {error}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
