//! Sessions and personal API tokens: secrets are never stored, only their keyed hashes.

use time::OffsetDateTime;

use crate::permission::ModulePermissions;

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
    /// Its scopes: the token acts with these and its owner's current holdings both (`None`: all of the owner's).
    pub permissions: Option<ModulePermissions>,
}

/// A personal API token to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken {
    /// The owner's label for it.
    pub name: String,
    /// The first characters of the secret.
    pub prefix: String,
    /// The keyed hash of the secret.
    pub secret_hash: Vec<u8>,
    /// Optional end of life.
    pub expires_at: Option<OffsetDateTime>,
    /// Its scopes (`None`: all of the owner's holdings).
    pub permissions: Option<ModulePermissions>,
}
