//! Directory and permissions over HTTP (API.md §3, §4, §8, §10, §11; seeds 000, 001, 004): organisations and their
//! password policies, groups and their tree, memberships and node restrictions, visibility, organisation isolation
//! and dominance.

mod common;

use std::collections::BTreeSet;

use common::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
const PW: &str = "Passw0rd!";

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn strings(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `pk`s of a page's results, in order.
fn pks(r: &Resp) -> Vec<i64> {
    r.body["results"].as_array().expect("results").iter().map(|u| u["pk"].as_i64().unwrap()).collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

/// The result with key `pk` in a page.
fn result(r: &Resp, pk: i64) -> &Value {
    r.body["results"].as_array().expect("results").iter().find(|x| x["pk"] == pk).expect("the result is listed")
}

/// GET of an absolute URL (a `next`/`previous` link) with the client's credentials.
async fn get_url(c: &Client, url: &str) -> Resp {
    let mut req = c.http.get(url);
    if let Some(t) = &c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Client::read(req.send().await.unwrap()).await
}

/// Creates a group through the API as `c` and returns its representation.
async fn group(c: &Client, body: Value) -> Value {
    let r = c.post("/api/v1/groups/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// Creates a group named `name` under `parent` conferring `permissions`, as `c`, and returns its key.
async fn group_pk(c: &Client, name: &str, parent: Option<i64>, permissions: Value) -> i64 {
    group(c, json!({"name": name, "parent": parent, "permissions": permissions})).await["pk"].as_i64().unwrap()
}

/// Creates a user without a password (no hashing: fast) in `groups` and returns its key.
async fn quick_user(admin: &Client, username: &str, groups: &[i64]) -> i64 {
    let body = json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": groups});
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Creates a user in `groups` with the default password, logs them in, and returns their key and client.
async fn member(server: &TestServer, admin: &Client, username: &str, groups: &[i64]) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({"groups": groups})).await;
    (pk, server.login(username, PW).await)
}

/// The `groups` of a user as the superuser sees them.
async fn groups_of(admin: &Client, user: i64) -> Vec<i64> {
    let r = admin.get(&format!("/api/v1/users/{user}/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    sorted(r.body["groups"].as_array().unwrap().iter().map(|g| g.as_i64().unwrap()).collect())
}

/// Asserts a 403 `PermissionDenied` with exactly `detail`.
#[track_caller]
fn denied(r: &Resp, detail: &str) {
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], detail, "{}", r.body);
}

/// Asserts a 400 naming exactly `fields`.
#[track_caller]
fn invalid(r: &Resp, fields: &[&str]) {
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), fields, "{}", r.body);
}

const NOT_HELD: &str = "You cannot confer or revoke permissions you do not hold.";

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
// Groups
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn group_created_with_only_a_name_has_the_seed_shape() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    let r = admin.post("/api/v1/groups/", json!({"name": "Sales"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    let body = r.body.clone();
    let missing: Vec<_> = strings(&["pk", "name", "description", "org", "parent", "permissions", "roles"])
        .difference(&keys(&body))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in {body}");
    assert!(body["pk"].as_i64().is_some_and(|pk| pk > 0));
    assert_eq!(body["name"], "Sales");
    assert_eq!(body["description"], "");
    assert_eq!(body["org"], 1, "the creator's org");
    assert_eq!(body["parent"], Value::Null);
    assert_eq!(body["permissions"], json!({}));
    assert_eq!(body["roles"], json!([]));

    let pk = body["pk"].as_i64().unwrap();
    let r = admin.get(&format!("/api/v1/groups/{pk}/")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, body);
    let r = admin.get(&format!("/api/v1/groups/{pk}")).await;
    assert_eq!(r.status, StatusCode::OK, "without the trailing slash too");
    let r = admin.get("/api/v1/groups/").await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["results"][0], body);

    // Missing or blank name.
    let rev = server.revision().await;
    invalid(&admin.post("/api/v1/groups/", json!({"description": "x"})).await, &["name"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "  "})).await, &["name"]);
    invalid(&admin.put(&format!("/api/v1/groups/{pk}/"), json!({"description": "x"})).await, &["name"]);
    admin.get("/api/v1/groups/999/").await.error(404, "NotFound");
    admin.patch("/api/v1/groups/999/", json!({"name": "x"})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);

    let r = admin.put(&format!("/api/v1/groups/{pk}/"), json!({"name": "Sales EU", "description": "d"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["name"].as_str(), r.body["description"].as_str()), (Some("Sales EU"), Some("d")));
    assert_eq!(r.revision(), Some(rev + 1));
}

#[tokio::test]
async fn group_names_are_unique_among_siblings() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group_pk(&admin, "Sales", None, json!({})).await;
    let us = group_pk(&admin, "US", Some(sales), json!({})).await;
    let eu = group(&admin, json!({"name": "EU", "parent": sales})).await;
    assert_eq!(eu["parent"], sales);
    let eu = eu["pk"].as_i64().unwrap();

    let rev = server.revision().await;
    admin.post("/api/v1/groups/", json!({"name": "EU", "parent": sales})).await.error(409, "Conflict");
    admin.post("/api/v1/groups/", json!({"name": "Sales"})).await.error(409, "Conflict");
    admin.patch(&format!("/api/v1/groups/{us}/"), json!({"name": "EU"})).await.error(409, "Conflict");
    assert_eq!(server.revision().await, rev, "refused writes change nothing");
    assert_eq!(admin.get(&format!("/api/v1/groups/{us}/")).await.body["name"], "US");

    // The same name under another parent or at the root is fine; moving it next to its namesake is not.
    let us_eu = group(&admin, json!({"name": "EU", "parent": us})).await["pk"].as_i64().unwrap();
    let root_eu = group(&admin, json!({"name": "EU"})).await["pk"].as_i64().unwrap();
    let rev = server.revision().await;
    admin.patch(&format!("/api/v1/groups/{us_eu}/"), json!({"parent": sales})).await.error(409, "Conflict");
    admin.patch(&format!("/api/v1/groups/{root_eu}/"), json!({"parent": sales})).await.error(409, "Conflict");
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{us_eu}/")).await.body["parent"], us);
    assert_ne!(eu, us_eu);
}

#[tokio::test]
async fn group_parent_cycles_are_400_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let a = group_pk(&admin, "A", None, json!({})).await;
    let b = group_pk(&admin, "B", Some(a), json!({})).await;
    let c = group_pk(&admin, "C", Some(b), json!({})).await;
    let before = admin.get(&format!("/api/v1/groups/{a}/")).await.body;

    let rev = server.revision().await;
    for parent in [a, b, c] {
        let r = admin.patch(&format!("/api/v1/groups/{a}/"), json!({"parent": parent, "description": "moved"})).await;
        invalid(&r, &["parent"]);
    }
    invalid(&admin.patch(&format!("/api/v1/groups/{b}/"), json!({"parent": c})).await, &["parent"]);
    invalid(&admin.put(&format!("/api/v1/groups/{b}/"), json!({"name": "B", "parent": b})).await, &["parent"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{b}/"), json!({"parent": 999})).await, &["parent"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "D", "parent": 999})).await, &["parent"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{b}/"), json!({"parent": "a"})).await, &["parent"]);
    assert_eq!(server.revision().await, rev, "refused moves change nothing");
    assert_eq!(admin.get(&format!("/api/v1/groups/{a}/")).await.body, before);

    // Legal moves: C to the root, then A under C.
    let r = admin.patch(&format!("/api/v1/groups/{c}/"), json!({"parent": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parent"], Value::Null);
    let r = admin.patch(&format!("/api/v1/groups/{a}/"), json!({"parent": c})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parent"], c);
    invalid(&admin.patch(&format!("/api/v1/groups/{c}/"), json!({"parent": b})).await, &["parent"]);
}

#[tokio::test]
async fn group_parent_in_another_org_is_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let far = group(&admin, json!({"name": "Far", "org": other})).await;
    assert_eq!(far["org"], other);
    let far = far["pk"].as_i64().unwrap();
    let home = group_pk(&admin, "Home", None, json!({})).await;

    let rev = server.revision().await;
    invalid(&admin.post("/api/v1/groups/", json!({"name": "X", "parent": far})).await, &["parent"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "Y", "org": other, "parent": home})).await, &["parent"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{home}/"), json!({"parent": far})).await, &["parent"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "Z", "org": 999})).await, &["org"]);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{home}/")).await.body["parent"], Value::Null);
    let r = admin.get(&format!("/api/v1/groups/?org={other}")).await;
    assert_eq!(pks(&r), [far]);
}

#[tokio::test]
async fn deleting_a_group_with_children_needs_cascade() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group_pk(&admin, "Sales", None, json!({})).await;
    let eu = group_pk(&admin, "EU", Some(sales), json!({})).await;
    let north = group_pk(&admin, "North", Some(eu), json!({})).await;
    let ops = group_pk(&admin, "Ops", None, json!({})).await;
    let seller = quick_user(&admin, "seller", &[north, ops]).await;

    let rev = server.revision().await;
    admin.delete(&format!("/api/v1/groups/{sales}/")).await.error(409, "Conflict");
    admin.delete(&format!("/api/v1/groups/{eu}/?cascade=false")).await.error(409, "Conflict");
    admin.delete("/api/v1/groups/999/").await.error(404, "NotFound");
    invalid(&admin.delete(&format!("/api/v1/groups/{sales}/?cascade=maybe")).await, &["cascade"]);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{north}/")).await.status, StatusCode::OK);

    let r = admin.delete(&format!("/api/v1/groups/{sales}/?cascade=true")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    for g in [sales, eu, north] {
        admin.get(&format!("/api/v1/groups/{g}/")).await.error(404, "NotFound");
    }
    assert_eq!(groups_of(&admin, seller).await, [ops], "memberships of the subtree are gone");
    assert_eq!(admin.get("/api/v1/groups/").await.body["count"], 1);

    let r = admin.delete(&format!("/api/v1/groups/{ops}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(groups_of(&admin, seller).await, Vec::<i64>::new());
}

#[tokio::test]
async fn group_permissions_accept_seed_001_levels_and_name_bad_modules() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let body = json!({"name": "Writers", "permissions": {"brands": "write", "users": "read", "groups": ["read", "update"]}});
    let r = admin.post("/api/v1/groups/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["permissions"],
        json!({"brands": ["read", "create", "update", "delete"], "users": ["read"], "groups": ["read", "update"]})
    );
    let pk = r.body["pk"].as_i64().unwrap();

    let rev = server.revision().await;
    let bad = [
        (json!({"brands": ["fly"]}), "permissions.brands"),
        (json!({"brands": "admin"}), "permissions.brands"),
        (json!({"brands": 5}), "permissions.brands"),
        (json!({"Bad Id": ["read"]}), "permissions.Bad Id"),
        (json!(["read"]), "permissions"),
        (json!("write"), "permissions"),
    ];
    for (permissions, field) in bad {
        let r = admin.post("/api/v1/groups/", json!({"name": "Bad", "permissions": permissions})).await;
        invalid(&r, &[field]);
        let r = admin.patch(&format!("/api/v1/groups/{pk}/"), json!({"permissions": permissions})).await;
        invalid(&r, &[field]);
    }
    assert_eq!(server.revision().await, rev);

    let r = admin.patch(&format!("/api/v1/groups/{pk}/"), json!({"permissions": {"users": ["full"], "audit": "read"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"], json!({"users": ["full"], "audit": ["read"]}));
    assert_eq!(admin.get(&format!("/api/v1/groups/{pk}/")).await.body["permissions"], r.body["permissions"]);
}

#[tokio::test]
async fn group_children_are_paged() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let parent = group_pk(&admin, "Parent", None, json!({})).await;
    let mut kids = Vec::new();
    for name in ["K1", "K2", "K3"] {
        kids.push(group_pk(&admin, name, Some(parent), json!({})).await);
    }
    group_pk(&admin, "Grandchild", Some(kids[0]), json!({})).await;

    let r = admin.get(&format!("/api/v1/groups/{parent}/children/?page_size=2")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 3, "direct children only: {}", r.body);
    assert_eq!(pks(&r), kids[..2]);
    assert_eq!(r.body["previous"], Value::Null);
    let next = r.body["next"].as_str().expect("a next link").to_string();
    assert!(next.starts_with("http://") && next.contains("page=2"), "{next}");
    let r = get_url(&admin, &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(pks(&r), kids[2..]);
    assert_eq!(r.body["next"], Value::Null);
    assert!(r.body["previous"].is_string());
    assert_eq!(r.body["results"][0]["parent"], parent);

    let r = admin.get(&format!("/api/v1/groups/{}/children/", kids[1])).await;
    assert_eq!(r.body["count"], 0);
    admin.get("/api/v1/groups/999/children/").await.error(404, "NotFound");
    let r = admin.get(&format!("/api/v1/groups/?parent={parent}")).await;
    assert_eq!(pks(&r), kids);
    let r = admin.get("/api/v1/groups/?parent=null").await;
    assert_eq!(pks(&r), [parent]);
}

#[tokio::test]
async fn group_users_direct_and_recursive() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group_pk(&admin, "Sales", None, json!({})).await;
    let eu = group_pk(&admin, "EU", Some(sales), json!({})).await;
    let north = group_pk(&admin, "North", Some(eu), json!({})).await;
    let s = quick_user(&admin, "s", &[sales]).await;
    let e = quick_user(&admin, "e", &[eu]).await;
    let n = quick_user(&admin, "n", &[north]).await;
    quick_user(&admin, "loner", &[]).await;

    let r = admin.get(&format!("/api/v1/groups/{sales}/users/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["count"].as_i64(), pks(&r)), (Some(1), vec![s]));
    assert_eq!(r.body["results"][0]["username"], "s");
    let r = admin.get(&format!("/api/v1/groups/{sales}/users/?recursive=true")).await;
    assert_eq!((r.body["count"].as_i64(), sorted(pks(&r))), (Some(3), vec![s, e, n]));
    let r = admin.get(&format!("/api/v1/groups/{eu}/users/?recursive=true")).await;
    assert_eq!(sorted(pks(&r)), [e, n]);
    let r = admin.get(&format!("/api/v1/groups/{sales}/users/?recursive=true&page_size=2")).await;
    assert_eq!(r.body["count"], 3);
    assert_eq!(pks(&r).len(), 2);
    assert!(r.body["next"].is_string());
    let r = admin.get(&format!("/api/v1/users/?group={sales}&recursive=true")).await;
    assert_eq!(sorted(pks(&r)), [s, e, n]);
    let r = admin.get(&format!("/api/v1/users/?group={sales}")).await;
    assert_eq!(pks(&r), [s]);
    admin.get("/api/v1/groups/999/users/").await.error(404, "NotFound");
}

#[tokio::test]
async fn assign_and_remove_users() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let g = group_pk(&admin, "Team", None, json!({"users": ["read"]})).await;
    let a = quick_user(&admin, "a", &[]).await;
    let b = quick_user(&admin, "b", &[]).await;
    let c = quick_user(&admin, "c", &[]).await;
    let body = json!({"username": "far", "password": null, "email": "far@example.com", "groups": [], "org": other});
    let far = admin.post("/api/v1/users/", body).await.body["pk"].as_i64().unwrap();

    let rev = server.revision().await;
    let r = admin.patch(&format!("/api/v1/groups/{g}/assign-users/"), json!({"users": [a, b]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(r.body["pk"], g);
    assert_eq!(r.body["name"], "Team");
    assert_eq!(r.body["permissions"], json!({"users": ["read"]}));
    assert_eq!(sorted(r.body["users"].as_array().unwrap().iter().map(|u| u.as_i64().unwrap()).collect()), [a, b]);
    assert_eq!(r.body["users_count"], 2);
    assert_eq!(groups_of(&admin, a).await, [g]);

    let r = admin.patch(&format!("/api/v1/groups/{g}/remove-users/"), json!({"users": [a, c]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users"], json!([b]));
    assert_eq!(r.body["users_count"], 1);
    assert_eq!(groups_of(&admin, a).await, Vec::<i64>::new());

    // Refusals change nothing.
    let rev = server.revision().await;
    let assign = format!("/api/v1/groups/{g}/assign-users/");
    invalid(&admin.patch(&assign, json!({})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": ["x"]})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": a})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": [a, 999]})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": [far]})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": [a], "expires_at": "2001-01-01T00:00:00Z"})).await, &["expires_at"]);
    invalid(&admin.patch(&assign, json!({"users": [a], "expires_at": "tomorrow"})).await, &["expires_at"]);
    admin.patch("/api/v1/groups/999/assign-users/", json!({"users": [a]})).await.error(404, "NotFound");
    admin.patch("/api/v1/groups/999/remove-users/", json!({"users": [a]})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);
    assert_eq!(groups_of(&admin, a).await, Vec::<i64>::new());
    assert_eq!(groups_of(&admin, far).await, Vec::<i64>::new());

    // A future expiry is accepted and stored.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = admin.patch(&assign, json!({"users": [a], "expires_at": later})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users_count"], 2);
    let m = server.store.membership(a, g).await.unwrap().expect("a membership");
    assert!(m.expires_at.is_some(), "the expiry is stored");
    assert_eq!(groups_of(&admin, a).await, [g]);
}

#[tokio::test]
async fn user_group_membership_endpoints() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let u = quick_user(&admin, "u", &[]).await;

    let r = admin.get(&format!("/api/v1/users/{u}/groups/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["count"].as_i64(), r.body["results"].clone()), (Some(0), json!([])));

    let rev = server.revision().await;
    let r = admin.put(&format!("/api/v1/users/{u}/groups/{g}/"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(r.body["pk"], g, "answers the group: {}", r.body);
    assert_eq!(r.body["name"], "Team");
    let r = admin.get(&format!("/api/v1/users/{u}/groups/")).await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(pks(&r), [g]);
    assert_eq!(r.body["results"][0]["name"], "Team");
    assert_eq!(groups_of(&admin, u).await, [g]);

    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = admin.put(&format!("/api/v1/users/{u}/groups/{g}/"), json!({"expires_at": later})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(server.store.membership(u, g).await.unwrap().unwrap().expires_at.is_some());

    let rev = server.revision().await;
    let r = admin.put(&format!("/api/v1/users/{u}/groups/{g}/"), json!({"expires_at": "2001-01-01T00:00:00Z"})).await;
    invalid(&r, &["expires_at"]);
    for path in [
        format!("/api/v1/users/999/groups/{g}/"),
        format!("/api/v1/users/{u}/groups/999/"),
        format!("/api/v1/users/{u}/groups/abc/"),
    ] {
        admin.put(&path, json!({})).await.error(404, "NotFound");
        admin.delete(&path).await.error(404, "NotFound");
    }
    admin.get("/api/v1/users/999/groups/").await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev, "refused writes change nothing");
    assert!(server.store.membership(u, g).await.unwrap().unwrap().expires_at.is_some());

    let r = admin.delete(&format!("/api/v1/users/{u}/groups/{g}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(admin.get(&format!("/api/v1/users/{u}/groups/")).await.body["count"], 0);
    assert_eq!(groups_of(&admin, u).await, Vec::<i64>::new());
}

// ---------------------------------------------------------------------------------------------------------------
// Node restrictions
// ---------------------------------------------------------------------------------------------------------------

/// Registers node `id` as the superuser.
async fn register_node(admin: &Client, id: i64) {
    let r = admin.post("/api/v1/objects/", json!({"model": "nodes", "object_pk": id.to_string()})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["model"], "nodes");
    assert_eq!(r.body["object_pk"], id.to_string());
}

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

    let r =
        admin.patch(&format!("/api/v1/groups/{leads}/"), json!({"permissions": {"groups": ["read"], "nodes": ["read"]}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = lead.get(&nodes).await;
    assert_eq!(r.body, json!({"node_ids": [7, 8], "hidden": 0, "restricted": true}));
}

// ---------------------------------------------------------------------------------------------------------------
// Visibility (seed 004)
// ---------------------------------------------------------------------------------------------------------------

/// Sales {users: [read], groups: [read]} ⊃ EU sales ⊃ EU north, Sales ⊃ US sales; and their members.
struct SalesTree {
    sales: i64,
    eu: i64,
    north: i64,
    us: i64,
    /// Logged in, member of EU sales.
    eu_user: i64,
    eu_client: Client,
    north_user: i64,
    us_user: i64,
    /// Member of EU sales and US sales.
    both: i64,
    lead: i64,
    outsider: i64,
}

async fn sales_tree(server: &TestServer, admin: &Client) -> SalesTree {
    let sales = group_pk(admin, "Sales", None, json!({"users": ["read"], "groups": ["read"]})).await;
    let eu = group_pk(admin, "EU sales", Some(sales), json!({})).await;
    let north = group_pk(admin, "EU north", Some(eu), json!({})).await;
    let us = group_pk(admin, "US sales", Some(sales), json!({})).await;
    let (eu_user, eu_client) = member(server, admin, "vis-eu", &[eu]).await;
    SalesTree {
        sales,
        eu,
        north,
        us,
        eu_user,
        eu_client,
        north_user: quick_user(admin, "vis-north", &[north]).await,
        us_user: quick_user(admin, "vis-us", &[us]).await,
        both: quick_user(admin, "vis-both", &[eu, us]).await,
        lead: quick_user(admin, "vis-lead", &[sales]).await,
        outsider: quick_user(admin, "vis-outsider", &[]).await,
    }
}

#[tokio::test]
async fn members_of_a_group_see_only_its_subtree() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = sales_tree(&server, &admin).await;
    let c = &t.eu_client;
    let visible = sorted(vec![t.eu_user, t.north_user, t.both]);

    let r = c.get("/api/v1/users/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 3, "{}", r.body);
    assert_eq!(sorted(pks(&r)), visible);

    for hidden in [t.us_user, t.lead, t.outsider, 1] {
        c.get(&format!("/api/v1/users/{hidden}/")).await.error(404, "NotFound");
        c.get(&format!("/api/v1/users/{hidden}/groups/")).await.error(404, "NotFound");
    }
    for seen in [t.eu_user, t.north_user, t.both] {
        assert_eq!(c.get(&format!("/api/v1/users/{seen}/")).await.status, StatusCode::OK);
    }

    // Filters never reveal the invisible.
    let r = c.get(&format!("/api/v1/users/?group={}", t.us)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!pks(&r).contains(&t.us_user), "invisible members of US sales are not listed: {}", r.body);
    assert!(pks(&r).iter().all(|pk| visible.contains(pk)), "{}", r.body);
    assert_eq!(r.body["count"].as_i64().unwrap() as usize, pks(&r).len(), "the count covers only what is listed");
    let r = c.get(&format!("/api/v1/users/?group={}&recursive=true", t.sales)).await;
    assert_eq!(r.body["count"], 0, "a group the caller cannot see matches nobody: {}", r.body);
    let r = c.get(&format!("/api/v1/users/?id={}&id={}&id={}", t.us_user, t.north_user, t.lead)).await;
    assert_eq!(pks(&r), [t.north_user]);
    let r = c.get("/api/v1/users/?username=vis-us").await;
    assert_eq!(r.body["count"], 0);

    // Paging: counts and `next` links cover only the visible.
    let mut seen = Vec::new();
    let mut r = c.get("/api/v1/users/?page_size=1").await;
    loop {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["count"], 3);
        seen.extend(pks(&r));
        match r.body["next"].as_str() {
            Some(next) => r = get_url(c, next).await,
            None => break,
        }
    }
    assert_eq!(sorted(seen), visible);
    c.get("/api/v1/users/?page_size=1&page=4").await.error(404, "NotFound");

    // Groups: the user's groups and their descendants.
    let r = c.get("/api/v1/groups/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let groups = pks(&r);
    assert!(groups.contains(&t.eu) && groups.contains(&t.north), "{}", r.body);
    assert!(!groups.contains(&t.us), "{}", r.body);
    assert_eq!(r.body["count"].as_i64().unwrap() as usize, groups.len());
    c.get(&format!("/api/v1/groups/{}/", t.us)).await.error(404, "NotFound");
    c.get(&format!("/api/v1/groups/{}/users/", t.us)).await.error(404, "NotFound");
    let r = c.get(&format!("/api/v1/groups/{}/users/", t.eu)).await;
    assert_eq!(sorted(pks(&r)), sorted(vec![t.eu_user, t.both]));
    let r = c.get(&format!("/api/v1/groups/{}/users/?recursive=true", t.eu)).await;
    assert_eq!(sorted(pks(&r)), visible);
}

#[tokio::test]
async fn embedded_groups_show_only_visible_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = sales_tree(&server, &admin).await;
    let c = &t.eu_client;

    let r = c.get("/api/v1/users/").await;
    assert_eq!(result(&r, t.both)["groups"], json!([t.eu]), "US sales is not shown: {}", r.body);
    assert_eq!(result(&r, t.eu_user)["groups"], json!([t.eu]));
    assert_eq!(c.get(&format!("/api/v1/users/{}/", t.both)).await.body["groups"], json!([t.eu]));
    let r = c.get(&format!("/api/v1/groups/{}/users/", t.eu)).await;
    assert_eq!(result(&r, t.both)["groups"], json!([t.eu]));
    let r = c.get(&format!("/api/v1/users/{}/groups/", t.both)).await;
    assert_eq!((r.body["count"].as_i64(), pks(&r)), (Some(1), vec![t.eu]));

    let r = c.get("/api/v1/users/?groups=true").await;
    assert_eq!(
        result(&r, t.both)["groups"],
        json!([{"pk": t.eu, "name": "EU sales", "description": "", "children": [t.north]}]),
        "{}",
        r.body
    );

    // The superuser sees every group.
    assert_eq!(groups_of(&admin, t.both).await, sorted(vec![t.eu, t.us]));
}

#[tokio::test]
async fn write_answers_show_only_visible_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = sales_tree(&server, &admin).await;
    let editors = group_pk(&admin, "Editors", Some(t.eu), json!({"users": ["read", "update"]})).await;
    admin.put(&format!("/api/v1/users/{}/groups/{editors}/", t.eu_user), json!({})).await;
    let r = t.eu_client.patch(&format!("/api/v1/users/{}/", t.both), json!({"first_name": "Both"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["groups"], json!([t.eu]), "US sales must not be named: {}", r.body);
}

#[tokio::test]
async fn groups_true_expands_groups_with_children() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group(&admin, json!({"name": "Sales", "description": "All sales"})).await["pk"].as_i64().unwrap();
    let eu = group_pk(&admin, "EU", Some(sales), json!({})).await;
    let north = group_pk(&admin, "North", Some(eu), json!({})).await;
    let south = group_pk(&admin, "South", Some(eu), json!({})).await;
    let u = quick_user(&admin, "expanded", &[sales, eu]).await;

    let r = admin.get(&format!("/api/v1/users/?groups=true&id={u}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["groups"],
        json!([
            {"pk": sales, "name": "Sales", "description": "All sales", "children": [eu]},
            {"pk": eu, "name": "EU", "description": "", "children": [north, south]},
        ])
    );
    let r = admin.get(&format!("/api/v1/users/?groups=false&id={u}")).await;
    assert_eq!(r.body["results"][0]["groups"], json!([sales, eu]));
    let r = admin.get(&format!("/api/v1/users/?id={u}")).await;
    assert_eq!(r.body["results"][0]["groups"], json!([sales, eu]));
    invalid(&admin.get("/api/v1/users/?groups=maybe").await, &["groups"]);
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
    c.patch(&format!("/api/v1/groups/{}/", m.readers), json!({"parent": hidden})).await.error(400, "ValidationError");
    assert_eq!(server.revision().await, rev);
}
