//! `?dry_run=true` (API.md §8, §11): a write that can change who holds what runs to its end, then the store rolls it
//! back and leaves the facts on both sides of it; the answer is what each affected user would gain and lose.

use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use castellan_core::engine::{Impact, ImpactEntry, Index, impact};
use castellan_store::{Preview, PreviewSlot};
use serde_json::{Value, json};
use utoipa::openapi::OpenApi;

use crate::error::ApiError;

/// Users named per impact entry; `users_count` gives the total.
const USERS_LISTED: usize = 100;

tokio::task_local! {
    /// The preview slot of the dry run being served.
    static PREVIEW: PreviewSlot;
}

/// The preview slot of the request being served, when it is a dry run (for its write context).
pub fn preview_slot() -> Option<PreviewSlot> {
    PREVIEW.try_with(Clone::clone).ok()
}

/// Routes whose writes can be previewed: each makes one logged store write, and nothing else, before it answers.
/// Other writes (sessions, tokens, user data, passwords) refuse `dry_run` rather than risk applying it.
const PREVIEWABLE: &[&str] = &[
    "/api/v1/users/",
    "/api/v1/users/{pk}/",
    "/api/v1/users/{pk}/groups/{group_pk}/",
    "/api/v1/users/{pk}/groups/{group_pk}/nodes/",
    "/api/v1/users/{pk}/groups/{group_pk}/nodes/{node_id}/",
    "/api/v1/users/{pk}/permissions/{module_id}/",
    "/api/v1/groups/",
    "/api/v1/groups/{pk}/",
    "/api/v1/groups/{pk}/assign-users/",
    "/api/v1/groups/{pk}/remove-users/",
    "/api/v1/groups/{pk}/permissions/{module_id}/",
    "/api/v1/roles/",
    "/api/v1/roles/{pk}/",
    "/api/v1/roles/{pk}/assign-users/",
    "/api/v1/roles/{pk}/remove-users/",
    "/api/v1/roles/{pk}/assign-groups/",
    "/api/v1/roles/{pk}/remove-groups/",
    "/api/v1/roles/{pk}/permissions/{module_id}/",
    "/api/v1/rbac/permissions/assigned_by_users/{pk}/assign/",
    "/api/v1/rbac/permissions/assigned_by_users/{pk}/unassign/",
    "/api/v1/rbac/permissions/assigned_by_roles/{pk}/assign/",
    "/api/v1/rbac/permissions/assigned_by_roles/{pk}/unassign/",
    "/api/v1/rbac/permissions/assigned_by_groups/{pk}/assign/",
    "/api/v1/rbac/permissions/assigned_by_groups/{pk}/unassign/",
    "/api/v1/modules/",
    "/api/v1/modules/{id}/",
    "/api/v1/objects/",
    "/api/v1/objects/{model}/{object_pk}/",
];

/// Serves `?dry_run=true` on a write: the handler runs with a preview slot its store write fills, and the answer
/// is the impact. Writes that reach no store write (nothing to change) preview as no impact; refusals pass through.
pub async fn dry_run(req: Request, next: Next) -> Response {
    let wanted = match requested(req.uri().query()) {
        Ok(wanted) => wanted,
        Err(e) => return e.into_response(),
    };
    if !wanted || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    if !PREVIEWABLE.contains(&route.as_str()) {
        return ApiError::field("dry_run", "This write cannot be previewed.").into_response();
    }
    let slot = PreviewSlot::default();
    let response = PREVIEW.scope(slot.clone(), next.run(req)).await;
    let preview = slot.lock().ok().and_then(|mut s| s.take());
    match preview {
        Some(preview) => match tokio::task::spawn_blocking(move || impact_of(&preview)).await {
            Ok(impact) => Json(body(&impact)).into_response(),
            Err(e) => ApiError::Internal(format!("computing a dry run's impact: {e}")).into_response(),
        },
        None if response.status().is_success() => Json(body(&Impact::default())).into_response(),
        None => response,
    }
}

/// Documents `dry_run` on every write operation of the previewable routes.
pub fn document(api: &mut OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, Required};
    let parameter = ParameterBuilder::new()
        .name("dry_run")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some("Change nothing; answer 200 with the impact: permissions gained and lost per affected user."))
        .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
        .build();
    for (_, item) in api.paths.paths.iter_mut().filter(|(p, _)| PREVIEWABLE.contains(&p.as_str())) {
        for op in [&mut item.put, &mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten() {
            op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(parameter.clone()));
        }
    }
}

/// The `dry_run` query parameter, as the other boolean parameters read it.
fn requested(query: Option<&str>) -> Result<bool, ApiError> {
    let value = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "dry_run")
        .map(|(_, v)| v.to_ascii_lowercase())
        .last();
    match value.as_deref() {
        None | Some("" | "false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(ApiError::field("dry_run", "Must be a valid boolean.")),
    }
}

fn impact_of(preview: &Preview) -> Impact {
    let (before, after) = std::thread::scope(|s| {
        let before = s.spawn(|| Index::build(&preview.before));
        let after = Index::build(&preview.after);
        (before.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), after)
    });
    impact(&before, &after, &preview.users, &preview.probes, crate::clock::now_micros())
}

fn body(impact: &Impact) -> Value {
    json!({
        "applied": false,
        "impact": {
            "gained": impact.gained.iter().map(entry).collect::<Vec<_>>(),
            "lost": impact.lost.iter().map(entry).collect::<Vec<_>>(),
            "users_affected": impact.users_affected,
        }
    })
}

fn entry(e: &ImpactEntry) -> Value {
    json!({
        "permission": e.permission,
        "object_pk": e.object.as_ref().map(|o| o.1.as_str()),
        "users_count": e.users.len(),
        "users": &e.users[..e.users.len().min(USERS_LISTED)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_parameter_reads_like_other_booleans() {
        assert_eq!(requested(None).ok(), Some(false));
        assert_eq!(requested(Some("a=1&dry_run=true")).ok(), Some(true));
        assert_eq!(requested(Some("dry_run=TRUE")).ok(), Some(true));
        assert_eq!(requested(Some("dry_run=0")).ok(), Some(false));
        assert!(requested(Some("dry_run=maybe")).is_err());
    }

    #[test]
    fn every_previewable_route_exists_and_is_documented() {
        let doc = crate::openapi();
        for path in PREVIEWABLE {
            let item = doc.paths.paths.get(*path).unwrap_or_else(|| panic!("{path} is not a route"));
            let ops = [&item.put, &item.post, &item.patch, &item.delete];
            let writes: Vec<_> = ops.into_iter().flatten().collect();
            assert!(!writes.is_empty(), "{path} has no write");
            for op in writes {
                let params = op.parameters.iter().flatten();
                assert!(
                    params.clone().any(|p| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "dry_run")),
                    "{path}: dry_run is not documented"
                );
            }
        }
    }
}
