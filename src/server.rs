//! Starts the selected roles and the HTTP and gRPC servers, and shuts them down on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};
use strata_ingester::distributor::push_target::{GrpcPushTarget, SharedPushTarget};
use strata_ingester::distributor::Distributor;
use strata_ingester::ingester::{Ingester, SeriesLimiter};
use strata_ingester::peers::{HealthyDistributors, HealthyPeers};
use strata_querier::api::ApiState;
use strata_querier::engine::{Engine, EngineOptions};
use strata_querier::fanout::Fanout;
use strata_shared::metrics::DiscardedSamples;
use strata_shared::overrides::Overrides;
use strata_shared::query::SeriesSource;
use strata_shared::query_grpc::RemoteSource;
use strata_shared::ring::{Member, Ring};
use strata_shared::runtime_config::{LimitsExporter, RuntimeConfigLoader};
use strata_store_gateway::StoreGateway;

use crate::config::Config;

#[derive(Clone)]
struct AppState {
    registry: Registry,
    config_yaml: Arc<String>,
    distributor: Option<Arc<Distributor>>,
    overrides: Arc<Overrides>,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "strata".to_string())
}

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let roles = config.roles()?;
    let all = config.target.split(',').any(|t| t.trim() == "all");
    tracing::info!(target = %config.target, storage = %config.blocks_storage.describe(), version = env!("CARGO_PKG_VERSION"), "starting strata");
    let registry = Registry::new();
    let discarded = DiscardedSamples::new(&registry)?;
    strata_shared::supervise::register(&registry);
    let store = config.blocks_storage.build()?;
    // Per-tenant limits: the defaults from flags/YAML, the runtime config's overrides on top;
    // every role reads them through this one handle.
    config
        .limits
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid limits: {e}"))?;
    let overrides = Arc::new(Overrides::new(config.limits.clone()));
    let _runtime_config =
        RuntimeConfigLoader::start(&config.runtime_config, overrides.clone(), &registry)?;
    LimitsExporter::register(overrides.clone(), &registry)?;
    let ring_ingesters = HealthyPeers::ingesters(
        Ring::parse_members(&config.ingester.ring.static_members)?
            .into_iter()
            .map(|m| m.addr)
            .collect(),
    );
    let instance_id = if config.ingester.ring.instance_id.is_empty() {
        hostname()
    } else {
        config.ingester.ring.instance_id.clone()
    };

    let ingester = if roles.contains(&"ingester") {
        let ingester = Ingester::open(
            instance_id.clone(),
            config.blocks_storage.tsdb.clone(),
            store.clone(),
            &registry,
            discarded.clone(),
            SeriesLimiter::new(
                overrides.clone(),
                config.ingester.ring.replication_factor,
                ring_ingesters.clone(),
            ),
        )
        .await
        .with_context(|| {
            format!(
                "starting the ingester with -blocks-storage.tsdb.dir={}",
                config.blocks_storage.tsdb.dir
            )
        })?;
        ingester.start_background();
        ring_ingesters.start();
        Some(ingester)
    } else {
        None
    };

    let distributor = if roles.contains(&"distributor") {
        let mut members = Ring::parse_members(&config.ingester.ring.static_members)?;
        let mut handles: Vec<SharedPushTarget> = Vec::new();
        if members.is_empty() {
            let local = ingester.clone().context("-ingester.ring.static-members is empty and this process runs no ingester: list the ingesters as id=host:grpc-port,...")?;
            members.push(Member {
                id: instance_id.clone(),
                addr: "inprocess".into(),
            });
            handles.push(local);
        } else {
            for member in &members {
                match &ingester {
                    Some(local) if member.id == instance_id => handles.push(local.clone()),
                    _ => handles.push(Arc::new(GrpcPushTarget::new(
                        &member.addr,
                        config.distributor.remote_timeout.0,
                        config.distributor.max_recv_msg_size,
                    )?)),
                }
            }
        }
        let ring = Arc::new(Ring::new(members, config.ingester.ring.replication_factor)?);
        tracing::info!(
            members = ring.members().len(),
            replication_factor = ring.replication_factor(),
            quorum = ring.quorum(),
            "ingester ring ready"
        );
        let distributors = HealthyDistributors::new(&config.distributor.ring.static_members);
        distributors.start();
        Some(Distributor::new(
            config.distributor.clone(),
            overrides.clone(),
            distributors,
            config.auth.multitenancy_enabled,
            ring,
            handles,
            &registry,
            discarded.clone(),
        )?)
    } else {
        None
    };

    let store_gateway = if roles.contains(&"store-gateway") {
        let gateway = Arc::new(
            StoreGateway::new(config.blocks_storage.bucket_store.clone(), store.clone())
                .context("starting the store-gateway")?,
        );
        gateway.register_metrics(&registry)?;
        gateway.start_background();
        Some(gateway)
    } else {
        None
    };

    let query_api = if roles.contains(&"querier") {
        Some(querier_api(
            &config,
            overrides.clone(),
            ingester.as_ref(),
            store_gateway.as_ref(),
            &instance_id,
        )?)
    } else {
        None
    };

    for role in ["compactor"] {
        if roles.contains(&role) && !all {
            tracing::warn!(role, "this role is not implemented yet in this version; it serves only /ready, /metrics and /config");
        }
    }

    // gRPC: ingesters serve Push (to remote distributors) and Query (to remote queriers);
    // a store-gateway serves Query. With -target=all and no static members nobody is remote.
    let serves_remote = !all || !config.ingester.ring.static_members.is_empty();
    let grpc = if serves_remote && (ingester.is_some() || store_gateway.is_some()) {
        let addr: SocketAddr = format!(
            "{}:{}",
            config.server.grpc_listen_address, config.server.grpc_listen_port
        )
        .parse()
        .context("invalid -server.grpc-listen-address / -server.grpc-listen-port")?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for gRPC on {addr} (-server.grpc-listen-port)")
        })?;
        tracing::info!(%addr, "gRPC server listening");
        let max_message = config
            .distributor
            .max_recv_msg_size
            .max(config.querier.max_recv_msg_size);
        let mut router = tonic::transport::Server::builder().add_optional_service(
            ingester
                .as_ref()
                .map(|i| strata_ingester::ingester::grpc::server(i.clone(), max_message)),
        );
        // One Query service per process: the ingester's when it runs one (a store-gateway in
        // the same process is then reached in-process by its querier only).
        let query_source: Option<Arc<dyn SeriesSource>> = match (&ingester, &store_gateway) {
            (Some(i), _) => Some(i.clone()),
            (None, Some(g)) => Some(g.clone()),
            (None, None) => None,
        };
        router = router.add_optional_service(
            query_source.map(|source| strata_shared::query_grpc::server(source, max_message)),
        );
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        Some(tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                tracing::error!(error = %e, "gRPC server failed");
            }
        }))
    } else {
        None
    };

    let state = AppState {
        registry: registry.clone(),
        config_yaml: Arc::new(config.to_yaml()),
        distributor: distributor.clone(),
        overrides: overrides.clone(),
    };
    let mut app = Router::new()
        .route("/", get(index))
        .route("/ready", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/runtime_config", get(runtime_config))
        .route(
            "/config",
            get(|State(s): State<AppState>| async move {
                (
                    [("content-type", "text/yaml")],
                    s.config_yaml.as_str().to_string(),
                )
            }),
        )
        .with_state(state);
    if let Some(d) = &distributor {
        app = app.merge(strata_ingester::distributor::http::routes(d.clone()));
    }
    if let Some(i) = &ingester {
        app = app.merge(strata_ingester::ingester::http::routes(i.clone()));
    }
    if let Some(api) = query_api {
        let metrics = strata_querier::api::metrics::ApiMetrics::new(&registry)?;
        app = app.merge(strata_querier::api::routes(api, metrics));
    }
    // Outermost: a panic anywhere below answers its request with a 500 (Prometheus' error
    // envelope, an error id) and is counted, instead of dropping the connection.
    let app = app
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(strata_querier::api::panics::layer(&registry));

    let addr: SocketAddr = format!(
        "{}:{}",
        config.server.http_listen_address, config.server.http_listen_port
    )
    .parse()
    .context("invalid -server.http-listen-address / -server.http-listen-port")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {addr} (-server.http-listen-port)"))?;
    tracing::info!(%addr, roles = ?roles, "HTTP server listening; strata is ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;

    tracing::info!("shutting down");
    if let Some(grpc) = grpc {
        grpc.abort();
    }
    if let Some(ingester) = ingester {
        ingester
            .shutdown(config.server.graceful_shutdown_timeout.0)
            .await;
    }
    Ok(())
}

/// The querier: PromQL over every ingester of the ring (in-process or over gRPC) and the
/// store-gateways.
fn querier_api(
    config: &Config,
    overrides: Arc<Overrides>,
    local_ingester: Option<&Arc<Ingester>>,
    local_store_gateway: Option<&Arc<StoreGateway>>,
    instance_id: &str,
) -> anyhow::Result<ApiState> {
    let querier = &config.querier;
    let members = Ring::parse_members(&config.ingester.ring.static_members)?;
    let mut ingesters: Vec<Arc<dyn SeriesSource>> = Vec::new();
    let max_unavailable = if members.is_empty() {
        let local = local_ingester.context("-ingester.ring.static-members is empty and this process runs no ingester: list the ingesters as id=host:grpc-port,... so the querier can reach them")?;
        ingesters.push(local.clone());
        0
    } else {
        for member in &members {
            match local_ingester {
                Some(local) if member.id == instance_id => ingesters.push(local.clone()),
                _ => ingesters.push(Arc::new(
                    RemoteSource::new(&member.addr, querier.max_recv_msg_size).with_context(
                        || format!("ingester {} in -ingester.ring.static-members", member.id),
                    )?,
                )),
            }
        }
        let ring = Ring::new(members, config.ingester.ring.replication_factor)?;
        ring.replication_factor() - ring.quorum()
    };
    let mut store_gateways: Vec<Arc<dyn SeriesSource>> = Vec::new();
    if let Some(local) = local_store_gateway {
        store_gateways.push(local.clone());
    }
    for address in querier
        .store_gateway_addresses
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        store_gateways.push(Arc::new(
            RemoteSource::new(address, querier.max_recv_msg_size).with_context(|| {
                format!("store-gateway {address} in -querier.store-gateway-addresses")
            })?,
        ));
    }
    let fanout = Fanout::new(
        ingesters,
        max_unavailable,
        store_gateways,
        querier.query_ingesters_within.as_millis_i64(),
        querier.query_store_after.as_millis_i64(),
        querier
            .max_samples
            .saturating_mul(config.ingester.ring.replication_factor.max(1) + 1),
        Arc::new(strata_shared::time::now_ms),
    );
    let engine = Engine::new(EngineOptions::from_config(querier));
    tracing::info!(?fanout, "querier ready");
    Ok(ApiState::new(
        Arc::new(engine),
        Arc::new(fanout),
        overrides,
        config.auth.multitenancy_enabled,
        querier.timeout.0,
    ))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("received shutdown signal");
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(d) = &state.distributor {
        d.update_ring_metrics();
    }
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            buffer,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct RuntimeConfigQuery {
    mode: Option<String>,
}

/// `GET /runtime_config`: every overridden tenant's effective limits; `?mode=diff` only what
/// differs from the defaults (Mimir's endpoint).
async fn runtime_config(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<RuntimeConfigQuery>,
) -> impl IntoResponse {
    let diff = q.mode.as_deref() == Some("diff");
    (
        [("content-type", "text/yaml")],
        strata_shared::runtime_config::render(&state.overrides, diff),
    )
}

async fn index() -> Html<&'static str> {
    Html("<!DOCTYPE html><html><head><title>Strata</title></head><body><h1>Strata</h1><ul>\
<li><a href=\"/ready\">/ready</a></li><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/config\">/config</a></li><li><a href=\"/runtime_config\">/runtime_config</a> (<a href=\"/runtime_config?mode=diff\">diff</a>)</li>\
<li><a href=\"/ring\">/ring</a> (distributor)</li><li>POST /api/v1/push (distributor)</li><li>POST /ingester/flush (ingester)</li></ul></body></html>")
}
