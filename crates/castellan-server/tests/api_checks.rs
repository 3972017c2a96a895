//! Permission checks over HTTP (API.md §10, §11): single and bulk checks about oneself, others and objects, with
//! explanations, expiry and revisions, and read-your-writes of the permission index under concurrency and across
//! replicas.

mod common;

use std::collections::BTreeSet;

use common::permissions::{
    NEEDS_PERMISSIONS_READ, PW, allowed, bad_field, check, denied, grant, group_pk, keys, me, member, module, ok, quick_user,
    role_change, role_pk, second_org, strings, x_rev,
};
use common::users::with;
use common::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

const NEEDS_CHECK: &str = "This method needs permission check on permissions.";

/// A check on an object, as of at least `revision`.
async fn allowed_on(c: &Client, user: i64, permission: &str, model: Option<&str>, object_pk: Value, revision: i64) -> bool {
    let mut body = json!({"user": user, "permission": permission, "object_pk": object_pk, "at_least_revision": revision});
    if let Some(m) = model {
        body["model"] = json!(m);
    }
    let r = check(c, body).await;
    ok(&r)["allowed"].as_bool().unwrap()
}

/// Registers an object (as `c`), optionally under a parent; returns the revision.
async fn object(c: &Client, model: &str, key: &str, parent: Option<(&str, &str)>) -> i64 {
    let mut body = json!({"model": model, "object_pk": key});
    if let Some((m, k)) = parent {
        body["parent_model"] = json!(m);
        body["parent_pk"] = json!(k);
    }
    let r = c.post("/api/v1/objects/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    x_rev(&r)
}

/// Grants a user one permission on one object (seed 003 assign); returns the write's revision.
async fn grant_on_object(admin: &Client, user: i64, module: &str, action: &str, model: &str, key: &str) -> i64 {
    let r = admin
        .post(
            &format!("/api/v1/rbac/permissions/assigned_by_users/{user}/assign/"),
            json!({"permissions": [format!("{module}.{action}")], "model": model, "object_pk": key}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    x_rev(&r)
}

// ---------------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn checks_about_oneself_and_others() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({"users": ["read"]})).await;
    let (u_pk, u) = member(&server, &admin, "asker", &[g]).await;
    let v = quick_user(&admin, "peer", json!({"groups": [g]})).await;
    let outsider = quick_user(&admin, "outsider", json!({})).await;
    let org2 = second_org(&admin).await;
    let foreign = quick_user(&admin, "foreigner", json!({"org": org2})).await;

    let rev = server.revision().await;
    let r = check(&u, json!({"permission": "users.read", "at_least_revision": rev})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision"]), "{}", r.body);
    assert_eq!(r.body["allowed"], true);
    assert_eq!(r.body["revision"], rev);
    let r = check(&u, json!({"permission": "users.read"})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision"]), "no permission is needed about oneself: {}", r.body);
    let r = check(&u, json!({"permission": "users.delete", "user": u_pk, "at_least_revision": rev})).await;
    assert_eq!(ok(&r), &json!({"allowed": false, "revision": rev}));

    let before = server.revision().await;
    denied(&check(&u, json!({"permission": "users.read", "user": v})).await, NEEDS_CHECK);
    denied(&check(&u, json!({"permission": "users.read", "user": outsider})).await, NEEDS_CHECK);
    denied(&check(&u, json!({"permission": "users.read", "user": 99_999})).await, NEEDS_CHECK);
    server.anon().post("/api/v1/check/", json!({"permission": "users.read"})).await.error(401, "AuthenticationRequired");
    assert_eq!(server.revision().await, before, "checks write nothing");

    // permissions.check lets the caller ask about users they can see.
    let rev = grant(&admin, &format!("users/{u_pk}"), "permissions", &["check"]).await;
    let r = check(&u, json!({"permission": "users.read", "user": v, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert!(!allowed(&u, Some(v), "users.update", rev).await);
    check(&u, json!({"permission": "users.read", "user": outsider})).await.error(404, "NotFound");
    check(&u, json!({"permission": "users.read", "user": foreign})).await.error(404, "NotFound");
    check(&u, json!({"permission": "users.read", "user": 99_999})).await.error(404, "NotFound");
    // ... but not explanations, which need permissions.read.
    denied(&check(&u, json!({"permission": "users.read", "user": v, "explain": true})).await, NEEDS_PERMISSIONS_READ);

    // permissions.read implies permissions.check.
    let reader_group = group_pk(&admin, "Readers", Some(g), json!({"permissions": ["read"]})).await;
    let (_, reader) = member(&server, &admin, "reader", &[g, reader_group]).await;
    let rev = server.revision().await;
    assert!(allowed(&reader, Some(v), "users.read", rev).await);
    assert!(allowed(&reader, Some(u_pk), "permissions.check", rev).await);
    assert!(!allowed(&reader, Some(u_pk), "permissions.read", rev).await);
    check(&reader, json!({"permission": "users.read", "user": foreign})).await.error(404, "NotFound");

    // Superusers may ask about anyone; unknown users answer 404.
    assert!(!allowed(&admin, Some(foreign), "users.access", rev).await);
    check(&admin, json!({"permission": "users.read", "user": 99_999})).await.error(404, "NotFound");
}

#[tokio::test]
async fn checks_cover_objects_through_parents_and_orgs() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    object(&admin, "catalogs", "9", None).await;
    object(&admin, "catalogs", "10", None).await;
    object(&admin, "products", "42", Some(("catalogs", "9"))).await;
    let a = quick_user(&admin, "global", json!({})).await;
    let b = quick_user(&admin, "scoped", json!({})).await;
    let rev = grant(&admin, &format!("users/{a}"), "catalogs", &["read"]).await;

    // A global grant covers every object of the holder's organisation, registered or not.
    assert!(allowed(&admin, Some(a), "catalogs.read", rev).await);
    assert!(allowed(&admin, Some(a), "catalogs.access", rev).await, "every action implies access");
    assert!(!allowed(&admin, Some(a), "catalogs.update", rev).await);
    assert!(!allowed(&admin, Some(a), "catalogs.publish", rev).await, "only full implies the other actions");
    assert!(allowed_on(&admin, a, "catalogs.read", None, json!("9"), rev).await);
    assert!(allowed_on(&admin, a, "catalogs.read", Some("products"), json!("42"), rev).await);
    assert!(allowed_on(&admin, a, "catalogs.read", None, json!("555"), rev).await, "an unregistered key");
    assert!(!allowed_on(&admin, a, "catalogs.update", None, json!("9"), rev).await);

    // An object grant covers the object and what lies below it, for that permission only.
    let rev = grant_on_object(&admin, b, "catalogs", "read", "catalogs", "9").await;
    assert!(allowed_on(&admin, b, "catalogs.read", None, json!("9"), rev).await);
    assert!(allowed_on(&admin, b, "catalogs.read", None, json!(9), rev).await, "a numeric object_pk");
    assert!(allowed_on(&admin, b, "catalogs.read", Some("products"), json!("42"), rev).await, "catalog 9 ⊃ product 42");
    assert!(allowed_on(&admin, b, "catalogs.read", Some("catalogs"), json!("9"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.read", None, json!("42"), rev).await, "catalogs 42 is another object");
    assert!(!allowed_on(&admin, b, "catalogs.read", None, json!("10"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.read", Some("products"), json!("43"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.update", None, json!("9"), rev).await);
    assert!(!allowed_on(&admin, b, "catalogs.update", Some("products"), json!("42"), rev).await);
    assert!(!allowed(&admin, Some(b), "catalogs.read", rev).await, "an object grant is not a global one");
    let r = check(&admin, json!({"user": b, "permission": "catalogs.read", "model": "products", "object_pk": "42", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert_eq!(r.body["paths_total"], 1);
    let path = r.body["explanation"][0].as_str().unwrap();
    assert!(path.starts_with(&format!("user {b} → catalogs.read on ")), "{path}");
    assert!(path.contains(" 9 ⊃ ") && path.ends_with(" 42"), "{path}");

    // Reparenting: product 43 under catalog 10 is not covered by the grant on catalog 9.
    let rev = object(&admin, "products", "43", Some(("catalogs", "10"))).await;
    assert!(!allowed_on(&admin, b, "catalogs.read", Some("products"), json!("43"), rev).await);

    // Objects of another organisation are outside global grants.
    let org2 = second_org(&admin).await;
    let og = admin
        .post("/api/v1/groups/", json!({"name": "Registrars", "org": org2, "permissions": {"permissions": ["create"]}}))
        .await;
    assert_eq!(og.status, StatusCode::CREATED, "{}", og.body);
    server.create_user(&admin, "registrar", json!({"org": org2, "groups": [og.body["pk"]]})).await;
    let registrar = server.login("registrar", PW).await;
    let rev = object(&registrar, "catalogs", "77", None).await;
    assert!(!allowed_on(&admin, a, "catalogs.read", None, json!("77"), rev).await, "catalog 77 belongs to another organisation");
    assert!(allowed_on(&admin, a, "catalogs.read", None, json!("9"), rev).await);
    // To anyone but a superuser, an object of another organisation is unknown (§11): 404, in single and bulk checks.
    let (_, asker) = member(&server, &admin, "asker", &[]).await;
    let about_77 = json!({"permission": "catalogs.read", "model": "catalogs", "object_pk": "77"});
    let mut single = about_77.clone();
    single["at_least_revision"] = json!(rev);
    check(&asker, single).await.error(404, "NotFound");
    asker
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "catalogs.read"}, about_77], "at_least_revision": rev}))
        .await
        .error(404, "NotFound");
    let own = json!({"permission": "catalogs.read", "model": "catalogs", "object_pk": "9"});
    assert_eq!(ok(&check(&asker, own).await)["allowed"], false, "an object of one's own org is checked");

    // full implies every action, custom ones included, even those added later.
    let f = quick_user(&admin, "fullholder", json!({})).await;
    let rev = grant(&admin, &format!("users/{f}"), "catalogs", &["full"]).await;
    for p in ["catalogs.publish", "catalogs.delete", "catalogs.access", "catalogs.read"] {
        assert!(allowed(&admin, Some(f), p, rev).await, "{p}");
    }
    assert!(!allowed(&admin, Some(f), "catalogs.archive", rev).await, "not an action of catalogs yet");
    let r = admin.patch("/api/v1/modules/catalogs/", json!({"actions": ["publish", "archive"]})).await;
    assert!(allowed(&admin, Some(f), "catalogs.archive", x_rev(&r)).await, "full covers actions added later");
    assert!(!allowed(&admin, Some(a), "catalogs.archive", x_rev(&r)).await);
    assert!(!allowed(&admin, Some(f), "brands.read", x_rev(&r)).await, "an unknown module");
}

#[tokio::test]
async fn explanations_list_paths_and_reasons() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (admin_pk, _) = me(&admin).await;
    module(&admin, "catalogs", "Catalogs", &["publish"]).await;
    let parent = group_pk(&admin, "Parent", None, json!({})).await;
    let child = group_pk(&admin, "Child", Some(parent), json!({})).await;
    let (u, uc) = member(&server, &admin, "explained", &[child]).await;
    let role = role_pk(&admin, "Catalog owners").await;
    grant(&admin, &format!("roles/{role}"), "catalogs", &["full"]).await;
    let rev = role_change(&admin, role, "assign-groups", "groups", &[parent]).await;

    let r = check(&admin, json!({"user": u, "permission": "catalogs.publish", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision", "explanation", "paths_total"]), "{}", r.body);
    assert_eq!(r.body["allowed"], true);
    assert_eq!(
        r.body["explanation"],
        json!([format!("user {u} ∈ group {child} ⊂ group {parent} → role {role} → catalogs.full")])
    );
    assert_eq!(r.body["paths_total"], 1);
    assert_eq!(r.body["revision"], rev);

    let rev = grant(&admin, &format!("users/{u}"), "catalogs", &["publish"]).await;
    let r = check(&admin, json!({"user": u, "permission": "catalogs.publish", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["paths_total"], 2);
    let paths: BTreeSet<String> =
        r.body["explanation"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert!(paths.contains(&format!("user {u} → catalogs.publish")), "{}", r.body);
    assert!(paths.contains(&format!("user {u} ∈ group {child} ⊂ group {parent} → role {role} → catalogs.full")), "{}", r.body);

    // At most 10 paths, with the total.
    let mut rev = rev;
    for i in 0..11 {
        let extra = role_pk(&admin, &format!("Extra {i}")).await;
        grant(&admin, &format!("roles/{extra}"), "catalogs", &["read"]).await;
        rev = role_change(&admin, extra, "assign-users", "users", &[u]).await;
    }
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(
        ok(&r)["paths_total"],
        12,
        "11 roles and the group's full role; the user's publish grant does not give read: {}",
        r.body
    );
    assert_eq!(r.body["explanation"].as_array().unwrap().len(), 10);

    // explain needs permissions.read, even about oneself; the plain check does not.
    denied(&check(&uc, json!({"permission": "catalogs.read", "explain": true})).await, NEEDS_PERMISSIONS_READ);
    assert!(allowed(&uc, None, "catalogs.read", rev).await);
    let r = check(&uc, json!({"permission": "catalogs.read", "explain": false})).await;
    assert_eq!(keys(ok(&r)), strings(&["allowed", "revision"]));

    // Denials say why.
    let r = check(&admin, json!({"user": u, "permission": "users.delete", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], false);
    assert_eq!(r.body["paths_total"], 0);
    let why = r.body["explanation"].as_array().unwrap();
    assert_eq!(why.len(), 1, "{}", r.body);
    assert!(why[0].as_str().unwrap().contains("no grant"), "{}", r.body);

    let r = admin.patch(&format!("/api/v1/users/{u}/"), json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rev = x_rev(&r);
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "explain": true, "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], false, "inactive users hold nothing");
    let why = r.body["explanation"][0].as_str().unwrap();
    assert!(why.contains("inactive") && why.contains(&format!("user {u}")), "{}", r.body);
    assert!(!allowed(&admin, Some(u), "catalogs.publish", rev).await);

    // Superusers hold everything.
    let r = check(&admin, json!({"permission": "catalogs.update", "explain": true})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert_eq!(r.body["paths_total"], 1);
    assert!(r.body["explanation"][0].as_str().unwrap().contains(&format!("user {admin_pk}")), "{}", r.body);
    assert!(allowed(&admin, None, "anything.whatsoever", rev).await);
}

#[tokio::test]
async fn checks_validate_their_input_and_revisions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = server.revision().await;
    let cases = [
        (json!({}), "permission"),
        (json!({"permission": null}), "permission"),
        (json!({"permission": "nodot"}), "permission"),
        (json!({"permission": 5}), "permission"),
        (json!({"permission": "Users.Read"}), "permission"),
        (json!({"permission": "users."}), "permission"),
        (json!({"permission": ".read"}), "permission"),
        (json!({"permission": "users.read", "user": "abc"}), "user"),
        (json!({"permission": "users.read", "user": 0}), "user"),
        (json!({"permission": "users.read", "explain": "yes"}), "explain"),
        (json!({"permission": "users.read", "object_pk": "x".repeat(256)}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": ""}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": true}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": ["1"]}), "object_pk"),
        (json!({"permission": "users.read", "object_pk": "1", "model": "Bad Model"}), "model"),
        (json!({"permission": "users.read", "object_pk": "1", "model": 5}), "model"),
        (json!({"permission": "users.read", "at_least_revision": "1"}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": -1}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": 1.5}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": before + 1}), "at_least_revision"),
        (json!({"permission": "users.read", "at_least_revision": before + 1000}), "at_least_revision"),
    ];
    for (body, field) in cases {
        let r = check(&admin, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} → {}", r.body);
        bad_field(&r, field);
    }
    // Every bad field is listed at once.
    let r = check(&admin, json!({"permission": "nodot", "model": "Bad Model", "object_pk": "1", "explain": 1})).await;
    r.error(400, "ValidationError");
    for field in ["permission", "model", "explain"] {
        assert!(r.fields().iter().any(|f| f == field), "{field} in {}", r.body);
    }
    check(&admin, json!(["users.read"])).await.error(400, "ValidationError");
    let r = admin.raw(reqwest::Method::POST, "/api/v1/check/", "application/json", b"{".to_vec()).await;
    r.error(400, "ValidationError");
    assert_eq!(server.revision().await, before);

    // at_least_revision at the newest revision answers at least that revision.
    let r = check(&admin, json!({"permission": "users.read", "at_least_revision": before})).await;
    assert_eq!(ok(&r)["revision"], before);
    let r = admin.post("/api/v1/roles/", json!({"name": "Fresh"})).await;
    let rev = x_rev(&r);
    assert_eq!(rev, before + 1);
    let r = check(&admin, json!({"permission": "users.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["revision"], rev);
    let r = check(&admin, json!({"permission": "users.read", "at_least_revision": 0})).await;
    assert!(ok(&r)["revision"].as_i64().unwrap() <= rev);
    bad_field(&check(&admin, json!({"permission": "users.read", "at_least_revision": rev + 1})).await, "at_least_revision");
}

#[tokio::test]
async fn valid_until_appears_when_the_only_path_expires() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &[]).await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let u = quick_user(&admin, "temporary", json!({"groups": [g]})).await;
    let role = role_pk(&admin, "Temporary readers").await;
    grant(&admin, &format!("roles/{role}"), "catalogs", &["read"]).await;
    let r = admin
        .patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u], "expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    let rev = x_rev(&r);
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert_eq!(r.body["valid_until"], "2999-01-01T00:00:00.000000Z", "{}", r.body);
    let r = check(&admin, json!({"user": u, "permission": "catalogs.update", "at_least_revision": rev})).await;
    assert!(ok(&r).get("valid_until").is_none(), "a denial does not expire: {}", r.body);

    // An unexpiring path wins.
    let rev = grant(&admin, &format!("groups/{g}"), "catalogs", &["read"]).await;
    let r = check(&admin, json!({"user": u, "permission": "catalogs.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert!(r.body.get("valid_until").is_none(), "{}", r.body);

    // Checks compare the clock: an assignment expiring in a moment stops counting without any write.
    let v = quick_user(&admin, "fleeting", json!({})).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [v], "expires_at": soon})).await;
    let rev = x_rev(&r);
    let r = check(&admin, json!({"user": v, "permission": "catalogs.read", "at_least_revision": rev})).await;
    assert_eq!(ok(&r)["allowed"], true);
    assert!(r.body["valid_until"].is_string(), "{}", r.body);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = check(&admin, json!({"user": v, "permission": "catalogs.read"})).await;
    assert_eq!(ok(&r)["allowed"], false, "{}", r.body);
}

#[tokio::test]
async fn bulk_checks() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (admin_pk, _) = me(&admin).await;
    let g = group_pk(&admin, "Team", None, json!({"users": ["read"]})).await;
    let (u_pk, u) = member(&server, &admin, "bulky", &[g]).await;
    let v = quick_user(&admin, "peer", json!({"groups": [g]})).await;
    let inactive = quick_user(&admin, "inactive", json!({"groups": [g], "is_active": false})).await;
    let rev = server.revision().await;

    let r = u
        .post(
            "/api/v1/check/bulk/",
            json!({"checks": [
                {"permission": "users.read"},
                {"permission": "users.delete"},
                {"permission": "users.access"},
                {"permission": "users.read", "user": u_pk},
                {"permission": "groups.read"}
            ], "at_least_revision": rev}),
        )
        .await;
    assert_eq!(keys(ok(&r)), strings(&["results", "revision"]), "{}", r.body);
    assert_eq!(
        r.body["results"],
        json!([{"allowed": true}, {"allowed": false}, {"allowed": true}, {"allowed": true}, {"allowed": false}])
    );
    assert_eq!(r.body["revision"], rev);

    // Other users need permissions.check.
    let before = server.revision().await;
    let r = u
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read"}, {"permission": "users.read", "user": v}]}))
        .await;
    denied(&r, NEEDS_CHECK);
    assert_eq!(server.revision().await, before);

    // Mixed users, in order.
    let r = admin
        .post(
            "/api/v1/check/bulk/",
            json!({"checks": [
                {"permission": "users.delete"},
                {"permission": "users.read", "user": u_pk},
                {"permission": "users.delete", "user": u_pk},
                {"permission": "users.read", "user": inactive},
                {"permission": "users.read", "user": v},
                {"permission": "users.read", "user": admin_pk}
            ], "at_least_revision": rev}),
        )
        .await;
    assert_eq!(
        ok(&r)["results"],
        json!([{"allowed": true}, {"allowed": true}, {"allowed": false}, {"allowed": false}, {"allowed": true}, {"allowed": true}])
    );
    admin
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read", "user": 99_999}]}))
        .await
        .error(404, "NotFound");

    // Up to 10,000 checks, answered in order.
    let checks: Vec<Value> = (0..10_000)
        .map(|i| json!({"permission": if i % 3 == 0 { "users.delete" } else { "users.read" }, "user": u_pk}))
        .collect();
    let r = admin.post("/api/v1/check/bulk/", json!({"checks": checks})).await;
    let results = ok(&r)["results"].as_array().unwrap();
    assert_eq!(results.len(), 10_000);
    for (i, res) in results.iter().enumerate() {
        assert_eq!(res["allowed"], i % 3 != 0, "result {i}");
    }
    let checks: Vec<Value> = (0..10_001).map(|_| json!({"permission": "users.read"})).collect();
    bad_field(&admin.post("/api/v1/check/bulk/", json!({"checks": checks})).await, "checks");
    assert_eq!(ok(&admin.post("/api/v1/check/bulk/", json!({"checks": []})).await)["results"], json!([]));

    // Errors name the item and the field.
    let r = admin
        .post(
            "/api/v1/check/bulk/",
            json!({"checks": [
                {"permission": "users.read"},
                {"permission": "nodot"},
                {"permission": "users.read", "object_pk": true},
                5,
                {}
            ]}),
        )
        .await;
    r.error(400, "ValidationError");
    let fields = r.fields();
    for f in ["checks[1].permission", "checks[2].object_pk", "checks[4].permission"] {
        assert!(fields.iter().any(|x| x == f), "{f} in {}", r.body);
    }
    assert!(fields.iter().any(|x| x.starts_with("checks[3]")), "{}", r.body);
    assert!(!fields.iter().any(|x| x.starts_with("checks[0]")), "{}", r.body);
    bad_field(&admin.post("/api/v1/check/bulk/", json!({})).await, "checks");
    bad_field(&admin.post("/api/v1/check/bulk/", json!({"checks": "users.read"})).await, "checks");
    let r = admin
        .post("/api/v1/check/bulk/", json!({"checks": [{"permission": "users.read"}], "at_least_revision": rev + 1000}))
        .await;
    bad_field(&r, "at_least_revision");
    server.anon().post("/api/v1/check/bulk/", json!({"checks": []})).await.error(401, "AuthenticationRequired");
}

// ---------------------------------------------------------------------------------------------------------------
// Read-your-writes under concurrency
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_see_the_callers_own_writes_while_others_check() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let v = quick_user(&admin, "toggled", json!({})).await;
    for i in 0..200 {
        quick_user(&admin, &format!("filler{i}"), json!({})).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut others = Vec::new();
    for _ in 0..2 {
        let (other, stop) = (admin.clone(), stop.clone());
        others.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = check(&other, json!({"permission": "users.read"})).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            }
        }));
    }
    let mut stale = Vec::new();
    for i in 0..150 {
        let actions: &[&str] = if i % 2 == 0 { &["read"] } else { &[] };
        let rev = grant(&admin, &format!("users/{v}"), "users", actions).await;
        // No at_least_revision: a check sees the newest revision by default.
        let r = check(&admin, json!({"user": v, "permission": "users.read"})).await;
        let body = ok(&r);
        if body["revision"].as_i64().unwrap() < rev || body["allowed"] != (i % 2 == 0) {
            stale.push((i, rev, body.clone()));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for o in others {
        o.await.unwrap();
    }
    assert!(stale.is_empty(), "{} checks missed the caller's own write, e.g. {:?}", stale.len(), stale.first());
}

/// Every endpoint is gated by the index: what a role, a group's ancestors or an inactive module bring shows at once
/// after the write that changes it.
#[tokio::test]
async fn endpoints_are_gated_by_the_index_right_after_each_write() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (u, client) = member(&server, &admin, "gated", &[]).await;
    let denied_users = |r: &Resp| r.status == StatusCode::FORBIDDEN;
    assert!(denied_users(&client.get("/api/v1/users/").await));

    let role = role_pk(&admin, "viewers").await;
    grant(&admin, &format!("roles/{role}"), "users", &["read"]).await;
    role_change(&admin, role, "assign-users", "users", &[u]).await;
    assert_eq!(client.get("/api/v1/users/").await.status, StatusCode::OK, "a role's grant gates at once");
    role_change(&admin, role, "remove-users", "users", &[u]).await;
    assert!(denied_users(&client.get("/api/v1/users/").await), "and is gone at once");

    let top = group_pk(&admin, "Top", None, json!({"groups": ["read"]})).await;
    let loose = group_pk(&admin, "Loose", None, json!({})).await;
    let leaf = group_pk(&admin, "Leaf", Some(loose), json!({})).await;
    admin.put(&format!("/api/v1/users/{u}/groups/{leaf}/"), json!({})).await;
    assert_eq!(client.get("/api/v1/groups/").await.status, StatusCode::FORBIDDEN);
    let r = admin.patch(&format!("/api/v1/groups/{loose}/"), json!({"parent": top})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(client.get("/api/v1/groups/").await.status, StatusCode::OK, "an ancestor's permissions flow down");

    module(&admin, "reports", "Reports", &[]).await;
    grant(&admin, &format!("users/{u}"), "reports", &["read"]).await;
    let r = check(&client, json!({"permission": "reports.read"})).await;
    assert_eq!(r.body["allowed"], true, "{}", r.body);
    let r = admin.patch("/api/v1/modules/reports/", json!({"is_active": false})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        check(&client, json!({"permission": "reports.read"})).await.body["allowed"],
        false,
        "inactive modules grant nothing"
    );
}

/// Writes committed by another process on the same database (another replica) reach this server's index by
/// following the change log, without any request to this server.
#[tokio::test]
async fn writes_of_another_replica_reach_the_index() {
    use castellan_store::WriteCtx;
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let readers = group_pk(&admin, "Readers", None, json!({"users": ["read"]})).await;
    let (u, client) = member(&server, &admin, "replicated", &[]).await;
    assert_eq!(client.get("/api/v1/users/").await.status, StatusCode::FORBIDDEN);

    let other = castellan_store::SqliteStore::open(&server.db_path()).await.unwrap();
    let (_, revision) = castellan_store::planned::add_members(&other, &WriteCtx::default(), readers, &[u], None).await.unwrap();
    // Read-your-writes across replicas: asking for the other replica's revision waits for it.
    let r = check(&client, json!({"permission": "users.read", "at_least_revision": revision})).await;
    assert_eq!(r.body["allowed"], true, "{}", r.body);
    assert_eq!(r.body["revision"], revision);
    assert_eq!(client.get("/api/v1/users/").await.status, StatusCode::OK);

    // Without asking, the follower's tick brings it within a few seconds.
    castellan_store::planned::remove_members(&other, &WriteCtx::default(), readers, &[u]).await.unwrap();
    let started = std::time::Instant::now();
    while client.get("/api/v1/users/").await.status == StatusCode::OK {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the removal never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Deleting an object deletes the grants on it (API.md §11): checks deny at once, no holder is listed any more,
/// its children stay registered without a parent, and registering the key again starts clean.
#[tokio::test]
async fn deleting_an_object_deletes_its_grants() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &[]).await;
    object(&admin, "catalogs", "9", None).await;
    object(&admin, "products", "42", Some(("catalogs", "9"))).await;
    let holder = quick_user(&admin, "holder", json!({})).await;
    let rev = grant_on_object(&admin, holder, "catalogs", "read", "catalogs", "9").await;
    assert!(allowed_on(&admin, holder, "catalogs.read", None, json!("9"), rev).await);
    assert!(allowed_on(&admin, holder, "catalogs.read", Some("products"), json!("42"), rev).await);
    let listed = |admin: &Client| {
        let admin = admin.clone();
        async move {
            let r = admin.get("/api/v1/rbac/permissions/assigned_by_users/?model=catalogs&object_pk=9").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["count"].as_i64().unwrap()
        }
    };
    assert_eq!(listed(&admin).await, 1);

    let r = admin.delete("/api/v1/objects/catalogs/9/").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let rev = x_rev(&r);
    assert!(!allowed_on(&admin, holder, "catalogs.read", None, json!("9"), rev).await, "the grant went with the object");
    assert!(!allowed_on(&admin, holder, "catalogs.read", Some("products"), json!("42"), rev).await, "the child is detached");
    assert_eq!(listed(&admin).await, 0);
    let log = server.store.changes(0, 10_000).await.unwrap();
    let deleted = log.iter().rev().find(|e| e.action == "delete" && e.target_type == "catalogs").expect("logged");
    assert_eq!(deleted.changes["grants"], json!([{"subject": format!("user:{holder}"), "permission": "catalogs.read"}]));

    let rev = object(&admin, "catalogs", "9", None).await;
    assert!(!allowed_on(&admin, holder, "catalogs.read", None, json!("9"), rev).await, "registered again: no grant");
    assert_eq!(listed(&admin).await, 0);
}

/// Registering an object under a parent hands it to everyone holding something on the parent or above it: the
/// caller must hold all of that on the parent (API.md §11, no escalation). The object belongs to the given org
/// (default: the caller's), and a parent of another org is refused.
#[tokio::test]
async fn linking_an_object_needs_holding_what_its_parent_passes_down() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    module(&admin, "catalogs", "Catalogs", &[]).await;
    object(&admin, "catalogs", "9", None).await;
    object(&admin, "catalogs", "10", None).await;
    let holder = quick_user(&admin, "holder", json!({})).await;
    grant_on_object(&admin, holder, "catalogs", "update", "catalogs", "9").await;
    let registrars = group_pk(&admin, "Registrars", None, json!({"permissions": ["create", "delete"]})).await;
    let (registrar_pk, registrar) = member(&server, &admin, "registrar", &[registrars]).await;
    let under =
        |key: &str, parent: &str| json!({"model": "products", "object_pk": key, "parent_model": "catalogs", "parent_pk": parent});

    let rev = server.revision().await;
    registrar.post("/api/v1/objects/", under("1", "9")).await.error(403, "PermissionDenied");
    assert_eq!(server.revision().await, rev, "nothing registered");
    assert_eq!(server.store.find_object("products", "1").await.unwrap(), None);
    let r = registrar.post("/api/v1/objects/", under("2", "10")).await;
    assert_eq!(r.status, StatusCode::CREATED, "nothing is granted on catalogs 10: {}", r.body);
    grant_on_object(&admin, registrar_pk, "catalogs", "update", "catalogs", "9").await;
    let r = registrar.post("/api/v1/objects/", under("1", "9")).await;
    assert_eq!(r.status, StatusCode::CREATED, "the registrar now holds what the link hands on: {}", r.body);

    let org2 = second_org(&admin).await;
    let r = registrar.post("/api/v1/objects/", json!({"model": "products", "object_pk": "3", "org": org2})).await;
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["org".to_string()]), "{}", r.body);
    let r = admin.post("/api/v1/objects/", json!({"model": "products", "object_pk": "3", "org": org2})).await;
    assert_eq!((r.status, &r.body["org"]), (StatusCode::CREATED, &json!(org2)), "{}", r.body);
    let r = admin.post("/api/v1/objects/", with(under("4", "9"), json!({"org": org2}))).await;
    assert_eq!((r.status, r.fields()), (StatusCode::BAD_REQUEST, vec!["parent_pk".to_string()]), "{}", r.body);
    let r = admin.post("/api/v1/objects/", under("5", "9")).await;
    assert_eq!((r.status, &r.body["org"]), (StatusCode::CREATED, &json!(1)), "{}", r.body);
}
