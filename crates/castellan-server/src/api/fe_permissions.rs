//! FE permissions (API.md §7, seed 000): the tree of an application's UI, each node giving BE permissions. The
//! server ships the tree of its own admin UI below `is_superuser` (pk 1); applications define their own nodes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::catalog::{Catalog, FePermission};
use castellan_core::change::{CatalogEntry, CatalogLink, CatalogRecord, Change};
use castellan_core::fields::Fields;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::catalog::{created_pk, keys, link_change, link_users, require_fe, require_superuser, stamp, users_seen, write};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk};
use crate::links::{Envelope, ListQuery};
use crate::state::AppState;

/// Routes of FE permissions, under module `permissions`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "permissions",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_fe, create_fe))
            .routes(routes!(detailed_list))
            .routes(routes!(get_fe, replace_fe, patch_fe, delete_fe))
            .routes(routes!(assign_users))
            .routes(routes!(remove_users))
            .routes(routes!(assign_groups))
            .routes(routes!(remove_groups))
            .routes(routes!(assign_users_singular))
            .routes(routes!(remove_users_singular))
            .routes(routes!(assign_groups_singular))
            .routes(routes!(remove_groups_singular)),
    )
}

/// An FE permission.
#[derive(Serialize, ToSchema)]
pub struct FePermissionOut {
    /// Primary key.
    pub pk: i64,
    /// Display name.
    pub name: String,
    /// Slug, unique among its siblings.
    pub slug: String,
    /// The parent's path (null for a root).
    pub namespace_path: Option<String>,
    /// Slugs from below the root down to this node, joined with `.` (empty for a root).
    pub path: String,
    /// Users holding it directly (visible ones, at most 1,000).
    pub users: Vec<i64>,
    /// Visible direct holders.
    pub users_count: i64,
    /// Direct holders the caller may not see.
    pub users_hidden: i64,
    /// BE permissions it gives.
    pub be_permissions: Vec<i64>,
    /// FE permission groups holding it.
    pub fe_permission_groups: Vec<i64>,
    /// Parent node.
    pub parent: Option<i64>,
    /// Depth in the tree (a root is 0).
    pub depth: usize,
    /// Shipped by the server for its own admin UI.
    pub builtin: bool,
    /// Last change.
    pub modified_date: String,
    /// Creation.
    pub created_date: String,
}

/// An FE permission's users after a change.
#[derive(Serialize, ToSchema)]
pub struct FeUsersOut {
    /// The FE permission.
    pub pk: i64,
    /// Its direct holders (visible ones, at most 1,000).
    pub users: Vec<i64>,
    /// Visible direct holders.
    pub users_count: i64,
    /// Direct holders the caller may not see.
    pub users_hidden: i64,
}

/// An FE permission's groups after a change.
#[derive(Serialize, ToSchema)]
pub struct FeGroupsOut {
    /// The FE permission.
    pub pk: i64,
    /// FE permission groups holding it.
    pub fe_permission_groups: Vec<i64>,
}

/// A node of the whole tree, with whether the caller holds it.
#[derive(Serialize, ToSchema)]
pub struct FeNodeOut {
    /// Primary key.
    pub pk: i64,
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
    /// Path of slugs.
    pub path: String,
    /// Depth.
    pub depth: usize,
    /// BE permissions it gives.
    pub be_permissions: Vec<i64>,
    /// Whether the caller holds it.
    pub granted: bool,
    /// Child nodes.
    #[schema(no_recursion)]
    pub children: Vec<FeNodeOut>,
}

fn fe_out(state: &AppState, caller: &Principal, catalog: &Catalog, f: &FePermission) -> FePermissionOut {
    let (users, users_count, users_hidden) = users_seen(state, caller, catalog.fe_users.of(f.pk));
    FePermissionOut {
        pk: f.pk,
        name: f.name.clone(),
        slug: f.slug.clone(),
        namespace_path: catalog.fe_namespace_path(f.pk),
        path: catalog.fe_path(f.pk),
        users,
        users_count,
        users_hidden,
        be_permissions: catalog.fe_be.of(f.pk).iter().copied().collect(),
        fe_permission_groups: catalog.fe_group_fe.by(f.pk).iter().copied().collect(),
        parent: f.parent,
        depth: catalog.fe_depth(f.pk),
        builtin: f.builtin,
        modified_date: stamp(f.modified),
        created_date: stamp(f.created),
    }
}

fn fe_of(catalog: &Catalog, pk: i64) -> ApiResult<&FePermission> {
    catalog.fe.get(&pk).ok_or(ApiError::NotFound)
}

/// List FE permissions (filters `parent`, `depth`, `search` on name, slug and path).
#[utoipa::path(get, path = "/api/v1/fe_permissions/", tag = "fe_permissions",
    params(("parent" = Option<i64>, Query), ("search" = Option<String>, Query)),
    responses((status = 200, body = Envelope<FePermissionOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_fe(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<FePermissionOut>>> {
    let catalog = state.catalog.get();
    let parents = q.ints(&["parent"])?;
    let search = q.search()?.map(|s| s.to_lowercase());
    let matches = |f: &FePermission| {
        search.as_ref().is_none_or(|s| {
            f.name.to_lowercase().contains(s) || f.slug.contains(s.as_str()) || catalog.fe_path(f.pk).contains(s.as_str())
        })
    };
    let matching: Vec<&FePermission> = catalog
        .fe
        .values()
        .filter(|f| parents.is_empty() || f.parent.is_some_and(|p| parents.contains(&p)))
        .filter(|f| matches(f))
        .collect();
    Ok(axum::Json(q.paged(matching, |f| fe_out(&state, &caller, &catalog, f))?))
}

/// The whole tree, nested and unpaginated, with `granted` for the caller.
#[utoipa::path(get, path = "/api/v1/fe_permissions/detailed_list/", tag = "fe_permissions",
    responses((status = 200, body = Vec<FeNodeOut>), (status = 401), (status = 403)))]
async fn detailed_list(State(state): State<AppState>, caller: Principal) -> ApiResult<axum::Json<Vec<FeNodeOut>>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(nodes(&catalog, &caller, None, 0)))
}

fn nodes(catalog: &Catalog, caller: &Principal, parent: Option<i64>, depth: usize) -> Vec<FeNodeOut> {
    catalog
        .fe_children(parent)
        .map(|f| FeNodeOut {
            pk: f.pk,
            name: f.name.clone(),
            slug: f.slug.clone(),
            path: catalog.fe_path(f.pk),
            depth,
            be_permissions: catalog.fe_be.of(f.pk).iter().copied().collect(),
            granted: caller.is_superuser() || catalog.holds_fe(caller.user.pk, f.pk),
            children: nodes(catalog, caller, Some(f.pk), depth + 1),
        })
        .collect()
}

/// One FE permission.
#[utoipa::path(get, path = "/api/v1/fe_permissions/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    responses((status = 200, body = FePermissionOut), (status = 401), (status = 403), (status = 404)))]
async fn get_fe(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<FePermissionOut>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(fe_out(&state, &caller, &catalog, fe_of(&catalog, pk)?)))
}

fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len()) && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Reads `{"name", "slug", "parent", "be_permissions"}` for node `pk` (`None` when creating); `full` requires name
/// and slug (POST, PUT).
fn read_fe(catalog: &Catalog, body: &serde_json::Value, pk: Option<i64>, full: bool) -> ApiResult<CatalogRecord> {
    let mut f = Fields::new(body)?;
    let name = f.line("name", full, 200);
    let slug = f.string("slug", full, 64);
    let parent = match f.raw("parent") {
        None | Some(serde_json::Value::Null) => f.has("parent").then_some(None),
        Some(_) => f.pk("parent", false).map(Some),
    };
    let be_permissions = keys(&mut f, "be_permissions", false, |be| catalog.be.contains_key(&be));
    if slug.as_deref().is_some_and(|s| !valid_slug(s)) {
        f.error("slug", "Slugs are 1 to 64 lower-case letters, digits, `_` or `-`.");
    }
    match (parent.flatten(), pk) {
        (Some(p), _) if !catalog.fe.contains_key(&p) => f.error("parent", format!("Invalid pk \"{p}\" - object does not exist.")),
        (Some(p), Some(me)) if catalog.fe_is_within(p, me) => f.error("parent", "A node cannot move below itself."),
        _ => {}
    }
    f.finish()?;
    // PUT replaces: an absent parent or link list means none.
    let (parent, be_permissions) =
        if full { (Some(parent.flatten()), Some(be_permissions.unwrap_or_default())) } else { (parent, be_permissions) };
    Ok(CatalogRecord { name, slug, parent, be_permissions, ..CatalogRecord::default() })
}

/// Define an FE permission (superusers only).
#[utoipa::path(post, path = "/api/v1/fe_permissions/", tag = "fe_permissions",
    request_body = crate::bodies::FePermissionBody,
    responses((status = 201, body = FePermissionOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_fe(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let after = read_fe(&state.catalog.get(), &body, None, true)?;
    require_superuser(&caller)?;
    let (change, catalog, revision) =
        write(&state, &caller, ip, Change::CatalogCreated { entry: CatalogEntry::FePermission, pk: 0, after: Box::new(after) })
            .await?;
    let out = fe_out(&state, &caller, &catalog, fe_of(&catalog, created_pk(&change))?);
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(out))))
}

async fn update_fe(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    full: bool,
) -> ApiResult<Response> {
    let current = state.catalog.get();
    let node = fe_of(&current, pk)?;
    let after = read_fe(&current, &body, Some(pk), full)?;
    require_superuser(&caller)?;
    if node.builtin {
        return Err(ApiError::Conflict("The admin UI's own FE permissions are managed by the server.".into()));
    }
    let change = Change::CatalogUpdated { entry: CatalogEntry::FePermission, pk, before: Box::default(), after: Box::new(after) };
    let (_, catalog, revision) = write(&state, &caller, ip, change).await?;
    Ok(with_revision(revision, axum::Json(fe_out(&state, &caller, &catalog, fe_of(&catalog, pk)?))))
}

/// Replace an FE permission (superusers only; the shipped admin tree → 409).
#[utoipa::path(put, path = "/api/v1/fe_permissions/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FePermissionBody,
    responses((status = 200, body = FePermissionOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replace_fe(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update_fe(state, ip, caller, pk, body, true).await
}

/// Change some fields of an FE permission (superusers only; the shipped admin tree → 409).
#[utoipa::path(patch, path = "/api/v1/fe_permissions/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FePermissionBody,
    responses((status = 200, body = FePermissionOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_fe(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update_fe(state, ip, caller, pk, body, false).await
}

/// Delete an FE permission with the nodes below it (superusers only; the shipped admin tree → 409).
#[utoipa::path(delete, path = "/api/v1/fe_permissions/{pk}/", tag = "fe_permissions", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete_fe(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    fe_of(&state.catalog.get(), pk)?;
    require_superuser(&caller)?;
    let change = Change::CatalogDeleted { entry: CatalogEntry::FePermission, pk, before: Box::default() };
    let (_, _, revision) = write(&state, &caller, ip, change).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

async fn fe_users(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    add: bool,
) -> ApiResult<Response> {
    let target = (CatalogEntry::FePermission, pk);
    let (catalog, revision) = link_users(&state, ip, &caller, target, &body, add, |c| require_fe(c, &caller, &[pk])).await?;
    let (users, users_count, users_hidden) = users_seen(&state, &caller, catalog.fe_users.of(pk));
    Ok(with_revision(revision, axum::Json(FeUsersOut { pk, users, users_count, users_hidden })))
}

async fn fe_groups(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    pk: i64,
    body: serde_json::Value,
    add: bool,
) -> ApiResult<Response> {
    let current = state.catalog.get();
    fe_of(&current, pk)?;
    let mut f = Fields::new(&body)?;
    let groups = keys(&mut f, "fe_permission_groups", true, |g| current.fe_groups.contains_key(&g));
    f.finish()?;
    require_fe(&current, &caller, &[pk])?;
    let change = link_change(CatalogEntry::FePermission, pk, CatalogLink::FeGroups, groups.unwrap_or_default(), add);
    let (_, catalog, revision) = write(&state, &caller, ip, change).await?;
    let out = FeGroupsOut { pk, fe_permission_groups: catalog.fe_group_fe.by(pk).iter().copied().collect() };
    Ok(with_revision(revision, axum::Json(out)))
}

/// Give users an FE permission (the caller must hold it); answers `{"pk", "users"}`.
#[utoipa::path(patch, path = "/api/v1/fe_permissions/{pk}/assign-users/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = FeUsersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_users(state, ip, caller, pk, body, true).await
}

/// Take an FE permission from users (the caller must hold it).
#[utoipa::path(patch, path = "/api/v1/fe_permissions/{pk}/remove-users/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = FeUsersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_users(state, ip, caller, pk, body, false).await
}

/// Put an FE permission into FE permission groups (the caller must hold it); answers `{"pk", "fe_permission_groups"}`.
#[utoipa::path(patch, path = "/api/v1/fe_permissions/{pk}/assign-groups/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FeGroupsLinkBody,
    responses((status = 200, body = FeGroupsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_groups(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_groups(state, ip, caller, pk, body, true).await
}

/// Take an FE permission out of FE permission groups (the caller must hold it).
#[utoipa::path(patch, path = "/api/v1/fe_permissions/{pk}/remove-groups/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FeGroupsLinkBody,
    responses((status = 200, body = FeGroupsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_groups(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_groups(state, ip, caller, pk, body, false).await
}

/// Seed 000's singular spelling of `fe_permissions/{pk}/assign-users/`.
#[utoipa::path(patch, path = "/api/v1/fe_permission/{pk}/assign-users/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = FeUsersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_users_singular(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_users(state, ip, caller, pk, body, true).await
}

/// Seed 000's singular spelling of `fe_permissions/{pk}/remove-users/`.
#[utoipa::path(patch, path = "/api/v1/fe_permission/{pk}/remove-users/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::CatalogUsersBody,
    responses((status = 200, body = FeUsersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_users_singular(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_users(state, ip, caller, pk, body, false).await
}

/// Seed 000's singular spelling of `fe_permissions/{pk}/assign-groups/`.
#[utoipa::path(patch, path = "/api/v1/fe_permission/{pk}/assign-groups/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FeGroupsLinkBody,
    responses((status = 200, body = FeGroupsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_groups_singular(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_groups(state, ip, caller, pk, body, true).await
}

/// Seed 000's singular spelling of `fe_permissions/{pk}/remove-groups/`.
#[utoipa::path(patch, path = "/api/v1/fe_permission/{pk}/remove-groups/", tag = "fe_permissions", params(("pk" = i64, Path)),
    request_body = crate::bodies::FeGroupsLinkBody,
    responses((status = 200, body = FeGroupsOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_groups_singular(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    fe_groups(state, ip, caller, pk, body, false).await
}
