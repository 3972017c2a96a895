//! Groups as the user side sees them (names and direct children).

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, backend};
use crate::{GroupBrief, GroupStore, Result};

fn push_keys(qb: &mut QueryBuilder<Sqlite>, pks: &[i64]) {
    let mut sep = qb.separated(", ");
    for pk in pks {
        sep.push_bind(*pk);
    }
    qb.push(")");
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn groups_brief(&self, pks: &[i64]) -> Result<Vec<GroupBrief>> {
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT pk, name, description FROM groups WHERE pk IN (");
        push_keys(&mut qb, pks);
        qb.push(" ORDER BY pk");
        let rows: Vec<(i64, String, String)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT parent, pk FROM groups WHERE parent IN (");
        push_keys(&mut qb, pks);
        qb.push(" ORDER BY parent, pk");
        let children: Vec<(i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(pk, name, description)| GroupBrief {
                pk,
                name,
                description,
                children: children.iter().filter(|(parent, _)| *parent == pk).map(|(_, c)| *c).collect(),
            })
            .collect())
    }
}
