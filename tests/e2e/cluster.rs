//! A cluster of real processes: one distributor, three ingesters (replication factor 3).
//! One ingester is killed with SIGKILL while a load generator pushes; pushes keep
//! succeeding; it restarts and replays its WAL; after a flush every acknowledged sample is
//! in the blocks of at least two ingesters (the write quorum).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_shared::labels::Labels;
use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

const SERIES: usize = 50;
const TENANT: &str = "cluster";

fn start_ingester(i: usize, root: &Path) -> Strata {
    let dir = root.join(format!("ingester-{i}"));
    Strata::start(
        &format!("ingester-{i}"),
        &dir,
        &[
            "-target=ingester",
            &format!("-ingester.ring.instance-id=ingester-{i}"),
            &format!(
                "-blocks-storage.filesystem.dir={}",
                root.join("bucket").display()
            ),
        ],
    )
}

/// The batch pushed at step `k`: every series gets one sample at `base + k` ms.
fn batch(base: i64, k: i64) -> WriteRequest {
    let timeseries = (0..SERIES)
        .map(|s| {
            let name = format!("load_series_{s}");
            series(
                &[("__name__", "e2e_load"), ("series", &name)],
                &[(base + k, (k as f64) * 1.5 + s as f64)],
            )
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

#[test]
fn sigkill_of_one_ingester_loses_no_acknowledged_sample() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut ingesters: Vec<Strata> = (0..3).map(|i| start_ingester(i, root.path())).collect();
    let members = ingesters
        .iter()
        .enumerate()
        .map(|(i, s)| format!("ingester-{i}=127.0.0.1:{}", s.grpc_port))
        .collect::<Vec<_>>()
        .join(",");
    let distributor = Strata::start(
        "distributor",
        &root.path().join("distributor"),
        &[
            "-target=distributor",
            "-ingester.ring.replication-factor=3",
            &format!("-ingester.ring.static-members={members}"),
        ],
    );

    // The load generator: pushes batch after batch, recording which were acknowledged.
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let failed: Arc<Mutex<Vec<(i64, u16, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let base = now_ms() - 60_000;
    let url = distributor.url("/api/v1/push");
    let loader = {
        let (acked, failed, stop) = (acked.clone(), failed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut k = 0i64;
            while !stop.load(Ordering::SeqCst) && k < 50_000 {
                let (status, body) = push_raw(&url, Some(TENANT), encode_write(&batch(base, k)));
                if status == 200 {
                    acked.lock().expect("lock").push(k);
                } else {
                    failed.lock().expect("lock").push((k, status, body));
                }
                k += 1;
            }
        })
    };
    let acked_count = || acked.lock().expect("lock").len();
    wait_until("200 acknowledged pushes", || acked_count() >= 200);

    // SIGKILL one ingester mid-load; pushes must keep succeeding on the other two.
    ingesters[1].proc.kill9();
    let at_kill = acked_count();
    wait_until(
        "200 more acknowledged pushes with one ingester down",
        || acked_count() >= at_kill + 200,
    );

    // Restart it: it replays its WAL and rejoins.
    ingesters[1].proc.restart();
    ingesters[1].wait_ready();
    let at_restart = acked_count();
    wait_until("200 more acknowledged pushes after the restart", || {
        acked_count() >= at_restart + 200
    });
    stop.store(true, Ordering::SeqCst);
    loader.join().expect("load generator");

    let failed = failed.lock().expect("lock").clone();
    assert!(
        failed.is_empty(),
        "pushes failed while at most one ingester was down: {:?}",
        &failed[..failed.len().min(3)]
    );
    let replayed = ingesters[1].proc.log_text();
    assert!(
        replayed.contains("WAL replayed"),
        "the restarted ingester did not replay its WAL:\n{replayed}"
    );

    for ingester in &ingesters {
        ingester.flush();
    }
    let blocks = read_blocks(&root.path().join("bucket"), TENANT);
    assert!(!blocks.is_empty(), "no blocks shipped");
    // For every acknowledged sample: in how many ingesters' blocks is it, with the right value?
    let mut holders: BTreeMap<(Labels, i64), std::collections::BTreeSet<String>> = BTreeMap::new();
    for block in &blocks {
        for (labels, samples) in &block.series {
            for (t, bits) in samples {
                let s: usize = labels
                    .get("series")
                    .and_then(|n| n.trim_start_matches("load_series_").parse().ok())
                    .expect("series label");
                let k = t - base;
                assert_eq!(
                    *bits,
                    ((k as f64) * 1.5 + s as f64).to_bits(),
                    "wrong value for {labels} at {t}"
                );
                holders
                    .entry((labels.clone(), *t))
                    .or_default()
                    .insert(block.source.clone());
            }
        }
    }
    let acked = acked.lock().expect("lock").clone();
    let mut missing = Vec::new();
    for k in &acked {
        for s in 0..SERIES {
            let labels = Labels::from_pairs([
                ("__name__", "e2e_load".to_string()),
                ("series", format!("load_series_{s}")),
            ]);
            let n = holders
                .get(&(labels.clone(), base + k))
                .map(|h| h.len())
                .unwrap_or(0);
            if n < 2 {
                missing.push(format!("{labels}@{} in {n} ingesters", base + k));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged samples are below quorum in the blocks, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    println!(
        "cluster: {} acknowledged pushes ({} samples), all present in >= 2 ingesters' blocks",
        acked.len(),
        acked.len() * SERIES
    );

    // The ring page shows the three members.
    let ring: serde_json::Value = serde_json::from_str(
        &http()
            .get(distributor.url("/ring?format=json"))
            .send()
            .and_then(|r| r.text())
            .expect("ring"),
    )
    .expect("ring json");
    assert_eq!(
        ring["members"].as_array().map(|m| m.len()),
        Some(3),
        "{ring}"
    );

    // With two of three ingesters down, a write cannot reach its quorum: a retryable 503.
    ingesters[0].proc.kill9();
    ingesters[2].proc.kill9();
    let (status, body) = push_raw(
        &distributor.url("/api/v1/push"),
        Some(TENANT),
        encode_write(&batch(base, 100_000)),
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("-ingester.ring.replication-factor"), "{body}");
}
