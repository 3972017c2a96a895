//! The audit log (API.md §6, §8 "Grant history", §10, §11): the change log as a filtered, paged list. Non-superusers
//! see only their organisation's entries; secrets never appear in `changes`.

use axum::extract::State;
use castellan_core::error::Errors;
use castellan_core::permission::valid_module_id;
use castellan_store::{ChangeOrder, ChangeQuery};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::guarded;
use crate::auth::principal::Principal;
use crate::error::{ApiError, ApiResult};
use crate::links::{Envelope, ListQuery, Window};
use crate::repr::AuditEntryOut;
use crate::state::AppState;

/// Every `action` an audit entry can have (§10).
pub const ACTIONS: [&str; 10] =
    ["create", "update", "delete", "assign", "unassign", "expire", "login", "logout", "login_failed", "password_change"];

/// Most values one filter may list.
pub const FILTER_VALUES_MAX: usize = 1000;

/// Longest `target_pk` or object key accepted in a filter.
const KEY_MAX: usize = 255;

/// Routes of module `audit`.
pub fn router() -> OpenApiRouter<AppState> {
    guarded("audit", None, OpenApiRouter::new().routes(routes!(list_audit)))
}

/// An RFC 3339 instant; an unencoded `+` of the offset arrives as a space and is taken back as `+`.
fn parse_instant(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    OffsetDateTime::parse(raw, &Rfc3339).ok().or_else(|| {
        let split = raw.len().checked_sub(6)?;
        let (head, offset) = (raw.get(..split)?, raw.get(split..)?);
        let offset = offset.strip_prefix(' ')?;
        OffsetDateTime::parse(&format!("{head}+{offset}"), &Rfc3339).ok()
    })
}

/// `user:5`, `group:3` or `role:7` (plural spellings too) as (target_type, target_pk).
fn parse_subject(raw: &str) -> Option<(String, String)> {
    let (kind, pk) = raw.trim().split_once(':')?;
    let kind = match kind.trim() {
        "user" | "users" => "users",
        "group" | "groups" => "groups",
        "role" | "roles" => "roles",
        _ => return None,
    };
    let pk: i64 = pk.trim().parse().ok()?;
    Some((kind.to_string(), pk.to_string()))
}

/// `catalogs:42` as (target_type, target_pk); the key is everything after the first `:`.
fn parse_object(raw: &str) -> Option<(String, String)> {
    let (model, pk) = raw.trim().split_once(':')?;
    (valid_module_id(model) && !pk.is_empty() && pk.len() <= KEY_MAX).then(|| (model.to_string(), pk.to_string()))
}

/// Non-empty values of a filter, comma-separated values split when `split`; repeated values given once.
fn values(q: &ListQuery, name: &str, split: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in q.all(&[name]) {
        let parts: Vec<&str> = if split { raw.split(',').collect() } else { vec![raw] };
        for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            if !out.iter().any(|v| v == part) {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// The values of a filter, or an error naming it when there are too many.
fn bounded(errors: &mut Errors, name: &str, values: Vec<String>) -> Vec<String> {
    if values.len() > FILTER_VALUES_MAX {
        errors.add(name, format!("At most {FILTER_VALUES_MAX} values are allowed."));
        return Vec::new();
    }
    values
}

/// Parses each value with `parse`, naming the filter in the error with `expected` for the first bad value.
fn parsed<T>(errors: &mut Errors, name: &str, values: Vec<String>, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let mut out = Vec::new();
    for v in bounded(errors, name, values) {
        match parse(&v) {
            Some(t) => out.push(t),
            None => {
                errors.add(name, expected.to_string());
                return Vec::new();
            }
        }
    }
    out
}

/// One time bound, or an error naming it.
fn instant(errors: &mut Errors, q: &ListQuery, name: &str) -> Option<OffsetDateTime> {
    let raw = q.one(&[name]).map(str::trim).filter(|r| !r.is_empty())?;
    let parsed = parse_instant(raw);
    if parsed.is_none() {
        errors.add(name, "Enter an RFC 3339 date and time with an offset, e.g. 2022-12-21T10:32:51.707174Z.");
    }
    parsed
}

/// Reads the audit list's filters, ordering and window, reporting every bad parameter at once.
fn audit_query(q: &ListQuery) -> ApiResult<(ChangeQuery, Window)> {
    let mut errors = Errors::new();
    let actors = parsed(&mut errors, "actor", values(q, "actor", true), "Enter a whole number.", |v| v.parse::<i64>().ok());
    let target_types = parsed(&mut errors, "target_type", values(q, "target_type", true), "Enter a module id.", |v| {
        valid_module_id(v).then(|| v.to_string())
    });
    let target_pks =
        parsed(&mut errors, "target_pk", values(q, "target_pk", false), "Enter a key of at most 255 characters.", |v| {
            (v.len() <= KEY_MAX).then(|| v.to_string())
        });
    let expected_action = format!("Must be one of {}.", ACTIONS.join(", "));
    let actions = parsed(&mut errors, "action", values(q, "action", true), &expected_action, |v| {
        ACTIONS.contains(&v).then(|| v.to_string())
    });
    let since = instant(&mut errors, q, "since");
    let until = instant(&mut errors, q, "until");
    let subjects =
        parsed(&mut errors, "subject", values(q, "subject", true), "Expected user:<pk>, group:<pk> or role:<pk>.", parse_subject);
    let objects = parsed(
        &mut errors,
        "object",
        values(q, "object", false),
        "Expected <module>:<object_pk>, e.g. catalogs:42.",
        parse_object,
    );
    let mut ordering = Vec::new();
    match q.ordering() {
        Ok(keys) => {
            for (name, desc) in keys {
                match ChangeOrder::parse(&name) {
                    Some(key) => ordering.push((key, desc)),
                    None => {
                        errors.add("ordering", format!("Cannot order by '{name}'; use at, pk or revision."));
                        break;
                    }
                }
            }
        }
        Err(ApiError::Validation(e)) => e.into_iter().for_each(|e| errors.add(e.field, e.message)),
        Err(other) => return Err(other),
    }
    let window = match q.window() {
        Ok(w) => Some(w),
        Err(ApiError::Validation(e)) => {
            e.into_iter().for_each(|e| errors.add(e.field, e.message));
            None
        }
        Err(other) => {
            errors.finish()?;
            return Err(other);
        }
    };
    errors.finish()?;
    let window = window.ok_or(ApiError::NotFound)?;
    let query = ChangeQuery {
        actors,
        target_types,
        target_pks,
        actions,
        since,
        until,
        subjects,
        objects,
        org: None,
        after: None,
        ordering,
        offset: window.offset,
        limit: window.limit,
    };
    Ok((query, window))
}

/// List audit entries, newest first. Non-superusers see only entries made by members of their organisation.
#[utoipa::path(get, path = "/api/v1/audit/", tag = "audit",
    params(("actor" = Option<i64>, Query, description = "Actor user key; repeat for any of several"),
        ("target_type" = Option<String>, Query, description = "Target module id"),
        ("target_pk" = Option<String>, Query, description = "Target key"),
        ("action" = Option<String>, Query, description = "create, update, delete, assign, unassign, expire, login, logout, login_failed, password_change"),
        ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("until" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("subject" = Option<String>, Query, description = "Entries about a subject: `user:5`, `group:3` or `role:7`"),
        ("object" = Option<String>, Query, description = "Entries about an object: `catalogs:42`"),
        ("ordering" = Option<String>, Query, description = "at, pk or revision, `-` for descending (default `-pk`)"),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<AuditEntryOut>), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn list_audit(
    State(state): State<AppState>,
    caller: Principal,
    q: ListQuery,
) -> ApiResult<axum::Json<Envelope<AuditEntryOut>>> {
    let (mut query, window) = audit_query(&q)?;
    query.org = caller.org_scope();
    let page = state.store.list_changes(&query).await?;
    q.check_page(window, page.count)?;
    Ok(axum::Json(q.envelope(window, page.count, page.items.into_iter().map(AuditEntryOut::from).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repr::timestamp;

    #[test]
    fn instants() {
        let t = parse_instant("2022-12-21T10:32:51.707174Z").unwrap();
        assert_eq!(timestamp(t), "2022-12-21T10:32:51.707174Z");
        let t = parse_instant("2022-12-21T11:32:51+01:00").unwrap();
        assert_eq!(timestamp(t), "2022-12-21T10:32:51.000000Z");
        let t = parse_instant("2022-12-21T11:32:51 01:00").unwrap();
        assert_eq!(timestamp(t), "2022-12-21T10:32:51.000000Z");
        for bad in ["", "yesterday", "2022-12-21", "2022-12-21T10:32:51", "2022-13-01T00:00:00Z", "2022-12-21T10:32:51 Z"] {
            assert!(parse_instant(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn subjects_and_objects() {
        assert_eq!(parse_subject("user:5"), Some(("users".into(), "5".into())));
        assert_eq!(parse_subject("groups:03"), Some(("groups".into(), "3".into())));
        assert_eq!(parse_subject("role:7"), Some(("roles".into(), "7".into())));
        for bad in ["user", "user:", "user:x", "catalog:1", ":5", "user:5:6"] {
            assert_eq!(parse_subject(bad), None, "{bad}");
        }
        assert_eq!(parse_object("catalogs:42"), Some(("catalogs".into(), "42".into())));
        assert_eq!(parse_object("user_data:5:theme"), Some(("user_data".into(), "5:theme".into())));
        for bad in ["catalogs", "catalogs:", ":42", "Catalogs:42", "cat alogs:1"] {
            assert_eq!(parse_object(bad), None, "{bad}");
        }
    }
}
