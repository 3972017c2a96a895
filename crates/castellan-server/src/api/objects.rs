//! Registered objects (API.md §6): an object may name a parent so that grants flow down, and nodes (module `nodes`)
//! are what membership restrictions refer to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::fields::Fields;
use castellan_core::permission::valid_module_id;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::dominance::require_link;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathText, write_ctx};
use crate::state::AppState;

/// Longest object key.
const OBJECT_PK_MAX: usize = 255;

/// Routes of module `permissions`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded("permissions", None, OpenApiRouter::new().routes(routes!(create_object)).routes(routes!(delete_object)))
}

/// A registered object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectOut {
    /// Module id.
    pub model: String,
    /// The application's key.
    pub object_pk: String,
    /// Parent's module id.
    pub parent_model: Option<String>,
    /// Parent's key.
    pub parent_pk: Option<String>,
    /// Owning organisation.
    pub org: i64,
}

/// Register an object, optionally under a parent object.
#[utoipa::path(post, path = "/api/v1/objects/", tag = "objects",
    request_body = crate::bodies::ObjectBody,
    responses((status = 201, body = ObjectOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_object(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let mut f = Fields::new(&body)?;
    let model = f.string("model", true, 64);
    let object_pk = f.string("object_pk", true, OBJECT_PK_MAX);
    let parent_model = f.nullable_string("parent_model", false, 64).flatten();
    let parent_pk = f.nullable_string("parent_pk", false, OBJECT_PK_MAX).flatten();
    let org = f.pk("org", false);
    for (name, value) in [("model", &model), ("parent_model", &parent_model)] {
        if value.as_deref().is_some_and(|m| !valid_module_id(m)) {
            f.error(name, "Module ids are lower-case slugs of 1 to 64 characters.");
        }
    }
    if object_pk.as_deref().is_some_and(str::is_empty) {
        f.error("object_pk", "This field may not be blank.");
    }
    if parent_model.is_some() != parent_pk.is_some() {
        f.error("parent_pk", "parent_model and parent_pk go together.");
    }
    f.finish()?;
    let (model, object_pk) = (model.unwrap_or_default(), object_pk.unwrap_or_default());
    let org = org.unwrap_or(caller.user.org);
    if (!caller.is_superuser() && org != caller.user.org) || state.store.get_org(org).await.is_err() {
        return Err(ApiError::field("org", "Invalid pk - object does not exist."));
    }
    let parent = match (&parent_model, &parent_pk) {
        (Some(m), Some(p)) => {
            let parent = state.store.find_object(m, p).await?.filter(|o| caller.org_scope().is_none_or(|own| own == o.org));
            let parent = parent.ok_or_else(|| ApiError::field("parent_pk", "The parent object is not registered."))?;
            if parent.org != org {
                return Err(ApiError::field("parent_pk", "The parent object belongs to another organisation."));
            }
            require_link(&state, &caller, m, p)?;
            Some(parent)
        }
        _ => None,
    };
    let ctx = write_ctx(Some(&caller), ip);
    let (object, revision) = state.store.create_object(&ctx, &model, &object_pk, parent.map(|p| p.pk), org).await?;
    let out = ObjectOut { model: object.model, object_pk: object.object_pk, parent_model, parent_pk, org: object.org };
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(out))))
}

/// Unregister an object.
#[utoipa::path(delete, path = "/api/v1/objects/{model}/{object_pk}/", tag = "objects", params(("model" = String, Path), ("object_pk" = String, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_object(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathText((model, object_pk)): PathText<(String, String)>,
) -> ApiResult<Response> {
    let object = state.store.find_object(&model, &object_pk).await?.ok_or(ApiError::NotFound)?;
    if caller.org_scope().is_some_and(|own| own != object.org) {
        return Err(ApiError::NotFound);
    }
    let revision = state.store.delete_object(&write_ctx(Some(&caller), ip), &model, &object_pk).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}
