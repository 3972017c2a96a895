//! What a change-log row touched, for followers of the log that patch an authorization index instead of rebuilding
//! it. Being generous is safe (refreshing something unchanged costs a little time); missing something is not, so
//! anything unrecognised that could matter asks for a rebuild.

use castellan_core::engine::Scope;
use serde_json::Value;

use crate::ChangeEntry;

/// Whether `entry` is a membership write of a group (members assigned or unassigned, or one member's node
/// restriction): it changes those members' facts, not the group's.
pub fn is_membership_change(entry: &ChangeEntry) -> bool {
    entry.target_type == "groups"
        && (matches!(entry.action.as_str(), "assign" | "unassign") || entry.changes.get("user").is_some())
}

/// The scope to refresh after `entry`, or `None` when only a rebuild will do (a module changed).
pub fn engine_scope(entry: &ChangeEntry) -> Option<Scope> {
    let mut scope = Scope::default();
    // Audit-only rows change nothing, and expiries need no refresh: checks compare the clock themselves.
    if entry.revision.is_none() || entry.action == "expire" {
        return Some(scope);
    }
    let changes = &entry.changes;
    let pk = entry.target_pk.parse::<i64>().ok();
    match entry.target_type.as_str() {
        "modules" => return None,
        "orgs" | "tokens" | "sessions" => return Some(scope),
        "users" => scope.users.extend(pk),
        "groups" => {
            if !is_membership_change(entry) {
                scope.groups.extend(pk);
            }
            scope.groups.extend(numbers(&changes["deleted"]));
            scope.users.extend(changes["user"].as_i64());
            scope.users.extend(changes["members"].as_array().into_iter().flatten().filter_map(|m| m["user"].as_i64()));
        }
        "roles" => scope.roles.extend(pk),
        _ => {}
    }
    if let Some((kind, pk)) = changes["subject"].as_str().and_then(|s| s.split_once(':')) {
        let Ok(pk) = pk.parse::<i64>() else { return None };
        match kind {
            "user" => scope.users.insert(pk),
            "group" => scope.groups.insert(pk),
            "role" => scope.roles.insert(pk),
            _ => return None,
        };
    } else if matches!(entry.action.as_str(), "create" | "delete") {
        // Registering or unregistering an object; its module may share a name with a directory table, so this is
        // added beside whatever the match above found.
        scope.objects.insert((entry.target_type.clone(), entry.target_pk.clone()));
    }
    Some(scope)
}

fn numbers(value: &Value) -> impl Iterator<Item = i64> + '_ {
    value.as_array().into_iter().flatten().filter_map(Value::as_i64)
}
