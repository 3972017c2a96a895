//! `?dry_run=true` (API.md §8, §11): a write runs to its end, the store rolls it back and hands over the typed
//! change it would have made, and the model answers what each affected user would gain and lose (no database is
//! read for the preview). Any write can be asked for a dry run: one that reaches a write the store cannot roll
//! back (sessions, user data, audit-only events) is refused with 400 before that write runs.

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use castellan_core::change::Change;
use castellan_core::engine::{Impact, ImpactEntry, PreviewTooLarge};
use castellan_store::PreviewSlot;
use serde_json::{Value, json};
use utoipa::openapi::OpenApi;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Users named per impact entry; `users_count` gives the total.
const USERS_LISTED: usize = 100;

/// Serves `?dry_run=true` on a write: the handler runs as a store dry run, and the answer is the impact of the
/// change its write would have made. A handler that reaches no write (nothing to change) previews as no impact;
/// refusals pass through. Other requests run as they are (a malformed `dry_run` is refused on any method).
pub async fn dry_run(state: &AppState, req: Request, next: Next) -> Response {
    let wanted = match requested(req.uri().query()) {
        Ok(wanted) => wanted,
        Err(e) => return e.into_response(),
    };
    if !wanted || crate::extract::is_read(req.method()) {
        return next.run(req).await;
    }
    let slot = PreviewSlot::default();
    let response = castellan_store::dry_run(slot.clone(), next.run(req)).await;
    let change = slot.lock().ok().and_then(|mut s| s.take());
    match change {
        Some(change) => match preview(state, change).await {
            Ok(impact) => Json(body(&impact)).into_response(),
            Err(e) => e.into_response(),
        },
        None if response.status().is_success() => Json(body(&Impact::default())).into_response(),
        None => response,
    }
}

/// Refuses work that has effects outside the store while a dry run is served (they could not be rolled back).
pub fn refuse_in_dry_run() -> ApiResult<()> {
    match castellan_store::dry_run_slot() {
        Some(_) => Err(castellan_store::StoreError::NotPreviewable.into()),
        None => Ok(()),
    }
}

/// The impact of `change` on the model, brought first to the state the write started from (the newest commit).
async fn preview(state: &AppState, change: Change) -> ApiResult<Impact> {
    let revision = state.store.revision().await?;
    state.follower.follow_to(revision).await?;
    let most = state.config.preview_max_users;
    let overlay = state.engine.overlay(&change, most).map_err(|PreviewTooLarge(n)| {
        ApiError::field("dry_run", format!("This write affects {n} users; a preview covers at most {most}."))
    })?;
    let impact = tokio::task::spawn_blocking(move || overlay.impact(crate::clock::now_micros()))
        .await
        .map_err(|e| ApiError::Internal(format!("computing a dry run's impact: {e}")))?;
    state.telemetry.preview(impact.users_affected);
    Ok(impact)
}

/// Documents `dry_run` on every write operation.
pub fn document(api: &mut OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{RefOr, Required};
    let parameter = ParameterBuilder::new()
        .name("dry_run")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "Change nothing; answer 200 with the impact: permissions gained and lost per affected user \
             (400 when this write cannot be previewed).",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
        .build();
    for item in api.paths.paths.values_mut() {
        for op in [&mut item.put, &mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten() {
            op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(parameter.clone()));
        }
    }
}

/// The `dry_run` query parameter, as the other boolean parameters read it.
fn requested(query: Option<&str>) -> Result<bool, ApiError> {
    let value = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "dry_run")
        .map(|(_, v)| v.to_ascii_lowercase())
        .last();
    match value.as_deref() {
        None | Some("" | "false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(ApiError::field("dry_run", "Must be a valid boolean.")),
    }
}

fn body(impact: &Impact) -> Value {
    json!({
        "applied": false,
        "impact": {
            "gained": impact.gained.iter().map(entry).collect::<Vec<_>>(),
            "lost": impact.lost.iter().map(entry).collect::<Vec<_>>(),
            "users_affected": impact.users_affected,
        }
    })
}

fn entry(e: &ImpactEntry) -> Value {
    json!({
        "permission": e.permission,
        "object_pk": e.object.as_ref().map(|o| o.1.as_str()),
        "users_count": e.users.len(),
        "users": &e.users[..e.users.len().min(USERS_LISTED)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_parameter_reads_like_other_booleans() {
        assert_eq!(requested(None).ok(), Some(false));
        assert_eq!(requested(Some("a=1&dry_run=true")).ok(), Some(true));
        assert_eq!(requested(Some("dry_run=TRUE")).ok(), Some(true));
        assert_eq!(requested(Some("dry_run=0")).ok(), Some(false));
        assert!(requested(Some("dry_run=maybe")).is_err());
    }

    #[test]
    fn every_write_documents_dry_run() {
        let doc = crate::openapi();
        let mut writes = 0;
        for item in doc.paths.paths.values() {
            for op in [&item.put, &item.post, &item.patch, &item.delete].into_iter().flatten() {
                writes += 1;
                let params = op.parameters.iter().flatten();
                assert!(params.clone().any(|p| matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "dry_run")));
            }
        }
        assert!(writes > 40, "{writes} writes");
    }
}
