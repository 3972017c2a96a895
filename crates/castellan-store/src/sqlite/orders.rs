//! Orders: every user's sort keys in memory, and each sortable column as a sequence of users in its order, kept in
//! step with the writes this store commits. Any page of any ordering of the whole list, also filtered by
//! organisation, flags or a short prefix search, is then found by position or by one pass over dense arrays, never
//! by reading the rows before it or sorting the list: ties of an ordering's first key are the only rows sorted, and
//! only those of the groups of ties the page touches.
//!
//! The orders are loaded once, on the first list that can use them, from a read snapshot on a blocking thread, while
//! the writes committed meanwhile are kept aside and applied once the load is done. They hold the revision they
//! reflect: a revision they did not see (written by another process) drops them, and a page is only answered from
//! orders of the revision the page reads.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use castellan_core::directory::UserSet;
use castellan_core::model::User;
use castellan_core::validate::username_key;
use parking_lot::{Mutex, RwLock, RwLockUpgradableReadGuard};
use rusqlite::Connection;

use crate::time_util::to_micros;
use crate::{Result, Revision, SortValue, UserCursor, UserOrder, UserQuery};

/// Users per chunk of a sequence when built; a chunk splits at twice this.
const CHUNK: usize = 1_024;

/// Largest user key the orders index by position; a store with larger keys lists through SQL.
const MOST_PK: i64 = 1 << 27;

/// Largest group of ties of a key that a page sorts by the keys after it; a larger group is read in the next
/// key's order instead (a pass over that sequence, testing which users are in the group), so that a key every
/// user shares (a bulk import's join time) costs a pass, not a sort of the whole list.
const SORT_MOST: usize = 4_096;

/// Filtered lists of at most this many users are sorted whole rather than found by walking an ordering: a walk
/// passes every user before the page, however few of them the filter keeps.
const SORT_KEPT_MOST: usize = 4_096;

/// Most orderings kept whole (each of several keys, or of a key its pk tiebreak runs against): each costs four
/// bytes a user and a little work on every user write.
const MOST_COMPOSITES: usize = 16;

/// Shortest search the orders answer from their prefix ranges; longer ones go through the trigram index.
const SEARCH_BELOW: usize = super::TRIGRAM;

/// The columns kept in order: each as a sequence of users by (value, pk) ascending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    Username = 0,
    Email = 1,
    FirstName = 2,
    LastName = 3,
    DateJoined = 4,
    Id = 5,
}

const BASES: [Base; 6] = [Base::Username, Base::Email, Base::FirstName, Base::LastName, Base::DateJoined, Base::Id];

impl Base {
    /// The kept column an ordering key sorts by; `None` for the last login, which changes without a revision and
    /// is listed through SQL.
    fn of(order: UserOrder) -> Option<Self> {
        Some(match order {
            UserOrder::Id => Self::Id,
            UserOrder::Username => Self::Username,
            UserOrder::Email => Self::Email,
            UserOrder::FirstName => Self::FirstName,
            UserOrder::LastName => Self::LastName,
            UserOrder::DateJoined => Self::DateJoined,
            UserOrder::LastLogin => return None,
        })
    }
}

/// A user row changed by a write: its state before and after (`None` when created or deleted).
pub(super) struct Moved {
    /// Before the write.
    pub before: Option<User>,
    /// After the write.
    pub after: Option<User>,
}

/// One user's keys as the store compares them (usernames folded, emails lower-cased, times in microseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Row {
    pub pk: i64,
    pub texts: [String; 4],
    pub date_joined: i64,
    pub org: i64,
    pub flags: u8,
}

const PRESENT: u8 = 1;
const ACTIVE: u8 = 2;
const STAFF: u8 = 4;
const SUPERUSER: u8 = 8;

impl Row {
    /// The keys of `user`.
    fn of(user: &User) -> Self {
        let flags = PRESENT
            | if user.is_active { ACTIVE } else { 0 }
            | if user.is_staff { STAFF } else { 0 }
            | if user.is_superuser { SUPERUSER } else { 0 };
        Self {
            pk: user.pk,
            texts: [username_key(&user.username), user.email.to_lowercase(), user.first_name.clone(), user.last_name.clone()],
            date_joined: to_micros(user.date_joined),
            org: user.org,
            flags,
        }
    }

    /// Reads every user's keys from `c` as the list queries compare them.
    pub fn load(c: &Connection) -> Result<Vec<Self>> {
        let mut stmt = c.prepare(
            "SELECT pk, username_lower, email_lower, first_name, last_name, date_joined, org, is_active, is_staff, is_superuser FROM users",
        )?;
        let rows = stmt.query_map([], |r| {
            let flag = |i: usize, bit: u8| r.get::<_, bool>(i).map(|on| if on { bit } else { 0 });
            Ok(Self {
                pk: r.get(0)?,
                texts: [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?],
                date_joined: r.get(5)?,
                org: r.get(6)?,
                flags: PRESENT | flag(7, ACTIVE)? | flag(8, STAFF)? | flag(9, SUPERUSER)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A sorted sequence of user keys in chunks, with the rank of each chunk's first entry, so that the n-th entry is
/// found by a binary search and an insertion moves at most one chunk.
#[derive(Debug, Default)]
struct Sequence {
    chunks: Vec<Vec<u32>>,
    starts: Vec<usize>,
}

impl Sequence {
    fn from_sorted(all: &[u32]) -> Self {
        let chunks: Vec<Vec<u32>> = all.chunks(CHUNK).map(<[u32]>::to_vec).collect();
        let mut s = Self { chunks, starts: Vec::new() };
        s.restart(0);
        s
    }

    fn len(&self) -> usize {
        match (self.starts.last(), self.chunks.last()) {
            (Some(start), Some(chunk)) => start + chunk.len(),
            _ => 0,
        }
    }

    /// Recomputes the starts of the chunks from `from` on.
    fn restart(&mut self, from: usize) {
        self.starts.truncate(from);
        let mut at = match from.checked_sub(1) {
            Some(prev) => self.starts[prev] + self.chunks[prev].len(),
            None => 0,
        };
        for chunk in &self.chunks[from..] {
            self.starts.push(at);
            at += chunk.len();
        }
    }

    /// The entry at `rank`.
    fn get(&self, rank: usize) -> u32 {
        let i = self.starts.partition_point(|s| *s <= rank) - 1;
        self.chunks[i][rank - self.starts[i]]
    }

    /// How many leading entries are `before` (which must hold for a prefix of the sequence and no further).
    fn rank_where(&self, before: impl Fn(u32) -> bool) -> usize {
        let i = self.chunks.partition_point(|c| c.last().is_some_and(|e| before(*e)));
        match self.chunks.get(i) {
            Some(chunk) => self.starts[i] + chunk.partition_point(|e| before(*e)),
            None => self.len(),
        }
    }

    /// Where `rank` falls: its chunk and the place in it (the end of the last chunk for the length).
    fn place(&self, rank: usize) -> (usize, usize) {
        let i = self.starts.partition_point(|s| *s <= rank).saturating_sub(1);
        (i, rank - self.starts.get(i).copied().unwrap_or(0))
    }

    fn insert(&mut self, key: u32, before: impl Fn(u32) -> bool) {
        let rank = self.rank_where(before);
        if self.chunks.is_empty() {
            self.chunks.push(Vec::new());
        }
        let (i, at) = self.place(rank);
        self.chunks[i].insert(at, key);
        if self.chunks[i].len() >= 2 * CHUNK {
            let tail = self.chunks[i].split_off(CHUNK);
            self.chunks.insert(i + 1, tail);
        }
        self.restart(i);
    }

    fn remove(&mut self, key: u32, before: impl Fn(u32) -> bool) {
        let rank = self.rank_where(before);
        if rank >= self.len() {
            return;
        }
        let (i, at) = self.place(rank);
        if self.chunks[i][at] != key {
            return;
        }
        self.chunks[i].remove(at);
        if self.chunks[i].is_empty() {
            self.chunks.remove(i);
        }
        self.restart(i.min(self.chunks.len()));
    }

    /// The entries of ranks `from..to`, as the slices of the chunks holding them.
    fn slices(&self, from: usize, to: usize) -> impl Iterator<Item = &[u32]> + '_ {
        let (first, _) = self.place(from);
        self.chunks.iter().zip(&self.starts).skip(first).map_while(move |(chunk, start)| {
            (*start < to).then(|| &chunk[from.saturating_sub(*start).min(chunk.len())..(to - start).min(chunk.len())])
        })
    }

    /// The entries from `rank` on.
    fn forward(&self, rank: usize) -> impl Iterator<Item = u32> + '_ {
        let (i, at) = self.place(rank);
        let first = self.chunks.get(i).map(|c| &c[at.min(c.len())..]).unwrap_or_default();
        first.iter().chain(self.chunks.iter().skip(i + 1).flatten()).copied()
    }

    /// The entries before `end`, last first.
    fn backward(&self, end: usize) -> impl Iterator<Item = u32> + '_ {
        let (i, at) = self.place(end);
        let first = self.chunks.get(i).map(|c| &c[..at.min(c.len())]).unwrap_or_default();
        first.iter().rev().chain(self.chunks[..i.min(self.chunks.len())].iter().rev().flat_map(|c| c.iter().rev())).copied()
    }
}

/// A text column: each user's value as an interned id (equal values, equal ids) and the values themselves.
#[derive(Debug, Default)]
struct Texts {
    ids: Vec<u32>,
    values: Vec<Arc<str>>,
    lookup: HashMap<Arc<str>, u32>,
}

impl Texts {
    fn set(&mut self, pk: usize, value: &str) {
        let id = match self.lookup.get(value) {
            Some(id) => *id,
            None => {
                let id = self.values.len() as u32;
                let value: Arc<str> = value.into();
                self.values.push(value.clone());
                self.lookup.insert(value, id);
                id
            }
        };
        self.ids[pk] = id;
    }

    fn of(&self, pk: u32) -> &[u8] {
        self.values[self.ids[pk as usize] as usize].as_bytes()
    }
}

/// Every user's keys, and each kept column in order, at one revision.
#[derive(Debug, Default)]
struct Index {
    revision: Revision,
    users: usize,
    flags: Vec<u8>,
    orgs: Vec<i64>,
    joined: Vec<i64>,
    texts: [Texts; 4],
    sequences: [Sequence; 6],
    /// Largest group of ties sorted in place; a larger one is read through the next key's sequence.
    sort_most: usize,
    /// Largest filtered list sorted whole.
    sort_kept_most: usize,
    /// Orderings kept whole, built on first use.
    composites: Vec<Composite>,
}

/// An ordering kept whole: its keys, the direction of its pk tiebreak, and every user in that order.
#[derive(Debug)]
struct Composite {
    keys: Vec<(Base, bool)>,
    pk_desc: bool,
    seq: Sequence,
}

/// Whether an ordering is walked through a kept whole ordering rather than its first key's sequence: several keys,
/// or one whose ties the pk breaks the other way.
fn needs_composite(keys: &[(Base, bool)], pk_desc: bool) -> bool {
    match keys {
        [(Base::Id, _)] => false,
        [(_, desc)] => *desc != pk_desc,
        _ => true,
    }
}

/// The keys marked in a bitset, ascending.
fn marked(bits: &[u64]) -> impl Iterator<Item = u32> + '_ {
    bits.iter()
        .enumerate()
        .filter(|(_, word)| **word != 0)
        .flat_map(|(i, word)| (0..64).filter(move |b| word & (1 << b) != 0).map(move |b| (i * 64 + b) as u32))
}

/// A page in pk order read straight from the bitset of the users kept: whole words are skipped by their popcount,
/// so a deep page of a filtered list costs a pass over the words, not over the users.
fn page_by_bits(bits: &[u64], query: &UserQuery, walk: &Walk<'_>, limit: usize, out: &mut Vec<u32>) -> Option<()> {
    let Some(top) = (bits.len() * 64).checked_sub(1) else { return Some(()) };
    let (descending, from, mut skip) = match walk.cursor {
        Some(cursor) => {
            let descending = walk.pk_desc != cursor.backwards;
            let from = if descending { cursor.pk - 1 } else { cursor.pk + 1 };
            let Ok(from) = usize::try_from(from) else { return Some(()) };
            (descending, from, 0)
        }
        None => (walk.pk_desc, if walk.pk_desc { top } else { 0 }, usize::try_from(query.offset).ok()?),
    };
    if from > top {
        if !descending {
            return Some(());
        }
        return page_by_bits_from(bits, top, true, &mut skip, limit, out);
    }
    page_by_bits_from(bits, from, descending, &mut skip, limit, out)
}

/// Reads kept users from key `from` (included) up or down, skipping `skip` of them, until `out` holds `limit`.
fn page_by_bits_from(
    bits: &[u64],
    from: usize,
    descending: bool,
    skip: &mut usize,
    limit: usize,
    out: &mut Vec<u32>,
) -> Option<()> {
    let mut i = from / 64;
    let at = from % 64;
    let mut word = if descending { bits[i] & (u64::MAX >> (63 - at)) } else { bits[i] & (u64::MAX << at) };
    loop {
        let ones = word.count_ones() as usize;
        if ones <= *skip {
            *skip -= ones;
        } else {
            while word != 0 {
                let b = if descending { 63 - word.leading_zeros() } else { word.trailing_zeros() };
                word &= !(1 << b);
                if *skip > 0 {
                    *skip -= 1;
                } else {
                    out.push((i * 64) as u32 + b);
                    if out.len() >= limit {
                        return Some(());
                    }
                }
            }
        }
        let next = if descending { i.checked_sub(1) } else { Some(i + 1) };
        match next.and_then(|n| bits.get(n).map(|w| (n, *w))) {
            Some((n, w)) => (i, word) = (n, w),
            None => return Some(()),
        }
    }
}

/// What a list asks of the users, as the orders test it.
struct Wanted<'a> {
    orgs: &'a [i64],
    within: Option<&'a UserSet>,
    flags_on: u8,
    flags_off: u8,
    search: Option<Vec<u64>>,
    /// Every user the filter keeps, as a bitset over keys ([`Index::settle`]); `None` when nothing is filtered.
    kept: Option<Vec<u64>>,
}

impl Wanted<'_> {
    /// Whether the filter keeps user `pk` (one bit read, once settled).
    fn keeps(&self, index: &Index, pk: u32) -> bool {
        let i = pk as usize;
        match &self.kept {
            Some(bits) => bits.get(i / 64).is_some_and(|word| word & (1 << (i % 64)) != 0),
            None => index.flags.get(i).is_some_and(|flags| flags & PRESENT != 0),
        }
    }

    /// Whether the filter keeps user `pk`, from each of its parts.
    fn tests(&self, index: &Index, pk: u32) -> bool {
        let i = pk as usize;
        let Some(&flags) = index.flags.get(i) else { return false };
        flags & self.flags_on == self.flags_on
            && flags & self.flags_off == 0
            && (self.orgs.is_empty() || self.orgs.contains(&index.orgs[i]))
            && self.within.is_none_or(|set| set.contains(i64::from(pk)))
            && self.search.as_ref().is_none_or(|bits| bits[i / 64] & (1 << (i % 64)) != 0)
    }

    fn filters(&self) -> bool {
        self.flags_on != PRESENT || self.flags_off != 0 || !self.orgs.is_empty() || self.within.is_some() || self.search.is_some()
    }
}

/// Where a page's walk starts: at rank `from` of the first key's sequence (the edge of a group of ties), running
/// against the sequence or along it, reading the order backwards (before a cursor) or not, skipping `skip` users
/// the filter keeps.
struct Start {
    from: usize,
    against: bool,
    backwards: bool,
    skip: usize,
}

/// How a page walks an ordering: its keys (each with its direction; the pk alone when none is given), the direction
/// of the pk tiebreak, the filter, and the cursor the page reads from.
struct Walk<'a> {
    keys: Vec<(Base, bool)>,
    pk_desc: bool,
    wanted: Wanted<'a>,
    cursor: Option<&'a UserCursor>,
}

impl Index {
    fn build(rows: Vec<Row>, revision: Revision) -> Option<Self> {
        let top = rows.iter().map(|r| r.pk).max().unwrap_or(0);
        if !(0..MOST_PK).contains(&top) || rows.iter().any(|r| r.pk < 1) {
            return None;
        }
        let mut index = Self { revision, sort_most: SORT_MOST, sort_kept_most: SORT_KEPT_MOST, ..Default::default() };
        index.grow(top as usize);
        let mut keys: Vec<u32> = Vec::with_capacity(rows.len());
        for row in &rows {
            index.store(row);
            keys.push(row.pk as u32);
        }
        index.users = rows.len();
        drop(rows);
        for base in BASES {
            let mut sorted = keys.clone();
            sorted.sort_unstable_by(|a, b| index.compare(base, *a, *b));
            index.sequences[base as usize] = Sequence::from_sorted(&sorted);
        }
        Some(index)
    }

    fn grow(&mut self, top: usize) {
        if self.flags.len() <= top {
            let len = top + 1;
            self.flags.resize(len, 0);
            self.orgs.resize(len, 0);
            self.joined.resize(len, 0);
            for texts in &mut self.texts {
                texts.ids.resize(len, 0);
            }
        }
    }

    fn store(&mut self, row: &Row) {
        let i = row.pk as usize;
        self.flags[i] = row.flags;
        self.orgs[i] = row.org;
        self.joined[i] = row.date_joined;
        for (texts, value) in self.texts.iter_mut().zip(&row.texts) {
            texts.set(i, value);
        }
    }

    /// Two users in `base`'s order: by value, then by pk.
    fn compare(&self, base: Base, a: u32, b: u32) -> Ordering {
        self.compare_values(base, a, b).then(a.cmp(&b))
    }

    fn compare_values(&self, base: Base, a: u32, b: u32) -> Ordering {
        match base {
            Base::Id => a.cmp(&b),
            Base::DateJoined => self.joined[a as usize].cmp(&self.joined[b as usize]),
            text => {
                let texts = &self.texts[text as usize];
                if texts.ids[a as usize] == texts.ids[b as usize] { Ordering::Equal } else { texts.of(a).cmp(texts.of(b)) }
            }
        }
    }

    /// A user's value of `base` against a cursor's.
    fn compare_to(&self, base: Base, a: u32, value: &SortValue) -> Ordering {
        match (base, value) {
            (Base::Id, SortValue::Int(v)) => i64::from(a).cmp(v),
            (Base::DateJoined, SortValue::Int(v)) => self.joined[a as usize].cmp(v),
            (Base::Id | Base::DateJoined, _) => Ordering::Greater,
            (text, SortValue::Text(v)) => self.texts[text as usize].of(a).cmp(v.as_bytes()),
            (_, SortValue::Int(_) | SortValue::Null) => Ordering::Greater,
        }
    }

    /// Puts user `pk` into every sequence, or takes it out, by the keys stored for it.
    fn reseat(&mut self, pk: u32, insert: bool) {
        for base in BASES {
            let mut seq = std::mem::take(&mut self.sequences[base as usize]);
            let before = |e: u32| self.compare(base, e, pk) == Ordering::Less;
            if insert {
                seq.insert(pk, before)
            } else {
                seq.remove(pk, before)
            }
            self.sequences[base as usize] = seq;
        }
        let mut composites = std::mem::take(&mut self.composites);
        for c in &mut composites {
            let before = |e: u32| self.compare_by(&c.keys, c.pk_desc, e, pk) == Ordering::Less;
            if insert { c.seq.insert(pk, before) } else { c.seq.remove(pk, before) }
        }
        self.composites = composites;
    }

    /// Applies one changed row: out of every sequence with its old keys, back in with its new ones.
    fn apply(&mut self, before: Option<&Row>, after: Option<&Row>) -> bool {
        if let Some(row) = before {
            let Ok(pk) = u32::try_from(row.pk) else { return false };
            if self.flags.get(pk as usize).is_none_or(|f| f & PRESENT == 0) {
                return false;
            }
            self.reseat(pk, false);
            self.flags[pk as usize] = 0;
            self.users -= 1;
        }
        if let Some(row) = after {
            if !(1..MOST_PK).contains(&row.pk) {
                return false;
            }
            let pk = row.pk as u32;
            self.grow(pk as usize);
            if self.flags[pk as usize] & PRESENT != 0 {
                return false;
            }
            self.store(row);
            self.reseat(pk, true);
            self.users += 1;
        }
        true
    }

    /// The users a short search matches, as a bitset over keys: prefixes of the folded username, the lower-cased
    /// email, and the names with each letter in either case (the ranges of each spelling in the name's order).
    fn search(&self, term: &str) -> Vec<u64> {
        let mut bits = vec![0u64; self.flags.len().div_ceil(64)];
        let mut mark = |base: Base, prefix: &str| {
            let (seq, texts, prefix) = (&self.sequences[base as usize], &self.texts[base as usize], prefix.as_bytes());
            let from = seq.rank_where(|e| texts.of(e) < prefix);
            let to = seq.rank_where(|e| texts.of(e) < prefix || texts.of(e).starts_with(prefix));
            for slice in seq.slices(from, to) {
                for pk in slice {
                    bits[*pk as usize / 64] |= 1 << (pk % 64);
                }
            }
        };
        mark(Base::Username, &username_key(term));
        mark(Base::Email, &term.to_lowercase());
        for spelling in super::users::case_spellings(term) {
            mark(Base::FirstName, &spelling);
            mark(Base::LastName, &spelling);
        }
        bits
    }

    /// Settles which users `wanted` keeps, once for the page: a walk then reads one bit a user, and the count is a
    /// popcount. Only the users the search marked, or those of the model's set, are visited when there are some.
    fn settle(&self, wanted: &mut Wanted<'_>) {
        if !wanted.filters() {
            return;
        }
        let by_flags = wanted.orgs.is_empty() && wanted.within.is_none();
        if by_flags && wanted.flags_on == PRESENT && wanted.flags_off == 0 && wanted.search.is_some() {
            // Only present users are marked: the search's marks are the users kept.
            wanted.kept = wanted.search.take();
            return;
        }
        let mut bits = vec![0u64; self.flags.len().div_ceil(64)];
        match &wanted.search {
            None if by_flags => {
                let (on, off) = (wanted.flags_on, wanted.flags_on | wanted.flags_off);
                for (i, flags) in self.flags.iter().enumerate() {
                    if flags & off == on {
                        bits[i / 64] |= 1 << (i % 64);
                    }
                }
            }
            Some(_) | None => {
                for pk in self.candidates(wanted).filter(|pk| wanted.tests(self, *pk)) {
                    bits[pk as usize / 64] |= 1 << (pk % 64);
                }
            }
        }
        wanted.kept = Some(bits);
    }

    /// How many users a settled filter keeps.
    fn count(&self, wanted: &Wanted<'_>) -> usize {
        match &wanted.kept {
            Some(bits) => bits.iter().map(|word| word.count_ones() as usize).sum(),
            None => self.users,
        }
    }

    /// Two users in the order of `keys`, then the pk tiebreak.
    fn compare_by(&self, keys: &[(Base, bool)], pk_desc: bool, a: u32, b: u32) -> Ordering {
        let by_keys = keys.iter().fold(Ordering::Equal, |decided, (base, desc)| {
            decided.then_with(|| {
                let o = self.compare_values(*base, a, b);
                if *desc { o.reverse() } else { o }
            })
        });
        by_keys.then_with(|| if pk_desc { b.cmp(&a) } else { a.cmp(&b) })
    }

    /// Whether the page keeps user `pk`: the filter keeps it, and it comes after the cursor (if any) in the
    /// direction the cursor reads.
    fn keeps(&self, walk: &Walk<'_>, pk: u32) -> bool {
        walk.wanted.keeps(self, pk) && walk.cursor.is_none_or(|cursor| self.follows_cursor(walk, pk, cursor))
    }

    /// Walks `keys[0]`'s sequence from `start` in the order of `keys` and the pk tiebreak, through the users equal
    /// to `same` on the keys of the enclosing groups of ties: skips `start.skip` of those the page keeps, pushes
    /// the next into `out` until it holds `limit`, and answers how many it still had to skip.
    fn walk(
        &self,
        walk: &Walk<'_>,
        keys: &[(Base, bool)],
        same: &[(Base, u32)],
        start: Start,
        limit: usize,
        out: &mut Vec<u32>,
    ) -> usize {
        let Start { from, against, backwards, mut skip } = start;
        let (base, rest) = (keys[0].0, &keys[1..]);
        let seq = &self.sequences[base as usize];
        let in_group = |pk: u32| same.iter().all(|(key, like)| self.compare_values(*key, pk, *like) == Ordering::Equal);
        // The sequence's own order is the page's when no key follows and the pk runs the way the walk does.
        let plain = rest.is_empty() && walk.pk_desc == (against != backwards);
        let entries: Box<dyn Iterator<Item = u32>> =
            if against { Box::new(seq.backward(from)) } else { Box::new(seq.forward(from)) };
        let mut run: Vec<u32> = Vec::new();
        for pk in entries {
            if out.len() >= limit {
                return skip;
            }
            if !same.is_empty() && !in_group(pk) {
                continue;
            }
            if plain {
                self.offer(walk, pk, &mut skip, out);
                continue;
            }
            if run.last().is_some_and(|last| self.compare_values(base, *last, pk) != Ordering::Equal) {
                skip = self.ties(walk, rest, same, (base, against, backwards), &mut run, skip, limit, out);
            }
            run.push(pk);
        }
        if out.len() < limit && !run.is_empty() {
            skip = self.ties(walk, rest, same, (base, against, backwards), &mut run, skip, limit, out);
        }
        skip
    }

    /// One group of ties of a walk's key, in the order of the keys after it (`rest`): skipped whole when the page
    /// starts after it, sorted when small, read through the next key's sequence when large.
    #[allow(clippy::too_many_arguments)]
    fn ties(
        &self,
        walk: &Walk<'_>,
        rest: &[(Base, bool)],
        same: &[(Base, u32)],
        (base, against, backwards): (Base, bool, bool),
        run: &mut Vec<u32>,
        mut skip: usize,
        limit: usize,
        out: &mut Vec<u32>,
    ) -> usize {
        if skip > 0 {
            let kept = run.iter().filter(|pk| self.keeps(walk, **pk)).count();
            if kept <= skip {
                run.clear();
                return skip - kept;
            }
        }
        if rest.is_empty() {
            // Only the pk orders the group: the walk read it one way or the other.
            if against != (walk.pk_desc != backwards) {
                run.reverse();
            }
        } else if run.len() <= self.sort_most {
            run.sort_unstable_by(|a, b| {
                let o = self.compare_by(rest, walk.pk_desc, *a, *b);
                if backwards { o.reverse() } else { o }
            });
        } else {
            let mut inner: Vec<(Base, u32)> = same.to_vec();
            inner.push((base, run[0]));
            run.clear();
            let against = rest[0].1 != backwards;
            let from = if against { self.sequences[rest[0].0 as usize].len() } else { 0 };
            return self.walk(walk, rest, &inner, Start { from, against, backwards, skip }, limit, out);
        }
        for pk in run.drain(..) {
            if out.len() >= limit {
                break;
            }
            self.offer(walk, pk, &mut skip, out);
        }
        skip
    }

    /// Offers user `pk` to the page: passed over unless kept, skipped while `skip` lasts, else taken.
    fn offer(&self, walk: &Walk<'_>, pk: u32, skip: &mut usize, out: &mut Vec<u32>) {
        if !self.keeps(walk, pk) {
            return;
        }
        if *skip > 0 {
            *skip -= 1;
        } else {
            out.push(pk);
        }
    }

    /// The rank in `base`'s sequence where the group of ties of the entry at `rank` starts.
    fn group_start(&self, base: Base, rank: usize) -> usize {
        let seq = &self.sequences[base as usize];
        let at = seq.get(rank);
        seq.rank_where(|e| self.compare_values(base, e, at) == Ordering::Less)
    }

    /// The rank in `base`'s sequence where the group of ties of the entry at `rank` ends.
    fn group_end(&self, base: Base, rank: usize) -> usize {
        let seq = &self.sequences[base as usize];
        let at = seq.get(rank);
        seq.rank_where(|e| self.compare_values(base, e, at) != Ordering::Greater)
    }

    /// Where the page `query` starts in its first key's sequence; `None` when it holds no user.
    fn start(&self, query: &UserQuery, walk: &Walk<'_>) -> Option<Start> {
        let (base, desc) = walk.keys[0];
        let seq = &self.sequences[base as usize];
        if let Some(cursor) = walk.cursor {
            // The cursor's group of ties of the first key, and the walk from it in the direction read.
            let value = if base == Base::Id { SortValue::Int(cursor.pk) } else { cursor.keys.first()?.clone() };
            let backwards = cursor.backwards;
            let against = desc != backwards;
            let from = if against {
                seq.rank_where(|e| self.compare_to(base, e, &value) != Ordering::Greater)
            } else {
                seq.rank_where(|e| self.compare_to(base, e, &value) == Ordering::Less)
            };
            return Some(Start { from, against, backwards, skip: 0 });
        }
        let offset = usize::try_from(query.offset).ok()?;
        Some(if walk.wanted.kept.is_some() {
            Start { from: if desc { seq.len() } else { 0 }, against: desc, backwards: false, skip: offset }
        } else if offset >= seq.len() {
            return None;
        } else if desc {
            let end = self.group_end(base, seq.len() - 1 - offset);
            Start { from: end, against: true, backwards: false, skip: offset - (seq.len() - end) }
        } else {
            let start = self.group_start(base, offset);
            Start { from: start, against: false, backwards: false, skip: offset - start }
        })
    }

    /// The count and the page `query` asks for.
    fn page(&self, query: &UserQuery, walk: &Walk<'_>) -> Option<(i64, Vec<i64>)> {
        let count = self.count(&walk.wanted) as i64;
        let limit = usize::try_from(query.limit).ok()?;
        let mut out = Vec::with_capacity(limit.min(1_000));
        if let (Some(bits), [(Base::Id, _)]) = (&walk.wanted.kept, walk.keys.as_slice()) {
            page_by_bits(bits, query, walk, limit, &mut out)?;
        } else if walk.wanted.kept.is_some() && count as usize <= self.sort_kept_most {
            self.page_sorted(self.kept(&walk.wanted), query, walk, limit, &mut out)?;
        } else if let Some(whole) = self.composite(&walk.keys, walk.pk_desc) {
            self.page_of(&whole.seq, query, walk, limit, &mut out)?;
        } else if let Some(start) = self.start(query, walk) {
            self.walk(walk, &walk.keys, &[], start, limit, &mut out);
        }
        Some((count, out.into_iter().map(i64::from).collect()))
    }

    /// Every user the filter keeps, ascending.
    fn kept(&self, wanted: &Wanted<'_>) -> Vec<u32> {
        match &wanted.kept {
            Some(bits) => marked(bits).collect(),
            None => self.sequences[Base::Id as usize].forward(0).collect(),
        }
    }

    /// The users a filter can keep, ascending: those the search marked, or those of the model's set, or all.
    fn candidates<'a>(&'a self, wanted: &'a Wanted<'_>) -> Box<dyn Iterator<Item = u32> + 'a> {
        match (&wanted.search, wanted.within) {
            (Some(bits), _) => Box::new(marked(bits)),
            (None, Some(set)) => Box::new(set.keys().filter_map(|pk| u32::try_from(pk).ok())),
            (None, None) => Box::new(1..self.flags.len() as u32),
        }
    }

    /// A page of the users `kept`, sorted here in the walk's order.
    fn page_sorted(
        &self,
        mut kept: Vec<u32>,
        query: &UserQuery,
        walk: &Walk<'_>,
        limit: usize,
        out: &mut Vec<u32>,
    ) -> Option<()> {
        kept.sort_unstable_by(|a, b| self.compare_by(&walk.keys, walk.pk_desc, *a, *b));
        match walk.cursor {
            Some(cursor) if cursor.backwards => {
                let end = kept.partition_point(|e| self.cursor_order(walk, *e, cursor) == Ordering::Less);
                out.extend(kept[..end].iter().rev().take(limit));
            }
            Some(cursor) => {
                let start = kept.partition_point(|e| self.cursor_order(walk, *e, cursor) != Ordering::Greater);
                out.extend(kept[start..].iter().take(limit));
            }
            None => out.extend(kept.iter().skip(usize::try_from(query.offset).ok()?).take(limit)),
        }
        Some(())
    }

    /// The ordering kept whole for `keys` and `pk_desc`, when it is.
    fn composite(&self, keys: &[(Base, bool)], pk_desc: bool) -> Option<&Composite> {
        self.composites.iter().find(|c| c.keys == keys && c.pk_desc == pk_desc)
    }

    /// A page read from an ordering kept whole: from its position (an offset of the whole list, or a cursor's
    /// place found by a binary search), or past the first users the filter keeps.
    fn page_of(&self, seq: &Sequence, query: &UserQuery, walk: &Walk<'_>, limit: usize, out: &mut Vec<u32>) -> Option<()> {
        let (entries, skip): (Box<dyn Iterator<Item = u32>>, usize) = match walk.cursor {
            Some(cursor) if cursor.backwards => {
                (Box::new(seq.backward(seq.rank_where(|e| self.cursor_order(walk, e, cursor) == Ordering::Less))), 0)
            }
            Some(cursor) => {
                (Box::new(seq.forward(seq.rank_where(|e| self.cursor_order(walk, e, cursor) != Ordering::Greater))), 0)
            }
            None if walk.wanted.kept.is_none() => (Box::new(seq.forward(usize::try_from(query.offset).ok()?)), 0),
            None => (Box::new(seq.forward(0)), usize::try_from(query.offset).ok()?),
        };
        out.extend(entries.filter(|pk| walk.wanted.keeps(self, *pk)).skip(skip).take(limit));
        Some(())
    }

    /// Where user `pk` stands against `cursor` in the walk's order (before it, or after it).
    fn cursor_order(&self, walk: &Walk<'_>, pk: u32, cursor: &UserCursor) -> Ordering {
        let keys = walk.keys.iter().filter(|(base, _)| *base != Base::Id);
        let by_keys = keys.zip(&cursor.keys).fold(Ordering::Equal, |decided, ((base, desc), value)| {
            decided.then_with(|| {
                let o = self.compare_to(*base, pk, value);
                if *desc { o.reverse() } else { o }
            })
        });
        let by_pk = if walk.pk_desc { cursor.pk.cmp(&i64::from(pk)) } else { i64::from(pk).cmp(&cursor.pk) };
        by_keys.then(by_pk)
    }

    /// Whether user `pk` comes after `cursor` in the direction the cursor reads.
    fn follows_cursor(&self, walk: &Walk<'_>, pk: u32, cursor: &UserCursor) -> bool {
        let o = self.cursor_order(walk, pk, cursor);
        if cursor.backwards { o == Ordering::Less } else { o == Ordering::Greater }
    }

    /// Every user in the order of `keys` and `pk_desc`, sorted once.
    fn whole(&self, keys: &[(Base, bool)], pk_desc: bool) -> Sequence {
        let mut all: Vec<u32> = self.sequences[Base::Id as usize].forward(0).collect();
        all.sort_unstable_by(|a, b| self.compare_by(keys, pk_desc, *a, *b));
        Sequence::from_sorted(&all)
    }
}

/// The orders' state: not loaded, loading, loaded, or unusable here.
enum State {
    Idle,
    Loading,
    Ready(Box<Index>),
    Unusable,
}

/// An ordering to keep whole: its keys and the direction of its pk tiebreak.
type Wanting = (Vec<(Base, bool)>, bool);

/// One committed write, as the orders follow it: its first and last revisions and the rows it changed.
struct Followed {
    first: Revision,
    last: Revision,
    rows: Vec<(Option<Row>, Option<Row>)>,
}

/// The users' orders of one store. The writer never waits for a page being read: it leaves each committed write
/// in the inbox and applies the inbox only when the orders are free; a page applies it before it reads.
pub(super) struct Orders {
    state: RwLock<State>,
    inbox: Mutex<Vec<Followed>>,
    /// Orderings a page asked to keep whole, to be built in the background.
    requested: Mutex<Vec<Wanting>>,
    /// Whether a builder of those is running.
    building: AtomicBool,
}

impl Default for Orders {
    fn default() -> Self {
        Self {
            state: RwLock::new(State::Idle),
            inbox: Mutex::new(Vec::new()),
            requested: Mutex::new(Vec::new()),
            building: AtomicBool::new(false),
        }
    }
}

impl Orders {
    /// Claims the loading of the orders: true once, when they are neither loaded nor loading.
    pub fn claim(&self) -> bool {
        let mut state = self.state.write();
        if matches!(*state, State::Idle) {
            *state = State::Loading;
            return true;
        }
        false
    }

    /// Installs the orders built from `rows` read at `revision`, after applying the writes committed since.
    pub fn install(&self, rows: Vec<Row>, revision: Revision) {
        let built = Index::build(rows, revision);
        let mut state = self.state.write();
        if !matches!(*state, State::Loading) {
            return;
        }
        *state = match built {
            Some(index) => State::Ready(Box::new(index)),
            None => State::Unusable,
        };
        self.apply_inbox(&mut state);
    }

    /// Applies the writes in the inbox to loaded orders (dropping them on a revision they missed), keeps them while
    /// the orders load, and forgets them otherwise.
    fn apply_inbox(&self, state: &mut State) {
        let followed = match state {
            State::Loading => return,
            _ => std::mem::take(&mut *self.inbox.lock()),
        };
        if let State::Ready(index) = state {
            for write in &followed {
                if write.last > index.revision && !index.follow(write) {
                    *state = State::Idle;
                    return;
                }
            }
        }
    }

    /// Gives up a load that failed (another list will try again).
    pub fn release(&self) {
        let mut state = self.state.write();
        if matches!(*state, State::Loading) {
            *state = State::Idle;
        }
    }

    /// Forgets the orders: rows were written without revisions (a bulk load), which they cannot follow.
    pub fn clear(&self) {
        let mut state = self.state.write();
        if !matches!(*state, State::Unusable) {
            *state = State::Idle;
            self.inbox.lock().clear();
        }
    }

    /// Follows one committed write (on the writer thread, in commit order): the revisions it logged and the user
    /// rows it changed.
    pub fn follow(&self, revisions: &[Revision], moved: &[Moved]) {
        let (Some(first), Some(last)) = (revisions.first(), revisions.last()) else { return };
        let rows = moved.iter().map(|m| (m.before.as_ref().map(Row::of), m.after.as_ref().map(Row::of))).collect();
        self.inbox.lock().push(Followed { first: *first, last: *last, rows });
        if let Some(mut state) = self.state.try_write() {
            self.apply_inbox(&mut state);
        }
    }

    /// Whether the orders are loaded (for tests that compare them with SQL).
    #[cfg(test)]
    pub fn ready(&self) -> bool {
        let mut state = self.state.write();
        self.apply_inbox(&mut state);
        matches!(*state, State::Ready(_))
    }

    /// Sorts no group of ties larger than `most`, no filtered list larger than `kept_most` (for tests that read
    /// large groups through the next key's order, and filtered lists by walking).
    #[cfg(test)]
    pub fn sort_at_most(&self, most: usize, kept_most: usize) {
        if let State::Ready(index) = &mut *self.state.write() {
            index.sort_most = most;
            index.sort_kept_most = kept_most;
        }
    }

    /// How many orderings are kept whole.
    #[cfg(test)]
    pub fn kept_whole(&self) -> usize {
        match &*self.state.read() {
            State::Ready(index) => index.composites.len(),
            _ => 0,
        }
    }

    /// Never loads the orders: every list goes through SQL (for tests that compare the two).
    #[cfg(test)]
    pub fn disable(&self) {
        *self.state.write() = State::Unusable;
    }

    /// The count and the keys of the page `query` asks for, when the orders are loaded at `revision` and can answer
    /// its ordering and filter; `None` sends the query to SQL.
    pub fn page(&self, query: &UserQuery, revision: Revision) -> Option<(i64, Vec<i64>)> {
        let shape = Shape::of(query)?;
        if let Some(mut state) = self.state.try_write() {
            self.apply_inbox(&mut state);
        }
        // Pages read side by side; while an ordering is being kept whole, the writes wait in the inbox and a page
        // at a newer revision goes to SQL.
        let state = self.state.read();
        let State::Ready(index) = &*state else { return None };
        if index.revision != revision {
            return None;
        }
        if needs_composite(&shape.keys, shape.pk_desc)
            && index.composite(&shape.keys, shape.pk_desc).is_none()
            && index.composites.len() < MOST_COMPOSITES
        {
            let mut requested = self.requested.lock();
            let order = (shape.keys.clone(), shape.pk_desc);
            if !requested.contains(&order) {
                requested.push(order);
            }
        }
        let search = shape.search.map(|term| index.search(term));
        let mut wanted = Wanted {
            orgs: &query.filter.orgs,
            within: query.filter.within.as_deref(),
            flags_on: shape.flags_on,
            flags_off: shape.flags_off,
            search,
            kept: None,
        };
        index.settle(&mut wanted);
        let walk = Walk { keys: shape.keys, pk_desc: shape.pk_desc, wanted, cursor: query.after.as_ref() };
        index.page(query, &walk)
    }

    /// Claims the building of the orderings pages asked to keep whole: true when there are some and no builder
    /// runs. The claimant calls [`Orders::build_requested`].
    pub fn claim_build(&self) -> bool {
        !self.requested.lock().is_empty() && !self.building.swap(true, AtomicOrdering::AcqRel)
    }

    /// Keeps whole the orderings pages asked for (on a blocking thread): each is sorted while pages go on reading,
    /// then installed with the writes committed meanwhile.
    pub fn build_requested(&self) {
        loop {
            let Some((keys, pk_desc)) = self.requested.lock().first().cloned() else {
                self.building.store(false, AtomicOrdering::Release);
                return;
            };
            let state = self.state.upgradable_read();
            let started = std::time::Instant::now();
            let whole = match &*state {
                State::Ready(index) if index.composite(&keys, pk_desc).is_none() && index.composites.len() < MOST_COMPOSITES => {
                    Some(index.whole(&keys, pk_desc))
                }
                _ => None,
            };
            if whole.is_some() {
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::info!(keys = ?keys, pk_desc, took_ms, "kept a user ordering whole");
            }
            let mut state = RwLockUpgradableReadGuard::upgrade(state);
            if let (Some(seq), State::Ready(index)) = (whole, &mut *state) {
                index.composites.push(Composite { keys: keys.clone(), pk_desc, seq });
            }
            self.apply_inbox(&mut state);
            self.requested.lock().retain(|order| *order != (keys.clone(), pk_desc));
        }
    }

    /// Whether the orders could answer `query` once loaded.
    pub fn could_answer(query: &UserQuery) -> bool {
        Shape::of(query).is_some()
    }
}

impl Index {
    /// Applies one write, when it follows the revision the orders hold; false when they missed one.
    fn follow(&mut self, write: &Followed) -> bool {
        if write.first != self.revision + 1 {
            return false;
        }
        for (before, after) in &write.rows {
            if before == after {
                continue;
            }
            if !self.apply(before.as_ref(), after.as_ref()) {
                return false;
            }
        }
        self.revision = write.last;
        true
    }
}

/// A list query as the orders read it.
struct Shape<'a> {
    keys: Vec<(Base, bool)>,
    pk_desc: bool,
    flags_on: u8,
    flags_off: u8,
    search: Option<&'a str>,
}

impl<'a> Shape<'a> {
    fn of(query: &'a UserQuery) -> Option<Self> {
        let filter = &query.filter;
        let narrowing = filter.narrowing();
        // Groups and what a viewer sees are tested on the model's set of the users they select.
        let narrowed = narrowing.by_fields || (narrowing.by_groups && filter.within.is_none());
        let search = narrowing.search;
        if narrowed || search.is_some_and(|t| t.chars().count() >= SEARCH_BELOW) {
            return None;
        }
        let pk_desc = UserOrder::pk_descends(&query.ordering);
        let mut keys = Vec::new();
        for (order, desc) in UserOrder::keys(&query.ordering) {
            keys.push((Base::of(order)?, desc));
        }
        if keys.is_empty() {
            keys.push((Base::Id, pk_desc));
        }
        let (mut flags_on, mut flags_off) = (PRESENT, 0);
        for (wanted, bit) in [(filter.is_active, ACTIVE), (filter.is_staff, STAFF), (filter.is_superuser, SUPERUSER)] {
            match wanted {
                Some(true) => flags_on |= bit,
                Some(false) => flags_off |= bit,
                None => {}
            }
        }
        Some(Self { keys, pk_desc, flags_on, flags_off, search })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{ChangeLog, OrgStore, Store, UserFilter, UserStore, WriteCtx};
    use castellan_core::model::{NewUser, UserChanges};

    fn user(pk: i64, name: &str) -> User {
        User {
            pk,
            username: name.into(),
            first_name: String::new(),
            last_name: String::new(),
            email: format!("{name}@x.test"),
            description: String::new(),
            is_staff: false,
            is_active: true,
            is_superuser: false,
            date_joined: time::OffsetDateTime::UNIX_EPOCH,
            last_login: None,
            org: 1,
            groups: Vec::new(),
            groups_hidden: 0,
            phone_number: None,
            has_avatar: false,
            has_password: true,
        }
    }

    /// Writes committed while the orders load are applied once they are installed (those the snapshot held are
    /// not applied twice); a revision the orders did not see drops them.
    #[test]
    fn writes_during_the_load_are_applied_and_a_missed_revision_drops_the_orders() {
        let orders = Orders::default();
        assert!(orders.claim());
        assert!(!orders.claim(), "claimed once");
        let by_name = UserQuery { ordering: vec![(UserOrder::Username, false)], limit: 10, ..Default::default() };
        orders.follow(&[5], &[Moved { before: None, after: Some(user(2, "bo")) }]);
        orders.follow(&[6], &[Moved { before: None, after: Some(user(3, "al")) }]);
        orders.follow(&[7], &[Moved { before: Some(user(1, "cy")), after: Some(user(1, "ax")) }]);
        let rows = [user(1, "cy"), user(2, "bo")].iter().map(Row::of).collect();
        orders.install(rows, 5);
        assert_eq!(orders.page(&by_name, 7), Some((3, vec![3, 1, 2])));
        assert_eq!(orders.page(&by_name, 6), None, "only at the revision read");
        orders.follow(&[9], &[]);
        assert_eq!(orders.page(&by_name, 9), None, "revision 8 was missed");
        assert!(orders.claim(), "and they load again");
    }

    /// A small deterministic generator (the same users on every run).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len() as u64) as usize]
        }
    }

    const FIRST: [&str; 7] = ["ann", "Ann", "anna", "Bob", "éva", "Éva", ""];
    const LAST: [&str; 5] = ["Smith", "smith", "Jones", "Ünal", ""];

    /// A store with 400 users over two organisations (many ties in the names, mixed case), some renamed, moved,
    /// deactivated or deleted after the orders were loaded; and a second store on the same file that lists
    /// through SQL only.
    async fn stores(dir: &std::path::Path) -> (SqliteStore, SqliteStore, Vec<i64>) {
        let path = dir.join("castellan.db");
        let store = SqliteStore::open(&path).await.unwrap();
        store.migrate().await.unwrap();
        let ctx = WriteCtx::default();
        let mut orgs = Vec::new();
        for slug in ["acme", "globex"] {
            orgs.push(store.create_org(&ctx, slug, slug, "").await.unwrap().0.pk);
        }
        let mut rng = Lcg(7);
        let mut pks = Vec::new();
        for i in 0..300 {
            let new = NewUser {
                username: if i % 3 == 0 { format!("User{i}") } else { format!("us{i}") },
                password_hash: None,
                email: format!("{}{i}@Example.test", rng.pick(&["a", "B", "us", "z"])),
                first_name: rng.pick(&FIRST).into(),
                last_name: rng.pick(&LAST).into(),
                description: String::new(),
                is_active: rng.below(4) != 0,
                is_staff: rng.below(3) == 0,
                is_superuser: rng.below(9) == 0,
                org: orgs[rng.below(2) as usize],
                groups: Vec::new(),
            };
            pks.push(store.create_user(&ctx, new).await.unwrap().0.pk);
        }
        store.load_orders();
        for _ in 0..500 {
            if store.orders.ready() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(store.orders.ready(), "the orders loaded");
        for i in 300..400 {
            let new = NewUser {
                username: format!("late{i}"),
                password_hash: None,
                email: format!("late{i}@example.test"),
                first_name: rng.pick(&FIRST).into(),
                last_name: rng.pick(&LAST).into(),
                description: String::new(),
                is_active: true,
                is_staff: false,
                is_superuser: false,
                org: orgs[0],
                groups: Vec::new(),
            };
            pks.push(store.create_user(&ctx, new).await.unwrap().0.pk);
        }
        for _ in 0..120 {
            let pk = pks[rng.below(pks.len() as u64) as usize];
            let changes = match rng.below(4) {
                0 => UserChanges { last_name: Some(rng.pick(&LAST).into()), ..Default::default() },
                1 => UserChanges { username: Some(format!("Renamed{}", rng.below(1_000_000))), ..Default::default() },
                2 => UserChanges {
                    is_active: Some(rng.below(2) == 0),
                    first_name: Some(rng.pick(&FIRST).into()),
                    ..Default::default()
                },
                _ => UserChanges {
                    email: Some(format!("{}{}@x.test", rng.pick(&["A", "us", "b"]), rng.below(1_000))),
                    ..Default::default()
                },
            };
            store.update_user(&ctx, pk, changes).await.unwrap();
        }
        for _ in 0..30 {
            let i = rng.below(pks.len() as u64) as usize;
            store.delete_user(&ctx, pks.remove(i)).await.unwrap();
        }
        assert!(store.orders.ready(), "the orders followed every write");
        let sql = SqliteStore::open(&path).await.unwrap();
        sql.orders.disable();
        (store, sql, orgs)
    }

    /// Deletes, renames and creates users among those there are.
    async fn churn_users(store: &SqliteStore, sql: &SqliteStore, org: i64) {
        let ctx = WriteCtx::default();
        let all = sql.list_users(&UserQuery { limit: 1_000, ..Default::default() }).await.unwrap().items;
        for (i, user) in all.iter().enumerate().step_by(5).take(60) {
            match i % 3 {
                0 => store.delete_user(&ctx, user.pk).await.map(drop).unwrap(),
                1 => {
                    let changes = UserChanges {
                        last_name: Some(LAST[i % LAST.len()].into()),
                        first_name: Some(FIRST[i % FIRST.len()].into()),
                        email: Some(format!("moved{i}@x.test")),
                        ..Default::default()
                    };
                    store.update_user(&ctx, user.pk, changes).await.map(drop).unwrap();
                }
                _ => {
                    let new = NewUser {
                        username: format!("New{i}"),
                        password_hash: None,
                        email: format!("new{i}@example.test"),
                        first_name: FIRST[(i + 1) % FIRST.len()].into(),
                        last_name: LAST[(i + 2) % LAST.len()].into(),
                        description: String::new(),
                        is_active: i % 2 == 0,
                        is_staff: false,
                        is_superuser: false,
                        org,
                        groups: Vec::new(),
                    };
                    store.create_user(&ctx, new).await.map(drop).unwrap();
                }
            }
        }
    }

    /// Every ordering (one to three keys, each way), filter (organisation, flags, short searches) and window of the
    /// orders answers what SQL answers, also by cursor both ways.
    #[tokio::test]
    async fn pages_from_the_orders_equal_the_pages_sql_reads() {
        use UserOrder::*;
        let dir = tempfile::tempdir().unwrap();
        let (store, sql, orgs) = stores(dir.path()).await;
        let mut revision = store.revision().await.unwrap();
        let orderings: Vec<Vec<(UserOrder, bool)>> = vec![
            vec![],
            vec![(Id, true)],
            vec![(Username, false)],
            vec![(Username, true)],
            vec![(Email, true)],
            vec![(FirstName, false)],
            vec![(FirstName, true)],
            vec![(LastName, true), (Id, true)],
            vec![(DateJoined, true)],
            vec![(LastName, false), (FirstName, true)],
            vec![(LastName, true), (FirstName, false), (Email, true)],
            vec![(FirstName, false), (LastName, false), (Id, true)],
        ];
        let filters = vec![
            UserFilter::default(),
            UserFilter { orgs: vec![orgs[1]], ..Default::default() },
            UserFilter { is_active: Some(true), is_staff: Some(false), ..Default::default() },
            UserFilter { search: Some("us".into()), ..Default::default() },
            UserFilter { search: Some("A".into()), orgs: vec![orgs[0]], ..Default::default() },
            UserFilter { search: Some("é".into()), ..Default::default() },
            UserFilter { search: Some("ü".into()), is_active: Some(true), ..Default::default() },
            UserFilter { search: Some("sM".into()), ..Default::default() },
            UserFilter { search: Some("zq".into()), ..Default::default() },
        ];
        let mut compared = 0;
        // Small filtered lists sorted whole, then walked; groups of ties sorted, then read through the next key's
        // order; then orderings kept whole, before and after users are created, renamed and deleted around them.
        let modes = [
            (SORT_MOST, SORT_KEPT_MOST, false, false),
            (SORT_MOST, 0, false, false),
            (1, 0, false, false),
            (SORT_MOST, 0, true, false),
            (SORT_MOST, SORT_KEPT_MOST, true, true),
            (SORT_MOST, 0, true, false),
        ];
        for (sort_most, kept_most, whole, churn) in modes {
            store.orders.sort_at_most(sort_most, kept_most);
            if whole {
                store.orders.build_requested();
                assert_eq!(store.orders.kept_whole(), 7, "the orderings of several keys or a reversed tiebreak");
            }
            if churn {
                churn_users(&store, &sql, orgs[0]).await;
                revision = store.revision().await.unwrap();
                assert!(store.orders.ready(), "the orders followed every write");
            }
            for ordering in &orderings {
                for filter in &filters {
                    for (offset, limit) in [(0, 10), (7, 25), (150, 40), (365, 10), (1_000, 5)] {
                        let query =
                            UserQuery { filter: filter.clone(), ordering: ordering.clone(), offset, limit, ..Default::default() };
                        let (count, pks) = store.orders.page(&query, revision).expect("the orders answer");
                        let expected = sql.list_users(&query).await.unwrap();
                        let keys: Vec<i64> = expected.items.iter().map(|u| u.pk).collect();
                        assert_eq!((count, &pks), (expected.count, &keys), "{query:?}");
                        compared += 1;
                        for (at, backwards) in [(expected.items.last(), false), (expected.items.first(), true)] {
                            let Some(user) = at else { continue };
                            let after = Some(UserCursor::at(user, ordering, backwards));
                            let query = UserQuery { after, offset: 0, ..query.clone() };
                            let (_, pks) = store.orders.page(&query, revision).expect("the orders answer");
                            let expected = sql.list_users(&query).await.unwrap();
                            let mut keys: Vec<i64> = expected.items.iter().map(|u| u.pk).collect();
                            if backwards {
                                keys.reverse();
                            }
                            assert_eq!(pks, keys, "{query:?}");
                        }
                    }
                }
            }
        }
        assert_eq!(compared, modes.len() * orderings.len() * filters.len() * 5);
        // The model's set in place of groups and visibility: the same users as SQL's list of their keys.
        let some: Vec<i64> = (1..=400).filter(|pk| pk % 3 != 0).collect();
        let mut set = UserSet::default();
        some.iter().for_each(|pk| set.insert(*pk));
        let within = Some(std::sync::Arc::new(set));
        for ordering in &orderings {
            for offset in [0, 40, 200] {
                let seen_by = Some(crate::SeenBy { viewer: 1, groups: vec![1] });
                let filter = UserFilter { within: within.clone(), seen_by, is_active: Some(true), ..Default::default() };
                let query = UserQuery { filter, ordering: ordering.clone(), offset, limit: 30, ..Default::default() };
                let (count, pks) = store.orders.page(&query, revision).expect("the orders answer");
                let by_keys = UserFilter { ids: some.clone(), is_active: Some(true), ..Default::default() };
                let expected = sql.list_users(&UserQuery { filter: by_keys, ..query.clone() }).await.unwrap();
                let keys: Vec<i64> = expected.items.iter().map(|u| u.pk).collect();
                assert_eq!((count, pks), (expected.count, keys), "{query:?}");
            }
        }
        let groups = UserQuery { filter: UserFilter { groups: vec![1], ..Default::default() }, ..Default::default() };
        assert!(store.orders.page(&groups, revision).is_none(), "groups without the model's set go to SQL");
        let through_sql =
            UserQuery { filter: UserFilter { search: Some("smith".into()), ..Default::default() }, ..Default::default() };
        assert!(store.orders.page(&through_sql, revision).is_none(), "long searches use the trigram index");
        assert!(store.orders.page(&UserQuery::default(), revision - 1).is_none(), "only at the revision read");
    }

    #[test]
    fn a_sequence_keeps_its_order_and_ranks_through_splits_and_removals() {
        let mut s = Sequence::from_sorted(&(0..3_000).map(|k| k * 2).collect::<Vec<u32>>());
        for k in (1..6_000).step_by(2) {
            s.insert(k, |e| e < k);
        }
        assert_eq!(s.len(), 6_000);
        assert!((0..6_000).all(|r| s.get(r) == r as u32));
        for k in (0..6_000).step_by(3) {
            s.remove(k, |e| e < k);
        }
        let left: Vec<u32> = (0..6_000).filter(|k| k % 3 != 0).collect();
        assert_eq!(s.forward(0).collect::<Vec<_>>(), left);
        assert_eq!(s.backward(s.len()).collect::<Vec<_>>(), left.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(s.forward(100).next(), Some(left[100]));
        for (from, to) in [(0, 0), (100, 2_500), (1_023, 1_025), (3_000, left.len()), (0, left.len())] {
            assert_eq!(s.slices(from, to).flatten().copied().collect::<Vec<_>>(), left[from..to], "{from}..{to}");
        }
        assert_eq!(s.backward(100).next(), Some(left[99]));
        assert_eq!(s.rank_where(|e| e < 3_001), left.partition_point(|e| *e < 3_001));
    }
}
