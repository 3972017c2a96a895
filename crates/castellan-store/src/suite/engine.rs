//! Following the change log with an authorization index: after every kind of write, patching the index with the
//! scope each logged row names answers like an index rebuilt from all facts.

use castellan_core::change::Change;
use castellan_core::engine::{Index, SubjectFact, impact};
use castellan_core::model::UserChanges;
use serde_json::json;

use super::{ctx, make_org, make_user, new_user, update_group};
use crate::{Group, Module, NewGroup, PreviewSlot, Store, StoreError};

/// An index kept current from the log as a server keeps it: each row's typed change followed from the index alone, or
/// patched with the store's facts when the change needs them.
struct Follower {
    index: Index,
    applied: i64,
    rebuilds: usize,
}

impl Follower {
    async fn start(store: &dyn Store) -> Self {
        let applied = store.last_change_pk().await.unwrap();
        Self { index: Index::build(&store.engine_facts().await.unwrap().0), applied, rebuilds: 0 }
    }

    /// Follows the rows written since the last call, then compares with an index rebuilt from the store for every
    /// user, module and action, globally and on each registered object.
    async fn follow_and_compare(&mut self, store: &dyn Store, users: &[i64], what: &str) {
        let entries = store.changes(self.applied, 1000).await.unwrap();
        let mut rebuild = false;
        for entry in &entries {
            let change = entry.change.as_ref().unwrap_or_else(|| panic!("row {} is untyped", entry.pk));
            let stored = crate::stored_facts_for(store, change).await.unwrap();
            rebuild = rebuild || self.index.follow(change, stored.as_ref()).is_err();
            self.applied = entry.pk;
        }
        let (facts, _) = store.engine_facts().await.unwrap();
        if rebuild {
            self.rebuilds += 1;
            self.index = Index::build(&facts);
        }
        let fresh = Index::build(&facts);
        // Registered objects, and the keys of objects this test deletes (a grant left on one would still count).
        let deleted = [("catalogs".to_string(), "10".to_string())];
        let registered = facts.objects.iter().map(|o| o.key.clone()).filter(|k| !deleted.contains(k));
        let objects: Vec<Option<(String, String)>> =
            std::iter::once(None).chain(registered.chain(deleted.iter().cloned()).map(Some)).collect();
        for &user in users {
            assert_eq!(self.index.effective(user, 0), fresh.effective(user, 0), "user {user} after {what}");
            for module in ["users", "groups", "audit", "catalogs"] {
                for action in ["read", "update", "delete"] {
                    for object in &objects {
                        let o = object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
                        assert_eq!(
                            self.index.check(user, module, action, o, 0).allowed,
                            fresh.check(user, module, action, o, 0).allowed,
                            "user {user} {module}.{action} on {object:?} after {what}"
                        );
                    }
                }
            }
        }
    }
}

/// Groups Root ⊃ Mid ⊃ Leaf and Other, conferring `users.read`, `groups.update`, nothing and `audit.read`.
struct Tree {
    root: Group,
    mid: Group,
    leaf: Group,
    other: Group,
}

async fn tree(store: &dyn Store, org: i64) -> Tree {
    let group = |name: &str, parent: Option<i64>, permissions| NewGroup {
        name: name.into(),
        description: String::new(),
        org,
        parent,
        permissions: castellan_core::permission::ModulePermissions::parse(&permissions, "permissions").unwrap(),
    };
    let (root, _) = store.create_group(&ctx(), group("Root", None, json!({"users": ["read"]}))).await.unwrap();
    let (mid, _) = store.create_group(&ctx(), group("Mid", Some(root.pk), json!({"groups": ["update"]}))).await.unwrap();
    let (leaf, _) = store.create_group(&ctx(), group("Leaf", Some(mid.pk), json!({}))).await.unwrap();
    let (other, _) = store.create_group(&ctx(), group("Other", None, json!({"audit": ["read"]}))).await.unwrap();
    Tree { root, mid, leaf, other }
}

/// Every kind of write that changes who holds what is followed by patching, not rebuilding (modules aside).
pub async fn index_follows_the_change_log(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let mut f = Follower::start(store).await;
    let Tree { root, mid, leaf, other } = tree(store, org).await;
    let alice = make_user(store, new_user(org, "alice")).await.pk;
    let bob = make_user(store, new_user(org, "bob")).await.pk;
    let users = [alice, bob];
    f.follow_and_compare(store, &users, "creating groups and users").await;

    crate::planned::add_members(store, &ctx(), leaf.pk, &[alice, bob], None).await.unwrap();
    f.follow_and_compare(store, &users, "adding members").await;
    let groups = UserChanges { groups: Some(vec![other.pk]), ..Default::default() };
    store.update_user(&ctx(), bob, groups).await.unwrap();
    f.follow_and_compare(store, &users, "replacing a user's groups").await;
    update_group(store, &ctx(), mid.pk, |g| g.parent = Some(other.pk)).await.unwrap();
    f.follow_and_compare(store, &users, "moving a subtree").await;
    let permissions = castellan_core::permission::ModulePermissions::parse(&json!({"users": ["delete"]}), "p").unwrap();
    update_group(store, &ctx(), other.pk, |g| g.permissions = permissions.to_map()).await.unwrap();
    f.follow_and_compare(store, &users, "changing a group's permissions").await;

    let (role, _) = store.create_role(&ctx(), "auditor", "", org).await.unwrap();
    crate::planned::assign_role(store, &ctx(), role.pk, &[SubjectFact::User(bob), SubjectFact::Group(leaf.pk)], None)
        .await
        .unwrap();
    let read = [("audit".to_string(), "read".to_string()), ("catalogs".to_string(), "update".to_string())];
    crate::planned::assign_grants(store, &ctx(), SubjectFact::Role(role.pk), &read, None, None).await.unwrap();
    f.follow_and_compare(store, &users, "assigning a role and granting to it").await;
    crate::planned::set_module_grants(store, &ctx(), SubjectFact::User(alice), "groups", &["delete".to_string()]).await.unwrap();
    f.follow_and_compare(store, &users, "per-module grants of a user").await;
    // Plans read before the writes above are stale, and write nothing.
    let revision = store.revision().await.unwrap();
    let (user, read) = (SubjectFact::User(alice), vec!["read".to_string()]);
    let module = Change::ModulePermissionsSet { subject: user, module: "groups".into(), before: vec![], after: read };
    assert!(matches!(store.apply(&ctx(), vec![module]).await, Err(StoreError::Stale(_))));
    let unheld =
        castellan_core::change::RoleRecord { users: vec![], groups: vec![], ..store.get_role(role.pk).await.unwrap().record() };
    let role_again = Change::role_assigned(role.pk, unheld, vec![SubjectFact::User(alice)], None);
    assert!(matches!(store.apply(&ctx(), vec![role_again]).await, Err(StoreError::Stale(_))));
    assert_eq!(store.revision().await.unwrap(), revision);
    // Other's own permissions confer users.delete; a grant of the same action comes and goes beside them.
    let delete = [("users".to_string(), "delete".to_string())];
    crate::planned::assign_grants(store, &ctx(), SubjectFact::Group(other.pk), &delete, None, None).await.unwrap();
    crate::planned::unassign_grants(store, &ctx(), SubjectFact::Group(other.pk), &delete, None).await.unwrap();
    f.follow_and_compare(store, &users, "granting and revoking what a group's own permissions confer").await;
    crate::planned::set_module_grants(store, &ctx(), SubjectFact::Group(other.pk), "users", &[]).await.unwrap();
    f.follow_and_compare(store, &users, "emptying a group's granted module permissions").await;
    let own = f.index.conferred_by(&[other.pk], 0);
    assert!(own.allows("users", castellan_core::permission::Action::Delete), "the group's own permissions stay");

    let (node, _) = store.create_object(&ctx(), "nodes", "1", None, org).await.unwrap();
    let (catalog, _) = store.create_object(&ctx(), "catalogs", "10", None, org).await.unwrap();
    store.create_object(&ctx(), "catalogs", "11", Some(catalog.pk), org).await.unwrap();
    // A built-in module's permission on the object, so that the grant counts (no module is created: that rebuilds).
    let update = [("users".to_string(), "update".to_string())];
    crate::planned::assign_grants(store, &ctx(), SubjectFact::User(bob), &update, Some(("catalogs", "10")), None).await.unwrap();
    assert!(store.engine_facts().await.unwrap().0.grants.iter().any(|g| g.object.is_some()), "an object grant to delete");
    f.follow_and_compare(store, &users, "registering objects and granting on them").await;
    crate::planned::set_restriction(store, &ctx(), alice, leaf.pk, Some(vec![node.pk])).await.unwrap();
    f.follow_and_compare(store, &users, "restricting a membership").await;
    store.delete_object(&ctx(), "catalogs", "10").await.unwrap();
    f.follow_and_compare(store, &users, "deleting a parent object").await;

    crate::planned::unassign_role(store, &ctx(), role.pk, &[SubjectFact::Group(leaf.pk)]).await.unwrap();
    f.follow_and_compare(store, &users, "unassigning a role").await;
    store.delete_role(&ctx(), role.pk).await.unwrap();
    f.follow_and_compare(store, &users, "deleting a role").await;
    crate::planned::remove_members(store, &ctx(), leaf.pk, &[alice]).await.unwrap();
    f.follow_and_compare(store, &users, "removing a member").await;
    store.update_user(&ctx(), alice, UserChanges { is_active: Some(false), ..Default::default() }).await.unwrap();
    f.follow_and_compare(store, &users, "deactivating a user").await;
    crate::planned::delete_group(store, &ctx(), root.pk, true).await.unwrap();
    f.follow_and_compare(store, &users, "deleting a tree of groups").await;
    crate::planned::delete_group(store, &ctx(), other.pk, true).await.unwrap();
    store.update_user(&ctx(), bob, UserChanges { first_name: Some("B".into()), ..Default::default() }).await.unwrap();
    f.follow_and_compare(store, &users, "updating a member of a deleted group").await;
    store.delete_user(&ctx(), bob).await.unwrap();
    f.follow_and_compare(store, &users, "deleting a user").await;
    assert_eq!(f.rebuilds, 0, "every write above is followed in place");
}

/// Runs `$write` (an expression using `$ctx: &WriteCtx`) as a dry run, then for real: the dry run must change
/// nothing, and the impact the model previews from the change it handed over must equal the impact computed from
/// every fact before and after the real write, for every user.
macro_rules! dry_then_real {
    ($store:expr, $users:expr, $what:expr, |$ctx:ident| $write:expr) => {{
        let store: &dyn Store = $store;
        let (facts_before, revision) = store.engine_facts().await.unwrap();
        let slot = PreviewSlot::default();
        let dry = crate::dry_run(slot.clone(), async {
            let real = ctx();
            let $ctx = &real;
            $write.await
        });
        assert!(matches!(dry.await, Err(StoreError::DryRun)), "a dry run of {} did not stop", $what);
        let (facts_unchanged, revision_unchanged) = store.engine_facts().await.unwrap();
        assert_eq!((facts_unchanged == facts_before, revision_unchanged), (true, revision), "a dry run of {} wrote", $what);
        let change = slot.lock().unwrap().take().unwrap_or_else(|| panic!("no change for {}", $what));
        let index_before = Index::build(&facts_before);
        let overlay = index_before.overlay(&change, usize::MAX).unwrap();
        let previewed = overlay.impact(0);
        {
            let real = ctx();
            let $ctx = &real;
            $write.await.unwrap();
        }
        let facts_after = store.engine_facts().await.unwrap().0;
        let actual = impact(&index_before, &Index::build(&facts_after), $users, overlay.probes(), 0);
        assert_eq!(previewed, actual, "the preview of {} differs from what the write did", $what);
        assert!(previewed.users_affected > 0, "{} was meant to change something", $what);
    }};
}

/// Every kind of write that changes who holds what previews exactly the impact it then has.
pub async fn dry_runs_preview_what_the_write_does(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let Tree { mid, leaf, other, .. } = tree(store, org).await;
    let alice = make_user(store, new_user(org, "alice")).await.pk;
    let bob = make_user(store, new_user(org, "bob")).await.pk;
    let carol = make_user(store, new_user(org, "carol")).await.pk;
    let users = [alice, bob, carol];
    crate::planned::add_members(store, &ctx(), leaf.pk, &[carol], None).await.unwrap();

    dry_then_real!(store, &users, "adding members", |c| crate::planned::add_members(store, c, leaf.pk, &[alice, bob], None));
    let groups = UserChanges { groups: Some(vec![other.pk]), ..Default::default() };
    dry_then_real!(store, &users, "replacing a user's groups", |c| store.update_user(c, bob, groups.clone()));
    dry_then_real!(store, &users, "moving a subtree", |c| update_group(store, c, mid.pk, |g| g.parent = Some(other.pk)));
    let permissions = castellan_core::permission::ModulePermissions::parse(&json!({"users": ["delete"]}), "p").unwrap();
    let permissions = permissions.to_map();
    dry_then_real!(store, &users, "changing a group's permissions", |c| update_group(store, c, other.pk, |g| g.permissions =
        permissions.clone()));

    let (role, _) = store.create_role(&ctx(), "auditor", "", org).await.unwrap();
    let read = [("audit".to_string(), "update".to_string()), ("catalogs".to_string(), "update".to_string())];
    crate::planned::assign_grants(store, &ctx(), SubjectFact::Role(role.pk), &read, None, None).await.unwrap();
    let holders = [SubjectFact::User(alice), SubjectFact::Group(leaf.pk)];
    dry_then_real!(store, &users, "assigning a role", |c| crate::planned::assign_role(store, c, role.pk, &holders, None));
    dry_then_real!(store, &users, "per-module grants", |c| crate::planned::set_module_grants(
        store,
        c,
        SubjectFact::User(alice),
        "groups",
        &["delete".to_string()]
    ));

    let mut catalogs =
        Module { id: "catalogs".into(), description: String::new(), is_active: true, custom_actions: vec![], builtin: false };
    store.create_module(&ctx(), &catalogs).await.unwrap();
    let (node, _) = store.create_object(&ctx(), "nodes", "1", None, org).await.unwrap();
    let (catalog, _) = store.create_object(&ctx(), "catalogs", "10", None, org).await.unwrap();
    store.create_object(&ctx(), "catalogs", "11", Some(catalog.pk), org).await.unwrap();
    let on_catalog = Some(("catalogs", "10"));
    dry_then_real!(store, &users, "granting on an object", |c| crate::planned::assign_grants(
        store,
        c,
        SubjectFact::User(bob),
        &read[1..],
        on_catalog,
        None
    ));
    dry_then_real!(store, &users, "registering an object under a granted one", |c| store.create_object(
        c,
        "catalogs",
        "12",
        Some(catalog.pk),
        org
    ));
    dry_then_real!(store, &users, "restricting a membership", |c| crate::planned::set_restriction(
        store,
        c,
        carol,
        leaf.pk,
        Some(vec![node.pk])
    ));
    catalogs.is_active = false;
    dry_then_real!(store, &users, "deactivating a module", |c| store.update_module(c, &catalogs));
    dry_then_real!(store, &users, "unassigning a role", |c| crate::planned::unassign_role(
        store,
        c,
        role.pk,
        &[SubjectFact::Group(leaf.pk)]
    ));
    dry_then_real!(store, &users, "deleting a role", |c| store.delete_role(c, role.pk));
    dry_then_real!(store, &users, "removing a member", |c| crate::planned::remove_members(store, c, leaf.pk, &[alice]));
    let inactive = UserChanges { is_active: Some(false), ..Default::default() };
    dry_then_real!(store, &users, "deactivating a user", |c| store.update_user(c, alice, inactive.clone()));
    dry_then_real!(store, &users, "deleting a tree of groups", |c| crate::planned::delete_group(store, c, other.pk, true));
    crate::planned::set_module_grants(store, &ctx(), SubjectFact::User(bob), "groups", &["read".to_string()]).await.unwrap();
    dry_then_real!(store, &users, "deleting a user", |c| store.delete_user(c, bob));
}
