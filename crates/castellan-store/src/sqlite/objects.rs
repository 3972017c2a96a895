//! Registered objects: nodes for restrictions, parents for grants.

use async_trait::async_trait;
use serde_json::json;

use super::{SqliteStore, backend, log_write, map_err};
use crate::{ObjectRecord, ObjectStore, Result, Revision, StoreError, WriteCtx};

type ObjectRow = (i64, String, String, Option<i64>, i64);

fn object_from(r: ObjectRow) -> ObjectRecord {
    ObjectRecord { pk: r.0, model: r.1, object_pk: r.2, parent: r.3, org: r.4 }
}

#[async_trait]
impl ObjectStore for SqliteStore {
    async fn create_object(
        &self,
        ctx: &WriteCtx,
        model: &str,
        object_pk: &str,
        parent: Option<i64>,
        org: i64,
    ) -> Result<(ObjectRecord, Revision)> {
        let mut tx = self.begin_write().await?;
        let row: ObjectRow = sqlx::query_as(
            "INSERT INTO objects (model, object_pk, parent, org) VALUES (?, ?, ?, ?) RETURNING pk, model, object_pk, parent, org",
        )
        .bind(model)
        .bind(object_pk)
        .bind(parent)
        .bind(org)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict { constraint } if constraint != "reference" => {
                StoreError::Conflict { constraint: "object".into() }
            }
            other => other,
        })?;
        let object = object_from(row);
        let changes = json!({"after": {"model": model, "object_pk": object_pk, "parent": parent, "org": org}});
        let revision = log_write(tx, ctx, "create", model, object_pk, &changes).await?;
        Ok((object, revision))
    }

    async fn find_object(&self, model: &str, object_pk: &str) -> Result<Option<ObjectRecord>> {
        let row: Option<ObjectRow> =
            sqlx::query_as("SELECT pk, model, object_pk, parent, org FROM objects WHERE model = ? AND object_pk = ?")
                .bind(model)
                .bind(object_pk)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(object_from))
    }

    async fn delete_object(&self, ctx: &WriteCtx, model: &str, object_pk: &str) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM objects WHERE model = ? AND object_pk = ?")
            .bind(model)
            .bind(object_pk)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let revision = log_write(tx, ctx, "delete", model, object_pk, &json!({"before": {"model": model}})).await?;
        Ok(revision)
    }
}
