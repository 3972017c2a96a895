//! Castellan's HTTP server: the API of `API.md`, its OpenAPI document and docs page, health and metrics.

pub mod api;
pub mod auth;
pub mod bodies;
pub mod bootstrap;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod directory;
pub mod dominance;
pub mod dry_run;
pub mod engine;
pub mod error;
pub mod extract;
pub mod follow;
pub mod hashing;
pub mod links;
pub mod middleware;
pub mod openapi;
pub mod passwords;
pub mod plans;
pub mod repr;
pub mod serve;
pub mod shaped;
pub mod state;
pub mod telemetry;
pub mod visibility;
pub mod write;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use config::ServerConfig;
pub use openapi::openapi;
pub use state::AppState;

use crate::error::ApiError;

/// The application: every route, with authentication, limits, request ids, metrics and trailing-slash tolerance.
pub fn app(state: AppState) -> Router {
    let (api_routes, api) = api::router().split_for_parts();
    let doc = openapi::document(api);
    let docs =
        SwaggerUi::new("/api/docs").url("/api/v1/schema/", doc).config(Config::from("/api/v1/schema/").validator_url("none"));
    let routed = Router::new()
        .merge(api_routes)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), middleware::api))
        .merge(api::health::router())
        .merge(docs)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state);
    middleware::outer(routed)
}

/// Serves `app` on `listener` within the configured connection limits until `shutdown` completes; in-flight
/// requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = state.metrics.clone().map(|handle| tokio::spawn(metrics_upkeep(handle)));
    let limits = state.config.connections;
    let summaries = tokio::spawn(error::refusals::summarise());
    let served = serve::serve(listener, app(state), limits, shutdown).await;
    summaries.abort();
    upkeep.inspect(tokio::task::JoinHandle::abort);
    served
}

/// Latency buckets of the `_seconds` histograms, from 100 µs (a check) to 10 s (a large dry run).
const LATENCY_BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0];

/// Buckets of the `_size` and `_users` histograms (bulk checks, write groups, dry runs).
const SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

/// Installs the process-wide Prometheus recorder (once); `None` if another recorder is already installed.
/// Durations are histograms with [`LATENCY_BUCKETS`] (aggregatable across replicas, unlike quantiles).
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .ok()?
        .set_buckets_for_metric(Matcher::Suffix("_size".into()), &SIZE_BUCKETS)
        .ok()?
        .set_buckets_for_metric(Matcher::Suffix("_users".into()), &SIZE_BUCKETS)
        .ok()?
        .install_recorder()
        .ok()
}

/// Folds recorded histogram samples into their buckets every few seconds. The recorder queues every sample until
/// then (about 27 bytes a request): without upkeep, a server nobody scrapes grows by a gigabyte per 40 million
/// requests.
async fn metrics_upkeep(handle: metrics_exporter_prometheus::PrometheusHandle) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}
