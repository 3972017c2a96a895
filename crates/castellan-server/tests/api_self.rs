//! Self service: the active user, `users/me`, profile updates with avatars, and password changes
//! (API.md §3 "Self service", §10 "Users and self service"; seed 000 ActiveUserViewSet, seed 004 `/user/me`).

mod common;

use std::collections::BTreeSet;

use castellan_core::model::User;
use common::{Client, Resp, TestServer};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
const PW: &str = "Passw0rd!";

/// A real 1×1 RGBA PNG.
const TINY_PNG: [u8; 68] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0b, 0x49, 0x44, 0x41, 0x54, 0x78,
    0x9c, 0x63, 0x60, 0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01, 0x7a, 0x5e, 0xab, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A real 1×1 GIF.
const TINY_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

const AVATAR_MAX: usize = 2 * 1024 * 1024;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `2022-12-21T10:32:51.707174Z`.
fn is_timestamp(s: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == pattern.len()
        && s.chars().zip(pattern.chars()).all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// A non-superuser with a session.
async fn regular(server: &TestServer, admin: &Client, username: &str) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({})).await;
    (pk, server.login(username, PW).await)
}

async fn snapshot(server: &TestServer, pk: i64) -> (i64, User) {
    (server.revision().await, server.store.get_user(pk).await.unwrap())
}

/// Sends a multipart form with the client's bearer token.
async fn multipart(c: &Client, method: Method, path: &str, form: Form) -> Resp {
    let mut req = c.http.request(method, format!("{}{}", c.base, path)).multipart(form);
    if let Some(t) = &c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Client::read(req.send().await.unwrap()).await
}

/// GET of an absolute URL, answering status, content type and raw bytes.
async fn fetch(c: &Client, url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut req = c.http.get(url);
    if let Some(t) = &c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    (status, ct, r.bytes().await.unwrap().to_vec())
}

fn file(bytes: &[u8], name: &str, mime: &str) -> Part {
    Part::bytes(bytes.to_vec()).file_name(name.to_string()).mime_str(mime).unwrap()
}

async fn can_log_in(server: &TestServer, username: &str, password: &str) -> bool {
    let r = server.anon().post("/api/v1/auth/login/", json!({"username": username, "password": password})).await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("login answered {other}: {}", r.body),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading oneself
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn active_user_is_a_one_item_page_with_profile() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "bob", json!({"first_name": "Bob", "last_name": "Builder"})).await;
    let bob = server.login("bob", PW).await;
    for path in ["/api/v1/active_user/", "/api/v1/active_user", "/api/v1/active_user/?groups=true"] {
        let r = bob.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(keys(&r.body), set(&["count", "next", "previous", "results"]), "{path}");
        assert_eq!((&r.body["count"], &r.body["next"], &r.body["previous"]), (&json!(1), &Value::Null, &Value::Null));
        let results = r.body["results"].as_array().unwrap();
        assert_eq!(results.len(), 1);
        let me = &results[0];
        for key in ["pk", "username", "first_name", "last_name", "email", "date_joined", "last_login", "groups", "userprofile"] {
            assert!(me.get(key).is_some(), "{path}: {key} missing from {me}");
        }
        assert!(!me.to_string().contains("password"), "{me}");
        assert_eq!(me["pk"], pk);
        assert_eq!(me["username"], "bob");
        assert_eq!(me["first_name"], "Bob");
        assert_eq!(me["last_name"], "Builder");
        assert_eq!(me["email"], "bob@example.com");
        assert_eq!(me["groups"], json!([]));
        assert!(is_timestamp(me["date_joined"].as_str().unwrap()));
        assert!(is_timestamp(me["last_login"].as_str().expect("set by the login")));
        assert_eq!(me["userprofile"], json!({"pk": pk, "avatar": null, "phone_number": null}));
    }
    // Each caller sees only themselves.
    let r = admin.get("/api/v1/active_user/").await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["results"][0]["username"], "admin");
    assert_eq!(r.body["results"][0]["pk"], 1);
    // Reading changes nothing.
    let rev = server.revision().await;
    bob.get("/api/v1/active_user/").await;
    assert_eq!(server.revision().await, rev);
}

#[tokio::test]
async fn active_user_groups_are_pk_and_name() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = admin.post("/api/v1/groups/", json!({"name": "Sample Group"})).await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let gpk = g.body["pk"].as_i64().unwrap();
    server.create_user(&admin, "member", json!({"groups": [gpk]})).await;
    let member = server.login("member", PW).await;
    let r = member.get("/api/v1/active_user/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["results"][0]["groups"], json!([{"pk": gpk, "name": "Sample Group"}]), "seed 000 shape");
    let r = member.get("/api/v1/users/me/").await;
    assert_eq!(r.body["groups"], json!([{"pk": gpk, "name": "Sample Group"}]));
    let r = member.get("/api/v1/active_user/?groups=true").await;
    let group = &r.body["results"][0]["groups"][0];
    assert_eq!(group["pk"], gpk);
    assert_eq!(group["name"], "Sample Group");
    assert!(group["children"].is_array(), "groups=true adds children: {group}");
}

#[tokio::test]
async fn users_me_is_the_active_user_unpaged() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let paged = bob.get("/api/v1/active_user/").await;
    for path in ["/api/v1/users/me/", "/api/v1/users/me"] {
        let r = bob.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.body, paged.body["results"][0], "{path}");
        assert_eq!(r.body["pk"], pk);
        assert!(r.body.get("results").is_none() && r.body.get("count").is_none());
    }
    assert_eq!(admin.get("/api/v1/users/me/").await.body["username"], "admin");
    server.anon().get("/api/v1/users/me/").await.error(401, "AuthenticationRequired");
    server.anon().get("/api/v1/active_user/").await.error(401, "AuthenticationRequired");
    let forged = Client { token: Some("cs_forged".into()), ..server.anon() };
    forged.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    forged.get("/api/v1/active_user/").await.error(401, "AuthenticationFailed");
}

// ---------------------------------------------------------------------------------------------------------------
// Updating oneself
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn put_requires_username_and_patch_is_partial() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let snap = snapshot(&server, pk).await;
    for body in [json!({}), json!({"email": "x@example.com", "first_name": "x"}), json!({"username": null})] {
        let r = bob.put("/api/v1/active_user/", body.clone()).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["username"], "{body}: {}", r.body);
    }
    assert_eq!(snapshot(&server, pk).await, snap);

    // Seed 000's PUT body (avatar left out: it is a file, sent as multipart).
    let r = bob
        .put(
            "/api/v1/active_user/",
            json!({"username": "bob", "first_name": "foo", "last_name": "bar", "email": "qux@akinon.com",
                   "userprofile": {"phone_number": "+901231231212"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(snap.0 + 1));
    assert_eq!(r.body["pk"], pk);
    assert_eq!(
        (&r.body["first_name"], &r.body["last_name"], &r.body["email"]),
        (&json!("foo"), &json!("bar"), &json!("qux@akinon.com"))
    );
    assert_eq!(r.body["userprofile"], json!({"pk": pk, "avatar": null, "phone_number": "+901231231212"}));
    assert_eq!(bob.get("/api/v1/users/me/").await.body, r.body, "the answer is what GET shows");

    // Seed 000's PATCH body.
    let r = bob.patch("/api/v1/active_user/", json!({"first_name": "fred", "userprofile": {"phone_number": "+900000000"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["first_name"], "fred");
    assert_eq!(r.body["last_name"], "bar", "PATCH keeps what it does not name");
    assert_eq!(r.body["email"], "qux@akinon.com");
    assert_eq!(r.body["userprofile"]["phone_number"], "+900000000");
    let r = bob.patch("/api/v1/active_user/", json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["first_name"], "fred");
    let r = bob.patch("/api/v1/active_user/", json!({"username": "Bobby"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], "Bobby");
    assert!(can_log_in(&server, "bobby", PW).await);
    // The session survives a rename.
    assert_eq!(bob.get("/api/v1/users/me/").await.body["username"], "Bobby");
}

#[tokio::test]
async fn profile_updates_are_validated_and_refusals_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let snap = snapshot(&server, pk).await;
    let long = "n".repeat(151);
    let cases = [
        (json!({"email": "not-an-email"}), vec!["email"]),
        (json!({"username": "has space"}), vec!["username"]),
        (json!({"username": ""}), vec!["username"]),
        (json!({"first_name": long}), vec!["first_name"]),
        (json!({"last_name": 5}), vec!["last_name"]),
        (json!({"userprofile": "x"}), vec!["userprofile"]),
        (json!({"userprofile": {"avatar": "data:image/png;base64,AAAA"}}), vec!["userprofile.avatar"]),
        (json!({"email": "bad", "userprofile": {"phone_number": "12345"}}), vec!["email", "userprofile.phone_number"]),
    ];
    for (body, fields) in cases {
        for method in [Method::PATCH, Method::PUT] {
            let body = if method == Method::PUT && body.get("username").is_none() {
                let mut b = body.clone();
                b["username"] = json!("bob");
                b
            } else {
                body.clone()
            };
            let r = bob.send(method.clone(), "/api/v1/active_user/", Some(body.clone())).await;
            r.error(400, "ValidationError");
            let got: BTreeSet<String> = r.fields().into_iter().collect();
            assert_eq!(got, set(&fields), "{method} {body}: {}", r.body);
        }
    }
    // Taken usernames (in any case) are a conflict.
    let r = bob.patch("/api/v1/active_user/", json!({"username": "ADMIN"})).await;
    r.error(409, "Conflict");
    // Wrong content type, malformed JSON.
    let r = bob.raw(Method::PATCH, "/api/v1/active_user/", "text/plain", b"first_name=x".to_vec()).await;
    r.error(415, "UnsupportedMediaType");
    let r = bob.raw(Method::PATCH, "/api/v1/active_user/", "application/json", b"{\"first_name\":".to_vec()).await;
    r.error(400, "ValidationError");
    assert_eq!(snapshot(&server, pk).await, snap);
}

#[tokio::test]
async fn privileged_fields_cannot_be_set_through_self_service() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let r = bob
        .patch(
            "/api/v1/active_user/",
            json!({"is_superuser": true, "is_staff": true, "is_active": false, "org": 2, "groups": [1], "pk": 1}),
        )
        .await;
    assert!(r.status == StatusCode::OK || r.status.is_client_error(), "{}", r.body);
    let u = server.store.get_user(pk).await.unwrap();
    assert!(!u.is_superuser && !u.is_staff && u.is_active, "{u:?}");
    assert_eq!(u.org, 1);
    assert!(u.groups.is_empty());
    assert_eq!(server.store.get_user(1).await.unwrap().username, "admin");
    bob.get("/api/v1/users/").await.error(403, "PermissionDenied");
}

#[tokio::test]
async fn phone_numbers_are_e164() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    for good in ["+900000000", "+12345678", "+123456789012345"] {
        let r = bob.patch("/api/v1/active_user/", json!({"userprofile": {"phone_number": good}})).await;
        assert_eq!(r.status, StatusCode::OK, "{good}: {}", r.body);
        assert_eq!(r.body["userprofile"]["phone_number"], good);
        assert_eq!(server.store.get_user(pk).await.unwrap().phone_number.as_deref(), Some(good));
    }
    let snap = snapshot(&server, pk).await;
    for bad in ["12345", "900000000", "+1234567", "+1234567890123456", "+12 3456 7890", "+12345abc9", "", "++12345678", "+"] {
        let r = bob.patch("/api/v1/active_user/", json!({"userprofile": {"phone_number": bad}})).await;
        r.error(400, "ValidationError");
        let fields = r.fields();
        assert!(!fields.is_empty() && fields.iter().all(|f| f == "userprofile.phone_number"), "{bad:?}: {}", r.body);
    }
    let r = bob.patch("/api/v1/active_user/", json!({"userprofile": {"phone_number": 900000000}})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["userprofile.phone_number"]);
    // The same rule for multipart.
    let form = Form::new().text("userprofile.phone_number", "12345");
    let r = multipart(&bob, Method::PATCH, "/api/v1/active_user/", form).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["userprofile.phone_number"]);
    assert_eq!(snapshot(&server, pk).await, snap);
    // A part no field reads is refused by name, as in JSON.
    let form = Form::new().text("first_name", "Bo").text("nickname", "b");
    let r = multipart(&bob, Method::PATCH, "/api/v1/active_user/", form).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["nickname"]);
    assert_eq!(snapshot(&server, pk).await, snap);
    // null clears it.
    let r = bob.patch("/api/v1/active_user/", json!({"userprofile": {"phone_number": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["userprofile"]["phone_number"], Value::Null);
    assert_eq!(server.store.get_user(pk).await.unwrap().phone_number, None);
}

// ---------------------------------------------------------------------------------------------------------------
// Avatars
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn avatar_upload_serves_the_same_bytes_back() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let rev = server.revision().await;
    let form = Form::new().part("userprofile.avatar", file(&TINY_PNG, "me.png", "image/png")).text("first_name", "Pic");
    let r = multipart(&bob, Method::PATCH, "/api/v1/active_user/", form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    let url = format!("{}/api/v1/users/{pk}/avatar/", server.base);
    assert_eq!(r.body["userprofile"]["avatar"], url.as_str(), "an absolute URL");
    assert_eq!(r.body["first_name"], "Pic", "other multipart fields are taken too");
    assert_eq!(bob.get("/api/v1/active_user/").await.body["results"][0]["userprofile"]["avatar"], url.as_str());
    assert_eq!(bob.get("/api/v1/users/me/").await.body["userprofile"]["avatar"], url.as_str());
    let (status, ct, bytes) = fetch(&bob, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/png"));
    assert_eq!(bytes, TINY_PNG);
    assert!(server.store.get_user(pk).await.unwrap().has_avatar);

    // The `avatar` alias, with PUT (username required there too), and the type judged by content, not by the client.
    let form = Form::new().text("username", "bob").part("avatar", file(TINY_GIF, "me.png", "image/png"));
    let r = multipart(&bob, Method::PUT, "/api/v1/active_user/", form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["userprofile"]["avatar"], url.as_str());
    let (status, ct, bytes) = fetch(&bob, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/gif"));
    assert_eq!(bytes, TINY_GIF);
    // PUT as multipart still needs the username.
    let form = Form::new().part("avatar", file(&TINY_PNG, "me.png", "image/png"));
    let r = multipart(&bob, Method::PUT, "/api/v1/active_user/", form).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["username"]);
    let (_, ct, _) = fetch(&bob, &url).await;
    assert_eq!(ct.as_deref(), Some("image/gif"), "a refused PUT keeps the avatar");

    // Media types are case-insensitive: a hand-made multipart body under an upper-case content type.
    let mut raw = b"--XyZ\r\nContent-Disposition: form-data; name=\"first_name\"\r\n\r\nCased\r\n--XyZ\r\n".to_vec();
    raw.extend_from_slice(
        b"Content-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n",
    );
    raw.extend_from_slice(&TINY_PNG);
    raw.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = bob.raw(Method::PATCH, "/api/v1/active_user/", "Multipart/Form-Data; boundary=XyZ", raw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["first_name"], "Cased");
    let (_, ct, bytes) = fetch(&bob, &url).await;
    assert_eq!((ct.as_deref(), bytes.as_slice()), (Some("image/png"), &TINY_PNG[..]));

    // null removes it.
    let r = bob.patch("/api/v1/active_user/", json!({"userprofile": {"avatar": null}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["userprofile"]["avatar"], Value::Null);
    let (status, _, _) = fetch(&bob, &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!server.store.get_user(pk).await.unwrap().has_avatar);
}

#[tokio::test]
async fn avatar_must_be_an_image_by_content() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let snap = snapshot(&server, pk).await;
    let not_images: [(&str, &[u8]); 4] = [
        ("userprofile.avatar", b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
        ("avatar", b"just some text"),
        ("userprofile.avatar", b""),
        ("avatar", b"\x89PNG"),
    ];
    for (field, bytes) in not_images {
        let form = Form::new().part(field, file(bytes, "me.png", "image/png"));
        let r = multipart(&bob, Method::PATCH, "/api/v1/active_user/", form).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["userprofile.avatar"], "{field} {bytes:?}: {}", r.body);
    }
    assert_eq!(snapshot(&server, pk).await, snap);
    // Neither JSON nor multipart: 415.
    let r = bob.raw(Method::PATCH, "/api/v1/active_user/", "image/png", TINY_PNG.to_vec()).await;
    r.error(415, "UnsupportedMediaType");
    assert_eq!(snapshot(&server, pk).await, snap);
}

#[tokio::test]
async fn avatar_over_2_mib_is_413() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let snap = snapshot(&server, pk).await;
    let mut big = TINY_PNG.to_vec();
    big.resize(AVATAR_MAX + 1, 0);
    for field in ["userprofile.avatar", "avatar"] {
        let form = Form::new().part(field, file(&big, "big.png", "image/png"));
        let r = multipart(&bob, Method::PATCH, "/api/v1/active_user/", form).await;
        r.error(413, "PayloadTooLarge");
    }
    let mut huge = TINY_PNG.to_vec();
    huge.resize(3 * AVATAR_MAX, 0);
    let r = multipart(&bob, Method::PATCH, "/api/v1/active_user/", Form::new().part("avatar", file(&huge, "h.png", "image/png")))
        .await;
    r.error(413, "PayloadTooLarge");
    assert_eq!(snapshot(&server, pk).await, snap);
    // Exactly 2 MiB is allowed.
    big.truncate(AVATAR_MAX);
    let r =
        multipart(&bob, Method::PATCH, "/api/v1/active_user/", Form::new().part("avatar", file(&big, "max.png", "image/png")))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (status, _, bytes) = fetch(&bob, r.body["userprofile"]["avatar"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len(), AVATAR_MAX);
}

#[tokio::test]
async fn avatars_of_others_need_users_read() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (bob_pk, bob) = regular(&server, &admin, "bob").await;
    let (carol_pk, carol) = regular(&server, &admin, "carol").await;
    let r =
        multipart(&bob, Method::PATCH, "/api/v1/active_user/", Form::new().part("avatar", file(&TINY_PNG, "a.png", "image/png")))
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let path = format!("/api/v1/users/{bob_pk}/avatar/");
    let r = carol.get(&path).await;
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], "This method needs permission read on users.");
    // 403 is decided before any lookup: unknown users and users without avatars answer the same.
    carol.get("/api/v1/users/9999/avatar/").await.error(403, "PermissionDenied");
    carol.get("/api/v1/users/1/avatar/").await.error(403, "PermissionDenied");
    server.anon().get(&path).await.error(401, "AuthenticationRequired");
    for who in [&admin, &bob] {
        let (status, ct, bytes) = fetch(who, &format!("{}{path}", server.base)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("image/png"));
        assert_eq!(bytes, TINY_PNG);
    }
    // No avatar, or no user: 404.
    admin.get(&format!("/api/v1/users/{carol_pk}/avatar/")).await.error(404, "NotFound");
    carol.get(&format!("/api/v1/users/{carol_pk}/avatar/")).await.error(404, "NotFound");
    admin.get("/api/v1/users/9999/avatar/").await.error(404, "NotFound");
}

// ---------------------------------------------------------------------------------------------------------------
// Changing one's password
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn change_password_refusals_name_the_field_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let snap = snapshot(&server, pk).await;
    let path = "/api/v1/active_user/change_password/";

    let r = bob.put(path, json!({})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["old_password", "new_password"]);
    let r = bob.put(path, json!({"old_password": PW})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["new_password"]);

    let r = bob.put(path, json!({"old_password": "Wrong-pw1", "new_password": "N3w-Passw0rd"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["old_password"]);

    for weak in ["short1!", "nouppercase1!", "NoDigits!!", "NoSpecial123", "bob"] {
        let r = bob.put(path, json!({"old_password": PW, "new_password": weak})).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["new_password"], "{weak}: {}", r.body);
    }
    let r = bob.put(path, json!({"old_password": PW, "new_password": PW})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["new_password"], "same as current: {}", r.body);

    let r = bob.raw(Method::PUT, path, "text/plain", b"x".to_vec()).await;
    r.error(415, "UnsupportedMediaType");
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let r = bob.send(method.clone(), path, None).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    server
        .anon()
        .put(path, json!({"old_password": PW, "new_password": "N3w-Passw0rd"}))
        .await
        .error(401, "AuthenticationRequired");

    assert_eq!(snapshot(&server, pk).await, snap);
    assert!(can_log_in(&server, "bob", PW).await);
    assert_eq!(bob.get("/api/v1/users/me/").await.status, StatusCode::OK);

    // The new password may not equal the username.
    server.create_user(&admin, "Quinn.123", json!({})).await;
    let quinn = server.login("Quinn.123", PW).await;
    let r = quinn.put(path, json!({"old_password": PW, "new_password": "Quinn.123"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["new_password"]);
}

#[tokio::test]
async fn change_password_ends_other_sessions_only() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, bob) = regular(&server, &admin, "bob").await;
    let other = server.login("bob", PW).await;
    assert_eq!(other.get("/api/v1/users/me/").await.status, StatusCode::OK);
    let rev = server.revision().await;

    let r = bob.put("/api/v1/active_user/change_password/", json!({"old_password": PW, "new_password": "N3w-Passw0rd"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"detail": "Password changed."}), "never echoes a password");
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(server.revision().await, rev + 1);

    other.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    other.get("/api/v1/active_user/").await.error(401, "AuthenticationFailed");
    assert_eq!(bob.get("/api/v1/users/me/").await.status, StatusCode::OK, "the current session stays");
    assert!(!can_log_in(&server, "bob", PW).await, "the old password no longer works");
    assert!(can_log_in(&server, "bob", "N3w-Passw0rd").await);

    // History: the previous password, and the current one, are refused; a third one is fine.
    for again in [PW, "N3w-Passw0rd"] {
        let r =
            bob.put("/api/v1/active_user/change_password/", json!({"old_password": "N3w-Passw0rd", "new_password": again})).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["new_password"]);
    }
    let r = bob
        .put("/api/v1/active_user/change_password/", json!({"old_password": "N3w-Passw0rd", "new_password": "Th1rd-pass"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = bob.put("/api/v1/active_user/change_password/", json!({"old_password": "Th1rd-pass", "new_password": PW})).await;
    assert_eq!(r.status, StatusCode::OK, "the password from two changes ago is allowed again: {}", r.body);
    assert!(can_log_in(&server, "bob", PW).await);
    // The admin's session was never touched.
    assert_eq!(admin.get("/api/v1/users/").await.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------------------------
// What a non-superuser may call
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_superusers_reach_only_their_own_resources() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    for path in ["/api/v1/active_user/", "/api/v1/users/me/", "/api/v1/active_user/data/", "/api/v1/active_user/sessions/"] {
        let r = bob.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    assert_eq!(bob.patch("/api/v1/active_user/", json!({"first_name": "B"})).await.status, StatusCode::OK);
    assert_eq!(bob.put("/api/v1/active_user/data/k/", json!(1)).await.status, StatusCode::CREATED);

    let rev = server.revision().await;
    let before = server.store.get_user(pk).await.unwrap();
    let denied: [(Method, String, Option<Value>, &str); 8] = [
        (Method::GET, "/api/v1/users/".into(), None, "This method needs permission read on users."),
        (Method::GET, format!("/api/v1/users/{pk}/"), None, "This method needs permission read on users."),
        (
            Method::PATCH,
            format!("/api/v1/users/{pk}/"),
            Some(json!({"is_superuser": true})),
            "This method needs permission update on users.",
        ),
        (
            Method::PUT,
            format!("/api/v1/users/{pk}/"),
            Some(json!({"username": "bob", "email": "b@example.com", "groups": []})),
            "This method needs permission update on users.",
        ),
        (
            Method::POST,
            "/api/v1/users/".into(),
            Some(json!({"username": "x", "password": null, "email": "x@example.com", "groups": []})),
            "This method needs permission create on users.",
        ),
        (Method::DELETE, "/api/v1/users/1/".into(), None, "This method needs permission delete on users."),
        (Method::GET, "/api/v1/users/1/avatar/".into(), None, "This method needs permission read on users."),
        (Method::GET, "/api/v1/groups/".into(), None, "This method needs permission read on groups."),
    ];
    for (method, path, body, detail) in denied {
        let r = bob.send(method.clone(), &path, body).await;
        r.error(403, "PermissionDenied");
        assert_eq!(r.body["detail"], detail, "{method} {path}");
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(server.store.get_user(pk).await.unwrap(), before);
}
