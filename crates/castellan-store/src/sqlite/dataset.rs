//! A deterministic synthetic directory for benchmarks: users, a group forest of fixed fan-out, and memberships,
//! written with bulk inserts (one transaction per table) rather than the per-write API.

use time::OffsetDateTime;

use super::{SqliteStore, backend};
use crate::Result;
use crate::time_util::to_micros;

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

/// A small deterministic generator (SplitMix64), so the same spec always builds the same data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const BATCH: usize = 10_000;

impl SqliteStore {
    /// Writes the dataset in bulk; the revision counter is left alone (this is a fixture, not a change).
    pub async fn load_dataset(&self, spec: &DatasetSpec, password_hash: &str) -> Result<DatasetInfo> {
        let now = to_micros(OffsetDateTime::now_utc());
        let levels = self.load_groups(spec, now).await?;
        let first_user = self.load_users(spec, password_hash, now).await?;
        let last_user = first_user + spec.users as i64 - 1;
        let (leaf_first, leaf_last) = *levels.last().unwrap_or(&(0, -1));
        let leaves = (leaf_last - leaf_first + 1).max(0) as u64;
        let mut rng = SplitMix(42);
        let mut pairs = Vec::new();
        if leaves > 0 {
            for user in first_user..=last_user {
                for _ in 0..spec.memberships_per_user {
                    pairs.push((user, leaf_first + (rng.next() % leaves) as i64));
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
