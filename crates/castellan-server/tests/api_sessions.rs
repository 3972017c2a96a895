//! Sessions over HTTP (API.md §2, §11 "Credentials and sessions"): cookie sessions with their CSRF check, logout,
//! listing and deleting sessions, session expiry, and `CASTELLAN_PUBLIC_URL`'s effect on CSRF and cookies.

mod common;

use std::time::Duration;

use castellan_server::ServerConfig;
use common::auth::{
    LOGOUT, Login, ME, SESSIONS, TOKENS, USER_PASSWORD, assert_refused, assert_works, create_token, list_tokens, login_full,
    set_cookie, ts, with_token,
};
use common::{ADMIN_PASSWORD, Client, Resp, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Sends a request authenticated only by the `Cookie` header (no cookie store, no `Authorization`).
async fn cookie_send(
    server: &TestServer,
    cookie: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut req = reqwest::Client::new().request(method, format!("{}{}", server.base, path)).header("cookie", cookie);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Client::read(req.send().await.unwrap()).await
}

/// The `Cookie` header a browser would send after `login`.
fn cookie_of(login: &Login) -> String {
    format!("sid={}; session_secret={}", login.sid, login.token)
}

// ---------------------------------------------------------------------------------------------------------------
// cookie sessions and CSRF
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn cookie_sessions_and_csrf() {
    let server = TestServer::start().await;
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let admin = with_token(&server, &login.token);
    let cookie = cookie_of(&login);
    let body = || Some(json!({"name": "from the browser"}));

    let r = cookie_send(&server, &cookie, Method::GET, ME, &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], "admin");
    let r = cookie_send(&server, &cookie, Method::GET, SESSIONS, &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().iter().filter(|s| s["current"] == true).count(), 1);

    // Unsafe requests without a proof: 403 CsrfFailed, nothing created.
    let revision = server.revision().await;
    let refusals: [&[(&str, &str)]; 6] = [
        &[],
        &[("x-csrf-token", "not-the-token")],
        &[("x-csrf-token", "")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "http://evil.example")],
    ];
    for headers in refusals {
        let r = cookie_send(&server, &cookie, Method::POST, TOKENS, headers, body()).await;
        r.error(403, "CsrfFailed");
        assert!(r.headers.get("x-revision").is_none());
    }
    let port = server.base.rsplit(':').next().unwrap();
    for origin in [format!("http://127.0.0.1:{port}0"), format!("https://127.0.0.1:{port}"), "null".to_string()] {
        cookie_send(&server, &cookie, Method::POST, TOKENS, &[("origin", origin.as_str())], body())
            .await
            .error(403, "CsrfFailed");
    }
    // Login's CSRF token from another session is not this session's.
    let other = login_full(&server, "admin", ADMIN_PASSWORD).await;
    cookie_send(&server, &cookie, Method::POST, TOKENS, &[("x-csrf-token", other.csrf.as_str())], body())
        .await
        .error(403, "CsrfFailed");
    // Also DELETE and logout.
    cookie_send(&server, &cookie, Method::DELETE, &format!("{SESSIONS}{}/", other.sid), &[], None).await.error(403, "CsrfFailed");
    cookie_send(&server, &cookie, Method::POST, LOGOUT, &[], None).await.error(403, "CsrfFailed");
    assert_works(&with_token(&server, &other.token), "admin").await;
    assert_works(&admin, "admin").await;
    assert!(list_tokens(&admin).await.is_empty(), "refused requests created nothing");
    assert_eq!(server.revision().await, revision);

    // Each proof passes on its own.
    let origin = server.base.clone();
    let origin_slash = format!("{origin}/");
    let proofs: [&[(&str, &str)]; 4] = [
        &[("x-csrf-token", login.csrf.as_str())],
        &[("sec-fetch-site", "same-origin")],
        &[("origin", origin.as_str())],
        &[("origin", origin_slash.as_str())],
    ];
    for headers in proofs {
        let r = cookie_send(&server, &cookie, Method::POST, TOKENS, headers, body()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{headers:?}: {}", r.body);
        assert!(r.body["token"].as_str().is_some_and(|t| t.starts_with(r.body["prefix"].as_str().unwrap())));
        assert!(r.revision().is_some());
    }
    assert_eq!(list_tokens(&admin).await.len(), 4);

    // Header-authenticated requests need no CSRF proof.
    let r = admin.post(TOKENS, json!({"name": "header"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // A cookie-authenticated DELETE with a proof works.
    let path = format!("{SESSIONS}{}/", other.sid);
    let r = cookie_send(&server, &cookie, Method::DELETE, &path, &[("x-csrf-token", login.csrf.as_str())], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_refused(&with_token(&server, &other.token)).await;
}

#[tokio::test]
async fn cookie_sid_must_match_the_secret() {
    let server = TestServer::start().await;
    let a = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let b = login_full(&server, "admin", ADMIN_PASSWORD).await;
    assert_ne!(a.sid, b.sid);

    let mismatched = format!("sid={}; session_secret={}", b.sid, a.token);
    cookie_send(&server, &mismatched, Method::GET, ME, &[], None).await.error(401, "AuthenticationFailed");
    let no_sid = format!("session_secret={}", a.token);
    cookie_send(&server, &no_sid, Method::GET, ME, &[], None).await.error(401, "AuthenticationFailed");
    let bad_secret = format!("sid={}; session_secret=cs_nope", a.sid);
    cookie_send(&server, &bad_secret, Method::GET, ME, &[], None).await.error(401, "AuthenticationFailed");
    // A mismatched sid fails authentication before any CSRF question is asked.
    cookie_send(&server, &mismatched, Method::POST, TOKENS, &[], Some(json!({"name": "x"})))
        .await
        .error(401, "AuthenticationFailed");
    // An API token is not a session secret.
    let (token_pk, api_token) = create_token(&with_token(&server, &a.token), "t").await;
    let as_cookie = format!("sid={token_pk}; session_secret={api_token}");
    cookie_send(&server, &as_cookie, Method::GET, ME, &[], None).await.error(401, "AuthenticationFailed");
    // Only the sid cookie: no credentials at all.
    let only_sid = format!("sid={}", a.sid);
    cookie_send(&server, &only_sid, Method::GET, ME, &[], None).await.error(401, "AuthenticationRequired");

    let ok = cookie_send(&server, &cookie_of(&a), Method::GET, ME, &[], None).await;
    assert_eq!(ok.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------------------------
// logout and sessions
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_ends_only_the_current_session() {
    let server = TestServer::start().await;
    let a = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let b = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let client_a = with_token(&server, &a.token);
    assert_works(&client_a, "admin").await;

    let r = client_a.post(LOGOUT, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.revision().is_some(), "X-Revision on a successful write");
    for name in ["sid", "session_secret", "csrftoken"] {
        let c = set_cookie(&r, name).unwrap_or_else(|| panic!("logout clears {name}"));
        assert!(c.value.is_empty() && c.has("max-age=0"), "{name}: {c:?}");
    }
    assert_refused(&client_a).await;
    cookie_send(&server, &cookie_of(&a), Method::GET, ME, &[], None).await.error(401, "AuthenticationFailed");
    client_a.post(LOGOUT, json!({})).await.error(401, "AuthenticationFailed");

    let client_b = with_token(&server, &b.token);
    assert_works(&client_b, "admin").await;
    let sessions = client_b.get(SESSIONS).await;
    assert_eq!(sessions.body["count"], 1, "{}", sessions.body);
    assert_eq!(sessions.body["results"][0]["pk"].as_i64().unwrap().to_string(), b.sid);

    server.anon().post(LOGOUT, json!({})).await.error(401, "AuthenticationRequired");

    // Logout through cookies with a CSRF proof.
    let r = cookie_send(&server, &cookie_of(&b), Method::POST, LOGOUT, &[("x-csrf-token", b.csrf.as_str())], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_refused(&client_b).await;
}

#[tokio::test]
async fn sessions_list_and_delete() {
    let server = TestServer::start().await;
    let admin_login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let admin = with_token(&server, &admin_login.token);
    server.create_user(&admin, "alice", json!({})).await;

    let a = login_full(&server, "alice", USER_PASSWORD).await;
    let b = login_full(&server, "alice", USER_PASSWORD).await;
    let c = login_full(&server, "alice", USER_PASSWORD).await;
    let alice_a = with_token(&server, &a.token);

    let r = alice_a.get(SESSIONS).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 3);
    assert_eq!(r.body["next"], Value::Null);
    assert_eq!(r.body["previous"], Value::Null);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let pks: Vec<String> = results.iter().map(|s| s["pk"].as_i64().unwrap().to_string()).collect();
    for sid in [&a.sid, &b.sid, &c.sid] {
        assert!(pks.contains(sid), "{pks:?}");
    }
    for s in results {
        assert_eq!(s["current"], s["pk"].as_i64().unwrap().to_string() == a.sid, "{s}");
        ts(&s["created_date"]);
        ts(&s["last_used"]);
        ts(&s["expires_at"]);
        assert_eq!(s["ip"], "127.0.0.1");
        assert!(s["user_agent"].is_string());
        let text = s.to_string();
        assert!(!text.contains(&a.token) && !text.contains(&a.csrf), "no secrets in the list: {s}");
    }
    // Paging works on the list.
    let page = alice_a.get(&format!("{SESSIONS}?page_size=2")).await;
    assert_eq!(page.body["count"], 3);
    assert_eq!(page.body["results"].as_array().unwrap().len(), 2);
    assert!(page.body["next"].as_str().is_some_and(|n| n.starts_with(&server.base) && n.contains("page=2")), "{}", page.body);

    // The admin sees only their own sessions.
    let admin_sessions = admin.get(SESSIONS).await;
    assert_eq!(admin_sessions.body["count"], 1, "{}", admin_sessions.body);

    // Deleting another user's session: 404, and that session lives on.
    admin.delete(&format!("{SESSIONS}{}/", b.sid)).await.error(404, "NotFound");
    assert_works(&with_token(&server, &b.token), "alice").await;
    alice_a.delete(&format!("{SESSIONS}{}/", admin_login.sid)).await.error(404, "NotFound");
    assert_works(&admin, "admin").await;
    alice_a.delete(&format!("{SESSIONS}999999/")).await.error(404, "NotFound");
    alice_a.delete(&format!("{SESSIONS}abc/")).await.error(404, "NotFound");

    // Deleting one's own other session.
    let r = alice_a.delete(&format!("{SESSIONS}{}/", b.sid)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.revision().is_some(), "X-Revision on a successful write");
    assert_refused(&with_token(&server, &b.token)).await;
    assert_works(&alice_a, "alice").await;
    assert_works(&with_token(&server, &c.token), "alice").await;
    alice_a.delete(&format!("{SESSIONS}{}/", b.sid)).await.error(404, "NotFound");
    assert_eq!(alice_a.get(SESSIONS).await.body["count"], 2);

    // Deleting the current session ends it.
    let r = alice_a.delete(&format!("{SESSIONS}{}/", a.sid)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_refused(&alice_a).await;

    // Through an API token, no session is current.
    let alice_c = with_token(&server, &c.token);
    let (_, api) = create_token(&alice_c, "t").await;
    let r = with_token(&server, &api).get(SESSIONS).await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["results"][0]["current"], false);
}

// ---------------------------------------------------------------------------------------------------------------
// expiry
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_expire_after_their_lifetime_despite_the_cache() {
    let server = TestServer::start_with(ServerConfig { session_ttl: Duration::from_secs(1), ..Default::default() }).await;
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let expires = ts(&login.resp.body["expires_at"]);
    assert!(expires < OffsetDateTime::now_utc() + time::Duration::seconds(2), "expires_at {expires}");
    let client = with_token(&server, &login.token);
    // Use it (and so cache it) while it is valid.
    for _ in 0..3 {
        assert_works(&client, "admin").await;
    }
    let ok = cookie_send(&server, &cookie_of(&login), Method::GET, ME, &[], None).await;
    assert_eq!(ok.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(&client).await;
    cookie_send(&server, &cookie_of(&login), Method::GET, ME, &[], None).await.error(401, "AuthenticationFailed");
    // A fresh login works again.
    assert_works(&with_token(&server, &login_full(&server, "admin", ADMIN_PASSWORD).await.token), "admin").await;
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let server = TestServer::start_with(ServerConfig { session_idle: Duration::from_secs(1), ..Default::default() }).await;
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let client = with_token(&server, &login.token);
    assert_works(&client, "admin").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(&client).await;
    // API tokens have no idle limit.
    let fresh = with_token(&server, &login_full(&server, "admin", ADMIN_PASSWORD).await.token);
    let (_, secret) = create_token(&fresh, "long-lived").await;
    let api = with_token(&server, &secret);
    assert_works(&api, "admin").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_works(&api, "admin").await;
}

// ---------------------------------------------------------------------------------------------------------------
// CASTELLAN_PUBLIC_URL
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn public_url_decides_csrf_origin_and_secure_cookies() {
    let public = url::Url::parse("https://id.example.com").unwrap();
    let server = TestServer::start_with(ServerConfig { public_url: Some(public), ..Default::default() }).await;
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    for name in ["sid", "session_secret", "csrftoken"] {
        let c = set_cookie(&login.resp, name).unwrap();
        assert!(c.has("secure"), "{name} must be Secure behind TLS: {c:?}");
    }
    let cookie = cookie_of(&login);
    let body = || Some(json!({"name": "x"}));
    // The Host-derived origin no longer counts; the public one does.
    let base = server.base.clone();
    cookie_send(&server, &cookie, Method::POST, TOKENS, &[("origin", base.as_str())], body()).await.error(403, "CsrfFailed");
    cookie_send(&server, &cookie, Method::POST, TOKENS, &[("origin", "http://id.example.com")], body())
        .await
        .error(403, "CsrfFailed");
    let r = cookie_send(&server, &cookie, Method::POST, TOKENS, &[("origin", "https://id.example.com")], body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Behind a trusted proxy that terminates TLS, the origin is the proxy's `X-Forwarded-Proto` and `X-Forwarded-Host`:
/// cookies are `Secure`, `next` links and the CSRF origin check use it. From an untrusted peer those headers change
/// nothing.
#[tokio::test]
async fn a_trusted_proxys_forwarded_scheme_and_host_make_the_origin() {
    let forwarded = [("x-forwarded-proto", "https"), ("x-forwarded-host", "id.example.com")];
    let send = |server: &TestServer, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Value>| {
        let mut req = reqwest::Client::new().request(method, format!("{}{}", server.base, path));
        for (k, v) in headers.iter().chain(&forwarded) {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move { Client::read(req.send().await.unwrap()).await }
    };
    let credentials = json!({"username": "admin", "password": ADMIN_PASSWORD});

    let trusted = ServerConfig { trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()], ..ServerConfig::default() };
    let server = TestServer::start_with(trusted).await;
    let login = send(&server, Method::POST, "/api/v1/auth/login/", &[], Some(credentials.clone())).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert!(set_cookie(&login, "sid").unwrap().attrs.iter().any(|a| a == "secure"), "{:?}", login.headers);
    let token = login.body["token"].as_str().unwrap();
    let cookie = format!("sid={}; session_secret={token}", set_cookie(&login, "sid").unwrap().value);
    let auth = format!("Bearer {token}");
    let page = send(&server, Method::GET, "/api/v1/users/?page_size=1", &[("authorization", auth.as_str())], None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    server.create_user(&server.admin().await, "second", json!({})).await;
    let page = send(&server, Method::GET, "/api/v1/users/?page_size=1", &[("authorization", auth.as_str())], None).await;
    assert!(page.body["next"].as_str().unwrap().starts_with("https://id.example.com/api/v1/users/"), "{}", page.body);
    let same_origin = [("cookie", cookie.as_str()), ("origin", "https://id.example.com")];
    let r = send(&server, Method::POST, TOKENS, &same_origin, Some(json!({"name": "via proxy"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let untrusted = TestServer::start().await;
    let login = send(&untrusted, Method::POST, "/api/v1/auth/login/", &[], Some(credentials)).await;
    assert!(!set_cookie(&login, "sid").unwrap().attrs.iter().any(|a| a == "secure"), "{:?}", login.headers);
    let cookie =
        format!("sid={}; session_secret={}", set_cookie(&login, "sid").unwrap().value, login.body["token"].as_str().unwrap());
    let spoofed = [("cookie", cookie.as_str()), ("origin", "https://id.example.com")];
    send(&untrusted, Method::POST, TOKENS, &spoofed, Some(json!({"name": "spoofed"}))).await.error(403, "CsrfFailed");
}
