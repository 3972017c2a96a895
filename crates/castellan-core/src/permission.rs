//! Permissions as `module.action`, and which permission an HTTP method needs.

use std::fmt;

/// A standard action of a module; `full` implies every other action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See that the module exists (implied by every other action).
    Access,
    /// Read objects.
    Read,
    /// Create objects.
    Create,
    /// Change objects.
    Update,
    /// Delete objects.
    Delete,
    /// Everything, including actions added later.
    Full,
}

impl Action {
    /// Every standard action, in the contract's order.
    pub const ALL: [Action; 6] = [Action::Access, Action::Read, Action::Create, Action::Update, Action::Delete, Action::Full];

    /// The action's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Access => "access",
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Full => "full",
        }
    }

    /// The action an HTTP method needs by default (GET→read, POST→create, PUT/PATCH→update, DELETE→delete).
    pub fn for_method(method: &str) -> Action {
        match method {
            "POST" => Action::Create,
            "PUT" | "PATCH" => Action::Update,
            "DELETE" => Action::Delete,
            _ => Action::Read,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission: one action on one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    /// The module id (`users`, `groups`, ...).
    pub module: &'static str,
    /// The action on it.
    pub action: Action,
}

impl Permission {
    /// The contract's 403 detail for a caller lacking this permission.
    pub fn denial_detail(&self) -> String {
        format!("This method needs permission {} on {}.", self.action, self.module)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.action)
    }
}

/// The subject of an authorization decision, as far as the interim rule needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// Active account.
    pub is_active: bool,
    /// Superusers hold everything.
    pub is_superuser: bool,
}

/// Decides whether `subject` holds `permission`.
///
/// Until the grant engine lands, only superusers hold module permissions; the engine replaces this body.
pub fn holds(subject: Subject, _permission: Permission) -> bool {
    subject.is_active && subject.is_superuser
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_actions() {
        assert_eq!(Action::for_method("GET"), Action::Read);
        assert_eq!(Action::for_method("POST"), Action::Create);
        assert_eq!(Action::for_method("PATCH"), Action::Update);
        assert_eq!(Action::for_method("DELETE"), Action::Delete);
    }

    #[test]
    fn detail_names_permission() {
        let p = Permission { module: "users", action: Action::Read };
        assert_eq!(p.denial_detail(), "This method needs permission read on users.");
        assert_eq!(p.to_string(), "users.read");
    }

    #[test]
    fn interim_rule() {
        let p = Permission { module: "users", action: Action::Read };
        assert!(holds(Subject { is_active: true, is_superuser: true }, p));
        assert!(!holds(Subject { is_active: true, is_superuser: false }, p));
        assert!(!holds(Subject { is_active: false, is_superuser: true }, p));
    }
}
