//! The PromQL engine, following Prometheus 2.42 on float samples.
//!
//! A query runs in three stages, as in Prometheus: prepare (parse, check, find the time range
//! every selector needs), fetch (one `select` per selector, duplicates merged), and evaluate
//! (synchronously over the fetched data, step by step).

mod aggregations;
mod binary;
mod calls;
mod error;
mod eval;
mod fetch;
mod functions;
mod gosort;
mod plan;
mod value;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_shared::query::SeriesSource;

pub use error::EngineError;
pub use value::{Sample, Series, Value};

use eval::Evaluator;
use fetch::FetchedData;
use plan::{Plan, ValueKind};
use value::{EvalValue, Matrix};

/// Limits and defaults of query evaluation.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample.
    pub lookback_delta_ms: i64,
    /// At most this many samples held at once (and fetched in total).
    pub max_samples: usize,
    /// The deadline of a whole query, fetching included.
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A query's result with any warnings.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryOutput {
    pub value: Value,
    pub warnings: Vec<String>,
}

/// Evaluates PromQL queries against a [`SeriesSource`].
#[derive(Debug)]
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Self { options }
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn instant_query(
        &self,
        source: &dyn SeriesSource,
        tenant: &str,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryOutput, EngineError> {
        self.run(source, tenant, query, time_ms, time_ms, 0).await
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms` (the caller has
    /// checked `step_ms > 0` and `end_ms >= start_ms`).
    pub async fn range_query(
        &self,
        source: &dyn SeriesSource,
        tenant: &str,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryOutput, EngineError> {
        self.run(source, tenant, query, start_ms, end_ms, step_ms.max(1))
            .await
    }

    /// `step_ms == 0` marks an instant query.
    async fn run(
        &self,
        source: &dyn SeriesSource,
        tenant: &str,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryOutput, EngineError> {
        let started = Instant::now();
        let deadline = started + self.options.timeout;
        let plan = plan::prepare(query, start_ms, end_ms, self.options.lookback_delta_ms)?;
        let kind = plan.root.kind();
        if step_ms != 0 && !matches!(kind, ValueKind::Scalar | ValueKind::Vector) {
            return Err(EngineError::BadData(format!(
                "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                kind.documented()
            )));
        }
        let fetch = fetch::fetch_all(source, tenant, &plan.selectors, self.options.max_samples);
        let data = tokio::time::timeout(self.options.timeout, fetch)
            .await
            .map_err(|_| EngineError::timed_out())??;
        let canceled = Arc::new(AtomicBool::new(false));
        // Dropping the query's future (the client went away) stops the evaluation.
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&canceled));
        let job = EvalJob {
            canceled,
            plan,
            data,
            start_ms,
            end_ms,
            step_ms,
            lookback_ms: self.options.lookback_delta_ms,
            max_samples: self.options.max_samples,
            deadline,
        };
        let value = tokio::task::spawn_blocking(move || job.run())
            .await
            .map_err(|e| EngineError::Execution(format!("unexpected error: {e}")))??;
        Ok(QueryOutput {
            value,
            warnings: Vec::new(),
        })
    }
}

/// Sets the flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Evaluation of a prepared, fetched query, run off the async executor.
struct EvalJob {
    canceled: Arc<AtomicBool>,
    plan: Plan,
    data: FetchedData,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    lookback_ms: i64,
    max_samples: usize,
    deadline: Instant,
}

impl EvalJob {
    fn run(self) -> Result<Value, EngineError> {
        let instant = self.step_ms == 0;
        let mut ev = Evaluator {
            start: self.start_ms,
            end: self.end_ms,
            interval: if instant { 1 } else { self.step_ms },
            lookback: self.lookback_ms,
            data: &self.data,
            current_samples: 0,
            max_samples: self.max_samples,
            deadline: self.deadline,
            canceled: &self.canceled,
        };
        let kind = self.plan.root.kind();
        let matrix = match ev.eval(&self.plan.root)? {
            EvalValue::String(v) => {
                return Ok(Value::String {
                    t: self.start_ms,
                    v,
                })
            }
            EvalValue::Matrix(m) => m,
        };
        ev.check_deadline()?;
        if !instant {
            let mut series = to_public(matrix);
            series.sort_by(|a, b| a.labels.cmp(&b.labels));
            return Ok(Value::Matrix(series));
        }
        Ok(match kind {
            ValueKind::Scalar => Value::Scalar {
                t: self.start_ms,
                v: matrix
                    .first()
                    .and_then(|s| s.points.first())
                    .map_or(f64::NAN, |p| p.v),
            },
            ValueKind::Vector => Value::Vector(
                matrix
                    .into_iter()
                    .filter_map(|s| {
                        let v = s.points.first()?.v;
                        Some(Sample {
                            labels: unshare(s.labels),
                            t: self.start_ms,
                            v,
                        })
                    })
                    .collect(),
            ),
            ValueKind::Matrix | ValueKind::String => Value::Matrix(to_public(matrix)),
        })
    }
}

fn unshare(labels: value::SharedLabels) -> strata_shared::labels::Labels {
    Arc::try_unwrap(labels).unwrap_or_else(|shared| (*shared).clone())
}

fn to_public(matrix: Matrix) -> Vec<Series> {
    matrix
        .into_iter()
        .map(|s| Series {
            labels: unshare(s.labels),
            points: s.points.into_iter().map(|p| (p.t, p.v)).collect(),
        })
        .collect()
}
