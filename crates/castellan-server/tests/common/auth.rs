//! Helpers shared by the authentication tests (api_login, api_login_throttling, api_sessions, api_tokens,
//! api_revocation).
#![allow(dead_code)]

use super::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const LOGIN: &str = "/api/v1/auth/login/";
pub const LOGOUT: &str = "/api/v1/auth/logout/";
pub const ME: &str = "/api/v1/users/me/";
pub const SESSIONS: &str = "/api/v1/active_user/sessions/";
pub const TOKENS: &str = "/api/v1/active_user/tokens/";
/// The password `TestServer::create_user` gives new users.
pub const USER_PASSWORD: &str = "Passw0rd!";

/// A login answer: the raw response plus the secrets it handed out.
pub struct Login {
    pub resp: Resp,
    pub token: String,
    pub csrf: String,
    pub sid: String,
}

/// Logs in and returns the full answer (status asserted 200).
pub async fn login_full(server: &TestServer, username: &str, password: &str) -> Login {
    let resp = server.anon().post(LOGIN, json!({"username": username, "password": password})).await;
    assert_eq!(resp.status, StatusCode::OK, "login of {username}: {}", resp.body);
    let token = resp.body["token"].as_str().expect("token").to_string();
    let csrf = resp.body["csrf_token"].as_str().expect("csrf_token").to_string();
    let sid = set_cookie(&resp, "sid").expect("sid cookie").value;
    Login { resp, token, csrf, sid }
}

/// A client carrying `token` as `Authorization: Bearer`.
pub fn with_token(server: &TestServer, token: &str) -> Client {
    Client { token: Some(token.to_string()), ..server.anon() }
}

/// A login attempt's answer.
pub async fn try_login(server: &TestServer, username: &str, password: &str) -> Resp {
    server.anon().post(LOGIN, json!({"username": username, "password": password})).await
}

/// One parsed `Set-Cookie` header.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub value: String,
    /// Lower-cased attributes, e.g. `httponly`, `samesite=lax`, `path=/`.
    pub attrs: Vec<String>,
}

impl SetCookie {
    pub fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }
}

/// The `Set-Cookie` header named `name`, if any.
pub fn set_cookie(resp: &Resp, name: &str) -> Option<SetCookie> {
    resp.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|raw| {
        let mut parts = raw.split(';').map(str::trim);
        let (n, v) = parts.next()?.split_once('=')?;
        (n == name)
            .then(|| SetCookie { value: v.to_string(), attrs: parts.map(|a| a.to_ascii_lowercase().replace(' ', "")).collect() })
    })
}

/// Parses an RFC 3339 timestamp and checks the contract's format (UTC, microseconds).
pub fn ts(value: &Value) -> OffsetDateTime {
    let s = value.as_str().unwrap_or_else(|| panic!("timestamp expected, got {value}"));
    assert!(s.ends_with('Z') && s.len() == "2022-12-21T10:32:51.707174Z".len(), "format of {s}");
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

/// The caller's API tokens as listed.
pub async fn list_tokens(client: &Client) -> Vec<Value> {
    let r = client.get(TOKENS).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["results"].as_array().unwrap().clone()
}

/// Creates an API token for `client` and returns (pk, secret).
pub async fn create_token(client: &Client, name: &str) -> (i64, String) {
    let r = client.post(TOKENS, json!({"name": name})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (r.body["pk"].as_i64().unwrap(), r.body["token"].as_str().unwrap().to_string())
}

/// Asserts that `client` is authenticated as `username`.
pub async fn assert_works(client: &Client, username: &str) {
    let r = client.get(ME).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], username);
}

/// Asserts that `client`'s credential is refused with 401 `AuthenticationFailed`.
pub async fn assert_refused(client: &Client) {
    client.get(ME).await.error(401, "AuthenticationFailed");
}
