//! The in-memory directory (group tree and memberships), kept current by the change-log follower
//! ([`crate::follow`]).

use castellan_core::change::Change;
use castellan_core::directory::{Directory, UserSet};
use castellan_store::{ChangeEntry, Store, StoreError};
use parking_lot::RwLock;

/// The directory in memory.
pub struct DirectoryView {
    directory: RwLock<Directory>,
}

impl DirectoryView {
    /// Loads the directory from the store.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let (groups, memberships) = store.directory_snapshot().await?;
        Ok(Self { directory: RwLock::new(Directory::build(&groups, &memberships)) })
    }

    /// Applies change-log rows (applying one twice is harmless: every step reloads what it touched).
    pub async fn apply(&self, store: &dyn Store, entries: &[ChangeEntry]) -> Result<(), StoreError> {
        for entry in entries {
            self.apply_one(store, entry).await?;
        }
        Ok(())
    }

    async fn apply_one(&self, store: &dyn Store, entry: &ChangeEntry) -> Result<(), StoreError> {
        let Some(change) = &entry.change else { return self.reload(store).await };
        match change {
            Change::UserCreated { pk, .. } | Change::UserUpdated { pk, .. } | Change::UserDeleted { pk, .. } => {
                let memberships = store.memberships_of_user(*pk).await?;
                self.directory.write().set_user_memberships(*pk, &memberships);
            }
            // Membership writes log every membership before and after: applied as they are, whatever the group's size.
            Change::MembersAssigned { .. } | Change::MembersUnassigned { .. } => {
                let mut directory = self.directory.write();
                for (user, group, membership) in change.memberships() {
                    directory.set_membership(user, group, membership);
                }
            }
            Change::GroupDeleted { pk, deleted, .. } => {
                let mut directory = self.directory.write();
                directory.remove_group(*pk);
                deleted.iter().for_each(|g| directory.remove_group(*g));
            }
            // Creating, renaming or moving a group changes no membership.
            Change::GroupCreated { pk, after } | Change::GroupUpdated { pk, after, .. } => {
                self.directory.write().set_group(*pk, after.parent);
            }
            _ => {}
        }
        Ok(())
    }

    /// Loads the whole directory again: a change-log row this build does not understand may have changed anything.
    async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let (groups, memberships) = store.directory_snapshot().await?;
        *self.directory.write() = Directory::build(&groups, &memberships);
        Ok(())
    }

    /// Fills each user's `groups` with the groups the user is directly and currently in, ascending.
    pub fn attach_groups(&self, users: &mut [castellan_core::model::User], now: i64) {
        let directory = self.directory.read();
        for user in users {
            user.groups = directory.active_groups_of(user.pk, now);
            user.groups.sort_unstable();
        }
    }

    /// The groups `user` is directly and currently in, ascending.
    pub fn groups_of(&self, user: i64, now: i64) -> Vec<i64> {
        let mut groups = self.directory.read().active_groups_of(user, now);
        groups.sort_unstable();
        groups
    }

    /// The users `viewer` sees: members of the viewer's groups and of every group below them, and the viewer.
    pub fn visible_users(&self, viewer: i64, now: i64) -> UserSet {
        visible_in(&self.directory.read(), viewer, now)
    }

    /// Whether `viewer` sees `user` (themselves, or a member of a group the viewer sees).
    pub fn sees_user(&self, viewer: i64, user: i64, now: i64) -> bool {
        self.directory.read().sees_user(viewer, user, now)
    }

    /// Which of `groups` the viewer sees, in their order.
    pub fn seen_groups(&self, viewer: i64, groups: &[i64], now: i64) -> Vec<i64> {
        self.directory.read().seen_groups(viewer, groups, now)
    }

    /// Whether `viewer` sees `group` (any existing group when `None`).
    pub fn sees_group(&self, viewer: Option<i64>, group: i64, now: i64) -> bool {
        let directory = self.directory.read();
        match viewer {
            Some(viewer) => directory.sees_group(viewer, group, now),
            None => directory.has_group(group),
        }
    }

    /// Whether `group` is `ancestor` or lies below it.
    pub fn is_within(&self, group: i64, ancestor: i64) -> bool {
        self.directory.read().is_within(group, ancestor)
    }

    /// The group and every group below it, each after every group below it.
    pub fn subtree_bottom_up(&self, group: i64) -> Vec<i64> {
        self.directory.read().subtree_bottom_up(group)
    }

    /// The group and every group below it.
    pub fn subtree(&self, group: i64) -> Vec<i64> {
        self.directory.read().subtree(group)
    }

    /// Every group the viewer sees (theirs and all below them), ascending.
    pub fn visible_groups(&self, viewer: i64, now: i64) -> Vec<i64> {
        self.directory.read().visible_groups(viewer, now)
    }

    /// Unexpired members of any of `groups` (and, when `recursive`, of every group below them), seen by `viewer`
    /// (all when `None`).
    pub fn members(&self, groups: &[i64], recursive: bool, viewer: Option<i64>, now: i64) -> UserSet {
        let directory = self.directory.read();
        let mut members = directory.members(groups, recursive, now);
        if let Some(viewer) = viewer {
            members.intersect(&visible_in(&directory, viewer, now));
        }
        members
    }

    /// The first `most` unexpired direct members of `group` that `viewer` sees (`None`: everyone), ascending; how
    /// many the viewer sees; and how many others there are.
    pub fn direct_members(&self, group: i64, viewer: Option<i64>, now: i64, most: usize) -> (Vec<i64>, usize, usize) {
        let directory = self.directory.read();
        let visible = viewer.map(|viewer| visible_in(&directory, viewer, now));
        let mut hidden = 0;
        let (members, count) = directory.direct_members(group, now, most, |pk| {
            let seen = visible.as_ref().is_none_or(|visible| visible.contains(*pk));
            hidden += usize::from(!seen);
            seen
        });
        (members, count, hidden)
    }
}

/// The users `viewer` sees in `directory`: members of the viewer's groups and of every group below them, and the
/// viewer.
fn visible_in(directory: &Directory, viewer: i64, now: i64) -> UserSet {
    let mut visible = directory.members(&directory.active_groups_of(viewer, now), true, now);
    visible.insert(viewer);
    visible
}
