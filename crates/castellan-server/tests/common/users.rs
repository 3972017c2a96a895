//! Helpers shared by the users tests (api_users_create, api_users_detail, api_users_access, api_users_list,
//! api_users_requests).
#![allow(dead_code)]

use std::collections::BTreeSet;

use super::{Client, Resp, TestServer};
use castellan_core::model::User;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
pub const PW: &str = "Passw0rd!";

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// Seed 000's user keys plus `description` and `org` (API.md §3).
pub fn user_keys() -> BTreeSet<String> {
    [
        "pk",
        "username",
        "first_name",
        "last_name",
        "email",
        "is_staff",
        "is_active",
        "date_joined",
        "last_login",
        "is_superuser",
        "groups",
        "groups_count",
        "groups_hidden",
        "description",
        "org",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Merges `extra` into a JSON object.
pub fn with(mut body: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// A valid creation body for `username`.
pub fn new_user(username: &str) -> Value {
    json!({"username": username, "password": "Bar123*!", "email": format!("{username}@example.com"), "groups": []})
}

/// A non-superuser with a session.
pub async fn regular(server: &TestServer, admin: &Client, username: &str) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({})).await;
    (pk, server.login(username, PW).await)
}

/// The revision and the stored user, to prove a refused request changed nothing.
pub async fn snapshot(server: &TestServer, pk: i64) -> (i64, User) {
    (server.revision().await, server.store.get_user(pk).await.unwrap())
}

/// GET of an absolute URL (a `next`/`previous` link) with the client's credentials.
pub async fn get_url(c: &Client, url: &str) -> Resp {
    let mut req = c.http.get(url);
    if let Some(t) = &c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Client::read(req.send().await.unwrap()).await
}

pub fn usernames(r: &Resp) -> Vec<String> {
    r.body["results"].as_array().expect("results").iter().map(|u| u["username"].as_str().unwrap().to_string()).collect()
}

pub fn pks(r: &Resp) -> Vec<i64> {
    r.body["results"].as_array().expect("results").iter().map(|u| u["pk"].as_i64().unwrap()).collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Whether anonymous login with these credentials succeeds.
pub async fn can_log_in(server: &TestServer, username: &str, password: &str) -> bool {
    let r = server.anon().post("/api/v1/auth/login/", json!({"username": username, "password": password})).await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => {
            r.error(401, "AuthenticationFailed");
            false
        }
        other => panic!("login answered {other}: {}", r.body),
    }
}
