//! Writes planned from the stored state, for callers that keep no model (tools, tests, benches): each reads what
//! it changes, plans the typed change as a handler does, and hands it to [`crate::ChangeLog::apply`].

use castellan_core::change::Change;
use time::OffsetDateTime;

use crate::time_util::to_micros;
use crate::{Group, Result, Revision, Store, StoreError, WriteCtx};

/// Adds `users` to `group` (members get the new expiry); answers the group after the write.
pub async fn add_members(
    store: &dyn Store,
    ctx: &WriteCtx,
    group: i64,
    users: &[i64],
    expires_at: Option<OffsetDateTime>,
) -> Result<(Group, Revision)> {
    let (_, read) = store.memberships(group, users).await?;
    let revision = store.apply(ctx, vec![Change::members_assigned(group, read, expires_at.map(to_micros))]).await?;
    Ok((store.get_group(group).await?, revision))
}

/// Removes `users` from `group` (those who are not members are ignored); answers the group after the write.
pub async fn remove_members(store: &dyn Store, ctx: &WriteCtx, group: i64, users: &[i64]) -> Result<(Group, Revision)> {
    let (_, read) = store.memberships(group, users).await?;
    let revision = store.apply(ctx, vec![Change::members_unassigned(group, read)]).await?;
    Ok((store.get_group(group).await?, revision))
}

/// Restricts `user`'s membership of `group` to `nodes` (even none), or lifts the restriction (`None`).
pub async fn set_restriction(
    store: &dyn Store,
    ctx: &WriteCtx,
    user: i64,
    group: i64,
    nodes: Option<Vec<i64>>,
) -> Result<Revision> {
    let read = store.memberships(group, &[user]).await?.1.pop().and_then(|(_, m)| m).ok_or(StoreError::NotFound)?;
    store.apply(ctx, vec![Change::membership_restricted(group, user, read, nodes)]).await
}
