//! Organisations.

use async_trait::async_trait;
use castellan_core::change::{Change, OrgRecord, PolicyRecord};
use castellan_core::model::Org;
use castellan_core::password::PasswordPolicy;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Sql, SqliteStore, backend, like_escape, log_write};
use crate::time_util::{from_micros, now_micros};
use crate::{OrgStore, Page, Result, Revision, StoreError, WriteCtx};

type OrgRow = (i64, String, String, String, i64, i64);

fn org_row(r: &Row<'_>) -> rusqlite::Result<OrgRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn org_from(r: OrgRow) -> Org {
    Org { pk: r.0, name: r.1, slug: r.2, description: r.3, created_date: from_micros(r.4), modified_date: from_micros(r.5) }
}

const ORG_COLUMNS: &str = "pk, name, slug, description, created_date, modified_date";

fn fetch_org(c: &Connection, column: &str, value: impl rusqlite::ToSql) -> Result<Org> {
    let row = c.prepare_cached(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE {column} = ?"))?.query_row([value], org_row)?;
    Ok(org_from(row))
}

fn push_org_filter(sql: &mut Sql, only: Option<i64>, search: Option<&str>) {
    sql.push(" WHERE 1 = 1");
    if let Some(pk) = only {
        sql.push(" AND pk = ").bind(pk);
    }
    if let Some(term) = search.map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = format!("%{}%", like_escape(term));
        sql.push(" AND (lower(name) LIKE ").bind(pattern.clone()).push(" ESCAPE '\\' OR slug LIKE ");
        sql.bind(pattern).push(" ESCAPE '\\')");
    }
}

fn org_record(org: &Org) -> OrgRecord {
    OrgRecord { name: org.name.clone(), slug: org.slug.clone(), description: org.description.clone() }
}

fn policy_of(c: &Connection, org: i64) -> Result<PasswordPolicy> {
    let text: Option<String> = c
        .prepare_cached("SELECT policy FROM password_policies WHERE org = ?")?
        .query_row([org], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
}

#[async_trait]
impl OrgStore for SqliteStore {
    async fn create_org(&self, ctx: &WriteCtx, name: &str, slug: &str, description: &str) -> Result<(Org, Revision)> {
        let (name, slug, description) = (name.to_string(), slug.to_string(), description.to_string());
        self.write(ctx, move |c, ctx| {
            let now = now_micros();
            let row = c
                .prepare_cached(&format!(
                    "INSERT INTO orgs (name, slug, description, created_date, modified_date) VALUES (?, ?, ?, ?, ?) RETURNING {ORG_COLUMNS}"
                ))?
                .query_row(params![name, slug, description, now, now], org_row)?;
            let org = org_from(row);
            let revision = log_write(c, ctx, Change::OrgCreated { pk: org.pk, after: org_record(&org) })?;
            Ok((org, revision))
        })
        .await
    }

    async fn get_org(&self, pk: i64) -> Result<Org> {
        self.read(move |c| fetch_org(c, "pk", pk)).await
    }

    async fn org_by_slug(&self, slug: &str) -> Result<Org> {
        let slug = slug.to_string();
        self.read(move |c| fetch_org(c, "slug", slug)).await
    }

    async fn list_orgs(&self, only: Option<i64>, search: Option<&str>, offset: i64, limit: i64) -> Result<Page<Org>> {
        let search = search.map(str::to_string);
        self.read(move |c| {
            let mut count_sql = Sql::new("SELECT count(*) FROM orgs");
            push_org_filter(&mut count_sql, only, search.as_deref());
            let count: i64 = count_sql.row(c, |r| r.get(0))?.unwrap_or_default();
            let mut sql = Sql::new(&format!("SELECT {ORG_COLUMNS} FROM orgs"));
            push_org_filter(&mut sql, only, search.as_deref());
            sql.push(" ORDER BY pk LIMIT ").bind(limit).push(" OFFSET ").bind(offset);
            let rows = sql.rows(c, org_row)?;
            Ok(Page { count, items: rows.into_iter().map(org_from).collect() })
        })
        .await
    }

    async fn update_org(
        &self,
        ctx: &WriteCtx,
        pk: i64,
        name: Option<&str>,
        slug: Option<&str>,
        description: Option<&str>,
    ) -> Result<(Org, Revision)> {
        let values =
            [("name", name), ("slug", slug), ("description", description)].map(|(column, v)| (column, v.map(str::to_string)));
        self.write(ctx, move |c, ctx| {
            let before = fetch_org(c, "pk", pk)?;
            let mut sql = Sql::new("UPDATE orgs SET modified_date = ");
            sql.bind(now_micros());
            for (column, value) in &values {
                if let Some(v) = value {
                    sql.push(&format!(", {column} = ")).bind(v.clone());
                }
            }
            sql.push(" WHERE pk = ").bind(pk);
            sql.execute(c)?;
            let after = fetch_org(c, "pk", pk)?;
            let revision = log_write(c, ctx, Change::OrgUpdated { pk, before: org_record(&before), after: org_record(&after) })?;
            Ok((after, revision))
        })
        .await
    }

    async fn delete_org(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision> {
        self.write(ctx, move |c, ctx| {
            let org = fetch_org(c, "pk", pk)?;
            for (table, constraint) in [("users", "users"), ("groups", "org_groups"), ("objects", "org_objects")] {
                let used: Option<i64> = c
                    .prepare_cached(&format!("SELECT 1 FROM {table} WHERE org = ? LIMIT 1"))?
                    .query_row([pk], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if used.is_some() {
                    return Err(StoreError::Conflict { constraint: constraint.into() });
                }
            }
            c.prepare_cached("DELETE FROM orgs WHERE pk = ?")?.execute([pk])?;
            log_write(c, ctx, Change::OrgDeleted { pk, before: org_record(&org) })
        })
        .await
    }

    async fn password_policy(&self, org: i64) -> Result<PasswordPolicy> {
        self.read(move |c| policy_of(c, org)).await
    }

    async fn set_password_policy(&self, ctx: &WriteCtx, org: i64, policy: &PasswordPolicy) -> Result<Revision> {
        let policy = policy.clone();
        self.write(ctx, move |c, ctx| {
            let before = policy_of(c, org)?;
            let text = serde_json::to_string(&policy).map_err(|e| StoreError::Backend(e.to_string()))?;
            c.prepare_cached(
                "INSERT INTO password_policies (org, policy) VALUES (?, ?) ON CONFLICT (org) DO UPDATE SET policy = excluded.policy",
            )?
            .execute(params![org, text])?;
            let (before, after) = (PolicyRecord { password_policy: before }, PolicyRecord { password_policy: policy });
            log_write(c, ctx, Change::PasswordPolicySet { org, before, after })
        })
        .await
    }
}
