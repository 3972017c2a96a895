//! Groups, the ancestor closure, memberships and node restrictions.
//!
//! The closure holds one row per (ancestor, descendant) pair, itself included at depth 0, so "is U in G or a
//! descendant of G" is one indexed join and moving a subtree rewrites only the rows of that subtree.

use async_trait::async_trait;
use castellan_core::change::{Change, GroupRecord, MemberChange, MembershipRecord};
use castellan_core::permission::ModulePermissions;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

use super::{Sql, SqliteStore, TRIGRAM, backend, fts_phrase, like_escape, log_write, map_err};
use crate::time_util::{from_micros, now_micros, to_micros};
use crate::{
    DirectorySnapshot, Group, GroupBrief, GroupFilter, GroupOrder, GroupQuery, GroupStore, Membership, NewGroup, Page, Result,
    Revision, StoreError, WriteCtx,
};

const GROUP_COLUMNS: &str = "pk, name, description, org, parent, permissions, created_date, modified_date";

type GroupRow = (i64, String, String, i64, Option<i64>, String, i64, i64);

fn group_row(r: &Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

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

/// Applies a planned update of group `pk` if the group still reads as `before`: renamed, described, given other
/// permissions or moved (which re-links its subtree only). A move must stay in the group's org and out of its own
/// subtree (`Conflict{parent}`, `Conflict{cycle}`), and names stay unique among siblings (`Conflict{name}`).
pub(super) fn update_group(c: &Connection, pk: i64, before: &GroupRecord, after: &GroupRecord) -> Result<()> {
    if fetch_group(c, pk)?.record() != *before {
        return Err(StoreError::Stale(format!("group {pk}")));
    }
    if after.org != before.org {
        return Err(StoreError::Conflict { constraint: "org".into() });
    }
    if let Some(parent) = after.parent.filter(|_| after.parent != before.parent) {
        check_parent(c, before.org, parent)?;
        let inside: Option<i64> = c
            .prepare_cached("SELECT 1 FROM group_closure WHERE ancestor = ? AND descendant = ?")?
            .query_row([pk, parent], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        if inside.is_some() {
            return Err(StoreError::Conflict { constraint: "cycle".into() });
        }
    }
    c.prepare_cached("UPDATE groups SET modified_date = ?, name = ?, description = ?, parent = ?, permissions = ? WHERE pk = ?")?
        .execute(params![now_micros(), after.name, after.description, after.parent, json!(after.permissions).to_string(), pk])
        .map_err(|e| name_conflict(e.into()))?;
    if after.parent != before.parent {
        move_subtree(c, pk, after.parent)?;
    }
    Ok(())
}

fn fetch_group(c: &Connection, pk: i64) -> Result<Group> {
    let row = c.prepare_cached(&format!("SELECT {GROUP_COLUMNS} FROM groups WHERE pk = ?"))?.query_row([pk], group_row)?;
    let mut groups = [group_from(row)];
    attach_roles(c, &mut groups)?;
    let [group] = groups;
    Ok(group)
}

/// Loads the unexpired roles of each group with one query.
fn attach_roles(c: &Connection, groups: &mut [Group]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let pks: Vec<i64> = groups.iter().map(|g| g.pk).collect();
    let mut sql = Sql::new(
        "SELECT subject_pk, role FROM role_assignments WHERE subject_type = 'group' AND (expires_at IS NULL OR +expires_at > ",
    );
    sql.bind(now_micros()).push(") AND subject_pk IN ").bind_list(pks);
    sql.push(" ORDER BY role");
    let rows: Vec<(i64, i64)> = sql.rows(c, |r| Ok((r.get(0)?, r.get(1)?)))?;
    for (group, role) in rows {
        if let Some(g) = groups.iter_mut().find(|g| g.pk == group) {
            g.roles.push(role);
        }
    }
    Ok(())
}

/// Fails with `Conflict{parent}` unless `parent` exists in `org`.
fn check_parent(c: &Connection, org: i64, parent: i64) -> Result<()> {
    let found: Option<i64> =
        c.prepare_cached("SELECT org FROM groups WHERE pk = ?")?.query_row([parent], |r| r.get(0)).optional().map_err(backend)?;
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
fn move_subtree(c: &Connection, pk: i64, parent: Option<i64>) -> Result<()> {
    c.prepare_cached(
        "DELETE FROM group_closure
         WHERE descendant IN (SELECT descendant FROM group_closure WHERE ancestor = ?1)
           AND ancestor NOT IN (SELECT descendant FROM group_closure WHERE ancestor = ?1)",
    )?
    .execute([pk])
    .map_err(backend)?;
    if let Some(parent) = parent {
        c.prepare_cached(
            "INSERT INTO group_closure (ancestor, descendant, depth)
             SELECT a.ancestor, d.descendant, a.depth + d.depth + 1
             FROM group_closure a, group_closure d WHERE a.descendant = ? AND d.ancestor = ?",
        )?
        .execute([parent, pk])
        .map_err(backend)?;
    }
    Ok(())
}

fn push_group_filter(sql: &mut Sql, f: &GroupFilter) {
    sql.push(" WHERE 1 = 1");
    sql.and_in("pk", &f.ids);
    sql.and_in("org", &f.orgs);
    sql.and_in("name", &f.names);
    match f.parent {
        Some(Some(parent)) => {
            sql.push(" AND parent = ").bind(parent);
        }
        Some(None) => {
            sql.push(" AND parent IS NULL");
        }
        None => {}
    }
    if let Some(member) = f.member {
        sql.push(" AND pk IN (SELECT grp FROM memberships WHERE user = ").bind(member);
        sql.push(" AND (expires_at IS NULL OR +expires_at > ").bind(now_micros()).push("))");
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if term.chars().count() >= TRIGRAM {
            sql.push(" AND pk IN (SELECT rowid FROM groups_fts WHERE groups_fts MATCH ").bind(fts_phrase(term)).push(")");
        } else {
            let pattern = format!("%{}%", like_escape(term));
            sql.push(" AND (lower(name) LIKE ").bind(pattern.clone()).push(" ESCAPE '\\' OR lower(description) LIKE ");
            sql.bind(pattern).push(" ESCAPE '\\')");
        }
    }
    if let Some(within) = &f.within {
        sql.and_in_json("pk", within);
    }
}

fn fetch_membership(c: &Connection, user: i64, group: i64) -> Result<Option<Membership>> {
    let row: Option<(Option<i64>, bool)> = c
        .prepare_cached("SELECT expires_at, restricted FROM memberships WHERE user = ? AND grp = ?")?
        .query_row([user, group], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    let Some((expires_at, restricted)) = row else { return Ok(None) };
    let nodes = c
        .prepare_cached("SELECT node FROM membership_nodes WHERE user = ? AND grp = ? ORDER BY node")?
        .query_map([user, group], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(backend)?;
    Ok(Some(Membership { user, group, expires_at: expires_at.map(from_micros), restricted, nodes }))
}

fn membership_record(m: Option<Membership>) -> Option<MembershipRecord> {
    m.map(|m| MembershipRecord { expires_at: m.expires_at.map(to_micros), restricted: m.restricted, nodes: m.nodes })
}

/// Whether every user of the JSON array `?2` belongs to organisation `?1`.
const MEMBERS_OF_ORG: &str = "SELECT (SELECT count(*) FROM users
          WHERE org = ?1 AND pk IN (SELECT value FROM json_each(?2))) = json_array_length(?2)";

/// Applies a planned deletion of group `pk` with the groups of `deleted` (its subtree, deepest first), if the group
/// still reads as `before` and its subtree is still exactly `deleted`.
pub(super) fn delete_group(c: &Connection, pk: i64, before: &GroupRecord, deleted: &[i64]) -> Result<()> {
    if fetch_group(c, pk)?.record() != *before {
        return Err(StoreError::Stale(format!("group {pk}")));
    }
    let mut subtree = c
        .prepare_cached("SELECT descendant FROM group_closure WHERE ancestor = ?")?
        .query_map([pk], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let mut planned = deleted.to_vec();
    subtree.sort_unstable();
    planned.sort_unstable();
    if subtree != planned {
        return Err(StoreError::Stale(format!("the subtree of group {pk}")));
    }
    let mut delete = c.prepare_cached("DELETE FROM groups WHERE pk = ?")?;
    for g in deleted {
        delete.execute([*g])?;
    }
    Ok(())
}

/// Applies planned membership changes of `group`: every member must still hold the membership it was read with,
/// and those who join must belong to the group's org (`Conflict{members}`).
pub(super) fn set_members(c: &Connection, group: i64, members: &[MemberChange]) -> Result<()> {
    let org: i64 = c.prepare_cached("SELECT org FROM groups WHERE pk = ?")?.query_row([group], |r| r.get(0))?;
    let joining: Vec<i64> = members.iter().filter(|m| m.before.is_none() && m.after.is_some()).map(|m| m.user).collect();
    if !joining.is_empty() {
        let same_org: bool =
            c.prepare_cached(MEMBERS_OF_ORG)?.query_row(params![org, Value::from(joining).to_string()], |r| r.get(0))?;
        if !same_org {
            return Err(StoreError::Conflict { constraint: "members".into() });
        }
    }
    for m in members {
        set_membership(c, m.user, group, m.before.as_ref(), m.after.as_ref())?;
    }
    Ok(())
}

/// Sets `user`'s membership of `group` to `after` (`None`: removed) if it still reads as `before`.
pub(super) fn set_membership(
    c: &Connection,
    user: i64,
    group: i64,
    before: Option<&MembershipRecord>,
    after: Option<&MembershipRecord>,
) -> Result<()> {
    if membership_record(fetch_membership(c, user, group)?).as_ref() != before {
        return Err(StoreError::Stale(format!("the membership of user {user} in group {group}")));
    }
    let Some(after) = after else {
        c.prepare_cached("DELETE FROM memberships WHERE user = ? AND grp = ?")?.execute([user, group])?;
        return Ok(());
    };
    c.prepare_cached(
        "INSERT INTO memberships (user, grp, expires_at, restricted) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user, grp) DO UPDATE SET expires_at = excluded.expires_at, restricted = excluded.restricted",
    )?
    .execute(params![user, group, after.expires_at, after.restricted])?;
    // A membership joining unrestricted has no nodes to clear.
    if before.map_or(&[][..], |b| &b.nodes[..]) != &after.nodes[..] {
        c.prepare_cached("DELETE FROM membership_nodes WHERE user = ? AND grp = ?")?.execute([user, group])?;
        let mut insert = c.prepare_cached("INSERT OR IGNORE INTO membership_nodes (user, grp, node) VALUES (?, ?, ?)")?;
        for node in &after.nodes {
            insert.execute([user, group, *node])?;
        }
    }
    Ok(())
}

#[async_trait]
impl GroupStore for SqliteStore {
    async fn groups_brief(&self, pks: &[i64]) -> Result<Vec<GroupBrief>> {
        if pks.is_empty() {
            return Ok(Vec::new());
        }
        let pks = pks.to_vec();
        self.read(move |c| {
            let mut sql = Sql::new("SELECT pk, name, description FROM groups WHERE pk IN ");
            sql.bind_list(pks.iter().copied());
            sql.push(" ORDER BY pk");
            let rows: Vec<(i64, String, String)> = sql.rows(c, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let mut sql = Sql::new("SELECT parent, pk FROM groups WHERE parent IN ");
            sql.bind_list(pks.iter().copied());
            sql.push(" ORDER BY parent, pk");
            let children: Vec<(i64, i64)> = sql.rows(c, |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows
                .into_iter()
                .map(|(pk, name, description)| GroupBrief {
                    pk,
                    name,
                    description,
                    children: children.iter().filter(|(parent, _)| *parent == pk).map(|(_, c)| *c).collect(),
                })
                .collect())
        })
        .await
    }

    async fn create_group(&self, ctx: &WriteCtx, new: NewGroup) -> Result<(Group, Revision)> {
        self.write(ctx, move |c, ctx| {
            if let Some(parent) = new.parent {
                check_parent(c, new.org, parent)?;
            }
            let now = now_micros();
            let row = c
                .prepare_cached(&format!(
                    "INSERT INTO groups (name, description, org, parent, permissions, created_date, modified_date)
                     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {GROUP_COLUMNS}"
                ))?
                .query_row(
                    params![new.name, new.description, new.org, new.parent, permissions_text(&new.permissions), now, now],
                    group_row,
                )
                .map_err(|e| name_conflict(map_err(e)))?;
            let group = group_from(row);
            c.prepare_cached("INSERT INTO group_closure (ancestor, descendant, depth) VALUES (?1, ?1, 0)")?
                .execute([group.pk])
                .map_err(backend)?;
            move_subtree(c, group.pk, group.parent)?;
            let revision = log_write(c, ctx, Change::GroupCreated { pk: group.pk, after: group.record() })?;
            Ok((group, revision))
        })
        .await
    }

    async fn get_group(&self, pk: i64) -> Result<Group> {
        self.read(move |c| fetch_group(c, pk)).await
    }

    async fn list_groups(&self, query: &GroupQuery) -> Result<Page<Group>> {
        let query = query.clone();
        self.read(move |c| {
            let mut count_sql = Sql::new("SELECT count(*) FROM groups");
            push_group_filter(&mut count_sql, &query.filter);
            let count: i64 = count_sql.row(c, |r| r.get(0))?.unwrap_or_default();
            let mut sql = Sql::new(&format!("SELECT {GROUP_COLUMNS} FROM groups"));
            push_group_filter(&mut sql, &query.filter);
            sql.push(" ORDER BY ");
            for (o, desc) in &query.ordering {
                let column = match o {
                    GroupOrder::Id => "pk",
                    GroupOrder::Name => "name",
                    GroupOrder::CreatedDate => "created_date",
                };
                sql.push(&format!("{column} {}, ", if *desc { "DESC" } else { "ASC" }));
            }
            sql.push("pk ASC LIMIT ").bind(query.limit).push(" OFFSET ").bind(query.offset);
            let rows: Vec<GroupRow> = sql.rows(c, group_row)?;
            let mut items: Vec<Group> = rows.into_iter().map(group_from).collect();
            attach_roles(c, &mut items)?;
            Ok(Page { count, items })
        })
        .await
    }

    async fn membership(&self, user: i64, group: i64) -> Result<Option<Membership>> {
        self.read(move |c| fetch_membership(c, user, group)).await
    }

    async fn memberships(&self, group: i64, users: &[i64]) -> Result<(Group, Vec<(i64, Option<MembershipRecord>)>)> {
        let users = users.to_vec();
        self.read(move |c| {
            let read = users.into_iter().map(|user| Ok((user, membership_record(fetch_membership(c, user, group)?))));
            Ok((fetch_group(c, group)?, read.collect::<Result<_>>()?))
        })
        .await
    }

    async fn directory_snapshot(&self) -> Result<DirectorySnapshot> {
        self.read(|c| {
            let groups = c
                .prepare_cached("SELECT pk, parent FROM groups ORDER BY pk")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(i64, Option<i64>)>>>()
                .map_err(backend)?;
            let memberships = c
                .prepare_cached("SELECT user, grp, expires_at FROM memberships")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<Vec<(i64, i64, Option<i64>)>>>()
                .map_err(backend)?;
            Ok((groups, memberships))
        })
        .await
    }

    async fn memberships_of_user(&self, user: i64) -> Result<Vec<(i64, Option<i64>)>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached("SELECT grp, expires_at FROM memberships WHERE user = ?")?
                .query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(i64, Option<i64>)>>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }
}
