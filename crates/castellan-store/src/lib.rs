//! Persistence for Castellan: role traits joined in one `Store`, a SQLite implementation, and the change log.
//!
//! Every write runs in one transaction that also appends its change-log row and advances the revision.

use async_trait::async_trait;
use castellan_core::change::Change;

use castellan_core::model::{ApiToken, NewToken, NewUser, Org, Session, User, UserChanges};
use castellan_core::password::PasswordPolicy;
use castellan_core::permission::ModulePermissions;
use serde_json::Value;
use time::OffsetDateTime;

pub mod permissions;
pub mod planned;
pub mod sqlite;
#[cfg(feature = "testsuite")]
pub mod suite;
mod tail;
mod time_util;

pub use permissions::{Module, PermissionStore, Role};
pub use sqlite::SqliteStore;
pub use sqlite::dataset::{DatasetInfo, DatasetSpec, ImportCounts};

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
    /// A planned change's `before` no longer holds: what it names changed since it was read (plan it again).
    #[error("stale: {0} changed since the write was planned")]
    Stale(String),
    /// A dry run reached its write, left its change and rolled the write back.
    #[error("dry run: the write was previewed and rolled back")]
    DryRun,
    /// A dry run reached a write that cannot be previewed (one that is not logged); nothing was written.
    #[error("this write cannot be previewed")]
    NotPreviewable,
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

/// Where a dry run's write leaves the change it would have made.
pub type PreviewSlot = std::sync::Arc<std::sync::Mutex<Option<Change>>>;

tokio::task_local! {
    static DRY_RUN: PreviewSlot;
}

/// Runs `work` as a dry run: its first logged write runs to its end, leaves its [`Change`] in `slot` and is rolled
/// back (answering [`StoreError::DryRun`]); any write that is not logged, or audit-only, is refused with
/// [`StoreError::NotPreviewable`] before it runs. Nothing is ever committed.
pub async fn dry_run<F: std::future::Future>(slot: PreviewSlot, work: F) -> F::Output {
    DRY_RUN.scope(slot, work).await
}

/// The slot of the dry run being served, if the current task is one.
pub fn dry_run_slot() -> Option<PreviewSlot> {
    DRY_RUN.try_with(Clone::clone).ok()
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
    /// The change as stored (before/after values, secrets removed), as the audit log shows it.
    pub changes: Value,
    /// The typed change, `None` for a row this build does not understand (written before typed changes, or by a
    /// newer version): followers rebuild what they hold instead.
    pub change: Option<Change>,
    /// Client address.
    pub ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
}

/// The facts the store holds about what `change` touched, when an index cannot follow the change from its own facts
/// ([`Change::needs_stored_facts`]); `None` otherwise. Hand them to [`castellan_core::engine::Index::follow`].
pub async fn stored_facts_for(store: &dyn Store, change: &Change) -> Result<Option<castellan_core::engine::Facts>> {
    match change.engine_scope() {
        Some(scope) if change.needs_stored_facts() => Ok(Some(store.engine_patch(&scope).await?)),
        _ => Ok(None),
    }
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
    /// Members of any of these groups (direct members, or of descendants too when `groups_recursive`).
    pub groups: Vec<i64>,
    /// Whether `groups` includes members of descendant groups.
    pub groups_recursive: bool,
    /// Only the users a viewer sees, as the model says (API.md §11).
    pub seen_by: Option<SeenBy>,
    /// The users `groups` and `seen_by` select, as the model's set: a store that tests sets may use it in their
    /// place (the two must agree).
    pub within: Option<std::sync::Arc<castellan_core::directory::UserSet>>,
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

/// What a user filter narrows a list by, beside organisations: each kind of filter a store answers its own way.
#[derive(Debug, Clone, Copy)]
pub struct Narrowing<'a> {
    /// By keys, usernames, emails or names.
    pub by_fields: bool,
    /// By groups or by what a viewer sees (both also given as the model's set, `within`, when the caller has it).
    pub by_groups: bool,
    /// By the active, staff or superuser flags.
    pub by_flags: bool,
    /// By a search term (trimmed, not empty).
    pub search: Option<&'a str>,
}

impl UserFilter {
    /// What the filter narrows the list by (every field is named here, so a new one is placed on purpose).
    pub fn narrowing(&self) -> Narrowing<'_> {
        let UserFilter {
            ids,
            usernames,
            emails,
            first_names,
            last_names,
            groups,
            groups_recursive: _,
            seen_by,
            within: _,
            is_active,
            is_staff,
            is_superuser,
            orgs: _,
            search,
        } = self;
        Narrowing {
            by_fields: !ids.is_empty()
                || !usernames.is_empty()
                || !emails.is_empty()
                || !first_names.is_empty()
                || !last_names.is_empty(),
            by_groups: !groups.is_empty() || seen_by.is_some(),
            by_flags: is_active.is_some() || is_staff.is_some() || is_superuser.is_some(),
            search: search.as_deref().map(str::trim).filter(|t| !t.is_empty()),
        }
    }
}

/// What a viewer sees of the users, decided by the model (seed 004: the viewer's groups and every group below them)
/// and applied by the store as a filter: the viewer and the unexpired members of `groups`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenBy {
    /// The viewer, who always sees themselves.
    pub viewer: i64,
    /// The groups the viewer sees.
    pub groups: Vec<i64>,
}

/// A sortable user column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The sort keys before the `pk` tiebreak that every ordering ends with (keys after an `Id` key never decide).
    pub fn keys(ordering: &[(UserOrder, bool)]) -> impl Iterator<Item = (UserOrder, bool)> + '_ {
        ordering.iter().copied().take_while(|(order, _)| *order != UserOrder::Id)
    }

    /// Whether the `pk` tiebreak descends (when an `Id` key says so).
    pub fn pk_descends(ordering: &[(UserOrder, bool)]) -> bool {
        ordering.iter().find(|(order, _)| *order == UserOrder::Id).is_some_and(|(_, desc)| *desc)
    }
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
    /// Leave each user's `groups` empty: the caller fills them from the in-memory directory.
    pub skip_groups: bool,
    /// Read from this position in the order instead of skipping `offset` rows (keyset paging: any page costs what
    /// the first does). The rows still come in the query's order.
    pub after: Option<UserCursor>,
}

/// A sort key's value, as a cursor carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    /// A number (times in microseconds).
    Int(i64),
    /// A text (usernames by their folded key, emails lower-cased).
    Text(String),
    /// No value (a user who never logged in).
    Null,
}

/// A position in a user list's order: the values of one row's sort keys and its pk, and whether to read the rows
/// before it (a previous page) rather than after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserCursor {
    /// The row's values of the sort keys before the `pk` tiebreak, in order.
    pub keys: Vec<SortValue>,
    /// The row's pk.
    pub pk: i64,
    /// Read the rows before it.
    pub backwards: bool,
}

impl UserCursor {
    /// The position of `user` in `ordering`, with its keys as the store compares them.
    pub fn at(user: &User, ordering: &[(UserOrder, bool)], backwards: bool) -> Self {
        let micros = |t: OffsetDateTime| SortValue::Int(time_util::to_micros(t));
        let keys = UserOrder::keys(ordering)
            .map(|(order, _)| match order {
                UserOrder::Id => SortValue::Int(user.pk),
                UserOrder::Username => SortValue::Text(castellan_core::validate::username_key(&user.username)),
                UserOrder::Email => SortValue::Text(user.email.to_lowercase()),
                UserOrder::FirstName => SortValue::Text(user.first_name.clone()),
                UserOrder::LastName => SortValue::Text(user.last_name.clone()),
                UserOrder::DateJoined => micros(user.date_joined),
                UserOrder::LastLogin => user.last_login.map_or(SortValue::Null, micros),
            })
            .collect();
        Self { keys, pk: user.pk, backwards }
    }
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

impl Group {
    /// The group's fields as the change log records them.
    pub fn record(&self) -> castellan_core::change::GroupRecord {
        castellan_core::change::GroupRecord {
            name: self.name.clone(),
            description: self.description.clone(),
            org: self.org,
            parent: self.parent,
            permissions: self.permissions.to_map(),
        }
    }
}

/// A group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Primary key.
    pub pk: i64,
    /// Name, unique among siblings.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owning organisation.
    pub org: i64,
    /// Parent group.
    pub parent: Option<i64>,
    /// Module permissions the group confers on its members (and its descendants' members).
    pub permissions: ModulePermissions,
    /// Roles assigned to the group (unexpired), ascending.
    pub roles: Vec<i64>,
    /// When it was created.
    pub created_date: OffsetDateTime,
    /// When it last changed.
    pub modified_date: OffsetDateTime,
}

/// A group to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owning organisation.
    pub org: i64,
    /// Parent group (same organisation, else `Conflict{parent}`).
    pub parent: Option<i64>,
    /// Conferred permissions.
    pub permissions: ModulePermissions,
}

/// Which groups a list returns.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// By key.
    pub ids: Vec<i64>,
    /// By exact name.
    pub names: Vec<String>,
    /// By organisation.
    pub orgs: Vec<i64>,
    /// Children of this group (`Some(None)`: roots).
    pub parent: Option<Option<i64>>,
    /// Groups `user` is a direct (unexpired) member of.
    pub member: Option<i64>,
    /// Substring (case-insensitive) of name or description.
    pub search: Option<String>,
    /// Only these groups (the groups the model says a viewer sees); `Some` of none matches nothing.
    pub within: Option<Vec<i64>>,
}

/// A sortable group column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOrder {
    /// Primary key.
    Id,
    /// Name.
    Name,
    /// Creation time.
    CreatedDate,
}

impl GroupOrder {
    /// Parses an `ordering` field name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "id" | "pk" => Self::Id,
            "name" => Self::Name,
            "created_date" => Self::CreatedDate,
            _ => return None,
        })
    }
}

/// A page request for groups.
#[derive(Debug, Clone, Default)]
pub struct GroupQuery {
    /// Which rows.
    pub filter: GroupFilter,
    /// Sort keys; a `pk` tiebreak is always appended.
    pub ordering: Vec<(GroupOrder, bool)>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// One user's membership of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    /// The member.
    pub user: i64,
    /// The group.
    pub group: i64,
    /// When it stops counting.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether node restrictions apply (even with no nodes left).
    pub restricted: bool,
    /// Restricting node object keys, ascending.
    pub nodes: Vec<i64>,
}

/// The whole group forest and membership table, for building the in-memory directory.
pub type DirectorySnapshot = (Vec<(i64, Option<i64>)>, Vec<(i64, i64, Option<i64>)>);

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

/// Groups, their hierarchy (kept as an ancestor closure) and memberships.
#[async_trait]
pub trait GroupStore {
    /// The named groups (unknown keys skipped), ascending by key, each with its direct children.
    async fn groups_brief(&self, pks: &[i64]) -> Result<Vec<GroupBrief>>;
    /// Creates a group; a sibling with the same name is `Conflict{name}`, a bad parent `Conflict{parent}`.
    async fn create_group(&self, ctx: &WriteCtx, group: NewGroup) -> Result<(Group, Revision)>;
    /// One group.
    async fn get_group(&self, pk: i64) -> Result<Group>;
    /// A page of groups.
    async fn list_groups(&self, query: &GroupQuery) -> Result<Page<Group>>;
    /// One membership, expired or not.
    async fn membership(&self, user: i64, group: i64) -> Result<Option<Membership>>;
    /// Group `group` with each of `users` and its membership of the group as it is now, expired or not (`None`: not
    /// a member): what a membership write is planned from, in one read.
    async fn memberships(
        &self,
        group: i64,
        users: &[i64],
    ) -> Result<(Group, Vec<(i64, Option<castellan_core::change::MembershipRecord>)>)>;
    /// Every group as (pk, parent) and every membership as (user, group, expires_at in µs since the epoch).
    async fn directory_snapshot(&self) -> Result<DirectorySnapshot>;
    /// A user's memberships as (group, expires_at µs).
    async fn memberships_of_user(&self, user: i64) -> Result<Vec<(i64, Option<i64>)>>;
}

/// A node or other registered object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRecord {
    /// Primary key.
    pub pk: i64,
    /// Module id.
    pub model: String,
    /// The application's key.
    pub object_pk: String,
    /// Parent object.
    pub parent: Option<i64>,
    /// Owning organisation.
    pub org: i64,
}

/// Registered objects (nodes for restrictions; parents for grants).
#[async_trait]
pub trait ObjectStore {
    /// Registers an object (`Conflict{object}` when already registered).
    async fn create_object(
        &self,
        ctx: &WriteCtx,
        model: &str,
        object_pk: &str,
        parent: Option<i64>,
        org: i64,
    ) -> Result<(ObjectRecord, Revision)>;
    /// One object by module and key.
    async fn find_object(&self, model: &str, object_pk: &str) -> Result<Option<ObjectRecord>>;
    /// Unregisters an object.
    async fn delete_object(&self, ctx: &WriteCtx, model: &str, object_pk: &str) -> Result<Revision>;
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
    /// A page of organisations (only `only` when given), by key.
    async fn list_orgs(&self, only: Option<i64>, search: Option<&str>, offset: i64, limit: i64) -> Result<Page<Org>>;
    /// Changes name, slug or description.
    async fn update_org(
        &self,
        ctx: &WriteCtx,
        pk: i64,
        name: Option<&str>,
        slug: Option<&str>,
        description: Option<&str>,
    ) -> Result<(Org, Revision)>;
    /// Deletes an organisation that has no users (`Conflict{users}`), groups (`Conflict{org_groups}`) or objects (`Conflict{org_objects}`).
    async fn delete_org(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision>;
    /// The organisation's password policy (the default when never set).
    async fn password_policy(&self, org: i64) -> Result<PasswordPolicy>;
    /// Replaces the organisation's password policy.
    async fn set_password_policy(&self, ctx: &WriteCtx, org: i64, policy: &PasswordPolicy) -> Result<Revision>;
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
    async fn create_token(&self, ctx: &WriteCtx, user: i64, token: NewToken) -> Result<(ApiToken, Revision)>;
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
    /// Ends every session of `user` but `keep`, and (when `tokens`) every token; logged, so that every server drops
    /// what it cached of them.
    async fn end_credentials(&self, ctx: &WriteCtx, user: i64, keep_session: Option<i64>, tokens: bool) -> Result<()>;
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
    /// Persists changes planned from the model, in order, in one transaction with their change-log rows, and answers
    /// the last one's revision. Each applies only if its `before` still holds ([`StoreError::Stale`] otherwise, and
    /// nothing is written); the store's own rules (unique names, no cycles) still hold. Applies
    /// [`Change::GroupUpdated`], [`Change::GroupDeleted`], [`Change::MembersAssigned`], [`Change::MembersUnassigned`],
    /// [`Change::MembershipRestricted`], [`Change::RoleAssigned`], [`Change::RoleUnassigned`],
    /// [`Change::ModulePermissionsSet`], [`Change::GrantsAssigned`] and [`Change::GrantsUnassigned`]; other writes go
    /// through their own calls.
    async fn apply(&self, ctx: &WriteCtx, changes: Vec<Change>) -> Result<Revision>;
    /// Appends an audit-only event.
    async fn audit(&self, ctx: &WriteCtx, event: Change) -> Result<()>;
    /// Writes one `expire` change (at a new revision) for each membership, grant or role assignment whose expiry
    /// passed since the last call, up to `now`; returns how many were recorded.
    async fn record_expirations(&self, now: OffsetDateTime) -> Result<usize>;
    /// The key of the newest change-log row at or before `revision` (0 when none).
    async fn change_pk_at_revision(&self, revision: Revision) -> Result<i64>;
    /// The key of the newest change-log row (0 when empty).
    async fn last_change_pk(&self) -> Result<i64>;
    /// Change-log rows after `after_pk`, oldest first, at most `limit`. A store answers its own newest writes from
    /// memory, so rows another process committed after them come only in a later answer: read on until one is empty.
    async fn changes(&self, after_pk: i64, limit: i64) -> Result<Vec<ChangeEntry>>;
}

/// A sortable change-log column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOrder {
    /// Primary key: the order rows were written in.
    Pk,
    /// When the change happened.
    At,
    /// The revision it produced (audit-only rows have none and come first ascending).
    Revision,
}

impl ChangeOrder {
    /// Parses an `ordering` field name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pk" | "id" => Self::Pk,
            "at" => Self::At,
            "revision" => Self::Revision,
            _ => return None,
        })
    }
}

/// An audit-log page request: empty vectors mean "no filter", several values match any, filters combine with AND.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    /// Rows written by any of these users.
    pub actors: Vec<i64>,
    /// Rows on any of these target types (module ids).
    pub target_types: Vec<String>,
    /// Rows on any of these target keys.
    pub target_pks: Vec<String>,
    /// Rows with any of these actions.
    pub actions: Vec<String>,
    /// Rows at or after this instant.
    pub since: Option<OffsetDateTime>,
    /// Rows strictly before this instant.
    pub until: Option<OffsetDateTime>,
    /// Rows whose target is any of these subjects, as (target_type, target_pk).
    pub subjects: Vec<(String, String)>,
    /// Rows whose target is any of these objects, as (target_type, target_pk).
    pub objects: Vec<(String, String)>,
    /// Rows of this organisation only (the actor's at write time); `None` for every row.
    pub org: Option<i64>,
    /// Rows after this change-log key (to follow the log).
    pub after: Option<i64>,
    /// Sort keys; empty means newest first. A `pk` tiebreak in the first key's direction is always appended.
    pub ordering: Vec<(ChangeOrder, bool)>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

/// The audit log: filtered, ordered pages of the change log.
#[async_trait]
pub trait AuditStore {
    /// A page of change-log rows matching `query`, with the total count.
    async fn list_changes(&self, query: &ChangeQuery) -> Result<Page<ChangeEntry>>;
}

/// A route of the server's own API, published into the catalog as a BE permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedRoute {
    /// The namespace: the module the route is guarded by.
    pub namespace: String,
    /// Lower-case HTTP method.
    pub action: String,
    /// The path expression, as BE permissions write it.
    pub path: String,
}

/// A node of the server's own admin UI FE tree, shipped into the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedFe {
    /// Slugs from below the root (`is_superuser`, pk 1) down to the node; parents come before their children.
    pub path: Vec<String>,
    /// Display name.
    pub name: String,
    /// The published BE permissions it gives, as (namespace, action).
    pub be: Vec<(String, String)>,
}

/// The permission catalog (API.md §7): BE/FE permissions, FE permission groups, catalog and channel groups.
#[async_trait]
pub trait CatalogStore {
    /// Every catalog row, as of one moment.
    async fn catalog_rows(&self) -> Result<castellan_core::catalog::CatalogRows>;
    /// Persists one catalog change (a creation's `pk` is assigned here) with its change-log row; answers the change
    /// as persisted: only links really added or removed, only fields really changed.
    async fn write_catalog(&self, ctx: &WriteCtx, change: Change) -> Result<(Change, Revision)>;
    /// Publishes the server's own routes (marking published routes no longer served as stale) and its admin UI tree,
    /// idempotently; answers the last revision written, `None` when everything was current.
    async fn publish_catalog(&self, routes: &[PublishedRoute], tree: &[ShippedFe]) -> Result<Option<Revision>>;
}

/// Everything the server persists.
#[async_trait]
pub trait Store:
    OrgStore
    + CatalogStore
    + GroupStore
    + ObjectStore
    + PermissionStore
    + UserStore
    + CredentialStore
    + UserDataStore
    + ChangeLog
    + AuditStore
    + Send
    + Sync
    + 'static
{
    /// Brings the schema up to date.
    async fn migrate(&self) -> Result<()>;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// The server's secret key for credential hashes: `candidate` is stored on first use, the stored key returned.
    async fn server_key(&self, candidate: &[u8]) -> Result<Vec<u8>>;
}
