//! The SQLite (WAL) backend: the embedded default.

mod audit;
mod changes;
mod credentials;
mod data;
pub mod dataset;
mod groups;
mod objects;
mod orgs;
mod permissions;
mod preview;
mod users;

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};

use crate::time_util::now_micros;
use crate::{ChangeEntry, Result, Revision, Store, StoreError, WriteCtx};

/// Castellan's store on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// A write transaction: `BEGIN IMMEDIATE` in one round trip, the change-log row (which takes the next revision) and
/// `COMMIT` in another. Dropped unfinished (an error on the way), its connection is closed rather than reused, which rolls back.
struct Tx {
    conn: PoolConnection<Sqlite>,
    finished: bool,
    /// For a dry run's second connection, which reads the state before the write.
    pool: SqlitePool,
}

impl Deref for Tx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

/// Opens a write: takes the write lock (the revision is assigned when the write is logged).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE;";

/// The newest committed revision: the largest one logged (0 before any write).
const CURRENT_REVISION: &str = "SELECT COALESCE(MAX(revision), 0) FROM change_log";

/// The revision of the write being logged, as an SQL expression (under the write lock, so no other write takes it).
const NEXT_REVISION: &str = "(SELECT COALESCE(MAX(revision), 0) + 1 FROM change_log)";

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

    /// Starts a write transaction holding the write lock; [`log_write`] assigns the write's revision.
    async fn begin_write(&self) -> Result<Tx> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        sqlx::raw_sql(BEGIN_WRITE).execute(&mut *conn).await.map_err(backend)?;
        Ok(Tx { conn, finished: false, pool: self.pool.clone() })
    }
}

/// Appends the change-log row of a write begun with `begin_write` and commits, in one round trip; returns the
/// write's revision.
async fn log_write(
    tx: Tx,
    ctx: &WriteCtx,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) -> Result<Revision> {
    finish_write(tx, QueryBuilder::new(""), ctx, action, target_type, target_pk, changes).await
}

/// Like [`log_write`], with the write's last statement riding on the same round trip.
async fn log_write_after(
    tx: Tx,
    mut last: QueryBuilder<Sqlite>,
    ctx: &WriteCtx,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) -> Result<Revision> {
    last.push("; ");
    finish_write(tx, last, ctx, action, target_type, target_pk, changes).await
}

async fn finish_write(
    mut tx: Tx,
    mut qb: QueryBuilder<Sqlite>,
    ctx: &WriteCtx,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) -> Result<Revision> {
    push_log(&mut qb, ctx, true, action, target_type, target_pk, changes);
    if let Some(slot) = &ctx.preview {
        qb.build().execute(&mut *tx.conn).await.map_err(map_err)?;
        let entry = change_entry(ctx, action, target_type, target_pk, changes.clone());
        preview::preview_and_roll_back(tx, &entry, slot).await?;
        return Err(StoreError::DryRun);
    }
    qb.push("; COMMIT");
    let rows: Vec<Option<Revision>> = qb.build_query_scalar().fetch_all(&mut *tx.conn).await.map_err(map_err)?;
    tx.finished = true;
    rows.into_iter().flatten().next().ok_or_else(|| StoreError::Backend("the revision counter is missing".into()))
}

/// The change-log row a write is about to append, as followers read it (for a dry run, which appends none).
fn change_entry(ctx: &WriteCtx, action: &str, target_type: &str, target_pk: &str, changes: Value) -> ChangeEntry {
    ChangeEntry {
        pk: 0,
        at: time::OffsetDateTime::now_utc(),
        revision: Some(0),
        actor: ctx.actor.clone(),
        action: action.to_string(),
        target_type: target_type.to_string(),
        target_pk: target_pk.to_string(),
        changes,
        ip: ctx.ip.clone(),
        request_id: ctx.request_id.clone(),
    }
}

/// Appends one audit-only change-log row (it advances nothing) on `conn`.
async fn log_change(
    conn: &mut SqliteConnection,
    ctx: &WriteCtx,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) -> Result<()> {
    let mut qb = QueryBuilder::new("");
    push_log(&mut qb, ctx, false, action, target_type, target_pk, changes);
    qb.build().execute(conn).await.map_err(map_err)?;
    Ok(())
}

/// Pushes the change-log insert; the revision is the counter's value when the row `advances` it.
fn push_log(
    qb: &mut QueryBuilder<Sqlite>,
    ctx: &WriteCtx,
    advances: bool,
    action: &str,
    target_type: &str,
    target_pk: &str,
    changes: &Value,
) {
    let (actor, actor_username) = match &ctx.actor {
        Some((pk, name)) => (Some(*pk), Some(name.clone())),
        None => (None, None),
    };
    qb.push(
        "INSERT INTO change_log (at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id, org)
         VALUES (",
    );
    let mut values = qb.separated(", ");
    values.push_bind(now_micros());
    values.push(if advances { NEXT_REVISION } else { "NULL" });
    values.push_bind(actor);
    values.push_bind(actor_username);
    values.push_bind(action.to_string());
    values.push_bind(target_type.to_string());
    values.push_bind(target_pk.to_string());
    values.push_bind(changes.to_string());
    values.push_bind(ctx.ip.clone());
    values.push_bind(ctx.request_id.clone());
    values.push("(SELECT org FROM users WHERE pk = ").push_bind_unseparated(actor).push_unseparated(")");
    qb.push(") RETURNING revision");
}

/// ` AND column IN (...)` for a non-empty list of values; nothing for an empty one.
fn push_in<T>(qb: &mut QueryBuilder<Sqlite>, column: &str, values: &[T])
where
    T: Clone + Send + for<'q> sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite> + 'static,
{
    if values.is_empty() {
        return;
    }
    qb.push(format!(" AND {column} IN ("));
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(v.clone());
    }
    qb.push(")");
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

async fn commit(tx: Transaction<'static, Sqlite>) -> Result<()> {
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
