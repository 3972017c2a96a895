//! The index: dense ids, group ancestor chains, per-subject grant sets, object parent chains.

use rustc_hash::FxHashMap as HashMap;

use super::facts::{Facts, ObjectKey, SubjectFact};
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
    /// Each group's chain: itself first, then its parent, up to the root.
    pub(crate) group_chains: Vec<Box<[u32]>>,
    pub(crate) group_roles: Vec<Vec<(u32, Option<i64>)>>,
    pub(crate) role_pks: Vec<i64>,
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
            let mut actions: Vec<String> = Action::ALL.iter().map(|a| a.as_str().to_string()).collect();
            for custom in &m.custom_actions {
                if !actions.contains(custom) && actions.len() < MAX_ACTIONS {
                    actions.push(custom.clone());
                }
            }
            ix.modules.insert(m.id.clone(), ix.module_entries.len() as u16);
            ix.module_entries.push(ModuleEntry { id: m.id.clone(), is_active: m.is_active, actions });
        }
        for o in &facts.objects {
            let id = ix.object_id(&o.key);
            ix.object_org[id as usize] = Some(o.org);
        }
        for o in &facts.objects {
            if let Some(parent) = &o.parent {
                let (child, parent) = (ix.object_id(&o.key), ix.object_id(parent));
                if !ix.reaches(parent, child) {
                    ix.object_parent[child as usize] = Some(parent);
                }
            }
        }
        let groups: HashMap<i64, u32> = facts.groups.iter().enumerate().map(|(i, g)| (g.0, i as u32)).collect();
        ix.group_pks = facts.groups.iter().map(|g| g.0).collect();
        let parent_of: Vec<Option<u32>> = facts.groups.iter().map(|g| g.2.and_then(|p| groups.get(&p).copied())).collect();
        ix.group_chains = (0..facts.groups.len() as u32)
            .map(|g| {
                let mut chain = vec![g];
                let mut at = parent_of[g as usize];
                while let Some(p) = at {
                    if chain.contains(&p) {
                        break;
                    }
                    chain.push(p);
                    at = parent_of[p as usize];
                }
                chain.into_boxed_slice()
            })
            .collect();
        ix.group_roles = vec![Vec::new(); facts.groups.len()];
        let roles: HashMap<i64, u32> = facts.roles.iter().enumerate().map(|(i, r)| (r.0, i as u32)).collect();
        ix.role_pks = facts.roles.iter().map(|r| r.0).collect();
        for u in &facts.users {
            ix.users.insert(u.pk, ix.user_entries.len() as u32);
            ix.user_entries.push(UserEntry {
                pk: u.pk,
                org: u.org,
                is_active: u.is_active,
                is_superuser: u.is_superuser,
                memberships: Vec::new(),
                roles: Vec::new(),
            });
        }
        for m in &facts.memberships {
            let (Some(&user), Some(&group)) = (ix.users.get(&m.user), groups.get(&m.group)) else { continue };
            let restriction = m.restriction.as_ref().map(|nodes| {
                nodes.iter().map(|n| ix.object_id(&("nodes".to_string(), n.to_string()))).collect::<Vec<_>>().into_boxed_slice()
            });
            ix.user_entries[user as usize].memberships.push(MembershipEntry { group, expires_at: m.expires_at, restriction });
        }
        for a in &facts.role_assignments {
            let Some(&role) = roles.get(&a.role) else { continue };
            match a.subject {
                SubjectFact::User(u) => {
                    if let Some(&u) = ix.users.get(&u) {
                        ix.user_entries[u as usize].roles.push((role, a.expires_at));
                    }
                }
                SubjectFact::Group(g) => {
                    if let Some(&g) = groups.get(&g) {
                        ix.group_roles[g as usize].push((role, a.expires_at));
                    }
                }
                SubjectFact::Role(_) => {}
            }
        }
        for g in &facts.grants {
            let Some(&module) = ix.modules.get(&g.module) else { continue };
            let Some(bit) = ix.module_entries[module as usize].actions.iter().position(|a| *a == g.action) else { continue };
            let subject = match g.subject {
                SubjectFact::User(pk) => ix.users.get(&pk).map(|&u| Subj::User(u)),
                SubjectFact::Group(pk) => groups.get(&pk).map(|&g| Subj::Group(g)),
                SubjectFact::Role(pk) => roles.get(&pk).map(|&r| Subj::Role(r)),
            };
            let Some(subject) = subject else { continue };
            let object = g.object.as_ref().map(|key| ix.object_id(key));
            let set = ix.grants.entry((subject, module)).or_default();
            let timed = (1u64 << bit, g.expires_at);
            match object {
                None => set.global.push(timed),
                Some(o) => {
                    set.objects.entry(o).or_default().push(timed);
                    ix.object_grants.entry((o, module)).or_default().push((subject, timed.0, timed.1));
                }
            }
        }
        ix.object_children = vec![Vec::new(); ix.object_keys.len()];
        for (child, parent) in ix.object_parent.iter().enumerate() {
            if let Some(p) = parent {
                ix.object_children[*p as usize].push(child as u32);
            }
        }
        ix
    }

    /// The dense id of an object key, registering an unknown key without parent or org.
    fn object_id(&mut self, key: &ObjectKey) -> u32 {
        if let Some(id) = self.object(&key.0, &key.1) {
            return id;
        }
        let id = self.object_keys.len() as u32;
        self.objects.entry(key.0.clone()).or_default().insert(key.1.clone(), id);
        self.object_keys.push(key.clone());
        self.object_parent.push(None);
        self.object_org.push(None);
        id
    }

    /// The dense id of a registered (or granted-on) object.
    pub(crate) fn object(&self, model: &str, key: &str) -> Option<u32> {
        self.objects.get(model).and_then(|m| m.get(key)).copied()
    }

    /// Whether `from`'s parent chain reaches `to` (itself included).
    pub(crate) fn reaches(&self, from: u32, to: u32) -> bool {
        let mut at = Some(from);
        let mut steps = 0;
        while let Some(o) = at {
            if o == to {
                return true;
            }
            steps += 1;
            if steps > self.object_parent.len() {
                return false;
            }
            at = self.object_parent[o as usize];
        }
        false
    }

    /// Whether the user exists in the index.
    pub fn has_user(&self, pk: i64) -> bool {
        self.users.contains_key(&pk)
    }

    /// Number of users, groups, objects and grant sets held.
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (self.user_entries.len(), self.group_pks.len(), self.object_keys.len(), self.grants.len())
    }
}
