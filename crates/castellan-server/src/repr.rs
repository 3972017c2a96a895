//! Wire representations (seed 000 shapes); domain types stay free of serialisation concerns.

use std::collections::BTreeMap;

use castellan_core::model::User;
use castellan_core::permission::Action;
use castellan_store::{ChangeEntry, Group, GroupBrief, Module};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::state::AppState;

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
    /// Direct groups the caller sees (at most 1,000): keys, or embedded groups where asked for.
    #[schema(inline)]
    pub groups: Vec<G>,
    /// Number of direct groups the caller sees (`GET users/{pk}/groups/` pages them).
    pub groups_count: usize,
    /// Number of direct groups the caller may not see.
    pub groups_hidden: usize,
    /// Owning organisation.
    pub org: i64,
}

/// Most entries an embedded `users`/`groups` array holds (API.md §10 "Lists at scale").
pub const EMBEDDED_MAX: usize = 1000;

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
            groups: groups.into_iter().take(EMBEDDED_MAX).collect(),
            groups_count: self.groups_count,
            groups_hidden: self.groups_hidden,
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
            groups_count: u.groups.len(),
            groups_hidden: u.groups_hidden,
            groups: u.groups.into_iter().take(EMBEDDED_MAX).collect(),
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

/// A user-facing timestamp: RFC 3339 UTC with microseconds. Written digit by digit: a page of users formats two per
/// user, and `format!` with padding was a tenth of a listing's CPU.
pub fn timestamp(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let Ok(year) = u32::try_from(t.year()) else { return format!("{t:?}") };
    if year > 9999 {
        return format!("{t:?}");
    }
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let fields = [
        (0, 4, year),
        (5, 2, u32::from(u8::from(t.month()))),
        (8, 2, u32::from(t.day())),
        (11, 2, u32::from(t.hour())),
        (14, 2, u32::from(t.minute())),
        (17, 2, u32::from(t.second())),
        (20, 6, t.microsecond()),
    ];
    for (start, width, mut value) in fields {
        for i in (start..start + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// Every action of a module: the standard six, then its custom ones.
pub fn module_actions(m: &Module) -> Vec<String> {
    Action::ALL.iter().map(|a| a.as_str().to_string()).chain(m.custom_actions.iter().cloned()).collect()
}

/// A group as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOut {
    /// Primary key.
    pub pk: i64,
    /// Name, unique among siblings.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owning organisation.
    pub org: i64,
    /// Parent group, or null for a root.
    pub parent: Option<i64>,
    /// Conferred module permissions `{module_id: [action...]}`.
    pub permissions: BTreeMap<String, Vec<String>>,
    /// Roles assigned to the group.
    pub roles: Vec<i64>,
    /// When it was created.
    pub created_date: String,
    /// When it last changed.
    pub modified_date: String,
}

impl From<&Group> for GroupOut {
    fn from(g: &Group) -> Self {
        Self {
            pk: g.pk,
            name: g.name.clone(),
            description: g.description.clone(),
            org: g.org,
            parent: g.parent,
            permissions: g.permissions.to_map(),
            roles: g.roles.clone(),
            created_date: timestamp(g.created_date),
            modified_date: timestamp(g.modified_date),
        }
    }
}

/// Keys whose values are secrets: removed from `changes` wherever they occur.
const SECRET_KEYS: [&str; 9] =
    ["password_hash", "hash", "secret", "secret_hash", "token", "session_secret", "csrf_token", "api_key", "private_key"];

/// Who made a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorOut {
    /// The user's key.
    pub pk: i64,
    /// The username when the change was made.
    pub username: String,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    /// Primary key (entries are append-only).
    pub pk: i64,
    /// When, RFC 3339 UTC with microseconds.
    pub at: String,
    /// The revision the change produced; null for audit-only events (logins, user data).
    pub revision: Option<i64>,
    /// Who, or null for the server itself.
    pub actor: Option<ActorOut>,
    /// `create`, `update`, `delete`, `assign`, `unassign`, `expire`, `login`, `logout`, `login_failed`, `password_change`.
    pub action: String,
    /// The target's module id.
    pub target_type: String,
    /// The target's key.
    pub target_pk: String,
    /// Before and after values; secrets never appear.
    #[schema(value_type = Object)]
    pub changes: Value,
    /// Client address.
    pub ip: Option<String>,
    /// The request's id.
    pub request_id: Option<String>,
}

impl From<ChangeEntry> for AuditEntryOut {
    fn from(c: ChangeEntry) -> Self {
        let mut changes = c.changes;
        scrub(&mut changes);
        Self {
            pk: c.pk,
            at: timestamp(c.at),
            revision: c.revision,
            actor: c.actor.map(|(pk, username)| ActorOut { pk, username }),
            action: c.action,
            target_type: c.target_type,
            target_pk: c.target_pk,
            changes,
            ip: c.ip,
            request_id: c.request_id,
        }
    }
}

/// Removes secret-bearing keys at any depth, and shows a password only as `"changed"` (defence in depth: the store
/// never logs secrets in the first place).
fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()));
            for (k, v) in map.iter_mut() {
                if k.eq_ignore_ascii_case("password") && !v.is_null() {
                    *v = Value::String("changed".into());
                } else {
                    scrub(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Expands each user's `groups` into `{pk, name, description, children}` with one store call for the whole page.
pub async fn expand_groups(state: &AppState, users: &[User], expanded: bool) -> ApiResult<Vec<UserOut<GroupRef>>> {
    let mut pks: Vec<i64> = users.iter().flat_map(|u| u.groups.iter().copied()).collect();
    pks.sort_unstable();
    pks.dedup();
    let briefs = state.store.groups_brief(&pks).await?;
    Ok(users
        .iter()
        .map(|u| {
            let refs = briefs.iter().filter(|g| u.groups.contains(&g.pk)).map(|g| GroupRef::new(g.clone(), expanded)).collect();
            UserOut::from(u).with_groups(refs)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_have_microseconds() {
        let t = time::macros::datetime!(2022-12-21 10:32:51.707174 UTC);
        assert_eq!(timestamp(t), "2022-12-21T10:32:51.707174Z");
        let early = time::macros::datetime!(0999-01-02 03:04:05.000006 +02:00);
        assert_eq!(timestamp(early), "0999-01-02T01:04:05.000006Z", "padded, and in UTC");
    }

    #[test]
    fn scrubbing() {
        let mut v = json!({"after": {"password": "changed", "password_hash": "$argon2id$x", "name": "ci",
            "nested": [{"secret": "s", "Token": "t", "keep": 1}], "password2": "x"}});
        scrub(&mut v);
        assert_eq!(v, json!({"after": {"password": "changed", "name": "ci", "nested": [{"keep": 1}], "password2": "x"}}));
        let mut v = json!({"password": "Hunter2!"});
        scrub(&mut v);
        assert_eq!(v, json!({"password": "changed"}));
    }
}
