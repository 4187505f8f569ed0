//! Querying two Prometheus-compatible endpoints and comparing their answers.
//!
//! Rules: same `status`; for errors the same `errorType` (messages differ between
//! implementations and are not compared); for successes the same `resultType`, the same
//! series (labels exactly), order-insensitive unless the expression's outermost call is
//! `sort`/`sort_desc` on an instant query, the same timestamps (to the millisecond), and
//! values equal within 1e-9 relative or 1e-12 absolute, NaN equal to NaN, infinities exact.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use super::corpus::{Case, Corpus};

/// A Prometheus-compatible query API: `{base_url}/api/v1/query` and `.../query_range`,
/// with headers sent on every request (e.g. `X-Scope-OrgID`).
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) base_url: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Endpoint {
    pub(crate) fn new(name: &str, base_url: &str, headers: &[(&str, &str)]) -> Endpoint {
        Endpoint {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// One evaluation of an expression: an instant query, or a range query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eval {
    Instant {
        time_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

impl Eval {
    pub(crate) fn is_range(&self) -> bool {
        matches!(self, Eval::Range { .. })
    }
}

/// Seconds with milliseconds, as the API takes and returns them.
pub(crate) fn fmt_seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

impl fmt::Display for Eval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Eval::Instant { time_ms } => write!(f, "instant time={}", fmt_seconds(*time_ms)),
            Eval::Range {
                start_ms,
                end_ms,
                step_ms,
            } => write!(
                f,
                "range start={} end={} step={}",
                fmt_seconds(*start_ms),
                fmt_seconds(*end_ms),
                fmt_seconds(*step_ms)
            ),
        }
    }
}

/// HTTP method of a query: the runner alternates them so both paths are exercised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Post,
}

/// What an endpoint answered.
#[derive(Clone, Debug)]
pub(crate) enum Response {
    Success {
        result_type: String,
        result: Value,
    },
    Error {
        error_type: String,
        error: String,
    },
    /// No answer, or not the API's JSON envelope.
    Invalid(String),
}

impl Response {
    /// Reads the API's JSON envelope.
    pub(crate) fn from_json(v: &Value) -> Response {
        match v.get("status").and_then(Value::as_str) {
            Some("success") => {
                let data = &v["data"];
                match data.get("resultType").and_then(Value::as_str) {
                    Some(t) => Response::Success {
                        result_type: t.to_string(),
                        result: data.get("result").cloned().unwrap_or(Value::Null),
                    },
                    None => Response::Invalid(format!("success without resultType: {v}")),
                }
            }
            Some("error") => Response::Error {
                error_type: v
                    .get("errorType")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                error: v
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            },
            _ => Response::Invalid(format!("no status: {}", short(&v.to_string(), 200))),
        }
    }

    /// Whether a success holds any data: a non-empty vector or matrix, or any scalar or
    /// string.
    pub(crate) fn is_non_empty(&self) -> bool {
        match self {
            Response::Success { result, .. } => match result {
                Value::Array(a) if matches!(self.result_type(), Some("vector" | "matrix")) => {
                    !a.is_empty()
                }
                Value::Null => false,
                _ => true,
            },
            _ => false,
        }
    }

    pub(crate) fn result_type(&self) -> Option<&str> {
        match self {
            Response::Success { result_type, .. } => Some(result_type),
            _ => None,
        }
    }

    pub(crate) fn error_type(&self) -> Option<&str> {
        match self {
            Response::Error { error_type, .. } => Some(error_type),
            Response::Invalid(_) => Some("<invalid response>"),
            Response::Success { .. } => None,
        }
    }

    fn summary(&self) -> String {
        match self {
            Response::Success {
                result_type,
                result,
            } => {
                let n = result.as_array().map(|a| a.len()).unwrap_or(1);
                format!("success {result_type} ({n} elements)")
            }
            Response::Error { error_type, error } => {
                format!("error {error_type}: {}", short(error, 160))
            }
            Response::Invalid(e) => format!("invalid response: {}", short(e, 160)),
        }
    }
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Runs one query against an endpoint.
pub(crate) fn query(
    client: &reqwest::blocking::Client,
    endpoint: &Endpoint,
    expr: &str,
    eval: &Eval,
    method: Method,
) -> Response {
    let (path, mut params) = match eval {
        Eval::Instant { time_ms } => ("/api/v1/query", vec![("time", fmt_seconds(*time_ms))]),
        Eval::Range {
            start_ms,
            end_ms,
            step_ms,
        } => (
            "/api/v1/query_range",
            vec![
                ("start", fmt_seconds(*start_ms)),
                ("end", fmt_seconds(*end_ms)),
                ("step", fmt_seconds(*step_ms)),
            ],
        ),
    };
    params.insert(0, ("query", expr.to_string()));
    let url = format!("{}{path}", endpoint.base_url);
    let mut request = match method {
        Method::Get => client.get(&url).query(&params),
        Method::Post => {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            client
                .post(&url)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        }
    };
    for (name, value) in &endpoint.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = match request.send() {
        Ok(r) => r,
        Err(e) => return Response::Invalid(format!("{}: {e}", endpoint.name)),
    };
    let status = response.status();
    let text = match response.text() {
        Ok(t) => t,
        Err(e) => return Response::Invalid(format!("{}: body: {e}", endpoint.name)),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => Response::from_json(&v),
        Err(_) => Response::Invalid(format!("HTTP {status}: {}", short(&text, 200))),
    }
}

/// Whether the expression's outermost call is `sort` or `sort_desc` (then an instant
/// vector's order is part of the answer).
pub(crate) fn is_sorted_expr(expr: &str) -> bool {
    let mut e = expr.trim();
    while e.starts_with('(') && matching_paren(e, 0) == Some(e.len() - 1) {
        e = e[1..e.len() - 1].trim();
    }
    for name in ["sort_desc", "sort"] {
        if let Some(rest) = e.strip_prefix(name) {
            let rest_trimmed = rest.trim_start();
            if rest_trimmed.starts_with('(') {
                let open = e.len() - rest_trimmed.len();
                return matching_paren(e, open) == Some(e.len() - 1);
            }
        }
    }
    false
}

/// Index of the parenthesis closing the one at `open`, skipping string literals.
fn matching_paren(e: &str, open: usize) -> Option<usize> {
    let bytes = e.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    let mut i = open;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' && q != b'`' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// A parsed sample value: NaN, ±Inf or a number.
fn parse_value(v: &Value) -> Result<f64, String> {
    match v.as_str() {
        Some("NaN") => Ok(f64::NAN),
        Some("+Inf") | Some("Inf") => Ok(f64::INFINITY),
        Some("-Inf") => Ok(f64::NEG_INFINITY),
        Some(s) => s.parse::<f64>().map_err(|e| format!("value {s:?}: {e}")),
        None => Err(format!("value is not a string: {v}")),
    }
}

/// A JSON timestamp (float seconds) in exact milliseconds.
fn parse_ts(v: &Value) -> Result<i64, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        other => return Err(format!("timestamp is not a number: {other}")),
    };
    if text.contains(['e', 'E']) {
        let f: f64 = text.parse().map_err(|_| format!("timestamp {text}"))?;
        return Ok((f * 1000.0).round() as i64);
    }
    let negative = text.starts_with('-');
    let digits = text.trim_start_matches('-');
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut frac: String = frac.chars().take(3).collect();
    while frac.len() < 3 {
        frac.push('0');
    }
    let ms = secs
        .parse::<i64>()
        .map_err(|_| format!("timestamp {text}"))?
        * 1000
        + frac
            .parse::<i64>()
            .map_err(|_| format!("timestamp {text}"))?;
    Ok(if negative { -ms } else { ms })
}

/// Equal within 1e-9 relative or 1e-12 absolute; NaN equals NaN; infinities exact.
pub(crate) fn values_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let diff = (a - b).abs();
    diff <= 1e-12 || diff <= 1e-9 * a.abs().max(b.abs())
}

pub(crate) type LabelSet = BTreeMap<String, String>;

/// (timestamp ms, value) pairs of one series.
pub(crate) type Points = Vec<(i64, f64)>;

fn parse_labels(v: &Value) -> Result<LabelSet, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("metric is not an object: {v}"))?;
    obj.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| format!("label {k} is not a string"))
        })
        .collect()
}

fn fmt_labels(l: &LabelSet) -> String {
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// One series of a vector (one point) or matrix (its points).
struct ParsedSeries {
    labels: LabelSet,
    points: Vec<(i64, f64)>,
}

fn parse_point(p: &Value) -> Result<(i64, f64), String> {
    let arr = p
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("point is not [ts, value]: {p}"))?;
    Ok((parse_ts(&arr[0])?, parse_value(&arr[1])?))
}

fn parse_series_list(result: &Value, matrix: bool) -> Result<Vec<ParsedSeries>, String> {
    let arr = result.as_array().ok_or_else(|| {
        format!(
            "result is not an array: {}",
            short(&result.to_string(), 100)
        )
    })?;
    arr.iter()
        .map(|s| {
            let labels = parse_labels(s.get("metric").unwrap_or(&Value::Null))?;
            let points = if matrix {
                s.get("values")
                    .and_then(Value::as_array)
                    .ok_or("matrix series without values")?
                    .iter()
                    .map(parse_point)
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                vec![parse_point(s.get("value").unwrap_or(&Value::Null))?]
            };
            Ok(ParsedSeries { labels, points })
        })
        .collect()
}

fn compare_points(labels: &LabelSet, a: &[(i64, f64)], b: &[(i64, f64)]) -> Option<String> {
    for (i, (pa, pb)) in a.iter().zip(b).enumerate() {
        if pa.0 != pb.0 {
            return Some(format!(
                "{}: point {i}: timestamp {} vs {}",
                fmt_labels(labels),
                fmt_seconds(pa.0),
                fmt_seconds(pb.0)
            ));
        }
        if !values_equal(pa.1, pb.1) {
            return Some(format!(
                "{}: at {}: value {} vs {}",
                fmt_labels(labels),
                fmt_seconds(pa.0),
                fmt_value(pa.1),
                fmt_value(pb.1)
            ));
        }
    }
    if a.len() != b.len() {
        let (longer, which) = if a.len() > b.len() {
            (a, "reference")
        } else {
            (b, "candidate")
        };
        let extra = longer[a.len().min(b.len())];
        return Some(format!(
            "{}: {} vs {} points; first extra in {which} at {} = {}",
            fmt_labels(labels),
            a.len(),
            b.len(),
            fmt_seconds(extra.0),
            fmt_value(extra.1)
        ));
    }
    None
}

/// A matrix result as (labels, points).
pub(crate) fn parse_matrix(result: &Value) -> Result<Vec<(LabelSet, Points)>, String> {
    Ok(parse_series_list(result, true)?
        .into_iter()
        .map(|s| (s.labels, s.points))
        .collect())
}

fn by_labels(list: Vec<ParsedSeries>) -> Result<BTreeMap<LabelSet, Vec<(i64, f64)>>, String> {
    let mut map = BTreeMap::new();
    for s in list {
        let key = s.labels.clone();
        if map.insert(s.labels, s.points).is_some() {
            return Err(format!("duplicate series {}", fmt_labels(&key)));
        }
    }
    Ok(map)
}

fn compare_series(
    reference: &Value,
    candidate: &Value,
    matrix: bool,
    ordered: bool,
) -> Result<(), String> {
    let a = parse_series_list(reference, matrix).map_err(|e| format!("reference: {e}"))?;
    let b = parse_series_list(candidate, matrix).map_err(|e| format!("candidate: {e}"))?;
    if ordered {
        // The order of values must agree position by position; series with equal values
        // may come in either order (sort is not stable across implementations).
        for (i, (sa, sb)) in a.iter().zip(&b).enumerate() {
            let (va, vb) = (sa.points[0].1, sb.points[0].1);
            if !values_equal(va, vb) {
                return Err(format!(
                    "order: element {i} is {} = {} vs {} = {}",
                    fmt_labels(&sa.labels),
                    fmt_value(va),
                    fmt_labels(&sb.labels),
                    fmt_value(vb)
                ));
            }
        }
    }
    let (na, nb) = (a.len(), b.len());
    let ma = by_labels(a).map_err(|e| format!("reference: {e}"))?;
    let mb = by_labels(b).map_err(|e| format!("candidate: {e}"))?;
    if let Some(missing) = ma.keys().find(|k| !mb.contains_key(*k)) {
        return Err(format!(
            "{na} vs {nb} series; missing in candidate: {}",
            fmt_labels(missing)
        ));
    }
    if let Some(extra) = mb.keys().find(|k| !ma.contains_key(*k)) {
        return Err(format!(
            "{na} vs {nb} series; extra in candidate: {}",
            fmt_labels(extra)
        ));
    }
    for (labels, pa) in &ma {
        if let Some(d) = compare_points(labels, pa, &mb[labels]) {
            return Err(d);
        }
    }
    Ok(())
}

/// Compares two answers to `expr`; `None` when they agree, else a short description of
/// the first difference.
pub(crate) fn compare_responses(
    expr: &str,
    eval: &Eval,
    reference: &Response,
    candidate: &Response,
) -> Option<String> {
    match (reference, candidate) {
        (Response::Invalid(e), _) => Some(format!("reference gave an invalid response: {e}")),
        (_, Response::Invalid(e)) => Some(format!("candidate gave an invalid response: {e}")),
        (Response::Error { error_type: a, .. }, Response::Error { error_type: b, .. }) => {
            (a != b).then(|| format!("errorType {a:?} vs {b:?}"))
        }
        (Response::Success { .. }, Response::Error { .. })
        | (Response::Error { .. }, Response::Success { .. }) => Some(format!(
            "{} vs {}",
            reference.summary(),
            candidate.summary()
        )),
        (
            Response::Success {
                result_type: ta,
                result: ra,
            },
            Response::Success {
                result_type: tb,
                result: rb,
            },
        ) => {
            if ta != tb {
                return Some(format!("resultType {ta} vs {tb}"));
            }
            let outcome = match ta.as_str() {
                "vector" => compare_series(ra, rb, false, !eval.is_range() && is_sorted_expr(expr)),
                "matrix" => compare_series(ra, rb, true, false),
                "scalar" => parse_point(ra)
                    .and_then(|a| parse_point(rb).map(|b| (a, b)))
                    .and_then(|(a, b)| {
                        compare_points(&LabelSet::new(), &[a], &[b]).map_or(Ok(()), Err)
                    }),
                "string" => {
                    if ra == rb {
                        Ok(())
                    } else {
                        Err(format!("string {ra} vs {rb}"))
                    }
                }
                other => Err(format!("unknown resultType {other}")),
            };
            outcome.err()
        }
    }
}

/// How the corpus is evaluated.
#[derive(Clone, Debug)]
pub(crate) struct CorpusOptions {
    pub(crate) evals: Vec<Eval>,
    /// Queries in flight at once.
    pub(crate) parallelism: usize,
}

/// One expression at one evaluation.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) case: usize,
    pub(crate) eval: usize,
    pub(crate) method: Method,
    pub(crate) reference: Response,
    pub(crate) candidate: Response,
    pub(crate) diff: Option<String>,
}

/// The result of comparing two endpoints over the corpus.
#[derive(Debug)]
pub(crate) struct DiffReport {
    pub(crate) reference: String,
    pub(crate) candidate: String,
    pub(crate) cases: Vec<Case>,
    pub(crate) evals: Vec<Eval>,
    /// In (case, eval) order.
    pub(crate) outcomes: Vec<Outcome>,
    pub(crate) elapsed: std::time::Duration,
}

impl DiffReport {
    pub(crate) fn total(&self) -> usize {
        self.outcomes.len()
    }

    pub(crate) fn passed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.diff.is_none()).count()
    }

    pub(crate) fn mismatches(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.diff.is_some())
    }

    /// The summary line and up to `max_listed` mismatches.
    pub(crate) fn render(&self, max_listed: usize) -> String {
        let mut out = format!(
            "promql diff {} vs {}: {} / {} evaluations agree ({} expressions x {} evaluations) in {:.1?}\n",
            self.reference,
            self.candidate,
            self.passed(),
            self.total(),
            self.cases.len(),
            self.evals.len(),
            self.elapsed
        );
        let mut failing_cases: Vec<usize> = self.mismatches().map(|o| o.case).collect();
        failing_cases.dedup();
        if !failing_cases.is_empty() {
            out.push_str(&format!(
                "{} expressions differ somewhere\n",
                failing_cases.len()
            ));
        }
        for o in self.mismatches().take(max_listed) {
            let case = &self.cases[o.case];
            out.push_str(&format!(
                "MISMATCH line {} [{}] {}\n    {} ({:?})\n    {}\n    {}: {}\n    {}: {}\n",
                case.line,
                case.group,
                case.expr,
                self.evals[o.eval],
                o.method,
                o.diff.as_deref().unwrap_or(""),
                self.reference,
                o.reference.summary(),
                self.candidate,
                o.candidate.summary()
            ));
        }
        let hidden = self.total() - self.passed();
        if hidden > max_listed {
            out.push_str(&format!(
                "... and {} more mismatches\n",
                hidden - max_listed
            ));
        }
        out
    }

    /// Panics with the report unless every evaluation agrees.
    pub(crate) fn assert_all_passed(&self) {
        assert_eq!(self.passed(), self.total(), "\n{}", self.render(40));
    }
}

/// Evaluates every corpus expression at every evaluation on both endpoints and compares.
/// GET and POST alternate by expression and evaluation.
pub(crate) fn run_corpus(
    reference: &Endpoint,
    candidate: &Endpoint,
    corpus: &Corpus,
    opts: &CorpusOptions,
) -> DiffReport {
    let started = std::time::Instant::now();
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("http client");
    let jobs: Vec<(usize, usize)> = (0..corpus.cases.len())
        .flat_map(|c| (0..opts.evals.len()).map(move |e| (c, e)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..opts.parallelism.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, e)) = jobs.get(i) else { break };
                let case = &corpus.cases[c];
                let eval = &opts.evals[e];
                let method = if (c + e) % 2 == 0 {
                    Method::Get
                } else {
                    Method::Post
                };
                let r = query(&client, reference, &case.expr, eval, method);
                let k = query(&client, candidate, &case.expr, eval, method);
                let diff = compare_responses(&case.expr, eval, &r, &k);
                results.lock().expect("results").push(Outcome {
                    case: c,
                    eval: e,
                    method,
                    reference: r,
                    candidate: k,
                    diff,
                });
            });
        }
    });
    let mut outcomes = results.into_inner().expect("results");
    outcomes.sort_by_key(|o| (o.case, o.eval));
    DiffReport {
        reference: reference.name.clone(),
        candidate: candidate.name.clone(),
        cases: corpus.cases.clone(),
        evals: opts.evals.clone(),
        outcomes,
        elapsed: started.elapsed(),
    }
}
