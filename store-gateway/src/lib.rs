//! The store-gateway: answers series requests for one tenant from the blocks in object
//! storage (`<tenant>/<ulid>/`, format `strata_shared::block`), through Apache DataFusion.
//!
//! - **Discovery** ([`StoreGateway::sync_now`], [`StoreGateway::start_background`]): every
//!   `-blocks-storage.bucket-store.sync-interval` each tenant's prefix is listed once; a
//!   directory is a block when its `meta.json` is there (uploaded last), no
//!   `deletion-mark.json` is, and every data file `meta.json` lists is there with its size.
//!   A query for a tenant never synced syncs it first.
//! - **Series tables**: a block's `series.parquet` is read whole and decoded on first use and
//!   kept while the block exists ([`table::SeriesTable`]). `series`, `label_names` and
//!   `label_values` are answered from these alone.
//! - **`select`**: the blocks overlapping the range by `meta.json`; per block the matching
//!   series ids from its series table, then DataFusion scans of `timestamps.parquet` (their
//!   groups) and `samples.parquet` with a `series_id` range predicate, pruning row groups by
//!   statistics and pages by the page index; Parquet footers and page indexes are kept in
//!   DataFusion's file-metadata cache. Series are streamed out as each is complete, through a
//!   bounded channel, with at most `-blocks-storage.bucket-store.max-concurrent` blocks in
//!   flight and the decoded bytes held bounded by
//!   `-blocks-storage.bucket-store.max-query-memory-bytes`. A series in several blocks
//!   (consecutive ranges, replicas) comes once per block; the querier merges.

mod config;
mod metrics;
mod scan;
mod store;
mod table;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use strata_shared::block::{
    BlockMeta, SeriesSamples, DATA_FILES, FORMAT, META_FILE, SAMPLES_FILE, SERIES_FILE,
    TIMESTAMPS_FILE,
};
use strata_shared::labels::Labels;
use strata_shared::query::{QueryError, SelectRequest, SeriesSource, SeriesStream};
use tokio::sync::{mpsc, OnceCell};
use tracing::{debug, info_span, warn, Instrument};

pub use config::StoreGatewayConfig;

use config::MAX_QUERY_MEMORY_FLAG;
use metrics::Metrics;
use scan::{Assembler, ScanError, ScanStats, Scanner};
use store::ObservedStore;
use table::SeriesTable;

/// Marks a block for deletion (the compactor writes it); such a block is no longer read.
pub const DELETION_MARK_FILE: &str = "deletion-mark.json";

/// Series a select may have sent and the consumer not yet taken.
const CHANNEL_SERIES: usize = 64;
/// Bytes a sample takes once decoded (timestamp and value).
const SAMPLE_BYTES: usize = 16;

/// Why the store-gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StoreGatewayError {
    #[error("store-gateway: {0}")]
    Init(String),
}

/// Answers [`SeriesSource`] requests from the blocks in one object store.
#[derive(Debug)]
pub struct StoreGateway {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: StoreGatewayConfig,
    store: Arc<dyn ObjectStore>,
    scanner: Scanner,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    metrics: Metrics,
    /// Totals over all scans, for tests and debugging.
    scan_totals: Mutex<ScanStats>,
}

/// One tenant's known blocks.
#[derive(Debug)]
struct Tenant {
    name: String,
    /// Sorted by (min_time, ulid).
    blocks: RwLock<Arc<Vec<Arc<Block>>>>,
    /// Set once the first sync succeeded.
    synced: OnceCell<()>,
    sync_lock: tokio::sync::Mutex<()>,
}

/// A block found by the sync.
#[derive(Debug)]
struct Block {
    meta: BlockMeta,
    /// The data files as listed (size and modification time key the metadata cache).
    series_file: ObjectMeta,
    timestamps_file: ObjectMeta,
    samples_file: ObjectMeta,
    table: OnceCell<Arc<SeriesTable>>,
}

impl Block {
    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.meta.min_time <= end && self.meta.max_time > start
    }
}

impl StoreGateway {
    /// Builds a gateway over `store` (blocks at `<tenant>/<ulid>/` at its root). Nothing is
    /// read until the first sync or query.
    pub fn new(
        config: StoreGatewayConfig,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, StoreGatewayError> {
        let metrics = Metrics::new().map_err(|e| StoreGatewayError::Init(e.to_string()))?;
        let bytes_fetched = metrics.bytes_fetched.clone();
        let observed: Arc<dyn ObjectStore> = Arc::new(ObservedStore::new(
            store,
            Arc::new(move |path: &Path, bytes: u64| {
                let mut parts = path.parts();
                let tenant = parts.next();
                let file = parts.next_back();
                let file = file.as_ref().map_or("", |f| f.as_ref());
                let known = [SERIES_FILE, SAMPLES_FILE, TIMESTAMPS_FILE, META_FILE];
                let file = if known.contains(&file) { file } else { "other" };
                let tenant = tenant.as_ref().map_or("", |t| t.as_ref());
                bytes_fetched
                    .with_label_values(&[tenant, file])
                    .inc_by(bytes);
            }),
        ));
        let scanner = Scanner::new(observed.clone(), config.parquet_metadata_cache_size_bytes)
            .map_err(StoreGatewayError::Init)?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                store: observed,
                scanner,
                tenants: RwLock::new(HashMap::new()),
                metrics,
                scan_totals: Mutex::new(ScanStats::default()),
            }),
        })
    }

    /// Adds the gateway's metrics to `registry`.
    pub fn register_metrics(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<(), prometheus::Error> {
        self.shared.metrics.register(registry)
    }

    /// Syncs every tenant now, then every `-blocks-storage.bucket-store.sync-interval`, until
    /// the gateway is dropped.
    pub fn start_background(self: &Arc<Self>) {
        let gateway: Weak<Self> = Arc::downgrade(self);
        let interval = self.shared.config.sync_interval.0;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_secs(1)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                strata_shared::supervise::unit("store-gateway-sync", gateway.sync_now()).await;
            }
        });
    }

    /// Lists the tenants in the bucket and syncs each one's blocks. Failures are logged and
    /// counted; a tenant that failed keeps the blocks of its last successful sync.
    pub async fn sync_now(&self) {
        self.shared.sync_all().await;
    }

    #[cfg(test)]
    fn scan_totals(&self) -> ScanStats {
        self.shared
            .scan_totals
            .lock()
            .map(|t| *t)
            .unwrap_or_default()
    }
}

impl Shared {
    async fn sync_all(&self) {
        let listing = match self.store.list_with_delimiter(None).await {
            Ok(listing) => listing,
            Err(e) => {
                self.metrics.sync_failures.inc();
                warn!(error = %e, "store-gateway: cannot list tenants");
                return;
            }
        };
        let names: BTreeSet<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.parts().next().map(|part| part.as_ref().to_string()))
            .collect();
        // Tenants gone from the bucket are forgotten (their blocks were all deleted).
        if let Ok(mut tenants) = self.tenants.write() {
            let gone: Vec<String> = tenants
                .keys()
                .filter(|t| !names.contains(*t))
                .cloned()
                .collect();
            for name in &gone {
                tenants.remove(name);
            }
            drop(tenants);
            for name in gone {
                let _ = self.metrics.blocks_loaded.remove_label_values(&[&name]);
            }
        }
        for name in names {
            let tenant = self.tenant_entry(&name);
            if let Err(e) = self.sync_tenant(&tenant).await {
                warn!(tenant = %name, error = %e, "store-gateway: block sync failed");
            }
        }
    }

    fn tenant_entry(&self, name: &str) -> Arc<Tenant> {
        if let Some(t) = self.tenants.read().ok().and_then(|t| t.get(name).cloned()) {
            return t;
        }
        let mut tenants = match self.tenants.write() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tenants
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Tenant {
                    name: name.to_string(),
                    blocks: RwLock::new(Arc::new(Vec::new())),
                    synced: OnceCell::new(),
                    sync_lock: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// The tenant's blocks, syncing it first if it never was.
    async fn tenant_blocks(&self, name: &str) -> Result<Arc<Vec<Arc<Block>>>, QueryError> {
        let tenant = self.tenant_entry(name);
        tenant
            .synced
            .get_or_try_init(|| async {
                // Another caller may have synced it while this one waited for the lock.
                self.sync_tenant(&tenant).await.map_err(|e| {
                    QueryError::Unavailable(format!(
                        "store-gateway: cannot list the blocks of tenant {name:?}: {e}"
                    ))
                })
            })
            .await?;
        let blocks = tenant.current_blocks();
        if blocks.is_empty() {
            // A tenant without blocks (any name a reader sends) is not kept: state and metric
            // series per unknown tenant would grow without bound. The next query lists again.
            self.forget_tenant(name);
        }
        Ok(blocks)
    }

    fn forget_tenant(&self, name: &str) {
        if let Ok(mut tenants) = self.tenants.write() {
            tenants.remove(name);
        }
        let _ = self.metrics.blocks_loaded.remove_label_values(&[name]);
    }

    /// Lists `<tenant>/`, keeps known blocks (and their caches), reads the meta of new ones.
    async fn sync_tenant(&self, tenant: &Tenant) -> Result<(), String> {
        let _guard = tenant.sync_lock.lock().await;
        let started = Instant::now();
        let result = self.sync_tenant_locked(tenant).await;
        self.metrics
            .sync_duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(count) => {
                self.metrics
                    .blocks_loaded
                    .with_label_values(&[&tenant.name])
                    .set(count as i64);
                let _ = tenant.synced.set(());
                Ok(())
            }
            Err(e) => {
                self.metrics.sync_failures.inc();
                Err(e)
            }
        }
    }

    async fn sync_tenant_locked(&self, tenant: &Tenant) -> Result<usize, String> {
        let prefix = Path::from(tenant.name.as_str());
        let mut objects = self.store.list(Some(&prefix));
        // ulid -> file name -> listing entry
        let mut dirs: HashMap<String, HashMap<String, ObjectMeta>> = HashMap::new();
        while let Some(object) = objects.next().await {
            let object = object.map_err(|e| format!("listing {prefix}/: {e}"))?;
            let parts: Vec<String> = object
                .location
                .parts()
                .map(|p| p.as_ref().to_string())
                .collect();
            if let [_, ulid, file] = parts.as_slice() {
                dirs.entry(ulid.clone())
                    .or_default()
                    .insert(file.clone(), object);
            }
        }
        let known: HashMap<String, Arc<Block>> = tenant
            .current_blocks()
            .iter()
            .map(|b| (b.meta.ulid.clone(), b.clone()))
            .collect();
        let mut blocks = Vec::new();
        for (ulid, files) in dirs {
            if ulid::Ulid::from_string(&ulid).is_err() {
                continue;
            }
            if !files.contains_key(META_FILE) {
                debug!(tenant = %tenant.name, %ulid, "no meta.json yet: not a block");
                continue;
            }
            if files.contains_key(DELETION_MARK_FILE) {
                debug!(tenant = %tenant.name, %ulid, "marked for deletion: ignored");
                continue;
            }
            if let Some(block) = known.get(&ulid) {
                blocks.push(block.clone());
                continue;
            }
            match self.load_block(&tenant.name, &ulid, &files).await {
                Ok(block) => blocks.push(Arc::new(block)),
                Err(e) => {
                    warn!(tenant = %tenant.name, %ulid, error = %e, "store-gateway: block skipped")
                }
            }
        }
        blocks
            .sort_by(|a, b| (a.meta.min_time, &a.meta.ulid).cmp(&(b.meta.min_time, &b.meta.ulid)));
        let count = blocks.len();
        if let Ok(mut current) = tenant.blocks.write() {
            *current = Arc::new(blocks);
        }
        Ok(count)
    }

    async fn load_block(
        &self,
        tenant: &str,
        ulid: &str,
        files: &HashMap<String, ObjectMeta>,
    ) -> Result<Block, String> {
        let meta_path = Path::from(format!("{tenant}/{ulid}/{META_FILE}"));
        let bytes = self
            .store
            .get(&meta_path)
            .await
            .map_err(|e| format!("reading {meta_path}: {e}"))?
            .bytes()
            .await
            .map_err(|e| format!("reading {meta_path}: {e}"))?;
        let meta = BlockMeta::from_json_bytes(&bytes).map_err(|e| e.to_string())?;
        if meta.ulid != ulid || meta.strata.tenant != tenant || meta.strata.format != FORMAT {
            return Err(format!(
                "meta.json says ulid {:?}, tenant {:?}, format {:?}",
                meta.ulid, meta.strata.tenant, meta.strata.format
            ));
        }
        let mut listed = Vec::with_capacity(DATA_FILES.len());
        for name in DATA_FILES {
            let object = files
                .get(name)
                .ok_or_else(|| format!("{name} is missing"))?;
            let expected = meta.strata.files.iter().find(|f| f.name == name);
            if let Some(expected) = expected {
                if expected.size_bytes != object.size {
                    return Err(format!(
                        "{name} has {} bytes, meta.json says {}",
                        object.size, expected.size_bytes
                    ));
                }
            }
            listed.push(object.clone());
        }
        let [series_file, timestamps_file, samples_file]: [ObjectMeta; 3] =
            listed.try_into().map_err(|_| "data files".to_string())?;
        Ok(Block {
            meta,
            series_file,
            timestamps_file,
            samples_file,
            table: OnceCell::new(),
        })
    }

    /// The block's series table, read and decoded on first use.
    async fn table(&self, tenant: &str, block: &Block) -> Result<Arc<SeriesTable>, QueryError> {
        block
            .table
            .get_or_try_init(|| async {
                let location = &block.series_file.location;
                let unavailable =
                    |e: object_store::Error| QueryError::Unavailable(format!("reading {location}: {e}"));
                let bytes = self
                    .store
                    .get(location)
                    .await
                    .map_err(unavailable)?
                    .bytes()
                    .await
                    .map_err(unavailable)?;
                let table = tokio::task::spawn_blocking(move || SeriesTable::decode(bytes))
                    .await
                    .map_err(|e| QueryError::Internal(format!("decoding {location}: {e}")))?
                    .map_err(|e| {
                        QueryError::Internal(format!("block {}: {e}", block.meta.ulid))
                    })?;
                self.metrics
                    .series_tables_loaded
                    .with_label_values(&[tenant])
                    .inc();
                debug!(tenant, block = %block.meta.ulid, series = table.len(), heap_bytes = table.heap_bytes(), "series table loaded");
                Ok(Arc::new(table))
            })
            .await
            .cloned()
    }

    /// The blocks overlapping the request, each with its series table and matching rows.
    async fn matching(
        &self,
        request: &SelectRequest,
    ) -> Result<Vec<(Arc<SeriesTable>, Vec<u32>)>, QueryError> {
        let blocks = self.tenant_blocks(&request.tenant).await?;
        let overlapping: Vec<Arc<Block>> = blocks
            .iter()
            .filter(|b| b.overlaps(request.start_ms, request.end_ms))
            .cloned()
            .collect();
        tracing::Span::current().record("blocks", overlapping.len());
        futures::stream::iter(overlapping)
            .map(|block| async move {
                let table = self.table(&request.tenant, &block).await?;
                let rows = table.select(&request.matchers, request.start_ms, request.end_ms);
                Ok::<_, QueryError>((table, rows))
            })
            .buffer_unordered(self.config.max_concurrent.max(1))
            .try_collect()
            .await
    }
}

impl Tenant {
    fn current_blocks(&self) -> Arc<Vec<Arc<Block>>> {
        match self.blocks.read() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Bytes a select holds: reserved before decoding, released as the consumer takes series.
#[derive(Debug)]
struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    fn reserve(&self, bytes: usize) -> Result<(), QueryError> {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if self.limit > 0 && used > self.limit {
            return Err(QueryError::LimitExceeded(format!(
                "the query would hold more than {limit} bytes of decoded samples at once in the \
                 store-gateway ({MAX_QUERY_MEMORY_FLAG}={limit}); select fewer series or a \
                 shorter range",
                limit = self.limit
            )));
        }
        Ok(())
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// Why a block scan stopped.
enum Stop {
    Failed(QueryError),
    /// The consumer dropped the stream.
    Cancelled,
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Self {
        Stop::Failed(e)
    }
}

impl From<ScanError> for Stop {
    fn from(e: ScanError) -> Self {
        Stop::Failed(match e {
            ScanError::Storage(e) => QueryError::Unavailable(e),
            ScanError::Corrupt(e) => QueryError::Internal(e),
        })
    }
}

type Sender = mpsc::Sender<Result<SeriesSamples, QueryError>>;

impl Shared {
    async fn run_select(
        self: Arc<Self>,
        request: SelectRequest,
        blocks: Vec<Arc<Block>>,
        tx: Sender,
        budget: Arc<Budget>,
    ) {
        let result = futures::stream::iter(blocks)
            .map(|block| self.scan_block(&request, block, &tx, &budget))
            .buffer_unordered(self.config.max_concurrent.max(1))
            .try_for_each(|()| futures::future::ready(Ok(())))
            .await;
        if let Err(Stop::Failed(e)) = result {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn scan_block(
        &self,
        request: &SelectRequest,
        block: Arc<Block>,
        tx: &Sender,
        budget: &Budget,
    ) -> Result<(), Stop> {
        let table = self.table(&request.tenant, &block).await?;
        let (start, end) = (request.start_ms, request.end_ms);
        let rows = table.select(&request.matchers, start, end);
        if rows.is_empty() {
            return Ok(());
        }
        self.metrics
            .blocks_scanned
            .with_label_values(&[&request.tenant])
            .inc();
        let mut groups: Vec<u32> = rows.iter().map(|&r| table.ts_group[r as usize]).collect();
        groups.sort_unstable();
        groups.dedup();
        let (timestamps, timestamp_stats) = self
            .scanner
            .timestamps(&block.timestamps_file, &groups, (start, end))
            .await?;
        let timestamp_bytes: usize = timestamps.values().map(|g| g.heap_bytes()).sum();
        budget.reserve(timestamp_bytes)?;
        let result = self
            .stream_samples(request, &block, &table, &rows, &timestamps, tx, budget)
            .await;
        budget.release(timestamp_bytes);
        let sample_stats = result?;
        debug!(
            block = %block.meta.ulid,
            series = rows.len(),
            ?timestamp_stats,
            ?sample_stats,
            "block scanned"
        );
        if let Ok(mut totals) = self.scan_totals.lock() {
            for stats in [timestamp_stats, sample_stats] {
                totals.bytes_scanned += stats.bytes_scanned;
                totals.row_groups_pruned += stats.row_groups_pruned;
                totals.row_groups_matched += stats.row_groups_matched;
                totals.pages_pruned += stats.pages_pruned;
                totals.pages_matched += stats.pages_matched;
                totals.rows_pruned += stats.rows_pruned;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream_samples(
        &self,
        request: &SelectRequest,
        block: &Block,
        table: &SeriesTable,
        rows: &[u32],
        timestamps: &HashMap<u32, scan::GroupTimes>,
        tx: &Sender,
        budget: &Budget,
    ) -> Result<ScanStats, Stop> {
        let (mut batches, plan) = self.scanner.samples(&block.samples_file, rows)?;
        let mut assembler = Assembler::new(table, rows, timestamps, &block.meta.ulid);
        let mut done = Vec::new();
        let returned = self
            .metrics
            .series_returned
            .with_label_values(&[&request.tenant]);
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| scan::scan_error(SAMPLES_FILE, e))?;
            let batch_bytes = batch.get_array_memory_size();
            let upper = batch.num_rows() * SAMPLE_BYTES;
            budget.reserve(batch_bytes + upper)?;
            let added = assembler.push_batch(&batch, &mut done);
            budget.release(batch_bytes + upper - added.as_ref().map_or(0, |a| a * SAMPLE_BYTES));
            added?;
            drop(batch);
            for series in done.drain(..) {
                returned.inc();
                tx.send(Ok(series)).await.map_err(|_| Stop::Cancelled)?;
            }
        }
        assembler.end(&mut done)?;
        for series in done.drain(..) {
            returned.inc();
            tx.send(Ok(series)).await.map_err(|_| Stop::Cancelled)?;
        }
        Ok(scan::plan_stats(plan.as_ref()))
    }
}

#[async_trait::async_trait]
impl SeriesSource for StoreGateway {
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError> {
        if request.start_ms > request.end_ms {
            return Ok(futures::stream::empty().boxed());
        }
        let blocks = self.shared.tenant_blocks(&request.tenant).await?;
        let blocks: Vec<Arc<Block>> = blocks
            .iter()
            .filter(|b| b.overlaps(request.start_ms, request.end_ms))
            .cloned()
            .collect();
        let span = info_span!(
            "store_gateway_select",
            tenant = %request.tenant,
            blocks = blocks.len(),
            start_ms = request.start_ms,
            end_ms = request.end_ms,
        );
        let (tx, rx) = mpsc::channel(CHANNEL_SERIES);
        let budget = Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: self.shared.config.max_query_memory_bytes,
        });
        let task = tokio::spawn(
            self.shared
                .clone()
                .run_select(request.clone(), blocks, tx, budget.clone())
                .instrument(span),
        );
        let stream = futures::stream::unfold(
            (rx, budget, Some(task)),
            |(mut rx, budget, task)| async move {
                match rx.recv().await {
                    Some(item) => {
                        if let Ok(series) = &item {
                            budget.release(series.timestamps.len() * SAMPLE_BYTES);
                        }
                        Some((item, (rx, budget, task)))
                    }
                    None => {
                        // The producer is done; a panic in it must not look like the end.
                        let task = task?;
                        match task.await {
                            Ok(()) => None,
                            Err(e) => Some((
                                Err(QueryError::Internal(format!(
                                    "store-gateway select failed: {e}"
                                ))),
                                (rx, budget, None),
                            )),
                        }
                    }
                }
            },
        );
        Ok(stream.boxed())
    }

    async fn series(&self, request: &SelectRequest) -> Result<Vec<Labels>, QueryError> {
        let span = info_span!("store_gateway_series", tenant = %request.tenant, blocks = tracing::field::Empty);
        async {
            let mut all: Vec<Labels> = Vec::new();
            for (table, rows) in self.shared.matching(request).await? {
                all.extend(rows.iter().map(|&r| table.labels(r)));
            }
            all.sort();
            all.dedup();
            Ok(limited(all, request.limit))
        }
        .instrument(span)
        .await
    }

    async fn label_names(&self, request: &SelectRequest) -> Result<Vec<String>, QueryError> {
        let span = info_span!("store_gateway_label_names", tenant = %request.tenant, blocks = tracing::field::Empty);
        async {
            let mut names = BTreeSet::new();
            for (table, rows) in self.shared.matching(request).await? {
                table.label_names(&rows, &mut names);
            }
            Ok(limited(names, request.limit))
        }
        .instrument(span)
        .await
    }

    async fn label_values(
        &self,
        name: &str,
        request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError> {
        let span = info_span!("store_gateway_label_values", tenant = %request.tenant, label = name, blocks = tracing::field::Empty);
        async {
            let mut values = BTreeSet::new();
            for (table, rows) in self.shared.matching(request).await? {
                table.label_values(name, &rows, &mut values);
            }
            Ok(limited(values, request.limit))
        }
        .instrument(span)
        .await
    }
}

/// The first `limit` items in order (all when `limit` is 0).
fn limited<T>(items: impl IntoIterator<Item = T>, limit: usize) -> Vec<T> {
    let items = items.into_iter();
    if limit > 0 {
        items.take(limit).collect()
    } else {
        items.collect()
    }
}

#[cfg(test)]
mod tests;
