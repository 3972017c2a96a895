//! Who may call the users endpoints (API.md §1, §10, §11): 401 and 403 naming the permission, and what the users
//! permissions do not reach (superusers, privileged flags).

mod common;

use castellan_core::model::User;
use common::users::{PW, new_user, regular, sorted, usernames, with};
use common::{Client, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------------
// Who may call
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_superusers_get_403_naming_the_permission() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (bob_pk, bob) = regular(&server, &admin, "bob").await;
    let target = server.create_user(&admin, "target", json!({})).await;
    let (rev, target_before, bob_before, users) = (
        server.revision().await,
        server.store.get_user(target).await.unwrap(),
        server.store.get_user(bob_pk).await.unwrap(),
        server.store.count_users().await.unwrap(),
    );
    let need = |action: &str| format!("This method needs permission {action} on users.");
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v1/users/".into(), None, "read"),
        (Method::GET, "/api/v1/users".into(), None, "read"),
        (Method::GET, "/api/v1/users/?search=adm".into(), None, "read"),
        (Method::POST, "/api/v1/users/".into(), Some(new_user("sneak")), "create"),
        (Method::GET, format!("/api/v1/users/{target}/"), None, "read"),
        (Method::GET, format!("/api/v1/users/{bob_pk}/"), None, "read"),
        (Method::GET, "/api/v1/users/9999/".into(), None, "read"),
        (Method::GET, "/api/v1/users/abc/".into(), None, "read"),
        (
            Method::PUT,
            format!("/api/v1/users/{target}/"),
            Some(json!({"username": "t", "email": "t@example.com", "groups": []})),
            "update",
        ),
        (Method::PATCH, format!("/api/v1/users/{target}/"), Some(json!({"first_name": "x"})), "update"),
        (Method::PATCH, format!("/api/v1/users/{bob_pk}/"), Some(json!({"is_superuser": true})), "update"),
        (Method::PATCH, "/api/v1/users/9999/".into(), Some(json!({"first_name": "x"})), "update"),
        (Method::DELETE, format!("/api/v1/users/{target}/"), None, "delete"),
        (Method::DELETE, "/api/v1/users/1/".into(), None, "delete"),
    ];
    for (method, path, body, action) in &cases {
        let r = bob.send(method.clone(), path, body.clone()).await;
        r.error(403, "PermissionDenied");
        assert!(r.revision().is_none(), "a refused request carries no X-Revision");
        assert_eq!(r.body["detail"], need(action), "{method} {path}");
        assert_eq!(r.body["message"], need(action));
    }
    // Without credentials: 401 before anything else; with a bad token: 401 AuthenticationFailed.
    let anon = server.anon();
    let forged = Client { token: Some("cs_not-a-real-token".into()), ..server.anon() };
    for (method, path, body, _) in &cases {
        let r = anon.send(method.clone(), path, body.clone()).await;
        r.error(401, "AuthenticationRequired");
        let r = forged.send(method.clone(), path, body.clone()).await;
        r.error(401, "AuthenticationFailed");
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(server.store.get_user(target).await.unwrap(), target_before);
    assert_eq!(server.store.get_user(bob_pk).await.unwrap(), bob_before);
    assert_eq!(server.store.count_users().await.unwrap(), users);
}

#[tokio::test]
async fn users_permissions_do_not_reach_superusers_or_privileged_flags() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = admin
        .post("/api/v1/groups/", json!({"name": "Managers", "permissions": {"users": ["read", "create", "update", "delete"]}}))
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let g = g.body["pk"].as_i64().unwrap();
    let manager_pk = server.create_user(&admin, "manager", json!({"groups": [g]})).await;
    let peer = server.create_user(&admin, "peer", json!({"groups": [g]})).await;
    let root2 = server.create_user(&admin, "root2", json!({"groups": [g], "is_superuser": true})).await;
    let manager = server.login("manager", PW).await;

    // Seed 004 visibility: members of the caller's groups and the caller; others answer 404.
    let r = manager.get("/api/v1/users/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(sorted(usernames(&r)), ["manager", "peer", "root2"]);
    assert_eq!(r.body["count"], 3);
    manager.get("/api/v1/users/1/").await.error(404, "NotFound");
    manager.patch("/api/v1/users/1/", json!({"first_name": "x"})).await.error(404, "NotFound");
    manager.delete("/api/v1/users/1/").await.error(404, "NotFound");

    let r = manager.patch(&format!("/api/v1/users/{peer}/"), json!({"first_name": "Pete"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let rev = server.revision().await;
    let before: Vec<User> = stored_users(&server, &[manager_pk, peer, root2, 1]).await;
    let users = server.store.count_users().await.unwrap();
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::PATCH, format!("/api/v1/users/{peer}/"), Some(json!({"is_staff": true}))),
        (Method::PATCH, format!("/api/v1/users/{peer}/"), Some(json!({"is_superuser": true}))),
        (Method::PATCH, format!("/api/v1/users/{manager_pk}/"), Some(json!({"is_staff": true}))),
        (Method::PATCH, format!("/api/v1/users/{root2}/"), Some(json!({"first_name": "x"}))),
        (
            Method::PUT,
            format!("/api/v1/users/{root2}/"),
            Some(json!({"username": "root2", "email": "r@example.com", "groups": [g]})),
        ),
        (Method::DELETE, format!("/api/v1/users/{root2}/"), None),
        (Method::DELETE, format!("/api/v1/users/{manager_pk}/"), None),
        (Method::PATCH, format!("/api/v1/users/{manager_pk}/"), Some(json!({"is_active": false}))),
        (Method::POST, "/api/v1/users/".into(), Some(with(new_user("boss"), json!({"is_superuser": true})))),
        (Method::POST, "/api/v1/users/".into(), Some(with(new_user("staffer"), json!({"is_staff": true})))),
    ];
    for (method, path, body) in refused {
        let r = manager.send(method.clone(), &path, body.clone()).await;
        r.error(403, "PermissionDenied");
        assert!(r.revision().is_none());
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(stored_users(&server, &[manager_pk, peer, root2, 1]).await, before);
    assert_eq!(server.store.count_users().await.unwrap(), users);
    // A plain user can be created with users.create.
    let r = manager.post("/api/v1/users/", new_user("plain")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((&r.body["is_superuser"], &r.body["is_staff"], &r.body["org"]), (&json!(false), &json!(false), &json!(1)));
}

/// The stored users, in the given order.
async fn stored_users(server: &TestServer, pks: &[i64]) -> Vec<User> {
    let mut out = Vec::new();
    for pk in pks {
        out.push(server.store.get_user(*pk).await.unwrap());
    }
    out
}

/// Reactivating a user hands back everything the user holds: the caller must hold it too, though a deactivated user
/// holds nothing while inactive (API.md §11, no escalation).
#[tokio::test]
async fn reactivating_a_user_needs_holding_what_the_user_would_hold() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let group = |name: &str, permissions: Value| {
        let admin = &admin;
        let name = name.to_string();
        async move {
            let r = admin.post("/api/v1/groups/", json!({"name": name, "permissions": permissions})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["pk"].as_i64().unwrap()
        }
    };
    let managers = group("Managers", json!({"users": ["full"]})).await;
    let powerful = group("Powerful", json!({"roles": ["full"]})).await;
    server.create_user(&admin, "manager", json!({"groups": [managers]})).await;
    let strong = server.create_user(&admin, "strong", json!({"groups": [managers, powerful]})).await;
    let plain = server.create_user(&admin, "plain", json!({"groups": [managers]})).await;
    for pk in [strong, plain] {
        let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let manager = server.login("manager", PW).await;
    let rev = server.revision().await;
    manager.patch(&format!("/api/v1/users/{strong}/"), json!({"is_active": true})).await.error(403, "PermissionDenied");
    assert_eq!(server.revision().await, rev);
    assert!(!server.store.get_user(strong).await.unwrap().is_active, "still inactive");
    let r = manager.patch(&format!("/api/v1/users/{plain}/"), json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK, "the manager holds all a plain member holds: {}", r.body);
    assert_eq!(r.body["is_active"], true);
}
