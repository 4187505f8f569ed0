//! Shared fixtures: starting and stopping processes, free ports, polling, remote write,
//! reading blocks back from storage.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use strata_shared::block::{decode_block, META_FILE};
use strata_shared::labels::Labels;
use strata_shared::proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

/// Generous: CI machines are slow and shared.
pub(crate) const DEADLINE: Duration = Duration::from_secs(120);

/// A port nobody listens on right now, below the kernel's ephemeral range (32768 and up), so
/// that an outgoing connection of some test cannot take it between now and the child's bind.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 on 127.0.0.1");
}

/// Polls `condition` every 100 ms until it holds or `DEADLINE` passes.
pub(crate) fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {DEADLINE:?} waiting for {what}");
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Finds a peer binary or fails saying how to get it.
pub(crate) fn require_binary(name: &str, install: &str) -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in candidates.iter().chain(
        [
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/local/bin"),
            dirs_home_cargo(),
        ]
        .iter(),
    ) {
        let path = dir.join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is not installed; the README's test command installs it ({install})");
}

fn dirs_home_cargo() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cargo/bin")
}

/// A child process killed when dropped; its output goes to a log file kept for failures.
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Option<Child>,
    pub(crate) log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
}

impl Proc {
    pub(crate) fn spawn(name: &str, program: &Path, args: &[String], log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let mut p = Proc {
            name: name.to_string(),
            child: None,
            log,
            program: program.to_path_buf(),
            args: args.to_vec(),
        };
        p.start();
        p
    }

    fn start(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
    }

    /// Starts again with the same arguments (after a kill).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.start();
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("process not running")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// SIGKILL and reap.
    pub(crate) fn kill9(&mut self) {
        self.signal("KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit; returns whether it exited successfully.
    pub(crate) fn terminate(&mut self) -> bool {
        self.signal("TERM");
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("{} did not exit after SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} ({}) ----\n{}",
                self.name,
                self.log.display(),
                tail(&self.log_text(), 60)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running strata process.
pub(crate) struct Strata {
    pub(crate) proc: Proc,
    pub(crate) http_port: u16,
    pub(crate) grpc_port: u16,
    #[allow(dead_code)]
    pub(crate) dir: PathBuf,
}

impl Strata {
    /// Starts `strata` with data under `dir` and the extra flags; waits for `/ready`.
    pub(crate) fn start(name: &str, dir: &Path, extra: &[&str]) -> Strata {
        Self::start_on(name, dir, free_port(), free_port(), extra)
    }

    /// [`Strata::start`] on given ports (for processes that must know each other's).
    pub(crate) fn start_on(
        name: &str,
        dir: &Path,
        http_port: u16,
        grpc_port: u16,
        extra: &[&str],
    ) -> Strata {
        std::fs::create_dir_all(dir).expect("data dir");
        let mut args = vec![
            format!("-server.http-listen-port={http_port}"),
            format!("-server.grpc-listen-port={grpc_port}"),
            format!("-blocks-storage.tsdb.dir={}", dir.join("tsdb").display()),
            "-log.level=info".to_string(),
            // The tests push recorded data as fast as they can: Mimir's default ingestion
            // rate (10 000 samples/s, burst 200 000) would throttle them. Tests of the limits
            // set their own (later flags and the runtime config win).
            "-distributor.ingestion-rate-limit=1000000000".to_string(),
            "-distributor.ingestion-burst-size=1000000000".to_string(),
        ];
        if !extra.iter().any(|a| {
            a.starts_with("-blocks-storage.filesystem.dir")
                || a.starts_with("-blocks-storage.backend")
        }) {
            args.push(format!(
                "-blocks-storage.filesystem.dir={}",
                dir.join("blocks").display()
            ));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(name, Path::new(env!("CARGO_BIN_EXE_strata")), &args, dir);
        let s = Strata {
            proc,
            http_port,
            grpc_port,
            dir: dir.to_path_buf(),
        };
        s.wait_ready();
        s
    }

    pub(crate) fn wait_ready(&self) {
        let client = http();
        wait_until(&format!("{} /ready", self.proc.name), || {
            client
                .get(self.url("/ready"))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        });
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// Cuts and uploads everything in the head; panics unless the upload completed.
    pub(crate) fn flush(&self) {
        let r = http()
            .post(self.url("/ingester/flush?wait=true"))
            .send()
            .expect("flush request");
        let status = r.status();
        let body = r.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "flush of {} failed: {status} {body}",
            self.proc.name
        );
    }

    pub(crate) fn metrics(&self) -> String {
        http()
            .get(self.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    }
}

/// Value of a metric line starting with `prefix` (exact series text), summed over matches.
pub(crate) fn metric_value(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Snappy-compressed remote-write body.
pub(crate) fn encode_write(request: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy")
}

pub(crate) fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(t, v)| Sample {
                timestamp: *t,
                value: *v,
            })
            .collect(),
        exemplars: vec![],
    }
}

/// POSTs a remote-write body; returns (status, body).
pub(crate) fn push_raw(url: &str, tenant: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut req = http()
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    match req.send() {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Pushes one series `{__name__=name, job="e2e"}` with `samples` and checks it was accepted.
pub(crate) fn push_one_series(strata: &Strata, name: &str, samples: &[(i64, f64)]) {
    let request = WriteRequest {
        timeseries: vec![series(&[("__name__", name), ("job", "e2e")], samples)],
        metadata: vec![],
    };
    let (status, body) = push(strata, None, &request);
    assert_eq!(status, 200, "{body}");
}

pub(crate) fn push(strata: &Strata, tenant: Option<&str>, request: &WriteRequest) -> (u16, String) {
    push_raw(&strata.url("/api/v1/push"), tenant, encode_write(request))
}

/// One sample as read back from a block: value bits, so NaN payloads compare exactly.
pub(crate) type SeriesMap = BTreeMap<Labels, BTreeMap<i64, u64>>;

/// A block read back from storage, with its source ingester.
pub(crate) struct ReadBlock {
    pub(crate) source: String,
    pub(crate) series: SeriesMap,
}

/// Reads every complete block of `tenant` under a filesystem bucket directory.
pub(crate) fn read_blocks(bucket_dir: &Path, tenant: &str) -> Vec<ReadBlock> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(bucket_dir.join(tenant)) else {
        return out;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join(META_FILE).exists() {
            continue;
        }
        let mut files = HashMap::new();
        for f in std::fs::read_dir(&dir).expect("block dir").flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            files.insert(
                name,
                Bytes::from(std::fs::read(f.path()).expect("block file")),
            );
        }
        let meta: serde_json::Value = serde_json::from_slice(&files[META_FILE]).expect("meta.json");
        let source = meta["strata"]["sourceIngester"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let decoded = decode_block(&files)
            .unwrap_or_else(|e| panic!("cannot decode block {}: {e}", dir.display()));
        let mut series = SeriesMap::new();
        for s in decoded {
            let entry = series.entry(s.labels).or_default();
            for (t, v) in s.timestamps.iter().zip(&s.values) {
                entry.insert(*t, v.to_bits());
            }
        }
        out.push(ReadBlock { source, series });
    }
    out
}

/// The union of all blocks' samples.
pub(crate) fn merge_blocks(blocks: &[ReadBlock]) -> SeriesMap {
    let mut out = SeriesMap::new();
    for b in blocks {
        for (labels, samples) in &b.series {
            out.entry(labels.clone())
                .or_default()
                .extend(samples.iter().map(|(t, v)| (*t, *v)));
        }
    }
    out
}

pub(crate) use strata_shared::time::now_ms;

/// `GET {base}/api/v1/query` (Prometheus' or Strata's) at `time_ms`, with the tenant header
/// when given; the answer must be a success.
pub(crate) fn api_query(
    base: &str,
    tenant: Option<&str>,
    query: &str,
    time_ms: i64,
) -> serde_json::Value {
    let time = format!("{}.{:03}", time_ms / 1000, time_ms % 1000);
    let mut request = http()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query), ("time", time.as_str())]);
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let text = request
        .send()
        .and_then(|r| r.text())
        .expect("query API request");
    let v: serde_json::Value = serde_json::from_str(&text).expect("query API JSON");
    assert_eq!(v["status"], "success", "{text}");
    v
}

/// A query to the Prometheus on `port`.
pub(crate) fn prom_query(port: u16, query: &str, time_ms: i64) -> serde_json::Value {
    api_query(&format!("http://127.0.0.1:{port}"), None, query, time_ms)
}

/// Starts Prometheus with `config` (YAML) on `port`, data under `dir`.
pub(crate) fn spawn_prometheus(binary: &Path, dir: &Path, config: &str, port: u16) -> Proc {
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("prometheus config");
    Proc::spawn(
        "prometheus",
        binary,
        &[
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir,
    )
}
