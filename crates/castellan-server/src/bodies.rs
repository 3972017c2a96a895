//! The JSON request bodies as the OpenAPI document describes them. Handlers read bodies field by field
//! ([`castellan_core::fields::Fields`], so one 400 names every bad field, and a field they do not read is refused);
//! these types give each body its documented shape, and a test sends every documented field to its operation to
//! show that none of them is refused as unknown.

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// `POST auth/login/`.
#[derive(ToSchema)]
pub struct LoginBody {
    /// Login name (compared case-insensitively, after Unicode normalisation).
    pub username: String,
    /// Password.
    pub password: String,
}

/// A user (POST and PUT; PATCH takes any subset).
#[derive(ToSchema)]
pub struct UserBody {
    /// Login name: letters, digits and `@.+-_`, at most 150 characters.
    pub username: String,
    /// A password following the organisation's policy; null on create for an account that cannot log in yet;
    /// optional on PUT.
    #[schema(required = true)]
    pub password: Option<String>,
    /// Email address.
    pub email: String,
    /// Direct groups, by key (replaced as a whole).
    pub groups: Vec<i64>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether the account may log in (deactivating ends its sessions and tokens).
    pub is_active: Option<bool>,
    /// Staff flag (superusers only).
    pub is_staff: Option<bool>,
    /// Superuser flag (superusers only).
    pub is_superuser: Option<bool>,
    /// Owning organisation (create only; default: the caller's).
    pub org: Option<i64>,
}

/// The caller's own profile (PUT needs `username`; PATCH takes any subset). Also accepted as multipart/form-data
/// with the avatar as file field `userprofile.avatar`.
#[derive(ToSchema)]
pub struct ProfileBody {
    /// Login name.
    pub username: String,
    /// Email address.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Profile fields.
    pub userprofile: Option<UserProfileBody>,
}

/// The nested profile of [`ProfileBody`].
#[derive(ToSchema)]
pub struct UserProfileBody {
    /// `+` then 8 to 15 digits, or null to clear it.
    pub phone_number: Option<String>,
    /// Only null, which removes the avatar (upload one as multipart/form-data).
    pub avatar: Option<Value>,
}

/// `PUT active_user/change_password/`.
#[derive(ToSchema)]
pub struct PasswordChangeBody {
    /// The current password.
    pub old_password: String,
    /// The new password, following the organisation's policy and history.
    pub new_password: String,
}

/// `POST active_user/tokens/`.
#[derive(ToSchema)]
pub struct TokenBody {
    /// A name for the token.
    pub name: String,
    /// When it stops working (RFC 3339, in the future); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Scopes (`module.action`), each held by the owner; the token then acts with their intersection with the
    /// owner's current holdings. Absent or null: everything the owner holds.
    pub permissions: Option<Vec<String>>,
}

/// An organisation (POST and PUT; PATCH takes any subset).
#[derive(ToSchema)]
pub struct OrgBody {
    /// Name.
    pub name: String,
    /// Unique slug (default: the slugified name).
    pub slug: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// `PUT orgs/{pk}/password_policy/`.
#[derive(ToSchema)]
pub struct PasswordPolicyBody {
    /// Shortest password, 1 to 128.
    pub min_length: i64,
    /// Needs an upper-case letter.
    pub require_upper: bool,
    /// Needs a digit.
    pub require_digit: bool,
    /// Needs a character that is neither a letter nor a digit.
    pub require_special: bool,
    /// How many recent passwords (the current one included) a change may not reuse, 0 to 24 (default 2).
    pub history_count: Option<i64>,
}

/// A group (POST and PUT; PATCH takes any subset).
#[derive(ToSchema)]
pub struct GroupBody {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Owning organisation (create only; default: the caller's).
    pub org: Option<i64>,
    /// Parent group, or null for a root; changing it moves the whole subtree.
    pub parent: Option<i64>,
    /// Module permissions the group confers: module id → actions (also `"read"` or `"write"` as shorthands).
    pub permissions: Option<BTreeMap<String, Vec<String>>>,
    /// Roles the group holds (replaced as a whole; needs `roles.update`).
    pub roles: Option<Vec<i64>>,
}

/// A role (POST and PUT; PATCH takes any subset).
#[derive(ToSchema)]
pub struct RoleBody {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Owning organisation (create only; default: the caller's).
    pub org: Option<i64>,
}

/// A module (`POST modules/`).
#[derive(ToSchema)]
pub struct ModuleBody {
    /// The module's id: a lower-case slug.
    pub id: String,
    /// Free text.
    pub description: Option<String>,
    /// Whether its permissions count.
    pub is_active: Option<bool>,
    /// Custom actions beside the built-in six (lower-case slugs).
    pub actions: Option<Vec<String>>,
}

/// A module's changeable fields (PUT and PATCH; its id stays).
#[derive(ToSchema)]
pub struct ModuleChangeBody {
    /// Free text.
    pub description: Option<String>,
    /// Whether its permissions count.
    pub is_active: Option<bool>,
    /// Custom actions beside the built-in six (replaced as a whole; PUT clears them when absent).
    pub actions: Option<Vec<String>>,
}

/// The actions a subject holds on one module (replaced as a whole; `[]` revokes them all).
#[derive(ToSchema)]
pub struct ActionsBody {
    /// Action names of the module, each once.
    pub permissions: Vec<String>,
}

/// Users to add to a group or to assign a role to.
#[derive(ToSchema)]
pub struct AddUsersBody {
    /// User keys.
    pub users: Vec<i64>,
    /// When the membership or assignment ends (RFC 3339, in the future); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Users to remove from a group or a role.
#[derive(ToSchema)]
pub struct RemoveUsersBody {
    /// User keys.
    pub users: Vec<i64>,
}

/// Groups to assign a role to.
#[derive(ToSchema)]
pub struct AddGroupsBody {
    /// Group keys.
    pub groups: Vec<i64>,
    /// When the assignment ends (RFC 3339, in the future); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Groups to remove a role from.
#[derive(ToSchema)]
pub struct RemoveGroupsBody {
    /// Group keys.
    pub groups: Vec<i64>,
}

/// `PUT users/{pk}/groups/{group_pk}/` (the body may be empty).
#[derive(ToSchema)]
pub struct MembershipBody {
    /// When the membership ends (RFC 3339, in the future); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Permissions to grant, globally or on one object.
#[derive(ToSchema)]
pub struct AssignBody {
    /// `module.action` names (1 to 100).
    pub permissions: Vec<String>,
    /// The object's model (a module id); needed with `object_pk`.
    pub model: Option<String>,
    /// The object's key; the grant is global without it.
    pub object_pk: Option<String>,
    /// When the grant ends (RFC 3339, in the future); never when absent.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// Permissions to revoke, globally or on one object.
#[derive(ToSchema)]
pub struct UnassignBody {
    /// `module.action` names (1 to 100).
    pub permissions: Vec<String>,
    /// The object's model (a module id); needed with `object_pk`.
    pub model: Option<String>,
    /// The object's key; global grants without it.
    pub object_pk: Option<String>,
}

/// `POST objects/`.
#[derive(ToSchema)]
pub struct ObjectBody {
    /// The object's model (a module id).
    pub model: String,
    /// The object's key.
    pub object_pk: String,
    /// The parent's model; grants on the parent reach the object.
    pub parent_model: Option<String>,
    /// The parent's key (same organisation; the caller must hold what the parent passes down).
    pub parent_pk: Option<String>,
    /// Owning organisation (default: the caller's).
    pub org: Option<i64>,
}

/// `POST check/`.
#[derive(ToSchema)]
pub struct CheckBody {
    /// The user asked about (default: the caller; others need `permissions.check`).
    pub user: Option<i64>,
    /// `module.action`.
    pub permission: String,
    /// The object's key, for an object-level check.
    pub object_pk: Option<String>,
    /// The object's model (default: the permission's module).
    pub model: Option<String>,
    /// Answer only once the model has reached this revision (read-your-writes).
    pub at_least_revision: Option<i64>,
    /// Also say why (needs `permissions.read`).
    pub explain: Option<bool>,
}

/// One check of a bulk check.
#[derive(ToSchema)]
pub struct CheckItemBody {
    /// The user asked about (default: the caller).
    pub user: Option<i64>,
    /// `module.action`.
    pub permission: String,
    /// The object's key, for an object-level check.
    pub object_pk: Option<String>,
    /// The object's model (default: the permission's module).
    pub model: Option<String>,
}

/// `POST check/bulk/`.
#[derive(ToSchema)]
pub struct BulkCheckBody {
    /// Up to 10,000 checks, answered in order.
    pub checks: Vec<CheckItemBody>,
    /// Answer only once the model has reached this revision.
    pub at_least_revision: Option<i64>,
}

/// `POST lookup/objects/`.
#[derive(ToSchema)]
pub struct LookupObjectsBody {
    /// The user asked about (default: the caller).
    pub user: Option<i64>,
    /// `module.action`.
    pub permission: String,
    /// The model whose objects are listed.
    pub model: String,
    /// Answer only once the model has reached this revision.
    pub at_least_revision: Option<i64>,
}

/// `POST lookup/users/`.
#[derive(ToSchema)]
pub struct LookupUsersBody {
    /// `module.action`.
    pub permission: String,
    /// The object's key, for holders on one object.
    pub object_pk: Option<String>,
    /// The object's model (default: the permission's module).
    pub model: Option<String>,
    /// Answer only once the model has reached this revision.
    pub at_least_revision: Option<i64>,
}

/// A custom BE permission namespace.
#[derive(ToSchema)]
pub struct NamespaceBody {
    /// Unique name, at most 64 characters.
    pub name: String,
}

/// A custom BE permission.
#[derive(ToSchema)]
pub struct BePermissionBody {
    /// Namespace pk.
    pub namespace: i64,
    /// HTTP method: get, post, put, patch, delete, head or options (any case).
    pub action: String,
    /// A regular expression matched from the request path's start, without the leading slash (`api/v1/products/$`).
    pub path: String,
    /// Name; `{namespace}-{action}-{path}` when absent.
    pub name: Option<String>,
}

/// Users to give or take a catalog entry (BE/FE permission, namespace, FE permission group).
#[derive(ToSchema)]
pub struct CatalogUsersBody {
    /// User keys.
    pub users: Vec<i64>,
}

/// An FE permission of an application's UI tree.
#[derive(ToSchema)]
pub struct FePermissionBody {
    /// Display name.
    pub name: String,
    /// Slug, unique among its siblings: lower-case letters, digits, `_` and `-`.
    pub slug: String,
    /// Parent FE permission (null or absent: a root).
    pub parent: Option<i64>,
    /// BE permissions the FE permission gives.
    pub be_permissions: Option<Vec<i64>>,
}

/// FE permission groups to give or take an FE permission.
#[derive(ToSchema)]
pub struct FeGroupsLinkBody {
    /// FE permission group keys.
    pub fe_permission_groups: Vec<i64>,
}

/// An FE permission group.
#[derive(ToSchema)]
pub struct FeGroupBody {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Users in the group.
    pub users: Option<Vec<i64>>,
    /// FE permissions the group gives.
    pub fepermissions: Option<Vec<i64>>,
}

/// FE permissions to add to or remove from an FE permission group.
#[derive(ToSchema)]
pub struct FePermissionsLinkBody {
    /// FE permission keys.
    pub fepermissions: Vec<i64>,
}

/// A catalog group.
#[derive(ToSchema)]
pub struct CatalogGroupBody {
    /// The group whose members hold `catalogs.access` on each catalog.
    pub group: i64,
    /// Catalog ids.
    pub catalogs: Vec<i64>,
}

/// A channel group.
#[derive(ToSchema)]
pub struct ChannelGroupBody {
    /// The group whose members hold `channels.access` on each channel.
    pub group: i64,
    /// Channel ids.
    pub channels: Vec<i64>,
}

/// `POST check/route/`.
#[derive(ToSchema)]
pub struct RouteCheckBody {
    /// The user (default: the caller).
    pub user: Option<i64>,
    /// HTTP method (any case).
    pub method: String,
    /// The request path, with or without its leading slash; normalised before matching.
    pub path: String,
}
