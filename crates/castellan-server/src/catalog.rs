//! The permission catalog in memory (API.md §7), kept current by the change-log follower, and what the server
//! publishes into it at start: one BE permission per guarded route of its own API (from the declaration that
//! enforces the route) and the FE tree of its own admin UI.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use castellan_core::catalog::{Catalog, RouteDecision};
use castellan_core::change::{CatalogEntry, CatalogLink, Change};
use castellan_core::fields::Fields;
use castellan_core::permission::Action;
use castellan_store::{ChangeEntry, PublishedRoute, ShippedFe, Store, StoreError};
use parking_lot::RwLock;
use utoipa::openapi::OpenApi;

use crate::auth::principal::Principal;
use crate::clock::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::extract::write_ctx;
use crate::state::AppState;

/// The OpenAPI extension in which `guarded` records the permission each operation needs.
pub const PERMISSION_EXTENSION: &str = "x-castellan-permission";

/// The catalog as of the follower's position.
pub struct CatalogView {
    current: RwLock<Arc<Catalog>>,
}

impl CatalogView {
    /// Reads the whole catalog from the store.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let catalog = Catalog::build(store.catalog_rows().await?, None);
        Ok(Self { current: RwLock::new(Arc::new(catalog)) })
    }

    /// The current catalog (a reference count; never blocks behind a reload).
    pub fn get(&self) -> Arc<Catalog> {
        self.current.read().clone()
    }

    /// Runs `f` on the current catalog without taking a reference count: for the per-request path, where every
    /// worker incrementing one shared count costs more than the read lock.
    pub fn with<R>(&self, f: impl FnOnce(&Catalog) -> R) -> R {
        f(&self.current.read())
    }

    /// Follows `entries` from their typed changes, with no database read: link changes (the frequent catalog
    /// writes) in place; other catalog changes, and deletions of users and groups, on a copy of the rows, rebuilt
    /// (the compiled routes are kept when no BE permission's method or path changed). Only a row this build cannot
    /// read makes it read the catalog again.
    pub async fn apply(&self, store: &dyn Store, entries: &[ChangeEntry]) -> Result<(), StoreError> {
        let touching: Vec<(&Change, i64)> = match entries
            .iter()
            .filter(|e| e.change.as_ref().is_none_or(|c| c.touches_catalog()))
            .map(|e| e.change.as_ref().map(|c| (c, crate::clock::micros_of(e.at))))
            .collect::<Option<Vec<_>>>()
        {
            Some(touching) => touching,
            None => return self.reload(store).await,
        };
        if touching.is_empty() {
            return Ok(());
        }
        if touching.iter().all(|(c, _)| matches!(c, Change::CatalogLinked { .. } | Change::CatalogUnlinked { .. })) {
            let mut current = self.current.write();
            // In place unless a request still holds this version; then on a copy.
            let catalog = Arc::make_mut(&mut current);
            if touching.iter().all(|(change, at)| catalog.follow_link(change, *at)) {
                return Ok(());
            }
        }
        let mut rows = self.get().rows();
        for (change, at) in &touching {
            rows.apply(change, *at);
        }
        self.install(rows);
        Ok(())
    }

    async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        self.install(store.catalog_rows().await?);
        Ok(())
    }

    /// Builds the catalog of `rows` (keeping the compiled routes when they are the same) and makes it current.
    fn install(&self, rows: castellan_core::catalog::CatalogRows) {
        let catalog = Catalog::build(rows, Some(&self.get()));
        *self.current.write() = Arc::new(catalog);
    }
}

/// A path template of the OpenAPI document (`/api/v1/users/{pk}/`) as a BE permission path
/// (`api/v1/users/[^/]+/$`).
pub fn template_to_path(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template.trim_start_matches('/');
    while let Some(open) = rest.find('{') {
        out.push_str(&escape(&rest[..open]));
        out.push_str("[^/]+");
        rest = rest[open..].find('}').map_or("", |close| &rest[open + close + 1..]);
    }
    out.push_str(&escape(rest));
    out.push('$');
    out
}

/// Escapes what regular expressions give a meaning to, and nothing else (paths keep their `-` and `_` readable).
fn escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every guarded operation of `api` as a BE permission: namespace = the module guarding it, action = its method.
pub fn published_routes(api: &OpenApi) -> Vec<PublishedRoute> {
    let mut routes = Vec::new();
    for (template, item) in &api.paths.paths {
        let ops =
            [("get", &item.get), ("post", &item.post), ("put", &item.put), ("patch", &item.patch), ("delete", &item.delete)];
        for (method, op) in ops {
            let permission = op
                .as_ref()
                .and_then(|op| op.extensions.as_ref())
                .and_then(|ext| ext.get(PERMISSION_EXTENSION))
                .and_then(|v| v.as_str());
            let Some((module, _)) = permission.and_then(|p| p.split_once('.')) else { continue };
            routes.push(PublishedRoute {
                namespace: module.to_string(),
                action: method.to_string(),
                path: template_to_path(template),
            });
        }
    }
    routes.sort_by(|a, b| (&a.namespace, &a.path, &a.action).cmp(&(&b.namespace, &b.path, &b.action)));
    routes
}

/// The admin UI's FE tree below `is_superuser`: per namespace a screen (its reads), with `add`, `change` and
/// `delete` below it for the writes the namespace has.
pub fn admin_tree(routes: &[PublishedRoute]) -> Vec<ShippedFe> {
    let mut methods: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for route in routes {
        methods.entry(&route.namespace).or_default().push(&route.action);
    }
    let mut tree = Vec::new();
    for (namespace, have) in methods {
        let gives = |actions: &[&str]| -> Vec<(String, String)> {
            actions.iter().filter(|a| have.contains(a)).map(|a| (namespace.to_string(), a.to_string())).collect()
        };
        tree.push(ShippedFe { path: vec![namespace.to_string()], name: format!("{namespace}: view"), be: gives(&["get"]) });
        for (slug, actions) in [("add", &["post"][..]), ("change", &["put", "patch"][..]), ("delete", &["delete"][..])] {
            let be = gives(actions);
            if !be.is_empty() {
                tree.push(ShippedFe {
                    path: vec![namespace.to_string(), slug.to_string()],
                    name: format!("{namespace}: {slug}"),
                    be,
                });
            }
        }
    }
    tree
}

/// Publishes the server's own routes and admin UI tree (idempotent: a restart writes nothing new).
pub async fn publish(store: &dyn Store) -> Result<Option<castellan_store::Revision>, StoreError> {
    let routes = published_routes(&crate::openapi::openapi());
    store.publish_catalog(&routes, &admin_tree(&routes)).await
}

/// Most users an embedded `users` array names; `users_count` and `users_hidden` stand beside it.
pub const USERS_LISTED: usize = 1000;

/// An embedded array of users as the caller may see it: at most [`USERS_LISTED`] visible keys, ascending, how many
/// are visible and how many are hidden.
pub fn users_seen(state: &AppState, caller: &Principal, users: &BTreeSet<i64>) -> (Vec<i64>, i64, i64) {
    let visible = caller.viewer().map(|viewer| state.directory.visible_users(viewer, now_micros()));
    let seen: Vec<i64> = users.iter().copied().filter(|pk| visible.as_ref().is_none_or(|v| v.contains(*pk))).collect();
    let (count, hidden) = (seen.len() as i64, (users.len() - seen.len()) as i64);
    (seen.into_iter().take(USERS_LISTED).collect(), count, hidden)
}

const DOMINANCE: &str = "You cannot confer or revoke permissions you do not hold.";

/// Refuses unless the caller holds every BE permission of `be` (superusers hold all).
pub fn require_be(catalog: &Catalog, caller: &Principal, be: &[i64]) -> ApiResult<()> {
    let holds = caller.is_superuser() || be.iter().all(|pk| catalog.holds_be(caller.user.pk, *pk));
    if holds { Ok(()) } else { Err(ApiError::PermissionDenied(DOMINANCE.into())) }
}

/// Refuses unless the caller holds every FE permission of `fe`.
pub fn require_fe(catalog: &Catalog, caller: &Principal, fe: &[i64]) -> ApiResult<()> {
    let holds = caller.is_superuser() || fe.iter().all(|pk| catalog.holds_fe(caller.user.pk, *pk));
    if holds { Ok(()) } else { Err(ApiError::PermissionDenied(DOMINANCE.into())) }
}

/// Refuses unless the caller holds all of namespace `ns`.
pub fn require_namespace(catalog: &Catalog, caller: &Principal, ns: i64) -> ApiResult<()> {
    if caller.is_superuser() || catalog.holds_namespace(caller.user.pk, ns) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(DOMINANCE.into()))
    }
}

/// Writing catalog definitions (namespaces, BE and FE permissions) needs a superuser: they are global (API.md §11).
pub fn require_superuser(caller: &Principal) -> ApiResult<()> {
    if caller.is_superuser() {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied("Only a superuser can define BE and FE permissions.".into()))
    }
}

/// Persists one catalog change made by `caller` and brings this server's views to it; answers the change as
/// persisted, the catalog after it, and the revision.
pub async fn write(
    state: &AppState,
    caller: &Principal,
    ip: std::net::IpAddr,
    change: Change,
) -> ApiResult<(Change, Arc<Catalog>, castellan_store::Revision)> {
    let (change, revision) = state.store.write_catalog(&write_ctx(Some(caller), ip), change).await?;
    state.follower.follow_to(revision).await?;
    Ok((change, state.catalog.get(), revision))
}

/// The pk a catalog creation was given.
pub fn created_pk(change: &Change) -> i64 {
    match change {
        Change::CatalogCreated { pk, .. } => *pk,
        _ => 0,
    }
}

/// A body's list of keys (`name`), each of which must exist (`exists`): 400 naming the field otherwise.
pub fn keys(f: &mut Fields<'_>, name: &str, required: bool, exists: impl Fn(i64) -> bool) -> Option<Vec<i64>> {
    let mut pks = f.pk_list(name, required, 10_000)?;
    if let Some(missing) = pks.iter().find(|pk| !exists(**pk)) {
        f.error(name, format!("Invalid pk \"{missing}\" - object does not exist."));
    }
    pks.sort_unstable();
    Some(pks)
}

/// A timestamp of the catalog (µs since the epoch) as the API writes it.
pub fn stamp(us: i64) -> String {
    crate::repr::timestamp(time::OffsetDateTime::UNIX_EPOCH + time::Duration::microseconds(us))
}

/// Reads `{"users": [...]}`: every user must exist and be visible to the caller.
pub fn users_body(state: &AppState, caller: &Principal, body: &serde_json::Value) -> ApiResult<Vec<i64>> {
    let mut f = Fields::new(body)?;
    let users = f.pk_list("users", true, 10_000);
    f.finish()?;
    let users = users.unwrap_or_default();
    crate::visibility::require_visible_users(state, caller, &users, Some("users"))?;
    Ok(users)
}

/// The one shape of every catalog `assign-users` / `remove-users`: 404 for an unknown entry, the users read (each
/// visible), `confers` (the caller must hold what the entry gives), the write. Answers the catalog after it and the
/// revision; the endpoint shapes its own answer.
pub async fn link_users(
    state: &AppState,
    ip: std::net::IpAddr,
    caller: &Principal,
    (entry, pk): (CatalogEntry, i64),
    body: &serde_json::Value,
    add: bool,
    confers: impl FnOnce(&Catalog) -> ApiResult<()>,
) -> ApiResult<(Arc<Catalog>, castellan_store::Revision)> {
    if !state.catalog.with(|c| c.has(entry, pk)) {
        return Err(ApiError::NotFound);
    }
    let users = users_body(state, caller, body)?;
    confers(&state.catalog.get())?;
    let (_, catalog, revision) = write(state, caller, ip, link_change(entry, pk, CatalogLink::Users, users, add)).await?;
    Ok((catalog, revision))
}

/// The change linking (`add`) or unlinking `ids` to a catalog entry.
pub fn link_change(entry: CatalogEntry, pk: i64, link: CatalogLink, ids: Vec<i64>, add: bool) -> Change {
    if add {
        Change::CatalogLinked { entry, pk, link, added: ids }
    } else {
        Change::CatalogUnlinked { entry, pk, link, removed: ids }
    }
}

/// A route decision as the route check and forward-auth answer it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct RouteCheckOut {
    /// Whether the user may call the route.
    pub allowed: bool,
    /// The lowest-keyed matching BE permission the user holds; null when denied (or when no BE permission matches
    /// for a superuser).
    pub be_permission: Option<i64>,
}

/// May `user` call `method` on the normalised `path`? An inactive user may not; a superuser may; others need a
/// matching BE permission. With a credential narrowed by scopes (`caller` asking about itself), the permission's
/// namespace and method must also be within them.
pub fn route_decision(state: &AppState, caller: &Principal, user: i64, method: &str, path: &str) -> RouteDecision {
    let flags = if user == caller.user.pk {
        Some((caller.user.is_active, caller.user.is_superuser))
    } else {
        state.engine.snapshot().index.user_flags(user)
    };
    let Some((true, superuser)) = flags else { return RouteDecision { allowed: false, be_permission: None } };
    state.catalog.with(|catalog| {
        let decision = catalog.route(user, superuser, method, path);
        let Some(scopes) = caller.scopes().filter(|_| user == caller.user.pk) else { return decision };
        let action = Action::for_method(&method.to_ascii_uppercase());
        let in_scope =
            decision.be_permission.and_then(|pk| catalog.be.get(&pk)).and_then(|b| catalog.namespaces.get(&b.namespace));
        match in_scope {
            Some(ns) if scopes.allows_named(&ns.name, action.as_str()) => decision,
            _ => RouteDecision { allowed: false, be_permission: None },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_anchored_expressions() {
        assert_eq!(template_to_path("/api/v1/users/"), "api/v1/users/$");
        assert_eq!(template_to_path("/api/v1/users/{pk}/groups/{group_pk}/"), "api/v1/users/[^/]+/groups/[^/]+/$");
        let path = template_to_path("/api/v1/users/{pk}/");
        let re = castellan_core::routes::compile_path(&path).unwrap();
        assert!(re.is_match("api/v1/users/12/"));
        assert!(!re.is_match("api/v1/users/12/groups/"));
    }

    #[test]
    fn every_guarded_route_is_published_with_its_module() {
        let routes = published_routes(&crate::openapi::openapi());
        let find =
            |ns: &str, action: &str, path: &str| routes.iter().any(|r| r.namespace == ns && r.action == action && r.path == path);
        assert!(find("users", "get", "api/v1/users/$"));
        assert!(find("users", "delete", "api/v1/users/[^/]+/$"));
        assert!(find("groups", "patch", "api/v1/groups/[^/]+/assign-users/$"));
        // Routes that need only authentication carry no permission to publish.
        assert!(!routes.iter().any(|r| r.path.starts_with("api/v1/active_user/")));
        let tree = admin_tree(&routes);
        assert!(tree.iter().any(|n| n.path == ["users", "add"] && n.be == [("users".to_string(), "post".to_string())]));
    }
}
