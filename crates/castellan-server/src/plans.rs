//! Plans that several resources' handlers share (API modules never import each other): memberships of a group are
//! written from `/groups/{pk}/assign-users/` and from `/users/{pk}/groups/{g}/`.

use castellan_core::change::Change;
use castellan_store::{Group, StoreError};

use crate::error::ApiResult;
use crate::state::AppState;
use crate::write::Target;

/// What a membership write of `users` in `group` waits on: each membership, or for more than a few users the
/// group (so that one bulk write does not hold most stripes of [`crate::write::Targets`]; a single-user write that
/// races it is then caught by the store's check and planned again).
pub fn membership_targets(group: i64, users: &[i64]) -> Vec<Target> {
    match users.len() {
        0..=8 => users.iter().map(|&user| Target::Membership(user, group)).collect(),
        _ => vec![Target::Group(group)],
    }
}

/// Plans `users` joining group `group` (members are re-dated to `expires_at`): each must belong to the group's
/// org, as the model knows them (400 on `users` otherwise, as the store would refuse it). Answers the group too
/// (a membership write leaves its fields as they are).
pub async fn plan_assign(
    state: &AppState,
    group: i64,
    users: &[i64],
    expires_at: Option<i64>,
) -> ApiResult<(Vec<Change>, Group)> {
    let (read_group, read) = state.store.memberships(group, users).await?;
    let snapshot = state.engine.snapshot();
    if read.iter().any(|(user, m)| m.is_none() && snapshot.index.user_org(*user) != Some(read_group.org)) {
        return Err(StoreError::Conflict { constraint: "members".into() }.into());
    }
    Ok((vec![Change::members_assigned(group, read, expires_at)], read_group))
}
