//! Personal API tokens over HTTP (API.md §2, §11 "Credentials and sessions"): their lifecycle, validation, other
//! users' tokens, expiry, and token scopes.

mod common;

use std::time::Duration;

use common::TestServer;
use common::auth::{SESSIONS, TOKENS, USER_PASSWORD, assert_refused, assert_works, create_token, list_tokens, ts, with_token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

// ---------------------------------------------------------------------------------------------------------------
// API tokens
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn api_token_lifecycle() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let revision = server.revision().await;

    let r = admin.post(TOKENS, json!({"name": "deploy"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut keys: Vec<&str> = r.body.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["created_date", "expires_at", "last_used", "name", "permissions", "pk", "prefix", "token"]);
    assert_eq!(r.body["permissions"], Value::Null, "no scopes: all of the owner's holdings");
    let pk = r.body["pk"].as_i64().unwrap();
    let secret = r.body["token"].as_str().unwrap().to_string();
    let prefix = r.body["prefix"].as_str().unwrap();
    assert_eq!(r.body["name"], "deploy");
    assert_eq!(r.body["expires_at"], Value::Null);
    assert_eq!(r.body["last_used"], Value::Null);
    ts(&r.body["created_date"]);
    assert!(secret.len() >= 43, "256-bit secret: {secret}");
    assert!(prefix.len() >= 4 && prefix.len() < secret.len() / 2, "prefix {prefix}");
    assert!(secret.starts_with(prefix), "{prefix} / {secret}");
    let rev = r.revision().expect("X-Revision");
    assert!(rev > revision);
    assert_eq!(rev, server.revision().await);

    // The list never shows the secret.
    let listed = admin.get(TOKENS).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["count"], 1);
    let item = &listed.body["results"][0];
    assert!(item.get("token").is_none(), "{item}");
    assert!(!listed.body.to_string().contains(&secret[prefix.len()..]));
    assert_eq!(item["pk"], pk);
    assert_eq!(item["prefix"], prefix);
    assert_eq!(item["name"], "deploy");

    // The token authenticates, and its use is recorded.
    let api = with_token(&server, &secret);
    assert_works(&api, "admin").await;
    let listed = admin.get(TOKENS).await;
    let last_used = ts(&listed.body["results"][0]["last_used"]);
    assert!(last_used > OffsetDateTime::now_utc() - time::Duration::minutes(1));

    // The secret is stored only as a hash: nowhere in the change log either.
    for c in server.store.changes(0, 1000).await.unwrap() {
        assert!(!c.changes.to_string().contains(&secret), "{c:?}");
    }

    // A token cannot create tokens.
    let r = api.post(TOKENS, json!({"name": "child"})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(admin.get(TOKENS).await.body["count"], 1);

    // Revoking it.
    let r = admin.delete(&format!("{TOKENS}{pk}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let rev2 = r.revision().expect("X-Revision");
    assert!(rev2 > rev);
    assert_refused(&api).await;
    assert_eq!(admin.get(TOKENS).await.body["count"], 0);
    admin.delete(&format!("{TOKENS}{pk}/")).await.error(404, "NotFound");
    assert_works(&admin, "admin").await;

    // DELETE on the list endpoints and writes other than DELETE on one item: 405.
    admin.delete(TOKENS).await.error(405, "MethodNotAllowed");
    admin.delete(SESSIONS).await.error(405, "MethodNotAllowed");
    admin.put(&format!("{TOKENS}{pk}/"), json!({"name": "x"})).await.error(405, "MethodNotAllowed");
    admin.post(SESSIONS, json!({})).await.error(405, "MethodNotAllowed");
}

#[tokio::test]
async fn api_token_validation() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let revision = server.revision().await;

    let past = (OffsetDateTime::now_utc() - time::Duration::hours(1)).format(&Rfc3339).unwrap();
    let cases = [
        (json!({"name": "old", "expires_at": past}), "expires_at"),
        (json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"name": "bad", "expires_at": "tomorrow"}), "expires_at"),
        (json!({"name": "bad", "expires_at": 12345}), "expires_at"),
        (json!({}), "name"),
        (json!({"name": null}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "n".repeat(101)}), "name"),
        (json!({"name": 7}), "name"),
    ];
    for (body, field) in cases {
        let r = admin.post(TOKENS, body.clone()).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), [field], "{body}: {}", r.body);
        assert!(r.revision().is_none());
    }
    let r = admin.post(TOKENS, json!({"name": "", "expires_at": "2001-01-01T00:00:00Z"})).await;
    r.error(400, "ValidationError");
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(fields, ["expires_at", "name"], "every bad field is listed");
    admin.raw(Method::POST, TOKENS, "application/json", b"{".to_vec()).await.error(400, "ValidationError");
    admin.raw(Method::POST, TOKENS, "text/plain", b"{\"name\": \"x\"}".to_vec()).await.error(415, "UnsupportedMediaType");
    assert_eq!(admin.get(TOKENS).await.body["count"], 0, "nothing created");
    assert_eq!(server.revision().await, revision);

    // The limits themselves are accepted.
    let r = admin.post(TOKENS, json!({"name": "n".repeat(100), "expires_at": null})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let future = OffsetDateTime::now_utc() + time::Duration::days(30);
    let r = admin.post(TOKENS, json!({"name": "month", "expires_at": future.format(&Rfc3339).unwrap()})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let expires = ts(&r.body["expires_at"]);
    assert!((expires - future).abs() < time::Duration::seconds(1), "{expires} vs {future}");
    assert_works(&with_token(&server, r.body["token"].as_str().unwrap()), "admin").await;
}

#[tokio::test]
async fn other_users_tokens_are_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server.create_user(&admin, "alice", json!({})).await;
    let alice = server.login("alice", USER_PASSWORD).await;
    let (alice_pk, alice_secret) = create_token(&alice, "mine").await;
    let (admin_pk, admin_secret) = create_token(&admin, "admins").await;

    admin.delete(&format!("{TOKENS}{alice_pk}/")).await.error(404, "NotFound");
    alice.delete(&format!("{TOKENS}{admin_pk}/")).await.error(404, "NotFound");
    admin.delete(&format!("{TOKENS}0/")).await.error(404, "NotFound");
    admin.delete(&format!("{TOKENS}-1/")).await.error(404, "NotFound");
    assert_works(&with_token(&server, &alice_secret), "alice").await;
    assert_works(&with_token(&server, &admin_secret), "admin").await;

    // Each sees only their own.
    let a = list_tokens(&alice).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["pk"], alice_pk);
    let b = list_tokens(&admin).await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["pk"], admin_pk);
}

#[tokio::test]
async fn an_api_token_expires() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let soon = OffsetDateTime::now_utc() + time::Duration::milliseconds(1500);
    let r = admin.post(TOKENS, json!({"name": "short", "expires_at": soon.format(&Rfc3339).unwrap()})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let api = with_token(&server, r.body["token"].as_str().unwrap());
    assert_works(&api, "admin").await;
    assert_works(&api, "admin").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_refused(&api).await;
}

// ---------------------------------------------------------------------------------------------------------------
// token scopes (§11)
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_permissions_restrict_the_token() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post(TOKENS, json!({"name": "read-only", "permissions": ["users.read"]})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["permissions"], json!(["users.read"]));
    let listed = list_tokens(&admin).await;
    assert_eq!(listed[0]["permissions"], json!(["users.read"]));
    let ro = with_token(&server, r.body["token"].as_str().unwrap());
    assert_eq!(ro.get("/api/v1/users/").await.status, StatusCode::OK);
    let r = ro
        .post("/api/v1/users/", json!({"username": "x", "password": USER_PASSWORD, "email": "x@example.com", "groups": []}))
        .await;
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], "This method needs permission create on users.");
    admin.post(TOKENS, json!({"name": "bad", "permissions": ["no-such-thing"]})).await.error(400, "ValidationError");

    // A token's permissions are a subset of its owner's.
    server.create_user(&admin, "lena", json!({})).await;
    let lena = server.login("lena", USER_PASSWORD).await;
    lena.post(TOKENS, json!({"name": "escalate", "permissions": ["users.delete"]})).await.error(403, "PermissionDenied");
    assert!(list_tokens(&lena).await.is_empty());
}

/// A group conferring `permissions`, with `user` as its member; answers the group's pk.
async fn member_of(admin: &common::Client, name: &str, permissions: Value, user: i64) -> i64 {
    let r = admin.post("/api/v1/groups/", json!({"name": name, "permissions": permissions})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.body["pk"].as_i64().unwrap();
    let r = admin.patch(&format!("/api/v1/groups/{group}/assign-users/"), json!({"users": [user]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    group
}

/// A scoped token of `client`'s user: answers a client using it.
async fn scoped(server: &TestServer, client: &common::Client, permissions: Value) -> common::Client {
    let r = client.post(TOKENS, json!({"name": "scoped", "permissions": permissions})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    with_token(server, r.body["token"].as_str().unwrap())
}

async fn allowed(client: &common::Client, permission: &str) -> bool {
    let r = client.post("/api/v1/check/", json!({"permission": permission})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["allowed"].as_bool().unwrap()
}

/// The token acts with its scopes and its owner's current holdings both: on endpoints, in checks, bulk checks,
/// lookups and effective permissions about the caller; and losing a holding takes it from the token too.
#[tokio::test]
async fn a_scoped_token_acts_with_the_intersection_of_its_scopes_and_its_owners_holdings() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let nina = server.create_user(&admin, "nina", json!({})).await;
    let staff = member_of(&admin, "staff", json!({"users": ["full"], "groups": ["read"]}), nina).await;
    let session = server.login("nina", USER_PASSWORD).await;
    let token = scoped(&server, &session, json!(["users.read", "groups.read"])).await;

    assert_eq!(token.get("/api/v1/users/").await.status, StatusCode::OK);
    let new_user = json!({"username": "x", "password": USER_PASSWORD, "email": "x@example.com", "groups": []});
    token.post("/api/v1/users/", new_user.clone()).await.error(403, "PermissionDenied");
    assert!(allowed(&token, "users.read").await);
    assert!(allowed(&token, "users.access").await, "every action implies access");
    assert!(!allowed(&token, "users.update").await, "the owner holds it, the token does not carry it");
    assert!(allowed(&session, "users.update").await);
    let explained = token.post("/api/v1/check/", json!({"permission": "users.update", "explain": true})).await;
    explained.error(403, "PermissionDenied");

    let bulk = token
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read"}, {"permission": "users.delete"}]}))
        .await;
    assert_eq!(bulk.body["results"], json!([{"allowed": true}, {"allowed": false}]), "{}", bulk.body);
    let effective = token.get(&format!("/api/v1/users/{nina}/effective_permissions/")).await;
    assert_eq!(effective.body["global"], json!(["groups.read", "users.read"]), "{}", effective.body);
    let capabilities = token.get("/api/v1/active_user/capabilities/").await;
    assert_eq!(capabilities.body["global"], json!(["groups.read", "users.read"]), "{}", capabilities.body);
    let found = token.post("/api/v1/lookup/objects/", json!({"permission": "users.update", "model": "users"})).await;
    assert_eq!((found.body["all"].clone(), found.body["count"].clone()), (json!(false), json!(0)), "{}", found.body);
    let found = token.post("/api/v1/lookup/objects/", json!({"permission": "users.read", "model": "users"})).await;
    assert_eq!(found.body["all"], true, "{}", found.body);

    // The owner loses what the token carries: so does the token.
    let r = admin.patch(&format!("/api/v1/groups/{staff}/remove-users/"), json!({"users": [nina]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    token.get("/api/v1/users/").await.error(403, "PermissionDenied");
    assert!(!allowed(&token, "users.read").await);
}

/// Dominance counts what the token carries, not what its owner holds: a token scoped to group writes cannot put a
/// user into a group conferring more than its scopes.
#[tokio::test]
async fn a_scoped_token_cannot_confer_what_its_scopes_leave_out() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let omar = server.create_user(&admin, "omar", json!({})).await;
    let someone = server.create_user(&admin, "someone", json!({})).await;
    member_of(&admin, "managers", json!({"groups": ["full"], "users": ["full"], "roles": ["full"]}), omar).await;
    // Omar sees the groups below his team, and the users in it.
    let team = member_of(&admin, "team", json!({}), omar).await;
    let r = admin.patch(&format!("/api/v1/groups/{team}/assign-users/"), json!({"users": [someone]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let child = |name: &str, permissions: Value| json!({"name": name, "parent": team, "permissions": permissions});
    let strong = admin.post("/api/v1/groups/", child("strong", json!({"roles": ["full"]}))).await;
    let strong = strong.body["pk"].as_i64().unwrap();
    let weak = admin.post("/api/v1/groups/", child("weak", json!({"users": ["read"]}))).await;
    let weak = weak.body["pk"].as_i64().unwrap();
    let session = server.login("omar", USER_PASSWORD).await;
    let token = scoped(&server, &session, json!(["groups.full", "users.read"])).await;

    let assign = format!("/api/v1/groups/{strong}/assign-users/");
    token.patch(&assign, json!({"users": [someone]})).await.error(403, "PermissionDenied");
    let r = session.patch(&assign, json!({"users": [someone]})).await;
    assert_eq!(r.status, StatusCode::OK, "the owner holds roles.full: {}", r.body);
    let r = token.patch(&format!("/api/v1/groups/{weak}/assign-users/"), json!({"users": [someone]})).await;
    assert_eq!(r.status, StatusCode::OK, "within the token's scopes: {}", r.body);
}

/// A superuser's scoped token holds its scopes and none of the powers only superusers have.
#[tokio::test]
async fn a_superusers_scoped_token_is_no_superuser() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let token = scoped(&server, &admin, json!(["users.read"])).await;
    assert_eq!(token.get("/api/v1/users/").await.status, StatusCode::OK);
    let module = json!({"id": "reports"});
    token.post("/api/v1/modules/", module.clone()).await.error(403, "PermissionDenied");
    token.post("/api/v1/orgs/", json!({"name": "Other", "slug": "other"})).await.error(403, "PermissionDenied");
    assert!(!allowed(&token, "groups.read").await);
    assert!(allowed(&token, "users.read").await);
    let capabilities = token.get("/api/v1/active_user/capabilities/").await;
    assert_eq!(capabilities.body["global"], json!(["users.read"]), "{}", capabilities.body);
    let effective = token.get("/api/v1/users/1/effective_permissions/").await;
    assert_eq!((effective.body["superuser"].clone(), effective.body["global"].clone()), (Value::Null, json!(["users.read"])));
    // The same superuser's session and unscoped tokens are unaffected.
    assert_eq!(admin.post("/api/v1/modules/", module).await.status, StatusCode::CREATED);
}

/// Scopes are `"module.action"` names of registered modules and their actions; anything else is a 400 naming
/// `permissions`, and nothing is created.
#[tokio::test]
async fn token_scopes_are_validated() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for bad in [json!("users.read"), json!(["users"]), json!([1]), json!(["nosuchmodule.read"]), json!(["users.fly"])] {
        let r = admin.post(TOKENS, json!({"name": "bad", "permissions": bad})).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["permissions"], "{bad}: {}", r.body);
    }
    assert!(list_tokens(&admin).await.is_empty());
    let r = admin.post(TOKENS, json!({"name": "none", "permissions": []})).await;
    assert_eq!(r.body["permissions"], json!([]), "{}", r.body);
    let none = with_token(&server, r.body["token"].as_str().unwrap());
    assert_works(&none, "admin").await;
    none.get("/api/v1/users/").await.error(403, "PermissionDenied");
}
