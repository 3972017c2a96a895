//! Dry runs on the model (API.md §8, §11, `?dry_run=true`): what a [`Change`] would make each affected user gain
//! and lose, answered from the index alone. The facts deciding the affected users' holdings are read out of the
//! index, the change is applied to a copy of them (the overlay), and small indexes of both sides are compared. No
//! database is involved, so a preview is the same on every backend.

use std::collections::BTreeSet;

use super::facts::{
    Facts, GrantFact, MembershipFact, ModuleFact, ObjectFact, ObjectKey, RoleAssignmentFact, SubjectFact, UserFact,
};
use super::impact::{Impact, impact};
use super::index::{Index, MembershipEntry, Subj, UserEntry};
use super::patch::{NeedsRebuild, Scope};
use crate::change::{Change, UserFields, changed_groups};
use crate::permission::Action;

/// A preview would cover more users than allowed; carries how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewTooLarge(pub usize);

/// A dry run's two sides: the facts deciding the affected users' holdings as the index holds them, and the same
/// facts with the change applied. Computing the impact needs no index, so no lock is held meanwhile.
#[derive(Debug, Clone)]
pub struct Overlay {
    users: Vec<i64>,
    probes: Vec<ObjectKey>,
    before: Facts,
    after: Facts,
}

impl Overlay {
    /// Objects checked one by one (those registered or removed), so that what their ancestors pass down shows.
    pub fn probes(&self) -> &[ObjectKey] {
        &self.probes
    }

    /// What each affected user would gain and lose at time `now`.
    pub fn impact(&self, now: i64) -> Impact {
        let (before, after) = std::thread::scope(|s| {
            let before = s.spawn(|| Index::build(&self.before));
            let after = Index::build(&self.after);
            (before.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), after)
        });
        impact(&before, &after, &self.users, &self.probes, now)
    }
}

impl Index {
    /// The overlay of `change`, over at most `max_users` affected users.
    pub fn overlay(&self, change: &Change, max_users: usize) -> Result<Overlay, PreviewTooLarge> {
        let users = self.affected_users(change);
        if users.len() > max_users {
            return Err(PreviewTooLarge(users.len()));
        }
        let users: Vec<i64> = users.into_iter().collect();
        let before = self.deciding_facts(&users, change);
        let mut after = before.clone();
        after.apply(change);
        Ok(Overlay { users, probes: probes(change), before, after })
    }

    /// Users whose holdings `change` can alter: those it names, the members (recursively) of the groups it alters,
    /// the holders of the roles it alters, and whoever holds a grant on an object it registers or removes (or on an
    /// ancestor of it) or a grant in a module it alters.
    pub fn affected_users(&self, change: &Change) -> BTreeSet<i64> {
        let mut reach = Scope::default();
        match change {
            Change::UserCreated { pk, .. } | Change::UserDeleted { pk, .. } => {
                reach.users.insert(*pk);
            }
            Change::UserUpdated { pk, before, after } if decides_holdings(before) || decides_holdings(after) => {
                reach.users.insert(*pk);
            }
            Change::MembersAssigned { members, .. } | Change::MembersUnassigned { members, .. } => {
                reach.users.extend(members.iter().map(|m| m.user));
            }
            Change::MembershipRestricted { user, .. } => {
                reach.users.insert(*user);
            }
            Change::GroupUpdated { pk, before, after }
                if before.parent != after.parent || before.permissions != after.permissions =>
            {
                reach.groups.insert(*pk);
            }
            Change::GroupDeleted { deleted, .. } => reach.groups.extend(deleted.iter().copied()),
            Change::RoleDeleted { pk, .. } => {
                reach.roles.insert(*pk);
            }
            Change::RoleAssigned { subjects, .. } | Change::RoleUnassigned { subjects, .. } => {
                subjects.iter().for_each(|s| reach.insert_subject(*s));
            }
            Change::ModulePermissionsSet { subject, .. }
            | Change::GrantsAssigned { subject, .. }
            | Change::GrantsUnassigned { subject, .. } => reach.insert_subject(*subject),
            Change::ObjectRegistered { after } => {
                self.reach_object(&(after.model.clone(), after.object_pk.clone()), &mut reach);
                if let Some(parent) = &after.parent {
                    self.reach_object(parent, &mut reach);
                }
            }
            Change::ObjectDeleted { before, .. } => {
                self.reach_object(&(before.model.clone(), before.object_pk.clone()), &mut reach)
            }
            Change::ModuleUpdated { id, .. } | Change::ModuleDeleted { id, .. } => self.reach_module(id, &mut reach),
            Change::CatalogCreated { .. } | Change::CatalogUpdated { .. } | Change::CatalogDeleted { .. } => {
                reach.groups.extend(change.object_group_grants().into_iter().map(|(group, _, _)| group));
            }
            _ => {}
        }
        self.users_reached(reach)
    }

    /// Subjects holding a grant on `key` or an ancestor of it, and users whose membership is restricted to one of
    /// those nodes.
    fn reach_object(&self, key: &ObjectKey, reach: &mut Scope) {
        let chain: Vec<u32> = self.ancestors(self.object(&key.0, &key.1)).collect();
        for &o in &chain {
            for m in 0..self.module_entries.len() as u16 {
                for (subject, _, _) in self.object_grants.get(&(o, m)).into_iter().flatten() {
                    reach.insert_subject(self.subject_fact(*subject));
                }
            }
        }
        for user in &self.user_entries {
            let restricted = user.memberships.iter().filter_map(|m| m.restriction.as_deref());
            if restricted.flatten().any(|n| chain.contains(n)) {
                reach.users.insert(user.pk);
            }
        }
    }

    /// Subjects holding any grant in module `id`.
    fn reach_module(&self, id: &str, reach: &mut Scope) {
        let Some(&module) = self.modules.get(id) else { return };
        for &(subject, m) in self.grants.keys() {
            if m == module {
                reach.insert_subject(self.subject_fact(subject));
            }
        }
    }

    /// The users reached: named ones, holders of the roles (directly or through a group), and members of the groups
    /// or of any group below them.
    fn users_reached(&self, mut reach: Scope) -> BTreeSet<i64> {
        for role in &reach.roles {
            let Some(&r) = self.role_ids.get(role) else { continue };
            for holder in &self.role_holders[r as usize] {
                match *holder {
                    Subj::User(u) => reach.users.insert(self.user_entries[u as usize].pk),
                    Subj::Group(g) => reach.groups.insert(self.group_pks[g as usize]),
                    Subj::Role(_) => false,
                };
            }
        }
        let mut marked = vec![false; self.group_pks.len()];
        for g in reach.groups.iter().filter_map(|g| self.group_ids.get(g)) {
            marked[*g as usize] = true;
        }
        if marked.iter().any(|&m| m) {
            for user in &self.user_entries {
                let member =
                    user.memberships.iter().any(|m| self.group_chains[m.group as usize].iter().any(|&g| marked[g as usize]));
                if member {
                    reach.users.insert(user.pk);
                }
            }
        }
        reach.users
    }

    /// The fact form of a dense subject.
    fn subject_fact(&self, subject: Subj) -> SubjectFact {
        match subject {
            Subj::User(u) => SubjectFact::User(self.user_entries[u as usize].pk),
            Subj::Group(g) => SubjectFact::Group(self.group_pks[g as usize]),
            Subj::Role(r) => SubjectFact::Role(self.role_pks[r as usize]),
        }
    }

    /// Everything deciding what `users` hold, before `change` and after it once applied: the users, their
    /// memberships, the groups above them and those `change` names (with their chains), the roles reaching any of
    /// them, every grant of those subjects, the objects whose parent chains matter, and every module.
    pub fn deciding_facts(&self, users: &[i64], change: &Change) -> Facts {
        let mut facts = Facts { modules: self.module_facts(), ..Facts::default() };
        let mut groups: BTreeSet<u32> = BTreeSet::new();
        let mut roles: BTreeSet<u32> = BTreeSet::new();
        let mut objects: BTreeSet<u32> = BTreeSet::new();
        for pk in users {
            let Some(&u) = self.users.get(pk) else { continue };
            let entry = &self.user_entries[u as usize];
            facts.users.push(user_fact(entry));
            for m in &entry.memberships {
                groups.extend(self.group_chains[m.group as usize].iter().copied());
                objects.extend(m.restriction.iter().flatten().copied());
                facts.memberships.push(self.membership_fact(entry.pk, m));
            }
            self.add_roles(Subj::User(u), &entry.roles, &mut roles, &mut facts);
        }
        for g in mentioned_groups(change).iter().filter_map(|g| self.group_ids.get(g)) {
            groups.extend(self.group_chains[*g as usize].iter().copied());
        }
        for &g in &groups {
            let parent = self.group_chains[g as usize].get(1).map(|&p| self.group_pks[p as usize]);
            facts.groups.push((self.group_pks[g as usize], 0, parent));
            self.add_roles(Subj::Group(g), &self.group_roles[g as usize], &mut roles, &mut facts);
        }
        roles.extend(mentioned_roles(change).iter().filter_map(|r| self.role_ids.get(r)));
        facts.roles = roles.iter().map(|&r| (self.role_pks[r as usize], 0)).collect();
        let subjects = users
            .iter()
            .filter_map(|pk| self.users.get(pk).map(|&u| Subj::User(u)))
            .chain(groups.iter().map(|&g| Subj::Group(g)))
            .chain(roles.iter().map(|&r| Subj::Role(r)));
        for subject in subjects {
            self.add_grants(subject, &mut objects, &mut facts);
        }
        for key in mentioned_objects(change) {
            objects.extend(self.object(&key.0, &key.1));
        }
        self.add_objects(&objects, &mut facts);
        facts
    }

    /// The facts the index holds about `scope`, as [`Facts::restricted_to`] picks them out of all facts (group and
    /// role organisations read 0: the index does not keep them, and no decision reads them).
    pub fn facts_about(&self, scope: &Scope) -> Facts {
        let mut facts = Facts::default();
        let (mut roles, mut objects) = (BTreeSet::new(), BTreeSet::new());
        for &u in scope.users.iter().filter_map(|pk| self.users.get(pk)) {
            let entry = &self.user_entries[u as usize];
            facts.users.push(user_fact(entry));
            // A deleted group's memberships stay in its members' entries (they decide nothing); the store has none.
            let live = entry.memberships.iter().filter(|m| self.group_ids.contains_key(&self.group_pks[m.group as usize]));
            facts.memberships.extend(live.map(|m| self.membership_fact(entry.pk, m)));
            self.add_roles(Subj::User(u), &entry.roles, &mut roles, &mut facts);
            self.add_grants(Subj::User(u), &mut objects, &mut facts);
        }
        for &g in scope.groups.iter().filter_map(|pk| self.group_ids.get(pk)) {
            let parent = self.group_chains[g as usize].get(1).map(|&p| self.group_pks[p as usize]);
            facts.groups.push((self.group_pks[g as usize], 0, parent));
            self.add_roles(Subj::Group(g), &self.group_roles[g as usize], &mut roles, &mut facts);
            self.add_grants(Subj::Group(g), &mut objects, &mut facts);
        }
        for &r in scope.roles.iter().filter_map(|pk| self.role_ids.get(pk)) {
            facts.roles.push((self.role_pks[r as usize], 0));
            for &holder in &self.role_holders[r as usize] {
                let held = match holder {
                    Subj::User(u) => &self.user_entries[u as usize].roles,
                    Subj::Group(g) => &self.group_roles[g as usize],
                    Subj::Role(_) => continue,
                };
                let of_r: Vec<(u32, Option<i64>)> = held.iter().filter(|(role, _)| *role == r).copied().collect();
                self.add_roles(holder, &of_r, &mut roles, &mut facts);
            }
            self.add_grants(Subj::Role(r), &mut objects, &mut facts);
        }
        // A scoped role held by a scoped user or group was listed from both sides.
        let mut seen = BTreeSet::new();
        facts.role_assignments.retain(|a| seen.insert((a.role, a.subject)));
        for key in &scope.objects {
            let Some(o) = self.object(&key.0, &key.1) else { continue };
            let Some(org) = self.object_org[o as usize] else { continue };
            let parent = self.object_parent[o as usize].map(|p| self.object_keys[p as usize].clone());
            facts.objects.push(ObjectFact { key: key.clone(), parent, org });
        }
        facts
    }

    /// Follows one logged change: the facts the index holds about the change's scope, with the change applied,
    /// replace them. A change the index cannot follow from its own facts ([`Change::needs_stored_facts`]) takes the
    /// store's facts about its scope instead (`stored`). `Err` when the index must be rebuilt (a module changed, stored
    /// facts are needed but missing, or the patch names something the index does not know); the index may then be
    /// half-updated.
    pub fn follow(&mut self, change: &Change, stored: Option<&Facts>) -> Result<(), NeedsRebuild> {
        let Some(scope) = change.engine_scope() else { return Err(NeedsRebuild) };
        if change.needs_stored_facts() {
            return self.apply(&scope, stored.ok_or(NeedsRebuild)?);
        }
        if scope.is_empty() {
            return Ok(());
        }
        let mut facts = self.facts_about(&scope);
        facts.apply(change);
        self.apply(&scope, &facts.restricted_to(&scope))
    }

    /// A user's membership as a fact (restricting nodes by their keys).
    fn membership_fact(&self, user: i64, m: &MembershipEntry) -> MembershipFact {
        let restriction = m
            .restriction
            .as_ref()
            .map(|nodes| nodes.iter().filter_map(|&n| self.object_keys[n as usize].1.parse().ok()).collect());
        MembershipFact { user, group: self.group_pks[m.group as usize], expires_at: m.expires_at, restriction }
    }

    fn module_facts(&self) -> Vec<ModuleFact> {
        let standard = Action::ALL.len();
        self.module_entries
            .iter()
            .map(|m| ModuleFact {
                id: m.id.clone(),
                is_active: m.is_active,
                custom_actions: m.actions[standard.min(m.actions.len())..].to_vec(),
            })
            .collect()
    }

    fn add_roles(&self, holder: Subj, held: &[(u32, Option<i64>)], roles: &mut BTreeSet<u32>, facts: &mut Facts) {
        let subject = self.subject_fact(holder);
        for &(role, expires_at) in held {
            roles.insert(role);
            facts.role_assignments.push(RoleAssignmentFact { role: self.role_pks[role as usize], subject, expires_at });
        }
    }

    fn add_grants(&self, holder: Subj, objects: &mut BTreeSet<u32>, facts: &mut Facts) {
        let subject = self.subject_fact(holder);
        for (m, module) in self.module_entries.iter().enumerate() {
            let Some(set) = self.grants.get(&(holder, m as u16)) else { continue };
            let grant = |action: &str, object: Option<ObjectKey>, expires_at: Option<i64>| GrantFact {
                subject,
                module: module.id.clone(),
                action: action.to_string(),
                object,
                expires_at,
            };
            for &(mask, expires_at) in &set.global {
                facts.grants.extend(actions_in(mask, &module.actions).map(|a| grant(a, None, expires_at)));
            }
            for (&o, timed) in &set.objects {
                objects.insert(o);
                for &(mask, expires_at) in timed {
                    let key = Some(self.object_keys[o as usize].clone());
                    facts.grants.extend(actions_in(mask, &module.actions).map(|a| grant(a, key.clone(), expires_at)));
                }
            }
        }
    }

    /// The registered objects among `objects` and their ancestors, with their parents.
    fn add_objects(&self, objects: &BTreeSet<u32>, facts: &mut Facts) {
        let mut seen = BTreeSet::new();
        for &o in objects {
            for a in self.ancestors(Some(o)) {
                if !seen.insert(a) {
                    break;
                }
            }
        }
        for o in seen {
            let Some(org) = self.object_org[o as usize] else { continue };
            let parent = self.object_parent[o as usize].map(|p| self.object_keys[p as usize].clone());
            facts.objects.push(ObjectFact { key: self.object_keys[o as usize].clone(), parent, org });
        }
    }
}

/// A user's own flags as a fact.
fn user_fact(entry: &UserEntry) -> UserFact {
    UserFact { pk: entry.pk, org: entry.org, is_active: entry.is_active, is_superuser: entry.is_superuser }
}

/// Whether changed user fields decide holdings (flags, organisation, direct groups).
fn decides_holdings(fields: &UserFields) -> bool {
    ["is_active", "is_superuser", "org", "groups"].iter().any(|k| fields.contains_key(*k))
}

/// The action names of the bits of `mask`.
fn actions_in(mask: u64, actions: &[String]) -> impl Iterator<Item = &str> {
    actions.iter().enumerate().filter(move |(bit, _)| mask & (1 << bit) != 0).map(|(_, a)| a.as_str())
}

/// Groups a change names whose chains the after side needs: a group gaining members, a moved group and its new
/// parent, a new user's groups, a group given a role or a grant.
fn mentioned_groups(change: &Change) -> Vec<i64> {
    match change {
        Change::MembersAssigned { group, .. } | Change::MembershipRestricted { group, .. } => vec![*group],
        Change::GroupUpdated { pk, after, .. } | Change::GroupCreated { pk, after } => {
            std::iter::once(*pk).chain(after.parent).collect()
        }
        Change::UserCreated { after, .. } => after.groups.clone(),
        Change::UserUpdated { after, .. } => changed_groups(after).unwrap_or_default(),
        Change::RoleAssigned { subjects, .. } | Change::RoleUnassigned { subjects, .. } => {
            subjects.iter().filter_map(|s| if let SubjectFact::Group(g) = s { Some(*g) } else { None }).collect()
        }
        Change::ModulePermissionsSet { subject: SubjectFact::Group(g), .. }
        | Change::GrantsAssigned { subject: SubjectFact::Group(g), .. }
        | Change::GrantsUnassigned { subject: SubjectFact::Group(g), .. } => vec![*g],
        Change::CatalogCreated { .. } | Change::CatalogUpdated { .. } | Change::CatalogDeleted { .. } => {
            change.object_group_grants().into_iter().map(|(group, _, _)| group).collect()
        }
        _ => Vec::new(),
    }
}

/// Roles a change names: a role assigned, or a role given or losing a grant.
fn mentioned_roles(change: &Change) -> Vec<i64> {
    match change {
        Change::RoleAssigned { pk, .. } | Change::RoleUnassigned { pk, .. } | Change::RoleDeleted { pk, .. } => vec![*pk],
        Change::ModulePermissionsSet { subject: SubjectFact::Role(r), .. }
        | Change::GrantsAssigned { subject: SubjectFact::Role(r), .. }
        | Change::GrantsUnassigned { subject: SubjectFact::Role(r), .. } => vec![*r],
        _ => Vec::new(),
    }
}

/// Objects a change names: the object registered or removed and its parent, the object of a grant, the nodes of
/// a restriction.
fn mentioned_objects(change: &Change) -> Vec<ObjectKey> {
    match change {
        Change::ObjectRegistered { after: o } | Change::ObjectDeleted { before: o, .. } => {
            std::iter::once((o.model.clone(), o.object_pk.clone())).chain(o.parent.clone()).collect()
        }
        Change::GrantsAssigned { object: Some(o), .. } | Change::GrantsUnassigned { object: Some(o), .. } => vec![o.clone()],
        Change::MembershipRestricted { after: Some(m), .. } => m.nodes.iter().map(|n| node_key(*n)).collect(),
        Change::CatalogCreated { .. } | Change::CatalogUpdated { .. } | Change::CatalogDeleted { .. } => change
            .object_group_grants()
            .into_iter()
            .map(|(_, module, (item, _))| (module.to_string(), item.to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Objects a preview checks one by one: those registered or removed, so that what their ancestors pass down shows.
fn probes(change: &Change) -> Vec<ObjectKey> {
    match change {
        Change::ObjectRegistered { after: o } | Change::ObjectDeleted { before: o, .. } => {
            vec![(o.model.clone(), o.object_pk.clone())]
        }
        _ => Vec::new(),
    }
}

/// The object key of a restricting node.
fn node_key(node: i64) -> ObjectKey {
    ("nodes".to_string(), node.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{GroupRecord, MemberChange, MembershipRecord};

    /// Three users in one group; the group holds `grants` globally.
    fn index_with(grants: &[(&str, &str)]) -> Index {
        let member = |user| MembershipFact { user, group: 10, expires_at: None, restriction: None };
        let grant = |(module, action): &(&str, &str)| GrantFact {
            subject: SubjectFact::Group(10),
            module: module.to_string(),
            action: action.to_string(),
            object: None,
            expires_at: None,
        };
        Index::build(&Facts {
            users: (1..=3).map(|pk| UserFact { pk, org: 1, is_active: true, is_superuser: false }).collect(),
            groups: vec![(10, 1, None)],
            modules: vec![ModuleFact { id: "docs".into(), is_active: true, custom_actions: Vec::new() }],
            memberships: (1..=3).map(member).collect(),
            grants: grants.iter().map(grant).collect(),
            ..Facts::default()
        })
    }

    fn index() -> Index {
        index_with(&[])
    }

    fn granting(permissions: &[(&str, &str)]) -> Change {
        let record = |permissions: &[(&str, &str)]| GroupRecord {
            name: "g".into(),
            description: String::new(),
            org: 1,
            parent: None,
            permissions: permissions.iter().map(|(m, a)| (m.to_string(), vec![a.to_string()])).collect(),
        };
        Change::GroupUpdated { pk: 10, before: record(&[]), after: record(permissions) }
    }

    #[test]
    fn a_group_grant_reaches_every_member() {
        let impact = index().overlay(&granting(&[("docs", "read")]), 10).unwrap().impact(0);
        assert_eq!(impact.users_affected, 3);
        assert_eq!(impact.gained.iter().map(|e| e.permission.as_str()).collect::<Vec<_>>(), ["docs.read"]);
        assert!(impact.lost.is_empty());
    }

    #[test]
    fn previews_are_bounded() {
        assert_eq!(index().overlay(&granting(&[("docs", "read")]), 2).err(), Some(PreviewTooLarge(3)));
    }

    #[test]
    fn renaming_a_group_reaches_nobody() {
        assert!(index().affected_users(&granting(&[])).is_empty());
    }

    #[test]
    fn removing_a_member_loses_what_the_group_gave() {
        let member = MembershipRecord { expires_at: None, restricted: false, nodes: Vec::new() };
        let change =
            Change::MembersUnassigned { group: 10, members: vec![MemberChange { user: 2, before: Some(member), after: None }] };
        let impact = index_with(&[("docs", "update")]).overlay(&change, 10).unwrap().impact(0);
        assert_eq!(impact.users_affected, 1);
        assert!(impact.lost.iter().all(|e| e.users == [2]));
        assert!(impact.lost.iter().any(|e| e.permission == "docs.update"));
    }
}
