//! Wire representations (seed 000 shapes); domain types stay free of serialisation concerns.

use castellan_core::model::User;
use castellan_store::GroupBrief;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::timestamp;

/// A user as the API shows it: never a password or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut<G = i64> {
    /// Primary key.
    pub pk: i64,
    /// Login name.
    pub username: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email.
    pub email: String,
    /// Free text.
    pub description: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Active flag.
    pub is_active: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// RFC 3339 with microseconds.
    pub date_joined: String,
    /// RFC 3339 with microseconds, or null.
    pub last_login: Option<String>,
    /// Direct groups: keys, or embedded groups where asked for.
    pub groups: Vec<G>,
    /// Owning organisation.
    pub org: i64,
}

impl UserOut {
    /// The same user with `groups` replaced by embedded groups.
    pub fn with_groups<G>(self, groups: Vec<G>) -> UserOut<G> {
        UserOut {
            pk: self.pk,
            username: self.username,
            first_name: self.first_name,
            last_name: self.last_name,
            email: self.email,
            description: self.description,
            is_staff: self.is_staff,
            is_active: self.is_active,
            is_superuser: self.is_superuser,
            date_joined: self.date_joined,
            last_login: self.last_login,
            groups,
            org: self.org,
        }
    }
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            pk: u.pk,
            username: u.username,
            first_name: u.first_name,
            last_name: u.last_name,
            email: u.email,
            description: u.description,
            is_staff: u.is_staff,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            date_joined: timestamp(u.date_joined),
            last_login: u.last_login.map(timestamp),
            groups: u.groups,
            org: u.org,
        }
    }
}

impl From<&User> for UserOut {
    fn from(u: &User) -> Self {
        Self::from(u.clone())
    }
}

/// A group embedded in a user (seed 004 with `groups=true`; seed 000 `{pk, name}` for the active user).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRef {
    /// Primary key.
    pub pk: i64,
    /// Name.
    pub name: String,
    /// Free text (only with `groups=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Direct children's keys (only with `groups=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<i64>>,
}

impl GroupRef {
    /// The short form `{pk, name}`, or the expanded one with description and children.
    pub fn new(g: GroupBrief, expanded: bool) -> Self {
        Self { pk: g.pk, name: g.name, description: expanded.then_some(g.description), children: expanded.then_some(g.children) }
    }
}

/// The active user's profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileOut {
    /// The profile's key (the user's).
    pub pk: i64,
    /// Absolute URL of the avatar image, or null.
    pub avatar: Option<String>,
    /// E.164 phone number, or null.
    pub phone_number: Option<String>,
}

/// The active user (seed 000 ActiveUserViewSet).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveUserOut {
    /// The user's fields, groups as `{pk, name}` (with `description`, `children` when `groups=true`).
    #[serde(flatten)]
    pub user: UserOut<GroupRef>,
    /// Profile.
    pub userprofile: ProfileOut,
}
