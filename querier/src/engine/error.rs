//! What can go wrong running a query, and how Prometheus' HTTP API reports each kind.

use strata_shared::query::QueryError;
use thiserror::Error;

/// A failed query. Each kind maps to one Prometheus `errorType` and HTTP status.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// The query text is wrong (does not parse, wrong types): `bad_data`, 400.
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (matching errors, sample limit, invalid arguments): `execution`, 422.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline: `timeout`, 503.
    #[error("{0}")]
    Timeout(String),
    /// The query was abandoned: `canceled`, 503.
    #[error("{0}")]
    Canceled(String),
    /// A data source failed: `internal` (500) or `unavailable` (503).
    #[error("{0}")]
    Storage(QueryError),
    /// The query text is over a pre-parse limit (length, nesting depth): `bad_data`, 400.
    #[error("{0}")]
    QueryShape(crate::query_shape::ShapeError),
    /// Strata itself failed (a query thread could not start): `internal`, 500.
    #[error("{0}")]
    Internal(String),
}

/// The message Prometheus gives when a query would hold more than `max_samples` points.
pub(crate) const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// The message Prometheus gives when the query deadline passes during evaluation.
pub(crate) const TIMED_OUT: &str = "query timed out in expression evaluation";

impl EngineError {
    /// Prometheus' `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            EngineError::BadData(_) | EngineError::QueryShape(_) => "bad_data",
            EngineError::Execution(_) => "execution",
            EngineError::Timeout(_) => "timeout",
            EngineError::Canceled(_) => "canceled",
            EngineError::Storage(QueryError::Unavailable(_)) => "unavailable",
            EngineError::Storage(_) | EngineError::Internal(_) => "internal",
        }
    }

    /// The HTTP status Prometheus' `web/api/v1` answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            EngineError::BadData(_) | EngineError::QueryShape(_) => 400,
            EngineError::Execution(_) => 422,
            EngineError::Timeout(_) | EngineError::Canceled(_) => 503,
            EngineError::Storage(QueryError::Unavailable(_)) => 503,
            EngineError::Storage(_) | EngineError::Internal(_) => 500,
        }
    }

    pub(crate) fn too_many_samples() -> Self {
        EngineError::Execution(TOO_MANY_SAMPLES.to_string())
    }

    /// An evaluation that would iterate more steps than `max_samples`: even one series would
    /// hold more points than the limit, and with none the steps alone are the cost (a nested
    /// subquery such as `max_over_time(max_over_time(x[1y:1s])[1y:1s])` asks for 63 million).
    pub(crate) fn too_many_steps(what: &str, steps: u128, max_samples: usize) -> Self {
        EngineError::Execution(format!(
            "{TOO_MANY_SAMPLES}: {what} would be evaluated at {steps} steps, more than the {max_samples} samples a query may hold (-querier.max-samples); use a longer step or a shorter range"
        ))
    }

    pub(crate) fn canceled() -> Self {
        EngineError::Canceled("query was canceled in expression evaluation".to_string())
    }

    pub(crate) fn timed_out() -> Self {
        EngineError::Timeout(TIMED_OUT.to_string())
    }
}

impl From<QueryError> for EngineError {
    fn from(err: QueryError) -> Self {
        match err {
            QueryError::LimitExceeded(msg) => EngineError::Execution(msg),
            QueryError::BadRequest(msg) => EngineError::BadData(msg),
            QueryError::Timeout(msg) => EngineError::Timeout(msg),
            other => EngineError::Storage(other),
        }
    }
}

/// Shorthand for evaluation results.
pub(crate) type EvalResult<T> = Result<T, EngineError>;

/// An `Execution` error with the given text.
pub(crate) fn exec_err<T>(msg: impl Into<String>) -> EvalResult<T> {
    Err(EngineError::Execution(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_prometheus_types_and_statuses() {
        let cases = [
            (EngineError::BadData("x".into()), "bad_data", 400),
            (EngineError::Execution("x".into()), "execution", 422),
            (EngineError::timed_out(), "timeout", 503),
            (EngineError::Canceled("x".into()), "canceled", 503),
            (
                EngineError::Storage(QueryError::Unavailable("x".into())),
                "unavailable",
                503,
            ),
            (
                EngineError::Storage(QueryError::Internal("x".into())),
                "internal",
                500,
            ),
        ];
        for (err, ty, status) in cases {
            assert_eq!(err.error_type(), ty, "{err:?}");
            assert_eq!(err.status(), status, "{err:?}");
        }
    }

    #[test]
    fn storage_errors_convert_by_kind() {
        let e: EngineError = QueryError::LimitExceeded("too many".into()).into();
        assert_eq!(e, EngineError::Execution("too many".into()));
        let e: EngineError = QueryError::BadRequest("bad".into()).into();
        assert_eq!(e, EngineError::BadData("bad".into()));
        let e: EngineError = QueryError::Timeout("slow".into()).into();
        assert_eq!(e.error_type(), "timeout");
        let e: EngineError = QueryError::Internal("disk".into()).into();
        assert_eq!(e.error_type(), "internal");
    }
}
