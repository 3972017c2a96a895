//! Sessions and API tokens, looked up by the keyed hash of their secret.

use async_trait::async_trait;
use castellan_core::model::{ApiToken, Session};
use serde_json::json;
use time::OffsetDateTime;

use super::{SqliteStore, backend, log_write, map_err};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{Credential, CredentialStore, Result, Revision, StoreError, WriteCtx};

type SessionRow = (i64, i64, String, i64, i64, i64, String, String);
type TokenRow = (i64, i64, String, String, i64, Option<i64>, Option<i64>);

const SESSION_COLUMNS: &str = "pk, user, csrf_token, created, last_used, expires_at, ip, user_agent";
const TOKEN_COLUMNS: &str = "pk, user, name, prefix, created_date, expires_at, last_used";

fn session_from(r: SessionRow) -> Session {
    Session {
        pk: r.0,
        user: r.1,
        csrf_token: r.2,
        created: from_micros(r.3),
        last_used: from_micros(r.4),
        expires_at: from_micros(r.5),
        ip: r.6,
        user_agent: r.7,
    }
}

fn token_from(r: TokenRow) -> ApiToken {
    ApiToken {
        pk: r.0,
        user: r.1,
        name: r.2,
        prefix: r.3,
        created_date: from_micros(r.4),
        expires_at: r.5.map(from_micros),
        last_used: r.6.map(from_micros),
    }
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn create_session(
        &self,
        user: i64,
        secret_hash: &[u8],
        csrf_token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        ip: &str,
        user_agent: &str,
    ) -> Result<Session> {
        let row: SessionRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sessions (user, secret_hash, csrf_token, created, last_used, expires_at, ip, user_agent)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {SESSION_COLUMNS}"
        )))
        .bind(user)
        .bind(secret_hash)
        .bind(csrf_token)
        .bind(to_micros(now))
        .bind(to_micros(now))
        .bind(to_micros(expires_at))
        .bind(ip)
        .bind(user_agent)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(session_from(row))
    }

    async fn create_token(
        &self,
        ctx: &WriteCtx,
        user: i64,
        name: &str,
        prefix: &str,
        secret_hash: &[u8],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(ApiToken, Revision)> {
        let mut tx = self.begin_write().await?;
        let row: TokenRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_tokens (user, name, prefix, secret_hash, created_date, expires_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(user)
        .bind(name)
        .bind(prefix)
        .bind(secret_hash)
        .bind(now_micros())
        .bind(expires_at.map(to_micros))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let token = token_from(row);
        let changes = json!({"after": {"user": user, "name": name, "prefix": prefix}});
        let revision = log_write(tx, ctx, "create", "tokens", &token.pk.to_string(), &changes).await?;
        Ok((token, revision))
    }

    async fn credential_by_hash(&self, hash: &[u8]) -> Result<Option<Credential>> {
        let session: Option<SessionRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE secret_hash = ?")))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        if let Some(row) = session {
            return Ok(Some(Credential::Session(session_from(row))));
        }
        let token: Option<TokenRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = ?")))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(token.map(|row| Credential::Token(token_from(row))))
    }

    async fn touch_credential(&self, credential: &Credential, at: OffsetDateTime) -> Result<()> {
        let (sql, pk) = match credential {
            Credential::Session(s) => ("UPDATE sessions SET last_used = ? WHERE pk = ?", s.pk),
            Credential::Token(t) => ("UPDATE api_tokens SET last_used = ? WHERE pk = ?", t.pk),
        };
        sqlx::query(sql).bind(to_micros(at)).bind(pk).execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }

    async fn list_sessions(&self, user: i64) -> Result<Vec<Session>> {
        let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user = ? ORDER BY pk DESC"
        )))
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.into_iter().map(session_from).collect())
    }

    async fn list_tokens(&self, user: i64) -> Result<Vec<ApiToken>> {
        let rows: Vec<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user = ? ORDER BY pk DESC"
        )))
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.into_iter().map(token_from).collect())
    }

    async fn delete_session(&self, user: i64, pk: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM sessions WHERE user = ? AND pk = ?")
            .bind(user)
            .bind(pk)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_token(&self, ctx: &WriteCtx, user: i64, pk: i64) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM api_tokens WHERE user = ? AND pk = ?")
            .bind(user)
            .bind(pk)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let revision = log_write(tx, ctx, "delete", "tokens", &pk.to_string(), &json!({"before": {"user": user}})).await?;
        Ok(revision)
    }

    async fn end_credentials(&self, user: i64, keep_session: Option<i64>, tokens: bool) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user = ? AND pk IS NOT ?")
            .bind(user)
            .bind(keep_session)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        if tokens {
            sqlx::query("DELETE FROM api_tokens WHERE user = ?").bind(user).execute(&self.pool).await.map_err(backend)?;
        }
        Ok(())
    }
}
