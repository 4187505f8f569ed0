//! DataFusion scans of `timestamps.parquet` and `samples.parquet`, and the reconstruction of
//! samples from their rows, bit-exactly as `strata_shared::block::decode_block` does.
//!
//! Each scan is a `DataSourceExec` over one file built directly (no SQL, no listing: the
//! file's size and modification time come from the sync's listing), with a `series_id` or
//! `ts_group` range predicate that DataFusion uses to skip row groups by their statistics and
//! pages by the page index. The predicate only prunes: rows of other series in the pages
//! that remain are skipped here, where the rows are walked anyway.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore};
use strata_shared::block::columns::{
    SCRAPE, SERIES_ID, TIMESTAMP, TS_GROUP, VALUE_FLOAT, VALUE_INT_DELTA,
};
use strata_shared::block::{unscaled_value, SeriesSamples, SAMPLES_FILE, TIMESTAMPS_FILE};

use crate::table::SeriesTable;

/// Rows per record batch: a batch of samples is ~200 KB decoded.
const BATCH_ROWS: usize = 8192;
/// Read this much of a file's tail at once for its footer (and usually its page index), so
/// that opening a file not in the metadata cache costs one request, not two or three.
const FOOTER_HINT: usize = 16 * 1024;
/// At most this many `BETWEEN` ranges in a predicate; closer ranges are merged beyond it
/// (pruning stays correct, only coarser, and a long OR costs planning time per page).
const MAX_PREDICATE_RANGES: usize = 32;
/// The scheme and host the gateway's object store is registered under in DataFusion.
const STORE_URL: &str = "strata://blocks/";

/// Why a scan failed: object storage (retryable) or the data (a corrupt block).
#[derive(Debug)]
pub(crate) enum ScanError {
    Storage(String),
    Corrupt(String),
}

/// What DataFusion reports about one file scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanStats {
    pub(crate) bytes_scanned: usize,
    pub(crate) row_groups_pruned: usize,
    pub(crate) row_groups_matched: usize,
    pub(crate) pages_pruned: usize,
    pub(crate) pages_matched: usize,
    pub(crate) rows_pruned: usize,
}

/// Builds and runs DataFusion scans over the gateway's object store, sharing one runtime and
/// its Parquet metadata cache (footers and page indexes) between all queries.
pub(crate) struct Scanner {
    session: SessionContext,
    url: ObjectStoreUrl,
    factory: Arc<CachedParquetFileReaderFactory>,
    timestamps_schema: SchemaRef,
    samples_schema: SchemaRef,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").field("url", &self.url).finish()
    }
}

impl Scanner {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        metadata_cache_bytes: usize,
    ) -> Result<Self, String> {
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(
                CacheManagerConfig::default().with_metadata_cache_limit(metadata_cache_bytes),
            )
            .build_arc()
            .map_err(|e| format!("building the DataFusion runtime: {e}"))?;
        let url = ObjectStoreUrl::parse(STORE_URL).map_err(|e| e.to_string())?;
        runtime.register_object_store(url.as_ref(), store.clone());
        let factory = Arc::new(CachedParquetFileReaderFactory::new(
            store,
            runtime.cache_manager.get_file_metadata_cache(),
        ));
        let config = SessionConfig::new().with_batch_size(BATCH_ROWS);
        let session = SessionContext::new_with_config_rt(config, runtime);
        let timestamps_schema = Arc::new(Schema::new(vec![
            Field::new(TS_GROUP, DataType::Int32, false),
            Field::new(SCRAPE, DataType::Int32, false),
            Field::new(TIMESTAMP, DataType::Int64, false),
        ]));
        let samples_schema = Arc::new(Schema::new(vec![
            Field::new(SERIES_ID, DataType::Int32, false),
            Field::new(SCRAPE, DataType::Int32, false),
            Field::new(VALUE_INT_DELTA, DataType::Int64, true),
            Field::new(VALUE_FLOAT, DataType::Float64, true),
        ]));
        Ok(Self {
            session,
            url,
            factory,
            timestamps_schema,
            samples_schema,
        })
    }

    fn task_context(&self) -> Arc<TaskContext> {
        self.session.task_ctx()
    }

    /// A scan of `file` whose row groups and pages are pruned to rows where `column` lies in
    /// one of `ranges` (inclusive).
    fn plan(
        &self,
        file: &ObjectMeta,
        schema: &SchemaRef,
        column: &str,
        ranges: &[(i32, i32)],
    ) -> Result<Arc<DataSourceExec>, ScanError> {
        let predicate = range_predicate(schema, column, ranges)?;
        let source = ParquetSource::new(schema.clone())
            .with_predicate(predicate)
            .with_enable_page_index(true)
            .with_pushdown_filters(false)
            .with_metadata_size_hint(FOOTER_HINT)
            .with_parquet_file_reader_factory(self.factory.clone());
        let config = FileScanConfigBuilder::new(self.url.clone(), Arc::new(source))
            .with_file(PartitionedFile::new_from_meta(file.clone()))
            .with_batch_size(Some(BATCH_ROWS))
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }

    fn execute(
        &self,
        plan: &Arc<DataSourceExec>,
        file: &str,
    ) -> Result<SendableRecordBatchStream, ScanError> {
        plan.execute(0, self.task_context())
            .map_err(|e| ScanError::Storage(format!("{file}: starting the scan: {e}")))
    }

    /// The timestamps of `groups` (ascending ids) within `[start, end]`.
    pub(crate) async fn timestamps(
        &self,
        file: &ObjectMeta,
        groups: &[u32],
        (start, end): (i64, i64),
    ) -> Result<(HashMap<u32, GroupTimes>, ScanStats), ScanError> {
        let ids: Vec<i32> = groups.iter().map(|&g| g as i32).collect();
        let ranges = id_ranges(&ids, MAX_PREDICATE_RANGES);
        let plan = self.plan(file, &self.timestamps_schema, TS_GROUP, &ranges)?;
        let mut stream = self.execute(&plan, TIMESTAMPS_FILE)?;
        let mut out: HashMap<u32, GroupTimes> = HashMap::with_capacity(groups.len());
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| scan_error(TIMESTAMPS_FILE, e))?;
            let group_ids = primitive::<Int32Type>(TIMESTAMPS_FILE, &batch, TS_GROUP)?;
            let scrapes = primitive::<Int32Type>(TIMESTAMPS_FILE, &batch, SCRAPE)?;
            let times = primitive::<Int64Type>(TIMESTAMPS_FILE, &batch, TIMESTAMP)?;
            for row in 0..batch.num_rows() {
                let group = group_ids.value(row);
                if group < 0 || groups.binary_search(&(group as u32)).is_err() {
                    continue;
                }
                let (scrape, timestamp) = (scrapes.value(row), times.value(row));
                let times = out.entry(group as u32).or_default();
                let in_order = u32::try_from(scrape).ok() == Some(times.len)
                    && times.last.is_none_or(|previous| previous < timestamp);
                if !in_order {
                    return Err(ScanError::Corrupt(format!(
                        "{TIMESTAMPS_FILE}: row (ts_group {group}, scrape {scrape}, timestamp \
                         {timestamp}) out of order"
                    )));
                }
                times.push(timestamp, start, end);
            }
        }
        Ok((out, plan_stats(plan.as_ref())))
    }

    /// Starts the scan of the samples of `rows` (ascending series ids).
    pub(crate) fn samples(
        &self,
        file: &ObjectMeta,
        rows: &[u32],
    ) -> Result<(SendableRecordBatchStream, Arc<DataSourceExec>), ScanError> {
        let ids: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
        let ranges = id_ranges(&ids, MAX_PREDICATE_RANGES);
        let plan = self.plan(file, &self.samples_schema, SERIES_ID, &ranges)?;
        let stream = self.execute(&plan, SAMPLES_FILE)?;
        Ok((stream, plan))
    }
}

/// One timestamp group, reduced to what a query needs: how many scrapes it has and the
/// timestamps of those in the query's range (consecutive, since timestamps increase).
#[derive(Debug, Default)]
pub(crate) struct GroupTimes {
    len: u32,
    last: Option<i64>,
    /// Scrape position of `times[0]`.
    first: u32,
    times: Vec<i64>,
}

impl GroupTimes {
    fn push(&mut self, timestamp: i64, start: i64, end: i64) {
        if timestamp >= start && timestamp <= end {
            if self.times.is_empty() {
                self.first = self.len;
            }
            self.times.push(timestamp);
        }
        self.len += 1;
        self.last = Some(timestamp);
    }

    /// Bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.times.len() * 8
    }

    /// `None` if the group has no such scrape, `Some(None)` if its timestamp is outside the
    /// range.
    fn get(&self, scrape: i32) -> Option<Option<i64>> {
        let scrape = u32::try_from(scrape).ok().filter(|&s| s < self.len)?;
        Some(
            scrape
                .checked_sub(self.first)
                .and_then(|i| self.times.get(i as usize))
                .copied(),
        )
    }
}

pub(crate) fn scan_error(file: &str, e: datafusion::error::DataFusionError) -> ScanError {
    // DataFusion wraps object store and Parquet errors alike; an object store error is worth
    // a retry, anything else means the file is not what the meta says.
    let text = format!("{file}: {e}");
    match e.find_root() {
        datafusion::error::DataFusionError::ObjectStore(_) => ScanError::Storage(text),
        datafusion::error::DataFusionError::External(inner)
            if inner.downcast_ref::<object_store::Error>().is_some() =>
        {
            ScanError::Storage(text)
        }
        _ if text.contains("Object Store error") || text.contains("Generic ") => {
            ScanError::Storage(text)
        }
        _ => ScanError::Corrupt(text),
    }
}

/// Sums the pruning and I/O metrics of a finished scan.
pub(crate) fn plan_stats(plan: &dyn ExecutionPlan) -> ScanStats {
    let mut stats = ScanStats::default();
    let Some(metrics) = plan.metrics() else {
        return stats;
    };
    for metric in metrics.iter() {
        match metric.value() {
            MetricValue::Count { name, count } if name.as_ref() == "bytes_scanned" => {
                stats.bytes_scanned += count.value();
            }
            MetricValue::PruningMetrics {
                name,
                pruning_metrics,
            } => match name.as_ref() {
                "row_groups_pruned_statistics" => {
                    stats.row_groups_pruned += pruning_metrics.pruned();
                    stats.row_groups_matched += pruning_metrics.matched();
                }
                "page_index_pages_pruned" => {
                    stats.pages_pruned += pruning_metrics.pruned();
                    stats.pages_matched += pruning_metrics.matched();
                }
                "page_index_rows_pruned" => stats.rows_pruned += pruning_metrics.pruned(),
                _ => {}
            },
            _ => {}
        }
    }
    stats
}

/// `column` in any of `ranges`, as a DataFusion physical expression.
fn range_predicate(
    schema: &SchemaRef,
    column: &str,
    ranges: &[(i32, i32)],
) -> Result<Arc<dyn PhysicalExpr>, ScanError> {
    let index = schema
        .index_of(column)
        .map_err(|e| ScanError::Corrupt(e.to_string()))?;
    let col: Arc<dyn PhysicalExpr> = Arc::new(Column::new(column, index));
    let lit =
        |v: i32| -> Arc<dyn PhysicalExpr> { Arc::new(Literal::new(ScalarValue::Int32(Some(v)))) };
    let binary = |l: Arc<dyn PhysicalExpr>,
                  op,
                  r: Arc<dyn PhysicalExpr>|
     -> Arc<dyn PhysicalExpr> { Arc::new(BinaryExpr::new(l, op, r)) };
    let mut predicate: Option<Arc<dyn PhysicalExpr>> = None;
    for &(lo, hi) in ranges {
        let term = if lo == hi {
            binary(col.clone(), Operator::Eq, lit(lo))
        } else {
            binary(
                binary(col.clone(), Operator::GtEq, lit(lo)),
                Operator::And,
                binary(col.clone(), Operator::LtEq, lit(hi)),
            )
        };
        predicate = Some(match predicate {
            Some(p) => binary(p, Operator::Or, term),
            None => term,
        });
    }
    // No ranges: nothing wanted (callers skip such scans; keep the predicate false).
    Ok(predicate.unwrap_or_else(|| Arc::new(Literal::new(ScalarValue::Boolean(Some(false))))))
}

/// The runs of consecutive values in `ids` (ascending), merged across the smallest gaps until
/// at most `max` remain.
pub(crate) fn id_ranges(ids: &[i32], max: usize) -> Vec<(i32, i32)> {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, hi)) if id == hi.saturating_add(1) || id == *hi => *hi = id,
            _ => runs.push((id, id)),
        }
    }
    if runs.len() <= max.max(1) {
        return runs;
    }
    // Keep the widest max-1 gaps as separators.
    let mut gaps: Vec<(i64, usize)> = runs
        .windows(2)
        .enumerate()
        .map(|(i, w)| (i64::from(w[1].0) - i64::from(w[0].1), i))
        .collect();
    gaps.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut split = vec![false; runs.len()];
    for &(_, i) in gaps.iter().take(max.max(1) - 1) {
        split[i] = true;
    }
    let mut merged: Vec<(i32, i32)> = Vec::new();
    let mut current = runs[0];
    for (i, run) in runs.iter().enumerate().skip(1) {
        if split[i - 1] {
            merged.push(current);
            current = *run;
        } else {
            current.1 = run.1;
        }
    }
    merged.push(current);
    merged
}

fn primitive<T: ArrowPrimitiveType>(
    file: &str,
    batch: &RecordBatch,
    name: &str,
) -> Result<PrimitiveArray<T>, ScanError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| ScanError::Corrupt(format!("{file}: no column {name}")))?;
    if let Some(array) = array.as_primitive_opt::<T>() {
        return Ok(array.clone());
    }
    let array = cast(array, &T::DATA_TYPE)
        .map_err(|e| ScanError::Corrupt(format!("{file}: converting column {name}: {e}")))?;
    Ok(array.as_primitive::<T>().clone())
}

/// Turns the rows of `samples.parquet` (sorted by series, then scrape) into series, one at a
/// time: a series is complete when the next series' rows begin.
#[derive(Debug)]
pub(crate) struct Assembler<'a> {
    table: &'a SeriesTable,
    /// Wanted series ids, ascending.
    rows: &'a [u32],
    groups: &'a HashMap<u32, GroupTimes>,
    block: &'a str,
    /// Index in `rows` of the next wanted series not finished yet.
    cursor: usize,
    current: Option<Current>,
    previous_id: i32,
    finished: usize,
}

#[derive(Debug)]
struct Current {
    id: u32,
    series: SeriesSamples,
    integer: i64,
    previous_scrape: i32,
    rows_seen: u32,
}

impl<'a> Assembler<'a> {
    pub(crate) fn new(
        table: &'a SeriesTable,
        rows: &'a [u32],
        groups: &'a HashMap<u32, GroupTimes>,
        block: &'a str,
    ) -> Self {
        Self {
            table,
            rows,
            groups,
            block,
            cursor: 0,
            current: None,
            previous_id: -1,
            finished: 0,
        }
    }

    fn corrupt(&self, id: i32, scrape: i32, reason: &str) -> ScanError {
        ScanError::Corrupt(format!(
            "block {}: {SAMPLES_FILE}: row (series_id {id}, scrape {scrape}): {reason}",
            self.block
        ))
    }

    /// Walks one batch; completed series with samples in range are pushed to `out`. Returns
    /// how many samples the batch added to series (finished or in progress).
    pub(crate) fn push_batch(
        &mut self,
        batch: &RecordBatch,
        out: &mut Vec<SeriesSamples>,
    ) -> Result<usize, ScanError> {
        let ids = primitive::<Int32Type>(SAMPLES_FILE, batch, SERIES_ID)?;
        let scrapes = primitive::<Int32Type>(SAMPLES_FILE, batch, SCRAPE)?;
        let ints = primitive::<Int64Type>(SAMPLES_FILE, batch, VALUE_INT_DELTA)?;
        let floats = primitive::<Float64Type>(SAMPLES_FILE, batch, VALUE_FLOAT)?;
        if ids.null_count() > 0 || scrapes.null_count() > 0 {
            return Err(self.corrupt(-1, -1, "null series_id or scrape"));
        }
        let id_values = ids.values();
        let mut added = 0usize;
        let mut row = 0usize;
        let n = batch.num_rows();
        while row < n {
            let id = id_values[row];
            let scrape = scrapes.value(row);
            if id < self.previous_id {
                return Err(self.corrupt(id, scrape, "not sorted by series_id"));
            }
            self.previous_id = id;
            if self.current.as_ref().is_some_and(|c| c.id as i32 != id) {
                self.finish(out)?;
            }
            if self.current.is_none() {
                // Skip to the next wanted series.
                if let Some(&skipped) = self
                    .rows
                    .get(self.cursor)
                    .filter(|&&r| (r as i64) < id as i64)
                {
                    return Err(self.missing(skipped));
                }
                let Some(&next) = self.rows.get(self.cursor) else {
                    break;
                };
                if next as i32 != id {
                    row += id_values[row..].partition_point(|&x| x < next as i32);
                    continue;
                }
                let capacity = (self.table.num_samples[next as usize] as usize).min(64 * 1024);
                self.current = Some(Current {
                    id: next,
                    series: SeriesSamples {
                        labels: self.table.labels(next),
                        timestamps: Vec::with_capacity(capacity),
                        values: Vec::with_capacity(capacity),
                    },
                    integer: 0,
                    previous_scrape: -1,
                    rows_seen: 0,
                });
            }
            let table = self.table;
            let int_valid = ints.is_valid(row);
            let float_valid = floats.is_valid(row);
            let Some(current) = self.current.as_mut() else {
                break;
            };
            if scrape <= current.previous_scrape {
                return Err(self.corrupt(id, scrape, "not sorted by scrape"));
            }
            current.previous_scrape = scrape;
            current.rows_seen += 1;
            let index = current.id as usize;
            let timestamp = self
                .groups
                .get(&table.ts_group[index])
                .and_then(|g| g.get(scrape));
            let value = match (int_valid, float_valid) {
                (true, false) => {
                    let Some(sum) = current.integer.checked_add(ints.value(row)) else {
                        return Err(self.corrupt(id, scrape, "value_int_delta overflows"));
                    };
                    current.integer = sum;
                    table.scale[index].and_then(|scale| unscaled_value(sum, scale))
                }
                (false, true) => Some(floats.value(row)),
                _ => None,
            };
            let (Some(timestamp), Some(value)) = (timestamp, value) else {
                return Err(self.corrupt(
                    id,
                    scrape,
                    "no such timestamp, or not exactly one value column, or an integer in a \
                     series without a scale",
                ));
            };
            if let Some(timestamp) = timestamp {
                current.series.timestamps.push(timestamp);
                current.series.values.push(value);
                added += 1;
            }
            row += 1;
        }
        Ok(added)
    }

    fn missing(&self, id: u32) -> ScanError {
        ScanError::Corrupt(format!(
            "block {}: {SAMPLES_FILE}: no samples for series_id {id}, which {} lists",
            self.block,
            strata_shared::block::SERIES_FILE
        ))
    }

    /// Closes the series in progress.
    fn finish(&mut self, out: &mut Vec<SeriesSamples>) -> Result<(), ScanError> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let listed = self.table.num_samples[current.id as usize];
        if current.rows_seen != listed {
            return Err(ScanError::Corrupt(format!(
                "block {}: series_id {} has {} rows in {SAMPLES_FILE}, {} says {listed}",
                self.block,
                current.id,
                current.rows_seen,
                strata_shared::block::SERIES_FILE
            )));
        }
        self.cursor += 1;
        self.finished += 1;
        if !current.series.timestamps.is_empty() {
            out.push(current.series);
        }
        Ok(())
    }

    /// Closes the last series after the scan ends and checks every wanted series was seen.
    pub(crate) fn end(&mut self, out: &mut Vec<SeriesSamples>) -> Result<(), ScanError> {
        self.finish(out)?;
        match self.rows.get(self.cursor) {
            Some(&id) => Err(self.missing(id)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges_merge_smallest_gaps() {
        assert_eq!(id_ranges(&[], 4), vec![]);
        assert_eq!(
            id_ranges(&[1, 2, 3, 7, 8, 20], 4),
            vec![(1, 3), (7, 8), (20, 20)]
        );
        assert_eq!(id_ranges(&[1, 2, 3, 7, 8, 20], 2), vec![(1, 8), (20, 20)]);
        assert_eq!(id_ranges(&[1, 5, 6, 30, 31, 32], 1), vec![(1, 32)]);
    }
}
