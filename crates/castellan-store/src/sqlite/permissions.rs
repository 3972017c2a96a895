//! Modules, roles, role assignments, grants, and the engine's facts.

use async_trait::async_trait;
use castellan_core::change::{Change, ModuleRecord, RoleRecord};
use castellan_core::engine::{
    Facts, GrantFact, MembershipFact, ModuleFact, ObjectFact, ObjectKey, RoleAssignmentFact, Scope, SubjectFact, UserFact,
};
use castellan_core::permission::ModulePermissions;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::{CURRENT_REVISION, Sql, SqliteStore, like_escape, log_write, map_err};
use crate::time_util::{from_micros, now_micros};
use crate::{Module, Page, PermissionStore, Result, Revision, Role, StoreError, WriteCtx};

fn module_from(r: &Row<'_>) -> rusqlite::Result<Module> {
    Ok(Module {
        id: r.get(0)?,
        description: r.get(1)?,
        is_active: r.get(2)?,
        custom_actions: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        builtin: r.get(4)?,
    })
}

fn module_record(m: &Module) -> ModuleRecord {
    ModuleRecord { description: m.description.clone(), is_active: m.is_active, actions: m.custom_actions.clone() }
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

fn fetch_module(c: &Connection, id: &str) -> Result<Module> {
    Ok(c.prepare_cached(&format!("SELECT {MODULE_COLUMNS} FROM modules WHERE id = ?"))?.query_row(params![id], module_from)?)
}

fn fetch_role(c: &Connection, pk: i64) -> Result<Role> {
    let row: (i64, String, String, i64, i64, i64) = c
        .prepare_cached("SELECT pk, name, description, org, created_date, modified_date FROM roles WHERE pk = ?")?
        .query_row(params![pk], |r| r.try_into())?;
    let assigned = c
        .prepare_cached(
            "SELECT subject_type, subject_pk FROM role_assignments WHERE role = ? AND (expires_at IS NULL OR +expires_at > ?) ORDER BY subject_pk",
        )?
        .query_map(params![pk, now_micros()], |r| <(String, i64)>::try_from(r))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
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
fn role_record(r: &Role) -> RoleRecord {
    RoleRecord {
        name: r.name.clone(),
        description: r.description.clone(),
        org: r.org,
        users: r.users.clone(),
        groups: r.groups.clone(),
    }
}

/// Applies planned grants of `codenames` (`module.action`) to `subject`, globally or on `object`, each upserted with
/// its expiry: a blind write, whatever was held before.
pub(super) fn assign_grants(
    c: &Connection,
    subject: SubjectFact,
    object: Option<&ObjectKey>,
    codenames: &[String],
    expires_at: Option<i64>,
) -> Result<()> {
    let (kind, pk) = subject_key(subject);
    let (model, key) = object.map_or(("", ""), |(m, k)| (m.as_str(), k.as_str()));
    let mut upsert = c.prepare_cached(
        "INSERT INTO grants (subject_type, subject_pk, module, action, object_model, object_pk, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (subject_type, subject_pk, module, action, object_model, object_pk) DO UPDATE SET expires_at = excluded.expires_at",
    )?;
    for (module, action) in codenames.iter().filter_map(|p| p.split_once('.')) {
        upsert.execute(params![kind, pk, module, action, model, key, expires_at])?;
    }
    Ok(())
}

/// Applies planned removals of `codenames` from `subject`, globally or on `object` (absent ones are no change).
pub(super) fn unassign_grants(
    c: &Connection,
    subject: SubjectFact,
    object: Option<&ObjectKey>,
    codenames: &[String],
) -> Result<()> {
    let (kind, pk) = subject_key(subject);
    let (model, key) = object.map_or(("", ""), |(m, k)| (m.as_str(), k.as_str()));
    let mut delete = c.prepare_cached(
        "DELETE FROM grants WHERE subject_type = ? AND subject_pk = ? AND module = ? AND action = ? AND object_model = ? AND object_pk = ?",
    )?;
    for (module, action) in codenames.iter().filter_map(|p| p.split_once('.')) {
        delete.execute(params![kind, pk, module, action, model, key])?;
    }
    Ok(())
}

/// The actions subject (`kind`, `pk`) holds globally in `module` as stored (expired or not), ascending.
fn module_actions(c: &Connection, kind: &str, pk: i64, module: &str) -> Result<Vec<String>> {
    let actions = c
        .prepare_cached(
            "SELECT action FROM grants WHERE subject_type = ? AND subject_pk = ? AND module = ? AND object_model = '' ORDER BY action",
        )?
        .query_map(params![kind, pk, module], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(actions)
}

/// Replaces the actions `subject` holds globally in `module` with `after`, if they still read as `before`.
pub(super) fn set_module_grants(
    c: &Connection,
    subject: SubjectFact,
    module: &str,
    before: &[String],
    after: &[String],
) -> Result<()> {
    let (kind, pk) = subject_key(subject);
    if module_actions(c, kind, pk, module)? != before {
        return Err(StoreError::Stale(format!("the {module} permissions of {kind} {pk}")));
    }
    c.prepare_cached("DELETE FROM grants WHERE subject_type = ? AND subject_pk = ? AND module = ? AND object_model = ''")?
        .execute(params![kind, pk, module])?;
    let mut insert = c.prepare_cached("INSERT INTO grants (subject_type, subject_pk, module, action) VALUES (?, ?, ?, ?)")?;
    for action in after {
        insert.execute(params![kind, pk, module, action])?;
    }
    Ok(())
}

/// Applies a planned assignment of role `pk` to `subjects` (expiring at `expires_at`), or its removal (`assign`
/// false), if the role still reads as `before`; subjects must be users or groups of the role's org
/// (`Conflict{members}`).
pub(super) fn set_role_holders(
    c: &Connection,
    pk: i64,
    before: &RoleRecord,
    subjects: &[SubjectFact],
    assign: bool,
    expires_at: Option<i64>,
) -> Result<()> {
    if fetch_role(c, pk)?.record() != *before {
        return Err(StoreError::Stale(format!("role {pk}")));
    }
    for &subject in subjects {
        let (kind, subject_pk) = subject_key(subject);
        if !assign {
            c.prepare_cached("DELETE FROM role_assignments WHERE role = ? AND subject_type = ? AND subject_pk = ?")?
                .execute(params![pk, kind, subject_pk])?;
            continue;
        }
        let table = if kind == "user" { "users" } else { "groups" };
        let org: Option<i64> = c
            .prepare_cached(&format!("SELECT org FROM {table} WHERE pk = ?"))?
            .query_row(params![subject_pk], |r| r.get(0))
            .optional()?;
        if kind == "role" || org != Some(before.org) {
            return Err(StoreError::Conflict { constraint: "members".into() });
        }
        c.prepare_cached(
            "INSERT INTO role_assignments (role, subject_type, subject_pk, expires_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (role, subject_type, subject_pk) DO UPDATE SET expires_at = excluded.expires_at",
        )?
        .execute(params![pk, kind, subject_pk, expires_at])?;
    }
    Ok(())
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
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {MODULE_COLUMNS} FROM modules ORDER BY id"))?;
            let modules = stmt.query_map([], module_from)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(modules)
        })
        .await
    }

    async fn get_module(&self, id: &str) -> Result<Module> {
        let id = id.to_string();
        self.read(move |c| fetch_module(c, &id)).await
    }

    async fn create_module(&self, ctx: &WriteCtx, m: &Module) -> Result<(Module, Revision)> {
        let m = m.clone();
        self.write(ctx, move |c, ctx| {
            let now = now_micros();
            c.prepare_cached(
                "INSERT INTO modules (id, description, is_active, custom_actions, builtin, created_date, modified_date) VALUES (?, ?, ?, ?, 0, ?, ?)",
            )?
            .execute(params![m.id, m.description, m.is_active, json!(m.custom_actions).to_string(), now, now])
            .map_err(|e| match map_err(e) {
                StoreError::Conflict { .. } => StoreError::Conflict { constraint: "module".into() },
                other => other,
            })?;
            let module = fetch_module(c, &m.id)?;
            let revision = log_write(c, ctx, Change::ModuleCreated { id: m.id.clone(), after: module_record(&module) })?;
            Ok((module, revision))
        })
        .await
    }

    async fn update_module(&self, ctx: &WriteCtx, m: &Module) -> Result<(Module, Revision)> {
        let m = m.clone();
        self.write(ctx, move |c, ctx| {
            let before = fetch_module(c, &m.id)?;
            c.prepare_cached(
                "UPDATE modules SET description = ?, is_active = ?, custom_actions = ?, modified_date = ? WHERE id = ?",
            )?
            .execute(params![
                m.description,
                m.is_active,
                json!(m.custom_actions).to_string(),
                now_micros(),
                m.id
            ])?;
            let after = fetch_module(c, &m.id)?;
            let change = Change::ModuleUpdated { id: m.id.clone(), before: module_record(&before), after: module_record(&after) };
            let revision = log_write(c, ctx, change)?;
            Ok((after, revision))
        })
        .await
    }

    async fn delete_module(&self, ctx: &WriteCtx, id: &str) -> Result<Revision> {
        let id = id.to_string();
        self.write(ctx, move |c, ctx| {
            let before = fetch_module(c, &id)?;
            if before.builtin {
                return Err(StoreError::Conflict { constraint: "builtin".into() });
            }
            c.prepare_cached("DELETE FROM modules WHERE id = ?")?.execute(params![id])?;
            // Group permissions live in the groups themselves; the grants trigger does not reach them.
            let key = format!("$.\"{id}\"");
            c.prepare_cached(
                "UPDATE groups SET permissions = json_remove(permissions, ?1) WHERE json_type(permissions, ?1) IS NOT NULL",
            )?
            .execute(params![key])?;
            log_write(c, ctx, Change::ModuleDeleted { id, before: module_record(&before) })
        })
        .await
    }

    async fn create_role(&self, ctx: &WriteCtx, name: &str, description: &str, org: i64) -> Result<(Role, Revision)> {
        let (name, description) = (name.to_string(), description.to_string());
        self.write(ctx, move |c, ctx| {
            let now = now_micros();
            let pk: i64 = c
                .prepare_cached(
                    "INSERT INTO roles (name, description, org, created_date, modified_date) VALUES (?, ?, ?, ?, ?) RETURNING pk",
                )?
                .query_row(params![name, description, org, now, now], |r| r.get(0))
                .map_err(|e| role_conflict(map_err(e)))?;
            let role = fetch_role(c, pk)?;
            let revision = log_write(c, ctx, Change::RoleCreated { pk, after: role_record(&role) })?;
            Ok((role, revision))
        })
        .await
    }

    async fn get_role(&self, pk: i64) -> Result<Role> {
        self.read(move |c| fetch_role(c, pk)).await
    }

    async fn list_roles(&self, org: Option<i64>, search: Option<&str>, offset: i64, limit: i64) -> Result<Page<Role>> {
        let pattern = search.map(str::trim).filter(|t| !t.is_empty()).map(|term| format!("%{}%", like_escape(term)));
        let filter = |sql: &mut Sql| {
            sql.push(" WHERE 1 = 1");
            if let Some(org) = org {
                sql.push(" AND org = ").bind(org);
            }
            if let Some(pattern) = &pattern {
                sql.push(" AND lower(name) LIKE ").bind(pattern.clone()).push(" ESCAPE '\\'");
            }
        };
        let mut count_sql = Sql::new("SELECT count(*) FROM roles");
        filter(&mut count_sql);
        let mut sql = Sql::new("SELECT pk FROM roles");
        filter(&mut sql);
        sql.push(" ORDER BY pk LIMIT ").bind(limit).push(" OFFSET ").bind(offset);
        self.read(move |c| {
            let count: i64 = count_sql.row(c, |r| r.get(0))?.unwrap_or_default();
            let pks: Vec<i64> = sql.rows(c, |r| r.get(0))?;
            let items = pks.into_iter().map(|pk| fetch_role(c, pk)).collect::<Result<Vec<_>>>()?;
            Ok(Page { count, items })
        })
        .await
    }

    async fn update_role(
        &self,
        ctx: &WriteCtx,
        pk: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(Role, Revision)> {
        let mut sql = Sql::new("UPDATE roles SET modified_date = ");
        sql.bind(now_micros());
        if let Some(v) = name {
            sql.push(", name = ").bind(v.to_string());
        }
        if let Some(v) = description {
            sql.push(", description = ").bind(v.to_string());
        }
        sql.push(" WHERE pk = ").bind(pk);
        self.write(ctx, move |c, ctx| {
            let before = fetch_role(c, pk)?;
            sql.execute(c).map_err(role_conflict)?;
            let after = fetch_role(c, pk)?;
            let revision =
                log_write(c, ctx, Change::RoleUpdated { pk, before: role_record(&before), after: role_record(&after) })?;
            Ok((after, revision))
        })
        .await
    }

    async fn delete_role(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision> {
        self.write(ctx, move |c, ctx| {
            let before = fetch_role(c, pk)?;
            c.prepare_cached("DELETE FROM roles WHERE pk = ?")?.execute(params![pk])?;
            log_write(c, ctx, Change::RoleDeleted { pk, before: role_record(&before) })
        })
        .await
    }

    async fn module_grants(&self, subject: SubjectFact) -> Result<Vec<(String, Vec<String>)>> {
        let (kind, pk) = subject_key(subject);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT module, action FROM grants WHERE subject_type = ? AND subject_pk = ? AND object_model = ''
                 AND (expires_at IS NULL OR +expires_at > ?) ORDER BY module",
            )?;
            let mut rows = stmt.query(params![kind, pk, now_micros()])?;
            let mut held = ModulePermissions::new();
            while let Some(r) = rows.next()? {
                held.insert_named(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?);
            }
            Ok(held.to_map().into_iter().collect())
        })
        .await
    }

    async fn module_actions(&self, subject: SubjectFact, module: &str) -> Result<Vec<String>> {
        let (kind, pk) = subject_key(subject);
        let module = module.to_string();
        self.read(move |c| module_actions(c, kind, pk, &module)).await
    }

    async fn grants_at(&self, subject: SubjectFact, object: Option<(&str, &str)>) -> Result<Vec<(String, String)>> {
        let (kind, pk) = subject_key(subject);
        let (model, key) = object.unwrap_or(("", ""));
        let (model, key) = (model.to_string(), key.to_string());
        self.read(move |c| {
            let grants = c
                .prepare_cached(
                    "SELECT module, action FROM grants WHERE subject_type = ? AND subject_pk = ? AND object_model = ? AND object_pk = ?
                     AND (expires_at IS NULL OR +expires_at > ?) ORDER BY module, action",
                )?
                .query_map(params![kind, pk, model, key, now_micros()], |r| <(String, String)>::try_from(r))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(grants)
        })
        .await
    }

    async fn holders_at(&self, kind: &str, object: Option<(&str, &str)>) -> Result<Vec<(i64, Vec<(String, String)>)>> {
        let kind = kind.to_string();
        let (model, key) = object.unwrap_or(("", ""));
        let (model, key) = (model.to_string(), key.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT subject_pk, module, action FROM grants WHERE subject_type = ? AND object_model = ? AND object_pk = ?
                 AND (expires_at IS NULL OR +expires_at > ?) ORDER BY subject_pk, module, action",
            )?;
            let rows = stmt.query_map(params![kind, model, key, now_micros()], |r| <(i64, String, String)>::try_from(r))?;
            let mut holders: Vec<(i64, Vec<(String, String)>)> = Vec::new();
            for row in rows {
                let (pk, module, action) = row?;
                match holders.last_mut() {
                    Some((last, grants)) if *last == pk => grants.push((module, action)),
                    _ => holders.push((pk, vec![(module, action)])),
                }
            }
            Ok(holders)
        })
        .await
    }

    async fn engine_facts(&self) -> Result<(Facts, Revision)> {
        self.read(|c| {
            // One read transaction: every table as of the same revision.
            let tx = c.unchecked_transaction()?;
            let facts = read_facts(&tx, None)?;
            let revision: i64 = tx.prepare_cached(CURRENT_REVISION)?.query_row([], |r| r.get(0))?;
            tx.commit()?;
            Ok((facts, revision))
        })
        .await
    }

    async fn engine_patch(&self, scope: &Scope) -> Result<Facts> {
        let scope = scope.clone();
        self.read(move |c| {
            let tx = c.unchecked_transaction()?;
            let facts = read_facts(&tx, Some(&scope))?;
            tx.commit()?;
            Ok(facts)
        })
        .await
    }
}

/// Object keys as one JSON array of `[model, key]` pairs, to bind as one parameter and read with `json_each` (a scope
/// may name more objects than an expression may have terms).
pub(super) fn object_list<'a>(objects: impl IntoIterator<Item = &'a ObjectKey>) -> String {
    Value::from_iter(objects.into_iter().map(|(m, k)| Value::from(vec![m.clone(), k.clone()]))).to_string()
}

/// Appends a condition matching rows held by any scoped subject, through `subject_type` and `subject_pk` columns
/// (and, with `roles_column`, rows of a scoped role). Terms for empty sets are left out rather than written as false:
/// SQLite serves an OR by one index search per term only when every term can use an index, and a constant cannot.
fn push_subjects_or(sql: &mut Sql, scope: &Scope, roles_column: Option<&str>) {
    let mut first = true;
    let mut or = |sql: &mut Sql| {
        sql.push(if first { "(" } else { " OR (" });
        first = false;
    };
    if let Some(column) = roles_column.filter(|_| !scope.roles.is_empty()) {
        or(sql);
        sql.in_json(column, scope.roles.iter().copied());
        sql.push(")");
    }
    for (kind, pks) in [("user", &scope.users), ("group", &scope.groups), ("role", &scope.roles)] {
        if pks.is_empty() {
            continue;
        }
        or(sql);
        sql.push("subject_type = ").bind(kind.to_string()).push(" AND ");
        sql.in_json("subject_pk", pks.iter().copied());
        sql.push(")");
    }
    if first {
        sql.push("0");
    }
}

/// Rows of `select` (`SELECT columns FROM table`), narrowed by `filter` when the facts are scoped; streamed row by
/// row either way.
fn scoped_rows<T>(c: &Connection, select: &str, scope: Option<&Scope>, filter: impl FnOnce(&mut Sql, &Scope)) -> Result<Vec<T>>
where
    T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
{
    let Some(scope) = scope else {
        let mut stmt = c.prepare_cached(select)?;
        let rows = stmt.query_map([], |r| T::try_from(r))?.collect::<rusqlite::Result<Vec<T>>>()?;
        return Ok(rows);
    };
    let mut sql = Sql::new(select);
    sql.push(" WHERE ");
    filter(&mut sql, scope);
    sql.rows(c, |r| T::try_from(r))
}

/// A grant: subject type and key, module, action, object model and key (empty when global), expiry.
type GrantRow = (String, i64, String, String, String, String, Option<i64>);
/// An object: model, key, parent's model and key, organisation.
type ObjectRow = (String, String, Option<String>, Option<String>, i64);

/// Every module, as the engine needs it.
pub(super) fn read_modules(c: &Connection) -> Result<Vec<ModuleFact>> {
    let rows: Vec<(String, i64, String)> = scoped_rows(c, "SELECT id, is_active, custom_actions FROM modules", None, |_, _| {})?;
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
pub(super) fn read_facts(c: &Connection, scope: Option<&Scope>) -> Result<Facts> {
    let users: Vec<(i64, i64, i64, i64)> =
        scoped_rows(c, "SELECT pk, org, is_active, is_superuser FROM users", scope, |sql, s| {
            sql.in_json("pk", s.users.iter().copied());
        })?;
    let groups: Vec<(i64, i64, Option<i64>, String)> =
        scoped_rows(c, "SELECT pk, org, parent, permissions FROM groups", scope, |sql, s| {
            sql.in_json("pk", s.groups.iter().copied());
        })?;
    let roles: Vec<(i64, i64)> = scoped_rows(c, "SELECT pk, org FROM roles", scope, |sql, s| {
        sql.in_json("pk", s.roles.iter().copied());
    })?;
    let modules = match scope {
        Some(_) => Vec::new(),
        None => read_modules(c)?,
    };
    let memberships: Vec<(i64, i64, Option<i64>, i64)> =
        scoped_rows(c, "SELECT user, grp, expires_at, restricted FROM memberships", scope, |sql, s| {
            sql.in_json("user", s.users.iter().copied());
        })?;
    let nodes: Vec<(i64, i64, i64)> = scoped_rows(c, "SELECT user, grp, node FROM membership_nodes", scope, |sql, s| {
        sql.in_json("user", s.users.iter().copied());
    })?;
    let assignments: Vec<(i64, String, i64, Option<i64>)> =
        scoped_rows(c, "SELECT role, subject_type, subject_pk, expires_at FROM role_assignments", scope, |sql, s| {
            push_subjects_or(sql, s, Some("role"));
        })?;
    let grants: Vec<GrantRow> = scoped_rows(
        c,
        "SELECT subject_type, subject_pk, module, action, object_model, object_pk, expires_at FROM grants",
        scope,
        |sql, s| push_subjects_or(sql, s, None),
    )?;
    // Catalog and channel groups are `access` grants of their items to their group (API.md §7).
    let object_groups: Vec<(i64, String, i64)> = scoped_rows(
        c,
        "SELECT g.grp, g.kind, i.item FROM object_groups g JOIN object_group_items i ON i.og = g.pk",
        scope,
        |sql, s| {
            sql.in_json("g.grp", s.groups.iter().copied());
        },
    )?;
    let objects: Vec<ObjectRow> = scoped_rows(
        c,
        "SELECT o.model, o.object_pk, p.model, p.object_pk, o.org FROM objects o LEFT JOIN objects p ON p.pk = o.parent",
        scope,
        |sql, s| {
            sql.push(
                "(o.model, o.object_pk) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(",
            )
            .bind(object_list(&s.objects))
            .push("))");
        },
    )?;

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
    let mut nodes_of: std::collections::HashMap<(i64, i64), Vec<i64>> = std::collections::HashMap::new();
    for (user, group, node) in nodes {
        nodes_of.entry((user, group)).or_default().push(node);
    }
    facts.memberships = memberships
        .into_iter()
        .map(|(user, group, expires_at, restricted)| MembershipFact {
            user,
            group,
            expires_at,
            restriction: (restricted != 0).then(|| nodes_of.remove(&(user, group)).unwrap_or_default()),
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
    facts.grants.extend(object_groups.into_iter().map(|(group, kind, item)| GrantFact {
        subject: SubjectFact::Group(group),
        module: kind.clone(),
        action: "access".into(),
        object: Some((kind, item.to_string())),
        expires_at: None,
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
        let mut sql = Sql::new(&format!("EXPLAIN QUERY PLAN {select} WHERE "));
        push_subjects_or(&mut sql, scope, roles_column);
        let rows: Vec<String> = store.read(move |c| sql.rows(c, |r| r.get(3))).await.unwrap();
        rows.join("\n")
    }

    /// Following a write reads its subjects' grants and role assignments by index, whichever sets are empty: a
    /// constant term in the OR (as `AND 0` once was) makes SQLite scan every grant on every write.
    #[tokio::test]
    async fn scoped_subject_reads_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("castellan.db")).await.unwrap();
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
