//! Configuration: a YAML file (`-config.file`) overridden by command-line flags.
//!
//! Every setting is one clap argument whose id is its YAML path (`ingester.ring.replication_factor`)
//! and whose flag is Mimir's name for it (`-ingester.ring.replication-factor`). A YAML file is
//! turned into flags placed before the real ones, so the command line wins; an unknown YAML key
//! is an error that names it. The effective config, served at `/config`, is the same structs
//! serialised back to YAML.

use anyhow::{bail, Context};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use strata_ingester::{DistributorConfig, IngesterConfig};
use strata_querier::QuerierConfig;
use strata_shared::limits::LimitsConfig;
use strata_shared::runtime_config::RuntimeConfigConfig;
use strata_shared::storage::StorageConfig;
use strata_shared::telemetry::LogConfig;
use strata_store_gateway::StoreGatewayConfig;

/// Strata: a long-term Prometheus metrics store on Parquet blocks in object storage.
///
/// Flags are written as in Mimir, `-flag=value` or `--flag=value`. With no arguments, Strata runs
/// every role in one process on 127.0.0.1:8080, with blocks and WAL under ./data.
#[derive(Debug, Clone, Parser, Serialize, Deserialize)]
#[command(
    name = "strata",
    version,
    args_override_self = true,
    max_term_width = 110
)]
pub(crate) struct Config {
    /// Comma-separated roles to run: all, distributor, ingester, compactor, store-gateway, querier.
    #[arg(long = "target", id = "target", default_value = "all")]
    pub(crate) target: String,
    /// YAML file to load; command-line flags override its settings.
    #[arg(long = "config.file", id = "config.file")]
    #[serde(skip)]
    pub(crate) config_file: Option<String>,
    #[command(flatten)]
    pub(crate) server: ServerConfig,
    #[command(flatten)]
    pub(crate) auth: AuthConfig,
    #[command(flatten)]
    pub(crate) log: LogConfig,
    #[command(flatten)]
    pub(crate) distributor: DistributorConfig,
    #[command(flatten)]
    pub(crate) ingester: IngesterConfig,
    #[command(flatten)]
    pub(crate) querier: QuerierConfig,
    #[command(flatten)]
    pub(crate) blocks_storage: BlocksStorageConfig,
    #[command(flatten)]
    pub(crate) limits: LimitsConfig,
    #[command(flatten)]
    pub(crate) runtime_config: RuntimeConfigConfig,
    #[command(subcommand)]
    #[serde(skip)]
    pub(crate) command: Option<Command>,
}

/// Tools that run instead of the server.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Command {
    /// Work with blocks.
    Block {
        #[command(subcommand)]
        command: BlockCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum BlockCommand {
    /// Print a block's meta, Parquet schema, row groups, counts and bytes per sample.
    ///
    /// LOCATION is a local block directory, an object URL (s3://bucket/tenant/block-id, file:///dir,
    /// with S3 settings from AWS_* environment variables), or tenant/block-id inside the bucket
    /// that the -blocks-storage.* flags describe.
    Inspect { location: String },
}

/// `blocks_storage:` — the object storage every role shares, the ingesters' TSDB settings
/// and the store-gateways' `bucket_store` settings, one YAML section as in Mimir.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub(crate) struct BlocksStorageConfig {
    #[command(flatten)]
    #[serde(flatten)]
    pub(crate) storage: StorageConfig,
    #[command(flatten)]
    pub(crate) bucket_store: StoreGatewayConfig,
}

impl std::ops::Deref for BlocksStorageConfig {
    type Target = StorageConfig;

    fn deref(&self) -> &StorageConfig {
        &self.storage
    }
}

/// `server:` — listen addresses.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub(crate) struct ServerConfig {
    /// HTTP server listen address.
    #[arg(
        long = "server.http-listen-address",
        id = "server.http_listen_address",
        default_value = "127.0.0.1"
    )]
    pub(crate) http_listen_address: String,
    /// HTTP server listen port.
    #[arg(
        long = "server.http-listen-port",
        id = "server.http_listen_port",
        default_value_t = 8080
    )]
    pub(crate) http_listen_port: u16,
    /// gRPC server listen address (ingesters serve Push on it).
    #[arg(
        long = "server.grpc-listen-address",
        id = "server.grpc_listen_address",
        default_value = "127.0.0.1"
    )]
    pub(crate) grpc_listen_address: String,
    /// gRPC server listen port.
    #[arg(
        long = "server.grpc-listen-port",
        id = "server.grpc_listen_port",
        default_value_t = 9095
    )]
    pub(crate) grpc_listen_port: u16,
    /// Time to finish in-flight requests and ship pending blocks on SIGTERM.
    #[arg(
        long = "server.graceful-shutdown-timeout",
        id = "server.graceful_shutdown_timeout",
        default_value = "30s"
    )]
    pub(crate) graceful_shutdown_timeout: strata_shared::duration::ConfigDuration,
}

/// `auth:` — tenancy.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub(crate) struct AuthConfig {
    /// When true, every request needs a tenant in the X-Scope-OrgID header; when false, everything belongs to the tenant "anonymous".
    #[arg(long = "auth.multitenancy-enabled", id = "auth.multitenancy_enabled", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) multitenancy_enabled: bool,
}

/// The roles a process can run.
pub(crate) const ROLES: [&str; 5] = [
    "distributor",
    "ingester",
    "compactor",
    "store-gateway",
    "querier",
];

impl Config {
    /// The roles `-target` selects.
    pub(crate) fn roles(&self) -> anyhow::Result<Vec<&'static str>> {
        let mut out = Vec::new();
        for name in self
            .target
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if name == "all" {
                return Ok(ROLES.to_vec());
            }
            match ROLES.iter().find(|r| **r == name) {
                Some(r) => out.push(*r),
                None => bail!(
                    "unknown -target {name:?}: expected all or a comma-separated list of {}",
                    ROLES.join(", ")
                ),
            }
        }
        if out.is_empty() {
            bail!(
                "-target is empty: expected all or a comma-separated list of {}",
                ROLES.join(", ")
            );
        }
        Ok(out)
    }

    /// The effective configuration as YAML, secrets left out.
    pub(crate) fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

/// Go-style `-flag` becomes `--flag`, so Mimir's spelling works; `-h` and values such as `-1` stay.
pub(crate) fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let single_dash_word = a.len() > 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            if i > 0 && single_dash_word {
                format!("-{a}")
            } else {
                a
            }
        })
        .collect()
}

/// Flattens a YAML document into `--flag=value` arguments by the ids of the clap arguments.
fn yaml_to_args(yaml: &serde_yaml::Value, file: &str) -> anyhow::Result<Vec<String>> {
    let command = Config::command();
    let mut leaves = Vec::new();
    flatten(yaml, String::new(), &mut leaves).with_context(|| format!("in config file {file}"))?;
    let mut out = Vec::new();
    for (path, value) in leaves {
        let arg = command
            .get_arguments()
            .find(|a| a.get_id().as_str() == path && a.get_long().is_some())
            .with_context(|| format!("config file {file}: unknown setting {path:?}"))?;
        let long = arg.get_long().unwrap_or_default();
        out.push(format!("--{long}={value}"));
    }
    Ok(out)
}

fn flatten(
    value: &serde_yaml::Value,
    prefix: String,
    out: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    use serde_yaml::Value;
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                let Some(key) = k.as_str() else {
                    bail!("setting names must be strings, found {k:?} under {prefix:?}");
                };
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(v, path, out)?;
            }
        }
        Value::Null => {}
        Value::Bool(b) => out.push((prefix, b.to_string())),
        Value::Number(n) => out.push((prefix, n.to_string())),
        Value::String(s) => out.push((prefix, s.clone())),
        Value::Sequence(items) => {
            let mut parts = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Number(n) => parts.push(n.to_string()),
                    Value::Bool(b) => parts.push(b.to_string()),
                    other => {
                        bail!("setting {prefix:?}: list items must be scalars, found {other:?}")
                    }
                }
            }
            out.push((prefix, parts.join(",")));
        }
        Value::Tagged(t) => bail!(
            "setting {prefix:?}: YAML tags such as {} are not supported",
            t.tag
        ),
    }
    Ok(())
}

/// Parses the command line, loading `-config.file` first when given.
pub(crate) fn load(raw_args: impl IntoIterator<Item = String>) -> anyhow::Result<Config> {
    let args = normalize_args(raw_args);
    let first = Config::try_parse_from(&args).unwrap_or_else(|e| e.exit());
    let Some(file) = first.config_file.clone() else {
        return Ok(first);
    };
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read config file {file} (-config.file)"))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("config file {file} is not valid YAML"))?;
    let mut merged = vec![args.first().cloned().unwrap_or_else(|| "strata".into())];
    merged.extend(yaml_to_args(&yaml, &file)?);
    merged.extend(args.into_iter().skip(1));
    let matches = match Config::command().try_get_matches_from(&merged) {
        Ok(m) => m,
        Err(e) => return Err(explain_invalid_setting(&yaml, &file, e)),
    };
    Ok(Config::from_arg_matches(&matches)?)
}

/// The error of a YAML file clap refused, naming the YAML setting, its flag and the value.
fn explain_invalid_setting(
    yaml: &serde_yaml::Value,
    file: &str,
    error: clap::Error,
) -> anyhow::Error {
    let first_line = |e: &clap::Error| {
        let text = e.render().to_string();
        text.lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string()
    };
    let mut leaves = Vec::new();
    if flatten(yaml, String::new(), &mut leaves).is_ok() {
        let command = Config::command();
        for (path, value) in leaves {
            let Some(long) = command
                .get_arguments()
                .find(|a| a.get_id().as_str() == path)
                .and_then(|a| a.get_long())
            else {
                continue;
            };
            if let Err(e) = Config::command()
                .try_get_matches_from(["strata".to_string(), format!("--{long}={value}")])
            {
                return anyhow::anyhow!(
                    "config file {file}: setting {path} (-{long}) has an invalid value {value:?}: {}",
                    first_line(&e)
                );
            }
        }
    }
    anyhow::anyhow!(
        "config file {file}: a setting has an invalid value: {}",
        first_line(&error)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_flag_has_a_yaml_home() {
        let config = load(args(&["strata"])).unwrap();
        let yaml = serde_yaml::to_value(&config).unwrap();
        let mut leaves = Vec::new();
        flatten(&yaml, String::new(), &mut leaves).unwrap();
        for arg in Config::command().get_arguments() {
            let id = arg.get_id().as_str();
            if [
                "config.file",
                "help",
                "version",
                "blocks_storage.s3.secret_access_key",
            ]
            .contains(&id)
            {
                continue;
            }
            assert!(
                leaves.iter().any(|(p, _)| p == id),
                "flag {id} is missing from /config"
            );
        }
        // And what /config prints loads back to the same config.
        let round = yaml_to_args(&yaml, "test").unwrap();
        let mut argv = args(&["strata"]);
        argv.extend(round);
        assert_eq!(load(argv).unwrap().to_yaml(), config.to_yaml());
    }

    #[test]
    fn mimir_style_flags_and_yaml_with_flag_override() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.yaml");
        std::fs::write(&file, "server:\n  http_listen_port: 9000\ningester:\n  ring:\n    replication_factor: 3\nlimits:\n  max_label_names_per_series: 12\n").unwrap();
        let c = load(args(&[
            "strata",
            "-config.file",
            file.to_str().unwrap(),
            "-server.http-listen-port=9001",
            "-target=ingester",
        ]))
        .unwrap();
        assert_eq!(c.server.http_listen_port, 9001);
        assert_eq!(c.ingester.ring.replication_factor, 3);
        assert_eq!(c.limits.max_label_names_per_series, 12);
        assert_eq!(c.roles().unwrap(), vec!["ingester"]);
    }

    #[test]
    fn a_limit_of_the_wrong_type_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.yaml");
        std::fs::write(&file, "limits:\n  ingestion_rate: fast\n").unwrap();
        let err = load(args(&["strata", "-config.file", file.to_str().unwrap()])).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("setting limits.ingestion_rate (-distributor.ingestion-rate-limit) has an invalid value \"fast\""),
            "{text}"
        );
    }

    #[test]
    fn unknown_yaml_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.yaml");
        std::fs::write(&file, "server:\n  http_listen_prot: 9000\n").unwrap();
        let err = load(args(&["strata", "-config.file", file.to_str().unwrap()])).unwrap_err();
        assert!(
            format!("{err:#}").contains("server.http_listen_prot"),
            "{err:#}"
        );
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let c = load(args(&["strata"])).unwrap();
        assert_eq!(c.roles().unwrap().len(), 5);
        assert_eq!(c.server.http_listen_address, "127.0.0.1");
        assert!(c.blocks_storage.filesystem.dir.starts_with("./data"));
        assert!(c.blocks_storage.tsdb.dir.starts_with("./data"));
        assert!(load(args(&["strata", "-target=nope"]))
            .unwrap()
            .roles()
            .is_err());
    }
}
