//! PromQL differential test: the same data pushed to a real Prometheus 2.42 and to other
//! endpoints, the corpus `tests/e2e/promql/corpus.promql` evaluated on each as instant and
//! range queries, and the answers compared (see `compare` for the rules).
//!
//! Until Strata has a query API, `corpus_against_prometheus` runs the harness against
//! Prometheus alone: every expression's strength (non-empty, empty, error) and Prometheus
//! compared with itself. A Strata phase is:
//!
//! ```ignore
//! let setup = DiffSetup::start();                       // Prometheus with the data
//! let strata = Strata::start("strata-diff", &setup.dir.path().join("strata"), &[]);
//! let tenant = [("X-Scope-OrgID", "difftest")];
//! setup.push_to(&strata.url("/api/v1/push"), &tenant);
//! let candidate = Endpoint::new("strata", &strata.url(""), &tenant);
//! verify_loaded(&candidate, &setup.data);                // optional: raw samples read back
//! setup.run_against(&candidate).assert_all_passed();
//! ```

mod compare;
mod corpus;
mod data;
mod selftest;
mod strata;

use std::collections::BTreeMap;
use std::path::Path;

use crate::fixtures::{free_port, http, require_binary, wait_until, Proc};

pub(crate) use compare::{run_corpus, CorpusOptions, DiffReport, Endpoint, Eval};
pub(crate) use corpus::{Corpus, CorpusStats, Verdict};
pub(crate) use data::{push_dataset, DataSet, STEP_MS};

/// Prometheus' sample limit for one query: above every ordinary corpus query (the largest
/// runs under a limit of 40k; the raw read-back of `verify_loaded` loads about 35k), and
/// far below the few that must fail with "too many samples" (200k and more).
pub(crate) const MAX_SAMPLES: usize = 100_000;

/// A Prometheus 2.42 with the remote-write receiver, on a free port, data in `dir`.
pub(crate) struct PrometheusServer {
    /// Kept for its lifetime: dropping it stops Prometheus.
    #[allow(dead_code)]
    pub(crate) proc: Proc,
    pub(crate) endpoint: Endpoint,
    pub(crate) port: u16,
}

impl PrometheusServer {
    /// Starts `name` with its config, data and log under `dir`.
    pub(crate) fn start(name: &str, dir: &Path) -> PrometheusServer {
        let binary = require_binary("prometheus", "apt-get install prometheus");
        let port = free_port();
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(&config, "global:\n  scrape_interval: 15s\n").expect("config");
        let proc = Proc::spawn(
            name,
            &binary,
            &[
                format!("--config.file={}", config.display()),
                format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("{name}-data")).display()
                ),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.enable-remote-write-receiver".to_string(),
                format!("--query.max-samples={MAX_SAMPLES}"),
            ],
            dir,
        );
        let client = http();
        wait_until(&format!("{name} ready"), || {
            client
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .send()
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        });
        PrometheusServer {
            proc,
            endpoint: Endpoint::new(name, &format!("http://127.0.0.1:{port}"), &[]),
            port,
        }
    }

    pub(crate) fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }
}

/// The standard evaluations for a data set: four instant queries (early, middle, just
/// before the last scrape, 2.5 minutes after it: within the lookback delta) and three
/// range queries (60 s over almost everything, an odd 37 s step, 15 s across the end).
pub(crate) fn standard_evals(data: &DataSet) -> Vec<Eval> {
    let (t0, last) = (data.start_ms, data.last_ms);
    let min = 60_000;
    vec![
        Eval::Instant {
            time_ms: t0 + 47 * min + 13_000,
        },
        Eval::Instant {
            time_ms: t0 + 100 * min,
        },
        Eval::Instant {
            time_ms: last - 7_000,
        },
        Eval::Instant {
            time_ms: last + 150_000,
        },
        Eval::Range {
            start_ms: t0 + 10 * min,
            end_ms: last + 4 * min,
            step_ms: 60_000,
        },
        Eval::Range {
            start_ms: t0 + 95 * min + 3_000,
            end_ms: t0 + 140 * min,
            step_ms: 37_000,
        },
        Eval::Range {
            start_ms: last - 20 * min,
            end_ms: last + 3 * min,
            step_ms: STEP_MS,
        },
    ]
}

/// Checks through the query API that an endpoint holds exactly the data set: every
/// sample of every series (NaN-ness for NaNs), read back raw with `{__name__=~".+"}[30m]`
/// over consecutive windows (each below the sample limit).
pub(crate) fn verify_loaded(endpoint: &Endpoint, data: &DataSet) {
    let client = http();
    let window = 30 * 60_000;
    let mut got: BTreeMap<Vec<(String, String)>, compare::Points> = BTreeMap::new();
    let mut t = data.start_ms - 1;
    while t < data.last_ms + window {
        t += window;
        let r = compare::query(
            &client,
            endpoint,
            r#"{__name__=~".+"}[30m]"#,
            &Eval::Instant { time_ms: t },
            compare::Method::Get,
        );
        let compare::Response::Success { result, .. } = r else {
            panic!("reading back the data from {}: {r:?}", endpoint.name);
        };
        for (labels, points) in compare::parse_matrix(&result).expect("matrix") {
            got.entry(labels.into_iter().collect())
                .or_default()
                .extend(points);
        }
    }
    let mut want: BTreeMap<Vec<(String, String)>, compare::Points> = BTreeMap::new();
    for s in &data.series {
        let points: Vec<(i64, f64)> = s
            .samples
            .iter()
            .filter(|(_, v)| v.to_bits() != data::STALE_NAN_BITS)
            .copied()
            .collect();
        if !points.is_empty() {
            want.insert(s.labels.clone(), points);
        }
    }
    let same = |a: &[(i64, f64)], b: &[(i64, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && (x.1 == y.1 || (x.1.is_nan() && y.1.is_nan())))
    };
    let differing: Vec<String> = want
        .iter()
        .filter(|(l, p)| !got.get(*l).is_some_and(|g| same(g, p)))
        .map(|(l, p)| {
            format!(
                "{l:?}: pushed {} samples, read {}",
                p.len(),
                got.get(l).map_or(0, Vec::len)
            )
        })
        .collect();
    let extra: Vec<_> = got.keys().filter(|l| !want.contains_key(*l)).collect();
    assert!(
        differing.is_empty() && extra.is_empty(),
        "{} does not hold the data set: {} of {} series differ, e.g. {:?}; extra series {:?}",
        endpoint.name,
        differing.len(),
        want.len(),
        &differing[..differing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
}

/// Prometheus started and loaded with the data set, with the corpus and evaluations.
pub(crate) struct DiffSetup {
    pub(crate) prometheus: PrometheusServer,
    pub(crate) data: DataSet,
    pub(crate) corpus: Corpus,
    pub(crate) options: CorpusOptions,
    /// Prometheus' data and log; dropped last (fields drop in order), so a failing test
    /// still prints the log. Also a place for a candidate's data.
    #[allow(dead_code)]
    pub(crate) dir: tempfile::TempDir,
}

impl DiffSetup {
    pub(crate) fn start() -> DiffSetup {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataSet::generate(DataSet::default_start_ms());
        let prometheus = PrometheusServer::start("prometheus", dir.path());
        push_dataset(&data, &prometheus.write_url(), &[]);
        verify_loaded(&prometheus.endpoint, &data);
        let options = CorpusOptions {
            evals: standard_evals(&data),
            parallelism: 4,
        };
        DiffSetup {
            dir,
            prometheus,
            corpus: Corpus::load().with_times(data.start_ms, data.last_ms),
            data,
            options,
        }
    }

    /// Pushes the data set to another remote-write endpoint (e.g. Strata's
    /// `/api/v1/push`) with headers such as `X-Scope-OrgID`.
    pub(crate) fn push_to(&self, write_url: &str, headers: &[(&str, &str)]) {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        push_dataset(&self.data, write_url, &headers);
    }

    /// The corpus on Prometheus (reference) and `candidate`, compared.
    pub(crate) fn run_against(&self, candidate: &Endpoint) -> DiffReport {
        let report = run_corpus(
            &self.prometheus.endpoint,
            candidate,
            &self.corpus,
            &self.options,
        );
        println!("{}", report.render(60));
        report
    }
}

/// Prints the reference answers of the corpus lines listed in `PROMQL_DIFF_SHOW`
/// (comma-separated line numbers), for working on the corpus.
fn show_requested(report: &DiffReport) {
    let Ok(lines) = std::env::var("PROMQL_DIFF_SHOW") else {
        return;
    };
    let lines: Vec<usize> = lines
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for o in &report.outcomes {
        let case = &report.cases[o.case];
        if lines.contains(&case.line) {
            let text = format!("{:?}", o.reference);
            println!(
                "line {} {}\n  {}\n  {}",
                case.line,
                case.expr,
                report.evals[o.eval],
                text.chars().take(600).collect::<String>()
            );
        }
    }
}

#[test]
fn corpus_against_prometheus() {
    let started = std::time::Instant::now();
    let setup = DiffSetup::start();
    println!(
        "data: {} series, {} samples ({} queryable), from {} for {} minutes; loaded in {:.1?}",
        setup.data.series.len(),
        setup.data.total_samples(),
        setup.data.queryable_samples(),
        compare::fmt_seconds(setup.data.start_ms),
        (setup.data.last_ms - setup.data.start_ms) / 60_000,
        started.elapsed()
    );
    println!(
        "corpus: {} expressions in {} groups: {:?}",
        setup.corpus.cases.len(),
        setup.corpus.breakdown().len(),
        setup.corpus.breakdown()
    );
    // Prometheus against itself: a second instance loaded like any candidate (the path
    // a Strata phase takes), so the comparer must find every answer identical.
    let twin = PrometheusServer::start("prometheus-twin", setup.dir.path());
    setup.push_to(&twin.write_url(), &[]);
    verify_loaded(&twin.endpoint, &setup.data);
    let report = setup.run_against(&twin.endpoint);
    show_requested(&report);
    let stats = CorpusStats::from_reference(&report);
    println!("{}", stats.render(&report));
    println!("total {:.1?}", started.elapsed());

    assert!(
        setup.corpus.cases.len() >= 320,
        "corpus has only {} expressions",
        setup.corpus.cases.len()
    );
    // The comparer agrees with itself on every answer.
    report.assert_all_passed();
    // The corpus is strong: no unintended errors, every intended error happens, and most
    // expressions return data at most evaluations.
    let unexpected = stats.count(|v| matches!(v, Verdict::UnexpectedError(_)));
    let missing = stats.count(|v| *v == Verdict::MissingError);
    assert_eq!(unexpected + missing, 0, "\n{}", stats.render(&report));
    assert!(
        stats.strong_share() >= 0.85,
        "only {:.1}% of the successful expressions are non-empty at most evaluations\n{}",
        100.0 * stats.strong_share(),
        stats.render(&report)
    );
}
