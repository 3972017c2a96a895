//! The per-user key/value store: put, get, list, delete and the per-user size limit.

use serde_json::{Value, json};

use super::{assert_not_found, expect_no_change, make_org, make_user, mark, new_user};
use crate::{Result, Store, StoreError};

/// A JSON string whose serialised form is exactly `bytes` long (the quotes count).
fn sized(fill: char, bytes: usize) -> Value {
    let text: String = std::iter::repeat_n(fill, bytes - 2).collect();
    let value = Value::String(text);
    assert_eq!(value.to_string().len(), bytes);
    value
}

/// Asserts `result` is `LimitExceeded`.
#[track_caller]
fn assert_limit<T: std::fmt::Debug>(result: Result<T>) {
    match result {
        Err(StoreError::LimitExceeded(_)) => {}
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

/// Put reports whether the key was new, get and list read back, delete removes; none of it touches the revision.
pub async fn user_data_put_get_delete(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let before = mark(store).await;

    assert!(store.data_all(alice.pk).await.unwrap().is_empty());
    assert_eq!(store.data_get(alice.pk, "theme").await.unwrap(), None);

    assert!(store.data_put(alice.pk, "theme", &json!("dark"), 10_000).await.unwrap(), "a new key");
    assert!(!store.data_put(alice.pk, "theme", &json!("light"), 10_000).await.unwrap(), "a replaced key");
    let nested = json!({"columns": ["username", "email"], "page_size": 50, "dense": true, "note": null});
    assert!(store.data_put(alice.pk, "admin.users.table", &nested, 10_000).await.unwrap());
    assert!(store.data_put(alice.pk, "a", &json!(1.5), 10_000).await.unwrap());
    assert!(store.data_put(bob.pk, "theme", &json!("solarized"), 10_000).await.unwrap(), "keys are per user");

    assert_eq!(store.data_get(alice.pk, "theme").await.unwrap(), Some(json!("light")));
    assert_eq!(store.data_get(alice.pk, "admin.users.table").await.unwrap(), Some(nested.clone()));
    assert_eq!(store.data_get(alice.pk, "THEME").await.unwrap(), None, "keys are case-sensitive");
    assert_eq!(
        store.data_all(alice.pk).await.unwrap(),
        vec![("a".to_string(), json!(1.5)), ("admin.users.table".to_string(), nested), ("theme".to_string(), json!("light"))],
        "sorted by key"
    );
    assert_eq!(store.data_all(bob.pk).await.unwrap(), vec![("theme".to_string(), json!("solarized"))]);

    store.data_delete(alice.pk, "theme").await.unwrap();
    assert_eq!(store.data_get(alice.pk, "theme").await.unwrap(), None);
    assert_not_found(store.data_delete(alice.pk, "theme").await);
    assert_not_found(store.data_delete(alice.pk, "never-set").await);
    assert_not_found(store.data_delete(bob.pk, "a").await);
    assert_eq!(store.data_get(bob.pk, "theme").await.unwrap(), Some(json!("solarized")));
    assert_eq!(store.data_all(alice.pk).await.unwrap().len(), 2);

    // User data is audit-only: the server logs it through `audit`, the store does not.
    expect_no_change(store, before).await;
}

/// Past `max_total` serialised bytes per user a put is `LimitExceeded` and nothing changes; replacing frees the old size.
pub async fn user_data_limit_refuses_and_changes_nothing(store: &dyn Store) {
    let org = make_org(store, "acme").await;
    let alice = make_user(store, new_user(org.pk, "alice")).await;
    let bob = make_user(store, new_user(org.pk, "bob")).await;
    let max = 100;

    assert!(store.data_put(alice.pk, "a", &sized('a', 40), max).await.unwrap());
    assert!(store.data_put(alice.pk, "b", &sized('b', 40), max).await.unwrap());
    let before = store.data_all(alice.pk).await.unwrap();

    // 40 + 40 + 22 > 100: refused, and the key does not appear.
    assert_limit(store.data_put(alice.pk, "c", &sized('c', 22), max).await);
    assert_eq!(store.data_get(alice.pk, "c").await.unwrap(), None);
    assert_eq!(store.data_all(alice.pk).await.unwrap(), before);

    // Replacing counts the new value instead of the old one: 40 + 50 fits, 40 + 62 does not.
    assert!(!store.data_put(alice.pk, "b", &sized('B', 50), max).await.unwrap());
    assert_limit(store.data_put(alice.pk, "b", &sized('X', 62), max).await);
    assert_eq!(store.data_get(alice.pk, "b").await.unwrap(), Some(sized('B', 50)), "a refused replace keeps the old value");

    // Exactly at the limit is allowed: 40 + 50 + 10 = 100.
    assert!(store.data_put(alice.pk, "c", &sized('c', 10), max).await.unwrap());
    assert_limit(store.data_put(alice.pk, "d", &json!(1), max).await);
    assert_eq!(store.data_all(alice.pk).await.unwrap().len(), 3);

    // Deleting frees room.
    store.data_delete(alice.pk, "a").await.unwrap();
    assert!(store.data_put(alice.pk, "d", &sized('d', 40), max).await.unwrap());

    // The limit is per user: Bob has his own 100 bytes.
    assert!(store.data_put(bob.pk, "a", &sized('z', 100), max).await.unwrap());
    assert_limit(store.data_put(bob.pk, "b", &sized('z', 2), max).await);
    assert_eq!(store.data_all(bob.pk).await.unwrap(), vec![("a".to_string(), sized('z', 100))]);
}
