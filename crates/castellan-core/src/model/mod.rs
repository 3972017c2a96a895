//! Domain entities, one file each, with the request types that change them.

pub mod credential;
pub mod group;
pub mod org;
pub mod user;

pub use credential::{ApiToken, NewToken, Session};
pub use group::{GroupInput, OrgInput};
pub use org::Org;
pub use user::{NewUser, User, UserChanges, UserInput, WriteMode};
