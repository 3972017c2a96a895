//! Organisations.

use async_trait::async_trait;
use castellan_core::model::Org;
use castellan_core::password::PasswordPolicy;
use serde_json::json;
use sqlx::{QueryBuilder, Sqlite};

use super::{SqliteStore, backend, like_escape, log_write, map_err};
use crate::time_util::{from_micros, now_micros};
use crate::{OrgStore, Page, Result, Revision, StoreError, WriteCtx};

type OrgRow = (i64, String, String, String, i64, i64);

fn org_from(r: OrgRow) -> Org {
    Org { pk: r.0, name: r.1, slug: r.2, description: r.3, created_date: from_micros(r.4), modified_date: from_micros(r.5) }
}

const ORG_COLUMNS: &str = "pk, name, slug, description, created_date, modified_date";

#[async_trait]
impl OrgStore for SqliteStore {
    async fn create_org(&self, ctx: &WriteCtx, name: &str, slug: &str, description: &str) -> Result<(Org, Revision)> {
        let mut tx = self.begin_write().await?;
        let now = now_micros();
        let row: OrgRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO orgs (name, slug, description, created_date, modified_date) VALUES (?, ?, ?, ?, ?) RETURNING {ORG_COLUMNS}"
        )))
        .bind(name)
        .bind(slug)
        .bind(description)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let org = org_from(row);
        let after = json!({"after": {"name": name, "slug": slug, "description": description}});
        let revision = log_write(tx, ctx, "create", "orgs", &org.pk.to_string(), &after).await?;
        Ok((org, revision))
    }

    async fn get_org(&self, pk: i64) -> Result<Org> {
        let row: OrgRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORG_COLUMNS} FROM orgs WHERE pk = ?")))
            .bind(pk)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(org_from(row))
    }

    async fn org_by_slug(&self, slug: &str) -> Result<Org> {
        let row: OrgRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORG_COLUMNS} FROM orgs WHERE slug = ?")))
            .bind(slug)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(org_from(row))
    }

    async fn list_orgs(&self, only: Option<i64>, search: Option<&str>, offset: i64, limit: i64) -> Result<Page<Org>> {
        let filter = |qb: &mut QueryBuilder<Sqlite>| {
            qb.push(" WHERE 1 = 1");
            if let Some(pk) = only {
                qb.push(" AND pk = ").push_bind(pk);
            }
            if let Some(term) = search.map(str::trim).filter(|t| !t.is_empty()) {
                let pattern = format!("%{}%", like_escape(term));
                qb.push(" AND (lower(name) LIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\' OR slug LIKE ");
                qb.push_bind(pattern).push(" ESCAPE '\\')");
            }
        };
        let mut count_qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM orgs");
        filter(&mut count_qb);
        let count: i64 = count_qb.build_query_scalar().fetch_one(&self.pool).await.map_err(backend)?;
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {ORG_COLUMNS} FROM orgs"));
        filter(&mut qb);
        qb.push(" ORDER BY pk LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let rows: Vec<OrgRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(backend)?;
        Ok(Page { count, items: rows.into_iter().map(org_from).collect() })
    }

    async fn update_org(
        &self,
        ctx: &WriteCtx,
        pk: i64,
        name: Option<&str>,
        slug: Option<&str>,
        description: Option<&str>,
    ) -> Result<(Org, Revision)> {
        let mut tx = self.begin_write().await?;
        let fetch = |pk: i64| {
            sqlx::query_as::<_, OrgRow>(sqlx::AssertSqlSafe(format!("SELECT {ORG_COLUMNS} FROM orgs WHERE pk = ?"))).bind(pk)
        };
        let before = org_from(fetch(pk).fetch_one(&mut *tx).await.map_err(map_err)?);
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE orgs SET modified_date = ");
        qb.push_bind(now_micros());
        for (column, value) in [("name", name), ("slug", slug), ("description", description)] {
            if let Some(v) = value {
                qb.push(format!(", {column} = ")).push_bind(v.to_string());
            }
        }
        qb.push(" WHERE pk = ").push_bind(pk);
        qb.build().execute(&mut *tx).await.map_err(map_err)?;
        let after = org_from(fetch(pk).fetch_one(&mut *tx).await.map_err(map_err)?);
        let changes = json!({
            "before": {"name": before.name, "slug": before.slug, "description": before.description},
            "after": {"name": after.name, "slug": after.slug, "description": after.description},
        });
        let revision = log_write(tx, ctx, "update", "orgs", &pk.to_string(), &changes).await?;
        Ok((after, revision))
    }

    async fn delete_org(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before: OrgRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORG_COLUMNS} FROM orgs WHERE pk = ?")))
            .bind(pk)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        for (table, constraint) in [("users", "users"), ("groups", "org_groups"), ("objects", "org_objects")] {
            let used: Option<i64> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT 1 FROM {table} WHERE org = ? LIMIT 1")))
                    .bind(pk)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
            if used.is_some() {
                return Err(StoreError::Conflict { constraint: constraint.into() });
            }
        }
        sqlx::query("DELETE FROM orgs WHERE pk = ?").bind(pk).execute(&mut *tx).await.map_err(map_err)?;
        let org = org_from(before);
        let changes = json!({"before": {"name": org.name, "slug": org.slug, "description": org.description}});
        let revision = log_write(tx, ctx, "delete", "orgs", &pk.to_string(), &changes).await?;
        Ok(revision)
    }

    async fn password_policy(&self, org: i64) -> Result<PasswordPolicy> {
        let text: Option<String> = sqlx::query_scalar("SELECT policy FROM password_policies WHERE org = ?")
            .bind(org)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
    }

    async fn set_password_policy(&self, ctx: &WriteCtx, org: i64, policy: &PasswordPolicy) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before: Option<String> = sqlx::query_scalar("SELECT policy FROM password_policies WHERE org = ?")
            .bind(org)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let before: PasswordPolicy = before.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        let text = serde_json::to_string(policy).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query(
            "INSERT INTO password_policies (org, policy) VALUES (?, ?) ON CONFLICT (org) DO UPDATE SET policy = excluded.policy",
        )
        .bind(org)
        .bind(text)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let changes = json!({"before": {"password_policy": before}, "after": {"password_policy": policy}});
        let revision = log_write(tx, ctx, "update", "orgs", &org.to_string(), &changes).await?;
        Ok(revision)
    }
}
