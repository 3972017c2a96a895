//! Roles over HTTP (API.md §6, §10, §11): roles with their organisation scoping, assigning and removing users and
//! groups, and the dominance an assignment needs, also when it reaches through the roles of groups.

mod common;

use common::TestServer;
use common::permissions::{
    bad_field, denied, grant, group_pk, keys, me, member, ok, quick_user, role_change, role_pk, second_org, strings, x_rev,
};
use reqwest::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn roles_crud_with_org_scoping() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let (_, org1) = me(&admin).await;
    let before = server.revision().await;
    let r = admin.post("/api/v1/roles/", json!({"name": "Editors", "description": "Edit things"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(x_rev(&r) > before);
    for k in ["pk", "name", "description", "org", "users", "groups"] {
        assert!(r.body.get(k).is_some(), "{k} in {}", r.body);
    }
    assert_eq!(r.body["name"], "Editors");
    assert_eq!(r.body["description"], "Edit things");
    assert_eq!(r.body["org"], org1, "a role created without org belongs to the creator's");
    assert_eq!(r.body["users"], json!([]));
    assert_eq!(r.body["groups"], json!([]));
    let editors = r.body["pk"].as_i64().unwrap();
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{editors}/")).await), &r.body);
    let list = admin.get("/api/v1/roles/").await;
    assert_eq!(keys(ok(&list)), strings(&["count", "next", "previous", "results"]));
    assert!(list.body["results"].as_array().unwrap().contains(&r.body));
    let r58 = admin
        .post("/api/v1/modules/", json!({"id": "wide", "actions": (0..58).map(|i| format!("act{i}")).collect::<Vec<_>>()}))
        .await;
    assert_eq!(r58.body["actions"].as_array().map(Vec::len), Some(64), "64 actions fit: {}", r58.body);

    let before = server.revision().await;
    admin.post("/api/v1/roles/", json!({"name": "Editors"})).await.error(409, "Conflict");
    bad_field(&admin.post("/api/v1/roles/", json!({"description": "no name"})).await, "name");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": ""})).await, "name");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": 5})).await, "name");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": "x", "org": 99_999})).await, "org");
    bad_field(&admin.post("/api/v1/roles/", json!({"name": "x", "org": "one"})).await, "org");
    assert_eq!(server.revision().await, before);

    let org2 = second_org(&admin).await;
    let r = admin.post("/api/v1/roles/", json!({"name": "Editors", "org": org2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "the same name in another organisation: {}", r.body);
    assert_eq!(r.body["org"], org2);
    let foreign = r.body["pk"].as_i64().unwrap();

    let viewers = role_pk(&admin, "Viewers").await;
    let found = admin.get("/api/v1/roles/?search=view").await;
    assert_eq!(ok(&found)["count"], 1, "{}", found.body);
    assert_eq!(found.body["results"][0]["pk"], viewers);
    let before = server.revision().await;
    admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"name": "Editors"})).await.error(409, "Conflict");
    bad_field(&admin.put(&format!("/api/v1/roles/{viewers}/"), json!({"description": "x"})).await, "name");
    bad_field(&admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"org": org2})).await, "org");
    bad_field(&admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"name": "  "})).await, "name");
    assert_eq!(server.revision().await, before);
    let r = admin.patch(&format!("/api/v1/roles/{viewers}/"), json!({"description": "Look only"})).await;
    assert_eq!(ok(&r)["description"], "Look only");
    assert_eq!(r.body["name"], "Viewers");
    assert!(x_rev(&r) > before);
    let r = admin.put(&format!("/api/v1/roles/{viewers}/"), json!({"name": "Readers"})).await;
    assert_eq!(ok(&r)["name"], "Readers");

    // A non-superuser sees only the roles of their organisation.
    let g = group_pk(&admin, "Role admins", None, json!({"roles": ["full"], "permissions": ["read"]})).await;
    let (_, ra) = member(&server, &admin, "roleadmin", &[g]).await;
    let list = ra.get("/api/v1/roles/").await;
    let results = ok(&list)["results"].as_array().unwrap();
    assert!(results.iter().all(|x| x["org"] == org1), "{}", list.body);
    assert_eq!(list.body["count"].as_i64().unwrap(), results.len() as i64);
    assert!(results.iter().any(|x| x["pk"] == editors));
    assert!(!results.iter().any(|x| x["pk"] == foreign));
    let before = server.revision().await;
    ra.get(&format!("/api/v1/roles/{foreign}/")).await.error(404, "NotFound");
    ra.patch(&format!("/api/v1/roles/{foreign}/"), json!({"description": "x"})).await.error(404, "NotFound");
    ra.put(&format!("/api/v1/roles/{foreign}/"), json!({"name": "x"})).await.error(404, "NotFound");
    ra.delete(&format!("/api/v1/roles/{foreign}/")).await.error(404, "NotFound");
    ra.patch(&format!("/api/v1/roles/{foreign}/assign-users/"), json!({"users": []})).await.error(404, "NotFound");
    ra.get(&format!("/api/v1/roles/{foreign}/permissions/")).await.error(404, "NotFound");
    ra.get(&format!("/api/v1/roles/{foreign}/permissions/users/")).await.error(404, "NotFound");
    let r = ra.post("/api/v1/roles/", json!({"name": "Theirs", "org": org2})).await;
    assert!(matches!(r.status.as_u16(), 400 | 404), "creating a role in another organisation: {}", r.body);
    assert_eq!(server.revision().await, before);
    let r = ra.post("/api/v1/roles/", json!({"name": "Mine"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["org"], org1);

    // Deleting.
    let r = admin.delete(&format!("/api/v1/roles/{editors}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(x_rev(&r) > 0);
    admin.get(&format!("/api/v1/roles/{editors}/")).await.error(404, "NotFound");
    let before = server.revision().await;
    admin.delete(&format!("/api/v1/roles/{editors}/")).await.error(404, "NotFound");
    admin.get("/api/v1/roles/99999/").await.error(404, "NotFound");
    admin.get("/api/v1/roles/abc/").await.error(404, "NotFound");
    admin.patch("/api/v1/roles/99999/", json!({"name": "x"})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);

    // 401 and the endpoint's permission.
    let (_, nobody) = member(&server, &admin, "nobody", &[]).await;
    let before = server.revision().await;
    server.anon().get("/api/v1/roles/").await.error(401, "AuthenticationRequired");
    server.anon().post("/api/v1/roles/", json!({"name": "x"})).await.error(401, "AuthenticationRequired");
    denied(&nobody.get("/api/v1/roles/").await, "This method needs permission read on roles.");
    denied(&nobody.post("/api/v1/roles/", json!({"name": "x"})).await, "This method needs permission create on roles.");
    denied(&nobody.get(&format!("/api/v1/roles/{viewers}/")).await, "This method needs permission read on roles.");
    denied(&nobody.delete(&format!("/api/v1/roles/{viewers}/")).await, "This method needs permission delete on roles.");
    denied(
        &nobody.patch(&format!("/api/v1/roles/{viewers}/assign-users/"), json!({"users": []})).await,
        "This method needs permission update on roles.",
    );
    assert_eq!(server.revision().await, before);
}

#[tokio::test]
async fn role_assignments() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let g2 = group_pk(&admin, "Team 2", None, json!({})).await;
    let u1 = quick_user(&admin, "one", json!({"groups": [g]})).await;
    let u2 = quick_user(&admin, "two", json!({})).await;
    let role = role_pk(&admin, "Role").await;

    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u2, u1]})).await;
    assert_eq!(ok(&r)["pk"], role);
    assert_eq!(r.body["users"], json!([u1, u2]));
    assert_eq!(r.body["groups"], json!([]));
    assert_eq!(x_rev(&r), server.revision().await);
    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [g, g2]})).await;
    assert_eq!(ok(&r)["groups"], json!([g, g2]));
    assert_eq!(r.body["users"], json!([u1, u2]));
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/")).await)["groups"], json!([g, g2]));
    let r = admin.patch(&format!("/api/v1/roles/{role}/remove-users/"), json!({"users": [u2]})).await;
    assert_eq!(ok(&r)["users"], json!([u1]));
    let r = admin.patch(&format!("/api/v1/roles/{role}/remove-groups/"), json!({"groups": [g2]})).await;
    assert_eq!(ok(&r)["groups"], json!([g]));
    // Assigning twice is one assignment; removing what is not assigned is harmless.
    let r = admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u1]})).await;
    assert_eq!(ok(&r)["users"], json!([u1]));
    let r = admin.patch(&format!("/api/v1/roles/{role}/remove-users/"), json!({"users": [u2]})).await;
    assert_eq!(ok(&r)["users"], json!([u1]));

    let org2 = second_org(&admin).await;
    let stranger = quick_user(&admin, "stranger", json!({"org": org2})).await;
    let before = server.revision().await;
    admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [99_999]})).await.error(404, "NotFound");
    admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u2, 99_999]})).await.error(404, "NotFound");
    admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [99_999]})).await.error(404, "NotFound");
    admin.patch(&format!("/api/v1/roles/{role}/remove-groups/"), json!({"groups": [99_999]})).await.error(404, "NotFound");
    admin.patch("/api/v1/roles/99999/assign-users/", json!({"users": [u2]})).await.error(404, "NotFound");
    let past = json!({"users": [u2], "expires_at": "2000-01-01T00:00:00Z"});
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), past).await, "expires_at");
    let past = json!({"groups": [g2], "expires_at": "2001-01-01T00:00:00.000000Z"});
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), past).await, "expires_at");
    let garbage = json!({"users": [u2], "expires_at": "tomorrow"});
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), garbage).await, "expires_at");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({})).await, "users");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": "x"})).await, "users");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"groups": [0]})).await, "groups");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-groups/"), json!({"users": [u2]})).await, "groups");
    bad_field(&admin.patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [stranger]})).await, "users");
    assert_eq!(server.revision().await, before, "refused assignments change nothing");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{role}/")).await)["users"], json!([u1]));

    let r = admin
        .patch(&format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [u2], "expires_at": "2999-01-01T00:00:00Z"}))
        .await;
    assert_eq!(ok(&r)["users"], json!([u1, u2]), "an assignment that expires later counts now");

    // Deleting a role deletes its assignments and its grants.
    grant(&admin, &format!("roles/{role}"), "users", &["read"]).await;
    let (_, three) = member(&server, &admin, "three", &[]).await;
    let three_pk = me(&three).await.0;
    role_change(&admin, role, "assign-users", "users", &[three_pk]).await;
    assert_eq!(three.get("/api/v1/users/").await.status, StatusCode::OK);
    let r = admin.delete(&format!("/api/v1/roles/{role}/")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    denied(&three.get("/api/v1/users/").await, "This method needs permission read on users.");
}

#[tokio::test]
async fn role_assignment_needs_what_the_role_confers() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Role editors", None, json!({"roles": ["read", "update"], "users": ["read"]})).await;
    let (_, caller) = member(&server, &admin, "caller", &[g]).await;
    let target = quick_user(&admin, "target", json!({"groups": [g]})).await;
    let strong = role_pk(&admin, "Deleters").await;
    grant(&admin, &format!("roles/{strong}"), "users", &["delete"]).await;
    let weak = role_pk(&admin, "Readers").await;
    grant(&admin, &format!("roles/{weak}"), "users", &["read"]).await;

    let before = server.revision().await;
    let r = caller.patch(&format!("/api/v1/roles/{strong}/assign-users/"), json!({"users": [target]})).await;
    r.error(403, "PermissionDenied");
    caller.patch(&format!("/api/v1/roles/{strong}/assign-groups/"), json!({"groups": [g]})).await.error(403, "PermissionDenied");
    let r = caller.patch(&format!("/api/v1/roles/{strong}/assign-users/"), json!({"users": [me(&caller).await.0]})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(server.revision().await, before, "refused assignments change nothing");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{strong}/")).await)["users"], json!([]));

    let r = caller.patch(&format!("/api/v1/roles/{weak}/assign-users/"), json!({"users": [target]})).await;
    assert_eq!(ok(&r)["users"], json!([target]), "what the caller holds may be assigned");

    // Revoking needs holding what is revoked.
    role_change(&admin, strong, "assign-users", "users", &[target]).await;
    let before = server.revision().await;
    caller
        .patch(&format!("/api/v1/roles/{strong}/remove-users/"), json!({"users": [target]}))
        .await
        .error(403, "PermissionDenied");
    assert_eq!(server.revision().await, before);
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{strong}/")).await)["users"], json!([target]));
    let r = caller.patch(&format!("/api/v1/roles/{weak}/remove-users/"), json!({"users": [target]})).await;
    assert_eq!(ok(&r)["users"], json!([]));

    // Users outside the caller's sight answer 404 before dominance is considered.
    let outsider = quick_user(&admin, "outsider", json!({})).await;
    let before = server.revision().await;
    caller.patch(&format!("/api/v1/roles/{weak}/assign-users/"), json!({"users": [outsider]})).await.error(404, "NotFound");
    caller.patch(&format!("/api/v1/roles/{strong}/assign-users/"), json!({"users": [outsider]})).await.error(404, "NotFound");
    assert_eq!(server.revision().await, before);
}

// ---------------------------------------------------------------------------------------------------------------
// Dominance reaching through roles of groups
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn group_representation_lists_its_roles() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let g = group_pk(&admin, "Team", None, json!({})).await;
    let role = role_pk(&admin, "Role").await;
    role_change(&admin, role, "assign-groups", "groups", &[g]).await;
    assert_eq!(ok(&admin.get(&format!("/api/v1/groups/{g}/")).await)["roles"], json!([role]));
}

#[tokio::test]
async fn joining_a_group_confers_its_roles_so_needs_them() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let top = group_pk(&admin, "Top", None, json!({"groups": ["read", "update"], "users": ["read"]})).await;
    let sub = group_pk(&admin, "Sub", Some(top), json!({})).await;
    let (_, caller) = member(&server, &admin, "joiner", &[top]).await;
    let peer = quick_user(&admin, "peer", json!({"groups": [top]})).await;
    let role = role_pk(&admin, "Deleters").await;
    grant(&admin, &format!("roles/{role}"), "users", &["delete"]).await;
    role_change(&admin, role, "assign-groups", "groups", &[sub]).await;
    let before = server.revision().await;
    let r = caller.put(&format!("/api/v1/users/{peer}/groups/{sub}/"), json!({})).await;
    r.error(403, "PermissionDenied");
    assert_eq!(server.revision().await, before);
}

/// A group's `roles` is written on POST, PUT and PATCH `groups/` (API.md §10, settled): gated by `roles.update`,
/// dominance-checked (what a role confers, added or removed), and a role of another org is a bad field.
#[tokio::test]
async fn group_roles_are_written_gated_and_dominance_checked() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let auditors = role_pk(&admin, "Auditors").await;
    grant(&admin, &format!("roles/{auditors}"), "audit", &["read"]).await;
    let r = admin.post("/api/v1/groups/", json!({"name": "Team", "roles": [auditors]})).await;
    assert_eq!((r.status, &r.body["roles"]), (StatusCode::CREATED, &json!([auditors])), "{}", r.body);
    let team = r.body["pk"].as_i64().unwrap();
    let (alice, _) = member(&server, &admin, "alice", &[team]).await;
    let rev = server.revision().await;
    let holds = |rev: i64| {
        let admin = admin.clone();
        async move {
            let body = json!({"user": alice, "permission": "audit.read", "at_least_revision": rev});
            ok(&admin.post("/api/v1/check/", body).await)["allowed"].as_bool().unwrap()
        }
    };
    assert!(holds(rev).await, "the group's role reaches its members");
    assert_eq!(ok(&admin.get(&format!("/api/v1/roles/{auditors}/")).await)["groups"], json!([team]));

    // A manager of groups without roles.update, then one with it but without what the role confers.
    let editors = group_pk(&admin, "Editors", None, json!({"groups": ["read", "update"]})).await;
    let (_, editor) = member(&server, &admin, "editor", &[editors, team]).await;
    let before = server.revision().await;
    editor.patch(&format!("/api/v1/groups/{team}/"), json!({"roles": []})).await.error(403, "PermissionDenied");
    let stronger = role_pk(&admin, "Stronger").await;
    grant(&admin, &format!("roles/{stronger}"), "users", &["full"]).await;
    let role_editors = group_pk(&admin, "RoleEditors", None, json!({"roles": ["read", "update"]})).await;
    let (_, role_editor) = member(&server, &admin, "roleeditor", &[editors, role_editors, team]).await;
    let before = before.max(server.revision().await);
    denied(
        &role_editor.patch(&format!("/api/v1/groups/{team}/"), json!({"roles": [auditors, stronger]})).await,
        "You cannot confer or revoke permissions you do not hold.",
    );
    assert_eq!(server.revision().await, before, "nothing written");
    let r = role_editor.patch(&format!("/api/v1/groups/{team}/"), json!({"roles": []})).await;
    assert_eq!((r.status, &r.body["roles"]), (StatusCode::OK, &json!([])), "{}", r.body);
    assert!(!holds(x_rev(&r)).await, "unassigned");

    // Bad values, and a role of another org, change nothing.
    let org2 = second_org(&admin).await;
    let r = admin.post("/api/v1/roles/", json!({"name": "Foreign", "org": org2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let foreign = r.body["pk"].as_i64().unwrap();
    let before = server.revision().await;
    for roles in [json!([foreign]), json!([999_999]), json!("x"), json!(null), json!(["a"])] {
        bad_field(&admin.patch(&format!("/api/v1/groups/{team}/"), json!({"roles": roles})).await, "roles");
        bad_field(&admin.post("/api/v1/groups/", json!({"name": "New", "roles": roles})).await, "roles");
    }
    assert_eq!(server.revision().await, before);
    let r = admin.put(&format!("/api/v1/groups/{team}/"), json!({"name": "Team", "roles": [auditors]})).await;
    assert_eq!((r.status, &r.body["roles"]), (StatusCode::OK, &json!([auditors])), "{}", r.body);
}

/// A role names only the holders the caller may see, and counts the others (API.md §10 "Lists at scale", §11
/// "Visibility"), in its detail, the list and the answers of its writes.
#[tokio::test]
async fn roles_name_only_the_holders_the_caller_sees() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let team = group_pk(&admin, "Team", None, json!({"roles": ["read"]})).await;
    let elsewhere = group_pk(&admin, "Elsewhere", None, json!({})).await;
    let (_, reader) = member(&server, &admin, "reader", &[team]).await;
    let mate = quick_user(&admin, "mate", json!({"groups": [team]})).await;
    let stranger = quick_user(&admin, "stranger", json!({"groups": [elsewhere]})).await;
    let role = role_pk(&admin, "Viewers").await;
    role_change(&admin, role, "assign-users", "users", &[mate, stranger]).await;
    role_change(&admin, role, "assign-groups", "groups", &[team, elsewhere]).await;

    let shown = |body: &serde_json::Value| {
        let fields = ["users", "users_count", "users_hidden", "groups", "groups_count", "groups_hidden"];
        fields.map(|f| body[f].clone())
    };
    let r = reader.get(&format!("/api/v1/roles/{role}/")).await;
    assert_eq!(shown(ok(&r)), [json!([mate]), json!(1), json!(1), json!([team]), json!(1), json!(1)], "{}", r.body);
    let r = reader.get("/api/v1/roles/").await;
    let listed = ok(&r)["results"].as_array().unwrap().iter().find(|x| x["pk"] == role).cloned().unwrap();
    assert_eq!(shown(&listed), [json!([mate]), json!(1), json!(1), json!([team]), json!(1), json!(1)]);
    let mut everyone = [mate, stranger];
    everyone.sort_unstable();
    let mut both = [team, elsewhere];
    both.sort_unstable();
    let r = admin.get(&format!("/api/v1/roles/{role}/")).await;
    assert_eq!(shown(ok(&r)), [json!(everyone), json!(2), json!(0), json!(both), json!(2), json!(0)], "{}", r.body);

    // The paged sub-resources list the same holders, as users and groups.
    let pks =
        |r: &common::Resp| ok(r)["results"].as_array().unwrap().iter().map(|x| x["pk"].as_i64().unwrap()).collect::<Vec<_>>();
    let r = reader.get(&format!("/api/v1/roles/{role}/users/")).await;
    assert_eq!((pks(&r), &r.body["count"], &r.body["results"][0]["username"]), (vec![mate], &json!(1), &json!("mate")));
    let r = reader.get(&format!("/api/v1/roles/{role}/groups/")).await;
    assert_eq!((pks(&r), &r.body["results"][0]["name"]), (vec![team], &json!("Team")));
    let r = admin.get(&format!("/api/v1/roles/{role}/users/?page_size=1&page=2")).await;
    assert_eq!((pks(&r), &r.body["count"]), (vec![everyone[1]], &json!(2)), "{}", r.body);
    assert_eq!(admin.get(&format!("/api/v1/roles/{role}/groups/")).await.body["count"], 2);
    admin.get(&format!("/api/v1/roles/{role}/users/?page=9")).await.error(404, "NotFound");
    admin.get("/api/v1/roles/999999/users/").await.error(404, "NotFound");
    server.create_user(&admin, "outsider", json!({})).await;
    server
        .login("outsider", common::auth::USER_PASSWORD)
        .await
        .get(&format!("/api/v1/roles/{role}/groups/"))
        .await
        .error(403, "PermissionDenied");
}
