//! Groups (seeds 000, 001, 004): a tree per organisation with conferred module permissions; children, members
//! (optionally recursive), assign/remove users.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::change::Change;
use castellan_core::engine::SubjectFact;
use castellan_core::fields::Fields;
use castellan_core::model::{GroupInput, WriteMode};
use castellan_core::permission::{Action, Permission};
use castellan_store::{Group, GroupFilter, GroupOrder, GroupQuery, NewGroup, StoreError, UserFilter, UserQuery};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::dominance::{require_confer, require_covers, require_role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::{GroupOut, UserOut, module_actions};
use crate::state::AppState;
use crate::visibility::{
    groups_seen, redact_groups, require_visible_group, require_visible_users, users_seen, users_within, visible_group,
    visible_role,
};
use crate::write::Target;

/// Most users one assign/remove request may name, and most members embedded in a group.
pub const MEMBERS_MAX: usize = 1000;

/// Routes of module `groups`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "groups",
        None,
        OpenApiRouter::new()
            .routes(routes!(list_groups, create_group))
            .routes(routes!(get_group, replace_group, patch_group, delete_group))
            .routes(routes!(children))
            .routes(routes!(members))
            .routes(routes!(assign_users))
            .routes(routes!(remove_users)),
    )
}

/// A group with its (visible) direct members, after assign/remove.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMembersOut {
    /// The group.
    #[serde(flatten)]
    pub group: GroupOut,
    /// Visible direct members' keys (at most 1,000; page `/users/` for all).
    pub users: Vec<i64>,
    /// Number of visible direct members.
    pub users_count: i64,
    /// Number of direct members the caller may not see.
    pub users_hidden: i64,
}

async fn group_page(
    state: &AppState,
    caller: &Principal,
    q: &ListQuery,
    mut filter: GroupFilter,
) -> ApiResult<Envelope<GroupOut>> {
    if let Some(own) = caller.org_scope() {
        filter.orgs.retain(|o| *o == own);
        if filter.orgs.is_empty() {
            filter.orgs.push(if q.all(&["org"]).is_empty() { own } else { 0 });
        }
    }
    filter.within = groups_seen(state, caller);
    let ordering = q.ordering_of(GroupOrder::parse)?;
    let window = q.window()?;
    let page = state.store.list_groups(&GroupQuery { filter, ordering, offset: window.offset, limit: window.limit }).await?;
    q.check_page(window, page.count)?;
    Ok(q.envelope(window, page.count, page.items.iter().map(GroupOut::from).collect()))
}

/// List groups.
#[utoipa::path(get, path = "/api/v1/groups/", tag = "groups",
    params(("id" = Option<i64>, Query), ("name" = Option<String>, Query), ("org" = Option<i64>, Query),
        ("parent" = Option<String>, Query, description = "A group key, or `null` for roots"),
        ("search" = Option<String>, Query), ("ordering" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<GroupOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<GroupOut>>> {
    let parent = match q.one(&["parent"]) {
        None | Some("") => None,
        Some("null") | Some("none") => Some(None),
        Some(raw) => Some(Some(raw.parse::<i64>().map_err(|_| ApiError::field("parent", "Enter a whole number or null."))?)),
    };
    let filter = GroupFilter {
        ids: q.ints(&["id", "pk"])?,
        names: q.strings(&["name"]),
        orgs: q.ints(&["org"])?,
        parent,
        search: q.search()?,
        ..Default::default()
    };
    Ok(axum::Json(group_page(&state, &caller, &q, filter).await?))
}

/// Checks the parts of a group write that depend on the caller: the gate for `permissions`, dominance, and a
/// visible parent.
async fn check_group_write(state: &AppState, caller: &Principal, input: &GroupInput, current: Option<&Group>) -> ApiResult<()> {
    if let Some(p) = &input.permissions {
        check_known_actions(state, p).await?;
    }
    if let Some(p) = &input.permissions
        && current.is_none_or(|g| g.permissions != *p)
    {
        caller.require(Permission { module: "permissions", action: Action::Update })?;
        require_covers(caller, p)?;
        if let Some(g) = current {
            require_covers(caller, &g.permissions)?;
        }
    }
    if let Some(Some(parent)) = input.parent
        && current.is_none_or(|g| g.parent != Some(parent))
    {
        // A group of another org, or outside the caller's groups, is unknown to the caller (§11: 404); only a
        // superuser, who sees every group, is told that the key names no group.
        visible_group(state, caller, parent).await.map_err(|_| match caller.viewer() {
            Some(_) => ApiError::NotFound,
            None => ApiError::field("parent", "Invalid pk - object does not exist."),
        })?;
        if current.is_some() {
            require_confer(state, caller, &[parent])?;
        }
    }
    // Moving a group away from its parent takes what the old parent chain confers from the subtree's members (§11).
    if let (Some(new_parent), Some(g)) = (input.parent, current)
        && let Some(old_parent) = g.parent
        && new_parent != Some(old_parent)
    {
        require_confer(state, caller, &[old_parent])?;
    }
    Ok(())
}

/// Every action must be one of its module's: registered modules name theirs, unregistered ones have the standard six.
async fn check_known_actions(state: &AppState, permissions: &castellan_core::permission::ModulePermissions) -> ApiResult<()> {
    let modules = state.store.list_modules().await?;
    let mut errors = Vec::new();
    for (module, actions) in permissions.to_map() {
        // API.md §10 (settled): a module must be registered before a group can carry its permissions.
        let Some(known) = modules.iter().find(|m| m.id == module).map(module_actions) else {
            errors.push(castellan_core::FieldError::new("permissions", format!("\"{module}\" is not a registered module.")));
            continue;
        };
        for action in actions {
            if !known.contains(&action) {
                errors.push(castellan_core::FieldError::new(
                    format!("permissions.{module}"),
                    format!("\"{action}\" is not a valid action."),
                ));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(errors)) }
}

/// Create a group (`name` is enough, seed 000).
#[utoipa::path(post, path = "/api/v1/groups/", tag = "groups",
    request_body = crate::bodies::GroupBody,
    responses((status = 201, body = GroupOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let input = GroupInput::parse(&body, WriteMode::Create)?;
    let org = input.org.unwrap_or(caller.user.org);
    if (caller.org_scope().is_some_and(|own| own != org)) || state.store.get_org(org).await.is_err() {
        return Err(ApiError::field("org", "Invalid pk - object does not exist."));
    }
    check_group_write(&state, &caller, &input, None).await?;
    let roles = roles_change(&state, &caller, org, &[], input.roles.as_deref()).await?;
    let new = NewGroup {
        name: input.name.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        org,
        parent: input.parent.flatten(),
        permissions: input.permissions.unwrap_or_default(),
    };
    let ctx = write_ctx(Some(&caller), ip);
    let (group, revision) = state.store.create_group(&ctx, new).await?;
    let (group, revision) = apply_roles_change(&state, &ctx, group, revision, roles).await?;
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(GroupOut::from(&group)))))
}

/// Retrieve a group.
#[utoipa::path(get, path = "/api/v1/groups/{pk}/", tag = "groups", params(("pk" = i64, Path)),
    responses((status = 200, body = GroupOut), (status = 401), (status = 403), (status = 404)))]
async fn get_group(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<GroupOut>> {
    Ok(axum::Json(GroupOut::from(&visible_group(&state, &caller, pk).await?)))
}

async fn update(state: &AppState, ip: std::net::IpAddr, caller: &Principal, pk: i64, input: GroupInput) -> ApiResult<Response> {
    let current = visible_group(state, caller, pk).await?;
    // The group's own fields are checked before its roles, as they were (a plan checks them again).
    check_update(state, caller, &input, &current).await?;
    let roles = roles_change(state, caller, current.org, &current.roles, input.roles.as_deref()).await?;
    let ctx = write_ctx(Some(caller), ip);
    let revision = crate::write::planned(state, &ctx, &[Target::Group(pk)], || plan_update(state, caller, pk, &input)).await?;
    let group = state.store.get_group(pk).await?;
    let (group, revision) = apply_roles_change(state, &ctx, group, revision, roles).await?;
    Ok(with_revision(revision, axum::Json(GroupOut::from(&group))))
}

/// Plans an update of group `pk` from the group as stored now: the caller's rights over what changes (API.md
/// §11), then the rules the store also keeps, checked here so that a dry run refuses what the write would: a new
/// parent in the group's org and outside its subtree (on the model), and a name free among the new siblings.
async fn plan_update(state: &AppState, caller: &Principal, pk: i64, input: &GroupInput) -> ApiResult<Vec<Change>> {
    let current = visible_group(state, caller, pk).await?;
    check_update(state, caller, input, &current).await?;
    let before = current.record();
    let mut after = before.clone();
    after.name = input.name.clone().unwrap_or(after.name);
    after.description = input.description.clone().unwrap_or(after.description);
    after.parent = input.parent.unwrap_or(after.parent);
    if let Some(permissions) = &input.permissions {
        after.permissions = permissions.to_map();
    }
    if let Some(parent) = after.parent.filter(|_| after.parent != before.parent) {
        let elsewhere = match state.store.get_group(parent).await {
            Ok(p) => p.org != before.org,
            Err(StoreError::NotFound) => true,
            Err(e) => return Err(e.into()),
        };
        if elsewhere {
            return Err(StoreError::Conflict { constraint: "parent".into() }.into());
        }
        state.follower.follow().await?;
        if state.directory.is_within(parent, pk) {
            return Err(StoreError::Conflict { constraint: "cycle".into() }.into());
        }
    }
    if after.name != before.name || after.parent != before.parent {
        let siblings = GroupFilter {
            names: vec![after.name.clone()],
            orgs: vec![before.org],
            parent: Some(after.parent),
            ..Default::default()
        };
        let query = GroupQuery { filter: siblings, limit: 2, ..Default::default() };
        if state.store.list_groups(&query).await?.items.iter().any(|g| g.pk != pk) {
            return Err(StoreError::Conflict { constraint: "name".into() }.into());
        }
    }
    Ok(vec![Change::GroupUpdated { pk, before, after }])
}

/// Checks an update of `current`: its org stays, and the caller may make the changes (`check_group_write`).
async fn check_update(state: &AppState, caller: &Principal, input: &GroupInput, current: &Group) -> ApiResult<()> {
    if input.org.is_some_and(|o| o != current.org) {
        return Err(ApiError::field("org", "A group's organisation cannot be changed."));
    }
    check_group_write(state, caller, input, Some(current)).await
}

/// The roles a group write adds and removes.
#[derive(Default)]
struct RolesChange {
    added: Vec<i64>,
    removed: Vec<i64>,
}

/// Checks a change of a group's `roles` (API.md §10, §11): it needs `roles.update`; each role must be one the caller
/// sees in the group's org (400 otherwise); and the caller must hold what each added or removed role confers.
async fn roles_change(
    state: &AppState,
    caller: &Principal,
    org: i64,
    current: &[i64],
    requested: Option<&[i64]>,
) -> ApiResult<RolesChange> {
    let Some(requested) = requested else { return Ok(RolesChange::default()) };
    let added: Vec<i64> = requested.iter().filter(|r| !current.contains(r)).copied().collect();
    let removed: Vec<i64> = current.iter().filter(|r| !requested.contains(r)).copied().collect();
    if added.is_empty() && removed.is_empty() {
        return Ok(RolesChange::default());
    }
    caller.require(Permission { module: "roles", action: Action::Update })?;
    for &role in &added {
        match visible_role(state, caller, role).await {
            Ok(r) if r.org == org => {}
            _ => return Err(ApiError::field("roles", format!("Invalid pk \"{role}\" - object does not exist."))),
        }
    }
    for &role in added.iter().chain(&removed) {
        require_role(state, caller, role)?;
    }
    Ok(RolesChange { added, removed })
}

/// Assigns and unassigns the roles of a checked [`RolesChange`] to `group` (written just before, at `revision`);
/// answers the group as it then stands and the last revision.
async fn apply_roles_change(
    state: &AppState,
    ctx: &castellan_store::WriteCtx,
    group: Group,
    mut revision: i64,
    change: RolesChange,
) -> ApiResult<(Group, i64)> {
    if change.added.is_empty() && change.removed.is_empty() {
        return Ok((group, revision));
    }
    let holder = vec![SubjectFact::Group(group.pk)];
    let roles = change.added.iter().map(|r| (*r, true)).chain(change.removed.iter().map(|r| (*r, false)));
    for (role, assign) in roles {
        let plan = || async {
            let before = state.store.get_role(role).await?.record();
            Ok(vec![match assign {
                true => Change::role_assigned(role, before, holder.clone(), None),
                false => Change::role_unassigned(role, before, holder.clone()),
            }])
        };
        revision = crate::write::planned(state, ctx, &[Target::Role(role)], plan).await?;
    }
    Ok((state.store.get_group(group.pk).await?, revision))
}

/// Replace a group (`name` required).
#[utoipa::path(put, path = "/api/v1/groups/{pk}/", tag = "groups", params(("pk" = i64, Path)), request_body = crate::bodies::GroupBody,
    responses((status = 200, body = GroupOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replace_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, pk, GroupInput::parse(&body, WriteMode::Replace)?).await
}

/// Update some fields of a group; moving it (`parent`) re-links its whole subtree.
#[utoipa::path(patch, path = "/api/v1/groups/{pk}/", tag = "groups", params(("pk" = i64, Path)), request_body = crate::bodies::GroupBody,
    responses((status = 200, body = GroupOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, pk, GroupInput::parse(&body, WriteMode::Patch)?).await
}

/// Delete a group; one with children needs `?cascade=true`, which deletes the subtree.
#[utoipa::path(delete, path = "/api/v1/groups/{pk}/", tag = "groups", params(("pk" = i64, Path), ("cascade" = Option<bool>, Query)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete_group(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    q: ListQuery,
) -> ApiResult<Response> {
    visible_group(&state, &caller, pk).await?;
    let cascade = q.boolean("cascade")?.unwrap_or(false);
    let plan = || async {
        let group = visible_group(&state, &caller, pk).await?;
        state.follower.follow().await?;
        let deleted = state.directory.subtree_bottom_up(pk);
        // A cascade revokes what every group of the subtree confers on its members (§11).
        let alone = [pk];
        require_confer(&state, &caller, if cascade { &deleted } else { &alone })?;
        if deleted.len() > 1 && !cascade {
            return Err(StoreError::Conflict { constraint: "children".into() }.into());
        }
        Ok(vec![Change::GroupDeleted { pk, before: group.record(), deleted }])
    };
    let revision = crate::write::planned(&state, &write_ctx(Some(&caller), ip), &[Target::Group(pk)], plan).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// A group's direct children, paged.
#[utoipa::path(get, path = "/api/v1/groups/{pk}/children/", tag = "groups", params(("pk" = i64, Path)),
    responses((status = 200, body = Envelope<GroupOut>), (status = 401), (status = 403), (status = 404)))]
async fn children(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<GroupOut>>> {
    visible_group(&state, &caller, pk).await?;
    let filter = GroupFilter { parent: Some(Some(pk)), ..Default::default() };
    Ok(axum::Json(group_page(&state, &caller, &q, filter).await?))
}

/// A group's members, paged; `?recursive=true` includes members of descendant groups.
#[utoipa::path(get, path = "/api/v1/groups/{pk}/users/", tag = "groups", params(("pk" = i64, Path), ("recursive" = Option<bool>, Query)),
    responses((status = 200, body = Envelope<UserOut>), (status = 401), (status = 403), (status = 404)))]
async fn members(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<UserOut>>> {
    visible_group(&state, &caller, pk).await?;
    let recursive = q.boolean("recursive")?.unwrap_or(false);
    let window = q.window()?;
    let search = q.search()?;
    if recursive && search.is_none() {
        // Counted and paged in memory: recursive membership at scale never runs recursive SQL.
        state.follower.follow().await?;
        let members = state.directory.members(&[pk], true, caller.viewer(), crate::clock::now_micros());
        let count = members.count() as i64;
        q.check_page(window, count)?;
        let pks = members.page(window.offset as usize, window.limit as usize);
        let mut users = state.store.get_users(&pks).await?;
        redact_groups(&state, &caller, &mut users);
        return Ok(axum::Json(q.envelope(window, count, users.iter().map(UserOut::from).collect())));
    }
    state.follower.follow().await?;
    let filter = UserFilter {
        groups: vec![pk],
        groups_recursive: recursive,
        seen_by: users_seen(&state, &caller),
        within: users_within(&state, &caller, &[pk], recursive),
        search,
        ..Default::default()
    };
    let (offset, limit) = (window.offset, window.limit);
    let query = UserQuery { filter, ordering: Vec::new(), offset, limit, skip_groups: true, after: None };
    let mut page = state.store.list_users(&query).await?;
    q.check_page(window, page.count)?;
    state.directory.attach_groups(&mut page.items, crate::clock::now_micros());
    redact_groups(&state, &caller, &mut page.items);
    Ok(axum::Json(q.envelope(window, page.count, page.items.iter().map(UserOut::from).collect())))
}

/// Reads `{"users": [pk...], "expires_at"?}` and checks each user is visible (404 otherwise).
fn member_body(
    state: &AppState,
    caller: &Principal,
    body: &serde_json::Value,
    with_expiry: bool,
) -> ApiResult<(Vec<i64>, Option<OffsetDateTime>)> {
    let mut f = Fields::new(body)?;
    let users = f.pk_list("users", true, MEMBERS_MAX);
    let expires_at = if with_expiry { f.future_time("expires_at", OffsetDateTime::now_utc()) } else { None };
    f.finish()?;
    let users = users.unwrap_or_default();
    require_visible_users(state, caller, &users, Some("users"))?;
    Ok((users, expires_at))
}

/// The group with its direct members after a membership write at `revision`, from the in-memory directory (brought
/// to that revision first): answering costs the same whatever the group's size.
async fn members_out(state: &AppState, caller: &Principal, group: &Group, revision: i64) -> ApiResult<GroupMembersOut> {
    state.follower.follow_to(revision).await?;
    let (users, count, hidden) =
        state.directory.direct_members(group.pk, caller.viewer(), crate::clock::now_micros(), MEMBERS_MAX);
    Ok(GroupMembersOut { group: GroupOut::from(group), users, users_count: count as i64, users_hidden: hidden as i64 })
}

/// Add users to a group (`expires_at` optional); the caller must hold what the group confers.
#[utoipa::path(patch, path = "/api/v1/groups/{pk}/assign-users/", tag = "groups", params(("pk" = i64, Path)),
    request_body = crate::bodies::AddUsersBody,
    responses((status = 200, body = GroupMembersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn assign_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_visible_group(&state, &caller, pk)?;
    let (users, expires_at) = member_body(&state, &caller, &body, true)?;
    require_confer(&state, &caller, &[pk])?;
    let targets = crate::plans::membership_targets(pk, &users);
    let expires_at = expires_at.map(crate::clock::micros_of);
    let plan = || crate::plans::plan_assign(&state, pk, &users, expires_at);
    let (revision, group) = crate::write::planned_with(&state, &write_ctx(Some(&caller), ip), &targets, plan).await?;
    Ok(with_revision(revision, axum::Json(members_out(&state, &caller, &group, revision).await?)))
}

/// Remove users from a group; the caller must hold what the group confers.
#[utoipa::path(patch, path = "/api/v1/groups/{pk}/remove-users/", tag = "groups", params(("pk" = i64, Path)),
    request_body = crate::bodies::RemoveUsersBody,
    responses((status = 200, body = GroupMembersOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn remove_users(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_visible_group(&state, &caller, pk)?;
    let (users, _) = member_body(&state, &caller, &body, false)?;
    require_confer(&state, &caller, &[pk])?;
    let targets = crate::plans::membership_targets(pk, &users);
    let plan = || async {
        let (group, read) = state.store.memberships(pk, &users).await?;
        Ok((vec![Change::members_unassigned(pk, read)], group))
    };
    let (revision, group) = crate::write::planned_with(&state, &write_ctx(Some(&caller), ip), &targets, plan).await?;
    Ok(with_revision(revision, axum::Json(members_out(&state, &caller, &group, revision).await?)))
}
