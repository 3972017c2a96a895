//! The SQLite (WAL) backend: the embedded default.

mod audit;
mod catalog;
mod changes;
mod credentials;
mod data;
pub mod dataset;
mod groups;
mod objects;
mod orgs;
mod permissions;
mod users;

mod db;
mod migrate;
mod orders;
mod sql;

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use castellan_core::change::Change;
use rusqlite::{Connection, OptionalExtension, params};

use self::db::{Db, backend, map_err};
use self::sql::Sql;
use crate::tail::CommittedTail;
use crate::time_util::{from_micros, now_micros};
use crate::{ChangeEntry, PreviewSlot, Result, Revision, Store, StoreError, WriteCtx, dry_run_slot};

/// Castellan's store on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
    /// The change-log rows this store committed last, which its followers read instead of the log.
    tail: Arc<CommittedTail>,
    /// Known positions in the user list's orderings, for deep pages.
    /// Every user's sort keys in memory, for lists by any ordering.
    orders: Arc<orders::Orders>,
}

/// The newest committed revision: the largest one logged (0 before any write).
const CURRENT_REVISION: &str = "SELECT COALESCE(MAX(revision), 0) FROM change_log";

/// The newest committed revision, as `c` reads it.
fn current_revision(c: &Connection) -> Result<Revision> {
    c.prepare_cached(CURRENT_REVISION).map_err(backend)?.query_row([], |r| r.get(0)).map_err(backend)
}

/// Appends a change-log row; the revision is the newest logged plus one when the row `advances` it (only the writer
/// thread writes, so no other write takes it). The row belongs to the org of its target (API.md §11): the one the
/// change records (`?11`), else the target's as stored, else (an unregistered object, a module) the actor's.
const INSERT_LOG: &str =
    "INSERT INTO change_log (at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id, org)
     VALUES (?1, CASE WHEN ?2 THEN (SELECT COALESCE(MAX(revision), 0) + 1 FROM change_log) END, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
             COALESCE(?11, CASE ?6
                 WHEN 'users' THEN (SELECT org FROM users WHERE pk = ?7)
                 WHEN 'groups' THEN (SELECT org FROM groups WHERE pk = ?7)
                 WHEN 'roles' THEN (SELECT org FROM roles WHERE pk = ?7)
                 WHEN 'orgs' THEN CAST(?7 AS INTEGER)
                 ELSE (SELECT org FROM objects WHERE model = ?6 AND object_pk = ?7) END,
               (SELECT org FROM users WHERE pk = ?3)))
     RETURNING pk, revision";

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || Db::open(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("cannot open the database: {e}")))??;
        Ok(Self { db: Arc::new(db), tail: Arc::default(), orders: Arc::default() })
    }

    /// Opens a `sqlite:` URL (`sqlite://path`, `sqlite:path`; query parameters such as `mode=rwc` are accepted and
    /// the file is created when missing).
    pub async fn open_url(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::Backend(format!("not a sqlite: URL: {url}")))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::Backend(
                "an SQLite URL must name a file (in-memory databases are not shared across connections)".into(),
            ));
        }
        Self::open(Path::new(path)).await
    }
}

impl SqliteStore {
    /// Runs a logged write `f` on the writer thread (`ctx` is moved into it); in a dry run, its change-log append
    /// hands the change over and rolls the write back instead.
    async fn write<T, F>(&self, ctx: &WriteCtx, f: F) -> Result<T>
    where
        F: FnOnce(&Connection, &Logging) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let logging =
            Logging { ctx: ctx.clone(), preview: dry_run_slot(), logged: RefCell::default(), moved: RefCell::default() };
        let (tail, orders) = (self.tail.clone(), self.orders.clone());
        let write = move |c: &Connection| {
            let out = f(c, &logging)?;
            Ok((out, logging.logged.into_inner(), logging.moved.into_inner()))
        };
        let committed = move |(_, logged, moved): &mut (T, Vec<ChangeEntry>, Vec<orders::Moved>)| {
            let revisions: Vec<Revision> = logged.iter().filter_map(|entry| entry.revision).collect();
            orders.follow(&revisions, moved);
            tail.push(std::mem::take(logged));
        };
        let (out, _, _) = self.db.write_then(write, committed).await?;
        Ok(out)
    }

    /// Runs an unlogged write (sessions, user data) on the writer thread; refused in a dry run, which could not
    /// roll it back.
    async fn write_plain<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if dry_run_slot().is_some() {
            return Err(StoreError::NotPreviewable);
        }
        self.db.write(f).await
    }

    /// Transactions the writer has committed since the store was opened; each holds one group of writes, so writes
    /// acknowledged over commits is the average group size.
    pub fn commits(&self) -> u64 {
        self.db.commits()
    }

    /// Runs `f` on a read-only connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.db.read(f).await
    }
}

/// Appends the change-log row of a write running on the writer thread and answers its revision. For a dry run
/// (`ctx.preview`), the preview is read on both sides of the write instead, which is then rolled back.
fn log_write(conn: &Connection, logging: &Logging, change: Change) -> Result<Revision> {
    log_event(conn, logging, change)?.ok_or_else(|| StoreError::Backend("the change log gave no revision".into()))
}

/// Like [`log_write`], for any change: answers the revision it produced (`None` for an audit-only event).
fn log_event(conn: &Connection, logging: &Logging, change: Change) -> Result<Option<Revision>> {
    if let Some(slot) = &logging.preview {
        let mut slot = slot.lock().map_err(|_| StoreError::Backend("a dry run's slot is poisoned".into()))?;
        *slot = Some(change);
        return Err(StoreError::DryRun);
    }
    insert_log(conn, logging, change)
}

/// How a write running on the writer thread logs its change: who made it, the slot of a dry run, and the rows it
/// appended (published to the store's tail once committed).
struct Logging {
    ctx: WriteCtx,
    preview: Option<PreviewSlot>,
    logged: RefCell<Vec<ChangeEntry>>,
    /// User rows the write created, changed or deleted (for the users' orders).
    moved: RefCell<Vec<orders::Moved>>,
}

/// Appends `change` to the change log; answers the revision it produced (`None` for an audit-only event).
fn insert_log(conn: &Connection, logging: &Logging, change: Change) -> Result<Option<Revision>> {
    let ctx = &logging.ctx;
    let (actor, actor_username) = match &ctx.actor {
        Some((pk, name)) => (Some(*pk), Some(name.as_str())),
        None => (None, None),
    };
    let (target_type, target_pk) = change.target();
    let (at, changes) = (now_micros(), change.to_value());
    let (pk, revision) = conn.prepare_cached(INSERT_LOG)?.query_row(
        params![
            at,
            change.advances_revision(),
            actor,
            actor_username,
            change.action(),
            target_type,
            target_pk,
            changes.to_string(),
            ctx.ip,
            ctx.request_id,
            change.org()
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    logging.logged.borrow_mut().push(ChangeEntry {
        pk,
        at: from_micros(at),
        revision,
        actor: ctx.actor.clone(),
        action: change.action().to_string(),
        target_type,
        target_pk,
        changes,
        change: Some(change),
        ip: ctx.ip.clone(),
        request_id: ctx.request_id.clone(),
    });
    Ok(revision)
}

/// A search term as one FTS5 phrase: a substring match with the trigram tokenizer, never query syntax.
fn fts_phrase(term: &str) -> String {
    format!("\"{}\"", term.replace('"', "\"\""))
}

/// Terms this long or longer are looked up in a trigram index; shorter ones have no trigram to look up.
const TRIGRAM: usize = 3;

/// Lower-cases `term` and escapes `LIKE` wildcards (with `\\` as the escape character).
fn like_escape(term: &str) -> String {
    term.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        self.write_plain(migrate::run).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }

    async fn server_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        let candidate = candidate.to_vec();
        self.write_plain(move |c| {
            c.execute("INSERT OR IGNORE INTO server_secrets (name, value) VALUES ('credential_key', ?)", [&candidate])?;
            let key: Option<Vec<u8>> =
                c.query_row("SELECT value FROM server_secrets WHERE name = 'credential_key'", [], |r| r.get(0)).optional()?;
            key.ok_or_else(|| StoreError::Backend("the server key is missing".into()))
        })
        .await
    }
}
