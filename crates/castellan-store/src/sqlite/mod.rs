//! The SQLite (WAL) backend: the embedded default.

mod changes;
mod credentials;
mod data;
pub mod dataset;
mod groups;
mod objects;
mod orgs;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use time::OffsetDateTime;

use crate::time_util::to_micros;
use crate::{Result, Revision, Store, StoreError, WriteCtx};

/// Castellan's store on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

type Tx = Transaction<'static, Sqlite>;

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::connect(options).await
    }

    /// Opens a `sqlite:` URL.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url).map_err(backend)?;
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536");
        let pool = SqlitePoolOptions::new().max_connections(8).min_connections(1).connect_with(options).await.map_err(backend)?;
        Ok(Self { pool })
    }

    /// Starts a write transaction holding the write lock and advances the revision, in one round trip; the new
    /// revision is read back by [`log_write`].
    async fn begin_write(&self) -> Result<Tx> {
        self.pool.begin_with("BEGIN IMMEDIATE; UPDATE revision_counter SET value = value + 1 WHERE id = 1").await.map_err(backend)
    }
}

/// Appends the change-log row of a write begun with `begin_write` and returns the write's revision.
async fn log_write(
    tx: &mut Tx,
    ctx: &WriteCtx,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) -> Result<Revision> {
    let revision = log_change(tx, ctx, true, action, target_type, target_pk, changes).await?;
    revision.ok_or_else(|| StoreError::Backend("the revision counter is missing".into()))
}

/// Appends one change-log row inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn log_change(
    tx: &mut Tx,
    ctx: &WriteCtx,
    advances: bool,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) -> Result<Option<Revision>> {
    let (actor, actor_username) = match &ctx.actor {
        Some((pk, name)) => (Some(*pk), Some(name.as_str())),
        None => (None, None),
    };
    sqlx::query_scalar(
        "INSERT INTO change_log (at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id)
         VALUES (?, CASE WHEN ? THEN (SELECT value FROM revision_counter WHERE id = 1) END, ?, ?, ?, ?, ?, ?, ?, ?)
         RETURNING revision",
    )
    .bind(to_micros(OffsetDateTime::now_utc()))
    .bind(advances)
    .bind(actor)
    .bind(actor_username)
    .bind(action)
    .bind(target_type)
    .bind(target_pk)
    .bind(changes.to_string())
    .bind(ctx.ip.as_deref())
    .bind(ctx.request_id.as_deref())
    .fetch_one(&mut **tx)
    .await
    .map_err(map_err)
}

/// Lower-cases `term` and escapes `LIKE` wildcards (with `\\` as the escape character).
fn like_escape(term: &str) -> String {
    term.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Maps a database error without a more specific meaning.
fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps row-not-found and constraint violations to their domain meaning.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let column = db.message().rsplit('.').next().unwrap_or("unique");
            let constraint = match column {
                "username_lower" => "username",
                other => other,
            };
            StoreError::Conflict { constraint: constraint.to_string() }
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict { constraint: "reference".to_string() }
        }
        _ => backend(e),
    }
}

async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(backend)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await.map_err(|e| StoreError::Backend(e.to_string()))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }

    async fn server_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        sqlx::query("INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('credential_key', ?)")
            .bind(candidate)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'credential_key'")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }
}
