//! Node restrictions over HTTP (API.md §4, §11): restricting a membership to nodes, and hiding nodes from callers
//! without nodes.read.

mod common;

use common::TestServer;
use common::directory::{denied, group_pk, groups_of, member, quick_user, register_node};
use reqwest::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------------------------------------------------------
// Node restrictions
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn node_restrictions_narrow_a_membership() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    register_node(&admin, 7).await;
    register_node(&admin, 8).await;
    admin.post("/api/v1/objects/", json!({"model": "nodes", "object_pk": "7"})).await.error(409, "Conflict");
    let editors = group_pk(&admin, "Editors", None, json!({"users": ["read"]})).await;
    let other_group = group_pk(&admin, "Other", None, json!({})).await;
    let (ed, ed_client) = member(&server, &admin, "ed", &[editors]).await;
    let outsider = quick_user(&admin, "outsider", &[]).await;
    let nodes = format!("/api/v1/users/{ed}/groups/{editors}/nodes/");
    assert_eq!(ed_client.get("/api/v1/users/").await.status, StatusCode::OK);

    let r = admin.get(&nodes).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"node_ids": [], "hidden": 0, "restricted": false}));

    let rev = server.revision().await;
    let r = admin.put(&format!("{nodes}7/"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"node_ids": [7], "hidden": 0, "restricted": true}));
    assert_eq!(r.revision(), Some(rev + 1));
    // The only route to users.read is now restricted: no global permission through it.
    denied(&ed_client.get("/api/v1/users/").await, "This method needs permission read on users.");
    assert_eq!(ed_client.get("/api/v1/users/me/").await.status, StatusCode::OK, "the membership itself stays");
    assert_eq!(groups_of(&admin, ed).await, [editors], "restrictions do not change membership");

    let r = admin.put(&format!("{nodes}8/"), json!({})).await;
    assert_eq!(r.body, json!({"node_ids": [7, 8], "hidden": 0, "restricted": true}));
    let r = admin.put(&format!("{nodes}7/"), json!({})).await;
    assert_eq!(r.body, json!({"node_ids": [7, 8], "hidden": 0, "restricted": true}), "adding twice keeps one");
    assert_eq!(admin.get(&nodes).await.body, json!({"node_ids": [7, 8], "hidden": 0, "restricted": true}));

    // Unknown nodes, users, groups and memberships are 404 and change nothing.
    let rev = server.revision().await;
    admin.put(&format!("{nodes}99/"), json!({})).await.error(404, "NotFound");
    admin.put(&format!("{nodes}abc/"), json!({})).await.error(404, "NotFound");
    admin.delete(&format!("{nodes}99/")).await.error(404, "NotFound");
    for base in [
        format!("/api/v1/users/{outsider}/groups/{editors}/nodes/"),
        format!("/api/v1/users/{ed}/groups/{other_group}/nodes/"),
        format!("/api/v1/users/999/groups/{editors}/nodes/"),
        format!("/api/v1/users/{ed}/groups/999/nodes/"),
    ] {
        admin.get(&base).await.error(404, "NotFound");
        admin.put(&format!("{base}7/"), json!({})).await.error(404, "NotFound");
        admin.delete(&format!("{base}7/")).await.error(404, "NotFound");
        admin.delete(&base).await.error(404, "NotFound");
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&nodes).await.body["node_ids"], json!([7, 8]));

    // Removing nodes keeps the restriction, down to none (which grants nothing).
    let r = admin.delete(&format!("{nodes}7/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"node_ids": [8], "hidden": 0, "restricted": true}));
    assert_eq!(r.revision(), Some(rev + 1));
    let r = admin.delete(&format!("{nodes}8/")).await;
    assert_eq!(r.body, json!({"node_ids": [], "hidden": 0, "restricted": true}));
    assert_eq!(admin.get(&nodes).await.body, json!({"node_ids": [], "hidden": 0, "restricted": true}));
    admin.delete(&format!("{nodes}8/")).await.error(404, "NotFound");
    denied(&ed_client.get("/api/v1/users/").await, "This method needs permission read on users.");

    // An unrestricted path to the same permission wins.
    let readers = group_pk(&admin, "Readers", None, json!({"users": ["read"]})).await;
    admin.put(&format!("/api/v1/users/{ed}/groups/{readers}/"), json!({})).await;
    assert_eq!(ed_client.get("/api/v1/users/").await.status, StatusCode::OK);
    admin.delete(&format!("/api/v1/users/{ed}/groups/{readers}/")).await;
    assert_eq!(ed_client.get("/api/v1/users/").await.status, StatusCode::FORBIDDEN);

    // Lifting restores the membership's permissions.
    let rev = server.revision().await;
    let r = admin.delete(&nodes).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(admin.get(&nodes).await.body, json!({"node_ids": [], "hidden": 0, "restricted": false}));
    assert_eq!(ed_client.get("/api/v1/users/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn node_restrictions_hide_nodes_from_callers_without_nodes_read() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    register_node(&admin, 7).await;
    register_node(&admin, 8).await;
    let leads = group_pk(&admin, "Leads", None, json!({"groups": ["read"]})).await;
    let editors = group_pk(&admin, "Editors", Some(leads), json!({})).await;
    let (_, lead) = member(&server, &admin, "lead", &[leads]).await;
    let ed = quick_user(&admin, "ed", &[editors]).await;
    let nodes = format!("/api/v1/users/{ed}/groups/{editors}/nodes/");
    admin.put(&format!("{nodes}7/"), json!({})).await;
    admin.put(&format!("{nodes}8/"), json!({})).await;

    let r = lead.get(&nodes).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"node_ids": [], "hidden": 2, "restricted": true}));

    // nodes.read on one node shows that node only.
    let lead_pk = lead.get("/api/v1/users/me/").await.body["pk"].as_i64().unwrap();
    let grant = json!({"permissions": ["nodes.read"], "model": "nodes", "object_pk": "7"});
    let r = admin.post(&format!("/api/v1/rbac/permissions/assigned_by_users/{lead_pk}/assign/"), grant).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = lead.get(&nodes).await;
    assert_eq!(r.body, json!({"node_ids": [7], "hidden": 1, "restricted": true}));

    let r =
        admin.patch(&format!("/api/v1/groups/{leads}/"), json!({"permissions": {"groups": ["read"], "nodes": ["read"]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = lead.get(&nodes).await;
    assert_eq!(r.body, json!({"node_ids": [7, 8], "hidden": 0, "restricted": true}));
}
