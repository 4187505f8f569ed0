//! A block's series table (`series.parquet`), decoded once and kept in memory: it answers the
//! metadata calls alone and tells `select` which `series_id`s to read.
//!
//! Labels are stored dictionary-encoded per label name, so a matcher is evaluated once per
//! distinct value of its label (a regex over 4.5 k series of a node_exporter block runs on a
//! few hundred values), and rows are `(column, value)` index pairs. Series are sorted by
//! metric name in a block, so each name's series are one row range: a matcher on `__name__`
//! picks ranges instead of testing every row.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, Int64Type, Int8Type};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use strata_shared::block::columns::{
    column_label, FORMAT_KEY, MAX_TIME, MIN_TIME, NUM_SAMPLES, SCALE, SERIES_ID, TS_GROUP,
};
use strata_shared::block::{FORMAT, MAX_SCALE, SERIES_FILE};
use strata_shared::labels::{Label, Labels, METRIC_NAME};
use strata_shared::query::LabelMatcher;

/// Why a series table could not be decoded.
pub(crate) type TableError = String;

/// One label name's distinct values in a block.
#[derive(Debug)]
struct LabelColumn {
    name: Arc<str>,
    values: Vec<Arc<str>>,
}

/// A block's series, decoded.
#[derive(Debug, Default)]
pub(crate) struct SeriesTable {
    /// Sorted by label name, so a row's pairs (in column order) are a sorted label set.
    columns: Vec<LabelColumn>,
    /// Row `i`'s labels are `pairs[offsets[i]..offsets[i + 1]]`: (column, value) indexes.
    offsets: Vec<u32>,
    pairs: Vec<(u32, u32)>,
    pub(crate) ts_group: Vec<u32>,
    pub(crate) scale: Vec<Option<u8>>,
    pub(crate) num_samples: Vec<u32>,
    pub(crate) min_time: Vec<i64>,
    pub(crate) max_time: Vec<i64>,
    /// The row range of each `__name__` value (values are numbered in row order), when every
    /// name's rows are contiguous, as the writer sorts them.
    name_ranges: Option<Vec<Range<u32>>>,
}

/// A matcher resolved against one table.
struct ResolvedMatcher {
    column: u32,
    /// Whether each value of the column passes.
    values: Vec<bool>,
    /// Whether a series without the label passes.
    empty: bool,
}

impl SeriesTable {
    /// Decodes `series.parquet`, checking what the reader checks: the format key, row
    /// numbers as ids, valid groups and scales.
    pub(crate) fn decode(bytes: Bytes) -> Result<Self, TableError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| format!("{SERIES_FILE}: reading the footer: {e}"))?;
        let format = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == FORMAT_KEY))
            .and_then(|kv| kv.value.clone());
        if format.as_deref() != Some(FORMAT) {
            return Err(format!(
                "{SERIES_FILE}: format is {format:?}, this reader knows {FORMAT:?}"
            ));
        }
        let reader = builder
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| format!("{SERIES_FILE}: opening: {e}"))?;
        let mut table = SeriesTable::default();
        // Per label column of the file: its index in `table.columns` and its dictionary.
        let mut dictionaries: Vec<(u32, HashMap<Arc<str>, u32>)> = Vec::new();
        let mut label_fields: Vec<(usize, u32)> = Vec::new();
        let mut name_column: Option<u32> = None;
        table.offsets.push(0);
        for batch in reader {
            let batch = batch.map_err(|e| format!("{SERIES_FILE}: decoding: {e}"))?;
            if table.columns.is_empty() && label_fields.is_empty() {
                let mut labels: Vec<(usize, &str)> = batch
                    .schema_ref()
                    .fields()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| column_label(f.name()).map(|l| (i, l)))
                    .collect();
                labels.sort_by(|a, b| a.1.cmp(b.1));
                for (position, (field, label)) in labels.into_iter().enumerate() {
                    let position = position as u32;
                    if label == METRIC_NAME {
                        name_column = Some(position);
                    }
                    table.columns.push(LabelColumn {
                        name: Arc::from(label),
                        values: Vec::new(),
                    });
                    dictionaries.push((position, HashMap::new()));
                    label_fields.push((field, position));
                }
            }
            table.append(&batch, &label_fields, &mut dictionaries)?;
        }
        table.name_ranges = name_column.and_then(|c| table.contiguous_ranges(c));
        Ok(table)
    }

    fn append(
        &mut self,
        batch: &RecordBatch,
        label_fields: &[(usize, u32)],
        dictionaries: &mut [(u32, HashMap<Arc<str>, u32>)],
    ) -> Result<(), TableError> {
        let ids = primitive::<Int32Type>(batch, SERIES_ID)?;
        let groups = primitive::<Int32Type>(batch, TS_GROUP)?;
        let scales = primitive::<Int8Type>(batch, SCALE)?;
        let counts = primitive::<Int32Type>(batch, NUM_SAMPLES)?;
        let min_times = primitive::<Int64Type>(batch, MIN_TIME)?;
        let max_times = primitive::<Int64Type>(batch, MAX_TIME)?;
        let mut strings = Vec::with_capacity(label_fields.len());
        for &(field, column) in label_fields {
            let array = cast(batch.column(field), &DataType::Utf8)
                .map_err(|e| format!("{SERIES_FILE}: converting a label column: {e}"))?;
            strings.push((column, array));
        }
        for row in 0..batch.num_rows() {
            let id = self.ts_group.len();
            let valid = [&ids as &dyn Array, &groups, &counts, &min_times, &max_times]
                .iter()
                .all(|a| a.is_valid(row));
            let scale = scales.is_valid(row).then(|| scales.value(row));
            if !valid
                || ids.value(row) as usize != id
                || groups.value(row) < 0
                || counts.value(row) <= 0
                || min_times.value(row) > max_times.value(row)
                || scale.is_some_and(|s| s < 0 || s as u8 > MAX_SCALE)
            {
                return Err(format!(
                    "{SERIES_FILE}: row {id}: series_id {:?}, ts_group {:?}, scale {scale:?}, \
                     num_samples {:?}, time [{:?}, {:?}]",
                    ids.is_valid(row).then(|| ids.value(row)),
                    groups.is_valid(row).then(|| groups.value(row)),
                    counts.is_valid(row).then(|| counts.value(row)),
                    min_times.is_valid(row).then(|| min_times.value(row)),
                    max_times.is_valid(row).then(|| max_times.value(row)),
                ));
            }
            for (column, array) in &strings {
                let values = array.as_string::<i32>();
                if values.is_null(row) || values.value(row).is_empty() {
                    continue;
                }
                let value = values.value(row);
                let (_, dictionary) = &mut dictionaries[*column as usize];
                let label = &mut self.columns[*column as usize];
                let index = match dictionary.get(value) {
                    Some(&index) => index,
                    None => {
                        let index = label.values.len() as u32;
                        let value: Arc<str> = Arc::from(value);
                        label.values.push(value.clone());
                        dictionary.insert(value, index);
                        index
                    }
                };
                self.pairs.push((*column, index));
            }
            self.offsets.push(self.pairs.len() as u32);
            self.ts_group.push(groups.value(row) as u32);
            self.scale.push(scale.map(|s| s as u8));
            self.num_samples.push(counts.value(row) as u32);
            self.min_time.push(min_times.value(row));
            self.max_time.push(max_times.value(row));
        }
        Ok(())
    }

    /// Each value's row range in `column`, if every value's rows are contiguous.
    fn contiguous_ranges(&self, column: u32) -> Option<Vec<Range<u32>>> {
        let count = self.columns.get(column as usize)?.values.len();
        let mut ranges: Vec<Option<Range<u32>>> = vec![None; count];
        let mut previous: Option<u32> = None;
        for row in 0..self.len() as u32 {
            let value = self.value_index(row, column);
            if let Some(v) = value {
                let range = &mut ranges[v as usize];
                match range {
                    Some(r) if previous == Some(v) => r.end = row + 1,
                    Some(_) => return None,
                    None => *range = Some(row..row + 1),
                }
            }
            previous = value;
        }
        ranges.into_iter().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.ts_group.len()
    }

    fn row_pairs(&self, row: u32) -> &[(u32, u32)] {
        let start = self.offsets[row as usize] as usize;
        let end = self.offsets[row as usize + 1] as usize;
        &self.pairs[start..end]
    }

    fn value_index(&self, row: u32, column: u32) -> Option<u32> {
        self.row_pairs(row)
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| *v)
    }

    /// The label set of a row.
    pub(crate) fn labels(&self, row: u32) -> Labels {
        Labels::from_sorted(
            self.row_pairs(row)
                .iter()
                .map(|&(c, v)| {
                    let column = &self.columns[c as usize];
                    Label::new(column.name.as_ref(), column.values[v as usize].as_ref())
                })
                .collect(),
        )
    }

    fn column_index(&self, name: &str) -> Option<u32> {
        self.columns
            .binary_search_by(|c| c.name.as_ref().cmp(name))
            .ok()
            .map(|i| i as u32)
    }

    /// Rows (ascending) of the series that pass every matcher and have a sample in
    /// `[start, end]` by their `min_time`/`max_time`.
    pub(crate) fn select(&self, matchers: &[LabelMatcher], start: i64, end: i64) -> Vec<u32> {
        let mut resolved = Vec::with_capacity(matchers.len());
        let mut by_name: Option<usize> = None;
        for matcher in matchers {
            let empty = matcher.matches_empty();
            let Some(column) = self.column_index(&matcher.name) else {
                // No series of the block has the label: all pass or none does.
                if empty {
                    continue;
                }
                return Vec::new();
            };
            let values: Vec<bool> = self.columns[column as usize]
                .values
                .iter()
                .map(|v| matcher.matches(v))
                .collect();
            if !empty && !values.contains(&true) {
                return Vec::new();
            }
            if matcher.name == METRIC_NAME && !empty {
                by_name = Some(resolved.len());
            }
            resolved.push(ResolvedMatcher {
                column,
                values,
                empty,
            });
        }
        let candidates: Vec<Range<u32>> = match (by_name, &self.name_ranges) {
            (Some(m), Some(ranges)) => {
                let mut picked: Vec<Range<u32>> = ranges
                    .iter()
                    .zip(&resolved[m].values)
                    .filter(|(_, &pass)| pass)
                    .map(|(r, _)| r.clone())
                    .collect();
                picked.sort_by_key(|r| r.start);
                picked
            }
            _ => std::iter::once(0..self.len() as u32).collect(),
        };
        let mut rows = Vec::new();
        for row in candidates.into_iter().flatten() {
            let i = row as usize;
            if self.max_time[i] < start || self.min_time[i] > end {
                continue;
            }
            let pass = resolved
                .iter()
                .all(|m| match self.value_index(row, m.column) {
                    Some(v) => m.values[v as usize],
                    None => m.empty,
                });
            if pass {
                rows.push(row);
            }
        }
        rows
    }

    /// Label names carried by `rows`.
    pub(crate) fn label_names(&self, rows: &[u32], into: &mut std::collections::BTreeSet<String>) {
        let mut seen = vec![false; self.columns.len()];
        for &row in rows {
            for &(c, _) in self.row_pairs(row) {
                seen[c as usize] = true;
            }
        }
        for (column, seen) in self.columns.iter().zip(seen) {
            if seen && !into.contains(column.name.as_ref()) {
                into.insert(column.name.to_string());
            }
        }
    }

    /// Values of label `name` carried by `rows`.
    pub(crate) fn label_values(
        &self,
        name: &str,
        rows: &[u32],
        into: &mut std::collections::BTreeSet<String>,
    ) {
        let Some(column) = self.column_index(name) else {
            return;
        };
        let values = &self.columns[column as usize].values;
        let mut seen = vec![false; values.len()];
        for &row in rows {
            if let Some(v) = self.value_index(row, column) {
                seen[v as usize] = true;
            }
        }
        for (value, seen) in values.iter().zip(seen) {
            if seen && !into.contains(value.as_ref()) {
                into.insert(value.to_string());
            }
        }
    }

    /// Approximate heap bytes (strings counted once per block).
    pub(crate) fn heap_bytes(&self) -> usize {
        let strings: usize = self
            .columns
            .iter()
            .map(|c| c.name.len() + c.values.iter().map(|v| v.len() + 32).sum::<usize>())
            .sum();
        strings + self.offsets.len() * 4 + self.pairs.len() * 8 + self.len() * (4 + 2 + 4 + 8 + 8)
    }
}

/// Column `name` of `batch` as `T`, cast if a reader hands it over in another type.
fn primitive<T: ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
) -> Result<PrimitiveArray<T>, TableError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| format!("{SERIES_FILE}: no column {name}"))?;
    let array = cast(array, &T::DATA_TYPE)
        .map_err(|e| format!("{SERIES_FILE}: converting column {name}: {e}"))?;
    Ok(array.as_primitive::<T>().clone())
}
