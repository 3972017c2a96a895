//! The authorization engine's index, held in memory and kept current by following the change log: each row names
//! what it touched, those facts are read again and patched into the index, so a write costs in proportion to what
//! it touched. Writes of this server are followed before they are answered; a timer follows other replicas' writes.

use std::sync::Arc;
use std::time::Duration;

use castellan_core::engine::{Index, Scope};
use castellan_core::permission::ModulePermissions;
use castellan_store::{Revision, Store, StoreError, engine_scope};
use parking_lot::{RwLock, RwLockReadGuard};
use tokio::sync::Mutex;

/// Change-log rows read per step while catching up.
const BATCH: i64 = 1000;
/// Beyond this many subjects and objects in one catch-up, rebuilding is cheaper than patching.
const PATCH_MAX: usize = 10_000;

/// An index and the revision it reflects.
pub struct Snapshot {
    /// The index.
    pub index: Index,
    /// The newest store revision it includes.
    pub revision: Revision,
}

/// The index and how far into the change log it has been brought.
pub struct EngineView {
    current: RwLock<Snapshot>,
    /// The last change-log row applied; held while catching up so that one follower runs at a time.
    applied: Mutex<i64>,
    store: Arc<dyn Store>,
}

/// What a catch-up found in the log.
#[derive(Default)]
struct Pending {
    scope: Scope,
    rebuild: bool,
    revision: Revision,
}

impl EngineView {
    /// Builds the index from the store.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        // Read the log position first: rows after it are applied again, which is harmless (patches are idempotent).
        let applied = store.last_change_pk().await?;
        let snapshot = build(store.as_ref()).await?;
        Ok(Arc::new(Self { current: RwLock::new(snapshot), applied: Mutex::new(applied), store }))
    }

    /// The current index. Hold the guard only for synchronous work: it is not `Send`, so it cannot cross an await.
    pub fn snapshot(&self) -> RwLockReadGuard<'_, Snapshot> {
        self.current.read()
    }

    /// The module permissions `user` holds globally at `now` (µs), which gate the API's own endpoints.
    pub fn held(&self, user: i64, now: i64) -> ModulePermissions {
        let effective = self.snapshot().index.effective(user, now);
        let mut held = ModulePermissions::new();
        for (module, action) in effective.global.iter().filter_map(|p| p.split_once('.')) {
            held.insert_named(module, action);
        }
        held
    }

    /// Whether `user` holds `module.action` globally now.
    pub fn allows(&self, user: i64, module: &str, action: &str) -> bool {
        self.snapshot().index.check(user, module, action, None, crate::api::now_micros()).allowed
    }

    /// The revision the index reflects.
    pub fn revision(&self) -> Revision {
        self.current.read().revision
    }

    /// Applies every change-log row not applied yet: patches what they touched, or rebuilds when a patch cannot say.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        let mut pending = Pending::default();
        loop {
            let entries = self.store.changes(*applied, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.pk) else { break };
            for entry in &entries {
                match engine_scope(entry) {
                    Some(scope) => pending.scope.extend(scope),
                    None => pending.rebuild = true,
                }
                pending.revision = pending.revision.max(entry.revision.unwrap_or(0));
            }
            *applied = last;
        }
        let size =
            pending.scope.users.len() + pending.scope.groups.len() + pending.scope.roles.len() + pending.scope.objects.len();
        if pending.rebuild || size > PATCH_MAX {
            let snapshot = build(self.store.as_ref()).await?;
            *self.current.write() = snapshot;
            return Ok(());
        }
        let patched = if pending.scope.is_empty() {
            true
        } else {
            let facts = self.store.engine_patch(&pending.scope).await?;
            self.current.write().index.apply(&pending.scope, &facts).is_ok()
        };
        if !patched {
            let snapshot = build(self.store.as_ref()).await?;
            *self.current.write() = snapshot;
            return Ok(());
        }
        let mut current = self.current.write();
        current.revision = current.revision.max(pending.revision);
        Ok(())
    }

    /// Waits until the index reflects `revision`, following the log, for up to `timeout`; `false` on timeout.
    pub async fn reach(&self, revision: Revision, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.revision() >= revision {
                return true;
            }
            if let Err(e) = self.sync().await {
                tracing::error!("cannot follow the change log: {e}");
            }
            if self.revision() >= revision {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
