//! Layers around the routed application: request ids, metrics and trailing-slash tolerance.

use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Uri};
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use tower::Layer;
use tower::util::MapRequestLayer;

use crate::error::REQUEST_ID;
use crate::state::AppState;

/// Wraps the routed app: the slash is added before routing, so `/api/v1/users` answers like `/api/v1/users/`.
pub fn outer(routed: Router) -> Router {
    let slashed = MapRequestLayer::new(add_trailing_slash).layer(routed);
    Router::new().fallback_service(slashed).layer(from_fn(metrics)).layer(from_fn(request_id))
}

/// API paths are declared with a trailing slash (seed 000); requests without one are served the same.
fn add_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.starts_with("/api/v1/") && !path.ends_with('/') {
        let pq = match req.uri().query() {
            Some(q) => format!("{path}/?{q}"),
            None => format!("{path}/"),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Header carrying the store's revision after a successful write.
pub const REVISION_HEADER: &str = "x-revision";

/// After a successful write, brings the index and the directory up to date with the change log before answering,
/// so the writer's next request (a check, or a request the write authorizes) sees its write.
pub async fn follow_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    // Only writes answer with a revision; checks and lookups are POSTs that change nothing.
    let revision = response.headers().get(REVISION_HEADER).and_then(|v| v.to_str().ok()?.parse().ok());
    if let Some(revision) = revision
        && response.status().is_success()
        && let Err(e) = state.follower.follow_to(revision).await
    {
        tracing::error!("cannot follow the change log: {e}");
    }
    response
}

/// Gives each request an id, visible to error bodies and logs, and returned as `X-Request-Id`.
async fn request_id(req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    let header = HeaderValue::from_str(&id).ok();
    let mut response = REQUEST_ID.scope(id, next.run(req)).await;
    if let Some(h) = header {
        response.headers_mut().insert("x-request-id", h);
    }
    response
}

/// Counts requests and their latency by method and status.
async fn metrics(req: Request, next: Next) -> Response {
    let method = static_method(req.method());
    let start = Instant::now();
    let response = next.run(req).await;
    // Labels borrowed from static strings: recording a request allocates nothing for the common cases.
    let code = response.status().as_u16();
    let status: metrics::SharedString = match STATUSES.iter().find(|(c, _)| *c == code) {
        Some((_, digits)) => (*digits).into(),
        None => code.to_string().into(),
    };
    metrics::counter!("castellan_http_requests_total", "method" => method, "status" => status).increment(1);
    metrics::histogram!("castellan_http_request_duration_seconds", "method" => method).record(start.elapsed().as_secs_f64());
    response
}

/// The method's name as a static string (`OTHER` for extension methods).
fn static_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The status codes this server answers, with their digits as static strings.
const STATUSES: [(u16, &str); 16] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (409, "409"),
    (413, "413"),
    (415, "415"),
    (422, "422"),
    (429, "429"),
    (500, "500"),
    (503, "503"),
];
