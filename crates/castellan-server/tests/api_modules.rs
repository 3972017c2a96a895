//! Modules over HTTP (API.md §5, §10): the module catalogue and its built-ins, creating, updating, deactivating
//! and deleting modules, and who may do so.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use common::permissions::{
    allowed, bad_field, denied, grant, group_pk, keys, member, module, ok, quick_user, role_change, role_pk, strings, x_rev,
};
use reqwest::StatusCode;
use serde_json::json;

/// The modules the server ships.
const BUILTINS: [&str; 7] = ["users", "groups", "orgs", "roles", "modules", "permissions", "audit"];

/// The standard actions in the contract's order.
const STANDARD: [&str; 6] = ["access", "read", "create", "update", "delete", "full"];

// ---------------------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn module_list_is_paged_and_holds_the_builtins() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/v1/modules/").await;
    let body = ok(&r);
    assert_eq!(keys(body), strings(&["count", "next", "previous", "results"]));
    let results = body["results"].as_array().unwrap();
    assert_eq!(body["count"].as_i64().unwrap(), results.len() as i64);
    assert!(body["next"].is_null() && body["previous"].is_null());
    for id in BUILTINS {
        let m = results.iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("{id} is listed: {body}"));
        assert_eq!(keys(m), strings(&["id", "description", "is_active", "actions"]), "{m}");
        assert_eq!(m["is_active"], true, "{m}");
        assert!(m["description"].is_string());
        let actions: Vec<&str> = m["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(actions[..6], STANDARD, "{m}");
        if id == "permissions" {
            assert_eq!(actions[6..], ["check"], "{m}");
        } else {
            assert_eq!(actions.len(), 6, "{m}");
        }
    }
    let r = admin.get("/api/v1/modules/permissions/").await;
    assert_eq!(ok(&r)["actions"], json!(["access", "read", "create", "update", "delete", "full", "check"]));
    let r = admin.get("/api/v1/modules/?page_size=2").await;
    let body = ok(&r);
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    assert!(body["count"].as_i64().unwrap() >= 7);
    assert!(body["next"].as_str().is_some_and(|n| n.starts_with("http")), "{body}");

    server.anon().get("/api/v1/modules/").await.error(401, "AuthenticationRequired");
    server.anon().get("/api/v1/modules/users/").await.error(401, "AuthenticationRequired");
    let (_, nobody) = member(&server, &admin, "nobody", &[]).await;
    denied(&nobody.get("/api/v1/modules/").await, "This method needs permission read on modules.");
    admin.get("/api/v1/modules/nope/").await.error(404, "NotFound");
}

#[tokio::test]
async fn module_create_validates_and_answers_201() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = server.revision().await;
    let r = admin
        .post("/api/v1/modules/", json!({"id": "catalogs", "description": "Catalogs", "actions": ["publish", "archive", "read"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(keys(&r.body), strings(&["id", "description", "is_active", "actions"]));
    assert_eq!(r.body["id"], "catalogs");
    assert_eq!(r.body["description"], "Catalogs");
    assert_eq!(r.body["is_active"], true);
    let actions: Vec<&str> = r.body["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(actions[..6], STANDARD, "standard actions first: {}", r.body);
    assert_eq!(actions[6..].iter().copied().collect::<BTreeSet<_>>(), ["archive", "publish"].into_iter().collect(), "{}", r.body);
    assert_eq!(actions.len(), 8, "a standard action listed as custom is not repeated: {}", r.body);
    let rev = x_rev(&r);
    assert!(rev > before);
    assert_eq!(rev, server.revision().await);
    assert_eq!(ok(&admin.get("/api/v1/modules/catalogs/").await), &r.body);
    assert_eq!(ok(&admin.get("/api/v1/modules/catalogs").await), &r.body, "without the trailing slash");
    let list = admin.get("/api/v1/modules/").await;
    assert!(ok(&list)["results"].as_array().unwrap().iter().any(|m| m == &r.body));

    // Defaults: no description, active, no custom actions.
    let r = admin.post("/api/v1/modules/", json!({"id": "brands"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body, json!({"id": "brands", "description": "", "is_active": true, "actions": STANDARD}));

    let before = server.revision().await;
    admin.post("/api/v1/modules/", json!({"id": "catalogs"})).await.error(409, "Conflict");
    admin.post("/api/v1/modules/", json!({"id": "users", "description": "mine now"})).await.error(409, "Conflict");
    let cases = [
        (json!({"id": "Bad Id"}), "id"),
        (json!({"id": ""}), "id"),
        (json!({"id": "a".repeat(65)}), "id"),
        (json!({"id": 5}), "id"),
        (json!({"id": null}), "id"),
        (json!({"description": "no id"}), "id"),
        (json!({"id": "m1", "actions": "publish"}), "actions"),
        (json!({"id": "m2", "actions": [1]}), "actions"),
        (json!({"id": "m3", "actions": ["Not An Action"]}), "actions"),
        (json!({"id": "m4", "actions": [null]}), "actions"),
        (json!({"id": "m5", "actions": {"publish": true}}), "actions"),
        (json!({"id": "m6", "description": 5}), "description"),
        (json!({"id": "m7", "is_active": "yes"}), "is_active"),
        (json!({"id": "m8", "description": "x".repeat(100_000)}), "description"),
        (json!({"id": "m9", "actions": (0..59).map(|i| format!("act{i}")).collect::<Vec<_>>()}), "actions"),
    ];
    for (body, field) in cases {
        let r = admin.post("/api/v1/modules/", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} → {}", r.body);
        bad_field(&r, field);
    }
    admin.post("/api/v1/modules/", json!(["catalogs"])).await.error(400, "ValidationError");
    let r = admin.raw(reqwest::Method::POST, "/api/v1/modules/", "application/json", b"{\"id\": ".to_vec()).await;
    r.error(400, "ValidationError");
    assert_eq!(server.revision().await, before, "refused creations change nothing");
    for id in ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"] {
        admin.get(&format!("/api/v1/modules/{id}/")).await.error(404, "NotFound");
    }
}

#[tokio::test]
async fn module_writes_need_a_superuser() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "brands", "Brands", &[]).await;
    let g = group_pk(&admin, "Module keepers", None, json!({"modules": ["read", "create", "update", "delete"]})).await;
    let (_, keeper) = member(&server, &admin, "keeper", &[g]).await;
    assert_eq!(ok(&keeper.get("/api/v1/modules/brands/").await)["id"], "brands", "modules.read lets them read");
    assert!(ok(&keeper.get("/api/v1/modules/").await)["count"].as_i64().unwrap() >= 8);

    let before = server.revision().await;
    keeper.post("/api/v1/modules/", json!({"id": "mine"})).await.error(403, "PermissionDenied");
    keeper.patch("/api/v1/modules/brands/", json!({"description": "x"})).await.error(403, "PermissionDenied");
    keeper.patch("/api/v1/modules/brands/", json!({"is_active": false})).await.error(403, "PermissionDenied");
    keeper.put("/api/v1/modules/brands/", json!({"description": "x", "actions": ["fly"]})).await.error(403, "PermissionDenied");
    keeper.delete("/api/v1/modules/brands/").await.error(403, "PermissionDenied");
    keeper.delete("/api/v1/modules/nope/").await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);
    admin.get("/api/v1/modules/mine/").await.error(404, "NotFound");
    assert_eq!(ok(&admin.get("/api/v1/modules/brands/").await)["description"], "Brands");

    // Without modules.create the endpoint's own permission answers first.
    let (_, nobody) = member(&server, &admin, "nobody", &[]).await;
    let before = server.revision().await;
    denied(&nobody.post("/api/v1/modules/", json!({"id": "mine"})).await, "This method needs permission create on modules.");
    denied(&nobody.delete("/api/v1/modules/brands/").await, "This method needs permission delete on modules.");
    server.anon().post("/api/v1/modules/", json!({"id": "mine"})).await.error(401, "AuthenticationRequired");
    assert_eq!(server.revision().await, before);
}

#[tokio::test]
async fn builtin_modules_cannot_be_deactivated_or_deleted() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = server.revision().await;
    for id in BUILTINS {
        admin.delete(&format!("/api/v1/modules/{id}/")).await.error(409, "Conflict");
        admin.patch(&format!("/api/v1/modules/{id}/"), json!({"is_active": false})).await.error(409, "Conflict");
        admin
            .put(&format!("/api/v1/modules/{id}/"), json!({"description": "x", "is_active": false}))
            .await
            .error(409, "Conflict");
        let r = admin.get(&format!("/api/v1/modules/{id}/")).await;
        assert_eq!(ok(&r)["is_active"], true);
    }
    admin.delete("/api/v1/modules/nope/").await.error(404, "NotFound");
    admin.patch("/api/v1/modules/nope/", json!({"is_active": false})).await.error(404, "NotFound");
    admin.put("/api/v1/modules/nope/", json!({"description": "x"})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before, "refused writes change nothing");

    // A built-in module may be redescribed, but keeps the actions the server relies on (permissions.check).
    let r = admin.patch("/api/v1/modules/users/", json!({"description": "People"})).await;
    assert_eq!(ok(&r)["description"], "People");
    assert_eq!(r.body["is_active"], true);
    let r = admin.put("/api/v1/modules/permissions/", json!({"description": "Grants", "actions": []})).await;
    let r = if r.status == StatusCode::OK { admin.get("/api/v1/modules/permissions/").await } else { r };
    if r.status == StatusCode::OK {
        assert!(r.body["actions"].as_array().unwrap().contains(&json!("check")), "permissions.check is built in: {}", r.body);
    } else {
        r.error(409, "Conflict");
    }
}

#[tokio::test]
async fn module_update_validates_and_custom_modules_deactivate() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    let before = server.revision().await;
    bad_field(&admin.patch("/api/v1/modules/catalogs/", json!({"is_active": "no"})).await, "is_active");
    bad_field(&admin.patch("/api/v1/modules/catalogs/", json!({"actions": ["Bad Action"]})).await, "actions");
    bad_field(&admin.patch("/api/v1/modules/catalogs/", json!({"description": 1})).await, "description");
    assert_eq!(server.revision().await, before);

    let r = admin.patch("/api/v1/modules/catalogs/", json!({"is_active": false})).await;
    assert_eq!(ok(&r)["is_active"], false);
    assert_eq!(
        r.body["actions"],
        json!(["access", "read", "create", "update", "delete", "full", "publish"]),
        "PATCH keeps actions"
    );
    assert!(x_rev(&r) > before);
    let r = admin.patch("/api/v1/modules/catalogs/", json!({"actions": ["publish", "archive"]})).await;
    let actions: BTreeSet<String> =
        ok(&r)["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert!(actions.contains("archive") && actions.contains("publish"), "{}", r.body);
    assert_eq!(r.body["is_active"], false);
    let r = admin.put("/api/v1/modules/catalogs/", json!({"description": "Product catalogs", "is_active": true})).await;
    assert_eq!(ok(&r), &json!({"id": "catalogs", "description": "Product catalogs", "is_active": true, "actions": STANDARD}));
}

#[tokio::test]
async fn deleting_a_custom_module_deletes_its_grants() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    let g = group_pk(&admin, "Catalog team", None, json!({})).await;
    let u = quick_user(&admin, "cataloguer", json!({"groups": [g]})).await;
    let role = role_pk(&admin, "Catalog role").await;
    grant(&admin, &format!("roles/{role}"), "catalogs", &["read"]).await;
    grant(&admin, &format!("users/{u}"), "catalogs", &["publish"]).await;
    grant(&admin, &format!("groups/{g}"), "catalogs", &["update"]).await;
    let rev = role_change(&admin, role, "assign-users", "users", &[u]).await;
    for p in ["catalogs.read", "catalogs.publish", "catalogs.update"] {
        assert!(allowed(&admin, Some(u), p, rev).await, "{p} before the deletion");
    }

    let r = admin.delete("/api/v1/modules/catalogs/").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let rev = x_rev(&r);
    assert_eq!(rev, server.revision().await);
    admin.get("/api/v1/modules/catalogs/").await.error(404, "NotFound");
    admin.delete("/api/v1/modules/catalogs/").await.error(404, "NotFound");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/permissions/")).await), &json!({"items": []}));
    assert_eq!(ok(&admin.get(&format!("/api/v1/users/{u}/permissions/")).await), &json!({"items": []}));
    assert_eq!(ok(&admin.get(&format!("/api/v1/groups/{g}/permissions/")).await), &json!({"items": []}));
    assert_eq!(ok(&admin.get(&format!("/api/v1/groups/{g}/")).await)["permissions"], json!({}));
    for p in ["catalogs.read", "catalogs.publish", "catalogs.update"] {
        assert!(!allowed(&admin, Some(u), p, rev).await, "{p} after the deletion");
    }

    // Registering the id again starts from nothing: the old grants do not come back.
    module(&admin, "catalogs", "Catalogs again", &["publish"]).await;
    let rev = server.revision().await;
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/permissions/")).await), &json!({"items": []}));
    assert_eq!(ok(&admin.get(&format!("/api/v1/users/{u}/permissions/")).await), &json!({"items": []}));
    assert_eq!(ok(&admin.get(&format!("/api/v1/groups/{g}/")).await)["permissions"], json!({}));
    for p in ["catalogs.read", "catalogs.publish", "catalogs.update"] {
        assert!(!allowed(&admin, Some(u), p, rev).await, "{p} after re-registering");
    }
}
