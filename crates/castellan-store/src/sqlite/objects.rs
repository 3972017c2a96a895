//! Registered objects: nodes for restrictions, parents for grants.

use async_trait::async_trait;
use castellan_core::change::{Change, ObjectGrant, ObjectRecord as ChangedObject};
use castellan_core::engine::{ObjectKey, SubjectFact};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, backend, log_write, map_err};
use crate::{ObjectRecord, ObjectStore, Result, Revision, StoreError, WriteCtx};

type ObjectRow = (i64, String, String, Option<i64>, i64);

fn object_row(r: &Row<'_>) -> rusqlite::Result<ObjectRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn object_from(r: ObjectRow) -> ObjectRecord {
    ObjectRecord { pk: r.0, model: r.1, object_pk: r.2, parent: r.3, org: r.4 }
}

/// The key of the object whose record key is `parent`.
fn parent_key(c: &Connection, parent: Option<i64>) -> Result<Option<ObjectKey>> {
    let Some(parent) = parent else { return Ok(None) };
    let key = c
        .prepare_cached("SELECT model, object_pk FROM objects WHERE pk = ?")?
        .query_row([parent], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(key)
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
        let (model, object_pk) = (model.to_string(), object_pk.to_string());
        self.write(ctx, move |c, ctx| {
            let row = c
                .prepare_cached(
                    "INSERT INTO objects (model, object_pk, parent, org) VALUES (?, ?, ?, ?) RETURNING pk, model, object_pk, parent, org",
                )?
                .query_row(params![model, object_pk, parent, org], object_row)
                .map_err(|e| match map_err(e) {
                    StoreError::Conflict { constraint } if constraint != "reference" => {
                        StoreError::Conflict { constraint: "object".into() }
                    }
                    other => other,
                })?;
            let object = object_from(row);
            let after = ChangedObject { model, object_pk, parent: parent_key(c, parent)?, org };
            let revision = log_write(c, ctx, Change::ObjectRegistered { after })?;
            Ok((object, revision))
        })
        .await
    }

    async fn find_object(&self, model: &str, object_pk: &str) -> Result<Option<ObjectRecord>> {
        let (model, object_pk) = (model.to_string(), object_pk.to_string());
        self.read(move |c| {
            let row = c
                .prepare_cached("SELECT pk, model, object_pk, parent, org FROM objects WHERE model = ? AND object_pk = ?")?
                .query_row(params![model, object_pk], object_row)
                .optional()
                .map_err(backend)?;
            Ok(row.map(object_from))
        })
        .await
    }

    async fn delete_object(&self, ctx: &WriteCtx, model: &str, object_pk: &str) -> Result<Revision> {
        let (model, object_pk) = (model.to_string(), object_pk.to_string());
        self.write(ctx, move |c, ctx| {
            let (_, model, object_pk, parent, org) = c
                .prepare_cached("SELECT pk, model, object_pk, parent, org FROM objects WHERE model = ? AND object_pk = ?")?
                .query_row(params![model, object_pk], object_row)?;
            let parent = parent_key(c, parent)?;
            let grants = c
                .prepare_cached(
                    "DELETE FROM grants WHERE object_model = ? AND object_pk = ?
                     RETURNING subject_type || ':' || subject_pk, module || '.' || action",
                )?
                .query_map(params![model, object_pk], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut grants: Vec<ObjectGrant> = grants
                .into_iter()
                .filter_map(|(subject, permission)| Some(ObjectGrant { subject: SubjectFact::from_text(&subject)?, permission }))
                .collect();
            grants.sort_by(|a, b| (a.subject.to_text(), &a.permission).cmp(&(b.subject.to_text(), &b.permission)));
            c.prepare_cached("DELETE FROM objects WHERE model = ? AND object_pk = ?")?.execute(params![model, object_pk])?;
            let before = ChangedObject { model, object_pk, parent, org };
            log_write(c, ctx, Change::ObjectDeleted { before, grants })
        })
        .await
    }
}
