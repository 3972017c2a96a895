//! The caller's key/value data store (seed 004 `/user/me/data`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::change::Change;
use castellan_core::validate;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{authenticated, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathText, write_ctx};
use crate::state::AppState;

/// Largest value, as JSON text.
pub const VALUE_MAX: usize = 64 * 1024;
/// Largest total per user, as JSON text.
pub const TOTAL_MAX: usize = 1024 * 1024;

/// Routes that need only authentication.
pub fn router() -> OpenApiRouter<AppState> {
    authenticated(OpenApiRouter::new().routes(routes!(all_data)).routes(routes!(get_value, put_value, post_value, delete_value)))
}

fn checked_key(key: &str) -> ApiResult<()> {
    validate::data_key(key).map_err(|m| ApiError::field("key", m))
}

/// One key of the caller's data and its value.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DataEntry {
    /// The key.
    pub key: String,
    /// Any JSON value.
    pub value: Value,
}

/// Every key and value of the caller.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AllData {
    /// Each key's value.
    pub data: Map<String, Value>,
}

/// Every key and value of the caller.
#[utoipa::path(get, path = "/api/v1/active_user/data/", tag = "active_user",
    responses((status = 200, body = AllData), (status = 401)))]
async fn all_data(State(state): State<AppState>, caller: Principal) -> ApiResult<axum::Json<AllData>> {
    let data: Map<String, Value> = state.store.data_all(caller.user.pk).await?.into_iter().collect();
    Ok(axum::Json(AllData { data }))
}

/// One value.
#[utoipa::path(get, path = "/api/v1/active_user/data/{key}/", tag = "active_user", params(("key" = String, Path)),
    responses((status = 200, body = DataEntry), (status = 401), (status = 404)))]
async fn get_value(
    State(state): State<AppState>,
    caller: Principal,
    PathText(key): PathText<String>,
) -> ApiResult<axum::Json<DataEntry>> {
    checked_key(&key).map_err(|_| ApiError::NotFound)?;
    let value = state.store.data_get(caller.user.pk, &key).await?.ok_or(ApiError::NotFound)?;
    Ok(axum::Json(DataEntry { key, value }))
}

async fn store_value(state: AppState, ip: std::net::IpAddr, caller: Principal, key: String, value: Value) -> ApiResult<Response> {
    checked_key(&key)?;
    if value.to_string().len() > VALUE_MAX {
        return Err(ApiError::PayloadTooLarge(format!("A value may be at most {VALUE_MAX} bytes.")));
    }
    let created = state.store.data_put(caller.user.pk, &key, &value, TOTAL_MAX).await?;
    let event = Change::UserDataWritten { user: caller.user.pk, key: key.clone(), created };
    state.store.audit(&write_ctx(Some(&caller), ip), event).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(with_revision(state.store.revision().await?, (status, axum::Json(DataEntry { key, value }))))
}

/// Set a value (201 when the key is new, 200 when replaced).
#[utoipa::path(put, path = "/api/v1/active_user/data/{key}/", tag = "active_user", params(("key" = String, Path)),
    request_body(content = Value, description = "Any JSON value"),
    responses((status = 200, body = DataEntry), (status = 201, body = DataEntry), (status = 400), (status = 401), (status = 413)))]
async fn put_value(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathText(key): PathText<String>,
    JsonBody(value): JsonBody,
) -> ApiResult<Response> {
    store_value(state, ip, caller, key, value).await
}

/// Set a value (seed 004 uses POST; same as PUT).
#[utoipa::path(post, path = "/api/v1/active_user/data/{key}/", tag = "active_user", params(("key" = String, Path)),
    request_body(content = Value, description = "Any JSON value"),
    responses((status = 200, body = DataEntry), (status = 201, body = DataEntry), (status = 400), (status = 401), (status = 413)))]
async fn post_value(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathText(key): PathText<String>,
    JsonBody(value): JsonBody,
) -> ApiResult<Response> {
    store_value(state, ip, caller, key, value).await
}

/// Remove a value.
#[utoipa::path(delete, path = "/api/v1/active_user/data/{key}/", tag = "active_user", params(("key" = String, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
async fn delete_value(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathText(key): PathText<String>,
) -> ApiResult<Response> {
    checked_key(&key).map_err(|_| ApiError::NotFound)?;
    state.store.data_delete(caller.user.pk, &key).await?;
    let event = Change::UserDataDeleted { user: caller.user.pk, key };
    state.store.audit(&write_ctx(Some(&caller), ip), event).await?;
    Ok(with_revision(state.store.revision().await?, StatusCode::NO_CONTENT))
}
