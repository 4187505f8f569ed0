//! HA-pair deduplication (Mimir's HA tracker): of the Prometheus replicas that scrape the same
//! targets and send the same `cluster` label with different replica labels, the distributors
//! accept one, the elected replica, per (tenant, cluster), and drop the others' requests with
//! 202 until the elected one has sent nothing for `-distributor.ha-tracker.failover-timeout`.
//!
//! Every distributor keeps the elections in a cache that answers pushes without a round trip.
//! The cache is fed by a watch on the KV store (etcd across distributors, or in-process), so
//! a failover that one distributor decides reaches all of them. The KV store is written only
//! (a) to elect a replica for a cluster nobody knows yet, (b) to fail over, both with
//! compare-and-swap on the record's revision, in the request, and (c) in the background, at
//! most every `-distributor.ha-tracker.update-timeout` (± jitter), to record that the elected
//! replica is still sending.
//!
//! When the KV store is unreachable, the cached elections keep working: requests from an
//! elected replica are accepted, the others dropped with 202, as before. What cannot happen
//! then is a change: no failover (the surviving replica's samples are dropped until the store
//! is back, as in Mimir) and no election for a cluster this distributor has never seen (503,
//! the sender retries). After an outage longer than the failover timeout's margin over the
//! update timeout, a failover additionally waits a full failover timeout counted from the
//! recovery, so that the distributor that serves the elected replica has time to record it
//! before another one takes its silence during the outage for a failure. (Shorter hiccups,
//! such as a watch re-established at once, do not delay failovers.)

pub mod etcd;
pub mod http;
pub mod kv;
pub mod peek;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use strata_shared::duration::ConfigDuration;
use strata_shared::limits::LimitsConfig;
use strata_shared::proto::prometheus::{LabelBytes, WriteRequestBytes};

use kv::{CasOutcome, HaKv, KvError, MemoryKv, ReplicaDesc, Versioned, WatchEvent};

/// `distributor.ha_tracker:` — the HA tracker's flags (Mimir's names).
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct HaTrackerConfig {
    /// Enable the distributors' HA tracker, which accepts samples from one replica of each Prometheus HA pair (tenants opt in with -distributor.ha-tracker.enable-for-all-users or accept_ha_samples).
    #[arg(
        long = "distributor.ha-tracker.enable",
        id = "distributor.ha_tracker.enable_ha_tracker",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub enable_ha_tracker: bool,
    /// Write the elected replica's last-seen time to the KV store only after this long since the stored time.
    #[arg(
        long = "distributor.ha-tracker.update-timeout",
        id = "distributor.ha_tracker.ha_tracker_update_timeout",
        default_value = "15s"
    )]
    pub ha_tracker_update_timeout: ConfigDuration,
    /// Maximum jitter (±) applied to the update timeout, to spread the KV writes of the distributors over time.
    #[arg(
        long = "distributor.ha-tracker.update-timeout-jitter-max",
        id = "distributor.ha_tracker.ha_tracker_update_timeout_jitter_max",
        default_value = "5s"
    )]
    pub ha_tracker_update_timeout_jitter_max: ConfigDuration,
    /// When the elected replica has sent nothing for this long, the next replica of its cluster that sends is elected. Must be at least 1s greater than the update timeout plus the jitter.
    #[arg(
        long = "distributor.ha-tracker.failover-timeout",
        id = "distributor.ha_tracker.ha_tracker_failover_timeout",
        default_value = "30s"
    )]
    pub ha_tracker_failover_timeout: ConfigDuration,
    #[command(flatten)]
    pub kvstore: HaKvStoreConfig,
}

/// `distributor.ha_tracker.kvstore:` — where the elections are kept.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct HaKvStoreConfig {
    /// KV store of the HA tracker: memory (this process only; one distributor) or etcd (shared by every distributor).
    #[arg(
        long = "distributor.ha-tracker.store",
        id = "distributor.ha_tracker.kvstore.store",
        default_value = "memory"
    )]
    pub store: String,
    /// Prefix of the HA tracker's keys in the KV store.
    #[arg(
        long = "distributor.ha-tracker.prefix",
        id = "distributor.ha_tracker.kvstore.prefix",
        default_value = "ha-tracker/"
    )]
    pub prefix: String,
    #[command(flatten)]
    pub etcd: HaEtcdConfig,
}

/// `distributor.ha_tracker.kvstore.etcd:`
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct HaEtcdConfig {
    /// The etcd endpoints, comma-separated host:port (or http:// URLs).
    #[arg(
        long = "distributor.ha-tracker.etcd.endpoints",
        id = "distributor.ha_tracker.kvstore.etcd.endpoints",
        default_value = ""
    )]
    pub endpoints: String,
    /// Timeout to connect to etcd, and to wait for any answer of it (a hung etcd is detected after about twice this).
    #[arg(
        long = "distributor.ha-tracker.etcd.dial-timeout",
        id = "distributor.ha_tracker.kvstore.etcd.dial_timeout",
        default_value = "10s"
    )]
    pub dial_timeout: ConfigDuration,
}

impl HaTrackerConfig {
    /// Mimir's rule: a failover must not happen between two updates of a live replica.
    pub fn validate(&self) -> anyhow::Result<()> {
        let update = self.ha_tracker_update_timeout.0;
        let jitter = self.ha_tracker_update_timeout_jitter_max.0;
        let failover = self.ha_tracker_failover_timeout.0;
        let min = update + jitter + Duration::from_secs(1);
        anyhow::ensure!(
            failover >= min,
            "-distributor.ha-tracker.failover-timeout ({}) must be at least 1s greater than -distributor.ha-tracker.update-timeout ({}) + -distributor.ha-tracker.update-timeout-jitter-max ({}), that is at least {}",
            self.ha_tracker_failover_timeout,
            self.ha_tracker_update_timeout,
            self.ha_tracker_update_timeout_jitter_max,
            ConfigDuration(min)
        );
        anyhow::ensure!(
            !update.is_zero(),
            "-distributor.ha-tracker.update-timeout must be greater than 0"
        );
        match self.kvstore.store.as_str() {
            "memory" | "inmemory" => Ok(()),
            "etcd" => {
                anyhow::ensure!(
                    !self.kvstore.etcd.endpoints.trim().is_empty(),
                    "-distributor.ha-tracker.store=etcd needs -distributor.ha-tracker.etcd.endpoints"
                );
                Ok(())
            }
            other => anyhow::bail!(
                "unknown -distributor.ha-tracker.store {other:?}: expected memory or etcd"
            ),
        }
    }
}

/// The per-tenant settings the tracker reads (`limits:` `accept_ha_samples`,
/// `ha_cluster_label`, `ha_replica_label`).
#[derive(Clone, Copy, Debug)]
pub struct HaLimits<'a> {
    pub accept_ha_samples: bool,
    pub cluster_label: &'a str,
    pub replica_label: &'a str,
    /// `ha_max_clusters`: clusters the tracker keeps for the tenant (0: no limit).
    pub max_clusters: usize,
    /// `max_label_value_length`: a longer replica value makes the request a non-HA one (it
    /// then fails validation), as in Mimir, rather than an election key.
    pub max_label_value_length: usize,
}

impl<'a> HaLimits<'a> {
    pub fn from_limits(limits: &'a LimitsConfig) -> Self {
        Self {
            accept_ha_samples: limits.accept_ha_samples,
            cluster_label: &limits.ha_cluster_label,
            replica_label: &limits.ha_replica_label,
            max_clusters: limits.ha_max_clusters,
            max_label_value_length: limits.max_label_value_length,
        }
    }
}

/// Why a push was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaError {
    /// From a replica that is not the elected one: answered 202, the sender drops it.
    #[error("{0}")]
    Deduplicated(String),
    /// No election can be made now (the KV store is unreachable): 503, the sender retries.
    #[error("{0}")]
    Unavailable(String),
    /// A new cluster over the tenant's `ha_max_clusters`: 400, the sender drops it.
    #[error("{0}")]
    TooManyClusters(String),
}

/// The tracker's verdict on one (tenant, cluster, replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    NotElected { elected: String },
    Unavailable(String),
    TooManyClusters { limit: usize },
}

/// Milliseconds since the epoch; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// One cluster's election as this distributor knows it.
#[derive(Debug, Clone)]
struct Entry {
    elected: ReplicaDesc,
    revision: i64,
    /// When this distributor last accepted a request from the elected replica (0: never).
    elected_last_seen: i64,
    /// The last other replica this distributor heard from, and when.
    non_elected: Option<(String, i64)>,
    /// When this distributor's cache last took a value from the store.
    updated_at: i64,
}

#[derive(Debug, Default)]
struct State {
    /// tenant → cluster → election.
    clusters: HashMap<String, HashMap<String, Entry>>,
    /// Since when the watch on the store has been established (None: not now).
    watch_since: Option<i64>,
    /// Consecutive failed store operations, since when, and when the next one may be tried.
    kv_failures: u32,
    kv_failing_since: i64,
    kv_retry_at: i64,
    kv_last_error: String,
    /// When the store last came back after an outage long enough to have kept the elected
    /// replicas' distributors from recording them (0: never).
    kv_recovered_at: i64,
}

/// One row of the status page.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub tenant: String,
    pub cluster: String,
    pub replica: String,
    /// When the replica was elected (ms).
    pub elected_at: i64,
    /// The elected replica's last-seen time in the KV store (ms).
    pub received_at: i64,
    /// When this distributor last accepted from the elected replica (ms, 0: never).
    pub last_seen_here: i64,
    pub elected_changes: u64,
    pub revision: i64,
    /// When this distributor's cache last changed for this cluster (ms).
    pub updated_at: i64,
    /// When a failover becomes possible if the elected replica stays silent (ms).
    pub failover_at: i64,
}

#[derive(Debug, Clone)]
struct HaMetrics {
    deduped_samples: IntCounterVec,
    non_ha_samples: IntCounterVec,
    elected_replica_changes: IntCounterVec,
    elected_replica_timestamp: GaugeVec,
    kv_cas: IntCounterVec,
    kv_errors: IntCounterVec,
    watch_healthy: Gauge,
    cleanup_started: IntCounter,
    cleanup_marked: IntCounter,
    cleanup_deleted: IntCounter,
    cleanup_failed: IntCounter,
}

impl HaMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            deduped_samples: IntCounterVec::new(
                Opts::new(
                    "strata_distributor_deduped_samples_total",
                    "Samples dropped because they came from an HA replica that is not the elected one (answered 202).",
                ),
                &["user", "cluster"],
            )?,
            non_ha_samples: IntCounterVec::new(
                Opts::new(
                    "strata_distributor_non_ha_samples_received_total",
                    "Samples of tenants with HA deduplication on whose requests lack the cluster or replica label.",
                ),
                &["user"],
            )?,
            elected_replica_changes: IntCounterVec::new(
                Opts::new(
                    "strata_ha_tracker_elected_replica_changes_total",
                    "Times this distributor saw the elected replica of a cluster change (its own failovers and those learned through the KV store).",
                ),
                &["user", "cluster"],
            )?,
            elected_replica_timestamp: GaugeVec::new(
                Opts::new(
                    "strata_ha_tracker_elected_replica_timestamp_seconds",
                    "The elected replica's last-seen time stored in the KV store.",
                ),
                &["user", "cluster"],
            )?,
            kv_cas: IntCounterVec::new(
                Opts::new(
                    "strata_ha_tracker_kv_store_cas_total",
                    "Compare-and-swap writes to the KV store, by tenant and cluster.",
                ),
                &["user", "cluster"],
            )?,
            kv_errors: IntCounterVec::new(
                Opts::new(
                    "strata_ha_tracker_kv_errors_total",
                    "Failed KV store operations of the HA tracker, by operation.",
                ),
                &["operation"],
            )?,
            watch_healthy: Gauge::with_opts(Opts::new(
                "strata_ha_tracker_kv_watch_healthy",
                "1 while the HA tracker's watch on the KV store is established.",
            ))?,
            cleanup_started: IntCounter::new(
                "strata_ha_tracker_replicas_cleanup_started_total",
                "Clean-up passes started over the HA tracker's records.",
            )?,
            cleanup_marked: IntCounter::new(
                "strata_ha_tracker_replicas_cleanup_marked_for_deletion_total",
                "HA tracker records marked for deletion: their cluster had sent nothing for the deletion timeout.",
            )?,
            cleanup_deleted: IntCounter::new(
                "strata_ha_tracker_replicas_cleanup_deleted_total",
                "HA tracker records deleted from the KV store, a deletion timeout after they were marked.",
            )?,
            cleanup_failed: IntCounter::new(
                "strata_ha_tracker_replicas_cleanup_delete_failed_total",
                "HA tracker records that could not be marked for deletion or deleted (KV store errors).",
            )?,
        };
        registry.register(Box::new(m.deduped_samples.clone()))?;
        registry.register(Box::new(m.non_ha_samples.clone()))?;
        registry.register(Box::new(m.elected_replica_changes.clone()))?;
        registry.register(Box::new(m.elected_replica_timestamp.clone()))?;
        registry.register(Box::new(m.kv_cas.clone()))?;
        registry.register(Box::new(m.kv_errors.clone()))?;
        registry.register(Box::new(m.watch_healthy.clone()))?;
        registry.register(Box::new(m.cleanup_started.clone()))?;
        registry.register(Box::new(m.cleanup_marked.clone()))?;
        registry.register(Box::new(m.cleanup_deleted.clone()))?;
        registry.register(Box::new(m.cleanup_failed.clone()))?;
        Ok(m)
    }
}

/// Timeouts of one tracker, in ms; `update` includes this tracker's jitter.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub update_ms: i64,
    pub failover_ms: i64,
}

/// A record whose cluster has sent nothing for this long is marked for deletion, and a
/// marked record is deleted this long after it was marked (Mimir's constants).
pub const CLEANUP_DELETION_TIMEOUT_MS: i64 = 30 * 60 * 1000;
/// How often each distributor runs the clean-up, ± 20 % drawn once per process.
const CLEANUP_PERIOD: Duration = Duration::from_secs(30 * 60);

const KV_BACKOFF_MIN_MS: i64 = 100;
const KV_BACKOFF_MAX_MS: i64 = 2000;

/// The HA tracker of one distributor.
pub struct HaTracker {
    kv: Arc<dyn HaKv>,
    timeouts: Timeouts,
    clock: Clock,
    state: Mutex<State>,
    /// Serialises this distributor's in-request elections and failovers.
    inband: tokio::sync::Mutex<()>,
    metrics: HaMetrics,
}

impl std::fmt::Debug for HaTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaTracker")
            .field("kv", &self.kv.describe())
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// What the stored record says to do with a request from `replica` at `now`.
#[derive(Debug, PartialEq)]
enum Decision {
    Keep(ReplicaDesc),
    Write(ReplicaDesc),
}

fn key_of(tenant: &str, cluster: &str) -> String {
    format!("{tenant}/{cluster}")
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A value in [-max, max), random per process (Mimir draws the jitter once per distributor).
fn jitter_ms(max: Duration) -> i64 {
    let max = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
    if max == 0 {
        return 0;
    }
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(wall_clock_ms() as u64);
    let r = (hasher.finish() % (2 * max as u64)) as i64;
    r - max
}

impl HaTracker {
    /// Validates the flags, opens the store and starts the watch and the background updates.
    /// Needs a Tokio runtime.
    pub fn from_config(config: &HaTrackerConfig, registry: &Registry) -> anyhow::Result<Arc<Self>> {
        config.validate()?;
        let kv: Arc<dyn HaKv> = match config.kvstore.store.as_str() {
            "etcd" => Arc::new(etcd::EtcdKv::new(
                &config.kvstore.etcd.endpoints,
                &config.kvstore.prefix,
                config.kvstore.etcd.dial_timeout.0,
            )?),
            _ => Arc::new(MemoryKv::new()),
        };
        let jitter = jitter_ms(config.ha_tracker_update_timeout_jitter_max.0);
        let timeouts = Timeouts {
            update_ms: config.ha_tracker_update_timeout.as_millis_i64() + jitter,
            failover_ms: config.ha_tracker_failover_timeout.as_millis_i64(),
        };
        tracing::info!(
            kv = %kv.describe(),
            update_timeout_ms = timeouts.update_ms,
            failover_timeout_ms = timeouts.failover_ms,
            "HA tracker enabled"
        );
        let tracker = Self::new(kv, timeouts, Arc::new(wall_clock_ms), registry)?;
        tracker.start();
        Ok(tracker)
    }

    /// A tracker on `kv`; nothing runs until [`HaTracker::start`].
    pub fn new(
        kv: Arc<dyn HaKv>,
        timeouts: Timeouts,
        clock: Clock,
        registry: &Registry,
    ) -> Result<Arc<Self>, prometheus::Error> {
        Ok(Arc::new(Self {
            kv,
            timeouts,
            clock,
            state: Mutex::new(State::default()),
            inband: tokio::sync::Mutex::new(()),
            metrics: HaMetrics::new(registry)?,
        }))
    }

    /// Spawns the watch on the store and the periodic update of elected replicas' last-seen
    /// times (every quarter of the update timeout, at most every second).
    pub fn start(self: &Arc<Self>) {
        self.start_watch();
        let period = Duration::from_millis((self.timeouts.update_ms / 4).clamp(50, 1000) as u64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                strata_shared::supervise::unit("ha-tracker-update", this.update_kv_once()).await;
            }
        });
        let jitter = jitter_ms(CLEANUP_PERIOD / 5);
        let cleanup_period =
            Duration::from_millis((CLEANUP_PERIOD.as_millis() as i64 + jitter).max(1_000) as u64);
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + cleanup_period,
                cleanup_period,
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = (this.clock)();
                strata_shared::supervise::unit("ha-tracker-cleanup", this.cleanup_once(now)).await;
            }
        });
    }

    /// Spawns only the watch on the store (tests drive the updates themselves).
    pub fn start_watch(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            // The watch loop only ends by a panic: log it, count it and watch again.
            loop {
                strata_shared::supervise::unit("ha-tracker-watch", this.clone().watch_loop()).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn kv_description(&self) -> String {
        self.kv.describe()
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Whether the watch on the store is established now.
    pub fn watch_healthy(&self) -> bool {
        self.state().watch_since.is_some()
    }

    /// Takes a record from the store into the cache, unless the cache has a newer one.
    fn apply(&self, state: &mut State, key: &str, value: &Versioned, now: i64) {
        let Some((tenant, cluster)) = key.split_once('/') else {
            return;
        };
        if value.desc.deleted_at > 0 {
            // Marked by the clean-up: the cluster is forgotten, the next push elects anew.
            let newer_cached = state
                .clusters
                .get(tenant)
                .and_then(|c| c.get(cluster))
                .is_some_and(|e| e.revision >= value.revision);
            if !newer_cached {
                self.remove(state, key);
            }
            return;
        }
        let clusters = state.clusters.entry(tenant.to_string()).or_default();
        let entry = match clusters.get_mut(cluster) {
            Some(entry) if entry.revision >= value.revision => return,
            Some(entry) => entry,
            None => clusters.entry(cluster.to_string()).or_insert(Entry {
                elected: value.desc.clone(),
                revision: 0,
                elected_last_seen: 0,
                non_elected: None,
                updated_at: now,
            }),
        };
        if entry.elected.replica != value.desc.replica {
            self.metrics
                .elected_replica_changes
                .with_label_values(&[tenant, cluster])
                .inc();
            tracing::info!(
                tenant,
                cluster,
                old_replica = %entry.elected.replica,
                new_replica = %value.desc.replica,
                "HA tracker: elected replica changed"
            );
            // What we know of the new replica carries over; the old one is now "another".
            entry.elected_last_seen = match &entry.non_elected {
                Some((replica, at)) if *replica == value.desc.replica => *at,
                _ => 0,
            };
            entry.non_elected = None;
        }
        entry.elected = value.desc.clone();
        entry.revision = value.revision;
        entry.updated_at = now;
        self.metrics
            .elected_replica_timestamp
            .with_label_values(&[tenant, cluster])
            .set(value.desc.received_at as f64 / 1000.0);
    }

    fn remove(&self, state: &mut State, key: &str) {
        let Some((tenant, cluster)) = key.split_once('/') else {
            return;
        };
        if let Some(clusters) = state.clusters.get_mut(tenant) {
            clusters.remove(cluster);
            if clusters.is_empty() {
                state.clusters.remove(tenant);
            }
        }
        let _ = self
            .metrics
            .elected_replica_timestamp
            .remove_label_values(&[tenant, cluster]);
        let _ = self
            .metrics
            .elected_replica_changes
            .remove_label_values(&[tenant, cluster]);
    }

    /// How many clusters of `tenant` this distributor's cache holds.
    fn cluster_count(&self, tenant: &str) -> usize {
        self.state().clusters.get(tenant).map_or(0, HashMap::len)
    }

    fn kv_failed(&self, operation: &str, error: &KvError, now: i64) {
        self.metrics.kv_errors.with_label_values(&[operation]).inc();
        let mut state = self.state();
        if state.kv_failures == 0 {
            state.kv_failing_since = now;
        }
        state.kv_failures = state.kv_failures.saturating_add(1);
        let delay = (KV_BACKOFF_MIN_MS << state.kv_failures.min(10)).min(KV_BACKOFF_MAX_MS);
        state.kv_retry_at = now + delay;
        state.kv_last_error = error.0.clone();
        if state.kv_failures == 1 {
            tracing::warn!(kv = %self.kv.describe(), operation, error = %error, "HA tracker: KV store operation failed; keeping the cached elections");
        } else {
            tracing::debug!(operation, error = %error, failures = state.kv_failures, "HA tracker: KV store operation failed again");
        }
    }

    fn kv_ok(&self, now: i64) {
        let mut state = self.state();
        if state.kv_failures > 0 {
            let outage = now - state.kv_failing_since;
            if outage >= self.timeouts.failover_ms - self.timeouts.update_ms {
                state.kv_recovered_at = now;
            }
            tracing::info!(kv = %self.kv.describe(), failures = state.kv_failures, outage_ms = outage, "HA tracker: KV store reachable again");
        }
        state.kv_failures = 0;
        state.kv_retry_at = 0;
    }

    /// The error to report while backing off after failures; None when the store may be tried.
    fn backing_off(&self, now: i64) -> Option<String> {
        let state = self.state();
        (state.kv_failures > 0 && now < state.kv_retry_at).then(|| state.kv_last_error.clone())
    }

    /// From when on silence counts towards a failover: None while the watch is down (no
    /// failover then), else the last recovery from a long outage (0: none).
    fn failover_floor(state: &State) -> Option<i64> {
        state.watch_since.map(|_| state.kv_recovered_at)
    }

    fn decide(
        &self,
        current: Option<&ReplicaDesc>,
        replica: &str,
        now: i64,
        failover_floor: Option<i64>,
    ) -> Decision {
        match current {
            None => Decision::Write(ReplicaDesc {
                replica: replica.to_string(),
                received_at: now,
                elected_at: now,
                elected_changes: 0,
                deleted_at: 0,
            }),
            Some(d) if d.replica == replica => {
                if now - d.received_at < self.timeouts.update_ms {
                    Decision::Keep(d.clone())
                } else {
                    Decision::Write(ReplicaDesc {
                        received_at: now,
                        ..d.clone()
                    })
                }
            }
            Some(d) => match failover_floor {
                Some(floor) if now - d.received_at.max(floor) >= self.timeouts.failover_ms => {
                    Decision::Write(ReplicaDesc {
                        replica: replica.to_string(),
                        received_at: now,
                        elected_at: now,
                        elected_changes: d.elected_changes + 1,
                        deleted_at: 0,
                    })
                }
                _ => Decision::Keep(d.clone()),
            },
        }
    }

    /// Answers from the cache when it can: `Ok(Some(elected))` to reject, `Ok(None)` to
    /// accept, `Err(cached)` when the store must decide (unknown cluster: None; or a
    /// failover may be due: the cached record).
    #[allow(clippy::type_complexity)]
    fn check_cached(
        &self,
        tenant: &str,
        cluster: &str,
        replica: &str,
        now: i64,
    ) -> Result<Option<String>, Option<Versioned>> {
        let mut state = self.state();
        let floor = Self::failover_floor(&state);
        let Some(entry) = state
            .clusters
            .get_mut(tenant)
            .and_then(|c| c.get_mut(cluster))
        else {
            return Err(None);
        };
        if entry.elected.replica == replica {
            entry.elected_last_seen = entry.elected_last_seen.max(now);
            return Ok(None);
        }
        entry.non_elected = Some((replica.to_string(), now));
        let silent_in_store = floor.is_some_and(|floor| {
            now - entry.elected.received_at.max(floor) >= self.timeouts.failover_ms
        });
        let silent_here = now - entry.elected_last_seen >= self.timeouts.update_ms;
        if silent_in_store && silent_here {
            Err(Some(Versioned {
                desc: entry.elected.clone(),
                revision: entry.revision,
            }))
        } else {
            Ok(Some(entry.elected.replica.clone()))
        }
    }

    /// [`HaTracker::check_limited`] without a limit on the tenant's clusters.
    #[cfg(test)]
    pub async fn check(
        &self,
        tenant: &str,
        cluster: &str,
        replica: &str,
        now: i64,
    ) -> Result<(), Reject> {
        self.check_limited(tenant, cluster, replica, now, 0).await
    }

    /// Whether a request from `replica` of `cluster` is accepted at `now` (ms). A cluster
    /// this distributor does not know is refused when the tenant already has `max_clusters`
    /// (0: no limit), counted in this distributor's cache (what the watch shows of all
    /// distributors' elections), as Mimir does.
    pub async fn check_limited(
        &self,
        tenant: &str,
        cluster: &str,
        replica: &str,
        now: i64,
        max_clusters: usize,
    ) -> Result<(), Reject> {
        match self.check_cached(tenant, cluster, replica, now) {
            Ok(None) => return Ok(()),
            Ok(Some(elected)) => return Err(Reject::NotElected { elected }),
            Err(_) => {}
        }
        let _serial = self.inband.lock().await;
        // Another request may have settled it while this one waited.
        let mut current = match self.check_cached(tenant, cluster, replica, now) {
            Ok(None) => return Ok(()),
            Ok(Some(elected)) => return Err(Reject::NotElected { elected }),
            Err(current) => current,
        };
        if current.is_none() && max_clusters > 0 && self.cluster_count(tenant) >= max_clusters {
            return Err(Reject::TooManyClusters {
                limit: max_clusters,
            });
        }
        let unavailable = |current: &Option<Versioned>, error: String| match current {
            Some(v) if v.desc.deleted_at == 0 => Reject::NotElected {
                elected: v.desc.replica.clone(),
            },
            _ => Reject::Unavailable(error),
        };
        if let Some(error) = self.backing_off(now) {
            return Err(unavailable(&current, error));
        }
        let key = key_of(tenant, cluster);
        for _ in 0..5 {
            let floor = Self::failover_floor(&self.state());
            // A record marked for deletion counts as absent, but is replaced at its revision.
            let live = current.as_ref().filter(|v| v.desc.deleted_at == 0);
            let desc = match self.decide(live.map(|v| &v.desc), replica, now, floor) {
                Decision::Keep(_) => break,
                Decision::Write(desc) => desc,
            };
            self.metrics
                .kv_cas
                .with_label_values(&[tenant, cluster])
                .inc();
            let expected = current.as_ref().map_or(0, |v| v.revision);
            match self.kv.put_if(&key, expected, &desc).await {
                Ok(CasOutcome::Written(revision)) => {
                    self.kv_ok(now);
                    let value = Versioned { desc, revision };
                    self.apply(&mut self.state(), &key, &value, now);
                    current = Some(value);
                    break;
                }
                Ok(CasOutcome::Conflict(now_stored)) => {
                    self.kv_ok(now);
                    if let Some(value) = &now_stored {
                        self.apply(&mut self.state(), &key, value, now);
                    }
                    current = now_stored;
                }
                Err(e) => {
                    self.kv_failed("cas", &e, now);
                    return Err(unavailable(&current, e.0));
                }
            }
        }
        match current.filter(|v| v.desc.deleted_at == 0) {
            Some(v) if v.desc.replica == replica => {
                // Marks it seen (and accepts).
                match self.check_cached(tenant, cluster, replica, now) {
                    Ok(None) => Ok(()),
                    Ok(Some(elected)) => Err(Reject::NotElected { elected }),
                    Err(_) => Ok(()),
                }
            }
            Some(v) => {
                if let Some(entry) = self
                    .state()
                    .clusters
                    .get_mut(tenant)
                    .and_then(|c| c.get_mut(cluster))
                {
                    entry.non_elected = Some((replica.to_string(), now));
                }
                Err(Reject::NotElected {
                    elected: v.desc.replica,
                })
            }
            None => Err(Reject::Unavailable(
                "the record kept changing during 5 compare-and-swap attempts".to_string(),
            )),
        }
    }

    /// One pass of the background update: for each cluster whose elected replica this
    /// distributor has seen within the update timeout while the stored last-seen time is
    /// older than that, store the new last-seen time.
    pub async fn update_kv_once(&self) {
        let now = (self.clock)();
        if self.backing_off(now).is_some() {
            return;
        }
        let due: Vec<(String, String, Versioned, i64)> = {
            let state = self.state();
            state
                .clusters
                .iter()
                .flat_map(|(tenant, clusters)| {
                    clusters.iter().filter_map(move |(cluster, e)| {
                        let seen_recently = e.elected_last_seen > 0
                            && now - e.elected_last_seen < self.timeouts.update_ms;
                        let stored_old = now - e.elected.received_at >= self.timeouts.update_ms;
                        (seen_recently && stored_old).then(|| {
                            (
                                tenant.clone(),
                                cluster.clone(),
                                Versioned {
                                    desc: e.elected.clone(),
                                    revision: e.revision,
                                },
                                e.elected_last_seen,
                            )
                        })
                    })
                })
                .collect()
        };
        for (tenant, cluster, current, last_seen) in due {
            let key = key_of(&tenant, &cluster);
            let desc = ReplicaDesc {
                received_at: last_seen,
                ..current.desc.clone()
            };
            self.metrics
                .kv_cas
                .with_label_values(&[tenant.as_str(), cluster.as_str()])
                .inc();
            match self.kv.put_if(&key, current.revision, &desc).await {
                Ok(CasOutcome::Written(revision)) => {
                    self.kv_ok(now);
                    self.apply(&mut self.state(), &key, &Versioned { desc, revision }, now);
                }
                // Someone else wrote (a refresh, or a failover): take it.
                Ok(CasOutcome::Conflict(Some(value))) => {
                    self.kv_ok(now);
                    self.apply(&mut self.state(), &key, &value, now);
                }
                // Deleted in the store: forget it; the next request elects again.
                Ok(CasOutcome::Conflict(None)) => {
                    self.kv_ok(now);
                    self.remove(&mut self.state(), &key);
                }
                Err(e) => {
                    self.kv_failed("update", &e, now);
                    return;
                }
            }
        }
    }

    /// One clean-up pass (Mimir's): records whose last-seen time is older than
    /// [`CLEANUP_DELETION_TIMEOUT_MS`] are marked for deletion, records marked that long ago
    /// are deleted, both with compare-and-swap so that a cluster that sends again in
    /// between keeps its record. Skipped while the watch is down, and a cluster whose
    /// elected replica this distributor has accepted within the timeout is never marked
    /// (its last-seen time may be old only because the store was unreachable).
    pub async fn cleanup_once(&self, now: i64) {
        if self.state().watch_since.is_none() {
            return;
        }
        self.metrics.cleanup_started.inc();
        let deadline = now - CLEANUP_DELETION_TIMEOUT_MS;
        let records = match self.kv.list().await {
            Ok((records, _)) => records,
            Err(e) => {
                self.kv_failed("cleanup", &e, now);
                return;
            }
        };
        for (key, value) in records {
            let desc = &value.desc;
            let result = if desc.deleted_at > 0 {
                if desc.deleted_at > deadline {
                    continue;
                }
                self.kv
                    .delete_if(&key, value.revision)
                    .await
                    .map(|deleted| (deleted, &self.metrics.cleanup_deleted))
            } else {
                let seen_here = key.split_once('/').and_then(|(tenant, cluster)| {
                    let state = self.state();
                    let entry = state.clusters.get(tenant)?.get(cluster)?;
                    (entry.elected.replica == desc.replica).then_some(entry.elected_last_seen)
                });
                if desc.received_at >= deadline || seen_here.is_some_and(|t| t >= deadline) {
                    continue;
                }
                let marked = ReplicaDesc {
                    deleted_at: now,
                    ..desc.clone()
                };
                self.kv
                    .put_if(&key, value.revision, &marked)
                    .await
                    .map(|outcome| {
                        (
                            matches!(outcome, CasOutcome::Written(_)),
                            &self.metrics.cleanup_marked,
                        )
                    })
            };
            match result {
                Ok((true, counter)) => {
                    counter.inc();
                    let action = if desc.deleted_at == 0 {
                        "marked for deletion"
                    } else {
                        "deleted"
                    };
                    tracing::info!(key = %key, replica = %desc.replica, received_at = desc.received_at, "HA tracker clean-up: record of a silent cluster {action}");
                }
                // Changed meanwhile (the cluster sent again, or another distributor cleaned).
                Ok((false, _)) => {}
                Err(e) => {
                    self.metrics.cleanup_failed.inc();
                    self.kv_failed("cleanup", &e, now);
                    return;
                }
            }
        }
    }

    /// Lists the store into the cache, then follows its changes; on any failure, marks the
    /// watch down and starts over with back-off (0.1 s doubling to 2 s).
    async fn watch_loop(self: Arc<Self>) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.kv.list().await {
                Ok((records, revision)) => {
                    let now = (self.clock)();
                    {
                        let mut state = self.state();
                        for (key, value) in &records {
                            self.apply(&mut state, key, value, now);
                        }
                        state.watch_since = Some(now);
                    }
                    self.kv_ok(now);
                    match self.kv.watch(revision + 1).await {
                        Ok(mut stream) => {
                            self.metrics.watch_healthy.set(1.0);
                            delay = Duration::from_millis(100);
                            tracing::info!(kv = %self.kv.describe(), clusters = records.len(), revision, "HA tracker: watching the KV store");
                            loop {
                                match stream.next().await {
                                    Some(Ok(events)) => {
                                        let now = (self.clock)();
                                        let mut state = self.state();
                                        for event in events {
                                            match event {
                                                WatchEvent::Put { key, value } => {
                                                    self.apply(&mut state, &key, &value, now)
                                                }
                                                WatchEvent::Delete { key } => {
                                                    self.remove(&mut state, &key)
                                                }
                                            }
                                        }
                                    }
                                    Some(Err(e)) => {
                                        self.kv_failed("watch", &e, (self.clock)());
                                        break;
                                    }
                                    None => {
                                        self.kv_failed(
                                            "watch",
                                            &KvError("the watch ended".to_string()),
                                            (self.clock)(),
                                        );
                                        break;
                                    }
                                }
                            }
                        }
                        Err(e) => self.kv_failed("watch", &e, (self.clock)()),
                    }
                    self.state().watch_since = None;
                    self.metrics.watch_healthy.set(0.0);
                }
                Err(e) => self.kv_failed("list", &e, (self.clock)()),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(KV_BACKOFF_MAX_MS as u64));
        }
    }

    /// The elections this distributor knows, sorted by tenant and cluster.
    pub fn status(&self) -> Vec<ClusterStatus> {
        let state = self.state();
        let mut out: Vec<ClusterStatus> = state
            .clusters
            .iter()
            .flat_map(|(tenant, clusters)| {
                clusters.iter().map(move |(cluster, e)| ClusterStatus {
                    tenant: tenant.clone(),
                    cluster: cluster.clone(),
                    replica: e.elected.replica.clone(),
                    elected_at: e.elected.elected_at,
                    received_at: e.elected.received_at,
                    last_seen_here: e.elected_last_seen,
                    elected_changes: e.elected.elected_changes,
                    revision: e.revision,
                    updated_at: e.updated_at,
                    failover_at: e.elected.received_at + self.timeouts.failover_ms,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.tenant, &a.cluster).cmp(&(&b.tenant, &b.cluster)));
        out
    }

    /// The push hook: when the tenant accepts HA samples and the request's first series
    /// carries both labels, accepts the request (removing the replica label from every
    /// series) or refuses it whole.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant, cluster, replica))]
    pub async fn dedupe(
        &self,
        tenant: &str,
        limits: &HaLimits<'_>,
        request: &mut WriteRequestBytes,
        now: i64,
    ) -> Result<(), HaError> {
        if !limits.accept_ha_samples {
            return Ok(());
        }
        let Some(first) = request.timeseries.first() else {
            return Ok(());
        };
        let samples: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
        let Some((cluster, replica)) = ha_pair(tenant, &first.labels, limits) else {
            self.metrics
                .non_ha_samples
                .with_label_values(&[tenant])
                .inc_by(samples as u64);
            return Ok(());
        };
        match self
            .check_limited(tenant, &cluster, &replica, now, limits.max_clusters)
            .await
        {
            Ok(()) => {
                let name = limits.replica_label.as_bytes();
                for series in &mut request.timeseries {
                    series.labels.retain(|l| l.name.as_ref() != name);
                }
                Ok(())
            }
            Err(reject) => Err(self.rejection(tenant, limits, &cluster, &replica, samples, reject)),
        }
    }

    /// [`HaTracker::dedupe`]'s verdict on a body before it is decoded (`raw`: the
    /// uncompressed protobuf), from its first series' labels: `Err((error, samples))` for a
    /// request to refuse whole, `Ok` for one to decode and pass through
    /// [`HaTracker::dedupe`] (which strips the replica label). A body that cannot be scanned
    /// is left to the decoder.
    #[tracing::instrument(level = "debug", skip_all, fields(tenant, cluster, replica))]
    pub async fn precheck(
        &self,
        tenant: &str,
        limits: &HaLimits<'_>,
        raw: &[u8],
        now: i64,
    ) -> Result<(), (HaError, usize)> {
        if !limits.accept_ha_samples {
            return Ok(());
        }
        let Some(labels) = peek::first_series_labels(raw) else {
            return Ok(());
        };
        let Some((cluster, replica)) = ha_pair(tenant, &labels, limits) else {
            return Ok(());
        };
        match self
            .check_limited(tenant, &cluster, &replica, now, limits.max_clusters)
            .await
        {
            Ok(()) => Ok(()),
            Err(reject) => match peek::count_samples(raw) {
                Some(samples) => Err((
                    self.rejection(tenant, limits, &cluster, &replica, samples, reject),
                    samples,
                )),
                None => Ok(()),
            },
        }
    }

    /// The error for a refused request of `samples` samples; counts deduplicated samples.
    fn rejection(
        &self,
        tenant: &str,
        limits: &HaLimits<'_>,
        cluster: &str,
        replica: &str,
        samples: usize,
        reject: Reject,
    ) -> HaError {
        match reject {
            Reject::NotElected { elected } => {
                self.metrics
                    .deduped_samples
                    .with_label_values(&[tenant, cluster])
                    .inc_by(samples as u64);
                HaError::Deduplicated(format!(
                    "replicas did not match, rejecting sample: replica={replica}, elected={elected}: tenant {tenant}, HA cluster {cluster:?} ({cluster_label}) accepts samples from replica {elected:?} ({replica_label}) only; {samples} samples from replica {replica:?} were dropped (err-strata-ha-replicas-did-not-match); this is expected while both replicas run: replica {replica:?} is elected if {elected:?} sends nothing for -distributor.ha-tracker.failover-timeout ({failover}s)",
                    cluster_label = limits.cluster_label,
                    replica_label = limits.replica_label,
                    failover = self.timeouts.failover_ms as f64 / 1000.0,
                ))
            }
            Reject::TooManyClusters { limit } => HaError::TooManyClusters(format!(
                "the write request has been rejected because the maximum number of high-availability (HA) clusters has been reached for this tenant (limit: {limit}): tenant {tenant}, new HA cluster {cluster:?} ({cluster_label}); {samples} samples dropped (err-strata-tenant-too-many-ha-clusters). To adjust the related per-tenant limit, configure -distributor.ha-tracker.max-clusters, or contact your service administrator.",
                cluster_label = limits.cluster_label,
            )),
            Reject::Unavailable(error) => HaError::Unavailable(format!(
                "cannot elect a replica for HA cluster {cluster:?} of tenant {tenant}: the HA tracker's KV store ({}) is unreachable: {error} (err-strata-ha-tracker-kv-unavailable); retry later; check the store (-distributor.ha-tracker.etcd.endpoints)",
                self.kv.describe()
            )),
        }
    }
}

/// The (cluster, replica) a request's first series names, recorded on the current span; None
/// for a request that is not an HA replica's (a label missing or empty, or a replica value
/// over `max_label_value_length`, Mimir's rule).
fn ha_pair(tenant: &str, labels: &[LabelBytes], limits: &HaLimits<'_>) -> Option<(String, String)> {
    let (cluster, replica) = find_ha_labels(labels, limits);
    let replica = replica.filter(|r| r.len() <= limits.max_label_value_length);
    let (cluster, replica) = (cluster?, replica?);
    let span = tracing::Span::current();
    span.record("tenant", tenant);
    span.record("cluster", cluster.as_str());
    span.record("replica", replica.as_str());
    Some((cluster, replica))
}

/// The cluster and replica label values of a series (None: absent, empty or not UTF-8).
fn find_ha_labels(
    labels: &[LabelBytes],
    limits: &HaLimits<'_>,
) -> (Option<String>, Option<String>) {
    let mut cluster = None;
    let mut replica = None;
    for l in labels {
        let value = || {
            std::str::from_utf8(&l.value)
                .ok()
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        if l.name.as_ref() == limits.cluster_label.as_bytes() {
            cluster = value();
        } else if l.name.as_ref() == limits.replica_label.as_bytes() {
            replica = value();
        }
    }
    (cluster, replica)
}

#[cfg(test)]
mod tests;
