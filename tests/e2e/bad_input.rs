//! Bad input gets its 4xx and a clear message, loses nothing else, and the process keeps
//! serving; the good series of a mixed request are written. Hostile queries (extreme
//! parameters on every query and metadata endpoint, deep and long expressions) get a 4xx in
//! Prometheus' JSON envelope within a bound, and the data stays queryable.

use strata_shared::labels::Labels;
use strata_shared::proto::prometheus::WriteRequest;

use std::time::{Duration, Instant};

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

/// One hostile request: the endpoint and its form-encoded parameters (sent as a POST body
/// when the endpoint takes one, so 100k-character queries need no huge URL).
struct Hostile {
    what: &'static str,
    path: String,
    params: Vec<(&'static str, String)>,
    status: u16,
    error_type: &'static str,
    needle: &'static str,
}

fn hostile(
    what: &'static str,
    path: &str,
    params: &[(&'static str, &str)],
    status: u16,
    error_type: &'static str,
    needle: &'static str,
) -> Hostile {
    Hostile {
        what,
        path: path.to_string(),
        params: params.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        status,
        error_type,
        needle,
    }
}

fn hostile_requests() -> Vec<Hostile> {
    const Q: &str = "/prometheus/api/v1/query";
    const R: &str = "/prometheus/api/v1/query_range";
    const OUT: &str = "outside the times";
    let mut list = vec![
        hostile(
            "time=1e300",
            Q,
            &[("query", "kept"), ("time", "1e300")],
            400,
            "bad_data",
            OUT,
        ),
        hostile(
            "time=-1e18",
            Q,
            &[("query", "kept"), ("time", "-1e18")],
            400,
            "bad_data",
            OUT,
        ),
        hostile(
            "time=max i64 ms",
            Q,
            &[("query", "kept"), ("time", "9223372036854775.807")],
            400,
            "bad_data",
            OUT,
        ),
        hostile(
            "time=NaN",
            Q,
            &[("query", "kept"), ("time", "NaN")],
            400,
            "bad_data",
            "Invalid time value for 'time'",
        ),
        hostile(
            "timeout=1e300",
            Q,
            &[("query", "kept"), ("timeout", "1e300")],
            400,
            "bad_data",
            "It overflows int64",
        ),
        hostile(
            "x @ -1e300",
            Q,
            &[("query", "kept @ -1e300")],
            400,
            "bad_data",
            "timestamp out of bounds for @ modifier",
        ),
        hostile(
            "x @ 1e300",
            Q,
            &[("query", "kept @ 1e300")],
            400,
            "bad_data",
            "timestamp out of bounds for @ modifier",
        ),
        hostile(
            "offset 1000000y",
            Q,
            &[("query", "kept offset 1000000y")],
            400,
            "bad_data",
            "duration out of range",
        ),
        hostile(
            "range [1000000y]",
            Q,
            &[("query", "rate(kept[1000000y])")],
            400,
            "bad_data",
            "duration out of range",
        ),
        hostile(
            "nested subquery [1y:1s]",
            Q,
            &[("query", "max_over_time(max_over_time(kept[1y:1s])[1y:1s])")],
            422,
            "execution",
            "-querier.max-samples",
        ),
        hostile(
            "range ±9.2e15 step 1e15",
            R,
            &[
                ("query", "kept"),
                ("start", "-9.2e15"),
                ("end", "9.2e15"),
                ("step", "1e15"),
            ],
            400,
            "bad_data",
            OUT,
        ),
        hostile(
            "range start=end=9223372036854776",
            R,
            &[
                ("query", "kept"),
                ("start", "9223372036854776"),
                ("end", "9223372036854776"),
                ("step", "1"),
            ],
            400,
            "bad_data",
            OUT,
        ),
        hostile(
            "range step=1e300",
            R,
            &[
                ("query", "kept"),
                ("start", "0"),
                ("end", "1"),
                ("step", "1e300"),
            ],
            400,
            "bad_data",
            "It overflows int64",
        ),
        hostile(
            "range step=0",
            R,
            &[
                ("query", "kept"),
                ("start", "0"),
                ("end", "1"),
                ("step", "0"),
            ],
            400,
            "bad_data",
            "zero or negative query resolution step widths are not accepted",
        ),
        hostile(
            "range end before start",
            R,
            &[
                ("query", "kept"),
                ("start", "10"),
                ("end", "1"),
                ("step", "1"),
            ],
            400,
            "bad_data",
            "end timestamp must not be before start time",
        ),
        hostile(
            "range 11,001 points",
            R,
            &[
                ("query", "kept"),
                ("start", "0"),
                ("end", "11001"),
                ("step", "1"),
            ],
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        hostile(
            "exemplars start=1e300",
            "/prometheus/api/v1/query_exemplars",
            &[("query", "kept"), ("start", "1e300")],
            400,
            "bad_data",
            OUT,
        ),
        hostile(
            "metadata limit=1e300",
            "/prometheus/api/v1/metadata",
            &[("limit", "1e300")],
            400,
            "bad_data",
            "limit must be a number",
        ),
    ];
    for endpoint in ["series", "labels", "label/job/values"] {
        let path = format!("/prometheus/api/v1/{endpoint}");
        for (what, start, end) in [
            ("start=1e300 end=-1e300", "1e300", "-1e300"),
            (
                "start=end=9223372036854776",
                "9223372036854776",
                "9223372036854776",
            ),
        ] {
            list.push(Hostile {
                what,
                path: path.clone(),
                params: vec![
                    ("match[]", "kept".to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                ],
                status: 400,
                error_type: "bad_data",
                needle: OUT,
            });
        }
    }
    let depth = "-querier.max-query-expression-depth";
    for n in [10_000usize, 100_000] {
        let deep = [
            (
                "nested parentheses",
                format!("{}kept{}", "(".repeat(n), ")".repeat(n)),
            ),
            (
                "nested abs(",
                format!("{}kept{}", "abs(".repeat(n), ")".repeat(n)),
            ),
            ("binary chain", vec!["kept"; n].join(" + ")),
            ("pi() chain", vec!["pi()"; n].join(" * ")),
        ];
        for (what, query) in deep {
            for path in [Q, "/prometheus/api/v1/format_query"] {
                list.push(Hostile {
                    what,
                    path: path.to_string(),
                    params: vec![("query", query.clone())],
                    status: 400,
                    error_type: "bad_data",
                    needle: depth,
                });
            }
            list.push(Hostile {
                what,
                path: "/prometheus/api/v1/series".to_string(),
                params: vec![("match[]", query.clone())],
                status: 400,
                error_type: "bad_data",
                needle: "",
            });
        }
    }
    list
}

/// Sends `h` (a GET for `label/<name>/values` and `metadata`, a form POST elsewhere);
/// returns the status, the body and how long the answer took.
fn send(strata: &Strata, h: &Hostile) -> (u16, String, Duration) {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(h.params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let client = http();
    let started = Instant::now();
    let request = if h.path.contains("/label/") || h.path.ends_with("/metadata") {
        client.get(format!("{}?{form}", strata.url(&h.path)))
    } else {
        client
            .post(strata.url(&h.path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
    };
    match request.send() {
        Ok(r) => (
            r.status().as_u16(),
            r.text().unwrap_or_default(),
            started.elapsed(),
        ),
        Err(e) => (0, format!("no answer: {e}"), started.elapsed()),
    }
}

fn query_kept(strata: &Strata) -> usize {
    let v = api_query(&strata.url(""), None, "kept", now_ms());
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

#[test]
fn hostile_queries_get_4xx_envelopes_and_the_process_lives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-hostile-queries",
        dir.path(),
        &["-auth.multitenancy-enabled=false"],
    );
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..30)
        .map(|i| (now - 30_000 + i * 1000, i as f64))
        .collect();
    push_one_series(&strata, "kept", &samples);
    wait_until("the pushed series to be queryable", || {
        query_kept(&strata) == 1
    });

    // Every answer is bounded: a depth check is one pass over the text, the rest fail on
    // their parameters before any data is read.
    let bound = Duration::from_secs(15);
    let mut failures = Vec::new();
    for h in hostile_requests() {
        let (status, body, took) = send(&strata, &h);
        let head: String = body.chars().take(300).collect();
        let envelope: Option<serde_json::Value> = serde_json::from_str(&body).ok();
        let ok_envelope = envelope.as_ref().is_some_and(|v| {
            v["status"] == "error" && v["errorType"] == h.error_type && v["error"].is_string()
        });
        if status != h.status || !ok_envelope || !body.contains(h.needle) || took > bound {
            failures.push(format!(
                "{} {} ({} chars): status {status} (want {}), took {took:?}: {head}",
                h.path,
                h.what,
                h.params.iter().map(|(_, v)| v.len()).sum::<usize>(),
                h.status
            ));
        }
        let ready = http()
            .get(strata.url("/ready"))
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        assert!(
            ready,
            "strata stopped answering after {} {}:\n{}",
            h.path,
            h.what,
            strata.proc.log_text()
        );
    }
    assert!(
        failures.is_empty(),
        "{} hostile requests were answered wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A form body over Go's ParseForm limit (10 MiB) is refused before it is read whole.
    let huge = format!("query={}", "a".repeat(11 << 20));
    let response = http()
        .post(strata.url("/api/v1/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .expect("an answer to an 11 MiB query body");
    assert_eq!(response.status().as_u16(), 413);

    // 1,000 levels is within the default limit: answered like Prometheus.
    let v = api_query(
        &strata.url(""),
        None,
        &format!("{}kept{}", "(".repeat(1_000), ")".repeat(1_000)),
        now,
    );
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");

    // Earlier data is still there, and no handler panicked on the way.
    assert_eq!(query_kept(&strata), 1);
    let m = strata.metrics();
    assert_eq!(metric_value(&m, "strata_panics_total"), 0.0, "{m}");
}

/// Samples whose timestamps no block range can hold are refused at validation, whatever the
/// grace periods allow; the good series of the same request is written, and the extreme
/// timestamps that are accepted are cut into blocks like any other.
#[test]
fn extreme_timestamps_are_refused_and_blocks_still_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-extreme-timestamps",
        dir.path(),
        // Grace periods wide open: the range rule must hold on its own.
        &["-validation.create-grace-period=3000000000h"],
    );
    let now = now_ms();
    let limit = 1i64 << 53;
    let extremes = [
        i64::MIN,
        i64::MIN + 1,
        -limit - 1,
        limit + 1,
        i64::MAX - 1,
        i64::MAX,
    ];
    for (i, t) in extremes.into_iter().enumerate() {
        let request = WriteRequest {
            timeseries: vec![
                series(&[("__name__", "extreme"), ("job", "e2e")], &[(t, 1.0)]),
                series(
                    &[("__name__", "kept"), ("job", "e2e")],
                    &[(now - 10_000 + i as i64, 1.0)],
                ),
            ],
            metadata: vec![],
        };
        let (status, body) = push(&strata, Some("extreme"), &request);
        assert_eq!(status, 400, "timestamp {t}: {body}");
        assert!(
            body.contains("err-strata-sample-timestamp-out-of-range"),
            "timestamp {t}: {body}"
        );
    }
    // The extreme accepted timestamps, each in a tenant of its own (one far from the others
    // would put them out of the head's bounds).
    for (tenant, t) in [("edge-low", -limit), ("edge-high", limit)] {
        let request = WriteRequest {
            timeseries: vec![series(&[("__name__", "edge"), ("job", "e2e")], &[(t, 2.0)])],
            metadata: vec![],
        };
        let (status, body) = push(&strata, Some(tenant), &request);
        assert_eq!(status, 200, "{tenant}: {body}");
    }
    strata.flush();
    let cut = |tenant: &str| -> Vec<i64> {
        let mut all: Vec<i64> = read_blocks(&dir.path().join("blocks"), tenant)
            .iter()
            .flat_map(|b| b.series.values())
            .flat_map(|samples| samples.keys().copied())
            .collect();
        all.sort_unstable();
        all
    };
    assert_eq!(cut("edge-low"), vec![-limit]);
    assert_eq!(cut("edge-high"), vec![limit]);
    let kept: Vec<i64> = (0..extremes.len() as i64)
        .map(|i| now - 10_000 + i)
        .collect();
    assert_eq!(
        cut("extreme"),
        kept,
        "the good series of the refused requests"
    );
    let v = api_query(&strata.url(""), Some("extreme"), "kept", now);
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(1), "{v}");
    let m = strata.metrics();
    assert_eq!(metric_value(&m, "strata_panics_total"), 0.0, "{m}");
}
