//! The newest change-log rows this process committed, kept in memory in commit order: following this server's own
//! writes then reads no database. Rows another process wrote leave a gap in the keys, and a gap is read from the log.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::ChangeEntry;

/// Rows kept: enough for every follower of a burst of writes, small enough to cost nothing.
const KEPT: usize = 4096;

/// The newest rows committed by this process, oldest first (so in key order).
#[derive(Default)]
pub(crate) struct CommittedTail {
    rows: Mutex<VecDeque<ChangeEntry>>,
}

impl CommittedTail {
    /// Appends rows just committed (in commit order), forgetting the oldest beyond [`KEPT`].
    pub(crate) fn push(&self, committed: Vec<ChangeEntry>) {
        if committed.is_empty() {
            return;
        }
        let mut rows = self.rows.lock();
        rows.extend(committed);
        let excess = rows.len().saturating_sub(KEPT);
        rows.drain(..excess);
    }

    /// The rows after `after_pk`, at most `limit`, when every one of them up to the newest held is held: `None` when
    /// the next row is not held, or when a row of another process comes before the limit (the log has it).
    pub(crate) fn after(&self, after_pk: i64, limit: usize) -> Option<Vec<ChangeEntry>> {
        let rows = self.rows.lock();
        let start = rows.binary_search_by_key(&(after_pk + 1), |row| row.pk).ok()?;
        let run = rows.range(start..).take(limit);
        let whole = run.clone().zip(after_pk + 1..).all(|(row, pk)| row.pk == pk);
        (whole && limit > 0).then(|| run.cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pk: i64) -> ChangeEntry {
        ChangeEntry {
            pk,
            at: time::OffsetDateTime::UNIX_EPOCH,
            revision: Some(pk),
            actor: None,
            action: "update".into(),
            target_type: "group".into(),
            target_pk: pk.to_string(),
            changes: serde_json::Value::Null,
            change: None,
            ip: None,
            request_id: None,
        }
    }

    fn pks(rows: Option<Vec<ChangeEntry>>) -> Option<Vec<i64>> {
        rows.map(|rows| rows.iter().map(|r| r.pk).collect())
    }

    #[test]
    fn serves_rows_after_a_key_only_when_it_holds_them_all() {
        let tail = CommittedTail::default();
        assert_eq!(pks(tail.after(0, 10)), None, "empty");
        tail.push(vec![row(5), row(6), row(7)]);
        // Another process wrote row 8.
        tail.push(vec![row(9), row(10)]);
        assert_eq!(pks(tail.after(4, 10)), None, "row 8 comes first: read them from the log");
        assert_eq!(pks(tail.after(4, 3)), Some(vec![5, 6, 7]), "up to the limit, before the gap");
        assert_eq!(pks(tail.after(5, 1)), Some(vec![6]));
        assert_eq!(pks(tail.after(7, 10)), None, "row 8 is not held: read it from the log");
        assert_eq!(pks(tail.after(8, 10)), Some(vec![9, 10]));
        assert_eq!(pks(tail.after(10, 10)), None, "nothing newer");
        assert_eq!(pks(tail.after(3, 10)), None, "row 4 is not held either");
    }

    #[test]
    fn forgets_the_oldest_rows() {
        let tail = CommittedTail::default();
        let rows: Vec<ChangeEntry> = (1..=KEPT as i64 + 10).map(row).collect();
        tail.push(rows);
        assert_eq!(pks(tail.after(5, 1)), None);
        assert_eq!(pks(tail.after(10, 1)), Some(vec![11]));
    }
}
