use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use strata_shared::proto::prometheus::{Sample, TimeSeriesBytes};

use super::kv::WatchStream;
use super::*;

const UPDATE: i64 = 1_000;
const FAILOVER: i64 = 5_000;
const T0: i64 = 1_700_000_000_000;

/// A clock the test moves by hand.
#[derive(Clone)]
struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(T0)))
    }
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    fn advance(&self, ms: i64) -> i64 {
        self.0.fetch_add(ms, Ordering::SeqCst) + ms
    }
    fn clock(&self) -> Clock {
        let c = self.0.clone();
        Arc::new(move || c.load(Ordering::SeqCst))
    }
}

fn tracker(kv: Arc<dyn HaKv>, clock: &ManualClock) -> (Arc<HaTracker>, Registry) {
    let registry = Registry::new();
    let t = HaTracker::new(
        kv,
        Timeouts {
            update_ms: UPDATE,
            failover_ms: FAILOVER,
        },
        clock.clock(),
        &registry,
    )
    .unwrap();
    t.start_watch();
    (t, registry)
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn elected(t: &HaTracker, tenant: &str, cluster: &str) -> Option<String> {
    t.status()
        .into_iter()
        .find(|s| s.tenant == tenant && s.cluster == cluster)
        .map(|s| s.replica)
}

fn not_elected(elected: &str) -> Result<(), Reject> {
    Err(Reject::NotElected {
        elected: elected.to_string(),
    })
}

fn metric(registry: &Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| {
            if m.get_counter().get_value() != 0.0 {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        })
        .sum()
}

#[tokio::test]
async fn first_replica_is_elected_and_the_other_dropped() {
    let clock = ManualClock::new();
    let (t, _) = tracker(Arc::new(MemoryKv::new()), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    let now = clock.now();
    assert_eq!(t.check("t1", "c", "a", now).await, Ok(()));
    assert_eq!(t.check("t1", "c", "b", now + 10).await, not_elected("a"));
    assert_eq!(t.check("t1", "c", "a", now + 20).await, Ok(()));
    // Clusters and tenants are independent.
    assert_eq!(t.check("t1", "d", "b", now).await, Ok(()));
    assert_eq!(t.check("t2", "c", "b", now).await, Ok(()));
    assert_eq!(elected(&t, "t1", "c").as_deref(), Some("a"));
}

#[tokio::test]
async fn no_failover_before_the_timeout_and_failover_after_it() {
    let clock = ManualClock::new();
    let kv = Arc::new(MemoryKv::new());
    let (t, registry) = tracker(kv.clone(), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    assert_eq!(t.check("t", "c", "a", clock.now()).await, Ok(()));
    // a goes quiet; b keeps sending. Until the failover timeout has passed since a was last
    // recorded, b is dropped.
    for _ in 0..4 {
        let now = clock.advance(1_000);
        assert_eq!(t.check("t", "c", "b", now).await, not_elected("a"));
    }
    let now = clock.advance(999);
    assert_eq!(t.check("t", "c", "b", now).await, not_elected("a"));
    let now = clock.advance(1);
    assert_eq!(t.check("t", "c", "b", now).await, Ok(()), "failover at 5 s");
    assert_eq!(t.check("t", "c", "a", now + 1).await, not_elected("b"));
    let (records, _) = kv.list().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1.desc.replica, "b");
    assert_eq!(records[0].1.desc.elected_changes, 1);
    assert_eq!(
        metric(&registry, "strata_ha_tracker_elected_replica_changes_total"),
        1.0
    );
}

#[tokio::test]
async fn a_live_elected_replica_is_recorded_and_never_failed_over() {
    let clock = ManualClock::new();
    let kv = Arc::new(MemoryKv::new());
    let (t, _) = tracker(kv.clone(), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    assert_eq!(t.check("t", "c", "a", clock.now()).await, Ok(()));
    // Both send every 500 ms for 20 s; the background update records a's last-seen time.
    for _ in 0..40 {
        let now = clock.advance(500);
        assert_eq!(t.check("t", "c", "a", now).await, Ok(()));
        assert_eq!(t.check("t", "c", "b", now).await, not_elected("a"));
        t.update_kv_once().await;
    }
    let (records, _) = kv.list().await.unwrap();
    let stored = &records[0].1.desc;
    assert_eq!(stored.replica, "a");
    assert!(
        clock.now() - stored.received_at <= UPDATE + 500,
        "stored last-seen {} ms old",
        clock.now() - stored.received_at
    );
    // At most one write per update timeout (plus the election).
    assert!(
        records[0].1.revision <= 1 + 20_000 / UPDATE,
        "{} writes",
        records[0].1.revision
    );
}

#[tokio::test]
async fn two_trackers_on_one_store_agree_through_cas_and_the_watch() {
    let clock = ManualClock::new();
    let kv = Arc::new(MemoryKv::new());
    let (t1, _) = tracker(kv.clone(), &clock);
    let (t2, r2) = tracker(kv.clone(), &clock);
    wait_for("watches", || t1.watch_healthy() && t2.watch_healthy()).await;
    // Both see the cluster for the first time at once, from different replicas: one CAS wins.
    let now = clock.now();
    let (r1, r2b) = tokio::join!(t1.check("t", "c", "a", now), t2.check("t", "c", "b", now));
    let winners = [&r1, &r2b].iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{r1:?} {r2b:?}");
    let winner = if r1.is_ok() { "a" } else { "b" };
    let loser = if r1.is_ok() { "b" } else { "a" };
    assert_eq!(
        t1.check("t", "c", loser, now + 1).await,
        not_elected(winner)
    );
    assert_eq!(
        t2.check("t", "c", loser, now + 1).await,
        not_elected(winner)
    );

    // The loser's distributor fails it over once the winner is silent; the other distributor
    // learns it from the watch alone.
    let now = clock.advance(FAILOVER + 1);
    assert_eq!(t2.check("t", "c", loser, now).await, Ok(()));
    wait_for("t1 to see the failover", || {
        elected(&t1, "t", "c").as_deref() == Some(loser)
    })
    .await;
    assert_eq!(
        t1.check("t", "c", winner, now + 1).await,
        not_elected(loser)
    );
    assert!(metric(&r2, "strata_ha_tracker_kv_store_cas_total") >= 2.0);
}

#[tokio::test]
async fn a_cluster_deleted_from_the_store_is_forgotten() {
    let clock = ManualClock::new();
    let kv = Arc::new(MemoryKv::new());
    let (t, _) = tracker(kv.clone(), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    assert_eq!(t.check("t", "c", "a", clock.now()).await, Ok(()));
    kv.delete("t/c");
    wait_for("the delete", || elected(&t, "t", "c").is_none()).await;
    assert_eq!(t.check("t", "c", "b", clock.now()).await, Ok(()));
}

/// A memory store that can be taken down: every operation fails and watches break.
#[derive(Debug)]
struct FlakyKv {
    inner: MemoryKv,
    down: tokio::sync::watch::Sender<bool>,
}

impl FlakyKv {
    fn new() -> Self {
        Self {
            inner: MemoryKv::new(),
            down: tokio::sync::watch::channel(false).0,
        }
    }
    fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
    fn check(&self) -> Result<(), KvError> {
        if *self.down.borrow() {
            Err(KvError("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl HaKv for FlakyKv {
    async fn put_if(
        &self,
        key: &str,
        expected_revision: i64,
        desc: &ReplicaDesc,
    ) -> Result<CasOutcome, KvError> {
        self.check()?;
        self.inner.put_if(key, expected_revision, desc).await
    }
    async fn delete_if(&self, key: &str, expected_revision: i64) -> Result<bool, KvError> {
        self.check()?;
        self.inner.delete_if(key, expected_revision).await
    }
    async fn list(&self) -> Result<(Vec<(String, Versioned)>, i64), KvError> {
        self.check()?;
        self.inner.list().await
    }
    async fn watch(&self, from_revision: i64) -> Result<WatchStream, KvError> {
        self.check()?;
        let inner = self.inner.watch(from_revision).await?;
        let down = self.down.subscribe();
        Ok(futures::stream::unfold(
            (inner, down, false),
            |(mut inner, mut down, ended)| async move {
                if ended {
                    return None;
                }
                let item = tokio::select! {
                    item = inner.next() => item,
                    _ = down.wait_for(|d| *d) => Some(Err(KvError("connection lost".into()))),
                };
                let lost = matches!(item, Some(Err(_)));
                item.map(|i| (i, (inner, down, lost)))
            },
        )
        .boxed())
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[tokio::test]
async fn losing_the_store_keeps_the_cached_elections_and_allows_no_change() {
    let clock = ManualClock::new();
    let kv = Arc::new(FlakyKv::new());
    let (t, registry) = tracker(kv.clone(), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    assert_eq!(t.check("t", "c", "a", clock.now()).await, Ok(()));

    kv.set_down(true);
    wait_for("the watch to break", || !t.watch_healthy()).await;
    // The elected replica is still accepted (from the cache), the other still dropped, even
    // long after the failover timeout: no failover without the store.
    for _ in 0..20 {
        let now = clock.advance(1_000);
        assert_eq!(t.check("t", "c", "a", now).await, Ok(()));
        assert_eq!(t.check("t", "c", "b", now).await, not_elected("a"));
        t.update_kv_once().await;
    }
    // a dies too: b still cannot take over while the store is down.
    for _ in 0..10 {
        let now = clock.advance(1_000);
        assert_eq!(t.check("t", "c", "b", now).await, not_elected("a"));
    }
    // A cluster never seen cannot be elected: retryable.
    let r = t.check("t", "new", "x", clock.advance(3_000)).await;
    assert!(matches!(r, Err(Reject::Unavailable(_))), "{r:?}");
    assert!(metric(&registry, "strata_ha_tracker_kv_errors_total") >= 2.0);

    // Back: the failover waits a full timeout from the reconnection, then happens.
    kv.set_down(false);
    wait_for("the watch to return", || t.watch_healthy()).await;
    let now = clock.advance(1_000);
    assert_eq!(t.check("t", "c", "b", now).await, not_elected("a"));
    let now = clock.advance(FAILOVER);
    assert_eq!(t.check("t", "c", "b", now).await, Ok(()));
    assert_eq!(t.check("t", "new", "x", now).await, Ok(()));
}

#[tokio::test]
async fn a_brief_store_hiccup_does_not_delay_a_failover() {
    let clock = ManualClock::new();
    let kv = Arc::new(FlakyKv::new());
    let (t, _) = tracker(kv.clone(), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    assert_eq!(t.check("t", "c", "a", clock.now()).await, Ok(()));
    // The watch breaks and is re-established at once, several times (a flapping connection).
    for _ in 0..3 {
        clock.advance(1_000);
        kv.set_down(true);
        wait_for("the watch to break", || !t.watch_healthy()).await;
        kv.set_down(false);
        wait_for("the watch to return", || t.watch_healthy()).await;
    }
    let now = clock.advance(FAILOVER - 3_000);
    assert_eq!(t.check("t", "c", "b", now).await, Ok(()), "failover at 5 s");
}

fn request(series: &[&[(&str, &str)]]) -> WriteRequestBytes {
    WriteRequestBytes {
        timeseries: series
            .iter()
            .map(|labels| TimeSeriesBytes {
                labels: labels
                    .iter()
                    .map(|(n, v)| LabelBytes {
                        name: Bytes::copy_from_slice(n.as_bytes()),
                        value: Bytes::copy_from_slice(v.as_bytes()),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: T0,
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn names(request: &WriteRequestBytes) -> Vec<Vec<String>> {
    request
        .timeseries
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|l| String::from_utf8_lossy(&l.name).into_owned())
                .collect()
        })
        .collect()
}

const ON: HaLimits<'static> = HaLimits {
    accept_ha_samples: true,
    cluster_label: "cluster",
    replica_label: "__replica__",
    max_clusters: 0,
    max_label_value_length: 2048,
};

#[tokio::test]
async fn dedupe_strips_the_replica_label_and_leaves_other_requests_alone() {
    let clock = ManualClock::new();
    let (t, registry) = tracker(Arc::new(MemoryKv::new()), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    let now = clock.now();

    let mut r = request(&[
        &[
            ("__name__", "up"),
            ("__replica__", "a"),
            ("cluster", "c"),
            ("job", "x"),
        ],
        &[("__name__", "x"), ("__replica__", "a"), ("cluster", "c")],
    ]);
    t.dedupe("t", &ON, &mut r, now).await.unwrap();
    assert_eq!(
        names(&r),
        vec![
            vec!["__name__", "cluster", "job"],
            vec!["__name__", "cluster"]
        ]
    );

    // The other replica: dropped whole, with Mimir's message and our id, counted.
    let mut r = request(&[
        &[("__name__", "up"), ("__replica__", "b"), ("cluster", "c")],
        &[("__name__", "x"), ("__replica__", "b"), ("cluster", "c")],
    ]);
    let err = t.dedupe("t", &ON, &mut r, now).await.unwrap_err();
    let HaError::Deduplicated(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("replicas did not match, rejecting sample: replica=b, elected=a"),
        "{message}"
    );
    assert!(
        message.contains("err-strata-ha-replicas-did-not-match"),
        "{message}"
    );
    assert_eq!(
        metric(&registry, "strata_distributor_deduped_samples_total"),
        2.0
    );

    // Only the cluster label, no labels, an empty replica value, or HA off for the tenant:
    // untouched, and no election.
    for (labels, limits) in [
        (&[("__name__", "up"), ("cluster", "c")][..], ON),
        (&[("__name__", "up"), ("job", "x")][..], ON),
        (
            &[("__name__", "up"), ("__replica__", ""), ("cluster", "z")][..],
            ON,
        ),
        (
            &[("__name__", "up"), ("__replica__", "b"), ("cluster", "c")][..],
            HaLimits {
                accept_ha_samples: false,
                ..ON
            },
        ),
        (
            &[("__name__", "up"), ("__replica__", "bbb"), ("cluster", "y")][..],
            HaLimits {
                max_label_value_length: 2,
                ..ON
            },
        ),
    ] {
        let mut r = request(&[labels]);
        let before = names(&r);
        t.dedupe("t", &limits, &mut r, now).await.unwrap();
        assert_eq!(names(&r), before);
    }
    assert_eq!(elected(&t, "t", "z"), None);
    assert_eq!(elected(&t, "t", "y"), None);
    assert_eq!(
        metric(
            &registry,
            "strata_distributor_non_ha_samples_received_total"
        ),
        4.0
    );

    // Other label names, per tenant.
    let custom = HaLimits {
        accept_ha_samples: true,
        cluster_label: "team",
        replica_label: "prom",
        max_clusters: 0,
        max_label_value_length: 2048,
    };
    let mut r = request(&[&[("__name__", "up"), ("prom", "p1"), ("team", "t9")]]);
    t.dedupe("t", &custom, &mut r, now).await.unwrap();
    assert_eq!(names(&r), vec![vec!["__name__", "team"]]);
    assert_eq!(elected(&t, "t", "t9").as_deref(), Some("p1"));
}

#[tokio::test]
async fn an_unreachable_store_makes_a_new_cluster_retryable() {
    let clock = ManualClock::new();
    let kv = Arc::new(FlakyKv::new());
    kv.set_down(true);
    let (t, _) = tracker(kv, &clock);
    let mut r = request(&[&[("__name__", "up"), ("__replica__", "a"), ("cluster", "c")]]);
    let err = t.dedupe("t", &ON, &mut r, clock.now()).await.unwrap_err();
    assert!(
        matches!(&err, HaError::Unavailable(m) if m.contains("err-strata-ha-tracker-kv-unavailable")),
        "{err:?}"
    );
}

#[test]
fn config_validation_names_the_flags() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ha: HaTrackerConfig,
    }
    let parse = |args: &[&str]| {
        let mut argv = vec!["t"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().ha
    };
    assert!(parse(&[]).validate().is_ok());
    let err = parse(&["--distributor.ha-tracker.failover-timeout=20s"])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("-distributor.ha-tracker.failover-timeout (20s)")
            && err.contains("-distributor.ha-tracker.update-timeout (15s)")
            && err.contains("-distributor.ha-tracker.update-timeout-jitter-max (5s)"),
        "{err}"
    );
    assert!(parse(&[
        "--distributor.ha-tracker.failover-timeout=5s",
        "--distributor.ha-tracker.update-timeout=1s",
        "--distributor.ha-tracker.update-timeout-jitter-max=0",
        "--distributor.ha-tracker.enable",
    ])
    .validate()
    .is_ok());
    let err = parse(&["--distributor.ha-tracker.store=etcd"])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("-distributor.ha-tracker.etcd.endpoints"),
        "{err}"
    );
    assert!(parse(&["--distributor.ha-tracker.store=consul"])
        .validate()
        .is_err());
}

#[tokio::test]
async fn a_new_cluster_over_the_tenants_limit_is_refused_and_known_ones_keep_working() {
    let clock = ManualClock::new();
    let kv = Arc::new(MemoryKv::new());
    let (t1, registry) = tracker(kv.clone(), &clock);
    let (t2, _) = tracker(kv, &clock);
    wait_for("watches", || t1.watch_healthy() && t2.watch_healthy()).await;
    let now = clock.now();
    assert_eq!(t1.check_limited("t", "c1", "a", now, 2).await, Ok(()));
    // Elected through the other distributor: counts once the watch shows it.
    assert_eq!(t2.check_limited("t", "c2", "a", now, 2).await, Ok(()));
    wait_for("c2 on t1", || elected(&t1, "t", "c2").is_some()).await;
    assert_eq!(
        t1.check_limited("t", "c3", "a", now, 2).await,
        Err(Reject::TooManyClusters { limit: 2 })
    );
    assert_eq!(
        elected(&t1, "t", "c3"),
        None,
        "nothing written for a refused cluster"
    );
    // Known clusters keep their elections; other tenants have their own count.
    assert_eq!(t1.check_limited("t", "c2", "a", now, 2).await, Ok(()));
    assert_eq!(
        t1.check_limited("t", "c1", "b", now, 2).await,
        not_elected("a")
    );
    assert_eq!(t1.check_limited("u", "c3", "a", now, 2).await, Ok(()));

    // Through the push hook: 400's message with the limit, the id and the flag.
    let limited = HaLimits {
        max_clusters: 2,
        ..ON
    };
    let mut r = request(&[&[("__name__", "up"), ("__replica__", "a"), ("cluster", "c3")]]);
    let err = t1.dedupe("t", &limited, &mut r, now).await.unwrap_err();
    let HaError::TooManyClusters(message) = err else {
        panic!("{err:?}")
    };
    for part in [
        "maximum number of high-availability (HA) clusters has been reached for this tenant (limit: 2)",
        "err-strata-tenant-too-many-ha-clusters",
        "-distributor.ha-tracker.max-clusters",
        "\"c3\"",
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }
    assert_eq!(
        metric(&registry, "strata_distributor_deduped_samples_total"),
        0.0
    );
    // Raised (0: no limit): the new cluster is elected.
    assert_eq!(t1.check_limited("t", "c3", "a", now, 0).await, Ok(()));
}

#[tokio::test]
async fn the_cleanup_marks_silent_clusters_then_deletes_them_and_a_marked_cluster_elects_anew() {
    let clock = ManualClock::new();
    let kv = Arc::new(MemoryKv::new());
    let (t1, _) = tracker(kv.clone(), &clock);
    let (t2, registry) = tracker(kv.clone(), &clock);
    wait_for("watches", || t1.watch_healthy() && t2.watch_healthy()).await;
    let start = clock.now();
    assert_eq!(t1.check("t", "silent", "a", start).await, Ok(()));
    assert_eq!(t1.check("t", "busy", "a", start).await, Ok(()));
    wait_for("both on t2", || elected(&t2, "t", "busy").is_some()).await;

    // 29 minutes: nothing is old enough.
    t2.cleanup_once(clock.advance(29 * 60_000)).await;
    assert_eq!(
        metric(
            &registry,
            "strata_ha_tracker_replicas_cleanup_marked_for_deletion_total"
        ),
        0.0
    );
    // 31 minutes, "busy" still sending through t1 (its stored time refreshed), "silent" not.
    let now = clock.advance(2 * 60_000);
    assert_eq!(t1.check("t", "busy", "a", now).await, Ok(()));
    t1.update_kv_once().await;
    wait_for("busy refreshed on t2", || {
        t2.status()
            .iter()
            .any(|s| s.cluster == "busy" && s.received_at == now)
    })
    .await;
    t2.cleanup_once(now).await;
    assert_eq!(
        metric(
            &registry,
            "strata_ha_tracker_replicas_cleanup_started_total"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &registry,
            "strata_ha_tracker_replicas_cleanup_marked_for_deletion_total"
        ),
        1.0
    );
    wait_for("silent forgotten by both", || {
        elected(&t1, "t", "silent").is_none() && elected(&t2, "t", "silent").is_none()
    })
    .await;
    assert_eq!(elected(&t1, "t", "busy").as_deref(), Some("a"));
    let (records, _) = kv.list().await.unwrap();
    let marked = records.iter().find(|(k, _)| k == "t/silent").unwrap();
    assert_eq!(marked.1.desc.deleted_at, now);

    // A marked cluster that sends again is a new cluster: whoever pushes first is elected.
    assert_eq!(t2.check("t", "silent", "b", now + 1).await, Ok(()));
    assert_eq!(
        t1.check("t", "silent", "a", now + 2).await,
        not_elected("b")
    );
    let (records, _) = kv.list().await.unwrap();
    let renewed = &records
        .iter()
        .find(|(k, _)| k == "t/silent")
        .unwrap()
        .1
        .desc;
    assert_eq!((renewed.deleted_at, renewed.elected_changes), (0, 0));

    // A cluster this distributor serves is never marked, even if the store's time is old
    // (as after an outage of the store); one silent for another 31 minutes is marked, and
    // deleted 30 minutes after that.
    let later = clock.advance(31 * 60_000);
    assert_eq!(t1.check("t", "busy", "a", later).await, Ok(()));
    t1.cleanup_once(later).await;
    t1.update_kv_once().await;
    let (records, _) = kv.list().await.unwrap();
    let by_key = |k: &str| {
        records
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.desc.clone())
    };
    assert_eq!(by_key("t/busy").unwrap().deleted_at, 0);
    assert_eq!(by_key("t/silent").unwrap().deleted_at, later);
    t2.cleanup_once(clock.advance(29 * 60_000)).await;
    assert!(kv
        .list()
        .await
        .unwrap()
        .0
        .iter()
        .any(|(k, _)| k == "t/silent"));
    t2.cleanup_once(clock.advance(2 * 60_000)).await;
    assert_eq!(
        metric(
            &registry,
            "strata_ha_tracker_replicas_cleanup_deleted_total"
        ),
        1.0
    );
    assert!(!kv
        .list()
        .await
        .unwrap()
        .0
        .iter()
        .any(|(k, _)| k == "t/silent"));
}

#[tokio::test]
async fn precheck_refuses_the_other_replica_before_decoding_and_passes_the_rest() {
    let clock = ManualClock::new();
    let (t, registry) = tracker(Arc::new(MemoryKv::new()), &clock);
    wait_for("watch", || t.watch_healthy()).await;
    let now = clock.now();
    let body = |replica: &str| {
        request(&[
            &[
                ("__name__", "up"),
                ("__replica__", replica),
                ("cluster", "c"),
            ],
            &[
                ("__name__", "x"),
                ("__replica__", replica),
                ("cluster", "c"),
            ],
            &[
                ("__name__", "y"),
                ("__replica__", replica),
                ("cluster", "c"),
            ],
        ])
        .encode_to_vec()
    };
    // The first replica is elected by the precheck itself and passes on to dedupe.
    assert!(t.precheck("t", &ON, &body("a"), now).await.is_ok());
    assert_eq!(elected(&t, "t", "c").as_deref(), Some("a"));
    let Err((HaError::Deduplicated(message), samples)) =
        t.precheck("t", &ON, &body("b"), now).await
    else {
        panic!("the other replica passed the precheck")
    };
    assert_eq!(samples, 3);
    assert!(
        message.contains("3 samples from replica \"b\""),
        "{message}"
    );
    assert_eq!(
        metric(&registry, "strata_distributor_deduped_samples_total"),
        3.0
    );
    // A body that does not scan (here: cut short) is left to the decoder, not answered 202.
    let cut = body("b");
    assert!(t
        .precheck("t", &ON, &cut[..cut.len() - 3], now)
        .await
        .is_ok());
    // Not an HA request, or HA off for the tenant: passes.
    let plain = request(&[&[("__name__", "up")]]).encode_to_vec();
    assert!(t.precheck("t", &ON, &plain, now).await.is_ok());
    let off = HaLimits {
        accept_ha_samples: false,
        ..ON
    };
    assert!(t.precheck("t", &off, &body("b"), now).await.is_ok());
}
