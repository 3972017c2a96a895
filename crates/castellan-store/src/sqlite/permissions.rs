//! Modules, roles, role assignments, grants, and the engine's facts.

use async_trait::async_trait;
use castellan_core::engine::{
    Facts, GrantFact, MembershipFact, ModuleFact, ObjectFact, ObjectKey, RoleAssignmentFact, Scope, SubjectFact, UserFact,
};
use castellan_core::permission::ModulePermissions;
use serde_json::{Value, json};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use time::OffsetDateTime;

use super::{SqliteStore, backend, like_escape, log_write, map_err};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{Module, Page, PermissionStore, Result, Revision, Role, StoreError, WriteCtx};

type ModuleRow = (String, String, bool, String, bool);

fn module_from(r: ModuleRow) -> Module {
    Module {
        id: r.0,
        description: r.1,
        is_active: r.2,
        custom_actions: serde_json::from_str(&r.3).unwrap_or_default(),
        builtin: r.4,
    }
}

fn module_json(m: &Module) -> Value {
    json!({"description": m.description, "is_active": m.is_active, "actions": m.custom_actions})
}

const MODULE_COLUMNS: &str = "id, description, is_active, custom_actions, builtin";

fn subject_key(subject: SubjectFact) -> (&'static str, i64) {
    match subject {
        SubjectFact::User(pk) => ("user", pk),
        SubjectFact::Group(pk) => ("group", pk),
        SubjectFact::Role(pk) => ("role", pk),
    }
}

fn subject_of(kind: &str, pk: i64) -> SubjectFact {
    match kind {
        "user" => SubjectFact::User(pk),
        "group" => SubjectFact::Group(pk),
        _ => SubjectFact::Role(pk),
    }
}

async fn fetch_module(conn: &mut SqliteConnection, id: &str) -> Result<Module> {
    let row: ModuleRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {MODULE_COLUMNS} FROM modules WHERE id = ?")))
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(module_from(row))
}

async fn fetch_role(conn: &mut SqliteConnection, pk: i64) -> Result<Role> {
    let row: (i64, String, String, i64, i64, i64) =
        sqlx::query_as("SELECT pk, name, description, org, created_date, modified_date FROM roles WHERE pk = ?")
            .bind(pk)
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
    let assigned: Vec<(String, i64)> = sqlx::query_as(
        "SELECT subject_type, subject_pk FROM role_assignments WHERE role = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY subject_pk",
    )
    .bind(pk)
    .bind(now_micros())
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let of = |kind: &str| assigned.iter().filter(|(k, _)| k == kind).map(|(_, pk)| *pk).collect();
    Ok(Role {
        pk: row.0,
        name: row.1,
        description: row.2,
        org: row.3,
        users: of("user"),
        groups: of("group"),
        created_date: from_micros(row.4),
        modified_date: from_micros(row.5),
    })
}

/// Where a grant change is filed in the change log: on the object (found by the audit's `object=model:key`) or,
/// for global grants, on the subject.
fn grant_target(kind: &str, pk: i64, object: Option<(&str, &str)>) -> (String, String) {
    match object {
        Some((model, key)) => (model.to_string(), key.to_string()),
        None => {
            let table = match kind {
                "user" => "users",
                "group" => "groups",
                _ => "roles",
            };
            (table.to_string(), pk.to_string())
        }
    }
}

fn role_json(r: &Role) -> Value {
    json!({"name": r.name, "description": r.description, "org": r.org, "users": r.users, "groups": r.groups})
}

fn role_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { constraint } if constraint != "reference" => StoreError::Conflict { constraint: "role".into() },
        other => other,
    }
}

#[async_trait]
impl PermissionStore for SqliteStore {
    async fn list_modules(&self) -> Result<Vec<Module>> {
        let rows: Vec<ModuleRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {MODULE_COLUMNS} FROM modules ORDER BY id")))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows.into_iter().map(module_from).collect())
    }

    async fn get_module(&self, id: &str) -> Result<Module> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_module(&mut conn, id).await
    }

    async fn create_module(&self, ctx: &WriteCtx, m: &Module) -> Result<(Module, Revision)> {
        let mut tx = self.begin_write().await?;
        let now = now_micros();
        sqlx::query("INSERT INTO modules (id, description, is_active, custom_actions, builtin, created_date, modified_date) VALUES (?, ?, ?, ?, 0, ?, ?)")
            .bind(&m.id)
            .bind(&m.description)
            .bind(m.is_active)
            .bind(json!(m.custom_actions).to_string())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Conflict { .. } => StoreError::Conflict { constraint: "module".into() },
                other => other,
            })?;
        let module = fetch_module(&mut tx, &m.id).await?;
        let revision = log_write(tx, ctx, "create", "modules", &m.id, &json!({"after": module_json(&module)})).await?;
        Ok((module, revision))
    }

    async fn update_module(&self, ctx: &WriteCtx, m: &Module) -> Result<(Module, Revision)> {
        let mut tx = self.begin_write().await?;
        let before = fetch_module(&mut tx, &m.id).await?;
        sqlx::query("UPDATE modules SET description = ?, is_active = ?, custom_actions = ?, modified_date = ? WHERE id = ?")
            .bind(&m.description)
            .bind(m.is_active)
            .bind(json!(m.custom_actions).to_string())
            .bind(now_micros())
            .bind(&m.id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let after = fetch_module(&mut tx, &m.id).await?;
        let changes = json!({"before": module_json(&before), "after": module_json(&after)});
        let revision = log_write(tx, ctx, "update", "modules", &m.id, &changes).await?;
        Ok((after, revision))
    }

    async fn delete_module(&self, ctx: &WriteCtx, id: &str) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_module(&mut tx, id).await?;
        if before.builtin {
            return Err(StoreError::Conflict { constraint: "builtin".into() });
        }
        sqlx::query("DELETE FROM modules WHERE id = ?").bind(id).execute(&mut *tx).await.map_err(map_err)?;
        // Group permissions live in the groups themselves; the grants trigger does not reach them.
        let key = format!("$.\"{id}\"");
        sqlx::query("UPDATE groups SET permissions = json_remove(permissions, ?1) WHERE json_type(permissions, ?1) IS NOT NULL")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        log_write(tx, ctx, "delete", "modules", id, &json!({"before": module_json(&before)})).await
    }

    async fn create_role(&self, ctx: &WriteCtx, name: &str, description: &str, org: i64) -> Result<(Role, Revision)> {
        let mut tx = self.begin_write().await?;
        let now = now_micros();
        let pk: i64 = sqlx::query_scalar(
            "INSERT INTO roles (name, description, org, created_date, modified_date) VALUES (?, ?, ?, ?, ?) RETURNING pk",
        )
        .bind(name)
        .bind(description)
        .bind(org)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| role_conflict(map_err(e)))?;
        let role = fetch_role(&mut tx, pk).await?;
        let revision = log_write(tx, ctx, "create", "roles", &pk.to_string(), &json!({"after": role_json(&role)})).await?;
        Ok((role, revision))
    }

    async fn get_role(&self, pk: i64) -> Result<Role> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_role(&mut conn, pk).await
    }

    async fn list_roles(&self, org: Option<i64>, search: Option<&str>, offset: i64, limit: i64) -> Result<Page<Role>> {
        let filter = |qb: &mut QueryBuilder<Sqlite>| {
            qb.push(" WHERE 1 = 1");
            if let Some(org) = org {
                qb.push(" AND org = ").push_bind(org);
            }
            if let Some(term) = search.map(str::trim).filter(|t| !t.is_empty()) {
                qb.push(" AND lower(name) LIKE ").push_bind(format!("%{}%", like_escape(term))).push(" ESCAPE '\\'");
            }
        };
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let mut count_qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM roles");
        filter(&mut count_qb);
        let count: i64 = count_qb.build_query_scalar().fetch_one(&mut *conn).await.map_err(backend)?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT pk FROM roles");
        filter(&mut qb);
        qb.push(" ORDER BY pk LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
        let pks: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await.map_err(backend)?;
        let mut items = Vec::with_capacity(pks.len());
        for pk in pks {
            items.push(fetch_role(&mut conn, pk).await?);
        }
        Ok(Page { count, items })
    }

    async fn update_role(
        &self,
        ctx: &WriteCtx,
        pk: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(Role, Revision)> {
        let mut tx = self.begin_write().await?;
        let before = fetch_role(&mut tx, pk).await?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE roles SET modified_date = ");
        qb.push_bind(now_micros());
        if let Some(v) = name {
            qb.push(", name = ").push_bind(v.to_string());
        }
        if let Some(v) = description {
            qb.push(", description = ").push_bind(v.to_string());
        }
        qb.push(" WHERE pk = ").push_bind(pk);
        qb.build().execute(&mut *tx).await.map_err(|e| role_conflict(map_err(e)))?;
        let after = fetch_role(&mut tx, pk).await?;
        let changes = json!({"before": role_json(&before), "after": role_json(&after)});
        let revision = log_write(tx, ctx, "update", "roles", &pk.to_string(), &changes).await?;
        Ok((after, revision))
    }

    async fn delete_role(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_role(&mut tx, pk).await?;
        sqlx::query("DELETE FROM roles WHERE pk = ?").bind(pk).execute(&mut *tx).await.map_err(map_err)?;
        log_write(tx, ctx, "delete", "roles", &pk.to_string(), &json!({"before": role_json(&before)})).await
    }

    async fn assign_role(
        &self,
        ctx: &WriteCtx,
        role: i64,
        subjects: &[SubjectFact],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_role(&mut tx, role).await?;
        for subject in subjects {
            let (kind, pk) = subject_key(*subject);
            let table = if kind == "user" { "users" } else { "groups" };
            let org: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT org FROM {table} WHERE pk = ?")))
                .bind(pk)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            if kind == "role" || org != Some(before.org) {
                return Err(StoreError::Conflict { constraint: "members".into() });
            }
            sqlx::query(
                "INSERT INTO role_assignments (role, subject_type, subject_pk, expires_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (role, subject_type, subject_pk) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(role)
            .bind(kind)
            .bind(pk)
            .bind(expires_at.map(to_micros))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let after = fetch_role(&mut tx, role).await?;
        let changes = json!({"before": role_json(&before), "after": role_json(&after), "expires_at": expires_at.map(to_micros)});
        log_write(tx, ctx, "assign", "roles", &role.to_string(), &changes).await
    }

    async fn unassign_role(&self, ctx: &WriteCtx, role: i64, subjects: &[SubjectFact]) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_role(&mut tx, role).await?;
        for subject in subjects {
            let (kind, pk) = subject_key(*subject);
            sqlx::query("DELETE FROM role_assignments WHERE role = ? AND subject_type = ? AND subject_pk = ?")
                .bind(role)
                .bind(kind)
                .bind(pk)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let after = fetch_role(&mut tx, role).await?;
        let changes = json!({"before": role_json(&before), "after": role_json(&after)});
        log_write(tx, ctx, "unassign", "roles", &role.to_string(), &changes).await
    }

    async fn module_grants(&self, subject: SubjectFact) -> Result<Vec<(String, Vec<String>)>> {
        let (kind, pk) = subject_key(subject);
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT module, action FROM grants WHERE subject_type = ? AND subject_pk = ? AND object_model = ''
             AND (expires_at IS NULL OR expires_at > ?) ORDER BY module",
        )
        .bind(kind)
        .bind(pk)
        .bind(now_micros())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut held = ModulePermissions::new();
        for (module, action) in &rows {
            held.insert_named(module, action);
        }
        Ok(held.to_map().into_iter().collect())
    }

    async fn set_module_grants(
        &self,
        ctx: &WriteCtx,
        subject: SubjectFact,
        module: &str,
        actions: &[String],
    ) -> Result<Revision> {
        let (kind, pk) = subject_key(subject);
        let mut tx = self.begin_write().await?;
        let before: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM grants WHERE subject_type = ? AND subject_pk = ? AND module = ? AND object_model = '' ORDER BY action",
        )
        .bind(kind)
        .bind(pk)
        .bind(module)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("DELETE FROM grants WHERE subject_type = ? AND subject_pk = ? AND module = ? AND object_model = ''")
            .bind(kind)
            .bind(pk)
            .bind(module)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        for action in actions {
            sqlx::query("INSERT INTO grants (subject_type, subject_pk, module, action) VALUES (?, ?, ?, ?)")
                .bind(kind)
                .bind(pk)
                .bind(module)
                .bind(action)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let changes = json!({"subject": format!("{kind}:{pk}"), "module": module, "before": before, "after": actions});
        let action = if actions.is_empty() { "unassign" } else { "assign" };
        let target_type = if kind == "user" { "users" } else { "roles" };
        log_write(tx, ctx, action, target_type, &pk.to_string(), &changes).await
    }

    async fn grants_at(&self, subject: SubjectFact, object: Option<(&str, &str)>) -> Result<Vec<(String, String)>> {
        let (kind, pk) = subject_key(subject);
        let (model, key) = object.unwrap_or(("", ""));
        sqlx::query_as(
            "SELECT module, action FROM grants WHERE subject_type = ? AND subject_pk = ? AND object_model = ? AND object_pk = ?
             AND (expires_at IS NULL OR expires_at > ?) ORDER BY module, action",
        )
        .bind(kind)
        .bind(pk)
        .bind(model)
        .bind(key)
        .bind(now_micros())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn assign_grants(
        &self,
        ctx: &WriteCtx,
        subject: SubjectFact,
        grants: &[(String, String)],
        object: Option<(&str, &str)>,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Revision> {
        let (kind, pk) = subject_key(subject);
        let (model, key) = object.unwrap_or(("", ""));
        let mut tx = self.begin_write().await?;
        for (module, action) in grants {
            sqlx::query(
                "INSERT INTO grants (subject_type, subject_pk, module, action, object_model, object_pk, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (subject_type, subject_pk, module, action, object_model, object_pk) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(kind)
            .bind(pk)
            .bind(module)
            .bind(action)
            .bind(model)
            .bind(key)
            .bind(expires_at.map(to_micros))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        let codenames: Vec<String> = grants.iter().map(|(m, a)| format!("{m}.{a}")).collect();
        let changes = json!({"subject": format!("{kind}:{pk}"), "object": object.map(|(m, k)| format!("{m}:{k}")), "after": codenames, "expires_at": expires_at.map(to_micros)});
        let (target_type, target_pk) = grant_target(kind, pk, object);
        log_write(tx, ctx, "assign", &target_type, &target_pk, &changes).await
    }

    async fn unassign_grants(
        &self,
        ctx: &WriteCtx,
        subject: SubjectFact,
        grants: &[(String, String)],
        object: Option<(&str, &str)>,
    ) -> Result<Revision> {
        let (kind, pk) = subject_key(subject);
        let (model, key) = object.unwrap_or(("", ""));
        let mut tx = self.begin_write().await?;
        for (module, action) in grants {
            sqlx::query("DELETE FROM grants WHERE subject_type = ? AND subject_pk = ? AND module = ? AND action = ? AND object_model = ? AND object_pk = ?")
                .bind(kind)
                .bind(pk)
                .bind(module)
                .bind(action)
                .bind(model)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        let codenames: Vec<String> = grants.iter().map(|(m, a)| format!("{m}.{a}")).collect();
        let changes =
            json!({"subject": format!("{kind}:{pk}"), "object": object.map(|(m, k)| format!("{m}:{k}")), "before": codenames});
        let (target_type, target_pk) = grant_target(kind, pk, object);
        log_write(tx, ctx, "unassign", &target_type, &target_pk, &changes).await
    }

    async fn holders_at(&self, kind: &str, object: Option<(&str, &str)>) -> Result<Vec<(i64, Vec<(String, String)>)>> {
        let (model, key) = object.unwrap_or(("", ""));
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT subject_pk, module, action FROM grants WHERE subject_type = ? AND object_model = ? AND object_pk = ?
             AND (expires_at IS NULL OR expires_at > ?) ORDER BY subject_pk, module, action",
        )
        .bind(kind)
        .bind(model)
        .bind(key)
        .bind(now_micros())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut holders: Vec<(i64, Vec<(String, String)>)> = Vec::new();
        for (pk, module, action) in rows {
            match holders.last_mut() {
                Some((last, grants)) if *last == pk => grants.push((module, action)),
                _ => holders.push((pk, vec![(module, action)])),
            }
        }
        Ok(holders)
    }

    async fn engine_facts(&self) -> Result<(Facts, Revision)> {
        // One read transaction: every table as of the same revision.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let facts = read_facts(&mut tx, None).await?;
        let revision: i64 = sqlx::query_scalar(super::CURRENT_REVISION).fetch_one(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok((facts, revision))
    }

    async fn engine_patch(&self, scope: &Scope) -> Result<Facts> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let facts = read_facts(&mut tx, Some(scope)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(facts)
    }
}

/// Appends `column IN (values)`, or a condition that is false when there are no values.
fn push_any(qb: &mut QueryBuilder<Sqlite>, column: &str, values: impl IntoIterator<Item = i64>) {
    let mut values = values.into_iter().peekable();
    if values.peek().is_none() {
        qb.push("0");
        return;
    }
    // One JSON parameter rather than one per value: scopes may hold more values than SQLite allows parameters.
    qb.push(format!("{column} IN (SELECT value FROM json_each(")).push_bind(Value::from_iter(values).to_string()).push("))");
}

/// Object keys as one JSON array of `[model, key]` pairs, to bind as one parameter and read with `json_each` (a scope
/// may name more objects than an expression may have terms).
pub(super) fn object_list<'a>(objects: impl IntoIterator<Item = &'a ObjectKey>) -> String {
    Value::from_iter(objects.into_iter().map(|(m, k)| Value::from(vec![m.clone(), k.clone()]))).to_string()
}

/// Appends a condition matching rows held by any scoped subject, through `subject_type` and `subject_pk` columns
/// (and, with `roles_column`, rows of a scoped role). Terms for empty sets are left out rather than written as false:
/// SQLite serves an OR by one index search per term only when every term can use an index, and a constant cannot.
fn push_subjects_or(qb: &mut QueryBuilder<Sqlite>, scope: &Scope, roles_column: Option<&str>) {
    let mut first = true;
    let mut or = |qb: &mut QueryBuilder<Sqlite>| {
        qb.push(if first { "(" } else { " OR (" });
        first = false;
    };
    if let Some(column) = roles_column.filter(|_| !scope.roles.is_empty()) {
        or(qb);
        push_any(qb, column, scope.roles.iter().copied());
        qb.push(")");
    }
    for (kind, pks) in [("user", &scope.users), ("group", &scope.groups), ("role", &scope.roles)] {
        if pks.is_empty() {
            continue;
        }
        or(qb);
        qb.push("subject_type = ").push_bind(kind).push(" AND ");
        push_any(qb, "subject_pk", pks.iter().copied());
        qb.push(")");
    }
    if first {
        qb.push("0");
    }
}

/// Rows of `select` (`SELECT columns FROM rest`), narrowed by `filter` when the facts are scoped. Scoped reads come
/// back as one JSON array built by SQLite: sqlx hands rows over one at a time between threads, which dominated large
/// scoped reads; a full read streams its rows, as one array of every row could pass SQLite's string limit.
async fn scoped_rows<T>(
    tx: &mut SqliteConnection,
    select: &str,
    scope: Option<&Scope>,
    filter: impl FnOnce(&mut QueryBuilder<Sqlite>, &Scope),
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + serde::de::DeserializeOwned + Send + Unpin,
{
    let Some(scope) = scope else {
        return QueryBuilder::<Sqlite>::new(select).build_query_as().fetch_all(&mut *tx).await.map_err(backend);
    };
    let (columns, rest) = select
        .strip_prefix("SELECT ")
        .and_then(|s| s.split_once(" FROM "))
        .ok_or_else(|| StoreError::Backend(format!("not a plain select: {select}")))?;
    let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT json_group_array(json_array({columns})) FROM {rest} WHERE "));
    filter(&mut qb, scope);
    let text: String = qb.build_query_scalar().fetch_one(&mut *tx).await.map_err(backend)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Backend(format!("reading scoped facts: {e}")))
}

/// A grant: subject type and key, module, action, object model and key (empty when global), expiry.
type GrantRow = (String, i64, String, String, String, String, Option<i64>);
/// An object: model, key, parent's model and key, organisation.
type ObjectRow = (String, String, Option<String>, Option<String>, i64);

/// Every module, as the engine needs it.
pub(super) async fn read_modules(tx: &mut SqliteConnection) -> Result<Vec<ModuleFact>> {
    let rows: Vec<(String, i64, String)> =
        scoped_rows(tx, "SELECT id, is_active, custom_actions FROM modules", None, |_, _| {}).await?;
    Ok(rows
        .into_iter()
        .map(|(id, is_active, custom)| ModuleFact {
            id,
            is_active: is_active != 0,
            custom_actions: serde_json::from_str(&custom).unwrap_or_default(),
        })
        .collect())
}

/// The engine's facts: all of them, or (with a scope) those [`Facts::restricted_to`] describes.
pub(super) async fn read_facts(tx: &mut SqliteConnection, scope: Option<&Scope>) -> Result<Facts> {
    let users: Vec<(i64, i64, i64, i64)> =
        scoped_rows(tx, "SELECT pk, org, is_active, is_superuser FROM users", scope, |qb, s| {
            push_any(qb, "pk", s.users.iter().copied())
        })
        .await?;
    let groups: Vec<(i64, i64, Option<i64>, String)> =
        scoped_rows(tx, "SELECT pk, org, parent, permissions FROM groups", scope, |qb, s| {
            push_any(qb, "pk", s.groups.iter().copied())
        })
        .await?;
    let roles: Vec<(i64, i64)> =
        scoped_rows(tx, "SELECT pk, org FROM roles", scope, |qb, s| push_any(qb, "pk", s.roles.iter().copied())).await?;
    let modules = match scope {
        Some(_) => Vec::new(),
        None => read_modules(tx).await?,
    };
    let memberships: Vec<(i64, i64, Option<i64>, i64)> =
        scoped_rows(tx, "SELECT user, grp, expires_at, restricted FROM memberships", scope, |qb, s| {
            push_any(qb, "user", s.users.iter().copied())
        })
        .await?;
    let nodes: Vec<(i64, i64, i64)> = scoped_rows(tx, "SELECT user, grp, node FROM membership_nodes", scope, |qb, s| {
        push_any(qb, "user", s.users.iter().copied())
    })
    .await?;
    let assignments: Vec<(i64, String, i64, Option<i64>)> =
        scoped_rows(tx, "SELECT role, subject_type, subject_pk, expires_at FROM role_assignments", scope, |qb, s| {
            push_subjects_or(qb, s, Some("role"));
        })
        .await?;
    let grants: Vec<GrantRow> = scoped_rows(
        tx,
        "SELECT subject_type, subject_pk, module, action, object_model, object_pk, expires_at FROM grants",
        scope,
        |qb, s| push_subjects_or(qb, s, None),
    )
    .await?;
    let objects: Vec<ObjectRow> = scoped_rows(
        tx,
        "SELECT o.model, o.object_pk, p.model, p.object_pk, o.org FROM objects o LEFT JOIN objects p ON p.pk = o.parent",
        scope,
        |qb, s| {
            qb.push("(o.model, o.object_pk) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(")
                .push_bind(object_list(&s.objects))
                .push("))");
        },
    )
    .await?;

    let mut facts = Facts {
        users: users
            .into_iter()
            .map(|(pk, org, is_active, is_superuser)| UserFact {
                pk,
                org,
                is_active: is_active != 0,
                is_superuser: is_superuser != 0,
            })
            .collect(),
        roles,
        modules,
        ..Facts::default()
    };
    for (pk, org, parent, permissions) in groups {
        facts.groups.push((pk, org, parent));
        let held =
            serde_json::from_str::<Value>(&permissions).ok().and_then(|v| ModulePermissions::parse(&v, "permissions").ok());
        for (module, action) in held.iter().flat_map(|h| h.pairs()) {
            facts.grants.push(GrantFact {
                subject: SubjectFact::Group(pk),
                module: module.into(),
                action: action.into(),
                object: None,
                expires_at: None,
            });
        }
    }
    facts.memberships = memberships
        .into_iter()
        .map(|(user, group, expires_at, restricted)| MembershipFact {
            user,
            group,
            expires_at,
            restriction: (restricted != 0).then(|| nodes.iter().filter(|n| n.0 == user && n.1 == group).map(|n| n.2).collect()),
        })
        .collect();
    facts.role_assignments = assignments
        .into_iter()
        .map(|(role, kind, pk, expires_at)| RoleAssignmentFact { role, subject: subject_of(&kind, pk), expires_at })
        .collect();
    facts.grants.extend(grants.into_iter().map(|(kind, pk, module, action, model, object_pk, expires_at)| GrantFact {
        subject: subject_of(&kind, pk),
        module,
        action,
        object: (!model.is_empty()).then_some((model, object_pk)),
        expires_at,
    }));
    facts.objects =
        objects.into_iter().map(|(model, key, pm, pk, org)| ObjectFact { key: (model, key), parent: pm.zip(pk), org }).collect();
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    /// The plan SQLite chooses for `select` narrowed to `scope` by [`push_subjects_or`].
    async fn plan(store: &SqliteStore, select: &str, scope: &Scope, roles_column: Option<&str>) -> String {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("EXPLAIN QUERY PLAN {select} WHERE "));
        push_subjects_or(&mut qb, scope, roles_column);
        let rows: Vec<(i64, i64, i64, String)> = qb.build_query_as().fetch_all(&store.pool).await.unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// Following a write reads its subjects' grants and role assignments by index, whichever sets are empty: a
    /// constant term in the OR (as `AND 0` once was) makes SQLite scan every grant on every write.
    #[tokio::test]
    async fn scoped_subject_reads_use_indexes() {
        let store = SqliteStore::open_url("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let scopes = [
            Scope { users: [1].into(), ..Scope::default() },
            Scope { users: [1].into(), groups: [2, 3].into(), ..Scope::default() },
            Scope { roles: [4].into(), ..Scope::default() },
            Scope { groups: [2].into(), roles: [4].into(), ..Scope::default() },
        ];
        for scope in &scopes {
            let grants = plan(&store, "SELECT * FROM grants", scope, None).await;
            assert!(!grants.contains("SCAN grants"), "{scope:?}:\n{grants}");
            let assignments = plan(&store, "SELECT * FROM role_assignments", scope, Some("role")).await;
            assert!(!assignments.contains("SCAN role_assignments"), "{scope:?}:\n{assignments}");
        }
        let empty = plan(&store, "SELECT * FROM grants", &Scope::default(), None).await;
        assert!(!empty.is_empty());
    }
}
