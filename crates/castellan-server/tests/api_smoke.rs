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
