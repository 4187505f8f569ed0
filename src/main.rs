//! The `strata` binary: configuration, role selection and wiring. Thin by design; each role
//! lives in its own crate.

mod config;
mod inspect;
mod server;

use config::{BlockCommand, Command};

/// mimalloc: the ingest path allocates many small strings and vectors per request; the
/// system allocator spent about 45% of ingest CPU in malloc/free in a profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match config::load(std::env::args()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strata: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = config.log.init() {
        eprintln!("strata: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let result = match &config.command {
        Some(Command::Block {
            command: BlockCommand::Inspect { location },
        }) => inspect::run(&config, location).await,
        None => server::run(config).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "strata stopped with an error");
            eprintln!("strata: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
