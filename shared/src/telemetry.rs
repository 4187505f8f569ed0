//! Logging setup: structured `tracing` logs, logfmt-like text or JSON, level from `-log.level`.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// `log:` — logging flags, as in Mimir.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct LogConfig {
    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", id = "log.level", default_value = "info")]
    pub level: String,
    /// Output log messages in the given format: logfmt or json.
    #[arg(long = "log.format", id = "log.format", default_value = "logfmt")]
    pub format: String,
}

impl LogConfig {
    /// Installs the global subscriber. `RUST_LOG`, when set, overrides `-log.level`.
    pub fn init(&self) -> anyhow::Result<()> {
        let filter = match std::env::var("RUST_LOG") {
            Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
            _ => EnvFilter::try_new(format!("{},h2=warn,hyper=warn,tower=warn", self.level))?,
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let result = match self.format.as_str() {
            "json" => builder.json().try_init(),
            "logfmt" => builder.with_ansi(false).try_init(),
            other => anyhow::bail!("-log.format must be logfmt or json, not {other:?}"),
        };
        result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
    }
}
