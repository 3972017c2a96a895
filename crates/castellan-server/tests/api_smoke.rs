//! End-to-end smoke test of the walkthrough in the README.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn readme_walkthrough() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "foo", json!({"first_name": "bar"})).await;
    let list = admin.get("/api/v1/users/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["count"], 2);
    let foo = server.login("foo", "Passw0rd!").await;
    let r = foo
        .put("/api/v1/active_user/change_password/", json!({"old_password": "Passw0rd!", "new_password": "N3w-Passw0rd"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"detail": "Password changed."}));
    server.login("foo", "N3w-Passw0rd").await;
    assert_eq!(admin.get(&format!("/api/v1/users/{pk}/")).await.body["first_name"], "bar");
}

/// The value of the `castellan_http_requests_total` series with these labels in a `/metrics` body (0 when absent).
fn requests_counted(body: &str, method: &str, status: &str) -> u64 {
    let series = format!("castellan_http_requests_total{{method=\"{method}\",status=\"{status}\"}} ");
    body.lines().find_map(|l| l.strip_prefix(series.as_str())).map_or(0, |n| n.trim().parse().unwrap())
}

/// The other tests of this binary run at the same time against their own servers, which count into the same
/// process-wide recorder: exact counts are asserted only for method/status pairs no other test here produces.
#[tokio::test]
async fn requests_are_counted_by_method_and_status_with_their_latency() {
    let server = TestServer::start_measured().await;
    let anon = server.anon();
    let scrape = || async { anon.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    for _ in 0..3 {
        assert_eq!(anon.delete("/api/v1/no-such-thing/").await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(anon.put("/api/v1/users/1/", serde_json::json!({})).await.status, StatusCode::UNAUTHORIZED);
    let after = scrape().await;
    let counted = |method, status| requests_counted(&after, method, status) - requests_counted(&before, method, status);
    assert_eq!(counted("DELETE", "404"), 3, "{after}");
    assert_eq!(counted("PUT", "401"), 1, "{after}");
    assert!(counted("GET", "200") >= 1, "the first scrape: {after}");
    let latency = |series: &str| after.lines().any(|l| l.starts_with(series));
    assert!(latency("castellan_http_request_duration_seconds_bucket{method=\"DELETE\",le=\"0.001\"}"), "{after}");
    assert!(latency("castellan_http_request_duration_seconds_count{method=\"DELETE\"}"), "{after}");
}

#[tokio::test]
async fn health_metrics_schema_and_docs_need_no_credentials() {
    let server = TestServer::start().await;
    let anon = server.anon();
    assert_eq!(anon.get("/healthz").await.body["status"], "ok");
    assert_eq!(anon.get("/readyz").await.body["status"], "ready");
    let metrics = anon.http.get(format!("{}/metrics", server.base)).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));

    let schema = anon.get("/api/v1/schema/").await;
    assert_eq!(schema.status, StatusCode::OK);
    assert_eq!(schema.body["openapi"], "3.1.0");
    let users = &schema.body["paths"]["/api/v1/users/"];
    assert!(users["get"]["description"].as_str().unwrap().contains("This method needs permission read on users."));
    assert!(users["post"]["description"].as_str().unwrap().contains("This method needs permission create on users."));
    let me = &schema.body["paths"]["/api/v1/active_user/"]["get"]["description"];
    assert!(me.as_str().unwrap().contains("only authentication"));
    let unlock = &schema.body["paths"]["/api/v1/users/{pk}/unlock/"]["post"]["description"];
    assert!(unlock.as_str().unwrap().contains("This method needs permission update on users."));
    let without_slash = anon.get("/api/v1/schema").await;
    assert_eq!(without_slash.body["openapi"], "3.1.0");

    let docs = anon.http.get(format!("{}/api/docs/", server.base)).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(!html.contains("https://") && !html.contains("http://"), "the docs page loads nothing from elsewhere");
    let asset = anon.http.get(format!("{}/api/docs/swagger-ui-bundle.js", server.base)).send().await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK, "swagger assets are embedded in the binary");
}

#[tokio::test]
async fn request_ids_are_given_or_kept_and_reach_error_bodies() {
    let server = TestServer::start().await;
    let url = format!("{}/api/v1/users/", server.base);
    let r = server.anon().http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let given = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(given.len(), 36, "a fresh UUID: {given}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], given, "the error body names the same request");

    let r = server.anon().http.get(&url).header("x-request-id", "trace-42").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42", "a caller's id is kept for tracing across services");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["id"], "trace-42");

    let health = server.anon().http.get(format!("{}/healthz/", server.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::NOT_FOUND, "only API paths gain a trailing slash");
    assert!(health.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn every_api_operation_states_its_permission() {
    let server = TestServer::start().await;
    let schema = server.anon().get("/api/v1/schema/").await.body;
    let paths = schema["paths"].as_object().unwrap();
    assert!(paths.len() > 20);
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let text = op["description"].as_str().unwrap_or("");
            assert!(
                text.contains("This method needs permission")
                    || text.contains("only authentication")
                    || path.ends_with("/auth/login/"),
                "{method} {path} does not state its permission"
            );
        }
    }
}

/// The value of the first series of `/metrics` starting with `series` (0 when absent).
fn series_value(body: &str, series: &str) -> f64 {
    body.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// Check decisions, check latency, bulk sizes, logins by outcome, dry-run sizes, write groups and commits, and the
/// index's revision and lag are exported. Other tests of this binary count into the same recorder: only increases
/// are asserted.
#[tokio::test]
async fn metrics_count_checks_logins_previews_and_writes() {
    let server = TestServer::start_measured().await;
    let admin = server.admin().await;
    let anon = server.anon();
    let scrape = || async { anon.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    let pk = server.create_user(&admin, "mira", json!({})).await;
    assert_eq!(admin.post("/api/v1/check/", json!({"permission": "users.read"})).await.body["allowed"], true);
    let denied = admin.post("/api/v1/check/", json!({"user": pk, "permission": "users.read"})).await;
    assert_eq!(denied.body["allowed"], false, "{}", denied.body);
    let bulk = json!({"checks": [{"permission": "users.read"}, {"user": pk, "permission": "users.read"}, {"permission": "groups.read"}]});
    assert_eq!(admin.post("/api/v1/check/bulk/", bulk).await.status, StatusCode::OK);
    anon.post("/api/v1/auth/login/", json!({"username": "mira", "password": "wrong-Passw0rd!"}))
        .await
        .error(401, "AuthenticationFailed");
    server.login("mira", common::auth::USER_PASSWORD).await;
    let group = admin.post("/api/v1/groups/", json!({"name": "g"})).await.body["pk"].as_i64().unwrap();
    let preview = admin.patch(&format!("/api/v1/groups/{group}/assign-users/?dry_run=true"), json!({"users": [pk]})).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let after = scrape().await;

    let grew = |series: &str, by: f64| {
        let (was, is) = (series_value(&before, series), series_value(&after, series));
        assert!(is - was >= by, "{series}: {was} -> {is}\n{after}");
    };
    grew("castellan_checks_total{decision=\"allowed\"}", 3.0);
    grew("castellan_checks_total{decision=\"denied\"}", 2.0);
    grew("castellan_check_duration_seconds_count", 3.0);
    grew("castellan_bulk_check_size_sum", 3.0);
    grew("castellan_logins_total{outcome=\"failure\"}", 1.0);
    grew("castellan_logins_total{outcome=\"success\"}", 1.0);
    grew("castellan_preview_users_count", 1.0);
    grew("castellan_write_group_size_count", 2.0);
    grew("castellan_commit_duration_seconds_count", 2.0);
    assert!(series_value(&after, "castellan_index_revision ") >= server.revision().await as f64 - 1.0, "{after}");
    assert!(after.contains("castellan_index_lag_revisions "), "{after}");
}

/// `/readyz` fails while the index is more revisions behind the store than allowed, and recovers once it has
/// followed (here: writes made straight to the store, which the server learns of on its next tick).
#[tokio::test]
async fn readiness_fails_while_the_index_lags_behind_the_store() {
    let config = castellan_server::ServerConfig { ready_max_lag: 0, ..castellan_server::ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let anon = server.anon();
    assert_eq!(anon.get("/readyz").await.body["index_lag"], 0);
    let ctx = castellan_store::WriteCtx::default();
    let mut refused = None;
    for i in 0..5 {
        server.store.create_org(&ctx, &format!("Org {i}"), &format!("org-{i}"), "").await.unwrap();
        let r = anon.get("/readyz").await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a lagging index never made /readyz fail");
    assert_eq!(refused.body["type"], "Unavailable");
    assert!(refused.body["detail"].as_str().unwrap().contains("behind"), "{}", refused.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while anon.get("/readyz").await.status != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "the index never caught up");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
