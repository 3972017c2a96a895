//! Login and logout (API.md §2, §10): sessions with cookies and a bearer token, throttled, equal in answer and time
//! for unknown users, wrong passwords and inactive accounts.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use castellan_core::change::Change;
use castellan_core::fields::Fields;
use castellan_core::password;
use castellan_core::validate::{PASSWORD_MAX, USERNAME_MAX};
use castellan_store::WriteCtx;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::with_revision;
use crate::auth::credentials::new_secret;
use crate::auth::principal::{CSRF_COOKIE, ClientIp, Principal, SECRET_COOKIE, SID_COOKIE};
use crate::error::{ApiError, ApiResult, request_id};
use crate::extract::{JsonBody, write_ctx};
use crate::links::RequestOrigin;
use crate::repr::{UserOut, timestamp};
use crate::state::AppState;
use crate::telemetry::Login;

/// The login answer.
#[derive(Serialize, ToSchema)]
pub struct LoginOut {
    /// Session secret, usable as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends at the latest.
    pub expires_at: String,
    /// The value `X-CSRF-Token` must carry on cookie-authenticated unsafe requests.
    pub csrf_token: String,
    /// The logged-in user.
    pub user: UserOut,
}

/// `/auth/login/`, `/auth/logout/`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).merge(super::authenticated(OpenApiRouter::new().routes(routes!(logout))))
}

const BAD_LOGIN: &str = "Unable to log in with provided credentials.";

/// Log in with username and password.
#[utoipa::path(post, path = "/api/v1/auth/login/", tag = "auth",
    request_body = crate::bodies::LoginBody,
    responses((status = 200, body = LoginOut), (status = 400), (status = 401), (status = 429)))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestOrigin(origin): RequestOrigin,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    // A login cannot be previewed; refused before the throttle counts it.
    crate::dry_run::refuse_in_dry_run()?;
    let mut f = Fields::new(&body)?;
    let username = f.string("username", true, USERNAME_MAX);
    let password = f.string("password", true, PASSWORD_MAX);
    f.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::field("username", "This field is required."));
    };
    if let Some(wait) = state.throttle.retry_after(&username, ip) {
        state.telemetry.login(Login::Throttled);
        return Err(ApiError::Throttled(wait.as_secs().max(1)));
    }
    let record = state.store.login_record(&username).await?;
    let hash = record.as_ref().and_then(|r| r.password_hash.clone());
    let verified = state
        .hashing
        .try_run(move || match hash {
            Some(h) => password::verify(&password, &h),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await
        .inspect_err(|_| state.telemetry.login(Login::Throttled))?;
    let ctx = WriteCtx { actor: None, ip: Some(ip.to_string()), request_id: Some(request_id()) };
    let account = record.as_ref().map(|r| r.user.pk);
    let user = match record {
        Some(r) if verified && r.user.is_active => r.user,
        _ => {
            state.throttle.failure(&username, ip);
            state.telemetry.login(Login::Failure);
            state.store.audit(&ctx, Change::LoginFailed { user: account, username }).await?;
            return Err(ApiError::AuthenticationFailed(BAD_LOGIN.into()));
        }
    };
    state.throttle.success(&username, ip);
    state.telemetry.login(Login::Success);
    let secure = origin.starts_with("https://");
    start_session(&state, user, ip, &headers, secure, ctx).await
}

async fn start_session(
    state: &AppState,
    user: castellan_core::model::User,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    secure: bool,
    mut ctx: WriteCtx,
) -> ApiResult<Response> {
    let secret = new_secret("cs_");
    let csrf_token = new_secret("");
    let now = OffsetDateTime::now_utc();
    let ttl = time::Duration::try_from(state.config.session_ttl).unwrap_or(time::Duration::hours(12));
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let user_agent: String = user_agent.chars().take(512).collect();
    let hash = state.credentials.hash(&secret);
    let session = state.store.create_session(user.pk, &hash, &csrf_token, now, now + ttl, &ip.to_string(), &user_agent).await?;
    state.store.set_last_login(user.pk, now).await?;
    ctx.actor = Some((user.pk, user.username.clone()));
    state.store.audit(&ctx, Change::LoggedIn { user: user.pk, session: Some(session.pk) }).await?;
    let mut user = user;
    user.last_login = Some(now);
    let cookies = [
        cookie(SID_COOKIE, session.pk.to_string(), true, secure),
        cookie(SECRET_COOKIE, secret.clone(), true, secure),
        cookie(CSRF_COOKIE, csrf_token.clone(), false, secure),
    ];
    let body = LoginOut { token: secret, expires_at: timestamp(session.expires_at), csrf_token, user: UserOut::from(&user) };
    let revision = state.store.revision().await?;
    Ok(with_revision(revision, (AppendHeaders(cookies.map(|c| (header::SET_COOKIE, c))), axum::Json(body))))
}

fn cookie(name: &'static str, value: String, http_only: bool, secure: bool) -> String {
    Cookie::build((name, value)).path("/").http_only(http_only).secure(secure).same_site(SameSite::Lax).build().to_string()
}

fn expired_cookie(name: &'static str) -> String {
    Cookie::build((name, "")).path("/").max_age(time::Duration::ZERO).build().to_string()
}

/// End the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout/", tag = "auth", responses((status = 204), (status = 401)))]
async fn logout(State(state): State<AppState>, ClientIp(ip): ClientIp, principal: Principal) -> ApiResult<Response> {
    if let Some(session) = principal.session {
        state.store.delete_session(principal.user.pk, session).await?;
    }
    state.credentials.invalidate_user(principal.user.pk);
    let ctx = write_ctx(Some(&principal), ip);
    state.store.audit(&ctx, Change::LoggedOut { user: principal.user.pk }).await?;
    let cookies = [expired_cookie(SID_COOKIE), expired_cookie(SECRET_COOKIE), expired_cookie(CSRF_COOKIE)];
    let revision = state.store.revision().await?;
    Ok(with_revision(revision, (StatusCode::NO_CONTENT, AppendHeaders(cookies.map(|c| (header::SET_COOKIE, c))))))
}
