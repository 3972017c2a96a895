//! Sessions and API tokens, looked up by the keyed hash of their secret.

use async_trait::async_trait;
use castellan_core::change::{Change, TokenRecord};
use castellan_core::model::{ApiToken, NewToken, Session};
use castellan_core::permission::ModulePermissions;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::{SqliteStore, backend, log_event, log_write};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{Credential, CredentialStore, Result, Revision, StoreError, WriteCtx};

const SESSION_COLUMNS: &str = "pk, user, csrf_token, created, last_used, expires_at, ip, user_agent";
const TOKEN_COLUMNS: &str = "pk, user, name, prefix, created_date, expires_at, last_used, permissions";

fn session_from(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        pk: r.get(0)?,
        user: r.get(1)?,
        csrf_token: r.get(2)?,
        created: from_micros(r.get(3)?),
        last_used: from_micros(r.get(4)?),
        expires_at: from_micros(r.get(5)?),
        ip: r.get(6)?,
        user_agent: r.get(7)?,
    })
}

fn token_from(r: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        pk: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        created_date: from_micros(r.get(4)?),
        expires_at: r.get::<_, Option<i64>>(5)?.map(from_micros),
        last_used: r.get::<_, Option<i64>>(6)?.map(from_micros),
        permissions: r.get::<_, Option<String>>(7)?.map(|text| scopes_from(&text)),
    })
}

/// A token's stored scopes; text that does not read as scopes leaves the token none (never all of its owner's).
fn scopes_from(text: &str) -> ModulePermissions {
    serde_json::from_str(text).ok().and_then(|v| ModulePermissions::parse_names(&v, "permissions").ok()).unwrap_or_default()
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
        let (secret_hash, csrf_token, ip, user_agent) =
            (secret_hash.to_vec(), csrf_token.to_string(), ip.to_string(), user_agent.to_string());
        let (now, expires_at) = (to_micros(now), to_micros(expires_at));
        self.write_plain(move |c| {
            let session = c
                .prepare_cached(&format!(
                    "INSERT INTO sessions (user, secret_hash, csrf_token, created, last_used, expires_at, ip, user_agent)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {SESSION_COLUMNS}"
                ))?
                .query_row(params![user, secret_hash, csrf_token, now, now, expires_at, ip, user_agent], session_from)?;
            Ok(session)
        })
        .await
    }

    async fn create_token(&self, ctx: &WriteCtx, user: i64, new: NewToken) -> Result<(ApiToken, Revision)> {
        let expires_at = new.expires_at.map(to_micros);
        let names = new.permissions.as_ref().map(ModulePermissions::names);
        let scopes = names.as_ref().map(|n| serde_json::json!(n).to_string());
        self.write(ctx, move |c, ctx| {
            let token = c
                .prepare_cached(&format!(
                    "INSERT INTO api_tokens (user, name, prefix, secret_hash, created_date, expires_at, permissions)
                     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
                ))?
                .query_row(params![user, new.name, new.prefix, new.secret_hash, now_micros(), expires_at, scopes], token_from)?;
            let after = TokenRecord { user, name: new.name, prefix: new.prefix, permissions: names };
            let revision = log_write(c, ctx, Change::TokenCreated { pk: token.pk, after })?;
            Ok((token, revision))
        })
        .await
    }

    async fn credential_by_hash(&self, hash: &[u8]) -> Result<Option<Credential>> {
        let hash = hash.to_vec();
        self.read(move |c| {
            let session = c
                .prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE secret_hash = ?"))?
                .query_row(params![hash], session_from)
                .optional()
                .map_err(backend)?;
            if let Some(session) = session {
                return Ok(Some(Credential::Session(session)));
            }
            let token = c
                .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = ?"))?
                .query_row(params![hash], token_from)
                .optional()
                .map_err(backend)?;
            Ok(token.map(Credential::Token))
        })
        .await
    }

    async fn touch_credential(&self, credential: &Credential, at: OffsetDateTime) -> Result<()> {
        let (sql, pk) = match credential {
            Credential::Session(s) => ("UPDATE sessions SET last_used = ? WHERE pk = ?", s.pk),
            Credential::Token(t) => ("UPDATE api_tokens SET last_used = ? WHERE pk = ?", t.pk),
        };
        let at = to_micros(at);
        self.write_plain(move |c| {
            c.prepare_cached(sql)?.execute(params![at, pk]).map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self, user: i64) -> Result<Vec<Session>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE user = ? ORDER BY pk DESC"))?;
            let rows = stmt.query_map(params![user], session_from).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn list_tokens(&self, user: i64) -> Result<Vec<ApiToken>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user = ? ORDER BY pk DESC"))?;
            let rows = stmt.query_map(params![user], token_from).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn delete_session(&self, user: i64, pk: i64) -> Result<()> {
        self.write_plain(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM sessions WHERE user = ? AND pk = ?")?
                .execute(params![user, pk])
                .map_err(backend)?;
            if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
        })
        .await
    }

    async fn delete_token(&self, ctx: &WriteCtx, user: i64, pk: i64) -> Result<Revision> {
        self.write(ctx, move |c, ctx| {
            let deleted = c
                .prepare_cached("DELETE FROM api_tokens WHERE user = ? AND pk = ?")?
                .execute(params![user, pk])
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::NotFound);
            }
            log_write(c, ctx, Change::TokenDeleted { pk, user })
        })
        .await
    }

    async fn end_credentials(&self, ctx: &WriteCtx, user: i64, keep_session: Option<i64>, tokens: bool) -> Result<()> {
        self.write(ctx, move |c, ctx| {
            c.prepare_cached("DELETE FROM sessions WHERE user = ? AND pk IS NOT ?")?
                .execute(params![user, keep_session])
                .map_err(backend)?;
            if tokens {
                c.prepare_cached("DELETE FROM api_tokens WHERE user = ?")?.execute(params![user]).map_err(backend)?;
            }
            log_event(c, ctx, Change::SessionsRevoked { user, tokens }).map(|_| ())
        })
        .await
    }
}
