//! Incremental updates: after a write, the facts of what it touched are read again and replace what the index held
//! about them, so the cost of a write is proportional to what it touched, not to the whole directory.

use std::collections::BTreeSet;

use super::facts::{Facts, ObjectKey, SubjectFact};
use super::index::{Index, Subj, chain_from};

/// What a set of writes touched: the users, groups, roles and objects whose facts are replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Users: their flags, memberships, role assignments and grants.
    pub users: BTreeSet<i64>,
    /// Groups: their parent, role assignments and grants (moving a group re-chains its subtree).
    pub groups: BTreeSet<i64>,
    /// Roles: their assignments and grants.
    pub roles: BTreeSet<i64>,
    /// Objects: their parent and organisation.
    pub objects: BTreeSet<ObjectKey>,
}

impl Scope {
    /// Whether nothing is in scope.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty() && self.roles.is_empty() && self.objects.is_empty()
    }

    /// Adds everything in `other`.
    pub fn extend(&mut self, other: Scope) {
        self.users.extend(other.users);
        self.groups.extend(other.groups);
        self.roles.extend(other.roles);
        self.objects.extend(other.objects);
    }

    /// Whether a grant or role assignment held by `subject` is in scope.
    fn holds(&self, subject: SubjectFact) -> bool {
        match subject {
            SubjectFact::User(pk) => self.users.contains(&pk),
            SubjectFact::Group(pk) => self.groups.contains(&pk),
            SubjectFact::Role(pk) => self.roles.contains(&pk),
        }
    }
}

/// The index cannot take a patch in place: the patch names something the index does not know (a module, or a group
/// or role created by a write outside the scope). Rebuild it from all facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsRebuild;

impl Facts {
    /// The facts an index needs to replace what it holds about `scope`: the scoped users, groups, roles and objects
    /// that still exist, the memberships of the scoped users, every role assignment of a scoped role or to a scoped
    /// user or group, and every grant held by a scoped subject. Stores answer the same from their tables.
    pub fn restricted_to(&self, scope: &Scope) -> Facts {
        Facts {
            users: self.users.iter().filter(|u| scope.users.contains(&u.pk)).cloned().collect(),
            groups: self.groups.iter().filter(|g| scope.groups.contains(&g.0)).copied().collect(),
            roles: self.roles.iter().filter(|r| scope.roles.contains(&r.0)).copied().collect(),
            modules: Vec::new(),
            memberships: self.memberships.iter().filter(|m| scope.users.contains(&m.user)).cloned().collect(),
            role_assignments: self
                .role_assignments
                .iter()
                .filter(|a| scope.roles.contains(&a.role) || scope.holds(a.subject))
                .cloned()
                .collect(),
            grants: self.grants.iter().filter(|g| scope.holds(g.subject)).cloned().collect(),
            objects: self.objects.iter().filter(|o| scope.objects.contains(&o.key)).cloned().collect(),
        }
    }
}

impl Index {
    /// Replaces what the index holds about `scope` with `facts` (as [`Facts::restricted_to`] gives them). On
    /// `Err` the index is left half-updated and must be rebuilt.
    pub fn apply(&mut self, scope: &Scope, facts: &Facts) -> Result<(), NeedsRebuild> {
        self.apply_objects(scope, facts);
        let holders = self.scoped_holders(scope);
        for &holder in &holders {
            self.clear_grants(holder);
            self.clear_roles(holder);
        }
        self.apply_groups(scope, facts)?;
        self.apply_roles(scope, facts);
        self.apply_users(scope, facts)?;
        for a in &facts.role_assignments {
            if !self.add_assignment(a) {
                return Err(NeedsRebuild);
            }
        }
        for g in &facts.grants {
            // A grant on a module that does not exist (yet) is inert, as in a full build; creating the module
            // rebuilds the index.
            if self.subject(g.subject).is_none() {
                return Err(NeedsRebuild);
            }
            self.add_grant(g);
        }
        Ok(())
    }

    /// The scoped subjects the index knows.
    fn scoped_holders(&self, scope: &Scope) -> Vec<Subj> {
        let users = scope.users.iter().filter_map(|pk| self.subject(SubjectFact::User(*pk)));
        let groups = scope.groups.iter().filter_map(|pk| self.subject(SubjectFact::Group(*pk)));
        let roles = scope.roles.iter().filter_map(|pk| self.subject(SubjectFact::Role(*pk)));
        users.chain(groups).chain(roles).collect()
    }

    fn apply_objects(&mut self, scope: &Scope, facts: &Facts) {
        for key in &scope.objects {
            match facts.objects.iter().find(|o| &o.key == key) {
                Some(o) => {
                    let id = self.object_id(&o.key);
                    self.object_org[id as usize] = Some(o.org);
                    let parent = o.parent.as_ref().map(|p| self.object_id(p));
                    self.set_object_parent(id, parent);
                }
                None => self.remove_object(key),
            }
        }
    }

    /// Unregisters a deleted object: its children become roots (as the store sets their parent to null). The grants
    /// on it go with their holders' facts (the change scopes every holder).
    fn remove_object(&mut self, key: &ObjectKey) {
        let Some(id) = self.object(&key.0, &key.1) else { return };
        for child in std::mem::take(&mut self.object_children[id as usize]) {
            self.object_parent[child as usize] = None;
        }
        self.set_object_parent(id, None);
        self.object_org[id as usize] = None;
    }

    fn apply_groups(&mut self, scope: &Scope, facts: &Facts) -> Result<(), NeedsRebuild> {
        let present: Vec<(i64, Option<i64>)> =
            facts.groups.iter().filter(|g| scope.groups.contains(&g.0)).map(|g| (g.0, g.2)).collect();
        for &(pk, _) in &present {
            self.group_id_or_new(pk);
        }
        for pk in &scope.groups {
            if !present.iter().any(|g| g.0 == *pk) {
                // A deleted group keeps its dense id with an empty chain, so stale memberships of it reach neither
                // it nor its former ancestors.
                if let Some(id) = self.group_ids.remove(pk) {
                    self.group_chains[id as usize] = Box::new([]);
                }
            }
        }
        for (pk, parent) in present {
            let id = self.group_ids[&pk];
            let parent = match parent {
                Some(p) => Some(*self.group_ids.get(&p).ok_or(NeedsRebuild)?),
                None => None,
            };
            if parent.is_some_and(|p| self.group_chains[p as usize].contains(&id)) {
                return Err(NeedsRebuild);
            }
            if self.group_chains[id as usize].get(1).copied() != parent {
                self.rechain(id, parent);
            }
        }
        Ok(())
    }

    /// Gives `group` a new parent and every group below it its new chain.
    fn rechain(&mut self, group: u32, parent: Option<u32>) {
        let mut chain = vec![group];
        if let Some(p) = parent {
            chain.extend_from_slice(&self.group_chains[p as usize]);
        }
        for g in 0..self.group_chains.len() {
            let old = &self.group_chains[g];
            if let Some(at) = old.iter().position(|&x| x == group) {
                let mut new = old[..at].to_vec();
                new.extend_from_slice(&chain);
                self.group_chains[g] = new.into_boxed_slice();
            }
        }
        debug_assert_eq!(self.group_chains[group as usize], chain_from(group, |g| self.group_chains[g as usize].get(1).copied()));
    }

    fn apply_roles(&mut self, scope: &Scope, facts: &Facts) {
        for pk in &scope.roles {
            if facts.roles.iter().any(|r| r.0 == *pk) {
                self.role_id_or_new(*pk);
            } else {
                self.role_ids.remove(pk);
            }
        }
    }

    fn apply_users(&mut self, scope: &Scope, facts: &Facts) -> Result<(), NeedsRebuild> {
        for pk in &scope.users {
            match facts.users.iter().find(|u| u.pk == *pk) {
                Some(u) => {
                    let id = self.set_user(u);
                    self.user_entries[id as usize].memberships.clear();
                }
                None => {
                    if let Some(id) = self.users.remove(pk) {
                        let entry = &mut self.user_entries[id as usize];
                        entry.memberships.clear();
                        (entry.is_active, entry.is_superuser) = (false, false);
                    }
                }
            }
        }
        for m in facts.memberships.iter().filter(|m| scope.users.contains(&m.user)) {
            if !self.add_membership(m) {
                return Err(NeedsRebuild);
            }
        }
        Ok(())
    }

    /// Removes every grant `holder` holds.
    fn clear_grants(&mut self, holder: Subj) {
        *self.global_modules_mut(holder) = 0;
        for module in 0..self.module_entries.len() as u16 {
            let Some(set) = self.grants.remove(&(holder, module)) else { continue };
            for object in set.objects.keys() {
                if let Some(list) = self.object_grants.get_mut(&(*object, module)) {
                    list.retain(|g| g.0 != holder);
                }
            }
        }
    }

    /// Removes every role assignment of `holder`: its roles when a user or group, its holders when a role.
    fn clear_roles(&mut self, holder: Subj) {
        if let Subj::Role(role) = holder {
            for h in std::mem::take(&mut self.role_holders[role as usize]) {
                if let Some(roles) = self.roles_of_mut(h) {
                    roles.retain(|(r, _)| *r != role);
                }
            }
            return;
        }
        let held = self.roles_of_mut(holder).map(std::mem::take).unwrap_or_default();
        for (role, _) in held {
            self.role_holders[role as usize].retain(|h| *h != holder);
        }
    }
}
