//! Per-tenant limits. For now the global defaults from flags/YAML apply to every tenant;
//! the names are Mimir's (`-validation.*` flags under the `limits:` YAML block).

use serde::{Deserialize, Serialize};

use crate::duration::ConfigDuration;

/// `limits:` — the validation limits of the write path.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct LimitsConfig {
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
}
