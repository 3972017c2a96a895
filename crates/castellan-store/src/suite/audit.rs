//! The audit log: filters, subject/object targets, time bounds, ordering, paging and organisation scoping.

use castellan_core::model::{User, UserChanges};
use castellan_core::permission::ModulePermissions;
use time::Duration;

use super::{changes_after, new_user};
use crate::{ChangeEntry, ChangeOrder, ChangeQuery, NewGroup, Store, WriteCtx};
use castellan_core::change::Change;

/// A write context acting as `user`.
fn as_user(user: &User) -> WriteCtx {
    WriteCtx {
        actor: Some((user.pk, user.username.clone())),
        ip: Some("198.51.100.7".to_string()),
        request_id: Some(format!("req-{}", user.username)),
    }
}

/// What the audit fixture made: two organisations, a user in each, and the rows each of them wrote.
struct Fixture {
    org_a: i64,
    org_b: i64,
    alice: User,
    bob: User,
    group_a: i64,
    group_b: i64,
    /// Every row, oldest first.
    all: Vec<ChangeEntry>,
}

/// Writes a known mix of rows: server-made setup (no actor), then writes and audit events by alice (org A) and bob
/// (org B), then a failed login (no actor).
async fn fixture(store: &dyn Store) -> Fixture {
    let server = WriteCtx::default();
    let org_a = store.create_org(&server, "Acme", "acme", "").await.unwrap().0.pk;
    let org_b = store.create_org(&server, "Globex", "globex", "").await.unwrap().0.pk;
    let alice = store.create_user(&server, new_user(org_a, "alice")).await.unwrap().0;
    let bob = store.create_user(&server, new_user(org_b, "bob")).await.unwrap().0;

    let group = |org: i64, name: &str| NewGroup {
        name: name.to_string(),
        description: String::new(),
        org,
        parent: None,
        permissions: ModulePermissions::new(),
    };
    let group_a = store.create_group(&as_user(&alice), group(org_a, "Editors")).await.unwrap().0.pk;
    let changes = UserChanges { first_name: Some("Alicia".into()), ..Default::default() };
    store.update_user(&as_user(&alice), alice.pk, changes).await.unwrap();
    let login = |user: &User| Change::LoggedIn { user: user.pk, session: Some(1) };
    store.audit(&as_user(&alice), login(&alice)).await.unwrap();

    let group_b = store.create_group(&as_user(&bob), group(org_b, "Editors")).await.unwrap().0.pk;
    crate::planned::add_members(store, &as_user(&bob), group_b, &[bob.pk], None).await.unwrap();
    store.audit(&as_user(&bob), login(&bob)).await.unwrap();
    store.create_object(&as_user(&bob), "catalogs", "42", None, org_b).await.unwrap();
    let logout = Change::LoggedOut { user: bob.pk };
    store.audit(&as_user(&bob), logout).await.unwrap();

    let failed = Change::LoginFailed { user: None, username: "mallory".into() };
    store.audit(&server, failed).await.unwrap();

    let all = changes_after(store, 0).await;
    assert_eq!(all.len(), 13, "{all:#?}");
    Fixture { org_a, org_b, alice, bob, group_a, group_b, all }
}

/// Whether a row is about one of `targets` (target type and key).
fn about(targets: &[(&str, String)]) -> impl Fn(&ChangeEntry) -> bool {
    let targets: Vec<(String, String)> = targets.iter().map(|(t, k)| (t.to_string(), k.clone())).collect();
    move |c| targets.iter().any(|(t, k)| c.target_type == *t && c.target_pk == *k)
}

/// A query returning everything oldest first, on one page.
fn everything() -> ChangeQuery {
    ChangeQuery { ordering: vec![(ChangeOrder::Pk, false)], limit: 1000, ..Default::default() }
}

/// The keys a query returns, asserting the count matches the page when it fits.
async fn pks(store: &dyn Store, query: ChangeQuery) -> Vec<i64> {
    let page = store.list_changes(&query).await.unwrap();
    let keys: Vec<i64> = page.items.iter().map(|c| c.pk).collect();
    if query.offset == 0 && page.count <= query.limit {
        assert_eq!(page.count, keys.len() as i64, "count matches the rows for {query:?}");
    }
    keys
}

/// The keys of the fixture's rows that satisfy `keep`, ascending.
fn expected(f: &Fixture, keep: impl Fn(&ChangeEntry) -> bool) -> Vec<i64> {
    f.all.iter().filter(|c| keep(c)).map(|c| c.pk).collect()
}

/// Every filter alone and combined, subject/object targets, and organisation scoping.
pub async fn audit_filters_and_org(store: &dyn Store) {
    let f = fixture(store).await;
    let actor_is = |user: &User| {
        let pk = user.pk;
        move |c: &ChangeEntry| c.actor.as_ref().is_some_and(|(a, _)| *a == pk)
    };

    // Unfiltered: every row, identical to the change log's own rows.
    let page = store.list_changes(&everything()).await.unwrap();
    assert_eq!(page.count, f.all.len() as i64);
    assert_eq!(page.items, f.all);

    // Organisation: the org of what changed, whoever changed it (the server created both orgs and their first users;
    // an org's own creation belongs to it); a failed login for an unknown name is about nothing of any org.
    let in_a = pks(store, ChangeQuery { org: Some(f.org_a), ..everything() }).await;
    assert_eq!(
        in_a,
        expected(
            &f,
            about(&[("orgs", f.org_a.to_string()), ("users", f.alice.pk.to_string()), ("groups", f.group_a.to_string())])
        )
    );
    assert_eq!(in_a.len(), 5);
    let in_b = pks(store, ChangeQuery { org: Some(f.org_b), ..everything() }).await;
    let of_b = [
        ("orgs", f.org_b.to_string()),
        ("users", f.bob.pk.to_string()),
        ("groups", f.group_b.to_string()),
        ("catalogs", "42".to_string()),
    ];
    assert_eq!(in_b, expected(&f, about(&of_b)));
    assert_eq!(in_b.len(), 7);
    assert!(pks(store, ChangeQuery { org: Some(9999), ..everything() }).await.is_empty());

    // Actor, one or several.
    let by_alice = pks(store, ChangeQuery { actors: vec![f.alice.pk], ..everything() }).await;
    assert_eq!(by_alice, expected(&f, actor_is(&f.alice)));
    assert_eq!(by_alice.len(), 3);
    let both = pks(store, ChangeQuery { actors: vec![f.alice.pk, f.bob.pk], ..everything() }).await;
    assert_eq!(both, expected(&f, |c| c.actor.is_some()));
    assert!(pks(store, ChangeQuery { actors: vec![f.alice.pk], org: Some(f.org_b), ..everything() }).await.is_empty());

    // Target type and key.
    let groups = pks(store, ChangeQuery { target_types: vec!["groups".into()], ..everything() }).await;
    assert_eq!(groups, expected(&f, |c| c.target_type == "groups"));
    assert_eq!(groups.len(), 3);
    let two_types = pks(store, ChangeQuery { target_types: vec!["groups".into(), "orgs".into()], ..everything() }).await;
    assert_eq!(two_types, expected(&f, |c| c.target_type == "groups" || c.target_type == "orgs"));
    let by_key = pks(store, ChangeQuery { target_pks: vec![f.group_b.to_string()], ..everything() }).await;
    assert_eq!(by_key, expected(&f, |c| c.target_pk == f.group_b.to_string()));
    let typed_key = ChangeQuery { target_types: vec!["groups".into()], target_pks: vec![f.group_b.to_string()], ..everything() };
    let typed_key = pks(store, typed_key).await;
    assert_eq!(typed_key, expected(&f, |c| c.target_type == "groups" && c.target_pk == f.group_b.to_string()));
    assert_eq!(typed_key.len(), 2, "the group's creation and its new member");

    // Action, one or several, and combined with an organisation.
    let logins = pks(store, ChangeQuery { actions: vec!["login".into()], ..everything() }).await;
    assert_eq!(logins, expected(&f, |c| c.action == "login"));
    assert_eq!(logins.len(), 2);
    let sessions = ChangeQuery { actions: vec!["login".into(), "logout".into(), "login_failed".into()], ..everything() };
    assert_eq!(pks(store, sessions).await.len(), 4);
    let a_logins = pks(store, ChangeQuery { actions: vec!["login".into()], org: Some(f.org_a), ..everything() }).await;
    assert_eq!(a_logins, expected(&f, |c| c.action == "login" && actor_is(&f.alice)(c)));
    assert_eq!(a_logins.len(), 1);
    assert!(pks(store, ChangeQuery { actions: vec!["expire".into()], ..everything() }).await.is_empty());

    // Subject: rows whose target is that user (or group), any of several.
    let alice_key = f.alice.pk.to_string();
    let subject = pks(store, ChangeQuery { subjects: vec![("users".into(), alice_key.clone())], ..everything() }).await;
    assert_eq!(subject, expected(&f, |c| c.target_type == "users" && c.target_pk == alice_key));
    assert_eq!(subject.len(), 3, "created, updated, logged in");
    let subjects =
        vec![("users".into(), alice_key.clone()), ("groups".into(), f.group_a.to_string()), ("roles".into(), "7".into())];
    let several = pks(store, ChangeQuery { subjects, ..everything() }).await;
    assert_eq!(
        several,
        expected(&f, |c| (c.target_type == "users" && c.target_pk == alice_key)
            || (c.target_type == "groups" && c.target_pk == f.group_a.to_string()))
    );
    // A user key is not a group key: the type must match too.
    let wrong_type = vec![("groups".into(), alice_key.clone())];
    let wrong = pks(store, ChangeQuery { subjects: wrong_type, ..everything() }).await;
    assert_eq!(wrong, expected(&f, |c| c.target_type == "groups" && c.target_pk == alice_key));

    // Object: rows on that object.
    let object = pks(store, ChangeQuery { objects: vec![("catalogs".into(), "42".into())], ..everything() }).await;
    assert_eq!(object, expected(&f, |c| c.target_type == "catalogs" && c.target_pk == "42"));
    assert_eq!(object.len(), 1);
    assert!(pks(store, ChangeQuery { objects: vec![("catalogs".into(), "43".into())], ..everything() }).await.is_empty());
    // Subject and object together must both hold.
    let neither = ChangeQuery {
        subjects: vec![("users".into(), alice_key.clone())],
        objects: vec![("catalogs".into(), "42".into())],
        ..everything()
    };
    assert!(pks(store, neither).await.is_empty());
    let scoped = ChangeQuery { objects: vec![("catalogs".into(), "42".into())], org: Some(f.org_a), ..everything() };
    assert!(pks(store, scoped).await.is_empty(), "another organisation's object rows stay hidden");
}

/// `since` is inclusive and `until` exclusive, to the microsecond, with sub-microsecond bounds rounded correctly.
pub async fn audit_since_until_bounds(store: &dyn Store) {
    let f = fixture(store).await;
    let pivot = f.all[6].clone();
    let at = pivot.at;
    let nano = Duration::nanoseconds(1);

    let since = pks(store, ChangeQuery { since: Some(at), ..everything() }).await;
    assert!(since.contains(&pivot.pk), "since is inclusive");
    assert_eq!(since, expected(&f, |c| c.at >= at));
    let after = pks(store, ChangeQuery { since: Some(at + nano), ..everything() }).await;
    assert!(!after.contains(&pivot.pk), "a bound just after the row excludes it");
    assert_eq!(after, expected(&f, |c| c.at > at));

    let until = pks(store, ChangeQuery { until: Some(at), ..everything() }).await;
    assert!(!until.contains(&pivot.pk), "until is exclusive");
    assert_eq!(until, expected(&f, |c| c.at < at));
    let through = pks(store, ChangeQuery { until: Some(at + nano), ..everything() }).await;
    assert!(through.contains(&pivot.pk), "a bound just after the row includes it");
    assert_eq!(through, expected(&f, |c| c.at <= at));

    let exact = pks(store, ChangeQuery { since: Some(at), until: Some(at + Duration::microseconds(1)), ..everything() }).await;
    assert_eq!(exact, expected(&f, |c| c.at == at));
    assert!(exact.contains(&pivot.pk));
    assert!(pks(store, ChangeQuery { since: Some(at), until: Some(at), ..everything() }).await.is_empty());

    let first = f.all[0].at;
    let last = f.all[f.all.len() - 1].at;
    let window = ChangeQuery { since: Some(first), until: Some(last + Duration::seconds(1)), ..everything() };
    assert_eq!(pks(store, window).await, expected(&f, |_| true));
    assert!(pks(store, ChangeQuery { since: Some(last + Duration::seconds(1)), ..everything() }).await.is_empty());
    assert!(pks(store, ChangeQuery { until: Some(first - Duration::seconds(1)), ..everything() }).await.is_empty());
    let a_since = pks(store, ChangeQuery { since: Some(at), org: Some(f.org_b), ..everything() }).await;
    assert_eq!(a_since, expected(&f, |c| c.at >= at && c.actor.as_ref().is_some_and(|(a, _)| *a == f.bob.pk)));
}

/// Newest first by default; `pk`, `at` and `revision` either way with a `pk` tiebreak; pages cover every row once.
pub async fn audit_ordering_and_paging(store: &dyn Store) {
    let f = fixture(store).await;
    let order = |ordering: Vec<(ChangeOrder, bool)>| ChangeQuery { ordering, limit: 1000, ..Default::default() };
    let ascending: Vec<i64> = f.all.iter().map(|c| c.pk).collect();
    let descending: Vec<i64> = ascending.iter().rev().copied().collect();

    assert_eq!(pks(store, ChangeQuery { limit: 1000, ..Default::default() }).await, descending, "newest first by default");
    assert_eq!(pks(store, order(vec![(ChangeOrder::Pk, false)])).await, ascending);
    assert_eq!(pks(store, order(vec![(ChangeOrder::Pk, true)])).await, descending);

    let mut by_at = f.all.clone();
    by_at.sort_by_key(|c| (c.at, c.pk));
    let at_asc: Vec<i64> = by_at.iter().map(|c| c.pk).collect();
    assert_eq!(pks(store, order(vec![(ChangeOrder::At, false)])).await, at_asc);
    let at_desc: Vec<i64> = at_asc.iter().rev().copied().collect();
    assert_eq!(pks(store, order(vec![(ChangeOrder::At, true)])).await, at_desc);

    // Audit-only rows have no revision: they come first ascending (ties by key) and last descending.
    let mut by_revision = f.all.clone();
    by_revision.sort_by_key(|c| (c.revision, c.pk));
    let revision_asc: Vec<i64> = by_revision.iter().map(|c| c.pk).collect();
    assert_eq!(pks(store, order(vec![(ChangeOrder::Revision, false)])).await, revision_asc);
    assert_eq!(f.all.iter().filter(|c| c.revision.is_none()).count(), 4);
    let revision_desc: Vec<i64> = revision_asc.iter().rev().copied().collect();
    assert_eq!(pks(store, order(vec![(ChangeOrder::Revision, true)])).await, revision_desc);
    // A second key orders the ties of the first.
    let mut by_revision_then_desc = f.all.clone();
    by_revision_then_desc.sort_by(|a, b| a.revision.cmp(&b.revision).then(b.pk.cmp(&a.pk)));
    let mixed: Vec<i64> = by_revision_then_desc.iter().map(|c| c.pk).collect();
    assert_eq!(pks(store, order(vec![(ChangeOrder::Revision, false), (ChangeOrder::Pk, true)])).await, mixed);

    // Pages of 4, newest first: each row once, the count always the total.
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = store.list_changes(&ChangeQuery { offset, limit: 4, ..Default::default() }).await.unwrap();
        assert_eq!(page.count, f.all.len() as i64);
        if page.items.is_empty() {
            break;
        }
        assert!(page.items.len() <= 4);
        seen.extend(page.items.iter().map(|c| c.pk));
        offset += 4;
    }
    assert_eq!(seen, descending);
    assert_eq!(offset, 16, "four pages of rows, then an empty one");
    let past = store.list_changes(&ChangeQuery { offset: 100, limit: 4, ..Default::default() }).await.unwrap();
    assert_eq!((past.count, past.items.len()), (f.all.len() as i64, 0));

    // Paging composes with filters and organisation scoping.
    let b_rows = pks(store, ChangeQuery { org: Some(f.org_b), ..everything() }).await;
    let first = store.list_changes(&ChangeQuery { org: Some(f.org_b), offset: 0, limit: 2, ..Default::default() }).await.unwrap();
    let rest = store.list_changes(&ChangeQuery { org: Some(f.org_b), offset: 2, limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!((first.count, rest.count), (7, 7));
    let paged: Vec<i64> = first.items.iter().chain(rest.items.iter()).map(|c| c.pk).collect();
    assert_eq!(paged, b_rows.iter().rev().copied().collect::<Vec<_>>());

    // An actor unknown to the store (or the server itself) has no organisation: only unscoped queries see the row.
    let ghost = WriteCtx { actor: Some((9999, "ghost".to_string())), ..WriteCtx::default() };
    let event = Change::LoggedOut { user: 9999 };
    store.audit(&ghost, event).await.unwrap();
    let ghost_rows = pks(store, ChangeQuery { actors: vec![9999], ..everything() }).await;
    assert_eq!(ghost_rows.len(), 1);
    for org in [f.org_a, f.org_b] {
        let scoped = pks(store, ChangeQuery { org: Some(org), ..everything() }).await;
        assert!(!scoped.contains(&ghost_rows[0]), "a row without an organisation is hidden from org {org}");
    }
}
