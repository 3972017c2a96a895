//! Users (seed 000 UserViewSet, seed 004 filters): list, create, read, replace, patch, delete, unlock, revoke sessions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use castellan_core::model::{NewUser, User, UserChanges, UserInput, WriteMode};
use castellan_core::permission::{Action, Permission};
use castellan_core::{DomainError, FieldError};
use castellan_store::{UserCursor, UserFilter, UserOrder, UserQuery};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{guarded, with_revision};
use crate::auth::principal::{ClientIp, Principal};
use crate::dominance::{require_confer, require_covers};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathPk, write_ctx};
use crate::links::{Envelope, ListQuery};
use crate::passwords::{check_new_password, hash_password};
use crate::repr::{UserOut, expand_groups};
use crate::state::AppState;
use crate::visibility::{redact_groups, users_seen, users_within, visible_group, visible_subset, visible_user};

/// Routes of module `users`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded(
        "users",
        None,
        OpenApiRouter::new().routes(routes!(list_users, create_user)).routes(routes!(
            get_user,
            replace_user,
            patch_user,
            delete_user
        )),
    )
    .merge(guarded(
        "users",
        Some(Action::Update),
        OpenApiRouter::new().routes(routes!(unlock)).routes(routes!(revoke_sessions)),
    ))
}

/// The list filter of a users query, narrowed to the caller's organisation and to the users the caller sees.
fn filter_from(state: &AppState, q: &ListQuery, caller: &Principal) -> ApiResult<UserFilter> {
    let mut orgs = q.ints(&["org"])?;
    if let Some(own) = caller.org_scope() {
        orgs.retain(|o| *o == own);
        if orgs.is_empty() && !q.all(&["org"]).is_empty() {
            orgs.push(0);
        } else {
            orgs = vec![own];
        }
    }
    Ok(UserFilter {
        ids: q.ints(&["id", "pk"])?,
        usernames: q.strings(&["username", "login"]),
        emails: q.strings(&["email"]),
        first_names: q.strings(&["first_name", "firstname"]),
        last_names: q.strings(&["last_name", "lastname"]),
        groups: q.ints(&["group"])?,
        is_active: q.boolean("is_active")?,
        is_staff: q.boolean("is_staff")?,
        is_superuser: q.boolean("is_superuser")?,
        orgs,
        search: q.search()?,
        groups_recursive: q.boolean("recursive")?.unwrap_or(false),
        seen_by: users_seen(state, caller),
        within: None,
    })
}

/// List users, filtered, searched, ordered and paged.
#[utoipa::path(get, path = "/api/v1/users/", tag = "users",
    params(
        ("id" = Option<i64>, Query, description = "Filter by key (repeatable)"),
        ("username" = Option<String>, Query, description = "Filter by username (alias `login`)"),
        ("email" = Option<String>, Query), ("first_name" = Option<String>, Query), ("last_name" = Option<String>, Query),
        ("group" = Option<i64>, Query, description = "Members of this group"),
        ("is_active" = Option<bool>, Query), ("is_staff" = Option<bool>, Query), ("is_superuser" = Option<bool>, Query),
        ("org" = Option<i64>, Query), ("search" = Option<String>, Query), ("ordering" = Option<String>, Query),
        ("groups" = Option<bool>, Query, description = "Embed groups as objects"),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query),
    ),
    responses((status = 200, body = Envelope<UserOut>), (status = 400), (status = 401), (status = 403)))]
async fn list_users(State(state): State<AppState>, caller: Principal, q: ListQuery) -> ApiResult<Response> {
    let mut filter = filter_from(&state, &q, &caller)?;
    if !filter.groups.is_empty() && caller.viewer().is_some() {
        // Filtering by a group the caller cannot see would reveal who is in it: such groups match nobody.
        filter.groups = visible_subset(&state, &caller, &filter.groups);
        if filter.groups.is_empty() {
            filter.groups.push(0);
        }
    }
    if !filter.groups.is_empty() || caller.viewer().is_some() {
        // The model's set, brought to the store's newest revision first.
        state.follower.follow().await?;
        filter.within = users_within(&state, &caller, &filter.groups, filter.groups_recursive);
    }
    let ordering = q.ordering_of(UserOrder::parse)?;
    let expand = q.boolean("groups")?.unwrap_or(false);
    let window = q.window()?;
    let (mut page, links) = if window.by_offset {
        let query = UserQuery { filter, ordering, offset: window.offset, limit: window.limit, skip_groups: true, after: None };
        let page = state.store.list_users(&query).await?;
        let links = q.offset_links(window, page.count);
        (page, links)
    } else {
        keyset_page(&state, &q, window, filter, ordering).await?
    };
    state.directory.attach_groups(&mut page.items, crate::clock::now_micros());
    redact_groups(&state, &caller, &mut page.items);
    let (next, previous) = links;
    if expand {
        let results = expand_groups(&state, &page.items, true).await?;
        return Ok(axum::Json(Envelope { count: page.count, next, previous, results }).into_response());
    }
    let results: Vec<UserOut> = page.items.into_iter().map(UserOut::from).collect();
    Ok(axum::Json(Envelope { count: page.count, next, previous, results }).into_response())
}

/// One page of users read from a keyset cursor (or from `page`'s offset when there is none), with `next` and
/// `previous` links that carry cursors: following them costs what the first page costs, however deep.
async fn keyset_page(
    state: &AppState,
    q: &ListQuery,
    window: crate::links::Window,
    filter: UserFilter,
    ordering: Vec<(UserOrder, bool)>,
) -> ApiResult<(castellan_store::Page<User>, (Option<String>, Option<String>))> {
    let after: Option<UserCursor> = q.cursor()?;
    if after.as_ref().is_some_and(|a| a.keys.len() != UserOrder::keys(&ordering).count()) {
        return Err(ApiError::field("cursor", "This cursor belongs to another ordering."));
    }
    let offset = if after.is_some() { 0 } else { window.offset };
    // One row more than the page, to know whether another page follows in the direction read.
    let query = UserQuery { filter, ordering, offset, limit: window.limit + 1, skip_groups: true, after };
    let mut page = state.store.list_users(&query).await?;
    if query.after.is_none() {
        q.check_page(window, page.count)?;
    }
    let backwards = query.after.as_ref().is_some_and(|a| a.backwards);
    let more = page.items.len() as i64 > window.limit;
    if more {
        // The extra row is the farthest in the direction read: last forwards, first backwards.
        if backwards {
            page.items.remove(0);
        } else {
            page.items.pop();
        }
    }
    let (has_next, has_previous) = if backwards { (true, more) } else { (more, query.after.is_some() || offset > 0) };
    let link = |user: Option<&User>, back: bool| user.map(|u| q.cursor_link(&UserCursor::at(u, &query.ordering, back)));
    let next = if has_next { link(page.items.last(), false) } else { None };
    let previous = if has_previous { link(page.items.first(), true) } else { None };
    Ok((page, (next, previous)))
}

/// Reads a user body like `UserInput::parse`, and also checks what the body alone cannot tell (the password rule,
/// the org on create, unknown groups), so that one 400 names every bad field (API.md §1).
async fn parse_user(
    state: &AppState,
    caller: &Principal,
    body: &Value,
    mode: WriteMode,
    target: Option<&User>,
) -> ApiResult<UserInput> {
    let parsed = UserInput::parse(body, mode);
    let mut errors = match &parsed {
        Ok(_) => Vec::new(),
        Err(DomainError::Validation(errors)) => errors.clone(),
        Err(other) => return Err(other.clone().into()),
    };
    let refused = |errors: &[FieldError], field: &str| errors.iter().any(|e| e.field == field);
    let mut org = target.map_or(caller.user.org, |t| t.org);
    if target.is_none()
        && !refused(&errors, "org")
        && let Some(given) = body.get("org").and_then(Value::as_i64)
    {
        if (!caller.is_superuser() && given != caller.user.org) || state.store.get_org(given).await.is_err() {
            errors.push(FieldError::new("org", "Invalid pk - object does not exist."));
        } else {
            org = given;
        }
    }
    if let (false, Some(pw)) = (refused(&errors, "password"), body.get("password").and_then(Value::as_str)) {
        let username = body.get("username").and_then(Value::as_str).unwrap_or(target.map_or("", |t| t.username.as_str()));
        if let Err(m) = state.store.password_policy(org).await?.check(pw, username) {
            errors.push(FieldError::new("password", m));
        }
    }
    if let (false, Some(groups)) = (refused(&errors, "groups"), body.get("groups").and_then(Value::as_array)) {
        for group in groups.iter().filter_map(Value::as_i64) {
            let current = target.is_some_and(|t| t.groups.contains(&group));
            if !current && visible_group(state, caller, group).await.is_err() {
                errors.push(FieldError::new("groups", format!("Invalid pk \"{group}\" - object does not exist.")));
                break;
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(parsed?)
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users/", tag = "users",
    request_body = crate::bodies::UserBody,
    responses((status = 201, body = UserOut), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn create_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let input = parse_user(&state, &caller, &body, WriteMode::Create, None).await?;
    if !caller.is_superuser() && (input.is_superuser == Some(true) || input.is_staff == Some(true)) {
        return Err(ApiError::PermissionDenied("Only a superuser can set is_superuser or is_staff.".into()));
    }
    let org = input.org.unwrap_or(caller.user.org);
    if (!caller.is_superuser() && org != caller.user.org) || state.store.get_org(org).await.is_err() {
        return Err(ApiError::field("org", "Invalid pk - object does not exist."));
    }
    check_groups_change(&state, &caller, &[], input.groups.as_deref()).await?;
    let username = input.username.clone().unwrap_or_default();
    let password_hash = match input.new_password() {
        Some(pw) => {
            check_new_password(&state, org, None, pw, &username).await?;
            Some(hash_password(&state, pw.to_string()).await?)
        }
        None => None,
    };
    let new = NewUser {
        username,
        password_hash,
        email: input.email.unwrap_or_default(),
        first_name: input.first_name.unwrap_or_default(),
        last_name: input.last_name.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        is_active: input.is_active.unwrap_or(true),
        is_staff: input.is_staff.unwrap_or(false),
        is_superuser: input.is_superuser.unwrap_or(false),
        org,
        groups: input.groups.unwrap_or_default(),
    };
    let (mut user, revision) = state.store.create_user(&write_ctx(Some(&caller), ip), new).await?;
    redact_groups(&state, &caller, std::slice::from_mut(&mut user));
    Ok(with_revision(revision, (StatusCode::CREATED, axum::Json(UserOut::from(&user)))))
}

/// Retrieve a user.
#[utoipa::path(get, path = "/api/v1/users/{pk}/", tag = "users", params(("pk" = i64, Path)),
    responses((status = 200, body = UserOut), (status = 401), (status = 403), (status = 404)))]
async fn get_user(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<axum::Json<UserOut>> {
    Ok(axum::Json(UserOut::from(&visible_user(&state, &caller, pk).await?)))
}

/// Replace a user (`username, email, groups` required; `password` optional and write-only).
#[utoipa::path(put, path = "/api/v1/users/{pk}/", tag = "users", params(("pk" = i64, Path)),
    request_body = crate::bodies::UserBody,
    responses((status = 200, body = UserOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn replace_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let target = visible_user(&state, &caller, pk).await?;
    let input = parse_user(&state, &caller, &body, WriteMode::Replace, Some(&target)).await?;
    update(&state, ip, &caller, pk, input).await
}

/// Update some fields of a user.
#[utoipa::path(patch, path = "/api/v1/users/{pk}/", tag = "users", params(("pk" = i64, Path)),
    request_body = crate::bodies::UserBody,
    responses((status = 200, body = UserOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn patch_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let target = visible_user(&state, &caller, pk).await?;
    let input = parse_user(&state, &caller, &body, WriteMode::Patch, Some(&target)).await?;
    update(&state, ip, &caller, pk, input).await
}

/// Refuses what §10 and §11 forbid: touching superuser flags or superusers without being one, deactivating
/// oneself, and the last active superuser giving up the role.
async fn check_update_rules(state: &AppState, caller: &Principal, target: &User, input: &UserInput) -> ApiResult<()> {
    let flag_changes =
        input.is_superuser.is_some_and(|v| v != target.is_superuser) || input.is_staff.is_some_and(|v| v != target.is_staff);
    if !caller.is_superuser() && (flag_changes || target.is_superuser) {
        return Err(ApiError::PermissionDenied(
            "Only a superuser can modify a superuser or set is_superuser or is_staff.".into(),
        ));
    }
    let is_self = caller.user.pk == target.pk;
    if is_self && input.is_active == Some(false) {
        return Err(ApiError::PermissionDenied("You cannot deactivate yourself.".into()));
    }
    if is_self && target.is_superuser && input.is_superuser == Some(false) && active_superusers(state).await? <= 1 {
        return Err(ApiError::Conflict("The last active superuser cannot give up superuser status.".into()));
    }
    if input.org.is_some_and(|org| org != target.org) {
        return Err(ApiError::field("org", "A user's organisation cannot be changed."));
    }
    Ok(())
}

async fn active_superusers(state: &AppState) -> ApiResult<i64> {
    let filter = UserFilter { is_superuser: Some(true), is_active: Some(true), ..Default::default() };
    Ok(state.store.list_users(&UserQuery { filter, limit: 0, ..Default::default() }).await?.count)
}

async fn update(state: &AppState, ip: std::net::IpAddr, caller: &Principal, pk: i64, input: UserInput) -> ApiResult<Response> {
    let target = visible_user(state, caller, pk).await?;
    check_update_rules(state, caller, &target, &input).await?;
    let stronger_fields = input.password.is_some()
        || input.username.as_ref().is_some_and(|u| *u != target.username)
        || input.email.as_ref().is_some_and(|e| *e != target.email)
        || input.is_active.is_some_and(|a| a != target.is_active);
    if stronger_fields {
        require_dominates(state, caller, &target).await?;
    }
    check_groups_change(state, caller, &target.groups, input.groups.as_deref()).await?;
    let password_hash = match input.new_password() {
        Some(pw) => {
            let username = input.username.as_deref().unwrap_or(&target.username);
            check_new_password(state, target.org, Some(pk), pw, username).await?;
            Some(hash_password(state, pw.to_string()).await?)
        }
        None => None,
    };
    let password_changed = password_hash.is_some();
    let deactivated = input.is_active == Some(false) && target.is_active;
    let changes = UserChanges {
        username: input.username,
        password_hash,
        email: input.email,
        first_name: input.first_name,
        last_name: input.last_name,
        description: input.description,
        is_active: input.is_active,
        is_staff: input.is_staff,
        is_superuser: input.is_superuser,
        groups: input.groups,
        ..Default::default()
    };
    let (mut user, revision) = state.store.update_user(&write_ctx(Some(caller), ip), pk, changes).await?;
    redact_groups(state, caller, std::slice::from_mut(&mut user));
    if deactivated || password_changed {
        let keep = if caller.user.pk == pk { caller.session } else { None };
        state.store.end_credentials(&write_ctx(Some(caller), ip), pk, keep, caller.user.pk != pk || deactivated).await?;
    }
    state.credentials.invalidate_user(pk);
    Ok(with_revision(revision, axum::Json(UserOut::from(&user))))
}

/// Acting on another user's credentials, identity or activation needs holding everything that user holds (§11),
/// counted as if the user were active: reactivating a user hands all of it back.
async fn require_dominates(state: &AppState, caller: &Principal, target: &User) -> ApiResult<()> {
    if caller.user.pk == target.pk {
        return Ok(());
    }
    require_covers(caller, &state.engine.held_when_active(target.pk, crate::clock::now_micros()))
}

/// Changing a user's `groups` needs `groups.update`, visible groups, and holding what the added and removed groups
/// confer (§11 "the right gate for each field", dominance).
async fn check_groups_change(state: &AppState, caller: &Principal, current: &[i64], requested: Option<&[i64]>) -> ApiResult<()> {
    let Some(requested) = requested else { return Ok(()) };
    let mut changed: Vec<i64> = requested.iter().filter(|g| !current.contains(g)).copied().collect();
    changed.extend(current.iter().filter(|g| !requested.contains(g)));
    if changed.is_empty() {
        return Ok(());
    }
    caller.require(Permission { module: "groups", action: Action::Update })?;
    for group in &changed {
        visible_group(state, caller, *group)
            .await
            .map_err(|_| ApiError::field("groups", format!("Invalid pk \"{group}\" - object does not exist.")))?;
    }
    require_confer(state, caller, &changed)
}

/// Delete a user.
#[utoipa::path(delete, path = "/api/v1/users/{pk}/", tag = "users", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    let target = visible_user(&state, &caller, pk).await?;
    if target.pk == caller.user.pk {
        return Err(ApiError::PermissionDenied("You cannot delete yourself.".into()));
    }
    if target.is_superuser && !caller.is_superuser() {
        return Err(ApiError::PermissionDenied("Only a superuser can delete a superuser.".into()));
    }
    require_dominates(&state, &caller, &target).await?;
    let revision = state.store.delete_user(&write_ctx(Some(&caller), ip), pk).await?;
    state.credentials.invalidate_user(pk);
    Ok(with_revision(revision, StatusCode::NO_CONTENT))
}

/// Clear a user's login throttle.
#[utoipa::path(post, path = "/api/v1/users/{pk}/unlock/", tag = "users", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn unlock(State(state): State<AppState>, caller: Principal, PathPk(pk): PathPk) -> ApiResult<Response> {
    let target = visible_user(&state, &caller, pk).await?;
    crate::dry_run::refuse_in_dry_run()?;
    state.throttle.unlock(&target.username);
    Ok(with_revision(state.store.revision().await?, StatusCode::NO_CONTENT))
}

/// End all sessions and tokens of a user.
#[utoipa::path(post, path = "/api/v1/users/{pk}/revoke_sessions/", tag = "users", params(("pk" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn revoke_sessions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Principal,
    PathPk(pk): PathPk,
) -> ApiResult<Response> {
    let target = visible_user(&state, &caller, pk).await?;
    if target.is_superuser && !caller.is_superuser() {
        return Err(ApiError::PermissionDenied("Only a superuser can act on a superuser.".into()));
    }
    require_dominates(&state, &caller, &target).await?;
    state.store.end_credentials(&write_ctx(Some(&caller), ip), pk, None, true).await?;
    state.credentials.invalidate_user(pk);
    Ok(with_revision(state.store.revision().await?, StatusCode::NO_CONTENT))
}
