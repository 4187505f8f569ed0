//! `-blocks-storage.bucket-store.*`: how the store-gateway discovers and reads blocks. Names
//! follow Mimir's where Mimir has the same knob; the help text says where the meaning differs.

use serde::{Deserialize, Serialize};
use strata_shared::duration::ConfigDuration;

/// The flag that bounds one query's memory, named in [`crate::QueryError::LimitExceeded`].
pub(crate) const MAX_QUERY_MEMORY_FLAG: &str =
    "-blocks-storage.bucket-store.max-query-memory-bytes";

/// The store-gateway's configuration.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct StoreGatewayConfig {
    /// How often the store-gateway lists each tenant's blocks in object storage to discover new and deleted ones. A query for a tenant not synced yet syncs it first.
    // Mimir's default: blocks arrive every 2 h per ingester, and the querier reads the last
    // 12 h (`-querier.query-store-after`) from ingesters, so a block has hours to be found.
    #[arg(
        long = "blocks-storage.bucket-store.sync-interval",
        id = "blocks_storage.bucket_store.sync_interval",
        default_value = "15m"
    )]
    pub sync_interval: ConfigDuration,

    /// Blocks one query scans at the same time. (Mimir bounds queries per store-gateway with this name; here it bounds the block scans in flight within one query.)
    // 4: a 30-day query covers ~360 2 h blocks; with 2 cores, 4 scans keep both busy while
    // two wait on object storage, and memory stays at a few blocks' batches.
    #[arg(
        long = "blocks-storage.bucket-store.max-concurrent",
        id = "blocks_storage.bucket_store.max_concurrent",
        default_value_t = 4
    )]
    pub max_concurrent: usize,

    /// Bytes of decoded data one select may hold at once (samples at 16 bytes each, Arrow batches being decoded, the timestamps of the groups it reads); past it the query fails. 0 disables the limit.
    // 256 MiB = 16 M samples held at once. A select streams series as it completes them, so
    // it normally holds max-concurrent blocks' batches (8 Ki rows each), the series in
    // progress and the channel's series: a few MB. Only a pathological query gets near it
    // (a series with millions of samples in one block, a consumer that stopped reading).
    #[arg(
        long = "blocks-storage.bucket-store.max-query-memory-bytes",
        id = "blocks_storage.bucket_store.max_query_memory_bytes",
        default_value_t = 256 * 1024 * 1024
    )]
    pub max_query_memory_bytes: usize,

    /// Bytes of cached Parquet footers and page indexes (all tenants), evicted least recently used first.
    // A 2 h block's three footers and page indexes take ~10-20 KB, so 64 MiB holds thousands
    // of blocks; DataFusion's default is 50 MiB.
    #[arg(
        long = "blocks-storage.bucket-store.parquet-metadata-cache-size-bytes",
        id = "blocks_storage.bucket_store.parquet_metadata_cache_size_bytes",
        default_value_t = 64 * 1024 * 1024
    )]
    pub parquet_metadata_cache_size_bytes: usize,
}

impl Default for StoreGatewayConfig {
    fn default() -> Self {
        Self {
            sync_interval: ConfigDuration::from_secs(15 * 60),
            max_concurrent: 4,
            max_query_memory_bytes: 256 * 1024 * 1024,
            parquet_metadata_cache_size_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: StoreGatewayConfig,
    }

    #[test]
    fn flag_defaults_match_default() {
        let parsed = Cli::parse_from(["x"]).config;
        let default = StoreGatewayConfig::default();
        assert_eq!(parsed.sync_interval, default.sync_interval);
        assert_eq!(parsed.max_concurrent, default.max_concurrent);
        assert_eq!(
            parsed.max_query_memory_bytes,
            default.max_query_memory_bytes
        );
        assert_eq!(
            parsed.parquet_metadata_cache_size_bytes,
            default.parquet_metadata_cache_size_bytes
        );
        let flags = Cli::parse_from([
            "x",
            "--blocks-storage.bucket-store.sync-interval=1m",
            "--blocks-storage.bucket-store.max-concurrent=2",
            "--blocks-storage.bucket-store.max-query-memory-bytes=1000",
        ])
        .config;
        assert_eq!(flags.sync_interval, ConfigDuration::from_secs(60));
        assert_eq!(flags.max_concurrent, 2);
        assert_eq!(flags.max_query_memory_bytes, 1000);
    }

    #[test]
    fn yaml_round_trips() {
        let yaml = "sync_interval: 5m\nmax_concurrent: 8\nmax_query_memory_bytes: 10\nparquet_metadata_cache_size_bytes: 20\n";
        let config: StoreGatewayConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(config.sync_interval, ConfigDuration::from_secs(300));
        assert_eq!(config.max_concurrent, 8);
    }
}
