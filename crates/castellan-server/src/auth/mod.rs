//! Authentication: credentials, the request principal, CSRF and login throttling.

pub mod credentials;
pub mod principal;
pub mod throttle;
