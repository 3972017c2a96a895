//! Users: create, read, update, delete, password history, avatars, uniqueness and references.

use castellan_core::model::{NewUser, UserChanges};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::{
    assert_any_conflict, assert_conflict, assert_not_found, changes_after, ctx, expect_no_change, expect_one_change, hash_for,
    make_org, make_user, mark, new_user, set_avatar,
};
use crate::Store;

/// Every field given to `create_user` comes back from `create_user`, `get_user`, `get_users` and `login_record`.
pub async fn user_round_trip(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let hash = hash_for("Alice.Example", 1);
    let new = NewUser {
        username: "Alice.Example".into(),
        password_hash: Some(hash.clone()),
        email: "Alice@Example.COM".into(),
        first_name: "Alice".into(),
        last_name: "Liddell".into(),
        description: "Fell down a rabbit hole".into(),
        is_active: false,
        is_staff: true,
        is_superuser: true,
        org: org.pk,
        groups: Vec::new(),
    };
    let before = mark(store).await;
    let (user, revision) = store.create_user(&ctx(), new).await.unwrap();
    expect_one_change(store, before, revision).await;

    assert_eq!(user.username, "Alice.Example", "username keeps its case");
    assert_eq!(user.email, "Alice@Example.COM", "email keeps its case");
    assert_eq!(user.first_name, "Alice");
    assert_eq!(user.last_name, "Liddell");
    assert_eq!(user.description, "Fell down a rabbit hole");
    assert!(!user.is_active);
    assert!(user.is_staff);
    assert!(user.is_superuser);
    assert_eq!(user.org, org.pk);
    assert!(user.groups.is_empty());
    assert_eq!(user.phone_number, None);
    assert!(!user.has_avatar);
    assert!(user.has_password);
    assert_eq!(user.last_login, None);
    let now = OffsetDateTime::now_utc();
    assert!((now - user.date_joined).abs() < Duration::minutes(1), "date_joined {} is not now", user.date_joined);
    assert!(!format!("{user:?}").contains(&hash), "a user never carries its hash");

    assert_eq!(store.get_user(user.pk).await.unwrap(), user);
    assert_eq!(store.get_users(&[user.pk]).await.unwrap(), vec![user.clone()]);
    assert_eq!(store.count_users().await.unwrap(), 1);

    let record = store.login_record("alice.example").await.unwrap().expect("case-insensitive login lookup");
    assert_eq!(record.user, user);
    assert_eq!(record.password_hash.as_deref(), Some(hash.as_str()));
    let record = store.login_record("ALICE.EXAMPLE").await.unwrap().expect("case-insensitive login lookup");
    assert_eq!(record.user.pk, user.pk);
    assert!(store.login_record("alice").await.unwrap().is_none());

    assert_not_found(store.get_user(user.pk + 1000).await);
}

/// A user created without a hash has `has_password == false` and no hash anywhere; setting one flips it.
pub async fn user_without_password(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let user = make_user(store, NewUser { password_hash: None, ..new_user(org.pk, "svc-robot") }).await;
    assert!(!user.has_password);
    assert!(!store.get_user(user.pk).await.unwrap().has_password);
    let record = store.login_record("svc-robot").await.unwrap().unwrap();
    assert_eq!(record.password_hash, None);
    assert!(store.password_hashes(user.pk, 10).await.unwrap().is_empty());

    let hash = hash_for("svc-robot", 1);
    let changes = UserChanges { password_hash: Some(hash.clone()), ..Default::default() };
    let (updated, _) = store.update_user(&ctx(), user.pk, changes).await.unwrap();
    assert!(updated.has_password);
    assert_eq!(store.password_hashes(user.pk, 10).await.unwrap(), vec![hash.clone()]);
    assert_eq!(store.login_record("svc-robot").await.unwrap().unwrap().password_hash, Some(hash));
}

/// Usernames are unique regardless of case, on create and on rename; refusals change nothing.
pub async fn username_unique_case_insensitive(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let other_org = make_org(store, "globex").await;
    let alice = make_user(store, new_user(org.pk, "Alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;

    let before = mark(store).await;
    assert_conflict(store.create_user(&ctx(), new_user(org.pk, "alice")).await, "username");
    assert_conflict(store.create_user(&ctx(), new_user(org.pk, "ALICE")).await, "username");
    assert_conflict(store.create_user(&ctx(), new_user(other_org.pk, "aLiCe")).await, "username");
    let rename = UserChanges { username: Some("ALICE".into()), first_name: Some("Bobby".into()), ..Default::default() };
    assert_conflict(store.update_user(&ctx(), bob.pk, rename).await, "username");
    expect_no_change(store, before).await;
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert_eq!(store.get_user(bob.pk).await.unwrap(), bob, "a refused update changes nothing");

    // Changing the case of one's own name is not a conflict.
    let recase = UserChanges { username: Some("ALICE".into()), ..Default::default() };
    let (renamed, _) = store.update_user(&ctx(), alice.pk, recase).await.unwrap();
    assert_eq!(renamed.username, "ALICE");
    assert_eq!(store.login_record("alice").await.unwrap().unwrap().user.pk, alice.pk);

    // The old spelling is free again once renamed away.
    let away = UserChanges { username: Some("alice2".into()), ..Default::default() };
    store.update_user(&ctx(), alice.pk, away).await.unwrap();
    make_user(store, new_user(org.pk, "Alice")).await;
}

/// A user of an organisation that does not exist is refused as a conflict.
pub async fn unknown_org_is_refused(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let before = mark(store).await;
    assert_any_conflict(store.create_user(&ctx(), new_user(org.pk + 1000, "ghost")).await);
    expect_no_change(store, before).await;
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert!(store.login_record("ghost").await.unwrap().is_none());
}

/// Memberships in groups that do not exist are `Conflict{groups}`, on create and on update, and change nothing.
pub async fn unknown_groups_are_refused(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let before = mark(store).await;
    let with_groups = NewUser { groups: vec![4242], ..new_user(org.pk, "alice") };
    assert_conflict(store.create_user(&ctx(), with_groups).await, "groups");
    expect_no_change(store, before).await;
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert!(store.login_record("alice").await.unwrap().is_none());

    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let before = mark(store).await;
    let changes = UserChanges { first_name: Some("Alicia".into()), groups: Some(vec![4242, 4243]), ..Default::default() };
    assert_conflict(store.update_user(&ctx(), alice.pk, changes).await, "groups");
    expect_no_change(store, before).await;
    assert_eq!(store.get_user(alice.pk).await.unwrap(), alice, "a refused update changes nothing");

    // An empty set of groups is always valid.
    let (same, _) =
        store.update_user(&ctx(), alice.pk, UserChanges { groups: Some(Vec::new()), ..Default::default() }).await.unwrap();
    assert!(same.groups.is_empty());

    assert!(store.existing_groups(org.pk, &[4242, 4243]).await.unwrap().is_empty());
    assert!(store.existing_groups(org.pk, &[]).await.unwrap().is_empty());
    assert!(store.groups_brief(&[4242]).await.unwrap().is_empty());
    assert!(store.groups_brief(&[]).await.unwrap().is_empty());
}

/// `update_user` changes only the given fields; `Some(None)` clears the phone number.
pub async fn update_user_partial(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let new = NewUser { first_name: "Alice".into(), last_name: "Liddell".into(), ..new_user(org.pk, "alice") };
    let alice = make_user(store, new).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;

    let before = mark(store).await;
    let (after, revision) = store
        .update_user(&ctx(), alice.pk, UserChanges { first_name: Some("Alicia".into()), ..Default::default() })
        .await
        .unwrap();
    let row = expect_one_change(store, before, revision).await;
    let mut expected = alice.clone();
    expected.first_name = "Alicia".into();
    assert_eq!(after, expected);
    assert_eq!(store.get_user(alice.pk).await.unwrap(), expected);
    assert_eq!(row.changes["before"]["first_name"], "Alice");
    assert_eq!(row.changes["after"]["first_name"], "Alicia");
    assert!(row.changes["after"].get("last_name").is_none(), "unchanged fields are not logged: {}", row.changes);

    let changes = UserChanges {
        email: Some("Alicia@Wonder.Land".into()),
        last_name: Some("Pleasance".into()),
        description: Some("Grown up".into()),
        is_active: Some(false),
        is_staff: Some(true),
        is_superuser: Some(true),
        phone_number: Some(Some("+15551234567".into())),
        ..Default::default()
    };
    let (after, _) = store.update_user(&ctx(), alice.pk, changes).await.unwrap();
    expected.email = "Alicia@Wonder.Land".into();
    expected.last_name = "Pleasance".into();
    expected.description = "Grown up".into();
    expected.is_active = false;
    expected.is_staff = true;
    expected.is_superuser = true;
    expected.phone_number = Some("+15551234567".into());
    assert_eq!(after, expected);
    assert_eq!(store.get_user(alice.pk).await.unwrap(), expected);

    let (after, _) =
        store.update_user(&ctx(), alice.pk, UserChanges { phone_number: Some(None), ..Default::default() }).await.unwrap();
    expected.phone_number = None;
    assert_eq!(after, expected);

    let (after, _) =
        store.update_user(&ctx(), alice.pk, UserChanges { username: Some("alicia".into()), ..Default::default() }).await.unwrap();
    expected.username = "alicia".into();
    assert_eq!(after, expected);
    assert!(store.login_record("alice").await.unwrap().is_none());
    assert_eq!(store.login_record("Alicia").await.unwrap().unwrap().user, expected);

    assert_eq!(store.get_user(bob.pk).await.unwrap(), bob, "other users are untouched");

    let before = mark(store).await;
    assert_not_found(store.update_user(&ctx(), bob.pk + 1000, UserChanges::default()).await);
    expect_no_change(store, before).await;
}

/// `password_hashes` lists the current hash then older ones, newest first, at most `n`.
pub async fn password_history_newest_first(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let h0 = hash_for("alice", 0);
    assert_eq!(store.password_hashes(alice.pk, 10).await.unwrap(), vec![h0.clone()]);

    let (h1, h2, h3) = (hash_for("alice", 1), hash_for("alice", 2), hash_for("alice", 3));
    for h in [&h1, &h2, &h3] {
        let changes = UserChanges { password_hash: Some(h.clone()), ..Default::default() };
        store.update_user(&ctx(), alice.pk, changes).await.unwrap();
    }
    // Updates without a new hash leave the history alone.
    store.update_user(&ctx(), alice.pk, UserChanges { first_name: Some("A".into()), ..Default::default() }).await.unwrap();

    let all = vec![h3.clone(), h2.clone(), h1.clone(), h0.clone()];
    assert_eq!(store.password_hashes(alice.pk, 10).await.unwrap(), all);
    assert_eq!(store.password_hashes(alice.pk, 4).await.unwrap(), all);
    assert_eq!(store.password_hashes(alice.pk, 2).await.unwrap(), vec![h3.clone(), h2]);
    assert_eq!(store.password_hashes(alice.pk, 1).await.unwrap(), vec![h3.clone()]);
    assert!(store.password_hashes(alice.pk, 0).await.unwrap().is_empty());
    assert_eq!(store.login_record("alice").await.unwrap().unwrap().password_hash, Some(h3));

    assert_eq!(store.password_hashes(bob.pk, 10).await.unwrap(), vec![hash_for("bob", 0)], "history is per user");
    assert!(store.password_hashes(bob.pk + 1000, 10).await.unwrap().is_empty());
}

/// No change-log row ever contains a password hash or a credential secret.
pub async fn change_log_holds_no_secrets(store: &dyn Store) {
    let start = mark(store).await;
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let before = mark(store).await;
    let new_hash = hash_for("alice", 1);
    let changes = UserChanges { password_hash: Some(new_hash.clone()), ..Default::default() };
    let (_, revision) = store.update_user(&ctx(), alice.pk, changes).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert!(row.changes["after"].get("password").is_some(), "a password change is recorded: {}", row.changes);

    store.create_token(&ctx(), alice.pk, super::new_token("ci", "cst_ab12", b"SECRETTOKENHASH", None)).await.unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    store
        .create_session(alice.pk, b"SECRETSESSIONHASH", "csrf-SECRET", now, now + Duration::hours(1), "192.0.2.1", "ua")
        .await
        .unwrap();
    store.data_put(alice.pk, "theme", &json!("dark"), 1000).await.unwrap();
    store.delete_user(&ctx(), alice.pk).await.unwrap();

    let rows = changes_after(store, start.log_pk).await;
    assert_eq!(rows.len(), 5, "org, user, update, token, delete: {rows:#?}");
    for row in rows {
        let text = row.changes.to_string();
        for secret in
            ["password_hash", "HASHSECRET", "$argon2", "SECRETTOKENHASH", "SECRETSESSIONHASH", "csrf-SECRET", "secret_hash"]
        {
            assert!(!text.contains(secret), "change-log row holds {secret:?}: {text}");
        }
    }
}

/// Deleting a user removes it with its sessions, tokens, data, history and avatar; a second delete is `NotFound`.
pub async fn delete_user_removes_everything(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    let later = now + Duration::hours(1);
    for (user, tag) in [(alice.pk, "a"), (bob.pk, "b")] {
        store.create_session(user, format!("session-{tag}").as_bytes(), "csrf", now, later, "192.0.2.1", "ua").await.unwrap();
        store
            .create_token(&ctx(), user, super::new_token("ci", "cst_1234", format!("token-{tag}").as_bytes(), None))
            .await
            .unwrap();
        store.data_put(user, "theme", &json!("dark"), 1000).await.unwrap();
        set_avatar(store, user, Some(("image/png".into(), vec![1, 2, 3]))).await.unwrap();
        let changes = UserChanges { password_hash: Some(hash_for(tag, 9)), ..Default::default() };
        store.update_user(&ctx(), user, changes).await.unwrap();
    }

    let before = mark(store).await;
    let revision = store.delete_user(&ctx(), alice.pk).await.unwrap();
    expect_one_change(store, before, revision).await;

    assert_not_found(store.get_user(alice.pk).await);
    assert!(store.get_users(&[alice.pk]).await.unwrap().is_empty());
    assert!(store.login_record("alice").await.unwrap().is_none());
    assert!(store.list_sessions(alice.pk).await.unwrap().is_empty());
    assert!(store.list_tokens(alice.pk).await.unwrap().is_empty());
    assert!(store.credential_by_hash(b"session-a").await.unwrap().is_none());
    assert!(store.credential_by_hash(b"token-a").await.unwrap().is_none());
    assert!(store.data_all(alice.pk).await.unwrap().is_empty());
    assert_eq!(store.data_get(alice.pk, "theme").await.unwrap(), None);
    assert!(store.password_hashes(alice.pk, 10).await.unwrap().is_empty());
    assert_not_found(store.get_avatar(alice.pk).await);
    assert_eq!(store.count_users().await.unwrap(), 1);

    let before = mark(store).await;
    assert_not_found(store.delete_user(&ctx(), alice.pk).await);
    expect_no_change(store, before).await;

    // Bob keeps everything.
    assert_eq!(store.list_sessions(bob.pk).await.unwrap().len(), 1);
    assert_eq!(store.list_tokens(bob.pk).await.unwrap().len(), 1);
    assert!(store.credential_by_hash(b"session-b").await.unwrap().is_some());
    assert!(store.credential_by_hash(b"token-b").await.unwrap().is_some());
    assert_eq!(store.data_get(bob.pk, "theme").await.unwrap(), Some(json!("dark")));
    assert_eq!(store.password_hashes(bob.pk, 10).await.unwrap().len(), 2);
    assert!(store.get_avatar(bob.pk).await.unwrap().is_some());
    assert_eq!(store.get_user(bob.pk).await.unwrap().username, bob.username);
}

/// An avatar is stored, read back, reflected in `has_avatar`, and cleared; unknown users are `NotFound`.
pub async fn avatar_set_get_clear(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    assert_eq!(store.get_avatar(alice.pk).await.unwrap(), None);

    let image = ("image/png".to_string(), vec![0x89, b'P', b'N', b'G', 0, 255]);
    let before = mark(store).await;
    let revision = set_avatar(store, alice.pk, Some(image.clone())).await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("update", "users"));
    assert_eq!(row.changes["after"]["avatar"], "image/png", "the change log names the type, never the bytes");
    assert_eq!(store.get_avatar(alice.pk).await.unwrap(), Some(image));
    let with = store.get_user(alice.pk).await.unwrap();
    assert!(with.has_avatar);
    let mut expected = alice.clone();
    expected.has_avatar = true;
    assert_eq!(with, expected);

    set_avatar(store, alice.pk, None).await.unwrap();
    assert_eq!(store.get_avatar(alice.pk).await.unwrap(), None);
    assert_eq!(store.get_user(alice.pk).await.unwrap(), alice);

    let before = mark(store).await;
    assert_not_found(set_avatar(store, alice.pk + 1000, None).await);
    expect_no_change(store, before).await;
    assert_not_found(store.get_avatar(alice.pk + 1000).await);
}

/// `set_last_login` records the time without advancing the revision or logging.
pub async fn set_last_login_is_audit_only(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let at = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap() + Duration::microseconds(123_456);
    let before = mark(store).await;
    store.set_last_login(alice.pk, at).await.unwrap();
    expect_no_change(store, before).await;
    let user = store.get_user(alice.pk).await.unwrap();
    assert_eq!(user.last_login, Some(at));
    let later = at + Duration::days(1);
    store.set_last_login(alice.pk, later).await.unwrap();
    assert_eq!(store.get_user(alice.pk).await.unwrap().last_login, Some(later));
}
