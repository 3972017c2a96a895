//! The audit log: filtered, ordered, counted pages of the change log.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite};
use time::OffsetDateTime;

use super::{SqliteStore, backend, push_in};
use crate::time_util::from_micros;
use crate::{AuditStore, ChangeEntry, ChangeOrder, ChangeQuery, Page, Result};

const CHANGE_COLUMNS: &str = "pk, at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id";

#[derive(sqlx::FromRow)]
struct ChangeRow {
    pk: i64,
    at: i64,
    revision: Option<i64>,
    actor: Option<i64>,
    actor_username: Option<String>,
    action: String,
    target_type: String,
    target_pk: String,
    changes: String,
    ip: Option<String>,
    request_id: Option<String>,
}

impl From<ChangeRow> for ChangeEntry {
    fn from(r: ChangeRow) -> Self {
        ChangeEntry {
            pk: r.pk,
            at: from_micros(r.at),
            revision: r.revision,
            actor: r.actor.zip(r.actor_username),
            action: r.action,
            target_type: r.target_type,
            target_pk: r.target_pk,
            changes: serde_json::from_str(&r.changes).unwrap_or(Value::Null),
            ip: r.ip,
            request_id: r.request_id,
        }
    }
}

/// The first whole microsecond at or after `t`: rows are stored in microseconds, so `at >= ceil(t)` is `at >= t`
/// and `at < ceil(t)` is `at < t`.
fn micros_ceil(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    let micros = nanos.div_euclid(1000) + i128::from(nanos.rem_euclid(1000) != 0);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// `AND ((target_type = ? AND target_pk = ?) OR ...)` for a non-empty list of targets.
fn push_targets(qb: &mut QueryBuilder<Sqlite>, targets: &[(String, String)]) {
    if targets.is_empty() {
        return;
    }
    qb.push(" AND (");
    for (i, (kind, pk)) in targets.iter().enumerate() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(target_type = ").push_bind(kind.clone()).push(" AND target_pk = ").push_bind(pk.clone()).push(")");
    }
    qb.push(")");
}

fn push_filter(qb: &mut QueryBuilder<Sqlite>, q: &ChangeQuery) {
    qb.push(" WHERE 1 = 1");
    if let Some(after) = q.after {
        qb.push(" AND pk > ").push_bind(after);
    }
    if let Some(org) = q.org {
        qb.push(" AND org = ").push_bind(org);
    }
    push_in(qb, "actor", &q.actors);
    push_in(qb, "target_type", &q.target_types);
    push_in(qb, "target_pk", &q.target_pks);
    push_in(qb, "action", &q.actions);
    if let Some(since) = q.since {
        qb.push(" AND at >= ").push_bind(micros_ceil(since));
    }
    if let Some(until) = q.until {
        qb.push(" AND at < ").push_bind(micros_ceil(until));
    }
    push_targets(qb, &q.subjects);
    push_targets(qb, &q.objects);
}

fn push_order(qb: &mut QueryBuilder<Sqlite>, ordering: &[(ChangeOrder, bool)]) {
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
    qb.push(" ORDER BY ").push(terms.join(", "));
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn list_changes(&self, query: &ChangeQuery) -> Result<Page<ChangeEntry>> {
        let mut count_qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM change_log");
        push_filter(&mut count_qb, query);
        let count: i64 = count_qb.build_query_scalar().fetch_one(&self.pool).await.map_err(backend)?;
        if query.limit <= 0 || query.offset >= count {
            return Ok(Page { count, items: Vec::new() });
        }
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {CHANGE_COLUMNS} FROM change_log"));
        push_filter(&mut qb, query);
        push_order(&mut qb, &query.ordering);
        qb.push(" LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset.max(0));
        let rows: Vec<ChangeRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(backend)?;
        Ok(Page { count, items: rows.into_iter().map(ChangeEntry::from).collect() })
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
