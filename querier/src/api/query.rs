//! `query`, `query_range` and `format_query`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::params::{parse_duration, parse_time, time_or, Params};
use super::response::{
    push_json_string, push_labels, push_point, push_timestamp, success, ApiError,
};
use super::{ApiRequest, ApiState};
use crate::engine::{on_query_thread, EngineError, QueryOutput, Value};
use strata_shared::overrides::{flags, per_tenant_limit_message};
use strata_shared::time::now_ms;

/// A duration in milliseconds as Go prints a `time.Duration` (`721h0m0s`, `1m30s`, `500ms`),
/// for Mimir's messages.
pub(crate) fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{seconds}")
    } else if m > 0 {
        format!("{sign}{m}m{seconds}")
    } else {
        format!("{sign}{seconds}")
    }
}

/// Prometheus' cap on points per series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

pub(crate) fn engine_error(error: EngineError) -> ApiError {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut message = error.to_string();
    // Prometheus names the parameter a parse error is about.
    let about_query = match &error {
        EngineError::BadData(_) => message.starts_with("parse error"),
        EngineError::QueryShape(_) => true,
        _ => false,
    };
    if about_query {
        message = format!("invalid parameter \"query\": {message}");
    }
    ApiError::new(error.error_type(), status, message)
}

/// The request's `timeout` parameter, capped by the querier's own timeout.
/// The tenant's `-query-frontend.max-query-expression-size-bytes`, before anything else is
/// done with the text (the engine checks the depth as it parses).
fn check_size(state: &ApiState, request: &ApiRequest, query: &str) -> Result<(), ApiError> {
    state
        .engine
        .shape_limits()
        .for_tenant(&request.limits)
        .check_size(query)
        .map_err(|e| ApiError::bad_data(e.to_string()))
}

fn timeout(state: &ApiState, params: &Params) -> Result<std::time::Duration, ApiError> {
    match params.get("timeout") {
        Some(v) if !v.is_empty() => {
            let ms = parse_duration("timeout", v)?;
            let requested = std::time::Duration::from_millis(ms.max(0) as u64);
            Ok(requested.min(state.default_timeout))
        }
        _ => Ok(state.default_timeout),
    }
}

async fn with_timeout(
    limit: std::time::Duration,
    run: impl std::future::Future<Output = Result<QueryOutput, EngineError>>,
) -> Result<QueryOutput, ApiError> {
    match tokio::time::timeout(limit, run).await {
        Ok(result) => result.map_err(engine_error),
        Err(_) => Err(ApiError::new(
            "timeout",
            StatusCode::SERVICE_UNAVAILABLE,
            "query timed out in expression evaluation".to_string(),
        )),
    }
}

/// `GET|POST /api/v1/query`.
pub(crate) async fn instant(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &body)?;
        let query = request.params.get("query").unwrap_or("").to_string();
        check_size(&state, &request, &query)?;
        let time = time_or(&request.params, "time", now_ms())?;
        let limit = timeout(&state, &request.params)?;
        let span = tracing::info_span!("query", tenant = %request.tenant, query = %query, time);
        let output = with_timeout(
            limit,
            state
                .engine
                .instant_query(request.source.as_ref(), &request.tenant, &query, time),
        )
        .instrument(span)
        .await?;
        Ok::<_, ApiError>(render(&output))
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// `GET|POST /api/v1/query_range`.
pub(crate) async fn range(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &body)?;
        let params = &request.params;
        let start = parse_time("start", params.get("start").unwrap_or(""))?;
        let end = parse_time("end", params.get("end").unwrap_or(""))?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time"
                    .to_string(),
            ));
        }
        let step = parse_duration("step", params.get("step").unwrap_or(""))?;
        if step <= 0 {
            return Err(ApiError::bad_data(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".to_string(),
            ));
        }
        // Both times are within Prometheus' API range (±9.2e15 ms), so the difference fits.
        if end.saturating_sub(start) / step > MAX_POINTS_PER_SERIES {
            return Err(ApiError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".to_string(),
            ));
        }
        let max_length = request.limits.max_total_query_length;
        if !max_length.0.is_zero() && end - start > max_length.as_millis_i64() {
            return Err(ApiError::bad_data(per_tenant_limit_message(
                &format!(
                    "the total query time range exceeds the limit (query length: {}, limit: {})",
                    go_duration(end - start),
                    go_duration(max_length.as_millis_i64())
                ),
                "err-strata-max-total-query-length",
                &[flags::MAX_TOTAL_QUERY_LENGTH],
            )));
        }
        let query = params.get("query").unwrap_or("").to_string();
        check_size(&state, &request, &query)?;
        let limit = timeout(&state, params)?;
        let span = tracing::info_span!("query_range", tenant = %request.tenant, query = %query, start, end, step);
        let output = with_timeout(
            limit,
            state.engine.range_query(
                request.source.as_ref(),
                &request.tenant,
                &query,
                start,
                end,
                step,
            ),
        )
        .instrument(span)
        .await?;
        Ok::<_, ApiError>(render(&output))
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// `GET|POST /api/v1/format_query`: the expression pretty-printed.
pub(crate) async fn format_query(
    State(state): State<ApiState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = async {
        let request = state.request(&headers, &uri, &body)?;
        let query = request.params.get("query").unwrap_or("").to_string();
        let shape = state.engine.shape_limits().for_tenant(&request.limits);
        // Parsing, pretty-printing and dropping the tree recurse per level: on a query
        // thread sized for the depth limit.
        let pretty = on_query_thread(state.engine.query_stack_bytes(), move || {
            shape.parse(&query).map(|expr| expr.prettify())
        })
        .await
        .map_err(engine_error)?
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
        let mut data = String::new();
        push_json_string(&mut data, &pretty);
        Ok::<_, ApiError>(success(&data, &[]))
    }
    .await;
    result.unwrap_or_else(|e| e.into_response())
}

/// A query result in Prometheus' `{"resultType":...,"result":...}` shape.
pub(crate) fn render(output: &QueryOutput) -> Response {
    let mut data = String::with_capacity(256);
    match &output.value {
        Value::Scalar { t, v } => {
            data.push_str("{\"resultType\":\"scalar\",\"result\":");
            push_point(&mut data, *t, *v);
        }
        Value::String { t, v } => {
            data.push_str("{\"resultType\":\"string\",\"result\":[");
            push_timestamp(&mut data, *t);
            data.push(',');
            push_json_string(&mut data, v);
            data.push(']');
        }
        Value::Vector(samples) => {
            data.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, sample) in samples.iter().enumerate() {
                if i > 0 {
                    data.push(',');
                }
                data.push_str("{\"metric\":");
                push_labels(&mut data, &sample.labels);
                data.push_str(",\"value\":");
                push_point(&mut data, sample.t, sample.v);
                data.push('}');
            }
            data.push(']');
        }
        Value::Matrix(series) => {
            data.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    data.push(',');
                }
                data.push_str("{\"metric\":");
                push_labels(&mut data, &s.labels);
                data.push_str(",\"values\":[");
                for (j, (t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        data.push(',');
                    }
                    push_point(&mut data, *t, *v);
                }
                data.push_str("]}");
            }
            data.push(']');
        }
    }
    data.push('}');
    success(&data, &output.warnings)
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(90_000), "1m30s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(721 * 3_600_000), "721h0m0s");
        assert_eq!(go_duration(1_500), "1.5s");
    }
}
