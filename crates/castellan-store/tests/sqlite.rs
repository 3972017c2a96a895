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

/// A dry run whose write would change the holdings of more users than a preview covers is refused, and rolled back.
#[tokio::test]
async fn previews_are_bounded() {
    use castellan_store::{
        ChangeLog, DatasetSpec, GroupChanges, GroupStore, OrgStore, PREVIEW_MAX_USERS, PreviewSlot, StoreError, WriteCtx,
    };
    let (store, _dir) = fresh().await;
    let org = store.create_org(&WriteCtx::default(), "Acme", "acme", "").await.unwrap().0.pk;
    let users = PREVIEW_MAX_USERS as u64 + 1;
    let spec = DatasetSpec { users, roots: 1, fanout: 1, depth: 1, memberships_per_user: 1, org };
    let info = store.load_dataset(&spec, "unusable").await.unwrap();
    let group = info.levels[0].0;
    let revision = store.revision().await.unwrap();
    let permissions = castellan_core::permission::ModulePermissions::parse(&serde_json::json!({"users": ["read"]}), "p").unwrap();
    let changes = GroupChanges { permissions: Some(permissions), ..Default::default() };
    let slot = PreviewSlot::default();
    let dry = WriteCtx { preview: Some(slot.clone()), ..WriteCtx::default() };
    let refused = store.update_group(&dry, group, changes.clone()).await;
    assert!(matches!(refused, Err(StoreError::PreviewTooLarge(n)) if n == users as usize), "{refused:?}");
    assert!(slot.lock().unwrap().is_none());
    assert_eq!(store.revision().await.unwrap(), revision, "nothing was written");
    store.update_group(&WriteCtx::default(), group, changes).await.unwrap();
}
