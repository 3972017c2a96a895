//! The authorization engine: an in-memory index of everything a decision needs, with dense integer ids, and the
//! questions asked of it (check, explain). Pure: no IO, no clock (time is a parameter, microseconds since the epoch).
//!
//! A user's permissions = grants to the user ∪ grants to each group the user is in and each ancestor of it ∪ grants
//! to every role assigned to the user or to those groups. Node restrictions narrow what one membership carries;
//! inactive modules and inactive users grant nothing; superusers hold everything. A grant on an object covers the
//! object's descendants, for the permission granted only.

mod apply;
mod check;
mod facts;
mod impact;
mod index;
mod patch;
mod preview;
pub mod synthetic;

pub use check::{Decision, Denial, Effective, ObjectGrantOf, Path, Step};
pub use facts::{Facts, GrantFact, MembershipFact, ModuleFact, ObjectFact, ObjectKey, RoleAssignmentFact, SubjectFact, UserFact};
pub use impact::{Impact, ImpactEntry, impact};
pub use index::Index;
pub use patch::{NeedsRebuild, Scope};
pub use preview::{Overlay, PreviewTooLarge};

#[cfg(test)]
mod tests;
