//! The permission catalog: one write path for catalog changes (keys assigned, links really added or removed, fields
//! really changed), catalog and channel groups as the engine's object grants, and idempotent publication.

use castellan_core::catalog::ObjectGroupKind;
use castellan_core::change::{CatalogEntry, CatalogLink, CatalogRecord, Change};
use castellan_core::engine::SubjectFact;

use super::groups::make_group;
use super::{assert_any_conflict, ctx, expect_no_change, expect_one_change, make_org, make_user, mark, new_user};
use crate::{PublishedRoute, ShippedFe, Store};

fn record(r: CatalogRecord) -> Box<CatalogRecord> {
    Box::new(r)
}

/// Creating, linking, unlinking, updating and deleting entries: each one change-log row with what really changed.
pub async fn catalog_writes_log_what_they_change(store: &dyn Store) {
    let org = make_org(store, "cat").await;
    let user = make_user(store, new_user(org.pk, "holder")).await;
    let before = mark(store).await;
    let ns = CatalogRecord { name: Some("shop".into()), ..CatalogRecord::default() };
    let (created, revision) = store
        .write_catalog(&ctx(), Change::CatalogCreated { entry: CatalogEntry::BeNamespace, pk: 0, after: record(ns) })
        .await
        .unwrap();
    let row = expect_one_change(store, before, revision).await;
    let Change::CatalogCreated { pk: ns, .. } = created else { panic!("{created:?}") };
    assert_eq!(
        (row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()),
        ("create", "be_permission_namespace", ns.to_string())
    );
    let be = CatalogRecord {
        name: Some("shop-get-api/v1/products/$".into()),
        namespace: Some(ns),
        action: Some("get".into()),
        path: Some("api/v1/products/$".into()),
        ..CatalogRecord::default()
    };
    let change = Change::CatalogCreated { entry: CatalogEntry::BePermission, pk: 0, after: record(be.clone()) };
    let (Change::CatalogCreated { pk: be_pk, .. }, _) = store.write_catalog(&ctx(), change.clone()).await.unwrap() else {
        panic!()
    };
    let before = mark(store).await;
    assert_any_conflict(store.write_catalog(&ctx(), change).await);
    expect_no_change(store, before).await;

    let link = |added| Change::CatalogLinked { entry: CatalogEntry::BePermission, pk: be_pk, link: CatalogLink::Users, added };
    let (logged, _) = store.write_catalog(&ctx(), link(vec![user.pk])).await.unwrap();
    assert_eq!(logged, link(vec![user.pk]));
    let (again, _) = store.write_catalog(&ctx(), link(vec![user.pk])).await.unwrap();
    assert_eq!(again, link(vec![]), "a link already there is not added twice");
    let rows = store.catalog_rows().await.unwrap();
    assert_eq!(rows.be_users, vec![(be_pk, user.pk)]);

    let rename = Change::CatalogUpdated {
        entry: CatalogEntry::BePermission,
        pk: be_pk,
        before: Box::default(),
        after: record(CatalogRecord {
            name: Some("renamed".into()),
            path: Some("api/v1/products/$".into()),
            ..CatalogRecord::default()
        }),
    };
    let (Change::CatalogUpdated { before, after, .. }, _) = store.write_catalog(&ctx(), rename).await.unwrap() else { panic!() };
    assert_eq!((before.name.as_deref(), after.name.as_deref()), (Some("shop-get-api/v1/products/$"), Some("renamed")));
    assert_eq!((before.path.clone(), after.path.clone()), (None, None), "an unchanged field is not logged");

    let unlink = Change::CatalogUnlinked {
        entry: CatalogEntry::BePermission,
        pk: be_pk,
        link: CatalogLink::Users,
        removed: vec![user.pk, 999],
    };
    let (logged, _) = store.write_catalog(&ctx(), unlink).await.unwrap();
    assert!(matches!(logged, Change::CatalogUnlinked { ref removed, .. } if removed == &vec![user.pk]), "{logged:?}");

    // Deleting the namespace takes its permissions with it.
    let delete = Change::CatalogDeleted { entry: CatalogEntry::BeNamespace, pk: ns, before: Box::default() };
    let (Change::CatalogDeleted { before, .. }, _) = store.write_catalog(&ctx(), delete).await.unwrap() else { panic!() };
    assert_eq!(before.name.as_deref(), Some("shop"));
    let rows = store.catalog_rows().await.unwrap();
    assert!(rows.namespaces.iter().all(|n| n.pk != ns) && rows.be.iter().all(|b| b.pk != be_pk));
    let missing =
        Change::CatalogLinked { entry: CatalogEntry::BePermission, pk: be_pk, link: CatalogLink::Users, added: vec![user.pk] };
    assert!(matches!(store.write_catalog(&ctx(), missing).await, Err(crate::StoreError::NotFound)));
}

/// A catalog group is an `access` grant of each item to its group, in the engine's facts and their scoped reads.
pub async fn object_groups_are_grants_of_their_group(store: &dyn Store) {
    let org = make_org(store, "og").await;
    let group = make_group(store, org.pk, "buyers", None).await;
    let after = CatalogRecord { group: Some(group.pk), items: Some(vec![4, 2]), ..CatalogRecord::default() };
    let (created, _) = store
        .write_catalog(&ctx(), Change::CatalogCreated { entry: CatalogEntry::CatalogGroup, pk: 0, after: record(after) })
        .await
        .unwrap();
    let Change::CatalogCreated { pk, after, .. } = created else { panic!() };
    assert_eq!(after.items, Some(vec![2, 4]));
    let rows = store.catalog_rows().await.unwrap();
    let og = rows.object_groups.iter().find(|g| g.pk == pk).unwrap();
    assert_eq!((og.kind, og.group, og.items.clone()), (ObjectGroupKind::Catalogs, group.pk, vec![2, 4]));
    let (facts, _) = store.engine_facts().await.unwrap();
    let mut granted: Vec<(String, String)> = facts
        .grants
        .iter()
        .filter(|g| g.subject == SubjectFact::Group(group.pk))
        .map(|g| (format!("{}.{}", g.module, g.action), g.object.clone().unwrap().1))
        .collect();
    granted.sort();
    assert_eq!(granted, vec![("catalogs.access".to_string(), "2".to_string()), ("catalogs.access".to_string(), "4".to_string())]);
    let scope = castellan_core::engine::Scope { groups: [group.pk].into(), ..Default::default() };
    assert_eq!(store.engine_patch(&scope).await.unwrap().grants.len(), 2, "scoped reads see them too");
    assert!(store.list_modules().await.unwrap().iter().any(|m| m.id == "catalogs"), "the module is registered");
}

/// Publishing the same routes and tree twice writes once; a route no longer published is marked stale.
pub async fn publishing_is_idempotent(store: &dyn Store) {
    let route = |path: &str| PublishedRoute { namespace: "users".into(), action: "get".into(), path: path.into() };
    let tree = vec![ShippedFe { path: vec!["users".into()], name: "Users".into(), be: vec![("users".into(), "get".into())] }];
    let routes = vec![route("api/v1/users/$"), route("api/v1/users/[^/]+/$")];
    assert!(store.publish_catalog(&routes, &tree).await.unwrap().is_some());
    let before = mark(store).await;
    assert_eq!(store.publish_catalog(&routes, &tree).await.unwrap(), None);
    expect_no_change(store, before).await;
    let rows = store.catalog_rows().await.unwrap();
    assert_eq!(rows.be.len(), 2);
    let users = rows.fe.iter().find(|f| f.slug == "users").unwrap();
    assert_eq!((users.parent, users.builtin), (Some(1), true));
    assert_eq!(rows.fe_be.iter().filter(|(fe, _)| *fe == users.pk).count(), 2);
    store.publish_catalog(&routes[..1], &tree).await.unwrap();
    let rows = store.catalog_rows().await.unwrap();
    let stale: Vec<&str> = rows.be.iter().filter(|b| b.stale).map(|b| b.path.as_str()).collect();
    assert_eq!(stale, ["api/v1/users/[^/]+/$"]);
    assert_eq!(rows.fe_be.iter().filter(|(fe, _)| *fe == users.pk).count(), 2, "a stale route stays linked, marked");
}

/// The rows with their dates zeroed and every list in one order: what a follower and the store must agree on.
fn comparable(mut rows: castellan_core::catalog::CatalogRows) -> castellan_core::catalog::CatalogRows {
    rows.namespaces.iter_mut().for_each(|n| (n.created, n.modified) = (0, 0));
    rows.be.iter_mut().for_each(|b| (b.created, b.modified) = (0, 0));
    rows.fe.iter_mut().for_each(|f| (f.created, f.modified) = (0, 0));
    rows.fe_groups.iter_mut().for_each(|g| (g.created, g.modified) = (0, 0));
    rows.object_groups.iter_mut().for_each(|g| (g.created, g.modified) = (0, 0));
    rows.namespaces.sort_by_key(|n| n.pk);
    rows.be.sort_by_key(|b| b.pk);
    rows.fe.sort_by_key(|f| f.pk);
    rows.fe_groups.sort_by_key(|g| g.pk);
    rows.object_groups.sort_by_key(|g| g.pk);
    for pairs in [
        &mut rows.namespace_users,
        &mut rows.be_users,
        &mut rows.fe_users,
        &mut rows.fe_be,
        &mut rows.fe_group_users,
        &mut rows.fe_group_fe,
    ] {
        pairs.sort_unstable();
    }
    rows
}

/// Followers keep the catalog from the log alone: the logged changes applied to the rows before them give the rows
/// the store holds after them, through creations, links, moves, cascades, publication and user and group deletions.
pub async fn the_log_replays_to_the_stored_catalog(store: &dyn Store) {
    let org = make_org(store, "replay").await;
    let (ann, bob) = (make_user(store, new_user(org.pk, "ann")).await, make_user(store, new_user(org.pk, "bob")).await);
    let group = make_group(store, org.pk, "buyers", None).await;
    let route = |path: &str| PublishedRoute { namespace: "users".into(), action: "get".into(), path: path.into() };
    let tree = vec![ShippedFe { path: vec!["users".into()], name: "Users".into(), be: vec![("users".into(), "get".into())] }];
    store.publish_catalog(&[route("api/v1/users/$"), route("api/v1/users/[^/]+/$")], &tree).await.unwrap();
    let start = store.catalog_rows().await.unwrap();
    let from = store.last_change_pk().await.unwrap();

    let write = |change: Change| async move { store.write_catalog(&ctx(), change).await.unwrap().0 };
    let created = |change: Change| match change {
        Change::CatalogCreated { pk, .. } => pk,
        other => panic!("{other:?}"),
    };
    let ns = created(
        write(Change::CatalogCreated {
            entry: CatalogEntry::BeNamespace,
            pk: 0,
            after: record(CatalogRecord { name: Some("shop".into()), users: Some(vec![ann.pk]), ..CatalogRecord::default() }),
        })
        .await,
    );
    let be_record = |path: &str| CatalogRecord {
        name: Some(path.into()),
        namespace: Some(ns),
        action: Some("get".into()),
        path: Some(path.into()),
        ..CatalogRecord::default()
    };
    let be = created(
        write(Change::CatalogCreated { entry: CatalogEntry::BePermission, pk: 0, after: record(be_record("a/$")) }).await,
    );
    let be2 = created(
        write(Change::CatalogCreated { entry: CatalogEntry::BePermission, pk: 0, after: record(be_record("b/$")) }).await,
    );
    let fe_record = |slug: &str, parent: Option<i64>| CatalogRecord {
        name: Some(slug.into()),
        slug: Some(slug.into()),
        parent: Some(parent),
        be_permissions: Some(vec![be, be2]),
        users: Some(vec![bob.pk]),
        ..CatalogRecord::default()
    };
    let shop = created(
        write(Change::CatalogCreated { entry: CatalogEntry::FePermission, pk: 0, after: record(fe_record("shop", None)) }).await,
    );
    let orders = created(
        write(Change::CatalogCreated {
            entry: CatalogEntry::FePermission,
            pk: 0,
            after: record(fe_record("orders", Some(shop))),
        })
        .await,
    );
    let fe_group = created(
        write(Change::CatalogCreated {
            entry: CatalogEntry::FeGroup,
            pk: 0,
            after: record(CatalogRecord {
                name: Some("team".into()),
                description: Some(Some("d".into())),
                users: Some(vec![ann.pk, bob.pk]),
                fe_permissions: Some(vec![orders]),
                ..CatalogRecord::default()
            }),
        })
        .await,
    );
    write(Change::CatalogLinked {
        entry: CatalogEntry::FePermission,
        pk: shop,
        link: CatalogLink::FeGroups,
        added: vec![fe_group],
    })
    .await;
    write(Change::CatalogUnlinked {
        entry: CatalogEntry::FeGroup,
        pk: fe_group,
        link: CatalogLink::Users,
        removed: vec![bob.pk],
    })
    .await;
    write(Change::CatalogUpdated {
        entry: CatalogEntry::FePermission,
        pk: orders,
        before: Box::default(),
        after: record(CatalogRecord {
            slug: Some("all-orders".into()),
            parent: Some(None),
            be_permissions: Some(vec![be2]),
            ..CatalogRecord::default()
        }),
    })
    .await;
    let og = created(
        write(Change::CatalogCreated {
            entry: CatalogEntry::ChannelGroup,
            pk: 0,
            after: record(CatalogRecord { group: Some(group.pk), items: Some(vec![3, 1]), ..CatalogRecord::default() }),
        })
        .await,
    );
    write(Change::CatalogUpdated {
        entry: CatalogEntry::ChannelGroup,
        pk: og,
        before: Box::default(),
        after: record(CatalogRecord { group: Some(group.pk), items: Some(vec![2]), ..CatalogRecord::default() }),
    })
    .await;
    write(Change::CatalogDeleted { entry: CatalogEntry::FePermission, pk: shop, before: Box::default() }).await;
    write(Change::CatalogDeleted { entry: CatalogEntry::BePermission, pk: be, before: Box::default() }).await;
    store.publish_catalog(&[route("api/v1/users/$")], &tree).await.unwrap();
    store.delete_user(&ctx(), ann.pk).await.unwrap();
    crate::planned::delete_group(store, &ctx(), group.pk, true).await.unwrap();

    let mut replayed = start;
    for entry in store.changes(from, 1000).await.unwrap() {
        replayed.apply(&entry.change.expect("a typed change"), 0);
    }
    assert_eq!(comparable(replayed), comparable(store.catalog_rows().await.unwrap()));
}
