//! Watch (API.md §8): the change log as Server-Sent Events, so applications keep caches coherent without polling.
//! Resumable: `Last-Event-ID` (a change-log key) wins over `?since_revision=N`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use castellan_store::{ChangeOrder, ChangeQuery};
use futures_util::stream::Stream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guarded;
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::links::ListQuery;
use crate::repr::AuditEntryOut;
use crate::state::AppState;

/// How long a stream waits before reading the log again after a failed read.
const RETRY: Duration = Duration::from_millis(250);
/// Rows sent per read.
const BATCH: i64 = 200;

/// Routes of module `audit`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded("audit", None, OpenApiRouter::new().routes(routes!(watch)))
}

/// Where the stream starts: after `Last-Event-ID`, else after `since_revision`, else at the end of the log.
async fn start(state: &AppState, headers: &HeaderMap, q: &ListQuery) -> ApiResult<i64> {
    if let Some(raw) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        return raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|pk| *pk >= 0)
            .ok_or_else(|| ApiError::field("Last-Event-ID", "Expected a change key."));
    }
    match q.one(&["since_revision"]) {
        Some(raw) => {
            let revision = raw
                .parse::<i64>()
                .ok()
                .filter(|r| *r >= 0)
                .ok_or_else(|| ApiError::field("since_revision", "A valid integer is required."))?;
            Ok(state.store.change_pk_at_revision(revision).await?)
        }
        None => Ok(state.store.last_change_pk().await?),
    }
}

/// Stream change-log entries as they are written (`event: change`, `id` = change key, `data` = the audit entry).
#[utoipa::path(get, path = "/api/v1/watch/", tag = "audit", params(("since_revision" = Option<i64>, Query)),
    responses((status = 200, description = "text/event-stream of change-log entries", content_type = "text/event-stream"), (status = 400), (status = 401), (status = 403)))]
async fn watch(
    State(state): State<AppState>,
    caller: Principal,
    headers: HeaderMap,
    q: ListQuery,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = start(&state, &headers, &q).await?;
    let org = caller.org_scope();
    let applied = state.follower.subscribe();
    let stream = futures_util::stream::unfold(
        (state, after, Vec::<Event>::new(), applied),
        move |(state, mut after, mut pending, mut applied)| async move {
            loop {
                if let Some(event) = pending.pop() {
                    return Some((Ok(event), (state, after, pending, applied)));
                }
                // Rows up to `seen` are committed: an empty answer means none of them is for this caller.
                let seen = *applied.borrow_and_update();
                let query = ChangeQuery {
                    org,
                    after: Some(after),
                    ordering: vec![(ChangeOrder::Pk, false)],
                    limit: BATCH,
                    ..Default::default()
                };
                match state.store.list_changes(&query).await {
                    Ok(page) if !page.items.is_empty() => {
                        after = page.items.last().map_or(after, |e| e.pk);
                        // Popped from the end: keep them in reverse so they leave oldest first.
                        pending = page
                            .items
                            .into_iter()
                            .rev()
                            .map(|e| {
                                let id = e.pk.to_string();
                                let data = serde_json::to_string(&AuditEntryOut::from(e)).unwrap_or_default();
                                Event::default().event("change").id(id).data(data)
                            })
                            .collect();
                    }
                    // Caught up: wait until the server's follower applies a newer row (its own writes, or other
                    // replicas' found by its timer).
                    Ok(_) => {
                        after = after.max(seen);
                        if applied.wait_for(|&pk| pk > after).await.is_err() {
                            return None;
                        }
                    }
                    Err(e) => {
                        tracing::error!("watch cannot read the change log: {e}");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
