//! Logging setup: human-readable lines on stderr, filtered by `RUST_LOG` (default `warn`
//! for one-shot commands so that stdout stays clean for records, `info` for services).

use tracing_subscriber::EnvFilter;

pub fn init(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
