//! Ships cut blocks to object storage.
//!
//! A cut block is first written under `<tsdb.dir>/shipping/<tenant>/<block-id>/` with
//! `meta.json` written last, so a directory without `meta.json` is an interrupted write
//! (its samples are still in the WAL) and is removed at start. Uploads go file by file with
//! `meta.json` last; failures are retried with exponential back-off up to
//! `-blocks-storage.tsdb.ship-interval`. After the upload the local copy moves to
//! `<tsdb.dir>/shipped/<tenant>/<block-id>/`, where it keeps answering queries for
//! `-blocks-storage.tsdb.retention-period` (until the store-gateways have surely seen it).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use strata_shared::block::{EncodedBlock, META_FILE};
use tokio::sync::Notify;
use tracing::Instrument;

use super::metrics::IngesterMetrics;
use strata_shared::time::now_ms;

/// Written into a block's directory when it moves to `shipped/`: milliseconds since the epoch.
pub const SHIPPED_AT_FILE: &str = "shipped-at";
use super::IngesterError;
use strata_shared::supervise;

/// The upload queue of one ingester.
#[derive(Debug)]
pub struct Shipper {
    dir: PathBuf,
    /// Where shipped blocks wait out the retention period.
    shipped_dir: PathBuf,
    retention: Duration,
    store: Arc<dyn ObjectStore>,
    metrics: IngesterMetrics,
    max_backoff: Duration,
    /// Ids of the blocks written to `shipping/` and not yet uploaded: a set, so a block that a
    /// cut writes while a pass lists the directory is counted once, never lost from the count
    /// (a pending count of 0 allows a WAL checkpoint).
    pending: Mutex<HashSet<String>>,
    shipped_since_checkpoint: AtomicBool,
    wake: Notify,
    idle: Notify,
}

fn io_error(dir: &Path, source: std::io::Error) -> IngesterError {
    IngesterError::Local {
        dir: dir.to_path_buf(),
        source,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl Shipper {
    pub fn new(
        dir: PathBuf,
        shipped_dir: PathBuf,
        retention: Duration,
        store: Arc<dyn ObjectStore>,
        metrics: IngesterMetrics,
        max_backoff: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            dir,
            shipped_dir,
            retention,
            store,
            metrics,
            max_backoff: max_backoff.max(Duration::from_secs(1)),
            pending: Mutex::new(HashSet::new()),
            shipped_since_checkpoint: AtomicBool::new(false),
            wake: Notify::new(),
            idle: Notify::new(),
        })
    }

    /// Durably writes a cut block to the local shipping directory, `meta.json` last.
    pub fn write_local(&self, tenant: &str, block: &EncodedBlock) -> Result<(), IngesterError> {
        let dir = self.dir.join(tenant).join(&block.meta.ulid);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        for (name, bytes) in &block.files {
            write_synced(&dir.join(name), bytes).map_err(|e| io_error(&dir, e))?;
        }
        let meta = block
            .meta
            .to_json_bytes()
            .map_err(|e| IngesterError::Block {
                tenant: tenant.to_string(),
                message: e.to_string(),
            })?;
        write_synced(&dir.join(META_FILE), &meta).map_err(|e| io_error(&dir, e))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        self.queued().insert(block.meta.ulid.clone());
        self.metrics.blocks_pending_ship.set(self.pending() as i64);
        Ok(())
    }

    pub fn pending(&self) -> usize {
        self.queued().len()
    }

    fn queued(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // Plain bookkeeping: a panic elsewhere cannot leave it half-updated.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// True once after blocks were shipped: the WAL can then be checkpointed.
    pub fn take_shipped_since_checkpoint(&self) -> bool {
        self.shipped_since_checkpoint.swap(false, Ordering::SeqCst)
    }

    /// Waits until nothing is pending, or the timeout.
    pub async fn wait_idle(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.pending() > 0 {
            let idle = self.idle.notified();
            if self.pending() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                break;
            }
        }
    }

    /// Local blocks: (tenant, block id, dir) of every complete block. With `at_start` (before
    /// any cut can run) a directory without `meta.json` is an interrupted write and is
    /// removed; later it may be a block a cut is writing right now, and is left alone.
    fn scan(&self, at_start: bool) -> Vec<(String, String, PathBuf)> {
        let mut out = Vec::new();
        let Ok(tenants) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for tenant in tenants.flatten() {
            let Ok(blocks) = std::fs::read_dir(tenant.path()) else {
                continue;
            };
            for block in blocks.flatten() {
                let path = block.path();
                if path.join(META_FILE).exists() {
                    out.push((
                        tenant.file_name().to_string_lossy().into_owned(),
                        block.file_name().to_string_lossy().into_owned(),
                        path,
                    ));
                } else if at_start {
                    tracing::warn!(dir = %path.display(), "removing an incomplete local block (no meta.json); its samples are still in the WAL");
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    async fn upload(&self, tenant: &str, block_id: &str, dir: &Path) -> Result<(), String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != META_FILE)
            .collect();
        names.sort();
        names.push(META_FILE.to_string());
        for name in names {
            let bytes = tokio::fs::read(dir.join(&name))
                .await
                .map_err(|e| format!("reading {}/{name}: {e}", dir.display()))?;
            let path = ObjectPath::from(format!("{tenant}/{block_id}/{name}"));
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|e| format!("uploading {path}: {e}"))?;
        }
        Ok(())
    }

    /// Moves a shipped block out of the upload queue: into `shipped/` for the retention
    /// period, or away at once when the retention is 0. The move is a rename, so a query
    /// listing `shipping/` then `shipped/` always finds the block in one of them.
    fn retire(&self, tenant: &str, block_id: &str, dir: &Path) -> std::io::Result<()> {
        if self.retention.is_zero() {
            return std::fs::remove_dir_all(dir);
        }
        let target_parent = self.shipped_dir.join(tenant);
        std::fs::create_dir_all(&target_parent)?;
        let target = target_parent.join(block_id);
        std::fs::rename(dir, &target)?;
        // The shipping time, for the retention: a directory's mtime does not survive a rename.
        std::fs::write(target.join(SHIPPED_AT_FILE), now_ms().to_string())
    }

    /// Deletes shipped blocks older than the retention period.
    fn remove_expired(&self) {
        let Ok(tenants) = std::fs::read_dir(&self.shipped_dir) else {
            return;
        };
        let cutoff = now_ms() - self.retention.as_millis() as i64;
        for block in tenants
            .flatten()
            .filter_map(|t| std::fs::read_dir(t.path()).ok())
            .flat_map(|blocks| blocks.flatten())
        {
            let path = block.path();
            let shipped_at = std::fs::read_to_string(path.join(SHIPPED_AT_FILE))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(i64::MIN);
            if shipped_at < cutoff {
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::warn!(error = %e, dir = %path.display(), "cannot remove a shipped block past its retention");
                }
            }
        }
    }

    /// One upload pass over `shipping/`, oldest block first; whether an upload failed.
    async fn ship_pass(&self) -> bool {
        let shipper = self;
        let blocks = shipper.scan(false);
        shipper
            .queued()
            .extend(blocks.iter().map(|(_, id, _)| id.clone()));
        let mut failed = false;
        for (tenant, block_id, dir) in blocks {
            let span = tracing::info_span!("ship_block", tenant = %tenant, block = %block_id);
            let uploaded = shipper
                .upload(&tenant, &block_id, &dir)
                .instrument(span.clone())
                .await;
            let _entered = span.enter();
            match uploaded {
                Ok(()) => {
                    if let Err(e) = shipper.retire(&tenant, &block_id, &dir) {
                        tracing::error!(error = %e, dir = %dir.display(), "block shipped but its local copy could not be moved or removed");
                    }
                    shipper.queued().remove(&block_id);
                    shipper.metrics.blocks_shipped.inc();
                    shipper
                        .shipped_since_checkpoint
                        .store(true, Ordering::SeqCst);
                    tracing::info!("block shipped");
                }
                Err(e) => {
                    shipper.metrics.ship_failures.inc();
                    tracing::warn!(error = %e, "shipping block failed; the block stays on local disk and will be retried with back-off");
                    failed = true;
                    break;
                }
            }
        }
        shipper.remove_expired();
        shipper
            .metrics
            .blocks_pending_ship
            .set(shipper.pending() as i64);
        if shipper.pending() == 0 {
            shipper.idle.notify_waiters();
        }
        failed
    }

    /// Starts the upload loop.
    pub fn start(self: &Arc<Self>) {
        let found = self.scan(true);
        let initial = found.len();
        self.queued().extend(found.into_iter().map(|(_, id, _)| id));
        self.metrics.blocks_pending_ship.set(initial as i64);
        if initial > 0 {
            tracing::info!(
                blocks = initial,
                "found local blocks from a previous run; shipping them"
            );
        }
        let shipper = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            loop {
                // One pass is one unit of work: a panic in it is logged and counted, and the
                // next pass retries (the blocks stay on local disk).
                let failed = supervise::unit("ingester-ship", shipper.ship_pass())
                    .await
                    .unwrap_or(true);
                if !failed {
                    backoff = Duration::from_secs(1);
                }
                let wait = if failed {
                    let w = backoff;
                    backoff = (backoff * 2).min(shipper.max_backoff);
                    w
                } else {
                    shipper.max_backoff
                };
                let _ = tokio::time::timeout(wait, shipper.wake.notified()).await;
                if failed {
                    // A new cut during back-off must not make the retry come sooner than planned.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
    }
}
