//! List conventions of API.md §1 and §10: paging parameters and their aliases, ordering, search,
//! multi-valued filters, and the DRF envelope with absolute `next`/`previous` links.

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Default page size.
pub const PAGE_SIZE_DEFAULT: i64 = 50;
/// Largest page size; larger requests are clamped (DRF's behaviour).
pub const PAGE_SIZE_MAX: i64 = 1000;

/// The origin the server is reached at: `CASTELLAN_PUBLIC_URL`; else, from a trusted proxy, the scheme and host
/// of its `X-Forwarded-Proto` and `X-Forwarded-Host`; else `http://` + `Host`.
pub fn origin(state: &AppState, headers: &HeaderMap, extensions: &axum::http::Extensions) -> String {
    if let Some(url) = &state.config.public_url {
        return url.origin().ascii_serialization();
    }
    let from_proxy = crate::auth::principal::peer(extensions)
        .is_some_and(|peer| crate::config::is_trusted_proxy(&state.config.trusted_proxies, &peer));
    // A proxy may have appended to a client's own value: its own is the last one.
    let forwarded = |name: &str| {
        let value = headers.get(name).filter(|_| from_proxy)?.to_str().ok()?;
        value.rsplit(',').next().map(str::trim).filter(|v| !v.is_empty())
    };
    let scheme = match forwarded("x-forwarded-proto").map(str::to_ascii_lowercase).as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    let host = forwarded("x-forwarded-host")
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .filter(|h| h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c)))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The origin the request reached the server at, as an extractor (see [`origin`]).
pub struct RequestOrigin(pub String);

impl FromRequestParts<AppState> for RequestOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(RequestOrigin(origin(state, &parts.headers, &parts.extensions)))
    }
}

/// The request's query string as ordered key/value pairs, plus what a list needs to build links.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
    path: String,
    origin: String,
}

impl FromRequestParts<AppState> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let uri = parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.clone(), |o| o.0.clone());
        let pairs = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        Ok(Self { pairs, path: uri.path().to_string(), origin: origin(state, &parts.headers, &parts.extensions) })
    }
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Rows skipped.
    pub offset: i64,
    /// Rows returned.
    pub limit: i64,
    /// Whether the client paged by `skipCount` rather than `page` (its links then carry offsets, not cursors).
    pub by_offset: bool,
}

impl ListQuery {
    /// The origin links are built on.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every value given for any of `names`.
    pub fn all(&self, names: &[&str]) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str()).collect()
    }

    /// The last value given for any of `names`.
    pub fn one(&self, names: &[&str]) -> Option<&str> {
        self.all(names).pop()
    }

    /// Integer values of a multi-valued filter (`?id=1&id=2`, also `?id=1,2`).
    pub fn ints(&self, names: &[&str]) -> Result<Vec<i64>, ApiError> {
        let mut out = Vec::new();
        for raw in self.all(names) {
            for part in raw.split(',').filter(|p| !p.is_empty()) {
                out.push(part.trim().parse().map_err(|_| ApiError::field(names[0], "Enter a whole number."))?);
            }
        }
        Ok(out)
    }

    /// String values of a multi-valued filter.
    pub fn strings(&self, names: &[&str]) -> Vec<String> {
        self.all(names).into_iter().map(str::to_string).collect()
    }

    /// A boolean filter (`true/false/1/0`).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.one(&[name]).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(_) => Err(ApiError::field(name, "Must be a valid boolean.")),
        }
    }

    /// `search`, or seed 004's `q`; a term with a control character (a NUL, a line break) is refused with 400 naming
    /// the parameter given. The term is text to find, never query syntax.
    pub fn search(&self) -> Result<Option<String>, ApiError> {
        let Some((name, term)) = self.pairs.iter().rev().find(|(k, _)| k == "search" || k == "q") else { return Ok(None) };
        if term.chars().any(char::is_control) {
            return Err(ApiError::field(name, "Must not contain control characters."));
        }
        Ok(Some(term.clone()).filter(|s| !s.trim().is_empty()))
    }

    /// Ordering keys as (field, descending): `ordering=-a,b`, `sort=+a,-b`, or `sortby` + `sortorder`.
    pub fn ordering(&self) -> Result<Vec<(String, bool)>, ApiError> {
        let mut keys = Vec::new();
        if let Some(raw) = self.one(&["ordering", "sort"]) {
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (name, desc) = match part.strip_prefix('-') {
                    Some(rest) => (rest, true),
                    None => (part.strip_prefix('+').unwrap_or(part), false),
                };
                keys.push((name.to_string(), desc));
            }
        } else if let Some(name) = self.one(&["sortby"]) {
            let desc = match self.one(&["sortorder"]).map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc" | "none" | "") => false,
                Some("desc") => true,
                Some(_) => return Err(ApiError::field("sortorder", "Must be one of ASC, DESC, NONE.")),
            };
            keys.push((name.to_string(), desc));
        }
        Ok(keys)
    }

    /// Ordering keys parsed into a resource's sortable fields; an unknown field is a 400 naming `ordering`.
    pub fn ordering_of<T>(&self, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<(T, bool)>, ApiError> {
        self.ordering()?
            .into_iter()
            .map(|(name, desc)| {
                parse(&name).map(|o| (o, desc)).ok_or_else(|| ApiError::field("ordering", format!("Cannot order by '{name}'.")))
            })
            .collect()
    }

    /// The page window from `page`, `page_size`/`limit`/`pageSize`/`maxItems` and `skipCount`.
    pub fn window(&self) -> Result<Window, ApiError> {
        let limit = match self.one(&["page_size", "limit", "pageSize", "maxItems"]) {
            None | Some("") => PAGE_SIZE_DEFAULT,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(-1) => PAGE_SIZE_MAX,
                Ok(n) if n > 0 => n.min(PAGE_SIZE_MAX),
                _ => return Err(ApiError::field("page_size", "Enter a positive whole number.")),
            },
        };
        if let Some(raw) = self.one(&["skipCount"]) {
            let offset = raw.trim().parse::<i64>().ok().filter(|n| *n >= 0);
            let offset = offset.ok_or_else(|| ApiError::field("skipCount", "Enter a whole number, 0 or more."))?;
            return Ok(Window { offset, limit, by_offset: true });
        }
        let page = match self.one(&["page"]) {
            None | Some("") => 1,
            Some(raw) => raw.trim().parse::<i64>().ok().filter(|n| *n > 0).ok_or(ApiError::NotFound)?,
        };
        Ok(Window { offset: page.saturating_sub(1).saturating_mul(limit), limit, by_offset: false })
    }

    /// Refuses a page past the end once the count is known (DRF: 404 "Invalid page.").
    pub fn check_page(&self, window: Window, count: i64) -> Result<(), ApiError> {
        if !window.by_offset && window.offset > 0 && window.offset >= count {
            return Err(ApiError::NotFound);
        }
        Ok(())
    }

    fn link(&self, window: Window, offset: i64) -> String {
        if window.by_offset {
            self.link_with("skipCount", &offset.to_string())
        } else {
            self.link_with("page", &(offset / window.limit + 1).to_string())
        }
    }

    /// This list's URL with its parameters, its position given by `key=value` alone.
    fn link_with(&self, key: &str, value: &str) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.pairs {
            if !matches!(k.as_str(), "page" | "skipCount" | "cursor") {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair(key, value);
        format!("{}{}?{}", self.origin, self.path, ser.finish())
    }

    /// The `cursor` parameter of a keyset-paged list: opaque to clients (the server wrote it into a `next` or
    /// `previous` link); anything it did not write is a 400 naming `cursor`.
    pub fn cursor<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        let Some(raw) = self.one(&["cursor"]) else { return Ok(None) };
        let invalid = || ApiError::field("cursor", "Invalid cursor.");
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map(Some).map_err(|_| invalid())
    }

    /// A link to the page that starts at `cursor`.
    pub fn cursor_link<T: Serialize>(&self, cursor: &T) -> String {
        let encoded = serde_json::to_vec(cursor).map(|json| URL_SAFE_NO_PAD.encode(json)).unwrap_or_default();
        self.link_with("cursor", &encoded)
    }

    /// Pages a list held in memory: refuses a page past the end, then keeps this page's items.
    pub fn page_of<T>(&self, window: Window, items: Vec<T>) -> Result<(i64, Vec<T>), ApiError> {
        let count = items.len() as i64;
        self.check_page(window, count)?;
        Ok((count, items.into_iter().skip(window.offset as usize).take(window.limit as usize).collect()))
    }

    /// The page the query asks for of `items` (every matching row, in order), each shown by `out`, in the envelope.
    pub fn paged<T, U: Serialize>(&self, items: Vec<T>, out: impl FnMut(T) -> U) -> Result<Envelope<U>, ApiError> {
        let window = self.window()?;
        let (count, page) = self.page_of(window, items)?;
        Ok(self.envelope(window, count, page.into_iter().map(out).collect()))
    }

    /// The DRF envelope for one page.
    pub fn envelope<T: Serialize>(&self, window: Window, count: i64, results: Vec<T>) -> Envelope<T> {
        let (next, previous) = self.offset_links(window, count);
        Envelope { count, next, previous, results }
    }

    /// The `next` and `previous` links of the page `window` of `count` rows, by page number or offset.
    pub fn offset_links(&self, window: Window, count: i64) -> (Option<String>, Option<String>) {
        let after = window.offset.saturating_add(window.limit);
        let next = (after < count).then(|| self.link(window, after));
        let previous = (window.offset > 0).then(|| self.link(window, (window.offset - window.limit).max(0)));
        (next, previous)
    }
}

/// DRF's paginated list body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    /// Total matching rows.
    pub count: i64,
    /// Absolute URL of the next page.
    pub next: Option<String>,
    /// Absolute URL of the previous page.
    pub previous: Option<String>,
    /// This page.
    pub results: Vec<T>,
}
