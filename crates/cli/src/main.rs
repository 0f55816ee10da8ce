//! The `selextract` binary: parses the command line and hands each subcommand to its
//! module under `commands/`.

mod commands;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "selextract", version, about = "Self-hostable web data extraction", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one task locally — no server, no database — and write its records.
    Scrape(commands::scrape::ScrapeArgs),
    /// Check a task file; print the normalised spec, or every error with its JSON path.
    Validate(commands::validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Scrape(args) => commands::scrape::run(args).await,
            Command::Validate(args) => commands::validate::run(args),
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
