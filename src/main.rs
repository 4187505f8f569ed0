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

#[cfg(test)]
mod error_docs {
    /// Every `err-strata-*` id the code can return is documented in docs/errors.md, and the
    /// table lists no id the code has stopped using.
    #[test]
    fn every_error_id_is_documented() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let docs = std::fs::read_to_string(root.join("docs/errors.md")).expect("docs/errors.md");
        let mut in_code = std::collections::BTreeSet::new();
        let mut stack = vec![
            root.join("src"),
            root.join("shared/src"),
            root.join("ingester/src"),
            root.join("querier/src"),
        ];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("source dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("source file");
                    for (i, _) in text.match_indices("err-strata-") {
                        let id: String = text[i..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'
                            })
                            .collect();
                        if id.len() > "err-strata-".len() {
                            in_code.insert(id.trim_end_matches('-').to_string());
                        }
                    }
                }
            }
        }
        let documented: std::collections::BTreeSet<String> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_string)
            .collect();
        assert!(in_code.len() >= 15, "found only {in_code:?}");
        assert_eq!(in_code, documented, "code ids vs docs/errors.md ids");
    }
}
