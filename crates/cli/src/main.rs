//! The `selextract` binary: parses the command line, loads configuration, and hands each
//! subcommand to its module under `commands/`.

mod browser;
mod commands;
mod config;
mod platform;
mod telemetry;
mod version;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use commands::admin::{ConfigCommand, KeyCommand};
use commands::user::UserCommand;
use platform::CommonArgs;

#[derive(Debug, Parser)]
#[command(name = "selextract", about = "Self-hostable web data extraction", long_about = None)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the platform: REST API plus embedded workers (SQLite and ./data by default).
    Serve(commands::serve::ServeArgs),
    /// Run a worker that claims runs from the shared queue.
    Worker(commands::worker::WorkerArgs),
    /// Run one task locally — no server, no database — and write its records.
    Scrape(commands::scrape::ScrapeArgs),
    /// Check a task file; print the normalised spec, or every error with its JSON path.
    Validate(commands::validate::ValidateArgs),
    /// Apply pending database migrations (all or nothing), or show (--status) or rehearse
    /// (--dry-run) them.
    Migrate(commands::migrate::MigrateArgs),
    /// Workers, queue depth, the last hour's outcomes and today's compute units.
    Status(commands::status::StatusArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

fn main() -> ExitCode {
    // The version line is built at run time (it names the schema, a constant of the store);
    // leaking it once gives clap the `'static` string it keeps for the life of the process.
    let version: &'static str = Box::leak(version::long_version().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Worker(_));
    telemetry::init(if long_running { "info" } else { "warn" });
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let common = cli.common;
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Scrape(args) => commands::scrape::run(&common, args).await,
            Command::Validate(args) => commands::validate::run(&common, args),
            Command::Serve(args) => commands::serve::run(common, args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Worker(args) => commands::worker::run(common, args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Status(args) => commands::status::run(common, args)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Migrate(args) => commands::migrate::run(common, args).await,
            Command::User(command) => commands::user::run(common, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Key(command) => commands::admin::key(common, command)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Config(command) => {
                commands::admin::config(common, command).map(|()| ExitCode::SUCCESS)
            }
        }
    });
    // Do not wait for lingering blocking tasks (e.g. a stuck stdin read) on exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}
