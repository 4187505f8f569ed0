//! The write path: the [`distributor`] (HTTP push, validation, replication over the ring)
//! and the [`ingester`] (WAL, head, block cutting and shipping).

pub mod distributor;
pub mod ingester;
pub mod peers;

use serde::{Deserialize, Serialize};

/// `ingester:` — the ingester's flags.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct IngesterConfig {
    #[command(flatten)]
    pub ring: RingConfig,
}

/// `ingester.ring:` — how series are placed on ingesters.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct RingConfig {
    /// Number of ingesters each series is written to; a write needs a majority of them. Capped by the number of ring members (so 1 with -target=all and no static members).
    #[arg(
        long = "ingester.ring.replication-factor",
        id = "ingester.ring.replication_factor",
        default_value_t = 3
    )]
    pub replication_factor: usize,
    /// The ring's members, as a comma-separated list of id=host:grpc-port. Empty with -target=all: the one in-process ingester.
    #[arg(
        long = "ingester.ring.static-members",
        id = "ingester.ring.static_members",
        default_value = ""
    )]
    pub static_members: String,
    /// This ingester's id in the ring; it names the blocks it ships. Defaults to the hostname.
    #[arg(
        long = "ingester.ring.instance-id",
        id = "ingester.ring.instance_id",
        default_value = ""
    )]
    pub instance_id: String,
}

/// `distributor.ring:` — the distributors that share the tenants' rate limits.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct DistributorRingConfig {
    /// Every distributor's HTTP address (host:port, this one included), comma-separated. Each distributor polls their /ready every 5s and enforces the tenants' rate limits divided by the number that answer. Empty: this distributor alone enforces the whole limit.
    #[arg(
        long = "distributor.ring.static-members",
        id = "distributor.ring.static_members",
        default_value = ""
    )]
    pub static_members: String,
}

/// `distributor:` — the distributor's flags.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct DistributorConfig {
    #[command(flatten)]
    pub ring: DistributorRingConfig,
    /// Largest remote-write request accepted, in bytes, compressed or decompressed; larger bodies get 413.
    #[arg(
        long = "distributor.max-recv-msg-size",
        id = "distributor.max_recv_msg_size",
        default_value_t = 104_857_600
    )]
    pub max_recv_msg_size: usize,
    /// Timeout of one push from the distributor to an ingester.
    #[arg(
        long = "distributor.remote-timeout",
        id = "distributor.remote_timeout",
        default_value = "2s"
    )]
    pub remote_timeout: strata_shared::duration::ConfigDuration,
    #[command(flatten)]
    pub ha_tracker: distributor::ha_tracker::HaTrackerConfig,
}
