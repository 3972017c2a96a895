//! Login throttling (API.md §10 "Authentication", §11 "Credentials and sessions"): locking accounts after failures,
//! throttling addresses, and the hashing capacity's wait budget.

mod common;

use std::time::Duration;

use castellan_server::ServerConfig;
use common::auth::{LOGIN, USER_PASSWORD, assert_works, login_full, set_cookie, try_login, with_token};
use common::{ADMIN_PASSWORD, TestServer};
use reqwest::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------------------------------------------------------
// throttling
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn five_failures_lock_an_account_until_unlocked() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let alice = server.create_user(&admin, "alice", json!({})).await;
    server.create_user(&admin, "bob", json!({})).await;

    // Case variants count against the same account.
    for name in ["alice", "Alice", "ALICE", "alice", "aLiCe"] {
        try_login(&server, name, "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
    }
    for password in [USER_PASSWORD, "Wrong-Passw0rd"] {
        let r = try_login(&server, "alice", password).await;
        r.error(429, "Throttled");
        let retry: u64 = r.headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry), "Retry-After {retry}");
        assert!(set_cookie(&r, "sid").is_none());
    }
    // Another account is unaffected.
    login_full(&server, "bob", USER_PASSWORD).await;
    login_full(&server, "admin", ADMIN_PASSWORD).await;

    // Unlock needs users.update: a plain user is refused, and alice stays locked.
    let bob = server.login("bob", USER_PASSWORD).await;
    let r = bob.post(&format!("/api/v1/users/{alice}/unlock/"), json!({})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], "This method needs permission update on users.");
    server.anon().post(&format!("/api/v1/users/{alice}/unlock/"), json!({})).await.error(401, "AuthenticationRequired");
    try_login(&server, "alice", USER_PASSWORD).await.error(429, "Throttled");

    admin.post("/api/v1/users/999999/unlock/", json!({})).await.error(404, "NotFound");
    let r = admin.post(&format!("/api/v1/users/{alice}/unlock/"), json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.revision().is_some(), "X-Revision on a successful write");
    login_full(&server, "alice", USER_PASSWORD).await;
}

/// A login cannot be previewed: `?dry_run=true` is refused with 400 before the attempt is counted, so dry runs
/// neither lock an account nor leave audit entries.
#[tokio::test]
async fn dry_run_logins_are_refused_and_not_counted() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server.create_user(&admin, "dora", json!({})).await;
    let anon = server.anon();
    for _ in 0..6 {
        let r = anon.post(&format!("{LOGIN}?dry_run=true"), json!({"username": "dora", "password": "Wrong-Passw0rd"})).await;
        r.error(400, "ValidationError");
    }
    let r = try_login(&server, "dora", USER_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "dry runs counted as failures: {}", r.body);
}

#[tokio::test]
async fn throttle_counts_unknown_usernames_and_resets_on_success() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server.create_user(&admin, "carol", json!({})).await;

    // Unknown usernames lock exactly like real ones (no enumeration through the throttle).
    for _ in 0..5 {
        try_login(&server, "ghost", "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
    }
    let ghost = try_login(&server, "ghost", "Wrong-Passw0rd").await;
    ghost.error(429, "Throttled");
    assert!(ghost.headers.get("retry-after").is_some());

    // Four failures, a success, four more failures: never locked.
    for _ in 0..4 {
        try_login(&server, "carol", "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
    }
    login_full(&server, "carol", USER_PASSWORD).await;
    for _ in 0..4 {
        try_login(&server, "carol", "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
    }
    login_full(&server, "carol", USER_PASSWORD).await;
}

// ---------------------------------------------------------------------------------------------------------------
// throttling by address and by hashing capacity
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn more_than_100_failures_from_one_address_throttle_it() {
    let server = TestServer::start().await;
    // 100 failures, each for a different (unknown) account so no account locks.
    for i in 0..100 {
        try_login(&server, &format!("ghost{i}"), "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
    }
    // 100 is not "more than 100": the address is not throttled yet.
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    try_login(&server, "ghost-100", "Wrong-Passw0rd").await.error(401, "AuthenticationFailed");
    // Now it is, for every account from that address, even with the right password.
    for (user, password) in [("admin", ADMIN_PASSWORD), ("someone-else", "Wrong-Passw0rd")] {
        let r = try_login(&server, user, password).await;
        r.error(429, "Throttled");
        let retry: u64 = r.headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    // Existing sessions are not affected.
    assert_works(&with_token(&server, &login.token), "admin").await;
}

#[tokio::test]
async fn logins_beyond_the_wait_budget_answer_429() {
    // With no budget, a login is admitted only when a hashing thread is free for it.
    let server = TestServer::start_with(ServerConfig { login_wait_budget: Duration::ZERO, ..Default::default() }).await;
    let (ok, throttled) = concurrent_logins(&server, 16).await;
    assert!(ok >= 1, "at least one login got through");
    assert!(throttled >= 1, "16 concurrent logins with no wait budget: some must be refused ({ok} succeeded)");
    // Capacity refusals are not failed logins: the account is not locked.
    for _ in 0..6 {
        login_full(&server, "admin", ADMIN_PASSWORD).await;
    }
}

#[tokio::test]
async fn concurrent_logins_within_the_wait_budget_queue_instead_of_failing() {
    let server = TestServer::start().await;
    let (ok, throttled) = concurrent_logins(&server, 8).await;
    assert_eq!((ok, throttled), (8, 0), "8 concurrent logins on a default budget all queue and succeed");
}

/// Sends `n` logins of admin at once; answers how many succeeded and how many were refused with 429.
async fn concurrent_logins(server: &TestServer, n: usize) -> (usize, usize) {
    let attempts: Vec<_> = (0..n)
        .map(|_| {
            let anon = server.anon();
            tokio::spawn(async move { anon.post(LOGIN, json!({"username": "admin", "password": ADMIN_PASSWORD})).await })
        })
        .collect();
    let (mut ok, mut throttled) = (0, 0);
    for a in attempts {
        let r = a.await.unwrap();
        if r.status == StatusCode::OK {
            ok += 1;
        } else {
            r.error(429, "Throttled");
            assert!(r.headers.get("retry-after").is_some());
            throttled += 1;
        }
    }
    (ok, throttled)
}

/// One failed login from `from` (an `X-Forwarded-For` value, when given).
async fn fail_from(server: &TestServer, from: Option<&str>, username: &str) -> common::Resp {
    let mut request = server.anon().http.post(format!("{}{LOGIN}", server.base));
    if let Some(from) = from {
        request = request.header("x-forwarded-for", from);
    }
    common::Client::read(request.json(&json!({"username": username, "password": "Wrong-Passw0rd"})).send().await.unwrap()).await
}

/// Behind a trusted proxy each client has its own address (API.md §10): its own throttle bucket and its own audit
/// address. From a peer that is not trusted, forwarding headers are ignored, so a client cannot pick its address.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_are_told_apart_and_others_cannot_spoof() {
    let trusted = vec![castellan_server::config::parse_trusted_proxy("127.0.0.1").unwrap()];
    let server = TestServer::start_with(ServerConfig { trusted_proxies: trusted, ..Default::default() }).await;
    for i in 0..101 {
        fail_from(&server, Some("203.0.113.7"), &format!("ghost{i}")).await.error(401, "AuthenticationFailed");
    }
    fail_from(&server, Some("203.0.113.7"), "ghost").await.error(429, "Throttled");
    // Another client behind the same proxy, and one that names itself further out in the chain, are not throttled:
    // the nearest untrusted hop is the client.
    fail_from(&server, Some("198.51.100.9"), "ghost").await.error(401, "AuthenticationFailed");
    fail_from(&server, Some("203.0.113.7, 198.51.100.10"), "ghost").await.error(401, "AuthenticationFailed");
    fail_from(&server, None, "ghost").await.error(401, "AuthenticationFailed");
    let log = server.store.changes(0, 100_000).await.unwrap();
    let ips: Vec<&str> = log.iter().rev().take(3).filter_map(|e| e.ip.as_deref()).collect();
    assert_eq!(ips, ["127.0.0.1", "198.51.100.10", "198.51.100.9"], "audit addresses, newest first");

    // Without trusted proxies the header is ignored: every "client" is the peer.
    let server = TestServer::start().await;
    for i in 0..101 {
        fail_from(&server, Some(&format!("192.0.2.{}", i % 250)), &format!("ghost{i}")).await.error(401, "AuthenticationFailed");
    }
    fail_from(&server, Some("192.0.2.250"), "ghost").await.error(429, "Throttled");
    let log = server.store.changes(0, 100_000).await.unwrap();
    assert!(log.iter().filter_map(|e| e.ip.as_deref()).all(|ip| ip == "127.0.0.1"));
}
