//! FE permissions, FE permission groups (API.md §7), capabilities, and catalog/channel groups as object grants.

mod common;

use common::permissions::{bad_field, check, denied, group_pk, member, ok, quick_user, second_org};
use common::{Client, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn fe(admin: &Client, body: Value) -> i64 {
    let r = admin.post("/api/v1/fe_permissions/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

#[tokio::test]
async fn the_admin_ui_tree_is_shipped_below_is_superuser() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/v1/fe_permissions/1/").await;
    let root = ok(&r);
    assert_eq!(
        (root["name"].as_str(), root["slug"].as_str(), root["depth"].as_u64()),
        (Some("is_superuser"), Some("is_superuser"), Some(0))
    );
    assert_eq!((&root["path"], &root["namespace_path"]), (&json!(""), &Value::Null));
    let r = admin.get("/api/v1/fe_permissions/?parent=1&search=users&page_size=1000").await;
    let users = ok(&r)["results"].as_array().unwrap().iter().find(|f| f["slug"] == "users").cloned().unwrap();
    assert_eq!((users["depth"].as_u64(), users["path"].as_str()), (Some(1), Some("users")));
    assert!(!users["be_permissions"].as_array().unwrap().is_empty());
    let tree = admin.get("/api/v1/fe_permissions/detailed_list/").await;
    let roots = ok(&tree).as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["granted"], true);
    let screen = roots[0]["children"].as_array().unwrap().iter().find(|n| n["slug"] == "users").unwrap();
    let add = screen["children"].as_array().unwrap().iter().find(|n| n["slug"] == "add").unwrap();
    assert_eq!((add["path"].as_str(), add["depth"].as_u64()), (Some("users.add"), Some(2)));
    let caps = admin.get("/api/v1/active_user/capabilities/").await;
    let fe: Vec<&str> = ok(&caps)["fe_permissions"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(fe.contains(&"is_superuser") && fe.contains(&"users.add"), "{fe:?}");
    // The shipped tree is the server's: applications cannot rewrite it.
    admin.patch("/api/v1/fe_permissions/1/", json!({"name": "x"})).await.error(409, "Conflict");
    admin.delete("/api/v1/fe_permissions/1/").await.error(409, "Conflict");
}

#[tokio::test]
async fn an_application_defines_its_own_tree() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let shop = fe(&admin, json!({"name": "Shop", "slug": "shop"})).await;
    let orders = fe(&admin, json!({"name": "Orders", "slug": "orders", "parent": shop})).await;
    let r = admin.get(&format!("/api/v1/fe_permissions/{orders}/")).await;
    assert_eq!(
        (ok(&r)["path"].as_str(), r.body["namespace_path"].as_str(), r.body["depth"].as_u64()),
        (Some("shop.orders"), Some("shop"), Some(1))
    );
    let before = server.revision().await;
    for (body, field) in [
        (json!({"name": "X", "slug": "Not A Slug"}), "slug"),
        (json!({"name": "X"}), "slug"),
        (json!({"name": "X", "slug": "x", "parent": 99999}), "parent"),
        (json!({"name": "X", "slug": "x", "be_permissions": [99999]}), "be_permissions"),
        (json!({"name": "X", "slug": "x", "colour": "red"}), "colour"),
    ] {
        bad_field(&admin.post("/api/v1/fe_permissions/", body).await, field);
    }
    bad_field(&admin.patch(&format!("/api/v1/fe_permissions/{shop}/"), json!({"parent": orders})).await, "parent");
    admin
        .post("/api/v1/fe_permissions/", json!({"name": "Again", "slug": "orders", "parent": shop}))
        .await
        .error(409, "Conflict");
    assert_eq!(server.revision().await, before);
    let r = admin.put(&format!("/api/v1/fe_permissions/{orders}/"), json!({"name": "All orders", "slug": "all-orders"})).await;
    assert_eq!(
        (ok(&r)["path"].as_str(), r.body["parent"].as_i64(), r.body["depth"].as_u64()),
        (Some("all-orders"), None, Some(0))
    );
    let r = admin.delete(&format!("/api/v1/fe_permissions/{shop}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    admin.get(&format!("/api/v1/fe_permissions/{shop}/")).await.error(404, "NotFound");
    // Non-superusers do not define.
    let (me, client) = member(&server, &admin, "dev", &[]).await;
    common::permissions::grant(&admin, &format!("users/{me}"), "permissions", &["full"]).await;
    denied(
        &client.post("/api/v1/fe_permissions/", json!({"name": "Mine", "slug": "mine"})).await,
        "Only a superuser can define BE and FE permissions.",
    );
}

#[tokio::test]
async fn fe_groups_hand_out_what_the_caller_holds_and_capabilities_show_it() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let ns = admin.post("/api/v1/be_permission_namespace/", json!({"name": "orders"})).await.body["pk"].as_i64().unwrap();
    let be = admin
        .post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "get", "path": "api/v1/orders/$"}))
        .await
        .body["pk"]
        .as_i64()
        .unwrap();
    let shop = fe(&admin, json!({"name": "Shop", "slug": "shop", "be_permissions": [be]})).await;
    let other = fe(&admin, json!({"name": "Other", "slug": "other"})).await;
    let (lead, lead_client) = member(&server, &admin, "lead", &[]).await;
    common::permissions::grant(&admin, &format!("users/{lead}"), "permissions", &["full"]).await;
    let team = group_pk(&admin, "team", None, json!({})).await;
    let clerk = quick_user(&admin, "clerk", json!({"groups": [team]})).await;
    admin.patch(&format!("/api/v1/groups/{team}/assign-users/"), json!({"users": [lead]})).await;
    let detail = "You cannot confer or revoke permissions you do not hold.";
    denied(&lead_client.post("/api/v1/fe_permission_groups/", json!({"name": "G", "fepermissions": [shop]})).await, detail);
    admin.patch(&format!("/api/v1/fe_permissions/{shop}/assign-users/"), json!({"users": [lead]})).await;
    let r = lead_client
        .post(
            "/api/v1/fe_permission_groups/",
            json!({"name": "G", "description": "clerks", "users": [clerk], "fepermissions": [shop]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = r.body["pk"].as_i64().unwrap();
    assert_eq!((&r.body["users"], &r.body["fepermissions"]), (&json!([clerk]), &json!([shop])));
    denied(
        &lead_client
            .patch(&format!("/api/v1/fe_permission_groups/{g}/assign-permissions/"), json!({"fepermissions": [other]}))
            .await,
        detail,
    );
    bad_field(
        &lead_client
            .patch(&format!("/api/v1/fe_permission_groups/{g}/assign-permissions/"), json!({"fepermissions": [99999]}))
            .await,
        "fepermissions",
    );
    let r =
        admin.patch(&format!("/api/v1/fe_permission_groups/{g}/assign-permissions/"), json!({"fepermissions": [other]})).await;
    assert_eq!(ok(&r), &json!({"pk": g, "fepermissions": [shop, other]}));
    let r = admin.get(&format!("/api/v1/fe_permissions/{shop}/")).await;
    assert_eq!(ok(&r)["fe_permission_groups"], json!([g]));

    // The clerk's capabilities: both FE paths, and the BE permission the shop gives.
    let clerk_client = {
        admin.patch(&format!("/api/v1/users/{clerk}/"), json!({"password": "Passw0rd!"})).await;
        server.login("clerk", "Passw0rd!").await
    };
    let r = clerk_client.get("/api/v1/active_user/capabilities/").await;
    assert_eq!(ok(&r)["fe_permissions"], json!(["shop", "other"]));
    assert_eq!(r.body["be_permissions"], json!([{"action": "get", "path": "api/v1/orders/$"}]));
    let tree = clerk_client.get("/api/v1/active_user/capabilities/").await;
    assert!(tree.status.is_success());
    let r = admin.patch(&format!("/api/v1/fe_permission_groups/{g}/remove-users/"), json!({"users": [clerk]})).await;
    assert_eq!(ok(&r)["users"], json!([]));
    let r = clerk_client.get("/api/v1/active_user/capabilities/").await;
    assert_eq!((&ok(&r)["fe_permissions"], &r.body["be_permissions"]), (&json!([]), &json!([])));
    // PUT replaces, PATCH changes what it names.
    let r = admin.put(&format!("/api/v1/fe_permission_groups/{g}/"), json!({"name": "Renamed"})).await;
    assert_eq!(
        (&ok(&r)["name"], &r.body["fepermissions"], &r.body["description"]),
        (&json!("Renamed"), &json!([]), &Value::Null)
    );
    bad_field(&admin.patch(&format!("/api/v1/fe_permission_groups/{g}/"), json!({"name": ""})).await, "name");
    admin.get("/api/v1/fe_permission_groups/99999/").await.error(404, "NotFound");
}

#[tokio::test]
async fn catalog_groups_are_object_grants_through_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let parent = group_pk(&admin, "buyers", None, json!({})).await;
    let child = group_pk(&admin, "junior buyers", Some(parent), json!({})).await;
    let (buyer, _) = member(&server, &admin, "buyer", &[child]).await;
    // The very first catalog group (which registers module `catalogs`) previews what it gives, and writes nothing.
    let before = server.revision().await;
    let r = admin.post("/api/v1/catalog_groups/?dry_run=true", json!({"group": parent, "catalogs": [9]})).await;
    assert_eq!(ok(&r)["impact"]["gained"][0]["permission"], "catalogs.access", "{}", r.body);
    assert_eq!(r.body["impact"]["gained"][0]["users"], json!([buyer]));
    assert_eq!(server.revision().await, before);
    assert!(!admin.get("/api/v1/modules/").await.body.to_string().contains("\"catalogs\""), "the registration was rolled back");
    let r = admin.post("/api/v1/catalog_groups/", json!({"group": parent, "catalogs": [9, 3]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cg = r.body["pk"].as_i64().unwrap();
    assert_eq!((&r.body["group"], &r.body["catalogs"]), (&json!(parent), &json!([3, 9])));
    let rev = common::permissions::x_rev(&r);
    let holds = |object: &'static str, rev: i64| {
        let admin = &admin;
        async move {
            let r = check(
                admin,
                json!({"user": buyer, "permission": "catalogs.access", "object_pk": object, "at_least_revision": rev}),
            )
            .await;
            ok(&r)["allowed"].as_bool().unwrap()
        }
    };
    assert!(holds("9", rev).await);
    assert!(!holds("4", rev).await);
    let r = check(&admin, json!({"user": buyer, "permission": "catalogs.access", "object_pk": "9", "explain": true})).await;
    assert!(ok(&r)["explanation"][0].as_str().unwrap().contains(&format!("group {parent}")), "{}", r.body);
    let r =
        admin.post("/api/v1/lookup/objects/", json!({"user": buyer, "permission": "catalogs.access", "model": "catalogs"})).await;
    assert_eq!(ok(&r)["results"], json!(["3", "9"]));
    let r = admin.post("/api/v1/lookup/users/", json!({"permission": "catalogs.access", "object_pk": "3"})).await;
    assert!(ok(&r)["results"].as_array().unwrap().iter().any(|u| u["pk"] == buyer));

    // A dry run previews the change and writes nothing.
    let before = server.revision().await;
    let r = admin.patch(&format!("/api/v1/catalog_groups/{cg}/?dry_run=true"), json!({"catalogs": [3]})).await;
    assert_eq!(ok(&r)["impact"]["lost"][0]["permission"], "catalogs.access", "{}", r.body);
    assert_eq!(r.body["impact"]["users_affected"], 1);
    assert_eq!(server.revision().await, before);

    let r = admin.patch(&format!("/api/v1/catalog_groups/{cg}/"), json!({"catalogs": [3]})).await;
    let rev = common::permissions::x_rev(&r);
    assert!(!holds("9", rev).await);
    assert!(holds("3", rev).await);
    // Node restrictions cover what comes through the membership.
    common::directory::register_node(&admin, 70).await;
    let r = admin.put(&format!("/api/v1/users/{buyer}/groups/{child}/nodes/70/"), json!({})).await;
    let rev = common::permissions::x_rev(&r);
    assert!(!holds("3", rev).await);
    let r = admin.delete(&format!("/api/v1/users/{buyer}/groups/{child}/nodes/")).await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = admin.delete(&format!("/api/v1/catalog_groups/{cg}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(!holds("3", common::permissions::x_rev(&r)).await);
    admin.get(&format!("/api/v1/catalog_groups/{cg}/")).await.error(404, "NotFound");

    // Channel groups are the same with channels.
    let r = admin.post("/api/v1/channel_groups/", json!({"group": child, "channels": [1]})).await;
    assert_eq!((r.status, &r.body["channels"]), (StatusCode::CREATED, &json!([1])));
    let r = check(&admin, json!({"user": buyer, "permission": "channels.access", "object_pk": "1", "at_least_revision": common::permissions::x_rev(&r)})).await;
    assert_eq!(ok(&r)["allowed"], true);
    let r = admin.get("/api/v1/channel_groups/").await;
    assert_eq!(ok(&r)["count"], 1);
    assert_eq!(admin.get("/api/v1/catalog_groups/").await.body["count"], 0);
}

#[tokio::test]
async fn catalog_groups_refuse_bad_input_other_orgs_and_escalation() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let team = group_pk(&admin, "team", None, json!({})).await;
    let before = server.revision().await;
    for (body, field) in [
        (json!({"catalogs": [1]}), "group"),
        (json!({"group": team}), "catalogs"),
        (json!({"group": 99999, "catalogs": [1]}), "group"),
        (json!({"group": team, "catalogs": ["x"]}), "catalogs"),
        (json!({"group": team, "catalogs": [1], "channels": [2]}), "channels"),
    ] {
        bad_field(&admin.post("/api/v1/catalog_groups/", body).await, field);
    }
    assert_eq!(server.revision().await, before);
    // A manager of groups without permissions.update, then without catalogs.access on the catalog.
    let (me, client) = member(&server, &admin, "manager", &[team]).await;
    common::permissions::grant(&admin, &format!("users/{me}"), "groups", &["full"]).await;
    denied(
        &client.post("/api/v1/catalog_groups/", json!({"group": team, "catalogs": [5]})).await,
        "Changing catalogs groups needs permission update on permissions.",
    );
    common::permissions::grant(&admin, &format!("users/{me}"), "permissions", &["update"]).await;
    denied(
        &client.post("/api/v1/catalog_groups/", json!({"group": team, "catalogs": [5]})).await,
        "You cannot confer or revoke permissions you do not hold.",
    );
    // Another organisation's group is not there for the manager.
    let other = second_org(&admin).await;
    let foreign = admin.post("/api/v1/groups/", json!({"name": "foreign", "org": other})).await.body["pk"].as_i64().unwrap();
    client.post("/api/v1/catalog_groups/", json!({"group": foreign, "catalogs": [5]})).await.error(404, "NotFound");
    // A registered catalog of another org cannot be granted to this org's group.
    let r = admin.post("/api/v1/objects/", json!({"model": "catalogs", "object_pk": "77", "org": other})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    bad_field(&admin.post("/api/v1/catalog_groups/", json!({"group": team, "catalogs": [77]})).await, "catalogs");
    let r = admin.post("/api/v1/catalog_groups/", json!({"group": foreign, "catalogs": [77]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cg = r.body["pk"].as_i64().unwrap();
    client.get(&format!("/api/v1/catalog_groups/{cg}/")).await.error(404, "NotFound");
    assert_eq!(client.get("/api/v1/catalog_groups/").await.body["count"], 0);
}

/// Every catalog endpoint, as an attacker meets it: 401 without credentials, 403 without the module permission
/// (before any lookup), 404 for an unknown key, 400 for a body it cannot read; nothing changes either way.
#[tokio::test]
async fn every_catalog_endpoint_refuses_in_the_contracts_order() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, plain) = member(&server, &admin, "plain", &[]).await;
    let anon = server.anon();
    let before = server.revision().await;
    let unknown: &[(Method, &str, Value)] = &[
        (Method::GET, "/api/v1/be_permission_namespace/99999/", Value::Null),
        (Method::DELETE, "/api/v1/be_permission_namespace/99999/", Value::Null),
        (Method::PATCH, "/api/v1/be_permission_namespace/99999/assign-users/", json!({"users": [1]})),
        (Method::PATCH, "/api/v1/be_permission_namespace/99999/remove-users/", json!({"users": [1]})),
        (Method::GET, "/api/v1/be_permissions/99999/", Value::Null),
        (Method::DELETE, "/api/v1/be_permissions/99999/", Value::Null),
        (Method::PATCH, "/api/v1/be_permissions/99999/assign-users/", json!({"users": [1]})),
        (Method::PATCH, "/api/v1/be_permission/99999/remove-users/", json!({"users": [1]})),
        (Method::GET, "/api/v1/fe_permissions/99999/", Value::Null),
        (Method::PUT, "/api/v1/fe_permissions/99999/", json!({"name": "x", "slug": "x"})),
        (Method::PATCH, "/api/v1/fe_permissions/99999/", json!({"name": "x"})),
        (Method::DELETE, "/api/v1/fe_permissions/99999/", Value::Null),
        (Method::PATCH, "/api/v1/fe_permission/99999/assign-users/", json!({"users": [1]})),
        (Method::PATCH, "/api/v1/fe_permissions/99999/assign-groups/", json!({"fe_permission_groups": []})),
        (Method::PATCH, "/api/v1/fe_permission/99999/remove-groups/", json!({"fe_permission_groups": []})),
        (Method::GET, "/api/v1/fe_permission_groups/99999/", Value::Null),
        (Method::PUT, "/api/v1/fe_permission_groups/99999/", json!({"name": "x"})),
        (Method::DELETE, "/api/v1/fe_permission_groups/99999/", Value::Null),
        (Method::PATCH, "/api/v1/fe_permission_groups/99999/assign-users/", json!({"users": [1]})),
        (Method::PATCH, "/api/v1/fe_permission_groups/99999/remove-permissions/", json!({"fepermissions": []})),
        (Method::GET, "/api/v1/catalog_groups/99999/", Value::Null),
        (Method::PATCH, "/api/v1/catalog_groups/99999/", json!({"catalogs": []})),
        (Method::DELETE, "/api/v1/catalog_groups/99999/", Value::Null),
        (Method::GET, "/api/v1/channel_groups/99999/", Value::Null),
        (Method::PUT, "/api/v1/channel_groups/99999/", json!({"group": 1, "channels": []})),
        (Method::DELETE, "/api/v1/channel_groups/99999/", Value::Null),
    ];
    for (method, path, body) in unknown {
        let body = (!body.is_null()).then(|| body.clone());
        anon.send(method.clone(), path, body.clone()).await.error(401, "AuthenticationRequired");
        plain.send(method.clone(), path, body.clone()).await.error(403, "PermissionDenied");
        admin.send(method.clone(), path, body).await.error(404, "NotFound");
    }
    let unreadable: &[(&str, Value, &str)] = &[
        ("/api/v1/be_permission_namespace/", json!({"name": 5}), "name"),
        ("/api/v1/be_permissions/", json!({"namespace": "x", "action": "get", "path": "x/$"}), "namespace"),
        ("/api/v1/fe_permissions/", json!({"name": "x", "slug": "x", "parent": "root"}), "parent"),
        ("/api/v1/fe_permission_groups/", json!({"name": "x", "users": [0]}), "users"),
        ("/api/v1/channel_groups/", json!({"group": 1, "channels": {}}), "channels"),
        ("/api/v1/check/route/", json!({"method": "get", "path": 5}), "path"),
    ];
    for (path, body, field) in unreadable {
        bad_field(&admin.post(path, body.clone()).await, field);
    }
    let r = admin.send(reqwest::Method::POST, "/api/v1/be_permissions/", None).await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.body);
    assert_eq!(server.revision().await, before, "no refusal changed anything");
}
