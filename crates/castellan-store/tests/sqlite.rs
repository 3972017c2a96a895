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

/// Followers of a store read its own writes from memory: what it hands them must be the log on disk, row for row,
/// with nothing of a refused write or a dry run, and with the rows another process wrote in between.
#[tokio::test]
async fn the_log_a_store_hands_its_followers_is_the_log_on_disk() {
    use castellan_core::change::Change;
    use castellan_store::{ChangeLog, GroupStore, NewGroup, OrgStore, PreviewSlot, UserStore, WriteCtx};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("castellan.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let ctx = WriteCtx { actor: None, ip: Some("192.0.2.1".into()), request_id: Some("r-1".into()) };
    let start = store.last_change_pk().await.unwrap();
    let (org, _) = store.create_org(&ctx, "Acme", "acme", "").await.unwrap();
    let user = |username: &str| castellan_store::suite::new_user(org.pk, username);
    let (ann, _) = store.create_user(&ctx, user("ann")).await.unwrap();
    let group =
        NewGroup { name: "g".into(), description: String::new(), org: org.pk, parent: None, permissions: Default::default() };
    let (g, _) = store.create_group(&ctx, group).await.unwrap();
    assert!(store.create_org(&ctx, "Acme", "acme", "").await.is_err(), "a refused write");
    let slot = PreviewSlot::default();
    let dry = castellan_store::dry_run(slot, castellan_store::planned::add_members(&store, &ctx, g.pk, &[ann.pk], None)).await;
    assert!(dry.is_err(), "a dry run");
    // Another process writes in between.
    let other = SqliteStore::open(&path).await.unwrap();
    other.create_user(&ctx, user("bob")).await.unwrap();
    castellan_store::planned::add_members(&store, &ctx, g.pk, &[ann.pk], None).await.unwrap();
    store.audit(&ctx, Change::LoggedOut { user: ann.pk }).await.unwrap();
    let on_disk = SqliteStore::open(&path).await.unwrap();
    let disk = on_disk.changes(start, 1000).await.unwrap();
    assert_eq!(disk.len(), 6, "{disk:#?}");
    assert_eq!(store.changes(start, 1000).await.unwrap(), disk, "with the other process's row");
    for (i, row) in disk.iter().enumerate() {
        assert_eq!(store.changes(row.pk - 1, 1).await.unwrap(), disk[i..=i], "from row {}", row.pk);
    }
    assert!(store.changes(disk[disk.len() - 1].pk, 1000).await.unwrap().is_empty());
}
