//! One user (API.md §3, §10, §11; seed 000 UserViewSet): reading, replacing, patching and deleting a user, password
//! history, sessions ended by password changes and deactivation, and the protection of oneself and the last superuser.

mod common;

use castellan_core::model::User;
use castellan_store::WriteCtx;
use common::users::{PW, can_log_in, keys, new_user, regular, snapshot, user_keys, with};
use common::{Resp, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------------
// Read, replace, patch, delete
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_one_and_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let created = admin.post("/api/v1/users/", with(new_user("one"), json!({"first_name": "bar"}))).await.body;
    let pk = created["pk"].as_i64().unwrap();
    for path in [format!("/api/v1/users/{pk}/"), format!("/api/v1/users/{pk}")] {
        let r = admin.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, created);
    }
    let admin_self = admin.get("/api/v1/users/1/").await;
    assert_eq!(admin_self.body["username"], "admin");
    assert_eq!(admin_self.body["is_superuser"], true);
    for bad in ["999", "0", "-1", "abc", "1.5", "1e3", "%20", "99999999999999999999999"] {
        let r = admin.get(&format!("/api/v1/users/{bad}/")).await;
        r.error(404, "NotFound");
        assert_eq!(r.body["detail"], "Not found.", "{bad}");
        assert_eq!(r.body["errors"], json!([]));
    }
    for method in [Method::PUT, Method::PATCH] {
        let r = admin.send(method, "/api/v1/users/999/", Some(json!({"first_name": "x"}))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    let r = admin
        .send(Method::PUT, "/api/v1/users/999/", Some(json!({"username": "x", "email": "x@example.com", "groups": []})))
        .await;
    r.error(404, "NotFound");
    admin.delete("/api/v1/users/abc/").await.error(404, "NotFound");
}

#[tokio::test]
async fn put_requires_username_email_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "putter", json!({"first_name": "F", "last_name": "L"})).await;
    let snap = snapshot(&server, pk).await;
    let r = admin.put(&format!("/api/v1/users/{pk}/"), json!({"first_name": "qux"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["username", "email", "groups"]);
    let r = admin.put(&format!("/api/v1/users/{pk}/"), json!({"username": "putter", "email": "p@example.com"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["groups"]);
    assert_eq!(snapshot(&server, pk).await, snap);

    // Seed 000's PUT body (password optional on PUT).
    let r = admin
        .put(
            &format!("/api/v1/users/{pk}/"),
            json!({"username": "foo", "first_name": "qux", "password": "Bar123*!", "email": "baz@akinon.com", "groups": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keys(&r.body), user_keys());
    assert_eq!(
        (&r.body["username"], &r.body["first_name"], &r.body["email"]),
        (&json!("foo"), &json!("qux"), &json!("baz@akinon.com"))
    );
    assert_eq!(r.body["pk"], pk);
    assert_eq!(r.body["date_joined"].as_str(), Some(api_timestamp(&snap.1).as_str()), "date_joined never changes");
    assert!(can_log_in(&server, "foo", "Bar123*!").await);
    assert!(!can_log_in(&server, "putter", PW).await);
    let r = admin.put(&format!("/api/v1/users/{pk}/"), json!({"username": "foo", "email": "baz@akinon.com", "groups": []})).await;
    assert_eq!(r.status, StatusCode::OK, "PUT without password: {}", r.body);
    assert!(can_log_in(&server, "foo", "Bar123*!").await, "a PUT without password keeps it");
}

/// The API rendering of a stored user's join time.
fn api_timestamp(u: &User) -> String {
    let t = u.date_joined.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[tokio::test]
async fn patch_changes_only_given_fields() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let created = admin
        .post("/api/v1/users/", with(new_user("patchy"), json!({"first_name": "A", "last_name": "B", "description": "C"})))
        .await
        .body;
    let pk = created["pk"].as_i64().unwrap();
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"first_name": "Very Very New"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut expected = created.clone();
    expected["first_name"] = json!("Very Very New");
    assert_eq!(r.body, expected);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_staff": true, "description": ""})).await;
    expected["is_staff"] = json!(true);
    expected["description"] = json!("");
    assert_eq!(r.body, expected);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, expected);
    assert_eq!(admin.get(&format!("/api/v1/users/{pk}/")).await.body, expected);
    assert!(can_log_in(&server, "patchy", "Bar123*!").await, "PATCH without password keeps it");
    // The org of a user cannot move.
    let snap = snapshot(&server, pk).await;
    let (org, _) = server.store.create_org(&WriteCtx::default(), "Other", "other", "").await.unwrap();
    let snap = (snap.0 + 1, snap.1);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"org": org.pk})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["org"]);
    assert_eq!(snapshot(&server, pk).await, snap);
}

#[tokio::test]
async fn password_history_refuses_the_current_and_the_previous_password() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "hist", json!({})).await; // current: PW
    let path = format!("/api/v1/users/{pk}/");
    let refuse = |r: Resp| {
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["password"], "{}", r.body);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("differ"), "{}", r.body);
    };

    let snap = snapshot(&server, pk).await;
    refuse(admin.patch(&path, json!({"password": PW})).await);
    assert_eq!(snapshot(&server, pk).await, snap);
    let r = admin.patch(&path, json!({"password": "Second-pw2"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    refuse(admin.patch(&path, json!({"password": "Second-pw2"})).await); // the current one
    refuse(admin.patch(&path, json!({"password": PW})).await); // the one before
    refuse(admin.put(&path, json!({"username": "hist", "email": "hist@example.com", "groups": [], "password": PW})).await);
    let r = admin.patch(&path, json!({"password": "Third-pw3"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    refuse(admin.patch(&path, json!({"password": "Second-pw2"})).await);
    // The first password is now third in line: allowed again.
    let r = admin.patch(&path, json!({"password": PW})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(can_log_in(&server, "hist", PW).await);
    assert!(!can_log_in(&server, "hist", "Third-pw3").await);
}

#[tokio::test]
async fn password_set_by_an_admin_ends_the_targets_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    assert_eq!(bob.get("/api/v1/users/me/").await.status, StatusCode::OK);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "Reset-123"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    bob.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    assert!(!can_log_in(&server, "bob", PW).await);
    assert!(can_log_in(&server, "bob", "Reset-123").await);
    // The admin's own session is untouched.
    assert_eq!(admin.get("/api/v1/users/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn deactivating_a_user_ends_their_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["is_active"], false);
    bob.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    assert!(!can_log_in(&server, "bob", PW).await, "inactive users cannot log in");
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(can_log_in(&server, "bob", PW).await);
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "gone").await;
    let rev = server.revision().await;
    let r = admin.delete(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null, "204 has no body");
    assert_eq!(r.revision(), Some(rev + 1));
    admin.get(&format!("/api/v1/users/{pk}/")).await.error(404, "NotFound");
    let r = admin.delete(&format!("/api/v1/users/{pk}/")).await;
    r.error(404, "NotFound");
    assert_eq!(server.revision().await, rev + 1, "a refused delete changes nothing");
    assert!(server.store.get_user(pk).await.is_err());
    bob.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    assert!(!can_log_in(&server, "gone", PW).await);
    // Primary keys are never reused.
    let again = server.create_user(&admin, "gone", json!({})).await;
    assert!(again > pk);
}

#[tokio::test]
async fn nobody_deletes_or_deactivates_themselves() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let snap = snapshot(&server, 1).await;
    let r = admin.delete("/api/v1/users/1/").await;
    r.error(403, "PermissionDenied");
    let r = admin.patch("/api/v1/users/1/", json!({"is_active": false})).await;
    r.error(403, "PermissionDenied");
    let r = admin
        .put(
            "/api/v1/users/1/",
            json!({"username": "admin", "email": "admin@localhost.localdomain", "groups": [], "is_active": false}),
        )
        .await;
    r.error(403, "PermissionDenied");
    let r = admin.patch("/api/v1/users/1/", json!({"is_active": false, "first_name": "sneaky"})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(snapshot(&server, 1).await, snap);
    assert_eq!(admin.get("/api/v1/users/").await.status, StatusCode::OK, "still logged in");
    // Setting is_active to its current value is not deactivation.
    let r = admin.patch("/api/v1/users/1/", json!({"is_active": true, "first_name": "Ad"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn last_active_superuser_cannot_give_up_the_role() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let snap = snapshot(&server, 1).await;
    let r = admin.patch("/api/v1/users/1/", json!({"is_superuser": false})).await;
    r.error(409, "Conflict");
    assert_eq!(snapshot(&server, 1).await, snap);
    // An inactive superuser does not count.
    server.create_user(&admin, "dormant", json!({"is_superuser": true, "is_active": false})).await;
    let snap = snapshot(&server, 1).await;
    let r = admin.patch("/api/v1/users/1/", json!({"is_superuser": false})).await;
    r.error(409, "Conflict");
    let r = admin
        .put("/api/v1/users/1/", json!({"username": "admin", "email": "a@example.com", "groups": [], "is_superuser": false}))
        .await;
    r.error(409, "Conflict");
    assert_eq!(snapshot(&server, 1).await, snap);
    // With another active superuser, giving it up works; then that one is the last.
    let root2 = server.create_user(&admin, "root2", json!({"is_superuser": true})).await;
    let r = admin.patch("/api/v1/users/1/", json!({"is_superuser": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["is_superuser"], false);
    let root = server.login("root2", PW).await;
    let snap = snapshot(&server, root2).await;
    root.patch(&format!("/api/v1/users/{root2}/"), json!({"is_superuser": false})).await.error(409, "Conflict");
    assert_eq!(snapshot(&server, root2).await, snap);
    // The former superuser has lost access to the users module.
    admin.get("/api/v1/users/").await.error(403, "PermissionDenied");
}
