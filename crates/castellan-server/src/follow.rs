//! One reader of the change log for everything this server holds in memory (the authorization index and the
//! directory): after each write of this server, before it is answered; on a timer, for other replicas' writes; and
//! on demand, to reach a revision a caller asks for.

use std::sync::Arc;
use std::time::Duration;

use castellan_store::{Revision, Store, StoreError};
use tokio::sync::Mutex;

use crate::directory::DirectoryView;
use crate::engine::EngineView;

/// Change-log rows read per step while catching up.
const BATCH: i64 = 1000;

/// The in-memory views and how far into the change log they have been brought.
pub struct LogFollower {
    /// The last change-log row applied; held while catching up so that one follower runs at a time.
    applied: Mutex<i64>,
    store: Arc<dyn Store>,
    engine: Arc<EngineView>,
    directory: Arc<DirectoryView>,
}

impl LogFollower {
    /// Loads both views from the store.
    pub async fn start(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        // Read the log position first: rows after it are applied again, which is harmless.
        let applied = store.last_change_pk().await?;
        let directory = Arc::new(DirectoryView::load(store.as_ref()).await?);
        let engine = EngineView::start(store.clone()).await?;
        Ok(Self { applied: Mutex::new(applied), store, engine, directory })
    }

    /// The authorization index.
    pub fn engine(&self) -> &Arc<EngineView> {
        &self.engine
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<DirectoryView> {
        &self.directory
    }

    /// Applies every change-log row not applied yet to both views.
    pub async fn follow(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        loop {
            let entries = self.store.changes(*applied, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.pk) else { return Ok(()) };
            self.engine.apply(&entries).await?;
            self.directory.apply(self.store.as_ref(), &entries).await?;
            *applied = last;
        }
    }

    /// Follows the log, logging a failure (the next call retries).
    pub async fn follow_or_log(&self) {
        if let Err(e) = self.follow().await {
            tracing::error!("cannot follow the change log: {e}");
        }
    }

    /// Waits until the index reflects `revision`, following the log, for up to `timeout`; `false` on timeout.
    pub async fn reach(&self, revision: Revision, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.engine.revision() >= revision {
                return true;
            }
            self.follow_or_log().await;
            if self.engine.revision() >= revision {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
