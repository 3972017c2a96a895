//! Helpers shared by the directory tests (api_orgs, api_groups, api_node_restrictions, api_visibility,
//! api_directory_authz).
#![allow(dead_code)]

use std::collections::BTreeSet;

use super::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
pub const PW: &str = "Passw0rd!";

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

pub fn strings(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `pk`s of a page's results, in order.
pub fn pks(r: &Resp) -> Vec<i64> {
    r.body["results"].as_array().expect("results").iter().map(|u| u["pk"].as_i64().unwrap()).collect()
}

pub fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

/// GET of an absolute URL (a `next`/`previous` link) with the client's credentials.
pub async fn get_url(c: &Client, url: &str) -> Resp {
    let mut req = c.http.get(url);
    if let Some(t) = &c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Client::read(req.send().await.unwrap()).await
}

/// Creates a group through the API as `c` and returns its representation.
pub async fn group(c: &Client, body: Value) -> Value {
    let r = c.post("/api/v1/groups/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// Creates a group named `name` under `parent` conferring `permissions`, as `c`, and returns its key.
pub async fn group_pk(c: &Client, name: &str, parent: Option<i64>, permissions: Value) -> i64 {
    group(c, json!({"name": name, "parent": parent, "permissions": permissions})).await["pk"].as_i64().unwrap()
}

/// Creates a user without a password (no hashing: fast) in `groups` and returns its key.
pub async fn quick_user(admin: &Client, username: &str, groups: &[i64]) -> i64 {
    let body = json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": groups});
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Creates a user in `groups` with the default password, logs them in, and returns their key and client.
pub async fn member(server: &TestServer, admin: &Client, username: &str, groups: &[i64]) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({"groups": groups})).await;
    (pk, server.login(username, PW).await)
}

/// The `groups` of a user as the superuser sees them.
pub async fn groups_of(admin: &Client, user: i64) -> Vec<i64> {
    let r = admin.get(&format!("/api/v1/users/{user}/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    sorted(r.body["groups"].as_array().unwrap().iter().map(|g| g.as_i64().unwrap()).collect())
}

/// Asserts a 403 `PermissionDenied` with exactly `detail`.
#[track_caller]
pub fn denied(r: &Resp, detail: &str) {
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], detail, "{}", r.body);
}

/// Asserts a 400 naming exactly `fields`.
#[track_caller]
pub fn invalid(r: &Resp, fields: &[&str]) {
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), fields, "{}", r.body);
}

/// Registers node `id` as the superuser.
pub async fn register_node(admin: &Client, id: i64) {
    let r = admin.post("/api/v1/objects/", json!({"model": "nodes", "object_pk": id.to_string()})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["model"], "nodes");
    assert_eq!(r.body["object_pk"], id.to_string());
}
