//! authentik-style permission assignment (seed 003, API.md §6): grants of `module.action` to users, roles and groups,
//! globally or on one object, with listings of who holds what where.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::change::Change;
use castellan_core::engine::SubjectFact;
use castellan_core::fields::Fields;
use castellan_core::permission::valid_module_id;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::module_actions;
use crate::state::AppState;
use crate::visibility::{visible_group, visible_role, visible_user};
use crate::write::{Target, planned};

/// Most permissions one assign/unassign request may name.
const PERMISSIONS_MAX: usize = 100;

/// Routes of module `permissions`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "permissions",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_permissions))
            .routes(routes!(by_users))
            .routes(routes!(by_roles))
            .routes(routes!(by_groups))
            .routes(routes!(assign_user))
            .routes(routes!(unassign_user))
            .routes(routes!(assign_role))
            .routes(routes!(unassign_role))
            .routes(routes!(assign_group))
            .routes(routes!(unassign_group)),
    )
}

/// One permission of the catalog.
#[derive(Serialize, ToSchema)]
pub struct PermissionOut {
    /// Position in the catalog.
    pub id: i64,
    /// `module.action`.
    pub codename: String,
    /// The module.
    pub model: String,
    /// A readable name.
    pub name: String,
}

/// Every permission: each module's actions, paged.
#[utoipa::path(get, path = "/api/v1/rbac/permissions/", tag = "rbac", responses((status = 200, body = Envelope<PermissionOut>), (status = 401), (status = 403)))]
async fn list_permissions(State(state): State<AppState>, q: ListQuery) -> ApiResult<axum::Json<Envelope<PermissionOut>>> {
    let modules = state.store.list_modules().await?;
    let all: Vec<PermissionOut> = modules
        .iter()
        .flat_map(|m| module_actions(m).into_iter().map(move |a| (m.id.clone(), a)))
        .enumerate()
        .map(|(i, (model, action))| PermissionOut {
            id: i as i64 + 1,
            codename: format!("{model}.{action}"),
            name: format!("Can {action} {model}"),
            model,
        })
        .collect();
    let window = q.window()?;
    let (count, page) = q.page_of(window, all)?;
    Ok(axum::Json(q.envelope(window, count, page)))
}

/// A subject holding permissions at the listed scope.
#[derive(Serialize, ToSchema)]
pub struct HolderOut {
    /// The subject's key.
    pub pk: i64,
    /// Username (users) or name (roles, groups).
    pub name: String,
    /// `module.action` held there.
    pub permissions: Vec<String>,
}

/// Which kind of subject a route is about.
#[derive(Clone, Copy)]
enum Kind {
    User,
    Role,
    Group,
}

impl Kind {
    fn store_name(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Role => "role",
            Kind::Group => "group",
        }
    }

    fn subject(self, pk: i64) -> SubjectFact {
        match self {
            Kind::User => SubjectFact::User(pk),
            Kind::Role => SubjectFact::Role(pk),
            Kind::Group => SubjectFact::Group(pk),
        }
    }
}

/// The subject's display name and organisation if the caller sees it, else 404.
async fn visible_subject(state: &AppState, caller: &Principal, kind: Kind, pk: i64) -> ApiResult<(String, i64)> {
    Ok(match kind {
        Kind::User => visible_user(state, caller, pk).await.map(|u| (u.username, u.org))?,
        Kind::Role => visible_role(state, caller, pk).await.map(|r| (r.name, r.org))?,
        Kind::Group => visible_group(state, caller, pk).await.map(|g| (g.name, g.org))?,
    })
}

/// The optional scope from `?model=&object_pk=`.
fn scope_of(q: &ListQuery) -> ApiResult<Option<(String, String)>> {
    match (q.one(&["model"]), q.one(&["object_pk"])) {
        (_, None | Some("")) => Ok(None),
        (Some(m), Some(k)) if valid_module_id(m) => Ok(Some((m.to_string(), k.to_string()))),
        _ => Err(ApiError::field("model", "A valid module id is required with object_pk.")),
    }
}

async fn holders(state: &AppState, caller: &Principal, q: &ListQuery, kind: Kind) -> ApiResult<axum::Json<Envelope<HolderOut>>> {
    let scope = scope_of(q)?;
    let object = scope.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
    let window = q.window()?;
    let everyone = state.store.holders_at(kind.store_name(), object).await?;
    let mut visible = Vec::new();
    for (pk, grants) in everyone {
        if let Ok((name, _)) = visible_subject(state, caller, kind, pk).await {
            visible.push(HolderOut { pk, name, permissions: grants.into_iter().map(|(m, a)| format!("{m}.{a}")).collect() });
        }
    }
    let (count, page) = q.page_of(window, visible)?;
    Ok(axum::Json(q.envelope(window, count, page)))
}

/// Users holding permissions globally, or on `?model=&object_pk=`.
#[utoipa::path(get, path = "/api/v1/rbac/permissions/assigned_by_users/", tag = "rbac", params(("model" = Option<String>, Query), ("object_pk" = Option<String>, Query)),
    responses((status = 200, body = Envelope<HolderOut>), (status = 400), (status = 401), (status = 403)))]
async fn by_users(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<axum::Json<Envelope<HolderOut>>> {
    holders(&state, &caller, &q, Kind::User).await
}

/// Roles holding permissions globally, or on `?model=&object_pk=`.
#[utoipa::path(get, path = "/api/v1/rbac/permissions/assigned_by_roles/", tag = "rbac", params(("model" = Option<String>, Query), ("object_pk" = Option<String>, Query)),
    responses((status = 200, body = Envelope<HolderOut>), (status = 400), (status = 401), (status = 403)))]
async fn by_roles(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<axum::Json<Envelope<HolderOut>>> {
    holders(&state, &caller, &q, Kind::Role).await
}

/// Groups holding permissions globally, or on `?model=&object_pk=`.
#[utoipa::path(get, path = "/api/v1/rbac/permissions/assigned_by_groups/", tag = "rbac", params(("model" = Option<String>, Query), ("object_pk" = Option<String>, Query)),
    responses((status = 200, body = Envelope<HolderOut>), (status = 400), (status = 401), (status = 403)))]
async fn by_groups(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<axum::Json<Envelope<HolderOut>>> {
    holders(&state, &caller, &q, Kind::Group).await
}

/// A parsed assign/unassign body.
struct Assignment {
    grants: Vec<(String, String)>,
    object: Option<(String, String)>,
    expires_at: Option<OffsetDateTime>,
}

/// Reads `{"permissions": [...], "model", "object_pk", "expires_at"}`: known permissions, all of `model` when given.
async fn read_assignment(state: &AppState, body: &Value, with_expiry: bool) -> ApiResult<Assignment> {
    let mut f = Fields::new(body)?;
    let listed: Vec<String> = match f.raw("permissions") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= PERMISSIONS_MAX => {
            items.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect()
        }
        Some(_) => {
            f.error("permissions", format!("Expected a list of 1 to {PERMISSIONS_MAX} permissions."));
            Vec::new()
        }
        None => {
            f.error("permissions", "This field is required.");
            Vec::new()
        }
    };
    let model = f.string("model", false, 64);
    let object_pk = f.object_key("object_pk");
    let expires_at = if with_expiry { f.future_time("expires_at", OffsetDateTime::now_utc()) } else { None };
    if object_pk.is_some() && model.is_none() {
        f.error("model", "This field is required with object_pk.");
    }
    f.finish()?;
    let modules = state.store.list_modules().await?;
    let mut grants = Vec::with_capacity(listed.len());
    for codename in listed {
        let Some((m, a)) = codename.split_once('.') else {
            return Err(ApiError::field("permissions", format!("\"{codename}\" is not \"module.action\".")));
        };
        if model.as_deref().is_some_and(|model| model != m) {
            return Err(ApiError::field(
                "permissions",
                format!("\"{codename}\" does not belong to model {}.", model.as_deref().unwrap_or("")),
            ));
        }
        let known = modules.iter().find(|x| x.id == m).is_some_and(|x| module_actions(x).iter().any(|x| x == a));
        if !known {
            return Err(ApiError::field("permissions", format!("\"{codename}\" is not a permission.")));
        }
        if !grants.contains(&(m.to_string(), a.to_string())) {
            grants.push((m.to_string(), a.to_string()));
        }
    }
    Ok(Assignment { grants, object: model.zip(object_pk), expires_at })
}

/// A grant ends up at the same or a narrower scope than the caller's own (§11 dominance), and never across orgs.
async fn check_grantable(state: &AppState, caller: &Principal, subject_org: i64, a: &Assignment) -> ApiResult<()> {
    let object = a.object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
    if let Some((model, key)) = object
        && let Some(registered) = state.store.find_object(model, key).await?
        && registered.org != subject_org
    {
        return Err(ApiError::field("object_pk", "Grants never cross organisations."));
    }
    let snapshot = state.engine.snapshot();
    let now = now_micros();
    for (module, action) in &a.grants {
        if !caller.holds_at(&snapshot.index, module, action, object, now) {
            return Err(ApiError::PermissionDenied(format!(
                "You cannot grant or revoke {module}.{action} here: you do not hold it."
            )));
        }
    }
    Ok(())
}

/// One assignment in force.
#[derive(Serialize, ToSchema)]
pub struct AssignmentOut {
    /// `module.action`.
    pub codename: String,
    /// The object's module, or null for global.
    pub model: Option<String>,
    /// The object's key, or null for global.
    pub object_pk: Option<String>,
}

async fn assign(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    kind: Kind,
    pk: i64,
    body: &Value,
) -> ApiResult<Response> {
    let (_, org) = visible_subject(state, caller, kind, pk).await?;
    let a = read_assignment(state, body, true).await?;
    check_grantable(state, caller, org, &a).await?;
    let object = a.object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
    let change = Change::GrantsAssigned {
        subject: kind.subject(pk),
        object: a.object.clone(),
        after: codenames(&a.grants),
        expires_at: a.expires_at.map(crate::clock::micros_of),
    };
    let revision = planned(state, &write_ctx(Some(caller), ip), &targets(&change), || async { Ok(vec![change.clone()]) }).await?;
    let in_force = state.store.grants_at(kind.subject(pk), object).await?;
    let out: Vec<AssignmentOut> = in_force
        .into_iter()
        .map(|(m, act)| AssignmentOut {
            codename: format!("{m}.{act}"),
            model: a.object.as_ref().map(|o| o.0.clone()),
            object_pk: a.object.as_ref().map(|o| o.1.clone()),
        })
        .collect();
    Ok(with_revision(revision, axum::Json(out)))
}

async fn unassign(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    kind: Kind,
    pk: i64,
    body: &Value,
) -> ApiResult<Response> {
    let (_, org) = visible_subject(state, caller, kind, pk).await?;
    let a = read_assignment(state, body, false).await?;
    check_grantable(state, caller, org, &a).await?;
    let change = Change::GrantsUnassigned { subject: kind.subject(pk), object: a.object.clone(), before: codenames(&a.grants) };
    let revision = planned(state, &write_ctx(Some(caller), ip), &targets(&change), || async { Ok(vec![change.clone()]) }).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// Global grants wait their turn with per-module writes of the same subject, whose `before` they would change.
fn targets(change: &Change) -> Vec<Target> {
    match change {
        Change::GrantsAssigned { subject, object: None, .. } | Change::GrantsUnassigned { subject, object: None, .. } => {
            vec![Target::Grants(*subject)]
        }
        _ => Vec::new(),
    }
}

/// (module, action) pairs as `module.action` codenames.
fn codenames(grants: &[(String, String)]) -> Vec<String> {
    grants.iter().map(|(module, action)| format!("{module}.{action}")).collect()
}

/// Assign permissions to a user, globally or on one object → the assignments in force there.
#[utoipa::path(post, path = "/api/v1/rbac/permissions/assigned_by_users/{pk}/assign/", tag = "rbac", params(("pk" = i64, Path)),
    request_body = crate::bodies::AssignBody,
    responses((status = 200, body = Vec<AssignmentOut>), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    assign(&state, ip, &caller, Kind::User, pk, &body).await
}

/// Unassign permissions from a user, globally or on one object.
#[utoipa::path(patch, path = "/api/v1/rbac/permissions/assigned_by_users/{pk}/unassign/", tag = "rbac", params(("pk" = i64, Path)),
    request_body = crate::bodies::UnassignBody,
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn unassign_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    unassign(&state, ip, &caller, Kind::User, pk, &body).await
}

/// Assign permissions to a role, globally or on one object → the assignments in force there.
#[utoipa::path(post, path = "/api/v1/rbac/permissions/assigned_by_roles/{pk}/assign/", tag = "rbac", params(("pk" = i64, Path)),
    request_body = crate::bodies::AssignBody,
    responses((status = 200, body = Vec<AssignmentOut>), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    assign(&state, ip, &caller, Kind::Role, pk, &body).await
}

/// Unassign permissions from a role, globally or on one object.
#[utoipa::path(patch, path = "/api/v1/rbac/permissions/assigned_by_roles/{pk}/unassign/", tag = "rbac", params(("pk" = i64, Path)),
    request_body = crate::bodies::UnassignBody,
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn unassign_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    unassign(&state, ip, &caller, Kind::Role, pk, &body).await
}

/// Assign permissions to a group, globally or on one object → the assignments in force there.
#[utoipa::path(post, path = "/api/v1/rbac/permissions/assigned_by_groups/{pk}/assign/", tag = "rbac", params(("pk" = i64, Path)),
    request_body = crate::bodies::AssignBody,
    responses((status = 200, body = Vec<AssignmentOut>), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    assign(&state, ip, &caller, Kind::Group, pk, &body).await
}

/// Unassign permissions from a group, globally or on one object.
#[utoipa::path(patch, path = "/api/v1/rbac/permissions/assigned_by_groups/{pk}/unassign/", tag = "rbac", params(("pk" = i64, Path)),
    request_body = crate::bodies::UnassignBody,
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn unassign_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    unassign(&state, ip, &caller, Kind::Group, pk, &body).await
}
