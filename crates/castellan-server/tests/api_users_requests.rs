//! Requests to the users endpoints at the HTTP level (API.md §1): optional trailing slashes, 405 and unknown paths,
//! and malformed, mistyped or oversized bodies refused without changes.

mod common;

use castellan_core::model::User;
use common::users::{get_url, new_user, pks, snapshot};
use common::{Client, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn trailing_slash_is_optional_without_redirect() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "slash", json!({})).await;
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let c = Client { http: no_redirect, ..admin.clone() };
    for (a, b) in [
        ("/api/v1/users/".to_string(), "/api/v1/users".to_string()),
        ("/api/v1/users/?page_size=1".to_string(), "/api/v1/users?page_size=1".to_string()),
        (format!("/api/v1/users/{pk}/"), format!("/api/v1/users/{pk}")),
    ] {
        let ra = c.get(&a).await;
        let rb = c.get(&b).await;
        assert_eq!(ra.status, StatusCode::OK, "{a}");
        assert_eq!(rb.status, StatusCode::OK, "{b}: {}", rb.body);
        assert!(rb.headers.get("location").is_none());
        assert_eq!(ra.body["count"], rb.body["count"]);
        assert_eq!(ra.body["results"], rb.body["results"]);
        assert_eq!(ra.body["username"], rb.body["username"]);
    }
    let r = c.get("/api/v1/users?page_size=1").await;
    let next = r.body["next"].as_str().unwrap();
    assert_eq!(pks(&get_url(&c, next).await), [pk], "{next}");
    // Writes without the slash too.
    let r = c.patch(&format!("/api/v1/users/{pk}"), json!({"first_name": "S"})).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c.post("/api/v1/users", new_user("noslash")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn method_not_allowed_and_unknown_paths() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/users/"),
        (Method::DELETE, "/api/v1/users"),
        (Method::PUT, "/api/v1/users/"),
        (Method::PATCH, "/api/v1/users/"),
        (Method::POST, "/api/v1/users/1/"),
    ] {
        let r = admin.send(method.clone(), path, Some(json!({}))).await;
        r.error(405, "MethodNotAllowed");
        let allow = r.headers.get("allow").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(allow.contains("GET") && !allow.contains(method.as_str()), "{method} {path}: Allow {allow:?}");
    }
    assert_eq!(server.store.count_users().await.unwrap(), 1);
    assert_eq!(server.revision().await, rev);
    for path in ["/api/v1/nope/", "/api/v1/users/1/nope/", "/api/v2/users/", "/nope", "/api/v1/user/"] {
        admin.get(path).await.error(404, "NotFound");
        let r = server.anon().get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn malformed_bodies_are_refused_without_changes() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "body", json!({})).await;
    let snap = snapshot(&server, pk).await;
    let users = server.store.count_users().await.unwrap();
    let path = format!("/api/v1/users/{pk}/");

    for (method, p) in [(Method::POST, "/api/v1/users/"), (Method::PATCH, path.as_str()), (Method::PUT, path.as_str())] {
        // Malformed JSON.
        for raw in [&b"{\"username\": "[..], b"{username: 1}", b"", b"\xff\xfe"] {
            let r = admin.raw(method.clone(), p, "application/json", raw.to_vec()).await;
            r.error(400, "ValidationError");
            let text = r.body.to_string().to_lowercase();
            assert!(!text.contains("sql") && !text.contains("panicked"), "{text}");
        }
        // Wrong content type.
        for ct in ["text/plain", "application/x-www-form-urlencoded", "application/xml"] {
            let r = admin.raw(method.clone(), p, ct, br#"{"first_name": "x"}"#.to_vec()).await;
            r.error(415, "UnsupportedMediaType");
        }
        // Over 1 MiB.
        let big = serde_json::to_vec(&json!({"username": "big", "email": "big@example.com", "groups": [], "password": null,
            "description": "a".repeat(1024 * 1024 + 1)}))
        .unwrap();
        let r = admin.raw(method.clone(), p, "application/json", big).await;
        r.error(413, "PayloadTooLarge");
        // Strings over their maximum length.
        for (field, len) in [("first_name", 151), ("last_name", 151), ("description", 1001), ("email", 260), ("password", 257)] {
            let value = if field == "email" {
                format!("{}@example.com", "e".repeat(len))
            } else if field == "password" {
                format!("Aa1!{}", "x".repeat(len))
            } else {
                "x".repeat(len)
            };
            let body =
                json!({"username": "body2", "email": "b2@example.com", "groups": [], "password": "Bar123*!", field: value});
            let r = admin.send(method.clone(), p, Some(body)).await;
            r.error(400, "ValidationError");
            assert!(r.fields().contains(&field.to_string()), "{field}: {}", r.body);
        }
    }
    // A JSON content type with parameters, or in another case (media types are case-insensitive), is still JSON.
    for ct in
        ["application/json; charset=utf-8", "Application/JSON", "APPLICATION/JSON; Charset=UTF-8", "application/merge-patch+json"]
    {
        let r = admin.raw(Method::PATCH, &path, ct, br#"{"first_name": "ok"}"#.to_vec()).await;
        assert_eq!(r.status, StatusCode::OK, "{ct}: {}", r.body);
    }
    let snap = (snap.0 + 4, User { first_name: "ok".into(), ..snap.1 });
    assert_eq!(snapshot(&server, pk).await, snap);
    assert_eq!(server.store.count_users().await.unwrap(), users);
    // Maximum lengths are inclusive.
    let r = admin.patch(&path, json!({"first_name": "n".repeat(150), "description": "d".repeat(1000)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
