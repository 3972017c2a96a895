//! Roles (API.md §5, seed 002): named sets of module permissions, assigned to users and groups of their organisation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::change::Change;
use castellan_core::engine::SubjectFact;
use castellan_core::fields::Fields;
use castellan_core::model::group::GROUP_NAME_MAX;
use castellan_core::validate::DESCRIPTION_MAX;
use castellan_store::{GroupFilter, GroupQuery, Role, StoreError};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::clock::now_micros;
use crate::dominance::require_role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::{EMBEDDED_MAX, GroupOut, UserOut, timestamp};
use crate::state::AppState;
use crate::visibility::{redact_groups, require_visible_users, visible_group, visible_role, visible_subset};
use crate::write::{Target, planned};

/// Most users or groups one assign/remove request may name.
const SUBJECTS_MAX: usize = 1000;

/// Routes of module `roles`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "roles",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_roles, create_role))
            .routes(routes!(get_role, replace_role, patch_role, delete_role))
            .routes(routes!(assign_users))
            .routes(routes!(remove_users))
            .routes(routes!(assign_groups))
            .routes(routes!(remove_groups))
            .routes(routes!(role_users))
            .routes(routes!(role_groups)),
    )
}

/// A role as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleOut {
    /// Primary key.
    pub pk: i64,
    /// Name, unique in its organisation.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owning organisation.
    pub org: i64,
    /// Users it is assigned to that the caller sees (at most 1,000).
    pub users: Vec<i64>,
    /// Number of users it is assigned to that the caller sees.
    pub users_count: i64,
    /// Number of users it is assigned to that the caller may not see.
    pub users_hidden: i64,
    /// Groups it is assigned to that the caller sees (at most 1,000).
    pub groups: Vec<i64>,
    /// Number of groups it is assigned to that the caller sees.
    pub groups_count: i64,
    /// Number of groups it is assigned to that the caller may not see.
    pub groups_hidden: i64,
    /// When it was created.
    pub created_date: String,
    /// When it last changed.
    pub modified_date: String,
}

impl RoleOut {
    /// The role as `caller` may see it: only the holders the caller sees are named, the others counted.
    fn seen_by(state: &AppState, caller: &Principal, r: &Role) -> Self {
        let (users, groups) = (visible_users(state, caller, r), visible_subset(state, caller, &r.groups));
        let (users_count, groups_count) = (users.len() as i64, groups.len() as i64);
        Self {
            pk: r.pk,
            name: r.name.clone(),
            description: r.description.clone(),
            org: r.org,
            users_hidden: r.users.len() as i64 - users_count,
            groups_hidden: r.groups.len() as i64 - groups_count,
            users: users.into_iter().take(EMBEDDED_MAX).collect(),
            groups: groups.into_iter().take(EMBEDDED_MAX).collect(),
            users_count,
            groups_count,
            created_date: timestamp(r.created_date),
            modified_date: timestamp(r.modified_date),
        }
    }
}

/// The users `r` is assigned to that `caller` sees, ascending.
fn visible_users(state: &AppState, caller: &Principal, r: &Role) -> Vec<i64> {
    match caller.viewer() {
        None => r.users.clone(),
        Some(viewer) => {
            let seen = state.directory.visible_users(viewer, now_micros());
            r.users.iter().copied().filter(|u| seen.contains(*u)).collect()
        }
    }
}

/// The users a role is assigned to that the caller sees, paged (the role's `users` names at most 1,000).
#[utoipa::path(get, path = "/api/v1/roles/{pk}/users/", tag = "roles", params(("pk" = i64, Path), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<UserOut>), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn role_users(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<UserOut>>> {
    let role = visible_role(&state, &caller, pk).await?;
    let window = q.window()?;
    let (count, pks) = q.page_of(window, visible_users(&state, &caller, &role))?;
    let mut users = state.store.get_users(&pks).await?;
    redact_groups(&state, &caller, &mut users);
    Ok(axum::Json(q.envelope(window, count, users.iter().map(UserOut::from).collect())))
}

/// The groups a role is assigned to that the caller sees, paged (the role's `groups` names at most 1,000).
#[utoipa::path(get, path = "/api/v1/roles/{pk}/groups/", tag = "roles", params(("pk" = i64, Path), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<GroupOut>), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn role_groups(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<GroupOut>>> {
    let role = visible_role(&state, &caller, pk).await?;
    let window = q.window()?;
    let groups = visible_subset(&state, &caller, &role.groups);
    let count = groups.len() as i64;
    q.check_page(window, count)?;
    let filter = GroupFilter { ids: groups, ..Default::default() };
    let page =
        state.store.list_groups(&GroupQuery { filter, ordering: Vec::new(), offset: window.offset, limit: window.limit }).await?;
    Ok(axum::Json(q.envelope(window, count, page.items.iter().map(GroupOut::from).collect())))
}

/// List roles of the caller's organisation (all for superusers).
#[utoipa::path(get, path = "/api/v1/roles/", tag = "roles", params(("search" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<RoleOut>), (status = 401), (status = 403)))]
async fn list_roles(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<axum::Json<Envelope<RoleOut>>> {
    let window = q.window()?;
    let search = q.search()?;
    let page = state.store.list_roles(caller.org_scope(), search.as_deref(), window.offset, window.limit).await?;
    q.check_page(window, page.count)?;
    Ok(axum::Json(q.envelope(window, page.count, page.items.iter().map(|r| RoleOut::seen_by(&state, &caller, r)).collect())))
}

fn read_role(body: &serde_json::Value, required: bool) -> ApiResult<(Option<String>, Option<String>, Option<i64>)> {
    let mut f = Fields::new(body)?;
    let name = f.line("name", required, GROUP_NAME_MAX);
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        f.error("name", "This field may not be blank.");
    }
    let description = f.string("description", false, DESCRIPTION_MAX);
    let org = f.pk("org", false);
    f.finish()?;
    Ok((name, description, org))
}

/// Create a role.
#[utoipa::path(post, path = "/api/v1/roles/", tag = "roles", request_body = crate::bodies::RoleBody,
    responses((status = 201, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let (name, description, org) = read_role(&body, true)?;
    let org = org.unwrap_or(caller.user.org);
    if caller.org_scope().is_some_and(|own| own != org) || state.store.get_org(org).await.is_err() {
        return Err(ApiError::field("org", "Invalid pk - object does not exist."));
    }
    let ctx = write_ctx(Some(&caller), ip);
    let (role, revision) =
        state.store.create_role(&ctx, &name.unwrap_or_default(), &description.unwrap_or_default(), org).await?;
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(RoleOut::seen_by(&state, &caller, &role)))))
}

/// One role.
#[utoipa::path(get, path = "/api/v1/roles/{pk}/", tag = "roles", params(("pk" = i64, Path)),
    responses((status = 200, body = RoleOut), (status = 401), (status = 403), (status = 404)))]
async fn get_role(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<RoleOut>> {
    Ok(axum::Json(RoleOut::seen_by(&state, &caller, &visible_role(&state, &caller, pk).await?)))
}

async fn update(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    pk: i64,
    body: &serde_json::Value,
    replace: bool,
) -> ApiResult<Response> {
    let role = visible_role(state, caller, pk).await?;
    let (name, description, org) = read_role(body, replace)?;
    if org.is_some_and(|o| o != role.org) {
        return Err(ApiError::field("org", "A role's organisation cannot be changed."));
    }
    let (role, revision) =
        state.store.update_role(&write_ctx(Some(caller), ip), pk, name.as_deref(), description.as_deref()).await?;
    Ok(with_revision(revision, axum::Json(RoleOut::seen_by(state, caller, &role))))
}

/// Replace a role (`name` required).
#[utoipa::path(put, path = "/api/v1/roles/{pk}/", tag = "roles", params(("pk" = i64, Path)), request_body = crate::bodies::RoleBody,
    responses((status = 200, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replace_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, pk, &body, true).await
}

/// Update some fields of a role.
#[utoipa::path(patch, path = "/api/v1/roles/{pk}/", tag = "roles", params(("pk" = i64, Path)), request_body = crate::bodies::RoleBody,
    responses((status = 200, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, pk, &body, false).await
}

/// Delete a role with its assignments and grants; the caller must hold what it confers.
#[utoipa::path(delete, path = "/api/v1/roles/{pk}/", tag = "roles", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    visible_role(&state, &caller, pk).await?;
    require_role(&state, &caller, pk)?;
    let revision = state.store.delete_role(&write_ctx(Some(&caller), ip), pk).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// Which kind of subject an assign/remove request names.
#[derive(Clone, Copy)]
enum Kind {
    Users,
    Groups,
}

/// Reads `{"users"|"groups": [pk...], "expires_at"?}`, checks each is visible (404 otherwise) and that the caller
/// holds what the role confers (§11), then assigns or removes.
async fn change(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    pk: i64,
    body: &serde_json::Value,
    kind: Kind,
    assign: bool,
) -> ApiResult<Response> {
    visible_role(state, caller, pk).await?;
    let field = match kind {
        Kind::Users => "users",
        Kind::Groups => "groups",
    };
    let mut f = Fields::new(body)?;
    let pks = f.pk_list(field, true, SUBJECTS_MAX).unwrap_or_default();
    let expires_at = if assign { f.future_time("expires_at", OffsetDateTime::now_utc()) } else { None };
    f.finish()?;
    let mut group_orgs = Vec::new();
    let subjects: Vec<SubjectFact> = match kind {
        Kind::Users => {
            require_visible_users(state, caller, &pks, None)?;
            pks.into_iter().map(SubjectFact::User).collect()
        }
        Kind::Groups => {
            for &group in &pks {
                group_orgs.push(visible_group(state, caller, group).await?.org);
            }
            pks.into_iter().map(SubjectFact::Group).collect()
        }
    };
    require_role(state, caller, pk)?;
    let ctx = write_ctx(Some(caller), ip);
    let expires_at = expires_at.map(crate::clock::micros_of);
    let plan = || async {
        let before = state.store.get_role(pk).await?.record();
        let snapshot = state.engine.snapshot();
        let user_orgs = subjects.iter().filter_map(|s| match s {
            SubjectFact::User(u) => Some(snapshot.index.user_org(*u)),
            _ => None,
        });
        if assign && user_orgs.chain(group_orgs.iter().map(|o| Some(*o))).any(|org| org != Some(before.org)) {
            return Err(StoreError::Conflict { constraint: "members".into() }.into());
        }
        drop(snapshot);
        let change = match assign {
            true => Change::role_assigned(pk, before, subjects.clone(), expires_at),
            false => Change::role_unassigned(pk, before, subjects.clone()),
        };
        Ok(vec![change])
    };
    let revision = planned(state, &ctx, &[Target::Role(pk)], plan).await.map_err(|e| match e {
        ApiError::Validation(_) => ApiError::field(field, "Subjects must belong to the role's organisation."),
        other => other,
    })?;
    let role = state.store.get_role(pk).await?;
    Ok(with_revision(revision, axum::Json(RoleOut::seen_by(state, caller, &role))))
}

/// Assign the role to users (`expires_at` optional).
#[utoipa::path(patch, path = "/api/v1/roles/{pk}/assign-users/", tag = "roles", params(("pk" = i64, Path)), request_body = crate::bodies::AddUsersBody,
    responses((status = 200, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    change(&state, ip, &caller, pk, &body, Kind::Users, true).await
}

/// Remove the role from users.
#[utoipa::path(patch, path = "/api/v1/roles/{pk}/remove-users/", tag = "roles", params(("pk" = i64, Path)), request_body = crate::bodies::RemoveUsersBody,
    responses((status = 200, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    change(&state, ip, &caller, pk, &body, Kind::Users, false).await
}

/// Assign the role to groups (`expires_at` optional).
#[utoipa::path(patch, path = "/api/v1/roles/{pk}/assign-groups/", tag = "roles", params(("pk" = i64, Path)), request_body = crate::bodies::AddGroupsBody,
    responses((status = 200, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_groups(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    change(&state, ip, &caller, pk, &body, Kind::Groups, true).await
}

/// Remove the role from groups.
#[utoipa::path(patch, path = "/api/v1/roles/{pk}/remove-groups/", tag = "roles", params(("pk" = i64, Path)), request_body = crate::bodies::RemoveGroupsBody,
    responses((status = 200, body = RoleOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_groups(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    change(&state, ip, &caller, pk, &body, Kind::Groups, false).await
}
