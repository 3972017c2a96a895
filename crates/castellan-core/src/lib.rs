//! Castellan's domain: types, validation rules and the authorization rules. No IO, no async, no SQL.

pub mod catalog;
pub mod change;
pub mod directory;
pub mod engine;
pub mod error;
pub mod fields;
pub mod model;
pub mod password;
pub mod permission;
pub mod routes;
pub mod validate;

pub use error::{DomainError, FieldError};
