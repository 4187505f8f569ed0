//! `strata_querier_request_duration_seconds{route,status_code}`: every API request, timed.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{HistogramOpts, HistogramVec, Registry};

/// The querier's request metrics.
#[derive(Clone, Debug)]
pub struct ApiMetrics {
    duration: HistogramVec,
}

impl ApiMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "strata_querier_request_duration_seconds",
                "Time to answer a Prometheus API request, by route and status code.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 4.0, 9)?),
            &["route", "status_code"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { duration })
    }
}

/// Middleware recording the duration of every request under its route pattern.
pub(crate) async fn record(
    State(metrics): State<ApiMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .duration
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}
