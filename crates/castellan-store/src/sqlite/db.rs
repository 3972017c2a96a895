//! The SQLite connections: one writer thread that owns the write connection and commits queued writes in groups,
//! and a pool of read-only connections used on blocking threads.
//!
//! Group commit: every write waiting when a transaction starts goes into it, each inside its own savepoint (a refused
//! write rolls back to its savepoint and leaves the others intact), and each is acknowledged only after the commit.
//! Writers never contend for SQLite's lock, so a burst of concurrent writes queues instead of timing out.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Statements around each write of a group: its savepoint, kept, or undone (prepared once, cached).
const SAVEPOINT: &str = "SAVEPOINT write";
const RELEASE: &str = "RELEASE write";
const ROLLBACK_TO: &str = "ROLLBACK TO write";

/// Most writes committed in one transaction: bounds how long the first of them waits for its acknowledgement.
const MAX_GROUP: usize = 512;

/// Idle read connections kept open. Generous: a connection opened afresh starts with a cold page cache and no
/// prepared statements, which cost more than the whole query (a listing under 16 clients spent 5% opening readers
/// and most of its time re-reading pages when only 8 were kept).
const MAX_IDLE_READERS: usize = 64;

/// How long a connection waits for a lock held by another process (a second `castellan` on the same file).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A queued write: runs on the write connection (or learns why it cannot) and says whether it succeeded, handing
/// back what acknowledges it once the group's commit is known.
type Job = Box<dyn FnOnce(std::result::Result<&Connection, &str>) -> (bool, Ack) + Send>;

/// Acknowledges one write with the outcome of its group's commit (`Err` with the reason when it failed).
type Ack = Box<dyn FnOnce(std::result::Result<(), &str>) + Send>;

/// The write queue and the read pool of one database file.
pub(super) struct Db {
    writer: mpsc::Sender<Job>,
    readers: Arc<Readers>,
    /// Transactions committed by the writer (each holding one group of writes).
    commits: Arc<AtomicU64>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Db {
    /// Opens `path` (creating it), sets the pragmas and starts the writer thread.
    pub(super) fn open(path: &Path) -> Result<Self> {
        let conn = open_writer(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let commits = Arc::new(AtomicU64::new(0));
        std::thread::Builder::new()
            .name("castellan-sqlite-writer".into())
            .spawn({
                let commits = commits.clone();
                move || run_writer(conn, rx, &commits)
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let checkpointer = Checkpointer { path: path.to_path_buf(), commits: Arc::downgrade(&commits) };
        std::thread::Builder::new()
            .name("castellan-sqlite-checkpoint".into())
            .spawn(move || checkpointer.run())
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        let readers = Arc::new(Readers { path: path.to_path_buf(), idle: Mutex::new(Vec::new()) });
        Ok(Self { writer: tx, readers, commits })
    }

    /// How many transactions the writer has committed.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Runs `f` on a read-only connection on a blocking thread.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| StoreError::Backend(format!("a read failed: {e}")))?
    }

    /// Queues `f` for the writer thread; answers once the group it ran in is committed (or `f`'s own error, in
    /// which case nothing it did is kept).
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_then(f, |_| {}).await
    }

    /// Like [`Db::write`], and runs `committed` with `f`'s answer on the writer thread once the group is committed,
    /// before the write is acknowledged: in commit order, so what it publishes is in the order of the log.
    pub(super) async fn write_then<T, F, C>(&self, f: F, committed: C) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        C: FnOnce(&mut T) + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            let conn = match conn {
                Ok(conn) => conn,
                Err(why) => {
                    let _ = reply.send(Err(StoreError::Backend(why.to_string())));
                    return (false, Box::new(|_| {}));
                }
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(StoreError::Backend("a write panicked".into())));
            let ok = outcome.is_ok();
            let ack: Ack = Box::new(move |commit| {
                let answer = match (outcome, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(why)) => Err(StoreError::Backend(format!("commit failed: {why}"))),
                    (Ok(mut value), Ok(())) => {
                        committed(&mut value);
                        Ok(value)
                    }
                };
                let _ = reply.send(answer);
            });
            (ok, ack)
        });
        self.writer.send(job).map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?
    }
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.idle.lock().pop() {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        // A connection left inside a transaction by an error is not reused.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        out
    }
}

/// How often the checkpointer looks for committed writes to copy back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Beyond this many pages (64 MB) the write-ahead log is started over once writes pause for a moment. That checkpoint
/// holds the write lock while it waits for readers of old snapshots and syncs the database file (50 to 100 ms under
/// load), so a steady stream of writes is not stalled for it...
const WAL_MAX_FRAMES: i64 = 16_384;

/// ...unless the log reaches this many pages (1 GB).
const WAL_HARD_MAX_FRAMES: i64 = 262_144;

/// Copies the write-ahead log back into the database file off the writer thread: SQLite's automatic checkpoints run
/// inside a committing write and took a tenth of the writer's time under load. Passive checkpoints never wait for
/// or block anyone, but under a steady load some reader always holds an old snapshot, so the log is never started
/// over and grows without bound (630 MB in 20 seconds of writes); past [`WAL_MAX_FRAMES`] a restarting checkpoint
/// waits for the readers of old snapshots (they are short) and starts it over. Ends once the store is dropped.
struct Checkpointer {
    path: PathBuf,
    commits: std::sync::Weak<AtomicU64>,
}

impl Checkpointer {
    fn run(self) {
        let mut conn = None;
        let (mut seen, mut done, mut frames) = (0, 0, 0);
        loop {
            std::thread::sleep(CHECKPOINT_EVERY);
            let Some(commits) = self.commits.upgrade().map(|c| c.load(Ordering::Relaxed)) else { return };
            let quiet = commits == seen;
            seen = commits;
            if commits == done && frames <= WAL_MAX_FRAMES {
                continue;
            }
            if conn.is_none() {
                conn = Connection::open(&self.path).and_then(|c| c.busy_handler(Some(retry_soon)).map(|()| c)).ok();
            }
            let Some(c) = &conn else { continue };
            match checkpoint(c, quiet, WAL_MAX_FRAMES, WAL_HARD_MAX_FRAMES) {
                Ok(left) => (done, frames) = (commits, left),
                Err(e) => tracing::warn!("checkpoint of {} failed: {e}", self.path.display()),
            }
        }
    }
}

/// A passive checkpoint, then one that starts the log over when it holds more than `max` pages and writes paused
/// (or more than `hard_max`); answers how many pages the log holds.
fn checkpoint(c: &Connection, quiet: bool, max: i64, hard_max: i64) -> rusqlite::Result<i64> {
    let frames: i64 = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?;
    let mode = if frames > max && quiet {
        // No write to stall: empty the file too.
        "TRUNCATE"
    } else if frames > hard_max {
        "RESTART"
    } else {
        return Ok(frames);
    };
    c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(1))
}

/// The checkpointer's busy handler: retries every 100 µs for up to half a second. SQLite's own sleeps grow to
/// 100 ms, and a truncating checkpoint holds the write lock while it waits for readers, so each of its naps stalled
/// every write (p99 80 ms); readers finish in well under a millisecond.
fn retry_soon(attempts: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempts < 5_000
}

fn open_writer(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 0;
         PRAGMA mmap_size = 4294967296;",
    )
    .map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// Opens a read-only connection (also used on the writer thread by dry runs, for the state before their write). It
/// reads through SQLite's page cache, not a memory map: in WAL mode a reader drops its map whenever another
/// connection has written, so under a stream of writes every read unmapped and mapped the whole file again (400
/// `munmap`s of 133 MB a second, a third fewer membership writes with 16 clients).
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16384; PRAGMA mmap_size = 0;").map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// The writer thread: takes every write waiting, runs them in one transaction, commits, acknowledges.
fn run_writer(conn: Connection, queue: mpsc::Receiver<Job>, commits: &AtomicU64) {
    while let Ok(first) = queue.recv() {
        let mut group = Group { conn: &conn, acks: Vec::new(), broken: None, commits };
        group.run(first);
        while group.acks.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(queued) => group.run(queued),
                Err(_) => break,
            }
        }
        group.commit();
    }
}

/// The transaction of a group of writes being built on the writer thread.
struct Group<'c> {
    conn: &'c Connection,
    acks: Vec<Ack>,
    /// Why the transaction cannot commit (a savepoint could not be taken or released).
    broken: Option<String>,
    commits: &'c AtomicU64,
}

impl Group<'_> {
    /// Runs one write in its savepoint.
    fn run(&mut self, job: Job) {
        if self.conn.is_autocommit()
            && self.broken.is_none()
            && let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE")
        {
            self.broken = Some(e.to_string());
        }
        if let Some(why) = &self.broken {
            let (_, ack) = job(Err(why));
            self.acks.push(ack);
            return;
        }
        if let Err(e) = self.step(SAVEPOINT) {
            let why = e.to_string();
            let (_, ack) = job(Err(&why));
            self.acks.push(ack);
            self.broken = Some(why);
            return;
        }
        let (ok, ack) = job(Ok(self.conn));
        let ended = if ok { self.step(RELEASE) } else { self.step(ROLLBACK_TO).and_then(|()| self.step(RELEASE)) };
        if let Err(e) = ended {
            self.broken = Some(e.to_string());
        }
        self.acks.push(ack);
    }

    /// Runs one of the cached statements around a write.
    fn step(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(|_| ())
    }

    /// Commits (or, when broken, rolls back) and acknowledges every write of the group.
    fn commit(&mut self) {
        metrics::histogram!("castellan_write_group_size").record(self.acks.len() as f64);
        let outcome = match self.broken.take() {
            Some(why) => Err(why),
            None if !self.conn.is_autocommit() => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                let started = std::time::Instant::now();
                let committed = self.conn.execute_batch("COMMIT").map_err(|e| e.to_string());
                metrics::histogram!("castellan_commit_duration_seconds").record(started.elapsed().as_secs_f64());
                committed
            }
            None => Ok(()),
        };
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        let outcome = outcome.as_ref().map(|_| ()).map_err(String::as_str);
        for ack in self.acks.drain(..) {
            ack(outcome);
        }
    }
}

/// Maps a database error without a more specific meaning.
pub(super) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Maps row-not-found and constraint violations to their domain meaning.
pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(f, message)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            let column = message.as_deref().and_then(|m| m.rsplit('.').next()).unwrap_or("unique");
            let constraint = match column {
                "username_lower" => "username",
                other => other,
            };
            StoreError::Conflict { constraint: constraint.to_string() }
        }
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::Conflict { constraint: "reference".to_string() }
        }
        _ => backend(e),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        map_err(e)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Db;
    use crate::StoreError;

    fn rows(db_path: &std::path::Path) -> Vec<i64> {
        let conn = rusqlite::Connection::open(db_path).unwrap();
        let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn a_long_log_is_emptied_when_writes_pause_and_started_over_when_far_too_long() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = super::open_writer(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)").unwrap();
        let write = |from: i64, count: i64| {
            for n in from..from + count {
                writer.execute("INSERT INTO t VALUES (?, zeroblob(3000))", [n]).unwrap();
            }
        };
        let wal_len = || std::fs::metadata(dir.path().join("t.db-wal")).map(|m| m.len()).unwrap_or(0);
        let c = rusqlite::Connection::open(&path).unwrap();
        write(0, 50);
        let frames = super::checkpoint(&c, false, 10, 1_000).unwrap();
        assert!(frames > 10, "passive: the log keeps its {frames} pages while writes go on");
        let long = wal_len();
        assert!(long > 0);
        assert_eq!(super::checkpoint(&c, true, 10, 1_000).unwrap(), 0, "writes paused: emptied");
        assert_eq!(wal_len(), 0, "and the file truncated");
        write(50, 50);
        let full = wal_len();
        super::checkpoint(&c, false, 10, 20).unwrap();
        assert_eq!(wal_len(), full, "far too long under load: not truncated...");
        write(100, 10);
        assert_eq!(wal_len(), full, "...but started over: the next writes reuse the file from its start");
        assert_eq!(rows(&path).len(), 110, "nothing lost");
    }

    #[tokio::test]
    async fn a_refused_write_in_a_group_leaves_the_others_applied_and_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let db = Db::open(&path).unwrap();
        db.write(|c| Ok(c.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")?)).await.unwrap();
        // The first write holds the writer while the others queue, so all four run in one group.
        let commits_before = db.commits();
        let later = || tokio::time::sleep(Duration::from_millis(50));
        let (slow, first, refused, last) = tokio::join!(
            db.write(|c| {
                std::thread::sleep(Duration::from_millis(200));
                Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?)
            }),
            async {
                later().await;
                db.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (2)", [])?)).await
            },
            async {
                later().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                db.write(|c| {
                    c.execute("INSERT INTO t (n) VALUES (3)", [])?;
                    // A duplicate key: refused after having written row 3.
                    Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?)
                })
                .await
            },
            async {
                later().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                db.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (4)", [])?)).await
            },
        );
        assert_eq!(slow.unwrap(), 1);
        assert_eq!(first.unwrap(), 1);
        assert!(matches!(refused, Err(StoreError::Conflict { .. })), "{refused:?}");
        assert_eq!(last.unwrap(), 1);
        assert_eq!(rows(&path), vec![1, 2, 4]);
        assert_eq!(db.commits() - commits_before, 1, "the three queued while the slow write ran joined its group");
    }
}
