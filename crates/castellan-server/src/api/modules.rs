//! Modules (API.md §5): resource types with the standard actions and custom ones. Everyone with `modules.read` lists
//! them; creating, changing and deleting them needs a superuser (§11), and built-in modules stay active and present.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use castellan_core::fields::Fields;
use castellan_core::permission::{Action, valid_module_id};
use castellan_core::validate::DESCRIPTION_MAX;
use castellan_store::Module;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::repr::module_actions;
use crate::state::AppState;

/// Routes of module `modules`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "modules",
        None,
        OpenApiRouter::new().routes(routes!(list_modules, create_module)).routes(routes!(
            get_module,
            replace_module,
            patch_module,
            delete_module
        )),
    )
}

/// A module as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleOut {
    /// Slug id.
    pub id: String,
    /// Free text.
    pub description: String,
    /// Inactive modules grant nothing.
    pub is_active: bool,
    /// Standard actions, then custom ones.
    pub actions: Vec<String>,
}

impl From<&Module> for ModuleOut {
    fn from(m: &Module) -> Self {
        Self { id: m.id.clone(), description: m.description.clone(), is_active: m.is_active, actions: module_actions(m) }
    }
}

/// Custom actions of built-in modules that the server itself relies on (§11: `permissions.check`).
const BUILTIN_ACTIONS: &[(&str, &str)] = &[("permissions", "check")];

fn require_superuser(caller: &Principal) -> ApiResult<()> {
    if caller.is_superuser() { Ok(()) } else { Err(ApiError::PermissionDenied("Only a superuser can change modules.".into())) }
}

/// Reads `{"id", "description", "is_active", "actions"}` onto `module` (`id` only when `creating`).
fn read_module(body: &serde_json::Value, module: &mut Module, creating: bool, replace: bool) -> ApiResult<()> {
    let mut f = Fields::new(body)?;
    if creating {
        let id = f.string("id", true, 64);
        if id.as_deref().is_some_and(|i| !valid_module_id(i)) {
            f.error("id", "Module ids are lower-case slugs of 1 to 64 characters.");
        }
        module.id = id.unwrap_or_default();
    }
    if let Some(d) = f.string("description", false, DESCRIPTION_MAX) {
        module.description = d;
    }
    if let Some(a) = f.bool("is_active") {
        module.is_active = a;
    }
    if f.raw("actions").is_some() || (replace && !creating) {
        let listed = match f.raw("actions") {
            Some(serde_json::Value::Array(items)) => {
                items.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect::<Vec<_>>()
            }
            None => Vec::new(),
            Some(_) => {
                f.error("actions", "Expected a list of action names.");
                Vec::new()
            }
        };
        if listed.iter().any(|a| !valid_module_id(a)) {
            f.error("actions", "Action names are lower-case slugs of 1 to 64 characters.");
        }
        let mut custom: Vec<String> = listed.into_iter().filter(|a| Action::parse(a).is_none()).collect();
        custom.sort();
        custom.dedup();
        if custom.len() > 58 {
            f.error("actions", "A module has at most 64 actions.");
        }
        module.custom_actions = custom;
    }
    f.finish()?;
    Ok(())
}

/// List modules.
#[utoipa::path(get, path = "/api/v1/modules/", tag = "modules", responses((status = 200, body = Envelope<ModuleOut>), (status = 401), (status = 403)))]
async fn list_modules(State(state): State<AppState>, q: ListQuery) -> ApiResult<axum::Json<Envelope<ModuleOut>>> {
    let modules = state.store.list_modules().await?;
    let window = q.window()?;
    let (count, page) = q.page_of(window, modules.iter().map(ModuleOut::from).collect())?;
    Ok(axum::Json(q.envelope(window, count, page)))
}

/// Register a module (superusers only).
#[utoipa::path(post, path = "/api/v1/modules/", tag = "modules",
    request_body = crate::bodies::ModuleBody,
    responses((status = 201, body = ModuleOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_module(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_superuser(&caller)?;
    let mut module =
        Module { id: String::new(), description: String::new(), is_active: true, custom_actions: Vec::new(), builtin: false };
    read_module(&body, &mut module, true, false)?;
    let (module, revision) = state.store.create_module(&write_ctx(Some(&caller), ip), &module).await?;
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(ModuleOut::from(&module)))))
}

/// One module.
#[utoipa::path(get, path = "/api/v1/modules/{id}/", tag = "modules", params(("id" = String, Path)),
    responses((status = 200, body = ModuleOut), (status = 401), (status = 403), (status = 404)))]
async fn get_module(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<axum::Json<ModuleOut>> {
    Ok(axum::Json(ModuleOut::from(&state.store.get_module(&id).await?)))
}

async fn update(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    id: &str,
    body: &serde_json::Value,
    replace: bool,
) -> ApiResult<Response> {
    let mut module = state.store.get_module(id).await?;
    require_superuser(caller)?;
    read_module(body, &mut module, false, replace)?;
    if module.builtin && !module.is_active {
        return Err(ApiError::Conflict("Built-in modules cannot be deactivated.".into()));
    }
    if BUILTIN_ACTIONS.iter().any(|(m, a)| module.builtin && *m == module.id && !module.custom_actions.iter().any(|c| c == a)) {
        return Err(ApiError::Conflict("Built-in actions cannot be removed.".into()));
    }
    let (module, revision) = state.store.update_module(&write_ctx(Some(caller), ip), &module).await?;
    Ok(with_revision(revision, axum::Json(ModuleOut::from(&module))))
}

/// Replace a module's description, activity and custom actions (superusers only).
#[utoipa::path(put, path = "/api/v1/modules/{id}/", tag = "modules", params(("id" = String, Path)), request_body = crate::bodies::ModuleChangeBody,
    responses((status = 200, body = ModuleOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replace_module(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, &id, &body, true).await
}

/// Update some fields of a module (superusers only).
#[utoipa::path(patch, path = "/api/v1/modules/{id}/", tag = "modules", params(("id" = String, Path)), request_body = crate::bodies::ModuleChangeBody,
    responses((status = 200, body = ModuleOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_module(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    update(&state, ip, &caller, &id, &body, false).await
}

/// Delete a module and its grants (superusers only; built-in modules answer 409).
#[utoipa::path(delete, path = "/api/v1/modules/{id}/", tag = "modules", params(("id" = String, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete_module(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    state.store.get_module(&id).await?;
    require_superuser(&caller)?;
    let revision = state.store.delete_module(&write_ctx(Some(&caller), ip), &id).await?;
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}
