//! Layers around the routed application: request ids, metrics and trailing-slash tolerance (tower-http's).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::IntoResponse;
use axum::response::Response;
use metrics::{Counter, Histogram};
use tower::Service;
use tower_http::normalize_path::NormalizePath;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

use crate::dry_run;
use crate::error::REQUEST_ID;
use crate::state::AppState;

/// Wraps the routed app: API paths are declared with a trailing slash (seed 000) and requests without one are served
/// the same (tower-http adds it before routing; other paths, such as `/healthz` or the docs' assets, are left as they
/// are); every request gets an id (tower-http's, or the client's own `X-Request-Id`), returned in the response and
/// carried by error bodies.
pub fn outer(routed: Router) -> Router {
    let by_path = ApiSlash { api: NormalizePath::append_trailing_slash(routed.clone()), other: routed };
    Router::new()
        .fallback_service(by_path)
        .layer(from_fn_with_state(Arc::new(RequestMetrics::default()), request_scope))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Sends `/api/v1/` requests through tower-http's trailing-slash normalisation and the rest straight on. Dispatched
/// by hand because a wildcard route would add its own parameter to every handler's `Path`.
#[derive(Clone)]
struct ApiSlash {
    api: NormalizePath<Router>,
    other: Router,
}

impl Service<Request> for ApiSlash {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Both are routers, which are always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.uri().path().starts_with("/api/v1/") { self.api.call(req) } else { self.other.call(req) }
    }
}

/// Header carrying the store's revision after a successful write.
pub const REVISION_HEADER: &str = "x-revision";

/// Every API route: the caller is authenticated, a write asked as a dry run is previewed, and after a successful
/// write the index and the directory are brought up to date with the change log before answering, so the writer's
/// next request (a check, or a request the write authorizes) sees its write. One layer rather than three: each
/// layer costs a boxed future and a clone of the inner service on every request, a tenth of a served check.
pub async fn api(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Err(e) = crate::auth::principal::authenticate(&state, &mut req).await {
        return e.into_response();
    }
    let response = dry_run::dry_run(&state, req, next).await;
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

/// Gives the request its id's scope (the id set by [`SetRequestIdLayer`], known to error bodies and logs of this
/// request), and counts requests and their latency by method and status.
async fn request_scope(State(recorded): State<Arc<RequestMetrics>>, req: Request, next: Next) -> Response {
    let id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or_default().to_owned();
    let method = method_index(req.method());
    let start = Instant::now();
    let answer = async move {
        match oversized(&req) {
            Some(refusal) => refusal.into_response(),
            None => next.run(req).await,
        }
    };
    let response = REQUEST_ID.scope(id, answer).await;
    recorded.count(method, response.status().as_u16());
    recorded.duration(method).record(start.elapsed().as_secs_f64());
    response
}

/// Longest request target read (path and query).
const URI_MAX: usize = 8 * 1024;
/// Most bytes of header names and values read. Beyond 100 headers, or beyond hyper's read buffer, hyper itself
/// answers 431 before a request exists, with no body.
const HEADERS_MAX: usize = 32 * 1024;

/// The contract's 414 or 431 for a request whose target or headers are larger than the server reads.
fn oversized(req: &Request) -> Option<crate::error::ApiError> {
    use crate::error::ApiError;
    if req.uri().path_and_query().map_or(0, |target| target.as_str().len()) > URI_MAX {
        return Some(ApiError::UriTooLong(format!("The request target is longer than {URI_MAX} bytes.")));
    }
    let size: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    (size > HEADERS_MAX).then(|| ApiError::HeadersTooLarge(format!("The request headers are larger than {HEADERS_MAX} bytes.")))
}

/// The methods requests are counted by (`OTHER` for extension methods).
const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"];

/// The method's place in [`METHODS`].
fn method_index(method: &axum::http::Method) -> usize {
    METHODS.iter().position(|m| *m == method.as_str()).unwrap_or(METHODS.len() - 1)
}

/// Each request counter and latency histogram, registered on first use: looking them up in the recorder's registry
/// on every request cost 4% of a served check. Made with the app, after the recorder is installed.
struct RequestMetrics {
    counters: [[OnceLock<Counter>; STATUSES.len()]; METHODS.len()],
    durations: [OnceLock<Histogram>; METHODS.len()],
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            counters: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            durations: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl RequestMetrics {
    /// Counts one answer with status `code` to a request of method `method` (an index into [`METHODS`]).
    fn count(&self, method: usize, code: u16) {
        let labels = |status: metrics::SharedString| [("method", METHODS[method].into()), ("status", status)];
        let Some(i) = STATUSES.iter().position(|(c, _)| *c == code) else {
            metrics::counter!("castellan_http_requests_total", &labels(code.to_string().into())).increment(1);
            return;
        };
        let counter = self.counters[method][i]
            .get_or_init(|| metrics::counter!("castellan_http_requests_total", &labels(STATUSES[i].1.into())));
        counter.increment(1);
    }

    /// The latency histogram of requests of method `method`.
    fn duration(&self, method: usize) -> &Histogram {
        self.durations[method]
            .get_or_init(|| metrics::histogram!("castellan_http_request_duration_seconds", "method" => METHODS[method]))
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
