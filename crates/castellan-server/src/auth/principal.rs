//! Who is calling: credentials from the `Authorization` header or the `sid` + `session_secret` cookies,
//! resolved once per request by middleware; handlers take a [`Principal`].

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum_extra::extract::CookieJar;
use castellan_core::engine::Index;
use castellan_core::model::User;
use castellan_core::permission::{ModulePermissions, Permission};
use castellan_store::{Credential, StoreError};
use time::OffsetDateTime;

use super::credentials::Resolved;
use crate::engine::EngineView;
use crate::error::ApiError;
use crate::state::AppState;

/// Cookie carrying the session's primary key.
pub const SID_COOKIE: &str = "sid";
/// Cookie carrying the session secret.
pub const SECRET_COOKIE: &str = "session_secret";
/// Script-readable cookie carrying the CSRF token.
pub const CSRF_COOKIE: &str = "csrftoken";
/// Header that proves a cookie-authenticated request is not cross-site.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `last_used` is written at most this often.
const TOUCH_EVERY: time::Duration = time::Duration::minutes(1);

/// The authenticated caller. What the caller holds is asked of the authorization index, at the time of asking.
#[derive(Clone)]
pub struct Principal {
    /// The caller's account (shared with the credential cache: cloning a principal copies no strings).
    pub user: Arc<User>,
    /// The session used, if any.
    pub session: Option<i64>,
    /// The API token used, if any.
    pub token: Option<i64>,
    /// The token's scopes: the caller acts with these and its own holdings both (`None`: no narrowing).
    scopes: Option<Arc<ModulePermissions>>,
    engine: Arc<EngineView>,
    /// Global module permissions, listed only when a dominance rule needs them all.
    held: Arc<OnceLock<ModulePermissions>>,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("user", &self.user.pk)
            .field("session", &self.session)
            .field("token", &self.token)
            .finish()
    }
}

impl Principal {
    /// Whether the caller holds `permission` globally.
    pub fn holds(&self, permission: Permission) -> bool {
        self.holds_named(permission.module, permission.action.as_str())
    }

    /// Whether the caller holds an action by name (custom actions included) globally.
    pub fn holds_named(&self, module: &str, action: &str) -> bool {
        self.user.is_active
            && self.in_scope(module, action)
            && (self.user.is_superuser || self.engine.allows(self.user.pk, module, action))
    }

    /// Whether the credential used may act with `module.action` at all: a token with scopes acts only within them
    /// (API.md §11), on every endpoint and in every check and lookup about the caller.
    pub fn in_scope(&self, module: &str, action: &str) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.allows_named(module, action))
    }

    /// Whether an answer about `user` holding `module.action` may say yes: about the caller, only within the
    /// token's scopes; about anyone else, as the model says.
    pub fn answers_for(&self, user: i64, module: &str, action: &str) -> bool {
        user != self.user.pk || self.in_scope(module, action)
    }

    /// Whether the caller acts as a superuser: a superuser's token with scopes holds only those, and none of the
    /// powers only superusers have (modules, organisations, superuser accounts).
    pub fn is_superuser(&self) -> bool {
        self.user.is_superuser && self.scopes.is_none()
    }

    /// Whether the caller holds `module.action` on `object` (globally when `None`) as `index` says, within the
    /// token's scopes.
    pub fn holds_at(&self, index: &Index, module: &str, action: &str, object: Option<(&str, &str)>, now: i64) -> bool {
        self.is_superuser() || (self.in_scope(module, action) && index.check(self.user.pk, module, action, object, now).allowed)
    }

    /// The token's scopes, when the credential used narrows what the caller holds.
    pub fn scopes(&self) -> Option<&ModulePermissions> {
        self.scopes.as_deref()
    }

    /// Every module permission the caller holds globally, within the token's scopes (empty for superusers, who hold
    /// everything, unless a token narrows them to its scopes).
    pub fn held(&self) -> &ModulePermissions {
        self.held.get_or_init(|| match (&self.scopes, self.user.is_superuser) {
            (None, true) => ModulePermissions::new(),
            (Some(scopes), true) => ModulePermissions::clone(scopes),
            (None, false) => self.engine.held(self.user.pk, crate::clock::now_micros()),
            (Some(scopes), false) => self.engine.held(self.user.pk, crate::clock::now_micros()).intersection(scopes),
        })
    }

    /// Refuses with the contract's 403 unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.holds(permission) { Ok(()) } else { Err(ApiError::PermissionDenied(permission.denial_detail())) }
    }

    /// The caller's organisation, or `None` for superusers who see every organisation.
    pub fn org_scope(&self) -> Option<i64> {
        (!self.user.is_superuser).then_some(self.user.org)
    }

    /// The viewer for seed 004's visibility rule, or `None` for superusers who see everyone.
    pub fn viewer(&self) -> Option<i64> {
        (!self.user.is_superuser).then_some(self.user.pk)
    }
}

/// What authentication concluded, stored in the request's extensions.
#[derive(Debug, Clone)]
enum AuthOutcome {
    Anonymous,
    Authenticated(Box<Principal>),
    Failed(&'static str),
    CsrfFailed,
}

/// Where a secret came from.
enum Presented {
    Header(String),
    Cookie { sid: String, secret: String },
}

fn presented(headers: &HeaderMap) -> Option<Presented> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("Token "))
            .or_else(|| value.strip_prefix("bearer "))
            .or_else(|| value.strip_prefix("token "))
            .unwrap_or(value)
            .trim();
        return Some(Presented::Header(token.to_string()));
    }
    let jar = CookieJar::from_headers(headers);
    let secret = jar.get(SECRET_COOKIE)?.value().to_string();
    let sid = jar.get(SID_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    Some(Presented::Cookie { sid, secret })
}

/// The client's address (the TCP peer; proxies are not trusted by default).
/// The client's address: the peer's, or, when the peer is a trusted proxy, the nearest address in its
/// `X-Forwarded-For` (else `Forwarded: for=`) chain that is not itself a trusted proxy. Addresses a client put at the
/// far end of the chain are never reached while a nearer one is untrusted, so they cannot be spoofed.
pub fn client_ip(parts: &Parts, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = peer(&parts.extensions).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let is_trusted = |ip: &IpAddr| crate::config::is_trusted_proxy(trusted, ip);
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_chain(&parts.headers).into_iter().rev() {
        let Some(ip) = hop else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// The address of the peer that sent the request (a client, or a proxy), when the server recorded it.
pub fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0.ip())
}

/// The addresses a request passed through, nearest last: `X-Forwarded-For` (every such header, in order), else the
/// `for=` parameters of `Forwarded`. `None` for an entry that is not an address (`unknown`, an obfuscated name).
fn forwarded_chain(headers: &axum::http::HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::to_string).collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().map(|hop| parse_hop(hop)).collect();
    }
    values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| parse_hop(value))
            })
        })
        .collect()
}

/// One hop: `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1`, `"[2001:db8::1]:4711"`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// Looks a secret up, from the cache or the store, and checks that it is still valid.
async fn resolve(state: &AppState, secret: &str) -> Result<Option<Resolved>, ApiError> {
    if secret.is_empty() || secret.len() > 256 {
        return Ok(None);
    }
    let hash = state.credentials.hash(secret);
    // Read before the store, so that a revocation racing with this lookup keeps the result out of the cache.
    let generation = state.credentials.generation();
    let resolved = match state.credentials.get(&hash) {
        Some(r) => r,
        None => {
            let Some(credential) = state.store.credential_by_hash(&hash).await? else { return Ok(None) };
            let owner = match &credential {
                Credential::Session(s) => s.user,
                Credential::Token(t) => t.user,
            };
            let user = match state.store.get_user(owner).await {
                Ok(user) => user,
                // The owner was deleted since the credential was read: the credential is gone too.
                Err(StoreError::NotFound) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let r = Resolved::new(credential, user);
            state.credentials.put(hash, r.clone(), generation);
            r
        }
    };
    let now = OffsetDateTime::now_utc();
    let idle = time::Duration::try_from(state.config.session_idle).unwrap_or(time::Duration::hours(2));
    let (valid, last_used) = match &*resolved.credential {
        Credential::Session(s) => (s.expires_at > now && s.last_used + idle > now, Some(s.last_used)),
        Credential::Token(t) => (t.expires_at.is_none_or(|e| e > now), t.last_used),
    };
    if !valid || !resolved.user.is_active {
        return Ok(None);
    }
    if last_used.is_none_or(|t| now - t > TOUCH_EVERY) {
        state.store.touch_credential(&resolved.credential, now).await?;
        let mut touched = Credential::clone(&resolved.credential);
        match &mut touched {
            Credential::Session(s) => s.last_used = now,
            Credential::Token(t) => t.last_used = Some(now),
        }
        let fresh = Resolved { credential: Arc::new(touched), ..resolved.clone() };
        state.credentials.put(hash, fresh, generation);
    }
    Ok(Some(resolved))
}

/// Whether a cookie-authenticated unsafe request proves it is same-origin (§10).
fn csrf_passes(state: &AppState, headers: &HeaderMap, extensions: &axum::http::Extensions, csrf_token: &str) -> bool {
    let header_token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if header_token.is_some_and(|t| constant_time_eq(t.as_bytes(), csrf_token.as_bytes())) {
        return true;
    }
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin") {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    origin.is_some_and(|o| o.trim_end_matches('/') == crate::links::origin(state, headers, extensions))
}

/// Compares secrets without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate_parts(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<AuthOutcome, ApiError> {
    let Some(presented) = presented(headers) else { return Ok(AuthOutcome::Anonymous) };
    let (secret, cookie_sid) = match &presented {
        Presented::Header(t) => (t.as_str(), None),
        Presented::Cookie { sid, secret } => (secret.as_str(), Some(sid.as_str())),
    };
    let Some(resolved) = resolve(state, secret).await? else {
        return Ok(AuthOutcome::Failed("Invalid or expired credentials."));
    };
    let (session, token, csrf) = match &*resolved.credential {
        Credential::Session(s) => (Some(s.pk), None, Some(s.csrf_token.clone())),
        Credential::Token(t) => (None, Some(t.pk), None),
    };
    if let Some(sid) = cookie_sid {
        if session.map(|pk| pk.to_string()).as_deref() != Some(sid) {
            return Ok(AuthOutcome::Failed("Invalid or expired credentials."));
        }
        if !crate::extract::is_read(method) && !csrf_passes(state, headers, extensions, csrf.as_deref().unwrap_or_default()) {
            return Ok(AuthOutcome::CsrfFailed);
        }
    }
    let engine = state.engine.clone();
    let principal = Principal { user: resolved.user, session, token, scopes: resolved.scopes, engine, held: Arc::default() };
    Ok(AuthOutcome::Authenticated(Box::new(principal)))
}

/// Resolves the caller's credentials once and records the outcome in the request for extractors.
pub async fn authenticate(state: &AppState, req: &mut Request) -> Result<(), ApiError> {
    let outcome = authenticate_parts(state, req.method(), req.headers(), req.extensions()).await?;
    req.extensions_mut().insert(outcome);
    Ok(())
}

/// The caller, or the reason there is none.
pub fn principal_of(extensions: &axum::http::Extensions) -> Result<Principal, ApiError> {
    match extensions.get::<AuthOutcome>() {
        Some(AuthOutcome::Authenticated(p)) => Ok((**p).clone()),
        Some(AuthOutcome::Failed(m)) => Err(ApiError::AuthenticationFailed((*m).to_string())),
        Some(AuthOutcome::CsrfFailed) => Err(ApiError::Csrf),
        Some(AuthOutcome::Anonymous) | None => Err(ApiError::AuthenticationRequired),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal_of(&parts.extensions)
    }
}

/// The client address, as an extractor.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, &state.config.trusted_proxies)))
    }
}
