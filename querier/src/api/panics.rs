//! A panic in any HTTP handler answers that one request with a 500 in Prometheus' error
//! envelope, never takes the process (or the connection's other requests) down.
//!
//! tower-http's `CatchPanicLayer` catches the unwind around the whole router; this module
//! gives it the response: `{"status":"error","errorType":"internal","error":"..."}` with an
//! error id that the log line of the same panic carries, so an operator can find the
//! panic's message and place from what a client reports. Every such panic is counted in
//! `strata_panics_total{task="http-request"}`, with the background loops' panics. Query
//! threads resume their panics in the handler
//! (see `engine::on_query_thread`), so those are answered and counted here too.

use std::any::Any;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use prometheus::Registry;
use strata_shared::supervise;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use super::response::ApiError;

/// The `task` label of HTTP handler panics in `strata_panics_total`.
pub const PANIC_TASK: &str = "http-request";

/// Builds the response to a caught panic and counts it.
#[derive(Clone, Debug)]
pub struct PanicResponder;

impl PanicResponder {
    pub fn new(registry: &Registry) -> Self {
        supervise::register(registry);
        Self
    }
}

impl ResponseForPanic for PanicResponder {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
        supervise::count_panic(PANIC_TASK);
        let id = format!("err-strata-panic-{}", ulid::Ulid::generate());
        tracing::error!(error_id = %id, panic = supervise::panic_message(payload.as_ref()), "an HTTP request handler panicked; the request was answered with a 500");
        ApiError::new(
            "internal",
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "internal error {id}: the server failed while answering this request; the server's log has the details under this id"
            ),
        )
        .into_response()
    }
}

/// The layer for the whole HTTP router.
pub fn layer(registry: &Registry) -> CatchPanicLayer<PanicResponder> {
    CatchPanicLayer::custom(PanicResponder::new(registry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A real server: a panicking route answers 500 in the envelope, the next request on
    /// another route is served, and the panic is counted.
    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_envelope_and_is_counted() {
        let registry = Registry::new();
        let app = axum::Router::new()
            .route(
                "/boom",
                get(|| async {
                    let v: Vec<u8> = Vec::new();
                    format!("{}", v[usize::from(v.is_empty())])
                }),
            )
            .route("/ok", get(|| async { "fine" }))
            .layer(layer(&registry));
        let before = supervise::panic_count(PANIC_TASK);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(request.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let answer = get("/boom").await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(
            answer.contains("{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"internal error err-strata-panic-"),
            "{answer}"
        );
        assert!(answer.contains("application/json"), "{answer}");
        assert!(get("/ok").await.ends_with("fine"));
        assert_eq!(supervise::panic_count(PANIC_TASK), before + 1);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains("strata_panics_total{task=\"http-request\"}"),
            "{text}"
        );
    }
}
