//! The corpus on Strata against Prometheus, with Strata's data in each place it can be:
//! only in the ingesters, only in object storage (three replica blocks of every range, the
//! ingesters flushed and their local copies gone), and split across both.
//!
//! Strata runs as a small cluster of real processes: one `-target=all` process (distributor,
//! querier, store-gateway and ingester-0) and two ingester processes, replication factor 3,
//! so every range gets one block per replica.

use std::path::Path;
use std::time::Duration;

use super::{verify_loaded, DiffSetup, Endpoint, MAX_SAMPLES};
use crate::fixtures::{encode_write, push_raw, read_blocks, wait_until, Strata};

/// Nothing is cut by time during the test: only the explicit flushes move data.
const NO_CUT: [&str; 3] = [
    "-blocks-storage.tsdb.block-cut-grace-period=48h",
    "-blocks-storage.tsdb.head-compaction-idle-timeout=48h",
    // A shipped block leaves the ingester at once: object storage alone must answer.
    "-blocks-storage.tsdb.retention-period=0",
];

struct Cluster {
    main: Strata,
    ingesters: Vec<Strata>,
    bucket: std::path::PathBuf,
}

impl Cluster {
    fn start(root: &Path) -> Cluster {
        let bucket = root.join("bucket");
        let bucket_flag = format!("-blocks-storage.filesystem.dir={}", bucket.display());
        let ingesters: Vec<Strata> = (1..=2)
            .map(|i| {
                let id = format!("-ingester.ring.instance-id=ingester-{i}");
                let mut flags = vec!["-target=ingester", &id, &bucket_flag];
                flags.extend(NO_CUT);
                Strata::start(
                    &format!("diff-ingester-{i}"),
                    &root.join(format!("ingester-{i}")),
                    &flags,
                )
            })
            .collect();
        // ingester-0 is the main process itself; its address in the list is never dialled.
        let members = format!(
            "ingester-0=127.0.0.1:1,ingester-1=127.0.0.1:{},ingester-2=127.0.0.1:{}",
            ingesters[0].grpc_port, ingesters[1].grpc_port
        );
        let members_flag = format!("-ingester.ring.static-members={members}");
        let max_samples = format!("-querier.max-samples={MAX_SAMPLES}");
        let mut flags = vec![
            "-target=all",
            "-ingester.ring.instance-id=ingester-0",
            &members_flag,
            "-ingester.ring.replication-factor=3",
            &bucket_flag,
            "-querier.query-ingesters-within=0",
            "-querier.query-store-after=0",
            "-blocks-storage.bucket-store.sync-interval=1s",
            &max_samples,
        ];
        flags.extend(NO_CUT);
        let main = Strata::start("diff-strata", &root.join("main"), &flags);
        Cluster {
            main,
            ingesters,
            bucket,
        }
    }

    fn flush(&self) {
        self.main.flush();
        for i in &self.ingesters {
            i.flush();
        }
    }

    fn endpoint(&self, tenant: &str) -> Endpoint {
        Endpoint::new(
            &format!("strata/{tenant}"),
            &self.main.url(""),
            &[("X-Scope-OrgID", tenant)],
        )
    }
}

/// Pushes `requests` to Strata's distributor as `tenant`.
fn push_all(
    strata: &Strata,
    tenant: &str,
    requests: &[strata_shared::proto::prometheus::WriteRequest],
) {
    for (i, request) in requests.iter().enumerate() {
        let (status, body) = push_raw(
            &strata.url("/api/v1/push"),
            Some(tenant),
            encode_write(request),
        );
        assert_eq!(status, 200, "push {i} as {tenant}: {body}");
    }
}

/// Runs the corpus on `tenant` and fails with the report unless every answer matches.
fn assert_matches(setup: &DiffSetup, cluster: &Cluster, tenant: &str, phase: &str) {
    let candidate = cluster.endpoint(tenant);
    verify_loaded(&candidate, &setup.data);
    println!("== {phase}");
    let report = setup.run_against(&candidate);
    report.assert_all_passed();
}

#[test]
fn strata_answers_like_prometheus_from_ingesters_store_and_both() {
    let setup = DiffSetup::start();
    let cluster = Cluster::start(&setup.dir.path().join("strata"));
    let requests = setup.data.requests(Duration::from_secs(120));

    // 1. Everything in the ingesters' heads (three replicas of every series).
    push_all(&cluster.main, "whole", &requests);
    assert_matches(&setup, &cluster, "whole", "data only in the ingesters");

    // 2. Tenant "split": the first half flushed to object storage, the second half pushed
    //    after the flush so it stays in the ingesters. The flush also moves all of "whole"
    //    to object storage.
    let half = requests.len() / 2;
    push_all(&cluster.main, "split", &requests[..half]);
    cluster.flush();
    push_all(&cluster.main, "split", &requests[half..]);

    let blocks = read_blocks(&cluster.bucket, "whole");
    let sources: std::collections::BTreeSet<&str> =
        blocks.iter().map(|b| b.source.as_str()).collect();
    assert_eq!(
        sources.len(),
        3,
        "every replica ships its own blocks of the same ranges: {sources:?}"
    );
    let series_in_data = setup
        .data
        .series
        .iter()
        .filter(|s| !s.samples.is_empty())
        .count();
    wait_until("the store-gateway serves tenant whole", || {
        let body = crate::fixtures::http()
            .get(
                cluster
                    .main
                    .url("/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D"),
            )
            .header("X-Scope-OrgID", "whole")
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"].as_array().map(Vec::len))
            .is_some_and(|n| n == series_in_data)
    });
    assert_matches(
        &setup,
        &cluster,
        "whole",
        "data only in object storage, three replica blocks per range",
    );
    assert_matches(
        &setup,
        &cluster,
        "split",
        "data split: first half in object storage, second half in the ingesters",
    );
}
