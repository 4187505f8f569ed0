//! Reading series back: the one request every data source answers.
//!
//! The querier asks ingesters (recent data) and store-gateways (blocks in object storage) the
//! same four questions through [`SeriesSource`]: the samples of matching series in a time range,
//! their label sets, and the label names and values they carry. In `-target=all` the roles
//! answer in-process; otherwise over gRPC (`proto/query.proto`, [`crate::query_grpc`]).

use std::fmt;
use std::sync::Arc;

use futures::stream::BoxStream;
use thiserror::Error;

use crate::block::SeriesSamples;
use crate::labels::Labels;

/// How a label matcher compares, as in PromQL's `=`, `!=`, `=~`, `!~`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    /// The operator as PromQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher. A series without the label matches as if its value were "" (Prometheus'
/// rule), so `{foo=""}` selects series without `foo` and `{foo!=""}` those with it.
#[derive(Clone)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Compiled for `=~` and `!~`, anchored at both ends as Prometheus does.
    regex: Option<Arc<regex::Regex>>,
}

impl fmt::Debug for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl PartialEq for LabelMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl LabelMatcher {
    /// Builds a matcher; a regex that does not compile is a [`QueryError::BadRequest`].
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, QueryError> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(Arc::new(
                regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    QueryError::BadRequest(format!(
                        "invalid regular expression in matcher {name}{}{value:?}: {e}",
                        op.as_str()
                    ))
                })?,
            )),
            _ => None,
        };
        Ok(Self {
            name,
            op,
            value,
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether a label value (or "" for an absent label) passes.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the matcher accepts a series that lacks the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

/// Whether a label set passes every matcher.
pub fn matches_all(matchers: &[LabelMatcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
}

/// What to read: one tenant's series passing all `matchers`, samples with
/// `start_ms <= t <= end_ms`. For the metadata calls an empty matcher list means every series.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectRequest {
    pub tenant: String,
    pub matchers: Vec<LabelMatcher>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// At most this many series or values in a metadata answer (0: no limit). A source may
    /// return more; the querier truncates.
    pub limit: usize,
}

/// Series as they arrive from a source, each with its samples in time order. One source may
/// return the same label set more than once (several blocks); the querier merges.
pub type SeriesStream = BoxStream<'static, Result<SeriesSamples, QueryError>>;

/// What went wrong answering a query; the querier maps each kind to Prometheus' error type.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum QueryError {
    /// The request itself is wrong (Prometheus `bad_data`, 400).
    #[error("{0}")]
    BadRequest(String),
    /// A per-query limit was hit (Prometheus `execution`, 422).
    #[error("{0}")]
    LimitExceeded(String),
    /// The source cannot answer now; a retry may succeed (503).
    #[error("{0}")]
    Unavailable(String),
    /// The query ran past its deadline (Prometheus `timeout`, 503).
    #[error("{0}")]
    Timeout(String),
    /// A fault in the source (storage, decoding) (Prometheus `internal`, 500).
    #[error("{0}")]
    Internal(String),
}

/// Anything that holds series: an ingester, a store-gateway, a gRPC client of either, or a
/// fan-out over many of them.
#[async_trait::async_trait]
pub trait SeriesSource: Send + Sync + fmt::Debug {
    /// The samples of every matching series within the range; series without a sample in the
    /// range are left out.
    async fn select(&self, request: &SelectRequest) -> Result<SeriesStream, QueryError>;

    /// The label sets of matching series with data in the range, without reading samples
    /// where the source can avoid it. May contain duplicates.
    async fn series(&self, request: &SelectRequest) -> Result<Vec<Labels>, QueryError>;

    /// Label names carried by matching series, sorted, unique.
    async fn label_names(&self, request: &SelectRequest) -> Result<Vec<String>, QueryError>;

    /// Values of label `name` on matching series, sorted, unique, empty values left out.
    async fn label_values(
        &self,
        name: &str,
        request: &SelectRequest,
    ) -> Result<Vec<String>, QueryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_follow_prometheus_rules() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let m = |op, n: &str, v: &str| LabelMatcher::new(op, n, v).unwrap();
        assert!(matches_all(&[m(MatchOp::Equal, "job", "node")], &labels));
        assert!(matches_all(&[m(MatchOp::Equal, "missing", "")], &labels));
        assert!(!matches_all(
            &[m(MatchOp::NotEqual, "missing", "")],
            &labels
        ));
        // Regexes are anchored: "nod" does not match "node".
        assert!(!matches_all(&[m(MatchOp::Regex, "job", "nod")], &labels));
        assert!(matches_all(&[m(MatchOp::Regex, "job", "no.*")], &labels));
        assert!(matches_all(&[m(MatchOp::Regex, "job", "a|node")], &labels));
        assert!(matches_all(&[m(MatchOp::NotRegex, "job", "a|b")], &labels));
        assert!(m(MatchOp::Regex, "x", ".*").matches_empty());
        assert!(!m(MatchOp::Regex, "x", ".+").matches_empty());
        let err = LabelMatcher::new(MatchOp::Regex, "job", "(").unwrap_err();
        assert!(matches!(err, QueryError::BadRequest(_)));
    }
}
