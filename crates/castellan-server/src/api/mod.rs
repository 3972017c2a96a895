//! The HTTP API: one module per resource, each declaring the permission its routes need where they are registered.

pub mod active_user;
pub mod audit;
pub mod auth;
pub mod check;
pub mod credentials;
pub mod groups;
pub mod health;
pub mod memberships;
pub mod module_permissions;
pub mod modules;
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

/// Header carrying the store's revision after a successful write.
pub const REVISION_HEADER: &str = "x-revision";

/// Adds `X-Revision` to a write's response.
pub fn with_revision(revision: Revision, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(REVISION_HEADER, HeaderValue::from(revision));
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

/// Appends the permission sentence to every operation's description.
fn describe(api: &mut OpenApi, sentence: impl Fn(&str) -> String) {
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
                let text = sentence(method);
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{text}"),
                    _ => text,
                });
            }
        }
    }
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
        .merge(watch::router())
}

/// Now, in microseconds since the epoch (the engine's and the directory's clock unit).
pub fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// A user-facing timestamp: RFC 3339 UTC with microseconds. Written digit by digit: a page of users formats two per
/// user, and `format!` with padding was a tenth of a listing's CPU.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u32::try_from(t.year()) else { return format!("{t:?}") };
    if year > 9999 {
        return format!("{t:?}");
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let fields = [
        (0, 4, year),
        (5, 2, u32::from(u8::from(t.month()))),
        (8, 2, u32::from(t.day())),
        (11, 2, u32::from(t.hour())),
        (14, 2, u32::from(t.minute())),
        (17, 2, u32::from(t.second())),
        (20, 6, t.microsecond()),
    ];
    for (start, width, mut value) in fields {
        for i in (start..start + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds() {
        let t = time::macros::datetime!(2022-12-21 10:32:51.707174 UTC);
        assert_eq!(timestamp(t), "2022-12-21T10:32:51.707174Z");
        let early = time::macros::datetime!(0999-01-02 03:04:05.000006 +02:00);
        assert_eq!(timestamp(early), "0999-01-02T01:04:05.000006Z", "padded, and in UTC");
    }

    #[test]
    fn permission_by_method() {
        assert_eq!(needed("users", None, "DELETE").to_string(), "users.delete");
        assert_eq!(needed("users", Some(Action::Update), "POST").to_string(), "users.update");
    }
}
