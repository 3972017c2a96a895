//! Organisations and their password policies (API.md §4, §8). Superusers create and delete organisations; a holder
//! of `orgs.update` may update only their own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::model::group::{parse_policy, slugify};
use castellan_core::model::{Org, OrgInput, WriteMode};
use castellan_core::password::PasswordPolicy;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::timestamp;
use crate::state::AppState;

/// Routes of module `orgs`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "orgs",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_orgs, create_org))
            .routes(routes!(get_org, replace_org, patch_org, delete_org))
            .routes(routes!(get_policy, put_policy)),
    )
}

/// An organisation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgOut {
    /// Primary key.
    pub pk: i64,
    /// Display name.
    pub name: String,
    /// URL-safe unique name.
    pub slug: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_date: String,
    /// When it last changed.
    pub modified_date: String,
}

impl From<&Org> for OrgOut {
    fn from(o: &Org) -> Self {
        Self {
            pk: o.pk,
            name: o.name.clone(),
            slug: o.slug.clone(),
            description: o.description.clone(),
            created_date: timestamp(o.created_date),
            modified_date: timestamp(o.modified_date),
        }
    }
}

/// A password policy as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyOut {
    /// Minimum characters.
    pub min_length: usize,
    /// Needs an upper-case letter.
    pub require_upper: bool,
    /// Needs a digit.
    pub require_digit: bool,
    /// Needs a special character.
    pub require_special: bool,
    /// Recent passwords (the current one included) a new one must differ from.
    pub history_count: usize,
}

impl From<PasswordPolicy> for PolicyOut {
    fn from(p: PasswordPolicy) -> Self {
        Self {
            min_length: p.min_length,
            require_upper: p.require_upper,
            require_digit: p.require_digit,
            require_special: p.require_special,
            history_count: p.history_count,
        }
    }
}

fn require_superuser(caller: &Principal, what: &str) -> ApiResult<()> {
    if caller.is_superuser() { Ok(()) } else { Err(ApiError::PermissionDenied(format!("Only a superuser can {what}."))) }
}

/// The organisation if the caller may see it (own organisation, or any for superusers), else 404.
async fn visible_org(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<Org> {
    if caller.org_scope().is_some_and(|own| own != pk) {
        return Err(ApiError::NotFound);
    }
    Ok(state.store.get_org(pk).await?)
}

/// List organisations (non-superusers see their own).
#[utoipa::path(get, path = "/api/v1/orgs/", tag = "orgs", params(("search" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<OrgOut>), (status = 401), (status = 403)))]
async fn list_orgs(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<axum::Json<Envelope<OrgOut>>> {
    let window = q.window()?;
    let search = q.search()?;
    let page = state.store.list_orgs(caller.org_scope(), search.as_deref(), window.offset, window.limit).await?;
    q.check_page(window, page.count)?;
    Ok(axum::Json(q.envelope(window, page.count, page.items.iter().map(OrgOut::from).collect())))
}

/// Create an organisation (superusers only).
#[utoipa::path(post, path = "/api/v1/orgs/", tag = "orgs", request_body = crate::bodies::OrgBody,
    responses((status = 201, body = OrgOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_org(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_superuser(&caller, "create organisations")?;
    let input = OrgInput::parse(&body, WriteMode::Create)?;
    let name = input.name.unwrap_or_default();
    let slug = input.slug.unwrap_or_else(|| slugify(&name));
    let (org, revision) =
        state.store.create_org(&write_ctx(Some(&caller), ip), &name, &slug, &input.description.unwrap_or_default()).await?;
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(OrgOut::from(&org)))))
}

/// Retrieve an organisation.
#[utoipa::path(get, path = "/api/v1/orgs/{pk}/", tag = "orgs", params(("pk" = i64, Path)),
    responses((status = 200, body = OrgOut), (status = 401), (status = 403), (status = 404)))]
async fn get_org(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<OrgOut>> {
    Ok(axum::Json(OrgOut::from(&visible_org(&state, &caller, pk).await?)))
}

async fn update(state: &AppState, ip: std::net::IpAddr, caller: &Principal, pk: i64, input: OrgInput) -> ApiResult<Response> {
    visible_org(state, caller, pk).await?;
    let ctx = write_ctx(Some(caller), ip);
    let (org, revision) =
        state.store.update_org(&ctx, pk, input.name.as_deref(), input.slug.as_deref(), input.description.as_deref()).await?;
    Ok(with_revision(revision, axum::Json(OrgOut::from(&org))))
}

/// Replace an organisation (`name` required).
#[utoipa::path(put, path = "/api/v1/orgs/{pk}/", tag = "orgs", params(("pk" = i64, Path)), request_body = crate::bodies::OrgBody,
    responses((status = 200, body = OrgOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replace_org(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, pk, OrgInput::parse(&body, WriteMode::Replace)?).await
}

/// Update some fields of an organisation.
#[utoipa::path(patch, path = "/api/v1/orgs/{pk}/", tag = "orgs", params(("pk" = i64, Path)), request_body = crate::bodies::OrgBody,
    responses((status = 200, body = OrgOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_org(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, pk, OrgInput::parse(&body, WriteMode::Patch)?).await
}

/// Delete an organisation without users, groups or objects (superusers only; 409 otherwise).
#[utoipa::path(delete, path = "/api/v1/orgs/{pk}/", tag = "orgs", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete_org(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    visible_org(&state, &caller, pk).await?;
    require_superuser(&caller, "delete organisations")?;
    let revision = state.store.delete_org(&write_ctx(Some(&caller), ip), pk).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// The organisation's password policy.
#[utoipa::path(get, path = "/api/v1/orgs/{pk}/password_policy/", tag = "orgs", params(("pk" = i64, Path)),
    responses((status = 200, body = PolicyOut), (status = 401), (status = 403), (status = 404)))]
async fn get_policy(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<PolicyOut>> {
    visible_org(&state, &caller, pk).await?;
    Ok(axum::Json(state.store.password_policy(pk).await?.into()))
}

/// Replace the organisation's password policy.
#[utoipa::path(put, path = "/api/v1/orgs/{pk}/password_policy/", tag = "orgs", params(("pk" = i64, Path)),
    request_body = crate::bodies::PasswordPolicyBody,
    responses((status = 200, body = PolicyOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn put_policy(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    visible_org(&state, &caller, pk).await?;
    let policy = parse_policy(&body)?;
    let revision = state.store.set_password_policy(&write_ctx(Some(&caller), ip), pk, &policy).await?;
    Ok(with_revision(revision, axum::Json(PolicyOut::from(policy))))
}
