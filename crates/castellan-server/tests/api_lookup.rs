//! Effective permissions and lookups of objects and users, answered from the engine's index.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

/// catalogs ⊃ products objects: catalog 9 ⊃ product 42; product 43 on its own.
async fn catalog(server: &TestServer) -> common::Client {
    let admin = server.admin().await;
    for id in ["catalogs", "products"] {
        assert_eq!(admin.post("/api/v1/modules/", json!({"id": id})).await.status, StatusCode::CREATED);
    }
    for body in [
        json!({"model": "catalogs", "object_pk": "9"}),
        json!({"model": "products", "object_pk": "42", "parent_model": "catalogs", "parent_pk": "9"}),
        json!({"model": "products", "object_pk": "43"}),
    ] {
        assert_eq!(admin.post("/api/v1/objects/", body).await.status, StatusCode::CREATED);
    }
    admin
}

#[tokio::test]
async fn effective_permissions_list_what_is_held() {
    let server = TestServer::start().await;
    let admin = catalog(&server).await;
    let pk = server.create_user(&admin, "ed", json!({})).await;
    let r = admin.put(&format!("/api/v1/users/{pk}/permissions/products/"), json!({"permissions": ["read", "update"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = admin.get(&format!("/api/v1/users/{pk}/effective_permissions/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["global"], json!(["products.read", "products.update"]));
    assert_eq!(r.body["objects"], json!({}));
    assert!(r.body["revision"].as_i64().unwrap() >= r.revision().unwrap_or(0));

    let superuser = admin.get("/api/v1/users/1/effective_permissions/").await;
    assert_eq!(superuser.body["superuser"], true);

    // Oneself needs only authentication; others need permissions.check.
    let ed = server.login("ed", "Passw0rd!").await;
    assert_eq!(ed.get(&format!("/api/v1/users/{pk}/effective_permissions/")).await.status, StatusCode::OK);
    let denied = ed.get("/api/v1/users/1/effective_permissions/").await;
    assert_eq!(denied.error(403, "PermissionDenied")["detail"], "This method needs permission check on permissions.");
    admin.get("/api/v1/users/999/effective_permissions/").await.error(404, "NotFound");
    server.anon().get(&format!("/api/v1/users/{pk}/effective_permissions/")).await.error(401, "AuthenticationRequired");
}

#[tokio::test]
async fn object_lookups_follow_parents_and_global_grants() {
    let server = TestServer::start().await;
    let admin = catalog(&server).await;
    let pk = server.create_user(&admin, "ed", json!({})).await;
    let role = admin.post("/api/v1/roles/", json!({"name": "Catalog editors"})).await.body["pk"].as_i64().unwrap();
    admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [pk]})).await;
    let ed = server.login("ed", "Passw0rd!").await;

    let lookup = |permission: &str, model: &str| json!({"permission": permission, "model": model});
    let r = ed.post("/api/v1/lookup/objects/", lookup("catalogs.read", "products")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["all"].clone(), r.body["count"].clone()), (json!(false), json!(0)));

    // A global grant of catalogs.read through the role covers every object of the org.
    let grant = admin.put(&format!("/api/v1/roles/{role}/permissions/catalogs/"), json!({"permissions": ["read"]})).await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    let r = ed.post("/api/v1/lookup/objects/", lookup("catalogs.read", "products")).await;
    assert_eq!(r.body["all"], true, "a global grant answers all: {}", r.body);

    let check = ed.post("/api/v1/check/", json!({"permission": "catalogs.read", "model": "products", "object_pk": "43"})).await;
    assert_eq!(check.body["allowed"], true);
    let r = ed.post("/api/v1/lookup/objects/", lookup("products.read", "products")).await;
    assert_eq!(r.body["all"], false);
    assert_eq!(r.body["results"], json!([]));

    // Bad input.
    ed.post("/api/v1/lookup/objects/", json!({"permission": "catalogs.read"})).await.error(400, "ValidationError");
    let r = ed.post("/api/v1/lookup/objects/", json!({"permission": "nodot", "model": "products"})).await;
    assert_eq!(r.error(400, "ValidationError")["errors"][0]["field"], "permission");
    let r = ed.post("/api/v1/lookup/objects/", json!({"user": 1, "permission": "catalogs.read", "model": "products"})).await;
    r.error(403, "PermissionDenied");
}

#[tokio::test]
async fn user_lookups_are_paged_and_need_permission() {
    let server = TestServer::start().await;
    let admin = catalog(&server).await;
    let mut holders = Vec::new();
    for name in ["a1", "a2", "a3"] {
        let pk = server.create_user(&admin, name, json!({})).await;
        admin.put(&format!("/api/v1/users/{pk}/permissions/products/"), json!({"permissions": ["read"]})).await;
        holders.push(pk);
    }
    server.create_user(&admin, "nobody", json!({})).await;
    let r = admin.post("/api/v1/lookup/users/?page_size=2", json!({"permission": "products.read", "object_pk": "42"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 4, "the three holders and the superuser: {}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 2);
    let next = r.body["next"].as_str().unwrap().to_string();
    let page2 = common::Client::read(
        admin
            .http
            .post(next)
            .bearer_auth(admin.token.clone().unwrap())
            .json(&json!({"permission": "products.read", "object_pk": "42"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let listed: Vec<i64> = page2.body["results"].as_array().unwrap().iter().map(|u| u["pk"].as_i64().unwrap()).collect();
    assert_eq!(listed, holders[1..].to_vec());
    let nobody = server.login("nobody", "Passw0rd!").await;
    let denied = nobody.post("/api/v1/lookup/users/", json!({"permission": "products.read"})).await;
    assert_eq!(denied.error(403, "PermissionDenied")["detail"], "This method needs permission check on permissions.");
}

#[tokio::test]
async fn capabilities_describe_the_caller() {
    let server = TestServer::start().await;
    let admin = catalog(&server).await;
    let pk = server.create_user(&admin, "ed", json!({})).await;
    let r = admin.put(&format!("/api/v1/users/{pk}/permissions/catalogs/"), json!({"permissions": ["read"]})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = admin
        .post(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{pk}/assign/"),
            json!({"permissions": ["products.update"], "model": "products", "object_pk": "42"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ed = server.login("ed", "Passw0rd!").await;
    let caps = ed.get("/api/v1/active_user/capabilities/").await;
    assert_eq!(caps.status, StatusCode::OK, "{}", caps.body);
    assert_eq!(caps.body["global"], json!(["catalogs.read"]));
    assert_eq!(caps.body["objects"], json!({"products": {"42": ["update"]}}));
    assert_eq!(caps.body["fe_permissions"], json!([]));
    let all = admin.get("/api/v1/active_user/capabilities/").await;
    assert!(all.body["global"].as_array().unwrap().iter().any(|p| p == "users.full"));
    server.anon().get("/api/v1/active_user/capabilities/").await.error(401, "AuthenticationRequired");
}
