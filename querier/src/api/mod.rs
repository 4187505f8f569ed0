//! The Prometheus HTTP API, under `/prometheus/api/v1/` (Mimir's prefix) and `/api/v1/`.
//!
//! Handlers read parameters as Prometheus does (URL or form body, [`params`]), resolve the
//! tenant from `X-Scope-OrgID`, ask the [`Engine`](crate::engine::Engine) or the data source,
//! and answer in Prometheus' JSON shapes ([`response`]).

mod metadata;
pub mod metrics;
pub mod panics;
pub(crate) mod params;
mod query;
pub(crate) mod response;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::routing::get;
use axum::Router;
use strata_shared::limits::LimitsConfig;
use strata_shared::overrides::Overrides;
use strata_shared::query::SeriesSource;
use strata_shared::tenant::{resolve_tenant, ORG_ID_HEADER};

use self::params::Params;
use self::response::ApiError;
use crate::engine::Engine;
use crate::limits::QueryLimiter;

/// What every handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) source: Arc<dyn SeriesSource>,
    pub(crate) overrides: Arc<Overrides>,
    pub(crate) multitenancy_enabled: bool,
    /// The querier's own limit, the ceiling of a request's `timeout` parameter.
    pub(crate) default_timeout: std::time::Duration,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("source", &self.source)
            .field("multitenancy_enabled", &self.multitenancy_enabled)
            .finish()
    }
}

impl ApiState {
    pub fn new(
        engine: Arc<Engine>,
        source: Arc<dyn SeriesSource>,
        overrides: Arc<Overrides>,
        multitenancy_enabled: bool,
        default_timeout: std::time::Duration,
    ) -> Self {
        Self {
            engine,
            source,
            overrides,
            multitenancy_enabled,
            default_timeout,
        }
    }

    /// The tenant of a request, or Prometheus' envelope around the tenant error (401 when the
    /// header is missing, as Mimir answers; 400 for a malformed id).
    pub(crate) fn tenant(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let header = headers.get(ORG_ID_HEADER).and_then(|v| v.to_str().ok());
        resolve_tenant(header, self.multitenancy_enabled).map_err(|e| {
            let status = if header.is_none() {
                axum::http::StatusCode::UNAUTHORIZED
            } else {
                axum::http::StatusCode::BAD_REQUEST
            };
            ApiError::new("bad_data", status, e.to_string())
        })
    }
}

/// One parsed request: its tenant, its limits, its parameters, and the data source under the
/// tenant's query limits (counting across the whole request).
pub(crate) struct ApiRequest {
    pub(crate) tenant: String,
    pub(crate) limits: Arc<LimitsConfig>,
    pub(crate) params: Params,
    pub(crate) source: Arc<dyn SeriesSource>,
}

impl ApiState {
    pub(crate) fn request(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        body: &Bytes,
    ) -> Result<ApiRequest, ApiError> {
        let tenant = self.tenant(headers)?;
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let limits = self.overrides.tenant(&tenant);
        let source = Arc::new(QueryLimiter::new(
            self.source.clone(),
            limits.clone(),
            strata_shared::time::now_ms(),
        ));
        Ok(ApiRequest {
            tenant,
            limits,
            params: Params::parse(uri.query(), content_type, body),
            source,
        })
    }
}

/// The API routes, under both prefixes, each request timed in `metrics`.
/// Largest form body a query or metadata request may POST: Go's `ParseForm` limit, which
/// Prometheus' API inherits. Larger bodies get 413 before they are read into memory (the
/// server turns the default body limit off for remote-write, which has its own).
pub const MAX_FORM_BYTES: usize = 10 << 20;

pub fn routes(state: ApiState, metrics: metrics::ApiMetrics) -> Router {
    let api = Router::new()
        .route("/query", get(query::instant).post(query::instant))
        .route("/query_range", get(query::range).post(query::range))
        .route(
            "/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route("/series", get(metadata::series).post(metadata::series))
        .route("/labels", get(metadata::labels).post(metadata::labels))
        .route("/label/{name}/values", get(metadata::label_values))
        .route("/metadata", get(metadata::metric_metadata))
        .route(
            "/query_exemplars",
            get(metadata::exemplars).post(metadata::exemplars),
        )
        .route("/status/buildinfo", get(metadata::buildinfo))
        .route("/rules", get(metadata::rules))
        .route("/alerts", get(metadata::alerts))
        .with_state(state)
        .route_layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::record,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES));
    Router::new()
        .nest("/prometheus/api/v1", api.clone())
        .nest("/api/v1", api)
}
