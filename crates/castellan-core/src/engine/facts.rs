//! What the engine is built from: plain records as the store holds them, keyed by primary keys.

/// An object key: (module id, the application's key).
pub type ObjectKey = (String, String);

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFact {
    /// Primary key.
    pub pk: i64,
    /// Organisation.
    pub org: i64,
    /// Active account.
    pub is_active: bool,
    /// Holds everything.
    pub is_superuser: bool,
}

/// A module with its actions (the standard six and any custom ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFact {
    /// Module id.
    pub id: String,
    /// Inactive modules grant nothing.
    pub is_active: bool,
    /// Custom actions beyond the standard six.
    pub custom_actions: Vec<String>,
}

/// Who a grant or role assignment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectFact {
    /// A user, by primary key.
    User(i64),
    /// A group, by primary key.
    Group(i64),
    /// A role, by primary key.
    Role(i64),
}

/// A grant of one permission to one subject, globally (within the subject's org) or on one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrantFact {
    /// The holder.
    pub subject: SubjectFact,
    /// Module id.
    pub module: String,
    /// Action name.
    pub action: String,
    /// The object, or `None` for a global grant.
    pub object: Option<ObjectKey>,
    /// When it stops counting (µs since the epoch).
    pub expires_at: Option<i64>,
}

/// A user's membership of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipFact {
    /// Member.
    pub user: i64,
    /// Group.
    pub group: i64,
    /// When it stops counting.
    pub expires_at: Option<i64>,
    /// `Some(nodes)`: what comes through this membership applies only inside these node ids.
    pub restriction: Option<Vec<i64>>,
}

/// A role assigned to a user or a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleAssignmentFact {
    /// The role.
    pub role: i64,
    /// `User` or `Group`.
    pub subject: SubjectFact,
    /// When it stops counting.
    pub expires_at: Option<i64>,
}

/// A registered object, with its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFact {
    /// Its key.
    pub key: ObjectKey,
    /// Its parent's key.
    pub parent: Option<ObjectKey>,
    /// Organisation.
    pub org: i64,
}

/// Everything the index is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Users.
    pub users: Vec<UserFact>,
    /// Groups as (pk, org, parent).
    pub groups: Vec<(i64, i64, Option<i64>)>,
    /// Roles as (pk, org).
    pub roles: Vec<(i64, i64)>,
    /// Modules.
    pub modules: Vec<ModuleFact>,
    /// Memberships.
    pub memberships: Vec<MembershipFact>,
    /// Role assignments.
    pub role_assignments: Vec<RoleAssignmentFact>,
    /// Grants.
    pub grants: Vec<GrantFact>,
    /// Registered objects.
    pub objects: Vec<ObjectFact>,
}
