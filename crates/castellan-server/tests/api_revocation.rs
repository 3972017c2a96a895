//! Ending credentials (API.md §11 "Credentials and sessions"): sessions and tokens ended by password changes,
//! deactivation, revocation and deletion, across several instances over one store, and revocation racing with
//! requests in flight.

mod common;

use std::time::Duration;

use castellan_server::ServerConfig;
use common::auth::{
    LOGOUT, ME, SESSIONS, USER_PASSWORD, assert_refused, assert_works, create_token, list_tokens, login_full, try_login,
    with_token,
};
use common::{ADMIN_PASSWORD, Client, TestServer};
use reqwest::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------------------------------------------------------
// credentials ended by password changes, deactivation and revocation
// ---------------------------------------------------------------------------------------------------------------

/// A user with two sessions and an API token; returns (pk, clients).
async fn user_with_credentials(server: &TestServer, admin: &Client, name: &str) -> (i64, Vec<Client>) {
    let pk = server.create_user(admin, name, json!({})).await;
    let s1 = server.login(name, USER_PASSWORD).await;
    let s2 = server.login(name, USER_PASSWORD).await;
    let (_, secret) = create_token(&s1, "t").await;
    let api = with_token(server, &secret);
    for c in [&s1, &s2, &api] {
        assert_works(c, name).await;
    }
    (pk, vec![s1, s2, api])
}

#[tokio::test]
async fn admin_password_change_ends_sessions_and_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, clients) = user_with_credentials(&server, &admin, "dave").await;
    let (_, others) = user_with_credentials(&server, &admin, "erin").await;

    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "N3w-Passw0rd!"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.revision().is_some());
    assert!(r.body.get("password").is_none());
    for c in &clients {
        assert_refused(c).await;
    }
    assert!(list_tokens(&server.login("dave", "N3w-Passw0rd!").await).await.is_empty(), "tokens are gone");
    try_login(&server, "dave", USER_PASSWORD).await.error(401, "AuthenticationFailed");
    // Other users and the admin keep theirs.
    for c in &others {
        assert_works(c, "erin").await;
    }
    assert_works(&admin, "admin").await;

    // The same through PUT.
    let (pk, clients) = user_with_credentials(&server, &admin, "frank").await;
    let body = json!({"username": "frank", "email": "frank@example.com", "groups": [], "password": "N3w-Passw0rd!"});
    let r = admin.put(&format!("/api/v1/users/{pk}/"), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for c in &clients {
        assert_refused(c).await;
    }
}

#[tokio::test]
async fn deactivation_ends_credentials_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, clients) = user_with_credentials(&server, &admin, "gina").await;

    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["is_active"], false);
    for c in &clients {
        assert_refused(c).await;
    }
    try_login(&server, "gina", USER_PASSWORD).await.error(401, "AuthenticationFailed");

    // Reactivation does not bring the old credentials back.
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for c in &clients {
        assert_refused(c).await;
    }
    let fresh = server.login("gina", USER_PASSWORD).await;
    assert_works(&fresh, "gina").await;
    assert!(list_tokens(&fresh).await.is_empty());
}

#[tokio::test]
async fn revoke_sessions_ends_sessions_and_tokens() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, clients) = user_with_credentials(&server, &admin, "hank").await;
    let (other_pk, others) = user_with_credentials(&server, &admin, "ivy").await;

    // A plain user may not revoke anyone's sessions.
    let r = others[0].post(&format!("/api/v1/users/{pk}/revoke_sessions/"), json!({})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], "This method needs permission update on users.");
    for c in &clients {
        assert_works(c, "hank").await;
    }
    server.anon().post(&format!("/api/v1/users/{pk}/revoke_sessions/"), json!({})).await.error(401, "AuthenticationRequired");
    admin.post("/api/v1/users/999999/revoke_sessions/", json!({})).await.error(404, "NotFound");

    let r = admin.post(&format!("/api/v1/users/{pk}/revoke_sessions/"), json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(r.revision().is_some());
    for c in &clients {
        assert_refused(c).await;
    }
    for c in &others {
        assert_works(c, "ivy").await;
    }
    assert_works(&admin, "admin").await;
    // The account itself still works.
    let fresh = server.login("hank", USER_PASSWORD).await;
    assert!(list_tokens(&fresh).await.is_empty());
    assert_eq!(fresh.get(SESSIONS).await.body["count"], 1);
    let _ = other_pk;
}

#[tokio::test]
async fn deleting_a_user_ends_their_credentials() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, clients) = user_with_credentials(&server, &admin, "jack").await;
    let r = admin.delete(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    for c in &clients {
        assert_refused(c).await;
    }
    try_login(&server, "jack", USER_PASSWORD).await.error(401, "AuthenticationFailed");
}

// ---------------------------------------------------------------------------------------------------------------
// several instances over one store
// ---------------------------------------------------------------------------------------------------------------

/// A second server over the same store (another instance of a deployment); returns its base URL.
async fn second_instance(server: &TestServer) -> (String, tokio::sync::oneshot::Sender<()>) {
    let state = castellan_server::AppState::new(server.store.clone(), ServerConfig::default(), None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(castellan_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx)
}

/// Waits until `client` is refused, for at most the time another instance takes to follow the change log.
async fn eventually_refused(client: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while client.get(ME).await.status == StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "still accepted 3 s after the credential ended elsewhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(client).await;
}

#[tokio::test]
async fn revocation_is_seen_by_every_instance() {
    let server = TestServer::start().await;
    let (other_base, _stop) = second_instance(&server).await;
    let admin = server.admin().await;
    let (pk, clients) = user_with_credentials(&server, &admin, "kate").await;
    let on_other = |c: &Client| Client { base: other_base.clone(), ..c.clone() };
    // Both instances accept (and cache) every credential.
    for c in &clients {
        assert_works(&on_other(c), "kate").await;
    }
    // Logout on the first instance ends the session on the second, through the change log.
    let r = clients[0].post(LOGOUT, json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    eventually_refused(&on_other(&clients[0])).await;
    assert_works(&on_other(&clients[1]), "kate").await;
    // Ending the other session from the session list (with the token) ends it on the second instance too.
    let sessions = clients[2].get(SESSIONS).await;
    let remaining = sessions.body["results"][0]["pk"].as_i64().unwrap();
    assert_eq!(sessions.body["count"], 1, "{}", sessions.body);
    assert_eq!(clients[2].delete(&format!("{SESSIONS}{remaining}/")).await.status, StatusCode::NO_CONTENT);
    eventually_refused(&on_other(&clients[1])).await;
    assert_works(&on_other(&clients[2]), "kate").await;
    // revoke_sessions on the first instance ends the token everywhere.
    let r = admin.post(&format!("/api/v1/users/{pk}/revoke_sessions/"), json!({})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    eventually_refused(&on_other(&clients[2])).await;
    let audit = admin.get(&format!("/api/v1/audit/?target_type=users&target_pk={pk}&action=logout")).await;
    assert_eq!(audit.body["count"], 3, "the logout, the ended session and the revocation are in the log: {}", audit.body);
}

#[tokio::test]
async fn credentials_work_on_every_instance() {
    let server = TestServer::start().await;
    let (other_base, _stop) = second_instance(&server).await;
    let login = login_full(&server, "admin", ADMIN_PASSWORD).await;
    let on_other = Client { base: other_base, ..with_token(&server, &login.token) };
    assert_works(&on_other, "admin").await;
    let (_, secret) = create_token(&on_other, "made elsewhere").await;
    assert_works(&with_token(&server, &secret), "admin").await;
}

// ---------------------------------------------------------------------------------------------------------------
// revocation racing with requests in flight
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn revocation_racing_with_requests_in_flight_sticks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "mia", json!({})).await;
    let mut resurrected = 0;
    let rounds = 12;
    for round in 0..rounds {
        let session = server.login("mia", USER_PASSWORD).await;
        let (_, secret) = create_token(&session, "t").await;
        let api = with_token(&server, &secret);
        assert_works(&api, "mia").await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Requests with the token keep arriving while the user's cache entries are invalidated and revoked.
        let spam: Vec<_> = (0..6)
            .map(|_| {
                let (api, stop) = (api.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = api.get(ME).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20 + 7 * round)).await;
        let touch = session.patch("/api/v1/active_user/", json!({"first_name": format!("r{round}")}));
        let revoke_path = format!("/api/v1/users/{pk}/revoke_sessions/");
        let revoke = admin.post(&revoke_path, json!({}));
        let (t, r) = tokio::join!(touch, revoke);
        assert!(t.status == StatusCode::OK || t.status == StatusCode::UNAUTHORIZED, "{}", t.body);
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spam {
            s.await.unwrap();
        }
        // Every request that was in flight has finished: the revoked token must now be refused.
        if api.get(ME).await.status != StatusCode::UNAUTHORIZED {
            resurrected += 1;
        }
    }
    assert_eq!(resurrected, 0, "a revoked token kept working in {resurrected} of {rounds} rounds");
}
