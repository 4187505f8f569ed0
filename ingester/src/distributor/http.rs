//! HTTP endpoints of the distributor: remote-write push, the ring and HA tracker status pages.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prost::Message;
use strata_shared::proto::prometheus::WriteRequestBytes;
use strata_shared::tenant::{resolve_tenant, TenantError, ORG_ID_HEADER};

use super::ha_tracker::HaError;
use super::{Distributor, PushError};
use strata_shared::time::now_ms;

/// Routes: `POST /api/v1/push`, `POST /api/prom/push` (Mimir's older path), `GET /ring`,
/// `GET /distributor/ring`, `GET /distributor/ha_tracker`.
pub fn routes(distributor: Arc<Distributor>) -> Router {
    Router::new()
        .route("/api/v1/push", post(push))
        .route("/api/prom/push", post(push))
        .route("/ring", get(ring))
        .route("/distributor/ring", get(ring))
        .route("/distributor/ha_tracker", get(ha_tracker))
        .with_state(distributor)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        message.into() + "\n",
    )
        .into_response()
}

async fn push(
    State(distributor): State<Arc<Distributor>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let response = handle_push(&distributor, &headers, body).await;
    distributor.observe(response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[tracing::instrument(name = "push", skip_all, fields(tenant))]
async fn handle_push(distributor: &Distributor, headers: &HeaderMap, body: Body) -> Response {
    let header = headers.get(ORG_ID_HEADER).and_then(|v| v.to_str().ok());
    let tenant = match resolve_tenant(header, distributor.multitenancy_enabled()) {
        Ok(t) => t,
        Err(e @ TenantError::Missing) => return error(StatusCode::UNAUTHORIZED, e.to_string()),
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    tracing::Span::current().record("tenant", tenant.as_str());
    if let Err(PushError::RateLimited(message)) = distributor.check_request_rate(&tenant) {
        return error(StatusCode::TOO_MANY_REQUESTS, message);
    }
    let limit = distributor.max_recv_msg_size();
    let compressed: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, format!(
                "the request body is larger than the limit of {limit} bytes (err-strata-distributor-max-write-message-size); to adjust it, configure -distributor.max-recv-msg-size"));
        }
    };
    let decompressed_len = match snap::raw::decompress_len(&compressed) {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!(
            "cannot decompress the remote-write body for tenant {tenant}: {e}; the body must be snappy block-compressed protobuf (Content-Encoding: snappy)")),
    };
    if decompressed_len > limit {
        return error(StatusCode::PAYLOAD_TOO_LARGE, format!(
            "the decompressed request body ({decompressed_len} bytes) is larger than the limit of {limit} bytes (err-strata-distributor-max-write-message-size); to adjust it, configure -distributor.max-recv-msg-size"));
    }
    let raw = match snap::raw::Decoder::new().decompress_vec(&compressed) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!(
            "cannot decompress the remote-write body for tenant {tenant}: {e}; the body must be snappy block-compressed protobuf (Content-Encoding: snappy)")),
    };
    let now = now_ms();
    if let Err(e) = distributor.ha_precheck(&tenant, &raw, now).await {
        return push_error(e);
    }
    // Decoding from `Bytes` makes every label a slice of this buffer, not a new String.
    let request = match WriteRequestBytes::decode(Bytes::from(raw)) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!(
            "cannot decode the remote-write body for tenant {tenant} as a prometheus.WriteRequest protobuf: {e}")),
    };
    match distributor.push(&tenant, request, now).await {
        Ok(outcome) if outcome.rejected.is_empty() => StatusCode::OK.into_response(),
        Ok(outcome) => {
            tracing::debug!(
                rejected = outcome.rejected.len(),
                accepted_series = outcome.accepted_series,
                "push partially rejected"
            );
            error(StatusCode::BAD_REQUEST, format!(
                "tenant {tenant}: {} series written; some samples were rejected and must not be retried:\n{}",
                outcome.accepted_series, outcome.rejected.join("\n")))
        }
        Err(e) => push_error(e),
    }
}

/// The answer to a push refused whole: the status follows the remote-write retry contract.
fn push_error(e: PushError) -> Response {
    match e {
        PushError::Replication(message) => {
            tracing::warn!(%message, "push failed");
            error(StatusCode::SERVICE_UNAVAILABLE, message)
        }
        PushError::RateLimited(message) => {
            tracing::debug!(%message, "push rate limited");
            error(StatusCode::TOO_MANY_REQUESTS, message)
        }
        PushError::Ha(HaError::Deduplicated(message)) => error(StatusCode::ACCEPTED, message),
        PushError::Ha(HaError::TooManyClusters(message)) => {
            tracing::debug!(%message, "push refused: too many HA clusters");
            error(StatusCode::BAD_REQUEST, message)
        }
        PushError::Ha(HaError::Unavailable(message)) => {
            tracing::warn!(%message, "push refused by the HA tracker");
            error(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

async fn ha_tracker(
    State(distributor): State<Arc<Distributor>>,
    Query(q): Query<RingQuery>,
    headers: HeaderMap,
) -> Response {
    super::ha_tracker::http::page(
        distributor.ha_tracker().map(|t| t.as_ref()),
        wants_json(q.format.as_deref(), &headers),
        now_ms(),
    )
}

#[derive(serde::Deserialize)]
struct RingQuery {
    format: Option<String>,
}

async fn ring(
    State(distributor): State<Arc<Distributor>>,
    Query(q): Query<RingQuery>,
    headers: HeaderMap,
) -> Response {
    let ring = distributor.ring();
    let status = ring.status();
    if wants_json(q.format.as_deref(), &headers) {
        return Json(serde_json::json!({
            "replicationFactor": ring.replication_factor(),
            "quorum": ring.quorum(),
            "members": status,
        }))
        .into_response();
    }
    let mut rows = String::new();
    for m in &status {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{:.1}%</td><td>{}</td></tr>",
            escape(&m.id),
            escape(&m.addr),
            m.state,
            m.tokens,
            m.ownership_percent,
            escape(m.last_error.as_deref().unwrap_or("")),
        ));
    }
    Html(format!(
        "<!DOCTYPE html><html><head><title>Strata ring</title></head><body><h1>Ingester ring</h1>\
         <p>Replication factor {}, write quorum {}. <a href=\"?format=json\">JSON</a></p>\
         <table border=\"1\"><tr><th>ID</th><th>Address</th><th>State</th><th>Tokens</th><th>Ownership</th><th>Last error</th></tr>{rows}</table></body></html>",
        ring.replication_factor(), ring.quorum()))
    .into_response()
}

/// `?format=json` or `Accept: application/json`.
pub(crate) fn wants_json(format: Option<&str>, headers: &HeaderMap) -> bool {
    format == Some("json")
        || headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"))
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
