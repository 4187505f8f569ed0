//! The block format: how a tenant's samples for one time range are stored in object storage.
//!
//! A block is a directory `<tenant>/<ulid>/` holding three Parquet files and `meta.json`:
//!
//! - [`SERIES_FILE`]: one row per series, one string column per label name, the series'
//!   decimal scale and timestamp group. Small; answers label and series queries alone.
//! - [`SAMPLES_FILE`]: one row per sample, sorted by (series, time): `series_id`, `scrape`
//!   (position in the series' timestamp group) and the value, either in `value_int_delta`
//!   (value × 10^scale as a difference to the series' previous one, when that is exact) or in
//!   `value_float` (every other value, bit-exact).
//! - [`TIMESTAMPS_FILE`]: the timestamps of each group, stored once: series scraped together
//!   share them.
//! - [`META_FILE`]: [`BlockMeta`], written last so that a block without it is not yet a block.
//!
//! The layout was chosen by measurement (`strata-bench --bin block_study`, written up in
//! `docs/block-format.md`): 1.11 bytes per sample in a 2 h block where one row per sample with
//! a timestamp and a float64 needs 1.79, and still readable by any Parquet reader with plain
//! SQL. Every value round-trips bit-exactly, NaN payloads included.

mod codec;
mod inspect;
mod meta;
mod reader;
mod schema;
mod writer;

pub use codec::{
    choose_scale, group_timestamps, scaled_value, unscaled_value, TimestampGroups, MAX_SCALE,
};
pub use inspect::inspect_report;
pub use meta::{BlockCompaction, BlockFile, BlockMeta, BlockStats, StrataMeta};
pub use reader::{
    decode_block, decode_block_where, decode_series_table, decode_series_where, decode_wanted,
    BlockData, SeriesTable,
};
pub use writer::{encode_block, encode_block_with, EncodeOptions};

/// Column names of the data files and the mapping between labels and the label columns of
/// [`SERIES_FILE`], for readers that scan the files themselves (the store-gateway) rather
/// than through [`decode_block`].
pub mod columns {
    pub use super::schema::{
        column_label, label_column, FORMAT_KEY, MAX_TIME, MIN_TIME, NUM_SAMPLES, SCALE, SCRAPE,
        SERIES_ID, TIMESTAMP, TS_GROUP, VALUE_FLOAT, VALUE_INT_DELTA,
    };
}

use bytes::Bytes;
use thiserror::Error;

use crate::labels::Labels;

/// The file that makes a directory a block; uploaded last.
pub const META_FILE: &str = "meta.json";
/// One row per series: labels, decimal scale, timestamp group.
pub const SERIES_FILE: &str = "series.parquet";
/// One row per sample: series, position in the timestamp group, value.
pub const SAMPLES_FILE: &str = "samples.parquet";
/// One row per (timestamp group, scrape): the timestamps, stored once per group.
pub const TIMESTAMPS_FILE: &str = "timestamps.parquet";
/// The Parquet files of a block, in the order they are written and uploaded.
pub const DATA_FILES: [&str; 3] = [SERIES_FILE, TIMESTAMPS_FILE, SAMPLES_FILE];
/// The value of `strata.format` in `meta.json` and of the `strata.format` key in each file.
pub const FORMAT: &str = "strata-parquet-v1";
/// The version of [`FORMAT`], recorded in `meta.json` beside it.
pub const FORMAT_VERSION: u32 = 1;

/// The samples of one series, in time order.
#[derive(Clone, Debug, Default)]
pub struct SeriesSamples {
    pub labels: Labels,
    /// Milliseconds since the epoch, strictly increasing.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

impl SeriesSamples {
    /// Whether both hold the same labels, timestamps and value bit patterns (`==` on `f64`
    /// would call two identical NaNs different and `0.0` equal to `-0.0`).
    pub fn same_bits(&self, other: &Self) -> bool {
        self.labels == other.labels
            && self.timestamps == other.timestamps
            && self.values.len() == other.values.len()
            && self
                .values
                .iter()
                .zip(&other.values)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

/// What the writer needs to know about a block besides its samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDescriptor {
    pub ulid: ulid::Ulid,
    pub tenant: String,
    /// First millisecond of the block's range, inclusive.
    pub min_time: i64,
    /// End of the block's range, exclusive (as in Prometheus).
    pub max_time: i64,
    /// The ingester that cut the block; the compactor's replica deduplication uses it.
    pub source_ingester: String,
}

/// A block ready for upload: its meta and its data files (`meta.json` excluded; serialize it
/// with [`BlockMeta::to_json_bytes`] and upload it last).
#[derive(Clone, Debug)]
pub struct EncodedBlock {
    pub meta: BlockMeta,
    /// `(file name, contents)`, in [`DATA_FILES`] order.
    pub files: Vec<(String, Bytes)>,
}

impl EncodedBlock {
    /// Bytes of all files including `meta.json`, the figure bytes per sample is taken from.
    pub fn total_bytes(&self) -> Result<u64, BlockError> {
        let data: u64 = self.files.iter().map(|(_, b)| b.len() as u64).sum();
        Ok(data + self.meta.to_json_bytes()?.len() as u64)
    }
}

/// Why a block could not be written or read.
#[derive(Debug, Error)]
pub enum BlockError {
    /// Nothing to write: an empty range gets no block, so callers skip the upload.
    #[error("a block needs at least one series; skip empty ranges instead of writing a block")]
    NoSeries,
    /// The caller handed in a series the format cannot hold as given.
    #[error("series {series}: {reason}")]
    InvalidSeries { series: String, reason: String },
    /// Two series with the same label set (labels with empty values do not count, as in
    /// Prometheus).
    #[error("series {series} appears twice (labels with empty values are dropped)")]
    DuplicateSeries { series: String },
    #[error("{file}: missing from the block")]
    MissingFile { file: String },
    /// A file that parses as Parquet but breaks the format's rules.
    #[error("{file}: {reason}")]
    Corrupt { file: String, reason: String },
    #[error("{file}: {what}: {source}")]
    Parquet {
        file: String,
        what: &'static str,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{file}: {what}: {source}")]
    Arrow {
        file: String,
        what: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{file}: {what}: {source}")]
    Json {
        file: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl BlockError {
    fn corrupt(file: &str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            file: file.to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests;
