//! The audit log: filtered, ordered, counted pages of the change log.

use async_trait::async_trait;
use castellan_core::change::Change;
use rusqlite::Row;
use serde_json::Value;
use time::OffsetDateTime;

use super::{Sql, SqliteStore};
use crate::time_util::from_micros;
use crate::{AuditStore, ChangeEntry, ChangeOrder, ChangeQuery, Page, Result};

const CHANGE_COLUMNS: &str = "pk, at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id";

/// A change-log row read as [`CHANGE_COLUMNS`], in that order.
pub(super) fn change_from_row(r: &Row<'_>) -> rusqlite::Result<ChangeEntry> {
    let text = r
        .get_ref(8)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, e.into()))?;
    // Parsed once: the audit log shows the JSON, followers read the typed change out of it.
    let changes: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    Ok(ChangeEntry {
        pk: r.get(0)?,
        at: from_micros(r.get(1)?),
        revision: r.get(2)?,
        actor: r.get::<_, Option<i64>>(3)?.zip(r.get::<_, Option<String>>(4)?),
        action: r.get(5)?,
        target_type: r.get(6)?,
        target_pk: r.get(7)?,
        change: Change::from_value(&changes),
        changes,
        ip: r.get(9)?,
        request_id: r.get(10)?,
    })
}

/// The first whole microsecond at or after `t`: rows are stored in microseconds, so `at >= ceil(t)` is `at >= t`
/// and `at < ceil(t)` is `at < t`.
fn micros_ceil(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    let micros = nanos.div_euclid(1000) + i128::from(nanos.rem_euclid(1000) != 0);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// `AND ((target_type = ? AND target_pk = ?) OR ...)` for a non-empty list of targets.
fn push_targets(sql: &mut Sql, targets: &[(String, String)]) {
    if targets.is_empty() {
        return;
    }
    sql.push(" AND (");
    for (i, (kind, pk)) in targets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(target_type = ").bind(kind.clone()).push(" AND target_pk = ").bind(pk.clone()).push(")");
    }
    sql.push(")");
}

fn push_filter(sql: &mut Sql, q: &ChangeQuery) {
    sql.push(" WHERE 1 = 1");
    if let Some(after) = q.after {
        sql.push(" AND pk > ").bind(after);
    }
    if let Some(org) = q.org {
        sql.push(" AND org = ").bind(org);
    }
    sql.and_in("actor", &q.actors);
    sql.and_in("target_type", &q.target_types);
    sql.and_in("target_pk", &q.target_pks);
    sql.and_in("action", &q.actions);
    if let Some(since) = q.since {
        sql.push(" AND at >= ").bind(micros_ceil(since));
    }
    if let Some(until) = q.until {
        sql.push(" AND at < ").bind(micros_ceil(until));
    }
    push_targets(sql, &q.subjects);
    push_targets(sql, &q.objects);
}

fn push_order(sql: &mut Sql, ordering: &[(ChangeOrder, bool)]) {
    let keys: Vec<(ChangeOrder, bool)> = if ordering.is_empty() { vec![(ChangeOrder::Pk, true)] } else { ordering.to_vec() };
    let tiebreak_desc = keys[0].1;
    let mut terms = Vec::new();
    for (key, desc) in &keys {
        let column = match key {
            ChangeOrder::Pk => "pk",
            ChangeOrder::At => "at",
            ChangeOrder::Revision => "revision",
        };
        terms.push(format!("{column} {}", if *desc { "DESC" } else { "ASC" }));
        if *key == ChangeOrder::Pk {
            break;
        }
    }
    if !keys.iter().any(|(k, _)| *k == ChangeOrder::Pk) {
        terms.push(format!("pk {}", if tiebreak_desc { "DESC" } else { "ASC" }));
    }
    sql.push(" ORDER BY ").push(&terms.join(", "));
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn list_changes(&self, query: &ChangeQuery) -> Result<Page<ChangeEntry>> {
        let mut count_sql = Sql::new("SELECT count(*) FROM change_log");
        push_filter(&mut count_sql, query);
        let mut sql = Sql::new(&format!("SELECT {CHANGE_COLUMNS} FROM change_log"));
        push_filter(&mut sql, query);
        push_order(&mut sql, &query.ordering);
        sql.push(" LIMIT ").bind(query.limit).push(" OFFSET ").bind(query.offset.max(0));
        let (limit, offset) = (query.limit, query.offset);
        self.read(move |c| {
            let count: i64 = count_sql.row(c, |r| r.get(0))?.unwrap_or_default();
            if limit <= 0 || offset >= count {
                return Ok(Page { count, items: Vec::new() });
            }
            let items = sql.rows(c, change_from_row)?;
            Ok(Page { count, items })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_to_micros() {
        let t = |nanos: i128| OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
        assert_eq!(micros_ceil(t(5_000)), 5);
        assert_eq!(micros_ceil(t(5_001)), 6);
        assert_eq!(micros_ceil(t(-5_001)), -5);
        assert_eq!(micros_ceil(t(0)), 0);
    }
}
