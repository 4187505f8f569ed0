//! Hostile queries (issue 17): extreme times, deep and long expressions, nested subqueries.
//! Each must end in a result or an error of the right kind, quickly, and never panic or
//! overflow the stack; arbitrary numbers in the planner's time arithmetic never panic.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use strata_shared::labels::Labels;

use super::memory_source::MemorySource;
use super::TENANT;
use crate::bounds::{time_in_range, MAX_TIME_MS, MIN_TIME_MS};
use crate::config::{DEFAULT_MAX_QUERY_EXPRESSION_DEPTH, MAX_QUERY_EXPRESSION_DEPTH};
use crate::engine::plan::{prepare, Plan};
use crate::engine::{Engine, EngineError, EngineOptions};
use crate::query_shape::ShapeLimits;

fn source() -> MemorySource {
    let mut s = MemorySource::default();
    let samples: Vec<(i64, f64)> = (0..=20).map(|i| (i * 60_000, i as f64)).collect();
    s.add(
        Labels::from_pairs([("__name__", "x"), ("job", "a")]),
        &samples,
    );
    s
}

fn engine_with_depth(max_depth: usize) -> Engine {
    let mut options = EngineOptions::default();
    options.shape.max_depth = max_depth;
    Engine::new(options)
}

fn parens(n: usize) -> String {
    format!("{}x{}", "(".repeat(n), ")".repeat(n))
}
fn calls(n: usize) -> String {
    format!("{}x{}", "abs(".repeat(n), ")".repeat(n))
}
fn chain(n: usize) -> String {
    vec!["x"; n].join(" + ")
}
fn pi_chain(n: usize) -> String {
    vec!["pi()"; n].join(" * ")
}
fn unary(n: usize) -> String {
    format!("{}x", "-".repeat(n))
}

#[tokio::test]
async fn expressions_as_deep_as_the_limit_evaluate() {
    let src = source();
    let engine = engine_with_depth(DEFAULT_MAX_QUERY_EXPRESSION_DEPTH);
    // 1,000 levels: Prometheus answers these, and so does Strata.
    for (name, q) in [
        ("parens", parens(1_000)),
        ("calls", calls(1_000)),
        ("chain", chain(1_000)),
        ("pi chain", pi_chain(1_000)),
        ("unary", unary(1_000)),
    ] {
        let started = Instant::now();
        let out = engine
            .range_query(&src, TENANT, &q, 0, 600_000, 60_000)
            .await;
        assert!(out.is_ok(), "{name}: {out:?}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn deeper_or_longer_expressions_fail_fast_naming_the_limit() {
    let src = source();
    let engine = engine_with_depth(DEFAULT_MAX_QUERY_EXPRESSION_DEPTH);
    for n in [1_002, 10_000, 100_000, 200_000] {
        for (name, q) in [
            ("parens", parens(n)),
            ("calls", calls(n)),
            ("chain", chain(n)),
            ("pi chain", pi_chain(n)),
            ("unary", unary(n)),
        ] {
            let started = Instant::now();
            let err = engine
                .instant_query(&src, TENANT, &q, 600_000)
                .await
                .unwrap_err();
            assert!(
                matches!(err, EngineError::QueryShape(_)),
                "{name} {n}: {err}"
            );
            assert_eq!((err.error_type(), err.status()), ("bad_data", 400));
            assert!(
                err.to_string()
                    .contains("-querier.max-query-expression-depth"),
                "{err}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name} {n}: {:?}",
                started.elapsed()
            );
        }
    }
}

/// The query thread's stack is sized from the depth limit: at the ceiling of the flag,
/// the deepest expressions of every shape still parse, plan, evaluate and drop.
#[tokio::test]
async fn the_deepest_allowed_expressions_fit_the_query_thread() {
    let src = source();
    let engine = engine_with_depth(MAX_QUERY_EXPRESSION_DEPTH);
    let n = MAX_QUERY_EXPRESSION_DEPTH;
    for (name, q) in [
        ("parens", parens(n)),
        ("calls", calls(n)),
        ("unary", unary(n)),
    ] {
        let out = engine.instant_query(&src, TENANT, &q, 600_000).await;
        assert!(out.is_ok(), "{name}: {out:?}");
    }
}

/// A plan deeper than the inline-drop depth, dropped on a small executor-sized stack (a
/// failed fetch, a client gone), is dropped on a thread of its own instead.
#[test]
fn deep_plans_are_dropped_safely_anywhere() {
    let shape = ShapeLimits {
        max_bytes: 0,
        max_depth: MAX_QUERY_EXPRESSION_DEPTH,
    };
    let handle = std::thread::Builder::new()
        .stack_size(crate::engine::stack_bytes_for_depth(
            MAX_QUERY_EXPRESSION_DEPTH,
        ))
        .spawn(move || {
            let deep = prepare(&calls(MAX_QUERY_EXPRESSION_DEPTH), &shape, 0, 0, 300_000);
            let shallow = prepare(&calls(1_000), &shape, 0, 0, 300_000);
            (deep, shallow)
        })
        .unwrap();
    let (deep, shallow) = handle.join().unwrap();
    let (deep, shallow): (Plan, Plan) = (deep.unwrap(), shallow.unwrap());
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            drop(shallow);
            drop(deep);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[tokio::test]
async fn nested_subqueries_fail_fast_naming_the_samples_limit() {
    let src = source();
    let engine = engine_with_depth(DEFAULT_MAX_QUERY_EXPRESSION_DEPTH);
    let started = Instant::now();
    let err = engine
        .instant_query(
            &src,
            TENANT,
            "max_over_time(max_over_time(x[1y:1s])[1y:1s])",
            600_000,
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "execution", "{err}");
    assert!(err.to_string().contains("-querier.max-samples"), "{err}");
    assert!(err.to_string().contains("[1y:1s]"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_timeout_is_enforced_inside_evaluation() {
    let src = source();
    let mut options = EngineOptions {
        timeout: Duration::from_millis(300),
        ..EngineOptions::default()
    };
    options.max_samples = usize::MAX;
    let engine = Engine::new(options);
    let started = Instant::now();
    // Tens of millions of steps of inner evaluation: only the deadline stops it.
    let err = engine
        .instant_query(
            &src,
            TENANT,
            "max_over_time(max_over_time(x[1y:1s])[1y:1s])",
            600_000,
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "timeout", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn extreme_times_and_modifiers_are_bad_data() {
    let src = source();
    let engine = engine_with_depth(DEFAULT_MAX_QUERY_EXPRESSION_DEPTH);
    for (q, t) in [
        ("x", i64::MAX),
        ("x", i64::MIN),
        ("x", MAX_TIME_MS + 1),
        ("x @ -1e300", 0),
        ("x @ 1e300", 0),
        ("x @ 9223372036854775.807", 0),
        ("x offset 1000000y", 0),
        ("rate(x[1000000y])", 0),
        ("max_over_time(x[1000000y:1s])", 0),
    ] {
        let err = engine.instant_query(&src, TENANT, q, t).await.unwrap_err();
        assert_eq!(err.error_type(), "bad_data", "{q} at {t}: {err}");
    }
    // At the very edges of the API's times, with offsets pushing past them: an answer.
    for (q, t) in [
        ("x offset -290y", MAX_TIME_MS),
        ("x offset 290y", MIN_TIME_MS),
        ("x @ 0 offset 290y", MAX_TIME_MS),
        ("max_over_time(x[290y:1y] offset 290y)", MIN_TIME_MS),
    ] {
        let out = engine.instant_query(&src, TENANT, q, t).await;
        assert!(out.is_ok(), "{q} at {t}: {out:?}");
    }
}

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..u64::MAX).prop_map(|n| format!("{n}ms")),
        (0u64..400).prop_map(|n| format!("{n}y")),
        (0u64..100_000_000).prop_map(|n| format!("{n}s")),
        Just("1ms".to_string()),
    ]
}

fn at_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f64>().prop_map(|v| format!("{v:e}")),
        any::<i64>().prop_map(|v| v.to_string()),
        Just("start()".to_string()),
        Just("end()".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the query's times and its offsets, ranges and `@`: a plan whose every
    /// selector range lies within the API's times, or an error; never a panic.
    #[test]
    fn planner_time_arithmetic_never_panics(
        start in any::<i64>(),
        span in any::<i64>(),
        lookback in 0i64..crate::bounds::MAX_DURATION_MS,
        offset in duration_text(),
        negative in any::<bool>(),
        range in duration_text(),
        step in duration_text(),
        at in at_text(),
        shape in 0usize..4,
    ) {
        let end = start.saturating_add(span.unsigned_abs() as i64 / 2);
        let sign = if negative { "-" } else { "" };
        let query = match shape {
            0 => format!("x offset {sign}{offset}"),
            1 => format!("rate(x[{range}] offset {sign}{offset}) + x @ {at}"),
            2 => format!("max_over_time(max_over_time(x[{range}:{step}] @ {at})[{range}:{step}] offset {sign}{offset})"),
            _ => format!("x @ {at} offset {sign}{offset}"),
        };
        let limits = ShapeLimits { max_bytes: 0, max_depth: 1_000 };
        if let Ok(plan) = prepare(&query, &limits, start, end, lookback) {
            for s in &plan.selectors {
                prop_assert!(time_in_range(s.start_ms) && time_in_range(s.end_ms), "{query}: {s:?}");
            }
        }
    }
}

/// The same arithmetic through the whole engine (evaluation included) at times within the
/// API's range: a value or an error, never a panic.
#[test]
fn engine_never_panics_on_extreme_modifiers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let src = source();
    let engine = engine_with_depth(DEFAULT_MAX_QUERY_EXPRESSION_DEPTH);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(128));
    let strategy = (
        MIN_TIME_MS..=MAX_TIME_MS,
        duration_text(),
        any::<bool>(),
        at_text(),
        0usize..3,
    );
    runner
        .run(&strategy, |(t, offset, negative, at, shape)| {
            let sign = if negative { "-" } else { "" };
            let query = match shape {
                0 => format!("x offset {sign}{offset}"),
                1 => format!("timestamp(x @ {at} offset {sign}{offset})"),
                _ => format!("max_over_time(x[10m:1m] @ {at} offset {sign}{offset})"),
            };
            let result = runtime.block_on(engine.instant_query(&src, TENANT, &query, t));
            if let Err(e) = result {
                prop_assert!(
                    matches!(e.error_type(), "bad_data" | "execution"),
                    "{query} at {t}: {e}"
                );
            }
            Ok(())
        })
        .unwrap();
}
