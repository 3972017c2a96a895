//! A deterministic synthetic directory for benchmarks: users, a group forest of fixed fan-out, and memberships,
//! written with bulk inserts (one transaction per table) rather than the per-write API.

use super::{SqliteStore, backend};
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

const BATCH: usize = 10_000;

impl SqliteStore {
    /// Writes the dataset in bulk; the revision counter is left alone (this is a fixture, not a change).
    pub async fn load_dataset(&self, spec: &DatasetSpec, password_hash: &str) -> Result<DatasetInfo> {
        let now = now_micros();
        let levels = self.load_groups(spec, now).await?;
        let first_user = self.load_users(spec, password_hash, now).await?;
        let last_user = first_user + spec.users as i64 - 1;
        let (leaf_first, leaf_last) = *levels.last().unwrap_or(&(0, -1));
        let leaves = (leaf_last - leaf_first + 1).max(0) as u64;
        let mut rng = castellan_core::engine::synthetic::Rng(42);
        let mut pairs = Vec::new();
        if leaves > 0 {
            for user in first_user..=last_user {
                for _ in 0..spec.memberships_per_user {
                    pairs.push((user, leaf_first + rng.below(leaves) as i64));
                }
            }
        }
        let memberships = self.insert_rows("INSERT OR IGNORE INTO memberships (user, grp) VALUES ", 2, &flatten(&pairs)).await?;
        Ok(DatasetInfo { users: (first_user, last_user), levels, memberships })
    }

    async fn load_groups(&self, spec: &DatasetSpec, now: i64) -> Result<Vec<(i64, i64)>> {
        let base: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(pk), 0) FROM groups").fetch_one(&self.pool).await.map_err(backend)?;
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
        let mut rows: Vec<String> = Vec::with_capacity(groups.len());
        for (pk, parent) in &groups {
            let parent = parent.map_or("NULL".to_string(), |p| p.to_string());
            rows.push(format!("({pk}, 'g{pk}', '', {}, {parent}, '{{}}', {now}, {now})", spec.org));
        }
        self.insert_literal(
            "INSERT INTO groups (pk, name, description, org, parent, permissions, created_date, modified_date) VALUES ",
            &rows,
        )
        .await?;
        let parent_of: std::collections::HashMap<i64, Option<i64>> = groups.iter().copied().collect();
        let mut closure = Vec::new();
        for (pk, _) in &groups {
            let mut depth = 0;
            let mut at = Some(*pk);
            while let Some(a) = at {
                closure.push(format!("({a}, {pk}, {depth})"));
                depth += 1;
                at = parent_of.get(&a).copied().flatten();
            }
        }
        self.insert_literal("INSERT INTO group_closure (ancestor, descendant, depth) VALUES ", &closure).await?;
        Ok(levels)
    }

    async fn load_users(&self, spec: &DatasetSpec, password_hash: &str, now: i64) -> Result<i64> {
        let base: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(pk), 0) FROM users").fetch_one(&self.pool).await.map_err(backend)?;
        let hash = password_hash.replace('\'', "''");
        let mut rows = Vec::with_capacity(BATCH);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for i in 0..spec.users {
            let pk = base + 1 + i as i64;
            rows.push(format!(
                "({pk}, 'user{pk:07}', 'user{pk:07}', '{hash}', 'person{pk}@domain{}.example.com', 'person{pk}@domain{}.example.com', 'First{}', 'Last{}', {now}, {})",
                pk % 97,
                pk % 97,
                pk % 1000,
                pk % 5000,
                spec.org
            ));
            if rows.len() == BATCH || i + 1 == spec.users {
                let sql = format!(
                    "INSERT INTO users (pk, username, username_lower, password_hash, email, email_lower, first_name, last_name, date_joined, org) VALUES {}",
                    rows.join(", ")
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.map_err(backend)?;
                rows.clear();
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(base + 1)
    }

    async fn insert_literal(&self, head: &str, rows: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        for chunk in rows.chunks(BATCH) {
            sqlx::query(sqlx::AssertSqlSafe(format!("{head}{}", chunk.join(", ")))).execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn insert_rows(&self, head: &str, width: usize, values: &[i64]) -> Result<u64> {
        let rows: Vec<String> =
            values.chunks(width).map(|c| format!("({})", c.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))).collect();
        self.insert_literal(head, &rows).await?;
        Ok(rows.len() as u64)
    }
}

fn flatten(pairs: &[(i64, i64)]) -> Vec<i64> {
    pairs.iter().flat_map(|(a, b)| [*a, *b]).collect()
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

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl SqliteStore {
    /// Bulk-writes a generated permission model (users, groups with their closure, memberships, modules, objects and
    /// grants) into an empty store part: keys are shifted past the existing ones. A fixture, not a change: the
    /// revision counter is left alone.
    pub async fn import_facts(
        &self,
        facts: &castellan_core::engine::Facts,
        org: i64,
        password_hash: &str,
    ) -> Result<ImportCounts> {
        use castellan_core::engine::SubjectFact;
        let now = now_micros();
        let max = |table: &'static str| {
            let pool = self.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COALESCE(MAX(pk), 0) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .map_err(backend)
            }
        };
        let (user_base, group_base, object_base) = (max("users").await?, max("groups").await?, max("objects").await?);
        let user = |pk: i64| user_base + pk;
        let group = |pk: i64| group_base + pk;
        let hash = quote(password_hash);
        let rows: Vec<String> = facts
            .users
            .iter()
            .map(|u| {
                let pk = user(u.pk);
                format!(
                    "({pk}, 'user{pk:07}', 'user{pk:07}', {hash}, 'user{pk}@example.com', 'user{pk}@example.com', {now}, {org}, {}, {})",
                    u.is_active as i32, u.is_superuser as i32
                )
            })
            .collect();
        self.insert_literal(
            "INSERT INTO users (pk, username, username_lower, password_hash, email, email_lower, date_joined, org, is_active, is_superuser) VALUES ",
            &rows,
        )
        .await?;
        let parent_of: std::collections::HashMap<i64, Option<i64>> = facts.groups.iter().map(|g| (g.0, g.2)).collect();
        let rows: Vec<String> = facts
            .groups
            .iter()
            .map(|(pk, _, parent)| {
                let parent = parent.map_or("NULL".to_string(), |p| group(p).to_string());
                format!("({}, 'g{}', '', {org}, {parent}, '{{}}', {now}, {now})", group(*pk), group(*pk))
            })
            .collect();
        self.insert_literal(
            "INSERT INTO groups (pk, name, description, org, parent, permissions, created_date, modified_date) VALUES ",
            &rows,
        )
        .await?;
        let mut closure = Vec::new();
        for (pk, _, _) in &facts.groups {
            let (mut at, mut depth) = (Some(*pk), 0);
            while let Some(a) = at {
                closure.push(format!("({}, {}, {depth})", group(a), group(*pk)));
                depth += 1;
                at = parent_of.get(&a).copied().flatten();
                if depth > facts.groups.len() {
                    break;
                }
            }
        }
        self.insert_literal("INSERT INTO group_closure (ancestor, descendant, depth) VALUES ", &closure).await?;
        let rows: Vec<String> = facts
            .memberships
            .iter()
            .map(|m| {
                format!(
                    "({}, {}, {}, {})",
                    user(m.user),
                    group(m.group),
                    m.expires_at.map_or("NULL".into(), |e| e.to_string()),
                    m.restriction.is_some() as i32
                )
            })
            .collect();
        self.insert_literal("INSERT OR IGNORE INTO memberships (user, grp, expires_at, restricted) VALUES ", &rows).await?;
        let rows: Vec<String> = facts
            .modules
            .iter()
            .map(|m| {
                format!(
                    "({}, '', {}, {}, 0, {now}, {now})",
                    quote(&m.id),
                    m.is_active as i32,
                    quote(&serde_json::json!(m.custom_actions).to_string())
                )
            })
            .collect();
        self.insert_literal("INSERT OR IGNORE INTO modules (id, description, is_active, custom_actions, builtin, created_date, modified_date) VALUES ", &rows).await?;
        let object_pk: std::collections::HashMap<&castellan_core::engine::ObjectKey, i64> =
            facts.objects.iter().enumerate().map(|(i, o)| (&o.key, object_base + 1 + i as i64)).collect();
        let rows: Vec<String> = facts
            .objects
            .iter()
            .map(|o| {
                let parent = o.parent.as_ref().and_then(|p| object_pk.get(p)).map_or("NULL".to_string(), |p| p.to_string());
                format!("({}, {}, {}, {parent}, {org})", object_pk[&o.key], quote(&o.key.0), quote(&o.key.1))
            })
            .collect();
        self.insert_literal("INSERT INTO objects (pk, model, object_pk, parent, org) VALUES ", &rows).await?;
        let rows: Vec<String> = facts
            .grants
            .iter()
            .map(|g| {
                let (kind, pk) = match g.subject {
                    SubjectFact::User(pk) => ("user", user(pk)),
                    SubjectFact::Group(pk) => ("group", group(pk)),
                    SubjectFact::Role(pk) => ("role", pk),
                };
                let (model, key) = g.object.clone().unwrap_or_default();
                let expires = g.expires_at.map_or("NULL".into(), |e| e.to_string());
                format!(
                    "('{kind}', {pk}, {}, {}, {}, {}, {expires})",
                    quote(&g.module),
                    quote(&g.action),
                    quote(&model),
                    quote(&key)
                )
            })
            .collect();
        self.insert_literal(
            "INSERT OR IGNORE INTO grants (subject_type, subject_pk, module, action, object_model, object_pk, expires_at) VALUES ",
            &rows,
        )
        .await?;
        Ok(ImportCounts {
            users: facts.users.len(),
            groups: facts.groups.len(),
            memberships: facts.memberships.len(),
            objects: facts.objects.len(),
            grants: facts.grants.len(),
        })
    }
}
