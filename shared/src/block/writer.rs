//! Writes a block: validates and sorts the series, groups their timestamps, splits their
//! values into scaled integers and floats, and encodes the three Parquet files.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Array, Int64Array, Int64Builder, Int8Array, StringArray,
};
use arrow::datatypes::DataType;
use bytes::Bytes;

use super::codec::{choose_scale, group_timestamps, scaled_value, scrape_positions};
use super::schema::{
    label_column, write_file, Column, ColumnEncoding, ColumnSpec, FileSettings, FileWriter,
    MAX_TIME, MIN_TIME, NUM_SAMPLES, SCALE, SCRAPE, SERIES_ID, TIMESTAMP, TS_GROUP, VALUE_FLOAT,
    VALUE_INT_DELTA,
};
use super::{
    BlockCompaction, BlockDescriptor, BlockError, BlockFile, BlockMeta, BlockStats, EncodedBlock,
    SeriesSamples, StrataMeta, FORMAT, FORMAT_VERSION, SAMPLES_FILE, SERIES_FILE, TIMESTAMPS_FILE,
};
use crate::labels::{Labels, METRIC_NAME};

/// Tuning knobs that change sizes, never the schema; the defaults are what the study chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// zstd level of every column. 16 is where the study found the knee: 13 % smaller
    /// blocks than level 3 for about 1.8× the encode time; 19 saves another 0.4 % for about
    /// 1.3× the time (worth it for the compactor, which writes what is kept longest).
    pub zstd_level: i32,
    /// Rows per row group: the unit of statistics-based pruning and of parallel reads.
    pub row_group_rows: usize,
    /// Rows per data page at most: smaller pages let the page index skip more, larger ones
    /// compress better.
    pub data_page_rows: usize,
    /// Bytes per data page at most (before compression).
    pub data_page_bytes: usize,
    /// Whether a series whose timestamps are a subset of another group's (it went stale,
    /// appeared mid-block or missed a scrape) joins that group instead of getting its own.
    pub share_subset_groups: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            zstd_level: 16,
            row_group_rows: 1 << 20,
            data_page_rows: 128 * 1024,
            data_page_bytes: 1 << 20,
            share_subset_groups: true,
        }
    }
}

impl EncodeOptions {
    /// The Parquet settings; zero row limits (which Parquet refuses) count as one.
    fn settings(&self) -> FileSettings {
        FileSettings {
            zstd_level: self.zstd_level,
            row_group_rows: self.row_group_rows.max(1),
            data_page_rows: self.data_page_rows.max(1),
            data_page_bytes: self.data_page_bytes,
        }
    }
}

/// Encodes a block with the default [`EncodeOptions`].
///
/// Series may come in any order; the block holds them sorted by metric name, then label set.
/// Labels with empty values are dropped (Prometheus treats them as absent). Every series
/// needs at least one sample, strictly increasing timestamps inside `[min_time, max_time)`,
/// and a label set of its own. Zero series is [`BlockError::NoSeries`]: an empty range gets
/// no block.
pub fn encode_block(
    desc: &BlockDescriptor,
    series: Vec<SeriesSamples>,
) -> Result<EncodedBlock, BlockError> {
    encode_block_with(desc, series, &EncodeOptions::default())
}

/// [`encode_block`] with explicit tuning.
pub fn encode_block_with(
    desc: &BlockDescriptor,
    series: Vec<SeriesSamples>,
    options: &EncodeOptions,
) -> Result<EncodedBlock, BlockError> {
    let series = validate_and_sort(desc, series)?;
    let settings = options.settings();

    let timestamps: Vec<&[i64]> = series.iter().map(|s| s.timestamps.as_slice()).collect();
    let groups = group_timestamps(&timestamps, options.share_subset_groups);
    let scales: Vec<Option<u8>> = series.iter().map(|s| choose_scale(&s.values)).collect();

    let series_file = write_file(
        SERIES_FILE,
        series_columns(&series, &groups.series_group, &scales),
        &[0],
        settings,
    )?;
    let timestamps_file = write_file(
        TIMESTAMPS_FILE,
        timestamp_columns(&groups.groups),
        &[0, 1],
        settings,
    )?;
    let samples_file = write_samples(
        &series,
        &groups.groups,
        &groups.series_group,
        &scales,
        settings,
    )?;

    let files = vec![
        (SERIES_FILE.to_string(), series_file),
        (TIMESTAMPS_FILE.to_string(), timestamps_file),
        (SAMPLES_FILE.to_string(), samples_file),
    ];
    let ulid = desc.ulid.to_string();
    let meta = BlockMeta {
        ulid: ulid.clone(),
        min_time: desc.min_time,
        max_time: desc.max_time,
        stats: BlockStats {
            num_series: series.len() as u64,
            num_samples: series.iter().map(|s| s.values.len() as u64).sum(),
        },
        compaction: BlockCompaction {
            level: 1,
            sources: vec![ulid],
        },
        version: 1,
        strata: StrataMeta {
            tenant: desc.tenant.clone(),
            source_ingester: desc.source_ingester.clone(),
            resolution: 0,
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            files: files
                .iter()
                .map(|(name, bytes)| BlockFile {
                    name: name.clone(),
                    size_bytes: bytes.len() as u64,
                })
                .collect(),
        },
    };
    Ok(EncodedBlock { meta, files })
}

/// Checks every series, drops empty label values, and sorts by (metric name, label set).
fn validate_and_sort(
    desc: &BlockDescriptor,
    series: Vec<SeriesSamples>,
) -> Result<Vec<SeriesSamples>, BlockError> {
    if series.is_empty() {
        return Err(BlockError::NoSeries);
    }
    // Series ids and scrape positions are Parquet INT32.
    if i32::try_from(series.len()).is_err() {
        return Err(BlockError::InvalidSeries {
            series: format!("{} series", series.len()),
            reason: "a block holds at most 2^31 - 1 series".to_string(),
        });
    }
    let mut checked = Vec::with_capacity(series.len());
    for mut s in series {
        if s.labels.iter().any(|l| l.value.is_empty()) {
            let kept = s
                .labels
                .into_vec()
                .into_iter()
                .filter(|l| !l.value.is_empty());
            s.labels = Labels::from_sorted(kept.collect());
        }
        let invalid = |reason: String| BlockError::InvalidSeries {
            series: s.labels.to_string(),
            reason,
        };
        if s.labels.is_empty() {
            return Err(invalid("no labels with a value".to_string()));
        }
        if s.timestamps.len() != s.values.len() {
            return Err(invalid(format!(
                "{} timestamps but {} values",
                s.timestamps.len(),
                s.values.len()
            )));
        }
        let (Some(&first), Some(&last)) = (s.timestamps.first(), s.timestamps.last()) else {
            return Err(invalid("no samples".to_string()));
        };
        if i32::try_from(s.values.len()).is_err() {
            return Err(invalid("more than 2^31 - 1 samples".to_string()));
        }
        if let Some(w) = s.timestamps.windows(2).find(|w| w[0] >= w[1]) {
            return Err(invalid(format!(
                "timestamps not strictly increasing: {} then {}",
                w[0], w[1]
            )));
        }
        if first < desc.min_time || last >= desc.max_time {
            return Err(invalid(format!(
                "samples from {first} to {last} fall outside the block's range [{}, {})",
                desc.min_time, desc.max_time
            )));
        }
        checked.push(s);
    }
    checked.sort_by(|a, b| {
        (a.labels.metric_name(), &a.labels).cmp(&(b.labels.metric_name(), &b.labels))
    });
    if let Some(w) = checked.windows(2).find(|w| w[0].labels == w[1].labels) {
        return Err(BlockError::DuplicateSeries {
            series: w[0].labels.to_string(),
        });
    }
    Ok(checked)
}

/// `series.parquet`: `series_id`, one column per label name (`__name__` first, then by name),
/// then the series' timestamp group, scale and sample summary.
fn series_columns<'a>(
    series: &'a [SeriesSamples],
    series_group: &[u32],
    scales: &[Option<u8>],
) -> Vec<Column<'a>> {
    let mut names: Vec<&str> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|l| l.name.as_str()))
        .collect();
    names.sort_by_key(|&name| (name != METRIC_NAME, name));
    names.dedup();

    let count = series.len() as i32;
    let mut columns = vec![Column::required(
        SERIES_ID,
        Arc::new(Int32Array::from_iter_values(0..count)),
        ColumnEncoding::Delta,
    )];
    for name in names {
        let values: StringArray = series.iter().map(|s| s.labels.get(name)).collect();
        columns.push(Column::optional(
            label_column(name),
            Arc::new(values),
            ColumnEncoding::Dictionary,
        ));
    }
    let groups = Int32Array::from_iter_values(series_group.iter().map(|&g| g as i32));
    let scales: Int8Array = scales.iter().map(|s| s.map(|k| k as i8)).collect();
    let counts = Int32Array::from_iter_values(series.iter().map(|s| s.values.len() as i32));
    let first = Int64Array::from_iter_values(series.iter().map(|s| s.timestamps[0]));
    let last =
        Int64Array::from_iter_values(series.iter().map(|s| s.timestamps[s.timestamps.len() - 1]));
    columns.extend([
        Column::required(TS_GROUP, Arc::new(groups), ColumnEncoding::Delta),
        Column::optional(SCALE, Arc::new(scales), ColumnEncoding::Delta),
        Column::required(NUM_SAMPLES, Arc::new(counts), ColumnEncoding::Delta),
        Column::required(MIN_TIME, Arc::new(first), ColumnEncoding::Delta),
        Column::required(MAX_TIME, Arc::new(last), ColumnEncoding::Delta),
    ]);
    columns
}

/// `timestamps.parquet`: one row per (group, scrape).
fn timestamp_columns(groups: &[Vec<i64>]) -> Vec<Column<'static>> {
    let rows: usize = groups.iter().map(Vec::len).sum();
    let mut group_ids = Vec::with_capacity(rows);
    let mut scrapes = Vec::with_capacity(rows);
    let mut timestamps = Vec::with_capacity(rows);
    for (g, group) in groups.iter().enumerate() {
        group_ids.extend(std::iter::repeat_n(g as i32, group.len()));
        scrapes.extend(0..group.len() as i32);
        timestamps.extend_from_slice(group);
    }
    vec![
        Column::required(
            TS_GROUP,
            Arc::new(Int32Array::from(group_ids)),
            ColumnEncoding::Delta,
        ),
        Column::required(
            SCRAPE,
            Arc::new(Int32Array::from(scrapes)),
            ColumnEncoding::Delta,
        ),
        Column::required(
            TIMESTAMP,
            Arc::new(Int64Array::from(timestamps)),
            ColumnEncoding::Delta,
        ),
    ]
}

/// `samples.parquet`: one row per sample, by series then time. A value exact at its series'
/// scale goes to `value_int_delta` (as the difference to the series' previous integer),
/// any other to `value_float`; the other column is null.
///
/// Written one row group at a time: the arrays of at most `row_group_rows` rows are built,
/// handed to the Parquet writer (which encodes and flushes the full row group) and dropped
/// before the next ones are built. A series may straddle row groups; its integer
/// differences carry on across the boundary.
fn write_samples(
    series: &[SeriesSamples],
    groups: &[Vec<i64>],
    series_group: &[u32],
    scales: &[Option<u8>],
    settings: FileSettings,
) -> Result<Bytes, BlockError> {
    let specs = [
        ColumnSpec::required(SERIES_ID, DataType::Int32, ColumnEncoding::Delta),
        ColumnSpec::required(SCRAPE, DataType::Int32, ColumnEncoding::Delta),
        ColumnSpec::optional(
            VALUE_INT_DELTA,
            DataType::Int64,
            ColumnEncoding::ByteStreamSplit,
        ),
        ColumnSpec::optional(
            VALUE_FLOAT,
            DataType::Float64,
            ColumnEncoding::ByteStreamSplit,
        ),
    ];
    let mut writer = FileWriter::try_new(SAMPLES_FILE, &specs, &[0, 1], settings)?;
    let rows: usize = series.iter().map(|s| s.values.len()).sum();
    let mut batch = SampleBatch::new(settings.row_group_rows.min(rows));
    let mut written = 0usize;
    let mut scrapes = Vec::new();
    for (id, s) in series.iter().enumerate() {
        let group = &groups[series_group[id] as usize];
        scrapes.clear();
        if !scrape_positions(group, &s.timestamps, &mut scrapes) {
            // group_timestamps only joins a series to a group holding all its timestamps.
            return Err(BlockError::InvalidSeries {
                series: s.labels.to_string(),
                reason: "internal error: timestamp missing from its group".to_string(),
            });
        }
        let mut previous = 0i64;
        for (&value, &scrape) in s.values.iter().zip(&scrapes) {
            batch.series_ids.push(id as i32);
            batch.scrapes.push(scrape);
            match scales[id].and_then(|scale| scaled_value(value, scale)) {
                Some(integer) => {
                    // Both within ±2^53, so the difference cannot overflow.
                    batch.ints.append_value(integer - previous);
                    previous = integer;
                    batch.floats.append_null();
                }
                None => {
                    batch.ints.append_null();
                    batch.floats.append_value(value);
                }
            }
            if batch.series_ids.len() == settings.row_group_rows {
                written += batch.series_ids.len();
                let next = SampleBatch::new(settings.row_group_rows.min(rows - written));
                writer.write(std::mem::replace(&mut batch, next).into_arrays())?;
            }
        }
    }
    if !batch.series_ids.is_empty() {
        writer.write(batch.into_arrays())?;
    }
    writer.finish()
}

/// The columns of `samples.parquet` for one row group, being built.
struct SampleBatch {
    series_ids: Vec<i32>,
    scrapes: Vec<i32>,
    ints: Int64Builder,
    floats: Float64Builder,
}

impl SampleBatch {
    fn new(rows: usize) -> Self {
        Self {
            series_ids: Vec::with_capacity(rows),
            scrapes: Vec::with_capacity(rows),
            ints: Int64Builder::with_capacity(rows),
            floats: Float64Builder::with_capacity(rows),
        }
    }

    fn into_arrays(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int32Array::from(self.series_ids)),
            Arc::new(Int32Array::from(self.scrapes)),
            Arc::new(self.ints.finish()),
            Arc::new(self.floats.finish()),
        ]
    }
}
