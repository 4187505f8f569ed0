//! A block is an open table: DuckDB alone, with the SQL recipe of docs/block-format.md
//! (`scripts/read_block_duckdb.py`), reads back exactly what Strata's own reader does,
//! bit for bit, staleness markers and other NaN payloads included.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

fn python() -> String {
    std::env::var("STRATA_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

#[test]
fn duckdb_reads_blocks_bit_exactly() {
    let probe = Command::new(python())
        .args(["-c", "import duckdb"])
        .status();
    assert!(
        probe.map(|s| s.success()).unwrap_or(false),
        "python3 with the duckdb module is needed; the README's test command installs it (pip install duckdb)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-open-format",
        dir.path(),
        &["-auth.multitenancy-enabled=false"],
    );
    let now = now_ms();
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let odd_nan = f64::from_bits(0x7ff8_0000_dead_beef);
    // -0.0 cannot be written with prost (a proto3 encoder leaves a double equal to 0.0 out of
    // the message); Prometheus (Go) does send it. So the body carries a sentinel that is
    // patched into an explicit -0.0 below.
    let sentinel = 1234.5678f64;
    let specials = [
        0.0,
        sentinel,
        1.5,
        stale,
        odd_nan,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-300,
        0.1 + 0.2,
        123456.78,
    ];
    let mut timeseries = Vec::new();
    for (i, name) in ["counter_total", "noisy_seconds", "special_values"]
        .iter()
        .enumerate()
    {
        let samples: Vec<(i64, f64)> = (0..40)
            .map(|k| {
                let v = match i {
                    0 => 1000.0 + k as f64 * 12.25,
                    1 => (k as f64 * 0.7).sin() * 1e-3,
                    _ => specials[k % specials.len()],
                };
                (now - 40_000 + k as i64 * 1000, v)
            })
            .collect();
        // A label named like a structural column of the series table.
        timeseries.push(series(
            &[("__name__", name), ("job", "open"), ("scale", "x")],
            &samples,
        ));
    }
    let mut raw = prost::Message::encode_to_vec(&WriteRequest {
        timeseries,
        metadata: vec![],
    });
    let mut needle = vec![0x09u8];
    needle.extend_from_slice(&sentinel.to_le_bytes());
    let mut patched = 0;
    for i in 0..raw.len().saturating_sub(needle.len() - 1) {
        if raw[i..i + needle.len()] == needle[..] {
            raw[i + 1..i + needle.len()].copy_from_slice(&(-0.0f64).to_le_bytes());
            patched += 1;
        }
    }
    assert!(patched > 0, "sentinel not found in the encoded request");
    let body = snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy");
    let (status, text) = push_raw(&strata.url("/api/v1/push"), None, body);
    assert_eq!(status, 200, "{text}");
    // Through the WAL: SIGKILL, replay, then flush.
    let mut strata = strata;
    strata.proc.kill9();
    strata.proc.restart();
    strata.wait_ready();
    strata.flush();

    let tenant_dir = dir.path().join("blocks").join("anonymous");
    let mut compared = 0;
    let mut negative_zeros = 0;
    for block in std::fs::read_dir(&tenant_dir)
        .expect("tenant dir")
        .flatten()
    {
        let block_dir = block.path();
        let ours: BTreeSet<String> = ours(&block_dir);
        let output = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_block_duckdb.py"))
            .arg(&block_dir)
            .output()
            .expect("run the DuckDB reader");
        assert!(
            output.status.success(),
            "DuckDB reader failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(
            theirs,
            ours,
            "DuckDB and Strata read block {} differently",
            block_dir.display()
        );
        negative_zeros += ours
            .iter()
            .filter(|l| l.contains("\"8000000000000000\""))
            .count();
        compared += ours.len();
    }
    assert_eq!(compared, 120, "expected 3 series x 40 samples");
    assert_eq!(
        negative_zeros, patched,
        "-0.0 did not survive the WAL and the block"
    );
    println!("open format: DuckDB read {compared} samples bit-exactly");
}

/// Strata's reader, printed the way the script prints.
fn ours(block_dir: &Path) -> BTreeSet<String> {
    let mut files = std::collections::HashMap::new();
    for f in std::fs::read_dir(block_dir).expect("block").flatten() {
        files.insert(
            f.file_name().to_string_lossy().into_owned(),
            bytes::Bytes::from(std::fs::read(f.path()).expect("file")),
        );
    }
    let mut out = BTreeSet::new();
    for s in strata_shared::block::decode_block(&files).expect("decode") {
        let labels: serde_json::Map<String, serde_json::Value> = s
            .labels
            .iter()
            .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
            .collect();
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            out.insert(
                serde_json::to_string(&serde_json::json!([
                    labels,
                    t,
                    format!("{:016x}", v.to_bits())
                ]))
                .expect("json"),
            );
        }
    }
    out
}
