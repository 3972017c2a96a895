//! One reader of the change log for everything this server holds in memory (the authorization index, the
//! directory and the credential cache): after each write of this server, before it is answered; on a timer, for
//! other replicas' writes; and on demand, to reach a revision a caller asks for.

use std::sync::Arc;
use std::time::Duration;

use castellan_store::{Revision, Store, StoreError};
use tokio::sync::{Mutex, watch};

use crate::auth::credentials::CredentialCache;
use crate::catalog::CatalogView;
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
    catalog: Arc<CatalogView>,
    credentials: Arc<CredentialCache>,
    /// The last change-log row applied, announced to watchers of the log.
    position: watch::Sender<i64>,
}

impl LogFollower {
    /// Loads both views from the store; `credentials` is the cache the log's changes invalidate.
    pub async fn start(store: Arc<dyn Store>, credentials: Arc<CredentialCache>) -> Result<Self, StoreError> {
        // Read the log position first: rows after it are applied again, which is harmless.
        let applied = store.last_change_pk().await?;
        let directory = Arc::new(DirectoryView::load(store.as_ref()).await?);
        let catalog = Arc::new(CatalogView::load(store.as_ref()).await?);
        let engine = EngineView::start(store.clone()).await?;
        let (position, _) = watch::channel(applied);
        Ok(Self { applied: Mutex::new(applied), store, engine, directory, catalog, credentials, position })
    }

    /// The authorization index.
    pub fn engine(&self) -> &Arc<EngineView> {
        &self.engine
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<DirectoryView> {
        &self.directory
    }

    /// The permission catalog.
    pub fn catalog(&self) -> &Arc<CatalogView> {
        &self.catalog
    }

    /// Applies every change-log row not applied yet to both views.
    pub async fn follow(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        self.follow_locked(&mut applied, None).await
    }

    /// Brings both views to `revision` at least (a write of this server, before it is answered): a write that
    /// another request's follow already applied costs nothing, so concurrent writers share one read of the log.
    pub async fn follow_to(&self, revision: Revision) -> Result<(), StoreError> {
        if self.engine.revision() >= revision {
            return Ok(());
        }
        let mut applied = self.applied.lock().await;
        if self.engine.revision() >= revision {
            return Ok(());
        }
        self.follow_locked(&mut applied, Some(revision)).await
    }

    /// Applies the log's rows after `applied` until none is left, or until the index reaches `until` (this server's
    /// own rows come from the store's memory; looking for rows after them would read the database).
    async fn follow_locked(&self, applied: &mut i64, until: Option<Revision>) -> Result<(), StoreError> {
        loop {
            if until.is_some_and(|until| self.engine.revision() >= until) {
                return Ok(());
            }
            let entries = self.store.changes(*applied, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.pk) else { return Ok(()) };
            // The directory first: a request that finds the index at its revision finds the directory there too.
            self.directory.apply(self.store.as_ref(), &entries).await?;
            self.catalog.apply(self.store.as_ref(), &entries).await?;
            self.engine.apply(&entries).await?;
            // Also for this server's own writes (whose handlers invalidate at once): another replica's revocation
            // reaches this cache only this way.
            for user in entries.iter().filter_map(|e| e.change.as_ref()?.credentials_of()) {
                self.credentials.invalidate_user(user);
            }
            *applied = last;
            self.position.send_replace(last);
        }
    }

    /// Announces the key of each change-log row applied as it is applied: `/watch/` streams wait on it instead of
    /// polling the log.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.position.subscribe()
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
