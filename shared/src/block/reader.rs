//! Reads a whole block back into series. It trusts nothing: every join key, position and
//! value column is checked, so a damaged or foreign file fails with an error that names it
//! instead of producing wrong samples.

use std::collections::HashMap;

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, Int8Type};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::reader::ChunkReader;
use parquet::file::statistics::Statistics;

use super::codec::unscaled_value;
use super::schema::{
    column_label, FORMAT_KEY, MAX_TIME, MIN_TIME, NUM_SAMPLES, SCALE, SCRAPE, SERIES_ID, TIMESTAMP,
    TS_GROUP, VALUE_FLOAT, VALUE_INT_DELTA,
};
use super::{BlockError, SeriesSamples, FORMAT, SAMPLES_FILE, SERIES_FILE, TIMESTAMPS_FILE};
use crate::labels::Labels;

/// Rows decoded at a time.
const BATCH_ROWS: usize = 64 * 1024;
/// Samples reserved per series up front from `num_samples`, at most.
const RESERVE_LIMIT: usize = 64 * 1024;

/// Reads every series of a block, in block order (metric name, then label set), bit-exactly
/// as written. `files` maps file names to contents; `meta.json` may be present and is not
/// needed.
pub fn decode_block(files: &HashMap<String, Bytes>) -> Result<Vec<SeriesSamples>, BlockError> {
    let (mut series, series_info) = read_series(file(files, SERIES_FILE)?.clone())?;
    let groups = read_timestamps(file(files, TIMESTAMPS_FILE)?.clone())?;
    read_samples(
        file(files, SAMPLES_FILE)?.clone(),
        None,
        &mut series,
        &series_info,
        &groups,
        None,
    )?;
    check_counts(&series, &series_info)?;
    Ok(series)
}

/// A block's series table (`series.parquet`) decoded: each series' labels, first and last
/// sample timestamps, and what the reader needs to find its samples. Blocks are immutable, so
/// a reader that queries a block often keeps this and skips the file next time.
#[derive(Debug)]
pub struct SeriesTable {
    labels: Vec<Labels>,
    info: Vec<SeriesInfo>,
}

impl SeriesTable {
    /// Reads `series.parquet`.
    pub fn read<R: ChunkReader + 'static>(series_file: R) -> Result<Self, BlockError> {
        let (series, info) = read_series(series_file)?;
        Ok(Self {
            labels: series.into_iter().map(|s| s.labels).collect(),
            info,
        })
    }

    /// Series in the block.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Every series' labels with its first and last sample timestamps (ms, inclusive), in
    /// block order.
    pub fn series(&self) -> impl Iterator<Item = (&Labels, i64, i64)> + '_ {
        self.labels
            .iter()
            .zip(&self.info)
            .map(|(labels, info)| (labels, info.min_time, info.max_time))
    }

    /// Which series `keep(index, labels, first, last)` selects, by position.
    pub fn wanted(&self, keep: impl Fn(usize, &Labels, i64, i64) -> bool) -> Vec<bool> {
        self.series()
            .enumerate()
            .map(|(index, (labels, first, last))| keep(index, labels, first, last))
            .collect()
    }

    /// Series `index`: its labels, first and last sample timestamps.
    pub fn get(&self, index: usize) -> Option<(&Labels, i64, i64)> {
        let info = self.info.get(index)?;
        Some((self.labels.get(index)?, info.min_time, info.max_time))
    }

    /// Approximate heap bytes, for a cache's bound.
    pub fn heap_bytes(&self) -> usize {
        self.labels.iter().map(Labels::heap_bytes).sum::<usize>()
            + self.labels.capacity() * std::mem::size_of::<Labels>()
            + self.info.capacity() * std::mem::size_of::<SeriesInfo>()
    }
}

/// The series of a block for which `keep(index, labels, first, last)` holds (the series'
/// position in the block, sample timestamps in ms, inclusive), bit-exactly as written, in
/// block order. Reads `series.parquet` first and
/// nothing more when no series is kept; of `samples.parquet` it reads only the row groups and
/// pages whose `series_id` range holds a kept series (the file is sorted by series and has a
/// page index). Files are anything parquet reads from: `Bytes`, or a `File` of a local block.
pub fn decode_block_where<R: ChunkReader + 'static>(
    series_file: R,
    timestamps_file: R,
    samples_file: R,
    keep: impl Fn(usize, &Labels, i64, i64) -> bool,
) -> Result<Vec<SeriesSamples>, BlockError> {
    let table = SeriesTable::read(series_file)?;
    decode_series_where(&table, timestamps_file, samples_file, keep)
}

/// [`decode_block_where`] with the block's series table already read.
pub fn decode_series_where<R: ChunkReader + 'static>(
    table: &SeriesTable,
    timestamps_file: R,
    samples_file: R,
    keep: impl Fn(usize, &Labels, i64, i64) -> bool,
) -> Result<Vec<SeriesSamples>, BlockError> {
    let wanted = table.wanted(keep);
    if !wanted.contains(&true) {
        return Ok(Vec::new());
    }
    let data = BlockData::read(timestamps_file, &samples_file)?;
    decode_wanted(table, &data, samples_file, &wanted)
}

/// What a frequent reader of a block keeps of its data files besides the series table: the
/// timestamp groups (`timestamps.parquet`, small) and the footer and page index of
/// `samples.parquet`, so that a query reads only the pages it needs.
#[derive(Debug)]
pub struct BlockData {
    groups: Vec<Vec<i64>>,
    samples_metadata: ArrowReaderMetadata,
}

impl BlockData {
    pub fn read<R: ChunkReader + 'static>(
        timestamps_file: R,
        samples_file: &R,
    ) -> Result<Self, BlockError> {
        Ok(Self {
            groups: read_timestamps(timestamps_file)?,
            samples_metadata: load_metadata(SAMPLES_FILE, samples_file)?,
        })
    }

    /// Approximate heap bytes (the timestamps; the footer is small).
    pub fn heap_bytes(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.capacity() * 8 + 24)
            .sum::<usize>()
            + self.samples_metadata.metadata().memory_size()
    }
}

/// The series at the positions `wanted` marks (from [`SeriesTable::wanted`]), with the
/// block's data-file parts already read: only the selected pages of `samples_file` are read.
pub fn decode_wanted<R: ChunkReader + 'static>(
    table: &SeriesTable,
    data: &BlockData,
    samples_file: R,
    wanted: &[bool],
) -> Result<Vec<SeriesSamples>, BlockError> {
    if !wanted.contains(&true) {
        return Ok(Vec::new());
    }
    let groups = &data.groups;
    let mut series: Vec<SeriesSamples> = table
        .labels
        .iter()
        .zip(&table.info)
        .zip(wanted)
        .map(|((labels, info), keep)| {
            let capacity = if *keep {
                info.num_samples.min(RESERVE_LIMIT)
            } else {
                0
            };
            SeriesSamples {
                labels: if *keep {
                    labels.clone()
                } else {
                    Labels::default()
                },
                timestamps: Vec::with_capacity(capacity),
                values: Vec::with_capacity(capacity),
            }
        })
        .collect();
    read_samples(
        samples_file,
        Some(&data.samples_metadata),
        &mut series,
        &table.info,
        groups,
        Some(wanted),
    )?;
    let mut out = Vec::new();
    for ((s, info), keep) in series.into_iter().zip(&table.info).zip(wanted) {
        if *keep {
            check_counts(std::slice::from_ref(&s), std::slice::from_ref(info))?;
            out.push(s);
        }
    }
    Ok(out)
}

/// Every series has the samples its `series.parquet` row announces: catches a damaged file,
/// and a page selection that missed rows of a series.
fn check_counts(series: &[SeriesSamples], series_info: &[SeriesInfo]) -> Result<(), BlockError> {
    for (s, info) in series.iter().zip(series_info) {
        let found = (s.values.len(), s.timestamps.first(), s.timestamps.last());
        let listed = (info.num_samples, Some(&info.min_time), Some(&info.max_time));
        if found != listed {
            return Err(BlockError::corrupt(
                SAMPLES_FILE,
                format!(
                    "series {} has (samples, first, last) {found:?}, {SERIES_FILE} says {listed:?}",
                    s.labels
                ),
            ));
        }
    }
    Ok(())
}

/// The label sets of a block's series with their first and last sample timestamps (ms,
/// inclusive), read from `series.parquet` alone: what label and series queries need.
pub fn decode_series_table(series_file: &Bytes) -> Result<Vec<(Labels, i64, i64)>, BlockError> {
    let table = SeriesTable::read(series_file.clone())?;
    Ok(table
        .labels
        .into_iter()
        .zip(table.info)
        .map(|(labels, i)| (labels, i.min_time, i.max_time))
        .collect())
}

/// What `series.parquet` says about a series besides its labels.
#[derive(Debug)]
struct SeriesInfo {
    group: usize,
    scale: Option<u8>,
    num_samples: usize,
    min_time: i64,
    max_time: i64,
}

fn file<'a>(files: &'a HashMap<String, Bytes>, name: &str) -> Result<&'a Bytes, BlockError> {
    files.get(name).ok_or_else(|| BlockError::MissingFile {
        file: name.to_string(),
    })
}

/// Calls `each` with every record batch of a data file, after checking it is one.
fn for_each_batch<R: ChunkReader + 'static>(
    name: &str,
    reader: R,
    each: impl FnMut(&RecordBatch) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    for_each_selected_batch(name, reader, |_| Ok(None), each)
}

/// Which row groups of a file to read, and which of their rows; None: all.
type Selection = Option<(Vec<usize>, RowSelection)>;

/// [`for_each_batch`] over the rows `select` picks from the file's metadata (read with its
/// page index, when it has one).
fn for_each_selected_batch<R: ChunkReader + 'static>(
    name: &str,
    reader: R,
    select: impl FnOnce(&ParquetMetaData) -> Result<Selection, BlockError>,
    each: impl FnMut(&RecordBatch) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    let metadata = load_metadata(name, &reader)?;
    for_each_batch_with(name, reader, metadata, select, each)
}

/// A data file's footer and page index, after checking the file is one of ours.
fn load_metadata<R: ChunkReader>(
    name: &str,
    reader: &R,
) -> Result<ArrowReaderMetadata, BlockError> {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let metadata =
        ArrowReaderMetadata::load(reader, options).map_err(|source| BlockError::Parquet {
            file: name.to_string(),
            what: "reading the footer",
            source,
        })?;
    let format = metadata
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == FORMAT_KEY))
        .and_then(|kv| kv.value.as_deref());
    if format != Some(FORMAT) {
        return Err(BlockError::corrupt(
            name,
            format!("format is {format:?}, this reader knows {FORMAT:?}"),
        ));
    }
    Ok(metadata)
}

/// [`for_each_selected_batch`] with the file's metadata already loaded.
fn for_each_batch_with<R: ChunkReader + 'static>(
    name: &str,
    reader: R,
    metadata: ArrowReaderMetadata,
    select: impl FnOnce(&ParquetMetaData) -> Result<Selection, BlockError>,
    mut each: impl FnMut(&RecordBatch) -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    let parquet_error = |what| {
        move |source| BlockError::Parquet {
            file: name.to_string(),
            what,
            source,
        }
    };
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(reader, metadata);
    let builder = match select(builder.metadata())? {
        Some((row_groups, rows)) => builder.with_row_groups(row_groups).with_row_selection(rows),
        None => builder,
    };
    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(parquet_error("opening"))?;
    for batch in reader {
        let batch = batch.map_err(|source| BlockError::Arrow {
            file: name.to_string(),
            what: "decoding",
            source,
        })?;
        each(&batch)?;
    }
    Ok(())
}

/// Column `name` of `batch` as `T`, cast if a reader hands it over in another type.
fn primitive<T: ArrowPrimitiveType>(
    file: &str,
    batch: &RecordBatch,
    name: &str,
) -> Result<PrimitiveArray<T>, BlockError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| BlockError::corrupt(file, format!("no column {name}")))?;
    let array = cast(array, &T::DATA_TYPE).map_err(|source| BlockError::Arrow {
        file: file.to_string(),
        what: "converting a column",
        source,
    })?;
    Ok(array.as_primitive::<T>().clone())
}

fn read_series<R: ChunkReader + 'static>(
    reader: R,
) -> Result<(Vec<SeriesSamples>, Vec<SeriesInfo>), BlockError> {
    let mut series = Vec::new();
    let mut info = Vec::new();
    for_each_batch(SERIES_FILE, reader, |batch| {
        let ids = primitive::<Int32Type>(SERIES_FILE, batch, SERIES_ID)?;
        let groups = primitive::<Int32Type>(SERIES_FILE, batch, TS_GROUP)?;
        let scales = primitive::<Int8Type>(SERIES_FILE, batch, SCALE)?;
        let counts = primitive::<Int32Type>(SERIES_FILE, batch, NUM_SAMPLES)?;
        let min_times = primitive::<Int64Type>(SERIES_FILE, batch, MIN_TIME)?;
        let max_times = primitive::<Int64Type>(SERIES_FILE, batch, MAX_TIME)?;
        let schema = batch.schema();
        let mut labels: Vec<(&str, StringArray)> = Vec::new();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            if let Some(label) = column_label(field.name()) {
                let strings = cast(array, &DataType::Utf8).map_err(|source| BlockError::Arrow {
                    file: SERIES_FILE.to_string(),
                    what: "converting a label column",
                    source,
                })?;
                labels.push((label, strings.as_string::<i32>().clone()));
            }
        }
        for row in 0..batch.num_rows() {
            if ids.is_null(row) || ids.value(row) as usize != series.len() {
                return Err(BlockError::corrupt(
                    SERIES_FILE,
                    format!("row {} has series_id {:?}", series.len(), ids.value(row)),
                ));
            }
            let pairs = labels
                .iter()
                .filter(|(_, values)| values.is_valid(row) && !values.value(row).is_empty())
                .map(|(name, values)| (*name, values.value(row)));
            let group = groups.value(row);
            let scale = scales.is_valid(row).then(|| scales.value(row));
            if group < 0 || groups.is_null(row) || scale.is_some_and(|s| s < 0) {
                return Err(BlockError::corrupt(
                    SERIES_FILE,
                    format!(
                        "series_id {}: ts_group {group}, scale {scale:?}",
                        series.len()
                    ),
                ));
            }
            let num_samples = counts.value(row).max(0) as usize;
            // Bounded, so that a corrupt count cannot reserve memory the block does not hold.
            let capacity = num_samples.min(RESERVE_LIMIT);
            series.push(SeriesSamples {
                labels: Labels::from_pairs(pairs),
                timestamps: Vec::with_capacity(capacity),
                values: Vec::with_capacity(capacity),
            });
            info.push(SeriesInfo {
                group: group as usize,
                scale: scale.map(|s| s as u8),
                num_samples,
                min_time: min_times.value(row),
                max_time: max_times.value(row),
            });
        }
        Ok(())
    })?;
    Ok((series, info))
}

fn read_timestamps<R: ChunkReader + 'static>(reader: R) -> Result<Vec<Vec<i64>>, BlockError> {
    let mut groups: Vec<Vec<i64>> = Vec::new();
    for_each_batch(TIMESTAMPS_FILE, reader, |batch| {
        let group_ids = primitive::<Int32Type>(TIMESTAMPS_FILE, batch, TS_GROUP)?;
        let scrapes = primitive::<Int32Type>(TIMESTAMPS_FILE, batch, SCRAPE)?;
        let timestamps = primitive::<Int64Type>(TIMESTAMPS_FILE, batch, TIMESTAMP)?;
        for row in 0..batch.num_rows() {
            let (group, scrape, timestamp) = (
                group_ids.value(row),
                scrapes.value(row),
                timestamps.value(row),
            );
            let group_index = usize::try_from(group).ok();
            if group_index == Some(groups.len()) {
                groups.push(Vec::new());
            }
            let count = groups.len();
            let in_order = groups.last_mut().filter(|g| {
                group_index == Some(count - 1)
                    && usize::try_from(scrape).ok() == Some(g.len())
                    && g.last().is_none_or(|&previous| previous < timestamp)
            });
            match in_order {
                Some(g) => g.push(timestamp),
                None => {
                    return Err(BlockError::corrupt(
                        TIMESTAMPS_FILE,
                        format!(
                            "row (ts_group {group}, scrape {scrape}, timestamp {timestamp}) out of order"
                        ),
                    ))
                }
            }
        }
        Ok(())
    })?;
    Ok(groups)
}

/// Reads `samples.parquet` into `series`; with `wanted`, only the rows of wanted series
/// (from the pages that can hold them: [`wanted_rows`]).
fn read_samples<R: ChunkReader + 'static>(
    reader: R,
    metadata: Option<&ArrowReaderMetadata>,
    series: &mut [SeriesSamples],
    info: &[SeriesInfo],
    groups: &[Vec<i64>],
    wanted: Option<&[bool]>,
) -> Result<(), BlockError> {
    let wanted_ids: Vec<i32> = wanted
        .map(|w| {
            w.iter()
                .enumerate()
                .filter(|(_, keep)| **keep)
                .filter_map(|(id, _)| i32::try_from(id).ok())
                .collect()
        })
        .unwrap_or_default();
    // Where the previous row was: samples must come by series, then by scrape.
    let mut previous: Option<(usize, i32)> = None;
    // The running sum of value_int_delta in the current series.
    let mut integer = 0i64;
    let select = |metadata: &ParquetMetaData| match wanted {
        Some(_) => Ok(Some(wanted_rows(metadata, &wanted_ids)?)),
        None => Ok(None),
    };
    let metadata = match metadata {
        Some(metadata) => metadata.clone(),
        None => load_metadata(SAMPLES_FILE, &reader)?,
    };
    for_each_batch_with(SAMPLES_FILE, reader, metadata, select, |batch| {
        let ids = primitive::<Int32Type>(SAMPLES_FILE, batch, SERIES_ID)?;
        let scrapes = primitive::<Int32Type>(SAMPLES_FILE, batch, SCRAPE)?;
        let ints = primitive::<Int64Type>(SAMPLES_FILE, batch, VALUE_INT_DELTA)?;
        let floats = primitive::<Float64Type>(SAMPLES_FILE, batch, VALUE_FLOAT)?;
        for row in 0..batch.num_rows() {
            let (id, scrape) = (ids.value(row) as usize, scrapes.value(row));
            let corrupt = |reason: &str| {
                BlockError::corrupt(
                    SAMPLES_FILE,
                    format!("row (series_id {id}, scrape {scrape}): {reason}"),
                )
            };
            let in_order = match previous {
                Some((previous_id, previous_scrape)) => {
                    previous_id < id || (previous_id == id && previous_scrape < scrape)
                }
                None => true,
            };
            if !in_order {
                return Err(corrupt("not sorted by (series_id, scrape)"));
            }
            if previous.is_none_or(|(previous_id, _)| previous_id != id) {
                integer = 0;
            }
            previous = Some((id, scrape));
            let (Some(s), Some(series_info)) = (series.get_mut(id), info.get(id)) else {
                return Err(corrupt("no such series"));
            };
            if wanted.is_some_and(|w| !w.get(id).copied().unwrap_or(false)) {
                continue;
            }
            let timestamp = groups
                .get(series_info.group)
                .and_then(|g| g.get(usize::try_from(scrape).ok()?))
                .ok_or_else(|| corrupt("no such timestamp"))?;
            let value = match (ints.is_valid(row), floats.is_valid(row)) {
                (true, false) => {
                    integer = integer
                        .checked_add(ints.value(row))
                        .ok_or_else(|| corrupt("value_int_delta overflows"))?;
                    series_info
                        .scale
                        .and_then(|scale| unscaled_value(integer, scale))
                        .ok_or_else(|| corrupt("value_int_delta in a series without a scale"))?
                }
                (false, true) => floats.value(row),
                _ => {
                    return Err(corrupt(
                        "needs exactly one of value_int_delta and value_float",
                    ))
                }
            };
            s.timestamps.push(*timestamp);
            s.values.push(value);
        }
        Ok(())
    })
}

/// The row groups and rows of `samples.parquet` that can hold the series in `wanted` (sorted
/// ids): a row group whose `series_id` statistics miss them all is skipped, and within the
/// others a page whose `series_id` range (column index) misses them all. Every page holding a
/// row of a wanted series has that id within its range, so each wanted series is read whole,
/// from its first row: the running sum of `value_int_delta` starts where it must.
fn wanted_rows(
    metadata: &ParquetMetaData,
    wanted: &[i32],
) -> Result<(Vec<usize>, RowSelection), BlockError> {
    let holds_wanted = |min: i32, max: i32| {
        let i = wanted.partition_point(|w| *w < min);
        wanted.get(i).is_some_and(|w| *w <= max)
    };
    let (mut row_groups, mut ranges, mut offset) = (Vec::new(), Vec::new(), 0usize);
    for (r, row_group) in metadata.row_groups().iter().enumerate() {
        let rows = usize::try_from(row_group.num_rows()).unwrap_or(0);
        let column = row_group
            .columns()
            .iter()
            .position(|c| c.column_path().string() == SERIES_ID)
            .ok_or_else(|| BlockError::corrupt(SAMPLES_FILE, format!("no column {SERIES_ID}")))?;
        let group_may_hold = match row_group.column(column).statistics() {
            Some(Statistics::Int32(stats)) => match (stats.min_opt(), stats.max_opt()) {
                (Some(min), Some(max)) => holds_wanted(*min, *max),
                _ => true,
            },
            _ => true,
        };
        if !group_may_hold {
            continue;
        }
        row_groups.push(r);
        let pages = metadata
            .offset_index()
            .and_then(|o| o.get(r))
            .and_then(|cols| cols.get(column))
            .map(|o| o.page_locations());
        let bounds = match metadata
            .column_index()
            .and_then(|c| c.get(r))
            .and_then(|cols| cols.get(column))
        {
            Some(ColumnIndexMetaData::INT32(index)) => Some(index),
            _ => None,
        };
        match (pages, bounds) {
            (Some(pages), Some(bounds)) if pages.len() == bounds.min_values().len() => {
                for (p, page) in pages.iter().enumerate() {
                    let start = usize::try_from(page.first_row_index).unwrap_or(0);
                    let end = pages
                        .get(p + 1)
                        .and_then(|next| usize::try_from(next.first_row_index).ok())
                        .unwrap_or(rows);
                    let keep = match (bounds.min_value(p), bounds.max_value(p)) {
                        (Some(min), Some(max)) => holds_wanted(*min, *max),
                        _ => true,
                    };
                    if keep {
                        ranges.push(offset + start..offset + end);
                    }
                }
            }
            _ => ranges.push(offset..offset + rows),
        }
        offset += rows;
    }
    Ok((
        row_groups,
        RowSelection::from_consecutive_ranges(ranges.into_iter(), offset),
    ))
}
