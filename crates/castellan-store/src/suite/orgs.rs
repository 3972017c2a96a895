//! Organisations: create, look up by key and slug, unique slugs.

use time::{Duration, OffsetDateTime};

use super::{assert_conflict, assert_not_found, ctx, expect_no_change, expect_one_change, mark};
use crate::Store;

/// `create_org` returns the stored row; `get_org` and `org_by_slug` find it; unknown keys are `NotFound`.
pub async fn org_create_and_lookup(store: &dyn Store) {
    let before = mark(store).await;
    let (org, revision) = store.create_org(&ctx(), "Acme Inc.", "acme", "Makes everything").await.unwrap();
    let row = expect_one_change(store, before, revision).await;
    assert_eq!((row.action.as_str(), row.target_type.as_str()), ("create", "orgs"));
    assert_eq!(row.target_pk, org.pk.to_string());
    assert_eq!(row.changes["after"]["slug"], "acme");
    assert_eq!(row.changes["after"]["name"], "Acme Inc.");

    assert_eq!(org.name, "Acme Inc.");
    assert_eq!(org.slug, "acme");
    assert_eq!(org.description, "Makes everything");
    assert_eq!(org.created_date, org.modified_date);
    let now = OffsetDateTime::now_utc();
    assert!((now - org.created_date).abs() < Duration::minutes(1), "created_date {} is not now", org.created_date);

    assert_eq!(store.get_org(org.pk).await.unwrap(), org);
    assert_eq!(store.org_by_slug("acme").await.unwrap(), org);

    let other = store.create_org(&ctx(), "Globex", "globex", "").await.unwrap().0;
    assert_ne!(other.pk, org.pk);
    assert_eq!(store.org_by_slug("globex").await.unwrap(), other);
    assert_eq!(store.get_org(org.pk).await.unwrap(), org);

    assert_not_found(store.get_org(other.pk + 1000).await);
    assert_not_found(store.org_by_slug("initech").await);
}

/// A second org with a taken slug is `Conflict{slug}` and changes nothing.
pub async fn org_duplicate_slug_conflicts(store: &dyn Store) {
    let org = store.create_org(&ctx(), "Acme", "acme", "").await.unwrap().0;
    let before = mark(store).await;
    assert_conflict(store.create_org(&ctx(), "Acme again", "acme", "other").await, "slug");
    expect_no_change(store, before).await;
    assert_eq!(store.org_by_slug("acme").await.unwrap(), org);
}
