//! The data set of the differential test: a few hundred series at 15 s over 2.5 hours,
//! generated deterministically (a fixed seed, no clock except the start time the caller
//! picks), and pushed chronologically by remote write.
//!
//! Families, chosen for what the corpus needs:
//! - `node_cpu_seconds_total{instance,cpu,mode}`: counters, one node reboots (reset), one
//!   node misses scrapes and has a 6.5 minute gap (longer than the 5 m lookback delta);
//! - `node_memory_*`, `node_load1`, `temperature_celsius`, `queue_depth`,
//!   `account_balance`: gauges with large, negative, fractional and zero values;
//! - `special_values{case}`: NaN, +Inf, -Inf, and a series mixing them with numbers;
//! - `http_requests_total` and the histogram `http_request_duration_seconds`: counters
//!   and classic buckets, one instance restarts;
//! - kube-state-metrics-like `kube_pod_info`, `kube_pod_status_phase`,
//!   `kube_pod_container_resource_requests`, `kube_node_info`: a pod that is deleted
//!   (staleness markers), a pod created late, a pod with two containers;
//! - `jobs_processed_total{worker}`: a series that starts late, one that stops with a
//!   staleness marker, `cron_last_success_timestamp_seconds`: one that stops without;
//! - `escape_test`: label values with quotes, backslashes, a newline and non-ASCII text.

use std::time::Duration;

use strata_shared::proto::prometheus::WriteRequest;

use crate::fixtures::{encode_write, http, series};

/// Scrape interval.
pub(crate) const STEP_MS: i64 = 15_000;
/// Scrapes per series at most: indexes 0..=600, 150 minutes.
pub(crate) const SCRAPES: i64 = 601;
/// Prometheus' staleness marker.
pub(crate) const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
const SEED: u64 = 0x5eed_2024_0042;

/// One generated series: labels sorted by name, samples in time order.
#[derive(Clone, Debug)]
pub(crate) struct GenSeries {
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) samples: Vec<(i64, f64)>,
}

/// The whole data set.
#[derive(Clone, Debug)]
pub(crate) struct DataSet {
    /// Timestamp of scrape 0 (a round UTC hour).
    pub(crate) start_ms: i64,
    /// Nominal timestamp of the last scrape (index `SCRAPES - 1`).
    pub(crate) last_ms: i64,
    pub(crate) series: Vec<GenSeries>,
}

impl DataSet {
    /// Start three hours before the current UTC hour: the data ends at least 30 minutes
    /// before now, so no store sees samples from the future, and it is recent enough for
    /// any store's out-of-bounds window.
    pub(crate) fn default_start_ms() -> i64 {
        let hour = 3_600_000;
        crate::fixtures::now_ms() / hour * hour - 3 * hour
    }

    pub(crate) fn generate(start_ms: i64) -> DataSet {
        let mut g = Gen {
            start_ms,
            series: Vec::new(),
        };
        node_exporter(&mut g);
        gauges(&mut g);
        http_api(&mut g);
        kube(&mut g);
        misc(&mut g);
        g.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        for w in g.series.windows(2) {
            assert_ne!(w[0].labels, w[1].labels, "duplicate generated series");
        }
        DataSet {
            start_ms,
            last_ms: start_ms + (SCRAPES - 1) * STEP_MS,
            series: g.series,
        }
    }

    /// Samples that a query counts: all but staleness markers.
    pub(crate) fn queryable_samples(&self) -> usize {
        self.series
            .iter()
            .flat_map(|s| &s.samples)
            .filter(|(_, v)| v.to_bits() != STALE_NAN_BITS)
            .count()
    }

    pub(crate) fn total_samples(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    /// Remote-write requests in time order, each holding `window` of every series' samples.
    pub(crate) fn requests(&self, window: Duration) -> Vec<WriteRequest> {
        let window = window.as_millis() as i64;
        let end = self
            .series
            .iter()
            .filter_map(|s| s.samples.last().map(|(t, _)| *t))
            .max()
            .unwrap_or(self.start_ms);
        let mut cursors = vec![0usize; self.series.len()];
        let mut out = Vec::new();
        let mut from = self.start_ms;
        while from <= end {
            let to = from + window;
            let mut timeseries = Vec::new();
            for (s, cursor) in self.series.iter().zip(cursors.iter_mut()) {
                let begin = *cursor;
                while *cursor < s.samples.len() && s.samples[*cursor].0 < to {
                    *cursor += 1;
                }
                if *cursor > begin {
                    let labels: Vec<(&str, &str)> = s
                        .labels
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    timeseries.push(series(&labels, &s.samples[begin..*cursor]));
                }
            }
            if !timeseries.is_empty() {
                out.push(WriteRequest {
                    timeseries,
                    metadata: vec![],
                });
            }
            from = to;
        }
        out
    }
}

/// Pushes the data set chronologically (two minutes of data per request) to a
/// remote-write URL (`/api/v1/write` for Prometheus, `/api/v1/push` for Strata) with extra
/// headers (e.g. `X-Scope-OrgID`); panics on any non-2xx answer.
pub(crate) fn push_dataset(data: &DataSet, write_url: &str, headers: &[(String, String)]) {
    let client = http();
    for (i, request) in data.requests(Duration::from_secs(120)).iter().enumerate() {
        let mut req = client
            .post(write_url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(encode_write(request));
        for (name, value) in headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let response = req
            .send()
            .unwrap_or_else(|e| panic!("push {i} to {write_url}: {e}"));
        let status = response.status();
        let body = response.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "push {i} to {write_url} rejected: {status} {body}"
        );
    }
}

struct Gen {
    start_ms: i64,
    series: Vec<GenSeries>,
}

impl Gen {
    /// Adds a series; `values[k]` is scrape `k`'s value (`None`: no sample), at
    /// `start + k * STEP + offset_ms`.
    fn add(&mut self, labels: &[(&str, &str)], offset_ms: i64, values: &[Option<f64>]) {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.sort();
        let samples = values
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (self.start_ms + k as i64 * STEP_MS + offset_ms, v)))
            .collect();
        self.series.push(GenSeries { labels, samples });
    }
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// A deterministic number in [0, 1) for (stream, index).
fn noise(stream: u64, k: i64) -> f64 {
    let mut z = SEED
        ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (k as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// FNV-1a: a stable stream id for a name.
fn stream(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn round_to(v: f64, decimals: i32) -> f64 {
    let m = 10f64.powi(decimals);
    (v * m).round() / m
}

/// A counter growing by about `per_second` (±50 %), restarting from zero at `resets`.
fn counter(name: &str, per_second: f64, resets: &[i64], decimals: i32) -> Vec<Option<f64>> {
    let s = stream(name);
    let mut value = 1000.0 * per_second * noise(s, -1);
    (0..SCRAPES)
        .map(|k| {
            let inc = per_second * 15.0 * (0.5 + noise(s, k));
            if resets.contains(&k) {
                value = 0.0;
            }
            value += inc;
            Some(round_to(value, decimals))
        })
        .collect()
}

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn node_exporter(g: &mut Gen) {
    let modes: [(&str, f64); 6] = [
        ("idle", 0.8),
        ("iowait", 0.01),
        ("irq", 0.001),
        ("steal", 0.0),
        ("system", 0.05),
        ("user", 0.14),
    ];
    for (n, node) in NODES.iter().enumerate() {
        let instance = format!("{node}:9100");
        // node-a scrapes exactly on the 15 s grid, the others a few ms off it.
        let offset = [0, 4, 250][n];
        // node-b reboots at scrape 333; node-c misses every 11th scrape and scrapes
        // 400..426 (a 6.5 minute gap).
        let resets: &[i64] = if n == 1 { &[333] } else { &[] };
        let missing = |k: i64| n == 2 && (k % 11 == 5 || (400..426).contains(&k));
        for cpu in 0..4 {
            let cpu_s = cpu.to_string();
            for (mode, rate) in modes {
                let name = format!("cpu {instance} {cpu} {mode}");
                let mut values = counter(&name, rate * (1.0 + 0.3 * n as f64), resets, 2);
                for (k, v) in values.iter_mut().enumerate() {
                    if missing(k as i64) {
                        *v = None;
                    }
                }
                g.add(
                    &[
                        ("__name__", "node_cpu_seconds_total"),
                        ("cpu", &cpu_s),
                        ("instance", &instance),
                        ("job", "node"),
                        ("mode", mode),
                    ],
                    offset,
                    &values,
                );
            }
        }
        let labels = |name: &'static str| {
            [
                ("__name__", name),
                ("instance", instance.as_str()),
                ("job", "node"),
            ]
        };
        let s = stream(&instance);
        let total = 17_179_869_184.0 * (n + 1) as f64;
        let available: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                (!missing(k)).then(|| {
                    let frac = 0.35 + 0.3 * (k as f64 / 90.0 + n as f64).sin() + 0.05 * noise(s, k);
                    ((total * frac) / 4096.0).round() * 4096.0
                })
            })
            .collect();
        g.add(
            &labels("node_memory_MemAvailable_bytes"),
            offset,
            &available,
        );
        let constant: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| (!missing(k)).then_some(total))
            .collect();
        g.add(&labels("node_memory_MemTotal_bytes"), offset, &constant);
        let load: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| (!missing(k)).then(|| round_to(0.5 + 1.5 * n as f64 * noise(s ^ 1, k), 2)))
            .collect();
        g.add(&labels("node_load1"), offset, &load);
        // up: 1, but 0 for node-c during its gap (the target was down, the scrape happened).
        let up: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| Some(if missing(k) { 0.0 } else { 1.0 }))
            .collect();
        g.add(&labels("up"), offset, &up);
        let boot = (g.start_ms / 1000) as f64 - 86_400.0 * (n + 1) as f64;
        let boot_times: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                (!missing(k)).then(|| {
                    if n == 1 && k >= 333 {
                        ((g.start_ms + 333 * STEP_MS) / 1000) as f64 - 20.0
                    } else {
                        boot
                    }
                })
            })
            .collect();
        g.add(&labels("node_boot_time_seconds"), offset, &boot_times);
    }
}

fn gauges(g: &mut Gen) {
    for (location, base, swing) in [
        ("freezer", -18.0, 1.5),
        ("outdoor", 0.0, 6.0),
        ("server_room", 22.5, 0.5),
    ] {
        let s = stream(location);
        let values: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                Some(round_to(
                    base + swing * (k as f64 / 70.0).sin() + 0.4 * (noise(s, k) - 0.5),
                    1,
                ))
            })
            .collect();
        g.add(
            &[
                ("__name__", "temperature_celsius"),
                ("job", "sensors"),
                ("location", location),
            ],
            0,
            &values,
        );
    }
    // Zeros: queue a is always empty, b has rare spikes, c is a sawtooth.
    for queue in ["a", "b", "c"] {
        let s = stream(queue);
        let values: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                Some(match queue {
                    "a" => 0.0,
                    "b" => {
                        if noise(s, k) > 0.93 {
                            (noise(s ^ 7, k) * 40.0).floor()
                        } else {
                            0.0
                        }
                    }
                    _ => (k % 40) as f64,
                })
            })
            .collect();
        g.add(
            &[
                ("__name__", "queue_depth"),
                ("job", "worker"),
                ("queue", queue),
            ],
            1,
            &values,
        );
    }
    // Large and negative values, and tiny ones.
    for (account, base, step) in [
        ("debt", -1.5e12, -2.5e7),
        ("savings", 7.25e9, 1.0e3),
        ("tiny", 3.0e-9, -1.0e-11),
    ] {
        let s = stream(account);
        let values: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| Some(base + step * k as f64 + step * 0.5 * noise(s, k)))
            .collect();
        g.add(
            &[
                ("__name__", "account_balance"),
                ("account", account),
                ("job", "bank"),
            ],
            2,
            &values,
        );
    }
    for case in ["nan", "pos_inf", "neg_inf", "mixed"] {
        let values: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                Some(match case {
                    "nan" => f64::NAN,
                    "pos_inf" => f64::INFINITY,
                    "neg_inf" => f64::NEG_INFINITY,
                    _ => match k % 50 {
                        7 => f64::NAN,
                        23 => f64::INFINITY,
                        41 => f64::NEG_INFINITY,
                        _ => (k % 13) as f64 - 6.0,
                    },
                })
            })
            .collect();
        g.add(
            &[
                ("__name__", "special_values"),
                ("case", case),
                ("job", "edge"),
            ],
            0,
            &values,
        );
    }
}

const BUCKETS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

fn http_api(g: &mut Gen) {
    for (i, instance) in ["api-0:8080", "api-1:8080"].iter().enumerate() {
        let offset = [7, 13][i];
        // api-1 restarts at scrape 250: all its counters start again from zero.
        let resets: &[i64] = if i == 1 { &[250] } else { &[] };
        for method in ["GET", "POST"] {
            for (code, share) in [("200", 1.0), ("404", 0.05), ("500", 0.01)] {
                let name = format!("req {instance} {method} {code}");
                let per_second = share * if method == "GET" { 20.0 } else { 4.0 };
                let values = counter(&name, per_second, resets, 0);
                g.add(
                    &[
                        ("__name__", "http_requests_total"),
                        ("code", code),
                        ("instance", instance),
                        ("job", "api"),
                        ("method", method),
                    ],
                    offset,
                    &values,
                );
            }
        }
        for (handler, per_second, mean) in [
            ("/api/push", 30.0, 0.02),
            ("/api/query", 3.0, 0.4),
            ("/healthz", 0.004, 0.001),
        ] {
            let s = stream(&format!("hist {instance} {handler}"));
            let bounds: Vec<f64> = BUCKETS
                .iter()
                .map(|b| {
                    if *b == "+Inf" {
                        f64::INFINITY
                    } else {
                        b.parse().expect("bucket")
                    }
                })
                .collect();
            let mut counts = vec![0.0f64; BUCKETS.len()];
            let mut sum = 0.0f64;
            let mut rows: Vec<(Vec<f64>, f64)> = Vec::new();
            for k in 0..SCRAPES {
                if resets.contains(&k) {
                    counts.iter_mut().for_each(|c| *c = 0.0);
                    sum = 0.0;
                }
                let n = (per_second * 15.0 * (0.5 + noise(s, k))).floor() as i64;
                for j in 0..n {
                    let u = noise(s ^ 0xabc, k * 10_000 + j).max(1e-12);
                    let latency = -u.ln() * mean;
                    sum += latency;
                    for (c, b) in counts.iter_mut().zip(&bounds) {
                        if latency <= *b {
                            *c += 1.0;
                        }
                    }
                }
                rows.push((counts.clone(), sum));
            }
            let base = [("handler", handler), ("instance", instance), ("job", "api")];
            for (b, le) in BUCKETS.iter().enumerate() {
                let values: Vec<Option<f64>> = rows.iter().map(|(c, _)| Some(c[b])).collect();
                let mut labels = base.to_vec();
                labels.push(("__name__", "http_request_duration_seconds_bucket"));
                labels.push(("le", le));
                g.add(&labels, offset, &values);
            }
            let count: Vec<Option<f64>> = rows
                .iter()
                .map(|(c, _)| Some(c[BUCKETS.len() - 1]))
                .collect();
            let mut labels = base.to_vec();
            labels.push(("__name__", "http_request_duration_seconds_count"));
            g.add(&labels, offset, &count);
            let sums: Vec<Option<f64>> = rows.iter().map(|(_, s)| Some(*s)).collect();
            let mut labels = base.to_vec();
            labels.push(("__name__", "http_request_duration_seconds_sum"));
            g.add(&labels, offset, &sums);
        }
        let start_time = (g.start_ms / 1000) as f64 - 5000.0 * (i + 1) as f64;
        let values: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                Some(if i == 1 && k >= 250 {
                    ((g.start_ms + 250 * STEP_MS) / 1000) as f64 - 3.0
                } else {
                    start_time
                })
            })
            .collect();
        g.add(
            &[
                ("__name__", "process_start_time_seconds"),
                ("instance", instance),
                ("job", "api"),
            ],
            offset,
            &values,
        );
        let up: Vec<Option<f64>> = (0..SCRAPES).map(|_| Some(1.0)).collect();
        g.add(
            &[("__name__", "up"), ("instance", instance), ("job", "api")],
            offset,
            &up,
        );
    }
}

/// A kube pod: where it runs, its containers, and when it exists.
struct Pod {
    namespace: &'static str,
    name: &'static str,
    node: &'static str,
    owner: (&'static str, &'static str),
    containers: &'static [(&'static str, f64, f64)],
    /// First scrape that sees it.
    created: i64,
    /// Scrape at which it is deleted (a staleness marker is written there).
    deleted: Option<i64>,
    /// Phase by scrape.
    phase: fn(i64) -> &'static str,
}

const PHASES: [&str; 5] = ["Failed", "Pending", "Running", "Succeeded", "Unknown"];

/// A pod that exists for the whole data set and is always Running.
fn steady(
    namespace: &'static str,
    name: &'static str,
    node: &'static str,
    owner: (&'static str, &'static str),
    containers: &'static [(&'static str, f64, f64)],
) -> Pod {
    Pod {
        namespace,
        name,
        node,
        owner,
        containers,
        created: 0,
        deleted: None,
        phase: |_| "Running",
    }
}

fn pods() -> Vec<Pod> {
    let web = &[("web", 0.5, 536_870_912.0)];
    vec![
        steady(
            "default",
            "web-7d9f8-abcde",
            "node-a",
            ("ReplicaSet", "web-7d9f8"),
            web,
        ),
        // Unknown while its node reboots.
        Pod {
            phase: |k| {
                if (333..345).contains(&k) {
                    "Unknown"
                } else {
                    "Running"
                }
            },
            ..steady(
                "default",
                "web-7d9f8-fghij",
                "node-b",
                ("ReplicaSet", "web-7d9f8"),
                web,
            )
        },
        // A job: Pending, Running, Succeeded, then deleted (staleness markers).
        Pod {
            deleted: Some(360),
            phase: |k| match k {
                0..=39 => "Pending",
                40..=299 => "Running",
                _ => "Succeeded",
            },
            ..steady(
                "default",
                "batch-28391-x2v9q",
                "node-c",
                ("Job", "batch-28391"),
                &[("batch", 2.0, 4_294_967_296.0)],
            )
        },
        // Created an hour in.
        Pod {
            created: 240,
            phase: |k| if k < 248 { "Pending" } else { "Running" },
            ..steady(
                "default",
                "web-late-5d8c-klmno",
                "node-a",
                ("ReplicaSet", "web-late-5d8c"),
                &[("web", 0.25, 268_435_456.0)],
            )
        },
        // Two containers: resource requests are not unique per pod.
        steady(
            "monitoring",
            "prometheus-0",
            "node-b",
            ("StatefulSet", "prometheus"),
            &[
                ("prometheus", 1.0, 2_147_483_648.0),
                ("config-reloader", 0.1, 52_428_800.0),
            ],
        ),
        steady(
            "monitoring",
            "node-exporter-q8w7e",
            "node-c",
            ("DaemonSet", "node-exporter"),
            &[("node-exporter", 0.102, 188_743_680.0)],
        ),
        steady(
            "kube-system",
            "coredns-5d78c-r4t5y",
            "node-a",
            ("ReplicaSet", "coredns-5d78c"),
            &[("coredns", 0.1, 73_400_320.0)],
        ),
        // Flips between Failed and Running every 15 minutes.
        Pod {
            phase: |k| {
                if (k / 60) % 2 == 1 {
                    "Failed"
                } else {
                    "Running"
                }
            },
            ..steady(
                "kube-system",
                "crashy-6f7g8-zzz11",
                "node-c",
                ("ReplicaSet", "crashy-6f7g8"),
                &[("crashy", 0.3, 100_000_000.0)],
            )
        },
    ]
}

fn kube(g: &mut Gen) {
    // kube-state-metrics is scraped once, 3 ms after the grid.
    let offset = 3;
    let ksm = [("instance", "ksm:8080"), ("job", "kube-state-metrics")];
    for (i, node) in NODES.iter().enumerate() {
        let ip = format!("10.0.0.{}", i + 10);
        let kernel = ["6.1.0-18-amd64", "6.1.0-18-amd64", "5.10.0-28-amd64"][i];
        let mut labels = ksm.to_vec();
        labels.extend([
            ("__name__", "kube_node_info"),
            ("internal_ip", ip.as_str()),
            ("kernel_version", kernel),
            ("node", node),
            ("os_image", "Debian GNU/Linux 12 (bookworm)"),
        ]);
        g.add(&labels, offset, &vec![Some(1.0); SCRAPES as usize]);
    }
    for (p, pod) in pods().iter().enumerate() {
        let exists = |k: i64| -> Option<f64> {
            if k < pod.created {
                return None;
            }
            match pod.deleted {
                Some(d) if k == d => Some(stale()),
                Some(d) if k > d => None,
                _ => Some(1.0),
            }
        };
        let ip = format!("10.1.{}.{}", p / 4, p * 7 + 2);
        let mut labels = ksm.to_vec();
        labels.extend([
            ("__name__", "kube_pod_info"),
            ("created_by_kind", pod.owner.0),
            ("created_by_name", pod.owner.1),
            ("namespace", pod.namespace),
            ("node", pod.node),
            ("pod", pod.name),
            ("pod_ip", ip.as_str()),
        ]);
        let info: Vec<Option<f64>> = (0..SCRAPES).map(exists).collect();
        g.add(&labels, offset, &info);
        for phase in PHASES {
            let values: Vec<Option<f64>> = (0..SCRAPES)
                .map(|k| {
                    exists(k).map(|v| {
                        if v.is_nan() {
                            v
                        } else if (pod.phase)(k) == phase {
                            1.0
                        } else {
                            0.0
                        }
                    })
                })
                .collect();
            let mut labels = ksm.to_vec();
            labels.extend([
                ("__name__", "kube_pod_status_phase"),
                ("namespace", pod.namespace),
                ("phase", phase),
                ("pod", pod.name),
            ]);
            g.add(&labels, offset, &values);
        }
        for &(container, cpu, memory) in pod.containers {
            for (resource, unit, amount) in [("cpu", "core", cpu), ("memory", "byte", memory)] {
                let values: Vec<Option<f64>> = (0..SCRAPES)
                    .map(|k| exists(k).map(|v| if v.is_nan() { v } else { amount }))
                    .collect();
                let mut labels = ksm.to_vec();
                labels.extend([
                    ("__name__", "kube_pod_container_resource_requests"),
                    ("container", container),
                    ("namespace", pod.namespace),
                    ("node", pod.node),
                    ("pod", pod.name),
                    ("resource", resource),
                    ("unit", unit),
                ]);
                g.add(&labels, offset, &values);
            }
        }
    }
}

fn misc(g: &mut Gen) {
    // A worker that starts at scrape 300, one that stops at 200 with a staleness marker.
    for (worker, first, stop) in [
        ("early", 0, None),
        ("late", 300, None),
        ("stopped", 0, Some(200)),
    ] {
        let s = stream(worker);
        let mut value = 0.0;
        let values: Vec<Option<f64>> = (0..SCRAPES)
            .map(|k| {
                if k < first {
                    return None;
                }
                match stop {
                    Some(d) if k == d => return Some(stale()),
                    Some(d) if k > d => return None,
                    _ => {}
                }
                value += (noise(s, k) * 10.0).floor();
                Some(value)
            })
            .collect();
        g.add(
            &[
                ("__name__", "jobs_processed_total"),
                ("job", "worker"),
                ("worker", worker),
            ],
            5,
            &values,
        );
    }
    // Stops at scrape 520 without a staleness marker: present for 5 more minutes.
    let cron: Vec<Option<f64>> = (0..SCRAPES)
        .map(|k| (k <= 520).then(|| ((g.start_ms + (k / 40) * 40 * STEP_MS) / 1000) as f64))
        .collect();
    g.add(
        &[
            ("__name__", "cron_last_success_timestamp_seconds"),
            ("job", "cron"),
        ],
        0,
        &cron,
    );
    for (path, quote, newline, unicode, value) in [
        (
            "C:\\temp\\new",
            "say \"hi\"",
            "line1\nline2",
            "żółw ☃ 日本",
            1.0,
        ),
        ("/usr/bin", "it's", "tab\there", "a,b=c}{", 2.0),
    ] {
        g.add(
            &[
                ("__name__", "escape_test"),
                ("job", "edge"),
                ("newline", newline),
                ("path", path),
                ("quote", quote),
                ("unicode", unicode),
            ],
            0,
            &vec![Some(value); SCRAPES as usize],
        );
    }
    g.add(
        &[
            ("__name__", "build_info"),
            ("goversion", "go1.19.8"),
            ("job", "api"),
            ("revision", "ab12cd3"),
            ("version", "1.2.3"),
        ],
        0,
        &vec![Some(1.0); SCRAPES as usize],
    );
}

#[test]
fn data_set_is_deterministic_and_well_formed() {
    let a = DataSet::generate(1_700_002_800_000);
    let b = DataSet::generate(1_700_002_800_000);
    assert_eq!(a.series.len(), b.series.len());
    for (x, y) in a.series.iter().zip(&b.series) {
        assert_eq!(x.labels, y.labels);
        let bits = |s: &GenSeries| {
            s.samples
                .iter()
                .map(|(t, v)| (*t, v.to_bits()))
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(x), bits(y));
        assert!(
            x.samples.windows(2).all(|w| w[0].0 < w[1].0),
            "unordered {:?}",
            x.labels
        );
    }
    assert!(a.series.len() >= 250, "only {} series", a.series.len());
    let stale = a
        .series
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|(_, v)| v.to_bits() == STALE_NAN_BITS)
        .count();
    assert!(stale > 0);
    // Every request is in time order: the first sample of request n+1 is not before the
    // last of request n, per series and overall.
    let requests = a.requests(Duration::from_secs(120));
    let mut last = i64::MIN;
    for r in &requests {
        let min = r
            .timeseries
            .iter()
            .flat_map(|t| &t.samples)
            .map(|s| s.timestamp)
            .min()
            .expect("samples");
        let max = r
            .timeseries
            .iter()
            .flat_map(|t| &t.samples)
            .map(|s| s.timestamp)
            .max()
            .expect("samples");
        assert!(min > last);
        last = max;
    }
    let sent: usize = requests
        .iter()
        .flat_map(|r| &r.timeseries)
        .map(|t| t.samples.len())
        .sum();
    assert_eq!(sent, a.total_samples());
}
