//! Fences: every [`SPACING`]-th user of a user ordering with its exact position, kept in step with the
//! writes this store commits, so that an explicit deep page (`page=N` of the whole list) seeks from the nearest
//! fence and steps over fewer than [`SPACING`] rows instead of all the rows before it.
//!
//! A set of fences is built on the writer thread (so that no write slips between the scan and the first write it
//! follows), on the first deep page of its ordering; that page is answered the slow way meanwhile. A set holds the
//! revision it reflects: each committed write that changes the revision moves it on (with the users it created,
//! renamed or deleted); a revision it did not see (written by another process) drops it, and a page is only
//! answered from fences of the revision the page reads.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use castellan_core::model::User;
use parking_lot::Mutex;
use rusqlite::Connection;

use super::current_revision;
use crate::{Result, Revision, SortValue, UserCursor, UserOrder};

/// Rows between two fences when a set is built.
pub(super) const SPACING: i64 = 1_000;

/// A set is dropped (and built again on demand) once a page would step over more rows than this from its nearest
/// fence: deletions of fenced rows thin a set out.
const SPARSEST: i64 = 4 * SPACING;

/// One ordering: its keys, each ascending or descending, as the list query names them (the `pk` tiebreak last).
pub(super) type Order = Vec<(UserOrder, bool)>;

/// Most orderings with fences at once: each costs a scan of the users to build and a little work on every user
/// write to keep.
const MOST_ORDERINGS: usize = 16;

/// A user at a known position.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fence {
    /// The user's values of the sort keys before the `pk` tiebreak, as the store compares them.
    pub value: Vec<SortValue>,
    /// The user's pk.
    pub pk: i64,
    /// How many users come before it in the ordering.
    pub rank: i64,
}

/// Where a deep page starts reading: after `fence`, skipping `offset - fence.rank - 1` more rows, valid while the
/// store is at `revision` with `total` users.
pub(super) struct Seek {
    /// The nearest fence before the page.
    pub fence: Fence,
    /// The revision the fences reflect.
    pub revision: Revision,
    /// The number of users they count.
    pub total: i64,
}

/// The fences of one ordering.
#[derive(Debug)]
pub(super) struct Set {
    revision: Revision,
    total: i64,
    fences: Vec<Fence>,
}

/// A user row changed by a write: its state before and after (`None` when created or deleted).
pub(super) struct Moved {
    /// Before the write.
    pub before: Option<User>,
    /// After the write.
    pub after: Option<User>,
}

/// Every ordering's fences, and which are being built.
#[derive(Default)]
pub(super) struct Fences {
    sets: Mutex<HashMap<Order, Set>>,
    building: Mutex<HashSet<Order>>,
}

impl Fences {
    /// Where a page at `offset` of `order` starts reading, when this ordering has fences.
    pub fn seek(&self, order: &Order, offset: i64) -> Option<Seek> {
        let mut sets = self.sets.lock();
        let set = sets.get(order)?;
        if offset >= set.total {
            // A page past the end: nothing to seek (and no reason to think the fences thinned out).
            return None;
        }
        let before = set.fences.partition_point(|f| f.rank < offset);
        let fence = set.fences.get(before.checked_sub(1)?)?.clone();
        if offset - fence.rank > SPARSEST {
            sets.remove(order);
            return None;
        }
        Some(Seek { fence, revision: set.revision, total: set.total })
    }

    /// Claims the building of `order`'s fences: false while it is built already or held, or when as many
    /// orderings as are kept have fences.
    pub fn claim(&self, order: &Order) -> bool {
        let sets = self.sets.lock();
        !sets.contains_key(order) && sets.len() < MOST_ORDERINGS && self.building.lock().insert(order.clone())
    }

    /// Installs a built set (on the writer thread, after the commit of the group it was built in).
    pub fn install(&self, order: Order, set: Set) {
        self.building.lock().remove(&order);
        self.sets.lock().insert(order, set);
    }

    /// Gives up the claim on `order` (its build failed).
    pub fn release(&self, order: &Order) {
        self.building.lock().remove(order);
    }

    /// Forgets every set: rows were written without revisions (a bulk load), which no set can follow.
    pub fn clear(&self) {
        self.sets.lock().clear();
    }

    /// Follows one committed write (on the writer thread, in commit order): the revisions it logged and the user
    /// rows it changed.
    pub fn follow(&self, revisions: &[Revision], moved: &[Moved]) {
        let (Some(first), Some(last)) = (revisions.first(), revisions.last()) else { return };
        self.sets.lock().retain(|order, set| {
            if *first != set.revision + 1 {
                return false;
            }
            for m in moved {
                set.apply(order, m);
            }
            set.revision = *last;
            true
        });
    }
}

impl Set {
    /// Scans `order` on `c` (the writer's connection, inside its transaction) and keeps every [`SPACING`]-th row.
    pub fn build(c: &Connection, order: &Order) -> Result<Self> {
        let keys: Vec<&str> = UserOrder::keys(order).map(|(key, _)| super::users::order_column(key)).collect();
        let mut sql =
            super::Sql::new(&format!("SELECT {}pk FROM users", keys.iter().map(|k| format!("{k}, ")).collect::<String>()));
        super::users::push_order(&mut sql, order, false);
        let (mut total, mut fences) = (0, Vec::new());
        sql.each(c, |row| {
            if total % SPACING == SPACING - 1 {
                let value = (0..keys.len()).map(|i| sort_value(row.get_ref(i)?)).collect::<rusqlite::Result<_>>()?;
                fences.push(Fence { value, pk: row.get(keys.len())?, rank: total });
            }
            total += 1;
            Ok(())
        })?;
        Ok(Self { revision: current_revision(c)?, total, fences })
    }

    /// Moves the fences past a changed row: a row leaving a place before a fence lowers its rank, one arriving
    /// raises it; a fence on the changed row itself is dropped.
    fn apply(&mut self, order: &Order, moved: &Moved) {
        let place = |u: &User| (UserCursor::at(u, order, false).keys, u.pk);
        let (before, after) = (moved.before.as_ref().map(place), moved.after.as_ref().map(place));
        if before == after {
            return;
        }
        if let Some((value, pk)) = &before {
            self.fences.retain(|f| f.pk != *pk);
            for f in &mut self.fences {
                if precedes(value, *pk, f, order) {
                    f.rank -= 1;
                }
            }
            self.total -= 1;
        }
        if let Some((value, pk)) = &after {
            for f in &mut self.fences {
                if precedes(value, *pk, f, order) {
                    f.rank += 1;
                }
            }
            self.total += 1;
        }
    }
}

/// A stored sort value as the store compares it.
fn sort_value(value: rusqlite::types::ValueRef<'_>) -> rusqlite::Result<SortValue> {
    Ok(match value {
        rusqlite::types::ValueRef::Integer(n) => SortValue::Int(n),
        rusqlite::types::ValueRef::Text(t) => SortValue::Text(String::from_utf8_lossy(t).into_owned()),
        _ => SortValue::Null,
    })
}

/// Whether the row (`value`, `pk`) comes before `fence` in `order`.
fn precedes(value: &[SortValue], pk: i64, fence: &Fence, order: &Order) -> bool {
    let by_keys =
        UserOrder::keys(order).zip(value.iter().zip(&fence.value)).fold(Ordering::Equal, |decided, ((_, desc), (a, b))| {
            decided.then_with(|| if desc { compare(a, b).reverse() } else { compare(a, b) })
        });
    let by_pk = if UserOrder::pk_descends(order) { fence.pk.cmp(&pk) } else { pk.cmp(&fence.pk) };
    by_keys.then(by_pk) == Ordering::Less
}

/// SQLite's order of two sort values: nulls first, numbers before texts, texts byte by byte (`BINARY`).
fn compare(a: &SortValue, b: &SortValue) -> Ordering {
    let class = |v: &SortValue| match v {
        SortValue::Null => 0,
        SortValue::Int(_) => 1,
        SortValue::Text(_) => 2,
    };
    match (a, b) {
        (SortValue::Int(x), SortValue::Int(y)) => x.cmp(y),
        (SortValue::Text(x), SortValue::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => class(a).cmp(&class(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> Set {
        let fences = values
            .iter()
            .enumerate()
            .map(|(i, v)| Fence { value: vec![SortValue::Text(v.to_string())], pk: i as i64 + 1, rank: i as i64 * 10 })
            .collect();
        Set { revision: 1, total: values.len() as i64 * 10, fences }
    }

    #[test]
    fn ranks_follow_rows_arriving_and_leaving_before_them() {
        let mut s = set(&["b", "d", "f"]);
        let order = vec![(UserOrder::Username, false)];
        let user = |pk: i64, name: &str| User {
            pk,
            username: name.into(),
            first_name: String::new(),
            last_name: String::new(),
            email: String::new(),
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
        };
        s.apply(&order, &Moved { before: None, after: Some(user(9, "c")) });
        assert_eq!(s.fences.iter().map(|f| f.rank).collect::<Vec<_>>(), [0, 11, 21]);
        s.apply(&order, &Moved { before: Some(user(9, "c")), after: Some(user(9, "z")) });
        assert_eq!(s.fences.iter().map(|f| f.rank).collect::<Vec<_>>(), [0, 10, 20]);
        s.apply(&order, &Moved { before: Some(user(2, "d")), after: None });
        assert_eq!(s.fences.iter().map(|f| (f.pk, f.rank)).collect::<Vec<_>>(), [(1, 0), (3, 19)]);
        assert_eq!(s.total, 30);
    }

    #[test]
    fn descending_orders_compare_the_other_way_and_ties_by_pk() {
        let text = |t: &str| vec![SortValue::Text(t.into())];
        let fence = Fence { value: text("m"), pk: 5, rank: 0 };
        let desc = vec![(UserOrder::Email, true)];
        assert!(precedes(&text("z"), 9, &fence, &desc));
        assert!(!precedes(&text("a"), 1, &fence, &desc));
        assert!(precedes(&text("m"), 4, &fence, &desc), "ties ascend by pk");
        let by_date = vec![(UserOrder::DateJoined, false)];
        assert!(precedes(&[SortValue::Null], 9, &Fence { value: vec![SortValue::Int(1)], pk: 1, rank: 0 }, &by_date));
        let two = vec![(UserOrder::LastName, false), (UserOrder::FirstName, true), (UserOrder::Id, true)];
        let fence = Fence { value: vec![SortValue::Text("b".into()), SortValue::Text("m".into())], pk: 5, rank: 0 };
        let row = |last: &str, first: &str| vec![SortValue::Text(last.into()), SortValue::Text(first.into())];
        assert!(precedes(&row("a", "a"), 1, &fence, &two));
        assert!(precedes(&row("b", "z"), 1, &fence, &two), "the second key descends");
        assert!(precedes(&row("b", "m"), 6, &fence, &two), "and so does the pk");
        assert!(!precedes(&row("b", "m"), 4, &fence, &two));
    }

    #[test]
    fn a_set_that_missed_a_revision_is_dropped() {
        let fences = Fences::default();
        let order = vec![(UserOrder::Username, false)];
        fences.install(order.clone(), set(&["a", "b"]));
        fences.follow(&[2], &[]);
        assert!(fences.seek(&order, 15).is_some());
        fences.follow(&[4], &[]);
        assert!(fences.seek(&order, 15).is_none());
    }

    #[test]
    fn a_page_past_the_end_keeps_the_set() {
        let fences = Fences::default();
        let order = vec![(UserOrder::Username, false)];
        fences.install(order.clone(), set(&["a", "b"]));
        assert!(fences.seek(&order, 20_000).is_none());
        assert!(fences.seek(&order, 15).is_some(), "still there");
        fences.clear();
        assert!(fences.seek(&order, 15).is_none());
    }
}
