//! The change log: every write's row, and audit-only events.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::{CURRENT_REVISION, SqliteStore, backend, log_change, log_write_after};
use crate::time_util::{from_micros, to_micros};
use crate::{AuditEvent, ChangeEntry, ChangeLog, Result, Revision, WriteCtx};

type ChangeRow =
    (i64, i64, Option<i64>, Option<i64>, Option<String>, String, String, String, String, Option<String>, Option<String>);

#[async_trait]
impl ChangeLog for SqliteStore {
    async fn revision(&self) -> Result<Revision> {
        sqlx::query_scalar(CURRENT_REVISION).fetch_one(&self.pool).await.map_err(backend)
    }

    async fn audit(&self, ctx: &WriteCtx, event: AuditEvent) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        log_change(&mut conn, ctx, event.action, event.target_type, &event.target_pk, &event.changes).await?;
        Ok(())
    }

    async fn record_expirations(&self, now: OffsetDateTime) -> Result<usize> {
        let now = to_micros(now);
        let since: i64 =
            sqlx::query_scalar("SELECT at FROM expiry_cursor WHERE id = 1").fetch_one(&self.pool).await.map_err(backend)?;
        // (expires_at, target_type, target_pk, what expired)
        let due: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT expires_at, 'groups', CAST(grp AS TEXT), json_object('membership', json_object('user', user, 'group', grp))
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
             ORDER BY 1",
        )
        .bind(since)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        for (expired_at, target_type, target_pk, what) in &due {
            let tx = self.begin_write().await?;
            let mut cursor = QueryBuilder::<Sqlite>::new("UPDATE expiry_cursor SET at = ");
            cursor.push_bind(*expired_at).push(" WHERE id = 1");
            let mut changes: Value = serde_json::from_str(what).unwrap_or(Value::Null);
            changes["expired_at"] = Value::from(*expired_at);
            log_write_after(tx, cursor, &WriteCtx::default(), "expire", target_type, target_pk, &changes).await?;
        }
        sqlx::query("UPDATE expiry_cursor SET at = MAX(at, ?) WHERE id = 1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(due.len())
    }

    async fn change_pk_at_revision(&self, revision: Revision) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(pk), 0) FROM change_log WHERE revision IS NOT NULL AND revision <= ?")
            .bind(revision)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn last_change_pk(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(pk), 0) FROM change_log").fetch_one(&self.pool).await.map_err(backend)
    }

    async fn changes(&self, after_pk: i64, limit: i64) -> Result<Vec<ChangeEntry>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT pk, at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id
             FROM change_log WHERE pk > ? ORDER BY pk LIMIT ?",
        )
        .bind(after_pk)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|r| ChangeEntry {
                pk: r.0,
                at: from_micros(r.1),
                revision: r.2,
                actor: r.3.zip(r.4),
                action: r.5,
                target_type: r.6,
                target_pk: r.7,
                changes: serde_json::from_str(&r.8).unwrap_or(Value::Null),
                ip: r.9,
                request_id: r.10,
            })
            .collect())
    }
}
