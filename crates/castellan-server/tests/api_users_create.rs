//! Creating users (API.md §3, §10; seed 000 UserViewSet): required fields, the answer and its revision, passwords,
//! emails, usernames, types, groups and organisations, and duplicates.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use common::users::{PW, can_log_in, keys, new_user, snapshot, user_keys, with};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `2022-12-21T10:32:51.707174Z`: RFC 3339 UTC with exactly six fractional digits.
fn is_timestamp(s: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == pattern.len()
        && s.chars().zip(pattern.chars()).all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
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

/// Usernames are compared after NFKC normalisation and case folding: a full-width `ａｄｍｉｎ` is `admin`, and `Åsa`
/// spelled with a combining ring is the precomposed `Åsa`. Stored usernames are NFKC, and logins find them either way.
#[tokio::test]
async fn usernames_that_differ_only_in_unicode_form_are_one_username() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let precomposed = "\u{c5}sa";
    let combining = "A\u{30a}sa";
    let pk = server.create_user(&admin, combining, json!({"email": "asa@example.com"})).await;
    let shown = admin.get(&format!("/api/v1/users/{pk}/")).await;
    assert_eq!(shown.body["username"], precomposed, "stored in NFKC");
    let (rev, users) = (server.revision().await, server.store.count_users().await.unwrap());
    for dup in [precomposed, combining, "\u{e5}SA", "\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}", "\u{ff21}DMIN"] {
        let r = admin.post("/api/v1/users/", with(new_user(dup), json!({"email": "dup@example.com"}))).await;
        r.error(409, "Conflict");
    }
    assert_eq!((server.revision().await, server.store.count_users().await.unwrap()), (rev, users));
    assert!(can_log_in(&server, precomposed, PW).await);
    assert!(can_log_in(&server, combining, PW).await);
    let listed = admin.get(&format!("/api/v1/users/?username={combining}")).await;
    assert_eq!(listed.body["count"], 1, "{}", listed.body);
    let r = admin.post("/api/v1/users/", with(new_user("bob\u{0}"), json!({"email": "b@example.com"}))).await;
    assert_eq!(r.fields(), ["username"], "control characters are refused: {}", r.body);
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
        ["create", "update", "update", "password_change", "logout", "delete"],
        "the password change ended the user's sessions (an audit-only entry, at no revision)"
    );
    let revisions: Vec<i64> = user_log.iter().filter_map(|c| c.revision).collect();
    assert_eq!(revisions, (rev - 4..=rev).collect::<Vec<_>>());
    assert!(user_log.iter().all(|c| !c.changes.to_string().contains("An0ther") && !c.changes.to_string().contains("argon2")));
}
