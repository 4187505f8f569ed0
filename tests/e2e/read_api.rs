//! The Prometheus HTTP API of a real `strata` process: tenant isolation through every
//! endpoint, with the data in the ingester and then only in object storage; the requests
//! Grafana sends; and bad queries rejected with Prometheus' envelope while the process
//! keeps serving.

use serde_json::Value;

use crate::fixtures::{http, now_ms, push, series, wait_until, Strata};
use strata_shared::proto::prometheus::WriteRequest;

/// GET `path` (with the tenant header when given) and parse the JSON body.
fn get(strata: &Strata, tenant: Option<&str>, path: &str) -> (u16, Value) {
    let mut request = http().get(strata.url(path));
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let response = request.send().expect("API request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: body is not JSON ({e}): {text}"));
    (status, body)
}

/// POST a form to `path` and parse the JSON body.
fn post_form(strata: &Strata, tenant: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = http()
        .post(strata.url(path))
        .header("X-Scope-OrgID", tenant)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .expect("API request");
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")),
    )
}

fn data(strata: &Strata, tenant: &str, path: &str) -> Value {
    let (status, body) = get(strata, Some(tenant), path);
    assert_eq!(status, 200, "{path} as {tenant}: {body}");
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["data"].clone()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Pushes `name{job, secret_label="s"}` for `tenant`: 20 samples, 15 s apart, ending now.
fn push_tenant(strata: &Strata, tenant: &str, name: &str, job: &str, secret_label: &str) -> i64 {
    let end = now_ms() / 1000 * 1000;
    let samples: Vec<(i64, f64)> = (0..20)
        .map(|i| (end - (19 - i) * 15_000, i as f64))
        .collect();
    // Remote-write wants label names sorted.
    let mut labels = [("__name__", name), ("job", job), (secret_label, "s")];
    labels.sort();
    let request = WriteRequest {
        timeseries: vec![
            series(&labels, &samples),
            series(&[("__name__", "shared_name"), ("job", job)], &samples),
        ],
        metadata: vec![],
    };
    let (status, body) = push(strata, Some(tenant), &request);
    assert_eq!(status, 200, "{body}");
    end
}

/// Everything tenant `me` can read names only its own series, labels and values.
fn assert_sees_only_own(
    strata: &Strata,
    me: &str,
    own: (&str, &str, &str),
    other: (&str, &str, &str),
    end: i64,
) {
    let (name, job, secret) = own;
    let (other_name, other_job, other_secret) = other;
    let t = end as f64 / 1000.0;
    for prefix in ["/api/v1", "/prometheus/api/v1"] {
        let labels = strings(&data(strata, me, &format!("{prefix}/labels")));
        assert!(
            labels.contains(&secret.to_string()),
            "{me} labels {labels:?}"
        );
        assert!(
            !labels.contains(&other_secret.to_string()),
            "{me} sees {other_secret}: {labels:?}"
        );

        let names = strings(&data(
            strata,
            me,
            &format!("{prefix}/label/__name__/values"),
        ));
        assert_eq!(
            names,
            vec![name.to_string(), "shared_name".to_string()],
            "{me}"
        );
        let jobs = strings(&data(strata, me, &format!("{prefix}/label/job/values")));
        assert_eq!(jobs, vec![job.to_string()], "{me}");
        let other_values = strings(&data(
            strata,
            me,
            &format!("{prefix}/label/{other_secret}/values"),
        ));
        assert!(
            other_values.is_empty(),
            "{me} sees values of {other_secret}"
        );

        let all = enc("{__name__=~\".+\"}");
        let series = data(strata, me, &format!("{prefix}/series?match[]={all}"));
        let series = series.as_array().expect("series array");
        assert_eq!(series.len(), 2, "{me}: {series:?}");
        for s in series {
            assert_eq!(s["job"], job, "{me}: {s}");
            assert_ne!(s["__name__"], other_name);
        }
        let shared = enc("shared_name");
        let series = data(strata, me, &format!("{prefix}/series?match[]={shared}"));
        assert_eq!(series.as_array().map(Vec::len), Some(1), "{me}: {series}");

        let result = data(strata, me, &format!("{prefix}/query?query={all}&time={t}"));
        let result = result["result"].as_array().expect("vector");
        assert_eq!(result.len(), 2, "{me}: {result:?}");
        for s in result {
            assert_eq!(s["metric"]["job"], job);
        }
        let count = enc("count({__name__=~\".+\"})");
        let range = data(
            strata,
            me,
            &format!(
                "{prefix}/query_range?query={count}&start={}&end={t}&step=15",
                t - 285.0
            ),
        );
        let values = range["result"][0]["values"]
            .as_array()
            .expect("matrix")
            .clone();
        assert_eq!(values.len(), 20, "{me}: {range}");
        assert!(values.iter().all(|p| p[1] == "2"), "{me}: {range}");
        let other = enc(&format!("{{job=\"{other_job}\"}}"));
        let result = data(
            strata,
            me,
            &format!("{prefix}/query?query={other}&time={t}"),
        );
        assert_eq!(
            result["result"],
            serde_json::json!([]),
            "{me} reads {other_job}"
        );
    }
}

#[test]
fn tenants_never_see_each_other_in_ingesters_or_object_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-read-api",
        dir.path(),
        &[
            "-querier.query-store-after=0",
            "-querier.query-ingesters-within=0",
            "-blocks-storage.tsdb.retention-period=0",
            "-blocks-storage.bucket-store.sync-interval=1s",
        ],
    );
    let end = push_tenant(&strata, "team-a", "alpha_requests", "alpha", "secret_a");
    push_tenant(&strata, "team-b", "beta_requests", "beta", "secret_b");
    let a = ("alpha_requests", "alpha", "secret_a");
    let b = ("beta_requests", "beta", "secret_b");

    // In the ingester's head.
    assert_sees_only_own(&strata, "team-a", a, b, end);
    assert_sees_only_own(&strata, "team-b", b, a, end);

    // Only in object storage: flushed, the head truncated, the local copy deleted.
    strata.flush();
    wait_until("the store-gateway sees both tenants' blocks", || {
        let (status, body) = get(&strata, Some("team-a"), "/api/v1/label/job/values");
        status == 200 && body["data"] == serde_json::json!(["alpha"])
    });
    assert_sees_only_own(&strata, "team-a", a, b, end);
    assert_sees_only_own(&strata, "team-b", b, a, end);

    // No tenant: 401 in Prometheus' envelope, on every endpoint.
    for path in [
        "/api/v1/query?query=up",
        "/api/v1/labels",
        "/api/v1/series?match[]=up",
    ] {
        let (status, body) = get(&strata, None, path);
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data");
    }
}

#[test]
fn grafana_requests_and_bad_queries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start("strata-grafana", dir.path(), &[]);
    let end = push_tenant(&strata, "grafana", "http_requests_total", "api", "handler");
    let t = end as f64 / 1000.0;
    let tenant = "grafana";

    // Health check and flavour detection.
    let one = data(
        &strata,
        tenant,
        &format!("/api/v1/query?query={}&time={t}", enc("1+1")),
    );
    assert_eq!(one["resultType"], "scalar");
    assert_eq!(one["result"][1], "2");
    let info = data(&strata, tenant, "/api/v1/status/buildinfo");
    assert!(
        info["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.")),
        "{info}"
    );
    assert!(
        info["features"].as_object().is_some_and(|f| !f.is_empty()),
        "{info}"
    );

    // Autocompletion: labels and values with a time window and match[], series by POST.
    let window = format!("start={}&end={t}", t - 3600.0);
    let labels = strings(&data(&strata, tenant, &format!("/api/v1/labels?{window}")));
    assert_eq!(labels, vec!["__name__", "handler", "job"]);
    let values = strings(&data(
        &strata,
        tenant,
        &format!(
            "/api/v1/label/job/values?{window}&match[]={}",
            enc("http_requests_total")
        ),
    ));
    assert_eq!(values, vec!["api"]);
    let (status, series) = post_form(
        &strata,
        tenant,
        "/api/v1/series",
        &[
            ("match[]", "{job=\"api\"}"),
            ("start", &(t - 600.0).to_string()),
            ("end", &t.to_string()),
        ],
    );
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["data"].as_array().map(Vec::len), Some(2), "{series}");

    // A panel: range query by POST, and Explore's exemplars and metadata calls.
    let (status, range) = post_form(
        &strata,
        tenant,
        "/api/v1/query_range",
        &[
            ("query", "rate(http_requests_total[1m])"),
            // Every 1m window from here on lies inside the data (it starts at t - 285).
            ("start", &(t - 180.0).to_string()),
            ("end", &t.to_string()),
            ("step", "60"),
        ],
    );
    assert_eq!(status, 200, "{range}");
    assert_eq!(range["data"]["resultType"], "matrix");
    let points = range["data"]["result"][0]["values"]
        .as_array()
        .expect("values");
    assert_eq!(points.len(), 4, "{range}");
    for p in points {
        // 1 per 15 s.
        let v: f64 = p[1].as_str().unwrap_or_default().parse().expect("number");
        assert!((v - 1.0 / 15.0).abs() < 1e-9, "{range}");
    }
    assert_eq!(
        data(&strata, tenant, "/api/v1/query_exemplars?query=up"),
        serde_json::json!([])
    );
    assert!(data(&strata, tenant, "/api/v1/metadata").is_object());
    assert_eq!(
        data(&strata, tenant, "/api/v1/rules")["groups"],
        serde_json::json!([])
    );
    assert_eq!(
        data(&strata, tenant, "/api/v1/alerts")["alerts"],
        serde_json::json!([])
    );
    let formatted = data(
        &strata,
        tenant,
        &format!(
            "/api/v1/format_query?query={}",
            enc("sum(rate(x[5m]))by(job)")
        ),
    );
    assert_eq!(formatted, "sum by (job) (rate(x[5m]))");

    // Bad queries: Prometheus' error type and status; the process keeps serving.
    let cases: [(String, u16, &str); 7] = [
        (
            format!("/api/v1/query?query={}", enc("sum(")),
            400,
            "bad_data",
        ),
        (
            format!("/api/v1/query?query={}", enc("no_such_function(up)")),
            400,
            "bad_data",
        ),
        (
            "/api/v1/query?query=up&time=yesterday".to_string(),
            400,
            "bad_data",
        ),
        (
            format!("/api/v1/query_range?query=up&start={t}&end={t}&step=0"),
            400,
            "bad_data",
        ),
        (
            format!(
                "/api/v1/query_range?query=up&start={}&end={t}&step=1",
                t - 20_000.0
            ),
            400,
            "bad_data",
        ),
        (
            format!(
                "/api/v1/query_range?query=up&start={t}&end={}&step=1",
                t - 10.0
            ),
            400,
            "bad_data",
        ),
        (
            format!("/api/v1/label/{}/values", enc("bad-name")),
            400,
            "bad_data",
        ),
    ];
    for (path, expected_status, error_type) in &cases {
        let (status, body) = get(&strata, Some(tenant), path);
        assert_eq!(status, *expected_status, "{path}: {body}");
        assert_eq!(body["status"], "error", "{path}");
        assert_eq!(body["errorType"], *error_type, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}"
        );
    }
    let (_, body) = get(
        &strata,
        Some(tenant),
        &format!("/api/v1/query?query={}", enc("sum(")),
    );
    assert!(
        body["error"].as_str().is_some_and(
            |e| e.starts_with("invalid parameter \"query\": ") && e.contains("parse error")
        ),
        "{body}"
    );
    let (status, body) = get(
        &strata,
        Some(tenant),
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("{job=\"api\"} + on() {job=\"api\"}")
        ),
    );
    assert_eq!(
        (status, body["errorType"].as_str()),
        (422, Some("execution")),
        "{body}"
    );
    let still = data(
        &strata,
        tenant,
        &format!(
            "/api/v1/query?query={}&time={t}",
            enc("http_requests_total")
        ),
    );
    assert_eq!(still["result"].as_array().map(Vec::len), Some(1));
    // Every request is timed by route and status.
    let metrics = strata.metrics();
    for line in [
        "strata_querier_request_duration_seconds_count{route=\"/api/v1/query\",status_code=\"200\"}",
        "strata_querier_request_duration_seconds_count{route=\"/api/v1/query\",status_code=\"400\"}",
        "strata_querier_request_duration_seconds_count{route=\"/api/v1/label/{name}/values\",status_code=\"200\"}",
    ] {
        assert!(metrics.contains(line), "missing {line}");
    }
}

/// Per-query memory limits fail the query alone, with an error naming the limit: the engine's
/// sample limit on data from the ingester, the store-gateway's memory bound on data from
/// object storage. The process keeps serving.
#[test]
fn memory_limits_fail_the_query_not_the_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start(
        "strata-limits-read",
        dir.path(),
        &[
            "-querier.max-samples=30",
            "-querier.query-store-after=0",
            "-querier.query-ingesters-within=0",
            "-blocks-storage.tsdb.retention-period=0",
            "-blocks-storage.bucket-store.sync-interval=1s",
            "-blocks-storage.bucket-store.max-query-memory-bytes=1",
        ],
    );
    let tenant = "limited";
    let end = push_tenant(&strata, tenant, "big_metric", "load", "shard");
    let t = end as f64 / 1000.0;
    let everything = enc("{job=\"load\"}[10m]");

    // 2 series x 20 samples in the head: over -querier.max-samples=30.
    let (status, body) = get(
        &strata,
        Some(tenant),
        &format!("/api/v1/query?query={everything}&time={t}"),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many samples")),
        "{body}"
    );
    // A query under the limit still works.
    let one = enc("big_metric[1m]");
    let ok = data(
        &strata,
        tenant,
        &format!("/api/v1/query?query={one}&time={t}"),
    );
    assert_eq!(ok["result"].as_array().map(Vec::len), Some(1), "{ok}");

    // From object storage, the store-gateway's bound (1 byte) is hit by any scan.
    strata.flush();
    wait_until("the store-gateway answers for the flushed block", || {
        let (status, body) = get(&strata, Some(tenant), "/api/v1/label/job/values");
        status == 200 && body["data"] == serde_json::json!(["load"])
    });
    let (status, body) = get(
        &strata,
        Some(tenant),
        &format!("/api/v1/query?query={one}&time={t}"),
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("-blocks-storage.bucket-store.max-query-memory-bytes")),
        "{body}"
    );
    // Metadata calls read no samples and keep working, as does the process.
    let names = strings(&data(&strata, tenant, "/api/v1/label/__name__/values"));
    assert_eq!(names, vec!["big_metric", "shared_name"]);
}

/// The roles as separate processes: a querier reaching the ingester and a store-gateway over
/// gRPC answers the same as `-target=all`, before and after the data moves to object storage.
#[test]
fn querier_reads_remote_ingester_and_store_gateway_over_grpc() {
    let root = tempfile::tempdir().expect("tempdir");
    let bucket = format!(
        "-blocks-storage.filesystem.dir={}",
        root.path().join("bucket").display()
    );
    let write = Strata::start(
        "grpc-ingester",
        &root.path().join("ingester"),
        &[
            "-target=distributor,ingester",
            "-ingester.ring.instance-id=ingester-a",
            "-blocks-storage.tsdb.retention-period=0",
            &bucket,
        ],
    );
    let gateway = Strata::start(
        "grpc-store-gateway",
        &root.path().join("store-gateway"),
        &[
            "-target=store-gateway",
            "-blocks-storage.bucket-store.sync-interval=1s",
            &bucket,
        ],
    );
    let querier = Strata::start(
        "grpc-querier",
        &root.path().join("querier"),
        &[
            "-target=querier",
            &format!(
                "-ingester.ring.static-members=ingester-a=127.0.0.1:{}",
                write.grpc_port
            ),
            "-ingester.ring.replication-factor=1",
            &format!(
                "-querier.store-gateway-addresses=127.0.0.1:{}",
                gateway.grpc_port
            ),
            "-querier.query-store-after=0",
            "-querier.query-ingesters-within=0",
            &bucket,
        ],
    );
    let tenant = "remote";
    let end = push_tenant(&write, tenant, "remote_metric", "grpc", "zone");
    let t = end as f64 / 1000.0;
    let sum = enc("sum(remote_metric)");
    let check = |phase: &str| {
        let result = data(
            &querier,
            tenant,
            &format!("/api/v1/query?query={sum}&time={t}"),
        );
        assert_eq!(result["result"][0]["value"][1], "19", "{phase}: {result}");
        let range = data(
            &querier,
            tenant,
            &format!(
                "/api/v1/query_range?query={sum}&start={}&end={t}&step=15",
                t - 285.0
            ),
        );
        let values = range["result"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(values.len(), 20, "{phase}: {range}");
        let names = strings(&data(&querier, tenant, "/api/v1/label/__name__/values"));
        assert_eq!(names, vec!["remote_metric", "shared_name"], "{phase}");
    };
    check("in the ingester, over gRPC");
    write.flush();
    wait_until("the store-gateway process serves the flushed block", || {
        let (status, body) = get(&querier, Some(tenant), "/api/v1/label/zone/values");
        status == 200 && body["data"] == serde_json::json!(["s"])
    });
    check("in object storage, through the store-gateway over gRPC");
}

/// The ingester answers for its recent blocks from their local copies (kept for
/// `-blocks-storage.tsdb.retention-period`, 13 h), with the querier's default split sending
/// every query of the last 12 h to the ingesters: after a flush the head is empty and these
/// answers come from `shipped/` alone. Selective and broad selectors, sub-ranges that cut
/// through blocks, and aggregations all match what was pushed.
#[test]
fn recent_blocks_are_read_from_the_ingesters_local_copies() {
    const MINUTE: i64 = 60_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = Strata::start("strata-local-blocks", dir.path(), &[]);
    let start = (now_ms() - 190 * MINUTE) / MINUTE * MINUTE;
    let value = |metric: usize, i: usize, minute: i64| {
        (metric * 1000 + i * 10) as f64 + minute as f64 * 0.5
    };
    let metrics = ["a", "b", "c"];
    // 3 metrics x 20 series, one sample a minute for 180 minutes, pushed in time order.
    for chunk in 0..18i64 {
        let mut timeseries = Vec::new();
        for (m, name) in metrics.iter().enumerate() {
            for i in 0..20usize {
                let id = format!("{i:02}");
                let samples: Vec<(i64, f64)> = (chunk * 10..chunk * 10 + 10)
                    .map(|k| (start + k * MINUTE, value(m, i, k)))
                    .collect();
                timeseries.push(series(&[("__name__", name), ("i", &id)], &samples));
            }
        }
        let (status, body) = push(
            &strata,
            Some("local"),
            &WriteRequest {
                timeseries,
                metadata: vec![],
            },
        );
        assert_eq!(status, 200, "{body}");
    }
    strata.flush();
    let shipped = dir.path().join("tsdb").join("shipped").join("local");
    wait_until("blocks kept in shipped/", || {
        std::fs::read_dir(&shipped)
            .map(|d| d.count() >= 2)
            .unwrap_or(false)
    });

    let query = |q: &str, at: i64| -> Value {
        crate::fixtures::api_query(&strata.url(""), Some("local"), q, at)["data"]["result"].clone()
    };
    // One series, every sample, across both blocks.
    let result = query(r#"b{i="07"}[4h]"#, start + 185 * MINUTE);
    let points = result[0]["values"].as_array().expect("matrix").clone();
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{result}");
    assert_eq!(points.len(), 180);
    for (k, point) in points.iter().enumerate() {
        let t = (start + k as i64 * MINUTE) as f64 / 1000.0;
        assert_eq!(point[0].as_f64(), Some(t), "{point}");
        assert_eq!(
            point[1].as_str(),
            Some(value(1, 7, k as i64).to_string().as_str())
        );
    }
    // A window inside one block: [t - 30m, t], both ends included in Prometheus 2.42.
    let result = query(r#"a{i="00"}[30m]"#, start + 90 * MINUTE);
    let points = result[0]["values"].as_array().expect("matrix").clone();
    assert_eq!(points.len(), 31, "{result}");
    assert_eq!(
        points[0][1].as_str(),
        Some(value(0, 0, 60).to_string().as_str())
    );
    assert_eq!(
        points[30][1].as_str(),
        Some(value(0, 0, 90).to_string().as_str())
    );
    // Regexes over names and labels, and an aggregation over a whole metric.
    let result = query(r#"count({__name__=~"a|c", i=~"1."})"#, start + 100 * MINUTE);
    assert_eq!(result[0]["value"][1].as_str(), Some("20"), "{result}");
    let want: f64 = (0..20).map(|i| value(2, i, 150)).sum();
    let result = query("sum(c)", start + 150 * MINUTE);
    assert_eq!(
        result[0]["value"][1].as_str(),
        Some(want.to_string().as_str()),
        "{result}"
    );
    // Metadata from the same blocks' series tables (read once, then cached), twice.
    for _ in 0..2 {
        let (status, v) = get(&strata, Some("local"), "/api/v1/label/i/values");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(20), "{v}");
        let (status, v) = get(&strata, Some("local"), "/api/v1/series?match[]=b");
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(20), "{v}");
        let (status, v) = get(&strata, Some("local"), "/api/v1/labels");
        assert_eq!(status, 200, "{v}");
        assert_eq!(strings(&v["data"]), vec!["__name__", "i"], "{v}");
    }
    let cached = crate::fixtures::metric_value(
        &strata.metrics(),
        "strata_ingester_series_table_cache_bytes",
    );
    assert!(cached > 0.0, "no series table cached: {cached}");
    // Nothing matches: an empty answer, not an error.
    assert_eq!(
        query(r#"b{i="99"}"#, start + 150 * MINUTE)
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}
