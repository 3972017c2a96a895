//! `ApiError`: the one place that picks status codes and writes the contract's error body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use castellan_core::{DomainError, FieldError};
use castellan_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request's id (or a fresh one outside a request).
pub fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
}

/// The one body of every error answer (API.md §1): `detail` for DRF and authentik clients, `message` and `errors`
/// for seed 002's.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What kind of failure: `ValidationError`, `AuthenticationRequired`, `PermissionDenied`, `NotFound`, ...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What went wrong, in a sentence.
    pub detail: String,
    /// The same as `detail`.
    pub message: String,
    /// The request's id, also logged.
    pub id: String,
    /// Every bad field of a `ValidationError`; empty otherwise.
    pub errors: Vec<FieldErrorOut>,
    /// `permission_denied` or `csrf_failed` on a 403.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// One bad field of a `ValidationError`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorOut {
    /// The field's name (`userprofile.phone_number` for a nested one, `non_field_errors` for the whole body).
    pub field: String,
    /// Why it was refused.
    pub message: String,
}

/// Every way a request can fail, mapped to the contract's status and `type`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or invalid input.
    #[error("The given data was invalid.")]
    Validation(Vec<FieldError>),
    /// 401: no credentials.
    #[error("Authentication credentials were not provided.")]
    AuthenticationRequired,
    /// 401: bad, expired or revoked credentials.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// 403: a missing permission or a forbidden act.
    #[error("{0}")]
    PermissionDenied(String),
    /// 403: a cookie-authenticated unsafe request without a CSRF proof.
    #[error("CSRF check failed.")]
    Csrf,
    /// 404.
    #[error("Not found.")]
    NotFound,
    /// 405.
    #[error("Method not allowed.")]
    MethodNotAllowed,
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 408: the request body did not arrive within the body timeout.
    #[error("{0}")]
    RequestTimeout(String),
    /// 414: the request target is longer than the server reads.
    #[error("{0}")]
    UriTooLong(String),
    /// 431: the request's headers are larger than the server reads.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 429 with the seconds to wait.
    #[error("Request was throttled. Expected available in {0} seconds.")]
    Throttled(u64),
    /// 503.
    #[error("{0}")]
    Unavailable(String),
    /// 500: the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationError"),
            Self::AuthenticationRequired => (StatusCode::UNAUTHORIZED, "AuthenticationRequired"),
            Self::AuthenticationFailed(_) => (StatusCode::UNAUTHORIZED, "AuthenticationFailed"),
            Self::PermissionDenied(_) => (StatusCode::FORBIDDEN, "PermissionDenied"),
            Self::Csrf => (StatusCode::FORBIDDEN, "CsrfFailed"),
            Self::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
            Self::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeout"),
            Self::UriTooLong(_) => (StatusCode::URI_TOO_LONG, "UriTooLong"),
            Self::HeadersTooLarge(_) => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "RequestHeaderFieldsTooLarge"),
            Self::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "Throttled"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ServerError"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        let id = request_id();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(request_id = %id, %cause, "request failed");
                "A server error occurred.".to_string()
            }
            other => other.to_string(),
        };
        if status.is_client_error() {
            refusals::record(status.as_u16(), kind, &detail, &id);
        }
        let errors = match &self {
            Self::Validation(errors) => {
                errors.iter().map(|e| FieldErrorOut { field: e.field.clone(), message: e.message.clone() }).collect()
            }
            _ => Vec::new(),
        };
        // seed 003's clients read a machine code beside the detail.
        let code = (status == StatusCode::FORBIDDEN).then_some(if matches!(self, Self::Csrf) {
            "csrf_failed"
        } else {
            "permission_denied"
        });
        let body = ErrorBody { kind, message: detail.clone(), detail, id, errors, code };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::Throttled(seconds) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(errors) => Self::Validation(errors),
            DomainError::NotFound => Self::NotFound,
            DomainError::Conflict(m) => Self::Conflict(m),
            DomainError::Forbidden(m) => Self::PermissionDenied(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict { constraint } if constraint == "groups" => {
                Self::field("groups", "Invalid pk - object does not exist.")
            }
            StoreError::Conflict { constraint } if constraint == "parent" => {
                Self::field("parent", "Invalid pk - object does not exist in this organisation.")
            }
            StoreError::Conflict { constraint } if constraint == "cycle" => {
                Self::field("parent", "A group cannot be its own ancestor.")
            }
            StoreError::Conflict { constraint } if constraint == "members" => {
                Self::field("users", "Users must belong to the group's organisation.")
            }
            StoreError::Conflict { constraint } => Self::Conflict(conflict_message(&constraint)),
            StoreError::Stale(what) => Self::Conflict(format!("{what} kept changing while this write was made; try again.")),
            StoreError::LimitExceeded(m) => Self::PayloadTooLarge(m),
            StoreError::Backend(m) => Self::Internal(m),
            // Never answered: the dry-run middleware answers with the impact of the change the store left instead.
            StoreError::DryRun => Self::Conflict("The write was previewed, not applied.".into()),
            StoreError::NotPreviewable => Self::field("dry_run", "This write cannot be previewed."),
        }
    }
}

fn conflict_message(constraint: &str) -> String {
    match constraint {
        "username" => "A user with that username already exists.".into(),
        "slug" => "An organisation with that slug already exists.".into(),
        "name" => "A group with that name already exists under this parent.".into(),
        "children" => "The group has children; delete them first or pass ?cascade=true.".into(),
        "users" => "The organisation still has users.".into(),
        "org_groups" | "org_objects" => "The organisation still has groups or objects.".into(),
        "object" => "The object is already registered.".into(),
        "module" => "A module with that id already exists.".into(),
        "builtin" => "Built-in modules cannot be deleted.".into(),
        "role" => "A role with that name already exists in this organisation.".into(),
        other => format!("The value of {other} is already taken."),
    }
}

/// Result of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (ApiError::field("x", "y"), 400),
            (ApiError::AuthenticationRequired, 401),
            (ApiError::AuthenticationFailed("x".into()), 401),
            (ApiError::PermissionDenied("x".into()), 403),
            (ApiError::Csrf, 403),
            (ApiError::NotFound, 404),
            (ApiError::MethodNotAllowed, 405),
            (ApiError::Conflict("x".into()), 409),
            (ApiError::PayloadTooLarge("x".into()), 413),
            (ApiError::UnsupportedMediaType("x".into()), 415),
            (ApiError::Throttled(3), 429),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal("secret sql".into()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(e.into_response().status().as_u16(), code);
        }
    }

    #[test]
    fn store_errors_map() {
        assert!(matches!(ApiError::from(StoreError::NotFound), ApiError::NotFound));
        assert!(matches!(ApiError::from(StoreError::Conflict { constraint: "username".into() }), ApiError::Conflict(_)));
        assert!(matches!(ApiError::from(StoreError::Conflict { constraint: "groups".into() }), ApiError::Validation(_)));
    }
}

/// Refused requests are logged one line a second at most: under a flood (a login storm answered 429) one line per
/// refusal would fill the disk. The first refusal of each second is logged in full, the others are counted and
/// summed up by [`refusals::summarise`].
pub mod refusals {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// The second (since the epoch) whose first refusal was logged.
    static LOGGED_SECOND: AtomicU64 = AtomicU64::new(0);
    /// Refusals not logged one by one since the last summary.
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);

    /// Logs a refusal, or counts it when one was already logged this second.
    pub fn record(status: u16, kind: &str, detail: &str, request_id: &str) {
        let second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if LOGGED_SECOND.swap(second, Ordering::Relaxed) == second {
            UNLOGGED.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::info!(request_id, status, kind, detail, "request refused");
        }
    }

    /// Takes the number of refusals counted but not logged since the last call.
    pub fn take_unlogged() -> u64 {
        UNLOGGED.swap(0, Ordering::Relaxed)
    }

    /// Logs, once a second while there are any, how many refusals were counted without a line of their own.
    pub async fn summarise() {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let n = take_unlogged();
            if n > 0 {
                tracing::info!(refused = n, "more requests refused in the last second (logged one line a second)");
            }
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn a_flood_of_refusals_is_counted_not_logged_line_by_line() {
            for _ in 0..1000 {
                super::record(429, "Throttled", "slow down", "id");
            }
            // At most one line per second: even across a second boundary, at most two of the thousand were logged.
            assert!(super::take_unlogged() >= 998);
        }
    }
}
