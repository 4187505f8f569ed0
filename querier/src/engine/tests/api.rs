//! The engine's public API: result shapes and error kinds.

use std::time::Duration;

use strata_shared::labels::Labels;
use strata_shared::query::QueryError;

use super::memory_source::MemorySource;
use super::TENANT;
use crate::engine::{Engine, EngineOptions, Sample, Series, Value};

fn source() -> MemorySource {
    let mut s = MemorySource::default();
    for (job, base) in [("a", 0.0), ("b", 100.0)] {
        let samples: Vec<(i64, f64)> = (0..=10).map(|i| (i * 60_000, base + i as f64)).collect();
        s.add(
            Labels::from_pairs([("__name__", "up"), ("job", job)]),
            &samples,
        );
    }
    s
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

#[tokio::test]
async fn instant_results_have_prometheus_shapes() {
    let src = source();
    let e = engine();
    let out = e
        .instant_query(&src, TENANT, "up{job=\"a\"}", 150_000)
        .await
        .unwrap();
    assert_eq!(
        out.value,
        Value::Vector(vec![Sample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
            t: 150_000,
            v: 2.0,
        }])
    );
    let out = e.instant_query(&src, TENANT, "1 + 2", 5_000).await.unwrap();
    assert_eq!(out.value, Value::Scalar { t: 5_000, v: 3.0 });
    let out = e
        .instant_query(&src, TENANT, "\"hi\"", 5_000)
        .await
        .unwrap();
    assert_eq!(
        out.value,
        Value::String {
            t: 5_000,
            v: "hi".into()
        }
    );
    let out = e
        .instant_query(&src, TENANT, "up{job=\"b\"}[2m]", 600_000)
        .await
        .unwrap();
    assert_eq!(
        out.value,
        Value::Matrix(vec![Series {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "b")]),
            points: vec![(480_000, 108.0), (540_000, 109.0), (600_000, 110.0)],
        }])
    );
}

#[tokio::test]
async fn range_results_are_matrices_sorted_by_labels() {
    let src = source();
    let out = engine()
        .range_query(&src, TENANT, "time()", 0, 120_000, 60_000)
        .await
        .unwrap();
    assert_eq!(
        out.value,
        Value::Matrix(vec![Series {
            labels: Labels::default(),
            points: vec![(0, 0.0), (60_000, 60.0), (120_000, 120.0)],
        }])
    );
    let out = engine()
        .range_query(&src, TENANT, "up * 2", 0, 60_000, 60_000)
        .await
        .unwrap();
    let Value::Matrix(series) = out.value else {
        panic!("matrix expected");
    };
    let jobs: Vec<&str> = series
        .iter()
        .map(|s| s.labels.get("job").unwrap())
        .collect();
    assert_eq!(jobs, vec!["a", "b"]);
    assert!(series.iter().all(|s| s.labels.get("__name__").is_none()));
}

#[tokio::test]
async fn errors_map_to_prometheus_kinds() {
    let src = source();
    let e = engine();
    let err = e.instant_query(&src, TENANT, "sum(", 0).await.unwrap_err();
    assert_eq!((err.error_type(), err.status()), ("bad_data", 400));
    let err = e
        .range_query(&src, TENANT, "up[5m]", 0, 60_000, 60_000)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    assert!(err
        .to_string()
        .contains("invalid expression type \"range vector\" for range query"));

    let small = Engine::new(EngineOptions {
        max_samples: 5,
        ..EngineOptions::default()
    });
    let err = small
        .range_query(&src, TENANT, "up", 0, 600_000, 60_000)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "execution");
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );

    for (storage, kind) in [
        (QueryError::LimitExceeded("limit".into()), "execution"),
        (QueryError::BadRequest("bad".into()), "bad_data"),
        (QueryError::Timeout("slow".into()), "timeout"),
        (QueryError::Unavailable("down".into()), "unavailable"),
        (QueryError::Internal("broken".into()), "internal"),
    ] {
        let failing = MemorySource::failing(storage);
        let err = e
            .instant_query(&failing, TENANT, "up", 0)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), kind);
    }
}

#[tokio::test]
async fn an_expired_deadline_times_out() {
    let src = source();
    let e = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    });
    let err = e.instant_query(&src, TENANT, "up", 0).await.unwrap_err();
    assert_eq!(err.error_type(), "timeout");
    assert_eq!(err.to_string(), "query timed out in expression evaluation");
}

#[test]
fn query_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let src = source();
    let e = engine();
    assert_send(&e.instant_query(&src, TENANT, "up", 0));
    assert_send(&e.range_query(&src, TENANT, "up", 0, 60_000, 60_000));
}
