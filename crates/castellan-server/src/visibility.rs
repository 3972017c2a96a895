//! Who sees what (API.md §3, §11): superusers see everything; everyone else sees only their organisation, and of
//! it only themselves, the members of their groups and of those groups' descendants, and those groups.
//! Anything else answers 404, exactly as if it did not exist. The in-memory directory decides; the store only
//! applies the decision as a list filter.

use std::sync::Arc;

use castellan_core::directory::UserSet;
use castellan_core::model::User;
use castellan_store::{Group, SeenBy};

use crate::auth::principal::Principal;
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The user `pk` if the caller may see it, else 404.
pub async fn visible_user(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<User> {
    let mut user = state.store.get_user(pk).await?;
    let Some(viewer) = caller.viewer() else { return Ok(user) };
    if user.org != caller.user.org || !state.directory.sees_user(viewer, pk, now_micros()) {
        return Err(ApiError::NotFound);
    }
    redact_groups(state, caller, std::slice::from_mut(&mut user));
    Ok(user)
}

/// Fails unless the caller sees every user of `pks`, answered from the index and the directory (no database read):
/// 404 for a user the caller may not see; for a superuser naming a user that does not exist, 400 on `field` (404
/// without one).
pub fn require_visible_users(state: &AppState, caller: &Principal, pks: &[i64], field: Option<&str>) -> ApiResult<()> {
    let now = now_micros();
    let snapshot = state.engine.snapshot();
    for &pk in pks {
        match (caller.viewer(), snapshot.index.user_org(pk)) {
            (None, Some(_)) => {}
            (None, None) => {
                let Some(field) = field else { return Err(ApiError::NotFound) };
                return Err(ApiError::field(field, format!("Invalid pk \"{pk}\" - object does not exist.")));
            }
            (Some(viewer), Some(org)) if org == caller.user.org && state.directory.sees_user(viewer, pk, now) => {}
            (Some(_), _) => return Err(ApiError::NotFound),
        }
    }
    Ok(())
}

/// The group `pk` if the caller may see it, else 404.
pub async fn visible_group(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<Group> {
    let group = state.store.get_group(pk).await?;
    if let Some(viewer) = caller.viewer()
        && (group.org != caller.user.org || state.directory.seen_groups(viewer, &[pk], now_micros()).is_empty())
    {
        return Err(ApiError::NotFound);
    }
    Ok(group)
}

/// Fails with 404 unless the group `pk` exists and the caller sees it, answered from the directory (no database
/// read: a write that then finds the group gone answers 404 too).
pub fn require_visible_group(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<()> {
    if state.directory.sees_group(caller.viewer(), pk, now_micros()) { Ok(()) } else { Err(ApiError::NotFound) }
}

/// Which of the groups `pks` the caller sees (all of them for superusers), in their order.
pub fn visible_subset(state: &AppState, caller: &Principal, pks: &[i64]) -> Vec<i64> {
    match caller.viewer() {
        Some(viewer) => state.directory.seen_groups(viewer, pks, now_micros()),
        None => pks.to_vec(),
    }
}

/// The list filter to the users the caller sees (`None`: no restriction).
pub fn users_seen(state: &AppState, caller: &Principal) -> Option<SeenBy> {
    let viewer = caller.viewer()?;
    Some(SeenBy { viewer, groups: state.directory.visible_groups(viewer, now_micros()) })
}

/// The users a list filtered by `groups` (members of any, of their descendants too when `recursive`) and by what
/// the caller sees selects, as the model's set; `None` when neither filters.
pub fn users_within(state: &AppState, caller: &Principal, groups: &[i64], recursive: bool) -> Option<Arc<UserSet>> {
    let now = now_micros();
    match (groups, caller.viewer()) {
        ([], None) => None,
        ([], Some(viewer)) => Some(Arc::new(state.directory.visible_users(viewer, now))),
        (groups, viewer) => Some(Arc::new(state.directory.members(groups, recursive, viewer, now))),
    }
}

/// The list filter to the groups the caller sees (`None`: no restriction).
pub fn groups_seen(state: &AppState, caller: &Principal) -> Option<Vec<i64>> {
    caller.viewer().map(|viewer| state.directory.visible_groups(viewer, now_micros()))
}

/// Leaves in each user's `groups` only the groups the caller sees.
pub fn redact_groups(state: &AppState, caller: &Principal, users: &mut [User]) {
    let Some(viewer) = caller.viewer() else { return };
    for u in users {
        let seen = state.directory.seen_groups(viewer, &u.groups, now_micros());
        u.groups_hidden = u.groups.len() - seen.len();
        u.groups = seen;
    }
}

/// The role if the caller may see it (its organisation), else 404.
pub async fn visible_role(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<castellan_store::Role> {
    let role = state.store.get_role(pk).await?;
    if caller.org_scope().is_some_and(|own| own != role.org) {
        return Err(ApiError::NotFound);
    }
    Ok(role)
}
