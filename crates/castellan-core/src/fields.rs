//! Reads request fields out of a JSON object, collecting every type and rule error at once.

use std::cell::Cell;

use serde_json::{Map, Value};

use crate::error::{DomainError, Errors};

const REQUIRED: &str = "This field is required.";
const NOT_NULL: &str = "This field may not be null.";

/// A JSON object being read field by field. A field the reader never asks about is refused when it finishes, so a
/// body's every field is either applied or refused, never ignored in silence.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    errors: Errors,
    /// Which of the object's fields (by position, the first 64) were asked about: no body has more fields than that.
    asked: Cell<u64>,
}

impl<'a> Fields<'a> {
    /// Starts reading `value`, which must be a JSON object.
    pub fn new(value: &'a Value) -> Result<Self, DomainError> {
        match value {
            Value::Object(obj) => Ok(Self { obj, errors: Errors::new(), asked: Cell::new(0) }),
            _ => Err(DomainError::field("non_field_errors", "Invalid data. Expected a dictionary.")),
        }
    }

    /// Whether the field is present (even as null).
    pub fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    /// The field's value as sent, for a reader that checks it itself.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        let (position, (_, value)) = self.obj.iter().enumerate().find(|(_, (key, _))| *key == name)?;
        if position < 64 {
            self.asked.set(self.asked.get() | 1 << position);
        }
        Some(value)
    }

    /// Records an error about a field.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        self.errors.add(name, message);
    }

    /// Records the outcome of a rule check on a field.
    pub fn check(&mut self, name: &str, result: Result<(), String>) {
        self.errors.check(name, result);
    }

    fn present(&mut self, name: &str, required: bool) -> Option<&'a Value> {
        match self.raw(name) {
            None => {
                if required {
                    self.errors.add(name, REQUIRED);
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A string of at most `max` characters; null is refused.
    pub fn string(&mut self, name: &str, required: bool, max: usize) -> Option<String> {
        match self.present(name, required)? {
            Value::String(s) => {
                self.errors.check(name, crate::validate::max_len(s, max));
                Some(s.clone())
            }
            Value::Null => {
                self.errors.add(name, NOT_NULL);
                None
            }
            _ => {
                self.errors.add(name, "Not a valid string.");
                None
            }
        }
    }

    /// A one-line text of at most `max` characters (a name): like [`Fields::string`], and a control character (a
    /// NUL, a line break) is refused.
    pub fn line(&mut self, name: &str, required: bool, max: usize) -> Option<String> {
        let text = self.string(name, required, max)?;
        if text.chars().any(char::is_control) {
            self.errors.add(name, "Must not contain control characters.");
        }
        Some(text)
    }

    /// A string or null: `Some(None)` for an explicit null.
    pub fn nullable_string(&mut self, name: &str, required: bool, max: usize) -> Option<Option<String>> {
        match self.present(name, required)? {
            Value::Null => Some(None),
            _ => self.string(name, required, max).map(Some),
        }
    }

    /// A boolean; null is refused.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        match self.present(name, false)? {
            Value::Bool(b) => Some(*b),
            _ => {
                self.errors.add(name, "Must be a valid boolean.");
                None
            }
        }
    }

    /// A positive integer primary key; null is refused.
    pub fn pk(&mut self, name: &str, required: bool) -> Option<i64> {
        let value = self.present(name, required)?;
        let pk = as_pk(value);
        if pk.is_none() {
            self.errors.add(name, "A valid integer is required.");
        }
        pk
    }

    /// A list of distinct positive integer primary keys (at most `max` entries).
    pub fn pk_list(&mut self, name: &str, required: bool, max: usize) -> Option<Vec<i64>> {
        let Value::Array(items) = self.present(name, required)? else {
            self.errors.add(name, "Expected a list of items.");
            return None;
        };
        if items.len() > max {
            self.errors.add(name, format!("Ensure this field has no more than {max} elements."));
            return None;
        }
        let mut pks = Vec::with_capacity(items.len());
        for item in items {
            match as_pk(item) {
                Some(pk) if !pks.contains(&pk) => pks.push(pk),
                Some(_) => {}
                None => {
                    self.errors.add(name, "Expected a list of integer primary keys.");
                    return None;
                }
            }
        }
        Some(pks)
    }

    /// An optional RFC 3339 instant that must lie after `now` (null counts as absent).
    pub fn future_time(&mut self, name: &str, now: time::OffsetDateTime) -> Option<time::OffsetDateTime> {
        let raw = self.nullable_string(name, false, 64).flatten()?;
        match time::OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339) {
            Ok(t) if t > now => Some(t),
            Ok(_) => {
                self.errors.add(name, "The time must be in the future.");
                None
            }
            Err(_) => {
                self.errors.add(name, "Enter an RFC 3339 date-time.");
                None
            }
        }
    }

    /// An object key: a non-empty string of at most 255 characters, or an integer (null counts as absent).
    pub fn object_key(&mut self, name: &str) -> Option<String> {
        match self.raw(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 255 => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                self.errors.add(name, "Expected a non-empty string of at most 255 characters.");
                None
            }
        }
    }

    /// A nested object, read with its own `Fields`; null is refused.
    pub fn object(&mut self, name: &str) -> Option<&'a Value> {
        match self.present(name, false)? {
            v @ Value::Object(_) => Some(v),
            _ => {
                self.errors.add(name, "Invalid data. Expected a dictionary.");
                None
            }
        }
    }

    /// Adds a nested reader's errors under `prefix.`.
    pub fn absorb(&mut self, prefix: &str, nested: Fields<'_>) {
        if let Err(DomainError::Validation(errors)) = nested.finish() {
            for e in errors {
                self.errors.add(format!("{prefix}.{}", e.field), e.message);
            }
        }
    }

    /// `Ok(())` when every field read so far was valid and no other field was sent.
    pub fn finish(mut self) -> Result<(), DomainError> {
        let asked = self.asked.get();
        for (position, name) in self.obj.keys().enumerate() {
            if position >= 64 || asked & (1 << position) == 0 {
                self.errors.add(name, "Unknown field.");
            }
        }
        self.errors.finish()
    }
}

fn as_pk(value: &Value) -> Option<i64> {
    value.as_i64().filter(|pk| *pk > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_error() {
        let v = json!({"username": 5, "groups": "x", "is_active": "yes", "email": null});
        let mut f = Fields::new(&v).unwrap();
        assert_eq!(f.string("username", true, 10), None);
        assert_eq!(f.pk_list("groups", true, 10), None);
        assert_eq!(f.bool("is_active"), None);
        assert_eq!(f.string("email", true, 10), None);
        assert_eq!(f.string("password", true, 10), None);
        let DomainError::Validation(errors) = f.finish().unwrap_err() else { panic!() };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["username", "groups", "is_active", "email", "password"]);
    }

    #[test]
    fn reads_good_values() {
        let v = json!({"name": "ab", "ids": [3, 1, 3], "n": null, "sub": {"x": "y"}});
        let mut f = Fields::new(&v).unwrap();
        assert_eq!(f.string("name", true, 2).as_deref(), Some("ab"));
        assert_eq!(f.pk_list("ids", true, 5), Some(vec![3, 1]));
        assert_eq!(f.nullable_string("n", true, 5), Some(None));
        assert!(f.object("sub").is_some());
        assert!(f.finish().is_ok());
        assert!(Fields::new(&json!([1])).is_err());
    }

    #[test]
    fn future_times() {
        let now = time::macros::datetime!(2026-01-01 00:00 UTC);
        let v = json!({"a": "2026-06-01T00:00:00Z", "b": "2025-01-01T00:00:00Z", "c": "tomorrow", "d": null});
        let mut f = Fields::new(&v).unwrap();
        assert!(f.future_time("a", now).is_some());
        assert!(f.future_time("d", now).is_none());
        assert!(f.future_time("missing", now).is_none());
        f.future_time("b", now);
        f.future_time("c", now);
        let DomainError::Validation(errors) = f.finish().unwrap_err() else { panic!() };
        assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn length_and_pk_rules() {
        let v = json!({"name": "abc", "ids": [0], "pk": -1});
        let mut f = Fields::new(&v).unwrap();
        f.string("name", true, 2);
        f.pk_list("ids", true, 5);
        f.pk("pk", true);
        assert!(f.finish().is_err());
    }

    #[test]
    fn refuses_fields_nobody_asked_about() {
        let v = json!({"name": "a", "extra": 1, "nested": {"x": 1, "y": 2}});
        let mut f = Fields::new(&v).unwrap();
        f.string("name", true, 10);
        let nested = f.object("nested").unwrap();
        let mut n = Fields::new(nested).unwrap();
        n.pk("x", true);
        f.absorb("nested", n);
        let DomainError::Validation(errors) = f.finish().unwrap_err() else { panic!() };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["nested.y", "extra"]);
        let asked_only = json!({"name": "a"});
        let f = Fields::new(&asked_only).unwrap();
        assert!(f.has("name"));
        assert!(f.finish().is_ok(), "asking whether a field is there accepts it");
    }
}
