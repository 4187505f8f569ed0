//! Per-tenant limits: the global defaults come from flags/YAML (`limits:`, Mimir's names);
//! the runtime configuration file (`-runtime-config.file`, [`crate::runtime_config`]) overrides
//! any of them per tenant, and every role reads them through one [`crate::overrides::Overrides`]
//! handle. Every field of [`LimitsConfig`] can be overridden: the per-tenant values are the
//! defaults with the tenant's YAML keys laid over them.

use serde::{Deserialize, Serialize};

use crate::duration::ConfigDuration;

/// `limits:` — every per-tenant limit, with its default as the global value.
///
/// Unknown keys are errors (a typo in the runtime config must not pass silently).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Per-tenant request rate limit in requests per second, across all distributors. 0 to disable.
    #[arg(
        long = "distributor.request-rate-limit",
        id = "limits.request_rate",
        default_value_t = 0.0
    )]
    pub request_rate: f64,
    /// Per-tenant allowed request burst size. 0 to disable.
    #[arg(
        long = "distributor.request-burst-size",
        id = "limits.request_burst_size",
        default_value_t = 0
    )]
    pub request_burst_size: usize,
    /// Per-tenant ingestion rate limit in samples, exemplars and metadata per second, across all distributors (each enforces its share: the limit divided by the healthy distributors).
    #[arg(
        long = "distributor.ingestion-rate-limit",
        id = "limits.ingestion_rate",
        default_value_t = 10000.0
    )]
    pub ingestion_rate: f64,
    /// Per-tenant allowed ingestion burst size (in number of samples, exemplars and metadata); also the largest request accepted.
    #[arg(
        long = "distributor.ingestion-burst-size",
        id = "limits.ingestion_burst_size",
        default_value_t = 200000
    )]
    pub ingestion_burst_size: usize,
    /// The maximum number of in-memory series per tenant, across the cluster before replication. 0 to disable.
    #[arg(
        long = "ingester.max-global-series-per-user",
        id = "limits.max_global_series_per_user",
        default_value_t = 150000
    )]
    pub max_global_series_per_user: usize,
    /// The maximum number of in-memory series per metric name, across the cluster before replication. 0 to disable.
    #[arg(
        long = "ingester.max-global-series-per-metric",
        id = "limits.max_global_series_per_metric",
        default_value_t = 0
    )]
    pub max_global_series_per_metric: usize,
    /// The maximum number of unique series a query can fetch from ingesters and storage. 0 to disable.
    #[arg(
        long = "querier.max-fetched-series-per-query",
        id = "limits.max_fetched_series_per_query",
        default_value_t = 0
    )]
    pub max_fetched_series_per_query: usize,
    /// The maximum bytes of samples a query can fetch (16 bytes per sample: timestamp and value). 0 to disable.
    #[arg(
        long = "querier.max-fetched-chunk-bytes-per-query",
        id = "limits.max_fetched_chunk_bytes_per_query",
        default_value_t = 0
    )]
    pub max_fetched_chunk_bytes_per_query: usize,
    /// Limit how far back data (series and metadata) can be queried, up until this long ago; older parts of a query's range return nothing. 0 to disable.
    #[arg(
        long = "querier.max-query-lookback",
        id = "limits.max_query_lookback",
        default_value = "0"
    )]
    pub max_query_lookback: ConfigDuration,
    /// Limit the total query time range (end - start) of a range query. 0 to disable.
    #[arg(
        long = "query-frontend.max-total-query-length",
        id = "limits.max_total_query_length",
        default_value = "0"
    )]
    pub max_total_query_length: ConfigDuration,
    /// Max size of the raw query, in bytes (PromQL of query, query_range, format_query and every match[] selector), checked before parsing. 0 to disable.
    #[arg(
        long = "query-frontend.max-query-expression-size-bytes",
        id = "limits.max_query_expression_size_bytes",
        default_value_t = 0
    )]
    pub max_query_expression_size_bytes: usize,
    /// Maximum number of label names per series.
    #[arg(
        long = "validation.max-label-names-per-series",
        id = "limits.max_label_names_per_series",
        default_value_t = 30
    )]
    pub max_label_names_per_series: usize,
    /// Maximum length accepted for label names.
    #[arg(
        long = "validation.max-length-label-name",
        id = "limits.max_label_name_length",
        default_value_t = 1024
    )]
    pub max_label_name_length: usize,
    /// Maximum length accepted for label values.
    #[arg(
        long = "validation.max-length-label-value",
        id = "limits.max_label_value_length",
        default_value_t = 2048
    )]
    pub max_label_value_length: usize,
    /// How far into the future a sample's timestamp may be; samples later than this are rejected.
    #[arg(
        long = "validation.create-grace-period",
        id = "limits.creation_grace_period",
        default_value = "10m"
    )]
    pub creation_grace_period: ConfigDuration,
    /// How far into the past a sample's timestamp may be; 0 disables the check.
    #[arg(
        long = "validation.past-grace-period",
        id = "limits.past_grace_period",
        default_value = "0"
    )]
    pub past_grace_period: ConfigDuration,
    /// Deduplicate samples from Prometheus HA pairs for every tenant: of the replicas sending the same cluster label, accept one (needs -distributor.ha-tracker.enable).
    #[arg(
        long = "distributor.ha-tracker.enable-for-all-users",
        id = "limits.accept_ha_samples",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub accept_ha_samples: bool,
    /// Label that names a Prometheus HA cluster (kept on the stored series).
    #[arg(
        long = "distributor.ha-tracker.cluster",
        id = "limits.ha_cluster_label",
        default_value = "cluster"
    )]
    pub ha_cluster_label: String,
    /// Label that names the replica within a Prometheus HA cluster (removed before storing).
    #[arg(
        long = "distributor.ha-tracker.replica",
        id = "limits.ha_replica_label",
        default_value = "__replica__"
    )]
    pub ha_replica_label: String,
    /// Maximum number of HA clusters the HA tracker keeps for one tenant; a push naming a new cluster beyond it is refused. 0 to disable the limit.
    #[arg(
        long = "distributor.ha-tracker.max-clusters",
        id = "limits.ha_max_clusters",
        default_value_t = 100
    )]
    pub ha_max_clusters: usize,
}
