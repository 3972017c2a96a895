//! The shared store suite on SQLite: every test gets a new, migrated database file in its own temporary directory.

use castellan_store::{SqliteStore, Store};
use tempfile::TempDir;

/// A migrated, empty store, with the directory that holds its file (dropped, and deleted, after the store).
async fn fresh() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("castellan.db")).await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

castellan_store::store_suite!(fresh());

/// In a dry run, a write the store cannot hand over as a change (unlogged, or audit-only) is refused before it
/// runs, and a logged one is rolled back: nothing is written either way.
#[tokio::test]
async fn dry_runs_write_nothing() {
    use castellan_core::change::Change;
    use castellan_store::{ChangeLog, OrgStore, PreviewSlot, StoreError, UserDataStore, WriteCtx};
    let (store, _dir) = fresh().await;
    let revision = store.revision().await.unwrap();
    let last = store.last_change_pk().await.unwrap();
    let slot = PreviewSlot::default();
    let refused = castellan_store::dry_run(slot.clone(), store.data_put(1, "k", &serde_json::json!(1), 1000)).await;
    assert!(matches!(refused, Err(StoreError::NotPreviewable)), "{refused:?}");
    let audit = castellan_store::dry_run(slot.clone(), store.audit(&WriteCtx::default(), Change::LoggedOut { user: 1 })).await;
    assert!(matches!(audit, Err(StoreError::NotPreviewable)), "{audit:?}");
    assert!(slot.lock().unwrap().is_none());
    let created = castellan_store::dry_run(slot.clone(), store.create_org(&WriteCtx::default(), "Acme", "acme", "")).await;
    assert!(matches!(created, Err(StoreError::DryRun)), "{created:?}");
    assert!(matches!(slot.lock().unwrap().take(), Some(Change::OrgCreated { .. })));
    assert_eq!((store.revision().await.unwrap(), store.last_change_pk().await.unwrap()), (revision, last));
    assert!(matches!(store.org_by_slug("acme").await, Err(StoreError::NotFound)), "the dry run's org was rolled back");
    assert_eq!(store.data_get(1, "k").await.unwrap(), None);
}
