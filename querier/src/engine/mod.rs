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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use strata_shared::query::SeriesSource;

use crate::bounds::{time_in_range, time_range_text};
use crate::query_shape::ShapeLimits;

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
    /// Length and nesting depth of the query text, checked before parsing.
    pub shape: ShapeLimits,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            shape: ShapeLimits {
                max_bytes: 0,
                max_depth: crate::config::DEFAULT_MAX_QUERY_EXPRESSION_DEPTH,
            },
        }
    }
}

impl EngineOptions {
    /// The engine's options from the querier's flags.
    pub fn from_config(config: &crate::QuerierConfig) -> Self {
        Self {
            lookback_delta_ms: config.lookback_delta.as_millis_i64(),
            max_samples: config.max_samples,
            timeout: config.timeout.0,
            shape: config.shape_limits(),
        }
    }

    /// The stack of a query's parse, plan and evaluation thread: room for the deepest
    /// expression the depth limit lets through in every recursive stage (parser, planner,
    /// evaluator, drops), with a wide margin. Only the pages a query touches are ever
    /// committed, so a large reservation costs address space, not memory.
    pub(crate) fn query_stack_bytes(&self) -> usize {
        stack_bytes_for_depth(self.shape.max_depth)
    }
}

/// A query thread's stack for expressions up to `depth` levels deep. Measured in a debug
/// build: promql-parser needs about 100 bytes a level, Strata's evaluator a few KiB; 32 KiB a
/// level leaves a wide margin.
pub(crate) fn stack_bytes_for_depth(depth: usize) -> usize {
    const BASE: usize = 8 << 20;
    const PER_LEVEL: usize = 32 << 10;
    BASE.saturating_add(depth.saturating_mul(PER_LEVEL))
}

/// The name of the threads [`on_query_thread`] starts.
pub(crate) const QUERY_THREAD_NAME: &str = "strata-query";

/// Long-lived query threads per stack size. A thread per query (two per evaluation: plan,
/// then run) meant tens of thousands of 40 MiB stacks created and detached in a PromQL
/// corpus run, and a segfault inside glibc's `pthread_detach` on an executor thread was seen
/// once under that churn; threads that never exit avoid it, and bound how many queries
/// evaluate at once.
fn query_threads(stack_bytes: usize) -> Result<mpsc::Sender<QueryJob>, EngineError> {
    static POOLS: OnceLock<Mutex<HashMap<usize, mpsc::Sender<QueryJob>>>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(sender) = pools.get(&stack_bytes) {
        return Ok(sender.clone());
    }
    let (sender, receiver) = mpsc::channel::<QueryJob>();
    let receiver = Arc::new(Mutex::new(receiver));
    for i in 0..QUERY_THREADS {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(QUERY_THREAD_NAME.to_string())
            .stack_size(stack_bytes)
            .spawn(move || loop {
                let job = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            })
            .map_err(|e| {
                EngineError::Internal(format!(
                    "cannot start query thread {i} with a {stack_bytes}-byte stack: {e}"
                ))
            })?;
    }
    pools.insert(stack_bytes, sender.clone());
    Ok(sender)
}

/// Work for a query thread; it catches its own panics.
type QueryJob = Box<dyn FnOnce() + Send>;

/// Query threads per stack size: queries beyond this many wait for a free one.
const QUERY_THREADS: usize = 16;

/// Runs `f` on a query thread with a stack of `stack_bytes` and waits for it without
/// blocking the async executor. A panic in `f` is resumed in the caller, so that the HTTP
/// layer answers it as every other handler panic (a 500 with an error id, counted).
pub(crate) async fn on_query_thread<T, F>(stack_bytes: usize, f: F) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: QueryJob = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result);
    });
    query_threads(stack_bytes)?
        .send(job)
        .map_err(|_| EngineError::Internal("the query threads have stopped".to_string()))?;
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(EngineError::Internal(
            "the query thread ended without an answer".to_string(),
        )),
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

    /// The pre-parse limits every request's PromQL is checked against.
    pub(crate) fn shape_limits(&self) -> ShapeLimits {
        self.options.shape
    }

    /// The stack of a query thread, for callers that parse on one themselves.
    pub(crate) fn query_stack_bytes(&self) -> usize {
        self.options.query_stack_bytes()
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
        for (name, t) in [("start", start_ms), ("end", end_ms)] {
            if !time_in_range(t) {
                return Err(EngineError::BadData(format!(
                    "the query's {name} time {t} ms is outside the times Prometheus' API can name ({})",
                    time_range_text()
                )));
            }
        }
        if step_ms < 0 || end_ms < start_ms {
            return Err(EngineError::BadData(format!(
                "a query needs start <= end and a positive step (start {start_ms} ms, end {end_ms} ms, step {step_ms} ms)"
            )));
        }
        let stack_bytes = self.options.query_stack_bytes();
        let (text, shape, lookback) = (
            query.to_string(),
            self.options.shape,
            self.options.lookback_delta_ms,
        );
        // Parsing and planning recurse once per level of the expression: on a thread whose
        // stack the depth limit was sized for, never on an executor thread.
        let plan = on_query_thread(stack_bytes, move || {
            plan::prepare(&text, &shape, start_ms, end_ms, lookback)
        })
        .await??;
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
        // Evaluation recurses per level as planning does, and dropping the plan too: both on
        // a query thread.
        let value = on_query_thread(stack_bytes, move || job.run()).await??;
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
        ev.check_step_count("the query")?;
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
