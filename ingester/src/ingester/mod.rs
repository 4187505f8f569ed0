//! The ingester: WAL, per-tenant heads, block cutting and shipping.
//!
//! A push is appended to the tenant's head and enqueued to the WAL under the tenant's lock
//! (so WAL order is append order), then acknowledged once the WAL has fsynced it. A
//! background loop cuts closed 2h ranges into Parquet blocks written to a local `shipping/`
//! directory, and the [`shipper`] uploads them, `meta.json` last. The WAL is checkpointed
//! (truncated) only when nothing is left to ship.

pub mod chunk;
pub mod grpc;
pub mod head;
pub mod http;
pub mod metrics;
pub mod query;
pub mod ranges;
pub mod shipper;
pub mod wal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use prost::Message;
use strata_shared::block::{encode_block, BlockDescriptor};
use strata_shared::metrics::DiscardedSamples;
use strata_shared::overrides::{local_series_limit, Overrides};

use crate::peers::HealthyPeers;
use strata_shared::proto::ingester::{PushRequest, PushResponse, SampleError, Series};
use strata_shared::storage::TsdbConfig;
use strata_shared::supervise;
use strata_shared::time::now_ms;
use tokio::sync::{Mutex, RwLock};

use self::head::{from_proto_labels, CutSeries, SeriesLimits, TenantHead};
use self::metrics::IngesterMetrics;
use self::ranges::{range_end_after, range_start};
use self::shipper::Shipper;
use self::wal::{Wal, WalMetrics, WalOptions};

/// Series cut per hold of a tenant's lock: long enough to amortise the lock, short enough
/// that a push waits milliseconds, not seconds, behind a cut.
const CUT_BATCH_SERIES: usize = 2000;

/// Records per WAL checkpoint record: bounds the size of one record.
const CHECKPOINT_SERIES_PER_RECORD: usize = 1000;

/// Errors of the ingester that are not about one sample.
#[derive(Debug, thiserror::Error)]
pub enum IngesterError {
    #[error("WAL write failed, the push is not acknowledged: {0}")]
    Wal(#[from] wal::WalError),
    #[error("cannot encode block for tenant {tenant}: {message}")]
    Block { tenant: String, message: String },
    #[error("local block storage under {dir}: {source}")]
    Local {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the ingester is shutting down")]
    Stopping,
}

#[derive(Debug)]
struct Tenant {
    head: TenantHead,
    last_append: Instant,
    /// Samples taken out of the head by a cut in progress, until their block is on local
    /// disk: queries read the head and these under one lock, so no sample is ever in neither.
    cutting: Vec<Arc<Vec<CutSeries>>>,
}

/// Turns a tenant's global series limits into this ingester's share, as Mimir's limiter: the
/// global limit times the replication factor, divided by the healthy ingesters of the ring.
#[derive(Debug, Clone)]
pub struct SeriesLimiter {
    overrides: Arc<Overrides>,
    replication_factor: usize,
    ingesters: Arc<HealthyPeers>,
}

impl SeriesLimiter {
    /// `ingesters`: the ring's members (`-ingester.ring.static-members`; none: this one), the
    /// healthy ones counted in the background.
    pub fn new(
        overrides: Arc<Overrides>,
        replication_factor: usize,
        ingesters: Arc<HealthyPeers>,
    ) -> Self {
        Self {
            overrides,
            replication_factor,
            ingesters,
        }
    }

    pub fn for_tenant(&self, tenant: &str) -> SeriesLimits {
        let limits = self.overrides.tenant(tenant);
        let ingesters = self.ingesters.count();
        SeriesLimits {
            global_per_user: limits.max_global_series_per_user,
            local_per_user: local_series_limit(
                limits.max_global_series_per_user,
                self.replication_factor,
                ingesters,
            ),
            global_per_metric: limits.max_global_series_per_metric,
            local_per_metric: local_series_limit(
                limits.max_global_series_per_metric,
                self.replication_factor,
                ingesters,
            ),
        }
    }
}

/// One ingester.
#[derive(Debug)]
pub struct Ingester {
    id: String,
    config: TsdbConfig,
    wal: Wal,
    tenants: RwLock<HashMap<String, Arc<Mutex<Tenant>>>>,
    /// Serialises cutting and WAL checkpoints, so a checkpoint never races a cut.
    cut_lock: Mutex<()>,
    shipper: Arc<Shipper>,
    metrics: IngesterMetrics,
    discarded: DiscardedSamples,
    limiter: SeriesLimiter,
    stopping: std::sync::atomic::AtomicBool,
    /// Woken by a push that closed a range, so a backfill is cut as it goes, not a minute later.
    cut_wanted: tokio::sync::Notify,
    /// Decoded series tables of the local blocks queries read.
    series_tables: Arc<query::SeriesTableCache>,
}

impl Ingester {
    /// Opens the WAL under `<tsdb.dir>/wal`, replays it into the heads, and starts shipping
    /// any block left in `<tsdb.dir>/shipping` by a previous run.
    pub async fn open(
        id: String,
        config: TsdbConfig,
        store: Arc<dyn ObjectStore>,
        registry: &prometheus::Registry,
        discarded: DiscardedSamples,
        limiter: SeriesLimiter,
    ) -> anyhow::Result<Arc<Self>> {
        let dir = PathBuf::from(&config.dir);
        let wal_dir = dir.join("wal");
        let started = Instant::now();
        // The heads are rebuilt as the WAL streams its records; the ingester takes them over.
        let mut heads: HashMap<String, TenantHead> = HashMap::new();
        let (mut record_count, mut replayed_samples) = (0usize, 0usize);
        let wal = Wal::open(
            &wal_dir,
            WalOptions {
                segment_size_bytes: config.wal_segment_size_bytes,
                ..WalOptions::default()
            },
            WalMetrics::new(registry)?,
            |record| {
                record_count += 1;
                match PushRequest::decode(record.as_slice()) {
                    Ok(request) => {
                        let head = heads.entry(request.tenant).or_default();
                        for series in &request.series {
                            replayed_samples +=
                                head.append_replayed(&series.labels, &series.samples).added;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(index = record_count - 1, error = %e, "skipping undecodable WAL record");
                    }
                }
            },
        )
        .await?;
        let tenants = heads
            .into_iter()
            .map(|(tenant, head)| {
                let tenant_state = Tenant {
                    head,
                    last_append: Instant::now(),
                    cutting: Vec::new(),
                };
                (tenant, Arc::new(Mutex::new(tenant_state)))
            })
            .collect();
        let metrics = IngesterMetrics::new(registry)?;
        let series_tables = Arc::new(query::SeriesTableCache::new(
            usize::try_from(config.series_table_cache_max_bytes).unwrap_or(usize::MAX),
            metrics.series_table_cache_bytes.clone(),
        ));
        let shipper = Shipper::new(
            dir.join("shipping"),
            dir.join("shipped"),
            config.retention_period.0,
            store,
            metrics.clone(),
            config.ship_interval.0,
        );
        let ingester = Arc::new(Self {
            id,
            config,
            wal,
            tenants: RwLock::new(tenants),
            cut_lock: Mutex::new(()),
            shipper,
            metrics,
            discarded,
            limiter,
            stopping: std::sync::atomic::AtomicBool::new(false),
            cut_wanted: tokio::sync::Notify::new(),
            series_tables,
        });
        tracing::info!(
            records = record_count,
            samples = replayed_samples,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "WAL replayed"
        );
        ingester.shipper.start();
        ingester.update_head_metrics().await;
        Ok(ingester)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    async fn tenant(&self, tenant: &str) -> Arc<Mutex<Tenant>> {
        if let Some(t) = self.tenants.read().await.get(tenant) {
            return t.clone();
        }
        self.tenants
            .write()
            .await
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Tenant {
                    head: TenantHead::new(),
                    last_append: Instant::now(),
                    cutting: Vec::new(),
                }))
            })
            .clone()
    }

    /// Appends a push to the head and the WAL; returns once the WAL holds it.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant = %request.tenant, series = request.series.len()))]
    pub async fn push(&self, request: PushRequest) -> Result<PushResponse, IngesterError> {
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(IngesterError::Stopping);
        }
        let tenant_id = request.tenant.clone();
        let tenant = self.tenant(&tenant_id).await;
        let limits = self.limiter.for_tenant(&tenant_id);
        let mut errors: HashMap<&'static str, SampleError> = HashMap::new();
        let mut accepted_samples = 0u64;
        let wal_done = {
            let mut tenant = tenant.lock().await;
            tenant.last_append = Instant::now();
            let mut record = PushRequest {
                tenant: tenant_id.clone(),
                series: Vec::with_capacity(request.series.len()),
            };
            // One bound for the whole request, as Prometheus appends it in one transaction.
            let lower = tenant.head.lower_bound();
            for (index, series) in request.series.into_iter().enumerate() {
                let result =
                    tenant
                        .head
                        .append_limited(&series.labels, &series.samples, &limits, lower);
                if let Some((error, timestamp, count)) = result.rejected {
                    self.discarded.add(error.reason(), &tenant_id, count);
                    let entry = errors.entry(error.reason()).or_insert_with(|| SampleError {
                        reason: error.reason().to_string(),
                        message: error.message(
                            &from_proto_labels(&series.labels),
                            timestamp,
                            lower,
                        ),
                        count: 0,
                        series: Vec::new(),
                    });
                    entry.count += count as u64;
                    entry.series.push(u32::try_from(index).unwrap_or(u32::MAX));
                }
                accepted_samples += result.added as u64;
                if !result.stored.is_empty() {
                    record.series.push(Series {
                        labels: series.labels,
                        samples: result.stored,
                    });
                }
            }
            if tenant.head.oldest_range_closed(
                self.range_ms(),
                self.config.block_cut_grace_period.as_millis_i64(),
            ) {
                self.cut_wanted.notify_one();
            }
            if record.series.is_empty() {
                None
            } else {
                Some(self.wal.append(record.encode_to_vec()))
            }
        };
        if let Some(done) = wal_done {
            done.await?;
        }
        self.metrics
            .ingested_samples
            .with_label_values(&[tenant_id.as_str()])
            .inc_by(accepted_samples);
        let mut errors: Vec<SampleError> = errors.into_values().collect();
        errors.sort_by(|a, b| a.reason.cmp(&b.reason));
        Ok(PushResponse {
            errors,
            accepted_samples,
        })
    }

    fn range_ms(&self) -> i64 {
        self.config.block_ranges_period.as_millis_i64().max(1)
    }

    /// Cuts every closed range that is due (see the `-blocks-storage.tsdb.block-cut-grace-period`
    /// rule), or everything in the head when `everything` is set (flush).
    pub async fn cut(&self, everything: bool) -> Result<usize, IngesterError> {
        let _guard = self.cut_lock.lock().await;
        let now = now_ms();
        let tenants: Vec<(String, Arc<Mutex<Tenant>>)> = self
            .tenants
            .read()
            .await
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut blocks = 0;
        for (tenant_id, tenant) in tenants {
            // A panic cutting one tenant (a bug hit by its data) fails that tenant's cut alone:
            // its samples stay readable in `cutting` and in the WAL, and the others are cut.
            let cut = supervise::unit(
                "ingester-cut",
                self.cut_tenant(&tenant_id, &tenant, everything, now),
            )
            .await;
            match cut {
                Some(Ok(n)) => blocks += n,
                Some(Err(e)) => {
                    if blocks > 0 {
                        self.shipper.notify();
                    }
                    return Err(e);
                }
                None => {}
            }
        }
        if blocks > 0 {
            self.shipper.notify();
        }
        self.update_head_metrics().await;
        Ok(blocks)
    }

    /// Cuts one tenant's due ranges (see [`Self::cut`]); the number of blocks written.
    async fn cut_tenant(
        &self,
        tenant_id: &str,
        tenant: &Mutex<Tenant>,
        everything: bool,
        now: i64,
    ) -> Result<usize, IngesterError> {
        let range = self.range_ms();
        let grace = self.config.block_cut_grace_period.as_millis_i64();
        let idle = self.config.head_compaction_idle_timeout.0;
        let mut blocks = 0;
        // One range at a time, oldest first: memory holds one block's samples, not the
        // whole head. Within a range, series are cut in batches and the tenant's lock is
        // released between them, so pushes are not held up by a long cut.
        let flush_limit = if everything {
            tenant.lock().await.head.max_time
        } else {
            i64::MAX
        };
        loop {
            let range_end = {
                let mut tenant = tenant.lock().await;
                let idle_now = tenant.last_append.elapsed() >= idle;
                let head = &mut tenant.head;
                let Some(min_time) = head.min_time() else {
                    break;
                };
                if min_time > flush_limit {
                    break;
                }
                let range_end = range_end_after(min_time, range);
                if range_end <= min_time {
                    // Only a timestamp at the very top of i64 (accepted before validation
                    // refused them) gets here: no range can hold it, and cutting would never
                    // progress. It stays in the head and the WAL.
                    tracing::error!(
                        tenant = tenant_id,
                        min_time,
                        "a sample's timestamp is past every block range; not cutting it"
                    );
                    break;
                }
                if !everything {
                    // The clock that says a range is closed: the newest sample, or the
                    // wall clock once the tenant has gone idle.
                    let mut clock = head.max_time;
                    if idle_now {
                        clock = clock.max(now);
                    }
                    let closed_end = range_start(clock.saturating_sub(grace), range);
                    if range_end > closed_end {
                        break;
                    }
                    // From now on samples of this range are out of bounds, so the batches
                    // below see all of it.
                    head.cut_boundary = head.cut_boundary.max(range_end);
                }
                range_end
            };
            let mut next = Some(0);
            while let Some(from) = next {
                let mut tenant = tenant.lock().await;
                let (part, after) = tenant.head.cut_slots(range_end, from, CUT_BATCH_SERIES);
                if !part.is_empty() {
                    tenant.cutting.push(Arc::new(part));
                }
                next = after;
                drop(tenant);
                tokio::task::yield_now().await;
            }
            let cut = {
                let mut tenant = tenant.lock().await;
                tenant.head.finish_cut();
                tenant.cutting.clone()
            };
            if !cut.is_empty() {
                // On failure the samples stay in `cutting` (readable) and in the WAL, and
                // no checkpoint runs until a cut has written them.
                blocks += self.write_blocks(tenant_id, &cut, range)?;
            }
            tenant.lock().await.cutting.clear();
        }
        Ok(blocks)
    }

    /// Splits cut series by block range and writes one local block per range.
    fn write_blocks(
        &self,
        tenant: &str,
        cut: &[Arc<Vec<CutSeries>>],
        range: i64,
    ) -> Result<usize, IngesterError> {
        let by_range = ranges::split_by_range(cut.iter().flat_map(|part| part.iter()), range);
        let mut written = 0;
        for (block_start, series) in by_range {
            let min_time = series
                .iter()
                .filter_map(|s| s.timestamps.first())
                .min()
                .copied()
                .unwrap_or(block_start);
            let max_time = series
                .iter()
                .filter_map(|s| s.timestamps.last())
                .max()
                .copied()
                .unwrap_or(block_start)
                .saturating_add(1);
            let descriptor = BlockDescriptor {
                ulid: ulid::Ulid::generate(),
                tenant: tenant.to_string(),
                min_time,
                max_time,
                source_ingester: self.id.clone(),
            };
            let encoded = encode_block(&descriptor, series).map_err(|e| IngesterError::Block {
                tenant: tenant.to_string(),
                message: e.to_string(),
            })?;
            self.shipper.write_local(tenant, &encoded)?;
            self.metrics.blocks_cut.inc();
            tracing::info!(
                tenant,
                block = %descriptor.ulid,
                min_time,
                max_time,
                series = encoded.meta.stats.num_series,
                samples = encoded.meta.stats.num_samples,
                "cut block"
            );
            written += 1;
        }
        Ok(written)
    }

    /// Truncates the WAL once every cut block is shipped: rotate, then checkpoint what the
    /// heads hold, then drop the older segments.
    pub async fn checkpoint_if_shipped(&self) -> Result<bool, IngesterError> {
        let _guard = self.cut_lock.lock().await;
        if self.shipper.pending() > 0 {
            return Ok(false);
        }
        let upto = self.wal.rotate().await?;
        let tenants: Vec<(String, Arc<Mutex<Tenant>>)> = self
            .tenants
            .read()
            .await
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut records = Vec::new();
        for (tenant_id, tenant) in tenants {
            let snapshot = {
                let tenant = tenant.lock().await;
                if !tenant.cutting.is_empty() {
                    // A failed cut left samples that only `cutting` and the WAL hold: the
                    // WAL must keep them until a cut has written them to a block.
                    return Ok(false);
                }
                tenant.head.snapshot()
            };
            for chunk in snapshot.chunks(CHECKPOINT_SERIES_PER_RECORD) {
                records.push(
                    PushRequest {
                        tenant: tenant_id.clone(),
                        series: chunk.to_vec(),
                    }
                    .encode_to_vec(),
                );
            }
        }
        self.wal.checkpoint(upto, records).await?;
        Ok(true)
    }

    /// Cuts everything in the head and, with `wait`, returns once it is all uploaded.
    pub async fn flush(&self, wait: Option<Duration>) -> Result<usize, IngesterError> {
        let blocks = self.cut(true).await?;
        if let Some(timeout) = wait {
            self.shipper.wait_idle(timeout).await;
            if self.shipper.pending() == 0 {
                self.checkpoint_if_shipped().await?;
            }
        }
        Ok(blocks)
    }

    /// Blocks cut but not yet uploaded.
    pub fn pending_blocks(&self) -> usize {
        self.shipper.pending()
    }

    /// Runs the periodic cut / checkpoint loop until the process stops.
    pub fn start_background(self: &Arc<Self>) {
        let ingester = self.clone();
        let interval = self
            .config
            .head_compaction_interval
            .0
            .max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = ingester.cut_wanted.notified() => {}
                }
                // Each step is one unit of work: a panic in it is logged and counted
                // (strata_panics_total) and the loop goes on, instead of ending the loop and
                // leaving every tenant uncut.
                match supervise::unit("ingester-cut", ingester.cut(false)).await {
                    Some(Ok(n)) if n > 0 => {
                        ingester.shipper.wait_idle(interval).await;
                    }
                    Some(Ok(_)) | None => {}
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "cutting blocks failed; will retry")
                    }
                }
                if ingester.wal.disk_bytes() > 0
                    && ingester.shipper.pending() == 0
                    && ingester.needs_checkpoint()
                {
                    let checkpoint =
                        supervise::unit("wal-checkpoint", ingester.checkpoint_if_shipped());
                    if let Some(Err(e)) = checkpoint.await {
                        tracing::error!(error = %e, "WAL checkpoint failed; will retry");
                    }
                }
            }
        });
    }

    /// A checkpoint is worth it when blocks were shipped since the last one.
    fn needs_checkpoint(&self) -> bool {
        self.shipper.take_shipped_since_checkpoint()
    }

    /// Stops accepting pushes; ships what can be shipped within `timeout`; flushes the head
    /// first when `-blocks-storage.tsdb.flush-blocks-on-shutdown` is set. The WAL keeps the rest.
    pub async fn shutdown(&self, timeout: Duration) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.config.flush_blocks_on_shutdown {
            if let Err(e) = self.cut(true).await {
                tracing::error!(error = %e, "flush on shutdown failed; the WAL keeps the samples");
            }
        }
        self.shipper.wait_idle(timeout).await;
        if self.shipper.pending() > 0 {
            tracing::warn!(pending = self.shipper.pending(), "shutting down with blocks not yet shipped; they are kept on local disk and shipped at the next start");
        }
        // Commits whatever is queued and stops the WAL writer.
        self.wal.close().await;
        tracing::info!("ingester stopped");
    }

    async fn update_head_metrics(&self) {
        let tenants = self.tenants.read().await;
        let mut bytes = 0usize;
        for (tenant_id, tenant) in tenants.iter() {
            let tenant = tenant.lock().await;
            self.metrics
                .head_series
                .with_label_values(&[tenant_id.as_str()])
                .set(tenant.head.active_series() as i64);
            bytes += tenant.head.heap_bytes();
        }
        self.metrics.head_bytes.set(bytes as i64);
    }

    /// Active series and approximate head bytes over all tenants.
    pub async fn head_stats(&self) -> (usize, usize, usize) {
        let tenants = self.tenants.read().await;
        let (mut series, mut samples, mut bytes) = (0, 0, 0);
        for tenant in tenants.values() {
            let tenant = tenant.lock().await;
            series += tenant.head.active_series();
            samples += tenant.head.sample_count();
            bytes += tenant.head.heap_bytes();
        }
        (series, samples, bytes)
    }

    pub fn local_dir(&self) -> &Path {
        Path::new(&self.config.dir)
    }
}

/// The in-process ingester as the distributor's push target (`-target=all`, or a process
/// running both roles).
#[async_trait::async_trait]
impl crate::distributor::push_target::PushTarget for Ingester {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, String> {
        Ingester::push(self, request)
            .await
            .map_err(|e| e.to_string())
    }

    fn is_remote(&self) -> bool {
        false
    }
}
