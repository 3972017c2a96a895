//! The HTTP API: one module per resource, each declaring the permission its routes need where they are registered.

pub mod active_user;
pub mod audit;
pub mod auth;
pub mod be_permissions;
pub mod check;
pub mod credentials;
pub mod fe_groups;
pub mod fe_permissions;
pub mod gateway;
pub mod groups;
pub mod health;
pub mod memberships;
pub mod module_permissions;
pub mod modules;
pub mod object_groups;
pub mod objects;
pub mod orgs;
pub mod rbac;
pub mod roles;
pub mod user_data;
pub mod users;
pub mod watch;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use castellan_core::permission::{Action, Permission};
use castellan_store::Revision;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::principal::principal_of;
use crate::state::AppState;

/// Adds `X-Revision` to a write's response.
pub fn with_revision(revision: Revision, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(crate::middleware::REVISION_HEADER, HeaderValue::from(revision));
    response
}

/// The permission a request needs: `action`, or the method's default action, on `module`.
fn needed(module: &'static str, action: Option<Action>, method: &str) -> Permission {
    Permission { module, action: action.unwrap_or_else(|| Action::for_method(method)) }
}

/// Requires `module` permissions on every route of `router` (401, then 403 before any lookup), and states the
/// permission in each OpenAPI operation so documentation and enforcement come from one declaration.
pub fn guarded(module: &'static str, action: Option<Action>, router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let mut router =
        router.layer(from_fn(move |req: Request, next: Next| require(needed(module, action, req.method().as_str()), req, next)));
    describe(router.get_openapi_mut(), |method| needed(module, action, method).denial_detail());
    mark(router.get_openapi_mut(), |method| needed(module, action, method).to_string());
    router
}

/// Routes that need only an authenticated caller (the caller's own resources).
pub fn authenticated(mut router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    describe(router.get_openapi_mut(), |_| "This method needs only authentication.".to_string());
    router
}

async fn require(permission: Permission, req: Request, next: Next) -> Response {
    let principal = match principal_of(req.extensions()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match principal.require(permission) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Calls `f` with each operation of `api` and its method.
fn each_operation(api: &mut OpenApi, mut f: impl FnMut(&str, &mut utoipa::openapi::path::Operation)) {
    for item in api.paths.paths.values_mut() {
        let ops = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                f(method, op);
            }
        }
    }
}

/// Appends the permission sentence to every operation's description.
fn describe(api: &mut OpenApi, sentence: impl Fn(&str) -> String) {
    each_operation(api, |method, op| {
        let text = sentence(method);
        op.description = Some(match op.description.take() {
            Some(d) if !d.is_empty() => format!("{d}\n\n{text}"),
            _ => text,
        });
    });
}

/// Records in each operation the permission it needs, which the server publishes as BE permissions at start.
fn mark(api: &mut OpenApi, permission: impl Fn(&str) -> String) {
    each_operation(api, |method, op| {
        op.extensions
            .get_or_insert_with(Default::default)
            .insert(crate::catalog::PERMISSION_EXTENSION.to_string(), permission(method).into());
    });
}

/// Every API route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(active_user::router())
        .merge(credentials::router())
        .merge(user_data::router())
        .merge(orgs::router())
        .merge(groups::router())
        .merge(memberships::router())
        .merge(objects::router())
        .merge(audit::router())
        .merge(check::router())
        .merge(modules::router())
        .merge(roles::router())
        .merge(module_permissions::router())
        .merge(rbac::router())
        .merge(be_permissions::router())
        .merge(fe_permissions::router())
        .merge(fe_groups::router())
        .merge(object_groups::router())
        .merge(gateway::router())
        .merge(watch::router())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_by_method() {
        assert_eq!(needed("users", None, "DELETE").to_string(), "users.delete");
        assert_eq!(needed("users", Some(Action::Update), "POST").to_string(), "users.update");
    }
}
