//! No privilege escalation (API.md §11): a write that can make anyone gain a permission needs the caller to hold
//! everything it confers; revoking needs holding what is revoked. Superusers hold everything.

use castellan_core::engine::{Index, ObjectGrantOf, SubjectFact};
use castellan_core::permission::ModulePermissions;

use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

const DETAIL: &str = "You cannot confer or revoke permissions you do not hold.";

/// Refuses unless the caller holds every permission in `conferred`.
pub fn require_covers(caller: &Principal, conferred: &ModulePermissions) -> ApiResult<()> {
    if caller.is_superuser() || caller.held().covers(conferred) { Ok(()) } else { Err(ApiError::PermissionDenied(DETAIL.into())) }
}

/// Refuses unless the caller holds everything membership of `groups` confers (their permissions and ancestors',
/// their roles', globally and on objects), as the model says.
pub fn require_confer(state: &AppState, caller: &Principal, groups: &[i64]) -> ApiResult<()> {
    if caller.is_superuser() || groups.is_empty() {
        return Ok(());
    }
    let (snapshot, now) = (state.engine.snapshot(), crate::clock::now_micros());
    require_covers(caller, &snapshot.index.conferred_by(groups, now))?;
    require_objects(caller, &snapshot.index, &snapshot.index.objects_conferred_by(groups, now), now)
}

/// Refuses unless the caller holds everything holding `role` confers, globally and on objects.
pub fn require_role(state: &AppState, caller: &Principal, role: i64) -> ApiResult<()> {
    if caller.is_superuser() {
        return Ok(());
    }
    let (snapshot, now) = (state.engine.snapshot(), crate::clock::now_micros());
    require_covers(caller, &snapshot.index.granted_to(SubjectFact::Role(role), now))?;
    require_objects(caller, &snapshot.index, &snapshot.index.objects_granted_to(SubjectFact::Role(role), now), now)
}

/// Refuses unless the caller holds each object grant on its object (or above it, or globally).
fn require_objects(caller: &Principal, index: &Index, grants: &[ObjectGrantOf], now: i64) -> ApiResult<()> {
    let held = |(module, action, (model, key)): &ObjectGrantOf| caller.holds_at(index, module, action, Some((model, key)), now);
    if grants.iter().all(held) { Ok(()) } else { Err(ApiError::PermissionDenied(DETAIL.into())) }
}

/// Refuses unless the caller holds, on the object `(model, key)`, every permission that anyone holds on it or above
/// it through object grants: linking a new object under it hands all of that to those holders.
pub fn require_link(state: &AppState, caller: &Principal, model: &str, key: &str) -> ApiResult<()> {
    if caller.is_superuser() {
        return Ok(());
    }
    let now = crate::clock::now_micros();
    let snapshot = state.engine.snapshot();
    let conferred = snapshot.index.granted_on(model, key, now);
    let held = |(module, action): (&str, &str)| caller.holds_at(&snapshot.index, module, action, Some((model, key)), now);
    if conferred.pairs().all(held) { Ok(()) } else { Err(ApiError::PermissionDenied(DETAIL.into())) }
}
