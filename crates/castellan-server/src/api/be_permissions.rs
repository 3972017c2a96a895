//! BE permission namespaces and BE permissions (API.md §7, seed 000): what a gateway matches a request's method and
//! path against. Definitions are written by superusers; assigning them to users needs the caller to hold them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::catalog::{BePermission, Catalog, Namespace};
use castellan_core::change::{CatalogEntry, CatalogRecord, Change};
use castellan_core::fields::Fields;
use castellan_core::routes::compile_path;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::catalog::{created_pk, link_users, require_be, require_namespace, require_superuser, stamp, users_seen, write};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk};
use crate::links::{Envelope, ListQuery};
use crate::state::AppState;

/// Routes of BE namespaces and permissions, under module `permissions`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "permissions",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_namespaces, create_namespace))
            .routes(routes!(get_namespace, delete_namespace))
            .routes(routes!(assign_namespace_users))
            .routes(routes!(remove_namespace_users))
            .routes(routes!(list_be, create_be))
            .routes(routes!(get_be, delete_be))
            .routes(routes!(assign_be_users))
            .routes(routes!(remove_be_users))
            .routes(routes!(assign_be_users_singular))
            .routes(routes!(remove_be_users_singular)),
    )
}

/// HTTP methods a BE permission may name.
const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];
/// Longest BE permission path expression.
const PATH_MAX: usize = 1000;

/// A BE permission namespace.
#[derive(Serialize, ToSchema)]
pub struct NamespaceOut {
    /// Primary key.
    pub pk: i64,
    /// Unique name.
    pub name: String,
    /// Users holding every BE permission of the namespace (visible ones, at most 1,000).
    pub users: Vec<i64>,
    /// Visible holders.
    pub users_count: i64,
    /// Holders the caller may not see.
    pub users_hidden: i64,
    /// Published by the server for its own routes.
    pub builtin: bool,
    /// Last change.
    pub modified_date: String,
    /// Creation.
    pub created_date: String,
}

/// A BE permission.
#[derive(Serialize, ToSchema)]
pub struct BePermissionOut {
    /// Primary key.
    pub pk: i64,
    /// `{namespace}-{action}-{path}` unless given.
    pub name: String,
    /// Namespace pk.
    pub namespace: i64,
    /// Lower-case HTTP method.
    pub action: String,
    /// Regular expression matched from the path's start, without the leading slash.
    pub path: String,
    /// Users holding it directly (visible ones, at most 1,000).
    pub users: Vec<i64>,
    /// Visible direct holders.
    pub users_count: i64,
    /// Direct holders the caller may not see.
    pub users_hidden: i64,
    /// Published by the server for one of its own routes.
    pub builtin: bool,
    /// A published route the server no longer serves.
    pub stale: bool,
    /// Last change.
    pub modified_date: String,
    /// Creation.
    pub created_date: String,
}

fn namespace_out(state: &AppState, caller: &Principal, catalog: &Catalog, n: &Namespace) -> NamespaceOut {
    let (users, users_count, users_hidden) = users_seen(state, caller, catalog.namespace_users.of(n.pk));
    NamespaceOut {
        pk: n.pk,
        name: n.name.clone(),
        users,
        users_count,
        users_hidden,
        builtin: n.builtin,
        modified_date: stamp(n.modified),
        created_date: stamp(n.created),
    }
}

fn be_out(state: &AppState, caller: &Principal, catalog: &Catalog, b: &BePermission) -> BePermissionOut {
    let (users, users_count, users_hidden) = users_seen(state, caller, catalog.be_users.of(b.pk));
    BePermissionOut {
        pk: b.pk,
        name: b.name.clone(),
        namespace: b.namespace,
        action: b.action.clone(),
        path: b.path.clone(),
        users,
        users_count,
        users_hidden,
        builtin: b.builtin,
        stale: b.stale,
        modified_date: stamp(b.modified),
        created_date: stamp(b.created),
    }
}

fn namespace_of(catalog: &Catalog, pk: i64) -> ApiResult<&Namespace> {
    catalog.namespaces.get(&pk).ok_or(ApiError::NotFound)
}

fn be_of(catalog: &Catalog, pk: i64) -> ApiResult<&BePermission> {
    catalog.be.get(&pk).ok_or(ApiError::NotFound)
}

/// List BE permission namespaces (`search` on the name).
#[utoipa::path(get, path = "/api/v1/be_permission_namespace/", tag = "be_permissions",
    responses((status = 200, body = Envelope<NamespaceOut>), (status = 401), (status = 403)))]
async fn list_namespaces(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<NamespaceOut>>> {
    let catalog = state.catalog.get();
    let search = q.search()?.map(|s| s.to_lowercase());
    let matching: Vec<&Namespace> =
        catalog.namespaces.values().filter(|n| search.as_ref().is_none_or(|s| n.name.to_lowercase().contains(s))).collect();
    Ok(axum::Json(q.paged(matching, |n| namespace_out(&state, &caller, &catalog, n))?))
}

/// One namespace.
#[utoipa::path(get, path = "/api/v1/be_permission_namespace/{pk}/", tag = "be_permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = NamespaceOut), (status = 401), (status = 403), (status = 404)))]
async fn get_namespace(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<axum::Json<NamespaceOut>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(namespace_out(&state, &caller, &catalog, namespace_of(&catalog, pk)?)))
}

/// Create a custom namespace (superusers only).
#[utoipa::path(post, path = "/api/v1/be_permission_namespace/", tag = "be_permissions",
    request_body = crate::bodies::NamespaceBody,
    responses((status = 201, body = NamespaceOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_namespace(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body)?;
    let name = f.line("name", true, 64);
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        f.error("name", "This field may not be blank.");
    }
    f.finish()?;
    require_superuser(&caller)?;
    let after = CatalogRecord { name, ..CatalogRecord::default() };
    let (change, catalog, revision) =
        write(&state, &caller, ip, Change::CatalogCreated { entry: CatalogEntry::BeNamespace, pk: 0, after: Box::new(after) })
            .await?;
    let out = namespace_out(&state, &caller, &catalog, namespace_of(&catalog, created_pk(&change))?);
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(out))))
}

/// Delete a custom namespace with its BE permissions (superusers only; published ones → 409).
#[utoipa::path(delete, path = "/api/v1/be_permission_namespace/{pk}/", tag = "be_permissions", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete_namespace(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    namespace_of(&state.catalog.get(), pk)?;
    require_superuser(&caller)?;
    let (_, _, revision) =
        write(&state, &caller, ip, Change::CatalogDeleted { entry: CatalogEntry::BeNamespace, pk, before: Box::default() })
            .await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

async fn namespace_users(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    add: bool,
) -> ApiResult<Response> {
    let target = (CatalogEntry::BeNamespace, pk);
    let (catalog, revision) = link_users(&state, ip, &caller, target, &body, add, |c| require_namespace(c, &caller, pk)).await?;
    Ok(with_revision(revision, axum::Json(namespace_out(&state, &caller, &catalog, namespace_of(&catalog, pk)?))))
}

/// Give users every BE permission of a namespace (the caller must hold them all).
#[utoipa::path(patch, path = "/api/v1/be_permission_namespace/{pk}/assign-users/", tag = "be_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = NamespaceOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_namespace_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    namespace_users(state, ip, caller, pk, body, true).await
}

/// Take a namespace from users (the caller must hold it).
#[utoipa::path(patch, path = "/api/v1/be_permission_namespace/{pk}/remove-users/", tag = "be_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = NamespaceOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_namespace_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    namespace_users(state, ip, caller, pk, body, false).await
}

/// List BE permissions (filters `namespace`, `action`, `search` on name and path).
#[utoipa::path(get, path = "/api/v1/be_permissions/", tag = "be_permissions",
    params(("namespace" = Option<i64>, Query), ("action" = Option<String>, Query), ("search" = Option<String>, Query)),
    responses((status = 200, body = Envelope<BePermissionOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_be(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<BePermissionOut>>> {
    let catalog = state.catalog.get();
    let namespaces = q.ints(&["namespace"])?;
    let actions: Vec<String> = q.strings(&["action"]).iter().map(|a| a.to_lowercase()).collect();
    let search = q.search()?.map(|s| s.to_lowercase());
    let matching: Vec<&BePermission> = catalog
        .be
        .values()
        .filter(|b| namespaces.is_empty() || namespaces.contains(&b.namespace))
        .filter(|b| actions.is_empty() || actions.contains(&b.action))
        .filter(|b| search.as_ref().is_none_or(|s| b.name.to_lowercase().contains(s) || b.path.to_lowercase().contains(s)))
        .collect();
    Ok(axum::Json(q.paged(matching, |b| be_out(&state, &caller, &catalog, b))?))
}

/// One BE permission.
#[utoipa::path(get, path = "/api/v1/be_permissions/{pk}/", tag = "be_permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = BePermissionOut), (status = 401), (status = 403), (status = 404)))]
async fn get_be(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<BePermissionOut>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(be_out(&state, &caller, &catalog, be_of(&catalog, pk)?)))
}

/// Reads a custom BE permission: `namespace`, `action` (an HTTP method), `path` (a regular expression), `name`.
fn read_be(catalog: &Catalog, body: &serde_json::Value) -> ApiResult<CatalogRecord> {
    let mut f = Fields::new(body)?;
    let namespace = f.pk("namespace", true);
    let action = f.string("action", true, 16).map(|a| a.to_lowercase());
    let path = f.string("path", true, PATH_MAX);
    let name = f.line("name", false, 1200);
    if namespace.is_some_and(|ns| !catalog.namespaces.contains_key(&ns)) {
        f.error("namespace", format!("Invalid pk \"{}\" - object does not exist.", namespace.unwrap_or_default()));
    }
    if action.as_deref().is_some_and(|a| !METHODS.contains(&a)) {
        f.error("action", format!("Expected one of {}.", METHODS.join(", ")));
    }
    if let Some(Err(why)) = path.as_deref().map(compile_path) {
        f.error("path", why);
    }
    f.finish()?;
    let ns_name = namespace.and_then(|ns| catalog.namespaces.get(&ns)).map(|n| n.name.clone()).unwrap_or_default();
    let (action, path) = (action.unwrap_or_default(), path.unwrap_or_default());
    let name = name.unwrap_or_else(|| format!("{ns_name}-{action}-{path}"));
    Ok(CatalogRecord { name: Some(name), namespace, action: Some(action), path: Some(path), ..CatalogRecord::default() })
}

/// Create a custom BE permission (superusers only); `path` must compile.
#[utoipa::path(post, path = "/api/v1/be_permissions/", tag = "be_permissions",
    request_body = crate::bodies::BePermissionBody,
    responses((status = 201, body = BePermissionOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_be(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let after = read_be(&state.catalog.get(), &body)?;
    require_superuser(&caller)?;
    let (change, catalog, revision) =
        write(&state, &caller, ip, Change::CatalogCreated { entry: CatalogEntry::BePermission, pk: 0, after: Box::new(after) })
            .await?;
    let out = be_out(&state, &caller, &catalog, be_of(&catalog, created_pk(&change))?);
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(out))))
}

/// Delete a custom BE permission (superusers only; published ones → 409).
#[utoipa::path(delete, path = "/api/v1/be_permissions/{pk}/", tag = "be_permissions", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete_be(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    be_of(&state.catalog.get(), pk)?;
    require_superuser(&caller)?;
    let (_, _, revision) =
        write(&state, &caller, ip, Change::CatalogDeleted { entry: CatalogEntry::BePermission, pk, before: Box::default() })
            .await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

async fn be_users(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    add: bool,
) -> ApiResult<Response> {
    let target = (CatalogEntry::BePermission, pk);
    let (catalog, revision) = link_users(&state, ip, &caller, target, &body, add, |c| require_be(c, &caller, &[pk])).await?;
    Ok(with_revision(revision, axum::Json(be_out(&state, &caller, &catalog, be_of(&catalog, pk)?))))
}

/// Give users a BE permission (the caller must hold it).
#[utoipa::path(patch, path = "/api/v1/be_permissions/{pk}/assign-users/", tag = "be_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = BePermissionOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_be_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    be_users(state, ip, caller, pk, body, true).await
}

/// Take a BE permission from users (the caller must hold it).
#[utoipa::path(patch, path = "/api/v1/be_permissions/{pk}/remove-users/", tag = "be_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = BePermissionOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_be_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    be_users(state, ip, caller, pk, body, false).await
}

/// Seed 000's singular spelling of `be_permissions/{pk}/assign-users/`.
#[utoipa::path(patch, path = "/api/v1/be_permission/{pk}/assign-users/", tag = "be_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = BePermissionOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_be_users_singular(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    be_users(state, ip, caller, pk, body, true).await
}

/// Seed 000's singular spelling of `be_permissions/{pk}/remove-users/`.
#[utoipa::path(patch, path = "/api/v1/be_permission/{pk}/remove-users/", tag = "be_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = BePermissionOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_be_users_singular(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    be_users(state, ip, caller, pk, body, false).await
}
