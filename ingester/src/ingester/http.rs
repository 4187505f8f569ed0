//! HTTP endpoints of the ingester: flush.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::Ingester;

/// Routes: `POST /ingester/flush` (`?wait=true` waits for the upload, up to 5 minutes).
pub fn routes(ingester: Arc<Ingester>) -> Router {
    Router::new()
        .route("/ingester/flush", post(flush).get(flush))
        .with_state(ingester)
}

#[derive(serde::Deserialize)]
struct FlushQuery {
    wait: Option<bool>,
}

async fn flush(State(ingester): State<Arc<Ingester>>, Query(q): Query<FlushQuery>) -> Response {
    let wait = q.wait.unwrap_or(false).then_some(Duration::from_secs(300));
    match ingester.flush(wait).await {
        Ok(blocks) => {
            let pending = ingester.pending_blocks();
            if wait.is_some() && pending > 0 {
                return (StatusCode::SERVICE_UNAVAILABLE, format!(
                    "flushed {blocks} blocks, but {pending} are still waiting for object storage; they stay on local disk and are retried\n")).into_response();
            }
            (
                StatusCode::OK,
                format!("flushed {blocks} blocks; {pending} waiting for upload\n"),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("flush failed: {e}\n"),
        )
            .into_response(),
    }
}
