//! Sessions and API tokens: create, find by secret hash, list, touch, delete, end.

use castellan_core::change::Change;
use time::{Duration, OffsetDateTime};

use super::{
    assert_any_conflict, assert_not_found, changes_after, ctx, expect_no_change, expect_one_change, make_org, make_user, mark,
    new_user,
};
use crate::{Credential, Store};

/// A fixed instant with whole seconds, so values survive microsecond storage unchanged.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

/// Sessions are stored as given, found by hash, listed newest first, touched, and deleted only by their owner.
pub async fn sessions_create_find_list_delete(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let (now, expires) = (t0(), t0() + Duration::hours(12));

    let s1 = store.create_session(alice.pk, b"hash-1", "csrf-1", now, expires, "192.0.2.1", "Firefox").await.unwrap();
    assert_eq!(s1.user, alice.pk);
    assert_eq!(s1.csrf_token, "csrf-1");
    assert_eq!((s1.created, s1.last_used, s1.expires_at), (now, now, expires));
    assert_eq!((s1.ip.as_str(), s1.user_agent.as_str()), ("192.0.2.1", "Firefox"));
    let s2 = store.create_session(alice.pk, b"hash-2", "csrf-2", now, expires, "2001:db8::1", "curl").await.unwrap();
    let sb = store.create_session(bob.pk, b"hash-b", "csrf-b", now, expires, "192.0.2.2", "Chrome").await.unwrap();
    assert_ne!(s1.pk, s2.pk);

    match store.credential_by_hash(b"hash-1").await.unwrap() {
        Some(Credential::Session(found)) => assert_eq!(found, s1),
        other => panic!("expected session, got {other:?}"),
    }
    assert!(store.credential_by_hash(b"hash-unknown").await.unwrap().is_none());
    assert!(store.credential_by_hash(b"").await.unwrap().is_none());

    assert_any_conflict(store.create_session(bob.pk, b"hash-1", "x", now, expires, "", "").await);
    assert_any_conflict(store.create_session(bob.pk + 1000, b"hash-9", "x", now, expires, "", "").await);

    assert_eq!(store.list_sessions(alice.pk).await.unwrap(), vec![s2.clone(), s1.clone()], "newest first");
    assert_eq!(store.list_sessions(bob.pk).await.unwrap(), vec![sb.clone()]);
    assert!(store.list_sessions(bob.pk + 1000).await.unwrap().is_empty());

    let used = now + Duration::minutes(5);
    store.touch_credential(&Credential::Session(s1.clone()), used).await.unwrap();
    let mut touched = s1.clone();
    touched.last_used = used;
    assert_eq!(store.list_sessions(alice.pk).await.unwrap(), vec![s2.clone(), touched.clone()]);

    // Bob cannot end Alice's session.
    assert_not_found(store.delete_session(bob.pk, s1.pk).await);
    assert!(store.credential_by_hash(b"hash-1").await.unwrap().is_some());

    store.delete_session(alice.pk, s1.pk).await.unwrap();
    assert!(store.credential_by_hash(b"hash-1").await.unwrap().is_none());
    assert_eq!(store.list_sessions(alice.pk).await.unwrap(), vec![s2]);
    assert_not_found(store.delete_session(alice.pk, s1.pk).await);
    assert_eq!(store.list_sessions(bob.pk).await.unwrap(), vec![sb]);
}

/// Sessions are audit-only: creating, touching and ending them neither advances the revision nor logs.
pub async fn sessions_do_not_advance_revision(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let before = mark(store).await;
    let s = store.create_session(alice.pk, b"hash-1", "csrf", t0(), t0() + Duration::hours(1), "", "").await.unwrap();
    store.touch_credential(&Credential::Session(s.clone()), t0() + Duration::minutes(1)).await.unwrap();
    store.delete_session(alice.pk, s.pk).await.unwrap();
    store.create_session(alice.pk, b"hash-2", "csrf", t0(), t0() + Duration::hours(1), "", "").await.unwrap();
    expect_no_change(store, before).await;
    // Ending them is logged (so every server drops them from its cache) without advancing the revision.
    store.end_credentials(&ctx(), alice.pk, None, false).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before.revision);
    let rows = changes_after(store, before.log_pk).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].action.as_str(), rows[0].revision), ("logout", None));
    assert_eq!(rows[0].change, Some(Change::SessionsRevoked { user: alice.pk, tokens: false }));
}

/// `end_credentials` ends every session of the user but the kept one, and tokens only when asked.
pub async fn end_credentials_keeps_the_kept_session(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let (now, expires) = (t0(), t0() + Duration::hours(1));
    let mut alice_sessions = Vec::new();
    for i in 0..3 {
        let hash = format!("alice-{i}");
        alice_sessions.push(store.create_session(alice.pk, hash.as_bytes(), "c", now, expires, "", "").await.unwrap());
    }
    let bob_session = store.create_session(bob.pk, b"bob-0", "c", now, expires, "", "").await.unwrap();
    let (alice_token, _) =
        store.create_token(&ctx(), alice.pk, super::new_token("ci", "cst_a", b"alice-token", None)).await.unwrap();
    let (bob_token, _) = store.create_token(&ctx(), bob.pk, super::new_token("ci", "cst_b", b"bob-token", None)).await.unwrap();

    let kept = alice_sessions[1].clone();
    store.end_credentials(&ctx(), alice.pk, Some(kept.pk), false).await.unwrap();
    assert_eq!(store.list_sessions(alice.pk).await.unwrap(), vec![kept.clone()]);
    assert_eq!(store.list_tokens(alice.pk).await.unwrap(), vec![alice_token.clone()], "tokens stay unless asked");

    // Keeping another user's session keeps nothing of Alice's.
    store.create_session(alice.pk, b"alice-3", "c", now, expires, "", "").await.unwrap();
    store.end_credentials(&ctx(), alice.pk, Some(bob_session.pk), true).await.unwrap();
    assert!(store.list_sessions(alice.pk).await.unwrap().is_empty());
    assert!(store.list_tokens(alice.pk).await.unwrap().is_empty());
    assert!(store.credential_by_hash(b"alice-token").await.unwrap().is_none());

    assert_eq!(store.list_sessions(bob.pk).await.unwrap(), vec![bob_session]);
    assert_eq!(store.list_tokens(bob.pk).await.unwrap(), vec![bob_token.clone()]);

    store.end_credentials(&ctx(), bob.pk, None, true).await.unwrap();
    assert!(store.list_sessions(bob.pk).await.unwrap().is_empty());
    assert!(store.list_tokens(bob.pk).await.unwrap().is_empty());
    // Nothing left to end is not an error.
    store.end_credentials(&ctx(), bob.pk, None, true).await.unwrap();
}

/// Tokens are stored as given, found by hash, listed newest first, touched, and revoked only by their owner.
pub async fn tokens_create_find_list_delete(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let expires = t0() + Duration::days(30);

    let started = OffsetDateTime::now_utc();
    let before = mark(store).await;
    let (t1, rev) =
        store.create_token(&ctx(), alice.pk, super::new_token("deploy", "cst_ab12", b"token-1", Some(expires))).await.unwrap();
    expect_one_change(store, before, rev).await;
    assert_eq!((t1.user, t1.name.as_str(), t1.prefix.as_str()), (alice.pk, "deploy", "cst_ab12"));
    assert_eq!((t1.expires_at, t1.last_used), (Some(expires), None));
    assert!((t1.created_date - started).abs() < Duration::minutes(1), "created_date {} is not now", t1.created_date);
    let mut scoped = super::new_token("laptop", "cst_cd34", b"token-2", None);
    let scopes = castellan_core::permission::ModulePermissions::parse_names(&serde_json::json!(["users.read", "m.full"]), "p");
    scoped.permissions = Some(scopes.unwrap());
    let (t2, _) = store.create_token(&ctx(), alice.pk, scoped.clone()).await.unwrap();
    assert_eq!((t2.expires_at, &t2.permissions), (None, &scoped.permissions));
    assert_eq!(t1.permissions, None, "a token without scopes carries all of its owner's holdings");
    match store.credential_by_hash(b"token-2").await.unwrap() {
        Some(Credential::Token(found)) => assert_eq!(found.permissions, scoped.permissions),
        other => panic!("expected token, got {other:?}"),
    }

    match store.credential_by_hash(b"token-1").await.unwrap() {
        Some(Credential::Token(found)) => assert_eq!(found, t1),
        other => panic!("expected token, got {other:?}"),
    }
    assert_eq!(store.list_tokens(alice.pk).await.unwrap(), vec![t2.clone(), t1.clone()], "newest first");
    assert!(store.list_tokens(bob.pk).await.unwrap().is_empty());

    let before = mark(store).await;
    assert_any_conflict(store.create_token(&ctx(), bob.pk, super::new_token("dup", "cst_x", b"token-1", None)).await);
    assert_any_conflict(store.create_token(&ctx(), bob.pk + 1000, super::new_token("ghost", "cst_x", b"token-9", None)).await);
    expect_no_change(store, before).await;

    let used = t0() + Duration::minutes(3);
    let before = mark(store).await;
    store.touch_credential(&Credential::Token(t1.clone()), used).await.unwrap();
    expect_no_change(store, before).await;
    match store.credential_by_hash(b"token-1").await.unwrap() {
        Some(Credential::Token(found)) => assert_eq!(found.last_used, Some(used)),
        other => panic!("expected token, got {other:?}"),
    }

    let before = mark(store).await;
    assert_not_found(store.delete_token(&ctx(), bob.pk, t1.pk).await);
    expect_no_change(store, before).await;
    assert!(store.credential_by_hash(b"token-1").await.unwrap().is_some());

    let before = mark(store).await;
    let rev = store.delete_token(&ctx(), alice.pk, t1.pk).await.unwrap();
    let row = expect_one_change(store, before, rev).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("delete", "tokens"));
    assert!(store.credential_by_hash(b"token-1").await.unwrap().is_none());
    assert_eq!(store.list_tokens(alice.pk).await.unwrap(), vec![t2]);

    let before = mark(store).await;
    assert_not_found(store.delete_token(&ctx(), alice.pk, t1.pk).await);
    expect_no_change(store, before).await;
    assert!(changes_after(store, before.log_pk).await.is_empty());
}
