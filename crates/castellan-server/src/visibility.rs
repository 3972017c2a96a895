//! Who sees what (API.md §3, §11): superusers see everything; everyone else sees only their organisation, and of
//! it only themselves, the members of their groups and of those groups' descendants, and those groups.
//! Anything else answers 404, exactly as if it did not exist.

use castellan_core::model::User;
use castellan_store::{Group, GroupFilter, GroupQuery, UserFilter, UserQuery};

use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The user `pk` if the caller may see it, else 404.
pub async fn visible_user(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<User> {
    let mut user = state.store.get_user(pk).await?;
    let Some(viewer) = caller.viewer() else { return Ok(user) };
    if user.org != caller.user.org {
        return Err(ApiError::NotFound);
    }
    if pk != viewer {
        let filter = UserFilter { ids: vec![pk], visible_to: Some(viewer), ..Default::default() };
        if state.store.list_users(&UserQuery { filter, limit: 0, ..Default::default() }).await?.count == 0 {
            return Err(ApiError::NotFound);
        }
    }
    redact_groups(state, caller, std::slice::from_mut(&mut user)).await?;
    Ok(user)
}

/// Fails unless the caller sees every user of `pks`, answered from the index and the directory (no database read):
/// 404 for a user the caller may not see; for a superuser naming a user that does not exist, 400 on `field`.
pub fn require_visible_users(state: &AppState, caller: &Principal, pks: &[i64], field: &str) -> ApiResult<()> {
    let visible = caller.viewer().map(|viewer| state.directory.visible_users(viewer, crate::clock::now_micros()));
    let snapshot = state.engine.snapshot();
    for &pk in pks {
        match (&visible, snapshot.index.user_org(pk)) {
            (None, Some(_)) => {}
            (None, None) => return Err(ApiError::field(field, format!("Invalid pk \"{pk}\" - object does not exist."))),
            (Some(seen), Some(org)) if org == caller.user.org && seen.contains(pk) => {}
            (Some(_), _) => return Err(ApiError::NotFound),
        }
    }
    Ok(())
}

/// The group `pk` if the caller may see it, else 404.
pub async fn visible_group(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<Group> {
    let group = state.store.get_group(pk).await?;
    if let Some(viewer) = caller.viewer()
        && (group.org != caller.user.org || !visible_groups(state, viewer, &[pk]).await?.contains(&pk))
    {
        return Err(ApiError::NotFound);
    }
    Ok(group)
}

/// Which of the groups `pks` the caller sees (all of them for superusers), ascending.
pub async fn visible_subset(state: &AppState, caller: &Principal, pks: &[i64]) -> ApiResult<Vec<i64>> {
    match caller.viewer() {
        Some(viewer) => visible_groups(state, viewer, pks).await,
        None => Ok(pks.to_vec()),
    }
}

/// Which of `pks` the viewer sees.
async fn visible_groups(state: &AppState, viewer: i64, pks: &[i64]) -> ApiResult<Vec<i64>> {
    if pks.is_empty() {
        return Ok(Vec::new());
    }
    let filter = GroupFilter { ids: pks.to_vec(), visible_to: Some(viewer), ..Default::default() };
    let page = state.store.list_groups(&GroupQuery { filter, limit: pks.len() as i64, ..Default::default() }).await?;
    Ok(page.items.into_iter().map(|g| g.pk).collect())
}

/// Leaves in each user's `groups` only the groups the caller sees (one query for the whole page).
pub async fn redact_groups(state: &AppState, caller: &Principal, users: &mut [User]) -> ApiResult<()> {
    let Some(viewer) = caller.viewer() else { return Ok(()) };
    let mut pks: Vec<i64> = users.iter().flat_map(|u| u.groups.iter().copied()).collect();
    pks.sort_unstable();
    pks.dedup();
    let seen = visible_groups(state, viewer, &pks).await?;
    for u in users {
        u.groups.retain(|g| seen.binary_search(g).is_ok());
    }
    Ok(())
}

/// The role if the caller may see it (its organisation), else 404.
pub async fn visible_role(state: &AppState, caller: &Principal, pk: i64) -> ApiResult<castellan_store::Role> {
    let role = state.store.get_role(pk).await?;
    if caller.org_scope().is_some_and(|own| own != role.org) {
        return Err(ApiError::NotFound);
    }
    Ok(role)
}
