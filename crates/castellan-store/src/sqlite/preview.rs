//! Dry runs: a write runs to its end, then instead of committing, the facts deciding the affected users' holdings are
//! read on both sides of it (inside the write's savepoint for after, and in a read transaction on a connection of its
//! own for before) and the write is rolled back.

use std::collections::BTreeSet;
use std::path::Path;

use castellan_core::change::Change;
use castellan_core::engine::{Facts, GrantFact, ObjectKey, RoleAssignmentFact, Scope, SubjectFact};
use rusqlite::{Connection, Params, Row};
use serde_json::Value;

use super::db::open_reader;
use super::permissions::{object_list, read_facts, read_modules};
use crate::{PREVIEW_MAX_USERS, Preview, PreviewSlot, Result, StoreError};

/// Reads the preview of the write just run on `conn` (described by `change`) and leaves it in
/// `slot`; answers [`StoreError::DryRun`] (or why the preview failed) so that the writer rolls the write back as if it
/// had failed.
pub(super) fn preview_and_roll_back(conn: &Connection, change: &Change, slot: &PreviewSlot) -> StoreError {
    match read_preview(conn, change, slot) {
        Ok(()) => StoreError::DryRun,
        Err(e) => e,
    }
}

fn read_preview(conn: &Connection, change: &Change, slot: &PreviewSlot) -> Result<()> {
    // One read transaction for the before side: a dry run runs alone, so every write before it is committed and this
    // one is not, and the snapshot is the state the write started from, however long the reading takes.
    let path =
        conn.path().filter(|p| !p.is_empty()).ok_or_else(|| StoreError::Backend("a dry run needs a database file".into()))?;
    let mut reader = open_reader(Path::new(path))?;
    reader.execute_batch("BEGIN")?;
    let preview = read_both_sides(conn, &mut reader, change);
    // The read transaction ends whatever happened; the writer rolls the write back.
    let _ = reader.execute_batch("ROLLBACK");
    *slot.lock().map_err(|_| StoreError::Backend("a dry run's preview slot is poisoned".into()))? = Some(preview?);
    Ok(())
}

/// The preview: facts deciding the affected users' holdings after the write (`conn`) and before it (`committed`).
fn read_both_sides(conn: &Connection, committed: &mut Connection, change: &Change) -> Result<Preview> {
    let (scope, module) = match change.engine_scope() {
        Some(scope) => (scope, None),
        None => (Scope::default(), change.module()),
    };
    // What the write touched, on both sides, narrows whose holdings it can change: a membership write touches its
    // group's row only in name, and a role assignment changes its new or former holders only.
    let touched_after = read_facts(conn, Some(&scope))?;
    let touched_before = read_facts(committed, Some(&scope))?;
    let changed = changed_subjects(&scope, &touched_before, &touched_after);
    let mut users = affected_users(conn, &changed, module)?;
    users.extend(affected_users(committed, &changed, module)?);
    if users.len() > PREVIEW_MAX_USERS {
        return Err(StoreError::PreviewTooLarge(users.len()));
    }
    let users: Vec<i64> = users.into_iter().collect();
    // Both sides at once, each on its own connection and thread.
    let (users_ref, scope_ref) = (&users, &scope);
    let (after, before) = std::thread::scope(|s| {
        let before = s.spawn(move || deciding_facts(committed, users_ref, scope_ref));
        let after = deciding_facts(conn, &users, &scope);
        (after, before.join().unwrap_or_else(|_| Err(StoreError::Backend("reading a preview's before side failed".into()))))
    });
    let probes = scope.objects.into_iter().collect();
    Ok(Preview { users, probes, before: before?, after: after? })
}

/// The subjects and objects of `scope` whose own facts differ between `before` and `after` (each side read for
/// `scope`): scoped users always; groups whose row, grants or roles changed; roles whose row or grants changed, and
/// the holders whose assignment of a scoped role changed; objects whose row changed.
fn changed_subjects(scope: &Scope, before: &Facts, after: &Facts) -> Scope {
    let mut changed = Scope { users: scope.users.clone(), ..Scope::default() };
    changed.groups = scope.groups.iter().copied().filter(|&g| group_facts(before, g) != group_facts(after, g)).collect();
    changed.roles = scope.roles.iter().copied().filter(|&r| role_facts(before, r) != role_facts(after, r)).collect();
    let (was, is) = (assignments(before, &scope.roles), assignments(after, &scope.roles));
    for a in was.symmetric_difference(&is) {
        match a.subject {
            SubjectFact::User(u) => changed.users.insert(u),
            SubjectFact::Group(g) => changed.groups.insert(g),
            SubjectFact::Role(r) => changed.roles.insert(r),
        };
    }
    let object = |f: &Facts, o: &ObjectKey| f.objects.iter().find(|x| &x.key == o).cloned();
    changed.objects = scope.objects.iter().filter(|o| object(before, o) != object(after, o)).cloned().collect();
    changed
}

/// A group's own facts: its row (key, org, parent), grants and role assignments.
type GroupFacts<'a> = (Option<(i64, i64, Option<i64>)>, Vec<&'a GrantFact>, Vec<&'a RoleAssignmentFact>);

/// The [`GroupFacts`] of group `g`.
fn group_facts(f: &Facts, g: i64) -> GroupFacts<'_> {
    let row = f.groups.iter().find(|r| r.0 == g).copied();
    let grants = sorted(f.grants.iter().filter(|x| x.subject == SubjectFact::Group(g)));
    let roles = sorted(f.role_assignments.iter().filter(|a| a.subject == SubjectFact::Group(g)));
    (row, grants, roles)
}

/// A role's own facts: its row and grants (its assignments count for their holders).
fn role_facts(f: &Facts, r: i64) -> (Option<(i64, i64)>, Vec<&GrantFact>) {
    (f.roles.iter().find(|x| x.0 == r).copied(), sorted(f.grants.iter().filter(|x| x.subject == SubjectFact::Role(r))))
}

/// Assignments of the given roles.
fn assignments<'a>(f: &'a Facts, roles: &BTreeSet<i64>) -> BTreeSet<&'a RoleAssignmentFact> {
    f.role_assignments.iter().filter(|a| roles.contains(&a.role)).collect()
}

/// Facts sorted, to compare as multisets (the store returns rows in no promised order).
fn sorted<'a, T: Ord>(items: impl IntoIterator<Item = &'a T>) -> Vec<&'a T> {
    let mut items: Vec<&T> = items.into_iter().collect();
    items.sort();
    items
}

/// A JSON array, bound as one parameter and read back with `json_each` (no limit on the number of values).
fn json_list(values: impl IntoIterator<Item = impl Into<Value>>) -> String {
    Value::from_iter(values).to_string()
}

/// Every row of `sql` with `params`, mapped by `f`.
fn rows<T>(c: &Connection, sql: &str, params: impl Params, f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>) -> Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params, f)?.collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(rows)
}

/// Users whose holdings a write with this scope (or on this module) can change: the scoped users, the recursive
/// members of scoped groups, holders of scoped roles, and whoever holds a grant on a scoped object or an ancestor
/// of it, or on the module.
fn affected_users(c: &Connection, scope: &Scope, module: Option<&str>) -> Result<BTreeSet<i64>> {
    let mut users: BTreeSet<i64> = scope.users.clone();
    let mut groups: BTreeSet<i64> = scope.groups.clone();
    let mut roles: BTreeSet<i64> = scope.roles.clone();
    let mut subjects: Vec<(String, i64)> = Vec::new();
    if !scope.objects.is_empty() {
        subjects.extend(rows(
            c,
            "WITH RECURSIVE up(pk) AS (
                SELECT pk FROM objects
                 WHERE (model, object_pk) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))
                UNION SELECT o.parent FROM objects o JOIN up ON o.pk = up.pk WHERE o.parent IS NOT NULL)
             SELECT g.subject_type, g.subject_pk FROM grants g
               JOIN objects o ON o.model = g.object_model AND o.object_pk = g.object_pk JOIN up ON up.pk = o.pk
             UNION SELECT g.subject_type, g.subject_pk FROM grants g
              WHERE (g.object_model, g.object_pk) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1))
             UNION SELECT 'user', n.user FROM membership_nodes n JOIN up ON up.pk = n.node",
            [object_list(&scope.objects)],
            |r| <(String, i64)>::try_from(r),
        )?);
    }
    if let Some(module) = module {
        subjects.extend(rows(
            c,
            "SELECT subject_type, subject_pk FROM grants WHERE module = ?1
             UNION SELECT 'group', pk FROM groups WHERE instr(permissions, json_quote(?1)) > 0",
            [module],
            |r| <(String, i64)>::try_from(r),
        )?);
    }
    sort_subjects(subjects, &mut users, &mut groups, &mut roles);
    let holders = rows(
        c,
        "SELECT subject_type, subject_pk FROM role_assignments WHERE role IN (SELECT value FROM json_each(?))",
        [json_list(roles.iter().copied())],
        |r| <(String, i64)>::try_from(r),
    )?;
    sort_subjects(holders, &mut users, &mut groups, &mut roles);
    let members: Vec<i64> = rows(
        c,
        "SELECT DISTINCT m.user FROM group_closure c JOIN memberships m ON m.grp = c.descendant
          WHERE c.ancestor IN (SELECT value FROM json_each(?))",
        [json_list(groups.iter().copied())],
        |r| r.get(0),
    )?;
    users.extend(members);
    Ok(users)
}

/// Files each subject by its kind into `users`, `groups` or `roles`.
fn sort_subjects(subjects: Vec<(String, i64)>, users: &mut BTreeSet<i64>, groups: &mut BTreeSet<i64>, roles: &mut BTreeSet<i64>) {
    for (kind, pk) in subjects {
        match kind.as_str() {
            "user" => users.insert(pk),
            "group" => groups.insert(pk),
            _ => roles.insert(pk),
        };
    }
}

/// Objects granted to the users (`?1`), groups (`?2`) and roles (`?3`) of a preview.
const GRANTED_OBJECTS: &str = "SELECT o.pk FROM grants g JOIN objects o ON o.model = g.object_model AND o.object_pk = g.object_pk
     WHERE (g.subject_type = 'user' AND g.subject_pk IN (SELECT value FROM json_each(?1)))
        OR (g.subject_type = 'group' AND g.subject_pk IN (SELECT value FROM json_each(?2)))
        OR (g.subject_type = 'role' AND g.subject_pk IN (SELECT value FROM json_each(?3)))";

/// Everything deciding what `users` hold: their groups and those groups' ancestors, the roles reaching them, their
/// grants, the objects whose parent chains matter (with ancestors), the scoped items, and every module.
fn deciding_facts(c: &Connection, users: &[i64], scope: &Scope) -> Result<Facts> {
    let user_list = json_list(users.iter().copied());
    let mut groups: BTreeSet<i64> = rows(
        c,
        "SELECT DISTINCT c.ancestor FROM memberships m JOIN group_closure c ON c.descendant = m.grp
          WHERE m.user IN (SELECT value FROM json_each(?))",
        [&user_list],
        |r| r.get(0),
    )?
    .into_iter()
    .collect();
    groups.extend(&scope.groups);
    let group_list = json_list(groups.iter().copied());
    let mut roles: BTreeSet<i64> = rows(
        c,
        "SELECT DISTINCT role FROM role_assignments
          WHERE (subject_type = 'user' AND subject_pk IN (SELECT value FROM json_each(?1)))
             OR (subject_type = 'group' AND subject_pk IN (SELECT value FROM json_each(?2)))",
        [&user_list, &group_list],
        |r| r.get(0),
    )?
    .into_iter()
    .collect();
    roles.extend(&scope.roles);
    // Holdings are compared as granted, so objects matter only for their parent chains: those of probed objects,
    // and, when a membership is node-restricted, of restricting nodes and of everything granted (to meet the nodes).
    let restricted: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM membership_nodes WHERE user IN (SELECT value FROM json_each(?)))")?
        .query_row([&user_list], |r| r.get(0))?;
    let granted = if restricted { GRANTED_OBJECTS } else { "SELECT NULL WHERE 0" };
    let objects: BTreeSet<ObjectKey> = rows(
        c,
        &format!(
            "WITH RECURSIVE seed(pk) AS (
                {granted}
                UNION SELECT node FROM membership_nodes WHERE user IN (SELECT value FROM json_each(?1))
                UNION SELECT pk FROM objects WHERE (model, object_pk) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?4))),
             up(pk) AS (SELECT pk FROM seed UNION SELECT o.parent FROM objects o JOIN up ON o.pk = up.pk WHERE o.parent IS NOT NULL)
             SELECT o.model, o.object_pk FROM objects o JOIN up ON o.pk = up.pk"
        ),
        [user_list, group_list, json_list(roles.iter().copied()), object_list(&scope.objects)],
        |r| <(String, String)>::try_from(r),
    )?
    .into_iter()
    .collect();
    let deciding = Scope { users: users.iter().copied().collect(), groups, roles, objects };
    let mut facts = read_facts(c, Some(&deciding))?;
    facts.modules = read_modules(c)?;
    Ok(facts)
}
