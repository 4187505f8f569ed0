//! Durability under repeated crashes: three ingesters (replication factor 3, quorum 2), a
//! distributor, a store-gateway and queriers, all real processes. A sharded remote-write
//! sender (per-series order kept, as Prometheus' shards) retries transport errors, 5xx and
//! 429 and counts a batch once, when acknowledged, while ingesters and the distributor are
//! killed with SIGKILL over and over: at random moments, inside block cutting and upload (a
//! block in `shipping/`), and inside a WAL checkpoint (a `checkpoint.*.tmp` on disk). Never
//! two processes are down at once.
//!
//! Then every acknowledged sample is counted per series and 1h window through PromQL, from
//! the ingesters, after a flush, and from the store-gateway alone: none lost, none extra,
//! every value right, and no valid batch refused with a 400. The seed is printed; rerun one
//! with `STRATA_CHAOS_SEED=<seed>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

const TENANT: &str = "chaos";
const SHARDS: usize = 4;
const HOSTS_PER_SHARD: usize = 2;
const SERIES_PER_HOST: usize = 50;
const SCRAPE_MS: i64 = 15_000;
/// Data time one request covers, per series (8 scrapes).
const WINDOW_MS: i64 = 120_000;
/// Data time the whole run covers: four two-hour block ranges, so every ingester cuts,
/// ships and checkpoints several times under the kills, and each range lives in the heads
/// for about 30 s of wall time, long enough for every ingester to be killed while its head
/// holds it (a fault that loses part of one replica's head then shows up as a loss).
const DATA_HOURS: i64 = 8;
/// Wall time the sender spreads the data over; the kills run meanwhile.
const LOAD_WALL: Duration = Duration::from_secs(120);
/// Requests the sender has in flight: the distributor is killed while one is, so that some
/// replicas have applied it and its retry meets them.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
const HOUR_MS: i64 = 3_600_000;

/// A small deterministic generator (xorshift64*), so a seed replays the same kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

fn series_index(shard: usize, host: usize, s: usize) -> usize {
    (shard * HOSTS_PER_SHARD + host) * SERIES_PER_HOST + s
}

/// The value of series `index` at `t`: exact in a float and different for every sample, so
/// sums check values as well as counts.
fn value(index: usize, t: i64) -> f64 {
    (index as f64) * 1e6 + ((t / SCRAPE_MS) % 1_000_000) as f64
}

/// The request of shard `shard` for window `w`: all of its series, every scrape in the window.
fn window_request(shard: usize, start: i64, w: i64) -> WriteRequest {
    let from = start + w * WINDOW_MS;
    let mut timeseries = Vec::new();
    for host in 0..HOSTS_PER_SHARD {
        let instance = format!("host-{}", shard * HOSTS_PER_SHARD + host);
        for s in 0..SERIES_PER_HOST {
            let index = series_index(shard, host, s);
            let name = format!("s{index}");
            let samples: Vec<(i64, f64)> = (0..WINDOW_MS / SCRAPE_MS)
                .map(|k| from + k * SCRAPE_MS)
                .map(|t| (t, value(index, t)))
                .collect();
            timeseries.push(series(
                &[
                    ("__name__", "chaos_load"),
                    ("instance", &instance),
                    ("series", &name),
                ],
                &samples,
            ));
        }
    }
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// What the sender saw.
#[derive(Default)]
struct SenderLog {
    /// Acknowledged windows per shard.
    acked: Vec<Vec<i64>>,
    /// 400s: (shard, window, body) — valid data must never get one.
    refused: Vec<(usize, i64, String)>,
    /// Retried answers by status (0 = transport error).
    retried: BTreeMap<u16, usize>,
    /// 503 bodies, for the report.
    unavailable: Vec<String>,
}

/// One shard: windows in order, each retried until it is acknowledged or refused.
fn run_shard(
    shard: usize,
    url: String,
    start: i64,
    windows: i64,
    began: Instant,
    log: Arc<Mutex<SenderLog>>,
) {
    for w in 0..windows {
        // Paced over LOAD_WALL, so the data time advances while the kills happen.
        let due = LOAD_WALL.mul_f64(w as f64 / windows as f64);
        if let Some(wait) = due.checked_sub(began.elapsed()) {
            std::thread::sleep(wait);
        }
        let body = encode_write(&window_request(shard, start, w));
        let mut attempts = 0;
        loop {
            attempts += 1;
            IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
            let (status, text) = push_raw(&url, Some(TENANT), body.clone());
            IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            let mut log = log.lock().expect("sender log");
            match status {
                200 => {
                    log.acked[shard].push(w);
                    break;
                }
                400 => {
                    log.refused.push((shard, w, text));
                    break;
                }
                _ => {
                    *log.retried.entry(status).or_default() += 1;
                    if status == 503 && log.unavailable.len() < 20 {
                        log.unavailable.push(text);
                    }
                }
            }
            drop(log);
            assert!(
                attempts < 3000,
                "shard {shard}: window {w} never acknowledged"
            );
            // Prometheus backs off between retries too (min_backoff 30 ms, doubling).
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How a kill was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KillKind {
    Random,
    InsideCutOrUpload,
    InsideCheckpoint,
    /// A timed kill whose moment did not come within its watch: killed at random instead.
    TimedButMissed,
    /// The distributor, while the sender had a request in flight.
    DistributorMidRequest,
    Distributor,
}

/// A block directory under `shipping/`: a cut written or being written, not yet uploaded.
fn block_in_shipping(tsdb: &Path) -> bool {
    std::fs::read_dir(tsdb.join("shipping").join(TENANT))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

fn checkpoint_in_progress(tsdb: &Path) -> bool {
    std::fs::read_dir(tsdb.join("wal"))
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .unwrap_or(false)
}

/// Polls `moment` every millisecond for up to `watch`; whether it came.
fn watch_for(watch: Duration, moment: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < watch {
        if moment() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

struct Cluster {
    root: PathBuf,
    ingesters: Vec<Strata>,
    distributor: Strata,
}

fn bucket_flag(root: &Path) -> String {
    format!(
        "-blocks-storage.filesystem.dir={}",
        root.join("bucket").display()
    )
}

fn members(ingesters: &[Strata]) -> String {
    ingesters
        .iter()
        .enumerate()
        .map(|(i, s)| format!("ingester-{i}=127.0.0.1:{}", s.grpc_port))
        .collect::<Vec<_>>()
        .join(",")
}

impl Cluster {
    fn start(root: &Path) -> Cluster {
        let bucket = bucket_flag(root);
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let ring = ports
            .iter()
            .enumerate()
            .map(|(i, (_, grpc))| format!("ingester-{i}=127.0.0.1:{grpc}"))
            .collect::<Vec<_>>()
            .join(",");
        let ingesters = ports
            .iter()
            .enumerate()
            .map(|(i, (http_port, grpc_port))| {
                Strata::start_on(
                    &format!("ingester-{i}"),
                    &root.join(format!("ingester-{i}")),
                    *http_port,
                    *grpc_port,
                    &[
                        "-target=ingester",
                        &format!("-ingester.ring.instance-id=ingester-{i}"),
                        &format!("-ingester.ring.static-members={ring}"),
                        "-ingester.ring.replication-factor=3",
                        "-blocks-storage.tsdb.head-compaction-interval=1s",
                        &bucket,
                    ],
                )
            })
            .collect::<Vec<_>>();
        let distributor = Strata::start(
            "distributor",
            &root.join("distributor"),
            &[
                "-target=distributor",
                "-ingester.ring.replication-factor=3",
                &format!("-ingester.ring.static-members={}", members(&ingesters)),
            ],
        );
        Cluster {
            root: root.to_path_buf(),
            ingesters,
            distributor,
        }
    }

    fn tsdb(&self, i: usize) -> PathBuf {
        self.ingesters[i].dir.join("tsdb")
    }

    /// One kill and restart; returns how it was timed.
    fn kill_one(&mut self, rng: &mut Rng, n: usize) -> KillKind {
        if n % 4 == 3 {
            let mid_request = watch_for(Duration::from_secs(5), || {
                IN_FLIGHT.load(Ordering::SeqCst) > 0
            });
            self.distributor.proc.kill9();
            std::thread::sleep(rng.millis(500, 2500));
            self.distributor.proc.restart();
            self.distributor.wait_ready();
            return if mid_request {
                KillKind::DistributorMidRequest
            } else {
                KillKind::Distributor
            };
        }
        let victim = rng.below(3) as usize;
        let tsdb = self.tsdb(victim);
        let kind = match rng.below(3) {
            0 => KillKind::Random,
            1 if watch_for(Duration::from_secs(12), || block_in_shipping(&tsdb)) => {
                KillKind::InsideCutOrUpload
            }
            2 if watch_for(Duration::from_secs(12), || checkpoint_in_progress(&tsdb)) => {
                KillKind::InsideCheckpoint
            }
            _ => KillKind::TimedButMissed,
        };
        self.ingesters[victim].proc.kill9();
        std::thread::sleep(rng.millis(500, 3000));
        self.ingesters[victim].proc.restart();
        self.ingesters[victim].wait_ready();
        kind
    }
}

/// Per series label and 1h window: (count, sum) as PromQL sees it on `querier`.
fn counted(querier: &Strata, start: i64, hours: i64) -> BTreeMap<(String, i64), (u64, f64)> {
    let mut out = BTreeMap::new();
    for h in 0..hours {
        // Prometheus 2.42's ranges are closed: [t - range, t] is exactly this window.
        let at = start + h * HOUR_MS + HOUR_MS - 1;
        for (what, query) in [
            ("count", "count_over_time(chaos_load[3599999ms])"),
            ("sum", "sum_over_time(chaos_load[3599999ms])"),
        ] {
            let body = api_query(&querier.url("/prometheus"), Some(TENANT), query, at);
            for r in body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let name = r["metric"]["series"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let v: f64 = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                let entry = out.entry((name, h)).or_insert((0u64, 0f64));
                if what == "count" {
                    entry.0 = v as u64;
                } else {
                    entry.1 = v;
                }
            }
        }
    }
    out
}

/// What every acknowledged window puts in each series and hour.
fn expected(acked: &[Vec<i64>], start: i64) -> BTreeMap<(String, i64), (u64, f64)> {
    let mut out = BTreeMap::new();
    for (shard, windows) in acked.iter().enumerate() {
        for w in windows {
            let from = start + w * WINDOW_MS;
            for host in 0..HOSTS_PER_SHARD {
                for s in 0..SERIES_PER_HOST {
                    let index = series_index(shard, host, s);
                    for k in 0..WINDOW_MS / SCRAPE_MS {
                        let t = from + k * SCRAPE_MS;
                        let entry = out
                            .entry((format!("s{index}"), (t - start) / HOUR_MS))
                            .or_insert((0u64, 0f64));
                        entry.0 += 1;
                        entry.1 += value(index, t);
                    }
                }
            }
        }
    }
    out
}

/// Differences between what was acknowledged and what a read path counts.
fn compare(
    phase: &str,
    want: &BTreeMap<(String, i64), (u64, f64)>,
    got: &BTreeMap<(String, i64), (u64, f64)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let (mut lost, mut extra) = (0u64, 0u64);
    for (key, (count, sum)) in want {
        let (c, s) = got.get(key).copied().unwrap_or((0, 0.0));
        if c < *count {
            lost += count - c;
        } else {
            extra += c - count;
        }
        if c != *count || s != *sum {
            problems.push(format!(
                "{phase}: series {} hour {}: acknowledged {count} samples summing to {sum}, counted {c} summing to {s}",
                key.0, key.1
            ));
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        extra += got[key].0;
        problems.push(format!(
            "{phase}: series {} hour {} counted but never acknowledged",
            key.0, key.1
        ));
    }
    println!("chaos {phase}: {lost} acknowledged samples lost, {extra} extra");
    problems
}

#[test]
fn repeated_sigkills_lose_no_acknowledged_sample() {
    let seed = std::env::var("STRATA_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64 | 1);
    println!("chaos: seed {seed} (rerun with STRATA_CHAOS_SEED={seed})");
    let mut rng = Rng(seed);
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = Cluster::start(root.path());

    // Data from DATA_HOURS ago (aligned to the hour) to now.
    let start = (now_ms() - DATA_HOURS * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
    let windows = DATA_HOURS * HOUR_MS / WINDOW_MS;
    let log = Arc::new(Mutex::new(SenderLog {
        acked: vec![Vec::new(); SHARDS],
        ..Default::default()
    }));
    let url = cluster.distributor.url("/api/v1/push");
    let began = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let shards: Vec<_> = (0..SHARDS)
        .map(|shard| {
            let (url, log, done) = (url.clone(), log.clone(), done.clone());
            std::thread::spawn(move || {
                run_shard(shard, url, start, windows, began, log);
                done.store(true, Ordering::SeqCst);
            })
        })
        .collect();

    let mut kills: BTreeMap<KillKind, usize> = BTreeMap::new();
    let mut n = 0;
    while began.elapsed() < LOAD_WALL.mul_f64(0.95) && !done.load(Ordering::SeqCst) {
        std::thread::sleep(rng.millis(1500, 4000));
        let kind = cluster.kill_one(&mut rng, n);
        *kills.entry(kind).or_default() += 1;
        n += 1;
    }
    for shard in shards {
        shard.join().expect("sender shard");
    }
    let log = std::mem::take(&mut *log.lock().expect("sender log"));
    let acked_samples: usize = log.acked.iter().map(Vec::len).sum::<usize>()
        * HOSTS_PER_SHARD
        * SERIES_PER_HOST
        * (WINDOW_MS / SCRAPE_MS) as usize;
    println!(
        "chaos: {n} kills {kills:?}; {acked_samples} samples acknowledged; retried answers by status {:?}; {} refused",
        log.retried,
        log.refused.len()
    );
    for body in &log.unavailable {
        println!("chaos: 503: {}", &body[..body.len().min(400)]);
    }
    // Everything is counted before anything is asserted, so a failing seed shows all of what
    // went wrong at once.
    let mut problems = Vec::new();
    if !log.refused.is_empty() {
        problems.push(format!(
            "{} valid batches were refused with 400, e.g. {:?}",
            log.refused.len(),
            &log.refused[..log.refused.len().min(2)]
        ));
    }
    let unavailable = log.retried.get(&503).copied().unwrap_or(0);
    if unavailable > 0 {
        problems.push(format!(
            "{unavailable} writes failed for lack of quorum while at most one ingester was down"
        ));
    }

    // Read paths: the ingesters alone (heads and their local blocks), and the store alone.
    let bucket = bucket_flag(&cluster.root);
    let ring = format!(
        "-ingester.ring.static-members={}",
        members(&cluster.ingesters)
    );
    let gateway = Strata::start(
        "store-gateway",
        &cluster.root.join("store-gateway"),
        &[
            "-target=store-gateway",
            "-blocks-storage.bucket-store.sync-interval=1s",
            &bucket,
        ],
    );
    let querier = |name: &str, ingesters_within: &str, store_after: &str| {
        Strata::start(
            name,
            &cluster.root.join(name),
            &[
                "-target=querier",
                &ring,
                "-ingester.ring.replication-factor=3",
                &format!("-querier.query-ingesters-within={ingesters_within}"),
                &format!("-querier.query-store-after={store_after}"),
                &format!(
                    "-querier.store-gateway-addresses=127.0.0.1:{}",
                    gateway.grpc_port
                ),
                &bucket,
            ],
        )
    };
    let from_ingesters = querier("querier-ingesters", "0", "87600h");
    let from_store = querier("querier-store", "1ms", "0");
    let want = expected(&log.acked, start);
    problems.extend(compare(
        "ingesters",
        &want,
        &counted(&from_ingesters, start, DATA_HOURS + 1),
    ));
    for ingester in &cluster.ingesters {
        ingester.flush();
    }
    problems.extend(compare(
        "ingesters after flush",
        &want,
        &counted(&from_ingesters, start, DATA_HOURS + 1),
    ));
    // The store-gateway sees every shipped block once it has synced.
    let total: u64 = want.values().map(|(c, _)| c).sum();
    let synced = Instant::now();
    while synced.elapsed() < DEADLINE {
        let seen: u64 = counted(&from_store, start, DATA_HOURS + 1)
            .values()
            .map(|(c, _)| c)
            .sum();
        if seen >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    problems.extend(compare(
        "store alone",
        &want,
        &counted(&from_store, start, DATA_HOURS + 1),
    ));
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problems, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(10)].join("\n")
    );
}

/// The replay of a WAL checkpoint keeps the whole head: a checkpoint lists the head series by
/// series, and replaying it against the head's moving "newest sample − 1 h" bound once
/// dropped every sample older than that in all but the first series, on every restart after
/// a checkpoint.
#[test]
fn a_restart_after_a_checkpoint_keeps_the_whole_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut strata = Strata::start(
        "strata-checkpoint-replay",
        dir.path(),
        &[
            "-auth.multitenancy-enabled=false",
            "-blocks-storage.tsdb.head-compaction-interval=200ms",
        ],
    );
    // 3.5 h of data in two series from the start of a 2 h range: the first range is cut,
    // shipped and checkpointed; the head then holds 1.5 h, more than the 1 h window.
    let range = 2 * HOUR_MS;
    let start = (now_ms() - 4 * HOUR_MS).div_euclid(range) * range;
    let minute = 60_000;
    let times: Vec<i64> = (0..=210).map(|m| start + m * minute).collect();
    for chunk in times.chunks(10) {
        let request = WriteRequest {
            timeseries: ["first", "second"]
                .iter()
                .map(|name| {
                    let samples: Vec<(i64, f64)> = chunk.iter().map(|t| (*t, 1.0)).collect();
                    series(&[("__name__", "replayed"), ("series", name)], &samples)
                })
                .collect(),
            metadata: vec![],
        };
        let (status, body) = push(&strata, None, &request);
        assert_eq!(status, 200, "{body}");
    }
    let wal = dir.path().join("tsdb").join("wal");
    wait_until("a WAL checkpoint after the first range shipped", || {
        std::fs::read_dir(&wal).is_ok_and(|d| {
            d.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with("checkpoint.") && !name.ends_with(".tmp")
            })
        })
    });
    strata.proc.kill9();
    strata.proc.restart();
    strata.wait_ready();
    // Every sample, per series, from the head (replayed) and the shipped block.
    let end = *times.last().unwrap_or(&start);
    let query = format!("count_over_time(replayed[{}ms])", end - start);
    let v = api_query(&strata.url(""), None, &query, end);
    let counts: BTreeMap<String, String> = v["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["metric"]["series"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["value"][1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let all = times.len().to_string();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("first".to_string(), all.clone()),
            ("second".to_string(), all)
        ]),
        "samples per series after the restart"
    );
}
