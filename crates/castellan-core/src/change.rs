//! The one vocabulary of writes: every write the API can make is one [`Change`], with the values before and after it
//! (secrets never appear). The store appends each change to the change log in the write's transaction, and every
//! follower of the log (the authorization index, the directory, the audit log, `watch/`) reads the same typed rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::{ObjectKey, Scope, SubjectFact};
use crate::password::PasswordPolicy;

/// The version of the change-log encoding written by this build. A row of a newer version is not understood (its
/// followers rebuild from the store instead of guessing).
pub const CHANGE_VERSION: u32 = 1;

/// One write, as the change log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A user was created.
    UserCreated {
        /// The user.
        pk: i64,
        /// Its fields.
        after: UserRecord,
    },
    /// A user's fields changed (only the fields that changed appear).
    UserUpdated {
        /// The user.
        pk: i64,
        /// Changed fields before.
        before: UserFields,
        /// Changed fields after (a new password shows as `"changed"`).
        after: UserFields,
    },
    /// A user was deleted.
    UserDeleted {
        /// The user.
        pk: i64,
        /// Its fields.
        before: UserRecord,
    },
    /// A group was created.
    GroupCreated {
        /// The group.
        pk: i64,
        /// Its fields.
        after: GroupRecord,
    },
    /// A group was renamed, described, moved or given other permissions.
    GroupUpdated {
        /// The group.
        pk: i64,
        /// Its fields before.
        before: GroupRecord,
        /// Its fields after.
        after: GroupRecord,
    },
    /// A group was deleted with its subtree.
    GroupDeleted {
        /// The group.
        pk: i64,
        /// Its fields.
        before: GroupRecord,
        /// Every group of the subtree below it that went with it.
        deleted: Vec<i64>,
    },
    /// Users were added to a group (or their expiry changed).
    MembersAssigned {
        /// The group.
        group: i64,
        /// Each membership before and after.
        members: Vec<MemberChange>,
    },
    /// Users were removed from a group.
    MembersUnassigned {
        /// The group.
        group: i64,
        /// Each membership before (after is empty).
        members: Vec<MemberChange>,
    },
    /// One membership's node restriction changed.
    MembershipRestricted {
        /// The group.
        group: i64,
        /// The member.
        user: i64,
        /// The membership before.
        before: Option<MembershipRecord>,
        /// The membership after.
        after: Option<MembershipRecord>,
    },
    /// An organisation was created.
    OrgCreated {
        /// The organisation.
        pk: i64,
        /// Its fields.
        after: OrgRecord,
    },
    /// An organisation was renamed or described.
    OrgUpdated {
        /// The organisation.
        pk: i64,
        /// Its fields before.
        before: OrgRecord,
        /// Its fields after.
        after: OrgRecord,
    },
    /// An organisation was deleted.
    OrgDeleted {
        /// The organisation.
        pk: i64,
        /// Its fields.
        before: OrgRecord,
    },
    /// An organisation's password policy changed.
    PasswordPolicySet {
        /// The organisation.
        org: i64,
        /// The policy before.
        before: PolicyRecord,
        /// The policy after.
        after: PolicyRecord,
    },
    /// A module was registered.
    ModuleCreated {
        /// The module id.
        id: String,
        /// Its fields.
        after: ModuleRecord,
    },
    /// A module was described, (de)activated or given other custom actions.
    ModuleUpdated {
        /// The module id.
        id: String,
        /// Its fields before.
        before: ModuleRecord,
        /// Its fields after.
        after: ModuleRecord,
    },
    /// A module was deleted with its grants.
    ModuleDeleted {
        /// The module id.
        id: String,
        /// Its fields.
        before: ModuleRecord,
    },
    /// A role was created.
    RoleCreated {
        /// The role.
        pk: i64,
        /// Its fields.
        after: RoleRecord,
    },
    /// A role was renamed or described.
    RoleUpdated {
        /// The role.
        pk: i64,
        /// Its fields before.
        before: RoleRecord,
        /// Its fields after.
        after: RoleRecord,
    },
    /// A role was deleted.
    RoleDeleted {
        /// The role.
        pk: i64,
        /// Its fields.
        before: RoleRecord,
    },
    /// A role was assigned to users or groups.
    RoleAssigned {
        /// The role.
        pk: i64,
        /// The users and groups it was assigned to.
        #[serde(with = "subjects_text")]
        subjects: Vec<SubjectFact>,
        /// The role and its holders before.
        before: RoleRecord,
        /// The role and its holders after.
        after: RoleRecord,
        /// When the new assignments expire (microseconds since the epoch).
        expires_at: Option<i64>,
    },
    /// A role was taken from users or groups.
    RoleUnassigned {
        /// The role.
        pk: i64,
        /// The users and groups it was taken from.
        #[serde(with = "subjects_text")]
        subjects: Vec<SubjectFact>,
        /// The role and its holders before.
        before: RoleRecord,
        /// The role and its holders after.
        after: RoleRecord,
    },
    /// The actions a subject holds on one module, globally, were replaced.
    ModulePermissionsSet {
        /// Who holds them.
        #[serde(with = "subject_text")]
        subject: SubjectFact,
        /// The module.
        module: String,
        /// Actions before.
        before: Vec<String>,
        /// Actions after.
        after: Vec<String>,
    },
    /// Permissions were granted to a subject, globally or on one object.
    GrantsAssigned {
        /// Who holds them.
        #[serde(with = "subject_text")]
        subject: SubjectFact,
        /// The object, when not global.
        #[serde(with = "object_text")]
        object: Option<ObjectKey>,
        /// `module.action` of each permission granted.
        after: Vec<String>,
        /// When they expire (microseconds since the epoch).
        expires_at: Option<i64>,
    },
    /// Permissions were taken from a subject, globally or on one object.
    GrantsUnassigned {
        /// Who held them.
        #[serde(with = "subject_text")]
        subject: SubjectFact,
        /// The object, when not global.
        #[serde(with = "object_text")]
        object: Option<ObjectKey>,
        /// `module.action` of each permission taken.
        before: Vec<String>,
    },
    /// An object was registered (or re-registered under another parent).
    ObjectRegistered {
        /// The object.
        after: ObjectRecord,
    },
    /// An object was unregistered, with every grant on it (its children stay, without a parent).
    ObjectDeleted {
        /// The object.
        before: ObjectRecord,
        /// The grants on the object, deleted with it (none in rows logged before they were).
        #[serde(default)]
        grants: Vec<ObjectGrant>,
    },
    /// An API token was created (its secret is not recorded).
    TokenCreated {
        /// The token.
        pk: i64,
        /// Whose it is and what it is called.
        after: TokenRecord,
    },
    /// An API token was revoked.
    TokenDeleted {
        /// The token.
        pk: i64,
        /// Whose it was.
        user: i64,
    },
    /// A membership reached its expiry.
    MembershipExpired {
        /// The member.
        user: i64,
        /// The group.
        group: i64,
        /// When (microseconds since the epoch).
        expired_at: i64,
    },
    /// A role assignment reached its expiry.
    RoleAssignmentExpired {
        /// The role.
        role: i64,
        /// Who held it.
        #[serde(with = "subject_text")]
        subject: SubjectFact,
        /// When (microseconds since the epoch).
        expired_at: i64,
    },
    /// A grant reached its expiry.
    GrantExpired {
        /// Who held it.
        #[serde(with = "subject_text")]
        subject: SubjectFact,
        /// `module.action`.
        permission: String,
        /// The object, when not global.
        #[serde(with = "object_text")]
        object: Option<ObjectKey>,
        /// When (microseconds since the epoch).
        expired_at: i64,
    },
    /// A user logged in (audit only).
    LoggedIn {
        /// The user.
        user: i64,
        /// The session opened.
        session: Option<i64>,
    },
    /// A login was refused (audit only).
    LoginFailed {
        /// The account, when one has that username.
        user: Option<i64>,
        /// The username tried.
        username: String,
    },
    /// A user logged out (audit only).
    LoggedOut {
        /// The user.
        user: i64,
    },
    /// A user's other sessions (and, with `tokens`, API tokens) were ended: revoked by an administrator, or by a
    /// password change or deactivation (audit only; logged as a logout).
    SessionsRevoked {
        /// The user.
        user: i64,
        /// Whether the API tokens were ended too.
        tokens: bool,
    },
    /// A user wrote one key of their data store (audit only; the value is not recorded).
    UserDataWritten {
        /// The user.
        user: i64,
        /// The key.
        key: String,
        /// Whether the key was new.
        created: bool,
    },
    /// A user deleted one key of their data store (audit only).
    UserDataDeleted {
        /// The user.
        user: i64,
        /// The key.
        key: String,
    },
    /// An entry of the permission catalog was created (or published by the server for its own API).
    CatalogCreated {
        /// What kind of entry.
        entry: CatalogEntry,
        /// Its key.
        pk: i64,
        /// Its fields and links.
        after: Box<CatalogRecord>,
    },
    /// An entry of the permission catalog changed (only what changed appears on either side).
    CatalogUpdated {
        /// What kind of entry.
        entry: CatalogEntry,
        /// Its key.
        pk: i64,
        /// Changed fields before.
        before: Box<CatalogRecord>,
        /// Changed fields after.
        after: Box<CatalogRecord>,
    },
    /// An entry of the permission catalog was deleted.
    CatalogDeleted {
        /// What kind of entry.
        entry: CatalogEntry,
        /// Its key.
        pk: i64,
        /// Its fields and links.
        before: Box<CatalogRecord>,
    },
    /// Users, BE permissions, FE permissions or FE permission groups were linked to a catalog entry.
    CatalogLinked {
        /// What kind of entry.
        entry: CatalogEntry,
        /// Its key.
        pk: i64,
        /// What was linked.
        link: CatalogLink,
        /// The keys newly linked.
        added: Vec<i64>,
    },
    /// Links were taken from a catalog entry.
    CatalogUnlinked {
        /// What kind of entry.
        entry: CatalogEntry,
        /// Its key.
        pk: i64,
        /// What was unlinked.
        link: CatalogLink,
        /// The keys no longer linked.
        removed: Vec<i64>,
    },
}

/// The kinds of entry of the permission catalog (API.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogEntry {
    /// A BE permission namespace.
    BeNamespace,
    /// A BE permission.
    BePermission,
    /// An FE permission.
    FePermission,
    /// An FE permission group.
    FeGroup,
    /// A catalog group.
    CatalogGroup,
    /// A channel group.
    ChannelGroup,
}

impl CatalogEntry {
    /// The audit log's `target_type` for the entry: its collection's path segment.
    pub fn collection(self) -> &'static str {
        match self {
            CatalogEntry::BeNamespace => "be_permission_namespace",
            CatalogEntry::BePermission => "be_permissions",
            CatalogEntry::FePermission => "fe_permissions",
            CatalogEntry::FeGroup => "fe_permission_groups",
            CatalogEntry::CatalogGroup => "catalog_groups",
            CatalogEntry::ChannelGroup => "channel_groups",
        }
    }

    /// Whether entries of this kind are object grants the authorization index holds (catalog and channel groups).
    pub fn is_object_group(self) -> bool {
        matches!(self, CatalogEntry::CatalogGroup | CatalogEntry::ChannelGroup)
    }

    /// The module whose `access` an object group grants on its items.
    pub fn object_module(self) -> Option<&'static str> {
        match self {
            CatalogEntry::CatalogGroup => Some("catalogs"),
            CatalogEntry::ChannelGroup => Some("channels"),
            _ => None,
        }
    }
}

/// What a catalog link joins to its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogLink {
    /// Users holding the entry.
    Users,
    /// BE permissions an FE permission gives.
    BePermissions,
    /// FE permissions an FE permission group gives.
    FePermissions,
    /// FE permission groups holding an FE permission.
    FeGroups,
}

/// A catalog entry's recorded fields and links; each kind fills the fields it has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A BE permission's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<i64>,
    /// A BE permission's lower-case method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A BE permission's path expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Whether a published BE permission's route is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
    /// An FE permission's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// An FE permission's parent (`Some(None)`: a root, written as `null`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub parent: Option<Option<i64>>,
    /// An FE permission group's description (`Some(None)`: none, written as `null`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub description: Option<Option<String>>,
    /// Published by the server (namespaces and BE permissions of its routes, its admin UI's FE tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<bool>,
    /// A catalog or channel group's directory group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
    /// A catalog or channel group's items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<i64>>,
    /// Linked BE permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub be_permissions: Option<Vec<i64>>,
    /// Linked FE permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fe_permissions: Option<Vec<i64>>,
    /// Linked users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<i64>>,
}

/// A user's recorded fields (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Free text.
    pub description: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Active account.
    pub is_active: bool,
    /// Holds everything.
    pub is_superuser: bool,
    /// Organisation.
    pub org: i64,
    /// Direct groups.
    pub groups: Vec<i64>,
    /// Phone number.
    pub phone_number: Option<String>,
}

/// Some of a user's fields: those a change touched.
pub type UserFields = BTreeMap<String, serde_json::Value>;

/// The direct groups among changed user fields, when they changed.
pub fn changed_groups(fields: &UserFields) -> Option<Vec<i64>> {
    let groups = fields.get("groups")?.as_array()?;
    Some(groups.iter().filter_map(serde_json::Value::as_i64).collect())
}

/// A group's recorded fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Organisation.
    pub org: i64,
    /// Parent group.
    pub parent: Option<i64>,
    /// Module permissions held by the group's members.
    pub permissions: BTreeMap<String, Vec<String>>,
}

/// One membership: when it expires and how it is restricted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// Expiry (microseconds since the epoch).
    pub expires_at: Option<i64>,
    /// Whether node restrictions apply.
    pub restricted: bool,
    /// Restricting nodes, ascending.
    pub nodes: Vec<i64>,
}

/// One member's membership before and after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    /// The member.
    pub user: i64,
    /// Before (`None`: not a member).
    pub before: Option<MembershipRecord>,
    /// After (`None`: not a member).
    pub after: Option<MembershipRecord>,
}

/// An organisation's recorded fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgRecord {
    /// Display name.
    pub name: String,
    /// URL-safe name.
    pub slug: String,
    /// Free text.
    pub description: String,
}

/// An organisation's password policy, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// The policy.
    pub password_policy: PasswordPolicy,
}

/// A module's recorded fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRecord {
    /// Free text.
    pub description: String,
    /// Inactive modules grant nothing.
    pub is_active: bool,
    /// Custom actions beyond the standard six.
    pub actions: Vec<String>,
}

/// A role's recorded fields and holders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Organisation.
    pub org: i64,
    /// Users holding it directly.
    pub users: Vec<i64>,
    /// Groups holding it.
    pub groups: Vec<i64>,
}

/// A grant on an object, as deleting the object records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectGrant {
    /// The holder.
    #[serde(with = "subject_text")]
    pub subject: SubjectFact,
    /// `module.action`.
    pub permission: String,
}

/// A registered object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Module id.
    pub model: String,
    /// The application's key.
    pub object_pk: String,
    /// The parent object.
    #[serde(with = "object_text")]
    pub parent: Option<ObjectKey>,
    /// Organisation.
    pub org: i64,
}

/// An API token's recorded fields (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose.
    pub user: i64,
    /// Its name.
    pub name: String,
    /// The first characters of its secret, as shown in listings.
    pub prefix: String,
    /// Its scopes as `"module.action"` names; absent when it carries all of its owner's holdings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// Reads a field that is present, `null` included, as `Some`: an absent one stays `None` (`serde(default)`), so a
/// value set to null is not read back as a value left alone.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A change as one change-log row holds it: the change and the version of its encoding.
#[derive(Debug, Serialize, Deserialize)]
struct Versioned<C> {
    v: u32,
    #[serde(flatten)]
    change: C,
}

impl Change {
    /// Users joining `group`, or re-dated, with expiry `expires_at`, from their memberships as read (`None`: not a
    /// member): a restriction stays as it was. A user read twice joins once.
    pub fn members_assigned(group: i64, read: Vec<(i64, Option<MembershipRecord>)>, expires_at: Option<i64>) -> Change {
        let mut members: Vec<MemberChange> = Vec::with_capacity(read.len());
        for (user, before) in read {
            if members.iter().any(|m| m.user == user) {
                continue;
            }
            let after = match &before {
                Some(m) => MembershipRecord { expires_at, ..m.clone() },
                None => MembershipRecord { expires_at, restricted: false, nodes: Vec::new() },
            };
            members.push(MemberChange { user, before, after: Some(after) });
        }
        Change::MembersAssigned { group, members }
    }

    /// Role `pk` (its record as read) assigned to `subjects`, expiring at `expires_at`.
    pub fn role_assigned(pk: i64, before: RoleRecord, subjects: Vec<SubjectFact>, expires_at: Option<i64>) -> Change {
        let mut after = before.clone();
        for subject in &subjects {
            match *subject {
                SubjectFact::User(u) => after.users.push(u),
                SubjectFact::Group(g) => after.groups.push(g),
                SubjectFact::Role(_) => {}
            }
        }
        for holders in [&mut after.users, &mut after.groups] {
            holders.sort_unstable();
            holders.dedup();
        }
        Change::RoleAssigned { pk, subjects, before, after, expires_at }
    }

    /// Role `pk` (its record as read) taken from `subjects`.
    pub fn role_unassigned(pk: i64, before: RoleRecord, subjects: Vec<SubjectFact>) -> Change {
        let mut after = before.clone();
        after.users.retain(|u| !subjects.contains(&SubjectFact::User(*u)));
        after.groups.retain(|g| !subjects.contains(&SubjectFact::Group(*g)));
        Change::RoleUnassigned { pk, subjects, before, after }
    }

    /// Users leaving `group`, from their memberships as read; those who are not members are left out.
    pub fn members_unassigned(group: i64, read: Vec<(i64, Option<MembershipRecord>)>) -> Change {
        let mut members: Vec<MemberChange> = Vec::with_capacity(read.len());
        for (user, before) in read {
            if before.is_some() && !members.iter().any(|m| m.user == user) {
                members.push(MemberChange { user, before, after: None });
            }
        }
        Change::MembersUnassigned { group, members }
    }

    /// `user`'s membership of `group` (as read) restricted to `nodes` (ascending, once each), or lifted (`None`).
    pub fn membership_restricted(group: i64, user: i64, before: MembershipRecord, nodes: Option<Vec<i64>>) -> Change {
        let restricted = nodes.is_some();
        let mut nodes = nodes.unwrap_or_default();
        nodes.sort_unstable();
        nodes.dedup();
        let after = MembershipRecord { expires_at: before.expires_at, restricted, nodes };
        Change::MembershipRestricted { group, user, before: Some(before), after: Some(after) }
    }

    /// The change as JSON with its version and kind, as the change log stores it and the audit log shows it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(Versioned { v: CHANGE_VERSION, change: self }).unwrap_or_else(|_| serde_json::json!({}))
    }

    /// Reads a change-log row's change, parsed as JSON (the audit log shows it as such); `None` for a row this build
    /// does not understand (written before typed changes, or by a newer version).
    pub fn from_value(value: &serde_json::Value) -> Option<Change> {
        let versioned = Versioned::<Change>::deserialize(value).ok()?;
        (versioned.v <= CHANGE_VERSION).then_some(versioned.change)
    }

    /// Whether the change advances the revision: audit-only events (logins, logouts, user data) do not.
    pub fn advances_revision(&self) -> bool {
        !matches!(
            self,
            Change::LoggedIn { .. }
                | Change::LoginFailed { .. }
                | Change::LoggedOut { .. }
                | Change::SessionsRevoked { .. }
                | Change::UserDataWritten { .. }
                | Change::UserDataDeleted { .. }
        )
    }

    /// The audit log's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            Change::UserCreated { .. }
            | Change::GroupCreated { .. }
            | Change::OrgCreated { .. }
            | Change::ModuleCreated { .. }
            | Change::RoleCreated { .. }
            | Change::ObjectRegistered { .. }
            | Change::TokenCreated { .. }
            | Change::CatalogCreated { .. } => "create",
            Change::UserDataWritten { created: true, .. } => "create",
            Change::UserUpdated { after, .. } if after.contains_key("password") => "password_change",
            Change::UserUpdated { .. }
            | Change::GroupUpdated { .. }
            | Change::MembershipRestricted { .. }
            | Change::OrgUpdated { .. }
            | Change::PasswordPolicySet { .. }
            | Change::ModuleUpdated { .. }
            | Change::RoleUpdated { .. }
            | Change::UserDataWritten { created: false, .. }
            | Change::CatalogUpdated { .. } => "update",
            Change::UserDeleted { .. }
            | Change::GroupDeleted { .. }
            | Change::OrgDeleted { .. }
            | Change::ModuleDeleted { .. }
            | Change::RoleDeleted { .. }
            | Change::ObjectDeleted { .. }
            | Change::TokenDeleted { .. }
            | Change::UserDataDeleted { .. }
            | Change::CatalogDeleted { .. } => "delete",
            Change::MembersAssigned { .. }
            | Change::RoleAssigned { .. }
            | Change::GrantsAssigned { .. }
            | Change::CatalogLinked { .. } => "assign",
            Change::MembersUnassigned { .. }
            | Change::RoleUnassigned { .. }
            | Change::GrantsUnassigned { .. }
            | Change::CatalogUnlinked { .. } => "unassign",
            Change::ModulePermissionsSet { after, .. } => {
                if after.is_empty() {
                    "unassign"
                } else {
                    "assign"
                }
            }
            Change::MembershipExpired { .. } | Change::RoleAssignmentExpired { .. } | Change::GrantExpired { .. } => "expire",
            Change::LoggedIn { .. } => "login",
            Change::LoginFailed { .. } => "login_failed",
            Change::LoggedOut { .. } | Change::SessionsRevoked { .. } => "logout",
        }
    }

    /// The organisation of what the change is about, when the change itself records it (creations and deletions
    /// do, so a deleted record's entry still belongs to its org); `None` when the store must look the target up.
    pub fn org(&self) -> Option<i64> {
        match self {
            Change::UserCreated { after, .. } => Some(after.org),
            Change::UserDeleted { before, .. } => Some(before.org),
            Change::GroupCreated { after, .. } | Change::GroupUpdated { after, .. } => Some(after.org),
            Change::GroupDeleted { before, .. } => Some(before.org),
            Change::OrgCreated { pk, .. } | Change::OrgUpdated { pk, .. } | Change::OrgDeleted { pk, .. } => Some(*pk),
            Change::PasswordPolicySet { org, .. } => Some(*org),
            Change::RoleCreated { after, .. } | Change::RoleUpdated { after, .. } => Some(after.org),
            Change::RoleDeleted { before, .. } | Change::RoleAssigned { before, .. } | Change::RoleUnassigned { before, .. } => {
                Some(before.org)
            }
            Change::ObjectRegistered { after } => Some(after.org),
            Change::ObjectDeleted { before, .. } => Some(before.org),
            _ => None,
        }
    }

    /// The audit log's `target_type` and `target_pk`: the module id and key of what the change is about.
    pub fn target(&self) -> (String, String) {
        let pk = |kind: &str, pk: i64| (kind.to_string(), pk.to_string());
        match self {
            Change::UserCreated { pk: p, .. } | Change::UserUpdated { pk: p, .. } | Change::UserDeleted { pk: p, .. } => {
                pk("users", *p)
            }
            Change::LoggedIn { user, .. } | Change::LoggedOut { user } | Change::SessionsRevoked { user, .. } => {
                pk("users", *user)
            }
            Change::LoginFailed { user, .. } => ("users".to_string(), user.map(|u| u.to_string()).unwrap_or_default()),
            Change::GroupCreated { pk: p, .. } | Change::GroupUpdated { pk: p, .. } | Change::GroupDeleted { pk: p, .. } => {
                pk("groups", *p)
            }
            Change::MembersAssigned { group, .. }
            | Change::MembersUnassigned { group, .. }
            | Change::MembershipRestricted { group, .. }
            | Change::MembershipExpired { group, .. } => pk("groups", *group),
            Change::OrgCreated { pk: p, .. } | Change::OrgUpdated { pk: p, .. } | Change::OrgDeleted { pk: p, .. } => {
                pk("orgs", *p)
            }
            Change::PasswordPolicySet { org, .. } => pk("orgs", *org),
            Change::ModuleCreated { id, .. } | Change::ModuleUpdated { id, .. } | Change::ModuleDeleted { id, .. } => {
                ("modules".to_string(), id.clone())
            }
            Change::RoleCreated { pk: p, .. }
            | Change::RoleUpdated { pk: p, .. }
            | Change::RoleDeleted { pk: p, .. }
            | Change::RoleAssigned { pk: p, .. }
            | Change::RoleUnassigned { pk: p, .. } => pk("roles", *p),
            Change::RoleAssignmentExpired { role, .. } => pk("roles", *role),
            Change::ModulePermissionsSet { subject, .. } => subject_target(*subject),
            Change::GrantsAssigned { subject, object, .. }
            | Change::GrantsUnassigned { subject, object, .. }
            | Change::GrantExpired { subject, object, .. } => match object {
                Some((model, key)) => (model.clone(), key.clone()),
                None => subject_target(*subject),
            },
            Change::ObjectRegistered { after } => (after.model.clone(), after.object_pk.clone()),
            Change::ObjectDeleted { before, .. } => (before.model.clone(), before.object_pk.clone()),
            Change::TokenCreated { pk: p, .. } | Change::TokenDeleted { pk: p, .. } => pk("tokens", *p),
            Change::UserDataWritten { user, key, .. } | Change::UserDataDeleted { user, key } => {
                ("user_data".to_string(), format!("{user}:{key}"))
            }
            Change::CatalogCreated { entry, pk: p, .. }
            | Change::CatalogUpdated { entry, pk: p, .. }
            | Change::CatalogDeleted { entry, pk: p, .. }
            | Change::CatalogLinked { entry, pk: p, .. }
            | Change::CatalogUnlinked { entry, pk: p, .. } => pk(entry.collection(), *p),
        }
    }

    /// Whether following the change needs the facts the store holds, not only those the index holds: the index
    /// merges a group's own `permissions` with the global grants given to it, so a change to either (the same action
    /// may come from both) cannot say what remains.
    pub fn needs_stored_facts(&self) -> bool {
        match self {
            Change::GroupUpdated { before, after, .. } => before.permissions != after.permissions,
            Change::ModulePermissionsSet { subject: SubjectFact::Group(_), .. } => true,
            Change::GrantsAssigned { subject: SubjectFact::Group(_), object, .. }
            | Change::GrantsUnassigned { subject: SubjectFact::Group(_), object, .. } => object.is_none(),
            // An object group's grants may repeat grants given another way: only the store knows what remains.
            Change::CatalogCreated { entry, .. }
            | Change::CatalogUpdated { entry, .. }
            | Change::CatalogDeleted { entry, .. } => entry.is_object_group(),
            _ => false,
        }
    }

    /// The user whose credentials the change may end or whose account a cached credential carries (an account
    /// changed or deleted, a token revoked, a logout): followers drop what they cached for that user.
    pub fn credentials_of(&self) -> Option<i64> {
        match self {
            Change::UserUpdated { pk, .. } | Change::UserDeleted { pk, .. } => Some(*pk),
            Change::TokenDeleted { user, .. } | Change::LoggedOut { user } | Change::SessionsRevoked { user, .. } => Some(*user),
            _ => None,
        }
    }

    /// Whether the change is a membership write (members assigned or unassigned, or one member's node
    /// restriction): it changes those members' facts, not the group's.
    pub fn is_membership_change(&self) -> bool {
        matches!(self, Change::MembersAssigned { .. } | Change::MembersUnassigned { .. } | Change::MembershipRestricted { .. })
    }

    /// The memberships the change sets, as (user, group, `Some(expiry)` for a membership or `None` for none):
    /// what a directory of memberships applies.
    pub fn memberships(&self) -> Vec<(i64, i64, Option<Option<i64>>)> {
        match self {
            Change::MembersAssigned { group, members } | Change::MembersUnassigned { group, members } => {
                members.iter().map(|m| (m.user, *group, m.after.as_ref().map(|after| after.expires_at))).collect()
            }
            _ => Vec::new(),
        }
    }

    /// What an authorization index must read again after this change, or `None` when only a rebuild will do (a
    /// module changed: every permission id may move). Being generous is safe; missing something is not.
    pub fn engine_scope(&self) -> Option<Scope> {
        let mut scope = Scope::default();
        match self {
            Change::ModuleCreated { .. } | Change::ModuleUpdated { .. } | Change::ModuleDeleted { .. } => return None,
            Change::UserCreated { pk, .. } | Change::UserUpdated { pk, .. } | Change::UserDeleted { pk, .. } => {
                scope.users.insert(*pk);
            }
            Change::GroupCreated { pk, .. } | Change::GroupUpdated { pk, .. } => {
                scope.groups.insert(*pk);
            }
            Change::GroupDeleted { pk, deleted, .. } => {
                scope.groups.insert(*pk);
                scope.groups.extend(deleted.iter().copied());
            }
            Change::MembersAssigned { members, .. } | Change::MembersUnassigned { members, .. } => {
                scope.users.extend(members.iter().map(|m| m.user));
            }
            Change::MembershipRestricted { user, .. } => {
                scope.users.insert(*user);
            }
            Change::RoleCreated { pk, .. } | Change::RoleUpdated { pk, .. } | Change::RoleDeleted { pk, .. } => {
                scope.roles.insert(*pk);
            }
            // Only the holders named change: their role assignments are read again.
            Change::RoleAssigned { subjects, .. } | Change::RoleUnassigned { subjects, .. } => {
                subjects.iter().for_each(|s| scope.insert_subject(*s));
            }
            Change::ModulePermissionsSet { subject, .. }
            | Change::GrantsAssigned { subject, .. }
            | Change::GrantsUnassigned { subject, .. } => scope.insert_subject(*subject),
            Change::ObjectRegistered { after } => {
                scope.objects.insert((after.model.clone(), after.object_pk.clone()));
            }
            Change::ObjectDeleted { before, grants } => {
                scope.objects.insert((before.model.clone(), before.object_pk.clone()));
                grants.iter().for_each(|g| scope.insert_subject(g.subject));
            }
            // Expiries need no refresh: checks compare the clock themselves. Organisations, policies, tokens and
            // audit-only events decide no holding.
            Change::MembershipExpired { .. }
            | Change::RoleAssignmentExpired { .. }
            | Change::GrantExpired { .. }
            | Change::OrgCreated { .. }
            | Change::OrgUpdated { .. }
            | Change::OrgDeleted { .. }
            | Change::PasswordPolicySet { .. }
            | Change::TokenCreated { .. }
            | Change::TokenDeleted { .. }
            | Change::LoggedIn { .. }
            | Change::LoginFailed { .. }
            | Change::LoggedOut { .. }
            | Change::SessionsRevoked { .. }
            | Change::UserDataWritten { .. }
            | Change::UserDataDeleted { .. }
            | Change::CatalogLinked { .. }
            | Change::CatalogUnlinked { .. } => {}
            Change::CatalogCreated { .. } | Change::CatalogUpdated { .. } | Change::CatalogDeleted { .. } => {
                scope.groups.extend(self.object_group_grants().into_iter().map(|(group, _, _)| group));
            }
        }
        Some(scope)
    }

    /// The module whose change forces a rebuild, if the change is one.
    pub fn module(&self) -> Option<&str> {
        match self {
            Change::ModuleCreated { id, .. } | Change::ModuleUpdated { id, .. } | Change::ModuleDeleted { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The catalog entry a catalog change is about (object groups excluded: they are previewed as grants).
    pub fn catalog_target(&self) -> Option<(CatalogEntry, i64)> {
        let (entry, pk) = match self {
            Change::CatalogCreated { entry, pk, .. }
            | Change::CatalogUpdated { entry, pk, .. }
            | Change::CatalogDeleted { entry, pk, .. }
            | Change::CatalogLinked { entry, pk, .. }
            | Change::CatalogUnlinked { entry, pk, .. } => (*entry, *pk),
            _ => return None,
        };
        (!entry.is_object_group()).then_some((entry, pk))
    }

    /// Whether the change alters the permission catalog, or what the catalog links to (a user or group deleted):
    /// followers holding the catalog read it again.
    pub fn touches_catalog(&self) -> bool {
        matches!(
            self,
            Change::CatalogCreated { .. }
                | Change::CatalogUpdated { .. }
                | Change::CatalogDeleted { .. }
                | Change::CatalogLinked { .. }
                | Change::CatalogUnlinked { .. }
                | Change::UserDeleted { .. }
                | Change::GroupDeleted { .. }
        )
    }

    /// An object group change as the grants it takes away and gives: (group, module, item) with `false` for taken
    /// and `true` for given. Empty for any other change.
    pub fn object_group_grants(&self) -> Vec<(i64, &'static str, (i64, bool))> {
        let (entry, before, after) = match self {
            Change::CatalogCreated { entry, after, .. } => (entry, None, Some(after)),
            Change::CatalogUpdated { entry, before, after, .. } => (entry, Some(before), Some(after)),
            Change::CatalogDeleted { entry, before, .. } => (entry, Some(before), None),
            _ => return Vec::new(),
        };
        let Some(module) = entry.object_module() else { return Vec::new() };
        // Object groups record their group and items on both sides of an update.
        let side =
            |record: Option<&Box<CatalogRecord>>| record.and_then(|r| Some((r.group?, r.items.clone().unwrap_or_default())));
        let mut grants = Vec::new();
        if let Some((group, items)) = side(before) {
            grants.extend(items.into_iter().map(|item| (group, module, (item, false))));
        }
        if let Some((group, items)) = side(after) {
            grants.extend(items.into_iter().map(|item| (group, module, (item, true))));
        }
        grants
    }
}

/// The audit target of a subject's own record.
fn subject_target(subject: SubjectFact) -> (String, String) {
    let (kind, pk) = match subject {
        SubjectFact::User(pk) => ("users", pk),
        SubjectFact::Group(pk) => ("groups", pk),
        SubjectFact::Role(pk) => ("roles", pk),
    };
    (kind.to_string(), pk.to_string())
}

impl Scope {
    /// Adds a subject (a user, group or role) to the scope.
    pub fn insert_subject(&mut self, subject: SubjectFact) {
        match subject {
            SubjectFact::User(pk) => self.users.insert(pk),
            SubjectFact::Group(pk) => self.groups.insert(pk),
            SubjectFact::Role(pk) => self.roles.insert(pk),
        };
    }
}

impl SubjectFact {
    /// `user:5`, `group:7`, `role:2`.
    pub fn to_text(self) -> String {
        match self {
            SubjectFact::User(pk) => format!("user:{pk}"),
            SubjectFact::Group(pk) => format!("group:{pk}"),
            SubjectFact::Role(pk) => format!("role:{pk}"),
        }
    }

    /// Reads `user:5`, `group:7` or `role:2`.
    pub fn from_text(text: &str) -> Option<SubjectFact> {
        let (kind, pk) = text.split_once(':')?;
        let pk = pk.parse().ok()?;
        match kind {
            "user" => Some(SubjectFact::User(pk)),
            "group" => Some(SubjectFact::Group(pk)),
            "role" => Some(SubjectFact::Role(pk)),
            _ => None,
        }
    }
}

/// Subjects written as `kind:pk`, as the audit log's `subject` filter names them.
mod subject_text {
    use super::*;

    pub fn serialize<S: Serializer>(subject: &SubjectFact, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&subject.to_text())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SubjectFact, D::Error> {
        let text = String::deserialize(d)?;
        SubjectFact::from_text(&text).ok_or_else(|| serde::de::Error::custom(format!("not a subject: {text}")))
    }
}

/// Lists of subjects written as `kind:pk`.
mod subjects_text {
    use super::*;

    pub fn serialize<S: Serializer>(subjects: &[SubjectFact], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(subjects.iter().map(|subject| subject.to_text()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SubjectFact>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| SubjectFact::from_text(text).ok_or_else(|| serde::de::Error::custom(format!("not a subject: {text}"))))
            .collect()
    }
}

/// Objects written as `model:key`, as the audit log's `object` filter names them.
mod object_text {
    use super::*;

    pub fn serialize<S: Serializer>(object: &Option<ObjectKey>, s: S) -> Result<S::Ok, S::Error> {
        match object {
            Some((model, key)) => s.serialize_str(&format!("{model}:{key}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ObjectKey>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let (model, key) = text.split_once(':').ok_or_else(|| serde::de::Error::custom(format!("not an object: {text}")))?;
        Ok(Some((model.to_string(), key.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn membership(expires_at: Option<i64>) -> MembershipRecord {
        MembershipRecord { expires_at, restricted: false, nodes: Vec::new() }
    }

    #[test]
    fn a_change_reads_back_as_written() {
        let changes = [
            Change::MembersAssigned {
                group: 4,
                members: vec![MemberChange { user: 9, before: None, after: Some(membership(Some(5))) }],
            },
            Change::GrantsAssigned {
                subject: SubjectFact::Group(3),
                object: Some(("catalogs".into(), "a:b".into())),
                after: vec!["catalogs.read".into()],
                expires_at: None,
            },
            Change::ObjectRegistered {
                after: ObjectRecord { model: "docs".into(), object_pk: "1".into(), parent: None, org: 1 },
            },
            Change::LoginFailed { user: None, username: "mallory".into() },
        ];
        for change in changes {
            assert_eq!(Change::from_value(&change.to_value()), Some(change));
        }
    }

    #[test]
    fn the_log_shows_subjects_and_objects_as_text() {
        let change = Change::GrantsUnassigned {
            subject: SubjectFact::User(5),
            object: Some(("catalogs".into(), "42".into())),
            before: vec!["catalogs.read".into()],
        };
        let value = change.to_value();
        assert_eq!(value["v"], 1);
        assert_eq!(value["kind"], "grants_unassigned");
        assert_eq!(value["subject"], "user:5");
        assert_eq!(value["object"], "catalogs:42");
        assert_eq!(change.target(), ("catalogs".to_string(), "42".to_string()));
        assert_eq!(change.action(), "unassign");
    }

    #[test]
    fn a_catalog_field_set_to_null_reads_back_as_set() {
        let moved = CatalogRecord { parent: Some(None), description: Some(None), ..CatalogRecord::default() };
        let change = Change::CatalogUpdated {
            entry: CatalogEntry::FePermission,
            pk: 4,
            before: Box::new(CatalogRecord { parent: Some(Some(3)), ..CatalogRecord::default() }),
            after: Box::new(moved),
        };
        assert_eq!(change.to_value()["after"], serde_json::json!({"parent": null, "description": null}));
        assert_eq!(Change::from_value(&change.to_value()), Some(change));
    }

    #[test]
    fn rows_this_build_does_not_understand_are_none() {
        assert_eq!(Change::from_value(&serde_json::json!({"after": {"name": "x"}})), None);
        let mut newer = Change::LoggedOut { user: 1 }.to_value();
        newer["v"] = 99.into();
        assert_eq!(Change::from_value(&newer), None);
        assert_eq!(Change::from_value(&serde_json::json!("not a change")), None);
    }

    #[test]
    fn membership_writes_scope_their_members_not_their_group() {
        let change = Change::MembersUnassigned {
            group: 4,
            members: vec![MemberChange { user: 9, before: Some(membership(None)), after: None }],
        };
        let scope = change.engine_scope().unwrap();
        assert!(scope.groups.is_empty());
        assert_eq!(scope.users.into_iter().collect::<Vec<_>>(), vec![9]);
        assert_eq!(change.memberships(), vec![(9, 4, None)]);
        assert!(change.is_membership_change());
    }

    #[test]
    fn module_changes_ask_for_a_rebuild_and_audit_events_advance_nothing() {
        let module = ModuleRecord { description: String::new(), is_active: true, actions: Vec::new() };
        assert_eq!(Change::ModuleDeleted { id: "docs".into(), before: module }.engine_scope(), None);
        assert!(!Change::LoggedIn { user: 1, session: Some(2) }.advances_revision());
        assert!(Change::TokenDeleted { pk: 1, user: 2 }.advances_revision());
        assert_eq!(Change::TokenDeleted { pk: 1, user: 2 }.credentials_of(), Some(2));
        assert_eq!(Change::LoggedOut { user: 3 }.credentials_of(), Some(3));
        assert_eq!(Change::LoggedIn { user: 3, session: None }.credentials_of(), None);
    }
}
