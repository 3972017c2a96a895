//! Who may change the directory (API.md §10, §11): the permission each directory endpoint needs, dominance over
//! what memberships, group permissions, moves and deletions confer or revoke, expiring memberships, and the order
//! of refusals.

mod common;

use common::directory::{denied, group_pk, groups_of, member, quick_user, register_node, sorted};
use common::{Client, TestServer};
use reqwest::StatusCode;
use serde_json::json;

const NOT_HELD: &str = "You cannot confer or revoke permissions you do not hold.";

// ---------------------------------------------------------------------------------------------------------------
// Permissions of the endpoints, and dominance (§10, §11)
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn directory_endpoints_name_the_missing_permission() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let readers = group_pk(&admin, "Readers", None, json!({"groups": ["read"]})).await;
    let (me, nobody) = member(&server, &admin, "nobody", &[]).await;
    let (_, reader) = member(&server, &admin, "reader", &[readers]).await;
    let need = |action: &str, module: &str| format!("This method needs permission {action} on {module}.");

    let rev = server.revision().await;
    denied(&nobody.get("/api/v1/groups/").await, &need("read", "groups"));
    denied(&nobody.get("/api/v1/groups/999/").await, &need("read", "groups"));
    denied(&nobody.get(&format!("/api/v1/groups/{g}/children/")).await, &need("read", "groups"));
    denied(&nobody.get(&format!("/api/v1/groups/{g}/users/")).await, &need("read", "groups"));
    denied(&nobody.post("/api/v1/groups/", json!({"name": "x"})).await, &need("create", "groups"));
    denied(&nobody.patch(&format!("/api/v1/groups/{g}/"), json!({"name": "x"})).await, &need("update", "groups"));
    denied(&nobody.put(&format!("/api/v1/groups/{g}/"), json!({"name": "x"})).await, &need("update", "groups"));
    denied(&nobody.delete(&format!("/api/v1/groups/{g}/")).await, &need("delete", "groups"));
    denied(&nobody.patch(&format!("/api/v1/groups/{g}/assign-users/"), json!({"users": [me]})).await, &need("update", "groups"));
    denied(&nobody.patch(&format!("/api/v1/groups/{g}/remove-users/"), json!({"users": [me]})).await, &need("update", "groups"));
    denied(&nobody.get(&format!("/api/v1/users/{me}/groups/")).await, &need("read", "groups"));
    denied(&nobody.put(&format!("/api/v1/users/{me}/groups/{g}/"), json!({})).await, &need("update", "groups"));
    denied(&nobody.delete(&format!("/api/v1/users/{me}/groups/{g}/")).await, &need("delete", "groups"));
    denied(&nobody.get(&format!("/api/v1/users/{me}/groups/{g}/nodes/")).await, &need("read", "groups"));
    denied(&nobody.put(&format!("/api/v1/users/{me}/groups/{g}/nodes/7/"), json!({})).await, &need("update", "groups"));
    denied(&nobody.delete(&format!("/api/v1/users/{me}/groups/{g}/nodes/")).await, &need("delete", "groups"));
    denied(&nobody.post("/api/v1/objects/", json!({"model": "nodes", "object_pk": "7"})).await, &need("create", "permissions"));
    denied(&nobody.delete("/api/v1/objects/nodes/7/").await, &need("delete", "permissions"));
    denied(&reader.post("/api/v1/groups/", json!({"name": "x"})).await, &need("create", "groups"));
    denied(&reader.delete(&format!("/api/v1/groups/{readers}/")).await, &need("delete", "groups"));
    denied(
        &reader.patch(&format!("/api/v1/groups/{readers}/assign-users/"), json!({"users": [me]})).await,
        &need("update", "groups"),
    );
    assert_eq!(server.revision().await, rev, "refused writes change nothing");
    assert_eq!(admin.get("/api/v1/groups/").await.body["count"], 2);
    assert_eq!(reader.get(&format!("/api/v1/groups/{readers}/")).await.status, StatusCode::OK);
}

/// Managers {groups: read..delete, users: [read]} ⊃ Deleters {users: [delete]} ⊃ Sub, Managers ⊃ Readers {groups: [read]}.
struct Managed {
    managers: i64,
    deleters: i64,
    sub: i64,
    readers: i64,
    manager: Client,
    /// Member of Managers.
    target: i64,
}

async fn managed(server: &TestServer, admin: &Client) -> Managed {
    let managers = group_pk(admin, "Managers", None, json!({"groups": "write", "users": ["read"]})).await;
    let deleters = group_pk(admin, "Deleters", Some(managers), json!({"users": ["delete"]})).await;
    let sub = group_pk(admin, "Sub", Some(deleters), json!({})).await;
    let readers = group_pk(admin, "Readers", Some(managers), json!({"groups": ["read"]})).await;
    let (_, manager) = member(server, admin, "manager", &[managers]).await;
    let target = quick_user(admin, "target", &[managers]).await;
    Managed { managers, deleters, sub, readers, manager, target }
}

#[tokio::test]
async fn memberships_need_holding_what_the_group_confers() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let m = managed(&server, &admin).await;
    let (c, t) = (&m.manager, m.target);

    let rev = server.revision().await;
    for g in [m.deleters, m.sub] {
        denied(&c.patch(&format!("/api/v1/groups/{g}/assign-users/"), json!({"users": [t]})).await, NOT_HELD);
        denied(&c.put(&format!("/api/v1/users/{t}/groups/{g}/"), json!({})).await, NOT_HELD);
    }
    assert_eq!(server.revision().await, rev, "refused assignments change nothing");
    assert_eq!(groups_of(&admin, t).await, [m.managers]);

    // What the manager holds, the manager may give.
    let r = c.patch(&format!("/api/v1/groups/{}/assign-users/", m.readers), json!({"users": [t]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users"], json!([t]));
    let r = c.delete(&format!("/api/v1/users/{t}/groups/{}/", m.readers)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Revoking needs holding what is revoked.
    admin.put(&format!("/api/v1/users/{t}/groups/{}/", m.deleters), json!({})).await;
    let rev = server.revision().await;
    denied(&c.patch(&format!("/api/v1/groups/{}/remove-users/", m.deleters), json!({"users": [t]})).await, NOT_HELD);
    denied(&c.delete(&format!("/api/v1/users/{t}/groups/{}/", m.deleters)).await, NOT_HELD);
    assert_eq!(server.revision().await, rev);
    assert_eq!(groups_of(&admin, t).await, sorted(vec![m.managers, m.deleters]));

    // Node restrictions: narrowing is allowed, widening or lifting needs dominance.
    register_node(&admin, 7).await;
    register_node(&admin, 8).await;
    let nodes = format!("/api/v1/users/{t}/groups/{}/nodes/", m.deleters);
    let r = c.put(&format!("{nodes}7/"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "restricting only narrows: {}", r.body);
    let rev = server.revision().await;
    denied(&c.put(&format!("{nodes}8/"), json!({})).await, NOT_HELD);
    denied(&c.delete(&nodes).await, NOT_HELD);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&nodes).await.body, json!({"node_ids": [7], "hidden": 0, "restricted": true}));
    let r = c.delete(&format!("{nodes}7/")).await;
    assert_eq!(r.status, StatusCode::OK, "removing a node only narrows: {}", r.body);
}

#[tokio::test]
async fn group_permissions_need_permissions_update_and_dominance() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let m = managed(&server, &admin).await;
    let c = &m.manager;

    let rev = server.revision().await;
    let needs = "This method needs permission update on permissions.";
    denied(&c.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"permissions": {"groups": ["update"]}})).await, needs);
    denied(&c.put(&format!("/api/v1/groups/{}/", m.readers), json!({"name": "Readers", "permissions": {}})).await, needs);
    let body = json!({"name": "New", "parent": m.managers, "permissions": {"groups": ["read"]}});
    denied(&c.post("/api/v1/groups/", body).await, needs);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{}/", m.readers)).await.body["permissions"], json!({"groups": ["read"]}));

    // Without `permissions`, the manager may create and rename.
    let r = c.post("/api/v1/groups/", json!({"name": "New", "parent": m.managers})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = c.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"description": "renamed"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A granter holds permissions.update, but cannot confer or revoke more than they hold.
    let granters =
        group_pk(&admin, "Granters", None, json!({"groups": "write", "permissions": ["update"], "users": ["read"]})).await;
    let team = group_pk(&admin, "Team", Some(granters), json!({"groups": ["read"]})).await;
    let strong = group_pk(&admin, "Strong", Some(granters), json!({"users": ["delete"]})).await;
    let (_, granter) = member(&server, &admin, "granter", &[granters]).await;
    let rev = server.revision().await;
    denied(&granter.patch(&format!("/api/v1/groups/{team}/"), json!({"permissions": {"users": ["delete"]}})).await, NOT_HELD);
    denied(&granter.patch(&format!("/api/v1/groups/{team}/"), json!({"permissions": {"audit": ["read"]}})).await, NOT_HELD);
    denied(&granter.patch(&format!("/api/v1/groups/{team}/"), json!({"permissions": {"users": ["full"]}})).await, NOT_HELD);
    denied(&granter.patch(&format!("/api/v1/groups/{strong}/"), json!({"permissions": {}})).await, NOT_HELD);
    let body = json!({"name": "Sneaky", "parent": granters, "permissions": {"users": ["read", "delete"]}});
    denied(&granter.post("/api/v1/groups/", body).await, NOT_HELD);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{strong}/")).await.body["permissions"], json!({"users": ["delete"]}));

    let body = json!({"permissions": {"users": ["read"], "groups": "write", "permissions": ["update"]}});
    let r = granter.patch(&format!("/api/v1/groups/{team}/"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"]["groups"], json!(["read", "create", "update", "delete"]));
    let r = granter.post("/api/v1/groups/", json!({"name": "Fine", "parent": granters, "permissions": {"users": "read"}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn moving_a_group_needs_dominance_over_what_is_gained_and_lost() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let m = managed(&server, &admin).await;
    let c = &m.manager;
    quick_user(&admin, "sub-member", &[m.sub]).await;
    let rev = server.revision().await;

    // Moving under Deleters would give the group's members users.delete.
    denied(&c.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"parent": m.deleters})).await, NOT_HELD);
    // Moving Sub out of Deleters takes users.delete from its members.
    denied(&c.patch(&format!("/api/v1/groups/{}/", m.sub), json!({"parent": m.managers})).await, NOT_HELD);
    denied(&c.patch(&format!("/api/v1/groups/{}/", m.sub), json!({"parent": null})).await, NOT_HELD);
    assert_eq!(server.revision().await, rev, "refused moves change nothing");
    assert_eq!(admin.get(&format!("/api/v1/groups/{}/", m.sub)).await.body["parent"], m.deleters);
    assert_eq!(admin.get(&format!("/api/v1/groups/{}/", m.readers)).await.body["parent"], m.managers);

    // Moves among what the manager holds are fine.
    let r = c.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"parent": m.managers, "name": "Readers 2"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let spare = group_pk(&admin, "Spare", Some(m.managers), json!({})).await;
    let r = c.patch(&format!("/api/v1/groups/{spare}/"), json!({"parent": m.readers})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn deleting_a_group_needs_dominance_over_its_whole_subtree() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let m = managed(&server, &admin).await;
    let c = &m.manager;
    let temp = group_pk(&admin, "Temp", Some(m.managers), json!({})).await;
    let strong = group_pk(&admin, "Strong", Some(temp), json!({"users": ["delete"]})).await;
    quick_user(&admin, "strong-member", &[strong]).await;

    let rev = server.revision().await;
    denied(&c.delete(&format!("/api/v1/groups/{}/", m.sub)).await, NOT_HELD);
    denied(&c.delete(&format!("/api/v1/groups/{strong}/")).await, NOT_HELD);
    denied(&c.delete(&format!("/api/v1/groups/{temp}/?cascade=true")).await, NOT_HELD);
    assert_eq!(server.revision().await, rev, "refused deletes change nothing");
    for g in [m.sub, temp, strong] {
        assert_eq!(admin.get(&format!("/api/v1/groups/{g}/")).await.status, StatusCode::OK);
    }

    // A subtree conferring only what the manager holds may go.
    let spare = group_pk(&admin, "Spare", Some(m.managers), json!({"groups": ["read"]})).await;
    let spare_child = group_pk(&admin, "Spare child", Some(spare), json!({"users": ["read"]})).await;
    let rev = server.revision().await;
    let r = c.delete(&format!("/api/v1/groups/{spare}/?cascade=true")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    admin.get(&format!("/api/v1/groups/{spare_child}/")).await.error(404, "NotFound");
}

#[tokio::test]
async fn expired_memberships_stop_counting_by_the_clock() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let readers = group_pk(&admin, "Readers", None, json!({"users": ["read"], "groups": ["read"]})).await;
    let (me, c) = member(&server, &admin, "temp", &[]).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let r = admin
        .put(
            &format!("/api/v1/users/{me}/groups/{readers}/"),
            json!({"expires_at": soon.format(&time::format_description::well_known::Rfc3339).unwrap()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(c.get("/api/v1/users/").await.status, StatusCode::OK);
    assert_eq!(groups_of(&admin, me).await, [readers]);
    assert_eq!(admin.get(&format!("/api/v1/groups/{readers}/users/")).await.body["count"], 1);

    let wait = soon - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    tokio::time::sleep(std::time::Duration::try_from(wait).unwrap_or_default()).await;
    denied(&c.get("/api/v1/users/").await, "This method needs permission read on users.");
    assert_eq!(groups_of(&admin, me).await, Vec::<i64>::new(), "an expired membership is not listed");
    assert_eq!(admin.get(&format!("/api/v1/groups/{readers}/users/")).await.body["count"], 0);
    assert_eq!(admin.get(&format!("/api/v1/users/{me}/groups/")).await.body["count"], 0);
    assert_eq!(admin.get(&format!("/api/v1/users/?group={readers}")).await.body["count"], 0);
}

#[tokio::test]
async fn anonymous_callers_get_401_and_refusals_follow_the_order() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let anon = server.anon();
    for path in ["/api/v1/groups/", "/api/v1/orgs/", "/api/v1/orgs/1/password_policy/", "/api/v1/users/1/groups/"] {
        anon.get(path).await.error(401, "AuthenticationRequired");
    }
    anon.post("/api/v1/groups/", json!({"name": "x"})).await.error(401, "AuthenticationRequired");
    anon.post("/api/v1/objects/", json!({"model": "nodes", "object_pk": "1"})).await.error(401, "AuthenticationRequired");

    // 404 (unknown or invisible) comes before 403 for dominance.
    let m = managed(&server, &admin).await;
    let hidden = group_pk(&admin, "Hidden", None, json!({"users": ["full"]})).await;
    let rev = server.revision().await;
    let c = &m.manager;
    c.patch("/api/v1/groups/999/assign-users/", json!({"users": [m.target]})).await.error(404, "NotFound");
    c.patch(&format!("/api/v1/groups/{hidden}/assign-users/"), json!({"users": [m.target]})).await.error(404, "NotFound");
    c.put(&format!("/api/v1/users/{}/groups/{hidden}/", m.target), json!({})).await.error(404, "NotFound");
    c.delete(&format!("/api/v1/groups/{hidden}/")).await.error(404, "NotFound");
    // Naming an invisible group (here of the same org) as a parent is naming an unknown record: 404 (§11).
    c.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"parent": hidden})).await.error(404, "NotFound");
    c.post("/api/v1/groups/", json!({"name": "Child", "parent": hidden})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);
    // A superuser sees every group: a key that names none is a bad field.
    let r = admin.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"parent": 999_999})).await;
    assert_eq!((r.status.as_u16(), r.fields()), (400, vec!["parent".to_string()]), "{}", r.body);
}
