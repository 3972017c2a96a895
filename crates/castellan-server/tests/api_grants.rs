//! Per-module permissions over HTTP (API.md §6, §10, §11; seed 002): the permission items of roles, groups and
//! users, who may read and write them, the dominance a grant needs, and their effect on enforcement.

mod common;

use common::permissions::{
    NEEDS_PERMISSIONS_READ, allowed, bad_field, check, denied, grant, group_pk, member, module, ok, quick_user, role_change,
    role_pk, second_org, x_rev,
};
use common::{Client, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const NEEDS_PERMISSIONS_UPDATE: &str = "This method needs permission update on permissions.";

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
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(fields, ["module_id", "permissions"], "an unknown field is refused beside the missing one: {}", r.body);
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
