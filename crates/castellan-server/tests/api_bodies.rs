//! Request bodies: a field no endpoint reads is refused with 400 naming it, beside any other bad field, and the
//! write changes nothing (a field ignored in silence would pass its own tests and fail its users).

mod common;

use common::{ADMIN_PASSWORD, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

/// Adds the unknown field `bogus` to an object body.
fn with_bogus(mut body: Value) -> Value {
    body["bogus"] = json!(1);
    body
}

#[tokio::test]
async fn every_json_body_refuses_a_field_it_does_not_read() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/modules/", json!({"id": "brands", "description": "Brands"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = server.create_user(&admin, "ann", json!({})).await;
    let group = admin.post("/api/v1/groups/", json!({"name": "Staff"})).await.body["pk"].as_i64().unwrap();
    let role = admin.post("/api/v1/roles/", json!({"name": "Editors"})).await.body["pk"].as_i64().unwrap();

    let writes: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/v1/users/".into(),
            json!({"username": "bob", "password": "Passw0rd!", "email": "b@x.io", "groups": []}),
        ),
        (Method::PATCH, format!("/api/v1/users/{user}/"), json!({"first_name": "Ann"})),
        (Method::PUT, format!("/api/v1/users/{user}/"), json!({"username": "ann", "email": "a@x.io", "groups": []})),
        (Method::POST, "/api/v1/groups/".into(), json!({"name": "Other"})),
        (Method::PATCH, format!("/api/v1/groups/{group}/"), json!({"description": "d"})),
        (Method::PATCH, format!("/api/v1/groups/{group}/assign-users/"), json!({"users": [user]})),
        (Method::PATCH, format!("/api/v1/groups/{group}/remove-users/"), json!({"users": [user]})),
        (Method::POST, "/api/v1/orgs/".into(), json!({"name": "Acme"})),
        (Method::PATCH, "/api/v1/orgs/1/".into(), json!({"description": "d"})),
        (
            Method::PUT,
            "/api/v1/orgs/1/password_policy/".into(),
            json!({"min_length": 8, "require_upper": true, "require_digit": true, "require_special": true}),
        ),
        (Method::POST, "/api/v1/roles/".into(), json!({"name": "Viewers"})),
        (Method::PATCH, format!("/api/v1/roles/{role}/"), json!({"description": "d"})),
        (Method::PATCH, format!("/api/v1/roles/{role}/assign-users/"), json!({"users": [user]})),
        (Method::PUT, format!("/api/v1/roles/{role}/permissions/brands/"), json!({"permissions": ["read"]})),
        (Method::PUT, format!("/api/v1/users/{user}/permissions/brands/"), json!({"permissions": ["read"]})),
        (Method::POST, "/api/v1/modules/".into(), json!({"id": "shops", "description": "Shops"})),
        (Method::PATCH, "/api/v1/modules/brands/".into(), json!({"description": "d"})),
        (Method::POST, "/api/v1/objects/".into(), json!({"model": "brands", "object_pk": "b1"})),
        (
            Method::POST,
            format!("/api/v1/rbac/permissions/assigned_by_users/{user}/assign/"),
            json!({"permissions": ["brands.read"], "model": "brands", "object_pk": "b1"}),
        ),
        (Method::POST, "/api/v1/active_user/tokens/".into(), json!({"name": "ci"})),
        (Method::PATCH, "/api/v1/active_user/".into(), json!({"first_name": "Root"})),
        (Method::PATCH, "/api/v1/active_user/".into(), json!({"userprofile": {"phone_number": "+4912345678", "bogus": 1}})),
        (
            Method::PUT,
            "/api/v1/active_user/change_password/".into(),
            json!({"old_password": ADMIN_PASSWORD, "new_password": "N3w-passw0rd!"}),
        ),
    ];
    for (method, path, body) in writes {
        let before = server.revision().await;
        let nested = body.pointer("/userprofile/bogus").is_some();
        let body = if nested { body } else { with_bogus(body) };
        let r = admin.send(method.clone(), &path, Some(body.clone())).await;
        r.error(400, "ValidationError");
        let expected = if nested { "userprofile.bogus" } else { "bogus" };
        assert!(r.fields().iter().any(|f| f == expected), "{method} {path} {body} → {}", r.body);
        assert_eq!(server.revision().await, before, "{method} {path}: a refused write changes nothing");
    }

    // Reads with a body, and the one public write.
    let reads: Vec<(&str, Value)> = vec![
        ("/api/v1/check/", json!({"permission": "brands.read"})),
        ("/api/v1/check/bulk/", json!({"checks": [{"permission": "brands.read"}]})),
        ("/api/v1/check/bulk/", json!({"checks": [{"permission": "brands.read", "bogus": 1}]})),
        ("/api/v1/lookup/users/", json!({"permission": "brands.read"})),
        ("/api/v1/lookup/objects/", json!({"permission": "brands.read", "model": "brands"})),
    ];
    for (path, body) in reads {
        let in_item = body.pointer("/checks/0/bogus").is_some();
        let body = if in_item { body } else { with_bogus(body) };
        let r = admin.post(path, body.clone()).await;
        r.error(400, "ValidationError");
        let expected = if in_item { "checks[0].bogus" } else { "bogus" };
        assert!(r.fields().iter().any(|f| f == expected), "{path} {body} → {}", r.body);
    }
    // Fields a lookup reads for other requests but could not apply are refused too.
    let r = admin.post("/api/v1/lookup/users/", json!({"permission": "brands.read", "user": 1})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["user"]);
    let r =
        admin.post("/api/v1/lookup/objects/", json!({"permission": "brands.read", "model": "brands", "object_pk": "b1"})).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["object_pk"]);
    let r = server.anon().post("/api/v1/auth/login/", with_bogus(json!({"username": "admin", "password": ADMIN_PASSWORD}))).await;
    r.error(400, "ValidationError");
    assert_eq!(r.fields(), ["bogus"]);

    // A body with the same fields and nothing else is taken.
    let r = admin.patch(&format!("/api/v1/users/{user}/"), json!({"first_name": "Ann"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["first_name"], "Ann");
}

#[tokio::test]
async fn unknown_fields_are_named_beside_the_other_bad_ones() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let r = admin.post("/api/v1/groups/", json!({"nmae": "Typo", "description": 5})).await;
    r.error(400, "ValidationError");
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(fields, ["description", "name", "nmae"], "{}", r.body);
}

/// A body with every property `schema` documents: null for a value, the same built again for a nested object or
/// the items of a list of objects.
fn every_documented_field(doc: &Value, schema: &Value) -> Value {
    let resolve = |s: &Value| match s["$ref"].as_str() {
        Some(r) => doc.pointer(&r.replace("#/", "/")).cloned().unwrap_or(Value::Null),
        None => s.clone(),
    };
    let schema = resolve(schema);
    let mut body = serde_json::Map::new();
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let property = resolve(property);
        let value = if property["properties"].is_object() {
            every_documented_field(doc, &property)
        } else if property["items"]["$ref"].is_string() {
            json!([every_documented_field(doc, &property["items"])])
        } else {
            Value::Null
        };
        body.insert(name.clone(), value);
    }
    Value::Object(body)
}

#[tokio::test]
async fn no_documented_field_is_refused_as_unknown() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    assert_eq!(admin.post("/api/v1/modules/", json!({"id": "brands", "description": "Brands"})).await.status, 201);
    assert_eq!(admin.post("/api/v1/groups/", json!({"name": "Staff"})).await.body["pk"], 1);
    assert_eq!(admin.post("/api/v1/roles/", json!({"name": "Editors"})).await.body["pk"], 1);
    let doc = admin.get("/api/v1/schema/").await.body;
    let mut sent = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") else { continue };
            let body = every_documented_field(&doc, schema);
            if body.as_object().is_none_or(|b| b.is_empty()) {
                continue;
            }
            let path =
                path.replace("{pk}", "1").replace("{group_pk}", "1").replace("{module_id}", "brands").replace("{id}", "brands");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = admin.send(method.clone(), &path, Some(body.clone())).await;
            let unknown: Vec<_> =
                r.body["errors"].as_array().into_iter().flatten().filter(|e| e["message"] == "Unknown field.").collect();
            assert!(unknown.is_empty(), "{method} {path} refuses documented fields: {unknown:?} (body {body})");
            sent += 1;
        }
    }
    assert!(sent >= 40, "{sent} bodies sent");
}
