//! `meta.json`: what a block is, in the shape of Prometheus' and Thanos' block meta (camelCase,
//! `minTime` inclusive, `maxTime` exclusive) so that tools that list blocks read it, plus a
//! `strata` section for what only Strata needs.

use serde::{Deserialize, Serialize};

use super::{BlockError, META_FILE};

/// The contents of `meta.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block id, also its directory name.
    pub ulid: String,
    /// First millisecond of the block's range, inclusive.
    pub min_time: i64,
    /// End of the block's range, exclusive.
    pub max_time: i64,
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    /// The meta.json version (Prometheus' field); the data files' version is in `strata`.
    pub version: u32,
    pub strata: StrataMeta,
}

/// Counts a planner or a status page needs without opening the files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    pub num_series: u64,
    pub num_samples: u64,
}

/// Where a block came from: level 1 is an ingester's block, its own ulid the only source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCompaction {
    pub level: u32,
    pub sources: Vec<String>,
}

/// Strata's own section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrataMeta {
    pub tenant: String,
    /// The ingester that cut the block (replicas of one range differ only here).
    pub source_ingester: String,
    /// Downsampling resolution in milliseconds; 0 for raw samples.
    pub resolution: i64,
    /// The data files' format, [`super::FORMAT`].
    pub format: String,
    pub format_version: u32,
    /// The data files and their sizes, so that a reader can check an upload is whole.
    pub files: Vec<BlockFile>,
}

/// One data file of a block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockFile {
    pub name: String,
    pub size_bytes: u64,
}

impl BlockMeta {
    /// Serializes to indented JSON, as Prometheus writes it.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, BlockError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| BlockError::Json {
            file: META_FILE.to_string(),
            what: "serializing",
            source,
        })?;
        json.push(b'\n');
        Ok(json)
    }

    /// Parses `meta.json`; unknown fields are ignored so that older readers accept newer
    /// metas that only add fields.
    pub fn from_json_bytes(json: &[u8]) -> Result<Self, BlockError> {
        serde_json::from_slice(json).map_err(|source| BlockError::Json {
            file: META_FILE.to_string(),
            what: "parsing",
            source,
        })
    }

    /// The block's ulid, parsed.
    pub fn ulid(&self) -> Result<ulid::Ulid, BlockError> {
        ulid::Ulid::from_string(&self.ulid).map_err(|e| BlockError::Corrupt {
            file: META_FILE.to_string(),
            reason: format!("ulid {:?} does not parse: {e}", self.ulid),
        })
    }
}
