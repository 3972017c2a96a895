//! Listing users (API.md §3; seed 004 list parameters): the paged envelope and its links, page sizes, filters,
//! search, ordering, groups as filters and embedded representations, and no password in any answer.

mod common;

use castellan_core::model::NewUser;
use castellan_store::WriteCtx;
use common::users::{get_url, keys, pks, sorted, user_keys, usernames, with};
use common::{ADMIN_PASSWORD, Client, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Creates a user without a password (no hashing: fast) through the API and returns its representation.
async fn quick_user(admin: &Client, username: &str, extra: Value) -> Value {
    let body =
        with(json!({"username": username, "password": null, "email": format!("{username}@example.com"), "groups": []}), extra);
    let r = admin.post("/api/v1/users/", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
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

/// A search term is data, never query syntax: control characters are refused with 400 naming the parameter, for the
/// full-text path (3+ characters) and the prefix path alike, on every list that searches.
#[tokio::test]
async fn control_characters_in_a_search_are_refused_and_quotes_are_only_text() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    quick_user(&admin, "adam", json!({})).await;
    for path in [
        "/api/v1/users/?search=ab%00",
        "/api/v1/users/?q=adm%00in",
        "/api/v1/users/?search=%00",
        "/api/v1/users/?search=a%0Ab",
        "/api/v1/groups/?search=ab%00cd",
        "/api/v1/roles/?search=%00",
        "/api/v1/orgs/?q=x%1Fy",
    ] {
        let r = admin.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        let name = if path.contains("q=") { "q" } else { "search" };
        assert_eq!(r.fields(), vec![name.to_string()], "{path}: {}", r.body);
    }
    for term in ["%22ad", "ad%22%20OR%20%22x", "NEAR(ad", "ad*", "%22%22%22"] {
        let r = admin.get(&format!("/api/v1/users/?search={term}")).await;
        assert_eq!(r.status, StatusCode::OK, "{term}: {}", r.body);
    }
    assert_eq!(usernames(&admin.get("/api/v1/users/?search=ada").await), vec!["adam".to_string()]);
}

/// An offset far past the end answers an empty page without a `next` link (no arithmetic overflow).
#[tokio::test]
async fn the_largest_skip_count_is_an_empty_last_page() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/v1/users/?skipCount=9223372036854775807&maxItems=10").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["next"], Value::Null);
    assert_eq!(r.body["results"], json!([]));
    assert!(r.body["previous"].as_str().unwrap().contains("skipCount=9223372036854775797"), "{}", r.body);
}

/// `next` and `previous` carry an opaque keyset cursor: following them walks every ordering without gaps or
/// repeats, also when the row a cursor stands on is deleted meanwhile; a cursor the server did not write, or one
/// of another ordering, is a 400 naming `cursor`.
#[tokio::test]
async fn next_and_previous_links_carry_keyset_cursors() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    for i in 0..23 {
        quick_user(&admin, &format!("k{:02}", (i * 7) % 23), json!({"first_name": if i % 3 == 0 { "Same" } else { "Other" }}))
            .await;
    }
    for ordering in ["-username", "first_name,-email", "-last_login", "date_joined"] {
        let first = admin.get(&format!("/api/v1/users/?page_size=5&ordering={ordering}")).await;
        let everyone = admin.get(&format!("/api/v1/users/?page_size=100&ordering={ordering}")).await;
        let mut walked = pks(&first);
        let mut next = first.body["next"].as_str().map(str::to_string);
        let mut last_page = first;
        while let Some(link) = next {
            assert!(link.contains("cursor=") && !link.contains("page=") && link.contains("page_size=5"), "{link}");
            let page = get_url(&admin, &link).await;
            assert_eq!((page.status, &page.body["count"]), (StatusCode::OK, &json!(24)), "{link}: {}", page.body);
            walked.extend(pks(&page));
            next = page.body["next"].as_str().map(str::to_string);
            last_page = page;
        }
        assert_eq!(walked, pks(&everyone), "{ordering}: forwards");
        let mut back = pks(&last_page);
        let mut previous = last_page.body["previous"].as_str().map(str::to_string);
        while let Some(link) = previous {
            let page = get_url(&admin, &link).await;
            assert_eq!(pks(&page).len(), 5, "{link}");
            back.splice(0..0, pks(&page));
            previous = page.body["previous"].as_str().map(str::to_string);
        }
        assert_eq!(back, pks(&everyone), "{ordering}: backwards");
    }

    // The row under a cursor is deleted: the next page starts where it stood.
    let page = admin.get("/api/v1/users/?page_size=5").await;
    let standing = *pks(&page).last().unwrap();
    assert_eq!(admin.delete(&format!("/api/v1/users/{standing}/")).await.status, StatusCode::NO_CONTENT);
    let next = get_url(&admin, page.body["next"].as_str().unwrap()).await;
    assert_eq!(pks(&next), (standing + 1..standing + 6).collect::<Vec<_>>());

    for bad in ["cursor=abc", "cursor=%00", "cursor=eyJrZXlzIjpbXX0"] {
        let r = admin.get(&format!("/api/v1/users/?{bad}")).await;
        r.error(400, "ValidationError");
        assert_eq!(r.fields(), ["cursor"], "{bad}: {}", r.body);
    }
    let by_name = admin.get("/api/v1/users/?page_size=5&ordering=username").await;
    let cursor = by_name.body["next"].as_str().unwrap().split("cursor=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let r = admin.get(&format!("/api/v1/users/?ordering=username,-email&cursor={cursor}")).await;
    assert_eq!(r.fields(), ["cursor"], "{}", r.body);
}
