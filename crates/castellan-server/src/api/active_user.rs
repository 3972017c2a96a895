//! The caller's own account (seed 000 ActiveUserViewSet, seed 004 `/user/me`): profile with avatar upload,
//! password change, and avatars.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use castellan_core::fields::Fields;
use castellan_core::model::{User, UserChanges};
use castellan_core::password;
use castellan_core::permission::{Action, Permission};
use castellan_core::validate::{self, EMAIL_MAX, NAME_MAX, PASSWORD_MAX, USERNAME_MAX};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{authenticated, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, body_bytes, is_json, parse_json, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::passwords::{check_new_password, hash_password};
use crate::repr::{ActiveUserOut, ProfileOut, expand_groups};
use crate::state::AppState;

/// Largest avatar image.
pub const AVATAR_MAX: usize = 2 * 1024 * 1024;
/// Body limit of profile updates: the avatar plus the multipart framing and other fields.
const PROFILE_BODY_MAX: usize = AVATAR_MAX + 256 * 1024;

/// Routes that need only authentication.
pub fn router() -> OpenApiRouter<AppState> {
    authenticated(
        OpenApiRouter::new()
            .routes(routes!(get_active_user, replace_active_user, patch_active_user))
            .layer(DefaultBodyLimit::max(PROFILE_BODY_MAX))
            .routes(routes!(change_password))
            .routes(routes!(me))
            .routes(routes!(avatar)),
    )
}

async fn active_user_out(state: &AppState, q: &ListQuery, user: &User) -> ApiResult<ActiveUserOut> {
    let expanded = q.boolean("groups")?.unwrap_or(false);
    let out = expand_groups(state, std::slice::from_ref(user), expanded).await?.remove(0);
    let avatar = user.has_avatar.then(|| format!("{}/api/v1/users/{}/avatar/", q.origin(), user.pk));
    Ok(ActiveUserOut { user: out, userprofile: ProfileOut { pk: user.pk, avatar, phone_number: user.phone_number.clone() } })
}

/// The caller, as a one-item page (seed 000).
#[utoipa::path(get, path = "/api/v1/active_user/", tag = "active_user",
    params(("groups" = Option<bool>, Query, description = "Add `description` and `children` to each group")),
    responses((status = 200, body = Envelope<ActiveUserOut>), (status = 401)))]
async fn get_active_user(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<ActiveUserOut>>> {
    let user = state.store.get_user(caller.user.pk).await?;
    let out = active_user_out(&state, &q, &user).await?;
    Ok(axum::Json(Envelope { count: 1, next: None, previous: None, results: vec![out] }))
}

/// The caller, unpaged (seed 004 `/user/me`).
#[utoipa::path(get, path = "/api/v1/users/me/", tag = "active_user",
    params(("groups" = Option<bool>, Query)), responses((status = 200, body = ActiveUserOut), (status = 401)))]
async fn me(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<axum::Json<ActiveUserOut>> {
    let user = state.store.get_user(caller.user.pk).await?;
    Ok(axum::Json(active_user_out(&state, &q, &user).await?))
}

/// A profile update as read from JSON or multipart form data.
struct ProfileBody {
    fields: Value,
    avatar: Option<Vec<u8>>,
}

/// Reads JSON, or multipart with `userprofile.avatar` (alias `avatar`) as a file and other fields as text.
async fn read_profile_body(state: &AppState, req: Request) -> ApiResult<ProfileBody> {
    if is_json(req.headers()) {
        let bytes = body_bytes(req, state).await?;
        return Ok(ProfileBody { fields: parse_json(&bytes)?, avatar: None });
    }
    let multipart_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart_type {
        return Err(ApiError::UnsupportedMediaType("Expected application/json or multipart/form-data.".into()));
    }
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|_| ApiError::field("non_field_errors", "Malformed multipart body."))?;
    let mut fields = Map::new();
    let mut profile = Map::new();
    let mut avatar = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "userprofile.avatar" | "avatar" => avatar = Some(field.bytes().await.map_err(multipart_error)?.to_vec()),
            "userprofile.phone_number" | "phone_number" => {
                profile.insert("phone_number".into(), Value::String(field.text().await.map_err(multipart_error)?));
            }
            "username" | "email" | "first_name" | "last_name" => {
                fields.insert(name, Value::String(field.text().await.map_err(multipart_error)?));
            }
            // Passed on unread, so that the body's reader refuses it by name like an unknown JSON field.
            _ => {
                fields.insert(name, Value::Null);
            }
        }
    }
    if !profile.is_empty() {
        fields.insert("userprofile".into(), Value::Object(profile));
    }
    Ok(ProfileBody { fields: Value::Object(fields), avatar })
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(format!("The avatar may be at most {AVATAR_MAX} bytes."))
    } else if crate::serve::timed_out(&e) {
        crate::extract::body_timed_out()
    } else {
        ApiError::field("non_field_errors", "Malformed multipart body.")
    }
}

/// Validates a profile update into user changes; `replace` requires `username`.
fn profile_changes(body: ProfileBody, replace: bool) -> ApiResult<UserChanges> {
    let mut f = Fields::new(&body.fields)?;
    let username = f.string("username", replace, USERNAME_MAX).map(|u| validate::normalize_username(&u));
    if let Some(u) = &username {
        f.check("username", validate::username(u));
    }
    let email = f.string("email", false, EMAIL_MAX);
    if let Some(e) = &email {
        f.check("email", validate::email(e));
    }
    let mut changes = UserChanges {
        username,
        email,
        first_name: f.string("first_name", false, NAME_MAX),
        last_name: f.string("last_name", false, NAME_MAX),
        ..Default::default()
    };
    if let Some(profile) = f.object("userprofile") {
        let mut p = Fields::new(profile)?;
        changes.phone_number = p.nullable_string("phone_number", false, 16);
        if let Some(Some(phone)) = &changes.phone_number {
            p.check("phone_number", validate::phone_number(phone));
        }
        match p.raw("avatar") {
            None => {}
            Some(Value::Null) => changes.avatar = Some(None),
            Some(_) => p.error("avatar", "Upload the avatar as a file in multipart/form-data."),
        }
        f.absorb("userprofile", p);
    }
    f.finish()?;
    if let Some(bytes) = body.avatar {
        if bytes.len() > AVATAR_MAX {
            return Err(ApiError::PayloadTooLarge(format!("The avatar may be at most {AVATAR_MAX} bytes.")));
        }
        let content_type = validate::image_type(&bytes)
            .ok_or_else(|| ApiError::field("userprofile.avatar", "Upload a valid image: png, jpeg, gif or webp."))?;
        changes.avatar = Some(Some((content_type.to_string(), bytes)));
    }
    Ok(changes)
}

async fn update_profile(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    q: ListQuery,
    req: Request,
    replace: bool,
) -> ApiResult<Response> {
    let body = read_profile_body(&state, req).await?;
    let changes = profile_changes(body, replace)?;
    let (user, revision) = state.store.update_user(&write_ctx(Some(&caller), ip), caller.user.pk, changes).await?;
    state.credentials.invalidate_user(user.pk);
    let out = active_user_out(&state, &q, &user).await?;
    Ok(with_revision(revision, axum::Json(out)))
}

/// Replace the caller's profile (`username` required; JSON or multipart form data).
#[utoipa::path(put, path = "/api/v1/active_user/", tag = "active_user",
    request_body = crate::bodies::ProfileBody,
    responses((status = 200, body = ActiveUserOut), (status = 400), (status = 401), (status = 409), (status = 413), (status = 415)))]
async fn replace_active_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    q: ListQuery,
    req: Request,
) -> ApiResult<Response> {
    update_profile(state, ip, caller, q, req, true).await
}

/// Update some fields of the caller's profile (JSON or multipart form data).
#[utoipa::path(patch, path = "/api/v1/active_user/", tag = "active_user",
    request_body = crate::bodies::ProfileBody,
    responses((status = 200, body = ActiveUserOut), (status = 400), (status = 401), (status = 409), (status = 413), (status = 415)))]
async fn patch_active_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    q: ListQuery,
    req: Request,
) -> ApiResult<Response> {
    update_profile(state, ip, caller, q, req, false).await
}

/// Change the caller's password; other sessions end, this one stays.
#[utoipa::path(put, path = "/api/v1/active_user/change_password/", tag = "active_user",
    request_body = crate::bodies::PasswordChangeBody,
    responses((status = 200, description = "`{\"detail\": \"Password changed.\"}`"), (status = 400), (status = 401)))]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body)?;
    let old = f.string("old_password", true, PASSWORD_MAX);
    let new = f.string("new_password", true, PASSWORD_MAX);
    f.finish()?;
    let (Some(old), Some(new)) = (old, new) else { return Err(ApiError::field("new_password", "This field is required.")) };
    let current = state.store.password_hashes(caller.user.pk, 1).await?.into_iter().next();
    let old_ok = state.hashing.run(move || current.is_some_and(|h| password::verify(&old, &h))).await?;
    if !old_ok {
        return Err(ApiError::field("old_password", "Wrong password."));
    }
    check_new_password(&state, caller.user.org, Some(caller.user.pk), &new, &caller.user.username).await.map_err(
        |e| match e {
            ApiError::Validation(mut errors) => {
                errors.iter_mut().for_each(|e| e.field = "new_password".into());
                ApiError::Validation(errors)
            }
            other => other,
        },
    )?;
    let changes = UserChanges { password_hash: Some(hash_password(&state, new).await?), ..Default::default() };
    let (_, revision) = state.store.update_user(&write_ctx(Some(&caller), ip), caller.user.pk, changes).await?;
    state.store.end_credentials(&write_ctx(Some(&caller), ip), caller.user.pk, caller.session, false).await?;
    state.credentials.invalidate_user(caller.user.pk);
    Ok(with_revision(revision, axum::Json(json!({"detail": "Password changed."}))))
}

/// A user's avatar image (one's own needs only authentication; others' need `users.read`).
#[utoipa::path(get, path = "/api/v1/users/{pk}/avatar/", tag = "users", params(("pk" = i64, Path)),
    responses((status = 200, description = "The image", content_type = "image/*"), (status = 401), (status = 403), (status = 404)))]
async fn avatar(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<Response> {
    if pk != caller.user.pk {
        caller.require(Permission { module: "users", action: Action::Read })?;
    }
    let (content_type, bytes) = state.store.get_avatar(pk).await?.ok_or(ApiError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, max-age=60".to_string())], bytes)
        .into_response())
}
