//! The in-memory directory (group tree and memberships), kept current by following the change log: after every
//! write of this server, and before reads that use it (so writes of other replicas are seen too).

use castellan_core::directory::{Directory, UserSet};
use castellan_store::{ChangeEntry, Store, StoreError};
use parking_lot::RwLock;

/// Change-log rows read per step while catching up.
const BATCH: i64 = 1000;

/// The directory and how far into the change log it has been brought.
pub struct DirectoryView {
    directory: RwLock<Directory>,
    applied: tokio::sync::Mutex<i64>,
}

impl DirectoryView {
    /// Loads the directory from the store.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        // Read the log position first: rows after it are applied again, which is harmless (every step reloads).
        let applied = store.last_change_pk().await?;
        let (groups, memberships) = store.directory_snapshot().await?;
        Ok(Self { directory: RwLock::new(Directory::build(&groups, &memberships)), applied: tokio::sync::Mutex::new(applied) })
    }

    /// Applies every change-log row not applied yet.
    pub async fn sync(&self, store: &dyn Store) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        loop {
            let entries = store.changes(*applied, BATCH).await?;
            let Some(last) = entries.last().map(|e| e.pk) else { return Ok(()) };
            for entry in &entries {
                self.apply(store, entry).await?;
            }
            *applied = last;
        }
    }

    async fn apply(&self, store: &dyn Store, entry: &ChangeEntry) -> Result<(), StoreError> {
        let Ok(pk) = entry.target_pk.parse::<i64>() else { return Ok(()) };
        match entry.target_type.as_str() {
            "users" if entry.revision.is_some() => {
                let memberships = store.memberships_of_user(pk).await?;
                self.directory.write().set_user_memberships(pk, &memberships);
            }
            "groups" if entry.action == "delete" => {
                let deleted = entry.changes["deleted"].as_array().cloned().unwrap_or_default();
                let mut directory = self.directory.write();
                directory.remove_group(pk);
                deleted.iter().filter_map(|g| g.as_i64()).for_each(|g| directory.remove_group(g));
            }
            "groups" => {
                let parent = match store.get_group(pk).await {
                    Ok(group) => Some(group.parent),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                let members = store.members_of_group(pk).await?;
                let mut directory = self.directory.write();
                match parent {
                    Some(parent) => {
                        directory.set_group(pk, parent);
                        directory.set_group_members(pk, &members);
                    }
                    None => directory.remove_group(pk),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The users `viewer` sees: members of the viewer's groups and of every group below them, and the viewer.
    pub fn visible_users(&self, viewer: i64, now: i64) -> UserSet {
        let directory = self.directory.read();
        let mut visible = directory.members(&directory.active_groups_of(viewer, now), true, now);
        visible.insert(viewer);
        visible
    }

    /// Unexpired members of `group` and every group below it, seen by `viewer` (all when `None`).
    pub fn recursive_members(&self, group: i64, viewer: Option<i64>, now: i64) -> UserSet {
        let directory = self.directory.read();
        let mut members = directory.members(&[group], true, now);
        if let Some(viewer) = viewer {
            let mut visible = directory.members(&directory.active_groups_of(viewer, now), true, now);
            visible.insert(viewer);
            members.intersect(&visible);
        }
        members
    }
}
