//! Check and explain: one walk over the routes by which a user can hold something, evaluated without allocation
//! for checks and recorded for explanations.

use std::ops::ControlFlow;

use super::facts::{ObjectKey, SubjectFact};
use super::index::{GrantSet, Index, Subj, UserEntry, latest, may_hold_globally, standard_bit};
use crate::permission::{Action, ModulePermissions};

/// Why a check was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No such user.
    UnknownUser,
    /// Inactive users hold nothing.
    InactiveUser,
    /// No such module.
    UnknownModule,
    /// Inactive modules grant nothing.
    InactiveModule,
    /// The module has no such action.
    UnknownAction,
    /// No grant reaches the user.
    NoGrant,
}

/// The answer to a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the permission is held.
    pub allowed: bool,
    /// When the decision stops holding because an expiry on every granting path passes (µs), if ever.
    pub valid_until: Option<i64>,
    /// Why not, when denied.
    pub denial: Option<Denial>,
}

impl Decision {
    fn deny(why: Denial) -> Self {
        Self { allowed: false, valid_until: None, denial: Some(why) }
    }
}

/// One step of a granting path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The user (superuser when `superuser`).
    User {
        /// Primary key.
        pk: i64,
        /// Whether the user is a superuser (the whole path).
        superuser: bool,
    },
    /// A direct membership, restricted to nodes when `restricted`.
    Member {
        /// Group key.
        group: i64,
        /// Whether the membership is node-restricted.
        restricted: bool,
    },
    /// An ancestor of the previous group.
    Ancestor {
        /// Group key.
        group: i64,
    },
    /// A role assigned to the previous subject.
    Role {
        /// Role key.
        role: i64,
    },
    /// The grant that decides: `module.action`, globally or on an object.
    Grant {
        /// Module id.
        module: String,
        /// The granted action (may be `full`).
        action: String,
        /// The object granted on.
        object: Option<ObjectKey>,
    },
    /// The checked object, below the granted one.
    Covers {
        /// The checked object.
        object: ObjectKey,
    },
}

/// One way the user holds the permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// From the user to the grant.
    pub steps: Vec<Step>,
    /// When this path expires (µs), if ever.
    pub valid_until: Option<i64>,
}

/// A way a grant can reach the user: the subject holding it and what narrows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route<'a> {
    pub(crate) subject: Subj,
    pub(crate) restriction: Option<&'a [u32]>,
    member: Option<u32>,
    ancestor: Option<u32>,
    role: Option<u32>,
    expires_at: Option<i64>,
}

/// The permission being checked, resolved to dense ids.
#[derive(Clone, Copy)]
struct Target {
    module: u16,
    bit: u32,
    object: Option<u32>,
    user_org: i64,
}

const ACCESS: u32 = 0;

/// Routes a check gathers on the stack before falling back to the general walk.
const ROUTES_ON_STACK: usize = 128;

fn covers(mask: u64, bit: u32) -> bool {
    let full = 1u64 << standard_bit(Action::Full);
    mask & (1 << bit) != 0 || mask & full != 0 || (bit == ACCESS && mask != 0)
}

pub(crate) fn alive(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|e| e > now)
}

/// The earlier of two expiries (`None` is never).
fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => Some(a.min(b)),
    }
}

/// A user resolved for a check.
enum Resolved<'a> {
    /// Superusers hold everything.
    Superuser(&'a UserEntry),
    /// Everyone else holds what the routes bring.
    Checked(&'a UserEntry, Target),
}

/// A grant found on a route: the action mask that matched, the object it is on, and the path's expiry.
#[derive(Clone, Copy)]
struct Hit {
    mask: u64,
    object: Option<u32>,
    valid_until: Option<i64>,
}

impl Index {
    /// Whether `user` holds `module.action`, globally or on the object `(model, key)`, at `now` (µs).
    pub fn check(&self, user: i64, module: &str, action: &str, object: Option<(&str, &str)>, now: i64) -> Decision {
        let (entry, target) = match self.resolve(user, module, action, object) {
            Ok(Resolved::Checked(entry, target)) => (entry, target),
            Ok(Resolved::Superuser(_)) => return Decision { allowed: true, valid_until: None, denial: None },
            Err(why) => return Decision::deny(why),
        };
        let mut best: Option<Option<i64>> = None;
        let mut record = |hit: Hit| {
            best = Some(match best {
                None => hit.valid_until,
                Some(v) => latest(v, hit.valid_until),
            });
            if hit.valid_until.is_none() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        };
        // Gather the routes on the stack: then object grants are found by object (a few lookups along the parent
        // chain) instead of by route × chain. Users with more routes than fit take the general walk.
        let mut routes = [None; ROUTES_ON_STACK];
        let mut n = 0;
        let overflow = self
            .walk(entry, now, &mut |route| {
                if n == ROUTES_ON_STACK {
                    return ControlFlow::Break(());
                }
                routes[n] = Some(route);
                n += 1;
                ControlFlow::Continue(())
            })
            .is_break();
        if overflow {
            let _ = self.walk(entry, now, &mut |route| self.hits(route, target, now, &mut record));
        } else {
            let routes = &routes[..n];
            let _ = self.global_then_objects(routes, target, now, &mut record);
        }
        match best {
            Some(valid_until) => Decision { allowed: true, valid_until, denial: None },
            None => Decision::deny(Denial::NoGrant),
        }
    }

    /// Global grants route by route, then object grants object by object along the target's parent chain.
    fn global_then_objects(
        &self,
        routes: &[Option<Route<'_>>],
        target: Target,
        now: i64,
        visit: &mut dyn FnMut(Hit) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        for route in routes.iter().flatten() {
            if !may_hold_globally(self.global_modules(route.subject), target.module) {
                continue;
            }
            if let Some(set) = self.grants.get(&(route.subject, target.module))
                && self.inside(route.restriction, target)
            {
                self.global_hits(set, *route, target, now, visit)?;
            }
        }
        for o in self.ancestors(target.object) {
            let Some(list) = self.object_grants.get(&(o, target.module)) else { continue };
            for &(subject, mask, expires_at) in list {
                if !covers(mask, target.bit) || !alive(expires_at, now) {
                    continue;
                }
                for route in routes.iter().flatten().filter(|r| r.subject == subject) {
                    if self.inside(route.restriction, target) {
                        visit(Hit { mask, object: Some(o), valid_until: earliest(route.expires_at, expires_at) })?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Whether a route's node restriction (if any) lets it reach the target.
    fn inside(&self, restriction: Option<&[u32]>, target: Target) -> bool {
        restriction.is_none_or(|nodes| target.object.is_some_and(|o| nodes.iter().any(|&n| self.reaches(o, n))))
    }

    /// The decision with every granting path (at most `limit`) and their total.
    pub fn explain(
        &self,
        user: i64,
        module: &str,
        action: &str,
        object: Option<(&str, &str)>,
        now: i64,
        limit: usize,
    ) -> (Decision, Vec<Path>, usize) {
        let decision = self.check(user, module, action, object, now);
        let (entry, target) = match self.resolve(user, module, action, object) {
            Ok(Resolved::Checked(entry, target)) => (entry, target),
            Ok(Resolved::Superuser(entry)) => {
                let steps = vec![Step::User { pk: entry.pk, superuser: true }];
                return (decision, vec![Path { steps, valid_until: None }], 1);
            }
            Err(_) => return (decision, Vec::new(), 0),
        };
        let mut paths = Vec::new();
        let mut total = 0;
        let _ = self.walk(entry, now, &mut |route| {
            self.hits(route, target, now, &mut |hit| {
                total += 1;
                if paths.len() < limit {
                    paths.push(self.path(entry, route, target, hit));
                }
                ControlFlow::Continue(())
            })
        });
        (decision, paths, total)
    }

    /// Resolves names to ids, applying the precedence: inactive user → deny, superuser → allow, inactive module → deny.
    fn resolve(&self, user: i64, module: &str, action: &str, object: Option<(&str, &str)>) -> Result<Resolved<'_>, Denial> {
        let entry = self.users.get(&user).map(|&u| &self.user_entries[u as usize]).ok_or(Denial::UnknownUser)?;
        if !entry.is_active {
            return Err(Denial::InactiveUser);
        }
        if entry.is_superuser {
            return Ok(Resolved::Superuser(entry));
        }
        let &m = self.modules.get(module).ok_or(Denial::UnknownModule)?;
        let me = &self.module_entries[m as usize];
        if !me.is_active {
            return Err(Denial::InactiveModule);
        }
        let bit = me.actions.iter().position(|a| a == action).ok_or(Denial::UnknownAction)? as u32;
        let object = object.and_then(|(model, key)| self.object(model, key));
        Ok(Resolved::Checked(entry, Target { module: m, bit, object, user_org: entry.org }))
    }

    /// Visits every unexpired route by which grants reach the user.
    pub(crate) fn walk<'a>(
        &'a self,
        entry: &'a UserEntry,
        now: i64,
        visit: &mut dyn FnMut(Route<'a>) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let user = self.users[&entry.pk];
        visit(Route {
            subject: Subj::User(user),
            restriction: None,
            member: None,
            ancestor: None,
            role: None,
            expires_at: None,
        })?;
        for &(role, expires_at) in &entry.roles {
            if alive(expires_at, now) {
                visit(Route {
                    subject: Subj::Role(role),
                    restriction: None,
                    member: None,
                    ancestor: None,
                    role: Some(role),
                    expires_at,
                })?;
            }
        }
        for m in &entry.memberships {
            if !alive(m.expires_at, now) {
                continue;
            }
            for &g in self.group_chains[m.group as usize].iter() {
                let ancestor = (g != m.group).then_some(g);
                let route = Route {
                    subject: Subj::Group(g),
                    restriction: m.restriction.as_deref(),
                    member: Some(m.group),
                    ancestor,
                    role: None,
                    expires_at: m.expires_at,
                };
                visit(route)?;
                if !self.may_hold_roles(g) {
                    continue;
                }
                for &(role, expires_at) in &self.group_roles[g as usize] {
                    if alive(expires_at, now) {
                        visit(Route {
                            subject: Subj::Role(role),
                            role: Some(role),
                            expires_at: earliest(m.expires_at, expires_at),
                            ..route
                        })?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Visits every grant of the route's subject that decides the target.
    fn hits(&self, route: Route<'_>, target: Target, now: i64, visit: &mut dyn FnMut(Hit) -> ControlFlow<()>) -> ControlFlow<()> {
        let Some(set) = self.grants.get(&(route.subject, target.module)) else { return ControlFlow::Continue(()) };
        if !self.inside(route.restriction, target) {
            return ControlFlow::Continue(());
        }
        self.global_hits(set, route, target, now, visit)?;
        for o in self.ancestors(target.object) {
            for &(mask, expires_at) in set.objects.get(&o).into_iter().flatten() {
                if covers(mask, target.bit) && alive(expires_at, now) {
                    visit(Hit { mask, object: Some(o), valid_until: earliest(route.expires_at, expires_at) })?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn global_hits(
        &self,
        set: &GrantSet,
        route: Route<'_>,
        target: Target,
        now: i64,
        visit: &mut dyn FnMut(Hit) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let in_org = target.object.and_then(|o| self.object_org[o as usize]).is_none_or(|org| org == target.user_org);
        if !in_org {
            return ControlFlow::Continue(());
        }
        for &(mask, expires_at) in &set.global {
            if covers(mask, target.bit) && alive(expires_at, now) {
                visit(Hit { mask, object: None, valid_until: earliest(route.expires_at, expires_at) })?;
            }
        }
        ControlFlow::Continue(())
    }

    fn path(&self, entry: &UserEntry, route: Route<'_>, target: Target, hit: Hit) -> Path {
        let mut steps = vec![Step::User { pk: entry.pk, superuser: false }];
        if let Some(g) = route.member {
            steps.push(Step::Member { group: self.group_pks[g as usize], restricted: route.restriction.is_some() });
        }
        if let Some(g) = route.ancestor {
            steps.push(Step::Ancestor { group: self.group_pks[g as usize] });
        }
        if let Some(r) = route.role {
            steps.push(Step::Role { role: self.role_pks[r as usize] });
        }
        let module = &self.module_entries[target.module as usize];
        let bit = (0..64).find(|b| hit.mask & (1 << b) != 0).unwrap_or(0);
        steps.push(Step::Grant {
            module: module.id.clone(),
            action: module.actions.get(bit).cloned().unwrap_or_default(),
            object: hit.object.map(|o| self.object_keys[o as usize].clone()),
        });
        if let (Some(granted), Some(checked)) = (hit.object, target.object)
            && granted != checked
        {
            steps.push(Step::Covers { object: self.object_keys[checked as usize].clone() });
        }
        Path { steps, valid_until: hit.valid_until }
    }
}

/// An object grant as `(module, action, (model, key))`.
pub type ObjectGrantOf = (String, String, ObjectKey);

/// What a user holds: global permissions and permissions on objects (API.md §6 effective permissions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// Superusers hold everything (nothing else is listed).
    pub superuser: bool,
    /// `module.action` held globally, sorted.
    pub global: Vec<String>,
    /// Object grants: (model, object key, action), sorted; descendants are covered implicitly.
    pub objects: Vec<(String, String, String)>,
}

impl Index {
    /// Everything `user` holds at `now` through unrestricted routes (restricted memberships only narrow, so what
    /// they carry shows in checks on objects inside their nodes, not here).
    pub fn effective(&self, user: i64, now: i64) -> Effective {
        match self.users.get(&user).map(|&u| &self.user_entries[u as usize]) {
            Some(entry) if entry.is_active => self.effective_when_active(user, now),
            _ => Effective::default(),
        }
    }

    /// What `user` would hold at `now` if active: a deactivated user holds nothing, but reactivating them (or acting
    /// on their credentials) hands back all of this.
    pub fn effective_when_active(&self, user: i64, now: i64) -> Effective {
        let Some(entry) = self.users.get(&user).map(|&u| &self.user_entries[u as usize]) else { return Effective::default() };
        if entry.is_superuser {
            return Effective { superuser: true, ..Effective::default() };
        }
        let mut out = Effective::default();
        let _ = self.walk(entry, now, &mut |route| {
            if route.restriction.is_some() {
                return ControlFlow::Continue(());
            }
            for (m, me) in self.module_entries.iter().enumerate() {
                if !me.is_active {
                    continue;
                }
                let Some(set) = self.grants.get(&(route.subject, m as u16)) else { continue };
                for &(mask, expires_at) in &set.global {
                    if alive(expires_at, now) {
                        out.global.extend(actions_of(mask, &me.actions).map(|a| format!("{}.{a}", me.id)));
                    }
                }
                for (&o, list) in &set.objects {
                    let key = &self.object_keys[o as usize];
                    for &(mask, expires_at) in list {
                        if alive(expires_at, now) {
                            out.objects
                                .extend(actions_of(mask, &me.actions).map(|a| (key.0.clone(), key.1.clone(), a.to_string())));
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        });
        out.global.sort();
        out.global.dedup();
        out.objects.sort();
        out.objects.dedup();
        out
    }

    /// What membership of `groups` confers at `now` (API.md §11, no escalation): the global grants of each group
    /// and its ancestors and of the roles they hold. Inactive modules count: reactivating one must not hand out what
    /// the writer could not. Unknown groups confer nothing.
    pub fn conferred_by(&self, groups: &[i64], now: i64) -> ModulePermissions {
        let mut out = ModulePermissions::new();
        self.conferring_subjects(groups, now, |subject| self.add_global(subject, now, &mut out));
        out
    }

    /// Calls `visit` with every subject whose grants membership of `groups` confers at `now`: each group and its
    /// ancestors, and the roles they hold.
    fn conferring_subjects(&self, groups: &[i64], now: i64, mut visit: impl FnMut(Subj)) {
        let chains = groups.iter().filter_map(|pk| self.group_ids.get(pk)).map(|&g| &self.group_chains[g as usize]);
        for &g in chains.flatten() {
            visit(Subj::Group(g));
            for &(role, expires_at) in &self.group_roles[g as usize] {
                if alive(expires_at, now) {
                    visit(Subj::Role(role));
                }
            }
        }
    }

    /// The unexpired global grants of one user, group or role itself (nothing it inherits), inactive modules
    /// included: what assigning a role confers, for the no-escalation rule.
    pub fn granted_to(&self, subject: SubjectFact, now: i64) -> ModulePermissions {
        let mut out = ModulePermissions::new();
        if let Some(subject) = self.subject(subject) {
            self.add_global(subject, now, &mut out);
        }
        out
    }

    /// Every unexpired object grant, of anyone, on `(model, key)` or an object above it: what registering an object
    /// under it hands to those holders, for the no-escalation rule.
    pub fn granted_on(&self, model: &str, key: &str, now: i64) -> ModulePermissions {
        let mut out = ModulePermissions::new();
        for o in self.ancestors(self.object(model, key)) {
            for (m, me) in self.module_entries.iter().enumerate() {
                for &(_, mask, expires_at) in self.object_grants.get(&(o, m as u16)).into_iter().flatten() {
                    if alive(expires_at, now) {
                        actions_of(mask, &me.actions).for_each(|a| out.insert_named(&me.id, a));
                    }
                }
            }
        }
        out
    }

    /// Every unexpired object grant that membership of `groups` confers (each group's and its ancestors', and
    /// their roles'), as `(module, action, (model, key))`: the object half of [`conferred_by`](Self::conferred_by).
    pub fn objects_conferred_by(&self, groups: &[i64], now: i64) -> Vec<ObjectGrantOf> {
        let mut out = Vec::new();
        self.conferring_subjects(groups, now, |subject| self.add_object_grants(subject, now, &mut out));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The unexpired object grants of one user, group or role itself: the object half of
    /// [`granted_to`](Self::granted_to).
    pub fn objects_granted_to(&self, subject: SubjectFact, now: i64) -> Vec<ObjectGrantOf> {
        let mut out = Vec::new();
        if let Some(subject) = self.subject(subject) {
            self.add_object_grants(subject, now, &mut out);
        }
        out
    }

    /// Adds the subject's unexpired object grants to `out`.
    fn add_object_grants(&self, subject: Subj, now: i64, out: &mut Vec<ObjectGrantOf>) {
        for (m, me) in self.module_entries.iter().enumerate() {
            let Some(set) = self.grants.get(&(subject, m as u16)) else { continue };
            for (&o, list) in &set.objects {
                let object = &self.object_keys[o as usize];
                for &(mask, _) in list.iter().filter(|(_, expires_at)| alive(*expires_at, now)) {
                    out.extend(actions_of(mask, &me.actions).map(|a| (me.id.clone(), a.to_string(), object.clone())));
                }
            }
        }
    }

    /// Adds the subject's unexpired global grants to `out`.
    fn add_global(&self, subject: Subj, now: i64, out: &mut ModulePermissions) {
        for (m, me) in self.module_entries.iter().enumerate() {
            let Some(set) = self.grants.get(&(subject, m as u16)) else { continue };
            for &(mask, expires_at) in &set.global {
                if alive(expires_at, now) {
                    actions_of(mask, &me.actions).for_each(|a| out.insert_named(&me.id, a));
                }
            }
        }
    }

    /// Keys of the objects of `model` on which `user` holds `module.action`, or `None` when it is held globally
    /// (every object of the user's org). Objects only count when registered (or granted on directly).
    pub fn lookup_objects(&self, user: i64, module: &str, action: &str, model: &str, now: i64) -> Option<Vec<String>> {
        if self.check(user, module, action, None, now).allowed {
            return None;
        }
        let Ok(Resolved::Checked(entry, target)) = self.resolve(user, module, action, None) else { return Some(Vec::new()) };
        let mut found = vec![false; self.object_keys.len()];
        let _ = self.walk(entry, now, &mut |route| {
            let Some(set) = self.grants.get(&(route.subject, target.module)) else { return ControlFlow::Continue(()) };
            // A global grant through a restricted membership covers what lies inside its nodes, in the user's org.
            if let Some(nodes) = route.restriction
                && set.global.iter().any(|&(mask, e)| covers(mask, target.bit) && alive(e, now))
            {
                for &node in nodes {
                    self.mark_subtree(node, route.restriction, Some(target.user_org), &mut found);
                }
            }
            for (&o, list) in &set.objects {
                if list.iter().any(|&(mask, e)| covers(mask, target.bit) && alive(e, now)) {
                    self.mark_subtree(o, route.restriction, None, &mut found);
                }
            }
            ControlFlow::Continue(())
        });
        let mut keys: Vec<String> = found
            .iter()
            .enumerate()
            .filter(|(o, hit)| **hit && self.object_keys[*o].0 == model)
            .map(|(o, _)| self.object_keys[o].1.clone())
            .collect();
        keys.sort();
        Some(keys)
    }

    /// Marks `root` and its descendants, keeping only those inside `nodes` when restricted and in `org` when given.
    fn mark_subtree(&self, root: u32, nodes: Option<&[u32]>, org: Option<i64>, found: &mut [bool]) {
        let mut stack = vec![root];
        let mut steps = 0;
        while let Some(o) = stack.pop() {
            steps += 1;
            if steps > found.len() {
                break;
            }
            let in_org = org.is_none_or(|org| self.object_org[o as usize].is_none_or(|o| o == org));
            if in_org && nodes.is_none_or(|nodes| nodes.iter().any(|&n| self.reaches(o, n))) {
                found[o as usize] = true;
            }
            stack.extend(self.object_children[o as usize].iter().copied());
        }
    }
}

/// The action names set in a mask.
fn actions_of(mask: u64, actions: &[String]) -> impl Iterator<Item = &str> {
    actions.iter().enumerate().filter(move |(b, _)| mask & (1 << b) != 0).map(|(_, a)| a.as_str())
}

impl Index {
    /// Keys of every user holding `module.action` (on the object, when given) at `now`, ascending.
    pub fn lookup_users(&self, module: &str, action: &str, object: Option<(&str, &str)>, now: i64) -> Vec<i64> {
        let mut users: Vec<i64> =
            self.user_entries.iter().filter(|u| self.check(u.pk, module, action, object, now).allowed).map(|u| u.pk).collect();
        users.sort_unstable();
        users
    }
}
