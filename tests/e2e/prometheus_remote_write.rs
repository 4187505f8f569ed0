//! A real Prometheus 2.42 scrapes real targets (itself and Strata) and remote-writes into
//! Strata. After a flush, the blocks hold exactly the samples Prometheus has for the same
//! series and range, compared with Prometheus' own query API.

use std::collections::BTreeMap;

use strata_shared::labels::Labels;

use crate::fixtures::*;

/// Parses Prometheus' JSON timestamp (float seconds) into exact milliseconds.
pub(crate) fn parse_ts(v: &serde_json::Value) -> i64 {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        other => panic!("timestamp is not a number: {other}"),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut frac = frac.to_string();
    frac.truncate(3);
    while frac.len() < 3 {
        frac.push('0');
    }
    secs.parse::<i64>().expect("seconds") * 1000 + frac.parse::<i64>().expect("millis")
}

#[test]
fn prometheus_remote_write_round_trips_exactly() {
    let prometheus = require_binary("prometheus", "apt-get install prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    // Debian's Prometheus 2.42 (2.42.0+ds-5+deb12u1) does not send remote_write `headers`
    // (checked against a header-dumping server), so X-Scope-OrgID never arrives: this test
    // runs Strata single-tenant, where everything is the tenant "anonymous".
    let strata = Strata::start(
        "strata-prom",
        dir.path(),
        &["-auth.multitenancy-enabled=false"],
    );
    let prom_port = free_port();
    let config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prom_port}"]}}]
  - job_name: strata
    static_configs: [{{targets: ["127.0.0.1:{}"]}}]
remote_write:
  - url: http://127.0.0.1:{}/api/v1/push
    queue_config:
      min_shards: 1
      max_shards: 1
      batch_send_deadline: 1s
      max_samples_per_send: 500
"#,
        strata.http_port, strata.http_port
    );
    let _prom = spawn_prometheus(&prometheus, dir.path(), &config, prom_port);
    let client = http();
    wait_until("prometheus ready", || {
        client
            .get(format!("http://127.0.0.1:{prom_port}/-/ready"))
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    });
    // Let it scrape a while, then pick a cut-off in the past that remote write has passed.
    wait_until("10 scrapes of both targets", || {
        let v = prom_query(prom_port, "count_over_time(up[1m])", now_ms());
        let r = v["data"]["result"].as_array().cloned().unwrap_or_default();
        r.len() == 2
            && r.iter().all(|s| {
                s["value"][1]
                    .as_str()
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    >= 10.0
            })
    });
    let cutoff = now_ms() - 2000;
    wait_until("remote write to pass the cut-off", || {
        let v = prom_query(
            prom_port,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            now_ms(),
        );
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .map(|s| s * 1000.0 > (cutoff + 2000) as f64)
            .unwrap_or(false)
    });

    // What Prometheus has: every raw sample of every series up to the cut-off.
    let v = prom_query(prom_port, r#"{__name__=~".+"}[10m]"#, cutoff);
    let mut expected: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("matrix") {
        let labels = Labels::from_pairs(
            s["metric"]
                .as_object()
                .expect("metric")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
        );
        let samples = expected.entry(labels).or_default();
        for pair in s["values"].as_array().expect("values") {
            let value: f64 = match pair[1].as_str().expect("value") {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                x => x.parse().expect("float"),
            };
            samples.insert(parse_ts(&pair[0]), value.to_bits());
        }
    }
    assert!(
        expected.len() > 100,
        "Prometheus returned only {} series",
        expected.len()
    );

    strata.flush();
    let blocks = read_blocks(&dir.path().join("blocks"), "anonymous");
    assert!(!blocks.is_empty(), "no block shipped");
    let got = merge_blocks(&blocks);
    // Strata's view over the same range; staleness markers are not returned by Prometheus' range queries.
    let stale = 0x7ff0_0000_0000_0002u64;
    let mut mismatches = Vec::new();
    let mut compared = 0usize;
    for (labels, want) in &expected {
        let have: BTreeMap<i64, u64> = got
            .get(labels)
            .map(|m| {
                m.iter()
                    .filter(|(t, bits)| **t <= cutoff && **t > cutoff - 600_000 && **bits != stale)
                    .map(|(t, b)| (*t, *b))
                    .collect()
            })
            .unwrap_or_default();
        // Prometheus' NaN (other than stale markers) prints as "NaN": compare NaN-ness only.
        let norm = |m: &BTreeMap<i64, u64>| -> Vec<(i64, u64)> {
            m.iter()
                .map(|(t, b)| {
                    (
                        *t,
                        if f64::from_bits(*b).is_nan() {
                            f64::NAN.to_bits()
                        } else {
                            *b
                        },
                    )
                })
                .collect()
        };
        if norm(&have) != norm(want) {
            mismatches.push(format!(
                "{labels}: Prometheus {} samples, Strata {}",
                want.len(),
                have.len()
            ));
        }
        compared += want.len();
    }
    let extra: Vec<String> = got
        .keys()
        .filter(|l| !expected.contains_key(*l))
        .filter(|l| {
            got[*l]
                .iter()
                .any(|(t, b)| *t <= cutoff && *t > cutoff - 600_000 && *b != stale)
        })
        .map(|l| l.to_string())
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} series differ, e.g. {:?}",
        mismatches.len(),
        expected.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    assert!(
        extra.is_empty(),
        "series in Strata that Prometheus does not have: {:?}",
        &extra[..extra.len().min(5)]
    );
    println!(
        "prometheus remote write: {} series, {compared} samples identical in Strata's blocks",
        expected.len()
    );
}
