//! The authorization engine's index, held in memory and rebuilt from the store in the background when it is stale
//! and someone asks; readers take the current snapshot without waiting. Each snapshot knows the revision it reflects,
//! so callers can ask for at least a given revision (read-your-writes). Writes only mark the index stale, so a burst of
//! writes with no checks between them costs no rebuilds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use castellan_core::engine::Index;
use castellan_store::{Revision, Store, StoreError};
use parking_lot::RwLock;
use tokio::sync::{Notify, watch};

/// An index and the revision it was built at.
pub struct Snapshot {
    /// The index.
    pub index: Index,
    /// The store revision it reflects.
    pub revision: Revision,
}

/// The current snapshot and the machinery that keeps it fresh.
pub struct EngineView {
    current: RwLock<Arc<Snapshot>>,
    dirty: AtomicBool,
    stale: Notify,
    built: watch::Sender<Revision>,
}

impl EngineView {
    /// Builds the first snapshot and starts the background rebuilder.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let (facts, revision) = store.engine_facts().await?;
        let view = Arc::new(Self {
            current: RwLock::new(Arc::new(Snapshot { index: Index::build(&facts), revision })),
            dirty: AtomicBool::new(false),
            stale: Notify::new(),
            built: watch::channel(revision).0,
        });
        let weak = Arc::downgrade(&view);
        tokio::spawn(async move {
            while let Some(view) = weak.upgrade() {
                view.stale.notified().await;
                view.dirty.store(false, Ordering::SeqCst);
                match store.engine_facts().await {
                    Ok((facts, revision)) => {
                        let index = tokio::task::spawn_blocking(move || Index::build(&facts)).await;
                        if let Ok(index) = index {
                            *view.current.write() = Arc::new(Snapshot { index, revision });
                            view.built.send_replace(revision);
                        }
                    }
                    Err(e) => tracing::error!("cannot rebuild the authorization index: {e}"),
                }
            }
        });
        Ok(view)
    }

    /// The current snapshot; if writes happened since it was built, a rebuild starts in the background.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        if self.dirty.load(Ordering::SeqCst) {
            self.stale.notify_one();
        }
        self.current.read().clone()
    }

    /// Whether writes happened since the current snapshot was built.
    pub fn is_stale(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    /// Notes that the store changed (writes call this); the next reader triggers one rebuild for all of them.
    pub fn mark_stale(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// A snapshot at `revision` or newer, waiting up to `timeout`; `None` if none arrives in time.
    pub async fn at_least(&self, revision: Revision, timeout: Duration) -> Option<Arc<Snapshot>> {
        let current = self.snapshot();
        if current.revision >= revision {
            return Some(current);
        }
        self.stale.notify_one();
        let mut built = self.built.subscribe();
        let reached = tokio::time::timeout(timeout, built.wait_for(|r| *r >= revision)).await;
        matches!(reached, Ok(Ok(_))).then(|| self.snapshot())
    }
}
