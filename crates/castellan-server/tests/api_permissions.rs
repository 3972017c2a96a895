//! Modules, roles, per-module permissions and checks over HTTP (API.md §5, §6, §10, §11; seed 002): the module
//! catalogue and its built-ins, roles with their assignments, seed 002's per-module permission items for roles,
//! groups and users, their effect on enforcement, single and bulk checks with explanations and revisions.

mod common;

use std::collections::BTreeSet;

use common::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
const PW: &str = "Passw0rd!";

/// The modules the server ships.
const BUILTINS: [&str; 7] = ["users", "groups", "orgs", "roles", "modules", "permissions", "audit"];

/// The standard actions in the contract's order.
const STANDARD: [&str; 6] = ["access", "read", "create", "update", "delete", "full"];

const NEEDS_CHECK: &str = "This method needs permission check on permissions.";
const NEEDS_PERMISSIONS_READ: &str = "This method needs permission read on permissions.";
const NEEDS_PERMISSIONS_UPDATE: &str = "This method needs permission update on permissions.";

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("an object: {v}")).keys().cloned().collect()
}

fn strings(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `X-Revision` of a successful write.
fn x_rev(r: &Resp) -> i64 {
    r.revision().unwrap_or_else(|| panic!("X-Revision missing: {:?} {}", r.status, r.body))
}

fn ok(r: &Resp) -> &Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    &r.body
}

/// Asserts a 400 whose `errors` name `field`.
fn bad_field(r: &Resp, field: &str) {
    r.error(400, "ValidationError");
    assert!(r.fields().iter().any(|f| f == field), "expected an error on {field}: {}", r.body);
}

/// Asserts a 403 with exactly `detail`.
fn denied(r: &Resp, detail: &str) {
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], detail, "{}", r.body);
}

/// Creates a group as `c` and returns its key.
async fn group_pk(c: &Client, name: &str, parent: Option<i64>, permissions: Value) -> i64 {
    let r = c.post("/api/v1/groups/", json!({"name": name, "parent": parent, "permissions": permissions})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Creates a user in `groups` with the default password, logs them in, and returns their key and client.
async fn member(server: &TestServer, admin: &Client, username: &str, groups: &[i64]) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({"groups": groups})).await;
    (pk, server.login(username, PW).await)
}

/// Creates a user without a password (fast) in `groups`.
async fn quick_user(admin: &Client, username: &str, extra: Value) -> i64 {
    let mut body = json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": []});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Creates a role in the caller's organisation (or `org`) and returns its key.
async fn role_pk(c: &Client, name: &str) -> i64 {
    let r = c.post("/api/v1/roles/", json!({"name": name})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Registers a module and returns its representation.
async fn module(admin: &Client, id: &str, description: &str, actions: &[&str]) -> Value {
    let r = admin.post("/api/v1/modules/", json!({"id": id, "description": description, "actions": actions})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// PUT `{"permissions": actions}` on `/api/v1/{subject}/permissions/{module}/` (e.g. subject `roles/3`), expecting 200;
/// returns the write's revision.
async fn grant(c: &Client, subject: &str, module: &str, actions: &[&str]) -> i64 {
    let r = c.put(&format!("/api/v1/{subject}/permissions/{module}/"), json!({"permissions": actions})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    x_rev(&r)
}

/// PATCH `/api/v1/roles/{role}/{action}/` with `{field: pks}`, expecting 200; returns the revision.
async fn role_change(c: &Client, role: i64, action: &str, field: &str, pks: &[i64]) -> i64 {
    let r = c.patch(&format!("/api/v1/roles/{role}/{action}/"), json!({ field: pks })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    x_rev(&r)
}

async fn check(c: &Client, body: Value) -> Resp {
    c.post("/api/v1/check/", body).await
}

/// Whether `user` (None: the caller) holds `permission`, as of at least `revision`.
async fn allowed(c: &Client, user: Option<i64>, permission: &str, revision: i64) -> bool {
    let mut body = json!({"permission": permission, "at_least_revision": revision});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let r = check(c, body).await;
    let body = ok(&r);
    assert!(body["revision"].as_i64().unwrap() >= revision, "{body}");
    body["allowed"].as_bool().unwrap()
}

/// A check on an object, as of at least `revision`.
async fn allowed_on(c: &Client, user: i64, permission: &str, model: Option<&str>, object_pk: Value, revision: i64) -> bool {
    let mut body = json!({"user": user, "permission": permission, "object_pk": object_pk, "at_least_revision": revision});
    if let Some(m) = model {
        body["model"] = json!(m);
    }
    let r = check(c, body).await;
    ok(&r)["allowed"].as_bool().unwrap()
}

/// The caller's own key and organisation.
async fn me(c: &Client) -> (i64, i64) {
    let r = c.get("/api/v1/users/me/").await;
    let body = ok(&r);
    (body["pk"].as_i64().unwrap(), body["org"].as_i64().unwrap())
}

async fn second_org(admin: &Client) -> i64 {
    let r = admin.post("/api/v1/orgs/", json!({"name": "Other", "slug": "other"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Registers an object (as `c`), optionally under a parent; returns the revision.
async fn object(c: &Client, model: &str, key: &str, parent: Option<(&str, &str)>) -> i64 {
    let mut body = json!({"model": model, "object_pk": key});
    if let Some((m, k)) = parent {
        body["parent_model"] = json!(m);
        body["parent_pk"] = json!(k);
    }
    let r = c.post("/api/v1/objects/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    x_rev(&r)
}

/// Grants a user one permission on one object (seed 003 assign); returns the write's revision.
async fn grant_on_object(admin: &Client, user: i64, module: &str, action: &str, model: &str, key: &str) -> i64 {
    let r = admin
        .post(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{user}/assign/"),
            json!({"permissions": [format!("{module}.{action}")], "model": model, "object_pk": key}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    x_rev(&r)
}

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

// ---------------------------------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn roles_crud_with_org_scoping() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, org1) = me(&admin).await;
    let before = server.revision().await;
    let r = admin.post("/api/v1/roles/", json!({"name": "Editors", "description": "Edit things"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(x_rev(&r) > before);
    for k in ["pk", "name", "description", "org", "users", "groups"] {
        assert!(r.body.get(k).is_some(), "{k} in {}", r.body);
    }
    assert_eq!(r.body["name"], "Editors");
    assert_eq!(r.body["description"], "Edit things");
    assert_eq!(r.body["org"], org1, "a role created without org belongs to the creator's");
    assert_eq!(r.body["users"], json!([]));
    assert_eq!(r.body["groups"], json!([]));
    let editors = r.body["pk"].as_i64().unwrap();
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{editors}/")).await), &r.body);
    let list = admin.get("/api/v1/roles/").await;
    assert_eq!(keys(ok(&list)), strings(&["count", "next", "previous", "results"]));
    assert!(list.body["results"].as_array().unwrap().contains(&r.body));
    let r58 = admin
        .post("/api/v1/modules/", json!({"id": "wide", "actions": (0..58).map(|i| format!("act{i}")).collect::<Vec<_>>()}))
        .await;
    assert_eq!(r58.body["actions"].as_array().map(Vec::len), Some(64), "64 actions fit: {}", r58.body);

    let before = server.revision().await;
    admin.post("/api/v1/roles/", json!({"name": "Editors"})).await.error(409, "Conflict");
    bad_field(&admin.post("/api/v1/roles/", json!({"description": "no name"})).await, "name");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": ""})).await, "name");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": 5})).await, "name");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": "x", "org": 99_999})).await, "org");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": "x", "org": "one"})).await, "org");
    assert_eq!(server.revision().await, before);

    let org2 = second_org(&admin).await;
    let r = admin.post("/api/v1/roles/", json!({"name": "Editors", "org": org2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "the same name in another organisation: {}", r.body);
    assert_eq!(r.body["org"], org2);
    let foreign = r.body["pk"].as_i64().unwrap();

    let viewers = role_pk(&admin, "Viewers").await;
    let found = admin.get("/api/v1/roles/?search=view").await;
    assert_eq!(ok(&found)["count"], 1, "{}", found.body);
    assert_eq!(found.body["results"][0]["pk"], viewers);
    let before = server.revision().await;
    admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"name": "Editors"})).await.error(409, "Conflict");
    bad_field(&admin.put(&format!("/api/v1/roles/{viewers}/"), json!({"description": "x"})).await, "name");
    bad_field(&admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"org": org2})).await, "org");
    bad_field(&admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"name": "  "})).await, "name");
    assert_eq!(server.revision().await, before);
    let r = admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"description": "Look only"})).await;
    assert_eq!(ok(&r)["description"], "Look only");
    assert_eq!(r.body["name"], "Viewers");
    assert!(x_rev(&r) > before);
    let r = admin.put(&format!("/api/v1/roles/{viewers}/"), json!({"name": "Readers"})).await;
    assert_eq!(ok(&r)["name"], "Readers");

    // A non-superuser sees only the roles of their organisation.
    let g = group_pk(&admin, "Role admins", None, json!({"roles": ["full"], "permissions": ["read"]})).await;
    let (_, ra) = member(&server, &admin, "roleadmin", &[g]).await;
    let list = ra.get("/api/v1/roles/").await;
    let results = ok(&list)["results"].as_array().unwrap();
    assert!(results.iter().all(|x| x["org"] == org1), "{}", list.body);
    assert_eq!(list.body["count"].as_i64().unwrap(), results.len() as i64);
    assert!(results.iter().any(|x| x["pk"] == editors));
    assert!(!results.iter().any(|x| x["pk"] == foreign));
    let before = server.revision().await;
    ra.get(&format!("/api/v1/roles/{foreign}/")).await.error(404, "NotFound");
    ra.patch(&format!("/api/v1/roles/{foreign}/"), json!({"description": "x"})).await.error(404, "NotFound");
    ra.put(&format!("/api/v1/roles/{foreign}/"), json!({"name": "x"})).await.error(404, "NotFound");
    ra.delete(&format!("/api/v1/roles/{foreign}/")).await.error(404, "NotFound");
    ra.patch(&format!("/api/v1/roles/{foreign}/assign-users/"), json!({"users": []})).await.error(404, "NotFound");
    ra.get(&format!("/api/v1/roles/{foreign}/permissions/")).await.error(404, "NotFound");
    ra.get(&format!("/api/v1/roles/{foreign}/permissions/users/")).await.error(404, "NotFound");
    let r = ra.post("/api/v1/roles/", json!({"name": "Theirs", "org": org2})).await;
    assert!(matches!(r.status.as_u16(), 400 | 404), "creating a role in another organisation: {}", r.body);
    assert_eq!(server.revision().await, before);
    let r = ra.post("/api/v1/roles/", json!({"name": "Mine"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["org"], org1);

    // Deleting.
    let r = admin.delete(&format!("/api/v1/roles/{editors}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(x_rev(&r) > 0);
    admin.get(&format!("/api/v1/roles/{editors}/")).await.error(404, "NotFound");
    let before = server.revision().await;
    admin.delete(&format!("/api/v1/roles/{editors}/")).await.error(404, "NotFound");
    admin.get("/api/v1/roles/99999/").await.error(404, "NotFound");
    admin.get("/api/v1/roles/abc/").await.error(404, "NotFound");
    admin.patch("/api/v1/roles/99999/", json!({"name": "x"})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);

    // 401 and the endpoint's permission.
    let (_, nobody) = member(&server, &admin, "nobody", &[]).await;
    let before = server.revision().await;
    server.anon().get("/api/v1/roles/").await.error(401, "AuthenticationRequired");
    server.anon().post("/api/v1/roles/", json!({"name": "x"})).await.error(401, "AuthenticationRequired");
    denied(&nobody.get("/api/v1/roles/").await, "This method needs permission read on roles.");
    denied(&nobody.post("/api/v1/roles/", json!({"name": "x"})).await, "This method needs permission create on roles.");
    denied(&nobody.get(&format!("/api/v1/roles/{viewers}/")).await, "This method needs permission read on roles.");
    denied(&nobody.delete(&format!("/api/v1/roles/{viewers}/")).await, "This method needs permission delete on roles.");
    denied(
        &nobody.patch(&format!("/api/v1/roles/{viewers}/assign-users/"), json!({"users": []})).await,
        "This method needs permission update on roles.",
    );
    assert_eq!(server.revision().await, before);
}

#[tokio::test]
async fn role_assignments() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let g2 = group_pk(&admin, "Team 2", None, json!({})).await;
    let u1 = quick_user(&admin, "one", json!({"groups": [g]})).await;
    let u2 = quick_user(&admin, "two", json!({})).await;
    let role = role_pk(&admin, "Role").await;

    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u2, u1]})).await;
    assert_eq!(ok(&r)["pk"], role);
    assert_eq!(r.body["users"], json!([u1, u2]));
    assert_eq!(r.body["groups"], json!([]));
    assert_eq!(x_rev(&r), server.revision().await);
    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [g, g2]})).await;
    assert_eq!(ok(&r)["groups"], json!([g, g2]));
    assert_eq!(r.body["users"], json!([u1, u2]));
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/")).await)["groups"], json!([g, g2]));
    let r = admin.patch(&format!("/api/v1/roles/{role}/remove-users/"), json!({"users": [u2]})).await;
    assert_eq!(ok(&r)["users"], json!([u1]));
    let r = admin.patch(&format!("/api/v1/roles/{role}/remove-groups/"), json!({"groups": [g2]})).await;
    assert_eq!(ok(&r)["groups"], json!([g]));
    // Assigning twice is one assignment; removing what is not assigned is harmless.
    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u1]})).await;
    assert_eq!(ok(&r)["users"], json!([u1]));
    let r = admin.patch(&format!("/api/v1/roles/{role}/remove-users/"), json!({"users": [u2]})).await;
    assert_eq!(ok(&r)["users"], json!([u1]));

    let org2 = second_org(&admin).await;
    let stranger = quick_user(&admin, "stranger", json!({"org": org2})).await;
    let before = server.revision().await;
    admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [99_999]})).await.error(404, "NotFound");
    admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u2, 99_999]})).await.error(404, "NotFound");
    admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [99_999]})).await.error(404, "NotFound");
    admin.patch(&format!("/api/v1/roles/{role}/remove-groups/"), json!({"groups": [99_999]})).await.error(404, "NotFound");
    admin.patch("/api/v1/roles/99999/assign-users/", json!({"users": [u2]})).await.error(404, "NotFound");
    let past = json!({"users": [u2], "expires_at": "2000-01-01T00:00:00Z"});
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), past).await, "expires_at");
    let past = json!({"groups": [g2], "expires_at": "2001-01-01T00:00:00.000000Z"});
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), past).await, "expires_at");
    let garbage = json!({"users": [u2], "expires_at": "tomorrow"});
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), garbage).await, "expires_at");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({})).await, "users");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": "x"})).await, "users");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [0]})).await, "groups");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"users": [u2]})).await, "groups");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [stranger]})).await, "users");
    assert_eq!(server.revision().await, before, "refused assignments change nothing");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/")).await)["users"], json!([u1]));

    let r = admin
        .patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u2], "expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    assert_eq!(ok(&r)["users"], json!([u1, u2]), "an assignment that expires later counts now");

    // Deleting a role deletes its assignments and its grants.
    grant(&admin, &format!("roles/{role}"), "users", &["read"]).await;
    let (_, three) = member(&server, &admin, "three", &[]).await;
    let three_pk = me(&three).await.0;
    role_change(&admin, role, "assign-users", "users", &[three_pk]).await;
    assert_eq!(three.get("/api/v1/users/").await.status, StatusCode::OK);
    let r = admin.delete(&format!("/api/v1/roles/{role}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    denied(&three.get("/api/v1/users/").await, "This method needs permission read on users.");
}

#[tokio::test]
async fn role_assignment_needs_what_the_role_confers() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Role editors", None, json!({"roles": ["read", "update"], "users": ["read"]})).await;
    let (_, caller) = member(&server, &admin, "caller", &[g]).await;
    let target = quick_user(&admin, "target", json!({"groups": [g]})).await;
    let strong = role_pk(&admin, "Deleters").await;
    grant(&admin, &format!("roles/{strong}"), "users", &["delete"]).await;
    let weak = role_pk(&admin, "Readers").await;
    grant(&admin, &format!("roles/{weak}"), "users", &["read"]).await;

    let before = server.revision().await;
    let r = caller.patch(&format!("/api/v1/roles/{strong}/assign-users/"), json!({"users": [target]})).await;
    r.error(403, "PermissionDenied");
    caller.patch(&format!("/api/v1/roles/{strong}/assign-groups/"), json!({"groups": [g]})).await.error(403, "PermissionDenied");
    let r = caller.patch(&format!("/api/v1/roles/{strong}/assign-users/"), json!({"users": [me(&caller).await.0]})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(server.revision().await, before, "refused assignments change nothing");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{strong}/")).await)["users"], json!([]));

    let r = caller.patch(&format!("/api/v1/roles/{weak}/assign-users/"), json!({"users": [target]})).await;
    assert_eq!(ok(&r)["users"], json!([target]), "what the caller holds may be assigned");

    // Revoking needs holding what is revoked.
    role_change(&admin, strong, "assign-users", "users", &[target]).await;
    let before = server.revision().await;
    caller
        .patch(&format!("/api/v1/roles/{strong}/remove-users/"), json!({"users": [target]}))
        .await
        .error(403, "PermissionDenied");
    assert_eq!(server.revision().await, before);
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{strong}/")).await)["users"], json!([target]));
    let r = caller.patch(&format!("/api/v1/roles/{weak}/remove-users/"), json!({"users": [target]})).await;
    assert_eq!(ok(&r)["users"], json!([]));

    // Users outside the caller's sight answer 404 before dominance is considered.
    let outsider = quick_user(&admin, "outsider", json!({})).await;
    let before = server.revision().await;
    caller.patch(&format!("/api/v1/roles/{weak}/assign-users/"), json!({"users": [outsider]})).await.error(404, "NotFound");
    caller.patch(&format!("/api/v1/roles/{strong}/assign-users/"), json!({"users": [outsider]})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-module permissions (seed 002)
// ---------------------------------------------------------------------------------------------------------------

/// Seed 002's item.
fn item(module: &str, description: &str, active: bool, permissions: &[&str]) -> Value {
    json!({
        "module_id": module,
        "module_description": description,
        "is_module_active": active,
        "permissions": permissions,
        "_links": [{"href": format!("/api/v1/modules/{module}/"), "rel": "module", "type": "GET"}]
    })
}

async fn description(admin: &Client, module: &str) -> String {
    ok(&admin.get(&format!("/api/v1/modules/{module}/")).await)["description"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn role_permissions_have_seed_002_shape() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "brands", "Správa značek", &[]).await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    let users_description = description(&admin, "users").await;
    let role = role_pk(&admin, "Brand managers").await;
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/permissions/")).await), &json!({"items": []}));

    let before = server.revision().await;
    let r = admin.put(&format!("/api/v1/roles/{role}/permissions/brands/"), json!({"permissions": ["read", "create"]})).await;
    assert_eq!(ok(&r), &item("brands", "Správa značek", true, &["read", "create"]));
    assert!(x_rev(&r) > before);
    let r = admin.put(&format!("/api/v1/roles/{role}/permissions/users/"), json!({"permissions": ["full"]})).await;
    assert_eq!(ok(&r), &item("users", &users_description, true, &["full"]));
    let r = admin.put(&format!("/api/v1/roles/{role}/permissions/catalogs/"), json!({"permissions": ["publish", "read"]})).await;
    assert_eq!(ok(&r), &item("catalogs", "Catalogs", true, &["read", "publish"]), "standard actions first, then custom ones");

    let list = admin.get(&format!("/api/v1/roles/{role}/permissions/")).await;
    let expected = json!({"items": [
        item("brands", "Správa značek", true, &["read", "create"]),
        item("catalogs", "Catalogs", true, &["read", "publish"]),
        item("users", &users_description, true, &["full"]),
    ]});
    assert_eq!(ok(&list), &expected, "not paginated, one item per module");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/permissions")).await), &expected, "without the trailing slash");
    let one = admin.get(&format!("/api/v1/roles/{role}/permissions/brands/")).await;
    assert_eq!(ok(&one), &item("brands", "Správa značek", true, &["read", "create"]));
    let none = admin.get(&format!("/api/v1/roles/{role}/permissions/groups/")).await;
    assert_eq!(ok(&none), &item("groups", &description(&admin, "groups").await, true, &[]), "a module without grants");

    let before = server.revision().await;
    admin.get(&format!("/api/v1/roles/{role}/permissions/nope/")).await.error(404, "NotFound");
    admin.get("/api/v1/roles/99999/permissions/").await.error(404, "NotFound");
    admin.get("/api/v1/roles/99999/permissions/brands/").await.error(404, "NotFound");
    admin.get("/api/v1/roles/abc/permissions/brands/").await.error(404, "NotFound");
    admin.put("/api/v1/roles/99999/permissions/brands/", json!({"permissions": ["read"]})).await.error(404, "NotFound");
    admin.put(&format!("/api/v1/roles/{role}/permissions/nope/"), json!({"permissions": ["read"]})).await.error(404, "NotFound");

    let path = format!("/api/v1/roles/{role}/permissions/brands/");
    let cases = [
        json!({"permissions": ["read", "read"]}),
        json!({"permissions": ["fly"]}),
        json!({"permissions": ["publish"]}),
        json!({"permissions": "read"}),
        json!({"permissions": [1]}),
        json!({"permissions": null}),
        json!({"permissions": {"read": true}}),
    ];
    for body in cases {
        let r = admin.put(&path, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} → {}", r.body);
        bad_field(&r, "permissions");
    }
    let r = admin.put(&path, json!({})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["permissions"], "a missing field is named: {}", r.body);
    let r = admin.put(&path, json!({"module_id": "brands"})).await;
    assert_eq!(r.fields(), ["permissions"], "{}", r.body);
    admin.put(&path, json!(["read"])).await.error(400, "ValidationError");
    assert_eq!(server.revision().await, before, "refused writes change nothing");
    assert_eq!(ok(&admin.get(&path).await)["permissions"], json!(["read", "create"]));

    // [] revokes everything on the module.
    let r = admin.put(&path, json!({"permissions": []})).await;
    assert_eq!(ok(&r), &item("brands", "Správa značek", true, &[]));
    assert!(x_rev(&r) > before);
    let list = admin.get(&format!("/api/v1/roles/{role}/permissions/")).await;
    let modules: Vec<&str> = ok(&list)["items"].as_array().unwrap().iter().map(|i| i["module_id"].as_str().unwrap()).collect();
    assert_eq!(modules, ["catalogs", "users"]);
    assert_eq!(ok(&admin.get(&path).await)["permissions"], json!([]));

    // An inactive module shows as such.
    admin.patch("/api/v1/modules/catalogs/", json!({"is_active": false})).await;
    let one = admin.get(&format!("/api/v1/roles/{role}/permissions/catalogs/")).await;
    assert_eq!(ok(&one), &item("catalogs", "Catalogs", false, &["read", "publish"]));
}

#[tokio::test]
async fn group_and_user_permissions_have_the_same_shape() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "brands", "Brands", &["publish"]).await;
    let users_description = description(&admin, "users").await;
    let g = group_pk(&admin, "Brand team", None, json!({"users": ["read"]})).await;
    let list = admin.get(&format!("/api/v1/groups/{g}/permissions/")).await;
    assert_eq!(
        ok(&list),
        &json!({"items": [item("users", &users_description, true, &["read"])]}),
        "POSTed permissions are listed"
    );

    let r = admin
        .put(&format!("/api/v1/groups/{g}/permissions/brands/"), json!({"permissions": ["update", "read", "publish"]}))
        .await;
    assert_eq!(ok(&r), &item("brands", "Brands", true, &["read", "update", "publish"]));
    assert!(x_rev(&r) > 0);
    let group = admin.get(&format!("/api/v1/groups/{g}/")).await;
    assert_eq!(
        ok(&group)["permissions"],
        json!({"brands": ["read", "update", "publish"], "users": ["read"]}),
        "the group's own field"
    );
    let list = admin.get(&format!("/api/v1/groups/{g}/permissions/")).await;
    assert_eq!(
        ok(&list),
        &json!({"items": [item("brands", "Brands", true, &["read", "update", "publish"]), item("users", &users_description, true, &["read"])]})
    );
    let one = admin.get(&format!("/api/v1/groups/{g}/permissions/brands/")).await;
    assert_eq!(ok(&one), &item("brands", "Brands", true, &["read", "update", "publish"]));
    let r = admin.put(&format!("/api/v1/groups/{g}/permissions/users/"), json!({"permissions": []})).await;
    assert_eq!(ok(&r), &item("users", &users_description, true, &[]));
    assert_eq!(
        ok(&admin.get(&format!("/api/v1/groups/{g}/")).await)["permissions"],
        json!({"brands": ["read", "update", "publish"]})
    );

    let before = server.revision().await;
    bad_field(&admin.put(&format!("/api/v1/groups/{g}/permissions/brands/"), json!({})).await, "permissions");
    bad_field(
        &admin.put(&format!("/api/v1/groups/{g}/permissions/brands/"), json!({"permissions": ["read", "read"]})).await,
        "permissions",
    );
    bad_field(
        &admin.put(&format!("/api/v1/groups/{g}/permissions/users/"), json!({"permissions": ["publish"]})).await,
        "permissions",
    );
    admin.get("/api/v1/groups/99999/permissions/").await.error(404, "NotFound");
    admin.get(&format!("/api/v1/groups/{g}/permissions/nope/")).await.error(404, "NotFound");
    admin.put("/api/v1/groups/99999/permissions/brands/", json!({"permissions": []})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);

    let u = quick_user(&admin, "branded", json!({"groups": [g]}));
    let u = u.await;
    assert_eq!(ok(&admin.get(&format!("/api/v1/users/{u}/permissions/")).await), &json!({"items": []}), "only direct grants");
    let r = admin.put(&format!("/api/v1/users/{u}/permissions/brands/"), json!({"permissions": ["delete"]})).await;
    assert_eq!(ok(&r), &item("brands", "Brands", true, &["delete"]));
    assert_eq!(
        ok(&admin.get(&format!("/api/v1/users/{u}/permissions/")).await),
        &json!({"items": [item("brands", "Brands", true, &["delete"])]})
    );
    assert_eq!(
        ok(&admin.get(&format!("/api/v1/users/{u}/permissions/brands/")).await),
        &item("brands", "Brands", true, &["delete"])
    );
    let before = server.revision().await;
    bad_field(
        &admin.put(&format!("/api/v1/users/{u}/permissions/brands/"), json!({"permission": ["read"]})).await,
        "permissions",
    );
    admin.get("/api/v1/users/99999/permissions/").await.error(404, "NotFound");
    admin.get(&format!("/api/v1/users/{u}/permissions/nope/")).await.error(404, "NotFound");
    admin.put("/api/v1/users/99999/permissions/brands/", json!({"permissions": []})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);
    let r = admin.put(&format!("/api/v1/users/{u}/permissions/brands/"), json!({"permissions": []})).await;
    assert_eq!(ok(&r)["permissions"], json!([]));
    assert_eq!(ok(&admin.get(&format!("/api/v1/users/{u}/permissions/")).await), &json!({"items": []}));
}

#[tokio::test]
async fn permission_endpoints_need_permissions_read_and_update() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let role = role_pk(&admin, "Role").await;
    let (nobody_pk, nobody) = member(&server, &admin, "nobody", &[g]).await;
    let reader_group = group_pk(&admin, "Readers", Some(g), json!({"permissions": ["read"]})).await;
    let (_, reader) = member(&server, &admin, "reader", &[g, reader_group]).await;
    let subjects = [format!("roles/{role}"), format!("groups/{g}"), format!("users/{nobody_pk}")];

    let before = server.revision().await;
    for s in &subjects {
        denied(&nobody.get(&format!("/api/v1/{s}/permissions/")).await, NEEDS_PERMISSIONS_READ);
        denied(&nobody.get(&format!("/api/v1/{s}/permissions/users/")).await, NEEDS_PERMISSIONS_READ);
        denied(
            &nobody.put(&format!("/api/v1/{s}/permissions/users/"), json!({"permissions": []})).await,
            NEEDS_PERMISSIONS_UPDATE,
        );
        // The endpoint's permission is decided before any lookup.
        denied(&nobody.put(&format!("/api/v1/{s}/permissions/nope/"), json!({})).await, NEEDS_PERMISSIONS_UPDATE);
        server.anon().get(&format!("/api/v1/{s}/permissions/")).await.error(401, "AuthenticationRequired");
        server
            .anon()
            .put(&format!("/api/v1/{s}/permissions/users/"), json!({"permissions": []}))
            .await
            .error(401, "AuthenticationRequired");

        assert_eq!(ok(&reader.get(&format!("/api/v1/{s}/permissions/")).await), &json!({"items": []}));
        assert_eq!(ok(&reader.get(&format!("/api/v1/{s}/permissions/users/")).await)["permissions"], json!([]));
        denied(
            &reader.put(&format!("/api/v1/{s}/permissions/users/"), json!({"permissions": []})).await,
            NEEDS_PERMISSIONS_UPDATE,
        );
    }
    denied(&nobody.get("/api/v1/roles/99999/permissions/").await, NEEDS_PERMISSIONS_READ);
    assert_eq!(server.revision().await, before, "refused writes change nothing");
}

#[tokio::test]
async fn permission_puts_are_dominance_checked_and_scoped() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Granters", None, json!({"permissions": ["read", "update"], "users": ["read"]})).await;
    let (caller_pk, caller) = member(&server, &admin, "granter", &[g]).await;
    let peer = quick_user(&admin, "peer", json!({"groups": [g]})).await;
    let role = role_pk(&admin, "Role").await;

    let r = caller.put(&format!("/api/v1/roles/{role}/permissions/users/"), json!({"permissions": ["read"]})).await;
    assert_eq!(ok(&r)["permissions"], json!(["read"]), "what the caller holds may be granted");
    let r = caller.put(&format!("/api/v1/users/{peer}/permissions/users/"), json!({"permissions": ["access", "read"]})).await;
    assert_eq!(ok(&r)["permissions"], json!(["access", "read"]));

    admin.put(&format!("/api/v1/roles/{role}/permissions/groups/"), json!({"permissions": ["delete"]})).await;
    let before = server.revision().await;
    let cases = [
        (format!("roles/{role}"), "users", json!(["read", "delete"])),
        (format!("roles/{role}"), "users", json!(["full"])),
        (format!("roles/{role}"), "groups", json!([])),
        (format!("roles/{role}"), "groups", json!(["read"])),
        (format!("groups/{g}"), "users", json!(["full"])),
        (format!("groups/{g}"), "permissions", json!(["full"])),
        (format!("users/{caller_pk}"), "users", json!(["update"])),
        (format!("users/{caller_pk}"), "permissions", json!(["check", "delete"])),
        (format!("users/{peer}"), "roles", json!(["read"])),
    ];
    for (subject, module, actions) in cases {
        let r = caller.put(&format!("/api/v1/{subject}/permissions/{module}/"), json!({"permissions": actions})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{subject} {module} {actions} → {}", r.body);
        r.error(403, "PermissionDenied");
    }
    assert_eq!(server.revision().await, before, "refused grants change nothing");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/permissions/groups/")).await)["permissions"], json!(["delete"]));
    assert_eq!(
        ok(&admin.get(&format!("/api/v1/groups/{g}/")).await)["permissions"],
        json!({"permissions": ["read", "update"], "users": ["read"]})
    );

    // Another organisation's and invisible subjects answer 404.
    let org2 = second_org(&admin).await;
    let r = admin.post("/api/v1/roles/", json!({"name": "Foreign", "org": org2})).await;
    let foreign_role = r.body["pk"].as_i64().unwrap();
    let foreign_user = quick_user(&admin, "foreigner", json!({"org": org2})).await;
    let outsider = quick_user(&admin, "outsider", json!({})).await;
    let hidden_group = group_pk(&admin, "Hidden", None, json!({})).await;
    let before = server.revision().await;
    for s in [
        format!("roles/{foreign_role}"),
        format!("users/{foreign_user}"),
        format!("users/{outsider}"),
        format!("groups/{hidden_group}"),
    ] {
        caller.get(&format!("/api/v1/{s}/permissions/")).await.error(404, "NotFound");
        caller.get(&format!("/api/v1/{s}/permissions/users/")).await.error(404, "NotFound");
        caller.put(&format!("/api/v1/{s}/permissions/users/"), json!({"permissions": ["read"]})).await.error(404, "NotFound");
    }
    assert_eq!(server.revision().await, before);
}

// ---------------------------------------------------------------------------------------------------------------
// Enforcement
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn roles_and_direct_grants_are_enforced() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let parent = group_pk(&admin, "Parent", None, json!({})).await;
    let child = group_pk(&admin, "Child", Some(parent), json!({})).await;
    let (_, u) = member(&server, &admin, "viauser", &[parent]).await;
    let (_, w) = member(&server, &admin, "viachild", &[child]).await;
    let (v_pk, v) = member(&server, &admin, "direct", &[]).await;
    let needs = "This method needs permission read on users.";
    denied(&u.get("/api/v1/users/").await, needs);
    denied(&w.get("/api/v1/users/").await, needs);
    denied(&v.get("/api/v1/users/").await, needs);

    let role = role_pk(&admin, "User readers").await;
    grant(&admin, &format!("roles/{role}"), "users", &["read"]).await;
    role_change(&admin, role, "assign-groups", "groups", &[parent]).await;
    assert_eq!(u.get("/api/v1/users/").await.status, StatusCode::OK, "through a role assigned to the user's group");
    assert_eq!(w.get("/api/v1/users/").await.status, StatusCode::OK, "through a role of an ancestor group");
    denied(&u.delete(&format!("/api/v1/users/{v_pk}/")).await, "This method needs permission delete on users.");
    role_change(&admin, role, "remove-groups", "groups", &[parent]).await;
    denied(&u.get("/api/v1/users/").await, needs);
    denied(&w.get("/api/v1/users/").await, needs);

    role_change(&admin, role, "assign-users", "users", &[v_pk]).await;
    assert_eq!(v.get("/api/v1/users/").await.status, StatusCode::OK, "through a role assigned to the user");
    role_change(&admin, role, "remove-users", "users", &[v_pk]).await;
    denied(&v.get("/api/v1/users/").await, needs);

    grant(&admin, &format!("users/{v_pk}"), "users", &["read"]).await;
    assert_eq!(v.get("/api/v1/users/").await.status, StatusCode::OK, "through a direct grant");
    grant(&admin, &format!("users/{v_pk}"), "users", &[]).await;
    denied(&v.get("/api/v1/users/").await, needs);

    // A role whose module permission changes changes what its holders may do.
    role_change(&admin, role, "assign-users", "users", &[v_pk]).await;
    assert_eq!(v.get("/api/v1/users/").await.status, StatusCode::OK);
    grant(&admin, &format!("roles/{role}"), "users", &["create"]).await;
    denied(&v.get("/api/v1/users/").await, needs);
}

#[tokio::test]
async fn deactivating_a_module_stops_its_grants() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    let (v_pk, v) = member(&server, &admin, "cataloguer", &[]).await;
    let rev = grant(&admin, &format!("users/{v_pk}"), "catalogs", &["read"]).await;
    assert!(allowed(&v, None, "catalogs.read", rev).await);

    let r = admin.patch("/api/v1/modules/catalogs/", json!({"is_active": false})).await;
    assert_eq!(ok(&r)["is_active"], false);
    let rev = x_rev(&r);
    assert!(!allowed(&v, None, "catalogs.read", rev).await, "an inactive module grants nothing");
    assert!(!allowed(&v, None, "catalogs.access", rev).await);
    let r = check(&admin, json!({"user": v_pk, "permission": "catalogs.read", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], false);
    let why = r.body["explanation"].as_array().unwrap();
    assert_eq!(why.len(), 1, "{}", r.body);
    assert!(why[0].as_str().unwrap().contains("inactive") && why[0].as_str().unwrap().contains("catalogs"), "{}", r.body);
    assert_eq!(ok(&admin.get(&format!("/api/v1/users/{v_pk}/permissions/catalogs/")).await)["is_module_active"], false);

    let r = admin.patch("/api/v1/modules/catalogs/", json!({"is_active": true})).await;
    assert!(allowed(&v, None, "catalogs.read", x_rev(&r)).await, "reactivated");
}

// ---------------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn checks_about_oneself_and_others() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({"users": ["read"]})).await;
    let (u_pk, u) = member(&server, &admin, "asker", &[g]).await;
    let v = quick_user(&admin, "peer", json!({"groups": [g]})).await;
    let outsider = quick_user(&admin, "outsider", json!({})).await;
    let org2 = second_org(&admin).await;
    let foreign = quick_user(&admin, "foreigner", json!({"org": org2})).await;

    let rev = server.revision().await;
    let r = check(&u, json!({"permission": "users.read", "at_least_revision": rev})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision"]), "{}", r.body);
    assert_eq!(r.body["allowed"], true);
    assert_eq!(r.body["revision"], rev);
    let r = check(&u, json!({"permission": "users.read"})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision"]), "no permission is needed about oneself: {}", r.body);
    let r = check(&u, json!({"permission": "users.delete", "user": u_pk, "at_least_revision": rev})).await;
    assert_eq!(ok(&r), &json!({"allowed": false, "revision": rev}));

    let before = server.revision().await;
    denied(&check(&u, json!({"permission": "users.read", "user": v})).await, NEEDS_CHECK);
    denied(&check(&u, json!({"permission": "users.read", "user": outsider})).await, NEEDS_CHECK);
    denied(&check(&u, json!({"permission": "users.read", "user": 99_999})).await, NEEDS_CHECK);
    server.anon().post("/api/v1/check/", json!({"permission": "users.read"})).await.error(401, "AuthenticationRequired");
    assert_eq!(server.revision().await, before, "checks write nothing");

    // permissions.check lets the caller ask about users they can see.
    let rev = grant(&admin, &format!("users/{u_pk}"), "permissions", &["check"]).await;
    let r = check(&u, json!({"permission": "users.read", "user": v, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert!(!allowed(&u, Some(v), "users.update", rev).await);
    check(&u, json!({"permission": "users.read", "user": outsider})).await.error(404, "NotFound");
    check(&u, json!({"permission": "users.read", "user": foreign})).await.error(404, "NotFound");
    check(&u, json!({"permission": "users.read", "user": 99_999})).await.error(404, "NotFound");
    // ... but not explanations, which need permissions.read.
    denied(&check(&u, json!({"permission": "users.read", "user": v, "explain": true})).await, NEEDS_PERMISSIONS_READ);

    // permissions.read implies permissions.check.
    let reader_group = group_pk(&admin, "Readers", Some(g), json!({"permissions": ["read"]})).await;
    let (_, reader) = member(&server, &admin, "reader", &[g, reader_group]).await;
    let rev = server.revision().await;
    assert!(allowed(&reader, Some(v), "users.read", rev).await);
    assert!(allowed(&reader, Some(u_pk), "permissions.check", rev).await);
    assert!(!allowed(&reader, Some(u_pk), "permissions.read", rev).await);
    check(&reader, json!({"permission": "users.read", "user": foreign})).await.error(404, "NotFound");

    // Superusers may ask about anyone; unknown users answer 404.
    assert!(!allowed(&admin, Some(foreign), "users.access", rev).await);
    check(&admin, json!({"permission": "users.read", "user": 99_999})).await.error(404, "NotFound");
}

#[tokio::test]
async fn checks_cover_objects_through_parents_and_orgs() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    object(&admin, "catalogs", "9", None).await;
    object(&admin, "catalogs", "10", None).await;
    object(&admin, "products", "42", Some(("catalogs", "9"))).await;
    let a = quick_user(&admin, "global", json!({})).await;
    let b = quick_user(&admin, "scoped", json!({})).await;
    let rev = grant(&admin, &format!("users/{a}"), "catalogs", &["read"]).await;

    // A global grant covers every object of the holder's organisation, registered or not.
    assert!(allowed(&admin, Some(a), "catalogs.read", rev).await);
    assert!(allowed(&admin, Some(a), "catalogs.access", rev).await, "every action implies access");
    assert!(!allowed(&admin, Some(a), "catalogs.update", rev).await);
    assert!(!allowed(&admin, Some(a), "catalogs.publish", rev).await, "only full implies the other actions");
    assert!(allowed_on(&admin, a, "catalogs.read", None, json!("9"), rev).await);
    assert!(allowed_on(&admin, a, "catalogs.read", Some("products"), json!("42"), rev).await);
    assert!(allowed_on(&admin, a, "catalogs.read", None, json!("555"), rev).await, "an unregistered key");
    assert!(!allowed_on(&admin, a, "catalogs.update", None, json!("9"), rev).await);

    // An object grant covers the object and what lies below it, for that permission only.
    let rev = grant_on_object(&admin, b, "catalogs", "read", "catalogs", "9").await;
    assert!(allowed_on(&admin, b, "catalogs.read", None, json!("9"), rev).await);
    assert!(allowed_on(&admin, b, "catalogs.read", None, json!(9), rev).await, "a numeric object_pk");
    assert!(allowed_on(&admin, b, "catalogs.read", Some("products"), json!("42"), rev).await, "catalog 9 ⊃ product 42");
    assert!(allowed_on(&admin, b, "catalogs.read", Some("catalogs"), json!("9"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.read", None, json!("42"), rev).await, "catalogs 42 is another object");
    assert!(!allowed_on(&admin, b, "catalogs.read", None, json!("10"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.read", Some("products"), json!("43"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.update", None, json!("9"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.update", Some("products"), json!("42"), rev).await);
    assert!(!allowed(&admin, Some(b), "catalogs.read", rev).await, "an object grant is not a global one");
    let r = check(&admin, json!({"user": b, "permission": "catalogs.read", "model": "products", "object_pk": "42", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert_eq!(r.body["paths_total"], 1);
    let path = r.body["explanation"][0].as_str().unwrap();
    assert!(path.starts_with(&format!("user {b} → catalogs.read on ")), "{path}");
    assert!(path.contains(" 9 ⊃ ") && path.ends_with(" 42"), "{path}");

    // Reparenting: product 43 under catalog 10 is not covered by the grant on catalog 9.
    let rev = object(&admin, "products", "43", Some(("catalogs", "10"))).await;
    assert!(!allowed_on(&admin, b, "catalogs.read", Some("products"), json!("43"), rev).await);

    // Objects of another organisation are outside global grants.
    let org2 = second_org(&admin).await;
    let og = admin
        .post("/api/v1/groups/", json!({"name": "Registrars", "org": org2, "permissions": {"permissions": ["create"]}}))
        .await;
    assert_eq!(og.status, StatusCode::CREATED, "{}", og.body);
    server.create_user(&admin, "registrar", json!({"org": org2, "groups": [og.body["pk"]]})).await;
    let registrar = server.login("registrar", PW).await;
    let rev = object(&registrar, "catalogs", "77", None).await;
    assert!(!allowed_on(&admin, a, "catalogs.read", None, json!("77"), rev).await, "catalog 77 belongs to another organisation");
    assert!(allowed_on(&admin, a, "catalogs.read", None, json!("9"), rev).await);

    // full implies every action, custom ones included, even those added later.
    let f = quick_user(&admin, "fullholder", json!({})).await;
    let rev = grant(&admin, &format!("users/{f}"), "catalogs", &["full"]).await;
    for p in ["catalogs.publish", "catalogs.delete", "catalogs.access", "catalogs.read"] {
        assert!(allowed(&admin, Some(f), p, rev).await, "{p}");
    }
    assert!(!allowed(&admin, Some(f), "catalogs.archive", rev).await, "not an action of catalogs yet");
    let r = admin.patch("/api/v1/modules/catalogs/", json!({"actions": ["publish", "archive"]})).await;
    assert!(allowed(&admin, Some(f), "catalogs.archive", x_rev(&r)).await, "full covers actions added later");
    assert!(!allowed(&admin, Some(a), "catalogs.archive", x_rev(&r)).await);
    assert!(!allowed(&admin, Some(f), "brands.read", x_rev(&r)).await, "an unknown module");
}

#[tokio::test]
async fn explanations_list_paths_and_reasons() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (admin_pk, _) = me(&admin).await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    let parent = group_pk(&admin, "Parent", None, json!({})).await;
    let child = group_pk(&admin, "Child", Some(parent), json!({})).await;
    let (u, uc) = member(&server, &admin, "explained", &[child]).await;
    let role = role_pk(&admin, "Catalog owners").await;
    grant(&admin, &format!("roles/{role}"), "catalogs", &["full"]).await;
    let rev = role_change(&admin, role, "assign-groups", "groups", &[parent]).await;

    let r = check(&admin, json!({"user": u, "permission": "catalogs.publish", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision", "explanation", "paths_total"]), "{}", r.body);
    assert_eq!(r.body["allowed"], true);
    assert_eq!(
        r.body["explanation"],
        json!([format!("user {u} ∈ group {child} ⊂ group {parent} → role {role} → catalogs.full")])
    );
    assert_eq!(r.body["paths_total"], 1);
    assert_eq!(r.body["revision"], rev);

    let rev = grant(&admin, &format!("users/{u}"), "catalogs", &["publish"]).await;
    let r = check(&admin, json!({"user": u, "permission": "catalogs.publish", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["paths_total"], 2);
    let paths: BTreeSet<String> =
        r.body["explanation"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert!(paths.contains(&format!("user {u} → catalogs.publish")), "{}", r.body);
    assert!(paths.contains(&format!("user {u} ∈ group {child} ⊂ group {parent} → role {role} → catalogs.full")), "{}", r.body);

    // At most 10 paths, with the total.
    let mut rev = rev;
    for i in 0..11 {
        let extra = role_pk(&admin, &format!("Extra {i}")).await;
        grant(&admin, &format!("roles/{extra}"), "catalogs", &["read"]).await;
        rev = role_change(&admin, extra, "assign-users", "users", &[u]).await;
    }
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(
        ok(&r)["paths_total"],
        12,
        "11 roles and the group's full role; the user's publish grant does not give read: {}",
        r.body
    );
    assert_eq!(r.body["explanation"].as_array().unwrap().len(), 10);

    // explain needs permissions.read, even about oneself; the plain check does not.
    denied(&check(&uc, json!({"permission": "catalogs.read", "explain": true})).await, NEEDS_PERMISSIONS_READ);
    assert!(allowed(&uc, None, "catalogs.read", rev).await);
    let r = check(&uc, json!({"permission": "catalogs.read", "explain": false})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision"]));

    // Denials say why.
    let r = check(&admin, json!({"user": u, "permission": "users.delete", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], false);
    assert_eq!(r.body["paths_total"], 0);
    let why = r.body["explanation"].as_array().unwrap();
    assert_eq!(why.len(), 1, "{}", r.body);
    assert!(why[0].as_str().unwrap().contains("no grant"), "{}", r.body);

    let r = admin.patch(&format!("/api/v1/users/{u}/"), json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rev = x_rev(&r);
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], false, "inactive users hold nothing");
    let why = r.body["explanation"][0].as_str().unwrap();
    assert!(why.contains("inactive") && why.contains(&format!("user {u}")), "{}", r.body);
    assert!(!allowed(&admin, Some(u), "catalogs.publish", rev).await);

    // Superusers hold everything.
    let r = check(&admin, json!({"permission": "catalogs.update", "explain": true})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert_eq!(r.body["paths_total"], 1);
    assert!(r.body["explanation"][0].as_str().unwrap().contains(&format!("user {admin_pk}")), "{}", r.body);
    assert!(allowed(&admin, None, "anything.whatsoever", rev).await);
}

#[tokio::test]
async fn checks_validate_their_input_and_revisions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = server.revision().await;
    let cases = [
        (json!({}), "permission"),
        (json!({"permission": null}), "permission"),
        (json!({"permission": "nodot"}), "permission"),
        (json!({"permission": 5}), "permission"),
        (json!({"permission": "Users.Read"}), "permission"),
        (json!({"permission": "users."}), "permission"),
        (json!({"permission": ".read"}), "permission"),
        (json!({"permission": "users.read", "user": "abc"}), "user"),
        (json!({"permission": "users.read", "user": 0}), "user"),
        (json!({"permission": "users.read", "explain": "yes"}), "explain"),
        (json!({"permission": "users.read", "object_pk": "x".repeat(256)}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": ""}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": true}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": ["1"]}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": "1", "model": "Bad Model"}), "model"),
        (json!({"permission": "users.read", "object_pk": "1", "model": 5}), "model"),
        (json!({"permission": "users.read", "at_least_revision": "1"}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": -1}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": 1.5}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": before + 1}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": before + 1000}), "at_least_revision"),
    ];
    for (body, field) in cases {
        let r = check(&admin, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} → {}", r.body);
        bad_field(&r, field);
    }
    // Every bad field is listed at once.
    let r = check(&admin, json!({"permission": "nodot", "model": "Bad Model", "object_pk": "1", "explain": 1})).await;
    r.error(400, "ValidationError");
    for field in ["permission", "model", "explain"] {
        assert!(r.fields().iter().any(|f| f == field), "{field} in {}", r.body);
    }
    check(&admin, json!(["users.read"])).await.error(400, "ValidationError");
    let r = admin.raw(reqwest::Method::POST, "/api/v1/check/", "application/json", b"{".to_vec()).await;
    r.error(400, "ValidationError");
    assert_eq!(server.revision().await, before);

    // at_least_revision at the newest revision answers at least that revision.
    let r = check(&admin, json!({"permission": "users.read", "at_least_revision": before})).await;
    assert_eq!(ok(&r)["revision"], before);
    let r = admin.post("/api/v1/roles/", json!({"name": "Fresh"})).await;
    let rev = x_rev(&r);
    assert_eq!(rev, before + 1);
    let r = check(&admin, json!({"permission": "users.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["revision"], rev);
    let r = check(&admin, json!({"permission": "users.read", "at_least_revision": 0})).await;
    assert!(ok(&r)["revision"].as_i64().unwrap() <= rev);
    bad_field(&check(&admin, json!({"permission": "users.read", "at_least_revision": rev + 1})).await, "at_least_revision");
}

#[tokio::test]
async fn valid_until_appears_when_the_only_path_expires() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &[]).await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let u = quick_user(&admin, "temporary", json!({"groups": [g]})).await;
    let role = role_pk(&admin, "Temporary readers").await;
    grant(&admin, &format!("roles/{role}"), "catalogs", &["read"]).await;
    let r = admin
        .patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u], "expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    let rev = x_rev(&r);
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert_eq!(r.body["valid_until"], "2999-01-01T00:00:00.000000Z", "{}", r.body);
    let r = check(&admin, json!({"user": u, "permission": "catalogs.update", "at_least_revision": rev})).await;
    assert!(ok(&r).get("valid_until").is_none(), "a denial does not expire: {}", r.body);

    // An unexpiring path wins.
    let rev = grant(&admin, &format!("groups/{g}"), "catalogs", &["read"]).await;
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert!(r.body.get("valid_until").is_none(), "{}", r.body);

    // Checks compare the clock: an assignment expiring in a moment stops counting without any write.
    let v = quick_user(&admin, "fleeting", json!({})).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [v], "expires_at": soon})).await;
    let rev = x_rev(&r);
    let r = check(&admin, json!({"user": v, "permission": "catalogs.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert!(r.body["valid_until"].is_string(), "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = check(&admin, json!({"user": v, "permission": "catalogs.read"})).await;
    assert_eq!(ok(&r)["allowed"], false, "{}", r.body);
}

#[tokio::test]
async fn bulk_checks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (admin_pk, _) = me(&admin).await;
    let g = group_pk(&admin, "Team", None, json!({"users": ["read"]})).await;
    let (u_pk, u) = member(&server, &admin, "bulky", &[g]).await;
    let v = quick_user(&admin, "peer", json!({"groups": [g]})).await;
    let inactive = quick_user(&admin, "inactive", json!({"groups": [g], "is_active": false})).await;
    let rev = server.revision().await;

    let r = u
        .post(
            "/api/v1/check/bulk/",
            json!({"checks": [
                {"permission": "users.read"},
                {"permission": "users.delete"},
                {"permission": "users.access"},
                {"permission": "users.read", "user": u_pk},
                {"permission": "groups.read"}
            ], "at_least_revision": rev}),
        )
        .await;
    assert_eq!(keys(ok(&r)), strings(&["results", "revision"]), "{}", r.body);
    assert_eq!(
        r.body["results"],
        json!([{"allowed": true}, {"allowed": false}, {"allowed": true}, {"allowed": true}, {"allowed": false}])
    );
    assert_eq!(r.body["revision"], rev);

    // Other users need permissions.check.
    let before = server.revision().await;
    let r = u
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read"}, {"permission": "users.read", "user": v}]}))
        .await;
    denied(&r, NEEDS_CHECK);
    assert_eq!(server.revision().await, before);

    // Mixed users, in order.
    let r = admin
        .post(
            "/api/v1/check/bulk/",
            json!({"checks": [
                {"permission": "users.delete"},
                {"permission": "users.read", "user": u_pk},
                {"permission": "users.delete", "user": u_pk},
                {"permission": "users.read", "user": inactive},
                {"permission": "users.read", "user": v},
                {"permission": "users.read", "user": admin_pk}
            ], "at_least_revision": rev}),
        )
        .await;
    assert_eq!(
        ok(&r)["results"],
        json!([{"allowed": true}, {"allowed": true}, {"allowed": false}, {"allowed": false}, {"allowed": true}, {"allowed": true}])
    );
    admin
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read", "user": 99_999}]}))
        .await
        .error(404, "NotFound");

    // Up to 10,000 checks, answered in order.
    let checks: Vec<Value> = (0..10_000)
        .map(|i| json!({"permission": if i % 3 == 0 { "users.delete" } else { "users.read" }, "user": u_pk}))
        .collect();
    let r = admin.post("/api/v1/check/bulk/", json!({"checks": checks})).await;
    let results = ok(&r)["results"].as_array().unwrap();
    assert_eq!(results.len(), 10_000);
    for (i, res) in results.iter().enumerate() {
        assert_eq!(res["allowed"], i % 3 != 0, "result {i}");
    }
    let checks: Vec<Value> = (0..10_001).map(|_| json!({"permission": "users.read"})).collect();
    bad_field(&admin.post("/api/v1/check/bulk/", json!({"checks": checks})).await, "checks");
    assert_eq!(ok(&admin.post("/api/v1/check/bulk/", json!({"checks": []})).await)["results"], json!([]));

    // Errors name the item and the field.
    let r = admin
        .post(
            "/api/v1/check/bulk/",
            json!({"checks": [
                {"permission": "users.read"},
                {"permission": "nodot"},
                {"permission": "users.read", "object_pk": true},
                5,
                {}
            ]}),
        )
        .await;
    r.error(400, "ValidationError");
    let fields = r.fields();
    for f in ["checks[1].permission", "checks[2].object_pk", "checks[4].permission"] {
        assert!(fields.iter().any(|x| x == f), "{f} in {}", r.body);
    }
    assert!(fields.iter().any(|x| x.starts_with("checks[3]")), "{}", r.body);
    assert!(!fields.iter().any(|x| x.starts_with("checks[0]")), "{}", r.body);
    bad_field(&admin.post("/api/v1/check/bulk/", json!({})).await, "checks");
    bad_field(&admin.post("/api/v1/check/bulk/", json!({"checks": "users.read"})).await, "checks");
    let r = admin
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read"}], "at_least_revision": rev + 1000}))
        .await;
    bad_field(&r, "at_least_revision");
    server.anon().post("/api/v1/check/bulk/", json!({"checks": []})).await.error(401, "AuthenticationRequired");
}

// ---------------------------------------------------------------------------------------------------------------
// Dominance reaching through roles of groups
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn group_representation_lists_its_roles() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let role = role_pk(&admin, "Role").await;
    role_change(&admin, role, "assign-groups", "groups", &[g]).await;
    assert_eq!(ok(&admin.get(&format!("/api/v1/groups/{g}/")).await)["roles"], json!([role]));
}

#[tokio::test]
async fn joining_a_group_confers_its_roles_so_needs_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let top = group_pk(&admin, "Top", None, json!({"groups": ["read", "update"], "users": ["read"]})).await;
    let sub = group_pk(&admin, "Sub", Some(top), json!({})).await;
    let (_, caller) = member(&server, &admin, "joiner", &[top]).await;
    let peer = quick_user(&admin, "peer", json!({"groups": [top]})).await;
    let role = role_pk(&admin, "Deleters").await;
    grant(&admin, &format!("roles/{role}"), "users", &["delete"]).await;
    role_change(&admin, role, "assign-groups", "groups", &[sub]).await;
    let before = server.revision().await;
    let r = caller.put(&format!("/api/v1/users/{peer}/groups/{sub}/"), json!({})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(server.revision().await, before);
}

// ---------------------------------------------------------------------------------------------------------------
// Read-your-writes under concurrency
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_see_the_callers_own_writes_while_others_check() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = quick_user(&admin, "toggled", json!({})).await;
    for i in 0..200 {
        quick_user(&admin, &format!("filler{i}"), json!({})).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut others = Vec::new();
    for _ in 0..2 {
        let (other, stop) = (admin.clone(), stop.clone());
        others.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = check(&other, json!({"permission": "users.read"})).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            }
        }));
    }
    let mut stale = Vec::new();
    for i in 0..150 {
        let actions: &[&str] = if i % 2 == 0 { &["read"] } else { &[] };
        let rev = grant(&admin, &format!("users/{v}"), "users", actions).await;
        // No at_least_revision: a check sees the newest revision by default.
        let r = check(&admin, json!({"user": v, "permission": "users.read"})).await;
        let body = ok(&r);
        if body["revision"].as_i64().unwrap() < rev || body["allowed"] != (i % 2 == 0) {
            stale.push((i, rev, body.clone()));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for o in others {
        o.await.unwrap();
    }
    assert!(stale.is_empty(), "{} checks missed the caller's own write, e.g. {:?}", stale.len(), stale.first());
}

/// Every endpoint is gated by the index: what a role, a group's ancestors or an inactive module bring shows at once
/// after the write that changes it.
#[tokio::test]
async fn endpoints_are_gated_by_the_index_right_after_each_write() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (u, client) = member(&server, &admin, "gated", &[]).await;
    let denied_users = |r: &Resp| r.status == StatusCode::FORBIDDEN;
    assert!(denied_users(&client.get("/api/v1/users/").await));

    let role = role_pk(&admin, "viewers").await;
    grant(&admin, &format!("roles/{role}"), "users", &["read"]).await;
    role_change(&admin, role, "assign-users", "users", &[u]).await;
    assert_eq!(client.get("/api/v1/users/").await.status, StatusCode::OK, "a role's grant gates at once");
    role_change(&admin, role, "remove-users", "users", &[u]).await;
    assert!(denied_users(&client.get("/api/v1/users/").await), "and is gone at once");

    let top = group_pk(&admin, "Top", None, json!({"groups": ["read"]})).await;
    let loose = group_pk(&admin, "Loose", None, json!({})).await;
    let leaf = group_pk(&admin, "Leaf", Some(loose), json!({})).await;
    admin.put(&format!("/api/v1/users/{u}/groups/{leaf}/"), json!({})).await;
    assert_eq!(client.get("/api/v1/groups/").await.status, StatusCode::FORBIDDEN);
    let r = admin.patch(&format!("/api/v1/groups/{loose}/"), json!({"parent": top})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(client.get("/api/v1/groups/").await.status, StatusCode::OK, "an ancestor's permissions flow down");

    module(&admin, "reports", "Reports", &[]).await;
    grant(&admin, &format!("users/{u}"), "reports", &["read"]).await;
    let r = check(&client, json!({"permission": "reports.read"})).await;
    assert_eq!(r.body["allowed"], true, "{}", r.body);
    let r = admin.patch("/api/v1/modules/reports/", json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        check(&client, json!({"permission": "reports.read"})).await.body["allowed"],
        false,
        "inactive modules grant nothing"
    );
}

/// Writes committed by another process on the same database (another replica) reach this server's index by
/// following the change log, without any request to this server.
#[tokio::test]
async fn writes_of_another_replica_reach_the_index() {
    use castellan_store::{GroupStore, WriteCtx};
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let readers = group_pk(&admin, "Readers", None, json!({"users": ["read"]})).await;
    let (u, client) = member(&server, &admin, "replicated", &[]).await;
    assert_eq!(client.get("/api/v1/users/").await.status, StatusCode::FORBIDDEN);

    let other = castellan_store::SqliteStore::open(&server.db_path()).await.unwrap();
    let revision = other.add_members(&WriteCtx::default(), readers, &[u], None).await.unwrap();
    // Read-your-writes across replicas: asking for the other replica's revision waits for it.
    let r = check(&client, json!({"permission": "users.read", "at_least_revision": revision})).await;
    assert_eq!(r.body["allowed"], true, "{}", r.body);
    assert_eq!(r.body["revision"], revision);
    assert_eq!(client.get("/api/v1/users/").await.status, StatusCode::OK);

    // Without asking, the follower's tick brings it within a few seconds.
    other.remove_members(&WriteCtx::default(), readers, &[u]).await.unwrap();
    let started = std::time::Instant::now();
    while client.get("/api/v1/users/").await.status == StatusCode::OK {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the removal never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
