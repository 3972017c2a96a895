//! Users: the record, and the create/replace/patch request with its validation.

use serde_json::Value;
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::fields::Fields;
use crate::validate::{self, DESCRIPTION_MAX, EMAIL_MAX, NAME_MAX, PASSWORD_MAX, USERNAME_MAX};

/// Most groups one request may list for a user.
pub const GROUPS_MAX: usize = 1000;

/// A user account.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Primary key.
    pub pk: i64,
    /// Login name, unique case-insensitively.
    pub username: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email address.
    pub email: String,
    /// Free text.
    pub description: String,
    /// May use the admin UI.
    pub is_staff: bool,
    /// May log in; inactive users hold nothing.
    pub is_active: bool,
    /// Holds every permission.
    pub is_superuser: bool,
    /// When the account was created.
    pub date_joined: OffsetDateTime,
    /// Last successful login.
    pub last_login: Option<OffsetDateTime>,
    /// The owning organisation.
    pub org: i64,
    /// Groups the user is a direct member of, ascending.
    pub groups: Vec<i64>,
    /// Direct groups left out of `groups` because the viewer may not see them (0 as stored).
    pub groups_hidden: usize,
    /// Profile: E.164 phone number.
    pub phone_number: Option<String>,
    /// Profile: whether an avatar image is stored.
    pub has_avatar: bool,
    /// Whether the account has a usable password.
    pub has_password: bool,
}

/// A user to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// argon2id PHC hash, or `None` for an account that cannot log in.
    pub password_hash: Option<String>,
    /// Email address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Free text.
    pub description: String,
    /// May log in.
    pub is_active: bool,
    /// Staff flag.
    pub is_staff: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Owning organisation.
    pub org: i64,
    /// Direct group memberships.
    pub groups: Vec<i64>,
}

/// Changes to an existing user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    /// New login name.
    pub username: Option<String>,
    /// New argon2id hash (history is kept by the store).
    pub password_hash: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// New staff flag.
    pub is_staff: Option<bool>,
    /// New superuser flag.
    pub is_superuser: Option<bool>,
    /// New full set of direct groups.
    pub groups: Option<Vec<i64>>,
    /// New phone number (`Some(None)` clears it).
    pub phone_number: Option<Option<String>>,
    /// New avatar as (content type, bytes) (`Some(None)` clears it).
    pub avatar: Option<Option<(String, Vec<u8>)>>,
}

/// Which fields a write requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// POST: username, password (may be null), email, groups.
    Create,
    /// PUT: username, email, groups.
    Replace,
    /// PATCH: nothing.
    Patch,
}

/// A parsed, rule-checked user write (the password is still plain text: it is hashed later, off the async runtime).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserInput {
    /// Login name.
    pub username: Option<String>,
    /// `Some(None)` is an explicit null password (create only).
    pub password: Option<Option<String>>,
    /// Email.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Active flag.
    pub is_active: Option<bool>,
    /// Staff flag.
    pub is_staff: Option<bool>,
    /// Superuser flag.
    pub is_superuser: Option<bool>,
    /// Direct groups.
    pub groups: Option<Vec<i64>>,
    /// Owning organisation.
    pub org: Option<i64>,
}

impl UserInput {
    /// Reads and checks a user body; every bad field is reported.
    pub fn parse(body: &Value, mode: WriteMode) -> Result<Self, DomainError> {
        let mut f = Fields::new(body)?;
        let required = mode != WriteMode::Patch;
        let username = f.string("username", required, USERNAME_MAX).map(|u| validate::normalize_username(&u));
        if let Some(u) = &username {
            f.check("username", validate::username(u));
        }
        let password = if mode == WriteMode::Create {
            f.nullable_string("password", true, PASSWORD_MAX)
        } else {
            f.string("password", false, PASSWORD_MAX).map(Some)
        };
        let email = f.string("email", required, EMAIL_MAX);
        if let Some(e) = &email {
            f.check("email", validate::email(e));
        }
        let input = UserInput {
            username,
            password,
            email,
            first_name: f.line("first_name", false, NAME_MAX),
            last_name: f.line("last_name", false, NAME_MAX),
            description: f.string("description", false, DESCRIPTION_MAX),
            is_active: f.bool("is_active"),
            is_staff: f.bool("is_staff"),
            is_superuser: f.bool("is_superuser"),
            groups: f.pk_list("groups", required, GROUPS_MAX),
            org: f.pk("org", false),
        };
        f.finish()?;
        Ok(input)
    }

    /// The plain-text password to set, if any.
    pub fn new_password(&self) -> Option<&str> {
        self.password.as_ref().and_then(|p| p.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(err: DomainError) -> Vec<String> {
        match err {
            DomainError::Validation(e) => e.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_requires_seed_fields() {
        let err = UserInput::parse(&json!({}), WriteMode::Create).unwrap_err();
        assert_eq!(fields_of(err), ["username", "password", "email", "groups"]);
        let ok = UserInput::parse(
            &json!({"username": "foo", "password": "Bar123*!", "email": "baz@akinon.com", "groups": []}),
            WriteMode::Create,
        )
        .unwrap();
        assert_eq!(ok.new_password(), Some("Bar123*!"));
        let null_pw =
            UserInput::parse(&json!({"username": "svc", "password": null, "email": "s@x.io", "groups": []}), WriteMode::Create)
                .unwrap();
        assert_eq!(null_pw.password, Some(None));
    }

    #[test]
    fn replace_and_patch_requirements() {
        let err = UserInput::parse(&json!({"first_name": "x"}), WriteMode::Replace).unwrap_err();
        assert_eq!(fields_of(err), ["username", "email", "groups"]);
        assert!(UserInput::parse(&json!({"first_name": "x"}), WriteMode::Patch).is_ok());
        let err = UserInput::parse(&json!({"password": null}), WriteMode::Patch).unwrap_err();
        assert_eq!(fields_of(err), ["password"]);
    }

    #[test]
    fn rule_errors() {
        let err = UserInput::parse(
            &json!({"username": "a b", "email": "nope", "groups": [1, "x"], "is_staff": 1, "org": "1"}),
            WriteMode::Patch,
        )
        .unwrap_err();
        assert_eq!(fields_of(err), ["username", "email", "is_staff", "groups", "org"]);
    }
}
