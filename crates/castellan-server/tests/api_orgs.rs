//! Organisations over HTTP (API.md §3, §4, §8; seed 000): organisations and their password policies, and the
//! isolation of one organisation from another.

mod common;

use common::TestServer;
use common::directory::{denied, group, group_pk, groups_of, invalid, keys, member, pks, strings};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------------
// Organisations
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn orgs_crud_by_a_superuser() {
    let server = TestServer::start().await;
    let admin = server.admin().await;

    let rev = server.revision().await;
    let r = admin.post("/api/v1/orgs/", json!({"name": "Acme Corp. EU", "description": "Sells"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(keys(&r.body), strings(&["pk", "name", "slug", "description", "created_date", "modified_date"]));
    assert_eq!(r.body["name"], "Acme Corp. EU");
    assert_eq!(r.body["slug"], "acme-corp-eu", "the slug defaults to the slugified name");
    assert_eq!(r.body["description"], "Sells");
    let acme = r.body["pk"].as_i64().unwrap();
    let created = r.body.clone();
    assert_eq!(admin.get(&format!("/api/v1/orgs/{acme}/")).await.body, created);

    let r = admin.get("/api/v1/orgs/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["count"], 2, "the default org and the new one: {}", r.body);
    assert_eq!(pks(&r), [1, acme]);

    // A taken slug is 409 and changes nothing; a bad slug or a missing name is 400.
    let rev = server.revision().await;
    admin.post("/api/v1/orgs/", json!({"name": "Other", "slug": "acme-corp-eu"})).await.error(409, "Conflict");
    invalid(&admin.post("/api/v1/orgs/", json!({"name": "Other", "slug": "Not A Slug"})).await, &["slug"]);
    invalid(&admin.post("/api/v1/orgs/", json!({"slug": "other"})).await, &["name"]);
    invalid(&admin.put(&format!("/api/v1/orgs/{acme}/"), json!({"description": "no name"})).await, &["name"]);
    admin.patch(&format!("/api/v1/orgs/{acme}/"), json!({"slug": "default"})).await.error(409, "Conflict");
    assert_eq!(server.revision().await, rev);

    let r = admin.patch(&format!("/api/v1/orgs/{acme}/"), json!({"description": "Sells more"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(r.body["description"], "Sells more");
    assert_eq!(r.body["name"], "Acme Corp. EU");
    assert_eq!(r.body["created_date"], created["created_date"]);
    let r = admin.put(&format!("/api/v1/orgs/{acme}/"), json!({"name": "Acme", "slug": "acme"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["name"].as_str(), r.body["slug"].as_str()), (Some("Acme"), Some("acme")));

    // Deleting: 409 while users remain, 204 when empty, then 404.
    let rev = server.revision().await;
    admin.delete("/api/v1/orgs/1/").await.error(409, "Conflict");
    admin.delete("/api/v1/orgs/999/").await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);
    let r = admin.delete(&format!("/api/v1/orgs/{acme}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    admin.get(&format!("/api/v1/orgs/{acme}/")).await.error(404, "NotFound");
    assert_eq!(admin.get("/api/v1/orgs/").await.body["count"], 1);

    // An org with a user in it cannot be deleted either.
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let body = json!({"username": "o1", "password": null, "email": "o1@example.com", "groups": [], "org": other});
    let user = admin.post("/api/v1/users/", body).await;
    assert_eq!(user.body["org"], other, "{}", user.body);
    let rev = server.revision().await;
    admin.delete(&format!("/api/v1/orgs/{other}/")).await.error(409, "Conflict");
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/orgs/{other}/")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn non_superusers_manage_only_their_own_org() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let full = group_pk(&admin, "Org admins", None, json!({"orgs": ["full"]})).await;
    let (_, boss) = member(&server, &admin, "boss", &[full]).await;
    let (_, nobody) = member(&server, &admin, "nobody", &[]).await;

    let r = boss.get("/api/v1/orgs/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 1, "only the own org: {}", r.body);
    assert_eq!(pks(&r), [1]);
    assert_eq!(boss.get("/api/v1/orgs/1/").await.body["slug"], "default");
    boss.get(&format!("/api/v1/orgs/{other}/")).await.error(404, "NotFound");
    boss.get(&format!("/api/v1/orgs/{other}/password_policy/")).await.error(404, "NotFound");

    let rev = server.revision().await;
    boss.post("/api/v1/orgs/", json!({"name": "Mine"})).await.error(403, "PermissionDenied");
    boss.delete("/api/v1/orgs/1/").await.error(403, "PermissionDenied");
    boss.delete(&format!("/api/v1/orgs/{other}/")).await.error(404, "NotFound");
    boss.patch(&format!("/api/v1/orgs/{other}/"), json!({"description": "taken over"})).await.error(404, "NotFound");
    let policy = json!({"min_length": 4, "require_upper": false, "require_digit": false, "require_special": false});
    boss.put(&format!("/api/v1/orgs/{other}/password_policy/"), policy.clone()).await.error(404, "NotFound");
    denied(&nobody.get("/api/v1/orgs/").await, "This method needs permission read on orgs.");
    denied(&nobody.get("/api/v1/orgs/1/").await, "This method needs permission read on orgs.");
    denied(&nobody.post("/api/v1/orgs/", json!({"name": "Mine"})).await, "This method needs permission create on orgs.");
    denied(&nobody.patch("/api/v1/orgs/1/", json!({"name": "Mine"})).await, "This method needs permission update on orgs.");
    denied(&nobody.delete("/api/v1/orgs/1/").await, "This method needs permission delete on orgs.");
    denied(&nobody.get("/api/v1/orgs/1/password_policy/").await, "This method needs permission read on orgs.");
    denied(&nobody.put("/api/v1/orgs/1/password_policy/", policy).await, "This method needs permission update on orgs.");
    assert_eq!(server.revision().await, rev, "refused writes change nothing");
    assert_eq!(admin.get("/api/v1/orgs/").await.body["count"], 2);
    assert_eq!(admin.get(&format!("/api/v1/orgs/{other}/")).await.body["description"], "");

    let r = boss.patch("/api/v1/orgs/1/", json!({"description": "Ours"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["description"], "Ours");
    assert_eq!(r.revision(), Some(rev + 1));
    let policy =
        json!({"min_length": 10, "require_upper": true, "require_digit": true, "require_special": true, "history_count": 4});
    let r = boss.put("/api/v1/orgs/1/password_policy/", policy.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "the own org's policy: {}", r.body);
    assert_eq!(boss.get("/api/v1/orgs/1/password_policy/").await.body, policy);
    assert_eq!(admin.get(&format!("/api/v1/orgs/{other}/password_policy/")).await.body["min_length"], 8);
}

#[tokio::test]
async fn password_policy_is_read_set_and_applied() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();

    let default =
        json!({"min_length": 8, "require_upper": true, "require_digit": true, "require_special": true, "history_count": 2});
    let r = admin.get("/api/v1/orgs/1/password_policy/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, default);

    let rev = server.revision().await;
    let policy =
        json!({"min_length": 12, "require_upper": false, "require_digit": false, "require_special": false, "history_count": 3});
    let r = admin.put("/api/v1/orgs/1/password_policy/", policy.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, policy);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(admin.get("/api/v1/orgs/1/password_policy/").await.body, policy);
    assert_eq!(admin.get(&format!("/api/v1/orgs/{other}/password_policy/")).await.body, default, "per organisation");

    // User creation follows the org's policy.
    let body = |name: &str, password: &str, org: i64| json!({"username": name, "password": password, "email": format!("{name}@example.com"), "groups": [], "org": org});
    let rev = server.revision().await;
    invalid(&admin.post("/api/v1/users/", body("shorty", "Passw0rd!", 1)).await, &["password"]);
    invalid(&admin.post("/api/v1/users/", body("plain2", "plainpassword", other)).await, &["password"]);
    assert_eq!(server.revision().await, rev);
    let r = admin.post("/api/v1/users/", body("plain", "plainpassword", 1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "a password the policy accepts: {}", r.body);
    let plain = r.body["pk"].as_i64().unwrap();
    let r = admin.post("/api/v1/users/", body("strong", "Passw0rd!", other)).await;
    assert_eq!(r.status, StatusCode::CREATED, "the other org keeps the default rule: {}", r.body);

    // Password changes follow it too, history included.
    let me = server.login("plain", "plainpassword").await;
    let change = |old: &str, new: &str| json!({"old_password": old, "new_password": new});
    let rev = server.revision().await;
    invalid(&me.put("/api/v1/active_user/change_password/", change("plainpassword", "Sh0rt!x")).await, &["new_password"]);
    invalid(&admin.patch(&format!("/api/v1/users/{plain}/"), json!({"password": "Tiny1!"})).await, &["password"]);
    assert_eq!(server.revision().await, rev);
    let r = me.put("/api/v1/active_user/change_password/", change("plainpassword", "anotherplainpw")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = me.put("/api/v1/active_user/change_password/", change("anotherplainpw", "yetanotherplain")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rev = server.revision().await;
    let r = me.put("/api/v1/active_user/change_password/", change("yetanotherplain", "plainpassword")).await;
    invalid(&r, &["new_password"]);
    assert_eq!(server.revision().await, rev, "history_count 3 covers the password before the previous one");
}

#[tokio::test]
async fn bad_password_policies_are_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let good =
        json!({"min_length": 10, "require_upper": true, "require_digit": true, "require_special": false, "history_count": 2});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let rev = server.revision().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["min_length", "require_upper", "require_digit", "require_special"]),
        (with("min_length", json!(0)), vec!["min_length"]),
        (with("min_length", json!(129)), vec!["min_length"]),
        (with("min_length", json!("10")), vec!["min_length"]),
        (with("require_upper", json!("yes")), vec!["require_upper"]),
        (with("history_count", json!(-1)), vec!["history_count"]),
        (with("history_count", json!(25)), vec!["history_count"]),
        (with("history_count", json!(1.5)), vec!["history_count"]),
    ];
    for (body, fields) in cases {
        let r = admin.put("/api/v1/orgs/1/password_policy/", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        invalid(&r, &fields);
    }
    admin.put("/api/v1/orgs/1/password_policy/", json!([1])).await.error(400, "ValidationError");
    admin.put("/api/v1/orgs/999/password_policy/", good.clone()).await.error(404, "NotFound");
    admin.get("/api/v1/orgs/999/password_policy/").await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev, "refused policies change nothing");
    assert_eq!(admin.get("/api/v1/orgs/1/password_policy/").await.body["min_length"], 8);

    // `history_count` may be left out (default 2).
    let mut partial = good.clone();
    partial.as_object_mut().unwrap().remove("history_count");
    let r = admin.put("/api/v1/orgs/1/password_policy/", partial).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["history_count"], 2);
    assert_eq!(r.body["min_length"], 10);
}

// ---------------------------------------------------------------------------------------------------------------
// Organisation isolation
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn other_organisations_are_invisible() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let far_group = group(&admin, json!({"name": "Staff", "org": other, "permissions": {"users": ["read"]}})).await;
    let far_group = far_group["pk"].as_i64().unwrap();
    let far_child = group(&admin, json!({"name": "Child", "org": other, "parent": far_group})).await["pk"].as_i64().unwrap();
    let body = json!({"username": "far", "password": null, "email": "far@example.com", "groups": [far_group], "org": other});
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let far = r.body["pk"].as_i64().unwrap();

    let staff = group_pk(
        &admin,
        "Staff",
        None,
        json!({"users": ["read", "update"], "groups": ["read", "create", "update", "delete"], "orgs": ["read"]}),
    )
    .await;
    let (local, c) = member(&server, &admin, "local", &[staff]).await;

    let rev = server.revision().await;
    for path in [
        format!("/api/v1/users/{far}/"),
        format!("/api/v1/users/{far}/groups/"),
        format!("/api/v1/users/{far}/groups/{far_group}/nodes/"),
        format!("/api/v1/groups/{far_group}/"),
        format!("/api/v1/groups/{far_group}/children/"),
        format!("/api/v1/groups/{far_group}/users/"),
        format!("/api/v1/orgs/{other}/"),
        format!("/api/v1/orgs/{other}/password_policy/"),
    ] {
        c.get(&path).await.error(404, "NotFound");
    }
    c.patch(&format!("/api/v1/users/{far}/"), json!({"first_name": "x"})).await.error(404, "NotFound");
    c.patch(&format!("/api/v1/groups/{far_group}/"), json!({"name": "x"})).await.error(404, "NotFound");
    c.delete(&format!("/api/v1/groups/{far_child}/")).await.error(404, "NotFound");
    c.patch(&format!("/api/v1/groups/{far_group}/assign-users/"), json!({"users": [local]})).await.error(404, "NotFound");
    c.put(&format!("/api/v1/users/{local}/groups/{far_group}/"), json!({})).await.error(404, "NotFound");
    c.put(&format!("/api/v1/users/{far}/groups/{staff}/"), json!({})).await.error(404, "NotFound");
    c.patch(&format!("/api/v1/groups/{staff}/assign-users/"), json!({"users": [far]})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev, "nothing changed");

    for path in
        [format!("/api/v1/users/?org={other}"), format!("/api/v1/groups/?org={other}"), format!("/api/v1/users/?id={far}")]
    {
        let r = c.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.body["count"], 0, "{path}: {}", r.body);
    }
    let r = c.get("/api/v1/orgs/").await;
    assert_eq!(pks(&r), [1]);
    let r = c.get("/api/v1/groups/").await;
    assert_eq!(pks(&r), [staff]);

    // Even a superuser cannot link across organisations (400).
    invalid(&admin.put(&format!("/api/v1/users/{local}/groups/{far_group}/"), json!({})).await, &["users"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{far_group}/assign-users/"), json!({"users": [local]})).await, &["users"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "X", "parent": far_group})).await, &["parent"]);
    assert_eq!(server.revision().await, rev);
    assert_eq!(groups_of(&admin, local).await, [staff]);
    assert_eq!(admin.get("/api/v1/orgs/").await.body["count"], 2, "superusers see every org");
    assert_eq!(admin.get(&format!("/api/v1/groups/{far_group}/")).await.status, StatusCode::OK);
}
