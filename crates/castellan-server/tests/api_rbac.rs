//! Seed 003's RBAC endpoints: assign and unassign permissions globally or on one object, and who holds what where.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

async fn setup(server: &TestServer) -> (common::Client, i64) {
    let admin = server.admin().await;
    for id in ["catalogs", "products"] {
        assert_eq!(admin.post("/api/v1/modules/", json!({"id": id})).await.status, StatusCode::CREATED);
    }
    admin.post("/api/v1/objects/", json!({"model": "catalogs", "object_pk": "9"})).await;
    admin
        .post("/api/v1/objects/", json!({"model": "products", "object_pk": "42", "parent_model": "catalogs", "parent_pk": "9"}))
        .await;
    let ed = server.create_user(&admin, "ed", json!({})).await;
    (admin, ed)
}

#[tokio::test]
async fn assign_on_an_object_covers_descendants_and_unassign_revokes() {
    let server = TestServer::start().await;
    let (admin, ed) = setup(&server).await;
    let r = admin
        .post(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{ed}/assign/"),
            json!({"permissions": ["catalogs.update"], "model": "catalogs", "object_pk": "9"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!([{"codename": "catalogs.update", "model": "catalogs", "object_pk": "9"}]));
    let revision = r.revision().unwrap();
    let check = |object: serde_json::Value| {
        let mut body = json!({"user": ed, "permission": "catalogs.update", "at_least_revision": revision});
        if let serde_json::Value::Object(extra) = object {
            body.as_object_mut().unwrap().extend(extra);
        }
        admin.post("/api/v1/check/", body)
    };
    assert_eq!(check(json!({"model": "products", "object_pk": "42"})).await.body["allowed"], true);
    assert_eq!(check(json!({"object_pk": "9"})).await.body["allowed"], true);
    assert_eq!(check(json!({})).await.body["allowed"], false, "an object grant is not global");

    let holders = admin.get("/api/v1/rbac/permissions/assigned_by_users/?model=catalogs&object_pk=9").await;
    assert_eq!(holders.body["count"], 1);
    assert_eq!(holders.body["results"][0], json!({"pk": ed, "name": "ed", "permissions": ["catalogs.update"]}));
    let audit_like = server.store.changes(0, 1000).await.unwrap();
    assert!(audit_like.iter().any(|c| c.action == "assign" && c.target_type == "catalogs" && c.target_pk == "9"));

    let r = admin
        .patch(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{ed}/unassign/"),
            json!({"permissions": ["catalogs.update"], "model": "catalogs", "object_pk": "9"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let after = admin
        .post(
            "/api/v1/check/",
            json!({"user": ed, "permission": "catalogs.update", "object_pk": "9", "at_least_revision": r.revision().unwrap()}),
        )
        .await;
    assert_eq!(after.body["allowed"], false);
}

#[tokio::test]
async fn global_assignments_to_roles_and_groups() {
    let server = TestServer::start().await;
    let (admin, ed) = setup(&server).await;
    let role = admin.post("/api/v1/roles/", json!({"name": "Readers"})).await.body["pk"].as_i64().unwrap();
    let r = admin
        .post(&format!("/api/v1/rbac/permissions/assigned_by_roles/{role}/assign/"), json!({"permissions": ["products.read"]}))
        .await;
    assert_eq!(r.body, json!([{"codename": "products.read", "model": null, "object_pk": null}]));
    admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [ed]})).await;
    let group = admin.post("/api/v1/groups/", json!({"name": "Sales"})).await.body["pk"].as_i64().unwrap();
    let r = admin
        .post(&format!("/api/v1/rbac/permissions/assigned_by_groups/{group}/assign/"), json!({"permissions": ["catalogs.read"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = admin.put(&format!("/api/v1/users/{ed}/groups/{group}/"), json!({})).await;
    let revision = r.revision().unwrap();
    for permission in ["products.read", "catalogs.read"] {
        let c = admin.post("/api/v1/check/", json!({"user": ed, "permission": permission, "at_least_revision": revision})).await;
        assert_eq!(c.body["allowed"], true, "{permission}: {}", c.body);
    }
    assert_eq!(admin.get("/api/v1/rbac/permissions/assigned_by_roles/").await.body["count"], 1);
    assert_eq!(admin.get("/api/v1/rbac/permissions/assigned_by_groups/").await.body["count"], 1);
    let catalog = admin.get("/api/v1/rbac/permissions/?page_size=1000").await;
    assert!(catalog.body["results"].as_array().unwrap().iter().any(|p| p["codename"] == "catalogs.full"));
}

#[tokio::test]
async fn bad_input_and_escalation_are_refused_without_changes() {
    let server = TestServer::start().await;
    let (admin, ed) = setup(&server).await;
    let before = server.revision().await;
    let url = format!("/api/v1/rbac/permissions/assigned_by_users/{ed}/assign/");
    for (body, field) in [
        (json!({}), "permissions"),
        (json!({"permissions": []}), "permissions"),
        (json!({"permissions": "catalogs.read"}), "permissions"),
        (json!({"permissions": ["nodot"]}), "permissions"),
        (json!({"permissions": ["catalogs.fly"]}), "permissions"),
        (json!({"permissions": ["products.read"], "model": "catalogs", "object_pk": "9"}), "permissions"),
        (json!({"permissions": ["catalogs.read"], "object_pk": "9"}), "model"),
        (json!({"permissions": ["catalogs.read"], "expires_at": "2000-01-01T00:00:00Z"}), "expires_at"),
    ] {
        let r = admin.post(&url, body.clone()).await;
        assert_eq!(r.error(400, "ValidationError")["errors"][0]["field"], field, "{body}");
    }
    admin
        .post("/api/v1/rbac/permissions/assigned_by_users/999/assign/", json!({"permissions": ["catalogs.read"]}))
        .await
        .error(404, "NotFound");

    // A user who may assign (permissions.create) but does not hold catalogs.delete cannot grant it.
    let group = admin
        .post(
            "/api/v1/groups/",
            json!({"name": "Granters", "permissions": {"permissions": ["create", "update"], "users": ["read"]}}),
        )
        .await;
    let group = group.body["pk"].as_i64().unwrap();
    server.create_user(&admin, "granter", json!({"groups": [group]})).await;
    let target = server.create_user(&admin, "target", json!({"groups": [group]})).await;
    let g = server.login("granter", "Passw0rd!").await;
    let before_escalation = server.revision().await;
    let r = g
        .post(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{target}/assign/"),
            json!({"permissions": ["catalogs.delete"]}),
        )
        .await;
    let body = r.error(403, "PermissionDenied");
    assert_eq!(body["code"], "permission_denied");
    assert_eq!(server.revision().await, before_escalation);
    assert!(before <= before_escalation);
    // Without permissions.create the endpoint itself is refused first.
    let plain = server.login("ed", "Passw0rd!").await;
    let r = plain.post(&url, json!({"permissions": ["catalogs.read"]})).await;
    assert_eq!(r.error(403, "PermissionDenied")["detail"], "This method needs permission create on permissions.");
}

/// Object grants carried by a group or a role count for the no-escalation rule (API.md §11: a membership confers
/// what the group and its ancestors carry): joining someone to a subgroup whose parent holds `catalogs.full` on
/// catalog 9, or assigning a role that does, needs the caller to hold that on catalog 9.
#[tokio::test]
async fn object_grants_of_groups_and_roles_count_for_no_escalation() {
    let server = TestServer::start().await;
    let (admin, ed) = setup(&server).await;
    let on_nine = json!({"permissions": ["catalogs.full"], "model": "catalogs", "object_pk": "9"});
    // Managers may manage groups, users and roles, and read catalog 9; the team below carries catalogs.full on it.
    let managers = admin
        .post(
            "/api/v1/groups/",
            json!({"name": "Managers", "permissions": {"groups": ["full"], "users": ["full"], "roles": ["full"]}}),
        )
        .await
        .body["pk"]
        .as_i64()
        .unwrap();
    let team = admin.post("/api/v1/groups/", json!({"name": "Team", "parent": managers})).await.body["pk"].as_i64().unwrap();
    let inner = admin.post("/api/v1/groups/", json!({"name": "Inner", "parent": team})).await.body["pk"].as_i64().unwrap();
    let r = admin.post(&format!("/api/v1/rbac/permissions/assigned_by_groups/{team}/assign/"), on_nine.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let role = admin.post("/api/v1/roles/", json!({"name": "Catalog owners"})).await.body["pk"].as_i64().unwrap();
    let r = admin.post(&format!("/api/v1/rbac/permissions/assigned_by_roles/{role}/assign/"), on_nine.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mona = server.create_user(&admin, "mona", json!({"groups": [managers]})).await;
    let r = admin
        .post(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{mona}/assign/"),
            json!({"permissions": ["catalogs.read"], "model": "catalogs", "object_pk": "9"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    admin.put(&format!("/api/v1/users/{ed}/groups/{managers}/"), json!({})).await;
    let mona_c = server.login("mona", common::auth::USER_PASSWORD).await;
    let before = server.revision().await;

    let refused = [
        mona_c.patch(&format!("/api/v1/groups/{inner}/assign-users/"), json!({"users": [ed]})).await,
        mona_c.put(&format!("/api/v1/users/{ed}/groups/{team}/"), json!({})).await,
        mona_c.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [ed]})).await,
        mona_c.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [managers]})).await,
        mona_c.patch(&format!("/api/v1/groups/{managers}/"), json!({"roles": [role]})).await,
        mona_c.delete(&format!("/api/v1/roles/{role}/")).await,
    ];
    for r in &refused {
        r.error(403, "PermissionDenied");
        assert_eq!(r.body["detail"], "You cannot confer or revoke permissions you do not hold.");
    }
    assert_eq!(server.revision().await, before, "nothing written");

    // Holding catalogs.full on catalog 9 (through an object grant) is enough.
    let r = admin.post(&format!("/api/v1/rbac/permissions/assigned_by_users/{mona}/assign/"), on_nine).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = mona_c.patch(&format!("/api/v1/groups/{inner}/assign-users/"), json!({"users": [ed]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = mona_c.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [ed]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
