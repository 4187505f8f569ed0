//! Script-driven engine tests (`testdata/*.test`, format in [`script`]) and API-level tests.

mod api;
mod hostile;
mod memory_source;
mod script;

use std::time::Duration;

use strata_shared::labels::Labels;

use super::{Engine, EngineError, EngineOptions, QueryOutput, Sample, Value};
use memory_source::MemorySource;
use script::{parse_script, Command, Expected, Slot, Timing};

const TENANT: &str = "test";

/// Prometheus' test tolerance: values are equal when within a relative 1e-6.
fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < f64::MIN_POSITIVE {
        return diff < 1e-6 * f64::MIN_POSITIVE;
    }
    diff / (a.abs() + b.abs()) < 1e-6
}

async fn run_query(
    engine: &Engine,
    source: &MemorySource,
    query: &str,
    timing: &Timing,
) -> Result<QueryOutput, EngineError> {
    match *timing {
        Timing::Instant(t) => engine.instant_query(source, TENANT, query, t).await,
        Timing::Range { start, end, step } => {
            engine
                .range_query(source, TENANT, query, start, end, step)
                .await
        }
    }
}

fn points_match(got: &[(i64, f64)], want: &[(i64, f64)]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g.0 == w.0 && almost_equal(g.1, w.1))
}

/// Compares a result with the expectation; `Err` describes the difference.
fn compare(got: &Value, want: &Expected, ordered: bool, time: i64) -> Result<(), String> {
    match (got, want) {
        (Value::Scalar { v, .. }, Expected::Scalar(w)) if almost_equal(*v, *w) => Ok(()),
        (Value::String { v, .. }, Expected::String(w)) if v == w => Ok(()),
        (Value::Vector(samples), Expected::Vector(want)) => {
            if samples.iter().any(|s| s.t != time) {
                return Err(format!("sample timestamps differ from {time}: {samples:?}"));
            }
            let got: Vec<(Labels, f64)> = samples.iter().map(|s| (s.labels.clone(), s.v)).collect();
            let (got, want) = sorted_unless(got, want, ordered);
            if same_elements(&got, &want, |g, w| almost_equal(*g, *w)) {
                return Ok(());
            }
            Err(format!(
                "got vector {}\nwant {}",
                show_vector(&got),
                show_vector(&want)
            ))
        }
        (Value::Matrix(series), Expected::Matrix(want)) => {
            let got: Vec<(Labels, Vec<(i64, f64)>)> = series
                .iter()
                .map(|s| (s.labels.clone(), s.points.clone()))
                .collect();
            let (got, want) = sorted_unless(got, want, false);
            if same_elements(&got, &want, |g, w| points_match(g, w)) {
                return Ok(());
            }
            Err(format!("got matrix {got:?}\nwant {want:?}"))
        }
        (Value::Matrix(series), Expected::Vector(want)) if want.is_empty() && series.is_empty() => {
            Ok(())
        }
        (got, want) => Err(format!("got {got:?}\nwant {want:?}")),
    }
}

type Labeled<T> = Vec<(Labels, T)>;

/// Both lists sorted by labels, unless `ordered`.
fn sorted_unless<T: Clone>(
    mut got: Labeled<T>,
    want: &[(Labels, T)],
    ordered: bool,
) -> (Labeled<T>, Labeled<T>) {
    let mut want = want.to_vec();
    if !ordered {
        got.sort_by(|a, b| a.0.cmp(&b.0));
        want.sort_by(|a, b| a.0.cmp(&b.0));
    }
    (got, want)
}

fn same_elements<T>(
    got: &[(Labels, T)],
    want: &[(Labels, T)],
    eq: impl Fn(&T, &T) -> bool,
) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g.0 == w.0 && eq(&g.1, &w.1))
}

fn show_vector(v: &[(Labels, f64)]) -> String {
    let items: Vec<String> = v.iter().map(|(l, v)| format!("{l} {v}")).collect();
    format!("[{}]", items.join(", "))
}

/// Like Prometheus' test harness: an instant vector or scalar query evaluated as a range
/// query from `t - 1m` to `t + 1m` must give the expected result at its middle step.
async fn check_as_range(
    engine: &Engine,
    source: &MemorySource,
    query: &str,
    t: i64,
    expected: &Expected,
) -> Result<(), String> {
    if !matches!(expected, Expected::Vector(_) | Expected::Scalar(_)) {
        return Ok(());
    }
    let timing = Timing::Range {
        start: t - 60_000,
        end: t + 60_000,
        step: 60_000,
    };
    let out = run_query(engine, source, query, &timing)
        .await
        .map_err(|e| format!("unexpected error: {e}"))?;
    let Value::Matrix(series) = out.value else {
        return Err(format!("range query gave {:?}", out.value));
    };
    let middle: Vec<Sample> = series
        .iter()
        .filter_map(|s| {
            let &(_, v) = s.points.iter().find(|p| p.0 == t)?;
            Some(Sample {
                labels: s.labels.clone(),
                t,
                v,
            })
        })
        .collect();
    let got = match expected {
        Expected::Scalar(_) => match middle.as_slice() {
            [only] => Value::Scalar { t, v: only.v },
            _ => {
                return Err(format!(
                    "scalar expected at the middle step, got {middle:?}"
                ))
            }
        },
        _ => Value::Vector(middle),
    };
    compare(&got, expected, false, t)
}

/// Runs one script; returns the number of evals and the failures.
async fn run_script(name: &str, text: &str) -> (usize, Vec<String>) {
    let commands = match parse_script(text) {
        Ok(c) => c,
        Err(e) => return (0, vec![format!("{name}: {e}")]),
    };
    let mut source = MemorySource::default();
    let mut options = EngineOptions {
        timeout: Duration::from_secs(30),
        ..EngineOptions::default()
    };
    let mut failures = Vec::new();
    let mut evals = 0;
    for command in commands {
        let engine = Engine::new(options.clone());
        match command {
            Command::Load { interval, series } => {
                for (labels, slots) in series {
                    let samples: Vec<(i64, f64)> = slots
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| match s {
                            Slot::Value(v) => Some((i as i64 * interval, *v)),
                            Slot::Gap => None,
                        })
                        .collect();
                    source.add(labels, &samples);
                }
            }
            Command::Clear => source.clear(),
            Command::Set { option, value } => match option.as_str() {
                "lookback" => match script::parse_time(&value) {
                    Ok(ms) => options.lookback_delta_ms = ms,
                    Err(e) => failures.push(format!("{name}: set lookback: {e}")),
                },
                "max_samples" => match value.parse() {
                    Ok(n) => options.max_samples = n,
                    Err(e) => failures.push(format!("{name}: set max_samples: {e}")),
                },
                other => failures.push(format!("{name}: unknown option {other}")),
            },
            Command::Eval {
                line,
                query,
                timing,
                ordered,
                expected,
            } => {
                evals += 1;
                let time = match timing {
                    Timing::Instant(t) => t,
                    Timing::Range { start, .. } => start,
                };
                match run_query(&engine, &source, &query, &timing).await {
                    Ok(out) => {
                        if let Err(diff) = compare(&out.value, &expected, ordered, time) {
                            failures.push(format!("{name}:{line}: {query}\n{diff}"));
                        }
                    }
                    Err(e) => {
                        failures.push(format!("{name}:{line}: {query}\nunexpected error: {e}"))
                    }
                }
                if let (Timing::Instant(t), false) = (&timing, ordered) {
                    if let Err(diff) = check_as_range(&engine, &source, &query, *t, &expected).await
                    {
                        failures.push(format!("{name}:{line}: {query} (as range query)\n{diff}"));
                    }
                }
            }
            Command::EvalFail {
                line,
                query,
                timing,
                message,
                error_type,
            } => {
                evals += 1;
                match run_query(&engine, &source, &query, &timing).await {
                    Ok(out) => failures.push(format!(
                        "{name}:{line}: {query}\nexpected an error, got {:?}",
                        out.value
                    )),
                    Err(e) => {
                        if let Some(m) = &message {
                            if !e.to_string().contains(m.as_str()) {
                                failures.push(format!(
                                    "{name}:{line}: {query}\nerror {e:?} does not contain {m:?}"
                                ));
                            }
                        }
                        if let Some(t) = &error_type {
                            if e.error_type() != t {
                                failures.push(format!(
                                    "{name}:{line}: {query}\nerror type {} ({e}), want {t}",
                                    e.error_type()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    (evals, failures)
}

#[tokio::test]
async fn scripts() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/engine/testdata");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test scripts in {dir}");
    let mut total = 0;
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read script");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (evals, mut f) = run_script(&name, &text).await;
        assert!(evals > 0 || !f.is_empty(), "{name} has no evals");
        total += evals;
        failures.append(&mut f);
    }
    eprintln!("{total} script evals");
    assert!(
        failures.is_empty(),
        "{} failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test]
async fn the_script_runner_reports_wrong_expectations() {
    let script = "load 1m\n  up 1 2 3\neval instant at 2m up\n  up 4\n\
                  eval_fail instant at 0 up\neval instant at 0 sum(\n  1\n";
    let (evals, failures) = run_script("self-check", script).await;
    assert_eq!(evals, 3);
    // The wrong value and the parse error are each reported for both instant and range mode.
    assert_eq!(failures.len(), 5, "{failures:?}");
}
