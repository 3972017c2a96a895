//! The index: dense ids, group ancestor chains, per-subject grant sets, object parent chains.

use rustc_hash::FxHashMap as HashMap;

use super::facts::{Facts, GrantFact, MembershipFact, ModuleFact, ObjectKey, RoleAssignmentFact, SubjectFact, UserFact};
use crate::permission::Action;

/// A subject by dense id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Subj {
    User(u32),
    Group(u32),
    Role(u32),
}

/// An action mask with an optional expiry (µs since the epoch).
pub(crate) type Timed = (u64, Option<i64>);

/// A grant on an object: who holds it, the action mask, the expiry.
pub(crate) type ObjectGrant = (Subj, u64, Option<i64>);

/// What one subject holds on one module.
#[derive(Debug, Default, Clone)]
pub(crate) struct GrantSet {
    pub(crate) global: Vec<Timed>,
    pub(crate) objects: HashMap<u32, Vec<Timed>>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserEntry {
    pub(crate) pk: i64,
    pub(crate) org: i64,
    pub(crate) is_active: bool,
    pub(crate) is_superuser: bool,
    pub(crate) memberships: Vec<MembershipEntry>,
    pub(crate) roles: Vec<(u32, Option<i64>)>,
    /// The user's [`GlobalModules`].
    pub(crate) global: GlobalModules,
}

/// Modules (by dense id, as bits) in which a subject holds some global grant: a check skips the grant lookup of a
/// subject without the module's bit, which is most of them. Ids of 64 and above have no bit and are always looked up.
pub(crate) type GlobalModules = u64;

/// Whether a subject with `mask` may hold a global grant in `module`.
pub(crate) fn may_hold_globally(mask: GlobalModules, module: u16) -> bool {
    module >= 64 || mask & (1 << module) != 0
}

#[derive(Debug, Clone)]
pub(crate) struct MembershipEntry {
    pub(crate) group: u32,
    pub(crate) expires_at: Option<i64>,
    /// Object ids of the restricting nodes, if restricted.
    pub(crate) restriction: Option<Box<[u32]>>,
}

#[derive(Debug, Clone)]
pub(crate) struct ModuleEntry {
    pub(crate) id: String,
    pub(crate) is_active: bool,
    pub(crate) actions: Vec<String>,
}

/// Everything a decision needs, immutable once built.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub(crate) users: HashMap<i64, u32>,
    pub(crate) user_entries: Vec<UserEntry>,
    pub(crate) group_pks: Vec<i64>,
    /// Dense ids of the groups by primary key (deleted groups are left out).
    pub(crate) group_ids: HashMap<i64, u32>,
    /// Each group's chain: itself first, then its parent, up to the root.
    pub(crate) group_chains: Vec<Box<[u32]>>,
    pub(crate) group_roles: Vec<Vec<(u32, Option<i64>)>>,
    /// One bit per group that may hold roles: a compact array a check can read for every group on its routes without
    /// touching each group's (mostly empty) role list.
    pub(crate) groups_with_roles: Vec<u64>,
    /// Each group's [`GlobalModules`].
    pub(crate) group_global: Vec<GlobalModules>,
    pub(crate) role_pks: Vec<i64>,
    /// Dense ids of the roles by primary key (deleted roles are left out).
    pub(crate) role_ids: HashMap<i64, u32>,
    /// Who holds each role directly: the inverse of the users' and groups' role lists.
    pub(crate) role_holders: Vec<Vec<Subj>>,
    /// Each role's [`GlobalModules`].
    pub(crate) role_global: Vec<GlobalModules>,
    pub(crate) modules: HashMap<String, u16>,
    pub(crate) module_entries: Vec<ModuleEntry>,
    /// Object ids by module id, then key (two levels so lookups borrow `&str`s without allocating).
    pub(crate) objects: HashMap<String, HashMap<String, u32>>,
    pub(crate) object_keys: Vec<ObjectKey>,
    pub(crate) object_parent: Vec<Option<u32>>,
    pub(crate) object_org: Vec<Option<i64>>,
    /// Each object's children (the inverse of `object_parent`).
    pub(crate) object_children: Vec<Vec<u32>>,
    pub(crate) grants: HashMap<(Subj, u16), GrantSet>,
    /// Object grants by (object, module): the same grants as in `grants`, found from the object's side.
    pub(crate) object_grants: HashMap<(u32, u16), Vec<ObjectGrant>>,
}

/// A group's chain (itself, then each ancestor up to the root), stopping short of a cycle.
pub(crate) fn chain_from(group: u32, parent_of: impl Fn(u32) -> Option<u32>) -> Box<[u32]> {
    let mut chain = vec![group];
    let mut at = parent_of(group);
    while let Some(p) = at {
        if chain.contains(&p) {
            break;
        }
        chain.push(p);
        at = parent_of(p);
    }
    chain.into_boxed_slice()
}

/// The later of two expiries (`None` is never).
pub(crate) fn latest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (None, _) | (_, None) => None,
        (Some(a), Some(b)) => Some(a.max(b)),
    }
}

/// Bit of a standard action; custom actions follow from bit 6.
pub(crate) fn standard_bit(action: Action) -> u32 {
    Action::ALL.iter().position(|a| *a == action).unwrap_or(0) as u32
}

/// Most actions a module may have (they live in a 64-bit mask).
pub const MAX_ACTIONS: usize = 64;

impl Index {
    /// Builds the index from facts; unknown references (a membership of a deleted group, a grant on a module that
    /// does not exist) are skipped.
    pub fn build(facts: &Facts) -> Index {
        let mut ix = Index::default();
        for m in &facts.modules {
            ix.add_module(m);
        }
        for o in &facts.objects {
            let id = ix.object_id(&o.key);
            ix.object_org[id as usize] = Some(o.org);
        }
        for o in &facts.objects {
            if let Some(parent) = &o.parent {
                let (child, parent) = (ix.object_id(&o.key), ix.object_id(parent));
                ix.set_object_parent(child, Some(parent));
            }
        }
        for g in &facts.groups {
            ix.group_id_or_new(g.0);
        }
        let parent_of: Vec<Option<u32>> = facts.groups.iter().map(|g| g.2.and_then(|p| ix.group_ids.get(&p).copied())).collect();
        ix.group_chains = (0..facts.groups.len() as u32).map(|g| chain_from(g, |p| parent_of[p as usize])).collect();
        for r in &facts.roles {
            ix.role_id_or_new(r.0);
        }
        for u in &facts.users {
            ix.set_user(u);
        }
        for m in &facts.memberships {
            ix.add_membership(m);
        }
        for a in &facts.role_assignments {
            ix.add_assignment(a);
        }
        for g in &facts.grants {
            ix.add_grant(g);
        }
        ix
    }

    fn add_module(&mut self, m: &ModuleFact) {
        let mut actions: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_string()).collect();
        for custom in &m.custom_actions {
            if !actions.contains(custom) && actions.len() < MAX_ACTIONS {
                actions.push(custom.clone());
            }
        }
        self.modules.insert(m.id.clone(), self.module_entries.len() as u16);
        self.module_entries.push(ModuleEntry { id: m.id.clone(), is_active: m.is_active, actions });
    }

    /// The dense id of a group, registering it (as a root) when new.
    pub(crate) fn group_id_or_new(&mut self, pk: i64) -> u32 {
        if let Some(&id) = self.group_ids.get(&pk) {
            return id;
        }
        let id = self.group_pks.len() as u32;
        self.group_ids.insert(pk, id);
        self.group_pks.push(pk);
        self.group_chains.push(Box::new([id]));
        self.group_roles.push(Vec::new());
        if self.groups_with_roles.len() * 64 <= id as usize {
            self.groups_with_roles.push(0);
        }
        self.group_global.push(0);
        id
    }

    /// The dense id of a role, registering it when new.
    pub(crate) fn role_id_or_new(&mut self, pk: i64) -> u32 {
        if let Some(&id) = self.role_ids.get(&pk) {
            return id;
        }
        let id = self.role_pks.len() as u32;
        self.role_ids.insert(pk, id);
        self.role_pks.push(pk);
        self.role_holders.push(Vec::new());
        self.role_global.push(0);
        id
    }

    /// Registers a user or updates its flags, keeping its memberships and roles.
    pub(crate) fn set_user(&mut self, u: &UserFact) -> u32 {
        if let Some(&id) = self.users.get(&u.pk) {
            let entry = &mut self.user_entries[id as usize];
            (entry.org, entry.is_active, entry.is_superuser) = (u.org, u.is_active, u.is_superuser);
            return id;
        }
        let id = self.user_entries.len() as u32;
        self.users.insert(u.pk, id);
        self.user_entries.push(UserEntry {
            pk: u.pk,
            org: u.org,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            memberships: Vec::new(),
            roles: Vec::new(),
            global: 0,
        });
        id
    }

    /// Adds a membership; `false` when its user or group is unknown.
    pub(crate) fn add_membership(&mut self, m: &MembershipFact) -> bool {
        let (Some(&user), Some(&group)) = (self.users.get(&m.user), self.group_ids.get(&m.group)) else { return false };
        let restriction = m.restriction.as_ref().map(|nodes| {
            nodes.iter().map(|n| self.object_id(&("nodes".to_string(), n.to_string()))).collect::<Vec<_>>().into_boxed_slice()
        });
        self.user_entries[user as usize].memberships.push(MembershipEntry { group, expires_at: m.expires_at, restriction });
        true
    }

    /// The dense subject of a fact's subject, if known.
    pub(crate) fn subject(&self, s: SubjectFact) -> Option<Subj> {
        match s {
            SubjectFact::User(pk) => self.users.get(&pk).map(|&u| Subj::User(u)),
            SubjectFact::Group(pk) => self.group_ids.get(&pk).map(|&g| Subj::Group(g)),
            SubjectFact::Role(pk) => self.role_ids.get(&pk).map(|&r| Subj::Role(r)),
        }
    }

    /// The roles held directly by a user or group.
    pub(crate) fn roles_of_mut(&mut self, holder: Subj) -> Option<&mut Vec<(u32, Option<i64>)>> {
        match holder {
            Subj::User(u) => Some(&mut self.user_entries[u as usize].roles),
            Subj::Group(g) => Some(&mut self.group_roles[g as usize]),
            Subj::Role(_) => None,
        }
    }

    /// Adds a role assignment (the same assignment twice counts until the later expiry); `false` when a party is
    /// unknown.
    pub(crate) fn add_assignment(&mut self, a: &RoleAssignmentFact) -> bool {
        let (Some(&role), Some(holder)) = (self.role_ids.get(&a.role), self.subject(a.subject)) else { return false };
        let Some(roles) = self.roles_of_mut(holder) else { return false };
        match roles.iter_mut().find(|(r, _)| *r == role) {
            Some(held) => held.1 = latest(held.1, a.expires_at),
            None => {
                roles.push((role, a.expires_at));
                self.role_holders[role as usize].push(holder);
                if let Subj::Group(g) = holder {
                    self.groups_with_roles[g as usize / 64] |= 1 << (g % 64);
                }
            }
        }
        true
    }

    /// Adds a grant; one whose subject, module or action is unknown grants nothing and is left out.
    pub(crate) fn add_grant(&mut self, g: &GrantFact) {
        let Some(&module) = self.modules.get(&g.module) else { return };
        let Some(bit) = self.module_entries[module as usize].actions.iter().position(|a| *a == g.action) else { return };
        let Some(subject) = self.subject(g.subject) else { return };
        let object = g.object.as_ref().map(|key| self.object_id(key));
        let set = self.grants.entry((subject, module)).or_default();
        let timed = (1u64 << bit, g.expires_at);
        match object {
            None => {
                set.global.push(timed);
                if module < 64 {
                    *self.global_modules_mut(subject) |= 1 << module;
                }
            }
            Some(o) => {
                set.objects.entry(o).or_default().push(timed);
                self.object_grants.entry((o, module)).or_default().push((subject, timed.0, timed.1));
            }
        }
    }

    /// Whether the group may hold roles (a group that lost its roles may still answer yes).
    pub(crate) fn may_hold_roles(&self, g: u32) -> bool {
        self.groups_with_roles[g as usize / 64] & (1 << (g % 64)) != 0
    }

    /// The subject's [`GlobalModules`].
    pub(crate) fn global_modules(&self, s: Subj) -> GlobalModules {
        match s {
            Subj::User(u) => self.user_entries[u as usize].global,
            Subj::Group(g) => self.group_global[g as usize],
            Subj::Role(r) => self.role_global[r as usize],
        }
    }

    /// The subject's [`GlobalModules`], to update.
    pub(crate) fn global_modules_mut(&mut self, s: Subj) -> &mut GlobalModules {
        match s {
            Subj::User(u) => &mut self.user_entries[u as usize].global,
            Subj::Group(g) => &mut self.group_global[g as usize],
            Subj::Role(r) => &mut self.role_global[r as usize],
        }
    }

    /// Sets an object's parent (refused when it would close a cycle), keeping the children lists in step.
    pub(crate) fn set_object_parent(&mut self, child: u32, parent: Option<u32>) {
        let parent = parent.filter(|&p| !self.reaches(p, child));
        if let Some(old) = self.object_parent[child as usize] {
            self.object_children[old as usize].retain(|&c| c != child);
        }
        self.object_parent[child as usize] = parent;
        if let Some(p) = parent {
            self.object_children[p as usize].push(child);
        }
    }

    /// The dense id of an object key, registering an unknown key without parent or org.
    pub(crate) fn object_id(&mut self, key: &ObjectKey) -> u32 {
        if let Some(id) = self.object(&key.0, &key.1) {
            return id;
        }
        let id = self.object_keys.len() as u32;
        self.objects.entry(key.0.clone()).or_default().insert(key.1.clone(), id);
        self.object_keys.push(key.clone());
        self.object_parent.push(None);
        self.object_org.push(None);
        self.object_children.push(Vec::new());
        id
    }

    /// The dense id of a registered (or granted-on) object.
    pub(crate) fn object(&self, model: &str, key: &str) -> Option<u32> {
        self.objects.get(model).and_then(|m| m.get(key)).copied()
    }

    /// The organisation of a registered object (`None` when the key is not registered).
    pub fn object_org(&self, model: &str, key: &str) -> Option<i64> {
        self.object(model, key).and_then(|o| self.object_org[o as usize])
    }

    /// `from`, then each of its ancestors up to the root (cut short, should the chain ever loop).
    pub(crate) fn ancestors(&self, from: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        std::iter::successors(from, |&o| self.object_parent[o as usize]).take(self.object_parent.len() + 1)
    }

    /// Whether `from`'s parent chain reaches `to` (itself included).
    pub(crate) fn reaches(&self, from: u32, to: u32) -> bool {
        self.ancestors(Some(from)).any(|o| o == to)
    }

    /// Whether the user exists in the index.
    pub fn has_user(&self, pk: i64) -> bool {
        self.users.contains_key(&pk)
    }

    /// Whether the user is active and whether a superuser, `None` when the user does not exist.
    pub fn user_flags(&self, pk: i64) -> Option<(bool, bool)> {
        self.users.get(&pk).map(|&i| (self.user_entries[i as usize].is_active, self.user_entries[i as usize].is_superuser))
    }

    /// The organisation of the user, `None` when the user does not exist.
    pub fn user_org(&self, pk: i64) -> Option<i64> {
        self.users.get(&pk).map(|&i| self.user_entries[i as usize].org)
    }

    /// Number of users, groups, objects and grant sets held.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (self.user_entries.len(), self.group_pks.len(), self.object_keys.len(), self.grants.len())
    }
}
