//! `querybench`: the read benchmark's query runner. Runs a fixed set of PromQL queries over the
//! Prometheus HTTP API (`GET /api/v1/query`, `GET /api/v1/query_range`) of any server holding
//! the `strata-loadgen` workload, times each run, checks every answer, and compares answers
//! between systems. `bench/read.sh` drives it against Strata, Prometheus and VictoriaMetrics.
//!
//! ```text
//! querybench list
//! querybench run --url http://127.0.0.1:8080 --header 'X-Scope-OrgID: bench' \
//!     --start-ms S --end-ms E --hosts 40 --runs 10 --warmup 1 --system strata --mode warm \
//!     --out results.jsonl --answers-dir answers/strata --reference-dir answers/prometheus
//! querybench compare --reference answers/prometheus --candidate answers/strata
//! querybench report --results results.jsonl --answers answers
//! ```
//!
//! A run is timed from sending the request to having read the whole response body; parsing and
//! checking happen after the clock stops. An answer that is not `status: success`, is empty, or
//! (with `--hosts`) does not hold the number of series the workload implies fails the query: a
//! fast wrong answer is not a result. Each answer is reduced to its series count, point count,
//! value sum and a hash of every label, timestamp and value bit, and written out in a canonical
//! text form (`--answers-dir`) so that two systems' answers can be compared point by point.
//!
//! Output: one JSON object per line (`kind`: `run`, `summary`, `failure`; `bench/read.sh` adds
//! `rss` and `note` lines) on stdout and appended to `--out`; `report` turns these lines into
//! markdown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize, Serializer};
use strata_bench::Workload;

/// Relative tolerance per point when comparing two systems' answers.
const REL_TOLERANCE: f64 = 1e-9;

// ---------------------------------------------------------------------------------------------
// The query set
// ---------------------------------------------------------------------------------------------

/// Which part of the data a range query covers.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// From the data's start to its end.
    Whole,
    /// The last hour of the data.
    LastHour,
}

/// Instant (at the data's end) or range query.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Instant,
    Range { step_s: i64, span: Span },
}

/// How many series a correct answer holds, for a workload of `hosts` hosts.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One per host.
    PerHost,
    /// Exactly this many.
    Fixed(usize),
    /// Every series of this metric family.
    Family(&'static str),
}

#[derive(Debug)]
struct QueryDef {
    name: &'static str,
    expr: &'static str,
    kind: Kind,
    expect: Expect,
}

/// The issue's queries. The join's labels (`pod`, `namespace`, `resource`, `phase`) are the
/// workload's own: `the_join_uses_labels_the_workload_has` checks it.
const QUERIES: [QueryDef; 6] = [
    QueryDef {
        name: "node_info_instant",
        expr: "kube_node_info",
        kind: Kind::Instant,
        expect: Expect::PerHost,
    },
    QueryDef {
        name: "node_info_range",
        expr: "kube_node_info",
        kind: Kind::Range {
            step_s: 15,
            span: Span::Whole,
        },
        expect: Expect::PerHost,
    },
    QueryDef {
        name: "pod_cpu_requests_join",
        expr: "sum(kube_pod_status_phase{phase=\"Running\"} * on (pod) group_left(namespace, resource) \
               sum(kube_pod_container_resource_requests{resource=\"cpu\"}) by (pod)) by (resource)",
        kind: Kind::Range {
            step_s: 15,
            span: Span::Whole,
        },
        // The right-hand side keeps only `pod`, so group_left copies no label and `by (resource)`
        // gives one series without labels.
        expect: Expect::Fixed(1),
    },
    QueryDef {
        name: "cpu_rate_by_instance",
        expr: "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
        kind: Kind::Range {
            step_s: 60,
            span: Span::Whole,
        },
        expect: Expect::PerHost,
    },
    QueryDef {
        name: "http_p99",
        expr: "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        kind: Kind::Range {
            step_s: 60,
            span: Span::Whole,
        },
        expect: Expect::Fixed(1),
    },
    QueryDef {
        name: "cpu_family_1h",
        expr: "node_cpu_seconds_total",
        kind: Kind::Range {
            step_s: 15,
            span: Span::LastHour,
        },
        expect: Expect::Family("node_cpu_seconds_total"),
    },
];

/// Series of metric family `name` that one host of the workload exposes.
fn family_series_per_host(name: &str) -> usize {
    let workload = Workload::ending_at(1, 1.0, 3_600_000, 1);
    (0..Workload::series_per_host())
        .filter(|&s| {
            workload
                .labels(0, s)
                .iter()
                .any(|l| l.name == "__name__" && l.value == name)
        })
        .count()
}

impl QueryDef {
    fn expected_series(&self, hosts: usize) -> usize {
        match self.expect {
            Expect::PerHost => hosts,
            Expect::Fixed(n) => n,
            Expect::Family(name) => hosts * family_series_per_host(name),
        }
    }

    fn result_type(&self) -> &'static str {
        match self.kind {
            Kind::Instant => "vector",
            Kind::Range { .. } => "matrix",
        }
    }

    /// The API path and parameters for data in `[start_ms, end_ms)`. Range bounds are aligned to
    /// the step (start rounded up, end down) so that every system evaluates the same instants:
    /// VictoriaMetrics aligns them itself otherwise.
    fn params(&self, start_ms: i64, end_ms: i64) -> (&'static str, Vec<(&'static str, String)>) {
        match self.kind {
            Kind::Instant => (
                "/api/v1/query",
                vec![("query", self.expr.to_string()), ("time", seconds(end_ms))],
            ),
            Kind::Range { step_s, span } => {
                let step = step_s * 1000;
                let end = end_ms.div_euclid(step) * step;
                let mut start = (start_ms + step - 1).div_euclid(step) * step;
                if let Span::LastHour = span {
                    start = start.max(end - 3_600_000);
                }
                (
                    "/api/v1/query_range",
                    vec![
                        ("query", self.expr.to_string()),
                        ("start", seconds(start)),
                        ("end", seconds(end)),
                        ("step", format!("{step_s}s")),
                    ],
                )
            }
        }
    }
}

/// Milliseconds since the epoch as the API's decimal seconds.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn select_queries(list: Option<&str>) -> Result<Vec<&'static QueryDef>> {
    let Some(list) = list else {
        return Ok(QUERIES.iter().collect());
    };
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(|name| {
            QUERIES.iter().find(|q| q.name == name).ok_or_else(|| {
                let known: Vec<_> = QUERIES.iter().map(|q| q.name).collect();
                anyhow!("unknown query {name:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Parser)]
#[command(
    name = "querybench",
    about = "Runs the read benchmark's PromQL queries over the Prometheus HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the query set: name, type, step, expression.
    List,
    /// Run queries against one server and record latencies and answers.
    Run(RunArgs),
    /// Compare two directories of answers written by `run --answers-dir`.
    Compare {
        /// Answers taken as correct (Prometheus').
        #[arg(long)]
        reference: PathBuf,
        /// Answers to check.
        #[arg(long)]
        candidate: PathBuf,
        /// Only these queries (comma-separated names).
        #[arg(long)]
        queries: Option<String>,
    },
    /// Turn result lines (from `run` and bench/read.sh) into markdown tables.
    Report(ReportArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Base URL of the server (the API is under /api/v1).
    #[arg(long)]
    url: String,
    /// An extra request header, `Name: value` (repeatable), e.g. `X-Scope-OrgID: bench`.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// First sample time of the data, in ms since the epoch (strata-loadgen's start).
    #[arg(long)]
    start_ms: i64,
    /// End of the data (exclusive), in ms since the epoch (strata-loadgen's --end-ms).
    #[arg(long)]
    end_ms: i64,
    /// Hosts of the workload: when given, each answer must hold exactly the series it implies.
    #[arg(long)]
    hosts: Option<usize>,
    /// Only these queries (comma-separated names; see `querybench list`).
    #[arg(long)]
    queries: Option<String>,
    /// Timed runs of each query.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Untimed runs of each query before the timed ones.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Name of the system, recorded in every output line.
    #[arg(long, default_value = "server")]
    system: String,
    /// Name of the cache state (cold, warm), recorded in every output line.
    #[arg(long, default_value = "warm")]
    mode: String,
    /// Append the JSON lines to this file too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write each query's answer (canonical text form) into this directory.
    #[arg(long)]
    answers_dir: Option<PathBuf>,
    /// Compare each answer with the one in this directory (e.g. Prometheus' answers).
    #[arg(long)]
    reference_dir: Option<PathBuf>,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout_s: u64,
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// JSON-lines files written by `run --out` and bench/read.sh (repeatable).
    #[arg(long = "results", required = true)]
    results: Vec<PathBuf>,
    /// Directory holding one answers directory per system (`<dir>/<system>/<query>.txt`).
    #[arg(long)]
    answers: Option<PathBuf>,
    /// The system whose answers count as correct.
    #[arg(long, default_value = "prometheus")]
    reference: String,
    /// The system compared with each other one in the ratio columns.
    #[arg(long, default_value = "strata")]
    primary: String,
}

/// `Name: value` as an HTTP header.
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue)> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("not `Name: value`"))?;
    Ok((
        HeaderName::from_bytes(name.trim().as_bytes())?,
        HeaderValue::from_str(value.trim())?,
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::List => {
            for q in &QUERIES {
                let kind = match q.kind {
                    Kind::Instant => "instant at the data's end".to_string(),
                    Kind::Range {
                        step_s,
                        span: Span::Whole,
                    } => format!("range over the whole span, step {step_s}s"),
                    Kind::Range {
                        step_s,
                        span: Span::LastHour,
                    } => format!("range over the last hour, step {step_s}s"),
                };
                println!("{}\t{kind}\t{}", q.name, q.expr);
            }
            Ok(true)
        }
        Command::Run(args) => run(&args),
        Command::Compare {
            reference,
            candidate,
            queries,
        } => compare_dirs(&reference, &candidate, queries.as_deref()),
        Command::Report(args) => report(&args).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("querybench: {e:#}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------

/// Writes JSON lines to stdout and, if asked, appends them to a file.
#[derive(Debug)]
struct Sink {
    file: Option<fs::File>,
}

impl Sink {
    fn line(&mut self, line: &Line<'_>) -> Result<()> {
        let line = serde_json::to_string(line).context("writing a result line")?;
        println!("{line}");
        if let Some(file) = &mut self.file {
            writeln!(file, "{line}").context("writing the results file")?;
        }
        Ok(())
    }
}

/// Runs every selected query; returns false when one failed (after trying the others).
fn run(args: &RunArgs) -> Result<bool> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(
        args.start_ms < args.end_ms,
        "--start-ms must be before --end-ms"
    );
    let queries = select_queries(args.queries.as_deref())?;
    let client = reqwest::Client::builder()
        .default_headers(args.headers.iter().cloned().collect::<HeaderMap>())
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(args.timeout_s.max(1)))
        .build()
        .context("building the HTTP client")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let file = match &args.out {
        Some(path) => Some(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let mut sink = Sink { file };
    if let Some(dir) = &args.answers_dir {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let base = args.url.trim_end_matches('/');
    let mut all_ok = true;
    for q in queries {
        let (path, params) = q.params(args.start_ms, args.end_ms);
        let url = reqwest::Url::parse_with_params(&format!("{base}{path}"), &params)
            .with_context(|| format!("building the URL for {}", q.name))?;
        let key = Key {
            system: &args.system,
            mode: &args.mode,
            query: q.name,
        };
        let outcome = runtime.block_on(run_query(&client, &url, q, args, &key, &mut sink));
        if let Err(e) = outcome {
            all_ok = false;
            let error = format!("{e:#}");
            eprintln!(
                "querybench: {} {} {}: FAILED: {error}",
                args.system, args.mode, q.name
            );
            sink.line(&Line::Failure {
                key: &key,
                error: &error,
            })?;
        }
    }
    Ok(all_ok)
}

async fn run_query(
    client: &reqwest::Client,
    url: &reqwest::Url,
    q: &QueryDef,
    args: &RunArgs,
    key: &Key<'_>,
    sink: &mut Sink,
) -> Result<()> {
    let expected = args.hosts.map(|h| q.expected_series(h));
    for _ in 0..args.warmup {
        let (_, body) = timed_get(client, url).await?;
        check_answer(q, url, &body, expected)?;
    }
    let mut latencies = Vec::with_capacity(args.runs);
    // Every run is checked against this system's earlier answer to the same query (an earlier
    // invocation's, e.g. the warm runs' when these are cold ones, else this invocation's
    // first): aggregation order may change the last bits, not more than REL_TOLERANCE.
    let answer_path = args
        .answers_dir
        .as_ref()
        .map(|dir| dir.join(format!("{}.txt", q.name)));
    let mut baseline = match &answer_path {
        Some(path) if path.exists() => {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(Answer::from_text(&text).with_context(|| format!("reading {}", path.display()))?)
        }
        _ => None,
    };
    let mut first: Option<Answer> = None;
    for run in 1..=args.runs {
        let (elapsed, body) = timed_get(client, url).await?;
        let answer = check_answer(q, url, &body, expected)?;
        let ms = elapsed.as_secs_f64() * 1000.0;
        latencies.push(ms);
        let stats = answer.stats();
        let consistent = match &baseline {
            None => true,
            Some(b) => {
                let diff = compare(b, &answer);
                if !diff.matches() {
                    eprintln!(
                        "querybench: {} {} {}: run {run} differs from this system's earlier answer: {}",
                        args.system,
                        args.mode,
                        q.name,
                        diff.describe()
                    );
                }
                diff.matches()
            }
        };
        sink.line(&Line::Run {
            key,
            run,
            ms: round_ms(ms),
            stats,
            consistent,
        })?;
        if baseline.is_none() {
            baseline = Some(answer.clone());
        }
        if first.is_none() {
            first = Some(answer);
        }
    }
    let Some(answer) = first else {
        bail!("no run");
    };
    let stats = answer.stats();
    let s = Summary::of(&latencies);
    sink.line(&Line::Summary {
        key,
        runs: latencies.len(),
        median_ms: round_ms(s.median),
        p90_ms: round_ms(s.p90),
        min_ms: round_ms(s.min),
        max_ms: round_ms(s.max),
        stats,
    })?;
    if let Some(dir) = &args.answers_dir {
        let path = dir.join(format!("{}.txt", q.name));
        fs::write(&path, answer.to_text())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &args.reference_dir {
        let path = dir.join(format!("{}.txt", q.name));
        match fs::read_to_string(&path) {
            Ok(text) => {
                let reference = Answer::from_text(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                let diff = compare(&reference, &answer);
                eprintln!(
                    "querybench: {} {} vs {}: {}",
                    args.system,
                    q.name,
                    dir.display(),
                    diff.describe()
                );
            }
            Err(e) => eprintln!(
                "querybench: {}: no reference answer to compare with ({e})",
                path.display()
            ),
        }
    }
    Ok(())
}

/// GETs `url`; the time covers sending the request and reading the whole body.
async fn timed_get(client: &reqwest::Client, url: &reqwest::Url) -> Result<(Duration, Response)> {
    let request = client.get(url.clone());
    let started = Instant::now();
    let response = request.send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer to GET {url}"))?;
    Ok((started.elapsed(), Response { status, body }))
}

#[derive(Debug)]
struct Response {
    status: u16,
    body: bytes::Bytes,
}

/// The first bytes of a body, for error messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(600).collect();
    if text.chars().count() > 600 {
        s.push_str("...");
    }
    s
}

/// Parses and checks an answer: HTTP 200, `status: success`, the expected result type, no
/// duplicate series, at least one point, and the expected series count when known.
fn check_answer(
    q: &QueryDef,
    url: &reqwest::Url,
    response: &Response,
    expected: Option<usize>,
) -> Result<Answer> {
    let fail = |why: String| {
        anyhow!(
            "{why}\n  request: GET {url}\n  response: HTTP {} {}",
            response.status,
            excerpt(&response.body)
        )
    };
    if response.status != 200 {
        return Err(fail("not HTTP 200".into()));
    }
    let api: ApiResponse = serde_json::from_slice(&response.body)
        .map_err(|e| fail(format!("not an API answer: {e}")))?;
    if api.status.as_deref() != Some("success") {
        return Err(fail("status is not \"success\"".into()));
    }
    if let Some(warnings) = api.warnings.filter(|w| !w.is_empty()) {
        eprintln!(
            "querybench: {}: warnings: {}",
            q.name,
            serde_json::Value::Array(warnings)
        );
    }
    let data = api.data.ok_or_else(|| fail("no data".into()))?;
    let answer = Answer::from_api(data, q.result_type()).map_err(|e| fail(format!("{e:#}")))?;
    if answer.series.is_empty() {
        return Err(fail("empty result".into()));
    }
    let stats = answer.stats();
    if stats.points == 0 {
        return Err(fail("no point in any series".into()));
    }
    if let Some(n) = expected {
        if stats.series != n {
            return Err(fail(format!(
                "wrong answer: {} series, the workload implies {n}",
                stats.series
            )));
        }
    }
    Ok(answer)
}

/// The parts of a Prometheus API answer that are checked; other fields are ignored.
#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: Option<String>,
    warnings: Option<Vec<serde_json::Value>>,
    data: Option<ApiData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiData {
    result_type: Option<String>,
    result: Vec<ApiSeries>,
}

/// One series of a `vector` (`value`) or `matrix` (`values`) result.
#[derive(Debug, Deserialize)]
struct ApiSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<ApiPoint>,
    #[serde(default)]
    values: Vec<ApiPoint>,
    histogram: Option<IgnoredAny>,
    histograms: Option<IgnoredAny>,
}

/// `[1700000000.123, "42.5"]`: the time in seconds and the value as Prometheus writes floats,
/// a string (`NaN`, `+Inf` and `-Inf` included).
type ApiPoint = (ApiTime, String);

/// A point's time: a number, or (some servers) a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ApiTime {
    Seconds(f64),
    Text(String),
}

// ---------------------------------------------------------------------------------------------
// Result lines
// ---------------------------------------------------------------------------------------------

/// What every line `run` writes starts with.
#[derive(Debug, Serialize)]
struct Key<'a> {
    system: &'a str,
    mode: &'a str,
    query: &'a str,
}

/// A line `run` writes.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line<'a> {
    Run {
        #[serde(flatten)]
        key: &'a Key<'a>,
        run: usize,
        ms: f64,
        #[serde(flatten)]
        stats: Stats,
        consistent: bool,
    },
    Summary {
        #[serde(flatten)]
        key: &'a Key<'a>,
        runs: usize,
        median_ms: f64,
        p90_ms: f64,
        min_ms: f64,
        max_ms: f64,
        #[serde(flatten)]
        stats: Stats,
    },
    Failure {
        #[serde(flatten)]
        key: &'a Key<'a>,
        error: &'a str,
    },
}

/// A line `report` reads: one of [`Line`], or `rss` and `note` lines from bench/read.sh.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResultLine {
    kind: String,
    system: String,
    mode: String,
    query: String,
    ms: Option<f64>,
    consistent: Option<bool>,
    series: Option<f64>,
    error: String,
    text: String,
    peak_rss_bytes: Option<f64>,
    idle_rss_bytes: Option<f64>,
}

/// Milliseconds to the microsecond, as written in result lines.
fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// Answers: canonical form, checksums, comparison
// ---------------------------------------------------------------------------------------------

/// One result series: canonical label text (sorted, `{a="b",...}`) and its points.
#[derive(Debug, Clone, PartialEq)]
struct Series {
    labels: String,
    points: Vec<(i64, f64)>,
}

/// A whole answer, series sorted by labels.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    series: Vec<Series>,
}

/// An answer's size and checksums. In result lines a sum that is not finite is `null` (JSON has
/// no NaN or infinity) and the hash is 16 hex digits.
#[derive(Debug, Clone, Copy, Serialize)]
struct Stats {
    series: usize,
    points: usize,
    #[serde(rename = "value_sum")]
    sum: f64,
    #[serde(serialize_with = "hex16")]
    hash: u64,
}

fn hex16<S: Serializer>(hash: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{hash:016x}"))
}

/// FNV-1a, 64 bits: a stable checksum that needs no dependency.
#[derive(Debug)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl Answer {
    /// Reads `data.result` of an API answer of type `result_type`.
    fn from_api(data: ApiData, result_type: &str) -> Result<Answer> {
        let got = data.result_type;
        ensure!(
            got.as_deref() == Some(result_type),
            "resultType is {got:?}, expected {result_type:?}"
        );
        let mut series = Vec::with_capacity(data.result.len());
        for item in data.result {
            let points = item
                .value
                .into_iter()
                .chain(item.values)
                .map(parse_point)
                .collect::<Result<Vec<_>>>()?;
            ensure!(
                item.histogram.is_none() && item.histograms.is_none(),
                "native histograms are not expected"
            );
            let labels = canonical_labels(&item.metric);
            ensure!(
                points.windows(2).all(|w| w[0].0 < w[1].0),
                "timestamps of {labels} are not increasing"
            );
            series.push(Series { labels, points });
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        if let Some(w) = series.windows(2).find(|w| w[0].labels == w[1].labels) {
            bail!("series {} appears twice", w[0].labels);
        }
        Ok(Answer { series })
    }

    fn stats(&self) -> Stats {
        let mut h = Fnv::new();
        let mut points = 0;
        let mut sum = 0.0;
        for s in &self.series {
            h.write(s.labels.as_bytes());
            h.write(&[0xff]);
            for &(t, v) in &s.points {
                h.write(&t.to_le_bytes());
                let bits = if v.is_nan() {
                    f64::NAN.to_bits()
                } else {
                    v.to_bits()
                };
                h.write(&bits.to_le_bytes());
                if v.is_finite() {
                    sum += v;
                }
            }
            points += s.points.len();
        }
        Stats {
            series: self.series.len(),
            points,
            sum,
            hash: h.0,
        }
    }

    /// One line per series: labels, a tab, then `t_ms:value` pairs separated by commas. Rust
    /// prints the shortest decimal that reads back as the same float.
    fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.series {
            out.push_str(&s.labels);
            out.push('\t');
            for (i, (t, v)) in s.points.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{t}:{v:?}");
            }
            out.push('\n');
        }
        out
    }

    fn from_text(text: &str) -> Result<Answer> {
        let mut series = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let (labels, points) = line
                .rsplit_once('\t')
                .ok_or_else(|| anyhow!("line {}: no tab", n + 1))?;
            let points = points
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (t, v) = p
                        .split_once(':')
                        .ok_or_else(|| anyhow!("line {}: bad point {p:?}", n + 1))?;
                    Ok((t.parse::<i64>()?, v.parse::<f64>()?))
                })
                .collect::<Result<Vec<_>>>()?;
            series.push(Series {
                labels: labels.to_string(),
                points,
            });
        }
        Ok(Answer { series })
    }
}

/// `[1700000000.123, "42.5"]` → (ms, value). Rust reads Prometheus' float text: decimals,
/// `NaN`, `+Inf`, `-Inf`.
fn parse_point((time, value): ApiPoint) -> Result<(i64, f64)> {
    let t = match time {
        ApiTime::Seconds(t) => t,
        ApiTime::Text(t) => t.parse().context("a point's time")?,
    };
    let v = value
        .parse::<f64>()
        .with_context(|| format!("value {value:?} is not a float"))?;
    Ok(((t * 1000.0).round() as i64, v))
}

/// `{a="b",c="d"}`, names sorted (a `BTreeMap` iterates in order).
fn canonical_labels(labels: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push('=');
        out.push('"');
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Equal within `REL_TOLERANCE` of the larger magnitude; NaN equals NaN; infinities must be
/// equal.
fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if !a.is_finite() || !b.is_finite() {
        return a == b;
    }
    (a - b).abs() <= REL_TOLERANCE * a.abs().max(b.abs())
}

/// How a candidate answer differs from a reference one.
#[derive(Debug, Default)]
struct Diff {
    reference_series: usize,
    reference_points: usize,
    missing_series: usize,
    extra_series: usize,
    missing_points: usize,
    extra_points: usize,
    compared_points: usize,
    differing_points: usize,
    max_rel_error: f64,
    example: Option<String>,
}

impl Diff {
    fn matches(&self) -> bool {
        self.missing_series == 0
            && self.extra_series == 0
            && self.missing_points == 0
            && self.extra_points == 0
            && self.differing_points == 0
    }

    fn describe(&self) -> String {
        if self.matches() {
            return format!(
                "match ({} series, {} points within {REL_TOLERANCE:e} relative)",
                self.reference_series, self.reference_points
            );
        }
        let mut parts = Vec::new();
        if self.missing_series > 0 {
            parts.push(format!("{} series missing", self.missing_series));
        }
        if self.extra_series > 0 {
            parts.push(format!("{} extra series", self.extra_series));
        }
        if self.missing_points > 0 {
            parts.push(format!("{} points missing", self.missing_points));
        }
        if self.extra_points > 0 {
            parts.push(format!("{} extra points", self.extra_points));
        }
        if self.differing_points > 0 {
            parts.push(format!(
                "{}/{} points differ (max rel. error {:.2e})",
                self.differing_points, self.compared_points, self.max_rel_error
            ));
        }
        let mut s = format!("MISMATCH: {}", parts.join(", "));
        if let Some(e) = &self.example {
            let _ = write!(s, "; e.g. {e}");
        }
        s
    }

    fn note(&mut self, example: impl FnOnce() -> String) {
        if self.example.is_none() {
            self.example = Some(example());
        }
    }
}

fn compare(reference: &Answer, candidate: &Answer) -> Diff {
    let mut diff = Diff {
        reference_series: reference.series.len(),
        reference_points: reference.series.iter().map(|s| s.points.len()).sum(),
        ..Diff::default()
    };
    let by_labels: BTreeMap<&str, &Series> = candidate
        .series
        .iter()
        .map(|s| (s.labels.as_str(), s))
        .collect();
    let reference_labels: BTreeSet<&str> =
        reference.series.iter().map(|s| s.labels.as_str()).collect();
    for s in &candidate.series {
        if !reference_labels.contains(s.labels.as_str()) {
            diff.extra_series += 1;
            diff.note(|| format!("extra series {}", s.labels));
        }
    }
    for r in &reference.series {
        let Some(c) = by_labels.get(r.labels.as_str()) else {
            diff.missing_series += 1;
            diff.note(|| format!("missing series {}", r.labels));
            continue;
        };
        let candidate_points: BTreeMap<i64, f64> = c.points.iter().copied().collect();
        let reference_times: BTreeSet<i64> = r.points.iter().map(|p| p.0).collect();
        for &(t, v) in &r.points {
            let Some(&w) = candidate_points.get(&t) else {
                diff.missing_points += 1;
                diff.note(|| format!("{} has no point at {}", r.labels, seconds(t)));
                continue;
            };
            diff.compared_points += 1;
            if !close(v, w) {
                diff.differing_points += 1;
                let rel = if v.is_finite() && w.is_finite() {
                    (v - w).abs() / v.abs().max(w.abs())
                } else {
                    f64::INFINITY
                };
                diff.max_rel_error = diff.max_rel_error.max(rel);
                diff.note(|| format!("{} at {}: {v:?} vs {w:?}", r.labels, seconds(t)));
            }
        }
        for &(t, _) in &c.points {
            if !reference_times.contains(&t) {
                diff.extra_points += 1;
                diff.note(|| format!("{} has an extra point at {}", r.labels, seconds(t)));
            }
        }
    }
    diff
}

fn read_answer(dir: &Path, query: &str) -> Result<Option<Answer>> {
    let path = dir.join(format!("{query}.txt"));
    match fs::read_to_string(&path) {
        Ok(text) => Answer::from_text(&text)
            .with_context(|| format!("reading {}", path.display()))
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn compare_dirs(reference: &Path, candidate: &Path, queries: Option<&str>) -> Result<bool> {
    let mut all_match = true;
    for q in select_queries(queries)? {
        let (Some(r), Some(c)) = (
            read_answer(reference, q.name)?,
            read_answer(candidate, q.name)?,
        ) else {
            println!("{}\tno answer on one side", q.name);
            continue;
        };
        let diff = compare(&r, &c);
        all_match &= diff.matches();
        println!("{}\t{}", q.name, diff.describe());
    }
    Ok(all_match)
}

// ---------------------------------------------------------------------------------------------
// Statistics and report
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Summary {
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
}

impl Summary {
    /// Median (mean of the middle two for an even count) and nearest-rank p90.
    fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Summary {
                median: f64::NAN,
                p90: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let rank = ((0.9 * n as f64).ceil() as usize).clamp(1, n);
        Summary {
            median,
            p90: v[rank - 1],
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// What the result lines say about one (system, mode, query).
#[derive(Debug, Default)]
struct Cell {
    latencies: Vec<f64>,
    inconsistent_runs: usize,
    series: Option<u64>,
    failures: Vec<String>,
}

#[derive(Debug, Default)]
struct Rss {
    peak: Option<u64>,
    idle: Option<u64>,
}

fn display_name(system: &str) -> &str {
    match system {
        "strata" => "Strata",
        "prometheus" => "Prometheus",
        "victoria-metrics" => "VictoriaMetrics",
        s => s,
    }
}

fn report(args: &ReportArgs) -> Result<()> {
    let mut cells: BTreeMap<(String, String, String), Cell> = BTreeMap::new();
    let mut rss: BTreeMap<(String, String), Rss> = BTreeMap::new();
    let mut systems: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for path in &args.results {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let ResultLine {
                kind,
                system,
                mode,
                query,
                ms,
                consistent,
                series,
                error,
                text,
                peak_rss_bytes,
                idle_rss_bytes,
            } = serde_json::from_str(line)
                .with_context(|| format!("{}:{}", path.display(), n + 1))?;
            if !system.is_empty() && !systems.contains(&system) {
                systems.push(system.clone());
            }
            match kind.as_str() {
                "run" => {
                    let cell = cells.entry((system, mode, query)).or_default();
                    cell.latencies.extend(ms);
                    if consistent == Some(false) {
                        cell.inconsistent_runs += 1;
                    }
                    cell.series = series.map(|s| s as u64);
                }
                "failure" => cells
                    .entry((system, mode, query))
                    .or_default()
                    .failures
                    .push(error),
                "rss" => {
                    let entry = rss.entry((system, mode)).or_default();
                    let max = |old: Option<u64>, new: Option<f64>| {
                        old.into_iter().chain(new.map(|v| v as u64)).max()
                    };
                    entry.peak = max(entry.peak, peak_rss_bytes);
                    entry.idle = max(entry.idle, idle_rss_bytes);
                }
                "note" => notes.push(format!("{}: {text}", display_name(&system))),
                _ => {}
            }
        }
    }
    // The primary system first, then the others in the order they appear.
    if let Some(i) = systems.iter().position(|s| *s == args.primary) {
        let primary = systems.remove(i);
        systems.insert(0, primary);
    }
    let has_primary = systems.first() == Some(&args.primary);
    let others: Vec<&String> = systems.iter().skip(1).collect();
    let median = |s: &str, m: &str, q: &str| -> Option<f64> {
        let cell = cells.get(&(s.to_string(), m.to_string(), q.to_string()))?;
        if !cell.failures.is_empty() || cell.latencies.is_empty() {
            return None;
        }
        Some(Summary::of(&cell.latencies).median)
    };
    let failed = |s: &str, m: &str, q: &str| {
        cells
            .get(&(s.to_string(), m.to_string(), q.to_string()))
            .is_some_and(|c| !c.failures.is_empty())
    };
    let fmt_ms = |s: &str, m: &str, q: &str| match median(s, m, q) {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None if failed(s, m, q) => "FAIL".to_string(),
        None => "-".to_string(),
    };
    // One row's cells: `cold / warm` as `show` writes them for each system, then the ratios of
    // the primary's `value`s to each other system's.
    let cells_row = |out: &mut String,
                     show: &dyn Fn(&str, &str) -> String,
                     value: &dyn Fn(&str, &str) -> Option<f64>| {
        for s in &systems {
            let _ = write!(out, " {} / {} |", show(s, "cold"), show(s, "warm"));
        }
        if has_primary {
            let p = &systems[0];
            for o in &others {
                let ratio = |m: &str| match (value(p, m), value(o, m)) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                    _ => "-".to_string(),
                };
                let _ = write!(out, " {} / {} |", ratio("cold"), ratio("warm"));
            }
        }
        out.push('\n');
    };

    let mut out = String::new();
    // Latencies: one row per query, cold / warm medians per system, then ratios.
    let _ = write!(out, "| query | series |");
    for s in &systems {
        let _ = write!(out, " {} cold / warm, ms |", display_name(s));
    }
    if has_primary {
        for o in &others {
            let _ = write!(
                out,
                " {}/{} cold / warm |",
                display_name(&systems[0]),
                display_name(o)
            );
        }
    }
    out.push('\n');
    let columns = 2 + systems.len() + if has_primary { others.len() } else { 0 };
    let _ = writeln!(out, "|{}", "---|".repeat(columns));
    for q in &QUERIES {
        let series = systems
            .iter()
            .filter_map(|s| {
                ["warm", "cold"].iter().find_map(|m| {
                    cells
                        .get(&(s.clone(), (*m).to_string(), q.name.to_string()))
                        .and_then(|c| c.series)
                })
            })
            .next();
        if systems.iter().all(|s| {
            ["cold", "warm"]
                .iter()
                .all(|m| !cells.contains_key(&(s.clone(), (*m).to_string(), q.name.to_string())))
        }) {
            continue;
        }
        let _ = write!(
            out,
            "| `{}` | {} |",
            q.name,
            series.map_or("-".to_string(), |n| n.to_string())
        );
        cells_row(&mut out, &|s, m| fmt_ms(s, m, q.name), &|s, m| {
            median(s, m, q.name)
        });
    }
    // Peak RSS during the query runs.
    let peak = |s: &str, m: &str| {
        rss.get(&(s.to_string(), m.to_string()))
            .and_then(|r| r.peak)
            .map(|b| b as f64 / 1_048_576.0)
    };
    let fmt_mib = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let _ = write!(out, "| peak RSS, MiB | |");
    cells_row(&mut out, &|s, m| fmt_mib(peak(s, m)), &peak);
    let idle = |s: &str, m: &str| {
        rss.get(&(s.to_string(), m.to_string()))
            .and_then(|r| r.idle)
            .map(|b| b as f64 / 1_048_576.0)
    };
    let idle: Vec<String> = systems
        .iter()
        .filter(|s| idle(s, "cold").is_some() || idle(s, "warm").is_some())
        .map(|s| {
            format!(
                "{} {} / {} MiB",
                display_name(s),
                fmt_mib(idle(s, "cold")),
                fmt_mib(idle(s, "warm"))
            )
        })
        .collect();
    if !idle.is_empty() {
        let _ = writeln!(
            out,
            "\nPeak RSS is the server's VmHWM over the query runs only (reset once the server is ready). \
             RSS when ready, before the first query (cold, largest of the restarts / warm): {}.",
            idle.join(", ")
        );
    }

    // Spread of each measurement.
    let _ = writeln!(
        out,
        "\n| system | mode | query | runs | median | p90 | min | max |\n|---|---|---|---|---|---|---|---|"
    );
    for s in &systems {
        for m in ["cold", "warm"] {
            for q in &QUERIES {
                let Some(cell) = cells.get(&(s.clone(), m.to_string(), q.name.to_string())) else {
                    continue;
                };
                if cell.latencies.is_empty() {
                    continue;
                }
                let st = Summary::of(&cell.latencies);
                let _ = writeln!(
                    out,
                    "| {} | {m} | `{}` | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    display_name(s),
                    q.name,
                    cell.latencies.len(),
                    st.median,
                    st.p90,
                    st.min,
                    st.max
                );
            }
        }
    }

    // Answers compared with the reference system's.
    let reference_answers = args
        .answers
        .as_ref()
        .map(|dir| dir.join(&args.reference))
        .filter(|dir| dir.is_dir());
    if args.answers.is_some() && reference_answers.is_none() {
        let _ = writeln!(
            out,
            "\nNo {} answers to compare the others' with.",
            display_name(&args.reference)
        );
    }
    if let (Some(dir), Some(reference_dir)) = (&args.answers, reference_answers) {
        let compared: Vec<&String> = systems.iter().filter(|s| **s != args.reference).collect();
        let _ = write!(
            out,
            "\nAnswers compared with {}'s (per point, {REL_TOLERANCE:e} relative):\n\n| query |",
            display_name(&args.reference)
        );
        for s in &compared {
            let _ = write!(out, " {} |", display_name(s));
        }
        let _ = writeln!(out, "\n|{}", "---|".repeat(1 + compared.len()));
        for q in &QUERIES {
            let reference = read_answer(&reference_dir, q.name)?;
            let _ = write!(out, "| `{}` |", q.name);
            for s in &compared {
                let cell = match (&reference, read_answer(&dir.join(s.as_str()), q.name)?) {
                    (Some(r), Some(c)) => compare(r, &c).describe().replace('|', "\\|"),
                    (None, _) => "no reference answer".to_string(),
                    (_, None) => "no answer".to_string(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }

    // Answers that changed between runs of the same system, and failures.
    let mut problems = Vec::new();
    for ((s, m, q), cell) in &cells {
        if cell.inconsistent_runs > 0 {
            problems.push(format!(
                "- {} {m} `{q}`: {} of {} runs answered differently (beyond {REL_TOLERANCE:e} relative) from this system's first answer",
                display_name(s),
                cell.inconsistent_runs,
                cell.latencies.len()
            ));
        }
        for f in cell.failures.iter().take(1) {
            let first_line = f.lines().next().unwrap_or("");
            problems.push(format!(
                "- {} {m} `{q}`: FAILED ({} time(s)): {first_line}",
                display_name(s),
                cell.failures.len()
            ));
        }
    }
    for n in &notes {
        problems.push(format!("- {n}"));
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "\nProblems:\n\n{}", problems.join("\n"));
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_uses_labels_the_workload_has() {
        let workload = Workload::ending_at(1, 1.0, 3_600_000, 1);
        let names_of = |metric: &str| -> BTreeSet<String> {
            (0..Workload::series_per_host())
                .map(|s| workload.labels(0, s))
                .filter(|labels| {
                    labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == metric)
                })
                .flat_map(|labels| labels.into_iter().map(|l| l.name))
                .collect()
        };
        let phase = names_of("kube_pod_status_phase");
        for label in ["pod", "namespace", "phase"] {
            assert!(phase.contains(label), "kube_pod_status_phase lacks {label}");
        }
        let requests = names_of("kube_pod_container_resource_requests");
        for label in ["pod", "namespace", "resource"] {
            assert!(requests.contains(label), "requests lack {label}");
        }
        assert_eq!(family_series_per_host("kube_node_info"), 1);
        // The "all series of one family" query: about 2,500 series at 40 hosts.
        assert_eq!(40 * family_series_per_host("node_cpu_seconds_total"), 2560);
    }

    #[test]
    fn range_bounds_are_aligned_to_the_step() {
        let q = &QUERIES[3];
        let (path, params) = q.params(1_000_015_000, 1_000_075_000);
        assert_eq!(path, "/api/v1/query_range");
        assert_eq!(params[1], ("start", "1000020.000".to_string()));
        assert_eq!(params[2], ("end", "1000020.000".to_string()));
        let last_hour = &QUERIES[5];
        let (_, params) = last_hour.params(0, 7_200_000);
        assert_eq!(params[1], ("start", "3600.000".to_string()));
        assert_eq!(params[2], ("end", "7200.000".to_string()));
    }

    #[test]
    fn an_answer_survives_its_text_form_and_compares() {
        let api: ApiResponse = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
              {"metric":{"job":"node","__name__":"up","x":"a\"b\\c\u00e9"},"values":[[1700000000.015,"1"],[1700000015,"NaN"]]},
              {"metric":{},"values":[[1700000000,"+Inf"],[1700000015,"0.30000000000000004"]]}]}}"#,
        )
        .unwrap();
        let answer = Answer::from_api(api.data.unwrap(), "matrix").unwrap();
        // '_' sorts before '}'.
        assert_eq!(answer.series[1].labels, "{}");
        assert_eq!(
            answer.series[0].labels,
            "{__name__=\"up\",job=\"node\",x=\"a\\\"b\\\\cé\"}"
        );
        assert_eq!(answer.series[0].points[0].0, 1_700_000_000_015);
        let back = Answer::from_text(&answer.to_text()).unwrap();
        assert_eq!(back.stats().hash, answer.stats().hash);
        assert!(compare(&answer, &back).matches());

        let mut other = back.clone();
        other.series[1].points[1].1 = 0.3;
        assert!(compare(&answer, &other).matches(), "within 1e-9 relative");
        other.series[1].points[1].1 = 0.3001;
        let diff = compare(&answer, &other);
        assert_eq!(diff.differing_points, 1);
        other.series[0].points.pop();
        other.series.push(Series {
            labels: "{a=\"b\"}".into(),
            points: vec![],
        });
        let diff = compare(&answer, &other);
        assert_eq!((diff.missing_points, diff.extra_series), (1, 1));
        assert!(!diff.matches());
        assert!(!close(f64::INFINITY, 1.0) && close(f64::NAN, f64::NAN));
    }

    #[test]
    fn summaries() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!((s.median, s.p90, s.min, s.max), (5.5, 9.0, 1.0, 10.0));
        let s = Summary::of(&[2.0]);
        assert_eq!((s.median, s.p90), (2.0, 2.0));
    }

    #[test]
    fn vector_points_parse_prometheus_floats_and_string_times() {
        let api: ApiResponse = serde_json::from_str(
            r#"{"status":"success","warnings":["w"],"data":{"resultType":"vector","result":[
              {"metric":{"a":"1"},"value":["1700000000.5","-Inf"]},
              {"metric":{"a":"2"},"value":[1700000000.5,"NaN"]}]}}"#,
        )
        .unwrap();
        let answer = Answer::from_api(api.data.unwrap(), "vector").unwrap();
        assert_eq!(
            answer.series[0].points,
            [(1_700_000_000_500, f64::NEG_INFINITY)]
        );
        assert!(answer.series[1].points[0].1.is_nan());
        assert_eq!(
            answer.to_text().lines().next(),
            Some("{a=\"1\"}\t1700000000500:-inf")
        );

        let matrix: ApiResponse = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#,
        )
        .unwrap();
        let err = Answer::from_api(matrix.data.unwrap(), "vector").unwrap_err();
        assert!(err.to_string().contains("resultType"), "{err}");
        for bad in [
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,2]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1]}]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1}}]}}"#,
            r#"{"status":"success"} x"#,
        ] {
            assert!(serde_json::from_str::<ApiResponse>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn result_lines_round_trip() {
        let key = Key {
            system: "a\"\n\u{1}",
            mode: "warm",
            query: "q",
        };
        let stats = Stats {
            series: 2,
            points: 3,
            sum: f64::NAN,
            hash: 0xab,
        };
        let line = serde_json::to_string(&Line::Run {
            key: &key,
            run: 1,
            ms: round_ms(1.500_4),
            stats,
            consistent: false,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"kind":"run","system":"a\"\n\u0001","mode":"warm","query":"q","run":1,"ms":1.5,"series":2,"points":3,"value_sum":null,"hash":"00000000000000ab","consistent":false}"#
        );
        let back: ResultLine = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (back.kind.as_str(), back.system.as_str(), back.ms),
            ("run", key.system, Some(1.5))
        );
        assert_eq!((back.consistent, back.series), (Some(false), Some(2.0)));
        let failure = serde_json::to_string(&Line::Failure {
            key: &key,
            error: "x",
        })
        .unwrap();
        assert!(failure.starts_with(r#"{"kind":"failure","system":"#));
    }
}
