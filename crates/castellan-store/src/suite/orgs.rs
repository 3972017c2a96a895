//! Organisations (create, look up, list, update, delete, password policy) and registered objects.

use castellan_core::model::UserChanges;
use castellan_core::password::PasswordPolicy;
use time::{Duration, OffsetDateTime};

use super::groups::make_group;
use super::{
    assert_any_conflict, assert_conflict, assert_not_found, ctx, expect_no_change, expect_one_change, make_org, make_user, mark,
    new_user,
};
use crate::Store;

/// `create_org` returns the stored row; `get_org` and `org_by_slug` find it; unknown keys are `NotFound`.
pub async fn org_create_and_lookup(store: &dyn Store) {
    let before = mark(store).await;
    let (org, revision) = store.create_org(&ctx(), "Acme Inc.", "acme", "Makes everything").await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("create", "orgs"));
    assert_eq!(row.target_pk, org.pk.to_string());
    assert_eq!(row.changes["after"]["slug"], "acme");
    assert_eq!(row.changes["after"]["name"], "Acme Inc.");

    assert_eq!(org.name, "Acme Inc.");
    assert_eq!(org.slug, "acme");
    assert_eq!(org.description, "Makes everything");
    assert_eq!(org.created_date, org.modified_date);
    let now = OffsetDateTime::now_utc();
    assert!((now - org.created_date).abs() < Duration::minutes(1), "created_date {} is not now", org.created_date);

    assert_eq!(store.get_org(org.pk).await.unwrap(), org);
    assert_eq!(store.org_by_slug("acme").await.unwrap(), org);

    let other = store.create_org(&ctx(), "Globex", "globex", "").await.unwrap().0;
    assert_ne!(other.pk, org.pk);
    assert_eq!(store.org_by_slug("globex").await.unwrap(), other);
    assert_eq!(store.get_org(org.pk).await.unwrap(), org);

    assert_not_found(store.get_org(other.pk + 1000).await);
    assert_not_found(store.org_by_slug("initech").await);
}

/// A second org with a taken slug is `Conflict{slug}` and changes nothing.
pub async fn org_duplicate_slug_conflicts(store: &dyn Store) {
    let org = store.create_org(&ctx(), "Acme", "acme", "").await.unwrap().0;
    let before = mark(store).await;
    assert_conflict(store.create_org(&ctx(), "Acme again", "acme", "other").await, "slug");
    expect_no_change(store, before).await;
    assert_eq!(store.org_by_slug("acme").await.unwrap(), org);
}

/// Organisations list by key (optionally one only, or searched), update with a log row, and delete only when empty.
pub async fn org_list_update_delete(store: &dyn Store) {
    let acme = make_org(store, "acme").await;
    let globex = make_org(store, "globex").await;
    let initech = make_org(store, "initech").await;

    let page = store.list_orgs(None, None, 0, 10).await.unwrap();
    assert_eq!(page.count, 3);
    assert_eq!(page.items, [acme.clone(), globex.clone(), initech.clone()]);
    let page = store.list_orgs(None, None, 1, 1).await.unwrap();
    assert_eq!((page.count, page.items.clone()), (3, vec![globex.clone()]));
    let page = store.list_orgs(Some(globex.pk), None, 0, 10).await.unwrap();
    assert_eq!((page.count, page.items.clone()), (1, vec![globex.clone()]));
    let page = store.list_orgs(None, Some("GLOB"), 0, 10).await.unwrap();
    assert_eq!((page.count, page.items.clone()), (1, vec![globex.clone()]));
    let page = store.list_orgs(Some(acme.pk), Some("glob"), 0, 10).await.unwrap();
    assert_eq!(page.count, 0);

    // Update: only the given fields change.
    let before = mark(store).await;
    let (updated, revision) = store.update_org(&ctx(), globex.pk, Some("Globex Corp"), None, Some("Evil")).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("update", "orgs"));
    assert_eq!(row.target_pk, globex.pk.to_string());
    assert_eq!(row.changes["before"]["name"], "Org globex");
    assert_eq!(row.changes["after"]["name"], "Globex Corp");
    assert_eq!(row.changes["after"]["slug"], "globex");
    assert_eq!(row.changes["after"]["description"], "Evil");
    assert_eq!((updated.name.as_str(), updated.slug.as_str(), updated.description.as_str()), ("Globex Corp", "globex", "Evil"));
    assert_eq!(updated.created_date, globex.created_date);
    assert!(updated.modified_date >= globex.modified_date);
    assert_eq!(store.get_org(globex.pk).await.unwrap(), updated);

    let (reslugged, _) = store.update_org(&ctx(), globex.pk, None, Some("globex-corp"), None).await.unwrap();
    assert_eq!(reslugged.slug, "globex-corp");
    assert_eq!(reslugged.name, "Globex Corp");
    assert_eq!(store.org_by_slug("globex-corp").await.unwrap().pk, globex.pk);
    assert_not_found(store.org_by_slug("globex").await);

    let before = mark(store).await;
    assert_conflict(store.update_org(&ctx(), globex.pk, Some("x"), Some("acme"), None).await, "slug");
    assert_not_found(store.update_org(&ctx(), 9999, Some("x"), None, None).await);
    expect_no_change(store, before).await;
    assert_eq!(store.get_org(globex.pk).await.unwrap(), reslugged);

    // Delete: refused while the org holds users, groups or objects.
    let user = make_user(store, new_user(acme.pk, "alice")).await;
    let group = make_group(store, globex.pk, "G", None).await;
    store.create_object(&ctx(), "nodes", "1", None, initech.pk).await.unwrap();
    let before = mark(store).await;
    assert_conflict(store.delete_org(&ctx(), acme.pk).await, "users");
    assert_conflict(store.delete_org(&ctx(), globex.pk).await, "org_groups");
    assert_conflict(store.delete_org(&ctx(), initech.pk).await, "org_objects");
    assert_not_found(store.delete_org(&ctx(), 9999).await);
    expect_no_change(store, before).await;
    assert_eq!(store.list_orgs(None, None, 0, 10).await.unwrap().count, 3);
    assert_eq!(store.get_user(user.pk).await.unwrap().org, acme.pk);

    store.delete_user(&ctx(), user.pk).await.unwrap();
    store.set_password_policy(&ctx(), acme.pk, &PasswordPolicy { min_length: 10, ..Default::default() }).await.unwrap();
    let before = mark(store).await;
    let revision = store.delete_org(&ctx(), acme.pk).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("delete", "orgs"));
    assert_eq!(row.target_pk, acme.pk.to_string());
    assert_eq!(row.changes["before"]["slug"], "acme");
    assert_not_found(store.get_org(acme.pk).await);
    assert_not_found(store.org_by_slug("acme").await);
    let page = store.list_orgs(None, None, 0, 10).await.unwrap();
    assert_eq!(page.items.iter().map(|o| o.pk).collect::<Vec<_>>(), [globex.pk, initech.pk]);

    crate::planned::delete_group(store, &ctx(), group.pk, false).await.unwrap();
    store.delete_org(&ctx(), globex.pk).await.unwrap();
    assert_eq!(store.list_orgs(None, None, 0, 10).await.unwrap().count, 1);
}

/// An org's password policy is the default until set; setting it is one logged write and affects only that org.
pub async fn password_policy_default_and_set(store: &dyn Store) {
    let acme = make_org(store, "acme").await.pk;
    let globex = make_org(store, "globex").await.pk;
    let default = store.password_policy(acme).await.unwrap();
    assert_eq!(default, PasswordPolicy::default());
    assert_eq!(
        (default.min_length, default.require_upper, default.require_digit, default.require_special, default.history_count),
        (8, true, true, true, 2)
    );

    let policy =
        PasswordPolicy { min_length: 12, require_upper: false, require_digit: true, require_special: false, history_count: 5 };
    let before = mark(store).await;
    let revision = store.set_password_policy(&ctx(), acme, &policy).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("update", "orgs"));
    assert_eq!(row.target_pk, acme.to_string());
    assert_eq!(row.changes["before"]["password_policy"]["min_length"], 8);
    assert_eq!(row.changes["after"]["password_policy"]["min_length"], 12);
    assert_eq!(row.changes["after"]["password_policy"]["history_count"], 5);
    assert_eq!(store.password_policy(acme).await.unwrap(), policy);
    assert_eq!(store.password_policy(globex).await.unwrap(), PasswordPolicy::default(), "other orgs keep the default");

    let replaced = PasswordPolicy { min_length: 9, history_count: 0, ..PasswordPolicy::default() };
    let before = mark(store).await;
    let revision = store.set_password_policy(&ctx(), acme, &replaced).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!(row.changes["before"]["password_policy"]["min_length"], 12);
    assert_eq!(row.changes["after"]["password_policy"]["min_length"], 9);
    assert_eq!(store.password_policy(acme).await.unwrap(), replaced);

    // A user update does not touch the policy.
    let user = make_user(store, new_user(acme, "alice")).await;
    store.update_user(&ctx(), user.pk, UserChanges { first_name: Some("A".into()), ..Default::default() }).await.unwrap();
    assert_eq!(store.password_policy(acme).await.unwrap(), replaced);
}

/// Objects are registered once per (model, key), found, and unregistered; parents may be deleted under children.
pub async fn objects_create_find_delete(store: &dyn Store) {
    let org = make_org(store, "acme").await.pk;
    let globex = make_org(store, "globex").await.pk;

    let before = mark(store).await;
    let (node, revision) = store.create_object(&ctx(), "nodes", "7", None, org).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.as_str()), ("create", "nodes", "7"));
    assert_eq!(row.changes["after"]["model"], "nodes");
    assert_eq!(row.changes["after"]["object_pk"], "7");
    assert_eq!(row.changes["after"]["org"], org);
    assert_eq!((node.model.as_str(), node.object_pk.as_str(), node.parent, node.org), ("nodes", "7", None, org));
    assert_eq!(store.find_object("nodes", "7").await.unwrap(), Some(node.clone()));
    assert_eq!(store.find_object("nodes", "8").await.unwrap(), None);
    assert_eq!(store.find_object("catalogs", "7").await.unwrap(), None);

    let (catalog, _) = store.create_object(&ctx(), "catalogs", "9", None, globex).await.unwrap();
    let (product, _) = store.create_object(&ctx(), "products", "42", Some(catalog.pk), globex).await.unwrap();
    assert_eq!(product.parent, Some(catalog.pk));
    assert_eq!(store.find_object("products", "42").await.unwrap(), Some(product.clone()));
    let (same_key, _) = store.create_object(&ctx(), "catalogs", "7", None, org).await.unwrap();
    assert_ne!(same_key.pk, node.pk, "the same key in another model is another object");

    let before = mark(store).await;
    assert_conflict(store.create_object(&ctx(), "nodes", "7", None, org).await, "object");
    assert_conflict(store.create_object(&ctx(), "nodes", "7", None, globex).await, "object");
    assert_any_conflict(store.create_object(&ctx(), "nodes", "8", Some(9999), org).await);
    assert_any_conflict(store.create_object(&ctx(), "nodes", "8", None, 9999).await);
    expect_no_change(store, before).await;
    assert_eq!(store.find_object("nodes", "7").await.unwrap(), Some(node.clone()));
    assert_eq!(store.find_object("nodes", "8").await.unwrap(), None);

    let before = mark(store).await;
    let revision = store.delete_object(&ctx(), "nodes", "7").await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.as_str()), ("delete", "nodes", "7"));
    assert!(row.changes["before"].is_object());
    assert_eq!(store.find_object("nodes", "7").await.unwrap(), None);
    assert_eq!(store.find_object("catalogs", "7").await.unwrap(), Some(same_key));

    let before = mark(store).await;
    assert_not_found(store.delete_object(&ctx(), "nodes", "7").await);
    assert_not_found(store.delete_object(&ctx(), "nodes", "nope").await);
    expect_no_change(store, before).await;

    // Deleting a parent leaves the child registered, without a parent.
    store.delete_object(&ctx(), "catalogs", "9").await.unwrap();
    assert_eq!(store.find_object("products", "42").await.unwrap().expect("the child stays").parent, None);

    // A key can be registered again once unregistered, under a new primary key.
    let (again, _) = store.create_object(&ctx(), "nodes", "7", None, org).await.unwrap();
    assert_ne!(again.pk, node.pk, "keys are never reused");
}
