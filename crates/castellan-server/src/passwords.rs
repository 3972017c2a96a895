//! Password work shared by the endpoints that set passwords: hashing off the async workers, and the rule and history.

use castellan_core::password;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Hashes a password on the hashing pool, so logins and checks never stall behind argon2.
pub async fn hash_password(state: &AppState, password: String) -> ApiResult<String> {
    state.hashing.run(move || password::hash(&password)).await?.map_err(|e| ApiError::Internal(e.to_string()))
}

/// Refuses a new password that breaks the rule or repeats one of the last `history_count` passwords.
pub async fn check_new_password(state: &AppState, org: i64, user: Option<i64>, password: &str, username: &str) -> ApiResult<()> {
    let policy = state.store.password_policy(org).await?;
    policy.check(password, username).map_err(|m| ApiError::field("password", m))?;
    let Some(pk) = user else { return Ok(()) };
    let recent = state.store.password_hashes(pk, policy.history_count).await?;
    let candidate = password.to_string();
    let reused = state.hashing.run(move || password::matches_any(&candidate, recent.iter().map(String::as_str))).await?;
    if reused {
        return Err(ApiError::field("password", policy.reuse_message()));
    }
    Ok(())
}
