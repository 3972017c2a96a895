//! One user's groups and node restrictions (seed 004 `/user/{id}/groups/...`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::change::{Change, MembershipRecord};
use castellan_core::fields::Fields;
use castellan_store::{GroupFilter, Membership};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::dominance::require_confer;
use crate::error::{ApiError, ApiResult};
use crate::extract::{PathPk, path_key, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::GroupOut;
use crate::state::AppState;
use crate::visibility::{groups_seen, require_visible_group, require_visible_users, visible_group, visible_user};
use crate::write::{Target, planned, planned_with};

/// Routes of module `groups`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "groups",
        None,
        OpenApiRouter::new()
            .routes(routes!(user_groups))
            .routes(routes!(join, leave))
            .routes(routes!(get_nodes, lift_restriction))
            .routes(routes!(add_node, remove_node)),
    )
}

/// A membership's node restriction as the caller may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodesOut {
    /// Restricting node ids the caller may see.
    pub node_ids: Vec<i64>,
    /// Restricting nodes the caller may not see (lacking `nodes.read`).
    pub hidden: usize,
    /// Whether a restriction applies (with no nodes left, the membership grants nothing).
    pub restricted: bool,
}

/// A membership's restricting nodes as `caller` may see them: those on which the caller holds `nodes.read` (globally
/// or on the node), the others counted as `hidden`.
fn nodes_out(state: &AppState, caller: &Principal, m: &Membership) -> NodesOut {
    let (now, snapshot) = (crate::clock::now_micros(), state.engine.snapshot());
    let readable = |node: &i64| caller.holds_at(&snapshot.index, "nodes", "read", Some(("nodes", &node.to_string())), now);
    let node_ids: Vec<i64> = m.nodes.iter().copied().filter(readable).collect();
    NodesOut { hidden: m.nodes.len() - node_ids.len(), node_ids, restricted: m.restricted }
}

/// The user and group, both visible, and their membership (404 when any is missing).
async fn membership_of(state: &AppState, caller: &Principal, user: i64, group: i64) -> ApiResult<Membership> {
    visible_user(state, caller, user).await?;
    visible_group(state, caller, group).await?;
    state.store.membership(user, group).await?.ok_or(ApiError::NotFound)
}

/// Path keys `{pk}` and `{group_pk}` (and `{node_id}`), positive integers or 404.
fn keys(raw: &[String]) -> ApiResult<Vec<i64>> {
    raw.iter().map(|k| path_key(k)).collect()
}

/// The groups of a user, paged (only groups the caller sees), searched and ordered as the group list is.
#[utoipa::path(get, path = "/api/v1/users/{pk}/groups/", tag = "groups",
    params(("pk" = i64, Path), ("search" = Option<String>, Query), ("ordering" = Option<String>, Query),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<GroupOut>), (status = 401), (status = 403), (status = 404)))]
async fn user_groups(
    State(state): State<AppState>,
    caller: Principal,
    PathPk(pk): PathPk,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<GroupOut>>> {
    visible_user(&state, &caller, pk).await?;
    let filter =
        GroupFilter { member: Some(pk), within: groups_seen(&state, &caller), search: q.search()?, ..Default::default() };
    let ordering = q.ordering_of(castellan_store::GroupOrder::parse)?;
    let window = q.window()?;
    let query = castellan_store::GroupQuery { filter, ordering, offset: window.offset, limit: window.limit };
    let page = state.store.list_groups(&query).await?;
    q.check_page(window, page.count)?;
    Ok(axum::Json(q.envelope(window, page.count, page.items.iter().map(GroupOut::from).collect())))
}

/// Add the user to the group (`expires_at` optional in the body) → the group.
#[utoipa::path(put, path = "/api/v1/users/{pk}/groups/{group_pk}/", tag = "groups", params(("pk" = i64, Path), ("group_pk" = i64, Path)),
    request_body = crate::bodies::MembershipBody,
    responses((status = 200, body = GroupOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn join(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(raw): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let [user, group] = keys(&[raw.0, raw.1])?[..] else { return Err(ApiError::NotFound) };
    require_visible_users(&state, &caller, &[user], None)?;
    require_visible_group(&state, &caller, group)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) { serde_json::json!({}) } else { crate::extract::parse_json(&body)? };
    let mut f = Fields::new(&body)?;
    let expires_at = f.future_time("expires_at", time::OffsetDateTime::now_utc());
    f.finish()?;
    require_confer(&state, &caller, &[group])?;
    let expires_at = expires_at.map(crate::clock::micros_of);
    let users = [user];
    let plan = || crate::plans::plan_assign(&state, group, &users, expires_at);
    let targets = [Target::Membership(user, group)];
    let (revision, joined) = planned_with(&state, &write_ctx(Some(&caller), ip), &targets, plan).await?;
    Ok(with_revision(revision, axum::Json(GroupOut::from(&joined))))
}

/// Remove the user from the group.
#[utoipa::path(delete, path = "/api/v1/users/{pk}/groups/{group_pk}/", tag = "groups", params(("pk" = i64, Path), ("group_pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn leave(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(raw): Path<(String, String)>,
) -> ApiResult<Response> {
    let [user, group] = keys(&[raw.0, raw.1])?[..] else { return Err(ApiError::NotFound) };
    membership_of(&state, &caller, user, group).await?;
    require_confer(&state, &caller, &[group])?;
    let plan = || async { Ok(vec![Change::members_unassigned(group, state.store.memberships(group, &[user]).await?.1)]) };
    let revision = planned(&state, &write_ctx(Some(&caller), ip), &[Target::Membership(user, group)], plan).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// The node restriction of one membership.
#[utoipa::path(get, path = "/api/v1/users/{pk}/groups/{group_pk}/nodes/", tag = "groups", params(("pk" = i64, Path), ("group_pk" = i64, Path)),
    responses((status = 200, body = NodesOut), (status = 401), (status = 403), (status = 404)))]
async fn get_nodes(
    State(state): State<AppState>,
    caller: Principal,
    Path(raw): Path<(String, String)>,
) -> ApiResult<axum::Json<NodesOut>> {
    let [user, group] = keys(&[raw.0, raw.1])?[..] else { return Err(ApiError::NotFound) };
    let m = membership_of(&state, &caller, user, group).await?;
    Ok(axum::Json(nodes_out(&state, &caller, &m)))
}

/// Lift the restriction: the membership carries the group's permissions everywhere again.
#[utoipa::path(delete, path = "/api/v1/users/{pk}/groups/{group_pk}/nodes/", tag = "groups", params(("pk" = i64, Path), ("group_pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn lift_restriction(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(raw): Path<(String, String)>,
) -> ApiResult<Response> {
    let [user, group] = keys(&[raw.0, raw.1])?[..] else { return Err(ApiError::NotFound) };
    membership_of(&state, &caller, user, group).await?;
    require_confer(&state, &caller, &[group])?;
    let revision = restrict(&state, &caller, ip, user, group, |_| Ok(None)).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// Sets the node restriction of `user`'s membership of `group` to what `nodes` makes of the membership as read
/// (`None` lifts it; an error refuses the write).
async fn restrict(
    state: &AppState,
    caller: &Principal,
    ip: std::net::IpAddr,
    user: i64,
    group: i64,
    nodes: impl Fn(&MembershipRecord) -> ApiResult<Option<Vec<i64>>>,
) -> ApiResult<castellan_store::Revision> {
    let plan = || async {
        let read = state.store.memberships(group, &[user]).await?.1.pop().and_then(|(_, m)| m).ok_or(ApiError::NotFound)?;
        let nodes = nodes(&read)?;
        Ok(vec![Change::membership_restricted(group, user, read, nodes)])
    };
    planned(state, &write_ctx(Some(caller), ip), &[Target::Membership(user, group)], plan).await
}

/// Ensures the node is a registered object of module `nodes` (404 otherwise).
async fn existing_node(state: &AppState, caller: &Principal, node: i64) -> ApiResult<()> {
    let object = state.store.find_object("nodes", &node.to_string()).await?.ok_or(ApiError::NotFound)?;
    if caller.org_scope().is_some_and(|own| own != object.org) {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

/// Add a node to the membership's restriction (restricting it if it was not).
#[utoipa::path(put, path = "/api/v1/users/{pk}/groups/{group_pk}/nodes/{node_id}/", tag = "groups",
    params(("pk" = i64, Path), ("group_pk" = i64, Path), ("node_id" = i64, Path)),
    responses((status = 200, body = NodesOut), (status = 401), (status = 403), (status = 404)))]
async fn add_node(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(raw): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let [user, group, node] = keys(&[raw.0, raw.1, raw.2])?[..] else { return Err(ApiError::NotFound) };
    membership_of(&state, &caller, user, group).await?;
    existing_node(&state, &caller, node).await?;
    let widened = |m: &MembershipRecord| {
        if m.restricted {
            require_confer(&state, &caller, &[group])?;
        }
        Ok(Some(m.nodes.iter().copied().chain([node]).collect()))
    };
    let revision = restrict(&state, &caller, ip, user, group, widened).await?;
    let m = state.store.membership(user, group).await?.ok_or(ApiError::NotFound)?;
    Ok(with_revision(revision, axum::Json(nodes_out(&state, &caller, &m))))
}

/// Remove a node from the membership's restriction (the membership stays restricted, possibly to nothing).
#[utoipa::path(delete, path = "/api/v1/users/{pk}/groups/{group_pk}/nodes/{node_id}/", tag = "groups",
    params(("pk" = i64, Path), ("group_pk" = i64, Path), ("node_id" = i64, Path)),
    responses((status = 200, body = NodesOut), (status = 401), (status = 403), (status = 404)))]
async fn remove_node(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(raw): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let [user, group, node] = keys(&[raw.0, raw.1, raw.2])?[..] else { return Err(ApiError::NotFound) };
    membership_of(&state, &caller, user, group).await?;
    existing_node(&state, &caller, node).await?;
    let narrowed = |m: &MembershipRecord| match m.nodes.contains(&node) {
        true => Ok(Some(m.nodes.iter().copied().filter(|n| *n != node).collect())),
        false => Err(ApiError::NotFound),
    };
    let revision = restrict(&state, &caller, ip, user, group, narrowed).await?;
    let m = state.store.membership(user, group).await?.ok_or(ApiError::NotFound)?;
    Ok(with_revision(revision, axum::Json(nodes_out(&state, &caller, &m))))
}
