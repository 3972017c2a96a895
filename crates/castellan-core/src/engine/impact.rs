//! Impact of a write before it is made: what each affected user holds on the index before the write and on the index
//! after it, diffed and aggregated per permission (API.md §8 and §11, `?dry_run=true`).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::check::alive;
use super::facts::ObjectKey;
use rustc_hash::FxHashMap as HashMap;

use super::index::{Index, Subj, UserEntry, standard_bit};
use crate::permission::Action;

/// One permission gained or lost, globally or on an object, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpactEntry {
    /// `module.action`.
    pub permission: String,
    /// The object, when not global.
    pub object: Option<ObjectKey>,
    /// Every user concerned, ascending.
    pub users: Vec<i64>,
}

/// What a write would change: permissions gained and lost, and how many users see any change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Impact {
    /// Permissions gained, by permission then object.
    pub gained: Vec<ImpactEntry>,
    /// Permissions lost, by permission then object.
    pub lost: Vec<ImpactEntry>,
    /// Users whose holdings change at all.
    pub users_affected: usize,
}

/// What one user holds per (module, object), normalised so `full` holds every action of its module and any action
/// holds `access` (which every action implies). Names are borrowed from the index.
type Holdings<'a> = HashMap<(&'a str, Option<&'a ObjectKey>), Held<'a>>;

/// Actions held in one module, as a mask over that module's actions in one index.
#[derive(Clone, Copy)]
struct Held<'a> {
    mask: u64,
    actions: &'a [String],
}

impl Held<'_> {
    /// The same actions as a mask over `actions` (the module's actions in the other index: almost always the same
    /// list, unless the change alters the module).
    fn over(&self, actions: &[String]) -> u64 {
        if std::ptr::eq(self.actions, actions) || self.actions == actions {
            return self.mask;
        }
        let held = |name: &String| self.actions.iter().position(|a| a == name).is_some_and(|b| self.mask & (1 << b) != 0);
        actions.iter().enumerate().filter(|(_, name)| held(name)).fold(0, |mask, (b, _)| mask | 1 << b)
    }
}

/// The impact of going from `before` to `after` for `users`. Grants on objects are compared as granted (a grant on a
/// parent is one entry, not one per descendant); `probes` are objects that moved or appeared, checked one by one
/// (where registered) so that what their new ancestors pass down shows too.
pub fn impact(before: &Index, after: &Index, users: &[i64], probes: &[ObjectKey], now: i64) -> Impact {
    let (modules_before, modules_after) = (before.modules_by_subject(), after.modules_by_subject());
    let sides = Sides { before, after, modules_before: &modules_before, modules_after: &modules_after, probes, now };
    // Users are independent: halves of the list are diffed on their own threads, and the halves' user lists, each
    // ascending, are concatenated in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let chunk = users.len().div_ceil(threads).max(PARALLEL_MIN);
    let parts: Vec<Diff> = std::thread::scope(|s| {
        let handles: Vec<_> = users.chunks(chunk).map(|part| s.spawn(|| sides.diff(part))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    let mut total = Diff::default();
    for part in parts {
        total.merge(part);
    }
    Impact { gained: entries(total.gained), lost: entries(total.lost), users_affected: total.affected }
}

/// Fewest users worth a thread of their own.
const PARALLEL_MIN: usize = 256;

/// Both indexes of an impact and what is shared while diffing users.
struct Sides<'a> {
    before: &'a Index,
    after: &'a Index,
    modules_before: &'a HashMap<Subj, Vec<u16>>,
    modules_after: &'a HashMap<Subj, Vec<u16>>,
    probes: &'a [ObjectKey],
    now: i64,
}

/// Gains and losses of some users, by (permission, object), with how many users changed at all.
#[derive(Default)]
struct Diff {
    gained: BTreeMap<(String, Option<ObjectKey>), Vec<i64>>,
    lost: BTreeMap<(String, Option<ObjectKey>), Vec<i64>>,
    affected: usize,
}

impl Diff {
    /// Adds the diff of users that all come after this one's.
    fn merge(&mut self, later: Diff) {
        for (mine, theirs) in [(&mut self.gained, later.gained), (&mut self.lost, later.lost)] {
            for (key, users) in theirs {
                mine.entry(key).or_default().extend(users);
            }
        }
        self.affected += later.affected;
    }
}

impl Sides<'_> {
    fn diff(&self, users: &[i64]) -> Diff {
        let mut out = Diff::default();
        let (mut passed_before, mut passed_after) = (Passed::default(), Passed::default());
        for &user in users {
            let was = self.before.holdings(user, self.probes, self.modules_before, self.now, &mut passed_before);
            let is = self.after.holdings(user, self.probes, self.modules_after, self.now, &mut passed_after);
            let mut changed = collect(&is, &was, user, true, &mut out.gained);
            changed |= collect(&was, &is, user, false, &mut out.lost);
            out.affected += usize::from(changed);
        }
        out
    }
}

/// Records what `from` holds and `minus` does not under `user`; whether anything was recorded. An entry implied by
/// another recorded one of the same module and object is left out: `access` beside any other action and, when
/// `full_implies` (gains: a gained `full` brings everything else), anything beside `full`.
fn collect(
    from: &Holdings<'_>,
    minus: &Holdings<'_>,
    user: i64,
    full_implies: bool,
    out: &mut BTreeMap<(String, Option<ObjectKey>), Vec<i64>>,
) -> bool {
    let (full, access) = (1u64 << standard_bit(Action::Full), 1u64 << standard_bit(Action::Access));
    let mut changed = false;
    for (&(module, object), held) in from {
        let mask_in = |side: &Holdings<'_>, object| side.get(&(module, object)).map_or(0, |h: &Held<'_>| h.over(held.actions));
        let mut new = held.mask & !mask_in(minus, object);
        if object.is_some() {
            // On an object, an action held globally on either side is no change of the object's (or one implied by
            // the global change listed beside it).
            new &= !(mask_in(from, None) | mask_in(minus, None));
        }
        if new == 0 {
            continue;
        }
        changed = true;
        let keep = if full_implies && new & full != 0 {
            full
        } else if new == access {
            access
        } else {
            new & !access
        };
        for (_, action) in held.actions.iter().enumerate().filter(|(b, _)| keep & (1 << b) != 0) {
            out.entry((format!("{module}.{action}"), object.cloned())).or_default().push(user);
        }
    }
    changed
}

fn entries(map: BTreeMap<(String, Option<ObjectKey>), Vec<i64>>) -> Vec<ImpactEntry> {
    map.into_iter().map(|((permission, object), users)| ImpactEntry { permission, object, users }).collect()
}

/// Action masks by (module, object), in one index's dense ids.
type Masks = HashMap<(u16, Option<u32>), u64>;

/// What each group or role passes down to its members as granted, without node restriction: the same for every
/// user reached through it, so found once per impact (thousands of users share their groups' ancestors).
type Passed = HashMap<Subj, Vec<((u16, Option<u32>), u64)>>;

impl Index {
    /// The modules in which each subject holds any grant, so a walk looks up only those.
    fn modules_by_subject(&self) -> HashMap<Subj, Vec<u16>> {
        let mut out: HashMap<Subj, Vec<u16>> = HashMap::default();
        for &(subject, module) in self.grants.keys() {
            out.entry(subject).or_default().push(module);
        }
        out
    }

    /// What `user` holds at `now`, as [`Holdings`]: grants as granted, node-restricted ones where their nodes
    /// meet them, and every action on each probed object.
    fn holdings(
        &self,
        user: i64,
        probes: &[ObjectKey],
        modules: &HashMap<Subj, Vec<u16>>,
        now: i64,
        passed: &mut Passed,
    ) -> Holdings<'_> {
        let Some(entry) = self.users.get(&user).map(|&u| &self.user_entries[u as usize]) else { return Holdings::default() };
        if !entry.is_active {
            return Holdings::default();
        }
        let mut masks = Masks::default();
        if entry.is_superuser {
            for m in 0..self.module_entries.len() as u16 {
                masks.insert((m, None), u64::MAX);
            }
        } else {
            self.granted(entry, modules, now, &mut masks, passed);
            for probe in probes {
                let Some(o) = self.object(&probe.0, &probe.1) else { continue };
                for (m, me) in self.module_entries.iter().enumerate() {
                    for (bit, action) in me.actions.iter().enumerate() {
                        if self.check(user, &me.id, action, Some((&probe.0, &probe.1)), now).allowed {
                            *masks.entry((m as u16, Some(o))).or_default() |= 1 << bit;
                        }
                    }
                }
            }
        }
        self.named(&masks)
    }

    /// Adds every unexpired grant reaching `entry`, as granted.
    fn granted(&self, entry: &UserEntry, modules: &HashMap<Subj, Vec<u16>>, now: i64, masks: &mut Masks, passed: &mut Passed) {
        let _ = self.walk(entry, now, &mut |route| {
            let mut add = |key: (u16, Option<u32>), mask: u64| *masks.entry(key).or_default() |= mask;
            match route.restriction {
                None if matches!(route.subject, Subj::User(_)) => self.each_grant(route.subject, modules, now, add),
                None => {
                    let list = passed.entry(route.subject).or_insert_with(|| {
                        let mut list = Vec::new();
                        self.each_grant(route.subject, modules, now, |key, mask| list.push((key, mask)));
                        list
                    });
                    list.iter().for_each(|&(key, mask)| add(key, mask));
                }
                Some(nodes) => self.each_grant(route.subject, modules, now, |(m, object), mask| match object {
                    None => {
                        for &n in nodes.iter().filter(|&&n| self.object_org[n as usize].is_none_or(|o| o == entry.org)) {
                            add((m, Some(n)), mask);
                        }
                    }
                    Some(o) if nodes.iter().any(|&n| self.reaches(o, n)) => add((m, Some(o)), mask),
                    Some(o) => {
                        for &n in nodes.iter().filter(|&&n| self.reaches(n, o)) {
                            add((m, Some(n)), mask);
                        }
                    }
                }),
            }
            ControlFlow::Continue(())
        });
    }

    /// Calls `f` with each unexpired grant of `subject` as ((module, object), mask).
    fn each_grant(&self, subject: Subj, modules: &HashMap<Subj, Vec<u16>>, now: i64, mut f: impl FnMut((u16, Option<u32>), u64)) {
        for &m in modules.get(&subject).into_iter().flatten() {
            let Some(set) = self.grants.get(&(subject, m)) else { continue };
            for &(mask, _) in set.global.iter().filter(|g| alive(g.1, now)) {
                f((m, None), mask);
            }
            for (&o, list) in &set.objects {
                for &(mask, _) in list.iter().filter(|g| alive(g.1, now)) {
                    f((m, Some(o)), mask);
                }
            }
        }
    }

    /// Masks as names, over active modules only: `full` stands for every action of its module, and any action
    /// implies `access`.
    fn named(&self, masks: &Masks) -> Holdings<'_> {
        let mut out = Holdings::default();
        for (&(m, object), &mask) in masks {
            let me = &self.module_entries[m as usize];
            if !me.is_active || mask == 0 {
                continue;
            }
            let all = u64::MAX >> (u64::BITS as usize - me.actions.len().clamp(1, u64::BITS as usize));
            let full = 1u64 << standard_bit(Action::Full);
            let mask = if mask & full != 0 { u64::MAX } else { mask | 1 << standard_bit(Action::Access) } & all;
            let key = (me.id.as_str(), object.map(|o| &self.object_keys[o as usize]));
            out.insert(key, Held { mask, actions: &me.actions });
        }
        out
    }
}
