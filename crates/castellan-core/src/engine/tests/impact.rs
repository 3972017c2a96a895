//! What a change makes each user gain and lose, and what membership of groups confers.

use super::*;

/// `(permission, object key, users)` of impact entries, for compact assertions.
fn listed(entries: &[ImpactEntry]) -> Vec<(&str, Option<&str>, Vec<i64>)> {
    entries.iter().map(|e| (e.permission.as_str(), e.object.as_ref().map(|o| o.1.as_str()), e.users.clone())).collect()
}

fn impact_of(before: &Facts, after: &Facts, users: &[i64], probes: &[ObjectKey]) -> Impact {
    impact(&Index::build(before), &Index::build(after), users, probes, NOW)
}

#[test]
fn impact_lists_what_a_membership_brings_without_implied_access() {
    let mut before = base();
    before.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::Group(10), expires_at: None });
    before.grants.push(grant(SubjectFact::Role(7), "catalogs", "read", None));
    before.grants.push(grant(SubjectFact::Group(11), "products", "update", Some(("catalogs", "9"))));
    before.memberships.push(member(2, 10));
    let mut after = before.clone();
    after.memberships.push(member(1, 12));
    let got = impact_of(&before, &after, &[1, 2], &[]);
    assert_eq!(listed(&got.gained), vec![("catalogs.read", None, vec![1]), ("products.update", Some("9"), vec![1])]);
    assert!(got.lost.is_empty());
    assert_eq!(got.users_affected, 1, "user 2 held the same before and after");
    let back = impact_of(&after, &before, &[1, 2], &[]);
    assert_eq!(back.gained, Vec::new());
    assert_eq!(listed(&back.lost), vec![("catalogs.read", None, vec![1]), ("products.update", Some("9"), vec![1])]);
    assert_eq!(impact_of(&before, &before, &[1, 2, 3, 4], &[]), Impact::default());
}

#[test]
fn impact_collapses_a_gained_full_and_spells_out_a_lost_one() {
    let mut before = base();
    before.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None));
    let mut after = before.clone();
    after.grants.push(grant(SubjectFact::User(1), "catalogs", "full", None));
    let got = impact_of(&before, &after, &[1], &[]);
    assert_eq!(listed(&got.gained), vec![("catalogs.full", None, vec![1])]);
    let back = impact_of(&after, &before, &[1], &[]);
    let lost: Vec<_> = listed(&back.lost).into_iter().map(|e| e.0).collect();
    assert_eq!(lost, vec!["catalogs.create", "catalogs.delete", "catalogs.full", "catalogs.reset_password", "catalogs.update"]);
}

#[test]
fn impact_lists_access_only_when_it_is_all_that_changes() {
    let before = base();
    let mut after = before.clone();
    after.grants.push(grant(SubjectFact::User(1), "catalogs", "access", None));
    assert_eq!(listed(&impact_of(&before, &after, &[1], &[]).gained), vec![("catalogs.access", None, vec![1])]);
    let mut read = before.clone();
    read.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None));
    assert_eq!(
        impact_of(
            &read,
            &{
                let mut f = read.clone();
                f.grants.push(grant(SubjectFact::User(1), "catalogs", "access", None));
                f
            },
            &[1],
            &[]
        ),
        Impact::default(),
        "access was implied by read already"
    );
}

#[test]
fn impact_probes_an_object_moved_under_a_granted_parent() {
    let mut before = base();
    before.grants.push(grant(SubjectFact::User(1), "products", "read", Some(("catalogs", "9"))));
    let mut after = before.clone();
    after.objects.iter_mut().find(|o| o.key.1 == "43").unwrap().parent = Some(("catalogs".into(), "9".into()));
    let probe = ("products".to_string(), "43".to_string());
    let got = impact_of(&before, &after, &[1, 2], std::slice::from_ref(&probe));
    assert_eq!(listed(&got.gained), vec![("products.read", Some("43"), vec![1])]);
    assert_eq!(got.users_affected, 1);
}

#[test]
fn impact_of_deactivation_and_superuser() {
    let mut before = base();
    before.grants.push(grant(SubjectFact::User(1), "catalogs", "update", None));
    let mut after = before.clone();
    after.users[0].is_active = false;
    let got = impact_of(&before, &after, &[1], &[]);
    assert_eq!(listed(&got.lost), vec![("catalogs.update", None, vec![1])]);
    let mut promoted = before.clone();
    promoted.users[1].is_superuser = true;
    let got = impact_of(&before, &promoted, &[2], &[]);
    assert!(got.gained.iter().any(|e| e.permission == "users.full" && e.object.is_none()));
    assert!(got.gained.iter().all(|e| !e.permission.starts_with("brands.")), "inactive modules grant nothing");
}

#[test]
fn impact_does_not_repeat_a_global_change_on_objects() {
    let mut before = base();
    before.grants.push(grant(SubjectFact::User(1), "catalogs", "read", Some(("catalogs", "9"))));
    let mut after = before.clone();
    after.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None));
    let probes = [("catalogs".to_string(), "9".to_string()), ("roles".to_string(), "1".to_string())];
    let got = impact_of(&before, &after, &[1], &probes);
    assert_eq!(listed(&got.gained), vec![("catalogs.read", None, vec![1])], "object 9 held read already; roles:1 is no object");
    assert!(got.lost.is_empty(), "read on object 9 is still held: {got:?}");
    let back = impact_of(&after, &before, &[1], &probes);
    assert_eq!(listed(&back.lost), vec![("catalogs.read", None, vec![1])]);
}

#[test]
fn impact_over_many_users_equals_the_impact_of_each_user_alone() {
    use std::collections::BTreeMap;

    use super::synthetic::{Spec, generate};
    let spec = Spec {
        users: 2_000,
        roots: 2,
        fanout: 4,
        depth: 3,
        memberships_per_user: 2,
        modules: 4,
        objects: 300,
        object_grants: 3_000,
    };
    let before = generate(spec);
    let mut after = before.clone();
    // Move the second root's first child under the first root, and drop every tenth membership.
    let moved = after.groups.iter().position(|g| g.2 == Some(2)).expect("a child of group 2");
    after.groups[moved].2 = Some(1);
    let mut n = 0;
    after.memberships.retain(|_| {
        n += 1;
        n % 10 != 0
    });
    let users: Vec<i64> = (1..=spec.users as i64).collect();
    let (b, a) = (Index::build(&before), Index::build(&after));
    let together = impact(&b, &a, &users, &[], NOW);
    assert!(together.users_affected > 300, "the parallel path is taken ({} affected)", together.users_affected);
    let mut gained: BTreeMap<(String, Option<ObjectKey>), Vec<i64>> = BTreeMap::new();
    let mut lost: BTreeMap<(String, Option<ObjectKey>), Vec<i64>> = BTreeMap::new();
    let mut affected = 0;
    for &user in &users {
        let alone = impact(&b, &a, &[user], &[], NOW);
        affected += alone.users_affected;
        for (side, entries) in [(&mut gained, alone.gained), (&mut lost, alone.lost)] {
            for e in entries {
                side.entry((e.permission, e.object)).or_default().extend(e.users);
            }
        }
    }
    let listed = |m: BTreeMap<(String, Option<ObjectKey>), Vec<i64>>| {
        m.into_iter().map(|((permission, object), users)| ImpactEntry { permission, object, users }).collect::<Vec<_>>()
    };
    assert_eq!(together, Impact { gained: listed(gained), lost: listed(lost), users_affected: affected });
}

#[test]
fn conferred_by_groups_ancestors_and_their_roles() {
    let mut f = base();
    f.grants.push(grant(SubjectFact::Group(10), "catalogs", "read", None));
    f.grants.push(grant(SubjectFact::Group(12), "users", "update", None));
    f.grants.push(grant(SubjectFact::Group(11), "products", "read", Some(("products", "42"))));
    f.grants.push(grant(SubjectFact::Role(7), "nodes", "create", None));
    f.grants.push(grant(SubjectFact::Group(13), "brands", "read", None));
    f.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::Group(11), expires_at: None });
    let ix = Index::build(&f);
    let names = |groups: &[i64]| ix.conferred_by(groups, NOW).pairs().map(|(m, a)| format!("{m}.{a}")).collect::<Vec<_>>();
    assert_eq!(names(&[12]), ["catalogs.read", "nodes.create", "users.update"], "itself, ancestors, their roles");
    assert_eq!(names(&[11]), ["catalogs.read", "nodes.create"], "nothing from below, no object grants");
    assert_eq!(names(&[13]), ["brands.read", "catalogs.read"], "an inactive module still counts");
    assert!(names(&[999]).is_empty() && names(&[]).is_empty());
    let mut expired = f.clone();
    expired.role_assignments[0].expires_at = Some(NOW);
    assert_eq!(Index::build(&expired).conferred_by(&[11], NOW).pairs().count(), 1, "an expired role confers nothing");
    let role = ix.granted_to(SubjectFact::Role(7), NOW);
    assert_eq!(role.pairs().collect::<Vec<_>>(), [("nodes", "create")], "a role's own grants");
    assert!(ix.granted_to(SubjectFact::Group(11), NOW).is_empty(), "its object grant is not global, nothing inherited");
    assert!(ix.granted_to(SubjectFact::Role(99), NOW).is_empty());
}

#[test]
fn impact_compares_actions_by_name_when_a_module_changes_its_actions() {
    let mut before = base();
    before.grants.push(grant(SubjectFact::User(1), "products", "full", None));
    before.grants.push(grant(SubjectFact::User(2), "products", "read", None));
    let mut after = before.clone();
    let products = after.modules.iter_mut().find(|m| m.id == "products").unwrap();
    products.custom_actions = vec!["approve".into(), "reset_password".into()];
    let got = impact_of(&before, &after, &[1, 2], &[]);
    assert_eq!(listed(&got.gained), vec![("products.approve", None, vec![1])], "full now covers one more action");
    assert!(got.lost.is_empty(), "{:?}", got.lost);
    assert_eq!(got.users_affected, 1);
    let back = impact_of(&after, &before, &[1, 2], &[]);
    assert_eq!(listed(&back.lost), vec![("products.approve", None, vec![1])]);
}

#[test]
fn impact_of_a_full_module_swapping_a_custom_action_names_both() {
    // Catalogs with every one of its 64 actions taken: replacing one custom action makes 65 between both sides.
    let customs = |last: &str| -> Vec<String> {
        let standard = crate::permission::Action::ALL.len();
        (0..super::super::index::MAX_ACTIONS - standard - 1).map(|i| format!("a{i}")).chain([last.to_string()]).collect()
    };
    let mut before = base();
    before.modules[0].custom_actions = customs("old");
    before.grants.push(grant(SubjectFact::User(1), "catalogs", "full", None));
    let mut after = before.clone();
    after.modules[0].custom_actions = customs("new");
    let got = impact_of(&before, &after, &[1], &[]);
    assert_eq!(listed(&got.gained), vec![("catalogs.new", None, vec![1])]);
    assert_eq!(listed(&got.lost), vec![("catalogs.old", None, vec![1])]);
}
