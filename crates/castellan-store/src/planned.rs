//! Writes planned from the stored state, for callers that keep no model (tools, tests, benches): each reads what
//! it changes, plans the typed change as a handler does, and hands it to [`crate::ChangeLog::apply`].

use castellan_core::change::Change;
use castellan_core::engine::SubjectFact;
use time::OffsetDateTime;

use crate::time_util::to_micros;
use crate::{Group, Result, Revision, Store, StoreError, WriteCtx};

/// Deletes `group`; with children that is `Conflict{children}` unless `cascade`, which deletes its subtree.
pub async fn delete_group(store: &dyn Store, ctx: &WriteCtx, group: i64, cascade: bool) -> Result<Revision> {
    let before = store.get_group(group).await?.record();
    let (groups, _) = store.directory_snapshot().await?;
    let deleted = castellan_core::directory::Directory::build(&groups, &[]).subtree_bottom_up(group);
    if deleted.len() > 1 && !cascade {
        return Err(StoreError::Conflict { constraint: "children".into() });
    }
    store.apply(ctx, vec![Change::GroupDeleted { pk: group, before, deleted }]).await
}

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

/// Assigns role `role` to users or groups of its org (`Conflict{members}` otherwise), expiring at `expires_at`.
pub async fn assign_role(
    store: &dyn Store,
    ctx: &WriteCtx,
    role: i64,
    subjects: &[SubjectFact],
    expires_at: Option<OffsetDateTime>,
) -> Result<Revision> {
    let before = store.get_role(role).await?.record();
    store.apply(ctx, vec![Change::role_assigned(role, before, subjects.to_vec(), expires_at.map(to_micros))]).await
}

/// Takes role `role` from `subjects` (those not holding it are ignored).
pub async fn unassign_role(store: &dyn Store, ctx: &WriteCtx, role: i64, subjects: &[SubjectFact]) -> Result<Revision> {
    let before = store.get_role(role).await?.record();
    store.apply(ctx, vec![Change::role_unassigned(role, before, subjects.to_vec())]).await
}

/// Replaces the actions `subject` holds globally in `module` (`[]` revokes them all).
pub async fn set_module_grants(
    store: &dyn Store,
    ctx: &WriteCtx,
    subject: SubjectFact,
    module: &str,
    actions: &[String],
) -> Result<Revision> {
    let before = store.module_actions(subject, module).await?;
    let change = Change::ModulePermissionsSet { subject, module: module.to_string(), before, after: actions.to_vec() };
    store.apply(ctx, vec![change]).await
}

/// Grants (module, action) pairs to `subject`, globally or on `object`, expiring at `expires_at`.
pub async fn assign_grants(
    store: &dyn Store,
    ctx: &WriteCtx,
    subject: SubjectFact,
    grants: &[(String, String)],
    object: Option<(&str, &str)>,
    expires_at: Option<OffsetDateTime>,
) -> Result<Revision> {
    let change = Change::GrantsAssigned {
        subject,
        object: object.map(|(m, k)| (m.to_string(), k.to_string())),
        after: grants.iter().map(|(m, a)| format!("{m}.{a}")).collect(),
        expires_at: expires_at.map(to_micros),
    };
    store.apply(ctx, vec![change]).await
}

/// Takes (module, action) pairs from `subject`, globally or on `object` (absent ones are ignored).
pub async fn unassign_grants(
    store: &dyn Store,
    ctx: &WriteCtx,
    subject: SubjectFact,
    grants: &[(String, String)],
    object: Option<(&str, &str)>,
) -> Result<Revision> {
    let change = Change::GrantsUnassigned {
        subject,
        object: object.map(|(m, k)| (m.to_string(), k.to_string())),
        before: grants.iter().map(|(m, a)| format!("{m}.{a}")).collect(),
    };
    store.apply(ctx, vec![change]).await
}
