//! Impact of a write before it is made: what each affected user holds on the index before the write and on the index
//! after it, diffed and aggregated per permission (API.md §8 and §11, `?dry_run=true`).

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

/// One user's holdings: action masks by (module, object) in the [`Common`] numbering, ascending, normalised so
/// `full` holds every action of its module and any action holds `access` (which every action implies). A module's
/// common actions are both sides' lists together, so they may pass the 64 of one side.
type Holdings = Vec<((u16, Option<u32>), u128)>;

/// Both indexes' modules, actions and objects in one numbering: the before index's ids, then what only the after
/// index knows. Users' holdings on the two sides then compare as integers; names are read only for what changed.
struct Common<'a> {
    /// Per module: its id and actions (the before index's list, then actions only the after index has).
    modules: Vec<(&'a str, Vec<&'a str>)>,
    /// Per module of the after index: its common id and, per action bit, the common bit.
    after_modules: Vec<(u16, Vec<u32>)>,
    /// Per object of the after index: its common id.
    after_objects: Vec<u32>,
    /// Every object's key, by common id.
    objects: Vec<&'a ObjectKey>,
}

impl<'a> Common<'a> {
    fn new(before: &'a Index, after: &'a Index) -> Self {
        let mut modules: Vec<(&str, Vec<&str>)> =
            before.module_entries.iter().map(|me| (me.id.as_str(), me.actions.iter().map(String::as_str).collect())).collect();
        let after_modules = after
            .module_entries
            .iter()
            .map(|me| {
                let m = match before.modules.get(&me.id) {
                    Some(&m) => m,
                    None => {
                        modules.push((me.id.as_str(), Vec::new()));
                        (modules.len() - 1) as u16
                    }
                };
                let actions = &mut modules[m as usize].1;
                let bits = me
                    .actions
                    .iter()
                    .map(|a| match actions.iter().position(|known| *known == a.as_str()) {
                        Some(bit) => bit as u32,
                        None => {
                            actions.push(a.as_str());
                            (actions.len() - 1) as u32
                        }
                    })
                    .collect();
                (m, bits)
            })
            .collect();
        let mut objects: Vec<&ObjectKey> = before.object_keys.iter().collect();
        let after_objects = after
            .object_keys
            .iter()
            .map(|key| {
                before.object(&key.0, &key.1).unwrap_or_else(|| {
                    objects.push(key);
                    (objects.len() - 1) as u32
                })
            })
            .collect();
        Self { modules, after_modules, after_objects, objects }
    }

    /// `mask` of the after index's module `m` in common bits.
    fn after_mask(&self, m: u16, mask: u64) -> u128 {
        let bits = &self.after_modules[m as usize].1;
        bits.iter().enumerate().filter(|&(b, _)| mask & (1 << b) != 0).fold(0, |out, (_, &to)| out | 1 << to)
    }
}

/// The impact of going from `before` to `after` for `users`. Grants on objects are compared as granted (a grant on a
/// parent is one entry, not one per descendant); `probes` are objects that moved or appeared, checked one by one
/// (where registered) so that what their new ancestors pass down shows too.
pub fn impact(before: &Index, after: &Index, users: &[i64], probes: &[ObjectKey], now: i64) -> Impact {
    let (modules_before, modules_after) = (before.modules_by_subject(), after.modules_by_subject());
    let common = Common::new(before, after);
    let sides =
        Sides { before, after, modules_before: &modules_before, modules_after: &modules_after, common: &common, probes, now };
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
    Impact { gained: common.entries(total.gained), lost: common.entries(total.lost), users_affected: total.affected }
}

/// Fewest users worth a thread of their own.
const PARALLEL_MIN: usize = 256;

/// Both indexes of an impact and what is shared while diffing users.
struct Sides<'a> {
    before: &'a Index,
    after: &'a Index,
    modules_before: &'a HashMap<Subj, Vec<u16>>,
    modules_after: &'a HashMap<Subj, Vec<u16>>,
    common: &'a Common<'a>,
    probes: &'a [ObjectKey],
    now: i64,
}

/// Users, in ascending order, by (module, object, action bit) in the [`Common`] numbering.
type Changed = HashMap<(u16, Option<u32>, u32), Vec<i64>>;

/// Gains and losses of some users, with how many users changed at all.
#[derive(Default)]
struct Diff {
    gained: Changed,
    lost: Changed,
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
        let (mut masks, mut was, mut is) = (Masks::default(), Holdings::new(), Holdings::new());
        for &user in users {
            self.before.masks(user, self.probes, self.modules_before, self.now, &mut passed_before, &mut masks);
            self.common.holdings(self.before, &masks, false, &mut was);
            self.after.masks(user, self.probes, self.modules_after, self.now, &mut passed_after, &mut masks);
            self.common.holdings(self.after, &masks, true, &mut is);
            let mut changed = collect(&is, &was, user, true, &mut out.gained);
            changed |= collect(&was, &is, user, false, &mut out.lost);
            out.affected += usize::from(changed);
        }
        out
    }
}

/// The mask held on `key` in `side` (0 when none).
fn mask_in(side: &Holdings, key: (u16, Option<u32>)) -> u128 {
    side.binary_search_by_key(&key, |&(k, _)| k).map_or(0, |i| side[i].1)
}

/// Records what `from` holds and `minus` does not under `user`; whether anything was recorded. An entry implied by
/// another recorded one of the same module and object is left out: `access` beside any other action and, when
/// `full_implies` (gains: a gained `full` brings everything else), anything beside `full`.
fn collect(from: &Holdings, minus: &Holdings, user: i64, full_implies: bool, out: &mut Changed) -> bool {
    let (full, access) = (1u128 << standard_bit(Action::Full), 1u128 << standard_bit(Action::Access));
    let mut changed = false;
    for &((module, object), mask) in from {
        let mut new = mask & !mask_in(minus, (module, object));
        if object.is_some() {
            // On an object, an action held globally on either side is no change of the object's (or one implied by
            // the global change listed beside it).
            new &= !(mask_in(from, (module, None)) | mask_in(minus, (module, None)));
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
        for bit in (0..u128::BITS).filter(|b| keep & (1 << b) != 0) {
            out.entry((module, object, bit)).or_default().push(user);
        }
    }
    changed
}

impl Common<'_> {
    /// `masks` of `side` (the after index when `after`) as [`Holdings`] in `out`, over active modules only: `full`
    /// stands for every action of its module, and any action implies `access`.
    fn holdings(&self, side: &Index, masks: &Masks, after: bool, out: &mut Holdings) {
        out.clear();
        for (&(m, object), &mask) in masks {
            let me = &side.module_entries[m as usize];
            if !me.is_active || mask == 0 {
                continue;
            }
            let all = u64::MAX >> (u64::BITS as usize - me.actions.len().clamp(1, u64::BITS as usize));
            let full = 1u64 << standard_bit(Action::Full);
            let mask = if mask & full != 0 { u64::MAX } else { mask | 1 << standard_bit(Action::Access) } & all;
            let key = match after {
                false => ((m, object), u128::from(mask)),
                true => {
                    let object = object.map(|o| self.after_objects[o as usize]);
                    ((self.after_modules[m as usize].0, object), self.after_mask(m, mask))
                }
            };
            out.push(key);
        }
        out.sort_unstable_by_key(|&(key, _)| key);
    }

    /// Changed users as impact entries, by permission then object.
    fn entries(&self, changed: Changed) -> Vec<ImpactEntry> {
        let mut out: Vec<ImpactEntry> = changed
            .into_iter()
            .map(|((m, object, bit), users)| {
                let (module, actions) = &self.modules[m as usize];
                ImpactEntry {
                    permission: format!("{module}.{}", actions[bit as usize]),
                    object: object.map(|o| self.objects[o as usize].clone()),
                    users,
                }
            })
            .collect();
        out.sort_unstable_by(|a, b| (&a.permission, &a.object).cmp(&(&b.permission, &b.object)));
        out
    }
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

    /// What `user` holds at `now`, as action masks in `masks` (this index's ids): grants as granted,
    /// node-restricted ones where their nodes meet them, and every action on each probed object.
    fn masks(
        &self,
        user: i64,
        probes: &[ObjectKey],
        modules: &HashMap<Subj, Vec<u16>>,
        now: i64,
        passed: &mut Passed,
        masks: &mut Masks,
    ) {
        masks.clear();
        let Some(entry) = self.users.get(&user).map(|&u| &self.user_entries[u as usize]) else { return };
        if !entry.is_active {
            return;
        }
        if entry.is_superuser {
            for m in 0..self.module_entries.len() as u16 {
                masks.insert((m, None), u64::MAX);
            }
            return;
        }
        self.granted(entry, modules, now, masks, passed);
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
}
