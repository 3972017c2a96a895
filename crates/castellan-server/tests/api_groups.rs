//! Groups over HTTP (API.md §3, §4; seeds 000, 001): groups and their tree, their permissions, children and users,
//! and memberships.

mod common;

use common::TestServer;
use common::directory::{get_url, group, group_pk, groups_of, invalid, keys, pks, quick_user, sorted, strings};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn group_created_with_only_a_name_has_the_seed_shape() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let rev = server.revision().await;
    let r = admin.post("/api/v1/groups/", json!({"name": "Sales"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    let body = r.body.clone();
    let missing: Vec<_> = strings(&["pk", "name", "description", "org", "parent", "permissions", "roles"])
        .difference(&keys(&body))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in {body}");
    assert!(body["pk"].as_i64().is_some_and(|pk| pk > 0));
    assert_eq!(body["name"], "Sales");
    assert_eq!(body["description"], "");
    assert_eq!(body["org"], 1, "the creator's org");
    assert_eq!(body["parent"], Value::Null);
    assert_eq!(body["permissions"], json!({}));
    assert_eq!(body["roles"], json!([]));

    let pk = body["pk"].as_i64().unwrap();
    let r = admin.get(&format!("/api/v1/groups/{pk}/")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, body);
    let r = admin.get(&format!("/api/v1/groups/{pk}")).await;
    assert_eq!(r.status, StatusCode::OK, "without the trailing slash too");
    let r = admin.get("/api/v1/groups/").await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(r.body["results"][0], body);

    // Missing or blank name.
    let rev = server.revision().await;
    invalid(&admin.post("/api/v1/groups/", json!({"description": "x"})).await, &["name"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "  "})).await, &["name"]);
    invalid(&admin.put(&format!("/api/v1/groups/{pk}/"), json!({"description": "x"})).await, &["name"]);
    admin.get("/api/v1/groups/999/").await.error(404, "NotFound");
    admin.patch("/api/v1/groups/999/", json!({"name": "x"})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);

    let r = admin.put(&format!("/api/v1/groups/{pk}/"), json!({"name": "Sales EU", "description": "d"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["name"].as_str(), r.body["description"].as_str()), (Some("Sales EU"), Some("d")));
    assert_eq!(r.revision(), Some(rev + 1));
}

#[tokio::test]
async fn group_names_are_unique_among_siblings() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group_pk(&admin, "Sales", None, json!({})).await;
    let us = group_pk(&admin, "US", Some(sales), json!({})).await;
    let eu = group(&admin, json!({"name": "EU", "parent": sales})).await;
    assert_eq!(eu["parent"], sales);
    let eu = eu["pk"].as_i64().unwrap();

    let rev = server.revision().await;
    admin.post("/api/v1/groups/", json!({"name": "EU", "parent": sales})).await.error(409, "Conflict");
    admin.post("/api/v1/groups/", json!({"name": "Sales"})).await.error(409, "Conflict");
    admin.patch(&format!("/api/v1/groups/{us}/"), json!({"name": "EU"})).await.error(409, "Conflict");
    assert_eq!(server.revision().await, rev, "refused writes change nothing");
    assert_eq!(admin.get(&format!("/api/v1/groups/{us}/")).await.body["name"], "US");

    // The same name under another parent or at the root is fine; moving it next to its namesake is not.
    let us_eu = group(&admin, json!({"name": "EU", "parent": us})).await["pk"].as_i64().unwrap();
    let root_eu = group(&admin, json!({"name": "EU"})).await["pk"].as_i64().unwrap();
    let rev = server.revision().await;
    admin.patch(&format!("/api/v1/groups/{us_eu}/"), json!({"parent": sales})).await.error(409, "Conflict");
    admin.patch(&format!("/api/v1/groups/{root_eu}/"), json!({"parent": sales})).await.error(409, "Conflict");
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{us_eu}/")).await.body["parent"], us);
    assert_ne!(eu, us_eu);
}

#[tokio::test]
async fn group_parent_cycles_are_400_and_change_nothing() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let a = group_pk(&admin, "A", None, json!({})).await;
    let b = group_pk(&admin, "B", Some(a), json!({})).await;
    let c = group_pk(&admin, "C", Some(b), json!({})).await;
    let before = admin.get(&format!("/api/v1/groups/{a}/")).await.body;

    let rev = server.revision().await;
    for parent in [a, b, c] {
        let r = admin.patch(&format!("/api/v1/groups/{a}/"), json!({"parent": parent, "description": "moved"})).await;
        invalid(&r, &["parent"]);
    }
    invalid(&admin.patch(&format!("/api/v1/groups/{b}/"), json!({"parent": c})).await, &["parent"]);
    invalid(&admin.put(&format!("/api/v1/groups/{b}/"), json!({"name": "B", "parent": b})).await, &["parent"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{b}/"), json!({"parent": 999})).await, &["parent"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "D", "parent": 999})).await, &["parent"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{b}/"), json!({"parent": "a"})).await, &["parent"]);
    assert_eq!(server.revision().await, rev, "refused moves change nothing");
    assert_eq!(admin.get(&format!("/api/v1/groups/{a}/")).await.body, before);

    // Legal moves: C to the root, then A under C.
    let r = admin.patch(&format!("/api/v1/groups/{c}/"), json!({"parent": null})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parent"], Value::Null);
    let r = admin.patch(&format!("/api/v1/groups/{a}/"), json!({"parent": c})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["parent"], c);
    invalid(&admin.patch(&format!("/api/v1/groups/{c}/"), json!({"parent": b})).await, &["parent"]);
}

#[tokio::test]
async fn group_parent_in_another_org_is_400() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let far = group(&admin, json!({"name": "Far", "org": other})).await;
    assert_eq!(far["org"], other);
    let far = far["pk"].as_i64().unwrap();
    let home = group_pk(&admin, "Home", None, json!({})).await;

    let rev = server.revision().await;
    invalid(&admin.post("/api/v1/groups/", json!({"name": "X", "parent": far})).await, &["parent"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "Y", "org": other, "parent": home})).await, &["parent"]);
    invalid(&admin.patch(&format!("/api/v1/groups/{home}/"), json!({"parent": far})).await, &["parent"]);
    invalid(&admin.post("/api/v1/groups/", json!({"name": "Z", "org": 999})).await, &["org"]);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{home}/")).await.body["parent"], Value::Null);
    let r = admin.get(&format!("/api/v1/groups/?org={other}")).await;
    assert_eq!(pks(&r), [far]);
}

#[tokio::test]
async fn deleting_a_group_with_children_needs_cascade() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group_pk(&admin, "Sales", None, json!({})).await;
    let eu = group_pk(&admin, "EU", Some(sales), json!({})).await;
    let north = group_pk(&admin, "North", Some(eu), json!({})).await;
    let ops = group_pk(&admin, "Ops", None, json!({})).await;
    let seller = quick_user(&admin, "seller", &[north, ops]).await;

    let rev = server.revision().await;
    admin.delete(&format!("/api/v1/groups/{sales}/")).await.error(409, "Conflict");
    admin.delete(&format!("/api/v1/groups/{eu}/?cascade=false")).await.error(409, "Conflict");
    admin.delete("/api/v1/groups/999/").await.error(404, "NotFound");
    invalid(&admin.delete(&format!("/api/v1/groups/{sales}/?cascade=maybe")).await, &["cascade"]);
    assert_eq!(server.revision().await, rev);
    assert_eq!(admin.get(&format!("/api/v1/groups/{north}/")).await.status, StatusCode::OK);

    let r = admin.delete(&format!("/api/v1/groups/{sales}/?cascade=true")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    for g in [sales, eu, north] {
        admin.get(&format!("/api/v1/groups/{g}/")).await.error(404, "NotFound");
    }
    assert_eq!(groups_of(&admin, seller).await, [ops], "memberships of the subtree are gone");
    assert_eq!(admin.get("/api/v1/groups/").await.body["count"], 1);

    let r = admin.delete(&format!("/api/v1/groups/{ops}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(groups_of(&admin, seller).await, Vec::<i64>::new());
}

#[tokio::test]
async fn group_permissions_accept_seed_001_levels_and_name_bad_modules() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/modules/", json!({"id": "brands", "description": "Brands", "actions": []})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let body = json!({"name": "Writers", "permissions": {"brands": "write", "users": "read", "groups": ["read", "update"]}});
    let r = admin.post("/api/v1/groups/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["permissions"],
        json!({"brands": ["read", "create", "update", "delete"], "users": ["read"], "groups": ["read", "update"]})
    );
    let pk = r.body["pk"].as_i64().unwrap();

    let rev = server.revision().await;
    let bad = [
        (json!({"brands": ["fly"]}), "permissions.brands"),
        (json!({"brands": "admin"}), "permissions.brands"),
        (json!({"brands": 5}), "permissions.brands"),
        (json!({"Bad Id": ["read"]}), "permissions.Bad Id"),
        (json!({"unregistered": ["read"]}), "permissions"),
        (json!(["read"]), "permissions"),
        (json!("write"), "permissions"),
    ];
    for (permissions, field) in bad {
        let r = admin.post("/api/v1/groups/", json!({"name": "Bad", "permissions": permissions})).await;
        invalid(&r, &[field]);
        let r = admin.patch(&format!("/api/v1/groups/{pk}/"), json!({"permissions": permissions})).await;
        invalid(&r, &[field]);
    }
    assert_eq!(server.revision().await, rev);

    let r = admin.patch(&format!("/api/v1/groups/{pk}/"), json!({"permissions": {"users": ["full"], "audit": "read"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["permissions"], json!({"users": ["full"], "audit": ["read"]}));
    assert_eq!(admin.get(&format!("/api/v1/groups/{pk}/")).await.body["permissions"], r.body["permissions"]);
}

#[tokio::test]
async fn group_children_are_paged() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let parent = group_pk(&admin, "Parent", None, json!({})).await;
    let mut kids = Vec::new();
    for name in ["K1", "K2", "K3"] {
        kids.push(group_pk(&admin, name, Some(parent), json!({})).await);
    }
    group_pk(&admin, "Grandchild", Some(kids[0]), json!({})).await;

    let r = admin.get(&format!("/api/v1/groups/{parent}/children/?page_size=2")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 3, "direct children only: {}", r.body);
    assert_eq!(pks(&r), kids[..2]);
    assert_eq!(r.body["previous"], Value::Null);
    let next = r.body["next"].as_str().expect("a next link").to_string();
    assert!(next.starts_with("http://") && next.contains("page=2"), "{next}");
    let r = get_url(&admin, &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(pks(&r), kids[2..]);
    assert_eq!(r.body["next"], Value::Null);
    assert!(r.body["previous"].is_string());
    assert_eq!(r.body["results"][0]["parent"], parent);

    let r = admin.get(&format!("/api/v1/groups/{}/children/", kids[1])).await;
    assert_eq!(r.body["count"], 0);
    admin.get("/api/v1/groups/999/children/").await.error(404, "NotFound");
    let r = admin.get(&format!("/api/v1/groups/?parent={parent}")).await;
    assert_eq!(pks(&r), kids);
    let r = admin.get("/api/v1/groups/?parent=null").await;
    assert_eq!(pks(&r), [parent]);
}

#[tokio::test]
async fn group_users_direct_and_recursive() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group_pk(&admin, "Sales", None, json!({})).await;
    let eu = group_pk(&admin, "EU", Some(sales), json!({})).await;
    let north = group_pk(&admin, "North", Some(eu), json!({})).await;
    let s = quick_user(&admin, "s", &[sales]).await;
    let e = quick_user(&admin, "e", &[eu]).await;
    let n = quick_user(&admin, "n", &[north]).await;
    quick_user(&admin, "loner", &[]).await;

    let r = admin.get(&format!("/api/v1/groups/{sales}/users/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["count"].as_i64(), pks(&r)), (Some(1), vec![s]));
    assert_eq!(r.body["results"][0]["username"], "s");
    let r = admin.get(&format!("/api/v1/groups/{sales}/users/?recursive=true")).await;
    assert_eq!((r.body["count"].as_i64(), sorted(pks(&r))), (Some(3), vec![s, e, n]));
    let r = admin.get(&format!("/api/v1/groups/{eu}/users/?recursive=true")).await;
    assert_eq!(sorted(pks(&r)), [e, n]);
    let r = admin.get(&format!("/api/v1/groups/{sales}/users/?recursive=true&page_size=2")).await;
    assert_eq!(r.body["count"], 3);
    assert_eq!(pks(&r).len(), 2);
    assert!(r.body["next"].is_string());
    let r = admin.get(&format!("/api/v1/users/?group={sales}&recursive=true")).await;
    assert_eq!(sorted(pks(&r)), [s, e, n]);
    let r = admin.get(&format!("/api/v1/users/?group={sales}")).await;
    assert_eq!(pks(&r), [s]);
    admin.get("/api/v1/groups/999/users/").await.error(404, "NotFound");
}

#[tokio::test]
async fn assign_and_remove_users() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let other = admin.post("/api/v1/orgs/", json!({"name": "Other"})).await.body["pk"].as_i64().unwrap();
    let g = group_pk(&admin, "Team", None, json!({"users": ["read"]})).await;
    let a = quick_user(&admin, "a", &[]).await;
    let b = quick_user(&admin, "b", &[]).await;
    let c = quick_user(&admin, "c", &[]).await;
    let body = json!({"username": "far", "password": null, "email": "far@example.com", "groups": [], "org": other});
    let far = admin.post("/api/v1/users/", body).await.body["pk"].as_i64().unwrap();

    let rev = server.revision().await;
    let r = admin.patch(&format!("/api/v1/groups/{g}/assign-users/"), json!({"users": [a, b]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(r.body["pk"], g);
    assert_eq!(r.body["name"], "Team");
    assert_eq!(r.body["permissions"], json!({"users": ["read"]}));
    assert_eq!(sorted(r.body["users"].as_array().unwrap().iter().map(|u| u.as_i64().unwrap()).collect()), [a, b]);
    assert_eq!(r.body["users_count"], 2);
    assert_eq!(r.body["users_hidden"], 0, "the hidden count sits beside the visible one (API.md §10)");
    assert_eq!(groups_of(&admin, a).await, [g]);

    let r = admin.patch(&format!("/api/v1/groups/{g}/remove-users/"), json!({"users": [a, c]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users"], json!([b]));
    assert_eq!((&r.body["users_count"], &r.body["users_hidden"]), (&json!(1), &json!(0)));
    assert_eq!(groups_of(&admin, a).await, Vec::<i64>::new());

    // Refusals change nothing.
    let rev = server.revision().await;
    let assign = format!("/api/v1/groups/{g}/assign-users/");
    invalid(&admin.patch(&assign, json!({})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": ["x"]})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": a})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": [a, 999]})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": [far]})).await, &["users"]);
    invalid(&admin.patch(&assign, json!({"users": [a], "expires_at": "2001-01-01T00:00:00Z"})).await, &["expires_at"]);
    invalid(&admin.patch(&assign, json!({"users": [a], "expires_at": "tomorrow"})).await, &["expires_at"]);
    admin.patch("/api/v1/groups/999/assign-users/", json!({"users": [a]})).await.error(404, "NotFound");
    admin.patch("/api/v1/groups/999/remove-users/", json!({"users": [a]})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev);
    assert_eq!(groups_of(&admin, a).await, Vec::<i64>::new());
    assert_eq!(groups_of(&admin, far).await, Vec::<i64>::new());

    // A future expiry is accepted and stored.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = admin.patch(&assign, json!({"users": [a], "expires_at": later})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["users_count"], 2);
    let m = server.store.membership(a, g).await.unwrap().expect("a membership");
    assert!(m.expires_at.is_some(), "the expiry is stored");
    assert_eq!(groups_of(&admin, a).await, [g]);
}

#[tokio::test]
async fn user_group_membership_endpoints() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let u = quick_user(&admin, "u", &[]).await;

    let r = admin.get(&format!("/api/v1/users/{u}/groups/")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["count"].as_i64(), r.body["results"].clone()), (Some(0), json!([])));

    let rev = server.revision().await;
    let r = admin.put(&format!("/api/v1/users/{u}/groups/{g}/"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(r.body["pk"], g, "answers the group: {}", r.body);
    assert_eq!(r.body["name"], "Team");
    let r = admin.get(&format!("/api/v1/users/{u}/groups/")).await;
    assert_eq!(r.body["count"], 1);
    assert_eq!(pks(&r), [g]);
    assert_eq!(r.body["results"][0]["name"], "Team");
    assert_eq!(groups_of(&admin, u).await, [g]);

    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = admin.put(&format!("/api/v1/users/{u}/groups/{g}/"), json!({"expires_at": later})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(server.store.membership(u, g).await.unwrap().unwrap().expires_at.is_some());

    let rev = server.revision().await;
    let r = admin.put(&format!("/api/v1/users/{u}/groups/{g}/"), json!({"expires_at": "2001-01-01T00:00:00Z"})).await;
    invalid(&r, &["expires_at"]);
    for path in [
        format!("/api/v1/users/999/groups/{g}/"),
        format!("/api/v1/users/{u}/groups/999/"),
        format!("/api/v1/users/{u}/groups/abc/"),
    ] {
        admin.put(&path, json!({})).await.error(404, "NotFound");
        admin.delete(&path).await.error(404, "NotFound");
    }
    admin.get("/api/v1/users/999/groups/").await.error(404, "NotFound");
    assert_eq!(server.revision().await, rev, "refused writes change nothing");
    assert!(server.store.membership(u, g).await.unwrap().unwrap().expires_at.is_some());

    let r = admin.delete(&format!("/api/v1/users/{u}/groups/{g}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.revision(), Some(rev + 1));
    assert_eq!(admin.get(&format!("/api/v1/users/{u}/groups/")).await.body["count"], 0);
    assert_eq!(groups_of(&admin, u).await, Vec::<i64>::new());
}

/// Names are one line of text: a control character (a NUL, a line break) in a group, role, token or person's name is
/// refused with 400 naming the field, and nothing is written.
#[tokio::test]
async fn names_with_control_characters_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let before = server.revision().await;
    for (path, body, field) in [
        ("/api/v1/groups/", json!({"name": "a\u{0}b"}), "name"),
        ("/api/v1/roles/", json!({"name": "two\nlines"}), "name"),
        ("/api/v1/active_user/tokens/", json!({"name": "ci\u{7}"}), "name"),
    ] {
        invalid(&admin.post(path, body).await, &[field]);
    }
    invalid(
        &admin.patch("/api/v1/users/1/", json!({"first_name": "Ad\u{0}min", "last_name": "x\r"})).await,
        &["first_name", "last_name"],
    );
    assert_eq!(server.revision().await, before);
    let r = admin.post("/api/v1/groups/", json!({"name": "Ümlaut & Co. (EU) — 東京"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// A user's groups are searched and ordered as the group list is (`search`/`q`, `ordering`/`sort`/`sortby`).
#[tokio::test]
async fn a_users_groups_take_search_and_ordering() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let alpha = group_pk(&admin, "Alpha team", None, json!({})).await;
    let beta = group_pk(&admin, "Beta team", None, json!({})).await;
    let gamma = group_pk(&admin, "Gamma crew", None, json!({})).await;
    let u = quick_user(&admin, "u", &[alpha, beta, gamma]).await;
    let groups = |query: &str| {
        let admin = admin.clone();
        let path = format!("/api/v1/users/{u}/groups/?{query}");
        async move {
            let r = admin.get(&path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            pks(&r)
        }
    };
    assert_eq!(groups("search=team").await, [alpha, beta]);
    assert_eq!(groups("q=crew").await, [gamma]);
    assert_eq!(groups("ordering=-name").await, [gamma, beta, alpha]);
    assert_eq!(groups("sort=-name").await, [gamma, beta, alpha]);
    assert_eq!(groups("sortby=name&sortorder=desc&search=team").await, [beta, alpha]);
    invalid(&admin.get(&format!("/api/v1/users/{u}/groups/?ordering=nope")).await, &["ordering"]);
    invalid(&admin.get(&format!("/api/v1/users/{u}/groups/?search=a%00b")).await, &["search"]);
}
