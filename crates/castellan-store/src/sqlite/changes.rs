//! The change log: every write's row, and audit-only events.

use async_trait::async_trait;
use rusqlite::params;
use serde_json::Value;
use time::OffsetDateTime;

use super::audit::change_from_row;
use super::{CURRENT_REVISION, SqliteStore, backend, log_change, log_write};
use crate::time_util::to_micros;
use crate::{AuditEvent, ChangeEntry, ChangeLog, Result, Revision, WriteCtx};

/// What expired after the cursor and by `now`: (expires_at, target_type, target_pk, what expired), oldest first.
const DUE: &str = "SELECT expires_at, 'groups', CAST(grp AS TEXT), json_object('membership', json_object('user', user, 'group', grp))
       FROM memberships WHERE expires_at > ?1 AND expires_at <= ?2
     UNION ALL
     SELECT expires_at, 'roles', CAST(role AS TEXT), json_object('role_assignment', json_object('role', role, 'subject', subject_type || ':' || subject_pk))
       FROM role_assignments WHERE expires_at > ?1 AND expires_at <= ?2
     UNION ALL
     SELECT expires_at, CASE WHEN object_model = '' THEN subject_type || 's' ELSE object_model END,
            CASE WHEN object_model = '' THEN CAST(subject_pk AS TEXT) ELSE object_pk END,
            json_object('grant', json_object('subject', subject_type || ':' || subject_pk, 'permission', module || '.' || action,
                                             'object_pk', NULLIF(object_pk, '')))
       FROM grants WHERE expires_at > ?1 AND expires_at <= ?2
     ORDER BY 1";

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn revision(&self) -> Result<Revision> {
        self.read(|c| c.prepare_cached(CURRENT_REVISION)?.query_row([], |r| r.get(0)).map_err(backend)).await
    }

    async fn audit(&self, ctx: &WriteCtx, event: AuditEvent) -> Result<()> {
        let AuditEvent { action, target_type, target_pk, changes } = event;
        self.write(ctx, move |c, ctx| log_change(c, ctx, action, target_type, &target_pk, &changes)).await
    }

    async fn record_expirations(&self, now: OffsetDateTime) -> Result<usize> {
        let now = to_micros(now);
        self.write(&WriteCtx::default(), move |c, ctx| {
            let since: i64 =
                c.prepare_cached("SELECT at FROM expiry_cursor WHERE id = 1")?.query_row([], |r| r.get(0)).map_err(backend)?;
            let due = c
                .prepare_cached(DUE)?
                .query_map(params![since, now], |r| <(i64, String, String, String)>::try_from(r))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (expired_at, target_type, target_pk, what) in &due {
                c.prepare_cached("UPDATE expiry_cursor SET at = ? WHERE id = 1")?.execute(params![expired_at])?;
                let mut changes: Value = serde_json::from_str(what).unwrap_or(Value::Null);
                changes["expired_at"] = Value::from(*expired_at);
                log_write(c, ctx, "expire", target_type, target_pk, &changes)?;
            }
            c.prepare_cached("UPDATE expiry_cursor SET at = MAX(at, ?) WHERE id = 1")?.execute(params![now]).map_err(backend)?;
            Ok(due.len())
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
