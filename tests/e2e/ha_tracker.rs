//! HA-pair deduplication end to end: a real etcd, a real node_exporter scraped every second
//! by two real Prometheus 2.42 with the same `cluster` and different `__replica__` external
//! labels, each remote-writing to its own Strata distributor (one `-target=all` process with
//! the ingester and the querier, one `-target=distributor`); the distributors share the
//! elections through etcd.
//!
//! Checked through Strata's query API against each Prometheus' own: only the elected
//! replica's samples are stored, once, without the replica label; after the elected
//! Prometheus is SIGKILLed the other one's samples are accepted after the failover timeout
//! (decided by its distributor, learned by the other through the etcd watch), with no
//! duplicated or interleaved timestamps and a gap of at most the failover timeout plus one
//! scrape interval (and the replicas' batching jitter); with etcd stopped (SIGSTOP, then
//! SIGKILL) pushes keep being accepted and data keeps arriving, and both distributors pick
//! the store up again when it is back.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::fixtures::*;
use crate::prometheus_remote_write::parse_ts;

const CLUSTER: &str = "ha-e2e";
const FAILOVER_MS: i64 = 5_000;
const SCRAPE_MS: i64 = 1_000;
const UPDATE_MS: i64 = 1_000;

/// `/api/v1/query` on Strata or Prometheus (same API); returns `data.result`.
fn query(port: u16, q: &str, at_ms: i64) -> Vec<Value> {
    let time = format!("{}.{:03}", at_ms / 1000, at_ms % 1000);
    let text = http()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q), ("time", time.as_str())])
        .send()
        .and_then(|r| r.text())
        .unwrap_or_else(|e| panic!("query {q} on :{port}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["status"], "success", "{q} on :{port}: {text}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Raw timestamps of `up{job="node"}` in the `window_s` seconds before `at_ms`. There must
/// be one series at most: two would mean the replica label was stored.
fn up_samples(port: u16, at_ms: i64, window_s: u32) -> Vec<i64> {
    let result = query(port, &format!("up{{job=\"node\"}}[{window_s}s]"), at_ms);
    assert!(
        result.len() <= 1,
        "several `up` series on :{port}: {result:?}"
    );
    result
        .first()
        .map(|s| {
            s["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|p| parse_ts(&p[0]))
                .collect()
        })
        .unwrap_or_default()
}

fn count_series(port: u16, at_ms: i64) -> i64 {
    query(port, r#"count({job="node"})"#, at_ms)
        .first()
        .and_then(|s| s["value"][1].as_str()?.parse().ok())
        .unwrap_or(0)
}

/// (elected replica, its last-seen time in the store) for our cluster, as `strata` knows it.
fn election(strata: &Strata) -> Option<(String, i64)> {
    let text = http()
        .get(strata.url("/distributor/ha_tracker?format=json"))
        .send()
        .and_then(|r| r.text())
        .ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["clusters"].as_array()?.iter().find_map(|c| {
        (c["tenant"] == "anonymous" && c["cluster"] == CLUSTER).then(|| {
            (
                c["replica"].as_str().unwrap_or_default().to_string(),
                c["received_at"].as_i64().unwrap_or(0),
            )
        })
    })
}

fn metric(strata: &Strata, series: &str) -> f64 {
    metric_value(&strata.metrics(), series)
}

fn server_errors(strata: &Strata) -> f64 {
    let m = strata.metrics();
    ["500", "502", "503", "504"]
        .iter()
        .map(|c| {
            metric_value(
                &m,
                &format!("strata_distributor_requests_total{{code=\"{c}\"}}"),
            )
        })
        .sum()
}

fn ok_pushes(strata: &Strata) -> f64 {
    metric(strata, "strata_distributor_requests_total{code=\"200\"}")
}

fn watch_healthy(strata: &Strata) -> bool {
    metric(strata, "strata_ha_tracker_kv_watch_healthy") == 1.0
}

fn signal(pid: i32, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -{signal} {pid}");
}

/// Largest distance between consecutive timestamps.
fn max_gap(ts: &[i64]) -> i64 {
    ts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// Remote write's batch deadline in the Prometheus configs below.
const BATCH_DEADLINE_MS: i64 = 100;

/// The longest gap allowed in the stored samples: the failover timeout and one scrape
/// interval. The failover timeout counts from the dead replica's last push (Mimir's rule,
/// on the distributor's clock), which left up to one batch deadline after its last sample;
/// the survivor's pushes wait as long, so only the difference of the two replicas' batching
/// delays — at most [`BATCH_DEADLINE_MS`] — can add to the interval. Each etcd outage below
/// lasts longer than this, so a stop of ingestion during one would show.
const MAX_GAP_MS: i64 = FAILOVER_MS + SCRAPE_MS + BATCH_DEADLINE_MS;

/// No gap in `stored` longer than [`MAX_GAP_MS`], and as many series in Strata as in the
/// Prometheus whose samples it has.
fn assert_one_replica_stored(stored: &[i64], strata_port: u16, prom_port: u16, at: i64) {
    assert!(
        max_gap(stored) <= MAX_GAP_MS,
        "gap of {} ms in {stored:?}",
        max_gap(stored)
    );
    assert_eq!(count_series(strata_port, at), count_series(prom_port, at));
}

/// A single-member etcd on free ports, data under `dir/etcd`; returns once it is healthy.
fn start_etcd(etcd_bin: &std::path::Path, dir: &std::path::Path) -> (Proc, u16) {
    let (etcd_port, peer_port) = (free_port(), free_port());
    let etcd = Proc::spawn(
        "etcd",
        etcd_bin,
        &[
            "--name=e2e".to_string(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
            format!("--initial-cluster=e2e=http://127.0.0.1:{peer_port}"),
        ],
        dir,
    );
    wait_until("etcd healthy", || etcd_healthy(etcd_port));
    (etcd, etcd_port)
}

fn etcd_healthy(port: u16) -> bool {
    http()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .and_then(|r| r.text())
        .map(|t| t.contains("true"))
        .unwrap_or(false)
}

/// The store contract the HA tracker relies on, against a real etcd: create-if-absent,
/// compare-and-swap on the revision with the current record on conflict, the clean-up's
/// mark and conditional delete, listing under the prefix only, and a watch that sees each
/// change once, in order.
#[test]
fn the_etcd_store_keeps_the_ha_trackers_compare_and_swap_contract() {
    use futures::StreamExt;
    use strata_ingester::distributor::ha_tracker::etcd::EtcdKv;
    use strata_ingester::distributor::ha_tracker::kv::{CasOutcome, HaKv, ReplicaDesc, WatchEvent};

    let etcd_bin = require_binary("etcd", "apt-get install etcd-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_etcd, port) = start_etcd(&etcd_bin, dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let endpoint = format!("127.0.0.1:{port}");
        let kv =
            EtcdKv::new(&endpoint, "ha-e2e/", std::time::Duration::from_secs(5)).expect("client");
        let other_prefix = EtcdKv::new(&endpoint, "elsewhere/", std::time::Duration::from_secs(5))
            .expect("client");
        let desc = |replica: &str, at: i64| ReplicaDesc {
            replica: replica.to_string(),
            received_at: at,
            elected_at: at,
            elected_changes: 0,
            deleted_at: 0,
        };
        let (_, start) = kv.list().await.expect("list");
        let mut watch = kv.watch(start + 1).await.expect("watch");

        let CasOutcome::Written(r1) = kv.put_if("t/c", 0, &desc("a", 1)).await.expect("create")
        else {
            panic!("create of an absent key conflicted")
        };
        // A second create loses and sees the winner.
        match kv.put_if("t/c", 0, &desc("b", 2)).await.expect("cas") {
            CasOutcome::Conflict(Some(v)) => assert_eq!((v.desc, v.revision), (desc("a", 1), r1)),
            other => panic!("{other:?}"),
        }
        let CasOutcome::Written(r2) = kv.put_if("t/c", r1, &desc("a", 5)).await.expect("update")
        else {
            panic!("update at the current revision conflicted")
        };
        assert!(r2 > r1);
        other_prefix
            .put_if("t/c", 0, &desc("z", 9))
            .await
            .expect("other prefix");
        let (listed, _) = kv.list().await.expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].0, "t/c");
        assert_eq!(listed[0].1.desc, desc("a", 5));

        // Clean-up: mark, then delete at the mark's revision only.
        let marked = ReplicaDesc {
            deleted_at: 7,
            ..desc("a", 5)
        };
        let CasOutcome::Written(r3) = kv.put_if("t/c", r2, &marked).await.expect("mark") else {
            panic!("mark conflicted")
        };
        assert!(!kv.delete_if("t/c", r2).await.expect("stale delete"));
        assert!(kv.delete_if("t/c", r3).await.expect("delete"));
        assert!(kv.list().await.expect("list").0.is_empty());
        assert!(!kv.delete_if("t/c", r3).await.expect("delete of nothing"));

        let mut seen = Vec::new();
        while seen.len() < 4 {
            let events = tokio::time::timeout(std::time::Duration::from_secs(30), watch.next())
                .await
                .expect("watch events within 30 s")
                .expect("watch open")
                .expect("watch ok");
            seen.extend(events);
        }
        let summary: Vec<String> = seen
            .iter()
            .map(|e| match e {
                WatchEvent::Put { key, value } => {
                    format!("put {key} {} {}", value.desc.replica, value.desc.deleted_at)
                }
                WatchEvent::Delete { key } => format!("delete {key}"),
            })
            .collect();
        assert_eq!(
            summary,
            ["put t/c a 0", "put t/c a 0", "put t/c a 7", "delete t/c"]
        );
    });
}

/// The names of the processes of one replica and the distributor it writes to.
struct Replica<'a> {
    name: &'static str,
    prom: &'a mut Proc,
    prom_port: u16,
    strata: &'a Strata,
}

#[test]
fn ha_pairs_are_deduplicated_through_etcd_with_failover_and_etcd_outages() {
    let etcd_bin = require_binary("etcd", "apt-get install etcd-server");
    let node_exporter = require_binary(
        "prometheus-node-exporter",
        "apt-get install prometheus-node-exporter",
    );
    let prometheus = require_binary("prometheus", "apt-get install prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let client = http();

    let (mut etcd, etcd_port) = start_etcd(&etcd_bin, dir.path());
    let etcd_up = || etcd_healthy(etcd_port);

    let node_port = free_port();
    let _node = Proc::spawn(
        "node-exporter",
        &node_exporter,
        &[
            format!("--web.listen-address=127.0.0.1:{node_port}"),
            "--collector.disable-defaults".to_string(),
            "--collector.loadavg".to_string(),
            "--collector.meminfo".to_string(),
            "--collector.cpu".to_string(),
            "--collector.time".to_string(),
        ],
        dir.path(),
    );

    // Strata: A runs everything (ingester, querier, distributor), B only a distributor that
    // writes to A's ingester; both track HA pairs in the same etcd.
    let grpc = free_port();
    let ring = format!("-ingester.ring.static-members=ingester-1=127.0.0.1:{grpc}");
    let ha = [
        "-auth.multitenancy-enabled=false".to_string(),
        "-ingester.ring.replication-factor=1".to_string(),
        ring.clone(),
        "-distributor.ha-tracker.enable=true".to_string(),
        "-distributor.ha-tracker.enable-for-all-users=true".to_string(),
        "-distributor.ha-tracker.store=etcd".to_string(),
        format!("-distributor.ha-tracker.etcd.endpoints=127.0.0.1:{etcd_port}"),
        "-distributor.ha-tracker.etcd.dial-timeout=1s".to_string(),
        format!("-distributor.ha-tracker.failover-timeout={}ms", FAILOVER_MS),
        format!("-distributor.ha-tracker.update-timeout={UPDATE_MS}ms"),
        "-distributor.ha-tracker.update-timeout-jitter-max=0".to_string(),
    ];
    let mut a_args: Vec<String> = ha.to_vec();
    a_args.extend([
        format!("-server.grpc-listen-port={grpc}"),
        "-ingester.ring.instance-id=ingester-1".to_string(),
    ]);
    let a_refs: Vec<&str> = a_args.iter().map(String::as_str).collect();
    let strata_a = Strata::start("strata-a", &dir.path().join("a"), &a_refs);
    let mut b_args: Vec<String> = ha.to_vec();
    b_args.push("-target=distributor".to_string());
    let b_refs: Vec<&str> = b_args.iter().map(String::as_str).collect();
    let strata_b = Strata::start("strata-b", &dir.path().join("b"), &b_refs);
    let query_port = strata_a.http_port;

    let start_prometheus = |name: &str, strata: &Strata| -> (Proc, u16) {
        let port = free_port();
        let config = format!(
            r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
  external_labels:
    cluster: {CLUSTER}
    __replica__: {name}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{node_port}"]}}]
remote_write:
  - url: {}
    queue_config:
      min_shards: 1
      max_shards: 1
      batch_send_deadline: {BATCH_DEADLINE_MS}ms
      max_samples_per_send: 2000
"#,
            strata.url("/api/v1/push")
        );
        let path = dir.path().join(format!("{name}.yml"));
        std::fs::write(&path, config).expect("prometheus config");
        let proc = Proc::spawn(
            name,
            &prometheus,
            &[
                format!("--config.file={}", path.display()),
                format!("--storage.tsdb.path={}", dir.path().join(name).display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            dir.path(),
        );
        wait_until(&format!("{name} ready"), || {
            http()
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        });
        (proc, port)
    };
    let (mut prom_a, prom_a_port) = start_prometheus("prom-a", &strata_a);
    let (mut prom_b, prom_b_port) = start_prometheus("prom-b", &strata_b);
    let started = now_ms();

    // ---- Both send; one is elected, the other's pushes answered 202.
    wait_until("an election known to both distributors", || {
        let a = election(&strata_a).map(|(r, _)| r);
        a.is_some() && a == election(&strata_b).map(|(r, _)| r)
    });
    let (first_elected, _) = election(&strata_a).expect("election");
    let mut a_side = Replica {
        name: "prom-a",
        prom: &mut prom_a,
        prom_port: prom_a_port,
        strata: &strata_a,
    };
    let mut b_side = Replica {
        name: "prom-b",
        prom: &mut prom_b,
        prom_port: prom_b_port,
        strata: &strata_b,
    };
    let (elected, other) = if first_elected == "prom-a" {
        (&mut a_side, &mut b_side)
    } else {
        assert_eq!(first_elected, "prom-b");
        (&mut b_side, &mut a_side)
    };
    println!("elected first: {}", elected.name);
    wait_until("10 samples of `up` in Strata within 20 s", || {
        up_samples(query_port, now_ms() - 2_000, 20).len() >= 10
    });
    wait_until("the other replica to be dropped with 202", || {
        metric(
            other.strata,
            "strata_distributor_requests_total{code=\"202\"}",
        ) > 0.0
    });
    let at = now_ms() - 2_000;
    let stored = up_samples(query_port, at, 20);
    let from_elected: BTreeSet<i64> = up_samples(elected.prom_port, at, 20).into_iter().collect();
    let from_other: BTreeSet<i64> = up_samples(other.prom_port, at, 20).into_iter().collect();
    assert!(stored.len() >= 10, "{stored:?}");
    assert!(!from_other.is_empty());
    for t in &stored {
        assert!(
            from_elected.contains(t) && !from_other.contains(t),
            "sample at {t} is not (only) the elected replica's: stored {stored:?}, elected {from_elected:?}, other {from_other:?}"
        );
    }
    let series = count_series(query_port, at);
    assert!(series > 20, "only {series} node series");
    assert_eq!(
        series,
        count_series(elected.prom_port, at),
        "series in Strata vs the elected Prometheus"
    );
    let listed: Value = serde_json::from_str(
        &client
            .get(strata_a.url("/api/v1/series"))
            .query(&[
                ("match[]", r#"{job="node"}"#),
                ("start", &(started / 1000).to_string()),
            ])
            .send()
            .and_then(|r| r.text())
            .expect("series"),
    )
    .expect("series json");
    let listed = listed["data"].as_array().expect("series list");
    assert!(listed.len() as i64 >= series);
    for s in listed {
        assert_eq!(s["cluster"], CLUSTER, "{s}");
        assert!(s.get("__replica__").is_none(), "replica label stored: {s}");
    }
    let deduped = metric(
        other.strata,
        &format!(
            "strata_distributor_deduped_samples_total{{cluster=\"{CLUSTER}\",user=\"anonymous\"}}"
        ),
    );
    assert!(deduped > 0.0);
    assert_eq!(
        metric(elected.strata, "strata_distributor_deduped_samples_total"),
        0.0
    );
    println!(
        "before failover: {} `up` samples in 20 s, all from {}; {series} series stored once; {deduped} samples of {} deduplicated",
        stored.len(),
        elected.name,
        other.name
    );

    // ---- SIGKILL the elected Prometheus: the other is elected after the failover timeout.
    let elected_samples: BTreeSet<i64> = up_samples(elected.prom_port, now_ms(), 300)
        .into_iter()
        .collect();
    elected.prom.kill9();
    let killed_at = now_ms();
    wait_until("the survivor elected, on both distributors", || {
        [&strata_a, &strata_b]
            .iter()
            .all(|s| election(s).is_some_and(|(r, _)| r == other.name))
    });
    let switched_at = now_ms();
    println!(
        "failover to {} seen by both distributors {} ms after the kill",
        other.name,
        switched_at - killed_at
    );
    wait_until("survivor samples in Strata", || {
        up_samples(query_port, now_ms(), 10)
            .last()
            .is_some_and(|t| *t > switched_at + 3_000)
    });
    let at = now_ms() - 1_000;
    let window = ((at - started) / 1000 + 5) as u32;
    let stored = up_samples(query_port, at, window);
    let survivor: BTreeSet<i64> = up_samples(other.prom_port, at, window)
        .into_iter()
        .collect();
    let mut last_elected = i64::MIN;
    let mut first_survivor = i64::MAX;
    for t in &stored {
        if survivor.contains(t) {
            first_survivor = first_survivor.min(*t);
        } else if elected_samples.contains(t) || (*t > killed_at - 2_000 && *t <= killed_at) {
            assert!(
                first_survivor == i64::MAX,
                "{t} from the dead replica after the survivor's first sample {first_survivor}"
            );
            last_elected = last_elected.max(*t);
        } else {
            panic!("sample at {t} is from neither Prometheus");
        }
    }
    let switch_gap = first_survivor - last_elected;
    println!(
        "failover: last sample of {} at {last_elected}, first of {} at {first_survivor}: gap {switch_gap} ms; largest gap overall {} ms",
        elected.name,
        other.name,
        max_gap(&stored)
    );
    assert!(last_elected > i64::MIN && first_survivor < i64::MAX);
    // Not before the failover timeout: the stored last-seen time lags the dead replica's
    // last push by at most the update timeout and one background tick (a quarter of it).
    assert!(
        switch_gap >= FAILOVER_MS - UPDATE_MS - UPDATE_MS / 4 - BATCH_DEADLINE_MS,
        "the survivor was accepted {switch_gap} ms after the dead replica's last sample: before the failover timeout"
    );
    assert_one_replica_stored(&stored, query_port, other.prom_port, at);

    // ---- etcd hangs (SIGSTOP), then dies (SIGKILL): pushes keep being accepted.
    for outage in ["STOP", "KILL"] {
        let oks = ok_pushes(other.strata);
        let errors = server_errors(other.strata);
        let began = now_ms();
        if outage == "STOP" {
            signal(etcd.pid(), "STOP");
        } else {
            etcd.kill9();
        }
        wait_until("both distributors to notice etcd is gone", || {
            !watch_healthy(&strata_a) && !watch_healthy(&strata_b)
        });
        let noticed = now_ms() - began;
        // Longer than the failover timeout (and than any gap allowed) without the store.
        wait_until("data to keep arriving without etcd", || {
            up_samples(query_port, now_ms(), 10)
                .last()
                .is_some_and(|t| *t > began + MAX_GAP_MS + 1_000)
        });
        let accepted = ok_pushes(other.strata) - oks;
        assert!(
            accepted >= 5.0,
            "{accepted} pushes accepted during the outage"
        );
        assert_eq!(
            server_errors(other.strata),
            errors,
            "5xx during the etcd outage"
        );
        for s in [&strata_a, &strata_b] {
            assert_eq!(election(s).map(|(r, _)| r).as_deref(), Some(other.name));
        }
        let back = now_ms();
        if outage == "STOP" {
            signal(etcd.pid(), "CONT");
        } else {
            etcd.restart();
            wait_until("etcd healthy again", etcd_up);
        }
        wait_until(
            "both distributors watching etcd again, with a fresh last-seen time",
            || {
                [&strata_a, &strata_b].iter().all(|s| {
                    watch_healthy(s)
                        && election(s).is_some_and(|(r, seen)| r == other.name && seen > back)
                })
            },
        );
        println!(
            "etcd {outage}: noticed after {noticed} ms, {accepted} pushes accepted and no 5xx in {} ms without etcd; recovered {} ms after it was back",
            back - began,
            now_ms() - back
        );
    }

    // ---- The killed Prometheus comes back: it is not elected again, its samples are dropped.
    let deduped_before = metric(elected.strata, "strata_distributor_deduped_samples_total");
    elected.prom.restart();
    wait_until("the returning replica to be deduplicated", || {
        metric(elected.strata, "strata_distributor_deduped_samples_total") > deduped_before
    });
    for s in [&strata_a, &strata_b] {
        assert_eq!(election(s).map(|(r, _)| r).as_deref(), Some(other.name));
    }

    // Over the whole run: one series, no duplicated timestamps, every sample after the
    // switch from the survivor, no gap longer than MAX_GAP_MS.
    let at = now_ms() - 1_000;
    let window = ((at - started) / 1000 + 5) as u32;
    let stored = up_samples(query_port, at, window);
    let survivor: BTreeSet<i64> = up_samples(other.prom_port, at, window)
        .into_iter()
        .collect();
    assert!(stored.windows(2).all(|w| w[0] < w[1]));
    for t in stored.iter().filter(|t| **t >= first_survivor) {
        assert!(
            survivor.contains(t),
            "sample at {t} after the failover is not the survivor's"
        );
    }
    assert_one_replica_stored(&stored, query_port, other.prom_port, at);
    println!(
        "whole run: {} `up` samples over {} s, largest gap {} ms",
        stored.len(),
        window,
        max_gap(&stored)
    );
}
