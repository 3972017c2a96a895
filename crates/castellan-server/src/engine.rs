//! The authorization engine's index, held in memory and rebuilt from the store in the background when it is stale
//! and someone asks; readers take the current snapshot without waiting. Each snapshot knows the revision it reflects,
//! so callers can ask for at least a given revision (read-your-writes). Writes only mark the index stale, so a burst of
//! writes with no checks between them costs no rebuilds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Writes noted so far.
    written: AtomicU64,
    /// How many writes the current snapshot reflects (`written` when its build began). Set only after the snapshot
    /// is in place, so a rebuild in progress never makes the index look fresh.
    covered: AtomicU64,
    stale: Notify,
    built: watch::Sender<Revision>,
}

impl EngineView {
    /// Builds the first snapshot and starts the background rebuilder.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let (facts, revision) = store.engine_facts().await?;
        let view = Arc::new(Self {
            current: RwLock::new(Arc::new(Snapshot { index: Index::build(&facts), revision })),
            written: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            stale: Notify::new(),
            built: watch::channel(revision).0,
        });
        let weak = Arc::downgrade(&view);
        tokio::spawn(async move {
            while let Some(view) = weak.upgrade() {
                view.stale.notified().await;
                // Every write counted here committed before it was counted, so the facts read next include it.
                let generation = view.written.load(Ordering::SeqCst);
                if generation == view.covered.load(Ordering::SeqCst) {
                    continue;
                }
                match store.engine_facts().await {
                    Ok((facts, revision)) => {
                        let index = tokio::task::spawn_blocking(move || Index::build(&facts)).await;
                        if let Ok(index) = index {
                            *view.current.write() = Arc::new(Snapshot { index, revision });
                            view.covered.store(generation, Ordering::SeqCst);
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
        if self.is_stale() {
            self.stale.notify_one();
        }
        self.current.read().clone()
    }

    /// Whether writes happened since the current snapshot was built.
    pub fn is_stale(&self) -> bool {
        self.written.load(Ordering::SeqCst) != self.covered.load(Ordering::SeqCst)
    }

    /// Notes that the store changed (writes call this); the next reader triggers one rebuild for all of them.
    pub fn mark_stale(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }

    /// A snapshot at `revision` or newer, waiting up to `timeout`; `None` if none arrives in time.
    pub async fn at_least(&self, revision: Revision, timeout: Duration) -> Option<Arc<Snapshot>> {
        let current = self.snapshot();
        if current.revision >= revision {
            return Some(current);
        }
        // Whatever brought that revision about, the index must be rebuilt to reach it.
        self.mark_stale();
        self.stale.notify_one();
        let mut built = self.built.subscribe();
        let reached = tokio::time::timeout(timeout, built.wait_for(|r| *r >= revision)).await;
        matches!(reached, Ok(Ok(_))).then(|| self.snapshot())
    }
}
