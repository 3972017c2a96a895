//! Watch: the change log as Server-Sent Events, resumable.

mod common;

use std::time::Duration;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

/// Reads the stream until `needle` appears (or fails after 10 s), returning everything read.
async fn read_until(mut response: reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        let chunk =
            tokio::time::timeout_at(deadline, response.chunk()).await.expect("event in time").unwrap().expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn writes_arrive_as_events_and_streams_resume() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let token = admin.token.clone().unwrap();
    let open = |query: &str, last: Option<&str>| {
        let mut req = admin.http.get(format!("{}/api/v1/watch/{query}", server.base)).bearer_auth(&token);
        if let Some(id) = last {
            req = req.header("last-event-id", id);
        }
        req.send()
    };
    let live = open("", None).await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert!(live.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let pk = server.create_user(&admin, "watched", json!({})).await;
    let text = read_until(live, "watched").await;
    assert!(text.contains("event: change"), "{text}");
    assert!(text.contains(&format!("\"target_pk\":\"{pk}\"")), "{text}");
    assert!(!text.contains("Passw0rd!") && !text.contains("argon2"), "no secrets in events");

    // From revision 0 the whole history replays, the bootstrap included.
    let replay = read_until(open("?since_revision=0", None).await.unwrap(), "watched").await;
    assert!(replay.contains("\"target_type\":\"orgs\""), "{replay}");
    // Last-Event-ID wins over since_revision: resuming after the newest event yields only what comes next.
    let last = server.store.last_change_pk().await.unwrap().to_string();
    let resumed = open("?since_revision=0", Some(&last)).await.unwrap();
    server.create_user(&admin, "later", json!({})).await;
    let text = read_until(resumed, "later").await;
    assert!(!text.contains("watched"), "events before Last-Event-ID are not replayed: {text}");
}

#[tokio::test]
async fn watch_needs_audit_read_and_valid_positions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server.create_user(&admin, "plain", json!({})).await;
    let plain = server.login("plain", "Passw0rd!").await;
    let r = plain.get("/api/v1/watch/").await;
    assert_eq!(r.error(403, "PermissionDenied")["detail"], "This method needs permission read on audit.");
    server.anon().get("/api/v1/watch/").await.error(401, "AuthenticationRequired");
    let r = admin.get("/api/v1/watch/?since_revision=abc").await;
    assert_eq!(r.error(400, "ValidationError")["errors"][0]["field"], "since_revision");
}
