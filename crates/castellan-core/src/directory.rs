//! An in-memory view of the group tree and memberships, so that "who is in this group or any group below it" is
//! answered with counts and pages in microseconds at a million users, without recursive SQL on the request path.

use std::collections::HashMap;

/// The group forest and memberships, kept current by applying each change.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    parent: HashMap<i64, Option<i64>>,
    children: HashMap<i64, Vec<i64>>,
    members: HashMap<i64, Vec<(i64, Option<i64>)>>,
    /// Each user's memberships as (group, expires_at): a user's groups are found without scanning any group's members.
    groups_of: HashMap<i64, Vec<(i64, Option<i64>)>>,
}

/// A set of user keys as a bitset over key values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSet {
    words: Vec<u64>,
}

impl UserSet {
    /// Adds a user key (non-positive keys are ignored).
    pub fn insert(&mut self, pk: i64) {
        let Ok(i) = usize::try_from(pk) else { return };
        let (w, b) = (i / 64, i % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    /// Whether the key is in the set.
    pub fn contains(&self, pk: i64) -> bool {
        usize::try_from(pk).ok().is_some_and(|i| self.words.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0))
    }

    /// Keeps only keys also in `other`.
    pub fn intersect(&mut self, other: &UserSet) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
    }

    /// Every key, ascending.
    pub fn keys(&self) -> impl Iterator<Item = i64> + '_ {
        self.words
            .iter()
            .enumerate()
            .filter(|(_, word)| **word != 0)
            .flat_map(|(i, &word)| (0..64).filter(move |b| word & (1 << b) != 0).map(move |b| (i * 64 + b) as i64))
    }

    /// Number of keys.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Up to `limit` keys in ascending order after skipping `offset`.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<i64> {
        let mut skip = offset;
        let mut out = Vec::with_capacity(limit.min(1024));
        for (i, &word) in self.words.iter().enumerate() {
            let ones = word.count_ones() as usize;
            if skip >= ones {
                skip -= ones;
                continue;
            }
            let mut w = word;
            while w != 0 && out.len() < limit {
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                if skip > 0 {
                    skip -= 1;
                } else {
                    out.push((i * 64 + b) as i64);
                }
            }
            if out.len() == limit {
                break;
            }
        }
        out
    }
}

impl Directory {
    /// Builds the view from (group, parent) pairs and (user, group, expires_at µs) memberships.
    pub fn build(groups: &[(i64, Option<i64>)], memberships: &[(i64, i64, Option<i64>)]) -> Self {
        let mut d = Directory::default();
        for &(pk, parent) in groups {
            d.set_group(pk, parent);
        }
        for &(user, group, expires_at) in memberships {
            d.members.entry(group).or_default().push((user, expires_at));
            d.groups_of.entry(user).or_default().push((group, expires_at));
        }
        d
    }

    /// Creates or moves a group.
    pub fn set_group(&mut self, pk: i64, parent: Option<i64>) {
        if let Some(Some(old)) = self.parent.insert(pk, parent)
            && let Some(siblings) = self.children.get_mut(&old)
        {
            siblings.retain(|c| *c != pk);
        }
        if let Some(p) = parent {
            let siblings = self.children.entry(p).or_default();
            if !siblings.contains(&pk) {
                siblings.push(pk);
            }
        }
    }

    /// Forgets a group and its memberships (children are forgotten by their own removal).
    pub fn remove_group(&mut self, pk: i64) {
        self.set_group(pk, None);
        self.parent.remove(&pk);
        self.children.remove(&pk);
        for (user, _) in self.members.remove(&pk).unwrap_or_default() {
            if let Some(groups) = self.groups_of.get_mut(&user) {
                groups.retain(|(g, _)| *g != pk);
            }
        }
    }

    /// Replaces all memberships of a user (`[]` when the user is gone).
    pub fn set_user_memberships(&mut self, user: i64, memberships: &[(i64, Option<i64>)]) {
        for (group, _) in self.groups_of.remove(&user).unwrap_or_default() {
            if let Some(members) = self.members.get_mut(&group) {
                members.retain(|(u, _)| *u != user);
            }
        }
        for &(group, expires_at) in memberships {
            self.members.entry(group).or_default().push((user, expires_at));
            self.groups_of.entry(user).or_default().push((group, expires_at));
        }
    }

    /// Sets one membership (`Some(expires_at)`, `None` inside for no expiry) or removes it (`None`).
    pub fn set_membership(&mut self, user: i64, group: i64, membership: Option<Option<i64>>) {
        // The user's own list says whether the membership exists: a new member of a large group costs no scan of it.
        let groups = self.groups_of.entry(user).or_default();
        let known = groups.iter().any(|(g, _)| *g == group);
        let members = self.members.entry(group).or_default();
        match (membership, known) {
            (Some(expires_at), true) => {
                members.iter_mut().filter(|(u, _)| *u == user).for_each(|m| m.1 = expires_at);
                groups.iter_mut().filter(|(g, _)| *g == group).for_each(|m| m.1 = expires_at);
            }
            (Some(expires_at), false) => {
                members.push((user, expires_at));
                groups.push((group, expires_at));
            }
            (None, true) => {
                members.retain(|(u, _)| *u != user);
                groups.retain(|(g, _)| *g != group);
            }
            (None, false) => {}
        }
    }

    /// Whether `group` is `ancestor` or lies below it (a walk up `group`'s parents; a cycle ends it).
    pub fn is_within(&self, group: i64, ancestor: i64) -> bool {
        let mut at = Some(group);
        for _ in 0..=self.parent.len() {
            match at {
                Some(g) if g == ancestor => return true,
                Some(g) => at = self.parent.get(&g).copied().flatten(),
                None => return false,
            }
        }
        false
    }

    /// The group and all groups below it.
    pub fn subtree(&self, group: i64) -> Vec<i64> {
        let mut out = vec![group];
        let mut i = 0;
        while i < out.len() {
            if let Some(children) = self.children.get(&out[i]) {
                out.extend(children.iter().copied());
            }
            i += 1;
            if out.len() > self.parent.len() + 1 {
                break;
            }
        }
        out
    }

    /// The group and all groups below it, each after every group below it: the order they can be deleted in.
    pub fn subtree_bottom_up(&self, group: i64) -> Vec<i64> {
        let mut subtree = self.subtree(group);
        subtree.reverse();
        subtree
    }

    /// Users with an unexpired membership of any of `groups` (or, when `recursive`, of any group below them).
    pub fn members(&self, groups: &[i64], recursive: bool, now: i64) -> UserSet {
        let mut set = UserSet::default();
        let mut add = |g: i64| {
            for &(user, expires_at) in self.members.get(&g).map(Vec::as_slice).unwrap_or_default() {
                if expires_at.is_none_or(|e| e > now) {
                    set.insert(user);
                }
            }
        };
        for &g in groups {
            if recursive {
                self.subtree(g).into_iter().for_each(&mut add);
            } else {
                add(g);
            }
        }
        set
    }

    /// The unexpired direct members of `group` that `keep` accepts: the first `most` of them ascending, and how many
    /// there are. What a membership write answers, without a set sized by the largest user key.
    pub fn direct_members(&self, group: i64, now: i64, most: usize, keep: impl FnMut(&i64) -> bool) -> (Vec<i64>, usize) {
        let listed = self.members.get(&group).map(Vec::as_slice).unwrap_or_default();
        // A group's list holds each member once; its order is the order of the writes.
        let mut out: Vec<i64> = listed
            .iter()
            .filter(|(_, expires_at)| expires_at.is_none_or(|e| e > now))
            .map(|&(user, _)| user)
            .filter(keep)
            .collect();
        let count = out.len();
        if count > most {
            // Only the first `most` are answered: picking them costs a pass, where sorting all cost a large group's
            // writes more than the write itself.
            out.select_nth_unstable(most);
            out.truncate(most);
        }
        out.sort_unstable();
        (out, count)
    }

    /// The groups `viewer` sees (seed 004): the viewer's unexpired groups and every group below them, ascending.
    pub fn visible_groups(&self, viewer: i64, now: i64) -> Vec<i64> {
        let mut out: Vec<i64> = self.active_groups_of(viewer, now).into_iter().flat_map(|g| self.subtree(g)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether `viewer` sees `group`: one of the viewer's unexpired groups or a group below one.
    pub fn sees_group(&self, viewer: i64, group: i64, now: i64) -> bool {
        !self.seen_groups(viewer, &[group], now).is_empty()
    }

    /// Whether the group exists.
    pub fn has_group(&self, group: i64) -> bool {
        self.parent.contains_key(&group)
    }

    /// Which of `groups` the viewer sees, in their order.
    pub fn seen_groups(&self, viewer: i64, groups: &[i64], now: i64) -> Vec<i64> {
        let mine = self.active_groups_of(viewer, now);
        groups.iter().copied().filter(|&g| self.below_any(g, &mine)).collect()
    }

    /// Whether `viewer` sees `user`: themselves, or an unexpired member of a group the viewer sees.
    pub fn sees_user(&self, viewer: i64, user: i64, now: i64) -> bool {
        if viewer == user {
            return true;
        }
        let mine = self.active_groups_of(viewer, now);
        self.active_groups_of(user, now).into_iter().any(|g| self.below_any(g, &mine))
    }

    /// Whether `group` is one of `groups` or below one.
    fn below_any(&self, group: i64, groups: &[i64]) -> bool {
        self.ancestry(group).any(|a| groups.contains(&a))
    }

    /// The group (if it exists) and its ancestors up to the root, stopping short of a cycle.
    fn ancestry(&self, group: i64) -> impl Iterator<Item = i64> + '_ {
        let first = self.parent.contains_key(&group).then_some(group);
        std::iter::successors(first, |g| self.parent.get(g).copied().flatten()).take(self.parent.len())
    }

    /// Groups a user is directly in (expired ones included).
    pub fn groups_of(&self, user: i64) -> Vec<i64> {
        self.groups_of.get(&user).into_iter().flatten().map(|m| m.0).collect()
    }

    /// Groups a user is directly and currently (unexpired) in.
    pub fn active_groups_of(&self, user: i64, now: i64) -> Vec<i64> {
        let memberships = self.groups_of.get(&user).into_iter().flatten();
        memberships.filter(|(_, e)| e.is_none_or(|e| e > now)).map(|m| m.0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Directory {
        // 1 ⊃ 2 ⊃ 3, 1 ⊃ 4
        Directory::build(
            &[(1, None), (2, Some(1)), (3, Some(2)), (4, Some(1))],
            &[(10, 2, None), (11, 3, None), (12, 4, Some(50)), (10, 3, None)],
        )
    }

    #[test]
    fn a_group_is_within_itself_and_its_ancestors_only() {
        let d = sample();
        assert!(d.is_within(3, 3) && d.is_within(3, 2) && d.is_within(3, 1));
        assert!(!d.is_within(2, 3), "not within a descendant");
        assert!(!d.is_within(4, 2), "not within a sibling's subtree");
        assert!(!d.is_within(99, 1), "an unknown group is within nothing");
        let order = d.subtree_bottom_up(1);
        let at = |g: i64| order.iter().position(|x| *x == g).unwrap();
        assert_eq!(order.len(), 4);
        assert!(at(3) < at(2) && at(2) < at(1) && at(4) < at(1), "below before above: {order:?}");
    }

    #[test]
    fn recursive_members_and_expiry() {
        let d = sample();
        assert_eq!(d.members(&[1], true, 0).page(0, 10), vec![10, 11, 12]);
        assert_eq!(d.members(&[1], true, 50).page(0, 10), vec![10, 11]);
        assert_eq!(d.members(&[1], false, 0).count(), 0);
        assert_eq!(d.members(&[2], true, 0).page(0, 10), vec![10, 11]);
        let all = |_: &i64| true;
        assert_eq!(d.direct_members(3, 0, 10, all), (vec![10, 11], 2), "ascending, whatever the order of the memberships");
        assert_eq!(d.direct_members(3, 0, 1, all), (vec![10], 2), "the first ones, and how many there are");
        assert_eq!(d.direct_members(3, 0, 10, |pk| *pk != 10), (vec![11], 1), "only those kept");
        assert_eq!(
            (d.direct_members(4, 0, 10, all), d.direct_members(4, 50, 10, all)),
            ((vec![12], 1), (vec![], 0)),
            "expired members are gone"
        );
        assert!(d.direct_members(1, 0, 10, all).1 == 0 && d.direct_members(99, 0, 10, all).1 == 0);
        assert_eq!(d.active_groups_of(12, 0), vec![4]);
        assert!(d.active_groups_of(12, 50).is_empty());
        assert_eq!(d.visible_groups(10, 0), vec![2, 3], "a group and everything below it, once");
        assert_eq!(d.visible_groups(12, 0), vec![4]);
        assert!(d.visible_groups(12, 50).is_empty(), "an expired membership shows nothing");
        assert!(d.sees_group(10, 3, 0) && d.sees_group(10, 2, 0) && !d.sees_group(10, 1, 0) && !d.sees_group(10, 4, 0));
        assert!(!d.sees_group(12, 4, 50) && !d.sees_group(10, 99, 0));
        assert!(d.sees_user(10, 11, 0), "a member of a group below the viewer's");
        assert!(d.sees_user(12, 12, 50), "everyone sees themselves");
        assert!(d.sees_user(11, 10, 0), "10 is also in 3");
        assert!(!d.sees_user(11, 12, 0) && !d.sees_user(10, 12, 0) && !d.sees_user(12, 13, 0));
    }

    #[test]
    fn moves_and_removals() {
        let mut d = sample();
        d.set_group(3, Some(4));
        assert_eq!(d.members(&[2], true, 0).page(0, 10), vec![10]);
        assert_eq!(d.members(&[4], true, 0).page(0, 10), vec![10, 11, 12]);
        d.remove_group(4);
        assert_eq!(d.members(&[1], true, 0).page(0, 10), vec![10]);
        d.set_user_memberships(10, &[(1, None)]);
        assert_eq!(d.members(&[1], false, 0).page(0, 10), vec![10]);
        assert_eq!(d.groups_of(10), vec![1]);
        d.set_membership(10, 1, None);
        assert_eq!(d.members(&[1], true, 0).count(), 0);
        assert!(d.groups_of(10).is_empty());
        d.set_membership(11, 1, Some(Some(40)));
        d.set_membership(11, 1, Some(Some(60)));
        assert_eq!(d.members(&[1], false, 50).page(0, 10), vec![11], "re-dated, not duplicated");
        assert_eq!(d.groups_of(11).iter().filter(|g| **g == 1).count(), 1);
    }

    #[test]
    fn paging_a_user_set() {
        let mut s = UserSet::default();
        for pk in (1..=1000).step_by(3) {
            s.insert(pk);
        }
        assert_eq!(s.count(), 334);
        assert_eq!(s.page(0, 3), vec![1, 4, 7]);
        assert_eq!(s.page(333, 10), vec![1000]);
        assert_eq!(s.page(334, 10), Vec::<i64>::new());
        assert_eq!(s.page(100, 2), vec![301, 304]);
        let mut t = UserSet::default();
        t.insert(4);
        t.insert(5);
        s.intersect(&t);
        assert_eq!(s.page(0, 10), vec![4]);
        assert!(s.contains(4) && !s.contains(5));
    }
}
