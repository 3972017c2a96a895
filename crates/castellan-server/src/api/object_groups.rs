//! Catalog groups and channel groups (API.md §7, seed 000): the members of a directory group hold `catalogs.access`
//! (`channels.access`) on each listed catalog (channel). They are object grants in the authorization model, so
//! checks, lookups, explain and effective permissions see them, through node restrictions like any grant.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::catalog::{Catalog, ObjectGroup, ObjectGroupKind};
use castellan_core::change::{CatalogEntry, CatalogRecord, Change};
use castellan_core::fields::Fields;
use castellan_core::permission::{Action, Permission};
use castellan_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::catalog::{created_pk, stamp, write};
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk};
use crate::links::{Envelope, ListQuery};
use crate::state::AppState;
use crate::visibility::require_visible_group;

/// Routes of catalog and channel groups, under module `groups`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "groups",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_catalog_groups, create_catalog_group))
            .routes(routes!(get_catalog_group, replace_catalog_group, patch_catalog_group, delete_catalog_group))
            .routes(routes!(list_channel_groups, create_channel_group))
            .routes(routes!(get_channel_group, replace_channel_group, patch_channel_group, delete_channel_group)),
    )
}

/// A catalog group.
#[derive(Serialize, ToSchema)]
pub struct CatalogGroupOut {
    /// Primary key.
    pub pk: i64,
    /// The group whose members hold `catalogs.access` on each catalog.
    pub group: i64,
    /// Catalog ids.
    pub catalogs: Vec<i64>,
    /// Last change.
    pub modified_date: String,
    /// Creation.
    pub created_date: String,
}

/// A channel group.
#[derive(Serialize, ToSchema)]
pub struct ChannelGroupOut {
    /// Primary key.
    pub pk: i64,
    /// The group whose members hold `channels.access` on each channel.
    pub group: i64,
    /// Channel ids.
    pub channels: Vec<i64>,
    /// Last change.
    pub modified_date: String,
    /// Creation.
    pub created_date: String,
}

impl From<&ObjectGroup> for CatalogGroupOut {
    fn from(g: &ObjectGroup) -> Self {
        Self {
            pk: g.pk,
            group: g.group,
            catalogs: g.items.clone(),
            modified_date: stamp(g.modified),
            created_date: stamp(g.created),
        }
    }
}

impl From<&ObjectGroup> for ChannelGroupOut {
    fn from(g: &ObjectGroup) -> Self {
        Self {
            pk: g.pk,
            group: g.group,
            channels: g.items.clone(),
            modified_date: stamp(g.modified),
            created_date: stamp(g.created),
        }
    }
}

fn entry(kind: ObjectGroupKind) -> CatalogEntry {
    match kind {
        ObjectGroupKind::Catalogs => CatalogEntry::CatalogGroup,
        ObjectGroupKind::Channels => CatalogEntry::ChannelGroup,
    }
}

/// The object group `pk` of `kind`, if the caller sees its directory group; 404 otherwise.
fn visible<'a>(
    state: &AppState,
    caller: &Principal,
    catalog: &'a Catalog,
    kind: ObjectGroupKind,
    pk: i64,
) -> ApiResult<&'a ObjectGroup> {
    let group = catalog.object_groups.get(&pk).filter(|g| g.kind == kind).ok_or(ApiError::NotFound)?;
    require_visible_group(state, caller, group.group)?;
    Ok(group)
}

fn list<T: Serialize>(
    state: &AppState,
    caller: &Principal,
    q: &ListQuery,
    kind: ObjectGroupKind,
    out: impl Fn(&ObjectGroup) -> T,
) -> ApiResult<Envelope<T>> {
    let catalog = state.catalog.get();
    let groups = q.ints(&["group"])?;
    let matching: Vec<&ObjectGroup> = catalog
        .object_groups
        .values()
        .filter(|g| g.kind == kind && (groups.is_empty() || groups.contains(&g.group)))
        .filter(|g| state.directory.sees_group(caller.viewer(), g.group, now_micros()))
        .collect();
    q.paged(matching, out)
}

/// Reads `{"group", "<items>"}` (`full`: both required) against the current object group, if any. Checks, in the
/// contract's order: the group is visible (404), items of another organisation (400), the field's own gate
/// (`permissions.update`) and dominance: the caller must hold `access` on every item given or taken.
async fn read(
    state: &AppState,
    caller: &Principal,
    kind: ObjectGroupKind,
    body: &serde_json::Value,
    current: Option<&ObjectGroup>,
    full: bool,
) -> ApiResult<CatalogRecord> {
    let module = kind.module();
    let mut f = Fields::new(body)?;
    let group = f.pk("group", full);
    let items = f.pk_list(module, full, 10_000);
    f.finish()?;
    let group = group.or(current.map(|g| g.group)).unwrap_or_default();
    let mut items = items.or_else(|| current.map(|g| g.items.clone())).unwrap_or_default();
    items.sort_unstable();
    let org = match state.store.get_group(group).await {
        Ok(found) => found.org,
        Err(StoreError::NotFound) if caller.is_superuser() => {
            return Err(ApiError::field("group", format!("Invalid pk \"{group}\" - object does not exist.")));
        }
        Err(e) => return Err(e.into()),
    };
    require_visible_group(state, caller, group)?;
    let snapshot = state.engine.snapshot();
    if let Some(item) = items.iter().find(|i| snapshot.index.object_org(module, &i.to_string()).is_some_and(|o| o != org)) {
        return Err(ApiError::field(module, format!("{module} {item} belongs to another organisation than the group.")));
    }
    if !caller.holds(Permission { module: "permissions", action: Action::Update }) {
        return Err(ApiError::PermissionDenied(format!("Changing {module} groups needs permission update on permissions.")));
    }
    // What changes hands: every item when the group changes, else the items added or removed.
    let before: BTreeSet<i64> = current.map(|g| g.items.iter().copied().collect()).unwrap_or_default();
    let after: BTreeSet<i64> = items.iter().copied().collect();
    let moved = current.is_some_and(|g| g.group != group);
    let changed: Vec<i64> = if moved || current.is_none() {
        before.union(&after).copied().collect()
    } else {
        before.symmetric_difference(&after).copied().collect()
    };
    let now = now_micros();
    if !changed.iter().all(|item| caller.holds_at(&snapshot.index, module, "access", Some((module, &item.to_string())), now)) {
        return Err(ApiError::PermissionDenied("You cannot confer or revoke permissions you do not hold.".into()));
    }
    Ok(CatalogRecord { group: Some(group), items: Some(items), ..CatalogRecord::default() })
}

async fn create<T: Serialize + for<'a> From<&'a ObjectGroup>>(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    kind: ObjectGroupKind,
    body: serde_json::Value,
) -> ApiResult<Response> {
    let after = read(&state, &caller, kind, &body, None, true).await?;
    let (change, catalog, revision) =
        write(&state, &caller, ip, Change::CatalogCreated { entry: entry(kind), pk: 0, after: Box::new(after) }).await?;
    let group = catalog.object_groups.get(&created_pk(&change)).ok_or(ApiError::NotFound)?;
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(T::from(group)))))
}

async fn update<T: Serialize + for<'a> From<&'a ObjectGroup>>(
    state: AppState,
    ip: std::net::IpAddr,
    caller: Principal,
    kind: ObjectGroupKind,
    pk: i64,
    body: serde_json::Value,
    full: bool,
) -> ApiResult<Response> {
    let current = state.catalog.get();
    let existing = visible(&state, &caller, &current, kind, pk)?;
    let after = read(&state, &caller, kind, &body, Some(existing), full).await?;
    let change = Change::CatalogUpdated { entry: entry(kind), pk, before: Box::default(), after: Box::new(after) };
    let (_, catalog, revision) = write(&state, &caller, ip, change).await?;
    let group = catalog.object_groups.get(&pk).ok_or(ApiError::NotFound)?;
    Ok(with_revision(revision, axum::Json(T::from(group))))
}

async fn delete(state: AppState, ip: std::net::IpAddr, caller: Principal, kind: ObjectGroupKind, pk: i64) -> ApiResult<Response> {
    let current = state.catalog.get();
    let existing = visible(&state, &caller, &current, kind, pk)?;
    // Deleting takes every item: the same checks as emptying the list.
    let emptied = serde_json::json!({ kind.module(): [] });
    read(&state, &caller, kind, &emptied, Some(existing), false).await?;
    let change = Change::CatalogDeleted { entry: entry(kind), pk, before: Box::default() };
    let (_, _, revision) = write(&state, &caller, ip, change).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// List catalog groups (filter `group`).
#[utoipa::path(get, path = "/api/v1/catalog_groups/", tag = "catalog_groups", params(("group" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<CatalogGroupOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_catalog_groups(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<CatalogGroupOut>>> {
    Ok(axum::Json(list(&state, &caller, &q, ObjectGroupKind::Catalogs, |g| CatalogGroupOut::from(g))?))
}

/// Create a catalog group (also needs `permissions.update`, and `catalogs.access` on each catalog).
#[utoipa::path(post, path = "/api/v1/catalog_groups/", tag = "catalog_groups", request_body = crate::bodies::CatalogGroupBody,
    responses((status = 201, body = CatalogGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn create_catalog_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    create::<CatalogGroupOut>(state, ip, caller, ObjectGroupKind::Catalogs, body).await
}

/// One catalog group.
#[utoipa::path(get, path = "/api/v1/catalog_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)),
    responses((status = 200, body = CatalogGroupOut), (status = 401), (status = 403), (status = 404)))]
async fn get_catalog_group(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<axum::Json<CatalogGroupOut>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(CatalogGroupOut::from(visible(&state, &caller, &catalog, ObjectGroupKind::Catalogs, pk)?)))
}

/// Replace a catalog group.
#[utoipa::path(put, path = "/api/v1/catalog_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)), request_body = crate::bodies::CatalogGroupBody,
    responses((status = 200, body = CatalogGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn replace_catalog_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update::<CatalogGroupOut>(state, ip, caller, ObjectGroupKind::Catalogs, pk, body, true).await
}

/// Change a catalog group's group or catalogs.
#[utoipa::path(patch, path = "/api/v1/catalog_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)), request_body = crate::bodies::CatalogGroupBody,
    responses((status = 200, body = CatalogGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn patch_catalog_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update::<CatalogGroupOut>(state, ip, caller, ObjectGroupKind::Catalogs, pk, body, false).await
}

/// Delete a catalog group (its members lose what it gave).
#[utoipa::path(delete, path = "/api/v1/catalog_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_catalog_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    delete(state, ip, caller, ObjectGroupKind::Catalogs, pk).await
}

/// List channel groups (filter `group`).
#[utoipa::path(get, path = "/api/v1/channel_groups/", tag = "catalog_groups", params(("group" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<ChannelGroupOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_channel_groups(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<ChannelGroupOut>>> {
    Ok(axum::Json(list(&state, &caller, &q, ObjectGroupKind::Channels, |g| ChannelGroupOut::from(g))?))
}

/// Create a channel group (also needs `permissions.update`, and `channels.access` on each channel).
#[utoipa::path(post, path = "/api/v1/channel_groups/", tag = "catalog_groups", request_body = crate::bodies::ChannelGroupBody,
    responses((status = 201, body = ChannelGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn create_channel_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    create::<ChannelGroupOut>(state, ip, caller, ObjectGroupKind::Channels, body).await
}

/// One channel group.
#[utoipa::path(get, path = "/api/v1/channel_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)),
    responses((status = 200, body = ChannelGroupOut), (status = 401), (status = 403), (status = 404)))]
async fn get_channel_group(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<axum::Json<ChannelGroupOut>> {
    let catalog = state.catalog.get();
    Ok(axum::Json(ChannelGroupOut::from(visible(&state, &caller, &catalog, ObjectGroupKind::Channels, pk)?)))
}

/// Replace a channel group.
#[utoipa::path(put, path = "/api/v1/channel_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)), request_body = crate::bodies::ChannelGroupBody,
    responses((status = 200, body = ChannelGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn replace_channel_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update::<ChannelGroupOut>(state, ip, caller, ObjectGroupKind::Channels, pk, body, true).await
}

/// Change a channel group's group or channels.
#[utoipa::path(patch, path = "/api/v1/channel_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)), request_body = crate::bodies::ChannelGroupBody,
    responses((status = 200, body = ChannelGroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn patch_channel_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update::<ChannelGroupOut>(state, ip, caller, ObjectGroupKind::Channels, pk, body, false).await
}

/// Delete a channel group (its members lose what it gave).
#[utoipa::path(delete, path = "/api/v1/channel_groups/{pk}/", tag = "catalog_groups", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_channel_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    delete(state, ip, caller, ObjectGroupKind::Channels, pk).await
}
