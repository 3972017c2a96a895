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
