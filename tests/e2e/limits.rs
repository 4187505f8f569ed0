//! Per-tenant limits end to end: rate limits answer 429 to one tenant while another writes
//! on; a real Prometheus 2.42 keeps retrying until the limit is raised in the runtime config
//! (no restart) and then every sample it scraped arrives; series limits refuse only new
//! series; a broken runtime config is rejected and the previous limits stay in force.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::*;

/// Strata with a runtime config file reloaded every 500 ms.
fn start_with_runtime_config(name: &str, dir: &Path, runtime: &str, extra: &[&str]) -> Strata {
    let file = dir.join("runtime.yaml");
    std::fs::write(&file, runtime).expect("runtime config");
    let mut args = vec![
        format!("-runtime-config.file={}", file.display()),
        "-runtime-config.reload-period=500ms".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Strata::start(name, dir, &args)
}

fn write_runtime_config(dir: &Path, text: &str) {
    // Write then rename, so a reload never reads half a file.
    let tmp = dir.join("runtime.yaml.tmp");
    std::fs::write(&tmp, text).expect("runtime config");
    std::fs::rename(&tmp, dir.join("runtime.yaml")).expect("runtime config rename");
}

fn get_text(strata: &Strata, path: &str) -> String {
    http()
        .get(strata.url(path))
        .send()
        .and_then(|r| r.text())
        .expect("GET")
}

/// One request of `n` samples of one series, at timestamps after `*next_ts`.
fn samples_request(name: &str, n: usize, next_ts: &mut i64) -> WriteRequest {
    let samples: Vec<(i64, f64)> = (0..n)
        .map(|i| {
            *next_ts += 1;
            (*next_ts, i as f64)
        })
        .collect();
    WriteRequest {
        timeseries: vec![series(&[("__name__", name), ("job", "limits")], &samples)],
        metadata: vec![],
    }
}

fn query(strata: &Strata, tenant: &str, query: &str, time_ms: i64) -> Value {
    api_query(&strata.url(""), Some(tenant), query, time_ms)
}

const INGESTION_MESSAGE: &str = "the request has been rejected because the tenant exceeded the ingestion rate limit, set to 100 items/s with a maximum allowed burst of 500. This limit is applied on the total number of samples, exemplars and metadata received across all distributors (err-strata-tenant-max-ingestion-rate). To adjust the related per-tenant limits, configure -distributor.ingestion-rate-limit and -distributor.ingestion-burst-size, or contact your service administrator.";

/// (a) A tenant over its ingestion rate gets 429 with Mimir's message and the id, while
/// another tenant pushing at the same time gets 200 throughout.
#[test]
fn a_tenant_over_its_ingestion_rate_gets_429_and_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = start_with_runtime_config(
        "strata-rate",
        dir.path(),
        "overrides:\n  limited:\n    ingestion_rate: 100\n    ingestion_burst_size: 500\n",
        &[],
    );
    let url = strata.url("/api/v1/push");
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = now_ms() - 60_000;
            let mut statuses = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let request = samples_request("free_metric", 200, &mut next);
                let (status, body) = push_raw(&url, Some("free"), encode_write(&request));
                *statuses.entry(status).or_insert(0usize) += 1;
                assert_eq!(status, 200, "tenant free was refused: {body}");
                std::thread::sleep(Duration::from_millis(50));
            }
            statuses
        })
    };
    // 200 samples every 50 ms is 4000/s against a limit of 100/s with a burst of 500.
    let mut next = now_ms() - 60_000;
    let (mut accepted, mut limited) = (0usize, 0usize);
    let mut first_429 = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let request = samples_request("limited_metric", 200, &mut next);
        let (status, body) = push_raw(&url, Some("limited"), encode_write(&request));
        match status {
            200 => accepted += 1,
            429 => {
                limited += 1;
                first_429.get_or_insert(body);
            }
            other => panic!("unexpected {other}: {body}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let free = other.join().expect("other tenant's pusher");
    let body = first_429.expect("no 429 for the limited tenant");
    assert_eq!(body.trim(), format!("tenant limited: {INGESTION_MESSAGE}"));
    // The burst takes 2 requests of 200, then ~100/s lets one through every 2 s.
    assert!(
        (2..=5).contains(&accepted),
        "accepted {accepted}, limited {limited}"
    );
    assert!(limited > 20, "accepted {accepted}, limited {limited}");
    println!("limited tenant: {accepted} accepted, {limited} got 429; free tenant: {free:?}");

    let metrics = strata.metrics();
    let discarded = metric_value(
        &metrics,
        "strata_discarded_samples_total{reason=\"rate_limited\",user=\"limited\"}",
    );
    assert_eq!(discarded, (limited * 200) as f64, "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            "strata_discarded_samples_total{reason=\"rate_limited\",user=\"free\"}"
        ),
        0.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "strata_limits_overrides{limit_name=\"ingestion_rate\",user=\"limited\"}"
        ),
        100.0,
        "{metrics}"
    );
    // Accepted samples are readable; none of the refused ones are.
    let v = query(
        &strata,
        "limited",
        "count_over_time(limited_metric[10m])",
        now_ms(),
    );
    let stored: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(stored, (accepted * 200) as f64, "{v}");
}

/// A request rate limit answers 429 with its own message and id.
#[test]
fn request_rate_limit_gets_429() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = start_with_runtime_config(
        "strata-request-rate",
        dir.path(),
        "overrides:\n  chatty:\n    request_rate: 1\n    request_burst_size: 2\n",
        &[],
    );
    let mut next = now_ms() - 60_000;
    let statuses: Vec<(u16, String)> = (0..5)
        .map(|_| push(&strata, Some("chatty"), &samples_request("m", 1, &mut next)))
        .collect();
    assert_eq!(statuses[0].0, 200, "{:?}", statuses[0]);
    assert_eq!(statuses[1].0, 200, "{:?}", statuses[1]);
    let (status, body) = &statuses[4];
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body.trim(), "tenant chatty: the request has been rejected because the tenant exceeded the request rate limit, set to 1 requests/s across all distributors with a maximum allowed burst of 2 (err-strata-tenant-max-request-rate). To adjust the related per-tenant limits, configure -distributor.request-rate-limit and -distributor.request-burst-size, or contact your service administrator.");
    let metrics = strata.metrics();
    assert!(
        metric_value(
            &metrics,
            "strata_discarded_requests_total{reason=\"request_rate_limited\",user=\"chatty\"}"
        ) >= 3.0,
        "{metrics}"
    );
}

/// A proxy that adds `X-Scope-OrgID` to every request (Debian's Prometheus 2.42 does not send
/// remote_write headers) and counts the statuses Strata answered.
struct HeaderProxy {
    port: u16,
    statuses: Arc<std::sync::Mutex<BTreeMap<u16, usize>>>,
}

impl HeaderProxy {
    fn start(target: String, tenant: &'static str) -> HeaderProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy addr").port();
        let statuses = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let counts = statuses.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (target, counts) = (target.clone(), counts.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &target, tenant, &counts);
                });
            }
        });
        HeaderProxy { port, statuses }
    }

    fn count(&self, status: u16) -> usize {
        self.statuses
            .lock()
            .expect("statuses")
            .get(&status)
            .copied()
            .unwrap_or(0)
    }
}

/// Forwards every request of one keep-alive connection.
fn serve_connection(
    stream: std::net::TcpStream,
    target: &str,
    tenant: &str,
    counts: &std::sync::Mutex<BTreeMap<u16, usize>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let client = http();
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_string(), value.trim().to_string());
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                }
                headers.push((name, value));
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let mut forward = client.post(format!("{target}{path}")).body(body);
        for (name, value) in &headers {
            if ["content-type", "content-encoding", "user-agent"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h))
                || name.to_ascii_lowercase().starts_with("x-prometheus")
            {
                forward = forward.header(name.as_str(), value.as_str());
            }
        }
        forward = forward.header("X-Scope-OrgID", tenant);
        let (status, text) = match forward.send() {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(e) => (502, e.to_string()),
        };
        *counts.lock().expect("counts").entry(status).or_insert(0) += 1;
        write!(
            writer,
            "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
        writer.flush()?;
    }
}

/// Every raw sample of a matrix answer, by series (values as the API prints them).
fn matrix_samples(v: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for s in v["data"]["result"].as_array().expect("matrix") {
        let mut labels: Vec<(String, String)> = s["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let samples = out
            .entry(format!("{labels:?}"))
            .or_insert_with(BTreeMap::new);
        for pair in s["values"].as_array().expect("values") {
            samples.insert(
                pair[0].to_string(),
                pair[1].as_str().unwrap_or_default().to_string(),
            );
        }
    }
    out
}

/// (b) A real Prometheus 2.42 remote-writing to a rate-limited tenant keeps retrying (429 with
/// `retry_on_http_429`); the limit is raised in the runtime config file, without a restart,
/// and then every sample Prometheus scraped is in Strata, compared through both query APIs.
#[test]
fn prometheus_retries_until_the_limit_is_raised_at_runtime_and_loses_nothing() {
    let prometheus = require_binary("prometheus", "apt-get install prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = start_with_runtime_config(
        "strata-prom-limits",
        dir.path(),
        "overrides:\n  prom:\n    ingestion_rate: 20\n    ingestion_burst_size: 1000\n",
        &[],
    );
    let proxy = HeaderProxy::start(format!("http://127.0.0.1:{}", strata.http_port), "prom");
    let prom_port = free_port();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prom_port}"]}}]
remote_write:
  - url: http://127.0.0.1:{}/api/v1/push
    metadata_config:
      send: false
    queue_config:
      min_shards: 1
      max_shards: 1
      batch_send_deadline: 1s
      max_samples_per_send: 500
      min_backoff: 100ms
      max_backoff: 1s
      retry_on_http_429: true
"#,
        proxy.port
    );
    let _prom = spawn_prometheus(&prometheus, dir.path(), &config, prom_port);
    // Rate limited: Prometheus keeps getting 429 and retrying the same batch.
    wait_until("10 answers of 429 to Prometheus", || proxy.count(429) >= 10);
    let before = proxy.count(200);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        proxy.count(429) >= 12,
        "Prometheus stopped retrying: {:?}",
        proxy.statuses.lock().expect("statuses")
    );
    println!(
        "while limited: {} requests accepted, {} answered 429",
        before,
        proxy.count(429)
    );
    let limited_discards = metric_value(
        &strata.metrics(),
        "strata_discarded_samples_total{reason=\"rate_limited\",user=\"prom\"}",
    );
    assert!(limited_discards > 0.0);

    // Raise the limit by editing the file; no restart.
    write_runtime_config(
        dir.path(),
        "overrides:\n  prom:\n    ingestion_rate: 1000000\n    ingestion_burst_size: 1000000\n",
    );
    wait_until("the raised limit in /runtime_config", || {
        get_text(&strata, "/runtime_config").contains("ingestion_rate: 1000000.0")
    });
    let raised_at = now_ms();
    let cutoff = raised_at + 3000;
    wait_until("remote write to catch up past the cut-off", || {
        let v = prom_query(
            prom_port,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            now_ms(),
        );
        let sent = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0);
        // Prometheus reports what it has sent; wait until it is 2 s past the cut-off and
        // nothing is pending.
        let pending = prom_query(
            prom_port,
            "prometheus_remote_storage_samples_pending",
            now_ms(),
        );
        let pending = pending["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(1.0);
        sent * 1000.0 > (cutoff + 2000) as f64 && pending == 0.0
    });
    let q = r#"{__name__=~".+"}[10m]"#;
    let want = matrix_samples(&prom_query(prom_port, q, cutoff));
    let have = matrix_samples(&query(&strata, "prom", q, cutoff));
    let want_samples: usize = want.values().map(BTreeMap::len).sum();
    assert!(
        want.len() > 100,
        "Prometheus returned only {} series",
        want.len()
    );
    let mut missing = Vec::new();
    for (labels, samples) in &want {
        match have.get(labels) {
            Some(got) if got == samples => {}
            Some(got) => missing.push(format!(
                "{labels}: Prometheus {} samples, Strata {}",
                samples.len(),
                got.len()
            )),
            None => missing.push(format!("{labels}: not in Strata")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} series differ, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    let extra: Vec<&String> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "series only in Strata: {:?}",
        &extra[..extra.len().min(5)]
    );
    println!(
        "prometheus behind a rate limit: {} series, {want_samples} samples identical after the limit was raised; {} answers of 429 in all",
        want.len(),
        proxy.count(429)
    );
}

/// (c) Series limits: new series are refused with 400 and the id, existing series keep
/// flowing, and the discarded-samples metric counts them by reason.
#[test]
fn series_limits_refuse_only_new_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = start_with_runtime_config(
        "strata-series",
        dir.path(),
        "overrides:\n  capped:\n    max_global_series_per_user: 5\n    max_global_series_per_metric: 3\n",
        &[],
    );
    let t0 = now_ms() - 60_000;
    let one = |name: &str, i: &str, t: i64| {
        series(
            &[("__name__", name), ("i", i), ("job", "limits")],
            &[(t, 1.0)],
        )
    };
    let first = WriteRequest {
        timeseries: vec![one("a", "1", t0), one("a", "2", t0), one("a", "3", t0)],
        metadata: vec![],
    };
    let (status, body) = push(&strata, Some("capped"), &first);
    assert_eq!(status, 200, "{body}");
    // a/4 breaks the per-metric limit (3); b/1 and b/2 fill the tenant to 5; c/1 breaks the
    // per-user limit. a/1 is an existing series.
    let second = WriteRequest {
        timeseries: vec![
            one("a", "1", t0 + 1000),
            one("a", "4", t0 + 1000),
            one("b", "1", t0 + 1000),
            one("b", "2", t0 + 1000),
            one("c", "1", t0 + 1000),
        ],
        metadata: vec![],
    };
    let (status, body) = push(&strata, Some("capped"), &second);
    assert_eq!(status, 400, "{body}");
    assert!(body.starts_with("tenant capped: "), "{body}");
    assert!(body.contains("per-metric series limit of 3 exceeded (err-strata-max-series-per-metric). To adjust the related per-tenant limit, configure -ingester.max-global-series-per-metric, or contact your service administrator. This is for series a{"), "{body}");
    assert!(body.contains("per-user series limit of 5 exceeded (err-strata-max-series-per-user). To adjust the related per-tenant limit, configure -ingester.max-global-series-per-user, or contact your service administrator. This is for series c{"), "{body}");
    // Existing series keep flowing; another tenant is not limited.
    for k in 2..5 {
        let more = WriteRequest {
            timeseries: vec![one("a", "1", t0 + k * 1000), one("b", "2", t0 + k * 1000)],
            metadata: vec![],
        };
        let (status, body) = push(&strata, Some("capped"), &more);
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = push(&strata, Some("other"), &second);
    assert_eq!(status, 200, "{body}");

    let metrics = strata.metrics();
    let per_metric = metric_value(
        &metrics,
        "strata_discarded_samples_total{reason=\"per_metric_series_limit\",user=\"capped\"}",
    );
    let per_user = metric_value(
        &metrics,
        "strata_discarded_samples_total{reason=\"per_user_series_limit\",user=\"capped\"}",
    );
    assert_eq!((per_metric, per_user), (1.0, 1.0), "{metrics}");
    // What is stored: the five series that fit, with every sample of the existing ones.
    let v = query(&strata, "capped", "{job=\"limits\"}[10m]", now_ms());
    let stored: BTreeMap<String, usize> = v["data"]["result"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|s| {
            (
                format!(
                    "{}/{}",
                    s["metric"]["__name__"].as_str().unwrap_or(""),
                    s["metric"]["i"].as_str().unwrap_or("")
                ),
                s["values"].as_array().map(Vec::len).unwrap_or(0),
            )
        })
        .collect();
    let want: BTreeMap<String, usize> =
        [("a/1", 5), ("a/2", 1), ("a/3", 1), ("b/1", 1), ("b/2", 4)]
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
    assert_eq!(stored, want, "{v}");
    let v = query(&strata, "capped", "a{i=\"4\"} or c", now_ms());
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(0), "{v}");
}

/// (d) A broken runtime config (unknown key, wrong type, bad tenant id) is rejected and the
/// previous limits stay in force, seen in `/runtime_config`, the metrics and behaviour; a
/// limit of the wrong type in the main YAML config stops the start with a clear error.
#[test]
fn a_broken_runtime_config_is_rejected_and_the_last_good_one_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = "overrides:\n  d:\n    ingestion_rate: 5\n    ingestion_burst_size: 10\n";
    let strata = start_with_runtime_config("strata-broken", dir.path(), good, &[]);
    let diff = get_text(&strata, "/runtime_config?mode=diff");
    assert_eq!(
        diff,
        "overrides:\n  d:\n    ingestion_rate: 5.0\n    ingestion_burst_size: 10\n"
    );
    let full = get_text(&strata, "/runtime_config");
    assert!(
        full.contains("max_global_series_per_user: 150000"),
        "{full}"
    );
    let over_burst = |strata: &Strata| {
        let mut next = now_ms() - 60_000;
        push(strata, Some("d"), &samples_request("m", 11, &mut next))
    };
    let (status, body) = over_burst(&strata);
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains(
            "the tenant exceeded the ingestion burst size limit, set to 10, with 11 items"
        ),
        "{body}"
    );

    let failures = |strata: &Strata| {
        metric_value(
            &strata.metrics(),
            "strata_runtime_config_reloads_total{result=\"failure\"}",
        )
    };
    for broken in [
        "overrides:\n  d:\n    ingestion_rate: 5\n    ingestion_bust_size: 1000\n",
        "overrides:\n  d:\n    ingestion_rate: lots\n",
        "overrides:\n  d/e:\n    ingestion_rate: 1000\n",
    ] {
        let before = failures(&strata);
        write_runtime_config(dir.path(), broken);
        wait_until("the broken runtime config to be rejected", || {
            failures(&strata) > before
        });
        assert_eq!(
            metric_value(
                &strata.metrics(),
                "strata_runtime_config_last_reload_successful"
            ),
            0.0
        );
        assert_eq!(
            get_text(&strata, "/runtime_config?mode=diff"),
            diff,
            "{broken}"
        );
        let (status, _) = over_burst(&strata);
        assert_eq!(status, 429, "{broken}");
    }
    let log = strata.proc.log_text();
    assert!(
        log.contains("ingestion_bust_size"),
        "the log does not name the key"
    );
    assert!(log.contains("the last good configuration stays in force"));

    // A good file is applied again.
    write_runtime_config(
        dir.path(),
        "overrides:\n  d:\n    ingestion_burst_size: 1000\n",
    );
    wait_until("the good runtime config", || {
        metric_value(
            &strata.metrics(),
            "strata_runtime_config_last_reload_successful",
        ) == 1.0
    });
    assert_eq!(
        get_text(&strata, "/runtime_config?mode=diff"),
        "overrides:\n  d:\n    ingestion_burst_size: 1000\n"
    );
    let (status, body) = over_burst(&strata);
    assert_eq!(status, 200, "{body}");

    // At start: a wrong type in the main config, and a broken runtime config, stop Strata.
    let bad_main = dir.path().join("strata.yaml");
    std::fs::write(&bad_main, "limits:\n  ingestion_rate: fast\n").expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg(format!("-config.file={}", bad_main.display()))
        .output()
        .expect("run strata");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("setting limits.ingestion_rate (-distributor.ingestion-rate-limit) has an invalid value \"fast\""),
        "{stderr}"
    );
    let bad_runtime = dir.path().join("bad-runtime.yaml");
    std::fs::write(&bad_runtime, "overrides:\n  d:\n    nope: 1\n").expect("runtime");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg(format!("-runtime-config.file={}", bad_runtime.display()))
        .arg(format!("-server.http-listen-port={}", free_port()))
        .arg(format!(
            "-blocks-storage.tsdb.dir={}",
            dir.path().join("t2").display()
        ))
        .arg(format!(
            "-blocks-storage.filesystem.dir={}",
            dir.path().join("b2").display()
        ))
        .output()
        .expect("run strata");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("overrides.d.nope: unknown field `nope`"),
        "{stderr}"
    );
}

/// Query limits: series and bytes fetched (422), total query length (400), lookback.
#[test]
fn query_limits_answer_as_mimir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let strata = start_with_runtime_config(
        "strata-query-limits",
        dir.path(),
        "overrides:\n  q:\n    max_fetched_series_per_query: 2\n    max_total_query_length: 1h\n  b:\n    max_fetched_chunk_bytes_per_query: 160\n  l:\n    max_query_lookback: 5m\n",
        &[],
    );
    let now = now_ms();
    let three: Vec<_> = (0..3)
        .map(|i| {
            let i = i.to_string();
            series(
                &[("__name__", "m"), ("i", i.as_str())],
                &[
                    (now - 600_000, 1.0),
                    (now - 120_000, 2.0),
                    (now - 60_000, 3.0),
                ],
            )
        })
        .collect();
    for tenant in ["q", "b", "l"] {
        let (status, body) = push(
            &strata,
            Some(tenant),
            &WriteRequest {
                timeseries: three.clone(),
                metadata: vec![],
            },
        );
        assert_eq!(status, 200, "{body}");
    }
    let api = |tenant: &str, path: &str, params: &[(&str, String)]| {
        let r = http()
            .get(strata.url(path))
            .header("X-Scope-OrgID", tenant)
            .query(params)
            .send()
            .expect("query");
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str::<Value>(&r.text().unwrap_or_default()).expect("json"),
        )
    };
    let t = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let (status, body) = api(
        "q",
        "/api/v1/query",
        &[("query", "m".into()), ("time", t(now))],
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert_eq!(body["error"], "the query exceeded the maximum number of series (limit: 2 series) (err-strata-max-series-per-query). Consider reducing the time range and/or number of series selected by the query. One way to reduce the number of selected series is to add more label matchers to the query. Otherwise, to adjust the related per-tenant limit, configure -querier.max-fetched-series-per-query, or contact your service administrator.");
    let (status, _) = api(
        "q",
        "/api/v1/query",
        &[("query", "m{i!=\"0\"}".into()), ("time", t(now))],
    );
    assert_eq!(status, 200);
    let (status, body) = api(
        "q",
        "/api/v1/query_range",
        &[
            ("query", "m{i=\"0\"}".into()),
            ("start", t(now - 7_200_000)),
            ("end", t(now)),
            ("step", "60".into()),
        ],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "the total query time range exceeds the limit (query length: 2h0m0s, limit: 1h0m0s) (err-strata-max-total-query-length). To adjust the related per-tenant limit, configure -query-frontend.max-total-query-length, or contact your service administrator.");
    // 3 series × 3 samples × 16 B = 144 B ≤ 160; a second selector over the same series
    // (other matchers, another select) fetches them again: 288 B.
    let (status, body) = api(
        "b",
        "/api/v1/query",
        &[
            ("query", "count_over_time(m[15m])".into()),
            ("time", t(now)),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = api(
        "b",
        "/api/v1/query",
        &[
            (
                "query",
                "count_over_time(m[15m]) + count_over_time(m{i=~\".+\"}[15m])".into(),
            ),
            ("time", t(now)),
        ],
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap_or("").starts_with("the query exceeded the aggregated chunks size limit (limit: 160 bytes) (err-strata-max-chunks-bytes-per-query)"), "{body}");
    // Lookback 5m: the sample 10m old is not read.
    let (status, body) = api(
        "l",
        "/api/v1/query",
        &[
            ("query", "count_over_time(m{i=\"0\"}[15m])".into()),
            ("time", t(now)),
        ],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "2", "{body}");
}

/// The ingestion rate is global: with two healthy distributors (-distributor.ring.static-members,
/// /ready polled) each enforces half of it; when one goes away, the other enforces all of it.
#[test]
fn two_distributors_share_the_ingestion_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port_a, port_b) = (free_port(), free_port());
    let members = format!("-distributor.ring.static-members=127.0.0.1:{port_a},127.0.0.1:{port_b}");
    let runtime =
        "overrides:\n  shared:\n    ingestion_rate: 100\n    ingestion_burst_size: 1000\n";
    let start = |name: &str, port: u16| {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).expect("dir");
        std::fs::write(sub.join("runtime.yaml"), runtime).expect("runtime config");
        let file = format!(
            "-runtime-config.file={}",
            sub.join("runtime.yaml").display()
        );
        Strata::start_on(
            name,
            &sub,
            port,
            free_port(),
            &[members.as_str(), file.as_str()],
        )
    };
    let a = start("distributor-a", port_a);
    let mut b = start("distributor-b", port_b);
    let healthy =
        |s: &Strata| metric_value(&s.metrics(), "strata_distributor_healthy_distributors");
    wait_until("both distributors healthy", || healthy(&a) == 2.0);

    let mut next = now_ms() - 60_000;
    // Empty the bucket (fewer than 10 tokens left), wait 2 s, then ask for 150 items.
    let refill_then_push = |next: &mut i64| {
        for size in [500, 100, 10] {
            while push(&a, Some("shared"), &samples_request("m", size, next)).0 == 200 {}
        }
        std::thread::sleep(Duration::from_secs(2));
        push(&a, Some("shared"), &samples_request("m", 150, next))
    };
    // 50/s here: about 100 tokens came back, not 150 (at 100/s, 200 would have).
    let (status, body) = refill_then_push(&mut next);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("set to 100 items/s"), "{body}");
    let (status, body) = push(&a, Some("shared"), &samples_request("m", 90, &mut next));
    assert_eq!(status, 200, "{body}");

    // B stops: A enforces the whole 100/s.
    b.proc.terminate();
    wait_until("one healthy distributor", || healthy(&a) == 1.0);
    let (status, body) = refill_then_push(&mut next);
    assert_eq!(status, 200, "{body}");
}

/// (e) `ha_max_clusters`: a push naming a new HA cluster over the tenant's limit gets 400 with
/// Mimir's message and our id, counted as discarded; known clusters keep being deduplicated;
/// raising the limit in the runtime config (no restart) lets the new cluster in.
#[test]
fn ha_clusters_over_the_tenant_limit_get_400_until_the_limit_is_raised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let overrides = |max: u32| {
        format!("overrides:\n  ha:\n    accept_ha_samples: true\n    ha_max_clusters: {max}\n")
    };
    let strata = start_with_runtime_config(
        "strata-ha-clusters",
        dir.path(),
        &overrides(1),
        &["-distributor.ha-tracker.enable=true"],
    );
    let mut t = now_ms() - 60_000;
    let mut from = |cluster: &str, replica: &str| {
        t += 1000;
        WriteRequest {
            timeseries: vec![
                series(
                    &[
                        ("__name__", "up"),
                        ("__replica__", replica),
                        ("cluster", cluster),
                    ],
                    &[(t, 1.0)],
                ),
                series(
                    &[
                        ("__name__", "x"),
                        ("__replica__", replica),
                        ("cluster", cluster),
                    ],
                    &[(t, 2.0)],
                ),
            ],
            metadata: vec![],
        }
    };
    let (status, body) = push(&strata, Some("ha"), &from("c1", "a"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = push(&strata, Some("ha"), &from("c2", "a"));
    assert_eq!(status, 400, "{body}");
    for part in [
        "the write request has been rejected because the maximum number of high-availability (HA) clusters has been reached for this tenant (limit: 1)",
        "tenant ha",
        "err-strata-tenant-too-many-ha-clusters",
        "configure -distributor.ha-tracker.max-clusters",
    ] {
        assert!(body.contains(part), "{part:?} not in {body}");
    }
    let (status, body) = push(&strata, Some("ha"), &from("c1", "b"));
    assert_eq!(status, 202, "{body}");
    let (status, body) = push(&strata, Some("ha"), &from("c1", "a"));
    assert_eq!(status, 200, "{body}");
    let discarded = metric_value(
        &strata.metrics(),
        "strata_discarded_samples_total{reason=\"too_many_ha_clusters\",user=\"ha\"}",
    );
    assert_eq!(discarded, 2.0);

    write_runtime_config(dir.path(), &overrides(2));
    wait_until("c2 accepted after the limit was raised", || {
        push(&strata, Some("ha"), &from("c2", "a")).0 == 200
    });
    let v = query(
        &strata,
        "ha",
        "count by (cluster) ({__name__=~\"up|x\"})",
        now_ms(),
    );
    let clusters: BTreeMap<String, String> = v["data"]["result"]
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            (
                s["metric"]["cluster"].as_str().unwrap_or("").to_string(),
                s["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = [("c1", "2"), ("c2", "2")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(clusters, want, "{v}");
    let v = query(&strata, "ha", "{__replica__!=\"\"}", now_ms());
    assert_eq!(v["data"]["result"].as_array().map(Vec::len), Some(0), "{v}");
}
