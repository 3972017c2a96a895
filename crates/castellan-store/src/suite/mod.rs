//! The shared store test suite: each test is written once against `&dyn Store` and run on every backend.
//!
//! A backend's test file is one line, `castellan_store::store_suite!(fresh());`, where `fresh()` is a future yielding a
//! migrated, empty store (or a `(store, guard)` pair whose guard, such as a temporary directory, must outlive the store).
//! The calling crate needs `tokio` (with `macros` and `rt`) as a dependency, because the expansion uses `#[tokio::test]`.
//!
//! Every function listed in `store_suite!` must be re-exported here; a new test is added in both places.

mod audit;
mod catalog;
mod changes;
mod credentials;
mod data;
mod engine;
mod groups;
mod list;
mod orgs;
mod users;

use std::fmt::Debug;

use castellan_core::model::{NewUser, Org, User, UserChanges};

use crate::{ChangeEntry, Result, Revision, Store, StoreError, WriteCtx};

pub use audit::{audit_filters_and_org, audit_ordering_and_paging, audit_since_until_bounds};
pub use catalog::{
    catalog_writes_log_what_they_change, object_groups_are_grants_of_their_group, publishing_is_idempotent,
    the_log_replays_to_the_stored_catalog,
};
pub use changes::{
    audit_does_not_advance_revision, changes_pages_oldest_first, concurrent_writes_get_distinct_revisions, migrate_is_idempotent,
    server_key_keeps_first_candidate, writes_advance_revision_and_log_once,
};
pub use credentials::{
    end_credentials_keeps_the_kept_session, sessions_create_find_list_delete, sessions_do_not_advance_revision,
    tokens_create_find_list_delete,
};
pub use data::{user_data_limit_refuses_and_changes_nothing, user_data_put_get_delete};
pub use engine::{dry_runs_preview_what_the_write_does, index_follows_the_change_log};
pub use groups::{
    conferred_by_includes_ancestors, expirations_are_recorded_once, group_cycles_are_refused, group_delete_children_and_cascade,
    group_move_updates_closure, group_search_matches_names_and_descriptions, groups_create_with_parents_and_sibling_names,
    index_holds_the_facts_of_any_scope, memberships_add_remove_and_expiry, restrictions_exclude_permissions,
    visible_to_filters_groups_and_users,
};
pub use list::{
    deep_offsets_page_like_the_whole_list, deep_pages_stay_exact_through_writes, get_users_ascending_skips_unknown,
    list_users_counts_follow_writes, list_users_filters, list_users_keyset_pages, list_users_ordering, list_users_paging,
    list_users_search, list_users_search_follows_updates, list_users_search_unicode_and_syntax,
    short_searches_count_each_match_once,
};
pub use orgs::{
    objects_create_find_delete, org_create_and_lookup, org_duplicate_slug_conflicts, org_list_update_delete,
    password_policy_default_and_set,
};
pub use users::{
    avatar_set_get_clear, change_log_holds_no_secrets, delete_user_removes_everything, password_history_newest_first,
    set_last_login_is_audit_only, unknown_groups_are_refused, unknown_org_is_refused, update_user_partial, user_round_trip,
    user_without_password, username_unique_case_insensitive,
};

/// What a backend's constructor yields: a store, or a `(store, guard)` pair whose guard must live as long as the store.
pub trait Fixture {
    /// The store under test.
    fn store(&self) -> &dyn Store;
}

impl<S: Store> Fixture for S {
    fn store(&self) -> &dyn Store {
        self
    }
}

impl<S: Store, G> Fixture for (S, G) {
    fn store(&self) -> &dyn Store {
        &self.0
    }
}

/// Expands to one `#[tokio::test]` per suite test, each on a fresh store from the given future.
///
/// `store_suite!(fresh())` evaluates `fresh().await` at the start of every test; the result implements
/// [`suite::Fixture`](crate::suite::Fixture).
#[macro_export]
macro_rules! store_suite {
    ($fresh:expr $(,)?) => {
        $crate::store_suite!(@tests $fresh;
            migrate_is_idempotent,
            org_create_and_lookup,
            index_holds_the_facts_of_any_scope,
            index_follows_the_change_log,
            dry_runs_preview_what_the_write_does,
            org_duplicate_slug_conflicts,
            user_round_trip,
            user_without_password,
            username_unique_case_insensitive,
            unknown_org_is_refused,
            unknown_groups_are_refused,
            update_user_partial,
            password_history_newest_first,
            change_log_holds_no_secrets,
            delete_user_removes_everything,
            avatar_set_get_clear,
            set_last_login_is_audit_only,
            writes_advance_revision_and_log_once,
            concurrent_writes_get_distinct_revisions,
            audit_does_not_advance_revision,
            changes_pages_oldest_first,
            audit_filters_and_org,
            audit_since_until_bounds,
            audit_ordering_and_paging,
            server_key_keeps_first_candidate,
            get_users_ascending_skips_unknown,
            list_users_filters,
            list_users_search,
            list_users_search_follows_updates,
            list_users_search_unicode_and_syntax,
            list_users_ordering,
            list_users_paging,
            list_users_counts_follow_writes,
            list_users_keyset_pages,
            deep_offsets_page_like_the_whole_list,
            deep_pages_stay_exact_through_writes,
            short_searches_count_each_match_once,
            expirations_are_recorded_once,
            sessions_create_find_list_delete,
            sessions_do_not_advance_revision,
            end_credentials_keeps_the_kept_session,
            tokens_create_find_list_delete,
            user_data_put_get_delete,
            user_data_limit_refuses_and_changes_nothing,
            groups_create_with_parents_and_sibling_names,
            group_search_matches_names_and_descriptions,
            group_move_updates_closure,
            group_cycles_are_refused,
            group_delete_children_and_cascade,
            memberships_add_remove_and_expiry,
            restrictions_exclude_permissions,
            conferred_by_includes_ancestors,
            visible_to_filters_groups_and_users,
            org_list_update_delete,
            password_policy_default_and_set,
            objects_create_find_delete,
            catalog_writes_log_what_they_change,
            object_groups_are_grants_of_their_group,
            publishing_is_idempotent,
            the_log_replays_to_the_stored_catalog,
        );
    };
    (@tests $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $name() {
                let fixture = $fresh.await;
                $crate::suite::$name($crate::suite::Fixture::store(&fixture)).await;
            }
        )*
    };
}

/// The write context every suite write uses, so change-log rows can be checked against it.
fn ctx() -> WriteCtx {
    WriteCtx {
        actor: Some((1, "suite-admin".to_string())),
        ip: Some("192.0.2.10".to_string()),
        request_id: Some("req-suite-1".to_string()),
    }
}

/// Plans an update of group `pk` as a handler does (its fields as stored now, `edit`ed) and applies it; answers the
/// group as stored after it, with the revision.
async fn update_group(
    store: &dyn Store,
    ctx: &WriteCtx,
    pk: i64,
    edit: impl FnOnce(&mut castellan_core::change::GroupRecord),
) -> Result<(crate::Group, Revision)> {
    let before = store.get_group(pk).await?.record();
    let mut after = before.clone();
    edit(&mut after);
    let revision = store.apply(ctx, vec![castellan_core::change::Change::GroupUpdated { pk, before, after }]).await?;
    Ok((store.get_group(pk).await?, revision))
}

/// A token to store, carrying all of its owner's holdings.
fn new_token(
    name: &str,
    prefix: &str,
    secret_hash: &[u8],
    expires_at: Option<time::OffsetDateTime>,
) -> castellan_core::model::NewToken {
    castellan_core::model::NewToken {
        name: name.to_string(),
        prefix: prefix.to_string(),
        secret_hash: secret_hash.to_vec(),
        expires_at,
        permissions: None,
    }
}

/// A password hash unique to `username`, shaped like a real argon2id PHC string.
fn hash_for(username: &str, n: u32) -> String {
    format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${username}HASHSECRET{n}")
}

/// A new active, unprivileged user of `org` with a password and no groups.
pub fn new_user(org: i64, username: &str) -> NewUser {
    NewUser {
        username: username.to_string(),
        password_hash: Some(hash_for(username, 0)),
        email: format!("{}@example.test", username.to_lowercase()),
        first_name: String::new(),
        last_name: String::new(),
        description: String::new(),
        is_active: true,
        is_staff: false,
        is_superuser: false,
        org,
        groups: Vec::new(),
    }
}

/// Creates an organisation with the given slug.
async fn make_org(store: &dyn Store, slug: &str) -> Org {
    store.create_org(&ctx(), &format!("Org {slug}"), slug, "").await.unwrap().0
}

/// Creates a user from `new`.
async fn make_user(store: &dyn Store, new: NewUser) -> User {
    store.create_user(&ctx(), new).await.unwrap().0
}

/// Stores or clears a user's avatar (an `update_user` with only the avatar changed).
async fn set_avatar(store: &dyn Store, pk: i64, image: Option<(String, Vec<u8>)>) -> Result<Revision> {
    let changes = UserChanges { avatar: Some(image), ..Default::default() };
    store.update_user(&ctx(), pk, changes).await.map(|(_, revision)| revision)
}

/// Where the revision and the change log stand before a write.
#[derive(Debug, Clone, Copy)]
struct Mark {
    revision: Revision,
    log_pk: i64,
}

/// Every change-log row after `after_pk`.
async fn changes_after(store: &dyn Store, after_pk: i64) -> Vec<ChangeEntry> {
    let mut rows: Vec<ChangeEntry> = Vec::new();
    loop {
        let after = rows.last().map_or(after_pk, |row| row.pk);
        let more = store.changes(after, i64::MAX).await.unwrap();
        if more.is_empty() {
            return rows;
        }
        rows.extend(more);
    }
}

/// Takes a [`Mark`].
async fn mark(store: &dyn Store) -> Mark {
    let revision = store.revision().await.unwrap();
    let log_pk = changes_after(store, 0).await.last().map_or(0, |c| c.pk);
    Mark { revision, log_pk }
}

/// Asserts a write advanced the revision by exactly one, returned it, and logged exactly one row with the suite's context.
async fn expect_one_change(store: &dyn Store, before: Mark, returned: Revision) -> ChangeEntry {
    let revision = store.revision().await.unwrap();
    assert_eq!(revision, before.revision + 1, "a write advances the revision by exactly one");
    assert_eq!(returned, revision, "a write returns the revision it produced");
    let mut rows = changes_after(store, before.log_pk).await;
    assert_eq!(rows.len(), 1, "a write appends exactly one change-log row: {rows:#?}");
    let row = rows.remove(0);
    let ctx = ctx();
    assert_eq!(row.revision, Some(revision));
    assert_eq!(row.actor, ctx.actor);
    assert_eq!(row.ip, ctx.ip);
    assert_eq!(row.request_id, ctx.request_id);
    row
}

/// Asserts nothing advanced the revision or reached the change log since `before`.
async fn expect_no_change(store: &dyn Store, before: Mark) {
    assert_eq!(store.revision().await.unwrap(), before.revision, "revision must not move");
    let rows = changes_after(store, before.log_pk).await;
    assert!(rows.is_empty(), "no change-log row expected: {rows:#?}");
}

/// Asserts `result` is `Conflict` on `constraint`.
#[track_caller]
fn assert_conflict<T: Debug>(result: Result<T>, constraint: &str) {
    match result {
        Err(StoreError::Conflict { constraint: c }) if c == constraint => {}
        other => panic!("expected Conflict {{ constraint: {constraint:?} }}, got {other:?}"),
    }
}

/// Asserts `result` is a `Conflict` on any constraint.
#[track_caller]
fn assert_any_conflict<T: Debug>(result: Result<T>) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// Asserts `result` is `NotFound`.
#[track_caller]
fn assert_not_found<T: Debug>(result: Result<T>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// The usernames of `users`, in order.
fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}
