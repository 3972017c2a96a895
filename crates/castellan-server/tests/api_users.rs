//! Users CRUD and listing (API.md §1, §3, §10, §11; seed 000 UserViewSet, seed 004 list parameters).

mod common;

use std::collections::BTreeSet;

use castellan_core::model::{NewUser, User};
use castellan_store::WriteCtx;
use common::{ADMIN_PASSWORD, Client, Resp, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password `TestServer::create_user` gives every user.
const PW: &str = "Passw0rd!";

/// `2022-12-21T10:32:51.707174Z`: RFC 3339 UTC with exactly six fractional digits.
fn is_timestamp(s: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == pattern.len()
        && s.chars().zip(pattern.chars()).all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// Seed 000's user keys plus `description` and `org` (API.md §3).
fn user_keys() -> BTreeSet<String> {
    [
        "pk",
        "username",
        "first_name",
        "last_name",
        "email",
        "is_staff",
        "is_active",
        "date_joined",
        "last_login",
        "is_superuser",
        "groups",
        "description",
        "org",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Merges `extra` into a JSON object.
fn with(mut body: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// A valid creation body for `username`.
fn new_user(username: &str) -> Value {
    json!({"username": username, "password": "Bar123*!", "email": format!("{username}@example.com"), "groups": []})
}

/// Creates a user without a password (no hashing: fast) through the API and returns its representation.
async fn quick_user(admin: &Client, username: &str, extra: Value) -> Value {
    let body =
        with(json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": []}), extra);
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// A non-superuser with a session.
async fn regular(server: &TestServer, admin: &Client, username: &str) -> (i64, Client) {
    let pk = server.create_user(admin, username, json!({})).await;
    (pk, server.login(username, PW).await)
}

/// The revision and the stored user, to prove a refused request changed nothing.
async fn snapshot(server: &TestServer, pk: i64) -> (i64, User) {
    (server.revision().await, server.store.get_user(pk).await.unwrap())
}

/// GET of an absolute URL (a `next`/`previous` link) with the client's credentials.
async fn get_url(c: &Client, url: &str) -> Resp {
    let mut req = c.http.get(url);
    if let Some(t) = &c.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    Client::read(req.send().await.unwrap()).await
}

fn usernames(r: &Resp) -> Vec<String> {
    r.body["results"].as_array().expect("results").iter().map(|u| u["username"].as_str().unwrap().to_string()).collect()
}

fn pks(r: &Resp) -> Vec<i64> {
    r.body["results"].as_array().expect("results").iter().map(|u| u["pk"].as_i64().unwrap()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Whether anonymous login with these credentials succeeds.
async fn can_log_in(server: &TestServer, username: &str, password: &str) -> bool {
    let r = server.anon().post("/api/v1/auth/login/", json!({"username": username, "password": password})).await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => {
            r.error(401, "AuthenticationFailed");
            false
        }
        other => panic!("login answered {other}: {}", r.body),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_lists_every_missing_required_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (rev, users) = (server.revision().await, server.store.count_users().await.unwrap());

    let r = admin.post("/api/v1/users/", json!({})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.body["detail"], "The given data was invalid.");
    assert_eq!(r.fields(), ["username", "password", "email", "groups"]);
    for e in r.body["errors"].as_array().unwrap() {
        assert_eq!(e["message"], "This field is required.", "{e}");
    }

    for missing in ["username", "password", "email", "groups"] {
        let mut body = new_user("complete");
        body.as_object_mut().unwrap().remove(missing);
        let r = admin.post("/api/v1/users/", body).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), [missing], "missing {missing}: {}", r.body);
    }
    // Only optional fields given: the four required ones are still listed.
    let r = admin.post("/api/v1/users/", json!({"first_name": "x", "is_staff": true})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["username", "password", "email", "groups"]);

    assert_eq!(server.revision().await, rev, "a refused create advanced the revision");
    assert_eq!(server.store.count_users().await.unwrap(), users);
}

#[tokio::test]
async fn create_answers_seed_shape_and_revision() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = server.revision().await;

    // Seed 000's request, verbatim (groups empty: no group exists yet).
    let r = admin
        .post("/api/v1/users/", json!({"username": "foo", "password": "Bar123*!", "email": "baz@akinon.com", "groups": []}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(keys(&r.body), user_keys(), "{}", r.body);
    let u = &r.body;
    assert!(u["pk"].as_i64().unwrap() > 1);
    assert_eq!(u["username"], "foo");
    assert_eq!(u["first_name"], "");
    assert_eq!(u["last_name"], "");
    assert_eq!(u["email"], "baz@akinon.com");
    assert_eq!(u["description"], "");
    assert_eq!(u["is_staff"], false);
    assert_eq!(u["is_active"], true);
    assert_eq!(u["is_superuser"], false);
    assert_eq!(u["last_login"], Value::Null);
    assert_eq!(u["groups"], json!([]));
    assert_eq!(u["org"], 1, "an object created without org belongs to the creator's org");
    assert!(is_timestamp(u["date_joined"].as_str().unwrap()), "date_joined {}", u["date_joined"]);
    let text = u.to_string();
    assert!(!text.contains("Bar123") && !text.contains("argon2") && !text.contains("password"), "{text}");

    assert_eq!(r.revision(), Some(before + 1), "X-Revision");
    assert_eq!(server.revision().await, before + 1);

    let pk = u["pk"].as_i64().unwrap();
    let got = admin.get(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, r.body, "GET returns what POST answered");
    assert!(got.revision().is_none(), "reads carry no X-Revision");

    // The password works; last_login is then set, in the same format.
    assert!(can_log_in(&server, "foo", "Bar123*!").await);
    let got = admin.get(&format!("/api/v1/users/{pk}/")).await;
    assert!(is_timestamp(got.body["last_login"].as_str().expect("last_login set")), "{}", got.body);

    // Optional fields are taken.
    let r = admin
        .post(
            "/api/v1/users/",
            with(
                new_user("opt"),
                json!({"first_name": "Very", "last_name": "New", "description": "d", "is_active": false, "is_staff": true, "is_superuser": true}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (&r.body["first_name"], &r.body["last_name"], &r.body["description"]),
        (&json!("Very"), &json!("New"), &json!("d"))
    );
    assert_eq!((&r.body["is_active"], &r.body["is_staff"], &r.body["is_superuser"]), (&json!(false), &json!(true), &json!(true)));
    assert_eq!(r.revision(), Some(before + 2));
}

#[tokio::test]
async fn null_password_creates_an_account_that_cannot_log_in() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin
        .post("/api/v1/users/", json!({"username": "svc", "password": null, "email": "svc@example.com", "groups": []}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let pk = r.body["pk"].as_i64().unwrap();
    assert!(!server.store.get_user(pk).await.unwrap().has_password);
    for guess in ["", "null", "None", "Passw0rd!"] {
        assert!(!can_log_in(&server, "svc", guess).await, "svc logged in with {guess:?}");
    }
    // Leaving the field out is still 400.
    let r = admin.post("/api/v1/users/", json!({"username": "svc2", "email": "svc2@example.com", "groups": []})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["password"]);
    // A password can be given later, and then works.
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "Later123!"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(can_log_in(&server, "svc", "Later123!").await);
}

#[tokio::test]
async fn password_rule_failures_name_the_password_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (rev, users) = (server.revision().await, server.store.count_users().await.unwrap());
    let cases = [
        ("short", "Ba1*xyz", "8 characters"),
        ("upper", "bar123*!", "upper-case"),
        ("digit", "Barbaz*!", "digit"),
        ("special", "Barbaz123", "special"),
        ("empty", "", "8 characters"),
    ];
    for (name, password, hint) in cases {
        let r = admin.post("/api/v1/users/", with(new_user(name), json!({"password": password}))).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["password"], "{name}: {}", r.body);
        let message = r.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(hint), "{name}: {message}");
        assert!(!r.body.to_string().contains(password) || password.is_empty(), "the password is echoed: {}", r.body);
    }
    // Equal to the username (which itself satisfies the composition rules), in any case.
    for password in ["User.123", "USER.123", "user.123"] {
        let r = admin
            .post("/api/v1/users/", json!({"username": "User.123", "password": password, "email": "u@example.com", "groups": []}))
            .await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["password"], "{}", r.body);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("username"), "{}", r.body);
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(server.store.count_users().await.unwrap(), users);
    // The same rule on PATCH.
    let pk = server.create_user(&admin, "pat", json!({})).await;
    let snap = snapshot(&server, pk).await;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "nouppercase1!"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["password"]);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": null})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["password"]);
    assert_eq!(snapshot(&server, pk).await, snap);
    assert!(can_log_in(&server, "pat", PW).await);
}

#[tokio::test]
async fn emails_are_validated() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    for bad in ["no-at", "a@b", "a b@example.com", "@example.com", "a@@example.com", "", "a@-example.com"] {
        let r = admin.post("/api/v1/users/", with(new_user("mail"), json!({"email": bad}))).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["email"], "{bad:?}: {}", r.body);
    }
    let r = admin.post("/api/v1/users/", with(new_user("mail"), json!({"email": null}))).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["email"]);
    assert_eq!(server.revision().await, rev);
    let r = admin.post("/api/v1/users/", with(new_user("mail"), json!({"email": "First.Last+tag@sub.example.org"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["email"], "First.Last+tag@sub.example.org");
    // PATCH validates too.
    let pk = r.body["pk"].as_i64().unwrap();
    let snap = snapshot(&server, pk).await;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"email": "nope"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["email"]);
    assert_eq!(snapshot(&server, pk).await, snap);
}

#[tokio::test]
async fn usernames_are_checked_for_charset_and_length() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    let too_long = "a".repeat(151);
    for bad in ["has space", "semi;colon", "slash/y", "", "quote'", "ümlaut!", too_long.as_str()] {
        let r = admin.post("/api/v1/users/", with(new_user("x"), json!({"username": bad}))).await;
        r.error(400, "ValidationError");
        assert!(r.fields().iter().all(|f| f == "username") && !r.fields().is_empty(), "{bad:?}: {}", r.body);
    }
    assert_eq!(server.revision().await, rev);
    let longest = "b".repeat(150);
    for good in ["foo.bar@x+y-z_1", longest.as_str()] {
        let r = admin.post("/api/v1/users/", with(new_user("x"), json!({"username": good}))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{good}: {}", r.body);
        assert_eq!(r.body["username"], good);
    }
}

#[tokio::test]
async fn wrong_types_are_400_naming_each_field() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    let cases = [
        (json!({"groups": "x"}), "groups"),
        (json!({"groups": ["x"]}), "groups"),
        (json!({"groups": [0]}), "groups"),
        (json!({"groups": null}), "groups"),
        (json!({"is_active": "yes"}), "is_active"),
        (json!({"is_staff": 1}), "is_staff"),
        (json!({"is_superuser": "true"}), "is_superuser"),
        (json!({"username": 5}), "username"),
        (json!({"email": ["a@b.co"]}), "email"),
        (json!({"first_name": {"x": 1}}), "first_name"),
        (json!({"password": 12345678}), "password"),
        (json!({"org": "1"}), "org"),
    ];
    for (extra, field) in cases {
        let r = admin.post("/api/v1/users/", with(new_user("typed"), extra.clone())).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), [field], "{extra}: {}", r.body);
    }
    // Several at once: every bad field is listed.
    let r =
        admin.post("/api/v1/users/", with(new_user("typed"), json!({"groups": "x", "is_active": "yes", "username": 5}))).await;
    r.error(400, "ValidationError");
    let fields: BTreeSet<String> = r.fields().into_iter().collect();
    assert_eq!(fields, ["groups", "is_active", "username"].into_iter().map(String::from).collect(), "{}", r.body);
    // A body that is not an object.
    for body in [json!([]), json!("x"), json!(null), json!(1)] {
        let r = admin.post("/api/v1/users/", body.clone()).await;
        r.error(400, "ValidationError");
    }
    assert_eq!(server.revision().await, rev);
}

#[tokio::test]
async fn unknown_group_or_org_is_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (rev, users) = (server.revision().await, server.store.count_users().await.unwrap());
    let r = admin.post("/api/v1/users/", with(new_user("grp"), json!({"groups": [999]}))).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["groups"], "{}", r.body);
    let r = admin.post("/api/v1/users/", with(new_user("grp"), json!({"org": 999}))).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["org"], "{}", r.body);
    assert_eq!(server.revision().await, rev);
    assert_eq!(server.store.count_users().await.unwrap(), users);
    // On PATCH and PUT as well, leaving the user as it was.
    let pk = server.create_user(&admin, "member", json!({})).await;
    let snap = snapshot(&server, pk).await;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"groups": [999], "first_name": "changed"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["groups"]);
    let r =
        admin.put(&format!("/api/v1/users/{pk}/"), json!({"username": "member", "email": "m@example.com", "groups": [42]})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["groups"]);
    assert_eq!(snapshot(&server, pk).await, snap);
}

#[tokio::test]
async fn every_bad_field_is_listed_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    // A rule failure of the password and an unknown group next to a malformed email: all three are named.
    let r = admin
        .post("/api/v1/users/", json!({"username": "many", "password": "weak", "email": "not-an-email", "groups": [999]}))
        .await;
    r.error(400, "ValidationError");
    let fields: BTreeSet<String> = r.fields().into_iter().collect();
    assert_eq!(fields, ["email", "groups", "password"].into_iter().map(String::from).collect(), "{}", r.body);
    // Password rule and unknown group, everything else valid.
    let r = admin
        .post("/api/v1/users/", json!({"username": "many", "password": "weak", "email": "m@example.com", "groups": [999]}))
        .await;
    r.error(400, "ValidationError");
    let fields: BTreeSet<String> = r.fields().into_iter().collect();
    assert_eq!(fields, ["groups", "password"].into_iter().map(String::from).collect(), "{}", r.body);
    assert_eq!(server.revision().await, rev);
}

#[tokio::test]
async fn duplicate_username_in_other_case_is_409() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    server.create_user(&admin, "Carol", json!({})).await;
    server.create_user(&admin, "Élodie", json!({"email": "elodie@example.com"})).await;
    let (rev, users) = (server.revision().await, server.store.count_users().await.unwrap());
    for dup in ["carol", "CAROL", "Carol", "ADMIN", "élodie", "ÉLODIE"] {
        let r = admin.post("/api/v1/users/", with(new_user(dup), json!({"email": "dup@example.com"}))).await;
        r.error(409, "Conflict");
        assert!(r.body["detail"].as_str().unwrap().contains("username"), "{}", r.body);
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(server.store.count_users().await.unwrap(), users);
    // Renaming onto a taken name is refused too; renaming to another case of one's own name is fine.
    let pk = server.create_user(&admin, "dave", json!({})).await;
    let snap = snapshot(&server, pk).await;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"username": "cAROL"})).await;
    r.error(409, "Conflict");
    assert_eq!(snapshot(&server, pk).await, snap);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"username": "Dave"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["username"], "Dave");
    assert!(can_log_in(&server, "DAVE", PW).await, "logins are case-insensitive");
}

#[tokio::test]
async fn x_revision_increments_by_one_per_write() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let mut rev = server.revision().await;
    let r = admin.post("/api/v1/users/", new_user("rev")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.revision(), Some(rev + 1));
    rev += 1;
    let pk = r.body["pk"].as_i64().unwrap();
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"first_name": "R"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.revision(), Some(rev + 1));
    rev += 1;
    let r =
        admin.put(&format!("/api/v1/users/{pk}/"), json!({"username": "rev", "email": "rev@example.org", "groups": []})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    rev += 1;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "An0ther-pw"})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.revision(), Some(rev + 1), "a password change is one write");
    rev += 1;
    let r = admin.delete(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.revision(), Some(rev + 1));
    rev += 1;
    assert_eq!(server.revision().await, rev);
    // Each write is in the change log at its revision.
    let log = server.store.changes(0, 1000).await.unwrap();
    let user_log: Vec<_> = log.iter().filter(|c| c.target_type == "users" && c.target_pk == pk.to_string()).collect();
    assert_eq!(
        user_log.iter().map(|c| c.action.as_str()).collect::<Vec<_>>(),
        ["create", "update", "update", "update", "delete"]
    );
    assert_eq!(user_log.iter().map(|c| c.revision.unwrap()).collect::<Vec<_>>(), (rev - 4..=rev).collect::<Vec<_>>());
    assert!(user_log.iter().all(|c| !c.changes.to_string().contains("An0ther") && !c.changes.to_string().contains("argon2")));
}

// ---------------------------------------------------------------------------------------------------------------
// Read, replace, patch, delete
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_one_and_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let created = admin.post("/api/v1/users/", with(new_user("one"), json!({"first_name": "bar"}))).await.body;
    let pk = created["pk"].as_i64().unwrap();
    for path in [format!("/api/v1/users/{pk}/"), format!("/api/v1/users/{pk}")] {
        let r = admin.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, created);
    }
    let admin_self = admin.get("/api/v1/users/1/").await;
    assert_eq!(admin_self.body["username"], "admin");
    assert_eq!(admin_self.body["is_superuser"], true);
    for bad in ["999", "0", "-1", "abc", "1.5", "1e3", "%20", "99999999999999999999999"] {
        let r = admin.get(&format!("/api/v1/users/{bad}/")).await;
        r.error(404, "NotFound");
        assert_eq!(r.body["detail"], "Not found.", "{bad}");
        assert_eq!(r.body["errors"], json!([]));
    }
    for method in [Method::PUT, Method::PATCH] {
        let r = admin.send(method, "/api/v1/users/999/", Some(json!({"first_name": "x"}))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    let r = admin
        .send(Method::PUT, "/api/v1/users/999/", Some(json!({"username": "x", "email": "x@example.com", "groups": []})))
        .await;
    r.error(404, "NotFound");
    admin.delete("/api/v1/users/abc/").await.error(404, "NotFound");
}

#[tokio::test]
async fn put_requires_username_email_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "putter", json!({"first_name": "F", "last_name": "L"})).await;
    let snap = snapshot(&server, pk).await;
    let r = admin.put(&format!("/api/v1/users/{pk}/"), json!({"first_name": "qux"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["username", "email", "groups"]);
    let r = admin.put(&format!("/api/v1/users/{pk}/"), json!({"username": "putter", "email": "p@example.com"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["groups"]);
    assert_eq!(snapshot(&server, pk).await, snap);

    // Seed 000's PUT body (password optional on PUT).
    let r = admin
        .put(
            &format!("/api/v1/users/{pk}/"),
            json!({"username": "foo", "first_name": "qux", "password": "Bar123*!", "email": "baz@akinon.com", "groups": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keys(&r.body), user_keys());
    assert_eq!(
        (&r.body["username"], &r.body["first_name"], &r.body["email"]),
        (&json!("foo"), &json!("qux"), &json!("baz@akinon.com"))
    );
    assert_eq!(r.body["pk"], pk);
    assert_eq!(r.body["date_joined"].as_str(), Some(api_timestamp(&snap.1).as_str()), "date_joined never changes");
    assert!(can_log_in(&server, "foo", "Bar123*!").await);
    assert!(!can_log_in(&server, "putter", PW).await);
    let r = admin.put(&format!("/api/v1/users/{pk}/"), json!({"username": "foo", "email": "baz@akinon.com", "groups": []})).await;
    assert_eq!(r.status, StatusCode::OK, "PUT without password: {}", r.body);
    assert!(can_log_in(&server, "foo", "Bar123*!").await, "a PUT without password keeps it");
}

/// The API rendering of a stored user's join time.
fn api_timestamp(u: &User) -> String {
    let t = u.date_joined.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[tokio::test]
async fn patch_changes_only_given_fields() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let created = admin
        .post("/api/v1/users/", with(new_user("patchy"), json!({"first_name": "A", "last_name": "B", "description": "C"})))
        .await
        .body;
    let pk = created["pk"].as_i64().unwrap();
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"first_name": "Very Very New"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut expected = created.clone();
    expected["first_name"] = json!("Very Very New");
    assert_eq!(r.body, expected);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_staff": true, "description": ""})).await;
    expected["is_staff"] = json!(true);
    expected["description"] = json!("");
    assert_eq!(r.body, expected);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, expected);
    assert_eq!(admin.get(&format!("/api/v1/users/{pk}/")).await.body, expected);
    assert!(can_log_in(&server, "patchy", "Bar123*!").await, "PATCH without password keeps it");
    // The org of a user cannot move.
    let snap = snapshot(&server, pk).await;
    let (org, _) = server.store.create_org(&WriteCtx::default(), "Other", "other", "").await.unwrap();
    let snap = (snap.0 + 1, snap.1);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"org": org.pk})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["org"]);
    assert_eq!(snapshot(&server, pk).await, snap);
}

#[tokio::test]
async fn password_history_refuses_the_current_and_the_previous_password() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let pk = server.create_user(&admin, "hist", json!({})).await; // current: PW
    let path = format!("/api/v1/users/{pk}/");
    let refuse = |r: Resp| {
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["password"], "{}", r.body);
        assert!(r.body["errors"][0]["message"].as_str().unwrap().contains("differ"), "{}", r.body);
    };

    let snap = snapshot(&server, pk).await;
    refuse(admin.patch(&path, json!({"password": PW})).await);
    assert_eq!(snapshot(&server, pk).await, snap);
    let r = admin.patch(&path, json!({"password": "Second-pw2"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    refuse(admin.patch(&path, json!({"password": "Second-pw2"})).await); // the current one
    refuse(admin.patch(&path, json!({"password": PW})).await); // the one before
    refuse(admin.put(&path, json!({"username": "hist", "email": "hist@example.com", "groups": [], "password": PW})).await);
    let r = admin.patch(&path, json!({"password": "Third-pw3"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    refuse(admin.patch(&path, json!({"password": "Second-pw2"})).await);
    // The first password is now third in line: allowed again.
    let r = admin.patch(&path, json!({"password": PW})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(can_log_in(&server, "hist", PW).await);
    assert!(!can_log_in(&server, "hist", "Third-pw3").await);
}

#[tokio::test]
async fn password_set_by_an_admin_ends_the_targets_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    assert_eq!(bob.get("/api/v1/users/me/").await.status, StatusCode::OK);
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "Reset-123"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    bob.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    assert!(!can_log_in(&server, "bob", PW).await);
    assert!(can_log_in(&server, "bob", "Reset-123").await);
    // The admin's own session is untouched.
    assert_eq!(admin.get("/api/v1/users/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn deactivating_a_user_ends_their_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "bob").await;
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["is_active"], false);
    bob.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    assert!(!can_log_in(&server, "bob", PW).await, "inactive users cannot log in");
    let r = admin.patch(&format!("/api/v1/users/{pk}/"), json!({"is_active": true})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(can_log_in(&server, "bob", PW).await);
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (pk, bob) = regular(&server, &admin, "gone").await;
    let rev = server.revision().await;
    let r = admin.delete(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null, "204 has no body");
    assert_eq!(r.revision(), Some(rev + 1));
    admin.get(&format!("/api/v1/users/{pk}/")).await.error(404, "NotFound");
    let r = admin.delete(&format!("/api/v1/users/{pk}/")).await;
    r.error(404, "NotFound");
    assert_eq!(server.revision().await, rev + 1, "a refused delete changes nothing");
    assert!(server.store.get_user(pk).await.is_err());
    bob.get("/api/v1/users/me/").await.error(401, "AuthenticationFailed");
    assert!(!can_log_in(&server, "gone", PW).await);
    // Primary keys are never reused.
    let again = server.create_user(&admin, "gone", json!({})).await;
    assert!(again > pk);
}

#[tokio::test]
async fn nobody_deletes_or_deactivates_themselves() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let snap = snapshot(&server, 1).await;
    let r = admin.delete("/api/v1/users/1/").await;
    r.error(403, "PermissionDenied");
    let r = admin.patch("/api/v1/users/1/", json!({"is_active": false})).await;
    r.error(403, "PermissionDenied");
    let r = admin
        .put(
            "/api/v1/users/1/",
            json!({"username": "admin", "email": "admin@localhost.localdomain", "groups": [], "is_active": false}),
        )
        .await;
    r.error(403, "PermissionDenied");
    let r = admin.patch("/api/v1/users/1/", json!({"is_active": false, "first_name": "sneaky"})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(snapshot(&server, 1).await, snap);
    assert_eq!(admin.get("/api/v1/users/").await.status, StatusCode::OK, "still logged in");
    // Setting is_active to its current value is not deactivation.
    let r = admin.patch("/api/v1/users/1/", json!({"is_active": true, "first_name": "Ad"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn last_active_superuser_cannot_give_up_the_role() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let snap = snapshot(&server, 1).await;
    let r = admin.patch("/api/v1/users/1/", json!({"is_superuser": false})).await;
    r.error(409, "Conflict");
    assert_eq!(snapshot(&server, 1).await, snap);
    // An inactive superuser does not count.
    server.create_user(&admin, "dormant", json!({"is_superuser": true, "is_active": false})).await;
    let snap = snapshot(&server, 1).await;
    let r = admin.patch("/api/v1/users/1/", json!({"is_superuser": false})).await;
    r.error(409, "Conflict");
    let r = admin
        .put("/api/v1/users/1/", json!({"username": "admin", "email": "a@example.com", "groups": [], "is_superuser": false}))
        .await;
    r.error(409, "Conflict");
    assert_eq!(snapshot(&server, 1).await, snap);
    // With another active superuser, giving it up works; then that one is the last.
    let root2 = server.create_user(&admin, "root2", json!({"is_superuser": true})).await;
    let r = admin.patch("/api/v1/users/1/", json!({"is_superuser": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["is_superuser"], false);
    let root = server.login("root2", PW).await;
    let snap = snapshot(&server, root2).await;
    root.patch(&format!("/api/v1/users/{root2}/"), json!({"is_superuser": false})).await.error(409, "Conflict");
    assert_eq!(snapshot(&server, root2).await, snap);
    // The former superuser has lost access to the users module.
    admin.get("/api/v1/users/").await.error(403, "PermissionDenied");
}

// ---------------------------------------------------------------------------------------------------------------
// Who may call
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_superusers_get_403_naming_the_permission() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (bob_pk, bob) = regular(&server, &admin, "bob").await;
    let target = server.create_user(&admin, "target", json!({})).await;
    let (rev, target_before, bob_before, users) = (
        server.revision().await,
        server.store.get_user(target).await.unwrap(),
        server.store.get_user(bob_pk).await.unwrap(),
        server.store.count_users().await.unwrap(),
    );
    let need = |action: &str| format!("This method needs permission {action} on users.");
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v1/users/".into(), None, "read"),
        (Method::GET, "/api/v1/users".into(), None, "read"),
        (Method::GET, "/api/v1/users/?search=adm".into(), None, "read"),
        (Method::POST, "/api/v1/users/".into(), Some(new_user("sneak")), "create"),
        (Method::GET, format!("/api/v1/users/{target}/"), None, "read"),
        (Method::GET, format!("/api/v1/users/{bob_pk}/"), None, "read"),
        (Method::GET, "/api/v1/users/9999/".into(), None, "read"),
        (Method::GET, "/api/v1/users/abc/".into(), None, "read"),
        (
            Method::PUT,
            format!("/api/v1/users/{target}/"),
            Some(json!({"username": "t", "email": "t@example.com", "groups": []})),
            "update",
        ),
        (Method::PATCH, format!("/api/v1/users/{target}/"), Some(json!({"first_name": "x"})), "update"),
        (Method::PATCH, format!("/api/v1/users/{bob_pk}/"), Some(json!({"is_superuser": true})), "update"),
        (Method::PATCH, "/api/v1/users/9999/".into(), Some(json!({"first_name": "x"})), "update"),
        (Method::DELETE, format!("/api/v1/users/{target}/"), None, "delete"),
        (Method::DELETE, "/api/v1/users/1/".into(), None, "delete"),
    ];
    for (method, path, body, action) in &cases {
        let r = bob.send(method.clone(), path, body.clone()).await;
        r.error(403, "PermissionDenied");
        assert!(r.revision().is_none(), "a refused request carries no X-Revision");
        assert_eq!(r.body["detail"], need(action), "{method} {path}");
        assert_eq!(r.body["message"], need(action));
    }
    // Without credentials: 401 before anything else; with a bad token: 401 AuthenticationFailed.
    let anon = server.anon();
    let forged = Client { token: Some("cs_not-a-real-token".into()), ..server.anon() };
    for (method, path, body, _) in &cases {
        let r = anon.send(method.clone(), path, body.clone()).await;
        r.error(401, "AuthenticationRequired");
        let r = forged.send(method.clone(), path, body.clone()).await;
        r.error(401, "AuthenticationFailed");
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(server.store.get_user(target).await.unwrap(), target_before);
    assert_eq!(server.store.get_user(bob_pk).await.unwrap(), bob_before);
    assert_eq!(server.store.count_users().await.unwrap(), users);
}

// ---------------------------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_is_a_drf_envelope_with_default_page_size_and_working_links() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for i in 0..54 {
        quick_user(&admin, &format!("u{i:02}"), json!({})).await;
    }
    let r = admin.get("/api/v1/users/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(keys(&r.body), ["count", "next", "previous", "results"].into_iter().map(String::from).collect());
    assert_eq!(r.body["count"], 55);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 50, "default page size");
    assert_eq!(r.body["previous"], Value::Null);
    for u in r.body["results"].as_array().unwrap() {
        assert_eq!(keys(u), user_keys());
    }
    let first_page = pks(&r);
    assert_eq!(first_page, (1..=50).collect::<Vec<_>>(), "default order is by pk");
    let next = r.body["next"].as_str().expect("next link").to_string();
    assert!(next.starts_with(&format!("{}/api/v1/users", server.base)), "absolute: {next}");
    let r2 = get_url(&admin, &next).await;
    assert_eq!(r2.status, StatusCode::OK, "{next}: {}", r2.body);
    assert_eq!(r2.body["count"], 55);
    assert_eq!(pks(&r2), (51..=55).collect::<Vec<_>>());
    assert_eq!(r2.body["next"], Value::Null);
    let previous = r2.body["previous"].as_str().expect("previous link").to_string();
    assert!(previous.starts_with(&server.base), "absolute: {previous}");
    let r1 = get_url(&admin, &previous).await;
    assert_eq!(r1.status, StatusCode::OK);
    assert_eq!(pks(&r1), first_page);

    // Smaller pages keep filters and page size in links.
    let r = admin.get("/api/v1/users/?page_size=20&is_active=true&ordering=-username&page=2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 20);
    let (next, previous) = (r.body["next"].as_str().unwrap().to_string(), r.body["previous"].as_str().unwrap().to_string());
    for link in [&next, &previous] {
        assert!(
            link.contains("page_size=20") && link.contains("is_active=true") && link.contains("ordering=-username"),
            "{link}"
        );
    }
    let n = get_url(&admin, &next).await;
    assert_eq!(n.body["results"].as_array().unwrap().len(), 15);
    assert_eq!(n.body["next"], Value::Null);
    let p = get_url(&admin, &previous).await;
    assert_eq!(p.body["results"].as_array().unwrap().len(), 20);
    assert_eq!(p.body["previous"], Value::Null);
    let mut all: Vec<String> = [usernames(&p), usernames(&r), usernames(&n)].concat();
    assert_eq!(all.len(), 55);
    let expected = {
        let mut v = all.clone();
        v.sort_by_key(|s| std::cmp::Reverse(s.to_lowercase()));
        v
    };
    assert_eq!(all, expected, "pages follow the ordering without overlap");
    all.dedup();
    assert_eq!(all.len(), 55);

    // `limit` is an alias of page_size.
    let r = admin.get("/api/v1/users/?limit=7").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 7);
    assert!(r.body["next"].as_str().unwrap().contains("limit=7"));
    let r = get_url(&admin, r.body["next"].as_str().unwrap()).await;
    assert_eq!(pks(&r), (8..=14).collect::<Vec<_>>());

    // A page beyond the end is 404; so are nonsense pages.
    for page in ["3", "4", "0", "-1", "x"] {
        admin.get(&format!("/api/v1/users/?page={page}")).await.error(404, "NotFound");
    }
    admin.get("/api/v1/users/?page=12&page_size=5").await.error(404, "NotFound");
    assert_eq!(admin.get("/api/v1/users/?page=11&page_size=5").await.body["results"].as_array().unwrap().len(), 5);
    // Page 1 of an empty result is fine.
    let r = admin.get("/api/v1/users/?username=nobody").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"count": 0, "next": null, "previous": null, "results": []}));
    // A bad page size is a validation error.
    for bad in ["abc", "0", "-5"] {
        let r = admin.get(&format!("/api/v1/users/?page_size={bad}")).await;
        r.error(400, "ValidationError");
    }
}

#[tokio::test]
async fn page_size_is_clamped_and_seed_004_aliases_work() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for i in 0..1004 {
        let new = NewUser {
            username: format!("bulk{i:04}"),
            password_hash: None,
            email: format!("bulk{i:04}@example.com"),
            first_name: String::new(),
            last_name: String::new(),
            description: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            org: 1,
            groups: Vec::new(),
        };
        server.store.create_user(&WriteCtx::default(), new).await.unwrap();
    }
    for query in
        ["page_size=5000", "page_size=1001", "limit=100000", "pageSize=-1", "maxItems=-1", "page_size=-1", "pageSize=2000"]
    {
        let r = admin.get(&format!("/api/v1/users/?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        assert_eq!(r.body["count"], 1005, "{query}");
        assert_eq!(r.body["results"].as_array().unwrap().len(), 1000, "{query} is clamped to 1000");
        let next = r.body["next"].as_str().expect("a next page");
        let r2 = get_url(&admin, next).await;
        assert_eq!(pks(&r2), (1001..=1005).collect::<Vec<_>>(), "{query}: {next}");
    }
    let r = admin.get("/api/v1/users/?page_size=1000").await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 1000);
    let r = admin.get("/api/v1/users/?pageSize=3").await;
    assert_eq!(pks(&r), [1, 2, 3]);
    let r = admin.get("/api/v1/users/?maxItems=2&page=2").await;
    assert_eq!(pks(&r), [3, 4]);

    // skipCount is an offset, not a page.
    let r = admin.get("/api/v1/users/?skipCount=2&pageSize=3").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(pks(&r), [3, 4, 5]);
    assert_eq!(r.body["count"], 1005);
    let next = r.body["next"].as_str().unwrap();
    assert_eq!(pks(&get_url(&admin, next).await), [6, 7, 8], "{next}");
    let previous = r.body["previous"].as_str().unwrap();
    assert_eq!(pks(&get_url(&admin, previous).await), [1, 2, 3], "{previous}");
    let r = admin.get("/api/v1/users/?skipCount=1003&maxItems=10").await;
    assert_eq!(pks(&r), [1004, 1005]);
    assert_eq!(r.body["next"], Value::Null);
    let r = admin.get("/api/v1/users/?skipCount=5000").await;
    assert_eq!(r.status, StatusCode::OK, "an offset past the end is an empty page");
    assert_eq!(r.body["results"], json!([]));
    admin.get("/api/v1/users/?skipCount=-1").await.error(400, "ValidationError");
}

#[tokio::test]
async fn filters_match_any_of_several_values() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let ann = quick_user(
        &admin,
        "ann",
        json!({"first_name": "Ann", "last_name": "Able", "is_staff": true, "email": "Ann.Able@Example.com"}),
    )
    .await;
    let ben = quick_user(&admin, "Ben", json!({"first_name": "Ben", "last_name": "Baker", "is_active": false})).await;
    let cid = quick_user(&admin, "cid", json!({"first_name": "Ann", "last_name": "Cole", "is_superuser": true})).await;
    let (org2, _) = server.store.create_org(&WriteCtx::default(), "Second", "second", "").await.unwrap();
    let dee = quick_user(&admin, "dee", json!({"org": org2.pk, "last_name": "Able"})).await;
    assert_eq!(dee["org"], org2.pk);
    let pk = |u: &Value| u["pk"].as_i64().unwrap();
    let names = |q: &str| {
        let admin = admin.clone();
        let q = q.to_string();
        async move {
            let r = admin.get(&format!("/api/v1/users/?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            assert_eq!(r.body["count"], r.body["results"].as_array().unwrap().len(), "{q}");
            sorted(usernames(&r))
        }
    };
    let s = |v: &[&str]| sorted(v.iter().map(|x| x.to_string()).collect());

    assert_eq!(names(&format!("id={}&id={}", pk(&ann), pk(&cid))).await, s(&["ann", "cid"]));
    assert_eq!(names(&format!("id={},{}", pk(&ben), pk(&dee))).await, s(&["Ben", "dee"]));
    assert_eq!(names(&format!("id={}", pk(&ben))).await, s(&["Ben"]));
    assert_eq!(names("id=9999").await, s(&[]));
    assert_eq!(names("username=ANN").await, s(&["ann"]));
    assert_eq!(names("username=ben&username=Cid").await, s(&["Ben", "cid"]));
    assert_eq!(names("login=bEn").await, s(&["Ben"]));
    assert_eq!(names("username=an").await, s(&[]), "username is an exact filter");
    assert_eq!(names("email=ann.able@example.COM").await, s(&["ann"]));
    assert_eq!(names("email=cid@example.com&email=dee@example.com").await, s(&["cid", "dee"]));
    assert_eq!(names("first_name=Ann").await, s(&["ann", "cid"]));
    assert_eq!(names("firstname=Ben").await, s(&["Ben"]));
    assert_eq!(names("last_name=Able").await, s(&["ann", "dee"]));
    assert_eq!(names("lastname=Cole&lastname=Baker").await, s(&["Ben", "cid"]));
    assert_eq!(names("first_name=Ann&last_name=Able").await, s(&["ann"]), "different filters combine with AND");
    assert_eq!(names("is_active=false").await, s(&["Ben"]));
    assert_eq!(names("is_active=true").await, s(&["admin", "ann", "cid", "dee"]));
    assert_eq!(names("is_staff=true").await, s(&["admin", "ann"]));
    assert_eq!(names("is_staff=false&is_active=true").await, s(&["cid", "dee"]));
    assert_eq!(names("is_staff=false").await, s(&["Ben", "cid", "dee"]));
    assert_eq!(names("is_superuser=true").await, s(&["admin", "cid"]));
    assert_eq!(names("is_superuser=0").await, s(&["Ben", "ann", "dee"]));
    assert_eq!(names(&format!("org={}", org2.pk)).await, s(&["dee"]));
    assert_eq!(names("org=1").await, s(&["Ben", "admin", "ann", "cid"]));
    assert_eq!(names(&format!("org=1&org={}", org2.pk)).await.len(), 5);

    for bad in ["is_active=maybe", "id=abc", "org=x", "is_staff=2"] {
        admin.get(&format!("/api/v1/users/?{bad}")).await.error(400, "ValidationError");
    }
}

#[tokio::test]
async fn search_matches_substrings_and_short_prefixes() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    quick_user(&admin, "alice", json!({"email": "alice.wonder@example.com", "first_name": "Alice", "last_name": "Liddell"}))
        .await;
    quick_user(&admin, "bobby", json!({"email": "rob.quux@mailhost.org", "first_name": "Robert", "last_name": "Builder"})).await;
    quick_user(&admin, "Élodie", json!({"email": "elo@example.com", "first_name": "Élodie", "last_name": "Zola"})).await;
    let find = |q: &str| {
        let admin = admin.clone();
        let q = q.to_string();
        async move {
            let r = admin.get(&format!("/api/v1/users/?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            assert_eq!(r.body["count"], r.body["results"].as_array().unwrap().len(), "{q}");
            sorted(usernames(&r))
        }
    };
    let s = |v: &[&str]| sorted(v.iter().map(|x| x.to_string()).collect());
    // 3+ characters: substring anywhere (middle of an email, a name, a username), case-insensitive.
    assert_eq!(find("search=quux").await, s(&["bobby"]));
    assert_eq!(find("search=QUUX").await, s(&["bobby"]));
    assert_eq!(find("search=ailhos").await, s(&["bobby"]));
    assert_eq!(find("search=wonder%40exa").await, s(&["alice"]));
    assert_eq!(find("search=bby").await, s(&["bobby"]));
    assert_eq!(find("search=ddel").await, s(&["alice"]));
    assert_eq!(find("search=bert").await, s(&["bobby"]));
    assert_eq!(find("search=example").await, s(&["alice", "Élodie"]));
    assert_eq!(find("search=localdomain").await, s(&["admin"]));
    assert_eq!(find("search=zzz").await, s(&[]));
    // 1-2 characters: prefixes only.
    assert_eq!(find("search=al").await, s(&["alice"]));
    assert_eq!(find("search=AL").await, s(&["alice"]));
    assert_eq!(find("search=b").await, s(&["bobby"]), "username prefix b, last name Builder");
    assert_eq!(find("search=li").await, s(&["alice"]), "last name Liddell");
    assert_eq!(find("search=ob").await, s(&[]), "not a prefix of anything");
    assert_eq!(find("search=ro").await, s(&["bobby"]), "email and first name start with ro");
    assert_eq!(find("search=%C3%A9l").await, s(&["Élodie"]), "non-ASCII prefix, other case");
    assert_eq!(find("search=z").await, s(&["Élodie"]));
    // seed 004's q is an alias; search combines with filters.
    assert_eq!(find("q=quux").await, s(&["bobby"]));
    assert_eq!(find("q=al").await, s(&["alice"]));
    assert_eq!(find("search=example&first_name=Alice").await, s(&["alice"]));
    // Characters with meaning in SQL or FTS syntax are plain text.
    for odd in ["%25", "_", "%22", "%27%20OR%201%3D1", "a*", "NEAR(", "%22%22%22", "-", "%5C"] {
        let r = admin.get(&format!("/api/v1/users/?search={odd}")).await;
        assert_eq!(r.status, StatusCode::OK, "{odd}: {}", r.body);
        assert_eq!(r.body["count"], 0, "{odd}: {}", r.body);
    }
    // An empty search is no filter.
    assert_eq!(find("search=").await.len(), 4);
}

#[tokio::test]
async fn ordering_and_its_seed_004_spellings() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for (u, first, last) in
        [("mike", "Zed", "Adams"), ("Bravo", "Amy", "Cole"), ("xray", "Amy", "Baker"), ("alpha", "Bob", "Cole")]
    {
        quick_user(&admin, u, json!({"first_name": first, "last_name": last})).await;
    }
    let list = |q: &str| {
        let admin = admin.clone();
        let q = q.to_string();
        async move {
            let r = admin.get(&format!("/api/v1/users/?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            r
        }
    };
    let by_username = |desc: bool| {
        let mut v = vec!["admin", "alpha", "Bravo", "mike", "xray"];
        if desc {
            v.reverse();
        }
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(usernames(&list("ordering=username").await), by_username(false), "case-insensitive");
    assert_eq!(usernames(&list("ordering=-username").await), by_username(true));
    assert_eq!(usernames(&list("sortby=username&sortorder=DESC").await), by_username(true));
    assert_eq!(usernames(&list("sortby=username&sortorder=asc").await), by_username(false));
    assert_eq!(usernames(&list("sortby=login").await), by_username(false));
    assert_eq!(usernames(&list("sort=-username").await), by_username(true));
    assert_eq!(pks(&list("ordering=-id").await), [5, 4, 3, 2, 1]);
    assert_eq!(pks(&list("ordering=-pk").await), [5, 4, 3, 2, 1]);

    // Several keys: later keys break ties of earlier ones; pk breaks the rest.
    let expected = ["Bravo", "alpha", "xray", "mike", "admin"];
    assert_eq!(usernames(&list("ordering=-last_name,first_name").await), ["Bravo", "alpha", "xray", "mike", "admin"]);
    assert_eq!(usernames(&list("sort=%2Blast_name,-first_name").await), ["admin", "mike", "xray", "alpha", "Bravo"]);
    // An unencoded '+' arrives as a space; it is still understood.
    assert_eq!(usernames(&list("sort=+last_name,-first_name").await), ["admin", "mike", "xray", "alpha", "Bravo"]);
    // Ties of the last key fall back to pk (Bravo 3 before alpha 5, both Cole).
    assert_eq!(usernames(&list("sortby=last_name&sortorder=DESC").await), expected);
    assert_eq!(usernames(&list("ordering=first_name,-username").await), ["admin", "xray", "Bravo", "alpha", "mike"]);

    // -date_joined,username: newest first.
    let r = list("ordering=-date_joined,username").await;
    let rows: Vec<(String, String)> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["date_joined"].as_str().unwrap().to_string(), u["username"].as_str().unwrap().to_lowercase()))
        .collect();
    let mut want = rows.clone();
    want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(rows, want);
    assert_eq!(usernames(&r), ["alpha", "xray", "Bravo", "mike", "admin"]);
    assert_eq!(usernames(&list("ordering=date_joined").await), ["admin", "mike", "Bravo", "xray", "alpha"]);

    // Unknown fields, or fields that are not sortable, are refused.
    for bad in [
        "ordering=password",
        "ordering=username,nope",
        "ordering=-password_hash",
        "sortby=secret",
        "sort=+groups",
        "ordering=is_superuser",
    ] {
        let r = admin.get(&format!("/api/v1/users/?{bad}")).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["ordering"], "{bad}: {}", r.body);
    }
    let r = admin.get("/api/v1/users/?sortby=username&sortorder=sideways").await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["sortorder"]);
}

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

#[tokio::test]
async fn admin_password_is_not_in_any_answer() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/v1/users/?page_size=1000").await;
    let text = r.body.to_string();
    assert!(!text.contains(ADMIN_PASSWORD) && !text.contains("argon2") && !text.contains("password"), "{text}");
}

#[tokio::test]
async fn users_carry_groups_and_can_be_filtered_and_expanded_by_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let group = |name: &str, parent: Option<i64>| {
        let admin = admin.clone();
        let body = json!({"name": name, "description": format!("{name} desc"), "parent": parent});
        async move {
            let r = admin.post("/api/v1/groups/", body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["pk"].as_i64().unwrap()
        }
    };
    let sales = group("Sales", None).await;
    let eu = group("EU sales", Some(sales)).await;
    let ops = group("Ops", None).await;
    let ann = quick_user(&admin, "ann", json!({"groups": [sales, ops]})).await;
    assert_eq!(ann["groups"], json!([sales, ops]));
    quick_user(&admin, "ben", json!({"groups": [eu]})).await;
    quick_user(&admin, "cid", json!({})).await;
    let ann_pk = ann["pk"].as_i64().unwrap();

    let names = |q: &str| {
        let admin = admin.clone();
        let q = q.to_string();
        async move {
            let r = admin.get(&format!("/api/v1/users/?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            sorted(usernames(&r))
        }
    };
    assert_eq!(names(&format!("group={sales}")).await, ["ann"]);
    assert_eq!(names(&format!("group={eu}")).await, ["ben"]);
    assert_eq!(names(&format!("group={sales}&group={eu}")).await, ["ann", "ben"]);
    assert_eq!(names(&format!("group={ops}&username=ann")).await, ["ann"]);
    assert_eq!(names("group=9999").await, Vec::<String>::new());

    // groups=true embeds {pk, name, description, children} (seed 004).
    let r = admin.get(&format!("/api/v1/users/?groups=true&id={ann_pk}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["groups"],
        json!([
            {"pk": sales, "name": "Sales", "description": "Sales desc", "children": [eu]},
            {"pk": ops, "name": "Ops", "description": "Ops desc", "children": []},
        ])
    );
    // Without it, groups stay keys.
    assert_eq!(admin.get(&format!("/api/v1/users/{ann_pk}/")).await.body["groups"], json!([sales, ops]));
    // PATCH replaces the whole set; [] empties it.
    let r = admin.patch(&format!("/api/v1/users/{ann_pk}/"), json!({"groups": [eu, eu]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["groups"], json!([eu]));
    let r = admin.patch(&format!("/api/v1/users/{ann_pk}/"), json!({"groups": []})).await;
    assert_eq!(r.body["groups"], json!([]));
    assert_eq!(names(&format!("group={sales}")).await, Vec::<String>::new());
}

#[tokio::test]
async fn users_permissions_do_not_reach_superusers_or_privileged_flags() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = admin
        .post("/api/v1/groups/", json!({"name": "Managers", "permissions": {"users": ["read", "create", "update", "delete"]}}))
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.body);
    let g = g.body["pk"].as_i64().unwrap();
    let manager_pk = server.create_user(&admin, "manager", json!({"groups": [g]})).await;
    let peer = server.create_user(&admin, "peer", json!({"groups": [g]})).await;
    let root2 = server.create_user(&admin, "root2", json!({"groups": [g], "is_superuser": true})).await;
    let manager = server.login("manager", PW).await;

    // Seed 004 visibility: members of the caller's groups and the caller; others answer 404.
    let r = manager.get("/api/v1/users/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(sorted(usernames(&r)), ["manager", "peer", "root2"]);
    assert_eq!(r.body["count"], 3);
    manager.get("/api/v1/users/1/").await.error(404, "NotFound");
    manager.patch("/api/v1/users/1/", json!({"first_name": "x"})).await.error(404, "NotFound");
    manager.delete("/api/v1/users/1/").await.error(404, "NotFound");

    let r = manager.patch(&format!("/api/v1/users/{peer}/"), json!({"first_name": "Pete"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let rev = server.revision().await;
    let before: Vec<User> = stored_users(&server, &[manager_pk, peer, root2, 1]).await;
    let users = server.store.count_users().await.unwrap();
    let refused: Vec<(Method, String, Option<Value>)> = vec![
        (Method::PATCH, format!("/api/v1/users/{peer}/"), Some(json!({"is_staff": true}))),
        (Method::PATCH, format!("/api/v1/users/{peer}/"), Some(json!({"is_superuser": true}))),
        (Method::PATCH, format!("/api/v1/users/{manager_pk}/"), Some(json!({"is_staff": true}))),
        (Method::PATCH, format!("/api/v1/users/{root2}/"), Some(json!({"first_name": "x"}))),
        (
            Method::PUT,
            format!("/api/v1/users/{root2}/"),
            Some(json!({"username": "root2", "email": "r@example.com", "groups": [g]})),
        ),
        (Method::DELETE, format!("/api/v1/users/{root2}/"), None),
        (Method::DELETE, format!("/api/v1/users/{manager_pk}/"), None),
        (Method::PATCH, format!("/api/v1/users/{manager_pk}/"), Some(json!({"is_active": false}))),
        (Method::POST, "/api/v1/users/".into(), Some(with(new_user("boss"), json!({"is_superuser": true})))),
        (Method::POST, "/api/v1/users/".into(), Some(with(new_user("staffer"), json!({"is_staff": true})))),
    ];
    for (method, path, body) in refused {
        let r = manager.send(method.clone(), &path, body.clone()).await;
        r.error(403, "PermissionDenied");
        assert!(r.revision().is_none());
    }
    assert_eq!(server.revision().await, rev);
    assert_eq!(stored_users(&server, &[manager_pk, peer, root2, 1]).await, before);
    assert_eq!(server.store.count_users().await.unwrap(), users);
    // A plain user can be created with users.create.
    let r = manager.post("/api/v1/users/", new_user("plain")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!((&r.body["is_superuser"], &r.body["is_staff"], &r.body["org"]), (&json!(false), &json!(false), &json!(1)));
}

/// The stored users, in the given order.
async fn stored_users(server: &TestServer, pks: &[i64]) -> Vec<User> {
    let mut out = Vec::new();
    for pk in pks {
        out.push(server.store.get_user(*pk).await.unwrap());
    }
    out
}
