//! The audit log over HTTP (API.md §1, §6, §8 "Grant history", §10, §11): entry shape, filters, subject/object,
//! time bounds, ordering and paging, permissions, organisation scoping, bad parameters, secrets and methods.

mod common;

use std::collections::BTreeSet;

use common::{Client, Resp, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const AUDIT: &str = "/api/v1/audit/";

/// The password `TestServer::create_user` gives every user.
const PW: &str = "Passw0rd!";

/// An audit entry's keys, exactly.
const ENTRY_KEYS: [&str; 10] =
    ["pk", "at", "revision", "actor", "action", "target_type", "target_pk", "changes", "ip", "request_id"];

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("an object").keys().cloned().collect()
}

/// A page's results.
fn results(r: &Resp) -> &Vec<Value> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["results"].as_array().expect("results")
}

/// The `pk`s of a page's results, in order.
fn pks(r: &Resp) -> Vec<i64> {
    results(r).iter().map(|e| e["pk"].as_i64().unwrap()).collect()
}

/// GET of the audit list with a query string.
async fn audit(c: &Client, query: &str) -> Resp {
    c.get(&format!("{AUDIT}?page_size=1000&{query}")).await
}

/// Every entry the admin can see, newest first.
async fn all_entries(admin: &Client) -> Vec<Value> {
    let r = audit(admin, "").await;
    assert_eq!(r.body["count"].as_u64().unwrap() as usize, results(&r).len(), "one page holds everything");
    results(&r).clone()
}

/// The keys of the entries satisfying `keep`, in the given (newest first) order.
fn expected(entries: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<i64> {
    entries.iter().filter(|e| keep(e)).map(|e| e["pk"].as_i64().unwrap()).collect()
}

/// Asserts a 400 `ValidationError` naming exactly `fields`.
#[track_caller]
fn invalid(r: &Resp, fields: &[&str]) {
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), fields, "{}", r.body);
}

/// Whether `s` is shaped `2022-12-21T10:32:51.707174Z`.
fn rfc3339_micros(s: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == pattern.len() && s.bytes().zip(pattern.bytes()).all(|(c, p)| if p == b'd' { c.is_ascii_digit() } else { c == p })
}

/// Percent-encodes a query value.
fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A server with two organisations: the admin in `default`; in `globex` an auditor (`audit.read` through a group)
/// who logged in and wrote user data; and a user without audit rights in `default`.
struct World {
    server: TestServer,
    admin: Client,
    globex: i64,
    auditors: i64,
    olga_pk: i64,
    olga: Client,
    plain: Client,
}

async fn world() -> World {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/orgs/", json!({"name": "Globex"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let globex = r.body["pk"].as_i64().unwrap();
    let r = admin.post("/api/v1/groups/", json!({"name": "Auditors", "org": globex, "permissions": {"audit": ["read"]}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let auditors = r.body["pk"].as_i64().unwrap();
    let olga_pk = server.create_user(&admin, "olga", json!({"org": globex, "groups": [auditors]})).await;
    server.create_user(&admin, "plain", json!({})).await;
    let olga = server.login("olga", PW).await;
    let plain = server.login("plain", PW).await;
    let r = olga.put("/api/v1/active_user/data/theme/", json!("dark")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    World { server, admin, globex, auditors, olga_pk, olga, plain }
}

#[tokio::test]
async fn entries_have_the_contract_shape_newest_first() {
    let w = world().await;
    let r = w.admin.get(AUDIT).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(keys(&r.body), ["count", "next", "previous", "results"].iter().map(|s| s.to_string()).collect());
    let entries = results(&r);
    assert!(!entries.is_empty());
    for e in entries {
        assert_eq!(keys(e), ENTRY_KEYS.iter().map(|s| s.to_string()).collect(), "{e}");
        assert!(rfc3339_micros(e["at"].as_str().unwrap()), "{e}");
        assert!(e["revision"].is_null() || e["revision"].is_i64(), "{e}");
        assert!(e["actor"].is_null() || keys(&e["actor"]) == ["pk", "username"].iter().map(|s| s.to_string()).collect(), "{e}");
        assert!(e["action"].is_string() && e["target_type"].is_string() && e["target_pk"].is_string(), "{e}");
    }
    let order = pks(&r);
    assert!(order.windows(2).all(|p| p[0] > p[1]), "newest first: {order:?}");

    // A directory write: its revision (the response's X-Revision), actor, target, before/after, address and request id.
    let r = w.admin.post("/api/v1/groups/", json!({"name": "Shape"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (group, revision) = (r.body["pk"].as_i64().unwrap(), r.revision().unwrap());
    let request_id = r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let newest = &results(&w.admin.get(AUDIT).await)[0].clone();
    assert_eq!(newest["action"], "create");
    assert_eq!(newest["target_type"], "groups");
    assert_eq!(newest["target_pk"], group.to_string());
    assert_eq!(newest["revision"], revision);
    assert_eq!(newest["actor"], json!({"pk": 1, "username": "admin"}));
    assert_eq!(newest["changes"]["after"]["name"], "Shape");
    assert_eq!(newest["ip"], "127.0.0.1");
    assert!(newest["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    if let Some(id) = request_id {
        assert_eq!(newest["request_id"], id, "the entry carries the write's request id");
    }

    // Audit-only events have no revision; the login of olga is hers.
    let entries = all_entries(&w.admin).await;
    let olga = w.olga_pk.to_string();
    let login = entries.iter().find(|e| e["action"] == "login" && e["target_pk"] == olga.as_str()).unwrap();
    assert!(login["revision"].is_null());
    assert_eq!(login["actor"], json!({"pk": w.olga_pk, "username": "olga"}));
    assert_eq!(login["target_type"], "users");
    // The server's own writes (bootstrap) have no actor.
    assert!(entries.iter().any(|e| e["actor"].is_null() && e["action"] == "create"), "bootstrap rows have no actor");

    // The OpenAPI document describes the endpoint and the permission it needs.
    let schema = w.server.anon().get("/api/v1/schema/").await;
    assert_eq!(schema.status, StatusCode::OK);
    let get = &schema.body["paths"]["/api/v1/audit/"]["get"];
    assert!(get["description"].as_str().is_some_and(|d| d.contains("This method needs permission read on audit.")), "{get}");
    let params: BTreeSet<String> =
        get["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    for name in ["actor", "target_type", "target_pk", "action", "since", "until", "subject", "object", "ordering"] {
        assert!(params.contains(name), "{name} documented");
    }

    // Without the trailing slash too.
    let r = w.admin.get("/api/v1/audit").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["count"], entries.len());
}

#[tokio::test]
async fn every_filter_alone_and_together() {
    let w = world().await;
    let entries = all_entries(&w.admin).await;
    let olga = w.olga_pk.to_string();

    // actor: one, several (repeated or comma separated).
    let r = audit(&w.admin, &format!("actor={}", w.olga_pk)).await;
    assert_eq!(pks(&r), expected(&entries, |e| e["actor"]["pk"] == w.olga_pk));
    assert_eq!(pks(&r).len(), 2, "olga's login and her user data");
    let both = expected(&entries, |e| e["actor"]["pk"] == w.olga_pk || e["actor"]["pk"] == 1);
    assert_eq!(pks(&audit(&w.admin, &format!("actor={}&actor=1", w.olga_pk)).await), both);
    assert_eq!(pks(&audit(&w.admin, &format!("actor={},1", w.olga_pk)).await), both);
    assert_eq!(audit(&w.admin, "actor=99999").await.body["count"], 0);

    // target_type and target_pk.
    let r = audit(&w.admin, "target_type=groups").await;
    assert_eq!(pks(&r), expected(&entries, |e| e["target_type"] == "groups"));
    assert!(!pks(&r).is_empty());
    let r = audit(&w.admin, "target_type=groups&target_type=orgs").await;
    assert_eq!(pks(&r), expected(&entries, |e| e["target_type"] == "groups" || e["target_type"] == "orgs"));
    let r = audit(&w.admin, &format!("target_type=users&target_pk={olga}")).await;
    assert_eq!(pks(&r), expected(&entries, |e| e["target_type"] == "users" && e["target_pk"] == olga.as_str()));
    assert_eq!(pks(&r).len(), 2, "olga's creation and her login");
    let r = audit(&w.admin, &format!("target_pk={}", enc(&format!("{olga}:theme")))).await;
    assert_eq!(pks(&r), expected(&entries, |e| e["target_type"] == "user_data"));
    assert_eq!(pks(&r).len(), 1);

    // action: one, several; and the time-free combination of everything.
    let r = audit(&w.admin, "action=login").await;
    assert_eq!(pks(&r), expected(&entries, |e| e["action"] == "login"));
    assert_eq!(pks(&r).len(), 3, "admin, olga and plain logged in");
    let r = audit(&w.admin, "action=login&action=create").await;
    assert_eq!(pks(&r), expected(&entries, |e| e["action"] == "login" || e["action"] == "create"));
    assert_eq!(audit(&w.admin, "action=expire").await.body["count"], 0);
    let r = audit(&w.admin, &format!("action=login&actor={}&target_type=users&target_pk={olga}", w.olga_pk)).await;
    assert_eq!(pks(&r), expected(&entries, |e| e["action"] == "login" && e["actor"]["pk"] == w.olga_pk));
    assert_eq!(pks(&r).len(), 1);
    // Empty values are no filter.
    assert_eq!(pks(&audit(&w.admin, "action=&actor=&target_type=").await), expected(&entries, |_| true));

    // A failed login is recorded without an actor, and without the attempted password.
    let r = w.server.anon().post("/api/v1/auth/login/", json!({"username": "olga", "password": "Wr0ng!pass"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let failed = audit(&w.admin, "action=login_failed").await;
    let failed = results(&failed);
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["actor"].is_null());
    assert!(!failed[0].to_string().contains("Wr0ng!pass"));
}

#[tokio::test]
async fn subject_and_object_filters() {
    let w = world().await;
    let r = w.admin.post("/api/v1/objects/", json!({"model": "catalogs", "object_pk": "42"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = w.admin.post("/api/v1/objects/", json!({"model": "catalogs", "object_pk": "43"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = w.admin.patch(&format!("/api/v1/groups/{}/", w.auditors), json!({"description": "Read the log"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let entries = all_entries(&w.admin).await;
    let target = |kind: &'static str, pk: String| move |e: &Value| e["target_type"] == kind && e["target_pk"] == pk.as_str();

    // subject=user:N: entries whose target is that user.
    let r = audit(&w.admin, &format!("subject=user:{}", w.olga_pk)).await;
    assert_eq!(pks(&r), expected(&entries, target("users", w.olga_pk.to_string())));
    assert_eq!(pks(&r).len(), 2);
    // subject=group:N, before and after in `changes`.
    let r = audit(&w.admin, &format!("subject=group:{}", w.auditors)).await;
    assert_eq!(pks(&r), expected(&entries, target("groups", w.auditors.to_string())));
    let found = results(&r);
    assert_eq!(found.len(), 2, "created, then updated");
    assert_eq!(found[0]["action"], "update");
    assert_eq!(found[0]["changes"]["before"]["description"], "");
    assert_eq!(found[0]["changes"]["after"]["description"], "Read the log");
    // role: none yet. Several subjects match any.
    assert_eq!(audit(&w.admin, "subject=role:7").await.body["count"], 0);
    let r = audit(&w.admin, &format!("subject=user:{}&subject=group:{}", w.olga_pk, w.auditors)).await;
    let either = |e: &Value| target("users", w.olga_pk.to_string())(e) || target("groups", w.auditors.to_string())(e);
    assert_eq!(pks(&r), expected(&entries, either));
    // A key of the wrong type matches nothing of that key's other type.
    let r = audit(&w.admin, &format!("subject=role:{}", w.olga_pk)).await;
    assert_eq!(r.body["count"], 0);

    // object=catalogs:42: entries on that object only.
    let r = audit(&w.admin, "object=catalogs:42").await;
    assert_eq!(pks(&r), expected(&entries, target("catalogs", "42".into())));
    assert_eq!(pks(&r).len(), 1);
    assert_eq!(results(&r)[0]["action"], "create");
    let r = audit(&w.admin, "object=catalogs:42&object=catalogs:43").await;
    assert_eq!(pks(&r).len(), 2);
    assert_eq!(audit(&w.admin, "object=catalogs:44").await.body["count"], 0);
    assert_eq!(audit(&w.admin, "object=products:42").await.body["count"], 0);
    // Subject and object together must both hold.
    assert_eq!(audit(&w.admin, &format!("object=catalogs:42&subject=user:{}", w.olga_pk)).await.body["count"], 0);
    // Combined with the other filters.
    let r = audit(&w.admin, &format!("subject=user:{}&action=login", w.olga_pk)).await;
    assert_eq!(pks(&r).len(), 1);
}

#[tokio::test]
async fn since_is_inclusive_and_until_exclusive() {
    let w = world().await;
    let entries = all_entries(&w.admin).await;
    let pivot = &entries[entries.len() / 2];
    let at = pivot["at"].as_str().unwrap().to_string();
    let pk = pivot["pk"].as_i64().unwrap();
    // Entries' `at` strings share one format, so string order is time order.
    let at_of = |e: &Value| e["at"].as_str().unwrap().to_string();

    let r = audit(&w.admin, &format!("since={}", enc(&at))).await;
    assert!(pks(&r).contains(&pk), "since is inclusive");
    assert_eq!(pks(&r), expected(&entries, |e| at_of(e) >= at));
    let r = audit(&w.admin, &format!("until={}", enc(&at))).await;
    assert!(!pks(&r).contains(&pk), "until is exclusive");
    assert_eq!(pks(&r), expected(&entries, |e| at_of(e) < at));
    assert_eq!(audit(&w.admin, &format!("since={0}&until={0}", enc(&at))).await.body["count"], 0);

    // The same instant in another offset, with the `+` encoded or (as browsers may send it) raw.
    let t = time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).unwrap();
    let plus_two = t.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    let shifted = plus_two.format(&time::format_description::well_known::Rfc3339).unwrap();
    assert!(shifted.ends_with("+02:00"), "{shifted}");
    let r = audit(&w.admin, &format!("since={}", enc(&shifted))).await;
    assert_eq!(pks(&r), expected(&entries, |e| at_of(e) >= at));
    let r = audit(&w.admin, &format!("since={shifted}")).await;
    assert_eq!(pks(&r), expected(&entries, |e| at_of(e) >= at));

    // Bounds around everything, and outside everything.
    let r = audit(&w.admin, "since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z").await;
    assert_eq!(pks(&r), expected(&entries, |_| true));
    assert_eq!(audit(&w.admin, "since=2999-01-01T00:00:00Z").await.body["count"], 0);
    assert_eq!(audit(&w.admin, "until=2000-01-01T00:00:00Z").await.body["count"], 0);
    // Combined with another filter.
    let r = audit(&w.admin, &format!("since={}&action=login", enc(&at))).await;
    assert_eq!(pks(&r), expected(&entries, |e| at_of(e) >= at && e["action"] == "login"));
}

#[tokio::test]
async fn ordering_and_paging() {
    let w = world().await;
    let entries = all_entries(&w.admin).await;
    let newest_first = expected(&entries, |_| true);
    let oldest_first: Vec<i64> = newest_first.iter().rev().copied().collect();
    assert_eq!(pks(&audit(&w.admin, "ordering=pk").await), oldest_first);
    assert_eq!(pks(&audit(&w.admin, "ordering=-pk").await), newest_first);
    let by_at = pks(&audit(&w.admin, "ordering=at").await);
    let ats: Vec<String> =
        by_at.iter().map(|pk| entries.iter().find(|e| e["pk"] == *pk).unwrap()["at"].as_str().unwrap().to_string()).collect();
    assert!(ats.windows(2).all(|p| p[0] <= p[1]), "{ats:?}");
    let by_at_desc = pks(&audit(&w.admin, "ordering=-at").await);
    assert_eq!(by_at_desc, by_at.iter().rev().copied().collect::<Vec<_>>());
    let revisions: Vec<Value> =
        results(&audit(&w.admin, "ordering=revision").await).iter().map(|e| e["revision"].clone()).collect();
    let first_number = revisions.iter().position(Value::is_i64).unwrap();
    assert!(revisions[..first_number].iter().all(Value::is_null), "entries without a revision first");
    let numbers: Vec<i64> = revisions[first_number..].iter().map(|v| v.as_i64().unwrap()).collect();
    assert!(numbers.windows(2).all(|p| p[0] < p[1]), "{numbers:?}");
    let desc: Vec<Value> = results(&audit(&w.admin, "ordering=-revision").await).iter().map(|e| e["revision"].clone()).collect();
    assert_eq!(desc, revisions.iter().rev().cloned().collect::<Vec<_>>());

    // Pages of 3 with absolute links; every entry once; past the end is 404.
    let total = entries.len();
    let r = w.admin.get(&format!("{AUDIT}?page_size=3")).await;
    assert_eq!(r.body["count"], total);
    assert!(r.body["previous"].is_null());
    let mut seen = pks(&r);
    let mut next = r.body["next"].as_str().map(str::to_string);
    while let Some(url) = next {
        assert!(url.starts_with("http://") && url.contains("page_size=3"), "{url}");
        let r = Client::read(w.admin.http.get(&url).bearer_auth(w.admin.token.as_ref().unwrap()).send().await.unwrap()).await;
        assert_eq!(r.body["count"], total);
        seen.extend(pks(&r));
        next = r.body["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen, newest_first);
    let past = total.div_ceil(3) + 1;
    w.admin.get(&format!("{AUDIT}?page_size=3&page={past}")).await.error(404, "NotFound");
    let r = w.admin.get(&format!("{AUDIT}?page_size=3&page=2&ordering=pk")).await;
    assert_eq!(pks(&r), oldest_first[3..6].to_vec());
    assert!(r.body["previous"].as_str().is_some_and(|u| u.contains("ordering=pk")));
    // page_size above the maximum is clamped, not refused.
    assert_eq!(w.admin.get(&format!("{AUDIT}?page_size=5000")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn anonymous_is_401_and_no_permission_is_403() {
    let w = world().await;
    w.server.anon().get(AUDIT).await.error(401, "AuthenticationRequired");
    w.server.anon().get(&format!("{AUDIT}?action=bogus")).await.error(401, "AuthenticationRequired");
    let r = w.plain.get(AUDIT).await;
    r.error(403, "PermissionDenied");
    assert_eq!(r.body["detail"], "This method needs permission read on audit.");
    // 403 comes before validation of parameters.
    let r = w.plain.get(&format!("{AUDIT}?action=bogus&since=never")).await;
    r.error(403, "PermissionDenied");
    // A bad token is 401 AuthenticationFailed.
    let bad = Client { token: Some("not-a-token".into()), ..w.server.anon() };
    bad.get(AUDIT).await.error(401, "AuthenticationFailed");
}

#[tokio::test]
async fn non_superusers_see_only_their_organisation() {
    let w = world().await;
    // A second auditor in the same organisation writes something too.
    let kim = w.server.create_user(&w.admin, "kim", json!({"org": w.globex, "groups": [w.auditors]})).await;
    let kim_client = w.server.login("kim", PW).await;
    let r = kim_client.put("/api/v1/active_user/data/lang/", json!("de")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let plain_pk = w.plain.get("/api/v1/users/me/").await.body["pk"].as_i64().unwrap();

    // An entry belongs to the organisation of what changed, whoever changed it (API.md §11): olga sees the
    // superuser's entries about globex (its creation, its group, olga's and kim's accounts) and none about the
    // default organisation's records.
    let everything = all_entries(&w.admin).await;
    let globex_targets = [
        ("orgs", w.globex.to_string()),
        ("groups", w.auditors.to_string()),
        ("users", w.olga_pk.to_string()),
        ("users", kim.to_string()),
    ];
    let own_data = |e: &Value| {
        let key = e["target_pk"].as_str().unwrap_or_default();
        e["target_type"] == "user_data" && [w.olga_pk, kim].iter().any(|u| key.starts_with(&format!("{u}:")))
    };
    let of_globex = |e: &Value| own_data(e) || globex_targets.iter().any(|(t, k)| e["target_type"] == *t && e["target_pk"] == *k);
    let r = audit(&w.olga, "").await;
    let seen = results(&r);
    assert_eq!(r.body["count"].as_u64().unwrap() as usize, seen.len());
    assert_eq!(pks(&r), expected(&everything, of_globex), "exactly the entries about globex's records");
    let (olga_key, plain_key) = (w.olga_pk.to_string(), plain_pk.to_string());
    assert!(seen.iter().any(|e| e["actor"]["pk"] == 1 && e["target_pk"] == olga_key.as_str()), "the admin created olga");
    assert!(seen.iter().all(|e| e["target_pk"] != plain_key.as_str()), "nothing about the default org's users");
    assert!(everything.len() > seen.len());
    // Filters apply within the organisation only.
    assert_eq!(
        audit(&w.olga, "actor=1").await.body["count"].as_u64().unwrap() as usize,
        expected(&everything, |e| of_globex(e) && e["actor"]["pk"] == 1).len()
    );
    let r = audit(&w.olga, &format!("subject=user:{}", w.olga_pk)).await;
    assert_eq!(pks(&r), expected(&everything, |e| e["target_type"] == "users" && e["target_pk"] == olga_key.as_str()));
    // A failed login on a globex account is about that account; one for an unknown name is about no organisation.
    assert_eq!(audit(&w.olga, "action=login_failed").await.body["count"], 0);
    let r = w.server.anon().post("/api/v1/auth/login/", json!({"username": "olga", "password": "Wr0ng!pass"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = w.server.anon().post("/api/v1/auth/login/", json!({"username": "nobody", "password": "Wr0ng!pass"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(audit(&w.olga, "action=login_failed").await.body["count"], 1, "the one on olga's account");
    assert_eq!(audit(&w.admin, "action=login_failed").await.body["count"], 2, "superusers see all organisations");

    // The superuser sees every organisation's entries, olga's included.
    let admin_view = pks(&audit(&w.admin, "").await);
    let olga_view = pks(&audit(&w.olga, "").await);
    assert!(olga_view.iter().all(|pk| admin_view.contains(pk)));
    assert!(admin_view.len() > olga_view.len());

    // Paging inside the organisation counts only its entries.
    let r = w.olga.get(&format!("{AUDIT}?page_size=3")).await;
    assert_eq!(r.body["count"].as_u64().unwrap() as usize, olga_view.len());
    assert!(r.body["next"].is_string());
    let past = olga_view.len().div_ceil(3) + 1;
    w.olga.get(&format!("{AUDIT}?page_size=3&page={past}")).await.error(404, "NotFound");
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_field() {
    let w = world().await;
    let cases: &[(&str, &[&str])] = &[
        ("actor=x", &["actor"]),
        ("actor=1,x", &["actor"]),
        ("target_type=Not%20A%20Module", &["target_type"]),
        ("action=bogus", &["action"]),
        ("action=login,LOGIN", &["action"]),
        ("since=yesterday", &["since"]),
        ("since=2022-12-21", &["since"]),
        ("since=2022-12-21T10:32:51", &["since"]),
        ("until=2022-13-01T00:00:00Z", &["until"]),
        ("subject=user", &["subject"]),
        ("subject=user:", &["subject"]),
        ("subject=user:x", &["subject"]),
        ("subject=catalog:1", &["subject"]),
        ("subject=5", &["subject"]),
        ("object=catalogs", &["object"]),
        ("object=:42", &["object"]),
        ("object=catalogs:", &["object"]),
        ("object=Catalogs:42", &["object"]),
        ("ordering=username", &["ordering"]),
        ("ordering=-bogus", &["ordering"]),
        ("ordering=at,nope", &["ordering"]),
        ("page_size=0", &["page_size"]),
        ("page_size=x", &["page_size"]),
    ];
    for (query, fields) in cases {
        let r = w.admin.get(&format!("{AUDIT}?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        invalid(&r, fields);
    }
    // Every bad field at once.
    let r = w.admin.get(&format!("{AUDIT}?actor=x&action=bogus&since=x&until=y&subject=z&object=w&ordering=q")).await;
    invalid(&r, &["actor", "action", "since", "until", "subject", "object", "ordering"]);
    // Too many values in one filter.
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    invalid(&w.admin.get(&format!("{AUDIT}?actor={}", many.join(","))).await, &["actor"]);
    // Not a 400: an unknown page is 404, and a non-superuser's bad parameter still 400 in the same shape.
    w.admin.get(&format!("{AUDIT}?page=0")).await.error(404, "NotFound");
    invalid(&w.olga.get(&format!("{AUDIT}?action=bogus")).await, &["action"]);
    // Every valid action is accepted.
    for action in
        ["create", "update", "delete", "assign", "unassign", "expire", "login", "logout", "login_failed", "password_change"]
    {
        assert_eq!(w.admin.get(&format!("{AUDIT}?action={action}")).await.status, StatusCode::OK, "{action}");
    }
}

#[tokio::test]
async fn secrets_never_appear_in_changes() {
    let w = world().await;
    // Passwords set on creation, by an admin, and by the user; a personal token; sessions.
    let pk = w.server.create_user(&w.admin, "secretive", json!({"password": "Cr3ate!secret"})).await;
    let r = w.admin.patch(&format!("/api/v1/users/{pk}/"), json!({"password": "Adm1n!secret"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = w.server.login("secretive", "Adm1n!secret").await;
    let r = me
        .put("/api/v1/active_user/change_password/", json!({"old_password": "Adm1n!secret", "new_password": "S3lf!secret"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = me.post("/api/v1/active_user/tokens/", json!({"name": "ci"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let api_token = r.body["token"].as_str().unwrap().to_string();
    let r = w.server.anon().post("/api/v1/auth/login/", json!({"username": "secretive", "password": "Wr0ng!secret"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = audit(&w.admin, "").await;
    let text = r.body.to_string();
    for secret in ["Cr3ate!secret", "Adm1n!secret", "S3lf!secret", "Wr0ng!secret", "Passw0rd!", common::ADMIN_PASSWORD] {
        assert!(!text.contains(secret), "a password appears in the audit log");
    }
    assert!(!text.contains("$argon2"), "a password hash appears in the audit log");
    assert!(!text.contains(&api_token), "an API token appears in the audit log");
    for client in [&w.admin, &w.olga, &w.plain, &me] {
        assert!(!text.contains(client.token.as_deref().unwrap()), "a session secret appears in the audit log");
    }
    for e in results(&r) {
        for key in ["password_hash", "secret_hash", "secret", "token"] {
            assert!(!e["changes"].to_string().contains(&format!("\"{key}\"")), "{key} in {e}");
        }
    }
    // The password changes (an administrator's reset and the user's own change) are recorded as such, as a fact only.
    let r = audit(&w.admin, &format!("subject=user:{pk}&action=password_change")).await;
    let changes = results(&r);
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(changes.iter().all(|e| e["changes"]["after"]["password"] == "changed"), "{changes:#?}");
    assert!(results(&audit(&w.admin, &format!("subject=user:{pk}&action=update")).await).is_empty());
}

#[tokio::test]
async fn writes_on_the_audit_log_are_405() {
    let w = world().await;
    let before = w.server.revision().await;
    let count = audit(&w.admin, "").await.body["count"].clone();
    w.admin.delete(AUDIT).await.error(405, "MethodNotAllowed");
    w.admin.post(AUDIT, json!({"action": "create"})).await.error(405, "MethodNotAllowed");
    w.admin.put(AUDIT, json!({})).await.error(405, "MethodNotAllowed");
    w.admin.patch(AUDIT, json!({})).await.error(405, "MethodNotAllowed");
    w.admin.send(Method::DELETE, "/api/v1/audit", None).await.error(405, "MethodNotAllowed");
    w.admin.get("/api/v1/audit/1/").await.error(404, "NotFound");
    assert_eq!(w.server.revision().await, before);
    assert_eq!(audit(&w.admin, "").await.body["count"], count, "the log is append-only: nothing was removed");
}
