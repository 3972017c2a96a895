//! Checks (API.md §6): "may this user do this here?", one at a time or up to 10,000 per request, answered from the
//! in-memory index, with the revision it reflects and, on request, every granting path.

use std::time::Duration;

use axum::extract::State;
use castellan_core::engine::{Decision, Denial, Effective, Path, Step};
use castellan_core::fields::Fields;
use castellan_core::permission::{Action, ModulePermissions, Permission, valid_module_id};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::authenticated;
use crate::auth::principal::Principal;
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;
use crate::visibility::visible_user;

/// Most checks in one bulk request.
pub const BULK_MAX: usize = 10_000;
/// Most granting paths an explanation lists.
const PATHS_MAX: usize = 10;
/// How long a check waits for the index to reach `at_least_revision`.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Checks about oneself need only authentication; about others `permissions.check` (handler-enforced).
pub fn router() -> OpenApiRouter<AppState> {
    authenticated(
        OpenApiRouter::new()
            .routes(routes!(check))
            .routes(routes!(bulk_check))
            .routes(routes!(effective_permissions))
            .routes(routes!(lookup_objects))
            .routes(routes!(lookup_users))
            .routes(routes!(capabilities))
            .routes(routes!(check_route)),
    )
}

/// One parsed check.
struct Query {
    user: Option<i64>,
    module: String,
    action: String,
    object: Option<(String, String)>,
}

fn parse_query(f: &mut Fields<'_>) -> Option<Query> {
    let permission = f.string("permission", true, 130);
    let user = f.pk("user", false);
    let model = f.string("model", false, 64);
    let object_pk = f.object_key("object_pk");
    if model.as_deref().is_some_and(|m| !valid_module_id(m)) {
        f.error("model", "Module ids are lower-case slugs of 1 to 64 characters.");
    }
    let (module, action) = match permission.as_deref().and_then(|p| p.split_once('.')) {
        Some((m, a)) if valid_module_id(m) && valid_module_id(a) => (m.to_string(), a.to_string()),
        _ => {
            if permission.is_some() {
                f.error("permission", "Expected \"module.action\".");
            }
            return None;
        }
    };
    let object = object_pk.map(|pk| (model.unwrap_or_else(|| module.clone()), pk));
    Some(Query { user, module, action, object })
}

/// Asking about other users needs `permissions.check`, a built-in action also implied by `permissions.read` (§11).
fn require_check(caller: &Principal) -> ApiResult<()> {
    let read = Permission { module: "permissions", action: Action::Read };
    if caller.holds(read) || caller.holds_named("permissions", "check") {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied("This method needs permission check on permissions.".into()))
    }
}

/// The user a check is about; others need `permissions.check` (implied by `permissions.read`) and must be visible.
async fn subject(state: &AppState, caller: &Principal, user: Option<i64>) -> ApiResult<i64> {
    match user {
        None => Ok(caller.user.pk),
        Some(pk) if pk == caller.user.pk => Ok(pk),
        Some(pk) => {
            require_check(caller)?;
            if caller.viewer().is_none() {
                // Superusers see every user: the index alone says whether this one exists.
                if !state.engine.snapshot().index.has_user(pk) {
                    return Err(ApiError::NotFound);
                }
            } else {
                visible_user(state, caller, pk).await?;
            }
            Ok(pk)
        }
    }
}

/// A registered object of another organisation is unknown to a non-superuser (§11: 404, as for any record of another
/// org); keys never registered carry no org and are checked as they are.
fn require_own_object(
    index: &castellan_core::engine::Index,
    caller: &Principal,
    object: Option<&(String, String)>,
) -> ApiResult<()> {
    match (caller.org_scope(), object.and_then(|(m, k)| index.object_org(m, k))) {
        (Some(own), Some(org)) if org != own => Err(ApiError::NotFound),
        _ => Ok(()),
    }
}

/// Brings the index to `at_least_revision` when asked (400 beyond the newest revision, 503 when it does not get
/// there in time). Without it the index already holds every write this server answered, since writes are followed
/// before their responses; writes of other replicas arrive within a tick.
pub(crate) async fn catch_up(state: &AppState, at_least_revision: Option<&Value>) -> ApiResult<()> {
    let Some(raw) = at_least_revision else { return Ok(()) };
    let Some(wanted) = raw.as_i64().filter(|r| *r >= 0) else {
        return Err(ApiError::field("at_least_revision", "A valid integer is required."));
    };
    if wanted <= state.engine.revision() {
        return Ok(());
    }
    if wanted > state.store.revision().await? {
        return Err(ApiError::field("at_least_revision", "No such revision has been committed."));
    }
    if state.follower.reach(wanted, CATCH_UP).await {
        Ok(())
    } else {
        Err(ApiError::Unavailable("The index has not caught up yet.".into()))
    }
}

fn object_text(o: &(String, String)) -> String {
    format!("{} {}", o.0, o.1)
}

/// One granting path as text: `user 5 ∈ group 3 ⊂ group 1 → role 7 → catalogs.full on catalogs 9 ⊃ products 42`.
fn render(path: &Path) -> String {
    let mut out = String::new();
    for step in &path.steps {
        let part = match step {
            Step::User { pk, superuser: true } => format!("user {pk} is a superuser"),
            Step::User { pk, .. } => format!("user {pk}"),
            Step::Member { group, restricted } => {
                format!(" ∈ group {group}{}", if *restricted { " (node-restricted)" } else { "" })
            }
            Step::Ancestor { group } => format!(" ⊂ group {group}"),
            Step::Role { role } => format!(" → role {role}"),
            Step::Grant { module, action, object } => {
                let on = object.as_ref().map(|o| format!(" on {}", object_text(o))).unwrap_or_default();
                format!(" → {module}.{action}{on}")
            }
            Step::Covers { object } => format!(" ⊃ {}", object_text(object)),
        };
        out.push_str(&part);
    }
    out
}

fn denial_text(denial: Option<Denial>, user: i64, module: &str, action: &str) -> String {
    match denial {
        Some(Denial::UnknownUser) => format!("user {user} does not exist"),
        Some(Denial::InactiveUser) => format!("user {user} is inactive"),
        Some(Denial::UnknownModule) => format!("module {module} does not exist"),
        Some(Denial::InactiveModule) => format!("module {module} is inactive"),
        Some(Denial::UnknownAction) => format!("module {module} has no action {action}"),
        Some(Denial::NoGrant) | None => format!("no grant of {module}.{action} reaches user {user} (node restrictions included)"),
    }
}

/// A check's answer.
#[derive(Serialize, ToSchema)]
pub struct CheckOut {
    /// Whether the permission is held.
    pub allowed: bool,
    /// The revision the answer reflects.
    pub revision: i64,
    /// Granting paths (at most 10) or why not, when `explain` was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Vec<String>>,
    /// How many granting paths exist, when `explain` was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths_total: Option<usize>,
    /// When the answer stops holding because a grant, membership or role assignment expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// Check one permission for a user (default: the caller), globally or on an object.
#[utoipa::path(post, path = "/api/v1/check/", tag = "check",
    request_body = crate::bodies::CheckBody,
    responses((status = 200, body = CheckOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 503)))]
async fn check(State(state): State<AppState>, caller: Principal, JsonBody(body): JsonBody) -> ApiResult<axum::Json<CheckOut>> {
    let started = std::time::Instant::now();
    let mut f = Fields::new(&body)?;
    let query = parse_query(&mut f);
    let explain = f.bool("explain").unwrap_or(false);
    let at_least_revision = f.raw("at_least_revision");
    f.finish()?;
    let Some(q) = query else { return Err(ApiError::field("permission", "This field is required.")) };
    if explain {
        caller.require(Permission { module: "permissions", action: Action::Read })?;
    }
    catch_up(&state, at_least_revision).await?;
    let user = subject(&state, &caller, q.user).await?;
    let snapshot = state.engine.snapshot();
    require_own_object(&snapshot.index, &caller, q.object.as_ref())?;
    let object = q.object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
    let now = now_micros();
    let mut decision = snapshot.index.check(user, &q.module, &q.action, object, now);
    let out_of_scope = !caller.answers_for(user, &q.module, &q.action);
    if out_of_scope {
        decision = Decision { allowed: false, valid_until: None, ..decision };
    }
    let (explanation, paths_total) = if explain && out_of_scope {
        (Some(vec![format!("the token used does not carry {}.{}", q.module, q.action)]), Some(0))
    } else if explain {
        let (_, paths, total) = snapshot.index.explain(user, &q.module, &q.action, object, now, PATHS_MAX);
        let lines = if decision.allowed {
            paths.iter().map(render).collect()
        } else {
            vec![denial_text(decision.denial, user, &q.module, &q.action)]
        };
        (Some(lines), Some(total))
    } else {
        (None, None)
    };
    let valid_until = decision
        .valid_until
        .and_then(|us| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok())
        .map(crate::repr::timestamp);
    state.telemetry.check(decision.allowed);
    state.telemetry.check_duration(started.elapsed());
    Ok(axum::Json(CheckOut { allowed: decision.allowed, revision: snapshot.revision, explanation, paths_total, valid_until }))
}

/// One bulk answer.
#[derive(Serialize, ToSchema)]
pub struct BulkItem {
    /// Whether the permission is held.
    pub allowed: bool,
}

/// Bulk answers, in the order asked.
#[derive(Serialize, ToSchema)]
pub struct BulkOut {
    /// One per check.
    pub results: Vec<BulkItem>,
    /// The revision the answers reflect.
    pub revision: i64,
}

/// Check up to 10,000 permissions in one request; answers keep the order of the checks.
#[utoipa::path(post, path = "/api/v1/check/bulk/", tag = "check",
    request_body = crate::bodies::BulkCheckBody,
    responses((status = 200, body = BulkOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 503)))]
async fn bulk_check(
    State(state): State<AppState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<axum::Json<BulkOut>> {
    let started = std::time::Instant::now();
    let top = Fields::new(&body)?;
    let (checks, at_least_revision) = (top.raw("checks"), top.raw("at_least_revision"));
    top.finish()?;
    let Some(items) = checks.and_then(Value::as_array) else {
        return Err(ApiError::field("checks", "Expected a list of checks."));
    };
    if items.len() > BULK_MAX {
        return Err(ApiError::field("checks", format!("Ensure this field has no more than {BULK_MAX} elements.")));
    }
    let mut errors = Vec::new();
    let mut queries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("checks[{i}].");
        match Fields::new(item) {
            Ok(mut f) => {
                let q = parse_query(&mut f);
                match (q, f.finish()) {
                    (Some(q), Ok(())) => queries.push(q),
                    (_, Err(castellan_core::DomainError::Validation(e))) => errors.extend(
                        e.into_iter().map(|e| castellan_core::FieldError::new(format!("{prefix}{}", e.field), e.message)),
                    ),
                    (_, Err(other)) => return Err(other.into()),
                    (None, Ok(())) => {
                        errors.push(castellan_core::FieldError::new(format!("{prefix}permission"), "This field is required."))
                    }
                }
            }
            Err(_) => {
                errors.push(castellan_core::FieldError::new(format!("checks[{i}]"), "Invalid data. Expected a dictionary."))
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut users: Vec<Option<i64>> = queries.iter().map(|q| q.user).collect();
    users.sort_unstable();
    users.dedup();
    catch_up(&state, at_least_revision).await?;
    for user in users {
        subject(&state, &caller, user).await?;
    }
    let snapshot = state.engine.snapshot();
    for q in &queries {
        require_own_object(&snapshot.index, &caller, q.object.as_ref())?;
    }
    let now = now_micros();
    let results = queries
        .iter()
        .map(|q| {
            let object = q.object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
            let user = q.user.unwrap_or(caller.user.pk);
            BulkItem {
                allowed: caller.answers_for(user, &q.module, &q.action)
                    && snapshot.index.check(user, &q.module, &q.action, object, now).allowed,
            }
        })
        .collect::<Vec<_>>();
    state.telemetry.bulk(results.len());
    results.iter().for_each(|r| state.telemetry.check(r.allowed));
    state.telemetry.check_duration(started.elapsed());
    Ok(axum::Json(BulkOut { results, revision: snapshot.revision }))
}

/// Effective permissions (superusers answer `{"superuser": true}`).
#[derive(Serialize, ToSchema)]
pub struct EffectiveOut {
    /// Present and true for superusers.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub superuser: bool,
    /// `module.action` held globally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<Vec<String>>,
    /// `{model: {object_pk: [action...]}}` held on objects (and so on their descendants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>>,
    /// The revision the answer reflects.
    pub revision: i64,
}

/// Everything a user holds (oneself: authentication only; others: `permissions.check`).
#[utoipa::path(get, path = "/api/v1/users/{pk}/effective_permissions/", tag = "check", params(("pk" = i64, Path)),
    responses((status = 200, body = EffectiveOut), (status = 401), (status = 403), (status = 404)))]
async fn effective_permissions(
    State(state): State<AppState>,
    caller: Principal,
    crate::extract::PathPk(pk): crate::extract::PathPk,
) -> ApiResult<axum::Json<EffectiveOut>> {
    let user = subject(&state, &caller, Some(pk)).await?;
    let snapshot = state.engine.snapshot();
    let eff = within_scopes(&caller, user, snapshot.index.effective(user, now_micros()));
    if eff.superuser {
        return Ok(axum::Json(EffectiveOut { superuser: true, global: None, objects: None, revision: snapshot.revision }));
    }
    let mut objects: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>> = Default::default();
    for (model, key, action) in eff.objects {
        objects.entry(model).or_default().entry(key).or_default().push(action);
    }
    Ok(axum::Json(EffectiveOut {
        superuser: false,
        global: Some(eff.global),
        objects: Some(objects),
        revision: snapshot.revision,
    }))
}

/// `eff`, about `user`, narrowed to the token's scopes when `user` is the caller and the token has scopes (API.md
/// §11): a superuser's scoped token holds its scopes and no more.
fn within_scopes(caller: &Principal, user: i64, mut eff: Effective) -> Effective {
    let Some(scopes) = caller.scopes().filter(|_| user == caller.user.pk) else { return eff };
    if eff.superuser {
        return Effective { superuser: false, global: scopes.names(), objects: Vec::new() };
    }
    let mut held = ModulePermissions::new();
    for (module, action) in eff.global.iter().filter_map(|name| name.split_once('.')) {
        held.insert_named(module, action);
    }
    eff.global = held.intersection(scopes).names();
    eff.objects.retain(|(model, _, action)| scopes.allows_named(model, action));
    eff
}

/// Everything a front end needs about the caller in one answer.
#[derive(Serialize, ToSchema)]
pub struct CapabilitiesOut {
    /// `module.action` held globally (every registered module's actions for superusers).
    pub global: Vec<String>,
    /// `{model: {object_pk: [action...]}}` held on objects.
    pub objects: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>>,
    /// Paths (slugs joined with `.`) of the FE permissions held (every one for superusers).
    pub fe_permissions: Vec<String>,
    /// BE permissions held, as `{action, path}`.
    pub be_permissions: Vec<BeHeld>,
    /// The revision the answer reflects.
    pub revision: i64,
}

/// A BE permission as `capabilities` lists it.
#[derive(Serialize, ToSchema)]
pub struct BeHeld {
    /// Lower-case HTTP method.
    pub action: String,
    /// Path expression.
    pub path: String,
}

/// The caller's capabilities (API.md §8).
#[utoipa::path(get, path = "/api/v1/active_user/capabilities/", tag = "active_user", responses((status = 200, body = CapabilitiesOut), (status = 401)))]
async fn capabilities(State(state): State<AppState>, caller: Principal) -> ApiResult<axum::Json<CapabilitiesOut>> {
    let (eff, revision) = {
        let snapshot = state.engine.snapshot();
        (within_scopes(&caller, caller.user.pk, snapshot.index.effective(caller.user.pk, now_micros())), snapshot.revision)
    };
    let global = if eff.superuser {
        let modules = state.store.list_modules().await?;
        modules.iter().flat_map(|m| crate::repr::module_actions(m).into_iter().map(move |a| format!("{}.{a}", m.id))).collect()
    } else {
        eff.global
    };
    let mut objects: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<String>>> = Default::default();
    for (model, key, action) in eff.objects {
        objects.entry(model).or_default().entry(key).or_default().push(action);
    }
    let catalog = state.catalog.get();
    let superuser = caller.is_superuser();
    // The root's path is empty (seed 000): it is listed by its slug, `is_superuser`.
    let path_of = |f: &&castellan_core::catalog::FePermission| {
        Some(catalog.fe_path(f.pk)).filter(|p| !p.is_empty()).unwrap_or_else(|| f.slug.clone())
    };
    let fe_permissions = catalog.held_fe(caller.user.pk, superuser).iter().map(path_of).collect();
    let be_permissions = catalog
        .held_be(caller.user.pk, superuser)
        .iter()
        .map(|b| BeHeld { action: b.action.clone(), path: b.path.clone() })
        .collect();
    Ok(axum::Json(CapabilitiesOut { global, objects, fe_permissions, be_permissions, revision }))
}

/// May a user (default: the caller) call `method` on `path`? The path is normalised first (API.md §7, §10).
#[utoipa::path(post, path = "/api/v1/check/route/", tag = "check",
    request_body = crate::bodies::RouteCheckBody,
    responses((status = 200, body = crate::catalog::RouteCheckOut), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn check_route(
    State(state): State<AppState>,
    caller: Principal,
    JsonBody(body): JsonBody,
) -> ApiResult<axum::Json<crate::catalog::RouteCheckOut>> {
    let mut f = Fields::new(&body)?;
    let user = f.pk("user", false);
    let method = f.string("method", true, 16).unwrap_or_default();
    let path = f.string("path", true, 8192);
    if !method.is_empty() && !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        f.error("method", "Expected an HTTP method.");
    }
    let normalized = path.as_deref().map(castellan_core::routes::normalize_path);
    if let Some(Err(why)) = &normalized {
        f.error("path", why.0);
    }
    f.finish()?;
    let user = subject(&state, &caller, user).await?;
    let path = normalized.and_then(Result::ok).unwrap_or_default();
    let decision = crate::catalog::route_decision(&state, &caller, user, &method, &path);
    Ok(axum::Json(crate::catalog::RouteCheckOut { allowed: decision.allowed, be_permission: decision.be_permission }))
}

/// Objects a user may act on, paged.
#[derive(Serialize, ToSchema)]
pub struct LookupObjectsOut {
    /// Granted globally: every object of the user's organisation (then `results` is empty).
    pub all: bool,
    /// Number of objects listed over all pages.
    pub count: i64,
    /// Absolute URL of the next page.
    pub next: Option<String>,
    /// Absolute URL of the previous page.
    pub previous: Option<String>,
    /// Object keys.
    pub results: Vec<String>,
}

/// Which objects of `model` a user (default: the caller) holds `permission` on.
#[utoipa::path(post, path = "/api/v1/lookup/objects/", tag = "check",
    request_body = crate::bodies::LookupObjectsBody,
    responses((status = 200, body = LookupObjectsOut), (status = 400), (status = 401), (status = 403), (status = 404), (status = 503)))]
async fn lookup_objects(
    State(state): State<AppState>,
    caller: Principal,
    q: crate::links::ListQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<axum::Json<LookupObjectsOut>> {
    let mut f = Fields::new(&body)?;
    let query = parse_query(&mut f);
    if !f.has("model") {
        f.error("model", "This field is required.");
    }
    if f.has("object_pk") {
        f.error("object_pk", "A lookup of objects lists objects: it takes no object_pk.");
    }
    let at_least_revision = f.raw("at_least_revision");
    f.finish()?;
    let Some(query) = query else { return Err(ApiError::field("permission", "This field is required.")) };
    catch_up(&state, at_least_revision).await?;
    let user = subject(&state, &caller, query.user).await?;
    let snapshot = state.engine.snapshot();
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    let window = q.window()?;
    let found = if caller.answers_for(user, &query.module, &query.action) {
        snapshot.index.lookup_objects(user, &query.module, &query.action, &model, now_micros())
    } else {
        Some(Vec::new())
    };
    let (all, keys) = match found {
        None => (true, Vec::new()),
        Some(keys) => (false, keys),
    };
    let (count, page) = q.page_of(window, keys)?;
    let envelope = q.envelope(window, count, page);
    Ok(axum::Json(LookupObjectsOut { all, count, next: envelope.next, previous: envelope.previous, results: envelope.results }))
}

/// Which users hold `permission` (on the object, when given), paged; only users the caller sees are listed.
#[utoipa::path(post, path = "/api/v1/lookup/users/", tag = "check",
    request_body = crate::bodies::LookupUsersBody,
    responses((status = 200, body = crate::links::Envelope<crate::repr::UserOut>), (status = 400), (status = 401), (status = 403), (status = 503)))]
async fn lookup_users(
    State(state): State<AppState>,
    caller: Principal,
    q: crate::links::ListQuery,
    JsonBody(body): JsonBody,
) -> ApiResult<axum::Json<crate::links::Envelope<crate::repr::UserOut>>> {
    let mut f = Fields::new(&body)?;
    let query = parse_query(&mut f);
    if f.has("user") {
        f.error("user", "A lookup of users lists users: it takes no user.");
    }
    let at_least_revision = f.raw("at_least_revision");
    f.finish()?;
    let Some(query) = query else { return Err(ApiError::field("permission", "This field is required.")) };
    require_check(&caller)?;
    let window = q.window()?;
    catch_up(&state, at_least_revision).await?;
    let now = now_micros();
    let object = query.object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
    let mut users = state.engine.snapshot().index.lookup_users(&query.module, &query.action, object, now);
    if let Some(viewer) = caller.viewer() {
        let visible = state.directory.visible_users(viewer, now);
        users.retain(|pk| visible.contains(*pk));
    }
    users.retain(|pk| caller.answers_for(*pk, &query.module, &query.action));
    let (count, pks) = q.page_of(window, users)?;
    let mut page = state.store.get_users(&pks).await?;
    crate::visibility::redact_groups(&state, &caller, &mut page);
    Ok(axum::Json(q.envelope(window, count, page.iter().map(crate::repr::UserOut::from).collect())))
}
