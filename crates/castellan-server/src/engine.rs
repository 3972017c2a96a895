//! The authorization engine's index, held in memory and kept current by the change-log follower ([`crate::follow`]):
//! each row's typed change is applied to the facts the index holds about what it touched, so a write costs in
//! proportion to what it touched and following the log reads nothing but the log (but for changes of a group's
//! global permissions, whose facts are read again).

use std::sync::Arc;

use castellan_core::change::Change;
use castellan_core::engine::{Effective, Index, Overlay, PreviewTooLarge};
use castellan_core::permission::ModulePermissions;
use castellan_store::{ChangeEntry, Revision, Store, StoreError, stored_facts_for};
use parking_lot::{RwLock, RwLockReadGuard};

/// An index and the revision it reflects.
pub struct Snapshot {
    /// The index.
    pub index: Index,
    /// The newest store revision it includes.
    pub revision: Revision,
}

/// The index, and the store it is read from.
pub struct EngineView {
    current: RwLock<Snapshot>,
    store: Arc<dyn Store>,
}

impl EngineView {
    /// Builds the index from the store.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let snapshot = build(store.as_ref()).await?;
        Ok(Arc::new(Self { current: RwLock::new(snapshot), store }))
    }

    /// The current index. Hold the guard only for synchronous work: it is not `Send`, so it cannot cross an await.
    pub fn snapshot(&self) -> RwLockReadGuard<'_, Snapshot> {
        self.current.read()
    }

    /// The module permissions `user` holds globally at `now` (µs), which gate the API's own endpoints.
    pub fn held(&self, user: i64, now: i64) -> ModulePermissions {
        module_permissions(self.snapshot().index.effective(user, now))
    }

    /// The module permissions `user` would hold globally at `now` if active (what reactivating the user hands back).
    pub fn held_when_active(&self, user: i64, now: i64) -> ModulePermissions {
        module_permissions(self.snapshot().index.effective_when_active(user, now))
    }

    /// The two sides of a dry run of `change` affecting at most `max_users` (read from the index under its lock;
    /// the impact is computed from them without it).
    pub fn overlay(&self, change: &Change, max_users: usize) -> Result<Overlay, PreviewTooLarge> {
        self.snapshot().index.overlay(change, max_users)
    }

    /// Whether `user` holds `module.action` globally now.
    pub fn allows(&self, user: i64, module: &str, action: &str) -> bool {
        self.snapshot().index.check(user, module, action, None, crate::clock::now_micros()).allowed
    }

    /// The revision the index reflects.
    pub fn revision(&self) -> Revision {
        self.current.read().revision
    }

    /// Applies change-log rows in order. Each typed change is followed from the index alone (no store read), but
    /// a change to a group's own or granted global permissions is patched with the facts the store holds about it
    /// ([`Change::needs_stored_facts`]); a row the index cannot follow (a module changed, or a row this build does
    /// not understand) rebuilds it from the store. Applying a row twice is harmless: a change states facts after it.
    pub async fn apply(&self, entries: &[ChangeEntry]) -> Result<(), StoreError> {
        for entry in entries {
            let followed = match &entry.change {
                Some(change) => {
                    let stored = stored_facts_for(self.store.as_ref(), change).await?;
                    self.current.write().index.follow(change, stored.as_ref()).is_ok()
                }
                None => false,
            };
            if !followed {
                *self.current.write() = build(self.store.as_ref()).await?;
                return Ok(());
            }
        }
        let revision = entries.iter().filter_map(|e| e.revision).max().unwrap_or(0);
        let mut current = self.current.write();
        current.revision = current.revision.max(revision);
        Ok(())
    }
}

/// A snapshot built from all facts, off the async threads.
async fn build(store: &dyn Store) -> Result<Snapshot, StoreError> {
    let (facts, revision) = store.engine_facts().await?;
    let index = tokio::task::spawn_blocking(move || Index::build(&facts))
        .await
        .map_err(|e| StoreError::Backend(format!("building the authorization index: {e}")))?;
    Ok(Snapshot { index, revision })
}

/// Global permissions of an effective listing as module permissions.
fn module_permissions(effective: Effective) -> ModulePermissions {
    let mut held = ModulePermissions::new();
    for (module, action) in effective.global.iter().filter_map(|p| p.split_once('.')) {
        held.insert_named(module, action);
    }
    held
}
