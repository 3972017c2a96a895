//! Helpers shared by the module, role, grant and check tests (api_modules, api_roles, api_grants, api_checks).
#![allow(dead_code)]

use std::collections::BTreeSet;

use super::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
pub const PW: &str = "Passw0rd!";

pub const NEEDS_PERMISSIONS_READ: &str = "This method needs permission read on permissions.";

pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("an object: {v}")).keys().cloned().collect()
}

pub fn strings(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The `X-Revision` of a successful write.
pub fn x_rev(r: &Resp) -> i64 {
    r.revision().unwrap_or_else(|| panic!("X-Revision missing: {:?} {}", r.status, r.body))
}

pub fn ok(r: &Resp) -> &Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    &r.body
}

/// Asserts a 400 whose `errors` name `field`.
pub fn bad_field(r: &Resp, field: &str) {
    r.error(400, "ValidationError");
    assert!(r.fields().iter().any(|f| f == field), "expected an error on {field}: {}", r.body);
}

/// Asserts a 403 with exactly `detail`.
pub fn denied(r: &Resp, detail: &str) {
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], detail, "{}", r.body);
}

/// Creates a group as `c` and returns its key.
pub async fn group_pk(c: &Client, name: &str, parent: Option<i64>, permissions: Value) -> i64 {
    let r = c.post("/api/v1/groups/", json!({"name": name, "parent": parent, "permissions": permissions})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Creates a user in `groups` with the default password, logs them in, and returns their key and client.
pub async fn member(server: &TestServer, admin: &Client, username: &str, groups: &[i64]) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({"groups": groups})).await;
    (pk, server.login(username, PW).await)
}

/// Creates a user without a password (fast) in `groups`.
pub async fn quick_user(admin: &Client, username: &str, extra: Value) -> i64 {
    let mut body = json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": []});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Creates a role in the caller's organisation (or `org`) and returns its key.
pub async fn role_pk(c: &Client, name: &str) -> i64 {
    let r = c.post("/api/v1/roles/", json!({"name": name})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

/// Registers a module and returns its representation.
pub async fn module(admin: &Client, id: &str, description: &str, actions: &[&str]) -> Value {
    let r = admin.post("/api/v1/modules/", json!({"id": id, "description": description, "actions": actions})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// PUT `{"permissions": actions}` on `/api/v1/{subject}/permissions/{module}/` (e.g. subject `roles/3`), expecting 200;
/// returns the write's revision.
pub async fn grant(c: &Client, subject: &str, module: &str, actions: &[&str]) -> i64 {
    let r = c.put(&format!("/api/v1/{subject}/permissions/{module}/"), json!({"permissions": actions})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    x_rev(&r)
}

/// PATCH `/api/v1/roles/{role}/{action}/` with `{field: pks}`, expecting 200; returns the revision.
pub async fn role_change(c: &Client, role: i64, action: &str, field: &str, pks: &[i64]) -> i64 {
    let r = c.patch(&format!("/api/v1/roles/{role}/{action}/"), json!({ field: pks })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    x_rev(&r)
}

pub async fn check(c: &Client, body: Value) -> Resp {
    c.post("/api/v1/check/", body).await
}

/// Whether `user` (None: the caller) holds `permission`, as of at least `revision`.
pub async fn allowed(c: &Client, user: Option<i64>, permission: &str, revision: i64) -> bool {
    let mut body = json!({"permission": permission, "at_least_revision": revision});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let r = check(c, body).await;
    let body = ok(&r);
    assert!(body["revision"].as_i64().unwrap() >= revision, "{body}");
    body["allowed"].as_bool().unwrap()
}

/// The caller's own key and organisation.
pub async fn me(c: &Client) -> (i64, i64) {
    let r = c.get("/api/v1/users/me/").await;
    let body = ok(&r);
    (body["pk"].as_i64().unwrap(), body["org"].as_i64().unwrap())
}

pub async fn second_org(admin: &Client) -> i64 {
    let r = admin.post("/api/v1/orgs/", json!({"name": "Other", "slug": "other"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}
