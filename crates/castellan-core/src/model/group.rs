//! Group and organisation write requests with their validation.

use serde_json::Value;

use crate::error::DomainError;
use crate::fields::Fields;
use crate::model::WriteMode;
use crate::password::PasswordPolicy;
use crate::permission::ModulePermissions;
use crate::validate::DESCRIPTION_MAX;

/// Longest group or organisation name.
pub const GROUP_NAME_MAX: usize = 150;
/// Longest organisation slug.
pub const SLUG_MAX: usize = 64;

/// A parsed group write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupInput {
    /// Name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Organisation.
    pub org: Option<i64>,
    /// Parent (`Some(None)`: a root).
    pub parent: Option<Option<i64>>,
    /// Conferred module permissions.
    pub permissions: Option<ModulePermissions>,
    /// The roles the group holds (replaced as a whole).
    pub roles: Option<Vec<i64>>,
}

/// Most roles one group write may name.
pub const GROUP_ROLES_MAX: usize = 1000;

impl GroupInput {
    /// Reads and checks a group body; POST and PUT need `name`.
    pub fn parse(body: &Value, mode: WriteMode) -> Result<Self, DomainError> {
        let mut f = Fields::new(body)?;
        let name = f.line("name", mode != WriteMode::Patch, GROUP_NAME_MAX);
        if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            f.error("name", "This field may not be blank.");
        }
        let description = f.string("description", false, DESCRIPTION_MAX);
        let org = f.pk("org", false);
        let parent = match f.raw("parent") {
            None => None,
            Some(Value::Null) => Some(None),
            Some(_) => f.pk("parent", false).map(Some),
        };
        let permissions = match f.raw("permissions") {
            None => None,
            Some(value) => match ModulePermissions::parse(value, "permissions") {
                Ok(p) => Some(p),
                Err(DomainError::Validation(errors)) => {
                    errors.into_iter().for_each(|e| f.error(&e.field, e.message));
                    None
                }
                Err(other) => return Err(other),
            },
        };
        let roles = f.pk_list("roles", false, GROUP_ROLES_MAX);
        f.finish()?;
        Ok(Self { name, description, org, parent, permissions, roles })
    }
}

/// A parsed organisation write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgInput {
    /// Display name.
    pub name: Option<String>,
    /// URL-safe unique name.
    pub slug: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// Whether `slug` is 1–64 of lower-case letters, digits, `-` and `_`.
pub fn valid_slug(slug: &str) -> bool {
    crate::permission::valid_module_id(slug)
}

impl OrgInput {
    /// Reads and checks an organisation body; POST and PUT need `name` (the slug defaults to the slugified name).
    pub fn parse(body: &Value, mode: WriteMode) -> Result<Self, DomainError> {
        let mut f = Fields::new(body)?;
        let name = f.line("name", mode != WriteMode::Patch, GROUP_NAME_MAX);
        if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            f.error("name", "This field may not be blank.");
        }
        let slug = f.string("slug", false, SLUG_MAX);
        if slug.as_deref().is_some_and(|s| !valid_slug(s)) {
            f.error("slug", "Enter a valid slug: lower-case letters, digits, '-' and '_'.");
        }
        let description = f.string("description", false, DESCRIPTION_MAX);
        f.finish()?;
        Ok(Self { name, slug, description })
    }
}

/// Derives a slug from a name: lower-case ASCII letters and digits, other runs become `-`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(SLUG_MAX).collect();
    if slug.is_empty() { "org".to_string() } else { slug }
}

/// Reads a password policy body (every field required on PUT).
pub fn parse_policy(body: &Value) -> Result<PasswordPolicy, DomainError> {
    let mut f = Fields::new(body)?;
    let min_length = f.pk("min_length", true);
    if min_length.is_some_and(|n| !(1..=128).contains(&n)) {
        f.error("min_length", "Must be between 1 and 128.");
    }
    let require_upper = f.bool("require_upper");
    let require_digit = f.bool("require_digit");
    let require_special = f.bool("require_special");
    let history_count = match f.raw("history_count") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 24) => n.as_u64(),
        Some(_) => {
            f.error("history_count", "Must be a whole number between 0 and 24.");
            None
        }
        None => None,
    };
    for name in ["require_upper", "require_digit", "require_special"] {
        if !f.has(name) {
            f.error(name, "This field is required.");
        }
    }
    f.finish()?;
    Ok(PasswordPolicy {
        min_length: min_length.unwrap_or(8) as usize,
        require_upper: require_upper.unwrap_or(true),
        require_digit: require_digit.unwrap_or(true),
        require_special: require_special.unwrap_or(true),
        history_count: history_count.unwrap_or(2) as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn group_input() {
        let g = GroupInput::parse(&json!({"name": "Sales"}), WriteMode::Create).unwrap();
        assert_eq!(g.name.as_deref(), Some("Sales"));
        assert!(GroupInput::parse(&json!({}), WriteMode::Create).is_err());
        assert!(GroupInput::parse(&json!({}), WriteMode::Patch).is_ok());
        let g = GroupInput::parse(&json!({"parent": null, "permissions": {"brands": "write"}}), WriteMode::Patch).unwrap();
        assert_eq!(g.parent, Some(None));
        assert_eq!(g.permissions.unwrap().to_map()["brands"], ["read", "create", "update", "delete"]);
        let DomainError::Validation(e) =
            GroupInput::parse(&json!({"name": "", "parent": "x", "permissions": {"b": ["no way"]}}), WriteMode::Patch)
                .unwrap_err()
        else {
            panic!()
        };
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "parent", "permissions.b"]);
        for name in ["a\u{0}b", "two\nlines", "tab\there", "\u{7f}"] {
            assert!(GroupInput::parse(&json!({"name": name}), WriteMode::Create).is_err(), "{name:?}");
        }
        let g = GroupInput::parse(&json!({"name": "Ümlaut & Co. (EU) — 東京", "roles": [3, 3, 4]}), WriteMode::Create).unwrap();
        assert_eq!(g.roles, Some(vec![3, 4]), "a role named twice is one");
        assert!(GroupInput::parse(&json!({"roles": null}), WriteMode::Patch).is_err());
    }

    #[test]
    fn org_input_and_slug() {
        assert_eq!(slugify("Acme Corp. EU"), "acme-corp-eu");
        assert_eq!(slugify("***"), "org");
        assert!(OrgInput::parse(&json!({"name": "A", "slug": "Bad Slug"}), WriteMode::Create).is_err());
        assert!(OrgInput::parse(&json!({"name": "A", "slug": "ok-1"}), WriteMode::Create).is_ok());
    }

    #[test]
    fn policy_input() {
        let p = parse_policy(
            &json!({"min_length": 12, "require_upper": false, "require_digit": true, "require_special": false, "history_count": 5}),
        )
        .unwrap();
        assert_eq!(p.min_length, 12);
        assert_eq!(p.history_count, 5);
        assert!(
            parse_policy(&json!({"min_length": 0, "require_upper": true, "require_digit": true, "require_special": true}))
                .is_err()
        );
        assert!(parse_policy(&json!({"min_length": 8})).is_err());
    }
}
