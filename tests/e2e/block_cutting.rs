//! Blocks are cut by themselves once a range is closed (range end + grace, by the newest
//! sample), shipped, and the WAL is checkpointed only after the upload. Short ranges stand
//! in for the 2 h default so the test runs in seconds.

use strata_shared::labels::Labels;
use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

#[test]
fn closed_ranges_are_cut_shipped_and_the_wal_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-cutting",
        dir.path(),
        &[
            "-auth.multitenancy-enabled=false",
            "-blocks-storage.tsdb.block-ranges-period=10s",
            "-blocks-storage.tsdb.block-cut-grace-period=2s",
            "-blocks-storage.tsdb.head-compaction-interval=200ms",
        ],
    );
    // 60 s of samples, one per second, ending now: ranges of 10 s, all but the last closed.
    let now = now_ms();
    let start = now - 60_000;
    let samples: Vec<(i64, f64)> = (0..60)
        .map(|i| (start + i * 1000, i as f64 + 0.25))
        .collect();
    push_one_series(&strata, "cut_me", &samples);

    let bucket = dir.path().join("blocks");
    let range_ms = 10_000;
    // The newest sample is now - 1 s; with 2 s of grace every range ending by then is closed.
    let closed_end = (now - 1000 - 2000).div_euclid(range_ms) * range_ms;
    let labels = Labels::from_pairs([("__name__", "cut_me"), ("job", "e2e")]);
    let want: Vec<i64> = samples
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t < closed_end)
        .collect();
    let cut_times = || -> Vec<i64> {
        merge_blocks(&read_blocks(&bucket, "anonymous"))
            .get(&labels)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    };
    wait_until("blocks for every closed range, without a flush", || {
        cut_times().len() >= want.len()
    });
    assert_eq!(
        cut_times(),
        want,
        "the cut blocks must hold exactly the samples of the closed ranges"
    );
    for block in read_blocks(&bucket, "anonymous") {
        let times: Vec<i64> = block.series[&labels].keys().copied().collect();
        let first_range = times[0].div_euclid(range_ms);
        assert!(
            times.iter().all(|t| t.div_euclid(range_ms) == first_range),
            "a block spans two ranges: {times:?}"
        );
    }

    // Once nothing is left to ship, the WAL is checkpointed: a checkpoint file, old segments gone.
    let wal = dir.path().join("tsdb").join("wal");
    wait_until("a WAL checkpoint", || {
        std::fs::read_dir(&wal)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint."))
            })
            .unwrap_or(false)
    });

    // Samples of a range already cut are now out of bounds.
    let (status, body) = push(
        &strata,
        None,
        &WriteRequest {
            timeseries: vec![series(
                &[("__name__", "late"), ("job", "e2e")],
                &[(start, 1.0)],
            )],
            metadata: vec![],
        },
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("out of bounds"), "{body}");

    // And nothing was lost: after a flush every pushed sample is in exactly one block.
    strata.flush();
    let all = merge_blocks(&read_blocks(&bucket, "anonymous"));
    let got: Vec<(i64, u64)> = all[&labels].iter().map(|(t, b)| (*t, *b)).collect();
    let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
    assert_eq!(got, want);
}
