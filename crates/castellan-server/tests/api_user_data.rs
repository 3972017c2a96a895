//! The per-user data store (API.md §3 "Self service", §10 "User data", §11 revisions; seed 004 `/user/me/data`).

mod common;

use common::{Client, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
const PW: &str = "Passw0rd!";
const VALUE_MAX: usize = 64 * 1024;
const TOTAL_MAX: usize = 1024 * 1024;
// Sixteen string values of 63 KiB (plus their quotes) fit in 1 MiB; seventeen do not.
const _: () = assert!(16 * (63 * 1024 + 2) <= TOTAL_MAX && 17 * (63 * 1024 + 2) > TOTAL_MAX);

async fn regular(server: &TestServer, admin: &Client, username: &str) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({})).await;
    (pk, server.login(username, PW).await)
}

fn key_path(key: &str) -> String {
    format!("/api/v1/active_user/data/{key}/")
}

/// A JSON string value whose serialised form is exactly `len` bytes.
fn string_of_json_len(len: usize) -> Value {
    Value::String("v".repeat(len - 2))
}

#[tokio::test]
async fn an_empty_store_and_a_value_lifecycle() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, bob) = regular(&server, &admin, "bob").await;

    for path in ["/api/v1/active_user/data/", "/api/v1/active_user/data"] {
        let r = bob.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, json!({"data": {}}));
    }
    bob.get(&key_path("theme")).await.error(404, "NotFound");

    let r = bob.put(&key_path("theme"), json!("dark")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body, json!({"key": "theme", "value": "dark"}));
    let r = bob.put(&key_path("theme"), json!("light")).await;
    assert_eq!(r.status, StatusCode::OK, "replacing answers 200: {}", r.body);
    assert_eq!(r.body, json!({"key": "theme", "value": "light"}));
    let r = bob.get(&key_path("theme")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"key": "theme", "value": "light"}));

    // POST works the same as PUT (seed 004).
    let r = bob.post(&key_path("layout"), json!({"cols": 2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body, json!({"key": "layout", "value": {"cols": 2}}));
    let r = bob.post(&key_path("layout"), json!({"cols": 3})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"key": "layout", "value": {"cols": 3}}));
    // And without the trailing slash.
    let r = bob.put("/api/v1/active_user/data/nav", json!(["a", "b"])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(bob.get("/api/v1/active_user/data/nav").await.body, json!({"key": "nav", "value": ["a", "b"]}));

    let r = bob.get("/api/v1/active_user/data/").await;
    assert_eq!(r.body, json!({"data": {"theme": "light", "layout": {"cols": 3}, "nav": ["a", "b"]}}));

    let r = bob.delete(&key_path("theme")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null);
    bob.delete(&key_path("theme")).await.error(404, "NotFound");
    bob.get(&key_path("theme")).await.error(404, "NotFound");
    bob.delete(&key_path("never-set")).await.error(404, "NotFound");
    assert_eq!(bob.get("/api/v1/active_user/data/").await.body, json!({"data": {"layout": {"cols": 3}, "nav": ["a", "b"]}}));
    // A deleted key is new again.
    assert_eq!(bob.put(&key_path("theme"), json!("dark")).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn any_json_value_round_trips() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, bob) = regular(&server, &admin, "bob").await;
    let values = [
        ("object", json!({"a": 1, "nested": {"b": [1, 2, {"c": null}]}, "s": "ünïcødé ✓"})),
        ("array", json!([1, "two", 3.5, false, null, []])),
        ("string", json!("hello")),
        ("empty-string", json!("")),
        ("int", json!(42)),
        ("negative", json!(-7)),
        ("float", json!(2.5)),
        ("big", json!(9007199254740993_i64)),
        ("true", json!(true)),
        ("false", json!(false)),
        ("null", Value::Null),
        ("empty-object", json!({})),
    ];
    for (key, value) in &values {
        let r = bob.put(&key_path(key), value.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{key}: {}", r.body);
        assert_eq!(r.body, json!({"key": key, "value": value}), "{key}");
    }
    for (key, value) in &values {
        let r = bob.get(&key_path(key)).await;
        assert_eq!(r.status, StatusCode::OK, "{key}: a null value is still present");
        assert_eq!(r.body, json!({"key": key, "value": value}), "{key}");
    }
    let all = bob.get("/api/v1/active_user/data/").await.body;
    let data = all["data"].as_object().unwrap();
    assert_eq!(data.len(), values.len());
    for (key, value) in &values {
        assert_eq!(&data[*key], value, "{key}");
    }
    // A value of another type replaces the old one.
    let r = bob.put(&key_path("int"), json!({"now": "an object"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(bob.get(&key_path("int")).await.body["value"], json!({"now": "an object"}));
}

#[tokio::test]
async fn keys_are_checked() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let long = "k".repeat(129);
    for bad in [long.as_str(), "a%20b", "a%2Fb", "%C3%A9", "a%3Ab", "a%2Bb", "semi%3Bcolon"] {
        for method in [Method::PUT, Method::POST] {
            let r = bob.send(method.clone(), &key_path(bad), Some(json!(1))).await;
            r.error(400, "ValidationError");
            assert_eq!(r.fields(), ["key"], "{method} {bad}: {}", r.body);
        }
        bob.get(&key_path(bad)).await.error(404, "NotFound");
        bob.delete(&key_path(bad)).await.error(404, "NotFound");
    }
    // A slash makes another path, which does not exist.
    for method in [Method::GET, Method::PUT, Method::POST, Method::DELETE] {
        let r = bob.send(method.clone(), "/api/v1/active_user/data/a/b/", Some(json!(1))).await;
        r.error(404, "NotFound");
    }
    assert_eq!(bob.get("/api/v1/active_user/data/").await.body, json!({"data": {}}));
    assert!(server.store.data_all(pk).await.unwrap().is_empty());

    let longest = "K".repeat(128);
    for good in ["a", "a.b_c-D9", "UPPER", "0", longest.as_str(), "...x", "-_-"] {
        let r = bob.put(&key_path(good), json!(good)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{good}: {}", r.body);
        assert_eq!(bob.get(&key_path(good)).await.body, json!({"key": good, "value": good}));
    }
    // Keys are case-sensitive.
    assert_eq!(bob.put(&key_path("upper"), json!(1)).await.status, StatusCode::CREATED);
    assert_eq!(bob.get(&key_path("UPPER")).await.body["value"], "UPPER");
}

#[tokio::test]
async fn bodies_must_be_json() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let r = bob.raw(Method::PUT, &key_path("k"), "text/plain", b"hello".to_vec()).await;
    r.error(415, "UnsupportedMediaType");
    for raw in [&b"{\"a\":"[..], b"", b"hello", b"'single'"] {
        let r = bob.raw(Method::PUT, &key_path("k"), "application/json", raw.to_vec()).await;
        r.error(400, "ValidationError");
    }
    assert!(server.store.data_all(pk).await.unwrap().is_empty());
    server.anon().get("/api/v1/active_user/data/").await.error(401, "AuthenticationRequired");
    server.anon().get(&key_path("k")).await.error(401, "AuthenticationRequired");
    server.anon().put(&key_path("k"), json!(1)).await.error(401, "AuthenticationRequired");
    server.anon().delete(&key_path("k")).await.error(401, "AuthenticationRequired");
    bob.send(Method::PATCH, &key_path("k"), Some(json!(1))).await.error(405, "MethodNotAllowed");
    bob.delete("/api/v1/active_user/data/").await.error(405, "MethodNotAllowed");
}

#[tokio::test]
async fn a_value_over_64_kib_is_413() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    // The limit is inclusive and counts the value's JSON text.
    let r = bob.put(&key_path("max"), string_of_json_len(VALUE_MAX)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = bob.put(&key_path("over"), string_of_json_len(VALUE_MAX + 1)).await;
    r.error(413, "PayloadTooLarge");
    let r = bob.post(&key_path("over"), json!({"list": vec![1; VALUE_MAX]})).await;
    r.error(413, "PayloadTooLarge");
    bob.get(&key_path("over")).await.error(404, "NotFound");
    // Replacing with a value too large keeps the old one.
    let r = bob.put(&key_path("max"), string_of_json_len(VALUE_MAX + 100)).await;
    r.error(413, "PayloadTooLarge");
    assert_eq!(bob.get(&key_path("max")).await.body["value"], string_of_json_len(VALUE_MAX));
    let stored = server.store.data_all(pk).await.unwrap();
    assert_eq!(stored.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["max"]);
}

#[tokio::test]
async fn a_user_holds_at_most_1_mib() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let chunk = Value::String("x".repeat(63 * 1024));
    for i in 0..16 {
        let r = bob.put(&key_path(&format!("k{i:02}")), chunk.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "k{i:02}: {}", r.body);
    }
    // The 17th takes the total over 1 MiB: refused, and nothing is stored for that key.
    for method in [Method::PUT, Method::POST] {
        let r = bob.send(method, &key_path("k16"), Some(chunk.clone())).await;
        r.error(413, "PayloadTooLarge");
    }
    bob.get(&key_path("k16")).await.error(404, "NotFound");
    let stored = server.store.data_all(pk).await.unwrap();
    assert_eq!(stored.len(), 16);
    assert!(stored.iter().all(|(k, v)| k != "k16" && v == &chunk));
    // Replacing a value counts the new size in place of the old one.
    let r = bob.put(&key_path("k00"), chunk.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let grown = Value::String("x".repeat(63 * 1024 + 5000));
    let r = bob.put(&key_path("k01"), grown).await;
    r.error(413, "PayloadTooLarge");
    assert_eq!(bob.get(&key_path("k01")).await.body["value"], chunk);
    // Small values still fit; freeing space lets the 17th in.
    assert_eq!(bob.put(&key_path("small"), json!(1)).await.status, StatusCode::CREATED);
    assert_eq!(bob.delete(&key_path("k15")).await.status, StatusCode::NO_CONTENT);
    let r = bob.put(&key_path("k16"), chunk.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The limit is per user: another user starts from zero.
    let (_, carol) = regular(&server, &admin, "carol").await;
    assert_eq!(carol.put(&key_path("k00"), chunk.clone()).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn users_cannot_see_each_others_data() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (bob_pk, bob) = regular(&server, &admin, "bob").await;
    let (carol_pk, carol) = regular(&server, &admin, "carol").await;
    assert_eq!(bob.put(&key_path("secret"), json!("bob's")).await.status, StatusCode::CREATED);

    for who in [&carol, &admin] {
        assert_eq!(who.get("/api/v1/active_user/data/").await.body, json!({"data": {}}));
        who.get(&key_path("secret")).await.error(404, "NotFound");
        who.delete(&key_path("secret")).await.error(404, "NotFound");
    }
    // The same key is separate per user.
    let r = carol.put(&key_path("secret"), json!("carol's")).await;
    assert_eq!(r.status, StatusCode::CREATED, "a key of another user is not 'replaced': {}", r.body);
    assert_eq!(bob.get(&key_path("secret")).await.body["value"], "bob's");
    assert_eq!(carol.get(&key_path("secret")).await.body["value"], "carol's");
    assert_eq!(carol.delete(&key_path("secret")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(bob.get(&key_path("secret")).await.body["value"], "bob's");
    assert_eq!(server.store.data_get(bob_pk, "secret").await.unwrap(), Some(json!("bob's")));
    assert_eq!(server.store.data_get(carol_pk, "secret").await.unwrap(), None);
    // There is no path to another user's data.
    for path in [format!("/api/v1/users/{bob_pk}/data/"), format!("/api/v1/users/{bob_pk}/data/secret/")] {
        let r = carol.get(&path).await;
        assert!(r.status == StatusCode::NOT_FOUND || r.status == StatusCode::FORBIDDEN, "{path}: {}", r.status);
        assert!(!r.body.to_string().contains("bob's"));
    }
    // A deleted user's data goes with them.
    assert_eq!(admin.delete(&format!("/api/v1/users/{bob_pk}/")).await.status, StatusCode::NO_CONTENT);
    assert!(server.store.data_all(bob_pk).await.unwrap().is_empty());
}

#[tokio::test]
async fn data_writes_are_audited_without_a_revision() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (bob_pk, bob) = regular(&server, &admin, "bob").await;
    let rev = server.revision().await;
    let log_start = server.store.changes(0, 100_000).await.unwrap().last().map_or(0, |c| c.pk);

    let r = bob.put(&key_path("theme"), json!("top-secret-value")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.revision(), Some(rev), "X-Revision is the store's revision, which data writes do not advance");
    let r = bob.post(&key_path("theme"), json!("other-secret-value")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.revision(), Some(rev));
    let r = bob.delete(&key_path("theme")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.revision(), Some(rev));
    // Refused writes leave no trace.
    bob.put(&key_path("bad%20key"), json!(1)).await.error(400, "ValidationError");
    bob.put(&key_path("huge"), string_of_json_len(VALUE_MAX + 1)).await.error(413, "PayloadTooLarge");
    bob.delete(&key_path("theme")).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);

    let log: Vec<_> = server.store.changes(log_start, 100_000).await.unwrap();
    let data_log: Vec<_> = log.iter().filter(|c| c.target_type == "user_data").collect();
    assert_eq!(data_log.len(), log.len(), "only the data writes were logged: {log:?}");
    assert_eq!(data_log.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(), ["create", "update", "delete"]);
    for c in &data_log {
        assert_eq!(c.revision, None, "{c:?}");
        assert_eq!(c.actor, Some((bob_pk, "bob".to_string())));
        assert_eq!(c.target_pk, format!("{bob_pk}:theme"));
        assert!(c.request_id.as_deref().is_some_and(|id| id.len() == 36), "{c:?}");
        assert!(c.ip.is_some());
        assert!(!c.changes.to_string().contains("secret-value"), "values are not copied into the log: {c:?}");
    }
}

/// A key that is not UTF-8 text is refused in the contract's error shape (not axum's plain-text rejection), and
/// nothing is written.
#[tokio::test]
async fn keys_that_are_not_text_are_refused_in_the_error_shape() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for (method, path) in [
        (Method::PUT, "/api/v1/active_user/data/%FF/"),
        (Method::GET, "/api/v1/active_user/data/%FF/"),
        (Method::DELETE, "/api/v1/active_user/data/%C3%28/"),
        (Method::DELETE, "/api/v1/objects/catalogs/%FF/"),
    ] {
        let r = admin.send(method.clone(), path, Some(json!(1))).await;
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("application/json"), "{method} {path}");
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), vec!["path".to_string()], "{method} {path}: {}", r.body);
    }
    assert_eq!(admin.get("/api/v1/active_user/data/").await.body, json!({"data": {}}));
}
