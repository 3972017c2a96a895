//! Liveness, readiness and Prometheus metrics (no authentication).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready while the store answers and the index is at most `ready_max_lag` revisions behind it.
async fn readyz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    state.store.ping().await.map_err(|e| ApiError::Unavailable(format!("store unreachable: {e}")))?;
    let lag = index_lag(&state).await?;
    if lag > state.config.ready_max_lag {
        return Err(ApiError::Unavailable(format!("the index is {lag} revisions behind the store")));
    }
    Ok(axum::Json(json!({"status": "ready", "index_lag": lag})))
}

/// How many revisions the in-memory index is behind the store.
async fn index_lag(state: &AppState) -> ApiResult<u64> {
    let stored = state.store.revision().await.map_err(|e| ApiError::Unavailable(format!("store unreachable: {e}")))?;
    Ok(u64::try_from(stored - state.engine.revision()).unwrap_or(0))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("castellan_index_revision").set(state.engine.revision() as f64);
    metrics::counter!("castellan_connections_refused_total")
        .absolute(crate::serve::CONNECTIONS_REFUSED.load(std::sync::atomic::Ordering::Relaxed));
    if let Ok(lag) = index_lag(&state).await {
        metrics::gauge!("castellan_index_lag_revisions").set(lag as f64);
    }
    let body = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
