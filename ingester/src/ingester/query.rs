//! The ingester answers queries for what it holds: the head, samples being cut, blocks waiting
//! to ship (`shipping/`) and shipped blocks kept for `-blocks-storage.tsdb.retention-period`
//! (`shipped/`).
//!
//! Samples move head → cut in progress → `shipping/` → `shipped/` → deleted, and a query reads
//! them in that same order (head and cut under one lock, the others by atomic renames), so a
//! sample moving during a query is seen at least once; the querier's merge drops the repeats.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::IntGauge;

use strata_shared::block::{
    decode_wanted, BlockData, BlockMeta, SeriesSamples, SeriesTable, META_FILE, SAMPLES_FILE,
    SERIES_FILE, TIMESTAMPS_FILE,
};
use strata_shared::labels::Labels;
use strata_shared::postings::Postings;
use strata_shared::query::{matches_all, QueryError, SelectRequest, SeriesSource, SeriesStream};
use tracing::Instrument;

use super::head::CutSeries;
use super::Ingester;

/// A local block whose range overlaps a request.
#[derive(Debug)]
struct LocalBlock {
    dir: PathBuf,
    ulid: String,
}

/// Decoded series tables of local blocks, by (tenant, block ULID): blocks are immutable, and
/// queries of recent data read the same few blocks again and again, so each series table is
/// read once (it is what every select filters and every metadata call answers from). The
/// entries of a tenant are pruned to the blocks its latest scan found, so a block deleted
/// after its retention leaves the cache at the tenant's next query, and the cache is bounded
/// by `-blocks-storage.tsdb.series-table-cache-max-bytes`: beyond it the least recently used
/// blocks are dropped (a small map scanned on insert; there are only as many entries as
/// local blocks, so no cache crate is needed).
#[derive(Debug)]
pub struct SeriesTableCache {
    tables: Mutex<Tables>,
    max_bytes: usize,
    /// `strata_ingester_series_table_cache_bytes`.
    bytes: IntGauge,
}

type TableKey = (String, String);

#[derive(Debug, Default)]
struct Tables {
    entries: HashMap<TableKey, (Arc<CachedTable>, u64)>,
    /// Bumped on every use; an entry's number says when it was last used.
    clock: u64,
}

/// A local block's series table and its postings (ids are positions in the table).
#[derive(Debug)]
struct CachedTable {
    table: SeriesTable,
    postings: Postings,
    /// Bytes of `table` and `postings`.
    heap_bytes: usize,
    /// The timestamp groups and the samples file's footer and page index, read by the
    /// first select that needs samples (metadata calls never do).
    data: OnceLock<Arc<BlockData>>,
}

impl CachedTable {
    fn new(table: SeriesTable) -> Self {
        let mut postings = Postings::new();
        for (index, (labels, _, _)) in table.series().enumerate() {
            if let Ok(id) = u32::try_from(index) {
                postings.add(id, labels);
            }
        }
        let heap_bytes = table.heap_bytes() + postings.heap_bytes();
        Self {
            table,
            postings,
            heap_bytes,
            data: OnceLock::new(),
        }
    }

    /// Whether series `index` passes the request: the postings' candidates first, then the
    /// matchers and the time range.
    fn selector<'a>(
        &self,
        request: &'a SelectRequest,
    ) -> impl Fn(usize, &Labels, i64, i64) -> bool + 'a {
        let candidates = self.postings.candidates(&request.matchers);
        move |index, labels, first, last| {
            candidates
                .as_ref()
                .is_none_or(|c| u32::try_from(index).is_ok_and(|id| c.contains(id)))
                && in_request(request, labels, first, last)
        }
    }

    /// Label names (`name` None) or values of label `name` of the series passing the
    /// request, sorted, from the postings (about one check per label value).
    fn label_strings(&self, request: &SelectRequest, name: Option<&str>) -> Vec<String> {
        let candidates = self.postings.candidates(&request.matchers);
        let keep = |id: u32| {
            self.table
                .get(id as usize)
                .is_some_and(|(labels, first, last)| in_request(request, labels, first, last))
        };
        let labels_of = |id: u32| self.table.get(id as usize).map(|(labels, _, _)| labels);
        match name {
            None => self
                .postings
                .label_names(candidates.as_ref(), keep, labels_of),
            Some(name) => self
                .postings
                .label_values(name, candidates.as_ref(), keep, labels_of),
        }
    }
}

/// A series with these labels and first and last sample timestamps passes the request.
fn in_request(request: &SelectRequest, labels: &Labels, first: i64, last: i64) -> bool {
    first <= request.end_ms && last >= request.start_ms && matches_all(&request.matchers, labels)
}

impl SeriesTableCache {
    pub fn new(max_bytes: usize, bytes: IntGauge) -> Self {
        Self {
            tables: Mutex::default(),
            max_bytes,
            bytes,
        }
    }

    /// Drops the least recently used entries until the total fits (the most recent one
    /// always stays, so a query never reads a table twice), and publishes the total.
    fn fit(&self, tables: &mut Tables) {
        let size = |t: &CachedTable| t.heap_bytes + t.data.get().map_or(0, |d| d.heap_bytes());
        let mut total: usize = tables.entries.values().map(|(t, _)| size(t)).sum();
        while total > self.max_bytes && tables.entries.len() > 1 {
            let oldest = tables
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            let Some(key) = oldest else { break };
            if let Some((table, _)) = tables.entries.remove(&key) {
                total -= size(&table);
            }
        }
        if self.max_bytes == 0 {
            tables.entries.clear();
            total = 0;
        }
        self.bytes.set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The block's series table, read on first use; `None` when the block was moved or
    /// deleted before it could be read.
    fn get(
        &self,
        tenant: &str,
        block: &LocalBlock,
    ) -> Result<Option<Arc<CachedTable>>, QueryError> {
        let key = (tenant.to_string(), block.ulid.clone());
        {
            let mut tables = self.tables();
            tables.clock += 1;
            let now = tables.clock;
            if let Some((table, used)) = tables.entries.get_mut(&key) {
                *used = now;
                return Ok(Some(table.clone()));
            }
        }
        let Some(file) = open_file(&block.dir, SERIES_FILE)? else {
            return Ok(None);
        };
        let table = SeriesTable::read(file).map_err(|e| block_error(&block.dir, e))?;
        let table = Arc::new(CachedTable::new(table));
        let mut tables = self.tables();
        tables.clock += 1;
        let now = tables.clock;
        tables.entries.insert(key, (table.clone(), now));
        self.fit(&mut tables);
        Ok(Some(table))
    }

    /// The block's [`BlockData`], read on first use; `None` when the block was moved or
    /// deleted before it could be read.
    fn data(
        &self,
        block: &LocalBlock,
        cached: &CachedTable,
    ) -> Result<Option<Arc<BlockData>>, QueryError> {
        if let Some(data) = cached.data.get() {
            return Ok(Some(data.clone()));
        }
        let (Some(timestamps), Some(samples)) = (
            open_file(&block.dir, TIMESTAMPS_FILE)?,
            open_file(&block.dir, SAMPLES_FILE)?,
        ) else {
            return Ok(None);
        };
        let data = BlockData::read(timestamps, &samples).map_err(|e| block_error(&block.dir, e))?;
        let data = cached.data.get_or_init(|| Arc::new(data)).clone();
        self.fit(&mut self.tables());
        Ok(Some(data))
    }

    /// Forgets the tenant's blocks that are not in `present`.
    fn retain(&self, tenant: &str, present: &HashSet<String>) {
        let mut tables = self.tables();
        let before = tables.entries.len();
        tables
            .entries
            .retain(|(t, ulid), _| t != tenant || present.contains(ulid));
        if tables.entries.len() != before {
            self.fit(&mut tables);
        }
    }
}

impl Ingester {
    /// Head samples and samples of a cut in progress, read under the tenant's lock.
    async fn select_in_memory(&self, request: &SelectRequest) -> Vec<SeriesSamples> {
        let Some(tenant) = self.tenants.read().await.get(&request.tenant).cloned() else {
            return Vec::new();
        };
        let tenant = tenant.lock().await;
        let (start, end) = (request.start_ms, request.end_ms);
        let mut out = tenant.head.select(&request.matchers, start, end);
        for series in tenant.cutting.iter().flat_map(|part| part.iter()) {
            if !matches_all(&request.matchers, &series.labels) {
                continue;
            }
            let from = series.timestamps.partition_point(|t| *t < start);
            let to = series.timestamps.partition_point(|t| *t <= end);
            if from < to {
                out.push(SeriesSamples {
                    labels: series.labels.clone(),
                    timestamps: series.timestamps[from..to].to_vec(),
                    values: series.values[from..to].to_vec(),
                });
            }
        }
        out
    }

    /// Local blocks of the tenant overlapping the request's range, `shipping/` first.
    fn local_blocks(&self, request: &SelectRequest) -> Vec<LocalBlock> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for base in ["shipping", "shipped"] {
            let tenant_dir = self.local_dir().join(base).join(&request.tenant);
            let Ok(entries) = std::fs::read_dir(&tenant_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.path();
                let Some(meta) = read_meta(&dir) else {
                    continue;
                };
                // minTime inclusive, maxTime exclusive.
                if meta.min_time > request.end_ms || meta.max_time <= request.start_ms {
                    continue;
                }
                if seen.insert(meta.ulid.clone()) {
                    out.push(LocalBlock {
                        dir,
                        ulid: meta.ulid,
                    });
                }
            }
        }
        // Blocks outside the range are still on disk: keep their tables too.
        let mut present = seen;
        for base in ["shipping", "shipped"] {
            let tenant_dir = self.local_dir().join(base).join(&request.tenant);
            if let Ok(entries) = std::fs::read_dir(&tenant_dir) {
                present.extend(
                    entries
                        .flatten()
                        .filter_map(|e| e.file_name().into_string().ok()),
                );
            }
        }
        self.series_tables.retain(&request.tenant, &present);
        out
    }
}

fn read_meta(dir: &Path) -> Option<BlockMeta> {
    let bytes = std::fs::read(dir.join(META_FILE)).ok()?;
    match BlockMeta::from_json_bytes(&bytes) {
        Ok(meta) => Some(meta),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "unreadable meta.json in a local block; skipping it");
            None
        }
    }
}

fn block_error(dir: &Path, e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(format!("decoding local block {}: {e}", dir.display()))
}

/// Opens a file of a local block; `None` when the block was moved or deleted meanwhile (a
/// later directory of the scan has it, or object storage does). An open file stays readable
/// when the block is renamed or deleted under it.
fn open_file(dir: &Path, name: &str) -> Result<Option<File>, QueryError> {
    match File::open(dir.join(name)) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(QueryError::Internal(format!(
            "reading local block {}/{name}: {e}",
            dir.display()
        ))),
    }
}

/// The samples of matching series in a local block: the series table first, then only the
/// pages of `samples.parquet` that hold matching series (nothing more when none matches).
fn select_block(
    block: &LocalBlock,
    request: &SelectRequest,
    tables: &SeriesTableCache,
) -> Result<Vec<SeriesSamples>, QueryError> {
    let dir = &block.dir;
    let Some(table) = tables.get(&request.tenant, block)? else {
        return Ok(Vec::new());
    };
    let wanted = table.table.wanted(table.selector(request));
    // Nothing matches: neither data file is opened.
    if !wanted.contains(&true) {
        return Ok(Vec::new());
    }
    let (Some(data), Some(samples)) = (tables.data(block, &table)?, open_file(dir, SAMPLES_FILE)?)
    else {
        return Ok(Vec::new());
    };
    let (start, end) = (request.start_ms, request.end_ms);
    let series =
        decode_wanted(&table.table, &data, samples, &wanted).map_err(|e| block_error(dir, e))?;
    Ok(series
        .into_iter()
        .filter_map(|s| {
            let from = s.timestamps.partition_point(|t| *t < start);
            let to = s.timestamps.partition_point(|t| *t <= end);
            (from < to).then(|| SeriesSamples {
                labels: s.labels,
                timestamps: s.timestamps[from..to].to_vec(),
                values: s.values[from..to].to_vec(),
            })
        })
        .collect())
}

/// Label sets of matching series in a local block with samples in the range, from its series
/// table alone.
fn block_labels(
    block: &LocalBlock,
    request: &SelectRequest,
    tables: &SeriesTableCache,
) -> Result<Vec<Labels>, QueryError> {
    let Some(table) = tables.get(&request.tenant, block)? else {
        return Ok(Vec::new());
    };
    let selected = table.selector(request);
    Ok(table
        .table
        .series()
        .enumerate()
        .filter(|(index, (labels, first, last))| selected(*index, labels, *first, *last))
        .map(|(_, (labels, _, _))| labels.clone())
        .collect())
}

/// A series of a cut in progress passes the request.
fn cut_series_in_request(series: &CutSeries, request: &SelectRequest) -> bool {
    match (series.timestamps.first(), series.timestamps.last()) {
        (Some(first), Some(last)) => in_request(request, &series.labels, *first, *last),
        _ => false,
    }
}

impl Ingester {
    /// Label names (`name` None) or the values of label `name` of every matching series the
    /// ingester holds in the range, sorted and unique: from the postings of the head and of
    /// the local blocks' series tables, without collecting label sets.
    async fn label_strings(
        &self,
        request: &SelectRequest,
        name: Option<&str>,
    ) -> Result<Vec<String>, QueryError> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        let of_series = |labels: &Labels| -> Vec<String> {
            match name {
                None => labels.iter().map(|l| l.name.clone()).collect(),
                Some(name) => labels
                    .get(name)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
                    .into_iter()
                    .collect(),
            }
        };
        if let Some(tenant) = self.tenants.read().await.get(&request.tenant).cloned() {
            let tenant = tenant.lock().await;
            let (matchers, start, end) = (&request.matchers, request.start_ms, request.end_ms);
            out.extend(match name {
                None => tenant.head.label_names(matchers, start, end),
                Some(name) => tenant.head.label_values(name, matchers, start, end),
            });
            for series in tenant.cutting.iter().flat_map(|part| part.iter()) {
                if cut_series_in_request(series, request) {
                    out.extend(of_series(&series.labels));
                }
            }
        }
        let blocks = self.local_blocks(request);
        let request = request.clone();
        let tables = self.series_tables.clone();
        let name = name.map(str::to_string);
        let from_blocks = tokio::task::spawn_blocking(move || {
            let mut strings = Vec::new();
            for block in &blocks {
                if let Some(table) = tables.get(&request.tenant, block)? {
                    strings.extend(table.label_strings(&request, name.as_deref()));
                }
            }
            Ok::<_, QueryError>(strings)
        })
        .await
        .map_err(|e| QueryError::Internal(format!("local block reader task failed: {e}")))??;
        out.extend(from_blocks);
        Ok(out.into_iter().collect())
    }

    /// Label sets of every matching series the ingester holds in the range (may repeat).
    async fn matching_label_sets(
        &self,
        request: &SelectRequest,
    ) -> Result<Vec<Labels>, QueryError> {
        let mut out: Vec<Labels> = Vec::new();
        if let Some(tenant) = self.tenants.read().await.get(&request.tenant).cloned() {
            let tenant = tenant.lock().await;
            out.extend(
                tenant
                    .head
                    .matching_labels(&request.matchers, request.start_ms, request.end_ms)
                    .into_iter()
                    .cloned(),
            );
            out.extend(
                tenant
                    .cutting
                    .iter()
                    .flat_map(|part| part.iter())
                    .filter(|series| cut_series_in_request(series, request))
                    .map(|series| series.labels.clone()),
            );
        }
        let blocks = self.local_blocks(request);
        let request = request.clone();
        let tables = self.series_tables.clone();
        let from_blocks = tokio::task::spawn_blocking(move || {
            let mut labels = Vec::new();
            for block in &blocks {
                labels.extend(block_labels(block, &request, &tables)?);
            }
            Ok::<_, QueryError>(labels)
        })
        .await
        .map_err(|e| QueryError::Internal(format!("local block reader task failed: {e}")))??;
        out.extend(from_blocks);
        Ok(out)
    }
}

#[async_trait::async_trait]
impl SeriesSource for Ingester {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
        let span = tracing::debug_span!("ingester_select", tenant = %request.tenant);
        async {
            let mut out = self.select_in_memory(request).await;
            let blocks = self.local_blocks(request);
            if !blocks.is_empty() {
                let request = request.clone();
                let tables = self.series_tables.clone();
                let from_blocks = tokio::task::spawn_blocking(move || {
                    let mut series = Vec::new();
                    for block in &blocks {
                        series.extend(select_block(block, &request, &tables)?);
                    }
                    Ok::<_, QueryError>(series)
                })
                .await
                .map_err(|e| {
                    QueryError::Internal(format!("local block reader task failed: {e}"))
                })??;
                out.extend(from_blocks);
            }
            tracing::debug!(series = out.len(), "selected");
            let stream: SeriesStream = Box::pin(futures::stream::iter(out.into_iter().map(Ok)));
            Ok(stream)
        }
        .instrument(span)
        .await
    }

    async fn series(&self, request: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
        let mut labels = self.matching_label_sets(request).await?;
        labels.sort();
        labels.dedup();
        Ok(labels)
    }

    async fn label_names(&self, request: &SelectRequest) -> Result<Vec<String>, QueryError> {
        self.label_strings(request, None).await
    }

    async fn label_values(
        &self,
        name: &str,
        request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError> {
        self.label_strings(request, Some(name)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use strata_shared::block::{encode_block, BlockDescriptor};
    use strata_shared::query::{LabelMatcher, MatchOp};

    use super::*;

    /// A block of `series` series with one sample each, written under `dir/<ulid>`.
    fn write_block(dir: &Path, n: u64, series: usize) -> LocalBlock {
        let ulid = ulid::Ulid::from_parts(1_700_000_000_000 + n, u128::from(n));
        let desc = BlockDescriptor {
            ulid,
            tenant: "t".to_string(),
            min_time: 0,
            max_time: 7_200_000,
            source_ingester: "i".to_string(),
        };
        let input = (0..series)
            .map(|i| SeriesSamples {
                labels: Labels::from_pairs([("__name__", "m"), ("i", i.to_string().as_str())]),
                timestamps: vec![1_000],
                values: vec![i as f64],
            })
            .collect();
        let block = encode_block(&desc, input).expect("encodes");
        let block_dir = dir.join(ulid.to_string());
        std::fs::create_dir_all(&block_dir).unwrap();
        for (name, bytes) in &block.files {
            std::fs::write(block_dir.join(name), bytes).unwrap();
        }
        LocalBlock {
            dir: block_dir,
            ulid: ulid.to_string(),
        }
    }

    fn request(value: &str) -> SelectRequest {
        SelectRequest {
            tenant: "t".to_string(),
            matchers: vec![LabelMatcher::new(MatchOp::Equal, "i", value).unwrap()],
            start_ms: 0,
            end_ms: 10_000,
            limit: 0,
        }
    }

    #[test]
    fn the_cache_keeps_the_recently_used_blocks_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<LocalBlock> = (1..=3).map(|n| write_block(dir.path(), n, 500)).collect();
        let gauge = IntGauge::new("g", "g").unwrap();
        // Learn one block's size, then allow two and a half.
        let probe = SeriesTableCache::new(usize::MAX, gauge.clone());
        let one = select_block(&blocks[0], &request("7"), &probe).unwrap();
        assert_eq!(one.len(), 1);
        let size = usize::try_from(gauge.get()).unwrap();
        assert!(size > 500 * 20, "{size} bytes for 500 series");

        let cache = SeriesTableCache::new(size * 5 / 2, gauge.clone());
        for block in &blocks {
            let got = select_block(block, &request("42"), &cache).unwrap();
            assert_eq!(got[0].values, vec![42.0]);
        }
        let cached = |c: &SeriesTableCache| {
            let mut keys: Vec<String> = c.tables().entries.keys().map(|(_, u)| u.clone()).collect();
            keys.sort();
            keys
        };
        // The first block, least recently used, was dropped; the answers did not change.
        assert_eq!(
            cached(&cache),
            vec![blocks[1].ulid.clone(), blocks[2].ulid.clone()]
        );
        assert!(usize::try_from(gauge.get()).unwrap() <= size * 5 / 2);
        let again = block_labels(&blocks[0], &request("499"), &cache).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            cached(&cache),
            vec![blocks[0].ulid.clone(), blocks[2].ulid.clone()]
        );

        // 0 keeps nothing, and still answers.
        let none = SeriesTableCache::new(0, gauge.clone());
        assert_eq!(
            select_block(&blocks[1], &request("3"), &none)
                .unwrap()
                .len(),
            1
        );
        assert!(cached(&none).is_empty());
        assert_eq!(gauge.get(), 0);
    }
}
