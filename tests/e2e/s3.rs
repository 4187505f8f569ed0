//! The S3 path against a real S3 server (s3s-fs: the S3 wire protocol with SigV4 over a
//! local directory). Object storage is stopped for a while: blocks wait on local disk and
//! arrive once it is back; nothing is lost.

use strata_shared::labels::Labels;
use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

fn write(name: &str, start: i64, n: i64) -> WriteRequest {
    let samples: Vec<(i64, f64)> = (0..n)
        .map(|i| (start + i * 1000, (i as f64) / 3.0))
        .collect();
    WriteRequest {
        timeseries: vec![series(&[("__name__", name), ("job", "s3")], &samples)],
        metadata: vec![],
    }
}

#[test]
fn blocks_reach_s3_and_survive_an_outage() {
    let s3s = require_binary(
        "s3s-fs",
        "cargo install s3s-fs --version 0.14.1 --locked --features binary",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("s3-root");
    std::fs::create_dir_all(root.join("strata-blocks")).expect("bucket dir");
    let port = free_port();
    let s3_args = vec![
        "--host".to_string(),
        "127.0.0.1".to_string(),
        "--port".to_string(),
        port.to_string(),
        "--access-key".to_string(),
        "e2e-access".to_string(),
        "--secret-key".to_string(),
        "e2e-secret-key".to_string(),
        root.display().to_string(),
    ];
    let mut s3 = Proc::spawn("s3s-fs", &s3s, &s3_args, dir.path());
    wait_until("s3s-fs listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let strata = Strata::start(
        "strata-s3",
        &dir.path().join("strata"),
        &[
            "-auth.multitenancy-enabled=false",
            "-blocks-storage.backend=s3",
            &format!("-blocks-storage.s3.endpoint=127.0.0.1:{port}"),
            "-blocks-storage.s3.bucket-name=strata-blocks",
            "-blocks-storage.s3.access-key-id=e2e-access",
            "-blocks-storage.s3.secret-access-key=e2e-secret-key",
            "-blocks-storage.s3.insecure=true",
            "-blocks-storage.s3.bucket-lookup-type=path",
            "-blocks-storage.tsdb.ship-interval=2s",
        ],
    );
    let now = now_ms();
    let (status, body) = push(&strata, None, &write("before_outage", now - 120_000, 100));
    assert_eq!(status, 200, "{body}");
    strata.flush();
    let bucket = root.join("strata-blocks");
    assert_eq!(
        read_blocks(&bucket, "anonymous").len(),
        1,
        "the first block is not in S3"
    );

    // Object storage goes away; the block waits on local disk and the push path is unaffected.
    s3.kill9();
    let (status, body) = push(&strata, None, &write("during_outage", now - 60_000, 50));
    assert_eq!(status, 200, "{body}");
    let r = http()
        .post(strata.url("/ingester/flush"))
        .send()
        .expect("flush");
    assert!(r.status().is_success());
    wait_until("a failed upload to be counted", || {
        metric_value(&strata.metrics(), "strata_ingester_ship_failures_total") >= 1.0
    });
    assert!(metric_value(&strata.metrics(), "strata_ingester_blocks_pending_ship") >= 1.0);
    assert_eq!(read_blocks(&bucket, "anonymous").len(), 1);

    // It comes back: the block arrives by itself.
    s3.restart();
    wait_until("the held block to be shipped", || {
        read_blocks(&bucket, "anonymous").len() == 2
    });
    let all = merge_blocks(&read_blocks(&bucket, "anonymous"));
    let before = Labels::from_pairs([("__name__", "before_outage"), ("job", "s3")]);
    let during = Labels::from_pairs([("__name__", "during_outage"), ("job", "s3")]);
    assert_eq!(all.get(&before).map(|s| s.len()), Some(100));
    assert_eq!(all.get(&during).map(|s| s.len()), Some(50));
    for (i, (t, bits)) in all[&during].iter().enumerate() {
        assert_eq!(*t, now - 60_000 + i as i64 * 1000);
        assert_eq!(*bits, ((i as f64) / 3.0).to_bits());
    }
}
