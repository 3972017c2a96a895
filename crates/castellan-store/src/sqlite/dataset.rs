//! A deterministic synthetic directory for benchmarks: users, a group forest of fixed fan-out, and memberships,
//! written with bulk inserts (one write on the writer thread) rather than the per-write API.

use std::collections::HashMap;

use castellan_core::engine::{Facts, ObjectKey, SubjectFact};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use super::SqliteStore;
use crate::Result;
use crate::time_util::now_micros;

/// The shape of a synthetic dataset.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSpec {
    /// Users to create (`user0000001` ...).
    pub users: u64,
    /// Root groups.
    pub roots: u64,
    /// Children per group above the deepest level.
    pub fanout: u64,
    /// Levels of the group forest (roots are level 1).
    pub depth: u32,
    /// Group memberships per user (to deepest-level groups).
    pub memberships_per_user: u64,
    /// The organisation everything belongs to.
    pub org: i64,
}

/// Key ranges of what was created.
#[derive(Debug, Clone)]
pub struct DatasetInfo {
    /// First and last user key.
    pub users: (i64, i64),
    /// Keys of the groups at each level, as (first, last), roots first.
    pub levels: Vec<(i64, i64)>,
    /// Memberships written.
    pub memberships: u64,
}

/// Rows per multi-row insert statement (at most 10 columns here, so well under SQLite's 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 1_000;

/// A multi-row insert fed one row of `W` values at a time; a statement runs each time enough rows are waiting.
struct BulkInsert<'c, const W: usize> {
    conn: &'c Connection,
    head: &'static str,
    /// The statement inserting [`ROWS_PER_STATEMENT`] rows.
    full: String,
    values: Vec<SqlValue>,
    rows: u64,
}

impl<'c, const W: usize> BulkInsert<'c, W> {
    /// Starts an insert of rows after `head` (`INSERT INTO table (columns) VALUES `).
    fn new(conn: &'c Connection, head: &'static str) -> Self {
        let full = statement(head, W, ROWS_PER_STATEMENT);
        Self { conn, head, full, values: Vec::with_capacity(W * ROWS_PER_STATEMENT), rows: 0 }
    }

    /// Adds one row, running a statement when enough rows are waiting.
    fn push(&mut self, row: [SqlValue; W]) -> Result<()> {
        self.values.extend(row);
        self.rows += 1;
        if self.values.len() == W * ROWS_PER_STATEMENT {
            self.conn.prepare_cached(&self.full)?.execute(params_from_iter(self.values.drain(..)))?;
        }
        Ok(())
    }

    /// Inserts the rows still waiting; answers how many rows were given (ignored duplicates included).
    fn finish(mut self) -> Result<u64> {
        if !self.values.is_empty() {
            let sql = statement(self.head, W, self.values.len() / W);
            self.conn.prepare_cached(&sql)?.execute(params_from_iter(self.values.drain(..)))?;
        }
        Ok(self.rows)
    }
}

/// `head` followed by `rows` placeholder rows of `width` values.
fn statement(head: &str, width: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    format!("{head}{}", vec![row.as_str(); rows].join(", "))
}

/// Inserts every row of `rows` after `head`; answers how many rows were given.
fn insert_rows<const W: usize>(
    conn: &Connection,
    head: &'static str,
    rows: impl IntoIterator<Item = [SqlValue; W]>,
) -> Result<u64> {
    let mut insert = BulkInsert::new(conn, head);
    for row in rows {
        insert.push(row)?;
    }
    insert.finish()
}

/// The largest key of `table` (0 when empty).
fn max_pk(conn: &Connection, table: &str) -> Result<i64> {
    Ok(conn.query_row(&format!("SELECT COALESCE(MAX(pk), 0) FROM {table}"), [], |r| r.get(0))?)
}

/// Rows of a group forest's closure table (ancestor, descendant, depth), each group being its own ancestor at depth 0.
fn closure_rows(groups: &[(i64, Option<i64>)], key: impl Fn(i64) -> i64, bounded: bool) -> Vec<[SqlValue; 3]> {
    let parent_of: HashMap<i64, Option<i64>> = groups.iter().copied().collect();
    let mut rows = Vec::new();
    for (pk, _) in groups {
        let (mut at, mut depth) = (Some(*pk), 0i64);
        while let Some(a) = at {
            rows.push([key(a).into(), key(*pk).into(), depth.into()]);
            depth += 1;
            at = parent_of.get(&a).copied().flatten();
            if bounded && depth as usize > groups.len() {
                break;
            }
        }
    }
    rows
}

/// Inserts groups (key and parent key) with empty descriptions and permissions.
const INSERT_GROUPS: &str =
    "INSERT INTO groups (pk, name, description, org, parent, permissions, created_date, modified_date) VALUES ";
/// Inserts closure rows.
const INSERT_CLOSURE: &str = "INSERT INTO group_closure (ancestor, descendant, depth) VALUES ";

/// A group row: key, name `g{key}`, organisation, parent, timestamps `now`.
fn group_row(pk: i64, parent: Option<i64>, org: i64, now: i64) -> [SqlValue; 8] {
    [
        pk.into(),
        format!("g{pk}").into(),
        String::new().into(),
        org.into(),
        parent.into(),
        "{}".to_string().into(),
        now.into(),
        now.into(),
    ]
}

impl SqliteStore {
    /// Writes the dataset in bulk; the revision counter is left alone (this is a fixture, not a change).
    pub async fn load_dataset(&self, spec: &DatasetSpec, password_hash: &str) -> Result<DatasetInfo> {
        let (spec, password_hash) = (*spec, password_hash.to_string());
        let info = self.write_plain(move |c| load_dataset(c, &spec, &password_hash)).await;
        self.orders.clear();
        info
    }

    /// Bulk-writes a generated permission model (users, groups with their closure, memberships, modules, objects and
    /// grants) into an empty store part: keys are shifted past the existing ones. A fixture, not a change: the
    /// revision counter is left alone.
    pub async fn import_facts(&self, facts: &Facts, org: i64, password_hash: &str) -> Result<ImportCounts> {
        let (facts, password_hash) = (facts.clone(), password_hash.to_string());
        let counts = self.write_plain(move |c| import_facts(c, &facts, org, &password_hash)).await;
        self.orders.clear();
        counts
    }
}

/// Writes the dataset of `spec` on the writer's connection.
fn load_dataset(c: &Connection, spec: &DatasetSpec, password_hash: &str) -> Result<DatasetInfo> {
    let now = now_micros();
    let levels = load_groups(c, spec, now)?;
    let first_user = load_users(c, spec, password_hash, now)?;
    let last_user = first_user + spec.users as i64 - 1;
    let (leaf_first, leaf_last) = *levels.last().unwrap_or(&(0, -1));
    let leaves = (leaf_last - leaf_first + 1).max(0) as u64;
    let mut rng = castellan_core::engine::synthetic::Rng(42);
    let mut insert = BulkInsert::new(c, "INSERT OR IGNORE INTO memberships (user, grp) VALUES ");
    if leaves > 0 {
        for user in first_user..=last_user {
            for _ in 0..spec.memberships_per_user {
                insert.push([user.into(), (leaf_first + rng.below(leaves) as i64).into()])?;
            }
        }
    }
    let memberships = insert.finish()?;
    Ok(DatasetInfo { users: (first_user, last_user), levels, memberships })
}

/// Writes the group forest and its closure; answers the key range of each level.
fn load_groups(c: &Connection, spec: &DatasetSpec, now: i64) -> Result<Vec<(i64, i64)>> {
    let base = max_pk(c, "groups")?;
    let mut levels = Vec::new();
    let mut groups: Vec<(i64, Option<i64>)> = Vec::new();
    let mut next = base + 1;
    let mut previous: Vec<i64> = Vec::new();
    for level in 0..spec.depth {
        let start = next;
        let mut current = Vec::new();
        let parents: Vec<Option<i64>> = if level == 0 {
            vec![None; spec.roots as usize]
        } else {
            previous.iter().flat_map(|p| std::iter::repeat_n(Some(*p), spec.fanout as usize)).collect()
        };
        for parent in parents {
            groups.push((next, parent));
            current.push(next);
            next += 1;
        }
        levels.push((start, next - 1));
        previous = current;
    }
    insert_rows(c, INSERT_GROUPS, groups.iter().map(|&(pk, parent)| group_row(pk, parent, spec.org, now)))?;
    insert_rows(c, INSERT_CLOSURE, closure_rows(&groups, |pk| pk, false))?;
    Ok(levels)
}

/// Writes the users; answers the first one's key.
fn load_users(c: &Connection, spec: &DatasetSpec, password_hash: &str, now: i64) -> Result<i64> {
    let base = max_pk(c, "users")?;
    let rows = (0..spec.users).map(|i| {
        let pk = base + 1 + i as i64;
        let email = format!("person{pk}@domain{}.example.com", pk % 97);
        [
            pk.into(),
            format!("user{pk:07}").into(),
            format!("user{pk:07}").into(),
            password_hash.to_string().into(),
            email.clone().into(),
            email.into(),
            format!("First{}", pk % 1000).into(),
            format!("Last{}", pk % 5000).into(),
            now.into(),
            spec.org.into(),
        ]
    });
    insert_rows(
        c,
        "INSERT INTO users (pk, username, username_lower, password_hash, email, email_lower, first_name, last_name, date_joined, org) VALUES ",
        rows,
    )?;
    Ok(base + 1)
}

/// What an import of engine facts wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportCounts {
    /// Users written.
    pub users: usize,
    /// Groups written.
    pub groups: usize,
    /// Memberships written.
    pub memberships: usize,
    /// Objects written.
    pub objects: usize,
    /// Grants written.
    pub grants: usize,
}

/// Writes `facts` on the writer's connection, keys shifted past the existing ones.
fn import_facts(c: &Connection, facts: &Facts, org: i64, password_hash: &str) -> Result<ImportCounts> {
    let now = now_micros();
    let (user_base, group_base, object_base) = (max_pk(c, "users")?, max_pk(c, "groups")?, max_pk(c, "objects")?);
    let user = |pk: i64| user_base + pk;
    let group = |pk: i64| group_base + pk;
    insert_rows(
        c,
        "INSERT INTO users (pk, username, username_lower, password_hash, email, email_lower, date_joined, org, is_active, is_superuser) VALUES ",
        facts.users.iter().map(|u| {
            let pk = user(u.pk);
            [
                pk.into(),
                format!("user{pk:07}").into(),
                format!("user{pk:07}").into(),
                password_hash.to_string().into(),
                format!("user{pk}@example.com").into(),
                format!("user{pk}@example.com").into(),
                now.into(),
                org.into(),
                u.is_active.into(),
                u.is_superuser.into(),
            ]
        }),
    )?;
    insert_rows(c, INSERT_GROUPS, facts.groups.iter().map(|&(pk, _, parent)| group_row(group(pk), parent.map(group), org, now)))?;
    let tree: Vec<(i64, Option<i64>)> = facts.groups.iter().map(|&(pk, _, parent)| (pk, parent)).collect();
    insert_rows(c, INSERT_CLOSURE, closure_rows(&tree, group, true))?;
    insert_rows(
        c,
        "INSERT OR IGNORE INTO memberships (user, grp, expires_at, restricted) VALUES ",
        facts
            .memberships
            .iter()
            .map(|m| [user(m.user).into(), group(m.group).into(), m.expires_at.into(), m.restriction.is_some().into()]),
    )?;
    insert_rows(
        c,
        "INSERT OR IGNORE INTO modules (id, description, is_active, custom_actions, builtin, created_date, modified_date) VALUES ",
        facts.modules.iter().map(|m| {
            [
                m.id.clone().into(),
                String::new().into(),
                m.is_active.into(),
                serde_json::json!(m.custom_actions).to_string().into(),
                0i64.into(),
                now.into(),
                now.into(),
            ]
        }),
    )?;
    let object_pk: HashMap<&ObjectKey, i64> =
        facts.objects.iter().enumerate().map(|(i, o)| (&o.key, object_base + 1 + i as i64)).collect();
    insert_rows(
        c,
        "INSERT INTO objects (pk, model, object_pk, parent, org) VALUES ",
        facts.objects.iter().map(|o| {
            let parent = o.parent.as_ref().and_then(|p| object_pk.get(p)).copied();
            [object_pk[&o.key].into(), o.key.0.clone().into(), o.key.1.clone().into(), parent.into(), org.into()]
        }),
    )?;
    insert_rows(
        c,
        "INSERT OR IGNORE INTO grants (subject_type, subject_pk, module, action, object_model, object_pk, expires_at) VALUES ",
        facts.grants.iter().map(|g| {
            let (kind, pk) = match g.subject {
                SubjectFact::User(pk) => ("user", user(pk)),
                SubjectFact::Group(pk) => ("group", group(pk)),
                SubjectFact::Role(pk) => ("role", pk),
            };
            let (model, key) = g.object.clone().unwrap_or_default();
            [
                kind.to_string().into(),
                pk.into(),
                g.module.clone().into(),
                g.action.clone().into(),
                model.into(),
                key.into(),
                g.expires_at.into(),
            ]
        }),
    )?;
    Ok(ImportCounts {
        users: facts.users.len(),
        groups: facts.groups.len(),
        memberships: facts.memberships.len(),
        objects: facts.objects.len(),
        grants: facts.grants.len(),
    })
}
