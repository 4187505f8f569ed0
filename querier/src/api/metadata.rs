//! `series`, `labels`, `label/<name>/values`, and the endpoints Grafana calls that Strata
//! answers with fixed content for now (`metadata`, `query_exemplars`, `status/buildinfo`,
//! `rules`, `alerts`).
//!
//! Metadata calls never read samples: the sources answer from the ingesters' heads and the
//! blocks' series tables.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use strata_shared::labels::METRIC_NAME;
use strata_shared::query::{LabelMatcher, MatchOp, SelectRequest};

use super::params::{time_or, MAX_TIME_MS, MIN_TIME_MS};
use super::response::{push_json_string, push_labels, push_strings, success, ApiError};
use super::{ApiRequest, ApiState};
use crate::query_shape::ShapeLimits;
use tracing::Instrument;

use crate::engine::on_query_thread;

/// A series selector nests one level (its braces) and has no operator outside them; text
/// deeper than this is no selector, and is refused without being parsed, so that a hostile
/// `match[]` never makes the parser recurse on an executor thread.
const MAX_SELECTOR_DEPTH: usize = 64;

/// The matchers of one `match[]` selector, as Prometheus' `ParseMetricSelector` reads it,
/// after the pre-parse limits of `shape`.
pub(crate) fn parse_selector(
    text: &str,
    shape: &ShapeLimits,
) -> Result<Vec<LabelMatcher>, ApiError> {
    let invalid = |e: String| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}"));
    let scanned = shape.check(text).map_err(|e| invalid(e.to_string()))?;
    if scanned.depth() > MAX_SELECTOR_DEPTH {
        return Err(invalid(format!(
            "1:1: parse error: expected a series selector, got an expression nesting {} levels deep",
            scanned.depth()
        )));
    }
    let expr = promql_parser::parser::parse(text).map_err(invalid)?;
    let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
        return Err(invalid(format!(
            "1:1: parse error: expected a series selector, got {text:?}"
        )));
    };
    if !selector.matchers.or_matchers.is_empty() {
        return Err(invalid(
            "1:1: parse error: \"or\" in a series selector is not supported".to_string(),
        ));
    }
    let mut matchers = Vec::with_capacity(selector.matchers.matchers.len() + 1);
    if let Some(name) = &selector.name {
        matchers.push(LabelMatcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &selector.matchers.matchers {
        let op = match m.op {
            promql_parser::label::MatchOp::Equal => MatchOp::Equal,
            promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
            promql_parser::label::MatchOp::Re(_) => MatchOp::Regex,
            promql_parser::label::MatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        matchers.push(
            LabelMatcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| invalid(e.to_string()))?,
        );
    }
    Ok(matchers)
}

/// The `match[]` selectors, `start`, `end` and `limit` of a metadata request.
struct MetadataRequest {
    selectors: Vec<Vec<LabelMatcher>>,
    base: SelectRequest,
}

fn metadata_request(
    request: &ApiRequest,
    shape: &ShapeLimits,
) -> Result<MetadataRequest, ApiError> {
    let params = &request.params;
    let start = time_or(params, "start", MIN_TIME_MS)?;
    let end = time_or(params, "end", MAX_TIME_MS)?;
    let limit = match params.get("limit") {
        Some(v) if !v.is_empty() => v.parse::<usize>().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse \"{v}\" to a non-negative integer"
            ))
        })?,
        _ => 0,
    };
    let selectors = params
        .all("match[]")
        .into_iter()
        .map(|text| parse_selector(text, shape))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MetadataRequest {
        selectors,
        base: SelectRequest {
            tenant: request.tenant.clone(),
            matchers: Vec::new(),
            start_ms: start,
            end_ms: end,
            limit,
        },
    })
}

/// Truncates to `limit` (0: none), with the warning newer Prometheus versions give.
fn truncate<T>(mut values: Vec<T>, limit: usize, warnings: &mut Vec<String>) -> Vec<T> {
    if limit > 0 && values.len() > limit {
        values.truncate(limit);
        warnings.push("results truncated due to limit".to_string());
    }
    values
}

impl MetadataRequest {
    /// Asks `ask` once per `match[]` selector (once with no matchers when there is none) and
    /// returns the union of the answers, sorted.
    async fn union<T, F, Fut>(self, ask: F) -> Result<Vec<T>, ApiError>
    where
        T: Ord,
        F: Fn(SelectRequest) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, strata_shared::query::QueryError>>,
    {
        let selectors = if self.selectors.is_empty() {
            vec![Vec::new()]
        } else {
            self.selectors
        };
        let mut all = std::collections::BTreeSet::new();
        for matchers in selectors {
            let select = SelectRequest {
                matchers,
                ..self.base.clone()
            };
            all.extend(ask(select).await.map_err(ApiError::from_query)?);
        }
        Ok(all.into_iter().collect())
    }
}

/// A JSON list of strings, truncated to `limit`.
fn strings_response(values: Vec<String>, limit: usize) -> Response {
    let mut warnings = Vec::new();
    let values = truncate(values, limit, &mut warnings);
    let mut data = String::new();
    push_strings(&mut data, values.iter().map(String::as_str));
    success(&data, &warnings)
}

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &body)?;
        let meta = metadata_request(
            &request,
            &state.engine.shape_limits().for_tenant(&request.limits),
        )?;
        if meta.selectors.is_empty() {
            return Err(ApiError::bad_data(
                "no match[] parameter provided".to_string(),
            ));
        }
        let limit = meta.base.limit;
        let source = &request.source;
        let all = meta
            .union(|select| async move { source.series(&select).await })
            .await?;
        let mut warnings = Vec::new();
        let series = truncate(all, limit, &mut warnings);
        let mut data = String::from("[");
        for (i, labels) in series.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            push_labels(&mut data, labels);
        }
        data.push(']');
        Ok::<_, ApiError>(success(&data, &warnings))
    }
    .instrument(tracing::info_span!("series"))
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn labels(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &body)?;
        let meta = metadata_request(
            &request,
            &state.engine.shape_limits().for_tenant(&request.limits),
        )?;
        let limit = meta.base.limit;
        let source = &request.source;
        let names = meta
            .union(|select| async move { source.label_names(&select).await })
            .await?;
        Ok::<_, ApiError>(strings_response(names, limit))
    }
    .instrument(tracing::info_span!("labels"))
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `GET /api/v1/label/<name>/values`.
pub(crate) async fn label_values(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &Bytes::new())?;
        if !valid_label_name(&name) {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        }
        let meta = metadata_request(
            &request,
            &state.engine.shape_limits().for_tenant(&request.limits),
        )?;
        let limit = meta.base.limit;
        let (source, name) = (&request.source, &name);
        let values = meta
            .union(|select| async move { source.label_values(name, &select).await })
            .await?;
        Ok::<_, ApiError>(strings_response(values, limit))
    }
    .instrument(tracing::info_span!("label_values", name = %name))
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// `GET /api/v1/metadata`: metric metadata is not stored yet (remote-write metadata is
/// dropped by the distributor), so the answer is an empty map, as Prometheus gives for a
/// metric it has no metadata for.
/// Its `limit` is read as Prometheus reads it (an `int64`, "limit must be a number").
pub(crate) async fn metric_metadata(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = (|| {
        let request = state.request(&headers, &uri, &Bytes::new())?;
        if let Some(v) = request.params.get("limit").filter(|v| !v.is_empty()) {
            if v.parse::<i64>().is_err() {
                return Err(ApiError::bad_data("limit must be a number".to_string()));
            }
        }
        Ok(success("{}", &[]))
    })();
    result.unwrap_or_else(|e| e.into_response())
}

/// `GET|POST /api/v1/query_exemplars`: exemplars are not stored yet; an empty list, once
/// `start`, `end` and `query` passed Prometheus' checks (bad ones get its 400s).
pub(crate) async fn exemplars(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &body)?;
        let params = &request.params;
        let start = time_or(params, "start", MIN_TIME_MS)?;
        let end = time_or(params, "end", MAX_TIME_MS)?;
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start timestamp".to_string(),
            ));
        }
        let query = params.get("query").unwrap_or("").to_string();
        let shape = state.engine.shape_limits().for_tenant(&request.limits);
        on_query_thread(state.engine.query_stack_bytes(), move || {
            shape.parse(&query).map(drop)
        })
        .await
        .map_err(super::query::engine_error)?
        .map_err(|e| ApiError::bad_data(e.to_string()))?;
        Ok(success("[]", &[]))
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// `GET /api/v1/rules`: no ruler yet, so no rule groups.
pub(crate) async fn rules(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match state.tenant(&headers) {
        Ok(_) => success("{\"groups\":[]}", &[]),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/alerts`: no ruler yet, so no alerts.
pub(crate) async fn alerts(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    match state.tenant(&headers) {
        Ok(_) => success("{\"alerts\":[]}", &[]),
        Err(e) => e.into_response(),
    }
}

/// The Prometheus version whose PromQL and API Strata implements.
pub(crate) const PROMETHEUS_COMPATIBLE_VERSION: &str = "2.42.0";

/// `GET /api/v1/status/buildinfo`. Grafana reads `version` to pick the PromQL dialect and
/// the `features` map (Mimir's shape) to learn which APIs exist; Strata has no ruler or
/// Alertmanager, so those say "false".
pub(crate) async fn buildinfo() -> Response {
    let mut data = String::from("{\"application\":\"Strata\",\"version\":");
    push_json_string(&mut data, PROMETHEUS_COMPATIBLE_VERSION);
    data.push_str(",\"revision\":");
    push_json_string(&mut data, env!("CARGO_PKG_VERSION"));
    data.push_str(
        ",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\",\"features\":{\"ruler_config_api\":\"false\",\"alertmanager_config_api\":\"false\",\"query_sharding\":\"false\",\"federated_rules\":\"false\"}}",
    );
    success(&data, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_become_matchers() {
        let shape = ShapeLimits {
            max_bytes: 0,
            max_depth: 1_000,
        };
        let m = parse_selector("up{job=~\"a|b\",x!=\"\"}", &shape).unwrap();
        let text: Vec<String> = m.iter().map(|m| m.to_string()).collect();
        assert_eq!(text, vec!["__name__=\"up\"", "job=~\"a|b\"", "x!=\"\""]);
        assert!(parse_selector("sum(up)", &shape).is_err());
        assert!(parse_selector("{x=\"\"}", &shape).is_err());
        let deep = format!("{}up{}", "(".repeat(500), ")".repeat(500));
        let err = parse_selector(&deep, &shape).unwrap_err();
        assert!(
            err.message.contains("expected a series selector"),
            "{err:?}"
        );
        assert!(valid_label_name("__name__"));
        assert!(!valid_label_name("1a"));
        assert!(!valid_label_name("a-b"));
    }
}
