//! Per-module permissions of roles, groups and users, exactly as seed 002 shows them for roles: an unpaginated list of
//! items, one item per module, and a PUT that replaces one module's actions (`[]` revokes them).

use axum::extract::{Path, State};
use axum::response::Response;
use castellan_core::change::{Change, GroupRecord};
use castellan_core::engine::SubjectFact;
use castellan_core::fields::Fields;
use castellan_core::permission::ModulePermissions;
use castellan_store::Module;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::dominance::require_covers;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, path_key, write_ctx};
use crate::repr::module_actions;
use crate::state::AppState;
use crate::visibility::{visible_group, visible_role, visible_user};
use crate::write::Target;

/// Routes of module `permissions`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "permissions",
        None,
        OpenApiRouter::new()
            .routes(routes!(role_items))
            .routes(routes!(role_item, put_role_item))
            .routes(routes!(group_items))
            .routes(routes!(group_item, put_group_item))
            .routes(routes!(user_items))
            .routes(routes!(user_item, put_user_item)),
    )
}

/// A link to the module.
#[derive(Debug, Serialize, ToSchema)]
pub struct Link {
    /// `/api/v1/modules/{id}/`.
    pub href: String,
    /// Always `module`.
    pub rel: &'static str,
    /// Always `GET`.
    #[serde(rename = "type")]
    pub method: &'static str,
}

/// One module's permissions of a subject (seed 002).
#[derive(Debug, Serialize, ToSchema)]
pub struct Item {
    /// Module id.
    pub module_id: String,
    /// The module's description.
    pub module_description: String,
    /// Whether the module is active.
    pub is_module_active: bool,
    /// Granted actions.
    pub permissions: Vec<String>,
    /// Link to the module.
    #[serde(rename = "_links")]
    pub links: Vec<Link>,
}

/// The seed 002 list body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items {
    /// One item per module with permissions.
    pub items: Vec<Item>,
}

fn item(module_id: &str, module: Option<&Module>, permissions: Vec<String>) -> Item {
    Item {
        module_id: module_id.to_string(),
        module_description: module.map(|m| m.description.clone()).unwrap_or_default(),
        is_module_active: module.is_none_or(|m| m.is_active),
        permissions,
        links: vec![Link { href: format!("/api/v1/modules/{module_id}/"), rel: "module", method: "GET" }],
    }
}

/// The subject's global module permissions, after checking it is visible (404 otherwise).
async fn held_by(state: &AppState, caller: &Principal, subject: SubjectFact) -> ApiResult<ModulePermissions> {
    match subject {
        SubjectFact::Group(pk) => Ok(visible_group(state, caller, pk).await?.permissions),
        SubjectFact::User(pk) => {
            visible_user(state, caller, pk).await?;
            grants_of(state, subject).await
        }
        SubjectFact::Role(pk) => {
            visible_role(state, caller, pk).await?;
            grants_of(state, subject).await
        }
    }
}

async fn grants_of(state: &AppState, subject: SubjectFact) -> ApiResult<ModulePermissions> {
    let mut held = ModulePermissions::new();
    for (module, actions) in state.store.module_grants(subject).await? {
        held.set(&module, &actions);
    }
    Ok(held)
}

async fn list(state: &AppState, caller: &Principal, subject: SubjectFact) -> ApiResult<axum::Json<Items>> {
    let held = held_by(state, caller, subject).await?;
    let modules = state.store.list_modules().await?;
    let items = held.to_map().into_iter().map(|(id, actions)| item(&id, modules.iter().find(|m| m.id == id), actions)).collect();
    Ok(axum::Json(Items { items }))
}

async fn one(state: &AppState, caller: &Principal, subject: SubjectFact, module_id: &str) -> ApiResult<axum::Json<Item>> {
    let held = held_by(state, caller, subject).await?;
    let module = state.store.get_module(module_id).await?;
    Ok(axum::Json(item(module_id, Some(&module), held.actions(module_id))))
}

/// Reads `{"permissions": [...]}`: unique values among the module's actions.
fn read_actions(body: &Value, module: &Module) -> ApiResult<Vec<String>> {
    let mut f = Fields::new(body)?;
    let permissions = f.raw("permissions");
    if permissions.is_none() {
        f.error("permissions", "This field is required.");
    }
    f.finish()?;
    let Some(value) = permissions else { return Err(ApiError::field("permissions", "This field is required.")) };
    let Some(items) = value.as_array() else { return Err(ApiError::field("permissions", "Expected a list of actions.")) };
    let allowed = module_actions(module);
    let mut actions: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        let Some(a) = i.as_str() else { return Err(ApiError::field("permissions", "Expected a list of action names.")) };
        if !allowed.iter().any(|x| x == a) {
            return Err(ApiError::field("permissions", format!("\"{a}\" is not an action of module {}.", module.id)));
        }
        if actions.iter().any(|x| x == a) {
            return Err(ApiError::field("permissions", format!("\"{a}\" is listed twice.")));
        }
        actions.push(a.to_string());
    }
    Ok(actions)
}

async fn put(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    subject: SubjectFact,
    module_id: &str,
    body: &Value,
) -> ApiResult<Response> {
    // An unseen subject is unknown (404) whatever the body says.
    held_by(state, caller, subject).await?;
    let module = state.store.get_module(module_id).await?;
    let actions = read_actions(body, &module)?;
    let ctx = write_ctx(Some(caller), ip);
    let revision = match subject {
        SubjectFact::Group(pk) => {
            // The rights are checked on the very group the change replaces (its `before`).
            let plan = || async {
                let group = visible_group(state, caller, pk).await?;
                let mut held = group.permissions.clone();
                require_covering(caller, module_id, &held.actions(module_id), &actions)?;
                held.set(module_id, &actions);
                let before = group.record();
                Ok(vec![Change::GroupUpdated { pk, after: GroupRecord { permissions: held.to_map(), ..before.clone() }, before }])
            };
            crate::write::planned(state, &ctx, &[Target::Group(pk)], plan).await?
        }
        _ => {
            let plan = || async {
                checked_held(state, caller, subject, module_id, &actions).await?;
                // Whatever the change replaces (its `before`, expired grants too) the caller must hold as well.
                let before = state.store.module_actions(subject, module_id).await?;
                require_covering(caller, module_id, &before, &actions)?;
                Ok(vec![Change::ModulePermissionsSet { subject, module: module_id.to_string(), before, after: actions.clone() }])
            };
            crate::write::planned(state, &ctx, &[Target::Grants(subject)], plan).await?
        }
    };
    let mut ordered = ModulePermissions::new();
    ordered.set(module_id, &actions);
    Ok(with_revision(revision, axum::Json(item(module_id, Some(&module), ordered.actions(module_id)))))
}

/// Checks the caller may replace what `subject` holds now in `module_id` with `actions`.
async fn checked_held(
    state: &AppState,
    caller: &Principal,
    subject: SubjectFact,
    module_id: &str,
    actions: &[String],
) -> ApiResult<()> {
    let held = held_by(state, caller, subject).await?;
    require_covering(caller, module_id, &held.actions(module_id), actions)
}

/// The caller must hold both `old` and `new` actions of `module_id` (API.md §11: no one grants or takes away what
/// they do not hold).
fn require_covering(caller: &Principal, module_id: &str, old: &[String], new: &[String]) -> ApiResult<()> {
    let mut touched = ModulePermissions::new();
    touched.set(module_id, new);
    let mut replaced = ModulePermissions::new();
    replaced.set(module_id, old);
    require_covers(caller, &touched)?;
    require_covers(caller, &replaced)
}

/// A role's permissions, per module (not paginated).
#[utoipa::path(get, path = "/api/v1/roles/{pk}/permissions/", tag = "permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = Items), (status = 401), (status = 403), (status = 404)))]
async fn role_items(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<Items>> {
    list(&state, &caller, SubjectFact::Role(pk)).await
}

/// A role's permissions on one module.
#[utoipa::path(get, path = "/api/v1/roles/{pk}/permissions/{module_id}/", tag = "permissions", params(("pk" = i64, Path), ("module_id" = String, Path)),
    responses((status = 200, body = Item), (status = 401), (status = 403), (status = 404)))]
async fn role_item(
    State(state): State<AppState>,
    caller: Principal,
    Path((pk, module)): Path<(String, String)>,
) -> ApiResult<axum::Json<Item>> {
    one(&state, &caller, SubjectFact::Role(path_key(&pk)?), &module).await
}

/// Replace a role's permissions on one module (`[]` revokes them).
#[utoipa::path(put, path = "/api/v1/roles/{pk}/permissions/{module_id}/", tag = "permissions", params(("pk" = i64, Path), ("module_id" = String, Path)),
    request_body = crate::bodies::ActionsBody,
    responses((status = 200, body = Item), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn put_role_item(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path((pk, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    put(&state, ip, &caller, SubjectFact::Role(path_key(&pk)?), &module, &body).await
}

/// A group's permissions, per module (not paginated).
#[utoipa::path(get, path = "/api/v1/groups/{pk}/permissions/", tag = "permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = Items), (status = 401), (status = 403), (status = 404)))]
async fn group_items(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<Items>> {
    list(&state, &caller, SubjectFact::Group(pk)).await
}

/// A group's permissions on one module.
#[utoipa::path(get, path = "/api/v1/groups/{pk}/permissions/{module_id}/", tag = "permissions", params(("pk" = i64, Path), ("module_id" = String, Path)),
    responses((status = 200, body = Item), (status = 401), (status = 403), (status = 404)))]
async fn group_item(
    State(state): State<AppState>,
    caller: Principal,
    Path((pk, module)): Path<(String, String)>,
) -> ApiResult<axum::Json<Item>> {
    one(&state, &caller, SubjectFact::Group(path_key(&pk)?), &module).await
}

/// Replace a group's permissions on one module (`[]` revokes them).
#[utoipa::path(put, path = "/api/v1/groups/{pk}/permissions/{module_id}/", tag = "permissions", params(("pk" = i64, Path), ("module_id" = String, Path)),
    request_body = crate::bodies::ActionsBody,
    responses((status = 200, body = Item), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn put_group_item(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path((pk, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    put(&state, ip, &caller, SubjectFact::Group(path_key(&pk)?), &module, &body).await
}

/// A user's direct permissions, per module (not paginated).
#[utoipa::path(get, path = "/api/v1/users/{pk}/permissions/", tag = "permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = Items), (status = 401), (status = 403), (status = 404)))]
async fn user_items(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<Items>> {
    list(&state, &caller, SubjectFact::User(pk)).await
}

/// A user's direct permissions on one module.
#[utoipa::path(get, path = "/api/v1/users/{pk}/permissions/{module_id}/", tag = "permissions", params(("pk" = i64, Path), ("module_id" = String, Path)),
    responses((status = 200, body = Item), (status = 401), (status = 403), (status = 404)))]
async fn user_item(
    State(state): State<AppState>,
    caller: Principal,
    Path((pk, module)): Path<(String, String)>,
) -> ApiResult<axum::Json<Item>> {
    one(&state, &caller, SubjectFact::User(path_key(&pk)?), &module).await
}

/// Replace a user's direct permissions on one module (`[]` revokes them).
#[utoipa::path(put, path = "/api/v1/users/{pk}/permissions/{module_id}/", tag = "permissions", params(("pk" = i64, Path), ("module_id" = String, Path)),
    request_body = crate::bodies::ActionsBody,
    responses((status = 200, body = Item), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn put_user_item(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path((pk, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    put(&state, ip, &caller, SubjectFact::User(path_key(&pk)?), &module, &body).await
}
