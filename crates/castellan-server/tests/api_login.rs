//! Login over HTTP (API.md §1, §2, §10 "Authentication"): the login answer, failures, bad input and audit, the
//! three `Authorization` forms, and odd credentials.

mod common;

use std::time::{Duration, Instant};

use common::auth::{
    LOGIN, LOGOUT, ME, SESSIONS, TOKENS, USER_PASSWORD, create_token, login_full, set_cookie, try_login, ts, with_token,
};
use common::{ADMIN_PASSWORD, Client, Resp, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Sends with a raw `Authorization` header value.
async fn get_with_authorization(server: &TestServer, path: &str, value: &str) -> Resp {
    let req = reqwest::Client::new().get(format!("{}{}", server.base, path)).header("authorization", value);
    Client::read(req.send().await.unwrap()).await
}

/// The error body without its request id, to compare two errors.
fn without_id(body: &Value) -> Value {
    let mut b = body.clone();
    b.as_object_mut().unwrap().remove("id");
    b
}

// ---------------------------------------------------------------------------------------------------------------
// login
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn login_answers_token_csrf_user_and_cookies() {
    let server = TestServer::start().await;
    let before = OffsetDateTime::now_utc();
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let body = &login.resp.body;

    let mut keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["csrf_token", "expires_at", "token", "user"], "{body}");
    assert!(login.token.len() >= 43, "a 256-bit secret: {}", login.token);
    assert!(login.csrf.len() >= 43, "a 256-bit csrf token: {}", login.csrf);
    assert_ne!(login.token, login.csrf);

    let expires = ts(&body["expires_at"]);
    let twelve_hours = time::Duration::hours(12);
    assert!(expires > before + twelve_hours - time::Duration::minutes(1), "expires_at {expires}");
    assert!(expires < OffsetDateTime::now_utc() + twelve_hours + time::Duration::minutes(1), "expires_at {expires}");

    let user = &body["user"];
    assert_eq!(user["username"], "admin");
    assert_eq!(user["is_superuser"], true);
    assert!(user["pk"].as_i64().is_some());
    let text = body.to_string().to_lowercase();
    assert!(!text.contains("admin123!") && !text.contains("argon2") && !text.contains("password"), "{body}");
    let last_login = ts(&user["last_login"]);
    assert!(last_login >= before - time::Duration::seconds(1), "last_login {last_login}");

    // Cookies: sid and session_secret are HttpOnly + SameSite=Lax, csrftoken is readable by scripts.
    let sid = set_cookie(&login.resp, "sid").unwrap();
    let secret = set_cookie(&login.resp, "session_secret").expect("session_secret cookie");
    let csrf = set_cookie(&login.resp, "csrftoken").expect("csrftoken cookie");
    for c in [&sid, &secret] {
        assert!(c.has("httponly"), "{c:?}");
        assert!(c.has("samesite=lax"), "{c:?}");
        assert!(c.has("path=/"), "{c:?}");
        assert!(!c.has("secure"), "no TLS, so no Secure: {c:?}");
    }
    assert!(!csrf.has("httponly"), "csrftoken must be readable by scripts: {csrf:?}");
    assert!(csrf.has("samesite=lax"), "{csrf:?}");
    assert_eq!(secret.value, login.token);
    assert_eq!(csrf.value, login.csrf);

    // The sid cookie names the session that the token is.
    let admin = with_token(&server, &login.token);
    let sessions = admin.get(SESSIONS).await;
    assert_eq!(sessions.status, StatusCode::OK);
    let current: Vec<&Value> = sessions.body["results"].as_array().unwrap().iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1, "{}", sessions.body);
    assert_eq!(current[0]["pk"].as_i64().unwrap().to_string(), sid.value);

    // last_login is stored, not only echoed.
    let pk = user["pk"].as_i64().unwrap();
    let stored = admin.get(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.body["last_login"], user["last_login"]);
    assert_eq!(&stored.body, user, "login's user is the user representation");
}

#[tokio::test]
async fn login_is_case_insensitive_in_the_username() {
    let server = TestServer::start().await;
    let login = login_full(&server, "ADMIN", ADMIN_PASSWORD).await;
    assert_eq!(login.resp.body["user"]["username"], "admin");
    try_login(&server, "admin", "admin123!").await.error(401, "AuthenticationFailed");
}

#[tokio::test]
async fn login_failures_are_indistinguishable() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server.create_user(&admin, "alice", json!({})).await;
    let bob = server.create_user(&admin, "bob", json!({"is_active": false})).await;
    server.create_user(&admin, "service", json!({"password": null})).await;

    let unknown = try_login(&server, "nobody", USER_PASSWORD).await;
    let no_password = try_login(&server, "service", USER_PASSWORD).await;
    let wrong = try_login(&server, "alice", "Wrong-Passw0rd").await;
    let inactive = try_login(&server, "bob", USER_PASSWORD).await;
    let inactive_wrong = try_login(&server, "bob", "Wrong-Passw0rd").await;
    for r in [&unknown, &wrong, &inactive, &inactive_wrong, &no_password] {
        r.error(401, "AuthenticationFailed");
        assert!(set_cookie(r, "sid").is_none() && set_cookie(r, "session_secret").is_none(), "no cookies on failure");
        assert!(r.body.get("token").is_none());
    }
    assert_eq!(without_id(&unknown.body), without_id(&wrong.body));
    assert_eq!(without_id(&unknown.body), without_id(&inactive.body));
    assert_eq!(without_id(&unknown.body), without_id(&inactive_wrong.body));
    assert_eq!(without_id(&unknown.body), without_id(&no_password.body));
    assert_ne!(unknown.body["id"], wrong.body["id"], "every answer has its own request id");
    assert_eq!(unknown.headers.get("x-request-id").and_then(|v| v.to_str().ok()), unknown.body["id"].as_str());
    let detail = unknown.body["detail"].as_str().unwrap().to_lowercase();
    assert!(!detail.contains("exist") && !detail.contains("inactive"), "{detail}");

    // The inactive user gets no last_login, and alice's failed attempt set none either.
    let b = admin.get(&format!("/api/v1/users/{bob}/")).await;
    assert_eq!(b.body["last_login"], Value::Null);
}

#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    // The least of several tries each: a busy machine (the other test binaries) only ever makes a try slower.
    let names = ["t1", "t2", "t3", "t4", "t5", "t6"];
    for n in names {
        server.create_user(&admin, n, json!({})).await;
    }
    // Warm up (the dummy hash is built lazily).
    try_login(&server, "warm-up-nobody", USER_PASSWORD).await.error(401, "AuthenticationFailed");
    let mut unknown = Duration::MAX;
    let mut wrong = Duration::MAX;
    for n in names {
        let start = Instant::now();
        try_login(&server, &format!("ghost-{n}"), USER_PASSWORD).await.error(401, "AuthenticationFailed");
        unknown = unknown.min(start.elapsed());
        let start = Instant::now();
        try_login(&server, n, "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
        wrong = wrong.min(start.elapsed());
    }
    // Both verify an argon2 hash; an unknown user that skipped it would answer many times faster.
    assert!(unknown * 3 >= wrong, "unknown user {unknown:?} vs wrong password {wrong:?}");
}

#[tokio::test]
async fn login_refuses_bad_input_with_the_error_shape() {
    let server = TestServer::start().await;
    let anon = server.anon();

    let r = anon.raw(Method::POST, LOGIN, "application/json", b"{\"username\": \"admin\", ".to_vec()).await;
    r.error(400, "ValidationError");

    let r = anon.raw(Method::POST, LOGIN, "application/json", b"[\"admin\"]".to_vec()).await;
    r.error(400, "ValidationError");

    let r = anon.post(LOGIN, json!({"username": 42, "password": true})).await;
    r.error(400, "ValidationError");
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(fields, ["password", "username"]);

    let r = anon.post(LOGIN, json!({"username": null, "password": ADMIN_PASSWORD})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["username"]);

    let r = anon.post(LOGIN, json!({})).await;
    r.error(400, "ValidationError");
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(fields, ["password", "username"]);

    let r = anon.post(LOGIN, json!({"username": "admin"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["password"]);

    let r = anon.post(LOGIN, json!({"username": "a".repeat(151), "password": ADMIN_PASSWORD})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["username"]);

    let r = anon.post(LOGIN, json!({"username": "admin", "password": "A1!".repeat(100)})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["password"]);

    let form = b"username=admin&password=Admin123%21".to_vec();
    anon.raw(Method::POST, LOGIN, "application/x-www-form-urlencoded", form).await.error(415, "UnsupportedMediaType");
    let plain = serde_json::to_vec(&json!({"username": "admin", "password": ADMIN_PASSWORD})).unwrap();
    anon.raw(Method::POST, LOGIN, "text/plain", plain).await.error(415, "UnsupportedMediaType");

    // Over 1 MiB: 413, even though it is well-formed JSON.
    let big =
        serde_json::to_vec(&json!({"username": "admin", "password": ADMIN_PASSWORD, "pad": "x".repeat(1024 * 1024)})).unwrap();
    anon.raw(Method::POST, LOGIN, "application/json", big).await.error(413, "PayloadTooLarge");

    // None of these counted as failed logins: the right password still works at once.
    login_full(&server, "admin", ADMIN_PASSWORD).await;
    // GET is not a login.
    anon.get(LOGIN).await.error(405, "MethodNotAllowed");
    // Without the trailing slash, the same endpoint answers directly.
    let r = anon.post("/api/v1/auth/login", json!({"username": "admin", "password": ADMIN_PASSWORD})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body["token"].is_string());
}

#[tokio::test]
async fn logins_are_audited_without_revision_or_password() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let alice = server.create_user(&admin, "alice", json!({})).await;
    let revision = server.revision().await;

    try_login(&server, "alice", "Wrong-Passw0rd-1").await.error(401, "AuthenticationFailed");
    try_login(&server, "ghost", "Ghost-Passw0rd-2").await.error(401, "AuthenticationFailed");
    let ok = login_full(&server, "alice", USER_PASSWORD).await;
    assert_eq!(server.revision().await, revision, "logins and failed logins do not advance the revision");

    let changes = server.store.changes(0, 1000).await.unwrap();
    let failed: Vec<_> = changes.iter().filter(|c| c.action == "login_failed").collect();
    assert_eq!(failed.len(), 2, "{changes:#?}");
    assert!(failed.iter().all(|c| c.revision.is_none() && c.target_type == "users"));
    assert!(failed.iter().any(|c| c.changes.to_string().contains("alice")));
    assert!(failed.iter().any(|c| c.changes.to_string().contains("ghost")));
    let logins: Vec<_> = changes.iter().filter(|c| c.action == "login" && c.target_pk == alice.to_string()).collect();
    assert_eq!(logins.len(), 1, "{changes:#?}");
    assert_eq!(logins[0].revision, None);
    assert_eq!(logins[0].actor, Some((alice, "alice".to_string())));
    assert!(logins[0].request_id.as_deref().is_some_and(|id| id.len() == 36));

    let logout = with_token(&server, &ok.token).post(LOGOUT, json!({})).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let changes = server.store.changes(0, 1000).await.unwrap();
    let logouts: Vec<_> = changes.iter().filter(|c| c.action == "logout").collect();
    assert_eq!(logouts.len(), 1);
    assert_eq!(logouts[0].revision, None);

    for c in &changes {
        let text = format!("{} {:?}", c.changes, c.changes).to_lowercase();
        for secret in ["wrong-passw0rd-1", "ghost-passw0rd-2", "passw0rd!", "admin123!", "$argon2", &ok.token.to_lowercase()] {
            assert!(!text.contains(secret), "secret {secret} in change {c:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Authorization header and missing credentials
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn authorization_header_forms() {
    let server = TestServer::start().await;
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let (_, api_token) = create_token(&with_token(&server, &login.token), "cli").await;

    for secret in [&login.token, &api_token] {
        for value in [format!("Bearer {secret}"), format!("Token {secret}"), secret.to_string(), format!("bearer {secret}")] {
            let r = get_with_authorization(&server, ME, &value).await;
            assert_eq!(r.status, StatusCode::OK, "{value}: {}", r.body);
            assert_eq!(r.body["username"], "admin");
        }
    }

    server.anon().get(ME).await.error(401, "AuthenticationRequired");
    server.anon().get(TOKENS).await.error(401, "AuthenticationRequired");
    server.anon().post(TOKENS, json!({"name": "x"})).await.error(401, "AuthenticationRequired");
    let long = "x".repeat(300);
    for garbage in
        ["Bearer garbage", "Token cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nonsense", "Bearer ", long.as_str()]
    {
        get_with_authorization(&server, ME, garbage).await.error(401, "AuthenticationFailed");
    }
    // A secret with a character changed does not authenticate.
    let mut tampered = login.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    get_with_authorization(&server, ME, &format!("Bearer {tampered}")).await.error(401, "AuthenticationFailed");
    // The csrf token is not a credential.
    get_with_authorization(&server, ME, &format!("Bearer {}", login.csrf)).await.error(401, "AuthenticationFailed");
}

// ---------------------------------------------------------------------------------------------------------------
// odd credentials never cause a server error
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn odd_credentials_answer_401() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}{ME}", server.base);
    let non_utf8 = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    let cases = [
        http.get(&url).header("authorization", non_utf8),
        http.get(&url).header("authorization", ""),
        http.get(&url).header("cookie", "session_secret="),
        http.get(&url).header("cookie", "sid=1; session_secret=%00%01"),
        http.get(&url).header("cookie", format!("sid=1; session_secret={}", "y".repeat(5000))),
    ];
    for req in cases {
        let r = Client::read(req.send().await.unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let kind = r.body["type"].as_str().unwrap().to_string();
        assert!(kind == "AuthenticationRequired" || kind == "AuthenticationFailed", "{kind}");
        r.error(401, &kind);
    }
}
