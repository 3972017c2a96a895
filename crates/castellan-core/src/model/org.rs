//! Organisations: every user, group and role belongs to exactly one.

use time::OffsetDateTime;

/// An organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    /// Primary key.
    pub pk: i64,
    /// Display name.
    pub name: String,
    /// URL-safe unique name.
    pub slug: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub created_date: OffsetDateTime,
    /// When it last changed.
    pub modified_date: OffsetDateTime,
}
