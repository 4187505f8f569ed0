//! The runtime configuration file (`-runtime-config.file`): per-tenant overrides of any limit,
//! re-read every `-runtime-config.reload-period` without a restart, as Mimir's runtime config.
//!
//! ```yaml
//! overrides:
//!   team-a:
//!     ingestion_rate: 50000
//!     max_global_series_per_user: 500000
//! ```
//!
//! A tenant's limits are the global defaults with its keys laid over them. A file that does not
//! parse or validate (unknown key, wrong type, invalid tenant id, negative rate) is rejected as a
//! whole: the last good configuration stays in force, the error is logged, and
//! `strata_runtime_config_last_reload_successful` drops to 0. At start, a bad file stops the
//! process, as in Mimir.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGauge, Opts, Registry};
use serde::{Deserialize, Serialize};

use crate::duration::ConfigDuration;
use crate::limits::LimitsConfig;
use crate::overrides::Overrides;
use crate::tenant::validate_tenant_id;

/// `runtime_config:` — where the per-tenant overrides come from.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct RuntimeConfigConfig {
    /// YAML file with per-tenant overrides of the limits (`overrides: {<tenant>: {<limit>: value}}`), re-read every -runtime-config.reload-period. Empty: every tenant has the defaults.
    #[arg(
        long = "runtime-config.file",
        id = "runtime_config.file",
        default_value = ""
    )]
    pub file: String,
    /// How often the runtime configuration file is re-read.
    #[arg(
        long = "runtime-config.reload-period",
        id = "runtime_config.period",
        default_value = "10s"
    )]
    pub period: ConfigDuration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    #[serde(default)]
    overrides: Option<BTreeMap<String, serde_yaml::Value>>,
}

/// Parses a runtime configuration: every tenant's effective limits, or why the file is refused.
pub fn parse(
    text: &str,
    defaults: &LimitsConfig,
) -> Result<BTreeMap<String, Arc<LimitsConfig>>, String> {
    let file: Option<RuntimeFile> =
        serde_yaml::from_str(text).map_err(|e| format!("not a valid runtime config: {e}"))?;
    let mut out = BTreeMap::new();
    let Some(tenants) = file.and_then(|f| f.overrides) else {
        return Ok(out);
    };
    let base = serde_yaml::to_value(defaults).map_err(|e| e.to_string())?;
    for (tenant, layer) in tenants {
        validate_tenant_id(&tenant).map_err(|e| format!("overrides: {e}"))?;
        let layer = match layer {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => serde_yaml::Mapping::new(),
            other => {
                return Err(format!(
                "overrides.{tenant}: expected a mapping of limit names to values, found {other:?}"
            ))
            }
        };
        let mut merged = base.clone();
        for (key, value) in layer {
            let name = key
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{key:?}"));
            // One key at a time, so the error names it (serde only says "invalid type").
            let mut attempt = merged.clone();
            if let serde_yaml::Value::Mapping(m) = &mut attempt {
                m.insert(key, value);
            }
            serde_yaml::from_value::<LimitsConfig>(attempt.clone())
                .map_err(|e| format!("overrides.{tenant}.{name}: {e}"))?;
            merged = attempt;
        }
        let limits: LimitsConfig =
            serde_yaml::from_value(merged).map_err(|e| format!("overrides.{tenant}: {e}"))?;
        limits
            .validate()
            .map_err(|e| format!("overrides.{tenant}: {e}"))?;
        out.insert(tenant, Arc::new(limits));
    }
    Ok(out)
}

/// `GET /runtime_config` as YAML: every overridden tenant's effective limits, or with `diff`
/// only the values that differ from the defaults.
pub fn render(overrides: &Overrides, diff: bool) -> String {
    let defaults = serde_yaml::to_value(overrides.defaults().as_ref()).unwrap_or_default();
    let mut tenants = serde_yaml::Mapping::new();
    for (tenant, limits) in overrides.overridden().iter() {
        let value = serde_yaml::to_value(limits.as_ref()).unwrap_or_default();
        let value = match (diff, value, &defaults) {
            (true, serde_yaml::Value::Mapping(map), serde_yaml::Value::Mapping(base)) => {
                serde_yaml::Value::Mapping(
                    map.into_iter()
                        .filter(|(k, v)| base.get(k) != Some(v))
                        .collect(),
                )
            }
            (_, value, _) => value,
        };
        tenants.insert(serde_yaml::Value::String(tenant.clone()), value);
    }
    let mut root = serde_yaml::Mapping::new();
    root.insert(
        serde_yaml::Value::String("overrides".into()),
        serde_yaml::Value::Mapping(tenants),
    );
    serde_yaml::to_string(&root)
        .unwrap_or_else(|e| format!("# cannot render the runtime configuration: {e}\n"))
}

#[derive(Debug, Clone)]
struct ReloadMetrics {
    last_successful: IntGauge,
    reloads: IntCounterVec,
}

/// Loads the runtime configuration file and keeps reloading it.
#[derive(Debug)]
pub struct RuntimeConfigLoader {
    path: PathBuf,
    overrides: Arc<Overrides>,
    metrics: ReloadMetrics,
    /// The text of the configuration in force, to skip re-parsing an unchanged file.
    applied: Mutex<Option<String>>,
}

impl RuntimeConfigLoader {
    /// Loads `config.file` once (an error stops the start) and registers the reload metrics.
    /// `None` when no file is configured.
    pub fn start(
        config: &RuntimeConfigConfig,
        overrides: Arc<Overrides>,
        registry: &Registry,
    ) -> anyhow::Result<Option<Arc<Self>>> {
        if config.file.is_empty() {
            return Ok(None);
        }
        let metrics = ReloadMetrics {
            last_successful: IntGauge::new(
                "strata_runtime_config_last_reload_successful",
                "Whether the last runtime configuration reload attempt was successful (1) or the file was rejected (0).",
            )?,
            reloads: IntCounterVec::new(
                Opts::new(
                    "strata_runtime_config_reloads_total",
                    "Runtime configuration reload attempts, by result (success, failure).",
                ),
                &["result"],
            )?,
        };
        registry.register(Box::new(metrics.last_successful.clone()))?;
        registry.register(Box::new(metrics.reloads.clone()))?;
        let loader = Arc::new(Self {
            path: PathBuf::from(&config.file),
            overrides,
            metrics,
            applied: Mutex::new(None),
        });
        loader.reload().map_err(|e| {
            anyhow::anyhow!(
                "runtime config {} (-runtime-config.file) is invalid: {e}",
                config.file
            )
        })?;
        let period = config.period.0.max(std::time::Duration::from_millis(100));
        let background = loader.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let reload =
                    crate::supervise::unit("runtime-config-reload", async { background.reload() });
                if let Some(Err(e)) = reload.await {
                    tracing::error!(file = %background.path.display(), error = %e, "runtime config rejected; the last good configuration stays in force");
                }
            }
        });
        Ok(Some(loader))
    }

    /// Reads and applies the file; on error nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let result = self.try_reload();
        let (ok, label) = match &result {
            Ok(()) => (1, "success"),
            Err(_) => (0, "failure"),
        };
        self.metrics.last_successful.set(ok);
        self.metrics.reloads.with_label_values(&[label]).inc();
        result
    }

    fn try_reload(&self) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if applied.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let tenants = parse(&text, self.overrides.defaults())?;
        tracing::info!(file = %self.path.display(), tenants = tenants.len(), "runtime config loaded");
        self.overrides.replace(tenants);
        *applied = Some(text);
        Ok(())
    }
}

/// Exports every limit with a numeric value (durations in seconds):
/// `strata_limits_defaults{limit_name}` and `strata_limits_overrides{limit_name,user}` for each
/// tenant of the runtime configuration, read at scrape time.
#[derive(Debug)]
pub struct LimitsExporter {
    overrides: Arc<Overrides>,
    descs: Vec<Desc>,
}

impl LimitsExporter {
    pub fn register(overrides: Arc<Overrides>, registry: &Registry) -> anyhow::Result<()> {
        let descs = vec![
            Desc::new(
                "strata_limits_defaults".into(),
                "Default value of each numeric per-tenant limit (durations in seconds).".into(),
                vec!["limit_name".into()],
                Default::default(),
            )?,
            Desc::new(
                "strata_limits_overrides".into(),
                "Effective value of each numeric limit of each tenant in the runtime configuration (durations in seconds).".into(),
                vec!["limit_name".into(), "user".into()],
                Default::default(),
            )?,
        ];
        registry.register(Box::new(Self { overrides, descs }))?;
        Ok(())
    }
}

/// The numeric limits of `limits` by YAML name; durations in seconds.
pub fn numeric_limits(limits: &LimitsConfig) -> Vec<(String, f64)> {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(limits) else {
        return Vec::new();
    };
    map.into_iter()
        .filter_map(|(name, value)| {
            let number = match value {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => {
                    s.parse::<ConfigDuration>().ok().map(|d| d.0.as_secs_f64())
                }
                _ => None,
            }?;
            Some((name, number))
        })
        .collect()
}

impl Collector for LimitsExporter {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let build = || -> Result<Vec<MetricFamily>, prometheus::Error> {
            let defaults = GaugeVec::new(
                Opts::new("strata_limits_defaults", self.descs[0].help.clone()),
                &["limit_name"],
            )?;
            for (name, value) in numeric_limits(self.overrides.defaults()) {
                defaults.with_label_values(&[name.as_str()]).set(value);
            }
            let per_tenant = GaugeVec::new(
                Opts::new("strata_limits_overrides", self.descs[1].help.clone()),
                &["limit_name", "user"],
            )?;
            for (tenant, limits) in self.overrides.overridden().iter() {
                for (name, value) in numeric_limits(limits) {
                    per_tenant
                        .with_label_values(&[name.as_str(), tenant.as_str()])
                        .set(value);
                }
            }
            let mut out = defaults.collect();
            out.extend(per_tenant.collect());
            Ok(out)
        };
        build().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot export the limits");
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> LimitsConfig {
        LimitsConfig::from_flag_defaults().unwrap()
    }

    #[test]
    fn parses_overrides_over_defaults() {
        let text = "overrides:\n  team-a:\n    ingestion_rate: 50\n    max_query_lookback: 1h\n  team-b:\n    max_global_series_per_user: 7\n";
        let tenants = parse(text, &defaults()).unwrap();
        assert_eq!(tenants.len(), 2);
        assert_eq!(tenants["team-a"].ingestion_rate, 50.0);
        assert_eq!(tenants["team-a"].max_query_lookback.0.as_secs(), 3600);
        // Keys not given keep the defaults.
        assert_eq!(tenants["team-a"].ingestion_burst_size, 200_000);
        assert_eq!(tenants["team-b"].max_global_series_per_user, 7);
        assert_eq!(tenants["team-b"].ingestion_rate, 10_000.0);
        // Empty files and empty overrides are valid.
        assert!(parse("", &defaults()).unwrap().is_empty());
        assert!(parse("overrides:\n", &defaults()).unwrap().is_empty());
        assert!(parse("overrides: {}\n", &defaults()).unwrap().is_empty());
        // Zero durations may be written as a bare 0.
        let t = parse("overrides:\n  a:\n    max_query_lookback: 0\n", &defaults()).unwrap();
        assert!(t["a"].max_query_lookback.0.is_zero());
    }

    #[test]
    fn rejects_what_does_not_validate() {
        let cases = [
            (
                "overrides:\n  a:\n    ingestion_rat: 5\n",
                "overrides.a.ingestion_rat: unknown field `ingestion_rat`",
            ),
            (
                "overrides:\n  a:\n    ingestion_rate: fast\n",
                "overrides.a.ingestion_rate: invalid type",
            ),
            (
                "overrides:\n  a:\n    max_global_series_per_user: -1\n",
                "overrides.a.max_global_series_per_user",
            ),
            (
                "overrides:\n  a:\n    max_query_lookback: soon\n",
                "overrides.a.max_query_lookback: invalid duration",
            ),
            (
                "overrides:\n  a:\n    ingestion_rate: -5\n",
                "ingestion_rate must be a finite number",
            ),
            (
                "overrides:\n  a/b:\n    ingestion_rate: 5\n",
                "unsupported character '/'",
            ),
            ("overrides:\n  a: 5\n", "expected a mapping"),
            ("overide:\n  a: {}\n", "unknown field `overide`"),
            ("overrides: [\n", "not a valid runtime config"),
        ];
        for (text, want) in cases {
            let err = parse(text, &defaults()).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn render_full_and_diff() {
        let overrides = Overrides::new(defaults());
        overrides.replace(
            parse(
                "overrides:\n  a:\n    ingestion_rate: 5\n    ingestion_burst_size: 200000\n",
                overrides.defaults(),
            )
            .unwrap(),
        );
        let full = render(&overrides, false);
        assert!(full.contains("ingestion_rate: 5"), "{full}");
        assert!(
            full.contains("max_global_series_per_user: 150000"),
            "{full}"
        );
        let diff = render(&overrides, true);
        // Only what differs from the defaults: the burst given equal to the default is left out.
        assert_eq!(
            diff, "overrides:\n  a:\n    ingestion_rate: 5.0\n",
            "{diff}"
        );
        assert_eq!(render(&Overrides::new(defaults()), true), "overrides: {}\n");
    }

    #[test]
    fn reload_keeps_the_last_good_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runtime.yaml");
        std::fs::write(&file, "overrides:\n  a:\n    ingestion_rate: 5\n").unwrap();
        let registry = Registry::new();
        let overrides = Arc::new(Overrides::new(defaults()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let loader = RuntimeConfigLoader::start(
            &RuntimeConfigConfig {
                file: file.display().to_string(),
                period: "1h".parse().unwrap(),
            },
            overrides.clone(),
            &registry,
        )
        .unwrap()
        .unwrap();
        assert_eq!(overrides.tenant("a").ingestion_rate, 5.0);
        std::fs::write(&file, "overrides:\n  a:\n    ingestion_rate: [1]\n").unwrap();
        assert!(loader.reload().is_err());
        assert_eq!(overrides.tenant("a").ingestion_rate, 5.0);
        assert_eq!(loader.metrics.last_successful.get(), 0);
        std::fs::write(&file, "overrides:\n  a:\n    ingestion_rate: 6\n").unwrap();
        loader.reload().unwrap();
        assert_eq!(overrides.tenant("a").ingestion_rate, 6.0);
        assert_eq!(loader.metrics.last_successful.get(), 1);
        assert_eq!(
            loader.metrics.reloads.with_label_values(&["failure"]).get(),
            1
        );
    }

    #[test]
    fn exports_numeric_limits() {
        let overrides = Arc::new(Overrides::new(defaults()));
        overrides.replace(
            parse(
                "overrides:\n  a:\n    max_query_lookback: 2m\n",
                overrides.defaults(),
            )
            .unwrap(),
        );
        let registry = Registry::new();
        LimitsExporter::register(overrides, &registry).unwrap();
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(
                "strata_limits_overrides{limit_name=\"max_query_lookback\",user=\"a\"} 120"
            ),
            "{text}"
        );
        assert!(
            text.contains("strata_limits_defaults{limit_name=\"ingestion_rate\"} 10000"),
            "{text}"
        );
    }
}
