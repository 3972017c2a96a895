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
}

/// A module id: a lower-case slug of 1–64 characters.
pub fn valid_module_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Action {
    /// Parses a standard action's wire name.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Module permissions held or conferred: module id → action names (standard and custom).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulePermissions(std::collections::BTreeMap<String, std::collections::BTreeSet<String>>);

impl ModulePermissions {
    /// No permissions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one standard action on one module.
    pub fn insert(&mut self, module: &str, action: Action) {
        self.insert_named(module, action.as_str());
    }

    /// Adds one action, standard or custom, on one module.
    pub fn insert_named(&mut self, module: &str, action: &str) {
        self.0.entry(module.to_string()).or_default().insert(action.to_string());
    }

    /// Replaces the actions on one module (`[]` removes the module).
    pub fn set(&mut self, module: &str, actions: &[String]) {
        if actions.is_empty() {
            self.0.remove(module);
        } else {
            self.0.insert(module.to_string(), actions.iter().cloned().collect());
        }
    }

    /// Adds everything in `other`.
    pub fn extend(&mut self, other: &ModulePermissions) {
        for (module, actions) in &other.0 {
            self.0.entry(module.clone()).or_default().extend(actions.iter().cloned());
        }
    }

    /// Whether `action` on `module` is held: `full` implies every action, every action implies `access`.
    pub fn allows(&self, module: &str, action: Action) -> bool {
        self.allows_named(module, action.as_str())
    }

    /// Like [`allows`](Self::allows) for an action name, custom ones included.
    pub fn allows_named(&self, module: &str, action: &str) -> bool {
        let Some(held) = self.0.get(module) else { return false };
        held.contains(action) || held.contains("full") || (action == "access" && !held.is_empty())
    }

    /// Whether every permission in `other` is held here (dominance, API.md §11).
    pub fn covers(&self, other: &ModulePermissions) -> bool {
        other.0.iter().all(|(module, actions)| actions.iter().all(|a| self.allows_named(module, a)))
    }

    /// What is held both here and in `other`, under the same implications (`full` implies every action, every action
    /// implies `access`): `{m: [full]}` with `{m: [read]}` is `{m: [read]}`.
    pub fn intersection(&self, other: &ModulePermissions) -> ModulePermissions {
        let mut out = ModulePermissions::new();
        let mut keep = |held: &ModulePermissions, (module, action): (&str, &str)| {
            if held.allows_named(module, action) {
                out.insert_named(module, action);
            }
        };
        self.pairs().for_each(|pair| keep(other, pair));
        other.pairs().for_each(|pair| keep(self, pair));
        out
    }

    /// Reads a list of `"module.action"` names (token scopes, API.md §11); the errors name `field`.
    pub fn parse_names(value: &serde_json::Value, field: &str) -> Result<Self, crate::DomainError> {
        let serde_json::Value::Array(items) = value else {
            return Err(crate::DomainError::field(field, "Expected a list of \"module.action\" names."));
        };
        let mut out = Self::new();
        for item in items {
            match item.as_str().and_then(|name| name.split_once('.')) {
                Some((module, action)) if valid_module_id(module) && valid_module_id(action) => out.insert_named(module, action),
                _ => return Err(crate::DomainError::field(field, format!("{item} is not a \"module.action\" name."))),
            }
        }
        Ok(out)
    }

    /// Every permission as `"module.action"`, modules by id and their actions in [`actions`](Self::actions) order.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().flat_map(|m| self.actions(m).into_iter().map(move |a| format!("{m}.{a}"))).collect()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|a| a.is_empty())
    }

    /// The actions on one module, standard ones first in the contract's order, then custom ones by name.
    pub fn actions(&self, module: &str) -> Vec<String> {
        let Some(held) = self.0.get(module) else { return Vec::new() };
        let standard = Action::ALL.iter().map(|a| a.as_str()).filter(|a| held.contains(*a)).map(str::to_string);
        let custom = held.iter().filter(|a| Action::parse(a).is_none()).cloned();
        standard.chain(custom).collect()
    }

    /// Every (module, action) pair held.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|(m, actions)| actions.iter().map(move |a| (m.as_str(), a.as_str())))
    }

    /// The actions on each module as the API shows them.
    pub fn to_map(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.0.keys().filter_map(|m| Some((m.clone(), self.actions(m))).filter(|(_, a)| !a.is_empty())).collect()
    }

    /// Reads `{module: [action...]}`; seed 001 levels `"read"` and `"write"` are accepted in place of a list.
    pub fn parse(value: &serde_json::Value, field: &str) -> Result<Self, crate::DomainError> {
        let serde_json::Value::Object(map) = value else {
            return Err(crate::DomainError::field(field, "Expected an object of module ids to lists of actions."));
        };
        let mut errors = crate::error::Errors::new();
        let mut out = Self::new();
        for (module, actions) in map {
            let name = format!("{field}.{module}");
            if !valid_module_id(module) {
                errors.add(&name, "Module ids are lower-case slugs of 1 to 64 characters.");
                continue;
            }
            let listed: Vec<&str> = match actions {
                serde_json::Value::String(level) if level == "read" => vec!["read"],
                serde_json::Value::String(level) if level == "write" => vec!["read", "create", "update", "delete"],
                serde_json::Value::Array(items) => items.iter().map(|i| i.as_str().unwrap_or("")).collect(),
                _ => {
                    errors.add(&name, "Expected a list of actions, \"read\" or \"write\".");
                    continue;
                }
            };
            for action in listed {
                match Action::parse(action) {
                    Some(a) => out.insert(module, a),
                    None if valid_module_id(action) => out.insert_named(module, action),
                    None => errors.add(&name, format!("\"{action}\" is not a valid action.")),
                }
            }
        }
        errors.finish()?;
        Ok(out)
    }
}

#[cfg(test)]
mod module_permission_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intersection_keeps_what_both_sides_imply() {
        let parse = |v: serde_json::Value| ModulePermissions::parse_names(&v, "p").unwrap();
        let held = parse(json!(["users.full", "groups.read", "roles.read"]));
        let scopes = parse(json!(["users.read", "groups.full", "orgs.read"]));
        let both = held.intersection(&scopes);
        assert_eq!(both.names(), ["groups.read", "users.read"]);
        assert_eq!(scopes.intersection(&held), both);
        assert!(both.allows("groups", Action::Access));
        assert!(!both.allows("users", Action::Update));
        assert!(ModulePermissions::parse_names(&json!(["users"]), "p").is_err());
        assert!(ModulePermissions::parse_names(&json!([1]), "p").is_err());
        assert!(ModulePermissions::parse_names(&json!("users.read"), "p").is_err());
    }

    #[test]
    fn algebra() {
        let mut p = ModulePermissions::new();
        p.insert("users", Action::Read);
        assert!(p.allows("users", Action::Read));
        assert!(p.allows("users", Action::Access));
        assert!(!p.allows("users", Action::Update));
        assert!(!p.allows("groups", Action::Access));
        p.insert("groups", Action::Full);
        assert!(p.allows("groups", Action::Delete));
        let mut q = ModulePermissions::new();
        q.insert("groups", Action::Update);
        q.insert("users", Action::Access);
        assert!(p.covers(&q));
        q.insert("users", Action::Delete);
        assert!(!p.covers(&q));
    }

    #[test]
    fn parse_levels_and_lists() {
        let p = ModulePermissions::parse(&json!({"brands": "write", "users": ["read"], "x": []}), "permissions").unwrap();
        assert_eq!(p.to_map()["brands"], ["read", "create", "update", "delete"]);
        assert_eq!(p.to_map()["users"], ["read"]);
        assert!(!p.to_map().contains_key("x"));
        assert_eq!(ModulePermissions::parse(&json!({"brands": ["fly"]}), "permissions").unwrap().actions("brands"), ["fly"]);
        assert!(ModulePermissions::parse(&json!({"brands": ["Not An Action"]}), "permissions").is_err());
        assert!(ModulePermissions::parse(&json!({"Bad Id": ["read"]}), "permissions").is_err());
        assert!(ModulePermissions::parse(&json!(["read"]), "permissions").is_err());
        assert!(ModulePermissions::parse(&json!({"a": 5}), "permissions").is_err());
    }
}
