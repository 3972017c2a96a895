//! The password rule (policy and history) and argon2id hashing behind a small, synchronous API.
//!
//! Hashing is CPU-bound on purpose; callers run it on a blocking pool.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// What a password must satisfy; configurable per organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    /// Minimum number of characters.
    pub min_length: usize,
    /// At least one upper-case letter.
    pub require_upper: bool,
    /// At least one decimal digit.
    pub require_digit: bool,
    /// At least one character that is neither a letter, a digit nor whitespace.
    pub require_special: bool,
    /// How many recent passwords (the current one included) a new one must differ from.
    pub history_count: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 8, require_upper: true, require_digit: true, require_special: true, history_count: 2 }
    }
}

impl PasswordPolicy {
    /// Checks the composition rules; returns every broken rule's message.
    pub fn check(&self, password: &str, username: &str) -> Result<(), String> {
        let mut broken = Vec::new();
        if password.chars().count() < self.min_length {
            broken.push(format!("at least {} characters", self.min_length));
        }
        if self.require_upper && !password.chars().any(char::is_uppercase) {
            broken.push("an upper-case letter".to_string());
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            broken.push("a digit".to_string());
        }
        if self.require_special && !password.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
            broken.push("a special character".to_string());
        }
        let mut message = String::new();
        if !broken.is_empty() {
            message = format!("The password must contain {}.", broken.join(", "));
        }
        if !username.is_empty() && password.eq_ignore_ascii_case(username) {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str("The password must not be the username.");
        }
        if password.chars().count() > crate::validate::PASSWORD_MAX {
            return Err(format!("Ensure this field has no more than {} characters.", crate::validate::PASSWORD_MAX));
        }
        if message.is_empty() { Ok(()) } else { Err(message) }
    }

    /// The message for a password found among the last `history_count` ones.
    pub fn reuse_message(&self) -> String {
        format!("The new password must differ from the last {} passwords.", self.history_count)
    }
}

/// Why hashing failed (never for ordinary input; surfaced as a server error).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes a password with argon2id and OWASP parameters (m=19 MiB, t=2, p=1), in PHC string form.
pub fn hash(password: &str) -> Result<String, HashError> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the PHC `stored` hash; a malformed hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), stored).is_ok()
}

static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash("castellan-timing-equaliser").unwrap_or_default());

/// Spends the same time as a real verification, so unknown users answer as slowly as wrong passwords.
pub fn verify_dummy(password: &str) {
    let _ = verify(password, &DUMMY_HASH);
}

/// Whether `password` equals any of the given hashes (newest first).
pub fn matches_any<'a>(password: &str, hashes: impl IntoIterator<Item = &'a str>) -> bool {
    hashes.into_iter().any(|h| verify(password, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules() {
        let p = PasswordPolicy::default();
        assert!(p.check("Bar123*!", "foo").is_ok());
        assert!(p.check("bar123*!", "foo").unwrap_err().contains("upper-case"));
        assert!(p.check("Barbaz*!", "foo").unwrap_err().contains("digit"));
        assert!(p.check("Barbaz12", "foo").unwrap_err().contains("special"));
        assert!(p.check("B1*", "foo").unwrap_err().contains("at least 8"));
        assert!(p.check("Foo123*!x", "Foo123*!X").unwrap_err().contains("username"));
        assert!(p.check(&format!("A1*{}", "a".repeat(300)), "u").is_err());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("Bar123*!").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("Bar123*!", &h));
        assert!(!verify("Bar123*?", &h));
        assert!(!verify("Bar123*!", "not-a-hash"));
        assert!(matches_any("Bar123*!", ["x", h.as_str()]));
    }
}
