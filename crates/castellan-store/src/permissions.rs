//! The permission model's storage contract: modules, roles and their assignments, grants, and the facts the
//! authorization engine is built from.

use async_trait::async_trait;
use castellan_core::engine::{Facts, Scope, SubjectFact};
use time::OffsetDateTime;

use crate::{Page, Result, Revision, WriteCtx};

/// A module: a resource type with actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// Slug id.
    pub id: String,
    /// Free text.
    pub description: String,
    /// Inactive modules grant nothing.
    pub is_active: bool,
    /// Actions beyond the standard six.
    pub custom_actions: Vec<String>,
    /// The server's own modules cannot be deleted or deactivated.
    pub builtin: bool,
}

/// A role: a named set of module permissions, assigned to users and groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Primary key.
    pub pk: i64,
    /// Name, unique in its organisation.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Owning organisation.
    pub org: i64,
    /// Users it is assigned to (unexpired).
    pub users: Vec<i64>,
    /// Groups it is assigned to (unexpired).
    pub groups: Vec<i64>,
    /// When it was created.
    pub created_date: OffsetDateTime,
    /// When it last changed.
    pub modified_date: OffsetDateTime,
}

impl Role {
    /// The role's fields and holders as the change log records them.
    pub fn record(&self) -> castellan_core::change::RoleRecord {
        castellan_core::change::RoleRecord {
            name: self.name.clone(),
            description: self.description.clone(),
            org: self.org,
            users: self.users.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// Modules, roles and grants.
#[async_trait]
pub trait PermissionStore {
    /// Every module, by id.
    async fn list_modules(&self) -> Result<Vec<Module>>;
    /// One module.
    async fn get_module(&self, id: &str) -> Result<Module>;
    /// Registers a module (`Conflict{module}` when the id is taken).
    async fn create_module(&self, ctx: &WriteCtx, module: &Module) -> Result<(Module, Revision)>;
    /// Replaces a module's description, activity and custom actions.
    async fn update_module(&self, ctx: &WriteCtx, module: &Module) -> Result<(Module, Revision)>;
    /// Deletes a module and its grants (`Conflict{builtin}` for built-in ones).
    async fn delete_module(&self, ctx: &WriteCtx, id: &str) -> Result<Revision>;
    /// Creates a role (`Conflict{role}` when the name is taken in the org).
    async fn create_role(&self, ctx: &WriteCtx, name: &str, description: &str, org: i64) -> Result<(Role, Revision)>;
    /// One role.
    async fn get_role(&self, pk: i64) -> Result<Role>;
    /// A page of roles, by key (only `org` when given).
    async fn list_roles(&self, org: Option<i64>, search: Option<&str>, offset: i64, limit: i64) -> Result<Page<Role>>;
    /// Renames or redescribes a role.
    async fn update_role(
        &self,
        ctx: &WriteCtx,
        pk: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<(Role, Revision)>;
    /// Deletes a role, its assignments and grants.
    async fn delete_role(&self, ctx: &WriteCtx, pk: i64) -> Result<Revision>;
    /// A user's or role's global module grants as (module, actions).
    async fn module_grants(&self, subject: SubjectFact) -> Result<Vec<(String, Vec<String>)>>;
    /// The actions `subject` holds globally in `module` as stored (expired or not), ascending: what a
    /// [`castellan_core::change::Change::ModulePermissionsSet`] is planned from.
    async fn module_actions(&self, subject: SubjectFact, module: &str) -> Result<Vec<String>>;
    /// The grants in force for a subject at one scope (`None`: global), as (module, action).
    async fn grants_at(&self, subject: SubjectFact, object: Option<(&str, &str)>) -> Result<Vec<(String, String)>>;
    /// Subjects of one kind (`user`, `group` or `role`) holding unexpired grants at one scope, by key, each with its
    /// (module, action) pairs there. Callers filter by visibility, then page.
    async fn holders_at(&self, kind: &str, object: Option<(&str, &str)>) -> Result<Vec<(i64, Vec<(String, String)>)>>;
    /// Everything the authorization engine is built from, with the revision it reflects.
    async fn engine_facts(&self) -> Result<(Facts, Revision)>;
    /// The current facts about what `scope` names, as [`Facts::restricted_to`] describes them: for the changes the
    /// index cannot follow from its own facts ([`castellan_core::change::Change::needs_stored_facts`]).
    async fn engine_patch(&self, scope: &Scope) -> Result<Facts>;
}
