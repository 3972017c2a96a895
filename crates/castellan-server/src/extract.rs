//! Request extractors whose rejections are `ApiError`s in the contract's shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde_json::Value;

use crate::error::ApiError;

/// A JSON request body as a value, read field by field by the handler so every bad field is reported.
pub struct JsonBody(pub Value);

/// Whether requests of `method` only read (no dry run, no CSRF proof, nothing to follow).
pub fn is_read(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request declares a JSON body.
pub fn is_json(req_headers: &axum::http::HeaderMap) -> bool {
    req_headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).and_then(|v| v.split(';').next()).is_some_and(|ct| {
        // Media types are case-insensitive (RFC 9110 §8.3.1).
        let ct = ct.trim().to_ascii_lowercase();
        ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
    })
}

/// Reads the body, mapping the size limit to 413 and the body timeout to 408.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge("Request body is too large.".into())
        } else if crate::serve::timed_out(&rejection) {
            body_timed_out()
        } else {
            ApiError::field("non_field_errors", "The request body could not be read.")
        }
    })
}

/// The answer to a body that did not arrive within the body timeout.
pub fn body_timed_out() -> ApiError {
    ApiError::RequestTimeout("The request body was not received in time.".into())
}

/// Parses JSON text into a value, as a 400 naming the problem when malformed.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::field("non_field_errors", format!("JSON parse error - {e}")))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType("Unsupported media type in request; expected application/json.".into()));
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A path key: a positive integer, else 404 (no such object).
pub fn path_key(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|pk| *pk > 0).ok_or(ApiError::NotFound)
}

/// A positive integer path key; anything else is 404 (no such object).
pub struct PathPk(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathPk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::NotFound)?;
        path_key(&raw).map(PathPk)
    }
}

/// Text path segments (`T` is a `String` or a tuple of them): a segment that is not UTF-8 text is a 400 in the
/// contract's error shape, not axum's plain-text rejection.
pub struct PathText<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PathText<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathText(value)),
            Err(_) => Err(ApiError::field("path", "Path segments must be UTF-8 text.")),
        }
    }
}

/// The write context of a request: who, from where, which request.
pub fn write_ctx(principal: Option<&crate::auth::principal::Principal>, ip: std::net::IpAddr) -> castellan_store::WriteCtx {
    castellan_store::WriteCtx {
        actor: principal.map(|p| (p.user.pk, p.user.username.clone())),
        ip: Some(ip.to_string()),
        request_id: Some(crate::error::request_id()),
    }
}
