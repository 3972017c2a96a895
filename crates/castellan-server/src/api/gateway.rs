//! Forward authentication for reverse proxies (API.md §7, §10): nginx `auth_request`, Traefik ForwardAuth and Caddy
//! `forward_auth` ask `GET /api/v1/auth/forward/` about each request, passing the end user's cookies or
//! `Authorization` and the original method and URI. Answered from memory: the credential cache, the catalog's
//! compiled routes and the directory; no database call.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use castellan_core::routes::normalize_path;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authenticated;
use crate::auth::principal::Principal;
use crate::catalog::{RouteCheckOut, route_decision};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Needs only an authenticated caller: the end user the proxy forwards.
pub fn router() -> OpenApiRouter<AppState> {
    authenticated(OpenApiRouter::new().routes(routes!(forward)))
}

/// The first of `names` present in `headers`, as text.
fn first<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names.iter().find_map(|name| headers.get(*name)).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Decide a proxied request: 200 with `X-User-Id`, `X-Username` and `X-User-Groups` when one of the user's BE
/// permissions matches the original method and URI (`X-Forwarded-Method`/`X-Forwarded-Uri`, or
/// `X-Original-Method`/`X-Original-URI`), 401 without credentials, 403 otherwise (a path that cannot be normalised
/// unambiguously included).
#[utoipa::path(get, path = "/api/v1/auth/forward/", tag = "auth",
    params(("X-Forwarded-Method" = Option<String>, Header), ("X-Forwarded-Uri" = Option<String>, Header),
        ("X-Original-Method" = Option<String>, Header), ("X-Original-URI" = Option<String>, Header)),
    responses((status = 200, body = RouteCheckOut,
            headers(("X-User-Id" = i64), ("X-Username" = String), ("X-User-Groups" = String))),
        (status = 400), (status = 401), (status = 403)))]
async fn forward(State(state): State<AppState>, caller: Principal, headers: HeaderMap) -> ApiResult<Response> {
    let method = first(&headers, &["x-forwarded-method", "x-original-method"])
        .ok_or_else(|| ApiError::field("X-Forwarded-Method", "Send the original method here or in X-Original-Method."))?;
    let uri = first(&headers, &["x-forwarded-uri", "x-original-uri"])
        .ok_or_else(|| ApiError::field("X-Forwarded-Uri", "Send the original URI here or in X-Original-URI."))?;
    let path = normalize_path(uri).map_err(|why| ApiError::PermissionDenied(why.0.into()))?;
    let decision = route_decision(&state, &caller, caller.user.pk, method, &path);
    if !decision.allowed {
        return Err(ApiError::PermissionDenied("No BE permission of yours matches this request.".into()));
    }
    let groups = state.directory.groups_of(caller.user.pk, crate::clock::now_micros());
    let groups = groups.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let out = RouteCheckOut { allowed: true, be_permission: decision.be_permission };
    let mut response = axum::Json(out).into_response();
    let h = response.headers_mut();
    h.insert("x-user-id", HeaderValue::from(caller.user.pk));
    if let Ok(name) = HeaderValue::from_str(&caller.user.username) {
        h.insert("x-username", name);
    }
    if let Ok(groups) = HeaderValue::from_str(&groups) {
        h.insert("x-user-groups", groups);
    }
    Ok(response)
}
