//! FE permission groups (API.md §7, seed 000): FE permissions handed to users together. Whoever changes what a
//! group gives, or who is in it, must hold the FE permissions involved.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::catalog::{Catalog, FeGroup};
use castellan_core::change::{CatalogEntry, CatalogLink, CatalogRecord, Change};
use castellan_core::fields::Fields;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::catalog::{created_pk, keys, link_change, link_users, require_fe, stamp, users_seen, write};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk};
use crate::links::{Envelope, ListQuery};
use crate::state::AppState;
use crate::visibility::require_visible_users;

/// Routes of FE permission groups, under module `permissions`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "permissions",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_groups, create_group))
            .routes(routes!(get_group, replace_group, patch_group, delete_group))
            .routes(routes!(assign_users))
            .routes(routes!(remove_users))
            .routes(routes!(assign_permissions))
            .routes(routes!(remove_permissions)),
    )
}

/// An FE permission group.
#[derive(Serialize, ToSchema)]
pub struct FeGroupOut {
    /// Primary key.
    pub pk: i64,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Users in the group (visible ones, at most 1,000).
    pub users: Vec<i64>,
    /// Visible users.
    pub users_count: i64,
    /// Users the caller may not see.
    pub users_hidden: i64,
    /// FE permissions the group gives.
    pub fepermissions: Vec<i64>,
    /// Last change.
    pub modified_date: String,
    /// Creation.
    pub created_date: String,
}

/// A group's users after a change.
#[derive(Serialize, ToSchema)]
pub struct FeGroupUsersOut {
    /// The group.
    pub pk: i64,
    /// Its users (visible ones, at most 1,000).
    pub users: Vec<i64>,
    /// Visible users.
    pub users_count: i64,
    /// Users the caller may not see.
    pub users_hidden: i64,
}

/// A group's FE permissions after a change.
#[derive(Serialize, ToSchema)]
pub struct FeGroupPermissionsOut {
    /// The group.
    pub pk: i64,
    /// FE permissions it gives.
    pub fepermissions: Vec<i64>,
}

fn group_out(state: &AppState, caller: &Principal, catalog: &Catalog, g: &FeGroup) -> FeGroupOut {
    let (users, users_count, users_hidden) = users_seen(state, caller, catalog.fe_group_users.of(g.pk));
    FeGroupOut {
        pk: g.pk,
        name: g.name.clone(),
        description: g.description.clone(),
        users,
        users_count,
        users_hidden,
        fepermissions: permissions_of(catalog, g.pk),
        modified_date: stamp(g.modified),
        created_date: stamp(g.created),
    }
}

fn permissions_of(catalog: &Catalog, group: i64) -> Vec<i64> {
    catalog.fe_group_fe.of(group).iter().copied().collect()
}

fn group_of(catalog: &Catalog, pk: i64) -> ApiResult<&FeGroup> {
    catalog.fe_groups.get(&pk).ok_or(ApiError::NotFound)
}

/// List FE permission groups (`search` on the name).
#[utoipa::path(get, path = "/api/v1/fe_permission_groups/", tag = "fe_permissions",
    responses((status = 200, body = Envelope<FeGroupOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<FeGroupOut>>> {
    let catalog = state.catalog.get();
    let search = q.search()?.map(|s| s.to_lowercase());
    let matching: Vec<&FeGroup> =
        catalog.fe_groups.values().filter(|g| search.as_ref().is_none_or(|s| g.name.to_lowercase().contains(s))).collect();
    Ok(axum::Json(q.paged(matching, |g| group_out(&state, &caller, &catalog, g))?))
}

/// One FE permission group.
#[utoipa::path(get, path = "/api/v1/fe_permission_groups/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = FeGroupOut), (status = 401), (status = 403), (status = 404)))]
async fn get_group(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<FeGroupOut>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(group_out(&state, &caller, &catalog, group_of(&catalog, pk)?)))
}

/// Reads `{"name", "description", "users", "fepermissions"}`; `full` (POST, PUT) requires the name and replaces the
/// lists. The caller must see each user and hold each FE permission given or taken.
fn read_group(
    state: &AppState,
    caller: &Principal,
    catalog: &Catalog,
    body: &serde_json::Value,
    current: Option<i64>,
    full: bool,
) -> ApiResult<CatalogRecord> {
    let mut f = Fields::new(body)?;
    let name = f.line("name", full, 200);
    let description = f.nullable_string("description", false, 2000);
    let users = f.pk_list("users", false, 10_000);
    let fe = keys(&mut f, "fepermissions", false, |pk| catalog.fe.contains_key(&pk));
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        f.error("name", "This field may not be blank.");
    }
    f.finish()?;
    let (mut users, fe) = if full { (Some(users.unwrap_or_default()), Some(fe.unwrap_or_default())) } else { (users, fe) };
    if let Some(users) = &mut users {
        require_visible_users(state, caller, users, Some("users"))?;
        // A replaced list keeps the members the caller cannot see: it could not have named them.
        if let (Some(group), Some(viewer)) = (current, caller.viewer()) {
            let visible = state.directory.visible_users(viewer, crate::clock::now_micros());
            users.extend(catalog.fe_group_users.of(group).iter().filter(|pk| !visible.contains(**pk)));
        }
    }
    let before = current.map(|g| permissions_of(catalog, g)).unwrap_or_default();
    if let Some(after) = &fe {
        let changed: Vec<i64> =
            before.iter().chain(after).filter(|pk| before.contains(pk) != after.contains(pk)).copied().collect();
        require_fe(catalog, caller, &changed)?;
    }
    // New members gain everything the group gives.
    if users.is_some() {
        require_fe(catalog, caller, fe.as_deref().unwrap_or(&before))?;
    }
    Ok(CatalogRecord {
        name,
        description: description.or(full.then_some(None)),
        users,
        fe_permissions: fe,
        ..CatalogRecord::default()
    })
}

/// Create an FE permission group.
#[utoipa::path(post, path = "/api/v1/fe_permission_groups/", tag = "fe_permissions",
    request_body = crate::bodies::FeGroupBody,
    responses((status = 201, body = FeGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn create_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let after = read_group(&state, &caller, &state.catalog.get(), &body, None, true)?;
    let (change, catalog, revision) =
        write(&state, &caller, ip, Change::CatalogCreated { entry: CatalogEntry::FeGroup, pk: 0, after: Box::new(after) })
            .await?;
    let out = group_out(&state, &caller, &catalog, group_of(&catalog, created_pk(&change))?);
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(out))))
}

async fn update_group(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    full: bool,
) -> ApiResult<Response> {
    let current = state.catalog.get();
    group_of(&current, pk)?;
    let after = read_group(&state, &caller, &current, &body, Some(pk), full)?;
    let change = Change::CatalogUpdated { entry: CatalogEntry::FeGroup, pk, before: Box::default(), after: Box::new(after) };
    let (_, catalog, revision) = write(&state, &caller, ip, change).await?;
    Ok(with_revision(revision, axum::Json(group_out(&state, &caller, &catalog, group_of(&catalog, pk)?))))
}

/// Replace an FE permission group.
#[utoipa::path(put, path = "/api/v1/fe_permission_groups/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FeGroupBody,
    responses((status = 200, body = FeGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn replace_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update_group(state, ip, caller, pk, body, true).await
}

/// Change some fields of an FE permission group.
#[utoipa::path(patch, path = "/api/v1/fe_permission_groups/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FeGroupBody,
    responses((status = 200, body = FeGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn patch_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update_group(state, ip, caller, pk, body, false).await
}

/// Delete an FE permission group (the caller must hold what it gives: its users lose it).
#[utoipa::path(delete, path = "/api/v1/fe_permission_groups/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    let current = state.catalog.get();
    group_of(&current, pk)?;
    require_fe(&current, &caller, &permissions_of(&current, pk))?;
    let change = Change::CatalogDeleted { entry: CatalogEntry::FeGroup, pk, before: Box::default() };
    let (_, _, revision) = write(&state, &caller, ip, change).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

async fn group_users(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    add: bool,
) -> ApiResult<Response> {
    let target = (CatalogEntry::FeGroup, pk);
    let confers = |c: &Catalog| require_fe(c, &caller, &permissions_of(c, pk));
    let (catalog, revision) = link_users(&state, ip, &caller, target, &body, add, confers).await?;
    let (users, users_count, users_hidden) = users_seen(&state, &caller, catalog.fe_group_users.of(pk));
    Ok(with_revision(revision, axum::Json(FeGroupUsersOut { pk, users, users_count, users_hidden })))
}

async fn group_permissions(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    add: bool,
) -> ApiResult<Response> {
    let current = state.catalog.get();
    group_of(&current, pk)?;
    let mut f = Fields::new(&body)?;
    let fe = keys(&mut f, "fepermissions", true, |fe| current.fe.contains_key(&fe));
    f.finish()?;
    let fe = fe.unwrap_or_default();
    require_fe(&current, &caller, &fe)?;
    let (_, catalog, revision) =
        write(&state, &caller, ip, link_change(CatalogEntry::FeGroup, pk, CatalogLink::FePermissions, fe, add)).await?;
    Ok(with_revision(revision, axum::Json(FeGroupPermissionsOut { pk, fepermissions: permissions_of(&catalog, pk) })))
}

/// Add users to an FE permission group (the caller must hold what it gives); answers `{"pk", "users"}`.
#[utoipa::path(patch, path = "/api/v1/fe_permission_groups/{pk}/assign-users/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = FeGroupUsersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    group_users(state, ip, caller, pk, body, true).await
}

/// Remove users from an FE permission group (the caller must hold what it gives).
#[utoipa::path(patch, path = "/api/v1/fe_permission_groups/{pk}/remove-users/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = FeGroupUsersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    group_users(state, ip, caller, pk, body, false).await
}

/// Add FE permissions to a group (the caller must hold them); answers `{"pk", "fepermissions"}`.
#[utoipa::path(patch, path = "/api/v1/fe_permission_groups/{pk}/assign-permissions/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FePermissionsLinkBody,
    responses((status = 200, body = FeGroupPermissionsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_permissions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    group_permissions(state, ip, caller, pk, body, true).await
}

/// Remove FE permissions from a group (the caller must hold them).
#[utoipa::path(patch, path = "/api/v1/fe_permission_groups/{pk}/remove-permissions/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FePermissionsLinkBody,
    responses((status = 200, body = FeGroupPermissionsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_permissions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    group_permissions(state, ip, caller, pk, body, false).await
}
