//! Sessions and personal API tokens: secrets are never stored, only their keyed hashes.

use time::OffsetDateTime;

/// A login session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Primary key (the `sid` cookie).
    pub pk: i64,
    /// Whose session.
    pub user: i64,
    /// Token the session's CSRF check compares against.
    pub csrf_token: String,
    /// When it was created.
    pub created: OffsetDateTime,
    /// When it was last used (written at most once a minute).
    pub last_used: OffsetDateTime,
    /// Absolute end of life.
    pub expires_at: OffsetDateTime,
    /// Client address at login.
    pub ip: String,
    /// Client user agent at login.
    pub user_agent: String,
}

/// A personal API token.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    /// Primary key.
    pub pk: i64,
    /// Whose token.
    pub user: i64,
    /// The owner's label for it.
    pub name: String,
    /// The first characters of the secret, to recognise it by.
    pub prefix: String,
    /// When it was created.
    pub created_date: OffsetDateTime,
    /// Optional end of life.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was last used (written at most once a minute).
    pub last_used: Option<OffsetDateTime>,
}
