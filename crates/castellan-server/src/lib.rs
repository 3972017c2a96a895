//! Castellan's HTTP server: the API of `API.md`, its OpenAPI document and docs page, health and metrics.

pub mod api;
pub mod auth;
pub mod bootstrap;
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
pub mod passwords;
pub mod repr;
pub mod state;
pub mod visibility;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use utoipa::OpenApi;
use utoipa_swagger_ui::{Config, SwaggerUi};

pub use config::ServerConfig;
pub use state::AppState;

use crate::error::ApiError;

#[derive(OpenApi)]
#[openapi(info(title = "Castellan", description = "Users, groups, roles and permissions."))]
struct ApiDoc;

/// The whole OpenAPI 3.1 document, generated from the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = api::router().split_for_parts();
    document(api)
}

/// The routes' description inside the document's frame, with the parameters middleware adds.
fn document(routes: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    dry_run::document(&mut doc);
    doc
}

/// The application: every route, with authentication, limits, request ids, metrics and trailing-slash tolerance.
pub fn app(state: AppState) -> Router {
    let (api_routes, api) = api::router().split_for_parts();
    let doc = document(api);
    let docs =
        SwaggerUi::new("/api/docs").url("/api/v1/schema/", doc).config(Config::from("/api/v1/schema/").validator_url("none"));
    let routed = Router::new()
        .merge(api_routes)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), dry_run::dry_run))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::follow_writes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::principal::authenticate))
        .merge(api::health::router())
        .merge(docs)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state);
    middleware::outer(routed)
}

/// Serves `app` on `listener` until `shutdown` completes; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let summaries = tokio::spawn(error::refusals::summarise());
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    summaries.abort();
    served
}

/// Installs the process-wide Prometheus recorder (once); `None` if another recorder is already installed.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok()
}
