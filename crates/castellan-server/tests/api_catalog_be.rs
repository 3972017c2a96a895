//! BE permission namespaces and BE permissions (API.md §7), route checks and forward-auth: shapes, validation,
//! who may write what, and every way a route is held.

mod common;

use common::permissions::{bad_field, denied, ok, second_org};
use common::{Client, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A custom namespace and a BE permission in it; answers (namespace pk, permission pk).
async fn products(admin: &Client) -> (i64, i64) {
    let r = admin.post("/api/v1/be_permission_namespace/", json!({"name": "products"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ns = r.body["pk"].as_i64().unwrap();
    let r = admin.post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "GET", "path": "api/v1/products/$"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["name"], "products-get-api/v1/products/$");
    assert_eq!(r.body["action"], "get");
    (ns, r.body["pk"].as_i64().unwrap())
}

async fn route(c: &Client, user: Option<i64>, method: &str, path: &str) -> Value {
    let mut body = json!({"method": method, "path": path});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let r = c.post("/api/v1/check/route/", body).await;
    ok(&r).clone()
}

async fn forward(server: &TestServer, token: Option<&str>, method: &str, uri: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/forward/", server.base))
        .header("x-forwarded-method", method)
        .header("x-forwarded-uri", uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_server_publishes_its_own_routes_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/v1/be_permissions/?search=api/v1/users/$&page_size=1000").await;
    let found: Vec<&Value> = ok(&r)["results"].as_array().unwrap().iter().filter(|b| b["path"] == "api/v1/users/$").collect();
    let actions: Vec<&str> = found.iter().map(|b| b["action"].as_str().unwrap()).collect();
    assert_eq!(actions.len(), 2, "{found:?}");
    assert!(actions.contains(&"get") && actions.contains(&"post"));
    let users_ns = found[0]["namespace"].as_i64().unwrap();
    let r = admin.get(&format!("/api/v1/be_permission_namespace/{users_ns}/")).await;
    assert_eq!(ok(&r)["name"], "users");
    assert_eq!(r.body["builtin"], true);
    let count = |r: &common::Resp| r.body["count"].as_i64().unwrap();
    let before = count(&admin.get("/api/v1/be_permissions/").await);
    assert!(before > 50, "{before}");
    // Publishing again (a restart) writes nothing.
    let revision = server.revision().await;
    assert_eq!(castellan_server::catalog::publish(server.store.as_ref()).await.unwrap(), None);
    assert_eq!(server.revision().await, revision);
    assert_eq!(count(&admin.get("/api/v1/be_permissions/").await), before);
    // Published permissions cannot be deleted.
    let pk = found[0]["pk"].as_i64().unwrap();
    admin.delete(&format!("/api/v1/be_permissions/{pk}/")).await.error(409, "Conflict");
    admin.delete(&format!("/api/v1/be_permission_namespace/{users_ns}/")).await.error(409, "Conflict");
}

#[tokio::test]
async fn a_route_that_disappears_is_marked_stale() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let gone =
        castellan_store::PublishedRoute { namespace: "users".into(), action: "get".into(), path: "api/v1/retired/$".into() };
    let mut routes = castellan_server::catalog::published_routes(&castellan_server::openapi());
    routes.push(gone);
    server.store.publish_catalog(&routes, &[]).await.unwrap();
    castellan_server::catalog::publish(server.store.as_ref()).await.unwrap();
    // Written by "another process": this server shows it once it has followed the log that far.
    let rev = server.revision().await;
    ok(&admin.post("/api/v1/check/", json!({"permission": "users.read", "at_least_revision": rev})).await);
    let r2 = admin.get("/api/v1/be_permissions/?search=retired").await;
    let results = ok(&r2)["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1, "{}", r2.body);
    assert_eq!(results[0]["stale"], true);
    assert_eq!(results[0]["builtin"], true);
}

#[tokio::test]
async fn definitions_are_validated_and_superuser_only() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ns, _) = products(&admin).await;
    let before = server.revision().await;
    for (body, field) in [
        (json!({"namespace": ns, "action": "get", "path": "api/v1/(unclosed/$"}), "path"),
        (json!({"namespace": ns, "action": "fetch", "path": "api/v1/x/$"}), "action"),
        (json!({"namespace": 999, "action": "get", "path": "api/v1/x/$"}), "namespace"),
        (json!({"action": "get", "path": "api/v1/x/$"}), "namespace"),
        (json!({"namespace": ns, "action": "get", "path": "api/v1/x/$", "bogus": 1}), "bogus"),
    ] {
        bad_field(&admin.post("/api/v1/be_permissions/", body).await, field);
    }
    bad_field(&admin.post("/api/v1/be_permission_namespace/", json!({"name": ""})).await, "name");
    admin
        .post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "get", "path": "api/v1/products/$"}))
        .await
        .error(409, "Conflict");
    admin.post("/api/v1/be_permission_namespace/", json!({"name": "products"})).await.error(409, "Conflict");
    assert_eq!(server.revision().await, before);

    // A holder of every `permissions` action still cannot define: definitions are global.
    let (_, strong) = common::permissions::member(&server, &admin, "strong", &[]).await;
    let me = strong.get("/api/v1/users/me/").await.body["pk"].as_i64().unwrap();
    common::permissions::grant(&admin, &format!("users/{me}"), "permissions", &["full"]).await;
    let detail = "Only a superuser can define BE and FE permissions.";
    denied(&strong.post("/api/v1/be_permission_namespace/", json!({"name": "mine"})).await, detail);
    denied(&strong.post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "get", "path": "x/$"})).await, detail);
    let r = admin
        .post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "delete", "path": "api/v1/products/[^/]+/$"}))
        .await;
    let custom = r.body["pk"].as_i64().unwrap();
    denied(&strong.delete(&format!("/api/v1/be_permissions/{custom}/")).await, detail);
    let r = admin.delete(&format!("/api/v1/be_permissions/{custom}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    admin.get(&format!("/api/v1/be_permissions/{custom}/")).await.error(404, "NotFound");
    // Without the module permission: 403 before anything else.
    let (_, weak) = common::permissions::member(&server, &admin, "weak", &[]).await;
    weak.get("/api/v1/be_permissions/").await.error(403, "PermissionDenied");
    weak.get("/api/v1/be_permissions/99999/").await.error(403, "PermissionDenied");
}

#[tokio::test]
async fn a_route_is_held_directly_by_namespace_by_fe_permission_and_by_fe_group_and_lost_with_each() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ns, be) = products(&admin).await;
    let (user, client) = common::permissions::member(&server, &admin, "clerk", &[]).await;
    let denied_now = json!({"allowed": false, "be_permission": null});
    let allowed_now = json!({"allowed": true, "be_permission": be});
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, denied_now);

    // Directly, through both spellings.
    for (assign, remove) in [
        (format!("/api/v1/be_permissions/{be}/assign-users/"), format!("/api/v1/be_permissions/{be}/remove-users/")),
        (format!("/api/v1/be_permission/{be}/assign-users/"), format!("/api/v1/be_permission/{be}/remove-users/")),
    ] {
        let r = admin.patch(&assign, json!({"users": [user]})).await;
        assert_eq!(ok(&r)["users"], json!([user]));
        assert_eq!(route(&client, None, "get", "api/v1/products/").await, allowed_now);
        assert_eq!(route(&client, None, "post", "api/v1/products/").await, denied_now);
        admin.patch(&remove, json!({"users": [user]})).await;
        assert_eq!(route(&client, None, "get", "api/v1/products/").await, denied_now);
    }

    // Through the namespace.
    let r = admin.patch(&format!("/api/v1/be_permission_namespace/{ns}/assign-users/"), json!({"users": [user]})).await;
    assert_eq!(ok(&r)["users"], json!([user]));
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, allowed_now);
    admin.patch(&format!("/api/v1/be_permission_namespace/{ns}/remove-users/"), json!({"users": [user]})).await;
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, denied_now);

    // Through an FE permission.
    let r = admin.post("/api/v1/fe_permissions/", json!({"name": "Products", "slug": "products", "be_permissions": [be]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let fe = r.body["pk"].as_i64().unwrap();
    let r = admin.patch(&format!("/api/v1/fe_permission/{fe}/assign-users/"), json!({"users": [user]})).await;
    assert_eq!(ok(&r)["users"], json!([user]));
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, allowed_now);
    admin.patch(&format!("/api/v1/fe_permissions/{fe}/remove-users/"), json!({"users": [user]})).await;
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, denied_now);

    // Through an FE permission group.
    let r = admin
        .post("/api/v1/fe_permission_groups/", json!({"name": "Shop", "description": null, "users": [], "fepermissions": [fe]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.body["pk"].as_i64().unwrap();
    let r = admin.patch(&format!("/api/v1/fe_permission_groups/{group}/assign-users/"), json!({"users": [user]})).await;
    assert_eq!(ok(&r)["users"], json!([user]));
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, allowed_now);
    let r =
        admin.patch(&format!("/api/v1/fe_permission_groups/{group}/remove-permissions/"), json!({"fepermissions": [fe]})).await;
    assert_eq!(ok(&r)["fepermissions"], json!([]));
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, denied_now);
    admin.patch(&format!("/api/v1/fe_permissions/{fe}/assign-groups/"), json!({"fe_permission_groups": [group]})).await;
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, allowed_now);
    let r = admin.delete(&format!("/api/v1/fe_permission_groups/{group}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await, denied_now);

    // Every write is in the audit log.
    let r = admin.get("/api/v1/audit/?target_type=be_permissions").await;
    assert!(ok(&r)["count"].as_i64().unwrap() >= 5, "{}", r.body);
}

#[tokio::test]
async fn assigning_needs_holding_and_seeing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ns, be) = products(&admin).await;
    let (manager, mclient) = common::permissions::member(&server, &admin, "manager", &[]).await;
    common::permissions::grant(&admin, &format!("users/{manager}"), "permissions", &["full"]).await;
    let target = common::permissions::quick_user(&admin, "target", json!({})).await;
    // The manager sees the target through a shared group.
    let team = common::permissions::group_pk(&admin, "team", None, json!({})).await;
    admin.patch(&format!("/api/v1/groups/{team}/assign-users/"), json!({"users": [manager, target]})).await;
    let before = server.revision().await;
    let detail = "You cannot confer or revoke permissions you do not hold.";
    denied(&mclient.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [target]})).await, detail);
    denied(
        &mclient.patch(&format!("/api/v1/be_permission_namespace/{ns}/assign-users/"), json!({"users": [target]})).await,
        detail,
    );
    assert_eq!(server.revision().await, before);
    // Holding the permission, the manager may pass it on.
    admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [manager]})).await;
    let r = mclient.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [target]})).await;
    assert_eq!(ok(&r)["users"], json!([manager, target]));
    // ... but holding one permission of the namespace is not holding the namespace.
    admin.post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "post", "path": "api/v1/products/$"})).await;
    denied(
        &mclient.patch(&format!("/api/v1/be_permission_namespace/{ns}/assign-users/"), json!({"users": [target]})).await,
        detail,
    );
    // A user of another organisation is not there for the manager; an unknown one is a 400 for a superuser.
    let other = second_org(&admin).await;
    let stranger = common::permissions::quick_user(&admin, "stranger", json!({"org": other})).await;
    mclient
        .patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [stranger]}))
        .await
        .error(404, "NotFound");
    bad_field(&admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [99999]})).await, "users");
    bad_field(&admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": "x"})).await, "users");
    admin.patch("/api/v1/be_permissions/99999/assign-users/", json!({"users": [target]})).await.error(404, "NotFound");
    // Hidden holders are counted, not named.
    admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [stranger]})).await;
    let r = mclient.get(&format!("/api/v1/be_permissions/{be}/")).await;
    assert_eq!(ok(&r)["users"], json!([manager, target]));
    assert_eq!(r.body["users_hidden"], 1);
    // Checking routes of others needs permissions.check, and sight of them.
    let (_, weak) = common::permissions::member(&server, &admin, "weak", &[]).await;
    weak.post("/api/v1/check/route/", json!({"user": target, "method": "get", "path": "api/v1/products/"}))
        .await
        .error(403, "PermissionDenied");
    mclient
        .post("/api/v1/check/route/", json!({"user": stranger, "method": "get", "path": "api/v1/products/"}))
        .await
        .error(404, "NotFound");
    assert_eq!(route(&mclient, Some(target), "GET", "api/v1/products/").await["allowed"], true);
}

#[tokio::test]
async fn route_checks_refuse_what_they_cannot_read() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for (body, field) in [
        (json!({"method": "get"}), "path"),
        (json!({"path": "/x/"}), "method"),
        (json!({"method": "g e t", "path": "/x/"}), "method"),
        (json!({"method": "get", "path": "/api/v1%2fadmin/"}), "path"),
        (json!({"method": "get", "path": "/../x"}), "path"),
        (json!({"method": "get", "path": "/x/", "bogus": true}), "bogus"),
    ] {
        bad_field(&admin.post("/api/v1/check/route/", body).await, field);
    }
    // A superuser passes any route.
    assert_eq!(route(&admin, None, "DELETE", "/anything/").await["allowed"], true);
}

#[tokio::test]
async fn forward_auth_answers_for_the_forwarded_user() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, be) = products(&admin).await;
    let admin_v1 =
        admin.post("/api/v1/be_permissions/", json!({"namespace": 1, "action": "get", "path": "api/v1/admin/$"})).await;
    assert_eq!(admin_v1.status, StatusCode::CREATED, "{}", admin_v1.body);
    let (user, client) = common::permissions::member(&server, &admin, "shopper", &[]).await;
    let team = common::permissions::group_pk(&admin, "shoppers", None, json!({})).await;
    admin.patch(&format!("/api/v1/groups/{team}/assign-users/"), json!({"users": [user]})).await;
    admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [user]})).await;
    let token = client.token.clone().unwrap();

    let r = forward(&server, Some(&token), "GET", "/api/v1/products/?page=2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-user-id"], user.to_string().as_str());
    assert_eq!(r.headers()["x-username"], "shopper");
    assert_eq!(r.headers()["x-user-groups"], team.to_string().as_str());
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"allowed": true, "be_permission": be}));
    // The nginx spelling of the headers.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/forward/", server.base))
        .header("x-original-method", "GET")
        .header("x-original-uri", "/api/v1/products/")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    assert_eq!(forward(&server, Some(&token), "POST", "/api/v1/products/").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(forward(&server, None, "GET", "/api/v1/products/").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(forward(&server, Some("nonsense"), "GET", "/api/v1/products/").await.status(), StatusCode::UNAUTHORIZED);
    // Crafted paths do not slip past: resolved, or refused when ambiguous.
    for crafted in [
        "/api/v1/products/../admin/",
        "/api/v1/%2e%2e/v1/admin/",
        "/api/v1/products%2F..%2Fadmin/",
        "/api/v1/admin./",
        "/api/v1/products/%252e%252e/",
    ] {
        assert_eq!(forward(&server, Some(&token), "GET", crafted).await.status(), StatusCode::FORBIDDEN, "{crafted}");
    }
    // Equivalent spellings of an allowed path pass.
    for same in ["//api//v1/products/", "/api/./v1/products/", "/api/v1/%70roducts/", "/api/v1/x/../products/"] {
        assert_eq!(forward(&server, Some(&token), "get", same).await.status(), StatusCode::OK, "{same}");
    }
    // A token narrowed to scopes that leave out the namespace does not pass.
    let r = client.post("/api/v1/active_user/tokens/", json!({"name": "narrow", "permissions": []})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let narrow = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(forward(&server, Some(&narrow), "GET", "/api/v1/products/").await.status(), StatusCode::FORBIDDEN);
    // Deactivating the user ends it at once.
    admin.patch(&format!("/api/v1/users/{user}/"), json!({"is_active": false})).await;
    assert_ne!(forward(&server, Some(&token), "GET", "/api/v1/products/").await.status(), StatusCode::OK);
    // Without the original request's method and URI: 400.
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/auth/forward/", server.base))
        .header("authorization", format!("Bearer {}", admin.token.clone().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_dry_run_names_the_routes_and_screens_users_would_gain_or_lose() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (ns, be) = products(&admin).await;
    let (user, client) = common::permissions::member(&server, &admin, "clerk", &[]).await;
    let before = server.revision().await;
    let r =
        admin.patch(&format!("/api/v1/be_permission_namespace/{ns}/assign-users/?dry_run=true"), json!({"users": [user]})).await;
    let gained = &ok(&r)["impact"]["gained"];
    assert_eq!(gained[0]["permission"], "be_permission", "{}", r.body);
    assert_eq!(gained[0]["object_pk"], be.to_string());
    assert_eq!(gained[0]["users"], json!([user]));
    assert_eq!(r.body["impact"]["users_affected"], 1);
    assert_eq!(server.revision().await, before, "a dry run writes nothing");
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await["allowed"], false);
    // Deleting an FE permission previews what its holders lose with it.
    let fe = admin.post("/api/v1/fe_permissions/", json!({"name": "P", "slug": "p", "be_permissions": [be]})).await.body["pk"]
        .as_i64()
        .unwrap();
    admin.patch(&format!("/api/v1/fe_permissions/{fe}/assign-users/"), json!({"users": [user]})).await;
    let r = admin.delete(&format!("/api/v1/fe_permissions/{fe}/?dry_run=true")).await;
    let lost: Vec<&str> =
        ok(&r)["impact"]["lost"].as_array().unwrap().iter().map(|e| e["permission"].as_str().unwrap()).collect();
    assert_eq!(lost, ["be_permission", "fe_permission"], "{}", r.body);
    assert_eq!(route(&client, None, "GET", "/api/v1/products/").await["allowed"], true, "still held: nothing was deleted");
}

#[tokio::test]
async fn catalog_writes_reach_watchers_and_the_audit_log() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, be) = products(&admin).await;
    let user = common::permissions::quick_user(&admin, "watched", json!({})).await;
    let token = admin.token.clone().unwrap();
    let mut live = admin.http.get(format!("{}/api/v1/watch/", server.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    ok(&admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [user]})).await);
    let needle = format!("\"target_pk\":\"{be}\"");
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(text.contains(&needle) && text.contains("\"action\":\"assign\"")) {
        let chunk = tokio::time::timeout_at(deadline, live.chunk()).await.expect("event in time").unwrap().expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("\"target_type\":\"be_permissions\""), "{text}");
    let r = admin.get(&format!("/api/v1/audit/?target_type=be_permissions&target_pk={be}")).await;
    let actions: Vec<&str> = ok(&r)["results"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"create") && actions.contains(&"assign"), "{actions:?}");
    let assigned = ok(&r)["results"].as_array().unwrap().iter().find(|e| e["action"] == "assign").unwrap().clone();
    assert_eq!(assigned["changes"]["added"], json!([user]), "{assigned}");
}
