//! Persistence for Castellan: role traits joined in one `Store`, a SQLite implementation, and the change log.
//!
//! Every write runs in one transaction that also appends its change-log row and advances the revision.

use async_trait::async_trait;
use castellan_core::model::{ApiToken, NewUser, Org, Session, User, UserChanges};
use serde_json::Value;
use time::OffsetDateTime;

pub mod sqlite;
#[cfg(feature = "testsuite")]
pub mod suite;
mod time_util;

pub use sqlite::SqliteStore;

/// The store's monotonic counter of directory and permission-model changes.
pub type Revision = i64;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule was broken.
    #[error("conflict on {constraint}")]
    Conflict {
        /// Which rule (`username`, `slug`, `groups`, ...).
        constraint: String,
    },
    /// A size limit was reached (user data store).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The database failed.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Who made a write and where from; recorded in the change log.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    /// The acting user, `None` for the server itself.
    pub actor: Option<(i64, String)>,
    /// Client address.
    pub ip: Option<String>,
    /// The request's id.
    pub request_id: Option<String>,
}

/// One change-log row.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEntry {
    /// Primary key.
    pub pk: i64,
    /// When.
    pub at: OffsetDateTime,
    /// The revision it produced, `None` for audit-only events (logins, user data).
    pub revision: Option<Revision>,
    /// Who, as (pk, username).
    pub actor: Option<(i64, String)>,
    /// `create`, `update`, `delete`, `login`, ...
    pub action: String,
    /// The target's module id.
    pub target_type: String,
    /// The target's key.
    pub target_pk: String,
    /// Before/after values, secrets removed.
    pub changes: Value,
    /// Client address.
    pub ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

/// An audit-only event (does not advance the revision).
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `login`, `logout`, `login_failed`, `password_change`, `update` (user data) ...
    pub action: &'static str,
    /// The target's module id.
    pub target_type: &'static str,
    /// The target's key.
    pub target_pk: String,
    /// Details, secrets removed.
    pub changes: Value,
}

/// Which users a list returns; empty vectors mean "no filter", several values match any.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// By primary key.
    pub ids: Vec<i64>,
    /// By username (case-insensitive, exact).
    pub usernames: Vec<String>,
    /// By email (case-insensitive, exact).
    pub emails: Vec<String>,
    /// By first name (exact).
    pub first_names: Vec<String>,
    /// By last name (exact).
    pub last_names: Vec<String>,
    /// Direct members of any of these groups.
    pub groups: Vec<i64>,
    /// By active flag.
    pub is_active: Option<bool>,
    /// By staff flag.
    pub is_staff: Option<bool>,
    /// By superuser flag.
    pub is_superuser: Option<bool>,
    /// By organisation.
    pub orgs: Vec<i64>,
    /// Substring (3+ characters) or prefix match over username, names and email.
    pub search: Option<String>,
}

/// A sortable user column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserOrder {
    /// Primary key.
    Id,
    /// Username.
    Username,
    /// Email.
    Email,
    /// First name.
    FirstName,
    /// Last name.
    LastName,
    /// Join time.
    DateJoined,
    /// Last login.
    LastLogin,
}

impl UserOrder {
    /// Parses an `ordering` field name (seed 000 and seed 004 spellings).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "id" | "pk" => Self::Id,
            "username" | "login" => Self::Username,
            "email" => Self::Email,
            "first_name" | "firstname" => Self::FirstName,
            "last_name" | "lastname" => Self::LastName,
            "date_joined" => Self::DateJoined,
            "last_login" => Self::LastLogin,
            _ => return None,
        })
    }
}

/// A page request: filter, ordering (field, descending), offset and limit.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Which rows.
    pub filter: UserFilter,
    /// Sort keys; a `pk` tiebreak is always appended.
    pub ordering: Vec<(UserOrder, bool)>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// One page of rows and the total count.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Total rows matching the filter.
    pub count: i64,
    /// This page's rows.
    pub items: Vec<T>,
}

/// What a login needs to know about an account.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    /// The user.
    pub user: User,
    /// The argon2id hash, if the account has a password.
    pub password_hash: Option<String>,
}

/// A credential found by its secret's hash.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A login session.
    Session(Session),
    /// A personal API token.
    Token(ApiToken),
}

/// A group as embedded in user representations.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBrief {
    /// Primary key.
    pub pk: i64,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Direct children's keys, ascending.
    pub children: Vec<i64>,
}

/// Groups, as far as the user side needs them.
#[async_trait]
pub trait GroupStore {
    /// The named groups (unknown keys skipped), ascending by key, each with its direct children.
    async fn groups_brief(&self, pks: &[i64]) -> Result<Vec<GroupBrief>>;
}

/// Organisations.
#[async_trait]
pub trait OrgStore {
    /// Creates an organisation.
    async fn create_org(&self, ctx: &WriteCtx, name: &str, slug: &str, description: &str) -> Result<(Org, Revision)>;
    /// One organisation.
    async fn get_org(&self, pk: i64) -> Result<Org>;
    /// One organisation by slug.
    async fn org_by_slug(&self, slug: &str) -> Result<Org>;
}

/// Users, their profile, password history and avatar.
#[async_trait]
pub trait UserStore {
    /// Creates a user with its memberships; `groups` must exist in the user's org (else `Conflict{groups}`).
    async fn create_user(&self, ctx: &WriteCtx, user: NewUser) -> Result<(User, Revision)>;
    /// One user.
    async fn get_user(&self, pk: i64) -> Result<User>;
    /// Several users by key, in ascending key order; unknown keys are skipped.
    async fn get_users(&self, pks: &[i64]) -> Result<Vec<User>>;
    /// A user by username (case-insensitive), with the password hash.
    async fn login_record(&self, username: &str) -> Result<Option<LoginRecord>>;
    /// A page of users.
    async fn list_users(&self, query: &UserQuery) -> Result<Page<User>>;
    /// Number of users (for first start).
    async fn count_users(&self) -> Result<i64>;
    /// Applies changes; the old hash goes to the password history.
    async fn update_user(&self, ctx: &WriteCtx, pk: i64, changes: UserChanges) -> Result<(User, Revision)>;
    /// Deletes a user and everything that belongs to it.
    async fn delete_user(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision>;
    /// The current hash followed by older ones, newest first, at most `n`.
    async fn password_hashes(&self, pk: i64, n: usize) -> Result<Vec<String>>;
    /// Records a successful login time (audit-only, no revision).
    async fn set_last_login(&self, pk: i64, at: OffsetDateTime) -> Result<()>;
    /// The avatar's content type and bytes.
    async fn get_avatar(&self, pk: i64) -> Result<Option<(String, Vec<u8>)>>;
    /// Which of `pks` are groups of `org`.
    async fn existing_groups(&self, org: i64, pks: &[i64]) -> Result<Vec<i64>>;
}

/// Sessions and API tokens, found by the keyed hash of their secret.
#[async_trait]
pub trait CredentialStore {
    /// Stores a new session.
    #[allow(clippy::too_many_arguments)]
    async fn create_session(
        &self,
        user: i64,
        secret_hash: &[u8],
        csrf_token: &str,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        ip: &str,
        user_agent: &str,
    ) -> Result<Session>;
    /// Stores a new API token.
    async fn create_token(
        &self,
        ctx: &WriteCtx,
        user: i64,
        name: &str,
        prefix: &str,
        secret_hash: &[u8],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(ApiToken, Revision)>;
    /// The session or token whose secret hashes to `hash`.
    async fn credential_by_hash(&self, hash: &[u8]) -> Result<Option<Credential>>;
    /// Records use of a session or token.
    async fn touch_credential(&self, credential: &Credential, at: OffsetDateTime) -> Result<()>;
    /// A user's sessions, newest first.
    async fn list_sessions(&self, user: i64) -> Result<Vec<Session>>;
    /// A user's tokens, newest first.
    async fn list_tokens(&self, user: i64) -> Result<Vec<ApiToken>>;
    /// Ends one session of `user`.
    async fn delete_session(&self, user: i64, pk: i64) -> Result<()>;
    /// Revokes one token of `user`.
    async fn delete_token(&self, ctx: &WriteCtx, user: i64, pk: i64) -> Result<Revision>;
    /// Ends every session of `user` but `keep`, and (when `tokens`) every token.
    async fn end_credentials(&self, user: i64, keep_session: Option<i64>, tokens: bool) -> Result<()>;
}

/// The per-user key/value store.
#[async_trait]
pub trait UserDataStore {
    /// Every key and value of a user.
    async fn data_all(&self, user: i64) -> Result<Vec<(String, Value)>>;
    /// One value.
    async fn data_get(&self, user: i64, key: &str) -> Result<Option<Value>>;
    /// Sets a value; `true` when the key is new. Refuses with `LimitExceeded` past `max_total` bytes per user.
    async fn data_put(&self, user: i64, key: &str, value: &Value, max_total: usize) -> Result<bool>;
    /// Removes a key; `NotFound` when absent.
    async fn data_delete(&self, user: i64, key: &str) -> Result<()>;
}

/// The change log and revision counter.
#[async_trait]
pub trait ChangeLog {
    /// The newest committed revision.
    async fn revision(&self) -> Result<Revision>;
    /// Appends an audit-only event.
    async fn audit(&self, ctx: &WriteCtx, event: AuditEvent) -> Result<()>;
    /// Change-log rows after `after_pk`, oldest first, at most `limit`.
    async fn changes(&self, after_pk: i64, limit: i64) -> Result<Vec<ChangeEntry>>;
}

/// Everything the server persists.
#[async_trait]
pub trait Store: OrgStore + GroupStore + UserStore + CredentialStore + UserDataStore + ChangeLog + Send + Sync + 'static {
    /// Brings the schema up to date.
    async fn migrate(&self) -> Result<()>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// The server's secret key for credential hashes: `candidate` is stored on first use, the stored key returned.
    async fn server_key(&self, candidate: &[u8]) -> Result<Vec<u8>>;
}
