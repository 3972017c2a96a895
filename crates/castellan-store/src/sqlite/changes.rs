//! The change log: every write's row, and audit-only events.

use async_trait::async_trait;
use castellan_core::change::Change;
use castellan_core::engine::SubjectFact;
use rusqlite::{Row, params};
use time::OffsetDateTime;

use super::audit::change_from_row;
use super::{SqliteStore, backend, current_revision, insert_log, log_write};
use crate::time_util::to_micros;
use crate::{ChangeEntry, ChangeLog, Result, Revision, StoreError, WriteCtx, dry_run_slot};

/// What expired after the cursor and by `now`, oldest first: (expires_at, kind, user or role, group, subject,
/// permission, object as `model:key`).
const DUE: &str = "SELECT expires_at, 'membership', user, grp, NULL, NULL, NULL
       FROM memberships WHERE expires_at > ?1 AND expires_at <= ?2
     UNION ALL
     SELECT expires_at, 'role', role, NULL, subject_type || ':' || subject_pk, NULL, NULL
       FROM role_assignments WHERE expires_at > ?1 AND expires_at <= ?2
     UNION ALL
     SELECT expires_at, 'grant', NULL, NULL, subject_type || ':' || subject_pk, module || '.' || action,
            CASE WHEN object_model = '' THEN NULL ELSE object_model || ':' || object_pk END
       FROM grants WHERE expires_at > ?1 AND expires_at <= ?2
     ORDER BY 1";

/// One row of [`DUE`] as the change recording it.
fn expiry_from(r: &Row<'_>) -> rusqlite::Result<Option<Change>> {
    let expired_at: i64 = r.get(0)?;
    let subject = r.get::<_, Option<String>>(4)?.as_deref().and_then(SubjectFact::from_text);
    let change = match (r.get::<_, String>(1)?.as_str(), subject) {
        ("membership", _) => Some(Change::MembershipExpired { user: r.get(2)?, group: r.get(3)?, expired_at }),
        ("role", Some(subject)) => Some(Change::RoleAssignmentExpired { role: r.get(2)?, subject, expired_at }),
        ("grant", Some(subject)) => {
            let object = r.get::<_, Option<String>>(6)?.and_then(|o| o.split_once(':').map(|(m, k)| (m.into(), k.into())));
            Some(Change::GrantExpired { subject, permission: r.get(5)?, object, expired_at })
        }
        _ => None,
    };
    Ok(change)
}

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn revision(&self) -> Result<Revision> {
        self.read(current_revision).await
    }

    async fn apply(&self, ctx: &WriteCtx, changes: Vec<Change>) -> Result<Revision> {
        if changes.is_empty() {
            return Err(StoreError::Backend("a write planned no change".into()));
        }
        self.write(ctx, move |c, logging| {
            let mut revision = 0;
            for change in changes {
                match &change {
                    Change::GroupUpdated { pk, before, after } => super::groups::update_group(c, *pk, before, after)?,
                    Change::GroupDeleted { pk, before, deleted } => super::groups::delete_group(c, *pk, before, deleted)?,
                    Change::MembersAssigned { group, members } | Change::MembersUnassigned { group, members } => {
                        super::groups::set_members(c, *group, members)?
                    }
                    Change::GrantsAssigned { subject, object, after, expires_at } => {
                        super::permissions::assign_grants(c, *subject, object.as_ref(), after, *expires_at)?
                    }
                    Change::GrantsUnassigned { subject, object, before } => {
                        super::permissions::unassign_grants(c, *subject, object.as_ref(), before)?
                    }
                    Change::ModulePermissionsSet { subject, module, before, after } => {
                        super::permissions::set_module_grants(c, *subject, module, before, after)?
                    }
                    Change::RoleAssigned { pk, subjects, before, expires_at, .. } => {
                        super::permissions::set_role_holders(c, *pk, before, subjects, true, *expires_at)?
                    }
                    Change::RoleUnassigned { pk, subjects, before, .. } => {
                        super::permissions::set_role_holders(c, *pk, before, subjects, false, None)?
                    }
                    Change::MembershipRestricted { group, user, before, after } => {
                        super::groups::set_membership(c, *user, *group, before.as_ref(), after.as_ref())?
                    }
                    other => {
                        return Err(StoreError::Backend(format!(
                            "{} {} is written through its own store call, not as a planned change",
                            other.action(),
                            other.target().0
                        )));
                    }
                }
                revision = log_write(c, logging, change)?;
            }
            Ok(revision)
        })
        .await
    }

    async fn audit(&self, ctx: &WriteCtx, event: Change) -> Result<()> {
        if dry_run_slot().is_some() {
            return Err(StoreError::NotPreviewable);
        }
        self.write(ctx, move |c, logging| insert_log(c, logging, event).map(drop)).await
    }

    async fn record_expirations(&self, now: OffsetDateTime) -> Result<usize> {
        let now = to_micros(now);
        self.write(&WriteCtx::default(), move |c, ctx| {
            let since: i64 =
                c.prepare_cached("SELECT at FROM expiry_cursor WHERE id = 1")?.query_row([], |r| r.get(0)).map_err(backend)?;
            let due =
                c.prepare_cached(DUE)?.query_map(params![since, now], expiry_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            let count = due.len();
            for change in due.into_iter().flatten() {
                log_write(c, ctx, change)?;
            }
            c.prepare_cached("UPDATE expiry_cursor SET at = MAX(at, ?) WHERE id = 1")?.execute(params![now]).map_err(backend)?;
            Ok(count)
        })
        .await
    }

    async fn change_pk_at_revision(&self, revision: Revision) -> Result<i64> {
        self.read(move |c| {
            c.prepare_cached("SELECT COALESCE(MAX(pk), 0) FROM change_log WHERE revision IS NOT NULL AND revision <= ?")?
                .query_row(params![revision], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn last_change_pk(&self) -> Result<i64> {
        self.read(|c| {
            c.prepare_cached("SELECT COALESCE(MAX(pk), 0) FROM change_log")?.query_row([], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn changes(&self, after_pk: i64, limit: i64) -> Result<Vec<ChangeEntry>> {
        if let Some(rows) = self.tail.after(after_pk, usize::try_from(limit).unwrap_or(0)) {
            return Ok(rows);
        }
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT pk, at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id
                 FROM change_log WHERE pk > ? ORDER BY pk LIMIT ?",
            )?;
            let rows = stmt.query_map(params![after_pk, limit], change_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}
