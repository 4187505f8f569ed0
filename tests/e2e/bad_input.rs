//! Bad input gets its 4xx and a clear message, loses nothing else, and the process keeps
//! serving; the good series of a mixed request are written.

use strata_shared::labels::Labels;
use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

#[test]
fn bad_requests_are_rejected_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-bad-input",
        dir.path(),
        &["-distributor.max-recv-msg-size=20000"],
    );
    let url = strata.url("/api/v1/push");
    let now = now_ms();
    let good = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "good"), ("job", "e2e")],
            &[(now, 1.0)],
        )],
        metadata: vec![],
    };

    // No tenant with multitenancy on: 401.
    let (status, body) = push_raw(&url, None, encode_write(&good));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("X-Scope-OrgID"), "{body}");

    // A tenant id with a forbidden character: 400.
    let (status, body) = push_raw(&url, Some("team/a"), encode_write(&good));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unsupported character"), "{body}");

    // Not snappy.
    let (status, body) = push_raw(&url, Some("t1"), b"this is not snappy at all".to_vec());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("snappy"), "{body}");

    // Snappy, but not a protobuf WriteRequest.
    let junk = snap::raw::Encoder::new()
        .compress_vec(&[0xff; 64])
        .expect("snappy");
    let (status, body) = push_raw(&url, Some("t1"), junk);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("prometheus.WriteRequest"), "{body}");

    // Oversized body: 413 naming the flag.
    let big = vec![0u8; 50_000];
    let (status, body) = push_raw(&url, Some("t1"), big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("-distributor.max-recv-msg-size"), "{body}");

    // A mixed request: invalid and duplicate labels next to good series.
    let mixed = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "good"), ("job", "e2e")], &[(now, 1.0)]),
            series(&[("__name__", "bad"), ("bad-label", "x")], &[(now, 2.0)]),
            series(
                &[("__name__", "dup"), ("a", "1"), ("a", "2")],
                &[(now, 3.0)],
            ),
            series(
                &[("__name__", "also_good"), ("empty", ""), ("job", "e2e")],
                &[(now, 4.0)],
            ),
            series(
                &[("__name__", "future"), ("job", "e2e")],
                &[(now + 3_600_000, 5.0)],
            ),
        ],
        metadata: vec![],
    };
    let (status, body) = push(&strata, Some("t1"), &mixed);
    assert_eq!(status, 400, "{body}");
    for needle in [
        "bad-label",
        "err-strata-label-invalid",
        "duplicate label name",
        "err-strata-too-far-in-future",
        "-validation.create-grace-period",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in: {body}");
    }

    // Out of order and duplicate-with-another-value are refused by the ingester, with the series named.
    let (status, body) = push(
        &strata,
        Some("t1"),
        &WriteRequest {
            timeseries: vec![
                series(
                    &[("__name__", "good"), ("job", "e2e")],
                    &[(now - 1000, 9.0)],
                ),
                series(&[("__name__", "also_good"), ("job", "e2e")], &[(now, 40.0)]),
            ],
            metadata: vec![],
        },
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("out of order sample") && body.contains("good{job=\"e2e\"}"),
        "{body}"
    );
    assert!(body.contains("duplicate sample for timestamp"), "{body}");
    // Re-sending the same sample (a retry) is accepted silently.
    let (status, body) = push(&strata, Some("t1"), &good);
    assert_eq!(status, 200, "{body}");

    // Still serving.
    assert!(http()
        .get(strata.url("/ready"))
        .send()
        .expect("ready")
        .status()
        .is_success());

    // The good series are in the block; the bad ones are not; empty labels were dropped.
    strata.flush();
    let blocks = read_blocks(&dir.path().join("blocks"), "t1");
    let all = merge_blocks(&blocks);
    let names: Vec<String> = all.keys().map(|l| l.to_string()).collect();
    assert_eq!(
        names,
        vec![
            "also_good{job=\"e2e\"}".to_string(),
            "good{job=\"e2e\"}".to_string()
        ]
    );
    let good_labels = Labels::from_pairs([("__name__", "good"), ("job", "e2e")]);
    assert_eq!(all[&good_labels].len(), 1);

    // Discards are counted by reason and tenant.
    let m = strata.metrics();
    assert!(
        metric_value(
            &m,
            "strata_discarded_samples_total{reason=\"label_invalid\",user=\"t1\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "strata_discarded_samples_total{reason=\"sample-out-of-order\",user=\"t1\"}"
        ) >= 1.0,
        "{m}"
    );
}

#[test]
fn sigterm_keeps_acknowledged_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut strata = Strata::start(
        "strata-sigterm",
        dir.path(),
        &["-auth.multitenancy-enabled=false"],
    );
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..50)
        .map(|i| (now - 50_000 + i * 1000, i as f64 * 0.5))
        .collect();
    push_one_series(&strata, "kept", &samples);
    assert!(
        strata.proc.terminate(),
        "strata did not exit cleanly on SIGTERM:\n{}",
        strata.proc.log_text()
    );
    strata.proc.restart();
    strata.wait_ready();
    strata.flush();
    let all = merge_blocks(&read_blocks(&dir.path().join("blocks"), "anonymous"));
    let labels = Labels::from_pairs([("__name__", "kept"), ("job", "e2e")]);
    assert_eq!(
        all.get(&labels).map(|s| s.len()),
        Some(50),
        "samples lost across SIGTERM"
    );
}

#[test]
fn torn_wal_tail_after_sigkill_is_truncated_not_a_crash_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut strata = Strata::start(
        "strata-torn-wal",
        dir.path(),
        &["-auth.multitenancy-enabled=false"],
    );
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..20)
        .map(|i| (now - 20_000 + i * 1000, i as f64))
        .collect();
    push_one_series(&strata, "torn", &samples);
    strata.proc.kill9();

    // Half a record at the end of the newest segment, as a crash mid-write leaves it.
    let wal = dir.path().join("tsdb").join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .expect("wal dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    segments.sort();
    let last = segments.last().expect("a WAL segment");
    let mut bytes = std::fs::read(last).expect("segment");
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
    std::fs::write(last, bytes).expect("tear the segment");

    strata.proc.restart();
    strata.wait_ready();
    assert!(
        strata.proc.log_text().contains("truncating the WAL"),
        "no log line about the torn tail:\n{}",
        strata.proc.log_text()
    );
    strata.flush();
    let all = merge_blocks(&read_blocks(&dir.path().join("blocks"), "anonymous"));
    let labels = Labels::from_pairs([("__name__", "torn"), ("job", "e2e")]);
    assert_eq!(
        all.get(&labels).map(|s| s.len()),
        Some(20),
        "acknowledged samples lost"
    );
}
