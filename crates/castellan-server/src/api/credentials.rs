//! The caller's sessions and personal API tokens (API.md §2): secrets shown once, stored only as keyed hashes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::change::Change;
use castellan_core::fields::Fields;
use castellan_core::model::{ApiToken, NewToken, Session};
use castellan_core::permission::ModulePermissions;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{authenticated, with_revision};
use crate::auth::credentials::new_secret;
use crate::auth::principal::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::timestamp;
use crate::state::AppState;

/// Longest token name.
const TOKEN_NAME_MAX: usize = 100;
/// Characters of the secret kept to recognise a token by.
const PREFIX_LEN: usize = 10;

/// Routes that need only authentication.
pub fn router() -> OpenApiRouter<AppState> {
    authenticated(
        OpenApiRouter::new()
            .routes(routes!(list_sessions))
            .routes(routes!(delete_session))
            .routes(routes!(list_tokens, create_token))
            .routes(routes!(delete_token)),
    )
}

/// One of the caller's sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// Primary key.
    pub pk: i64,
    /// When it started.
    pub created_date: String,
    /// When it was last used (to the minute).
    pub last_used: String,
    /// When it ends at the latest.
    pub expires_at: String,
    /// Client address at login.
    pub ip: String,
    /// Client user agent at login.
    pub user_agent: String,
    /// Whether this request uses it.
    pub current: bool,
}

fn session_out(s: Session, current: Option<i64>) -> SessionOut {
    SessionOut {
        pk: s.pk,
        created_date: timestamp(s.created),
        last_used: timestamp(s.last_used),
        expires_at: timestamp(s.expires_at),
        ip: s.ip,
        user_agent: s.user_agent,
        current: current == Some(s.pk),
    }
}

/// A personal API token; `token` (the secret) appears only when it is created.
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    /// Primary key.
    pub pk: i64,
    /// The owner's label.
    pub name: String,
    /// The secret's first characters.
    pub prefix: String,
    /// When it was created.
    pub created_date: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was last used (to the minute).
    pub last_used: Option<String>,
    /// Its scopes as `"module.action"` names: it acts with these and its owner's current holdings both; `null` when
    /// it carries all of its owner's holdings.
    pub permissions: Option<Vec<String>>,
    /// The secret, only in the creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

fn token_out(t: ApiToken, secret: Option<String>) -> TokenOut {
    TokenOut {
        pk: t.pk,
        name: t.name,
        prefix: t.prefix,
        created_date: timestamp(t.created_date),
        expires_at: t.expires_at.map(timestamp),
        last_used: t.last_used.map(timestamp),
        permissions: t.permissions.as_ref().map(ModulePermissions::names),
        token: secret,
    }
}

/// Pages an in-memory list with the usual envelope.
fn page_of<T: Serialize>(q: &ListQuery, items: Vec<T>) -> ApiResult<axum::Json<Envelope<T>>> {
    let window = q.window()?;
    let (count, page) = q.page_of(window, items)?;
    Ok(axum::Json(q.envelope(window, count, page)))
}

/// The caller's sessions, newest first.
#[utoipa::path(get, path = "/api/v1/active_user/sessions/", tag = "active_user",
    responses((status = 200, body = Envelope<SessionOut>), (status = 401)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<SessionOut>>> {
    let sessions = state.store.list_sessions(caller.user.pk).await?;
    page_of(&q, sessions.into_iter().map(|s| session_out(s, caller.session)).collect())
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/active_user/sessions/{pk}/", tag = "active_user", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
async fn delete_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    state.store.delete_session(caller.user.pk, pk).await?;
    state.credentials.invalidate_user(caller.user.pk);
    // Logged as that session's logout, so that every other server drops it from its cache too.
    state.store.audit(&write_ctx(Some(&caller), ip), Change::LoggedOut { user: caller.user.pk }).await?;
    Ok(with_revision(state.store.revision().await?, StatusCode::NO_CONTENT))
}

/// The caller's API tokens, newest first (never their secrets).
#[utoipa::path(get, path = "/api/v1/active_user/tokens/", tag = "active_user",
    responses((status = 200, body = Envelope<TokenOut>), (status = 401)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<TokenOut>>> {
    let tokens = state.store.list_tokens(caller.user.pk).await?;
    page_of(&q, tokens.into_iter().map(|t| token_out(t, None)).collect())
}

/// Create an API token; its secret is shown in this answer only.
#[utoipa::path(post, path = "/api/v1/active_user/tokens/", tag = "active_user",
    request_body = crate::bodies::TokenBody,
    responses((status = 201, body = TokenOut), (status = 400), (status = 401), (status = 403)))]
async fn create_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if caller.token.is_some() {
        return Err(ApiError::PermissionDenied("Tokens cannot create tokens.".into()));
    }
    let mut f = Fields::new(&body)?;
    let name = f.line("name", true, TOKEN_NAME_MAX);
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        f.error("name", "This field may not be blank.");
    }
    let expires_at = f.future_time("expires_at", OffsetDateTime::now_utc());
    let permissions = f.raw("permissions").filter(|v| !v.is_null());
    f.finish()?;
    let permissions = match permissions {
        Some(value) => Some(scopes(&state, &caller, value).await?),
        None => None,
    };
    let secret = new_secret("ct_");
    let prefix: String = secret.chars().take(PREFIX_LEN).collect();
    let secret_hash = state.credentials.hash(&secret).to_vec();
    let new = NewToken { name: name.unwrap_or_default(), prefix, secret_hash, expires_at, permissions };
    let (token, revision) = state.store.create_token(&write_ctx(Some(&caller), ip), caller.user.pk, new).await?;
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(token_out(token, Some(secret))))))
}

/// A new token's scopes: `"module.action"` names of registered modules and their actions (400 naming
/// `permissions`), each held by the owner (API.md §11: 403 naming the first one the owner lacks).
async fn scopes(state: &AppState, caller: &Principal, value: &serde_json::Value) -> ApiResult<ModulePermissions> {
    let scopes = ModulePermissions::parse_names(value, "permissions")?;
    let modules = state.store.list_modules().await?;
    for (module, action) in scopes.pairs() {
        let Some(known) = modules.iter().find(|m| m.id == module) else {
            return Err(ApiError::field("permissions", format!("\"{module}\" is not a registered module.")));
        };
        if !crate::repr::module_actions(known).iter().any(|a| a == action) {
            return Err(ApiError::field("permissions", format!("\"{action}\" is not an action of module \"{module}\".")));
        }
    }
    if let Some((module, action)) = scopes.pairs().find(|(module, action)| !caller.holds_named(module, action)) {
        return Err(ApiError::PermissionDenied(format!("You cannot give a token {module}.{action}: you do not hold it.")));
    }
    Ok(scopes)
}

/// Revoke one of the caller's API tokens.
#[utoipa::path(delete, path = "/api/v1/active_user/tokens/{pk}/", tag = "active_user", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 404)))]
async fn delete_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    let revision = state.store.delete_token(&write_ctx(Some(&caller), ip), caller.user.pk, pk).await?;
    state.credentials.invalidate_user(caller.user.pk);
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}
