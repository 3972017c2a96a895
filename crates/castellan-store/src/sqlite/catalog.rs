//! The permission catalog (API.md §7): its rows, one write path for every catalog change, and the publication of
//! the server's own routes and admin UI tree.

use async_trait::async_trait;
use castellan_core::catalog::{
    BePermission, CatalogRows, FeGroup, FePermission, LinkTable, Namespace, ObjectGroup, ObjectGroupKind,
};
use castellan_core::change::{CatalogEntry, CatalogLink, CatalogRecord, Change};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Logging, SqliteStore, log_write};
use crate::time_util::now_micros;
use crate::{CatalogStore, PublishedRoute, Result, Revision, ShippedFe, StoreError, WriteCtx};

fn table(entry: CatalogEntry) -> &'static str {
    match entry {
        CatalogEntry::BeNamespace => "be_namespaces",
        CatalogEntry::BePermission => "be_permissions",
        CatalogEntry::FePermission => "fe_permissions",
        CatalogEntry::FeGroup => "fe_groups",
        CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => "object_groups",
    }
}

/// The link table joining `link` to `entry`: its name, the entry's column, the linked column.
fn link_table(entry: CatalogEntry, link: CatalogLink) -> Result<(&'static str, &'static str, &'static str)> {
    let (table, entry_on_right) =
        LinkTable::of(entry, link).ok_or_else(|| StoreError::Backend(format!("{entry:?} has no {link:?} links")))?;
    let (name, left, right) = match table {
        LinkTable::NamespaceUsers => ("be_namespace_users", "namespace", "user"),
        LinkTable::BeUsers => ("be_permission_users", "be", "user"),
        LinkTable::FeUsers => ("fe_permission_users", "fe", "user"),
        LinkTable::FeBe => ("fe_permission_be", "fe", "be"),
        LinkTable::FeGroupUsers => ("fe_group_users", "grp", "user"),
        LinkTable::FeGroupFe => ("fe_group_permissions", "grp", "fe"),
    };
    Ok(if entry_on_right { (name, right, left) } else { (name, left, right) })
}

fn object_kind(entry: CatalogEntry) -> Option<&'static str> {
    entry.object_module()
}

fn linked(c: &Connection, entry: CatalogEntry, link: CatalogLink, pk: i64) -> Result<Vec<i64>> {
    let (table, mine, other) = link_table(entry, link)?;
    let mut stmt = c.prepare_cached(&format!("SELECT {other} FROM {table} WHERE {mine} = ? ORDER BY {other}"))?;
    let ids = stmt.query_map([pk], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Links `ids` (those not linked yet) and answers which were new.
fn add_links(c: &Connection, entry: CatalogEntry, link: CatalogLink, pk: i64, ids: &[i64]) -> Result<Vec<i64>> {
    let (table, mine, other) = link_table(entry, link)?;
    let mut stmt = c.prepare_cached(&format!("INSERT OR IGNORE INTO {table} ({mine}, {other}) VALUES (?, ?)"))?;
    let mut added = Vec::new();
    for &id in ids {
        if stmt.execute(params![pk, id])? == 1 {
            added.push(id);
        }
    }
    Ok(added)
}

/// Unlinks `ids` and answers which were linked.
fn remove_links(c: &Connection, entry: CatalogEntry, link: CatalogLink, pk: i64, ids: &[i64]) -> Result<Vec<i64>> {
    let (table, mine, other) = link_table(entry, link)?;
    let mut stmt = c.prepare_cached(&format!("DELETE FROM {table} WHERE {mine} = ? AND {other} = ?"))?;
    let mut removed = Vec::new();
    for &id in ids {
        if stmt.execute(params![pk, id])? == 1 {
            removed.push(id);
        }
    }
    Ok(removed)
}

fn set_links(c: &Connection, entry: CatalogEntry, link: CatalogLink, pk: i64, ids: &[i64]) -> Result<()> {
    let (table, mine, _) = link_table(entry, link)?;
    c.prepare_cached(&format!("DELETE FROM {table} WHERE {mine} = ?"))?.execute([pk])?;
    add_links(c, entry, link, pk, ids)?;
    Ok(())
}

/// The links a record lists, by kind.
fn record_links(record: &CatalogRecord) -> Vec<(CatalogLink, &Vec<i64>)> {
    [
        (CatalogLink::Users, record.users.as_ref()),
        (CatalogLink::BePermissions, record.be_permissions.as_ref()),
        (CatalogLink::FePermissions, record.fe_permissions.as_ref()),
    ]
    .into_iter()
    .filter_map(|(link, ids)| Some((link, ids?)))
    .collect()
}

fn items(c: &Connection, pk: i64) -> Result<Vec<i64>> {
    let mut stmt = c.prepare_cached("SELECT item FROM object_group_items WHERE og = ? ORDER BY item")?;
    let items = stmt.query_map([pk], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(items)
}

fn set_items(c: &Connection, pk: i64, items: &[i64]) -> Result<()> {
    c.prepare_cached("DELETE FROM object_group_items WHERE og = ?")?.execute([pk])?;
    let mut stmt = c.prepare_cached("INSERT OR IGNORE INTO object_group_items (og, item) VALUES (?, ?)")?;
    for item in items {
        stmt.execute(params![pk, item])?;
    }
    Ok(())
}

/// Everything recorded about one entry: its fields and links; `NotFound` when there is no such entry.
fn record(c: &Connection, entry: CatalogEntry, pk: i64) -> Result<Box<CatalogRecord>> {
    let links = |link| linked(c, entry, link, pk).map(Some);
    Ok(Box::new(match entry {
        CatalogEntry::BeNamespace => {
            let (name, builtin): (String, bool) = c
                .prepare_cached("SELECT name, builtin FROM be_namespaces WHERE pk = ?")?
                .query_row([pk], |r| Ok((r.get(0)?, r.get(1)?)))?;
            CatalogRecord {
                name: Some(name),
                builtin: Some(builtin),
                users: links(CatalogLink::Users)?,
                ..CatalogRecord::default()
            }
        }
        CatalogEntry::BePermission => {
            let (name, namespace, action, path, stale, builtin): (String, i64, String, String, bool, bool) = c
                .prepare_cached("SELECT name, namespace, action, path, stale, builtin FROM be_permissions WHERE pk = ?")?
                .query_row([pk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
            CatalogRecord {
                name: Some(name),
                namespace: Some(namespace),
                action: Some(action),
                path: Some(path),
                stale: Some(stale),
                builtin: Some(builtin),
                users: links(CatalogLink::Users)?,
                ..CatalogRecord::default()
            }
        }
        CatalogEntry::FePermission => {
            let (name, slug, parent, builtin): (String, String, Option<i64>, bool) = c
                .prepare_cached("SELECT name, slug, parent, builtin FROM fe_permissions WHERE pk = ?")?
                .query_row([pk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            CatalogRecord {
                name: Some(name),
                slug: Some(slug),
                parent: Some(parent),
                builtin: Some(builtin),
                be_permissions: links(CatalogLink::BePermissions)?,
                users: links(CatalogLink::Users)?,
                ..CatalogRecord::default()
            }
        }
        CatalogEntry::FeGroup => {
            let (name, description): (String, Option<String>) = c
                .prepare_cached("SELECT name, description FROM fe_groups WHERE pk = ?")?
                .query_row([pk], |r| Ok((r.get(0)?, r.get(1)?)))?;
            CatalogRecord {
                name: Some(name),
                description: Some(description),
                fe_permissions: links(CatalogLink::FePermissions)?,
                users: links(CatalogLink::Users)?,
                ..CatalogRecord::default()
            }
        }
        CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => {
            let group: i64 = c
                .prepare_cached("SELECT grp FROM object_groups WHERE pk = ? AND kind = ?")?
                .query_row(params![pk, object_kind(entry)], |r| r.get(0))?;
            CatalogRecord { group: Some(group), items: Some(items(c, pk)?), ..CatalogRecord::default() }
        }
    }))
}

/// The columns an entry's record sets, with their values.
fn columns(entry: CatalogEntry, r: &CatalogRecord) -> Vec<(&'static str, SqlValue)> {
    let text = |v: &Option<String>| v.clone().map(SqlValue::Text);
    let mut out: Vec<(&'static str, Option<SqlValue>)> = vec![("name", text(&r.name))];
    match entry {
        CatalogEntry::BePermission => out.extend([
            ("namespace", r.namespace.map(SqlValue::Integer)),
            ("action", text(&r.action)),
            ("path", text(&r.path)),
            ("stale", r.stale.map(|s| SqlValue::Integer(s.into()))),
        ]),
        CatalogEntry::FePermission => {
            out.extend([("slug", text(&r.slug)), ("parent", r.parent.map(|p| p.map_or(SqlValue::Null, SqlValue::Integer)))])
        }
        CatalogEntry::FeGroup => {
            out.push(("description", r.description.clone().map(|d| d.map_or(SqlValue::Null, SqlValue::Text))))
        }
        CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup => {
            out = vec![("grp", r.group.map(SqlValue::Integer))];
        }
        CatalogEntry::BeNamespace => {}
    }
    out.into_iter().filter_map(|(column, value)| Some((column, value?))).collect()
}

/// Registers the module whose `access` an object group grants, when the deployment has not registered it yet.
fn ensure_module(c: &Connection, logging: &Logging, module: &str) -> Result<()> {
    let known = c.prepare_cached("SELECT 1 FROM modules WHERE id = ?")?.query_row([module], |_| Ok(())).optional()?.is_some();
    if known {
        return Ok(());
    }
    let now = now_micros();
    c.prepare_cached(
        "INSERT INTO modules (id, description, is_active, custom_actions, builtin, created_date, modified_date) VALUES (?, ?, 1, '[]', 0, ?, ?)",
    )?
    .execute(params![module, format!("Registered for {module} groups"), now, now])?;
    // A dry run previews the group, not this registration (which it rolls back with the rest).
    if logging.preview.is_some() {
        return Ok(());
    }
    let after = castellan_core::change::ModuleRecord {
        description: format!("Registered for {module} groups"),
        is_active: true,
        actions: Vec::new(),
    };
    log_write(c, logging, Change::ModuleCreated { id: module.to_string(), after })?;
    Ok(())
}

fn insert(c: &Connection, logging: &Logging, entry: CatalogEntry, after: &CatalogRecord) -> Result<i64> {
    let now = now_micros();
    let mut cols = columns(entry, after);
    if let Some(kind) = object_kind(entry) {
        ensure_module(c, logging, kind)?;
        cols.push(("kind", SqlValue::Text(kind.to_string())));
    }
    cols.push(("created_date", SqlValue::Integer(now)));
    cols.push(("modified_date", SqlValue::Integer(now)));
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let marks = vec!["?"; cols.len()].join(", ");
    let sql = format!("INSERT INTO {} ({}) VALUES ({marks}) RETURNING pk", table(entry), names.join(", "));
    let values: Vec<SqlValue> = cols.into_iter().map(|(_, v)| v).collect();
    let pk: i64 = c.prepare_cached(&sql)?.query_row(rusqlite::params_from_iter(values), |r| r.get(0))?;
    write_lists(c, entry, pk, after)?;
    Ok(pk)
}

fn write_lists(c: &Connection, entry: CatalogEntry, pk: i64, record: &CatalogRecord) -> Result<()> {
    for (link, ids) in record_links(record) {
        set_links(c, entry, link, pk, ids)?;
    }
    if let Some(items) = &record.items {
        set_items(c, pk, items)?;
    }
    Ok(())
}

fn update(c: &Connection, entry: CatalogEntry, pk: i64, after: &CatalogRecord) -> Result<()> {
    let mut cols = columns(entry, after);
    cols.push(("modified_date", SqlValue::Integer(now_micros())));
    let sets: Vec<String> = cols.iter().map(|(n, _)| format!("{n} = ?")).collect();
    let sql = format!("UPDATE {} SET {} WHERE pk = ?", table(entry), sets.join(", "));
    let mut values: Vec<SqlValue> = cols.into_iter().map(|(_, v)| v).collect();
    values.push(SqlValue::Integer(pk));
    c.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(values))?;
    write_lists(c, entry, pk, after)
}

fn touch(c: &Connection, entry: CatalogEntry, pk: i64) -> Result<()> {
    c.prepare_cached(&format!("UPDATE {} SET modified_date = ? WHERE pk = ?", table(entry)))?
        .execute(params![now_micros(), pk])?;
    Ok(())
}

/// Keeps only what differs between two records (object groups keep their group and items on both sides, which
/// followers read as the grants taken and given).
fn difference(
    entry: CatalogEntry,
    before: Box<CatalogRecord>,
    after: Box<CatalogRecord>,
) -> (Box<CatalogRecord>, Box<CatalogRecord>) {
    if entry.is_object_group() {
        return (before, after);
    }
    let (Ok(serde_json::Value::Object(mut b)), Ok(serde_json::Value::Object(mut a))) =
        (serde_json::to_value(&before), serde_json::to_value(&after))
    else {
        return (before, after);
    };
    let same: Vec<String> = b.iter().filter(|(k, v)| a.get(*k) == Some(v)).map(|(k, _)| k.clone()).collect();
    for key in same {
        b.remove(&key);
        a.remove(&key);
    }
    let read = |m| Box::new(serde_json::from_value(serde_json::Value::Object(m)).unwrap_or_default());
    (read(b), read(a))
}

fn is_builtin(c: &Connection, entry: CatalogEntry, pk: i64) -> Result<bool> {
    if !matches!(entry, CatalogEntry::BeNamespace | CatalogEntry::BePermission | CatalogEntry::FePermission) {
        return Ok(false);
    }
    let builtin = c
        .prepare_cached(&format!("SELECT builtin FROM {} WHERE pk = ?", table(entry)))?
        .query_row([pk], |r| r.get::<_, bool>(0))
        .optional()?;
    builtin.ok_or(StoreError::NotFound)
}

/// Persists one catalog change and logs it as persisted (keys, links really added or removed, fields really changed).
fn write_change(c: &Connection, logging: &Logging, change: Change) -> Result<(Change, Revision)> {
    let logged = match change {
        Change::CatalogCreated { entry, after, .. } => {
            let pk = insert(c, logging, entry, &after)?;
            Change::CatalogCreated { entry, pk, after: record(c, entry, pk)? }
        }
        Change::CatalogUpdated { entry, pk, after, .. } => {
            let before = record(c, entry, pk)?;
            update(c, entry, pk, &after)?;
            let (before, after) = difference(entry, before, record(c, entry, pk)?);
            Change::CatalogUpdated { entry, pk, before, after }
        }
        Change::CatalogDeleted { entry, pk, .. } => {
            if is_builtin(c, entry, pk)? {
                return Err(StoreError::Conflict { constraint: "builtin".into() });
            }
            let before = record(c, entry, pk)?;
            c.prepare_cached(&format!("DELETE FROM {} WHERE pk = ?", table(entry)))?.execute([pk])?;
            Change::CatalogDeleted { entry, pk, before }
        }
        Change::CatalogLinked { entry, pk, link, added } => {
            record(c, entry, pk)?;
            let added = add_links(c, entry, link, pk, &added)?;
            touch(c, entry, pk)?;
            Change::CatalogLinked { entry, pk, link, added }
        }
        Change::CatalogUnlinked { entry, pk, link, removed } => {
            record(c, entry, pk)?;
            let removed = remove_links(c, entry, link, pk, &removed)?;
            touch(c, entry, pk)?;
            Change::CatalogUnlinked { entry, pk, link, removed }
        }
        other => return Err(StoreError::Backend(format!("not a catalog change: {}", other.action()))),
    };
    let revision = log_write(c, logging, logged.clone())?;
    Ok((logged, revision))
}

fn read_rows(c: &Connection) -> Result<CatalogRows> {
    fn all<T>(c: &Connection, sql: &str, row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
        let mut stmt = c.prepare_cached(sql)?;
        let rows = stmt.query_map([], row)?.collect::<rusqlite::Result<Vec<T>>>()?;
        Ok(rows)
    }
    let pairs = |sql: &str| all(c, sql, |r| Ok((r.get(0)?, r.get(1)?)));
    let mut object_groups: Vec<ObjectGroup> =
        all(c, "SELECT pk, kind, grp, created_date, modified_date FROM object_groups ORDER BY pk", |r| {
            let kind: String = r.get(1)?;
            Ok(ObjectGroup {
                pk: r.get(0)?,
                kind: ObjectGroupKind::parse(&kind).unwrap_or(ObjectGroupKind::Catalogs),
                group: r.get(2)?,
                items: Vec::new(),
                created: r.get(3)?,
                modified: r.get(4)?,
            })
        })?;
    let group_items: Vec<(i64, i64)> = pairs("SELECT og, item FROM object_group_items ORDER BY og, item")?;
    for group in &mut object_groups {
        group.items = group_items.iter().filter(|(og, _)| *og == group.pk).map(|(_, item)| *item).collect();
    }
    Ok(CatalogRows {
        namespaces: all(c, "SELECT pk, name, builtin, created_date, modified_date FROM be_namespaces ORDER BY pk", |r| {
            Ok(Namespace { pk: r.get(0)?, name: r.get(1)?, builtin: r.get(2)?, created: r.get(3)?, modified: r.get(4)? })
        })?,
        be: all(
            c,
            "SELECT pk, name, namespace, action, path, builtin, stale, created_date, modified_date FROM be_permissions ORDER BY pk",
            |r| {
                Ok(BePermission {
                    pk: r.get(0)?,
                    name: r.get(1)?,
                    namespace: r.get(2)?,
                    action: r.get(3)?,
                    path: r.get(4)?,
                    builtin: r.get(5)?,
                    stale: r.get(6)?,
                    created: r.get(7)?,
                    modified: r.get(8)?,
                })
            },
        )?,
        fe: all(c, "SELECT pk, name, slug, parent, builtin, created_date, modified_date FROM fe_permissions ORDER BY pk", |r| {
            Ok(FePermission {
                pk: r.get(0)?,
                name: r.get(1)?,
                slug: r.get(2)?,
                parent: r.get(3)?,
                builtin: r.get(4)?,
                created: r.get(5)?,
                modified: r.get(6)?,
            })
        })?,
        fe_groups: all(c, "SELECT pk, name, description, created_date, modified_date FROM fe_groups ORDER BY pk", |r| {
            Ok(FeGroup { pk: r.get(0)?, name: r.get(1)?, description: r.get(2)?, created: r.get(3)?, modified: r.get(4)? })
        })?,
        object_groups,
        namespace_users: pairs("SELECT namespace, user FROM be_namespace_users")?,
        be_users: pairs("SELECT be, user FROM be_permission_users")?,
        fe_users: pairs("SELECT fe, user FROM fe_permission_users")?,
        fe_be: pairs("SELECT fe, be FROM fe_permission_be")?,
        fe_group_users: pairs("SELECT grp, user FROM fe_group_users")?,
        fe_group_fe: pairs("SELECT grp, fe FROM fe_group_permissions")?,
    })
}

/// Publishes the server's routes and admin UI tree; answers the last revision written, `None` when all was current.
fn publish(c: &Connection, logging: &Logging, routes: &[PublishedRoute], tree: &[ShippedFe]) -> Result<Option<Revision>> {
    let mut last = None;
    let mut log = |change: Change| -> Result<()> {
        last = Some(log_write(c, logging, change)?);
        Ok(())
    };
    let now = now_micros();
    let mut published: Vec<i64> = Vec::new();
    for route in routes {
        let ns: Option<i64> = c
            .prepare_cached("SELECT pk FROM be_namespaces WHERE name = ?")?
            .query_row([&route.namespace], |r| r.get(0))
            .optional()?;
        let ns = match ns {
            Some(ns) => ns,
            None => {
                let ns: i64 = c
                    .prepare_cached(
                        "INSERT INTO be_namespaces (name, builtin, created_date, modified_date) VALUES (?, 1, ?, ?) RETURNING pk",
                    )?
                    .query_row(params![route.namespace, now, now], |r| r.get(0))?;
                log(Change::CatalogCreated {
                    entry: CatalogEntry::BeNamespace,
                    pk: ns,
                    after: record(c, CatalogEntry::BeNamespace, ns)?,
                })?;
                ns
            }
        };
        let found: Option<(i64, bool, bool)> = c
            .prepare_cached("SELECT pk, builtin, stale FROM be_permissions WHERE namespace = ? AND action = ? AND path = ?")?
            .query_row(params![ns, route.action, route.path], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let pk = match found {
            Some((pk, builtin, stale)) => {
                if !builtin || stale {
                    let before = record(c, CatalogEntry::BePermission, pk)?;
                    c.prepare_cached("UPDATE be_permissions SET builtin = 1, stale = 0, modified_date = ? WHERE pk = ?")?
                        .execute(params![now, pk])?;
                    let (before, after) =
                        difference(CatalogEntry::BePermission, before, record(c, CatalogEntry::BePermission, pk)?);
                    log(Change::CatalogUpdated { entry: CatalogEntry::BePermission, pk, before, after })?;
                }
                pk
            }
            None => {
                let name = format!("{}-{}-{}", route.namespace, route.action, route.path);
                let pk: i64 = c
                    .prepare_cached(
                        "INSERT INTO be_permissions (name, namespace, action, path, builtin, created_date, modified_date) VALUES (?, ?, ?, ?, 1, ?, ?) RETURNING pk",
                    )?
                    .query_row(params![name, ns, route.action, route.path, now, now], |r| r.get(0))?;
                log(Change::CatalogCreated {
                    entry: CatalogEntry::BePermission,
                    pk,
                    after: record(c, CatalogEntry::BePermission, pk)?,
                })?;
                pk
            }
        };
        published.push(pk);
    }
    let gone: Vec<i64> = {
        let mut stmt = c.prepare_cached("SELECT pk FROM be_permissions WHERE builtin = 1 AND stale = 0 ORDER BY pk")?;
        let all = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?;
        all.into_iter().filter(|pk| !published.contains(pk)).collect()
    };
    for pk in gone {
        c.prepare_cached("UPDATE be_permissions SET stale = 1, modified_date = ? WHERE pk = ?")?.execute(params![now, pk])?;
        let before = Box::new(CatalogRecord { stale: Some(false), ..CatalogRecord::default() });
        let after = Box::new(CatalogRecord { stale: Some(true), ..CatalogRecord::default() });
        log(Change::CatalogUpdated { entry: CatalogEntry::BePermission, pk, before, after })?;
    }
    for node in tree {
        publish_fe(c, node, now, &mut log)?;
    }
    Ok(last)
}

/// Creates one node of the shipped FE tree if missing and sets its BE permissions to those it names.
fn publish_fe(c: &Connection, node: &ShippedFe, now: i64, log: &mut impl FnMut(Change) -> Result<()>) -> Result<()> {
    let Some((slug, above)) = node.path.split_last() else { return Ok(()) };
    // Every path starts below the root, pk 1.
    let mut parent = 1;
    for step in above {
        parent = c
            .prepare_cached("SELECT pk FROM fe_permissions WHERE parent = ? AND slug = ?")?
            .query_row(params![parent, step], |r| r.get(0))?;
    }
    let found: Option<i64> = c
        .prepare_cached("SELECT pk FROM fe_permissions WHERE parent = ? AND slug = ?")?
        .query_row(params![parent, slug], |r| r.get(0))
        .optional()?;
    let pk = match found {
        Some(pk) => pk,
        None => {
            let pk: i64 = c
                .prepare_cached(
                    "INSERT INTO fe_permissions (name, slug, parent, builtin, created_date, modified_date) VALUES (?, ?, ?, 1, ?, ?) RETURNING pk",
                )?
                .query_row(params![node.name, slug, parent, now, now], |r| r.get(0))?;
            log(Change::CatalogCreated {
                entry: CatalogEntry::FePermission,
                pk,
                after: record(c, CatalogEntry::FePermission, pk)?,
            })?;
            pk
        }
    };
    let mut wanted = Vec::new();
    let mut stmt = c.prepare_cached(
        "SELECT b.pk FROM be_permissions b JOIN be_namespaces n ON n.pk = b.namespace WHERE b.builtin = 1 AND n.name = ? AND b.action = ?",
    )?;
    for (namespace, action) in &node.be {
        wanted
            .extend(stmt.query_map(params![namespace, action], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<i64>>>()?);
    }
    wanted.sort_unstable();
    wanted.dedup();
    let current = linked(c, CatalogEntry::FePermission, CatalogLink::BePermissions, pk)?;
    if current != wanted {
        set_links(c, CatalogEntry::FePermission, CatalogLink::BePermissions, pk, &wanted)?;
        let before = Box::new(CatalogRecord { be_permissions: Some(current), ..CatalogRecord::default() });
        let after = Box::new(CatalogRecord { be_permissions: Some(wanted), ..CatalogRecord::default() });
        log(Change::CatalogUpdated { entry: CatalogEntry::FePermission, pk, before, after })?;
    }
    Ok(())
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn catalog_rows(&self) -> Result<CatalogRows> {
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let rows = read_rows(&tx)?;
            tx.commit()?;
            Ok(rows)
        })
        .await
    }

    async fn write_catalog(&self, ctx: &WriteCtx, change: Change) -> Result<(Change, Revision)> {
        self.write(ctx, move |c, logging| write_change(c, logging, change)).await
    }

    async fn publish_catalog(&self, routes: &[PublishedRoute], tree: &[ShippedFe]) -> Result<Option<Revision>> {
        let (routes, tree) = (routes.to_vec(), tree.to_vec());
        self.write(&WriteCtx::default(), move |c, logging| publish(c, logging, &routes, &tree)).await
    }
}
