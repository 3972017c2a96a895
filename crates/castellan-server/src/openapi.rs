//! The served OpenAPI document: each route's own description, plus what every operation shares and no single
//! handler declares (error answers in the §1 shape, authentication schemes, the `dry_run` parameter).

use utoipa::OpenApi as _;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

use crate::error::{ErrorBody, FieldErrorOut};

#[derive(utoipa::OpenApi)]
#[openapi(info(title = "Castellan", description = "Users, groups, roles and permissions."))]
struct ApiDoc;

/// The media type of every body the API reads and writes.
pub(crate) const JSON: &str = "application/json";

/// Routes any client may call without credentials.
const PUBLIC: &[&str] = &["/api/v1/auth/login/"];

/// The whole OpenAPI 3.1 document, generated from the routes.
pub fn openapi() -> OpenApi {
    let (_, api) = crate::api::router().split_for_parts();
    document(api)
}

/// The routes' description inside the document's frame, with what middleware adds to every operation.
pub fn document(routes: OpenApi) -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    crate::dry_run::document(&mut doc);
    document_patches(&mut doc);
    document_security(&mut doc);
    document_errors(&mut doc);
    doc
}

/// A PATCH takes any subset of its resource's fields: its body is the resource's body with nothing required.
fn document_patches(doc: &mut OpenApi) {
    let Some(components) = &doc.components else { return };
    for item in doc.paths.paths.values_mut() {
        let Some(RefOr::T(body)) = item.patch.as_mut().and_then(|op| op.request_body.as_mut()) else { continue };
        let Some(RefOr::T(content)) = body.content.get_mut(JSON) else { continue };
        let Some(RefOr::Ref(reference)) = &content.schema else { continue };
        let name = reference.ref_location.rsplit('/').next().unwrap_or_default();
        if let Some(RefOr::T(Schema::Object(body))) = components.schemas.get(name) {
            let mut subset = body.clone();
            subset.required.clear();
            content.schema = Some(RefOr::T(Schema::Object(subset)));
        }
    }
}

/// Bearer tokens (sessions and API tokens) and the session cookie; every operation needs one but login.
fn document_security(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A session token from login, or a personal API token."))
                .build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "sid",
            "The session cookie set by login (writes also need the CSRF proof).",
        ))),
    );
    doc.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ]);
    for (path, item) in doc.paths.paths.iter_mut() {
        if PUBLIC.contains(&path.as_str()) {
            for op in operations(item) {
                op.security = Some(vec![SecurityRequirement::default()]);
            }
        }
    }
}

/// Every operation's error answers, in the one error shape: those its handler declares, and those any request
/// can meet before its handler runs (a malformed query, a body the server cannot take, a page past the end).
fn document_errors(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert("ErrorBody".into(), <ErrorBody as utoipa::PartialSchema>::schema());
    components.schemas.insert("FieldErrorOut".into(), <FieldErrorOut as utoipa::PartialSchema>::schema());
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            let mut codes = vec!["400"];
            if op.request_body.is_some() {
                codes.extend(["408", "413", "415"]);
            }
            if op.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.name == "page")) {
                codes.push("404");
            }
            for code in codes {
                op.responses.responses.entry(code.into()).or_insert_with(|| RefOr::T(error_answer(code)));
            }
            for (code, answer) in op.responses.responses.iter_mut() {
                let RefOr::T(answer) = answer else { continue };
                if answer.description.is_empty() {
                    answer.description = reason(code).into();
                }
                if !code.starts_with('2') && answer.content.is_empty() {
                    answer.content.insert(JSON.into(), error_content());
                }
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch, &mut item.head, &mut item.options]
        .into_iter()
        .flatten()
}

fn error_content() -> RefOr<Content> {
    RefOr::T(Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))))
}

fn error_answer(code: &str) -> Response {
    let mut answer = Response::new(reason(code));
    answer.content.insert(JSON.into(), error_content());
    answer
}

/// What a status means here.
fn reason(code: &str) -> &'static str {
    match code {
        "200" => "OK.",
        "201" => "Created.",
        "204" => "Done; nothing to answer.",
        "400" => "Invalid input: a malformed query, path or body, or a failed rule (`errors` names every field).",
        "401" => "No credentials, or bad, expired or revoked ones.",
        "403" => "The caller lacks the permission named in `detail`, or the CSRF proof.",
        "404" => "No such record the caller may see (or a page past the end).",
        "405" => "Method not allowed.",
        "408" => "The body did not arrive in time.",
        "409" => "Conflicts with the current state (a name taken, a record in use).",
        "413" => "The body is too large.",
        "415" => "The body is not JSON.",
        "429" => "Throttled; `Retry-After` says when to try again.",
        "503" => "The store is unreachable, or the model has not reached the asked revision in time.",
        _ => "Error.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_answer_has_the_error_shape() {
        let mut doc = openapi();
        let mut checked = 0;
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                assert!(op.responses.responses.contains_key("400"));
                for (code, answer) in &op.responses.responses {
                    if let RefOr::T(answer) = answer
                        && !code.starts_with('2')
                    {
                        assert!(answer.content.contains_key(JSON), "{code} of {:?}", op.operation_id);
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 300, "{checked} error answers");
    }

    #[test]
    fn every_json_body_but_user_data_has_a_typed_schema() {
        let mut doc = openapi();
        let mut typed = 0;
        for (path, item) in doc.paths.paths.iter_mut() {
            for op in operations(item) {
                let Some(RefOr::T(body)) = &op.request_body else { continue };
                let Some(RefOr::T(content)) = body.content.get(JSON) else { continue };
                match &content.schema {
                    Some(RefOr::Ref(_)) => typed += 1,
                    Some(RefOr::T(Schema::Object(o))) if !o.properties.is_empty() => typed += 1,
                    _ => assert!(path.contains("/data/"), "{path} documents no body fields"),
                }
            }
        }
        assert!(typed >= 40, "{typed} typed bodies");
    }
}
