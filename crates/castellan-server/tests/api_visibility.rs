//! Visibility of the directory (API.md §4; seed 004): members of a group see its subtree, and embedded and written
//! groups show only visible ones.

mod common;

use common::directory::{get_url, group, group_pk, groups_of, invalid, member, pks, quick_user, sorted};
use common::{Client, Resp, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The result with key `pk` in a page.
fn result(r: &Resp, pk: i64) -> &Value {
    r.body["results"].as_array().expect("results").iter().find(|x| x["pk"] == pk).expect("the result is listed")
}

// ---------------------------------------------------------------------------------------------------------------
// Visibility (seed 004)
// ---------------------------------------------------------------------------------------------------------------

/// Sales {users: [read], groups: [read]} ⊃ EU sales ⊃ EU north, Sales ⊃ US sales; and their members.
struct SalesTree {
    sales: i64,
    eu: i64,
    north: i64,
    us: i64,
    /// Logged in, member of EU sales.
    eu_user: i64,
    eu_client: Client,
    north_user: i64,
    us_user: i64,
    /// Member of EU sales and US sales.
    both: i64,
    lead: i64,
    outsider: i64,
}

async fn sales_tree(server: &TestServer, admin: &Client) -> SalesTree {
    let sales = group_pk(admin, "Sales", None, json!({"users": ["read"], "groups": ["read"]})).await;
    let eu = group_pk(admin, "EU sales", Some(sales), json!({})).await;
    let north = group_pk(admin, "EU north", Some(eu), json!({})).await;
    let us = group_pk(admin, "US sales", Some(sales), json!({})).await;
    let (eu_user, eu_client) = member(server, admin, "vis-eu", &[eu]).await;
    SalesTree {
        sales,
        eu,
        north,
        us,
        eu_user,
        eu_client,
        north_user: quick_user(admin, "vis-north", &[north]).await,
        us_user: quick_user(admin, "vis-us", &[us]).await,
        both: quick_user(admin, "vis-both", &[eu, us]).await,
        lead: quick_user(admin, "vis-lead", &[sales]).await,
        outsider: quick_user(admin, "vis-outsider", &[]).await,
    }
}

#[tokio::test]
async fn members_of_a_group_see_only_its_subtree() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = sales_tree(&server, &admin).await;
    let c = &t.eu_client;
    let visible = sorted(vec![t.eu_user, t.north_user, t.both]);

    let r = c.get("/api/v1/users/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], 3, "{}", r.body);
    assert_eq!(sorted(pks(&r)), visible);

    for hidden in [t.us_user, t.lead, t.outsider, 1] {
        c.get(&format!("/api/v1/users/{hidden}/")).await.error(404, "NotFound");
        c.get(&format!("/api/v1/users/{hidden}/groups/")).await.error(404, "NotFound");
    }
    for seen in [t.eu_user, t.north_user, t.both] {
        assert_eq!(c.get(&format!("/api/v1/users/{seen}/")).await.status, StatusCode::OK);
    }

    // Filters never reveal the invisible.
    let r = c.get(&format!("/api/v1/users/?group={}", t.us)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!pks(&r).contains(&t.us_user), "invisible members of US sales are not listed: {}", r.body);
    assert!(pks(&r).iter().all(|pk| visible.contains(pk)), "{}", r.body);
    assert_eq!(r.body["count"].as_i64().unwrap() as usize, pks(&r).len(), "the count covers only what is listed");
    let r = c.get(&format!("/api/v1/users/?group={}&recursive=true", t.sales)).await;
    assert_eq!(r.body["count"], 0, "a group the caller cannot see matches nobody: {}", r.body);
    let r = c.get(&format!("/api/v1/users/?id={}&id={}&id={}", t.us_user, t.north_user, t.lead)).await;
    assert_eq!(pks(&r), [t.north_user]);
    let r = c.get("/api/v1/users/?username=vis-us").await;
    assert_eq!(r.body["count"], 0);

    // Paging: counts and `next` links cover only the visible.
    let mut seen = Vec::new();
    let mut r = c.get("/api/v1/users/?page_size=1").await;
    loop {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["count"], 3);
        seen.extend(pks(&r));
        match r.body["next"].as_str() {
            Some(next) => r = get_url(c, next).await,
            None => break,
        }
    }
    assert_eq!(sorted(seen), visible);
    c.get("/api/v1/users/?page_size=1&page=4").await.error(404, "NotFound");

    // Groups: the user's groups and their descendants.
    let r = c.get("/api/v1/groups/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let groups = pks(&r);
    assert!(groups.contains(&t.eu) && groups.contains(&t.north), "{}", r.body);
    assert!(!groups.contains(&t.us), "{}", r.body);
    assert_eq!(r.body["count"].as_i64().unwrap() as usize, groups.len());
    c.get(&format!("/api/v1/groups/{}/", t.us)).await.error(404, "NotFound");
    c.get(&format!("/api/v1/groups/{}/users/", t.us)).await.error(404, "NotFound");
    let r = c.get(&format!("/api/v1/groups/{}/users/", t.eu)).await;
    assert_eq!(sorted(pks(&r)), sorted(vec![t.eu_user, t.both]));
    let r = c.get(&format!("/api/v1/groups/{}/users/?recursive=true", t.eu)).await;
    assert_eq!(sorted(pks(&r)), visible);
}

#[tokio::test]
async fn embedded_groups_show_only_visible_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = sales_tree(&server, &admin).await;
    let c = &t.eu_client;

    let r = c.get("/api/v1/users/").await;
    assert_eq!(result(&r, t.both)["groups"], json!([t.eu]), "US sales is not shown: {}", r.body);
    let counts = |u: &Value| (u["groups_count"].clone(), u["groups_hidden"].clone());
    assert_eq!(counts(result(&r, t.both)), (json!(1), json!(1)), "the hidden group is counted beside the visible one");
    assert_eq!(result(&r, t.eu_user)["groups"], json!([t.eu]));
    assert_eq!(counts(result(&r, t.eu_user)), (json!(1), json!(0)));
    let detail = c.get(&format!("/api/v1/users/{}/", t.both)).await;
    assert_eq!((&detail.body["groups"], counts(&detail.body)), (&json!([t.eu]), (json!(1), json!(1))));
    let seen_by_admin = admin.get(&format!("/api/v1/users/{}/", t.both)).await;
    assert_eq!(counts(&seen_by_admin.body), (json!(2), json!(0)));
    let r = c.get(&format!("/api/v1/groups/{}/users/", t.eu)).await;
    assert_eq!(result(&r, t.both)["groups"], json!([t.eu]));
    let r = c.get(&format!("/api/v1/users/{}/groups/", t.both)).await;
    assert_eq!((r.body["count"].as_i64(), pks(&r)), (Some(1), vec![t.eu]));

    let r = c.get("/api/v1/users/?groups=true").await;
    assert_eq!(
        result(&r, t.both)["groups"],
        json!([{"pk": t.eu, "name": "EU sales", "description": "", "children": [t.north]}]),
        "{}",
        r.body
    );

    // The superuser sees every group.
    assert_eq!(groups_of(&admin, t.both).await, sorted(vec![t.eu, t.us]));
}

#[tokio::test]
async fn write_answers_show_only_visible_groups() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let t = sales_tree(&server, &admin).await;
    let editors = group_pk(&admin, "Editors", Some(t.eu), json!({"users": ["read", "update"]})).await;
    admin.put(&format!("/api/v1/users/{}/groups/{editors}/", t.eu_user), json!({})).await;
    let r = t.eu_client.patch(&format!("/api/v1/users/{}/", t.both), json!({"first_name": "Both"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["groups"], json!([t.eu]), "US sales must not be named: {}", r.body);
}

#[tokio::test]
async fn groups_true_expands_groups_with_children() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let sales = group(&admin, json!({"name": "Sales", "description": "All sales"})).await["pk"].as_i64().unwrap();
    let eu = group_pk(&admin, "EU", Some(sales), json!({})).await;
    let north = group_pk(&admin, "North", Some(eu), json!({})).await;
    let south = group_pk(&admin, "South", Some(eu), json!({})).await;
    let u = quick_user(&admin, "expanded", &[sales, eu]).await;

    let r = admin.get(&format!("/api/v1/users/?groups=true&id={u}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["groups"],
        json!([
            {"pk": sales, "name": "Sales", "description": "All sales", "children": [eu]},
            {"pk": eu, "name": "EU", "description": "", "children": [north, south]},
        ])
    );
    let r = admin.get(&format!("/api/v1/users/?groups=false&id={u}")).await;
    assert_eq!(r.body["results"][0]["groups"], json!([sales, eu]));
    let r = admin.get(&format!("/api/v1/users/?id={u}")).await;
    assert_eq!(r.body["results"][0]["groups"], json!([sales, eu]));
    invalid(&admin.get("/api/v1/users/?groups=maybe").await, &["groups"]);
}
