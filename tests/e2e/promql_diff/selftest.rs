//! Unit checks of the comparer (on JSON answers, no server) and of the corpus' coverage.

use serde_json::{json, Value};

use super::compare::{compare_responses, is_sorted_expr, values_equal, Eval, Response};
use super::corpus::Corpus;

const INSTANT: Eval = Eval::Instant {
    time_ms: 1_700_000_000_000,
};
const RANGE: Eval = Eval::Range {
    start_ms: 1_700_000_000_000,
    end_ms: 1_700_000_060_000,
    step_ms: 30_000,
};

fn vector(series: &[(Value, &str)]) -> Response {
    Response::from_json(&json!({
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": series.iter().map(|(m, v)| json!({"metric": m, "value": [1700000000.0, v]})).collect::<Vec<_>>(),
        }
    }))
}

fn matrix(series: &[(Value, &[(f64, &str)])]) -> Response {
    Response::from_json(&json!({
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": series.iter().map(|(m, points)| json!({
                "metric": m,
                "values": points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }
    }))
}

fn error(error_type: &str, message: &str) -> Response {
    Response::from_json(&json!({"status": "error", "errorType": error_type, "error": message}))
}

fn diff(a: &Response, b: &Response) -> Option<String> {
    compare_responses("x", &INSTANT, a, b)
}

#[test]
fn comparer_accepts_equal_answers() {
    let a = vector(&[
        (json!({"job": "a"}), "1.5"),
        (json!({"job": "b"}), "NaN"),
        (json!({"job": "c"}), "+Inf"),
        (json!({"job": "d"}), "-Inf"),
    ]);
    // Same series in another order, values within tolerance.
    let b = vector(&[
        (json!({"job": "d"}), "-Inf"),
        (json!({"job": "c"}), "+Inf"),
        (json!({"job": "b"}), "NaN"),
        (json!({"job": "a"}), "1.5000000000001"),
    ]);
    assert_eq!(diff(&a, &b), None);
    assert_eq!(
        diff(
            &error("bad_data", "parse error at char 3"),
            &error("bad_data", "unexpected token")
        ),
        None
    );
    let scalar = |v: &str| {
        Response::from_json(
            &json!({"status": "success", "data": {"resultType": "scalar", "result": [1700000000.5, v]}}),
        )
    };
    assert_eq!(diff(&scalar("NaN"), &scalar("NaN")), None);
    assert!(diff(&scalar("1"), &scalar("2")).is_some());
    assert!(values_equal(0.0, 1e-13));
    assert!(values_equal(1e15, 1e15 + 0.5));
    assert!(!values_equal(1.0, 1.000001));
    assert!(!values_equal(f64::INFINITY, 1e308));
    assert!(!values_equal(f64::NAN, 0.0));
}

#[test]
fn comparer_detects_a_changed_value() {
    let a = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "2")]);
    let b = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "2.001")]);
    let d = diff(&a, &b).expect("value difference");
    assert!(d.contains("2.001"), "{d}");
    let nan = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "NaN")]);
    assert!(diff(&a, &nan).is_some());
    let inf = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "+Inf")]);
    let neg_inf = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "-Inf")]);
    assert!(diff(&inf, &neg_inf).is_some());
    // In a matrix: a value, a timestamp, a missing point.
    let m1 = matrix(&[(
        json!({"job": "a"}),
        &[(1700000000.0, "1"), (1700000030.0, "2")],
    )]);
    let m2 = matrix(&[(
        json!({"job": "a"}),
        &[(1700000000.0, "1"), (1700000030.0, "3")],
    )]);
    let m3 = matrix(&[(
        json!({"job": "a"}),
        &[(1700000000.0, "1"), (1700000030.001, "2")],
    )]);
    let m4 = matrix(&[(json!({"job": "a"}), &[(1700000000.0, "1")])]);
    for other in [&m2, &m3, &m4] {
        assert!(compare_responses("x", &RANGE, &m1, other).is_some());
    }
    assert_eq!(compare_responses("x", &RANGE, &m1, &m1.clone()), None);
}

#[test]
fn comparer_detects_a_missing_series() {
    let a = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "2")]);
    let b = vector(&[(json!({"job": "a"}), "1")]);
    let d = diff(&a, &b).expect("missing series");
    assert!(d.contains("missing"), "{d}");
    let d = diff(&b, &a).expect("extra series");
    assert!(d.contains("extra"), "{d}");
    assert!(diff(&a, &vector(&[])).is_some());
}

#[test]
fn comparer_detects_a_label_difference() {
    let a = vector(&[(json!({"__name__": "up", "job": "a"}), "1")]);
    let renamed = vector(&[(json!({"job": "a"}), "1")]);
    let value = vector(&[(json!({"__name__": "up", "job": "A"}), "1")]);
    let extra = vector(&[(json!({"__name__": "up", "job": "a", "x": ""}), "1")]);
    for other in [&renamed, &value, &extra] {
        assert!(diff(&a, other).is_some(), "{other:?}");
    }
}

#[test]
fn comparer_detects_error_differences() {
    let bad = error("bad_data", "parse error");
    let exec = error("execution", "many-to-many matching not allowed");
    let d = diff(&bad, &exec).expect("errorType difference");
    assert!(d.contains("bad_data") && d.contains("execution"), "{d}");
    let ok = vector(&[(json!({}), "1")]);
    assert!(diff(&bad, &ok).is_some());
    assert!(diff(&ok, &bad).is_some());
    assert!(diff(&ok, &Response::Invalid("connection refused".into())).is_some());
    // resultType.
    let scalar = Response::from_json(
        &json!({"status": "success", "data": {"resultType": "scalar", "result": [1700000000, "1"]}}),
    );
    assert!(diff(&ok, &scalar).is_some());
}

#[test]
fn comparer_checks_order_only_for_sort() {
    let a = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "2")]);
    let b = vector(&[(json!({"job": "b"}), "2"), (json!({"job": "a"}), "1")]);
    assert_eq!(
        compare_responses("sum by (job) (up)", &INSTANT, &a, &b),
        None
    );
    assert!(compare_responses("sort(up)", &INSTANT, &a, &b).is_some());
    assert!(compare_responses(" ( sort_desc(up) ) ", &INSTANT, &a, &b).is_some());
    // Ties may come in any order.
    let t1 = vector(&[(json!({"job": "a"}), "1"), (json!({"job": "b"}), "1")]);
    let t2 = vector(&[(json!({"job": "b"}), "1"), (json!({"job": "a"}), "1")]);
    assert_eq!(compare_responses("sort(up)", &INSTANT, &t1, &t2), None);
    assert!(is_sorted_expr("sort(rate(x[5m]))"));
    assert!(is_sorted_expr("sort_desc (sum by (a) (x))"));
    assert!(!is_sorted_expr("sort(x) + sort(y)"));
    assert!(!is_sorted_expr("sum(sort(x))"));
    assert!(!is_sorted_expr(
        r#"sort(label_replace(x, "a", ")", "b", "(.*)")) or y"#
    ));
    assert!(is_sorted_expr(
        r#"sort(label_replace(x, "a", ")", "b", "(.*)"))"#
    ));
}

/// Every float function of Prometheus 2.42, every aggregation and binary operator, and
/// the modifiers appear in the corpus.
#[test]
fn corpus_covers_the_language() {
    let corpus = Corpus::load();
    let text: String = corpus
        .cases
        .iter()
        .map(|c| c.expr.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let functions =
        "abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil \
        changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week \
        day_of_year days_in_month deg delta deriv exp floor histogram_quantile holt_winters hour \
        idelta increase irate label_join label_replace last_over_time ln log10 log2 \
        max_over_time min_over_time minute month pi predict_linear present_over_time \
        quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc sqrt \
        stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year";
    let aggregations =
        "sum min max avg group stddev stdvar count count_values bottomk topk quantile";
    let mut missing = Vec::new();
    for name in functions
        .split_whitespace()
        .chain(aggregations.split_whitespace())
    {
        let called = text.match_indices(name).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + name.len()..].trim_start();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && (after.starts_with('(')
                    || after.starts_with("by")
                    || after.starts_with("without"))
        });
        if !called {
            missing.push(name);
        }
    }
    for token in [
        " + ",
        " - ",
        " * ",
        " / ",
        " % ",
        " ^ ",
        " == ",
        " != ",
        " > ",
        " < ",
        " >= ",
        " <= ",
        " and ",
        " or ",
        " unless ",
        " atan2 ",
        "bool",
        "on (",
        "ignoring",
        "group_left",
        "group_right",
        " by ",
        "without",
        "offset -",
        "offset ",
        "@ start()",
        "@ end()",
        ":]",
        "[1h:",
        " @ ",
    ] {
        if !text.contains(token) {
            missing.push(token);
        }
    }
    assert!(missing.is_empty(), "the corpus never uses {missing:?}");
    assert!(
        corpus.cases.len() >= 320,
        "{} expressions",
        corpus.cases.len()
    );
    assert!(corpus.cases.iter().any(|c| c.expect_error));
}
