//! The ingester's write-ahead log: a push is acknowledged only once its record is fsynced
//! here, and replaying the log at start rebuilds the head.
//!
//! # Writing
//!
//! [`Wal::append`] enqueues a record synchronously (so callers holding a lock get WAL order
//! equal to call order) and returns a future. One dedicated writer thread drains the queue:
//! it writes every queued record (up to [`WalOptions::max_batch_bytes`]) with one `write`
//! and one `fsync`, then resolves all of their futures — group commit. A failed write or
//! fsync fails the futures of that batch only; before the next batch the writer truncates
//! the segment back to its last committed length, so a later append can succeed and no
//! half-written record is ever followed by acknowledged ones. A record whose append failed
//! may still be replayed (when the failure came after it reached disk, e.g. in a later
//! segment of the same batch): replay is at-least-once for unacknowledged records, so
//! applying a record must be idempotent, as the head's duplicate-sample rule makes it.
//!
//! # Truncation
//!
//! Samples leave the WAL only through a checkpoint: the caller [`Wal::rotate`]s, waits for
//! the blocks holding the older samples to be uploaded, and then writes what the head
//! still holds with [`Wal::checkpoint`]; that deletes the segments it covers.
//!
//! # On-disk format (version 1)
//!
//! All integers are little-endian. In the WAL directory:
//!
//! - `00000001`, `00000002`, ...: segments, named by their index in decimal, zero-padded
//!   to 8 digits (wider once the index needs it). Indices only grow; a segment is created
//!   when the first record after a rotation (or a start) needs it.
//! - `checkpoint.NNNNNNNN`: the head's state as of the end of segment `NNNNNNNN`; at most
//!   one is kept. Segments with an index `<= NNNNNNNN` are deleted once it is durable.
//! - `*.tmp`: a checkpoint being written; removed at start.
//!
//! A segment or checkpoint is an 8-byte header followed by records:
//!
//! ```text
//! header: magic [4]u8 ("SWAL" for a segment, "SWCP" for a checkpoint) | version u32 (= 1)
//! record: length u32 | crc u32 | payload [length]u8
//! ```
//!
//! `crc` is the CRC-32 (IEEE polynomial, as computed by `crc32fast`) of the 4 length bytes
//! followed by the payload, so a damaged length is detected too. A record is never split
//! across segments; a segment is closed before a record would take it past
//! [`WalOptions::segment_size_bytes`], unless the segment holds no record yet (so a larger
//! record gets a segment of its own).
//!
//! # Recovery
//!
//! [`Wal::open`] never refuses to start because of damaged data. Reading stops at the
//! first record that is torn (the file ends inside it) or whose checksum fails. In the last
//! segment that is the usual result of a crash mid-write: the file is truncated there. In
//! an earlier segment the log cannot be trusted past that point: the segment is truncated
//! and every later segment deleted. Both are logged with the file and offset and counted in
//! `strata_ingester_wal_corruptions_total`. The only refusal is a header announcing a newer
//! format version, since truncating a newer binary's log would destroy good data.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::{oneshot, watch};

const SEGMENT_MAGIC: [u8; 4] = *b"SWAL";
const CHECKPOINT_MAGIC: [u8; 4] = *b"SWCP";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 8;
const FRAME_HEADER_LEN: u64 = 8;
/// Records read ahead of the replay at most (a record is one push, typically well under a
/// MiB): bounds a restart's memory to this queue instead of the whole log.
pub const REPLAY_QUEUE_RECORDS: usize = 64;

/// The length field is a u32.
const MAX_RECORD_BYTES: u64 = u32::MAX as u64;
const CHECKPOINT_PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";

/// How the WAL cuts segments and batches commits.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// A segment is closed before a record would take it past this size; smaller segments
    /// are deleted sooner after a checkpoint, larger ones mean fewer files.
    pub segment_size_bytes: u64,
    /// Upper bound of the bytes written by one group commit, so one fsync never waits on
    /// an unbounded amount of data. A larger single record is still written, alone.
    pub max_batch_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_size_bytes: 128 << 20,
            max_batch_bytes: 4 << 20,
        }
    }
}

/// The WAL's metrics. Cloning shares the underlying metrics.
#[derive(Clone, Debug)]
pub struct WalMetrics {
    /// Bytes written to segments and checkpoints, headers and framing included.
    pub bytes_written: IntCounter,
    /// Records appended and fsynced (checkpoint records not included).
    pub records: IntCounter,
    /// Latency of each segment fsync; one per group commit (two when it rolls a segment).
    pub fsync_duration: Histogram,
    /// Segment files on disk.
    pub segments: IntGauge,
    /// Damaged tails or records found and cut off at start.
    pub corruptions: IntCounter,
    /// Bytes of segments and checkpoint on disk.
    pub disk_bytes: IntGauge,
}

impl WalMetrics {
    /// Creates the metrics and registers them in `registry` (an error if they already are).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            bytes_written: IntCounter::new(
                "strata_ingester_wal_bytes_written_total",
                "Bytes written to the WAL (segments and checkpoints).",
            )?,
            records: IntCounter::new(
                "strata_ingester_wal_records_total",
                "Records appended to the WAL and fsynced.",
            )?,
            fsync_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "strata_ingester_wal_fsync_duration_seconds",
                    "Latency of WAL segment fsyncs (one per group commit).",
                )
                .buckets(prometheus::exponential_buckets(0.0001, 2.0, 16)?),
            )?,
            segments: IntGauge::new("strata_ingester_wal_segments", "WAL segment files on disk.")?,
            corruptions: IntCounter::new(
                "strata_ingester_wal_corruptions_total",
                "Torn or corrupt WAL data cut off at start.",
            )?,
            disk_bytes: IntGauge::new(
                "strata_ingester_wal_disk_bytes",
                "Bytes of WAL segments and checkpoint on disk.",
            )?,
        };
        registry.register(Box::new(metrics.bytes_written.clone()))?;
        registry.register(Box::new(metrics.records.clone()))?;
        registry.register(Box::new(metrics.fsync_duration.clone()))?;
        registry.register(Box::new(metrics.segments.clone()))?;
        registry.register(Box::new(metrics.corruptions.clone()))?;
        registry.register(Box::new(metrics.disk_bytes.clone()))?;
        Ok(metrics)
    }
}

/// Why a WAL operation failed. Cloneable because one failed group commit fails every
/// append of the batch.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    #[error(
        "WAL file {} has format version {found}, newer than the supported {supported}; \
         refusing to truncate a newer binary's WAL",
        path.display()
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("WAL record of {len} bytes exceeds the format's limit of {max} bytes")]
    RecordTooLarge { len: usize, max: u64 },
    #[error("cannot checkpoint the WAL in {} up to segment {upto}: {reason}", dir.display())]
    Checkpoint {
        dir: PathBuf,
        upto: u64,
        reason: String,
    },
    #[error("the WAL in {} is closed", dir.display())]
    Closed { dir: PathBuf },
    #[error("the WAL's background {what} in {} failed: {message}", dir.display())]
    Task {
        dir: PathBuf,
        what: &'static str,
        message: String,
    },
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl Fn(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source: Arc::new(source),
    }
}

/// The write-ahead log. Cheap to clone; the writer thread stops once every clone is
/// dropped (or [`Wal::close`] is called) and the queue is drained.
#[derive(Clone)]
pub struct Wal {
    handle: Arc<Handle>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.handle.shared.dir)
            .field("options", &self.handle.shared.options)
            .field("disk_bytes", &self.disk_bytes())
            .finish_non_exhaustive()
    }
}

/// Owned by the `Wal` clones only (not the writer thread), so its drop means "no more
/// appends can come".
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close();
    }
}

struct Shared {
    dir: PathBuf,
    options: WalOptions,
    metrics: WalMetrics,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The lowest segment index the writer may still write to; checkpoints must stay below.
    active_index: AtomicU64,
    disk: Mutex<DiskUsage>,
    /// Serialises checkpoints.
    checkpoint_lock: Mutex<()>,
    /// Set by the writer thread when it has exited.
    stopped: watch::Sender<bool>,
    /// Test hook: the next N segment writes write half their bytes and fail.
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct Queue {
    ops: VecDeque<Op>,
    closing: bool,
}

enum Op {
    Append {
        record: Vec<u8>,
        done: oneshot::Sender<Result<(), WalError>>,
    },
    Rotate {
        done: oneshot::Sender<Result<u64, WalError>>,
    },
}

/// Sizes of the files on disk, for `disk_bytes` and the gauges.
#[derive(Default)]
struct DiskUsage {
    segments: BTreeMap<u64, u64>,
    /// (upto, bytes) of the checkpoint.
    checkpoint: Option<(u64, u64)>,
}

impl DiskUsage {
    fn total(&self) -> u64 {
        self.segments.values().sum::<u64>() + self.checkpoint.map_or(0, |(_, bytes)| bytes)
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain bookkeeping;
/// carrying on beats turning one panic into a WAL that can never be written again.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn segment_name(index: u64) -> String {
    format!("{index:08}")
}

fn checkpoint_name(upto: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{upto:08}")
}

fn parse_index(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn encode_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    // Callers check the length against MAX_RECORD_BYTES.
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&crc.finalize().to_le_bytes());
    buf.extend_from_slice(payload);
}

fn header(magic: [u8; 4]) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(&magic);
    h[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Makes renames, creations and deletions in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync WAL directory", dir))
}

impl Shared {
    fn closed(&self) -> WalError {
        WalError::Closed {
            dir: self.dir.clone(),
        }
    }

    fn begin_close(&self) {
        lock(&self.queue).closing = true;
        self.wake.notify_all();
    }

    fn enqueue<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, WalError>>) -> Op,
    ) -> Result<oneshot::Receiver<Result<T, WalError>>, WalError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut queue = lock(&self.queue);
            if queue.closing {
                return Err(self.closed());
            }
            queue.ops.push_back(make(tx));
        }
        self.wake.notify_one();
        Ok(rx)
    }

    fn publish_usage(&self, disk: &DiskUsage) {
        self.metrics.segments.set(disk.segments.len() as i64);
        self.metrics.disk_bytes.set(disk.total() as i64);
    }

    fn set_segment_size(&self, index: u64, bytes: u64) {
        let mut disk = lock(&self.disk);
        disk.segments.insert(index, bytes);
        self.publish_usage(&disk);
    }

    fn write_checkpoint(&self, upto: u64, records: Vec<Vec<u8>>) -> Result<(), WalError> {
        let _serialised = lock(&self.checkpoint_lock);
        let reject = |reason: String| WalError::Checkpoint {
            dir: self.dir.clone(),
            upto,
            reason,
        };
        let active = self.active_index.load(Ordering::SeqCst);
        if upto >= active {
            return Err(reject(format!(
                "segments from {active} on are still written to; rotate first and checkpoint \
                 up to the index rotate returned"
            )));
        }
        let previous = lock(&self.disk).checkpoint;
        if let Some((existing, _)) = previous {
            if existing > upto {
                return Err(reject(format!(
                    "a newer checkpoint, up to segment {existing}, exists"
                )));
            }
        }
        if let Some(record) = records.iter().find(|r| r.len() as u64 > MAX_RECORD_BYTES) {
            return Err(WalError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_BYTES,
            });
        }

        let path = self.dir.join(checkpoint_name(upto));
        let tmp = self
            .dir
            .join(format!("{}{TMP_SUFFIX}", checkpoint_name(upto)));
        let bytes = match self.write_checkpoint_file(&tmp, &records) {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        fs::rename(&tmp, &path).map_err(io_error("rename WAL checkpoint into place", &tmp))?;
        // In place, a restart uses it whether or not the directory fsync below succeeds.
        {
            let mut disk = lock(&self.disk);
            disk.checkpoint = Some((upto, bytes));
            self.publish_usage(&disk);
        }
        sync_dir(&self.dir)?;

        // The checkpoint is durable: what it covers can go. A failed deletion is retried by
        // the next checkpoint or the next start.
        let mut first_error = None;
        let list = io_error("list WAL directory", &self.dir);
        let older: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(&list)?
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(|name| name.strip_prefix(CHECKPOINT_PREFIX))
                    .and_then(parse_index)
                    .is_some_and(|other| other < upto)
            })
            .map(|entry| entry.path())
            .collect();
        for old in older {
            if let Err(e) = fs::remove_file(&old) {
                first_error.get_or_insert(io_error("delete old WAL checkpoint", &old)(e));
            }
        }
        let covered: Vec<u64> = lock(&self.disk)
            .segments
            .range(..=upto)
            .map(|(index, _)| *index)
            .collect();
        for index in covered {
            let segment = self.dir.join(segment_name(index));
            match fs::remove_file(&segment) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(io_error("delete WAL segment", &segment)(e));
                    continue;
                }
            }
            let mut disk = lock(&self.disk);
            disk.segments.remove(&index);
            self.publish_usage(&disk);
        }
        if let Err(e) = sync_dir(&self.dir) {
            first_error.get_or_insert(e);
        }
        tracing::info!(
            dir = %self.dir.display(),
            upto,
            records = records.len(),
            bytes,
            "WAL checkpoint written"
        );
        first_error.map_or(Ok(()), Err)
    }

    fn write_checkpoint_file(&self, tmp: &Path, records: &[Vec<u8>]) -> Result<u64, WalError> {
        let file = File::create(tmp).map_err(io_error("create WAL checkpoint", tmp))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let write = io_error("write WAL checkpoint", tmp);
        let mut bytes = HEADER_LEN;
        let mut frame = Vec::new();
        out.write_all(&header(CHECKPOINT_MAGIC)).map_err(&write)?;
        for record in records {
            frame.clear();
            encode_frame(&mut frame, record);
            out.write_all(&frame).map_err(&write)?;
            bytes += frame.len() as u64;
        }
        let file = out
            .into_inner()
            .map_err(|e| io_error("write WAL checkpoint", tmp)(e.into_error()))?;
        file.sync_all()
            .map_err(io_error("fsync WAL checkpoint", tmp))?;
        self.metrics.bytes_written.inc_by(bytes);
        Ok(bytes)
    }
}

impl Wal {
    /// Opens or creates the WAL in `dir`, repairs a damaged tail (see the module doc), and
    /// hands `replay` the records in order: the newest checkpoint's records, then those of
    /// every later segment; returns once all are replayed and the WAL takes appends.
    ///
    /// The records stream: a blocking thread reads and checks them file by file while
    /// `replay` applies them here, at most [`REPLAY_QUEUE_RECORDS`] apart, so a restart
    /// holds one queue of records in memory, not the whole log, and reading and applying
    /// run on two cores.
    pub async fn open(
        dir: &Path,
        options: WalOptions,
        metrics: WalMetrics,
        mut replay: impl FnMut(Vec<u8>),
    ) -> Result<Wal, WalError> {
        let dir = dir.to_path_buf();
        let (records, mut queue) = tokio::sync::mpsc::channel::<Vec<u8>>(REPLAY_QUEUE_RECORDS);
        let reader = {
            let (task_dir, metrics) = (dir.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || {
                // A closed queue means the caller went away; the rest is read and dropped.
                recover(&task_dir, &metrics, &mut |record| {
                    let _ = records.blocking_send(record);
                })
            })
        };
        while let Some(record) = queue.recv().await {
            replay(record);
        }
        let recovered = reader.await.map_err(|e| WalError::Task {
            dir: dir.clone(),
            what: "replay",
            message: e.to_string(),
        })??;
        let disk = DiskUsage {
            segments: recovered.segments,
            checkpoint: recovered.checkpoint,
        };
        let (stopped, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            options,
            metrics,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            active_index: AtomicU64::new(recovered.next_index),
            disk: Mutex::new(DiskUsage::default()),
            checkpoint_lock: Mutex::new(()),
            stopped,
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicUsize::new(0),
        });
        shared.publish_usage(&disk);
        *lock(&shared.disk) = disk;

        let writer = Writer {
            shared: shared.clone(),
            current: None,
            next_index: recovered.next_index,
            needs_repair: false,
            dir_dirty: false,
        };
        std::thread::Builder::new()
            .name("wal-writer".to_string())
            .spawn(move || writer.run())
            .map_err(io_error("start the writer thread of the WAL in", &dir))?;
        Ok(Wal {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// Enqueues `record` now, so WAL order is call order, and returns a future that
    /// resolves once the record is fsynced. Dropping the future does not withdraw the
    /// record.
    pub fn append(
        &self,
        record: Vec<u8>,
    ) -> impl Future<Output = Result<(), WalError>> + Send + 'static {
        let shared = &self.handle.shared;
        let queued = if record.len() as u64 > MAX_RECORD_BYTES {
            Err(WalError::RecordTooLarge {
                len: record.len(),
                max: MAX_RECORD_BYTES,
            })
        } else {
            shared.enqueue(|done| Op::Append { record, done })
        };
        let shared = shared.clone();
        async move { queued?.await.unwrap_or_else(|_| Err(shared.closed())) }
    }

    /// Ordered like [`Wal::append`]: ends the current segment, so later appends go to a
    /// newer one, and resolves to the index of the last segment that may hold the records
    /// appended before this call. That index is what [`Wal::checkpoint`] takes.
    pub fn rotate(&self) -> impl Future<Output = Result<u64, WalError>> + Send + 'static {
        let shared = &self.handle.shared;
        let queued = shared.enqueue(|done| Op::Rotate { done });
        let shared = shared.clone();
        async move { queued?.await.unwrap_or_else(|_| Err(shared.closed())) }
    }

    /// Writes `records` (the head's state as of the end of segment `upto`) as a checkpoint,
    /// atomically (temp file, fsync, rename, directory fsync), then deletes the segments up
    /// to `upto` and the older checkpoint. Replay is then these records followed by the
    /// segments after `upto`. `upto` must come from [`Wal::rotate`]: a checkpoint over the
    /// segment being written, or older than the current checkpoint, is refused.
    pub async fn checkpoint(&self, upto: u64, records: Vec<Vec<u8>>) -> Result<(), WalError> {
        let shared = self.handle.shared.clone();
        tokio::task::spawn_blocking(move || shared.write_checkpoint(upto, records))
            .await
            .map_err(|e| WalError::Task {
                dir: self.handle.shared.dir.clone(),
                what: "checkpoint",
                message: e.to_string(),
            })?
    }

    /// Bytes of segments and checkpoint on disk.
    pub fn disk_bytes(&self) -> u64 {
        lock(&self.handle.shared.disk).total()
    }

    /// The directory of this WAL.
    pub fn dir(&self) -> &Path {
        &self.handle.shared.dir
    }

    /// Refuses further appends, lets the writer commit what is queued, and waits for it to
    /// exit (closing its segment). For an orderly shutdown; dropping every clone also stops
    /// the writer, without waiting.
    pub async fn close(&self) {
        let shared = &self.handle.shared;
        let mut stopped = shared.stopped.subscribe();
        shared.begin_close();
        // The sender lives in `shared`, which we hold, so this cannot fail.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }

    #[cfg(test)]
    fn fail_next_writes(&self, n: usize) {
        self.handle
            .shared
            .fail_writes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The segment the writer appends to.
struct Segment {
    index: u64,
    path: PathBuf,
    file: File,
    /// Length at the end of the last successful commit: where a failed batch is cut back to.
    committed_len: u64,
    written_len: u64,
    synced_len: u64,
}

/// The writer thread's state; only it touches segment files after `open`.
struct Writer {
    shared: Arc<Shared>,
    current: Option<Segment>,
    next_index: u64,
    /// A batch failed: cut the current segment back to `committed_len` first.
    needs_repair: bool,
    /// A segment was created since the last directory fsync.
    dir_dirty: bool,
}

impl Drop for Writer {
    /// Runs on a normal exit and on a panic alike, so no append waits forever on a writer
    /// that is gone.
    fn drop(&mut self) {
        let pending = {
            let mut queue = lock(&self.shared.queue);
            queue.closing = true;
            std::mem::take(&mut queue.ops)
        };
        for op in pending {
            match op {
                Op::Append { done, .. } => {
                    let _ = done.send(Err(self.shared.closed()));
                }
                Op::Rotate { done } => {
                    let _ = done.send(Err(self.shared.closed()));
                }
            }
        }
        self.current = None;
        self.shared.stopped.send_replace(true);
    }
}

impl Writer {
    fn run(mut self) {
        while let Some(batch) = self.next_batch() {
            self.commit(batch);
        }
    }

    /// Waits for work; takes queued operations up to `max_batch_bytes` (at least one).
    /// `None` once closing and drained.
    fn next_batch(&self) -> Option<Vec<Op>> {
        let mut queue = lock(&self.shared.queue);
        while queue.ops.is_empty() {
            if queue.closing {
                return None;
            }
            queue = self
                .shared
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let max = self.shared.options.max_batch_bytes;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while let Some(op) = queue.ops.front() {
            let size = match op {
                Op::Append { record, .. } => record.len() + FRAME_HEADER_LEN as usize,
                Op::Rotate { .. } => 0,
            };
            if !batch.is_empty() && bytes.saturating_add(size) > max {
                break;
            }
            bytes = bytes.saturating_add(size);
            if let Some(op) = queue.ops.pop_front() {
                batch.push(op);
            }
        }
        Some(batch)
    }

    fn commit(&mut self, batch: Vec<Op>) {
        let mut rotations = VecDeque::new();
        match self.write_batch(&batch, &mut rotations) {
            Ok(()) => {
                // Counted before any future resolves, so an acknowledged record is counted.
                let records = batch
                    .iter()
                    .filter(|op| matches!(op, Op::Append { .. }))
                    .count();
                self.shared.metrics.records.inc_by(records as u64);
                for op in batch {
                    match op {
                        Op::Append { done, .. } => {
                            let _ = done.send(Ok(()));
                        }
                        Op::Rotate { done } => {
                            let result = rotations.pop_front().ok_or_else(|| WalError::Task {
                                dir: self.shared.dir.clone(),
                                what: "rotation",
                                message: "no rotation result".to_string(),
                            });
                            let _ = done.send(result);
                        }
                    }
                }
            }
            Err(error) => {
                self.needs_repair = true;
                tracing::error!(
                    %error,
                    operations = batch.len(),
                    "WAL group commit failed; its pushes are not acknowledged"
                );
                for op in batch {
                    match op {
                        Op::Append { done, .. } => {
                            let _ = done.send(Err(error.clone()));
                        }
                        Op::Rotate { done } => {
                            let _ = done.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[Op], rotations: &mut VecDeque<u64>) -> Result<(), WalError> {
        if self.needs_repair {
            self.repair()?;
            self.needs_repair = false;
        }
        let limit = self.shared.options.segment_size_bytes;
        let mut buf = Vec::new();
        for op in batch {
            match op {
                Op::Append { record, .. } => {
                    let frame = FRAME_HEADER_LEN + record.len() as u64;
                    if let Some(segment) = &self.current {
                        let len = segment.written_len + buf.len() as u64;
                        if len > HEADER_LEN && len + frame > limit {
                            self.flush(&mut buf)?;
                            self.sync()?;
                            self.close_current();
                        }
                    }
                    if self.current.is_none() {
                        self.create_segment()?;
                    }
                    encode_frame(&mut buf, record);
                }
                Op::Rotate { .. } => {
                    self.flush(&mut buf)?;
                    self.sync()?;
                    let closed = match &self.current {
                        Some(segment) if segment.written_len > HEADER_LEN => {
                            let index = segment.index;
                            self.close_current();
                            index
                        }
                        // An empty segment stays in use; everything so far is before it.
                        Some(segment) => segment.index.saturating_sub(1),
                        None => self.next_index.saturating_sub(1),
                    };
                    rotations.push_back(closed);
                }
            }
        }
        self.flush(&mut buf)?;
        self.sync()?;
        if self.dir_dirty {
            sync_dir(&self.shared.dir)?;
            self.dir_dirty = false;
        }
        if let Some(segment) = &mut self.current {
            segment.committed_len = segment.written_len;
        }
        Ok(())
    }

    /// Cuts the current segment back to its last committed length, so a half-written
    /// record of a failed batch is not followed by acknowledged ones.
    fn repair(&mut self) -> Result<(), WalError> {
        let Some(segment) = &mut self.current else {
            return Ok(());
        };
        let len = segment.committed_len;
        segment
            .file
            .set_len(len)
            .and_then(|()| segment.file.seek(SeekFrom::Start(len)))
            .and_then(|_| segment.file.sync_all())
            .map_err(io_error(
                "truncate WAL segment after a failed write",
                &segment.path,
            ))?;
        segment.written_len = len;
        segment.synced_len = len;
        let index = segment.index;
        tracing::info!(
            path = %segment.path.display(),
            len,
            "WAL segment cut back to its last committed record after a failed write"
        );
        self.shared.set_segment_size(index, len);
        Ok(())
    }

    fn create_segment(&mut self) -> Result<(), WalError> {
        let index = self.next_index;
        let path = self.shared.dir.join(segment_name(index));
        // Truncate: a file under a new index can only be the debris of a failed attempt.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_error("create WAL segment", &path))?;
        self.dir_dirty = true;
        file.write_all(&header(SEGMENT_MAGIC))
            .map_err(io_error("write WAL segment header", &path))?;
        self.shared.metrics.bytes_written.inc_by(HEADER_LEN);
        self.shared.set_segment_size(index, HEADER_LEN);
        self.current = Some(Segment {
            index,
            path,
            file,
            committed_len: HEADER_LEN,
            written_len: HEADER_LEN,
            synced_len: 0,
        });
        self.next_index = index + 1;
        self.shared.active_index.store(index, Ordering::SeqCst);
        Ok(())
    }

    fn close_current(&mut self) {
        self.current = None;
        self.shared
            .active_index
            .store(self.next_index, Ordering::SeqCst);
    }

    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), WalError> {
        if buf.is_empty() {
            return Ok(());
        }
        let Some(segment) = &mut self.current else {
            return Err(WalError::Task {
                dir: self.shared.dir.clone(),
                what: "write",
                message: "no open segment for pending records".to_string(),
            });
        };
        #[cfg(test)]
        {
            let failing = self
                .shared
                .fail_writes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                let _ = segment.file.write_all(&buf[..buf.len() / 2]);
                buf.clear();
                return Err(io_error("write WAL segment", &segment.path)(
                    io::Error::other("injected failure"),
                ));
            }
        }
        let result = segment.file.write_all(buf);
        let len = buf.len() as u64;
        buf.clear();
        result.map_err(io_error("write WAL segment", &segment.path))?;
        segment.written_len += len;
        self.shared.metrics.bytes_written.inc_by(len);
        self.shared
            .set_segment_size(segment.index, segment.written_len);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        let Some(segment) = &mut self.current else {
            return Ok(());
        };
        if segment.synced_len >= segment.written_len {
            return Ok(());
        }
        let started = Instant::now();
        segment
            .file
            .sync_data()
            .map_err(io_error("fsync WAL segment", &segment.path))?;
        self.shared
            .metrics
            .fsync_duration
            .observe(started.elapsed().as_secs_f64());
        segment.synced_len = segment.written_len;
        Ok(())
    }
}

/// What `open` found on disk (its records went to the sink as they were read).
struct Recovered {
    segments: BTreeMap<u64, u64>,
    checkpoint: Option<(u64, u64)>,
    next_index: u64,
}

/// The result of reading one segment or checkpoint.
struct ReadFile {
    /// Valid records handed to the sink.
    records: usize,
    /// Offset and reason of the first unreadable byte, if any.
    damage: Option<(u64, String)>,
}

/// Reads every valid record of `path` into `sink`, in order, stopping at the first torn or
/// corrupt one.
fn read_file(
    path: &Path,
    magic: [u8; 4],
    sink: &mut dyn FnMut(Vec<u8>),
) -> Result<ReadFile, WalError> {
    let read = io_error("read WAL file", path);
    let file = File::open(path).map_err(&read)?;
    let len = file.metadata().map_err(&read)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut out = ReadFile {
        records: 0,
        damage: None,
    };
    if len < HEADER_LEN {
        out.damage = Some((0, format!("file of {len} bytes is shorter than the header")));
        return Ok(out);
    }
    let mut head = [0u8; HEADER_LEN as usize];
    reader.read_exact(&mut head).map_err(&read)?;
    let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if head[..4] != magic {
        out.damage = Some((0, "bad magic".to_string()));
        return Ok(out);
    }
    if version > FORMAT_VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version != FORMAT_VERSION {
        out.damage = Some((0, format!("bad format version {version}")));
        return Ok(out);
    }
    let mut offset = HEADER_LEN;
    while offset < len {
        let remaining = len - offset;
        if remaining < FRAME_HEADER_LEN {
            out.damage = Some((offset, "torn record header".to_string()));
            break;
        }
        let mut frame = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut frame).map_err(&read)?;
        let size = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let stored = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if u64::from(size) > remaining - FRAME_HEADER_LEN {
            out.damage = Some((
                offset,
                format!("record of {size} bytes runs past the end of the file"),
            ));
            break;
        }
        let mut payload = vec![0u8; size as usize];
        reader.read_exact(&mut payload).map_err(&read)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&frame[..4]);
        crc.update(&payload);
        if crc.finalize() != stored {
            out.damage = Some((offset, "checksum mismatch".to_string()));
            break;
        }
        sink(payload);
        out.records += 1;
        offset += FRAME_HEADER_LEN + u64::from(size);
    }
    Ok(out)
}

/// Cuts `path` at `offset` (deleting it when not even the header is intact), durably.
fn cut_file(path: &Path, offset: u64) -> Result<(), WalError> {
    if offset < HEADER_LEN {
        return fs::remove_file(path).map_err(io_error("delete damaged WAL file", path));
    }
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(offset).and_then(|()| f.sync_all()))
        .map_err(io_error("truncate damaged WAL file", path))
}

fn file_len(path: &Path) -> Result<u64, WalError> {
    fs::metadata(path)
        .map(|m| m.len())
        .map_err(io_error("stat WAL file", path))
}

/// Lists, repairs and reads the WAL directory (blocking).
fn recover(
    dir: &Path,
    metrics: &WalMetrics,
    sink: &mut dyn FnMut(Vec<u8>),
) -> Result<Recovered, WalError> {
    fs::create_dir_all(dir).map_err(io_error("create WAL directory", dir))?;
    let mut segments = BTreeMap::new();
    let mut checkpoints = BTreeMap::new();
    let list = io_error("list WAL directory", dir);
    for entry in fs::read_dir(dir).map_err(&list)? {
        let entry = entry.map_err(&list)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        if name.ends_with(TMP_SUFFIX) {
            tracing::info!(path = %path.display(), "removing an unfinished WAL checkpoint");
            fs::remove_file(&path).map_err(io_error("remove unfinished WAL checkpoint", &path))?;
        } else if let Some(index) = parse_index(name) {
            segments.insert(index, path);
        } else if let Some(upto) = name.strip_prefix(CHECKPOINT_PREFIX).and_then(parse_index) {
            checkpoints.insert(upto, path);
        }
    }

    let mut records = 0usize;
    let mut checkpoint = None;
    let mut changed = false;
    if let Some((&upto, path)) = checkpoints.iter().next_back() {
        let read = read_file(path, CHECKPOINT_MAGIC, sink)?;
        if let Some((offset, reason)) = read.damage {
            metrics.corruptions.inc();
            tracing::warn!(
                path = %path.display(),
                offset,
                reason,
                kept_records = read.records,
                "WAL checkpoint is damaged; replaying the records before the damage"
            );
            cut_file(path, offset)?;
            changed = true;
        }
        records = read.records;
        if path.exists() {
            checkpoint = Some((upto, file_len(path)?));
        }
        // Leftovers of a checkpoint interrupted before its deletions.
        for (_, old) in checkpoints.range(..upto) {
            fs::remove_file(old).map_err(io_error("delete old WAL checkpoint", old))?;
            changed = true;
        }
        let covered: Vec<u64> = segments.range(..=upto).map(|(i, _)| *i).collect();
        for index in covered {
            if let Some(old) = segments.remove(&index) {
                fs::remove_file(&old).map_err(io_error("delete checkpointed WAL segment", &old))?;
                changed = true;
            }
        }
    }

    let mut sizes = BTreeMap::new();
    let mut expected = checkpoint.map(|(upto, _)| upto + 1);
    let indices: Vec<u64> = segments.keys().copied().collect();
    for (position, &index) in indices.iter().enumerate() {
        let path = &segments[&index];
        if let Some(expected) = expected.filter(|e| *e != index) {
            tracing::warn!(
                dir = %dir.display(),
                expected,
                found = index,
                "WAL segments are missing; replaying the ones present"
            );
        }
        expected = Some(index + 1);
        let read = read_file(path, SEGMENT_MAGIC, sink)?;
        records += read.records;
        let Some((offset, reason)) = read.damage else {
            sizes.insert(index, file_len(path)?);
            continue;
        };
        metrics.corruptions.inc();
        let later = &indices[position + 1..];
        if later.is_empty() {
            tracing::warn!(
                path = %path.display(),
                offset,
                reason,
                "truncating the WAL's torn or corrupt tail"
            );
        } else {
            tracing::warn!(
                path = %path.display(),
                offset,
                reason,
                dropped_segments = ?later,
                "WAL segment is corrupt before its end; truncating it and dropping every later \
                 segment"
            );
        }
        cut_file(path, offset)?;
        if offset >= HEADER_LEN {
            sizes.insert(index, offset);
        }
        for later_index in later {
            let later_path = &segments[later_index];
            fs::remove_file(later_path)
                .map_err(io_error("delete WAL segment after corruption", later_path))?;
        }
        changed = true;
        break;
    }
    if changed {
        sync_dir(dir)?;
    }

    // Continue after the last segment still present, so indices stay contiguous.
    let next_index = sizes
        .keys()
        .next_back()
        .copied()
        .or_else(|| {
            // A segment cut down to nothing is gone; reuse its index.
            segments.keys().next().map(|first| first.saturating_sub(1))
        })
        .max(checkpoint.map(|(upto, _)| upto))
        .map_or(1, |last| last + 1);
    tracing::info!(
        dir = %dir.display(),
        segments = sizes.len(),
        checkpoint = ?checkpoint.map(|(upto, _)| upto),
        records,
        "WAL opened"
    );
    Ok(Recovered {
        segments: sizes,
        checkpoint,
        next_index,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn metrics() -> WalMetrics {
        WalMetrics::new(&Registry::new()).unwrap()
    }

    fn options(segment_size_bytes: u64) -> WalOptions {
        WalOptions {
            segment_size_bytes,
            ..WalOptions::default()
        }
    }

    fn record(i: usize) -> Vec<u8> {
        format!("record-{i:05}").into_bytes()
    }

    async fn open(dir: &Path, opts: WalOptions) -> (Wal, Vec<Vec<u8>>, WalMetrics) {
        let m = metrics();
        let mut records = Vec::new();
        let wal = Wal::open(dir, opts, m.clone(), |r| records.push(r))
            .await
            .unwrap();
        (wal, records, m)
    }

    async fn append_all(wal: &Wal, range: std::ops::Range<usize>) {
        for i in range {
            wal.append(record(i)).await.unwrap();
        }
    }

    fn segment_files(dir: &Path) -> Vec<u64> {
        let mut indices: Vec<u64> = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| parse_index(e.unwrap().file_name().to_str().unwrap()))
            .collect();
        indices.sort_unstable();
        indices
    }

    fn expected(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
        range.map(record).collect()
    }

    #[tokio::test]
    async fn append_and_reopen_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, records, m) = open(dir.path(), WalOptions::default()).await;
        assert!(records.is_empty());
        append_all(&wal, 0..10).await;
        wal.append(Vec::new()).await.unwrap();
        assert_eq!(m.records.get(), 11);
        assert!(m.bytes_written.get() > 0);
        assert_eq!(wal.disk_bytes(), m.bytes_written.get());
        wal.close().await;
        assert!(matches!(
            wal.append(record(99)).await,
            Err(WalError::Closed { .. })
        ));
        drop(wal);

        let (wal, records, _) = open(dir.path(), WalOptions::default()).await;
        let mut want = expected(0..10);
        want.push(Vec::new());
        assert_eq!(records, want);
        // A restart appends to a new segment and both replay.
        append_all(&wal, 10..12).await;
        wal.close().await;
        let (_, records, m) = open(dir.path(), WalOptions::default()).await;
        want.extend(expected(10..12));
        assert_eq!(records, want);
        assert_eq!(segment_files(dir.path()), vec![1, 2]);
        assert_eq!(m.segments.get(), 2);
        assert_eq!(m.corruptions.get(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_fsyncs_and_keep_order() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, m) = open(dir.path(), WalOptions::default()).await;
        let n = 500;
        // Enqueue in a known order, then wait for all of them from separate tasks.
        let pending: Vec<_> = (0..n)
            .map(|i| tokio::spawn(wal.append(record(i))))
            .collect();
        for task in pending {
            task.await.unwrap().unwrap();
        }
        let fsyncs = m.fsync_duration.get_sample_count();
        assert!(
            fsyncs >= 1 && fsyncs < n as u64,
            "{fsyncs} fsyncs for {n} records"
        );
        assert_eq!(m.records.get(), n as u64);
        wal.close().await;
        let (_, records, _) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, expected(0..n));
    }

    #[tokio::test]
    async fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, 0..5).await;
        wal.close().await;
        let segment = dir.path().join(segment_name(1));
        let len = fs::metadata(&segment).unwrap().len();
        // Cut the last record in the middle of its payload.
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(len - 3)
            .unwrap();

        let (wal, records, m) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, expected(0..4));
        assert_eq!(m.corruptions.get(), 1);
        let good_len = len - (FRAME_HEADER_LEN + record(4).len() as u64);
        assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
        append_all(&wal, 5..7).await;
        wal.close().await;

        let (_, records, m) = open(dir.path(), WalOptions::default()).await;
        let mut want = expected(0..4);
        want.extend(expected(5..7));
        assert_eq!(records, want);
        assert_eq!(m.corruptions.get(), 0);
    }

    #[tokio::test]
    async fn torn_record_header_and_torn_segment_header_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, 0..3).await;
        wal.close().await;
        let segment = dir.path().join(segment_name(1));
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&[7, 0, 0]).unwrap();
        drop(file);
        // A later segment whose header never made it to disk.
        fs::write(dir.path().join(segment_name(2)), b"SW").unwrap();

        let (wal, records, m) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, expected(0..3));
        assert_eq!(m.corruptions.get(), 1);
        assert_eq!(segment_files(dir.path()), vec![1]);
        append_all(&wal, 3..4).await;
        wal.close().await;
        let (_, records, _) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, expected(0..4));
    }

    #[tokio::test]
    async fn flipped_byte_in_last_record_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, 0..5).await;
        wal.close().await;
        let segment = dir.path().join(segment_name(1));
        let mut bytes = fs::read(&segment).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x40;
        fs::write(&segment, &bytes).unwrap();

        let (wal, records, m) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, expected(0..4));
        assert_eq!(m.corruptions.get(), 1);
        append_all(&wal, 5..6).await;
        wal.close().await;
        let (_, records, _) = open(dir.path(), WalOptions::default()).await;
        let mut want = expected(0..4);
        want.push(record(5));
        assert_eq!(records, want);
    }

    #[tokio::test]
    async fn corruption_in_an_earlier_segment_drops_everything_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // Three records of 20 bytes framed per segment.
        let frame = FRAME_HEADER_LEN + record(0).len() as u64;
        let opts = options(HEADER_LEN + 3 * frame);
        let (wal, _, _) = open(dir.path(), opts.clone()).await;
        append_all(&wal, 0..9).await;
        wal.close().await;
        assert_eq!(segment_files(dir.path()), vec![1, 2, 3]);
        // Damage the length field of the second record of segment 2 (records 3, 4, 5).
        let segment = dir.path().join(segment_name(2));
        let mut bytes = fs::read(&segment).unwrap();
        bytes[(HEADER_LEN + frame) as usize] ^= 0x01;
        fs::write(&segment, &bytes).unwrap();

        let (wal, records, m) = open(dir.path(), opts.clone()).await;
        assert_eq!(records, expected(0..4));
        assert_eq!(m.corruptions.get(), 1);
        assert_eq!(segment_files(dir.path()), vec![1, 2]);
        assert_eq!(
            fs::metadata(&segment).unwrap().len(),
            HEADER_LEN + frame,
            "segment 2 keeps its first record"
        );
        append_all(&wal, 100..102).await;
        wal.close().await;
        let (_, records, m) = open(dir.path(), opts).await;
        let mut want = expected(0..4);
        want.extend(expected(100..102));
        assert_eq!(records, want);
        assert_eq!(m.corruptions.get(), 0);
        assert_eq!(segment_files(dir.path()), vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn bad_header_in_an_earlier_segment_drops_it_and_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let frame = FRAME_HEADER_LEN + record(0).len() as u64;
        let opts = options(HEADER_LEN + 2 * frame);
        let (wal, _, _) = open(dir.path(), opts.clone()).await;
        append_all(&wal, 0..6).await;
        wal.close().await;
        let segment = dir.path().join(segment_name(2));
        let mut bytes = fs::read(&segment).unwrap();
        bytes[0] = b'X';
        fs::write(&segment, &bytes).unwrap();

        let (wal, records, m) = open(dir.path(), opts.clone()).await;
        assert_eq!(records, expected(0..2));
        assert_eq!(m.corruptions.get(), 1);
        assert_eq!(segment_files(dir.path()), vec![1]);
        append_all(&wal, 6..7).await;
        wal.close().await;
        let (_, records, _) = open(dir.path(), opts).await;
        let mut want = expected(0..2);
        want.push(record(6));
        assert_eq!(records, want);
        assert_eq!(segment_files(dir.path()), vec![1, 2]);
    }

    #[tokio::test]
    async fn newer_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, 0..1).await;
        wal.close().await;
        let segment = dir.path().join(segment_name(1));
        let mut bytes = fs::read(&segment).unwrap();
        bytes[4] = 2;
        fs::write(&segment, &bytes).unwrap();
        let err = Wal::open(dir.path(), WalOptions::default(), metrics(), drop)
            .await
            .unwrap_err();
        assert!(matches!(err, WalError::UnsupportedVersion { found: 2, .. }));
        assert!(err.to_string().contains("00000001"), "{err}");
        assert_eq!(fs::read(&segment).unwrap(), bytes, "left untouched");
    }

    #[tokio::test]
    async fn rotate_and_checkpoint_delete_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, m) = open(dir.path(), WalOptions::default()).await;
        // Nothing written yet: everything so far is "before segment 1".
        assert_eq!(wal.rotate().await.unwrap(), 0);
        append_all(&wal, 0..3).await;
        let upto = wal.rotate().await.unwrap();
        assert_eq!(upto, 1);
        // A second rotation with nothing new in between does not create a segment.
        assert_eq!(wal.rotate().await.unwrap(), 1);
        append_all(&wal, 3..5).await;
        assert_eq!(segment_files(dir.path()), vec![1, 2]);

        // The segment being written cannot be checkpointed.
        let err = wal.checkpoint(2, Vec::new()).await.unwrap_err();
        assert!(matches!(err, WalError::Checkpoint { upto: 2, .. }), "{err}");

        let before = wal.disk_bytes();
        let state = vec![b"head-state-a".to_vec(), b"head-state-b".to_vec()];
        wal.checkpoint(upto, state.clone()).await.unwrap();
        assert_eq!(segment_files(dir.path()), vec![2]);
        assert!(dir.path().join(checkpoint_name(1)).exists());
        assert!(wal.disk_bytes() < before + 100);
        assert_eq!(m.segments.get(), 1);
        assert_eq!(m.disk_bytes.get() as u64, wal.disk_bytes());

        // An older checkpoint than the current one is refused.
        assert!(wal.checkpoint(0, Vec::new()).await.is_err());

        // A later checkpoint replaces this one.
        append_all(&wal, 5..6).await;
        let upto = wal.rotate().await.unwrap();
        assert_eq!(upto, 2);
        append_all(&wal, 6..7).await;
        let mut state2 = state.clone();
        state2.push(b"head-state-c".to_vec());
        wal.checkpoint(upto, state2.clone()).await.unwrap();
        assert!(!dir.path().join(checkpoint_name(1)).exists());
        assert_eq!(segment_files(dir.path()), vec![3]);
        wal.close().await;

        let (wal, records, m) = open(dir.path(), WalOptions::default()).await;
        let mut want = state2;
        want.push(record(6));
        assert_eq!(records, want);
        let on_disk: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(wal.disk_bytes(), on_disk);
        assert_eq!(m.segments.get(), 1);
        // Appends after reopen go past the checkpoint's segments.
        append_all(&wal, 7..8).await;
        assert_eq!(segment_files(dir.path()), vec![3, 4]);
    }

    #[tokio::test]
    async fn interrupted_checkpoint_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, 0..2).await;
        let upto = wal.rotate().await.unwrap();
        append_all(&wal, 2..3).await;
        wal.close().await;
        // As if the process died after the rename, before deleting the covered segment, with
        // an older checkpoint and a half-written temp file still around.
        let mut checkpoint = header(CHECKPOINT_MAGIC).to_vec();
        encode_frame(&mut checkpoint, b"state");
        fs::write(dir.path().join(checkpoint_name(upto)), &checkpoint).unwrap();
        fs::write(
            dir.path().join(checkpoint_name(0)),
            header(CHECKPOINT_MAGIC),
        )
        .unwrap();
        fs::write(dir.path().join("checkpoint.00000002.tmp"), b"partial").unwrap();

        let (_, records, _) = open(dir.path(), WalOptions::default()).await;
        let mut want = vec![b"state".to_vec()];
        want.push(record(2));
        assert_eq!(records, want);
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["00000002", "checkpoint.00000001"]);
    }

    #[tokio::test]
    async fn a_log_longer_than_the_replay_queue_streams_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let frame = FRAME_HEADER_LEN + record(0).len() as u64;
        // Many segments, a checkpoint, and many times the queue's length of records.
        let (wal, _, _) = open(dir.path(), options(HEADER_LEN + 16 * frame)).await;
        let total = 10 * REPLAY_QUEUE_RECORDS;
        append_all(&wal, 0..total / 2).await;
        let upto = wal.rotate().await.unwrap();
        let kept: Vec<Vec<u8>> = (0..total / 2).map(record).collect();
        wal.checkpoint(upto, kept).await.unwrap();
        append_all(&wal, total / 2..total).await;
        wal.close().await;
        let (wal, records, _) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, (0..total).map(record).collect::<Vec<_>>());
        wal.close().await;
    }

    #[tokio::test]
    async fn segments_roll_over_at_segment_size() {
        let dir = tempfile::tempdir().unwrap();
        let frame = FRAME_HEADER_LEN + record(0).len() as u64;
        let limit = HEADER_LEN + 4 * frame + frame / 2;
        let (wal, _, _) = open(dir.path(), options(limit)).await;
        append_all(&wal, 0..10).await;
        // A record larger than a segment gets one of its own.
        let big = vec![0xAB; 3 * limit as usize];
        wal.append(big.clone()).await.unwrap();
        append_all(&wal, 10..12).await;
        // Many records in one group commit still roll over.
        let batch: Vec<_> = (12..30).map(|i| wal.append(record(i))).collect();
        for done in batch {
            done.await.unwrap();
        }
        wal.close().await;

        let indices = segment_files(dir.path());
        for index in &indices {
            let len = fs::metadata(dir.path().join(segment_name(*index)))
                .unwrap()
                .len();
            assert!(len <= limit || len == HEADER_LEN + FRAME_HEADER_LEN + big.len() as u64);
        }
        // 10 records: 4 + 4 + 2; the big one alone; then 2 + 18 = 20 records: 5 segments.
        assert_eq!(indices, (1..=9).collect::<Vec<u64>>());
        let (_, records, _) = open(dir.path(), options(limit)).await;
        let mut want = expected(0..10);
        want.push(big);
        want.extend(expected(10..30));
        assert_eq!(records, want);
    }

    #[tokio::test]
    async fn failed_write_fails_its_batch_and_later_appends_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, m) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, 0..2).await;
        wal.fail_next_writes(1);
        let err = wal.append(record(2)).await.unwrap_err();
        assert!(err.to_string().contains("write WAL segment"), "{err}");
        assert!(err.to_string().contains("00000001"), "{err}");
        append_all(&wal, 3..5).await;
        assert_eq!(m.records.get(), 4);
        wal.close().await;
        let (_, records, m) = open(dir.path(), WalOptions::default()).await;
        let mut want = expected(0..2);
        want.extend(expected(3..5));
        assert_eq!(records, want);
        assert_eq!(
            m.corruptions.get(),
            0,
            "the half-written record was cut back"
        );
    }

    #[tokio::test]
    async fn dropping_every_handle_stops_the_writer_after_draining() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = open(dir.path(), WalOptions::default()).await;
        let shared = wal.handle.shared.clone();
        let done = wal.append(record(0));
        drop(wal);
        done.await.unwrap();
        shared
            .stopped
            .subscribe()
            .wait_for(|stopped| *stopped)
            .await
            .unwrap();
        let (_, records, _) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(records, expected(0..1));
    }

    #[test]
    fn metrics_register_once_per_registry() {
        let registry = Registry::new();
        WalMetrics::new(&registry).unwrap();
        assert!(WalMetrics::new(&registry).is_err());
        WalMetrics::new(&Registry::new()).unwrap();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for name in [
            "strata_ingester_wal_bytes_written_total",
            "strata_ingester_wal_records_total",
            "strata_ingester_wal_fsync_duration_seconds",
            "strata_ingester_wal_segments",
            "strata_ingester_wal_corruptions_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
    }
}
