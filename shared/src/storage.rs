//! Object storage for blocks: a local directory (the embedded default), any S3-compatible
//! server, or memory (unit tests). Every role builds its store from the same
//! `-blocks-storage.*` flags.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::duration::ConfigDuration;

/// Which object store holds the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Filesystem,
    S3,
    Memory,
}

/// `-blocks-storage.*`: where blocks live. Names follow Mimir's.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct StorageConfig {
    /// Backend storage to use: filesystem, s3 or memory (memory is for tests: nothing survives a restart).
    #[arg(
        long = "blocks-storage.backend",
        value_enum,
        default_value = "filesystem",
        id = "blocks_storage.backend"
    )]
    pub backend: Backend,
    #[command(flatten)]
    pub filesystem: FilesystemConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub tsdb: TsdbConfig,
}

/// `-blocks-storage.tsdb.*`: the ingesters' local storage (WAL, blocks waiting to ship) and
/// when blocks are cut.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct TsdbConfig {
    /// Directory for the ingester's WAL and the blocks it has cut but not yet shipped.
    #[arg(
        long = "blocks-storage.tsdb.dir",
        id = "blocks_storage.tsdb.dir",
        default_value = "./data/tsdb"
    )]
    pub dir: String,
    /// Time range covered by each block an ingester cuts, aligned to UTC.
    #[arg(
        long = "blocks-storage.tsdb.block-ranges-period",
        id = "blocks_storage.tsdb.block_ranges_period",
        default_value = "2h"
    )]
    pub block_ranges_period: ConfigDuration,
    /// How long after the end of a block range the ingester waits for late samples before it cuts the block (samples more than this behind the newest one are out of bounds anyway).
    #[arg(
        long = "blocks-storage.tsdb.block-cut-grace-period",
        id = "blocks_storage.tsdb.block_cut_grace_period",
        default_value = "1h"
    )]
    pub block_cut_grace_period: ConfigDuration,
    /// How often the ingester checks whether a block is ready to be cut.
    #[arg(
        long = "blocks-storage.tsdb.head-compaction-interval",
        id = "blocks_storage.tsdb.head_compaction_interval",
        default_value = "1m"
    )]
    pub head_compaction_interval: ConfigDuration,
    /// A tenant that received no sample for this long has its closed ranges cut by wall clock, even when no newer sample arrives.
    #[arg(
        long = "blocks-storage.tsdb.head-compaction-idle-timeout",
        id = "blocks_storage.tsdb.head_compaction_idle_timeout",
        default_value = "1h"
    )]
    pub head_compaction_idle_timeout: ConfigDuration,
    /// How long an ingester keeps a block on local disk after shipping it, answering queries from it meanwhile: must exceed the store-gateways' -blocks-storage.bucket-store.sync-interval and cover -querier.query-ingesters-within, so that data is never in neither. 0 deletes a block as soon as it is shipped.
    #[arg(
        long = "blocks-storage.tsdb.retention-period",
        id = "blocks_storage.tsdb.retention_period",
        default_value = "13h"
    )]
    pub retention_period: ConfigDuration,
    /// Longest wait between two attempts to upload a block while object storage fails.
    #[arg(
        long = "blocks-storage.tsdb.ship-interval",
        id = "blocks_storage.tsdb.ship_interval",
        default_value = "1m"
    )]
    pub ship_interval: ConfigDuration,
    /// WAL segment size in bytes.
    #[arg(
        long = "blocks-storage.tsdb.wal-segment-size-bytes",
        id = "blocks_storage.tsdb.wal_segment_size_bytes",
        default_value_t = 134_217_728
    )]
    pub wal_segment_size_bytes: u64,
    /// Most heap bytes an ingester spends on keeping its local blocks' series tables (with their postings index), timestamp groups and samples-file footers between queries; beyond it the least recently used blocks are dropped and read again when queried. 0 keeps none.
    #[arg(
        long = "blocks-storage.tsdb.series-table-cache-max-bytes",
        id = "blocks_storage.tsdb.series_table_cache_max_bytes",
        default_value_t = 268_435_456
    )]
    pub series_table_cache_max_bytes: u64,
    /// Cut and ship every sample in the head when the ingester shuts down (otherwise the WAL keeps them).
    #[arg(long = "blocks-storage.tsdb.flush-blocks-on-shutdown", id = "blocks_storage.tsdb.flush_blocks_on_shutdown", default_value_t = false, action = clap::ArgAction::Set)]
    pub flush_blocks_on_shutdown: bool,
}

/// `-blocks-storage.filesystem.*`.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct FilesystemConfig {
    /// Local filesystem storage directory for blocks.
    #[arg(
        long = "blocks-storage.filesystem.dir",
        default_value = "./data/blocks",
        id = "blocks_storage.filesystem.dir"
    )]
    pub dir: String,
}

/// `-blocks-storage.s3.*`.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct S3Config {
    /// The S3 bucket endpoint, host:port or a URL (e.g. 127.0.0.1:9000 for MinIO or s3s-fs).
    #[arg(
        long = "blocks-storage.s3.endpoint",
        default_value = "",
        id = "blocks_storage.s3.endpoint"
    )]
    pub endpoint: String,
    /// S3 region.
    #[arg(
        long = "blocks-storage.s3.region",
        default_value = "us-east-1",
        id = "blocks_storage.s3.region"
    )]
    pub region: String,
    /// S3 bucket name.
    #[arg(
        long = "blocks-storage.s3.bucket-name",
        default_value = "",
        id = "blocks_storage.s3.bucket_name"
    )]
    pub bucket_name: String,
    /// S3 access key id.
    #[arg(
        long = "blocks-storage.s3.access-key-id",
        default_value = "",
        id = "blocks_storage.s3.access_key_id"
    )]
    pub access_key_id: String,
    /// S3 secret access key.
    #[arg(
        long = "blocks-storage.s3.secret-access-key",
        default_value = "",
        id = "blocks_storage.s3.secret_access_key"
    )]
    #[serde(skip_serializing)]
    pub secret_access_key: String,
    /// Use plain HTTP instead of HTTPS to reach the endpoint.
    #[arg(long = "blocks-storage.s3.insecure", default_value_t = false, action = clap::ArgAction::Set, id = "blocks_storage.s3.insecure")]
    pub insecure: bool,
    /// Bucket lookup style: auto, virtual-hosted or path (MinIO and s3s-fs want path).
    #[arg(
        long = "blocks-storage.s3.bucket-lookup-type",
        default_value = "auto",
        id = "blocks_storage.s3.bucket_lookup_type"
    )]
    pub bucket_lookup_type: String,
}

/// Error building the object store from configuration.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "cannot create the blocks directory {dir:?} (-blocks-storage.filesystem.dir): {source}"
    )]
    CreateDir { dir: String, source: std::io::Error },
    #[error("cannot open the blocks directory {dir:?} (-blocks-storage.filesystem.dir): {source}")]
    Filesystem {
        dir: String,
        source: object_store::Error,
    },
    #[error("-blocks-storage.s3.bucket-name is required with -blocks-storage.backend=s3")]
    MissingBucket,
    #[error(
        "-blocks-storage.s3.bucket-lookup-type must be auto, virtual-hosted or path, not {0:?}"
    )]
    BadLookupType(String),
    #[error("cannot configure the S3 client for bucket {bucket:?}: {source}")]
    S3 {
        bucket: String,
        source: object_store::Error,
    },
}

impl StorageConfig {
    /// Builds the object store the configuration describes.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, StorageError> {
        match self.backend {
            Backend::Memory => Ok(Arc::new(InMemory::new())),
            Backend::Filesystem => {
                let dir = &self.filesystem.dir;
                std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
                    dir: dir.clone(),
                    source,
                })?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|source| StorageError::Filesystem {
                        dir: dir.clone(),
                        source,
                    })?
                    .with_automatic_cleanup(true);
                Ok(Arc::new(store))
            }
            Backend::S3 => {
                let s3 = &self.s3;
                if s3.bucket_name.is_empty() {
                    return Err(StorageError::MissingBucket);
                }
                let path_style = match s3.bucket_lookup_type.as_str() {
                    "auto" => !s3.endpoint.is_empty(),
                    "path" => true,
                    "virtual-hosted" => false,
                    other => return Err(StorageError::BadLookupType(other.to_string())),
                };
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket_name)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(!path_style)
                    .with_allow_http(s3.insecure);
                if !s3.endpoint.is_empty() {
                    let endpoint = if s3.endpoint.contains("://") {
                        s3.endpoint.clone()
                    } else if s3.insecure {
                        format!("http://{}", s3.endpoint)
                    } else {
                        format!("https://{}", s3.endpoint)
                    };
                    builder = builder.with_endpoint(endpoint);
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(&s3.secret_access_key);
                }
                let store = builder.build().map_err(|source| StorageError::S3 {
                    bucket: s3.bucket_name.clone(),
                    source,
                })?;
                Ok(Arc::new(store))
            }
        }
    }

    /// A short description for logs, without credentials.
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Memory => "memory".to_string(),
            Backend::Filesystem => format!("filesystem:{}", self.filesystem.dir),
            Backend::S3 => format!("s3://{}@{}", self.s3.bucket_name, self.s3.endpoint),
        }
    }
}
