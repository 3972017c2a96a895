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
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

use crate::error::{ApiError, ApiResult};
use crate::openapi::JSON;
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
    let too_large =
        |n: usize| ApiError::field("dry_run", format!("This write affects {n} users; a preview covers at most {most}."));
    if change.catalog_target().is_some() {
        let impact = state.catalog.get().impact(&change, most).map_err(too_large)?;
        state.telemetry.preview(impact.users_affected);
        return Ok(impact);
    }
    let overlay = state.engine.overlay(&change, most).map_err(|PreviewTooLarge(n)| too_large(n))?;
    let impact = tokio::task::spawn_blocking(move || overlay.impact(crate::clock::now_micros()))
        .await
        .map_err(|e| ApiError::Internal(format!("computing a dry run's impact: {e}")))?;
    state.telemetry.preview(impact.users_affected);
    Ok(impact)
}

/// Documents `dry_run` on every write operation: the parameter, and its answer beside the write's own 200.
pub fn document(api: &mut OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder};
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
    let answer = RefOr::Ref(Ref::from_schema_name("DryRunAnswer"));
    for item in api.paths.paths.values_mut() {
        for op in [&mut item.put, &mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten() {
            op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(parameter.clone()));
            let json = match op.responses.responses.get("200") {
                Some(RefOr::T(ok)) => match ok.content.get(JSON) {
                    Some(RefOr::T(content)) => content.schema.clone(),
                    _ => None,
                },
                _ => None,
            };
            let schema: RefOr<Schema> = match json {
                Some(own) => OneOfBuilder::new().item(own).item(answer.clone()).into(),
                None => answer.clone(),
            };
            let ok = ResponseBuilder::new()
                .description("The write's answer; with `dry_run=true`, its impact instead.")
                .content(JSON, Content::new(Some(schema)));
            op.responses.responses.insert("200".into(), RefOr::T(ok.build()));
        }
    }
    let components = api.components.get_or_insert_with(Default::default);
    for (name, schema) in [
        ("DryRunAnswer", <DryRunAnswer as utoipa::PartialSchema>::schema()),
        ("ImpactOut", <ImpactOut as utoipa::PartialSchema>::schema()),
        ("ImpactEntryOut", <ImpactEntryOut as utoipa::PartialSchema>::schema()),
    ] {
        components.schemas.insert(name.into(), schema);
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

/// The answer to `?dry_run=true`: nothing was applied, and what the write would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunAnswer {
    /// Always false: a dry run changes nothing.
    pub applied: bool,
    /// What the write would change.
    pub impact: ImpactOut,
}

/// Permissions gained and lost by the users a write affects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpactOut {
    /// Permissions users would gain.
    pub gained: Vec<ImpactEntryOut>,
    /// Permissions users would lose.
    pub lost: Vec<ImpactEntryOut>,
    /// Distinct users gaining or losing anything.
    pub users_affected: usize,
}

/// One permission gained or lost, and by whom.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImpactEntryOut {
    /// `module.action`.
    pub permission: String,
    /// The object it applies to, or null for a module-wide permission.
    pub object_pk: Option<String>,
    /// How many users gain or lose it.
    pub users_count: usize,
    /// The first 100 of those users' keys.
    pub users: Vec<i64>,
}

fn body(impact: &Impact) -> DryRunAnswer {
    DryRunAnswer {
        applied: false,
        impact: ImpactOut {
            gained: impact.gained.iter().map(entry).collect(),
            lost: impact.lost.iter().map(entry).collect(),
            users_affected: impact.users_affected,
        },
    }
}

fn entry(e: &ImpactEntry) -> ImpactEntryOut {
    ImpactEntryOut {
        permission: e.permission.clone(),
        object_pk: e.object.as_ref().map(|o| o.1.clone()),
        users_count: e.users.len(),
        users: e.users[..e.users.len().min(USERS_LISTED)].to_vec(),
    }
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
