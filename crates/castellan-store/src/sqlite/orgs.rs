//! Organisations.

use async_trait::async_trait;
use castellan_core::model::Org;
use serde_json::json;
use time::OffsetDateTime;

use super::{SqliteStore, commit, log_change, map_err};
use crate::time_util::{from_micros, to_micros};
use crate::{OrgStore, Result, Revision, WriteCtx};

type OrgRow = (i64, String, String, String, i64, i64);

fn org_from(r: OrgRow) -> Org {
    Org { pk: r.0, name: r.1, slug: r.2, description: r.3, created_date: from_micros(r.4), modified_date: from_micros(r.5) }
}

const ORG_COLUMNS: &str = "pk, name, slug, description, created_date, modified_date";

#[async_trait]
impl OrgStore for SqliteStore {
    async fn create_org(&self, ctx: &WriteCtx, name: &str, slug: &str, description: &str) -> Result<(Org, Revision)> {
        let (mut tx, revision) = self.begin_write().await?;
        let now = to_micros(OffsetDateTime::now_utc());
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
        log_change(&mut tx, ctx, Some(revision), "create", "orgs", &org.pk.to_string(), &after).await?;
        commit(tx).await?;
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
}
