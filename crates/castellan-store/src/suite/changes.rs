//! Schema migration, the revision counter, the change log, audit events and the server key.

use castellan_core::model::UserChanges;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{changes_after, ctx, expect_no_change, expect_one_change, make_org, make_user, mark, new_user, set_avatar};
use crate::{Store, WriteCtx};
use castellan_core::change::Change;

/// Migrating an up-to-date store again changes nothing and leaves it usable.
pub async fn migrate_is_idempotent(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let user = make_user(store, new_user(org.pk, "alice")).await;
    let before = mark(store).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    expect_no_change(store, before).await;
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert_eq!(store.get_user(user.pk).await.unwrap(), user);
    assert_eq!(store.org_by_slug("acme").await.unwrap(), org);
}

/// Each directory write advances the revision by one and appends one row describing it.
pub async fn writes_advance_revision_and_log_once(store: &dyn Store) {
    let started = OffsetDateTime::now_utc();

    let m = mark(store).await;
    let (org, rev) = store.create_org(&ctx(), "Acme", "acme", "").await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()), ("create", "orgs", org.pk.to_string()));
    assert!(row.at >= started - Duration::seconds(5) && row.at <= OffsetDateTime::now_utc() + Duration::seconds(5));

    let m = mark(store).await;
    let (user, rev) = store.create_user(&ctx(), new_user(org.pk, "alice")).await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()), ("create", "users", user.pk.to_string()));
    assert_eq!(row.changes["after"]["username"], "alice");
    assert_eq!(row.changes["after"]["email"], "alice@example.test");

    let m = mark(store).await;
    let changes = UserChanges { first_name: Some("Alicia".into()), ..Default::default() };
    let (_, rev) = store.update_user(&ctx(), user.pk, changes).await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()), ("update", "users", user.pk.to_string()));
    assert_eq!(row.changes["before"]["first_name"], "");
    assert_eq!(row.changes["after"]["first_name"], "Alicia");
    assert!(row.changes["after"].get("username").is_none(), "unchanged fields are not logged: {}", row.changes);

    let m = mark(store).await;
    let rev = set_avatar(store, user.pk, Some(("image/png".into(), vec![1, 2, 3]))).await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()), ("update", "users", user.pk.to_string()));

    let m = mark(store).await;
    let (token, rev) =
        store.create_token(&ctx(), user.pk, super::new_token("ci", "cst_ab12", b"token-hash-1", None)).await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!(
        (row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()),
        ("create", "tokens", token.pk.to_string())
    );
    assert_eq!(row.changes["after"]["name"], "ci");

    let m = mark(store).await;
    let rev = store.delete_token(&ctx(), user.pk, token.pk).await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!(
        (row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()),
        ("delete", "tokens", token.pk.to_string())
    );

    let m = mark(store).await;
    let rev = store.delete_user(&ctx(), user.pk).await.unwrap();
    let row = expect_one_change(store, m, rev).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str(), row.target_pk.clone()), ("delete", "users", user.pk.to_string()));
    assert_eq!(row.changes["before"]["username"], "alice");

    // A write by the server itself has no actor.
    let m = mark(store).await;
    let (_, rev) = store.create_org(&WriteCtx::default(), "Globex", "globex", "").await.unwrap();
    assert_eq!(rev, m.revision + 1);
    let rows = changes_after(store, m.log_pk).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].actor.clone(), rows[0].ip.clone(), rows[0].request_id.clone()), (None, None, None));
    assert_eq!(rows[0].revision, Some(rev));
}

/// An audit event is logged without a revision and does not advance the counter.
pub async fn audit_does_not_advance_revision(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let user = make_user(store, new_user(org.pk, "alice")).await;
    let before = mark(store).await;
    let event = Change::LoggedIn { user: user.pk, session: None };
    store.audit(&ctx(), event).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before.revision);
    let rows = changes_after(store, before.log_pk).await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.revision, None);
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("login", "users"));
    assert_eq!(row.target_pk, user.pk.to_string());
    assert_eq!(row.change, Some(Change::LoggedIn { user: user.pk, session: None }));
    assert_eq!(row.changes["session"], json!(null));
    assert_eq!((row.actor.clone(), row.ip.clone(), row.request_id.clone()), (ctx().actor, ctx().ip, ctx().request_id));

    // The next directory write gets the next revision: audits leave no gap.
    let (_, rev) = store.create_org(&ctx(), "Globex", "globex", "").await.unwrap();
    assert_eq!(rev, before.revision + 1);
}

/// `changes(after, limit)` pages oldest first by key.
pub async fn changes_pages_oldest_first(store: &dyn Store) {
    let start = mark(store).await;
    let mut revisions = Vec::new();
    for slug in ["a-org", "b-org", "c-org", "d-org", "e-org"] {
        revisions.push(store.create_org(&ctx(), slug, slug, "").await.unwrap().1);
    }
    let all = changes_after(store, start.log_pk).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].pk < w[1].pk), "rows come in key order");
    assert_eq!(all.iter().map(|c| c.revision).collect::<Vec<_>>(), revisions.iter().map(|r| Some(*r)).collect::<Vec<_>>());
    assert_eq!(revisions, (1..=5).map(|i| start.revision + i).collect::<Vec<_>>());

    let first = store.changes(start.log_pk, 2).await.unwrap();
    assert_eq!(first, all[..2].to_vec());
    let next = store.changes(first[1].pk, 2).await.unwrap();
    assert_eq!(next, all[2..4].to_vec());
    let last = store.changes(next[1].pk, 2).await.unwrap();
    assert_eq!(last, all[4..].to_vec());
    assert!(store.changes(all[4].pk, 10).await.unwrap().is_empty());
    assert!(store.changes(start.log_pk, 0).await.unwrap().is_empty());
}

/// The first candidate key is stored and returned forever after.
pub async fn server_key_keeps_first_candidate(store: &dyn Store) {
    let first = vec![7u8; 32];
    let second = vec![9u8; 32];
    let before = mark(store).await;
    assert_eq!(store.server_key(&first).await.unwrap(), first);
    assert_eq!(store.server_key(&second).await.unwrap(), first);
    assert_eq!(store.server_key(&first).await.unwrap(), first);
    store.migrate().await.unwrap();
    assert_eq!(store.server_key(&[]).await.unwrap(), first);
    expect_no_change(store, before).await;
}

/// Writes racing each other still get distinct, consecutive revisions, one log row each.
pub async fn concurrent_writes_get_distinct_revisions(store: &dyn Store) {
    let before = mark(store).await;
    let ctx = ctx();
    let org = |slug: &'static str| store.create_org(&ctx, slug, slug, "");
    let audit = |n: u32| store.audit(&ctx, Change::LoggedIn { user: i64::from(n), session: None });
    let (a, b, c, d, e, f, g, h) =
        tokio::join!(org("a-org"), org("b-org"), org("c-org"), org("d-org"), org("e-org"), org("f-org"), audit(1), audit(2));
    g.unwrap();
    h.unwrap();
    let mut revisions: Vec<_> = [a, b, c, d, e, f].into_iter().map(|r| r.unwrap().1).collect();
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=6).map(|i| before.revision + i).collect::<Vec<_>>());
    assert_eq!(store.revision().await.unwrap(), before.revision + 6);
    let rows = changes_after(store, before.log_pk).await;
    assert_eq!(rows.len(), 8);
    let mut logged: Vec<_> = rows.iter().filter_map(|r| r.revision).collect();
    logged.sort_unstable();
    assert_eq!(logged, revisions);
}
