//! Groups, the ancestor closure, memberships with expiry, node restrictions, conferred permissions and visibility.

use std::collections::BTreeSet;

use castellan_core::change::{Change, GroupRecord};
use castellan_core::directory::Directory;
use castellan_core::engine::{Facts, Index, Scope, SubjectFact};
use castellan_core::permission::{Action, ModulePermissions};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{
    assert_conflict, assert_not_found, ctx, expect_no_change, expect_one_change, make_org, make_user, mark, new_user,
    update_group,
};
use crate::time_util::now_micros;
use crate::{Group, GroupFilter, GroupQuery, NewGroup, SeenBy, Store, UserFilter, UserQuery};

/// Module permissions from their wire form (`{"users": ["read"], "groups": "write"}`).
fn perms(value: Value) -> ModulePermissions {
    ModulePermissions::parse(&value, "permissions").unwrap()
}

/// A group to insert with no description and no permissions.
fn new_group(org: i64, name: &str, parent: Option<i64>) -> NewGroup {
    NewGroup { name: name.to_string(), description: String::new(), org, parent, permissions: ModulePermissions::new() }
}

/// Creates a group and returns it.
pub(super) async fn make_group(store: &dyn Store, org: i64, name: &str, parent: Option<i64>) -> Group {
    store.create_group(&ctx(), new_group(org, name, parent)).await.unwrap().0
}

/// Creates a group conferring `permissions` and returns it.
async fn make_group_with(store: &dyn Store, org: i64, name: &str, parent: Option<i64>, permissions: Value) -> Group {
    let new = NewGroup { permissions: perms(permissions), ..new_group(org, name, parent) };
    store.create_group(&ctx(), new).await.unwrap().0
}

/// Creates a user of `org` who is a direct member of `groups` and returns its key.
async fn member(store: &dyn Store, org: i64, username: &str, groups: &[i64]) -> i64 {
    let user = make_user(store, new_user(org, username)).await;
    for g in groups {
        crate::planned::add_members(store, &ctx(), *g, &[user.pk], None).await.unwrap();
    }
    user.pk
}

/// Moves `group` under `parent` (`None`: to the roots).
async fn move_group(store: &dyn Store, group: i64, parent: Option<i64>) {
    update_group(store, &ctx(), group, |g| g.parent = parent).await.unwrap();
}

/// The keys of the users matching `filter`, ascending; the count must equal the rows.
async fn user_keys(store: &dyn Store, filter: UserFilter) -> BTreeSet<i64> {
    let page = store.list_users(&UserQuery { filter, limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(page.count as usize, page.items.len(), "count agrees with the rows");
    page.items.iter().map(|u| u.pk).collect()
}

/// Members of `group`, with descendants' members when `recursive`.
async fn members_of(store: &dyn Store, group: i64, recursive: bool) -> BTreeSet<i64> {
    user_keys(store, UserFilter { groups: vec![group], groups_recursive: recursive, ..Default::default() }).await
}

/// The keys of the groups matching `filter`, in the store's order; the count must equal the rows.
async fn group_keys(store: &dyn Store, filter: GroupFilter) -> Vec<i64> {
    let page = store.list_groups(&GroupQuery { filter, limit: 1000, ..Default::default() }).await.unwrap();
    assert_eq!(page.count as usize, page.items.len(), "count agrees with the rows");
    page.items.iter().map(|g| g.pk).collect()
}

fn set(keys: &[i64]) -> BTreeSet<i64> {
    keys.iter().copied().collect()
}

/// The model built from what the store holds (the store answers no access question itself).
async fn model(store: &dyn Store) -> Index {
    Index::build(&store.engine_facts().await.unwrap().0)
}

/// Whether `user` holds `action` on `module` globally, by the model built from the store.
async fn holds(store: &dyn Store, user: i64, module: &str, action: Action) -> bool {
    model(store).await.check(user, module, action.as_str(), None, now_micros()).allowed
}

/// Everything `user` holds globally, by the model built from the store.
async fn effective(store: &dyn Store, user: i64) -> Vec<String> {
    model(store).await.effective(user, now_micros()).global
}

/// What membership of `groups` confers, by the model built from the store.
async fn conferred_by(store: &dyn Store, groups: &[i64]) -> ModulePermissions {
    model(store).await.conferred_by(groups, now_micros())
}

/// Whether `group` is `ancestor` or below it, by the directory built from the store.
async fn is_within(store: &dyn Store, group: i64, ancestor: i64) -> bool {
    let (groups, memberships) = store.directory_snapshot().await.unwrap();
    Directory::build(&groups, &memberships).subtree(ancestor).contains(&group)
}

/// Groups are created under parents; names are unique among siblings only; a parent must exist in the same org.
pub async fn groups_create_with_parents_and_sibling_names(store: &dyn Store) {
    let acme = make_org(store, "acme").await.pk;
    let globex = make_org(store, "globex").await.pk;

    let before = mark(store).await;
    let new = NewGroup {
        description: "Everyone who sells".into(),
        permissions: perms(json!({"users": ["read"], "groups": "write"})),
        ..new_group(acme, "Sales", None)
    };
    let (sales, revision) = store.create_group(&ctx(), new).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("create", "groups"));
    assert_eq!(row.target_pk, sales.pk.to_string());
    assert_eq!(row.changes["after"]["name"], "Sales");
    assert_eq!(row.changes["after"]["parent"], Value::Null);
    assert_eq!(row.changes["after"]["permissions"]["groups"], json!(["read", "create", "update", "delete"]));

    assert_eq!(sales.name, "Sales");
    assert_eq!(sales.description, "Everyone who sells");
    assert_eq!(sales.org, acme);
    assert_eq!(sales.parent, None);
    assert!(sales.permissions.allows("users", Action::Read));
    assert!(!sales.permissions.allows("users", Action::Update));
    assert!(sales.permissions.allows("groups", Action::Delete));
    assert!((OffsetDateTime::now_utc() - sales.created_date).abs() < Duration::minutes(1));
    assert_eq!(store.get_group(sales.pk).await.unwrap(), sales);

    let before = mark(store).await;
    let (eu, revision) = store.create_group(&ctx(), new_group(acme, "EU", Some(sales.pk))).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.changes["after"]["parent"], sales.pk);
    assert_eq!(eu.parent, Some(sales.pk));
    let us = make_group(store, acme, "US", Some(sales.pk)).await;
    assert_eq!(store.get_group(eu.pk).await.unwrap(), eu);

    // A sibling with a taken name, at the root or under a parent, is refused and changes nothing.
    let before = mark(store).await;
    assert_conflict(store.create_group(&ctx(), new_group(acme, "EU", Some(sales.pk))).await, "name");
    assert_conflict(store.create_group(&ctx(), new_group(acme, "Sales", None)).await, "name");
    expect_no_change(store, before).await;

    // The same name under another parent, or at the root of another org, is fine.
    let us_eu = make_group(store, acme, "EU", Some(us.pk)).await;
    assert_eq!(us_eu.parent, Some(us.pk));
    let eu_root = make_group(store, acme, "EU", None).await;
    assert_eq!(eu_root.parent, None);
    let globex_sales = make_group(store, globex, "Sales", None).await;
    assert_eq!(globex_sales.org, globex);

    // A parent in another org, or one that does not exist, is `Conflict{parent}`.
    let before = mark(store).await;
    assert_conflict(store.create_group(&ctx(), new_group(globex, "Inside", Some(sales.pk))).await, "parent");
    assert_conflict(store.create_group(&ctx(), new_group(acme, "Orphan", Some(sales.pk + 1000))).await, "parent");
    // Renaming onto a sibling's name, or moving next to a sibling with the same name, is `Conflict{name}`.
    assert_conflict(update_group(store, &ctx(), eu.pk, |g| g.name = "US".into()).await, "name");
    assert_conflict(update_group(store, &ctx(), us_eu.pk, |g| g.parent = Some(sales.pk)).await, "name");
    assert_conflict(update_group(store, &ctx(), eu.pk, |g| g.parent = Some(globex_sales.pk)).await, "parent");
    assert_conflict(update_group(store, &ctx(), sales.pk, |g| g.parent = Some(us_eu.pk)).await, "cycle");
    assert_conflict(update_group(store, &ctx(), eu.pk, |g| g.org = globex).await, "org");
    // A planned change whose `before` no longer holds is refused as stale, and writes nothing.
    let mut read = eu.record();
    read.description = "read before someone else described it".into();
    let stale = Change::GroupUpdated { pk: eu.pk, before: read.clone(), after: GroupRecord { name: "EU2".into(), ..read } };
    assert!(matches!(store.apply(&ctx(), vec![stale]).await, Err(crate::StoreError::Stale(_))));
    expect_no_change(store, before).await;
    assert_eq!(store.get_group(eu.pk).await.unwrap(), eu);
    assert_eq!(store.get_group(us_eu.pk).await.unwrap(), us_eu);

    // Listing by parent, roots, names and org.
    let children = group_keys(store, GroupFilter { parent: Some(Some(sales.pk)), ..Default::default() }).await;
    assert_eq!(children, [eu.pk, us.pk]);
    let roots = group_keys(store, GroupFilter { parent: Some(None), orgs: vec![acme], ..Default::default() }).await;
    assert_eq!(roots, [sales.pk, eu_root.pk]);
    let named = group_keys(store, GroupFilter { names: vec!["EU".into()], ..Default::default() }).await;
    assert_eq!(named, [eu.pk, us_eu.pk, eu_root.pk]);
    let in_globex = group_keys(store, GroupFilter { orgs: vec![globex], ..Default::default() }).await;
    assert_eq!(in_globex, [globex_sales.pk]);
    let briefs = store.groups_brief(&[us.pk, sales.pk, 9999]).await.unwrap();
    assert_eq!(
        briefs.iter().map(|b| (b.pk, b.children.clone())).collect::<Vec<_>>(),
        [(sales.pk, vec![eu.pk, us.pk]), (us.pk, vec![us_eu.pk])]
    );

    assert!(is_within(store, eu.pk, sales.pk).await);
    assert!(is_within(store, eu.pk, eu.pk).await, "a group is within itself");
    assert!(is_within(store, us_eu.pk, sales.pk).await);
    assert!(!is_within(store, sales.pk, eu.pk).await);
    assert!(!is_within(store, us_eu.pk, eu.pk).await);
    assert_not_found(store.get_group(9999).await);
}

/// Moving a subtree re-links the closure: members of the moved subtree leave the old ancestors and join the new.
pub async fn group_move_updates_closure(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let a = make_group(store, org, "A", None).await;
    let b = make_group(store, org, "B", Some(a.pk)).await;
    let c = make_group(store, org, "C", Some(b.pk)).await;
    let d = make_group_with(store, org, "D", None, json!({"audit": ["read"]})).await;
    let ua = member(store, org, "ua", &[a.pk]).await;
    let ub = member(store, org, "ub", &[b.pk]).await;
    let uc = member(store, org, "uc", &[c.pk]).await;
    let ud = member(store, org, "ud", &[d.pk]).await;

    assert_eq!(members_of(store, a.pk, true).await, set(&[ua, ub, uc]));
    assert_eq!(members_of(store, a.pk, false).await, set(&[ua]));
    assert_eq!(members_of(store, d.pk, true).await, set(&[ud]));
    assert!(!holds(store, uc, "audit", Action::Read).await);

    // B (with C) moves under D.
    let before = mark(store).await;
    let (moved, revision) = update_group(store, &ctx(), b.pk, |g| g.parent = Some(d.pk)).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("update", "groups"));
    assert_eq!(row.target_pk, b.pk.to_string());
    assert_eq!(row.changes["before"]["parent"], a.pk);
    assert_eq!(row.changes["after"]["parent"], d.pk);
    assert_eq!(moved.parent, Some(d.pk));
    assert_eq!(moved.name, "B");
    assert_eq!(store.get_group(b.pk).await.unwrap(), moved);

    assert_eq!(members_of(store, a.pk, true).await, set(&[ua]), "the moved subtree left A");
    assert_eq!(members_of(store, d.pk, true).await, set(&[ud, ub, uc]), "the moved subtree joined D");
    assert_eq!(members_of(store, b.pk, true).await, set(&[ub, uc]), "the subtree itself is intact");
    assert!(is_within(store, c.pk, d.pk).await);
    assert!(is_within(store, c.pk, b.pk).await);
    assert!(is_within(store, b.pk, d.pk).await);
    assert!(!is_within(store, c.pk, a.pk).await);
    assert!(!is_within(store, b.pk, a.pk).await);
    assert!(holds(store, uc, "audit", Action::Read).await, "C's members now inherit D's permissions");
    assert!(conferred_by(store, &[c.pk]).await.allows("audit", Action::Read));

    // B becomes a root: D keeps only its own members.
    move_group(store, b.pk, None).await;
    assert_eq!(store.get_group(b.pk).await.unwrap().parent, None);
    assert_eq!(members_of(store, d.pk, true).await, set(&[ud]));
    assert_eq!(members_of(store, b.pk, true).await, set(&[ub, uc]));
    assert!(!is_within(store, c.pk, d.pk).await);
    assert!(!holds(store, uc, "audit", Action::Read).await);

    // A (a former ancestor) moves below C: B ⊃ C ⊃ A.
    move_group(store, a.pk, Some(c.pk)).await;
    assert_eq!(members_of(store, b.pk, true).await, set(&[ub, uc, ua]));
    assert_eq!(members_of(store, c.pk, true).await, set(&[uc, ua]));
    assert!(is_within(store, a.pk, b.pk).await);
    assert!(!is_within(store, b.pk, a.pk).await);

    // A user filter with descendants follows the closure, and other groups are unaffected.
    let both = user_keys(store, UserFilter { groups: vec![c.pk, d.pk], groups_recursive: true, ..Default::default() }).await;
    assert_eq!(both, set(&[uc, ua, ud]));

    // Renaming, describing and setting permissions without a parent change leave the closure alone.
    let before = mark(store).await;
    let (renamed, revision) = update_group(store, &ctx(), b.pk, |g| {
        g.name = "B2".into();
        g.description = "renamed".into();
        g.permissions = perms(json!({"users": ["read"]})).to_map();
    })
    .await
    .unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.changes["before"]["name"], "B");
    assert_eq!(row.changes["after"]["name"], "B2");
    assert_eq!(row.changes["before"]["permissions"], json!({}));
    assert_eq!(row.changes["after"]["permissions"], json!({"users": ["read"]}));
    assert_eq!(renamed.description, "renamed");
    assert!(renamed.modified_date >= renamed.created_date);
    assert_eq!(members_of(store, b.pk, true).await, set(&[ub, uc, ua]));
    assert!(holds(store, ua, "users", Action::Read).await, "A's members inherit B2's permissions");
}

/// A parent that would form a cycle (itself, a child, a deeper descendant) is `Conflict{cycle}` and changes nothing.
pub async fn group_cycles_are_refused(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let a = make_group(store, org, "A", None).await;
    let b = make_group(store, org, "B", Some(a.pk)).await;
    let c = make_group(store, org, "C", Some(b.pk)).await;
    let ua = member(store, org, "ua", &[a.pk]).await;
    let uc = member(store, org, "uc", &[c.pk]).await;

    let before = mark(store).await;
    for parent in [a.pk, b.pk, c.pk] {
        let ctx = ctx();
        let moved = update_group(store, &ctx, a.pk, |g| {
            g.parent = Some(parent);
            g.name = "renamed".into();
        });
        assert_conflict(moved.await, "cycle");
    }
    assert_conflict(update_group(store, &ctx(), b.pk, |g| g.parent = Some(b.pk)).await, "cycle");
    assert_conflict(update_group(store, &ctx(), b.pk, |g| g.parent = Some(c.pk)).await, "cycle");
    let missing = Change::GroupUpdated { pk: 9999, before: a.record(), after: a.record() };
    assert_not_found(store.apply(&ctx(), vec![missing]).await);
    expect_no_change(store, before).await;

    assert_eq!(store.get_group(a.pk).await.unwrap(), a, "a refused move changes nothing");
    assert_eq!(store.get_group(b.pk).await.unwrap(), b);
    assert!(is_within(store, c.pk, a.pk).await);
    assert!(!is_within(store, a.pk, c.pk).await);
    assert!(!is_within(store, a.pk, b.pk).await);
    assert_eq!(members_of(store, a.pk, true).await, set(&[ua, uc]));
    assert_eq!(members_of(store, c.pk, true).await, set(&[uc]));
}

/// Deleting a group with children is `Conflict{children}`; `cascade` deletes the subtree and its memberships.
pub async fn group_delete_children_and_cascade(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let a = make_group(store, org, "A", None).await;
    let b = make_group(store, org, "B", Some(a.pk)).await;
    let c = make_group_with(store, org, "C", Some(b.pk), json!({"users": ["read"]})).await;
    let other = make_group(store, org, "Other", None).await;
    let ua = member(store, org, "ua", &[a.pk]).await;
    let ub = member(store, org, "ub", &[b.pk, other.pk]).await;
    let uc = member(store, org, "uc", &[c.pk]).await;
    crate::planned::set_restriction(store, &ctx(), ub, b.pk, Some(vec![7])).await.unwrap();

    let before = mark(store).await;
    assert_conflict(crate::planned::delete_group(store, &ctx(), a.pk, false).await, "children");
    assert_conflict(crate::planned::delete_group(store, &ctx(), b.pk, false).await, "children");
    assert_not_found(crate::planned::delete_group(store, &ctx(), 9999, true).await);
    // A cascade planned before C was created below B is stale: C would outlive its parent.
    let planned_before_c = Change::GroupDeleted { pk: b.pk, before: b.record(), deleted: vec![b.pk] };
    assert!(matches!(store.apply(&ctx(), vec![planned_before_c]).await, Err(crate::StoreError::Stale(_))));
    expect_no_change(store, before).await;
    assert_eq!(store.get_group(a.pk).await.unwrap(), a);
    assert_eq!(members_of(store, a.pk, true).await, set(&[ua, ub, uc]));

    // A leaf goes without cascade, with its memberships.
    let before = mark(store).await;
    let revision = crate::planned::delete_group(store, &ctx(), c.pk, false).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("delete", "groups"));
    assert_eq!(row.target_pk, c.pk.to_string());
    assert_eq!(row.changes["before"]["name"], "C");
    assert_not_found(store.get_group(c.pk).await);
    assert_eq!(store.membership(uc, c.pk).await.unwrap(), None);
    assert!(store.get_user(uc).await.unwrap().groups.is_empty());
    assert!(!holds(store, uc, "users", Action::Read).await);
    assert_eq!(store.groups_brief(&[b.pk]).await.unwrap()[0].children, Vec::<i64>::new());

    // The subtree goes with cascade.
    let c2 = make_group(store, org, "C", Some(b.pk)).await;
    assert_ne!(c2.pk, c.pk, "keys are never reused");
    crate::planned::add_members(store, &ctx(), c2.pk, &[uc], None).await.unwrap();
    let before = mark(store).await;
    let revision = crate::planned::delete_group(store, &ctx(), a.pk, true).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.action, "delete");
    assert_eq!(row.target_pk, a.pk.to_string());
    assert_eq!(row.changes["before"]["name"], "A");
    for g in [a.pk, b.pk, c2.pk] {
        assert_not_found(store.get_group(g).await);
        assert!(members_of(store, g, true).await.is_empty());
    }
    for (u, g) in [(ua, a.pk), (ub, b.pk), (uc, c2.pk)] {
        assert_eq!(store.membership(u, g).await.unwrap(), None, "membership of {u} in {g} is gone");
    }
    assert!(store.get_user(ua).await.unwrap().groups.is_empty());
    assert_eq!(store.get_user(ub).await.unwrap().groups, [other.pk], "memberships elsewhere stay");
    assert!(store.get_user(uc).await.unwrap().groups.is_empty());
    assert_eq!(store.count_users().await.unwrap(), 3, "users are not deleted with their groups");
    assert_eq!(group_keys(store, GroupFilter { orgs: vec![org], ..Default::default() }).await, [other.pk]);
}

/// Members come and go; an expired membership no longer counts anywhere, with no sweeper.
pub async fn memberships_add_remove_and_expiry(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let globex = make_org(store, "globex").await.pk;
    let parent = make_group_with(store, org, "Parent", None, json!({"groups": ["read"]})).await;
    let g = make_group_with(store, org, "G", Some(parent.pk), json!({"users": ["read"]})).await;
    let u1 = make_user(store, new_user(org, "u1")).await.pk;
    let u2 = make_user(store, new_user(org, "u2")).await.pk;
    let u3 = make_user(store, new_user(org, "u3")).await.pk;
    let foreign = make_user(store, new_user(globex, "foreign")).await.pk;

    let before = mark(store).await;
    let (group, revision) = crate::planned::add_members(store, &ctx(), g.pk, &[u1, u2], None).await.unwrap();
    assert_eq!(group, store.get_group(g.pk).await.unwrap(), "the write answers its group");
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("assign", "groups"));
    assert_eq!(row.target_pk, g.pk.to_string());
    let logged = row.changes["members"].as_array().expect("members");
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0]["user"], u1);
    assert_eq!(logged[0]["before"], Value::Null);
    assert_eq!(logged[0]["after"]["restricted"], false);

    let m = store.membership(u1, g.pk).await.unwrap().expect("a membership");
    assert_eq!((m.user, m.group, m.expires_at, m.restricted, m.nodes.clone()), (u1, g.pk, None, false, Vec::new()));
    assert_eq!(store.get_user(u1).await.unwrap().groups, [g.pk]);
    assert_eq!(members_of(store, g.pk, false).await, set(&[u1, u2]));
    assert_eq!(members_of(store, parent.pk, true).await, set(&[u1, u2]));
    assert!(members_of(store, parent.pk, false).await.is_empty());
    assert!(holds(store, u1, "users", Action::Read).await);
    assert!(holds(store, u1, "groups", Action::Read).await, "ancestors' permissions come along");
    assert!(!holds(store, u1, "users", Action::Update).await);
    let member_of = group_keys(store, GroupFilter { member: Some(u1), ..Default::default() }).await;
    assert_eq!(member_of, [g.pk]);

    // A future expiry counts until it passes.
    let later = OffsetDateTime::now_utc() + Duration::hours(1);
    let before = mark(store).await;
    let (_, revision) = crate::planned::add_members(store, &ctx(), g.pk, &[u3], Some(later)).await.unwrap();
    expect_one_change(store, before, revision).await;
    let m = store.membership(u3, g.pk).await.unwrap().unwrap();
    assert!((m.expires_at.expect("an expiry") - later).abs() < Duration::milliseconds(1));
    assert_eq!(members_of(store, g.pk, false).await, set(&[u1, u2, u3]));
    assert!(holds(store, u3, "users", Action::Read).await);

    // Re-adding an existing member replaces the expiry: a past one makes the membership stop counting at once.
    let earlier = OffsetDateTime::now_utc() - Duration::minutes(1);
    let before = mark(store).await;
    let (_, revision) = crate::planned::add_members(store, &ctx(), g.pk, &[u2], Some(earlier)).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert!(row.changes["members"][0]["before"].is_object(), "the old membership is logged: {}", row.changes);
    assert!(store.membership(u2, g.pk).await.unwrap().is_some(), "an expired membership still exists");
    assert_eq!(members_of(store, g.pk, false).await, set(&[u1, u3]), "expired members are not counted");
    assert_eq!(members_of(store, parent.pk, true).await, set(&[u1, u3]));
    assert!(store.get_user(u2).await.unwrap().groups.is_empty(), "an expired membership is not in `groups`");
    assert_eq!(store.get_users(&[u2]).await.unwrap()[0].groups, Vec::<i64>::new());
    assert!(effective(store, u2).await.is_empty(), "an expired membership confers nothing");
    assert!(group_keys(store, GroupFilter { member: Some(u2), ..Default::default() }).await.is_empty());

    // An expiry passes by the clock alone.
    let soon = OffsetDateTime::now_utc() + Duration::milliseconds(400);
    crate::planned::add_members(store, &ctx(), g.pk, &[u3], Some(soon)).await.unwrap();
    assert!(holds(store, u3, "users", Action::Read).await);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(!holds(store, u3, "users", Action::Read).await, "the expiry has passed");
    assert_eq!(members_of(store, g.pk, false).await, set(&[u1]));

    // Re-adding without an expiry makes it permanent again.
    crate::planned::add_members(store, &ctx(), g.pk, &[u2, u3], None).await.unwrap();
    assert_eq!(store.membership(u2, g.pk).await.unwrap().unwrap().expires_at, None);
    assert_eq!(members_of(store, g.pk, false).await, set(&[u1, u2, u3]));

    // Users of another org, unknown users and unknown groups are refused and change nothing.
    let before = mark(store).await;
    assert_conflict(crate::planned::add_members(store, &ctx(), g.pk, &[u1, foreign], None).await, "members");
    assert_conflict(crate::planned::add_members(store, &ctx(), g.pk, &[u1 + 1000], None).await, "members");
    assert_not_found(crate::planned::add_members(store, &ctx(), 9999, &[u1], None).await);
    assert_not_found(crate::planned::remove_members(store, &ctx(), 9999, &[u1]).await);
    // Plans whose memberships no longer read as planned are stale: u2 and u3 are members, `foreign` never was one.
    let joined_meanwhile = Change::members_assigned(g.pk, vec![(u3, None), (u2, None)], None);
    assert!(matches!(store.apply(&ctx(), vec![joined_meanwhile]).await, Err(crate::StoreError::Stale(_))));
    let left_meanwhile =
        Change::members_unassigned(g.pk, vec![(foreign, store.memberships(g.pk, &[u1]).await.unwrap().1[0].1.clone())]);
    assert!(matches!(store.apply(&ctx(), vec![left_meanwhile]).await, Err(crate::StoreError::Stale(_))));
    expect_no_change(store, before).await;
    assert!(store.get_user(foreign).await.unwrap().groups.is_empty());

    // Naming a member twice is not an org conflict.
    let before = mark(store).await;
    let (_, revision) = crate::planned::add_members(store, &ctx(), g.pk, &[u1, u1], None).await.unwrap();
    expect_one_change(store, before, revision).await;
    assert_eq!(members_of(store, g.pk, false).await, set(&[u1, u2, u3]));

    // Removing: absent users are ignored; the removed lose the group and what it confers.
    let before = mark(store).await;
    let (group, revision) = crate::planned::remove_members(store, &ctx(), g.pk, &[u1, foreign, u1 + 1000]).await.unwrap();
    assert_eq!(group, store.get_group(g.pk).await.unwrap(), "the write answers its group");
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("unassign", "groups"));
    let logged = row.changes["members"].as_array().unwrap();
    assert_eq!(logged.len(), 1, "only the removed member is logged: {}", row.changes);
    assert_eq!(logged[0]["user"], u1);
    assert!(logged[0]["before"].is_object());
    assert_eq!(logged[0]["after"], Value::Null);
    assert_eq!(store.membership(u1, g.pk).await.unwrap(), None);
    assert!(store.get_user(u1).await.unwrap().groups.is_empty());
    assert!(effective(store, u1).await.is_empty());
    assert_eq!(members_of(store, g.pk, false).await, set(&[u2, u3]));
}

/// `Some(nodes)` restricts a membership (even to none) so it confers nothing through `effective_permissions`;
/// `None` lifts the restriction. Restrictions do not change membership itself.
pub async fn restrictions_exclude_permissions(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let parent = make_group_with(store, org, "Parent", None, json!({"groups": ["read"]})).await;
    let g = make_group_with(store, org, "G", Some(parent.pk), json!({"users": ["read", "update"]})).await;
    let u = member(store, org, "u", &[g.pk]).await;
    assert!(holds(store, u, "users", Action::Update).await);
    assert!(holds(store, u, "groups", Action::Read).await);

    let before = mark(store).await;
    let revision = crate::planned::set_restriction(store, &ctx(), u, g.pk, Some(Vec::new())).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.target_type, "groups");
    assert_eq!(row.target_pk, g.pk.to_string());
    assert_eq!(row.changes["before"]["restricted"], false);
    assert_eq!(row.changes["after"]["restricted"], true);
    assert_eq!(row.changes["after"]["nodes"], json!([]));

    let m = store.membership(u, g.pk).await.unwrap().unwrap();
    assert!(m.restricted);
    assert!(m.nodes.is_empty());
    assert!(effective(store, u).await.is_empty(), "a restricted membership confers nothing globally");
    assert_eq!(store.get_user(u).await.unwrap().groups, [g.pk], "restrictions do not change membership");
    assert_eq!(members_of(store, g.pk, false).await, set(&[u]));
    assert_eq!(user_keys(store, users_seen_by(store, u).await).await, set(&[u]));
    assert_eq!(group_keys(store, groups_seen_by(store, u).await).await, [g.pk]);

    // Nodes are kept ascending and without repeats.
    let before = mark(store).await;
    let revision = crate::planned::set_restriction(store, &ctx(), u, g.pk, Some(vec![9, 7, 9])).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.changes["before"]["nodes"], json!([]));
    assert_eq!(row.changes["after"]["nodes"], json!([7, 9]));
    let m = store.membership(u, g.pk).await.unwrap().unwrap();
    assert_eq!((m.restricted, m.nodes.clone()), (true, vec![7, 9]));
    assert!(effective(store, u).await.is_empty());

    // An unrestricted path to the same ancestor wins for what it confers.
    crate::planned::add_members(store, &ctx(), parent.pk, &[u], None).await.unwrap();
    assert!(holds(store, u, "groups", Action::Read).await);
    assert!(!holds(store, u, "users", Action::Read).await);
    crate::planned::remove_members(store, &ctx(), parent.pk, &[u]).await.unwrap();

    // Lifting.
    let before = mark(store).await;
    let revision = crate::planned::set_restriction(store, &ctx(), u, g.pk, None).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.changes["before"]["restricted"], true);
    assert_eq!(row.changes["after"]["restricted"], false);
    let m = store.membership(u, g.pk).await.unwrap().unwrap();
    assert_eq!((m.restricted, m.nodes.clone()), (false, Vec::new()));
    assert!(holds(store, u, "users", Action::Update).await);
    assert!(holds(store, u, "groups", Action::Read).await);

    // Re-adding a restricted member keeps the restriction (only the expiry changes).
    crate::planned::set_restriction(store, &ctx(), u, g.pk, Some(vec![3])).await.unwrap();
    crate::planned::add_members(store, &ctx(), g.pk, &[u], None).await.unwrap();
    let m = store.membership(u, g.pk).await.unwrap().unwrap();
    assert_eq!((m.restricted, m.nodes.clone()), (true, vec![3]));

    // Removing the member removes its restriction; joining again starts unrestricted.
    crate::planned::remove_members(store, &ctx(), g.pk, &[u]).await.unwrap();
    crate::planned::add_members(store, &ctx(), g.pk, &[u], None).await.unwrap();
    let m = store.membership(u, g.pk).await.unwrap().unwrap();
    assert_eq!((m.restricted, m.nodes.clone()), (false, Vec::new()));

    // No membership, nothing to restrict.
    let other = make_group(store, org, "Other", None).await;
    let before = mark(store).await;
    assert_not_found(crate::planned::set_restriction(store, &ctx(), u, other.pk, Some(vec![1])).await);
    assert_not_found(crate::planned::set_restriction(store, &ctx(), u, other.pk, None).await);
    assert_not_found(crate::planned::set_restriction(store, &ctx(), u + 1000, g.pk, Some(Vec::new())).await);
    expect_no_change(store, before).await;
    assert_eq!(store.membership(u, other.pk).await.unwrap(), None);
}

/// `conferred_by` merges the groups' own permissions with all their ancestors'.
pub async fn conferred_by_includes_ancestors(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let root = make_group_with(store, org, "Root", None, json!({"orgs": ["read"]})).await;
    let mid = make_group_with(store, org, "Mid", Some(root.pk), json!({"groups": ["read", "update"]})).await;
    let leaf = make_group_with(store, org, "Leaf", Some(mid.pk), json!({"users": ["full"]})).await;
    let other = make_group_with(store, org, "Other", None, json!({"audit": "read"})).await;

    let p = conferred_by(store, &[leaf.pk]).await;
    let map = p.to_map();
    assert_eq!(map.keys().map(String::as_str).collect::<Vec<_>>(), ["groups", "orgs", "users"]);
    assert_eq!(map["users"], ["full"]);
    assert_eq!(map["groups"], ["read", "update"]);
    assert_eq!(map["orgs"], ["read"]);
    assert!(p.allows("users", Action::Delete));

    let p = conferred_by(store, &[mid.pk]).await;
    assert!(!p.allows("users", Action::Access), "a descendant's permissions do not flow up");
    assert!(p.allows("groups", Action::Update));
    assert!(p.allows("orgs", Action::Read));

    let p = conferred_by(store, &[mid.pk, other.pk]).await;
    assert!(p.allows("audit", Action::Read));
    assert!(p.allows("groups", Action::Update));
    assert!(conferred_by(store, &[]).await.is_empty());
    assert!(conferred_by(store, &[9999]).await.is_empty());

    // Changing an ancestor's permissions changes what the leaf confers.
    let before = mark(store).await;
    let modules = perms(json!({"modules": ["read"]})).to_map();
    let (updated, revision) = update_group(store, &ctx(), root.pk, |g| g.permissions = modules).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.changes["before"]["permissions"], json!({"orgs": ["read"]}));
    assert_eq!(row.changes["after"]["permissions"], json!({"modules": ["read"]}));
    assert_eq!(updated.permissions, perms(json!({"modules": ["read"]})));
    let p = conferred_by(store, &[leaf.pk]).await;
    assert!(p.allows("modules", Action::Read));
    assert!(!p.allows("orgs", Action::Read));

    // Members hold what the leaf confers.
    let u = member(store, org, "u", &[leaf.pk]).await;
    let conferred = conferred_by(store, &[leaf.pk]).await.pairs().map(|(m, a)| format!("{m}.{a}")).collect::<Vec<_>>();
    assert_eq!(effective(store, u).await, conferred);
    let nobody = make_user(store, new_user(org, "nobody")).await.pk;
    assert!(effective(store, nobody).await.is_empty());
}

/// The groups `viewer` sees, by the directory built from the store.
async fn visible_groups(store: &dyn Store, viewer: i64) -> Vec<i64> {
    let (groups, memberships) = store.directory_snapshot().await.unwrap();
    Directory::build(&groups, &memberships).visible_groups(viewer, now_micros())
}

/// A group filter to what `viewer` sees.
async fn groups_seen_by(store: &dyn Store, viewer: i64) -> GroupFilter {
    GroupFilter { within: Some(visible_groups(store, viewer).await), ..Default::default() }
}

/// A user filter to what `viewer` sees.
async fn users_seen_by(store: &dyn Store, viewer: i64) -> UserFilter {
    UserFilter { seen_by: Some(SeenBy { viewer, groups: visible_groups(store, viewer).await }), ..Default::default() }
}

/// Visibility (seed 004): the directory says which groups a viewer sees (theirs and their descendants), and the
/// store's list filters narrow to those groups and to their members plus the viewer.
pub async fn visible_to_filters_groups_and_users(store: &dyn Store) {
    let acme = make_org(store, "acme").await.pk;
    let globex = make_org(store, "globex").await.pk;
    let sales = make_group(store, acme, "Sales", None).await.pk;
    let eu = make_group(store, acme, "EU sales", Some(sales)).await.pk;
    let north = make_group(store, acme, "EU north", Some(eu)).await.pk;
    let us = make_group(store, acme, "US sales", Some(sales)).await.pk;
    let ops = make_group(store, acme, "Ops", None).await.pk;
    let far = make_group(store, globex, "Far", None).await.pk;

    let u_eu = member(store, acme, "eu", &[eu]).await;
    let u_north = member(store, acme, "north", &[north]).await;
    let u_us = member(store, acme, "us", &[us]).await;
    let u_sales = member(store, acme, "sales", &[sales]).await;
    let u_ops = member(store, acme, "ops", &[ops]).await;
    let u_both = member(store, acme, "both", &[eu, us]).await;
    let loner = member(store, acme, "loner", &[]).await;
    let u_far = member(store, globex, "far", &[far]).await;

    assert_eq!(group_keys(store, groups_seen_by(store, u_eu).await).await, [eu, north]);
    assert_eq!(group_keys(store, groups_seen_by(store, u_north).await).await, [north]);
    assert_eq!(group_keys(store, groups_seen_by(store, u_sales).await).await, [sales, eu, north, us]);
    assert_eq!(group_keys(store, groups_seen_by(store, u_both).await).await, [eu, north, us]);
    assert_eq!(group_keys(store, groups_seen_by(store, u_ops).await).await, [ops]);
    assert!(group_keys(store, groups_seen_by(store, loner).await).await.is_empty());
    assert_eq!(group_keys(store, groups_seen_by(store, u_far).await).await, [far]);
    let filtered = GroupFilter { ids: vec![eu, us, sales], ..groups_seen_by(store, u_eu).await };
    assert_eq!(group_keys(store, filtered).await, [eu]);

    assert_eq!(user_keys(store, users_seen_by(store, u_eu).await).await, set(&[u_eu, u_north, u_both]));
    assert_eq!(user_keys(store, users_seen_by(store, u_north).await).await, set(&[u_north]));
    assert_eq!(user_keys(store, users_seen_by(store, u_us).await).await, set(&[u_us, u_both]));
    assert_eq!(user_keys(store, users_seen_by(store, u_sales).await).await, set(&[u_sales, u_eu, u_north, u_us, u_both]));
    assert_eq!(user_keys(store, users_seen_by(store, loner).await).await, set(&[loner]), "everyone sees themselves");
    assert_eq!(user_keys(store, users_seen_by(store, u_far).await).await, set(&[u_far]));

    // Combined with other filters.
    let f = UserFilter { groups: vec![us], ..users_seen_by(store, u_eu).await };
    assert_eq!(user_keys(store, f).await, set(&[u_both]));
    let f = UserFilter { groups: vec![sales], groups_recursive: true, ..users_seen_by(store, u_eu).await };
    assert_eq!(user_keys(store, f).await, set(&[u_eu, u_north, u_both]));
    let f = UserFilter { ids: vec![u_us, u_north], ..users_seen_by(store, u_eu).await };
    assert_eq!(user_keys(store, f).await, set(&[u_north]));

    // An expired membership gives no visibility.
    crate::planned::add_members(store, &ctx(), ops, &[u_eu], Some(OffsetDateTime::now_utc() - Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(group_keys(store, groups_seen_by(store, u_eu).await).await, [eu, north]);
    assert_eq!(user_keys(store, users_seen_by(store, u_eu).await).await, set(&[u_eu, u_north, u_both]));
    assert_eq!(user_keys(store, users_seen_by(store, u_ops).await).await, set(&[u_ops]), "an expired member is not seen either");

    // Moving a group moves who sees it.
    move_group(store, ops, Some(north)).await;
    assert_eq!(group_keys(store, groups_seen_by(store, u_eu).await).await, [eu, north, ops]);
    assert_eq!(user_keys(store, users_seen_by(store, u_eu).await).await, set(&[u_eu, u_north, u_both, u_ops]));
    let query = UserQuery { filter: users_seen_by(store, u_eu).await, limit: 2, offset: 2, ..Default::default() };
    let page = store.list_users(&query).await.unwrap();
    assert_eq!(page.count, 4, "the count covers only visible users");
    assert_eq!(page.items.len(), 2);
}

/// Each passed expiry is recorded once, as an `expire` change at its own revision.
pub async fn expirations_are_recorded_once(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let g = make_group(store, org, "G", None).await;
    let u = make_user(store, new_user(org, "u")).await.pk;
    let soon = OffsetDateTime::now_utc() + Duration::milliseconds(50);
    crate::planned::add_members(store, &ctx(), g.pk, &[u], Some(soon)).await.unwrap();
    let before_expiry = store.revision().await.unwrap();
    assert_eq!(store.record_expirations(OffsetDateTime::now_utc() - Duration::seconds(1)).await.unwrap(), 0);
    assert_eq!(store.revision().await.unwrap(), before_expiry, "nothing expired yet");
    let later = soon + Duration::seconds(1);
    assert_eq!(store.record_expirations(later).await.unwrap(), 1);
    let revision = store.revision().await.unwrap();
    assert_eq!(revision, before_expiry + 1);
    let rows = store.changes(0, 1000).await.unwrap();
    let row = rows.iter().rev().find(|r| r.action == "expire").unwrap();
    assert_eq!(
        (row.target_type.as_str(), row.target_pk.as_str(), row.revision),
        ("groups", g.pk.to_string().as_str(), Some(revision))
    );
    assert!(matches!(row.change, Some(Change::MembershipExpired { user, group, .. }) if user == u && group == g.pk), "{row:?}");
    assert_eq!(row.changes["user"], u);
    assert_eq!(store.record_expirations(later + Duration::seconds(1)).await.unwrap(), 0, "recorded once");
}

/// The index built from the store's facts holds exactly those facts about any scope ([`Index::facts_about`] equals
/// [`Facts::restricted_to`]), and so does the store's `engine_patch` (more keys than SQLite takes parameters included):
/// what the server follows the change log with is what the store holds.
pub async fn index_holds_the_facts_of_any_scope(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let root = make_group_with(store, org, "Root", None, json!({"orgs": ["read"]})).await;
    let leaf = make_group_with(store, org, "Leaf", Some(root.pk), json!({"users": ["full"]})).await;
    let alice = member(store, org, "alice", &[leaf.pk]).await;
    let bob = member(store, org, "bob", &[root.pk]).await;
    let (role, _) = store.create_role(&ctx(), "auditor", "", org).await.unwrap();
    crate::planned::assign_role(store, &ctx(), role.pk, &[SubjectFact::User(bob), SubjectFact::Group(leaf.pk)], None)
        .await
        .unwrap();
    let read = [("audit".to_string(), "read".to_string())];
    crate::planned::assign_grants(store, &ctx(), SubjectFact::Role(role.pk), &read, None, None).await.unwrap();
    let (node, _) = store.create_object(&ctx(), "nodes", "7", None, org).await.unwrap();
    store.create_object(&ctx(), "catalogs", "1", None, org).await.unwrap();
    crate::planned::assign_grants(store, &ctx(), SubjectFact::User(alice), &read, Some(("catalogs", "1")), None).await.unwrap();
    crate::planned::set_restriction(store, &ctx(), bob, root.pk, Some(vec![node.pk])).await.unwrap();

    let (all, _) = store.engine_facts().await.unwrap();
    let index = Index::build(&all);
    // The index keeps no organisation of groups and roles: no decision reads one.
    let sorted = |mut f: Facts| {
        f.users.sort_by_key(|u| u.pk);
        f.groups.iter_mut().for_each(|g| g.1 = 0);
        f.groups.sort();
        f.roles.iter_mut().for_each(|r| r.1 = 0);
        f.roles.sort();
        f.memberships.sort_by_key(|m| (m.user, m.group));
        f.role_assignments.sort_by_key(|a| (a.role, a.subject));
        f.grants.sort();
        f.objects.sort_by(|a, b| a.key.cmp(&b.key));
        f
    };
    let scopes = [
        Scope::default(),
        Scope { users: [alice].into(), ..Scope::default() },
        Scope { users: [bob, 999].into(), groups: [leaf.pk].into(), ..Scope::default() },
        Scope { roles: [role.pk].into(), objects: [("catalogs".into(), "1".into())].into(), ..Scope::default() },
        Scope {
            users: [alice, bob].into(),
            groups: [root.pk, leaf.pk].into(),
            roles: [role.pk].into(),
            objects: [("nodes".into(), "7".into()), ("catalogs".into(), "2".into())].into(),
        },
        Scope {
            users: (1..40_000).collect(),
            objects: (0..2_000).map(|i| ("catalogs".to_string(), i.to_string())).collect(),
            ..Scope::default()
        },
    ];
    for scope in scopes {
        let expected = sorted(all.restricted_to(&scope));
        assert_eq!(sorted(index.facts_about(&scope)), expected, "the index, {scope:?}");
        assert_eq!(sorted(store.engine_patch(&scope).await.unwrap()), expected, "the store, {scope:?}");
    }
    let everything = Scope {
        users: [alice, bob].into(),
        groups: [root.pk, leaf.pk].into(),
        roles: [role.pk].into(),
        objects: [("nodes".into(), "7".into()), ("catalogs".into(), "1".into())].into(),
    };
    let patch = index.facts_about(&everything);
    assert!(patch.grants.iter().any(|g| g.subject == SubjectFact::Group(root.pk) && g.module == "orgs"), "group permissions");
    assert_eq!(patch.memberships.iter().find(|m| m.user == bob).unwrap().restriction, Some(vec![node.pk]));
    assert_eq!(patch.role_assignments.len(), 2);
}

/// Group search matches a substring of the name or the description, in any case, for short and long terms alike;
/// renamed and deleted groups are found by their new names only; a quote or an FTS operator is only text.
pub async fn group_search_matches_names_and_descriptions(store: &dyn Store) {
    let acme = make_org(store, "acme").await.pk;
    let make = |name: &str, description: &str| NewGroup { description: description.into(), ..new_group(acme, name, None) };
    let (sales, _) = store.create_group(&ctx(), make("Sales Europe", "Everyone who sells")).await.unwrap();
    let (ops, _) = store.create_group(&ctx(), make("Operations", "Keeps the lights on")).await.unwrap();
    let (odd, _) = store.create_group(&ctx(), make("Quote \"NEAR\" AND", "")).await.unwrap();
    let (gone, _) = store.create_group(&ctx(), make("Temporary sales", "")).await.unwrap();
    let search = |term: &str| GroupFilter { search: Some(term.into()), ..Default::default() };
    assert_eq!(set(&group_keys(store, search("sales")).await), set(&[sales.pk, gone.pk]));
    assert_eq!(group_keys(store, search("EUROPE")).await, vec![sales.pk]);
    assert_eq!(group_keys(store, search("lights")).await, vec![ops.pk], "descriptions are searched");
    assert_eq!(group_keys(store, search("ps")).await, vec![ops.pk], "short terms match substrings too");
    assert_eq!(group_keys(store, search("\"NEAR\" AND")).await, vec![odd.pk]);
    assert!(group_keys(store, search("sales NEAR ops")).await.is_empty());
    crate::planned::delete_group(store, &ctx(), gone.pk, false).await.unwrap();
    update_group(store, &ctx(), ops.pk, |g| g.name = "Field team".into()).await.unwrap();
    assert_eq!(group_keys(store, search("sales")).await, vec![sales.pk]);
    assert!(group_keys(store, search("Operations")).await.is_empty());
    assert_eq!(group_keys(store, search("field")).await, vec![ops.pk]);
    let within = GroupFilter { within: Some(vec![ops.pk]), ..search("sales") };
    assert!(group_keys(store, within).await.is_empty(), "search and other filters combine");
}
