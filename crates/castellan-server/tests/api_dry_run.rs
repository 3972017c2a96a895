//! Impact previews (API.md §8, §11): `?dry_run=true` on every write that can change who holds what answers what
//! each affected user would gain and lose, and changes nothing.

mod common;

use common::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ok(r: &Resp) -> &Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    &r.body
}

fn created(r: &Resp) -> i64 {
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

async fn quick_user(admin: &Client, username: &str) -> i64 {
    let body = json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": []});
    created(&admin.post("/api/v1/users/", body).await)
}

/// The impact entries of a dry run's answer as `(permission, object_pk, users)`, after checking its envelope.
fn entries(r: &Resp, side: &str) -> Vec<(String, Value, Vec<i64>)> {
    let body = ok(r);
    assert_eq!(body["applied"], false, "{body}");
    assert!(r.revision().is_none(), "a dry run answers no revision");
    body["impact"][side]
        .as_array()
        .unwrap_or_else(|| panic!("{side} missing: {body}"))
        .iter()
        .map(|e| {
            let users: Vec<i64> = e["users"].as_array().unwrap().iter().map(|u| u.as_i64().unwrap()).collect();
            assert_eq!(e["users_count"].as_u64().unwrap() as usize, users.len(), "{e}");
            (e["permission"].as_str().unwrap().to_string(), e["object_pk"].clone(), users)
        })
        .collect()
}

fn global(permission: &str, users: &[i64]) -> (String, Value, Vec<i64>) {
    (permission.to_string(), Value::Null, users.to_vec())
}

/// The world of the previews: role `viewer` (catalogs.read) on group Sales; EU under Sales with member `anna`;
/// `bob` in no group; object catalogs:9.
struct World {
    server: TestServer,
    admin: Client,
    anna: i64,
    bob: i64,
    sales: i64,
    eu: i64,
    viewer: i64,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/modules/", json!({"id": "catalogs", "description": "Catalogs", "actions": []})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sales = created(&admin.post("/api/v1/groups/", json!({"name": "Sales"})).await);
    let eu = created(&admin.post("/api/v1/groups/", json!({"name": "EU", "parent": sales})).await);
    let viewer = created(&admin.post("/api/v1/roles/", json!({"name": "viewer"})).await);
    ok(&admin.put(&format!("/api/v1/roles/{viewer}/permissions/catalogs/"), json!({"permissions": ["read"]})).await);
    ok(&admin.patch(&format!("/api/v1/roles/{viewer}/assign-groups/"), json!({"groups": [sales]})).await);
    let anna = quick_user(&admin, "anna").await;
    let bob = quick_user(&admin, "bob").await;
    ok(&admin.patch(&format!("/api/v1/groups/{eu}/assign-users/"), json!({"users": [anna]})).await);
    let r = admin.post("/api/v1/objects/", json!({"model": "catalogs", "object_pk": "9"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    World { server, admin, anna, bob, sales, eu, viewer }
}

/// Sends a dry run and asserts that nothing was written.
async fn preview(w: &World, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
    let before = w.server.revision().await;
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = w.admin.send(method, &format!("{path}{sep}dry_run=true"), body).await;
    assert_eq!(w.server.revision().await, before, "a dry run of {path} changed the store: {}", r.body);
    r
}

async fn holds(w: &World, user: i64, permission: &str, object_pk: Option<&str>) -> bool {
    let mut body = json!({"user": user, "permission": permission});
    if let Some(pk) = object_pk {
        body["object_pk"] = json!(pk);
        body["model"] = json!("catalogs");
    }
    ok(&w.admin.post("/api/v1/check/", body).await)["allowed"].as_bool().unwrap()
}

#[tokio::test]
async fn dry_runs_answer_the_impact_and_change_nothing() {
    use reqwest::Method;
    let w = world().await;
    let (anna, bob, eu, sales, viewer) = (w.anna, w.bob, w.eu, w.sales, w.viewer);
    let read = || vec![global("catalogs.read", &[anna])];

    let r = preview(&w, Method::PUT, &format!("/api/v1/users/{bob}/groups/{eu}/"), Some(json!({}))).await;
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.read", &[bob])], "joining a group under Sales");
    assert_eq!(r.body["impact"]["users_affected"], 1);
    let r = preview(&w, Method::PATCH, &format!("/api/v1/groups/{eu}/remove-users/"), Some(json!({"users": [anna]}))).await;
    assert_eq!((entries(&r, "gained"), entries(&r, "lost")), (vec![], read()), "leaving EU");
    let r = preview(&w, Method::DELETE, &format!("/api/v1/users/{anna}/groups/{eu}/"), None).await;
    assert_eq!(entries(&r, "lost"), read());

    let body = json!({"permissions": ["read", "update"]});
    let r = preview(&w, Method::PUT, &format!("/api/v1/roles/{viewer}/permissions/catalogs/"), Some(body)).await;
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.update", &[anna])], "read was held already");
    let r =
        preview(&w, Method::PUT, &format!("/api/v1/groups/{eu}/permissions/catalogs/"), Some(json!({"permissions": ["full"]})))
            .await;
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.full", &[anna])], "what full brings is implied");
    let r = preview(&w, Method::PATCH, &format!("/api/v1/roles/{viewer}/remove-groups/"), Some(json!({"groups": [sales]}))).await;
    assert_eq!(entries(&r, "lost"), read());
    let r = preview(&w, Method::PATCH, &format!("/api/v1/roles/{viewer}/assign-users/"), Some(json!({"users": [bob]}))).await;
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.read", &[bob])]);
    let r = preview(&w, Method::DELETE, &format!("/api/v1/roles/{viewer}/"), None).await;
    assert_eq!(entries(&r, "lost"), read());

    let r = preview(&w, Method::PATCH, &format!("/api/v1/groups/{eu}/"), Some(json!({"parent": null}))).await;
    assert_eq!(entries(&r, "lost"), read(), "EU moved out from under Sales");
    let r = preview(&w, Method::PATCH, "/api/v1/modules/catalogs/", Some(json!({"is_active": false}))).await;
    assert_eq!(entries(&r, "lost"), read(), "an inactive module grants nothing");
    let r = preview(&w, Method::PATCH, &format!("/api/v1/users/{anna}/"), Some(json!({"is_active": false}))).await;
    assert_eq!(entries(&r, "lost"), read(), "an inactive user holds nothing");

    let assign = json!({"permissions": ["catalogs.update"], "model": "catalogs", "object_pk": "9"});
    let path = format!("/api/v1/rbac/permissions/assigned_by_users/{bob}/assign/");
    let r = preview(&w, Method::POST, &path, Some(assign)).await;
    assert_eq!(entries(&r, "gained"), vec![("catalogs.update".to_string(), json!("9"), vec![bob])]);

    // Nothing above was applied.
    assert!(holds(&w, anna, "catalogs.read", None).await);
    assert!(!holds(&w, anna, "catalogs.update", None).await);
    assert!(!holds(&w, bob, "catalogs.read", None).await);
    assert!(!holds(&w, bob, "catalogs.update", Some("9")).await);
    let r = w.admin.get(&format!("/api/v1/users/{bob}/groups/")).await;
    assert_eq!(ok(&r)["count"], 0, "{}", r.body);
}

#[tokio::test]
async fn a_dry_run_of_an_object_move_probes_the_object() {
    use reqwest::Method;
    let w = world().await;
    let bob = w.bob;
    let assign = json!({"permissions": ["catalogs.read"], "model": "catalogs", "object_pk": "9"});
    ok(&w.admin.post(&format!("/api/v1/rbac/permissions/assigned_by_users/{bob}/assign/"), assign).await);
    let body = json!({"model": "catalogs", "object_pk": "10", "parent_model": "catalogs", "parent_pk": "9"});
    let r = preview(&w, Method::POST, "/api/v1/objects/", Some(body)).await;
    assert_eq!(entries(&r, "gained"), vec![("catalogs.read".to_string(), json!("10"), vec![bob])]);
    let r = preview(&w, Method::DELETE, "/api/v1/objects/catalogs/9/", None).await;
    assert_eq!(ok(&r)["applied"], false);
    assert!(holds(&w, bob, "catalogs.read", Some("9")).await, "the object is still there");
}

#[tokio::test]
async fn dry_run_refusals_and_errors_pass_through_unchanged() {
    use reqwest::Method;
    let w = world().await;
    let before = w.server.revision().await;
    let r = w.admin.put(&format!("/api/v1/users/{}/groups/{}/?dry_run=maybe", w.bob, w.eu), json!({})).await;
    r.error(400, "ValidationError");
    assert_eq!(w.server.revision().await, before);
    let r = preview(&w, Method::PUT, &format!("/api/v1/users/{}/groups/999999/", w.bob), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = preview(&w, Method::PATCH, &format!("/api/v1/groups/{}/", w.sales), Some(json!({"parent": w.eu}))).await;
    r.error(400, "ValidationError");

    // Writes the store cannot roll back refuse rather than apply.
    let r = preview(&w, Method::PUT, "/api/v1/active_user/data/theme/", Some(json!({"value": "dark"}))).await;
    r.error(400, "ValidationError");
    assert!(r.fields().iter().any(|f| f == "dry_run"), "{}", r.body);
    assert_eq!(w.admin.get("/api/v1/active_user/data/theme/").await.status, StatusCode::NOT_FOUND, "nothing was stored");
    let r = preview(&w, Method::POST, &format!("/api/v1/users/{}/unlock/", w.bob), None).await;
    r.error(400, "ValidationError");

    // Any other write previews its change: a token confers nothing, and none is created.
    let tokens = w.admin.get("/api/v1/active_user/tokens/").await;
    let r = preview(&w, Method::POST, "/api/v1/active_user/tokens/", Some(json!({"name": "ci"}))).await;
    assert_eq!(ok(&r)["impact"], json!({"gained": [], "lost": [], "users_affected": 0}));
    assert_eq!(w.admin.get("/api/v1/active_user/tokens/").await.body, tokens.body, "no token was created");
    assert_eq!(w.server.revision().await, before, "nothing was written");

    // An unprivileged caller is refused as without dry_run.
    w.server.create_user(&w.admin, "carl", json!({})).await;
    let carl = w.server.login("carl", "Passw0rd!").await;
    let r = carl.put(&format!("/api/v1/users/{}/groups/{}/?dry_run=true", w.bob, w.eu), json!({})).await;
    r.error(403, "PermissionDenied");

    // A write with nothing to change previews as no impact.
    let r = preview(&w, Method::PUT, &format!("/api/v1/users/{}/groups/{}/", w.anna, w.eu), Some(json!({}))).await;
    assert_eq!(ok(&r)["impact"], json!({"gained": [], "lost": [], "users_affected": 0}));
}

#[tokio::test]
async fn dry_run_names_at_most_a_hundred_users_per_entry() {
    use reqwest::Method;
    let w = world().await;
    let mut users = Vec::new();
    for i in 0..120 {
        users.push(quick_user(&w.admin, &format!("crowd{i:03}")).await);
    }
    let r = preview(&w, Method::PATCH, &format!("/api/v1/groups/{}/assign-users/", w.sales), Some(json!({"users": users}))).await;
    let body = ok(&r);
    let gained = &body["impact"]["gained"][0];
    assert_eq!(gained["permission"], "catalogs.read", "{body}");
    assert_eq!(gained["users_count"], 120);
    let listed: Vec<i64> = gained["users"].as_array().unwrap().iter().map(|u| u.as_i64().unwrap()).collect();
    assert_eq!(listed, users[..100].to_vec(), "the first hundred, ascending");
    assert_eq!(body["impact"]["users_affected"], 120);
}

/// The preview cap is a setting: a write affecting more users than it previews answers 400 naming `dry_run`, and
/// changes nothing.
#[tokio::test]
async fn a_preview_affecting_more_users_than_the_cap_is_refused() {
    let config = castellan_server::ServerConfig { preview_max_users: 1, ..castellan_server::ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let admin = server.admin().await;
    let (a, b) = (quick_user(&admin, "cap-a").await, quick_user(&admin, "cap-b").await);
    let group = created(&admin.post("/api/v1/groups/", json!({"name": "Capped", "permissions": {"users": ["read"]}})).await);
    let before = server.revision().await;
    let r = admin.patch(&format!("/api/v1/groups/{group}/assign-users/?dry_run=true"), json!({"users": [a, b]})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["dry_run"], "{}", r.body);
    assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("at most 1"), "{}", r.body);
    assert_eq!(server.revision().await, before);
    let r = admin.patch(&format!("/api/v1/groups/{group}/assign-users/?dry_run=true"), json!({"users": [a]})).await;
    assert_eq!(ok(&r)["impact"]["users_affected"], 1);
}

/// A planned write (a group's move, deletion or permissions, memberships, roles, grants) is previewed from its plan alone: nothing reaches the database's
/// writer, so a preview answers even while another connection holds SQLite's write lock.
#[tokio::test]
async fn a_planned_write_previews_without_the_databases_writer() {
    use reqwest::Method;
    let w = world().await;
    let lock = rusqlite::Connection::open(w.server.db_path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let patience = std::time::Duration::from_secs(3);
    let (eu, sales) = (format!("/api/v1/groups/{}/", w.eu), format!("/api/v1/groups/{}/", w.sales));
    let moved = preview(&w, Method::PATCH, &eu, Some(json!({"parent": null})));
    let r = tokio::time::timeout(patience, moved).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "lost"), vec![global("catalogs.read", &[w.anna])]);
    let body = json!({"permissions": ["full"]});
    let eu_catalogs = format!("{eu}permissions/catalogs/");
    let granted = preview(&w, Method::PUT, &eu_catalogs, Some(body));
    let r = tokio::time::timeout(patience, granted).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.full", &[w.anna])]);
    let (bob_in_eu, eu_remove) = (format!("/api/v1/users/{}/groups/{}/", w.bob, w.eu), format!("{eu}remove-users/"));
    let joined = preview(&w, Method::PUT, &bob_in_eu, Some(json!({})));
    let r = tokio::time::timeout(patience, joined).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.read", &[w.bob])]);
    let left = preview(&w, Method::PATCH, &eu_remove, Some(json!({"users": [w.anna]})));
    let r = tokio::time::timeout(patience, left).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "lost"), vec![global("catalogs.read", &[w.anna])]);
    let role_to_bob = format!("/api/v1/roles/{}/assign-users/", w.viewer);
    let held = preview(&w, Method::PATCH, &role_to_bob, Some(json!({"users": [w.bob]})));
    let r = tokio::time::timeout(patience, held).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.read", &[w.bob])]);
    let grant_to_bob = format!("/api/v1/rbac/permissions/assigned_by_users/{}/assign/", w.bob);
    let granted = preview(&w, Method::POST, &grant_to_bob, Some(json!({"permissions": ["catalogs.update"]})));
    let r = tokio::time::timeout(patience, granted).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "gained"), vec![global("catalogs.update", &[w.bob])]);
    let cascade = format!("{sales}?cascade=true");
    let deleted = preview(&w, Method::DELETE, &cascade, None);
    let r = tokio::time::timeout(patience, deleted).await.expect("a preview waited for the database's writer");
    assert_eq!(entries(&r, "lost"), vec![global("catalogs.read", &[w.anna])], "EU goes with Sales");
    let refused = preview(&w, Method::DELETE, &sales, None);
    let r = tokio::time::timeout(patience, refused).await.expect("a refusal waited for the database's writer");
    r.error(409, "Conflict");
    // A cycle is refused by the plan, as the write would refuse it.
    let cycle = preview(&w, Method::PATCH, &sales, Some(json!({"parent": w.eu})));
    let r = tokio::time::timeout(patience, cycle).await.expect("a refusal waited for the database's writer");
    r.error(400, "ValidationError");
    lock.execute_batch("ROLLBACK").unwrap();
}
