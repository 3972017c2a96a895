//! Groups, the ancestor closure, memberships and node restrictions.
//!
//! The closure holds one row per (ancestor, descendant) pair, itself included at depth 0, so "is U in G or a
//! descendant of G" is one indexed join and moving a subtree rewrites only the rows of that subtree.

use async_trait::async_trait;
use castellan_core::permission::ModulePermissions;
use serde_json::{Value, json};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;

use super::{SqliteStore, Tx, backend, change_entry, like_escape, log_write, map_err};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{
    DirectorySnapshot, Group, GroupBrief, GroupChanges, GroupFilter, GroupOrder, GroupQuery, GroupStore, Membership, NewGroup,
    Page, Result, Revision, StoreError, WriteCtx,
};

const GROUP_COLUMNS: &str = "pk, name, description, org, parent, permissions, created_date, modified_date";

type GroupRow = (i64, String, String, i64, Option<i64>, String, i64, i64);

fn group_from(r: GroupRow) -> Group {
    let permissions = serde_json::from_str::<Value>(&r.5)
        .ok()
        .and_then(|v| ModulePermissions::parse(&v, "permissions").ok())
        .unwrap_or_default();
    Group {
        pk: r.0,
        name: r.1,
        description: r.2,
        org: r.3,
        parent: r.4,
        permissions,
        roles: Vec::new(),
        created_date: from_micros(r.6),
        modified_date: from_micros(r.7),
    }
}

fn permissions_text(p: &ModulePermissions) -> String {
    json!(p.to_map()).to_string()
}

fn group_json(g: &Group) -> Value {
    json!({"name": g.name, "description": g.description, "org": g.org, "parent": g.parent, "permissions": g.permissions.to_map()})
}

/// SQL for "memberships that count now" (unexpired), with the current time bound by the caller.
const ACTIVE: &str = "(expires_at IS NULL OR expires_at > ?)";

async fn fetch_group(conn: &mut SqliteConnection, pk: i64) -> Result<Group> {
    let row: GroupRow = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {GROUP_COLUMNS} FROM groups WHERE pk = ?")))
        .bind(pk)
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut groups = [group_from(row)];
    attach_roles(conn, &mut groups).await?;
    let [group] = groups;
    Ok(group)
}

/// Loads the unexpired roles of each group with one query.
async fn attach_roles(conn: &mut SqliteConnection, groups: &mut [Group]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let pks: Vec<i64> = groups.iter().map(|g| g.pk).collect();
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT subject_pk, role FROM role_assignments WHERE subject_type = 'group' AND (expires_at IS NULL OR expires_at > ",
    );
    qb.push_bind(now_micros()).push(") AND subject_pk IN (");
    push_keys(&mut qb, &pks);
    qb.push(" ORDER BY role");
    let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
    for (group, role) in rows {
        if let Some(g) = groups.iter_mut().find(|g| g.pk == group) {
            g.roles.push(role);
        }
    }
    Ok(())
}

/// Fails with `Conflict{parent}` unless `parent` exists in `org`.
async fn check_parent(conn: &mut SqliteConnection, org: i64, parent: i64) -> Result<()> {
    let found: Option<i64> = sqlx::query_scalar("SELECT org FROM groups WHERE pk = ?")
        .bind(parent)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    if found == Some(org) { Ok(()) } else { Err(StoreError::Conflict { constraint: "parent".into() }) }
}

fn name_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { constraint } if constraint.contains("name") || constraint == "unique" => {
            StoreError::Conflict { constraint: "name".into() }
        }
        other => other,
    }
}

/// Re-links the subtree of `pk` under `parent`: only rows of that subtree change.
async fn move_subtree(tx: &mut Tx, pk: i64, parent: Option<i64>) -> Result<()> {
    sqlx::query(
        "DELETE FROM group_closure
         WHERE descendant IN (SELECT descendant FROM group_closure WHERE ancestor = ?1)
           AND ancestor NOT IN (SELECT descendant FROM group_closure WHERE ancestor = ?1)",
    )
    .bind(pk)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    if let Some(parent) = parent {
        sqlx::query(
            "INSERT INTO group_closure (ancestor, descendant, depth)
             SELECT a.ancestor, d.descendant, a.depth + d.depth + 1
             FROM group_closure a, group_closure d WHERE a.descendant = ? AND d.ancestor = ?",
        )
        .bind(parent)
        .bind(pk)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

fn push_keys(qb: &mut QueryBuilder<Sqlite>, pks: &[i64]) {
    let mut sep = qb.separated(", ");
    for pk in pks {
        sep.push_bind(*pk);
    }
    qb.push(")");
}

/// The groups a user sees: the user's (unexpired) groups and all their descendants.
pub(super) fn push_visible_groups(qb: &mut QueryBuilder<Sqlite>, viewer: i64) {
    qb.push("SELECT c.descendant FROM group_closure c JOIN memberships m ON m.grp = c.ancestor WHERE m.user = ");
    qb.push_bind(viewer);
    qb.push(" AND (m.expires_at IS NULL OR m.expires_at > ");
    qb.push_bind(now_micros());
    qb.push(")");
}

fn push_group_filter(qb: &mut QueryBuilder<Sqlite>, f: &GroupFilter) {
    qb.push(" WHERE 1 = 1");
    if !f.ids.is_empty() {
        qb.push(" AND pk IN (");
        push_keys(qb, &f.ids);
    }
    if !f.orgs.is_empty() {
        qb.push(" AND org IN (");
        push_keys(qb, &f.orgs);
    }
    if !f.names.is_empty() {
        qb.push(" AND name IN (");
        let mut sep = qb.separated(", ");
        for n in &f.names {
            sep.push_bind(n.clone());
        }
        qb.push(")");
    }
    match f.parent {
        Some(Some(parent)) => {
            qb.push(" AND parent = ").push_bind(parent);
        }
        Some(None) => {
            qb.push(" AND parent IS NULL");
        }
        None => {}
    }
    if let Some(member) = f.member {
        qb.push(" AND pk IN (SELECT grp FROM memberships WHERE user = ").push_bind(member);
        qb.push(" AND (expires_at IS NULL OR expires_at > ").push_bind(now_micros()).push("))");
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let pattern = format!("%{}%", like_escape(term));
        qb.push(" AND (lower(name) LIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\' OR lower(description) LIKE ");
        qb.push_bind(pattern).push(" ESCAPE '\\')");
    }
    if let Some(viewer) = f.visible_to {
        qb.push(" AND pk IN (");
        push_visible_groups(qb, viewer);
        qb.push(")");
    }
}

async fn fetch_membership(conn: &mut SqliteConnection, user: i64, group: i64) -> Result<Option<Membership>> {
    let row: Option<(Option<i64>, bool)> =
        sqlx::query_as("SELECT expires_at, restricted FROM memberships WHERE user = ? AND grp = ?")
            .bind(user)
            .bind(group)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    let Some((expires_at, restricted)) = row else { return Ok(None) };
    let nodes: Vec<i64> = sqlx::query_scalar("SELECT node FROM membership_nodes WHERE user = ? AND grp = ? ORDER BY node")
        .bind(user)
        .bind(group)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(Some(Membership { user, group, expires_at: expires_at.map(from_micros), restricted, nodes }))
}

fn membership_json(m: &Option<Membership>) -> Value {
    match m {
        None => Value::Null,
        Some(m) => json!({"expires_at": m.expires_at.map(to_micros), "restricted": m.restricted, "nodes": m.nodes}),
    }
}

/// Adds members in one round trip (`?1` group, `?2` users as a JSON array, `?3` expiry, `?4` time, `?5`/`?6` actor,
/// `?7` target key, `?8` ip, `?9` request id). The first statement answers whether the group exists and whether
/// every user belongs to its organisation; the change-log row is written only when both hold, and the memberships
/// only when the change-log row was (`changes()`), so a refused write changes nothing. The change-log row, with each membership before and after, is built in SQL from the rows it
/// replaces and answers the revision and the changes.
macro_rules! add_members_sql {
    () => {
        "BEGIN IMMEDIATE;
         SELECT EXISTS (SELECT 1 FROM groups WHERE pk = ?1),
                (SELECT count(*) FROM users u JOIN groups g ON g.org = u.org
                  WHERE g.pk = ?1 AND u.pk IN (SELECT value FROM json_each(?2))) = json_array_length(?2);
         INSERT INTO change_log (at, revision, actor, actor_username, action, target_type, target_pk, changes, ip, request_id, org)
         SELECT ?4, (SELECT COALESCE(MAX(revision), 0) + 1 FROM change_log), ?5, ?6, 'assign', 'groups', ?7,
                (SELECT json_object('members', json_group_array(json_object(
                          'user', j.value,
                          'before', json(CASE WHEN m.user IS NULL THEN NULL ELSE json_object(
                              'expires_at', m.expires_at,
                              'restricted', json(CASE WHEN m.restricted THEN 'true' ELSE 'false' END),
                              'nodes', json((SELECT json_group_array(node) FROM (SELECT node FROM membership_nodes n
                                              WHERE n.user = m.user AND n.grp = m.grp ORDER BY node)))) END),
                          'after', json_object(
                              'expires_at', ?3,
                              'restricted', json(CASE WHEN m.restricted THEN 'true' ELSE 'false' END),
                              'nodes', json((SELECT json_group_array(node) FROM (SELECT node FROM membership_nodes n
                                              WHERE n.user = m.user AND n.grp = m.grp ORDER BY node)))))))
                   FROM json_each(?2) j LEFT JOIN memberships m ON m.user = j.value AND m.grp = ?1),
                ?8, ?9, (SELECT org FROM users WHERE pk = ?5)
          WHERE (SELECT count(*) FROM users u JOIN groups g ON g.org = u.org
                  WHERE g.pk = ?1 AND u.pk IN (SELECT value FROM json_each(?2))) = json_array_length(?2)
            AND EXISTS (SELECT 1 FROM groups WHERE pk = ?1)
         RETURNING revision, changes;
         INSERT INTO memberships (user, grp, expires_at)
         SELECT j.value, ?1, ?3 FROM json_each(?2) j WHERE changes() = 1
         ON CONFLICT (user, grp) DO UPDATE SET expires_at = excluded.expires_at;"
    };
}

const ADD_MEMBERS: &str = add_members_sql!();
const ADD_MEMBERS_AND_COMMIT: &str = concat!(add_members_sql!(), " COMMIT;");

/// The permissions stored on `groups` and all their ancestors, merged.
async fn conferred(conn: &mut SqliteConnection, groups: &[i64]) -> Result<ModulePermissions> {
    let mut out = ModulePermissions::new();
    if groups.is_empty() {
        return Ok(out);
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT DISTINCT g.permissions FROM groups g JOIN group_closure c ON c.ancestor = g.pk WHERE c.descendant IN (",
    );
    push_keys(&mut qb, groups);
    let rows: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await.map_err(backend)?;
    for text in rows {
        if let Some(p) = serde_json::from_str::<Value>(&text).ok().and_then(|v| ModulePermissions::parse(&v, "permissions").ok())
        {
            out.extend(&p);
        }
    }
    // Global grants to those groups and their ancestors, and to the roles assigned to any of them.
    let now = now_micros();
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT module, action FROM grants WHERE object_model = '' AND (expires_at IS NULL OR expires_at > ",
    );
    qb.push_bind(now)
        .push(") AND ((subject_type = 'group' AND subject_pk IN (SELECT ancestor FROM group_closure WHERE descendant IN (");
    push_keys(&mut qb, groups);
    qb.push(")) OR (subject_type = 'role' AND subject_pk IN (SELECT role FROM role_assignments WHERE subject_type = 'group' AND (expires_at IS NULL OR expires_at > ");
    qb.push_bind(now).push(") AND subject_pk IN (SELECT ancestor FROM group_closure WHERE descendant IN (");
    push_keys(&mut qb, groups);
    qb.push("))))");
    let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
    for (module, action) in &rows {
        out.insert_named(module, action);
    }
    Ok(out)
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

    async fn create_group(&self, ctx: &WriteCtx, new: NewGroup) -> Result<(Group, Revision)> {
        let mut tx = self.begin_write().await?;
        if let Some(parent) = new.parent {
            check_parent(&mut tx, new.org, parent).await?;
        }
        let now = now_micros();
        let row: GroupRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO groups (name, description, org, parent, permissions, created_date, modified_date)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {GROUP_COLUMNS}"
        )))
        .bind(&new.name)
        .bind(&new.description)
        .bind(new.org)
        .bind(new.parent)
        .bind(permissions_text(&new.permissions))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| name_conflict(map_err(e)))?;
        let group = group_from(row);
        sqlx::query("INSERT INTO group_closure (ancestor, descendant, depth) VALUES (?1, ?1, 0)")
            .bind(group.pk)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        move_subtree(&mut tx, group.pk, group.parent).await?;
        let revision =
            log_write(tx, ctx, "create", "groups", &group.pk.to_string(), &json!({"after": group_json(&group)})).await?;
        Ok((group, revision))
    }

    async fn get_group(&self, pk: i64) -> Result<Group> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_group(&mut conn, pk).await
    }

    async fn list_groups(&self, query: &GroupQuery) -> Result<Page<Group>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let mut count_qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM groups");
        push_group_filter(&mut count_qb, &query.filter);
        let count: i64 = count_qb.build_query_scalar().fetch_one(&mut *conn).await.map_err(backend)?;
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {GROUP_COLUMNS} FROM groups"));
        push_group_filter(&mut qb, &query.filter);
        qb.push(" ORDER BY ");
        for (o, desc) in &query.ordering {
            let column = match o {
                GroupOrder::Id => "pk",
                GroupOrder::Name => "name",
                GroupOrder::CreatedDate => "created_date",
            };
            qb.push(format!("{column} {}, ", if *desc { "DESC" } else { "ASC" }));
        }
        qb.push("pk ASC LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
        let rows: Vec<GroupRow> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
        let mut items: Vec<Group> = rows.into_iter().map(group_from).collect();
        attach_roles(&mut conn, &mut items).await?;
        Ok(Page { count, items })
    }

    async fn update_group(&self, ctx: &WriteCtx, pk: i64, c: GroupChanges) -> Result<(Group, Revision)> {
        let mut tx = self.begin_write().await?;
        let before = fetch_group(&mut tx, pk).await?;
        if let Some(Some(parent)) = c.parent {
            check_parent(&mut tx, before.org, parent).await?;
            let inside: Option<i64> = sqlx::query_scalar("SELECT 1 FROM group_closure WHERE ancestor = ? AND descendant = ?")
                .bind(pk)
                .bind(parent)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
            if inside.is_some() {
                return Err(StoreError::Conflict { constraint: "cycle".into() });
            }
        }
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE groups SET modified_date = ");
        qb.push_bind(now_micros());
        if let Some(v) = &c.name {
            qb.push(", name = ").push_bind(v.clone());
        }
        if let Some(v) = &c.description {
            qb.push(", description = ").push_bind(v.clone());
        }
        if let Some(v) = c.parent {
            qb.push(", parent = ").push_bind(v);
        }
        if let Some(p) = &c.permissions {
            qb.push(", permissions = ").push_bind(permissions_text(p));
        }
        qb.push(" WHERE pk = ").push_bind(pk);
        qb.build().execute(&mut *tx).await.map_err(|e| name_conflict(map_err(e)))?;
        if let Some(parent) = c.parent.filter(|p| *p != before.parent) {
            move_subtree(&mut tx, pk, parent).await?;
        }
        let after = fetch_group(&mut tx, pk).await?;
        let changes = json!({"before": group_json(&before), "after": group_json(&after)});
        let revision = log_write(tx, ctx, "update", "groups", &pk.to_string(), &changes).await?;
        Ok((after, revision))
    }

    async fn delete_group(&self, ctx: &WriteCtx, pk: i64, cascade: bool) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_group(&mut tx, pk).await?;
        let subtree: Vec<i64> = sqlx::query_scalar("SELECT descendant FROM group_closure WHERE ancestor = ? ORDER BY depth DESC")
            .bind(pk)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        if subtree.len() > 1 && !cascade {
            return Err(StoreError::Conflict { constraint: "children".into() });
        }
        for g in &subtree {
            sqlx::query("DELETE FROM groups WHERE pk = ?").bind(*g).execute(&mut *tx).await.map_err(map_err)?;
        }
        let changes = json!({"before": group_json(&before), "deleted": subtree});
        let revision = log_write(tx, ctx, "delete", "groups", &pk.to_string(), &changes).await?;
        Ok(revision)
    }

    async fn add_members(
        &self,
        ctx: &WriteCtx,
        group: i64,
        users: &[i64],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Revision> {
        // A user named twice is one member (not a user of another org).
        let mut distinct: Vec<i64> = Vec::with_capacity(users.len());
        for user in users {
            if !distinct.contains(user) {
                distinct.push(*user);
            }
        }
        let sql = if ctx.preview.is_some() { ADD_MEMBERS } else { ADD_MEMBERS_AND_COMMIT };
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let (actor, actor_username) = ctx.actor.clone().unzip();
        let rows = sqlx::query(sql)
            .bind(group)
            .bind(Value::from(distinct).to_string())
            .bind(expires_at.map(to_micros))
            .bind(now_micros())
            .bind(actor)
            .bind(actor_username)
            .bind(group.to_string())
            .bind(ctx.ip.clone())
            .bind(ctx.request_id.clone())
            .fetch_all(&mut *conn)
            .await;
        let mut tx = Tx { conn, finished: ctx.preview.is_none(), pool: self.pool.clone() };
        let rows = rows.map_err(map_err)?;
        let checks = rows.first().ok_or_else(|| StoreError::Backend("the membership checks answered nothing".into()))?;
        if !checks.try_get::<bool, _>(0).map_err(backend)? {
            return Err(StoreError::NotFound);
        }
        let written = rows.get(1).filter(|_| checks.try_get::<bool, _>(1).unwrap_or(false));
        let written = written.ok_or_else(|| StoreError::Conflict { constraint: "members".into() })?;
        let revision: Revision = written.try_get(0).map_err(backend)?;
        if let Some(slot) = &ctx.preview {
            let changes: String = written.try_get(1).map_err(backend)?;
            let changes = serde_json::from_str(&changes).map_err(|e| StoreError::Backend(e.to_string()))?;
            let entry = change_entry(ctx, "assign", "groups", &group.to_string(), changes);
            tx.finished = false;
            super::preview::preview_and_roll_back(tx, &entry, slot).await?;
        }
        Ok(revision)
    }

    async fn remove_members(&self, ctx: &WriteCtx, group: i64, users: &[i64]) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        fetch_group(&mut tx, group).await?;
        let mut changes = Vec::with_capacity(users.len());
        for user in users {
            let before = fetch_membership(&mut tx, *user, group).await?;
            if before.is_none() {
                continue;
            }
            sqlx::query("DELETE FROM memberships WHERE user = ? AND grp = ?")
                .bind(*user)
                .bind(group)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            changes.push(json!({"user": user, "before": membership_json(&before), "after": null}));
        }
        let revision = log_write(tx, ctx, "unassign", "groups", &group.to_string(), &json!({"members": changes})).await?;
        Ok(revision)
    }

    async fn membership(&self, user: i64, group: i64) -> Result<Option<Membership>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_membership(&mut conn, user, group).await
    }

    async fn set_restriction(&self, ctx: &WriteCtx, user: i64, group: i64, nodes: Option<Vec<i64>>) -> Result<Revision> {
        let mut tx = self.begin_write().await?;
        let before = fetch_membership(&mut tx, user, group).await?;
        if before.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM membership_nodes WHERE user = ? AND grp = ?")
            .bind(user)
            .bind(group)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for node in nodes.iter().flatten() {
            sqlx::query("INSERT OR IGNORE INTO membership_nodes (user, grp, node) VALUES (?, ?, ?)")
                .bind(user)
                .bind(group)
                .bind(*node)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        sqlx::query("UPDATE memberships SET restricted = ? WHERE user = ? AND grp = ?")
            .bind(nodes.is_some())
            .bind(user)
            .bind(group)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let after = fetch_membership(&mut tx, user, group).await?;
        let changes = json!({"user": user, "before": membership_json(&before), "after": membership_json(&after)});
        let revision = log_write(tx, ctx, "update", "groups", &group.to_string(), &changes).await?;
        Ok(revision)
    }

    async fn conferred_by(&self, groups: &[i64]) -> Result<ModulePermissions> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        conferred(&mut conn, groups).await
    }

    async fn effective_permissions(&self, user: i64) -> Result<ModulePermissions> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let groups: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT grp FROM memberships WHERE user = ? AND restricted = 0 AND {ACTIVE}"
        )))
        .bind(user)
        .bind(now_micros())
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
        let mut held = conferred(&mut conn, &groups).await?;
        // Global grants to the user and to the roles assigned to the user.
        let now = now_micros();
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT module, action FROM grants WHERE object_model = '' AND (expires_at IS NULL OR expires_at > ",
        );
        qb.push_bind(now).push(") AND ((subject_type = 'user' AND subject_pk = ").push_bind(user);
        qb.push(") OR (subject_type = 'role' AND subject_pk IN (SELECT role FROM role_assignments WHERE subject_type = 'user' AND subject_pk = ");
        qb.push_bind(user).push(" AND (expires_at IS NULL OR expires_at > ").push_bind(now).push(")))) ");
        let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(backend)?;
        for (module, action) in &rows {
            held.insert_named(module, action);
        }
        let inactive: Vec<String> =
            sqlx::query_scalar("SELECT id FROM modules WHERE is_active = 0").fetch_all(&mut *conn).await.map_err(backend)?;
        for module in inactive {
            held.set(&module, &[]);
        }
        Ok(held)
    }

    async fn is_within(&self, group: i64, ancestor: i64) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM group_closure WHERE ancestor = ? AND descendant = ?")
            .bind(ancestor)
            .bind(group)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(found.is_some())
    }

    async fn directory_snapshot(&self) -> Result<DirectorySnapshot> {
        let groups = sqlx::query_as("SELECT pk, parent FROM groups ORDER BY pk").fetch_all(&self.pool).await.map_err(backend)?;
        let memberships =
            sqlx::query_as("SELECT user, grp, expires_at FROM memberships").fetch_all(&self.pool).await.map_err(backend)?;
        Ok((groups, memberships))
    }

    async fn memberships_of_user(&self, user: i64) -> Result<Vec<(i64, Option<i64>)>> {
        sqlx::query_as("SELECT grp, expires_at FROM memberships WHERE user = ?")
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }

    async fn members_of_group(&self, group: i64) -> Result<Vec<(i64, Option<i64>)>> {
        sqlx::query_as("SELECT user, expires_at FROM memberships WHERE grp = ?")
            .bind(group)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }
}
