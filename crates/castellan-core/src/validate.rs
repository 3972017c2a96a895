//! Field rules shared by every resource: lengths, usernames, emails, phone numbers, keys.

use std::sync::LazyLock;

use regex::Regex;

/// Longest accepted username.
pub const USERNAME_MAX: usize = 150;
/// Longest accepted first or last name.
pub const NAME_MAX: usize = 150;
/// Longest accepted email address.
pub const EMAIL_MAX: usize = 254;
/// Longest accepted free-text description.
pub const DESCRIPTION_MAX: usize = 1000;
/// Longest accepted password (argon2 input is bounded to keep hashing cheap to refuse).
pub const PASSWORD_MAX: usize = 256;

static USERNAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\w.@+-]+$").expect("static regex"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
        .expect("static regex")
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\+[0-9]{8,15}$").expect("static regex"));
static DATA_KEY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._-]{1,128}$").expect("static regex"));

/// A string no longer than `max` characters.
pub fn max_len(value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max { Err(format!("Ensure this field has no more than {max} characters.")) } else { Ok(()) }
}

/// Django's username rule: 1–150 of letters, digits and `@.+-_`.
pub fn username(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("This field may not be blank.".into());
    }
    max_len(value, USERNAME_MAX)?;
    if !USERNAME.is_match(value) {
        return Err("Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.".into());
    }
    Ok(())
}

/// A username as stored: NFKC-normalised, as Django's `normalize_username` does, so that the full-width `ａｄｍｉｎ`
/// is `admin` and a precomposed `Å` and `A` with a combining ring are one spelling.
pub fn normalize_username(value: &str) -> String {
    icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(value).into_owned()
}

/// The key usernames are compared by (uniqueness, login, filters): NFKC, lower-cased, NFKC again, after Unicode's
/// NFKC_Casefold; `Admin`, `ADMIN` and `ａｄｍｉｎ` share one key.
pub fn username_key(value: &str) -> String {
    normalize_username(&normalize_username(value).to_lowercase())
}

/// A syntactically valid email address.
pub fn email(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("This field may not be blank.".into());
    }
    max_len(value, EMAIL_MAX)?;
    if !EMAIL.is_match(value) {
        return Err("Enter a valid email address.".into());
    }
    Ok(())
}

/// An E.164 phone number: `+` then 8–15 digits.
pub fn phone_number(value: &str) -> Result<(), String> {
    if PHONE.is_match(value) { Ok(()) } else { Err("Enter a valid phone number: '+' followed by 8 to 15 digits.".into()) }
}

/// A user data store key: 1–128 of `[A-Za-z0-9._-]`.
pub fn data_key(value: &str) -> Result<(), String> {
    if DATA_KEY.is_match(value) {
        Ok(())
    } else {
        Err("Keys are 1 to 128 characters of letters, digits, '.', '_' and '-'.".into())
    }
}

/// The image type of `bytes` judged by content (png, jpeg, gif or webp), whatever the client claims.
pub fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("foo.bar@x+y-z_1").is_ok());
        assert!(username("").is_err());
        assert!(username("has space").is_err());
        assert!(username(&"a".repeat(151)).is_err());
        assert!(username(&"a".repeat(150)).is_ok());
    }

    #[test]
    fn emails() {
        assert!(email("baz@akinon.com").is_ok());
        assert!(email("a.b+c@sub.example.org").is_ok());
        for bad in ["", "no-at", "a@b", "a@@b.com", "a b@c.com", "@c.com", "a@-c.com"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        assert!(phone_number("+900000000").is_ok());
        assert!(phone_number("+901231231212").is_ok());
        for bad in ["900000000", "+1234567", "+1234567890123456", "+12345abc9", ""] {
            assert!(phone_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images() {
        assert_eq!(image_type(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(image_type(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(image_type(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_type(b"<svg xmlns"), None);
        assert_eq!(image_type(b""), None);
    }

    #[test]
    fn keys() {
        assert!(data_key("a.b_c-D9").is_ok());
        assert!(data_key("").is_err());
        assert!(data_key("a/b").is_err());
        assert!(data_key(&"k".repeat(129)).is_err());
    }
}
