//! Writes planned from the model: a handler reads what it changes, validates it against the in-memory model and
//! plans typed changes; here they are previewed (a dry run: nothing reaches the store) or applied by the store,
//! which refuses a plan whose `before` no longer holds, and the write is then planned again from what is current.

use std::future::Future;

use castellan_core::change::Change;
use castellan_core::engine::SubjectFact;
use castellan_store::{Revision, StoreError, WriteCtx};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How many times a write is planned while concurrent writes keep making its plan stale, before it answers 409.
const ATTEMPTS: usize = 4;

/// Locks serialising, within this process, the writes planned against the same target (a group, ...), striped by
/// the target's key: writes to one target then never make each other stale, and wait their turn instead of
/// retrying. Writes from another process, or from a store call that is not planned, are caught by the store's
/// check of `before` (and planned again).
pub struct Targets {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

/// Stripes of [`Targets`]: unrelated targets share one rarely, and memory stays fixed.
const STRIPES: usize = 256;

impl Default for Targets {
    fn default() -> Self {
        Self { stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect() }
    }
}

impl Targets {
    /// Waits for the turn of every target of `targets`, taking their stripes in ascending order (so two writes
    /// sharing stripes never wait on each other in a circle).
    async fn turn(&self, targets: &[Target]) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = targets.iter().map(|t| t.stripe()).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut held = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            held.push(self.stripes[stripe].lock().await);
        }
        held
    }
}

/// What a planned write changes, for [`Targets`].
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// A group's own row.
    Group(i64),
    /// One membership, as (user, group).
    Membership(i64, i64),
    /// A role's own row and its holders.
    Role(i64),
    /// The global grants of a user, group or role.
    Grants(SubjectFact),
}

impl Target {
    /// The stripe of [`Targets`] this target waits on.
    fn stripe(self) -> usize {
        let key = match self {
            Target::Group(pk) => pk as u64,
            Target::Membership(user, group) => (user as u64).rotate_left(32) ^ group as u64 ^ 1 << 63,
            Target::Role(pk) => pk as u64 ^ 1 << 62,
            Target::Grants(subject) => match subject {
                SubjectFact::User(pk) => pk as u64 ^ 1 << 61,
                SubjectFact::Group(pk) => pk as u64 ^ 1 << 60,
                SubjectFact::Role(pk) => pk as u64 ^ 1 << 59,
            },
        };
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % STRIPES
    }
}

/// Applies the changes `plan` makes to `targets`, after the writes to them this process started before (see
/// [`Targets`]), planning again while what it read changes underneath (each plan runs against the model brought to
/// the store's newest revision after a stale one). In a dry run the first plan's first change is handed to the
/// preview instead and nothing is written.
pub async fn planned<F, Fut>(state: &AppState, ctx: &WriteCtx, targets: &[Target], mut plan: F) -> ApiResult<Revision>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<Vec<Change>>>,
{
    let (revision, ()) = planned_with(state, ctx, targets, || {
        let changes = plan();
        async { Ok((changes.await?, ())) }
    })
    .await?;
    Ok(revision)
}

/// [`planned`], for a plan that also reads what the answer needs (`T`, from the plan that was applied).
pub async fn planned_with<F, Fut, T>(
    state: &AppState,
    ctx: &WriteCtx,
    targets: &[Target],
    mut plan: F,
) -> ApiResult<(Revision, T)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<(Vec<Change>, T)>>,
{
    let _turn = match castellan_store::dry_run_slot() {
        Some(_) => None,
        None => Some(state.targets.turn(targets).await),
    };
    let mut attempt = 1;
    loop {
        let (changes, read) = plan().await?;
        if let Some(slot) = castellan_store::dry_run_slot() {
            let first = changes.into_iter().next();
            *slot.lock().map_err(|_| ApiError::Internal("a dry run's slot is poisoned".into()))? = first;
            return Err(StoreError::DryRun.into());
        }
        match state.store.apply(ctx, changes).await {
            Err(StoreError::Stale(_)) if attempt < ATTEMPTS => {
                attempt += 1;
                state.follower.follow().await?;
            }
            applied => return Ok((applied?, read)),
        }
    }
}
