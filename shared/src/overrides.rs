//! The one handle every role reads per-tenant limits through: the global defaults (flags and
//! `limits:` YAML) and, per tenant, the defaults with the runtime configuration's overrides
//! laid over them (see [`crate::runtime_config`]).
//!
//! Reading is a read lock, a map lookup and an `Arc` clone, once per request; a reload swaps
//! the whole map at once, so a request sees one consistent set of limits.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::limits::LimitsConfig;

/// Flags named in error messages, Mimir's spelling (without the leading dash).
pub mod flags {
    pub const INGESTION_RATE: &str = "distributor.ingestion-rate-limit";
    pub const INGESTION_BURST_SIZE: &str = "distributor.ingestion-burst-size";
    pub const REQUEST_RATE: &str = "distributor.request-rate-limit";
    pub const REQUEST_BURST_SIZE: &str = "distributor.request-burst-size";
    pub const MAX_SERIES_PER_USER: &str = "ingester.max-global-series-per-user";
    pub const MAX_SERIES_PER_METRIC: &str = "ingester.max-global-series-per-metric";
    pub const MAX_SERIES_PER_QUERY: &str = "querier.max-fetched-series-per-query";
    pub const MAX_CHUNK_BYTES_PER_QUERY: &str = "querier.max-fetched-chunk-bytes-per-query";
    pub const MAX_TOTAL_QUERY_LENGTH: &str = "query-frontend.max-total-query-length";
    pub const MAX_QUERY_EXPRESSION_SIZE_BYTES: &str =
        "query-frontend.max-query-expression-size-bytes";
}

/// Mimir's closing sentence of a per-tenant limit error: `msg (err-strata-<id>). To adjust the
/// related per-tenant limit(s), configure -a and -b, or contact your service administrator.`
/// `id` is the whole id, `err-strata-...`.
pub fn per_tenant_limit_message(msg: &str, id: &str, flags: &[&str]) -> String {
    let list = match flags {
        [] => String::new(),
        [one] => format!("-{one}"),
        [rest @ .., last] => format!(
            "{} and -{last}",
            rest.iter()
                .map(|f| format!("-{f}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let plural = if flags.len() > 1 { "s" } else { "" };
    format!("{msg} ({id}). To adjust the related per-tenant limit{plural}, configure {list}, or contact your service administrator.")
}

/// As [`per_tenant_limit_message`], with a strategy sentence before the flags (Mimir's
/// `MessageWithStrategyAndPerTenantLimitConfig`).
pub fn per_tenant_limit_message_with_strategy(
    msg: &str,
    id: &str,
    strategy: &str,
    flag: &str,
) -> String {
    format!("{msg} ({id}). {strategy}. Otherwise, to adjust the related per-tenant limit, configure -{flag}, or contact your service administrator.")
}

impl LimitsConfig {
    /// Every limit at its flag default.
    pub fn from_flag_defaults() -> Result<Self, clap::Error> {
        use clap::{Args, FromArgMatches};
        let command = Self::augment_args(clap::Command::new("limits").no_binary_name(true));
        let matches = command.try_get_matches_from(Vec::<String>::new())?;
        Self::from_arg_matches(&matches)
    }

    /// Checks what the types alone do not: rates are finite and not negative.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("ingestion_rate", self.ingestion_rate),
            ("request_rate", self.request_rate),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!(
                    "{name} must be a finite number of at least 0, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// The per-ingester share of a global series limit, as Mimir's limiter computes it: series are
/// spread evenly over the ring and each is written to `replication_factor` ingesters, so one
/// ingester holds `global × replication factor ÷ ingesters` of them. 0 means unlimited (a
/// global limit of 0, or no ingesters known).
pub fn local_series_limit(global: usize, replication_factor: usize, ingesters: usize) -> usize {
    if global == 0 || ingesters == 0 {
        return 0;
    }
    let replication_factor = replication_factor.clamp(1, ingesters);
    // At least 1: a tiny global limit must not turn into "unlimited".
    (global.saturating_mul(replication_factor) / ingesters).max(1)
}

/// Per-tenant limits: the defaults, and the tenants the runtime configuration overrides.
#[derive(Debug)]
pub struct Overrides {
    defaults: Arc<LimitsConfig>,
    tenants: RwLock<Arc<BTreeMap<String, Arc<LimitsConfig>>>>,
}

impl Overrides {
    pub fn new(defaults: LimitsConfig) -> Self {
        Self {
            defaults: Arc::new(defaults),
            tenants: RwLock::new(Arc::new(BTreeMap::new())),
        }
    }

    /// The global defaults (flags and `limits:` YAML).
    pub fn defaults(&self) -> &Arc<LimitsConfig> {
        &self.defaults
    }

    /// The effective limits of `tenant`.
    pub fn tenant(&self, tenant: &str) -> Arc<LimitsConfig> {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants.get(tenant).unwrap_or(&self.defaults).clone()
    }

    /// Every overridden tenant and its effective limits.
    pub fn overridden(&self) -> Arc<BTreeMap<String, Arc<LimitsConfig>>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces every tenant's overrides at once.
    pub fn replace(&self, tenants: BTreeMap<String, Arc<LimitsConfig>>) {
        *self.tenants.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tenants);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_to_local_series_limit() {
        // Mimir: (global × RF) ÷ ingesters.
        assert_eq!(local_series_limit(150_000, 3, 3), 150_000);
        assert_eq!(local_series_limit(150_000, 3, 6), 75_000);
        assert_eq!(local_series_limit(100, 3, 7), 42);
        assert_eq!(local_series_limit(100, 1, 1), 100);
        // The ring caps the replication factor at its size.
        assert_eq!(local_series_limit(100, 3, 1), 100);
        assert_eq!(local_series_limit(100, 3, 2), 100);
        // Disabled, or nothing to divide by.
        assert_eq!(local_series_limit(0, 3, 3), 0);
        assert_eq!(local_series_limit(100, 3, 0), 0);
        // Never rounds down to "unlimited".
        assert_eq!(local_series_limit(1, 1, 5), 1);
    }

    #[test]
    fn tenants_fall_back_to_defaults() {
        let defaults = LimitsConfig::from_flag_defaults().unwrap();
        let overrides = Overrides::new(defaults.clone());
        let mut a = defaults.clone();
        a.ingestion_rate = 5.0;
        overrides.replace(BTreeMap::from([("a".to_string(), Arc::new(a))]));
        assert_eq!(overrides.tenant("a").ingestion_rate, 5.0);
        assert_eq!(overrides.tenant("b").ingestion_rate, 10_000.0);
        assert_eq!(*overrides.tenant("b"), defaults);
    }

    #[test]
    fn flag_defaults_are_mimirs() {
        let d = LimitsConfig::from_flag_defaults().unwrap();
        assert_eq!(d.ingestion_rate, 10_000.0);
        assert_eq!(d.ingestion_burst_size, 200_000);
        assert_eq!(d.request_rate, 0.0);
        assert_eq!(d.request_burst_size, 0);
        assert_eq!(d.max_global_series_per_user, 150_000);
        assert_eq!(d.max_global_series_per_metric, 0);
        assert_eq!(d.max_label_names_per_series, 30);
        d.validate().unwrap();
    }

    #[test]
    fn message_shapes() {
        assert_eq!(
            per_tenant_limit_message("x", "err-strata-tenant-max-ingestion-rate", &["f1", "f2"]),
            "x (err-strata-tenant-max-ingestion-rate). To adjust the related per-tenant limits, configure -f1 and -f2, or contact your service administrator."
        );
        assert_eq!(
            per_tenant_limit_message("x", "err-strata-max-series-per-user", &["f1"]),
            "x (err-strata-max-series-per-user). To adjust the related per-tenant limit, configure -f1, or contact your service administrator."
        );
    }
}
