//! The engine's semantic suite (table-driven), property tests against a deliberately naive evaluator ([`props`]) and
//! the impact of changes ([`impact`]).

use proptest::prelude::*;

use super::*;

mod impact;
mod props;

const NOW: i64 = 1_000_000;

fn user(pk: i64) -> UserFact {
    UserFact { pk, org: 1, is_active: true, is_superuser: false }
}

fn module(id: &str) -> ModuleFact {
    ModuleFact { id: id.into(), is_active: true, custom_actions: vec!["reset_password".into()] }
}

fn grant(subject: SubjectFact, module: &str, action: &str, object: Option<(&str, &str)>) -> GrantFact {
    GrantFact {
        subject,
        module: module.into(),
        action: action.into(),
        object: object.map(|(m, k)| (m.into(), k.into())),
        expires_at: None,
    }
}

fn member(user: i64, group: i64) -> MembershipFact {
    MembershipFact { user, group, expires_at: None, restriction: None }
}

fn object(model: &str, key: &str, parent: Option<(&str, &str)>) -> ObjectFact {
    ObjectFact { key: (model.into(), key.into()), parent: parent.map(|(m, k)| (m.into(), k.into())), org: 1 }
}

/// Users 1–4 (4 inactive, 3 superuser), groups Sales(10) ⊃ EU(11) ⊃ DE(12), US(13) under Sales; role 7.
fn base() -> Facts {
    Facts {
        users: vec![
            user(1),
            user(2),
            UserFact { is_superuser: true, ..user(3) },
            UserFact { is_active: false, ..user(4) },
            UserFact { org: 2, ..user(5) },
        ],
        groups: vec![(10, 1, None), (11, 1, Some(10)), (12, 1, Some(11)), (13, 1, Some(10))],
        roles: vec![(7, 1)],
        modules: vec![
            module("catalogs"),
            module("users"),
            ModuleFact { is_active: false, ..module("brands") },
            module("nodes"),
            module("products"),
        ],
        objects: vec![
            object("catalogs", "9", None),
            object("products", "42", Some(("catalogs", "9"))),
            object("products", "43", None),
            object("nodes", "100", None),
            object("catalogs", "8", Some(("nodes", "100"))),
            object("products", "80", Some(("catalogs", "8"))),
        ],
        ..Facts::default()
    }
}

fn allowed(facts: &Facts, user: i64, perm: &str, object: Option<(&str, &str)>) -> bool {
    let (m, a) = perm.split_once('.').unwrap();
    Index::build(facts).check(user, m, a, object, NOW).allowed
}

#[test]
fn semantic_table() {
    type Case = (&'static str, fn(&mut Facts), i64, &'static str, Option<(&'static str, &'static str)>, bool);
    let cases: Vec<Case> = vec![
        ("nothing granted", |_| {}, 1, "catalogs.read", None, false),
        (
            "direct global grant",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None)),
            1,
            "catalogs.read",
            None,
            true,
        ),
        (
            "other action not implied",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None)),
            1,
            "catalogs.update",
            None,
            false,
        ),
        (
            "every action implies access",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "delete", None)),
            1,
            "catalogs.access",
            None,
            true,
        ),
        (
            "full implies all",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "full", None)),
            1,
            "catalogs.update",
            None,
            true,
        ),
        (
            "full implies custom",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "full", None)),
            1,
            "catalogs.reset_password",
            None,
            true,
        ),
        (
            "unknown action",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "full", None)),
            1,
            "catalogs.fly",
            None,
            false,
        ),
        ("other user", |f| f.grants.push(grant(SubjectFact::User(2), "catalogs", "read", None)), 1, "catalogs.read", None, false),
        ("superuser", |_| {}, 3, "catalogs.delete", None, true),
        ("superuser on inactive module", |_| {}, 3, "brands.read", None, true),
        (
            "inactive user",
            |f| f.grants.push(grant(SubjectFact::User(4), "catalogs", "read", None)),
            4,
            "catalogs.read",
            None,
            false,
        ),
        (
            "inactive module",
            |f| f.grants.push(grant(SubjectFact::User(1), "brands", "read", None)),
            1,
            "brands.read",
            None,
            false,
        ),
        (
            "group grant",
            |f| {
                f.memberships.push(member(1, 11));
                f.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            true,
        ),
        (
            "ancestor group grant",
            |f| {
                f.memberships.push(member(1, 12));
                f.grants.push(grant(SubjectFact::Group(10), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            true,
        ),
        (
            "sibling group grant does not flow",
            |f| {
                f.memberships.push(member(1, 11));
                f.grants.push(grant(SubjectFact::Group(13), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            false,
        ),
        (
            "descendant grant does not flow up",
            |f| {
                f.memberships.push(member(1, 10));
                f.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            false,
        ),
        (
            "expired membership",
            |f| {
                f.memberships.push(MembershipFact { expires_at: Some(NOW), ..member(1, 11) });
                f.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            false,
        ),
        (
            "expired grant",
            |f| f.grants.push(GrantFact { expires_at: Some(NOW - 1), ..grant(SubjectFact::User(1), "catalogs", "read", None) }),
            1,
            "catalogs.read",
            None,
            false,
        ),
        (
            "role of user",
            |f| {
                f.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::User(1), expires_at: None });
                f.grants.push(grant(SubjectFact::Role(7), "catalogs", "update", None));
            },
            1,
            "catalogs.update",
            None,
            true,
        ),
        (
            "role of ancestor group",
            |f| {
                f.memberships.push(member(1, 12));
                f.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::Group(10), expires_at: None });
                f.grants.push(grant(SubjectFact::Role(7), "catalogs", "update", None));
            },
            1,
            "catalogs.update",
            None,
            true,
        ),
        (
            "expired role assignment",
            |f| {
                f.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::User(1), expires_at: Some(1) });
                f.grants.push(grant(SubjectFact::Role(7), "catalogs", "update", None));
            },
            1,
            "catalogs.update",
            None,
            false,
        ),
        (
            "object grant on the object",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", Some(("catalogs", "9")))),
            1,
            "catalogs.read",
            Some(("catalogs", "9")),
            true,
        ),
        (
            "object grant is not global",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", Some(("catalogs", "9")))),
            1,
            "catalogs.read",
            None,
            false,
        ),
        (
            "object grant flows to children",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", Some(("catalogs", "9")))),
            1,
            "catalogs.read",
            Some(("products", "42")),
            true,
        ),
        (
            "object grant not to unrelated",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", Some(("catalogs", "9")))),
            1,
            "catalogs.read",
            Some(("products", "43")),
            false,
        ),
        (
            "object grant only for that permission",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", Some(("catalogs", "9")))),
            1,
            "products.read",
            Some(("products", "42")),
            false,
        ),
        (
            "global grant covers objects",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None)),
            1,
            "catalogs.read",
            Some(("products", "42")),
            true,
        ),
        (
            "global grant covers unregistered objects",
            |f| f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None)),
            1,
            "catalogs.read",
            Some(("catalogs", "nope")),
            true,
        ),
        (
            "global grant not across orgs",
            |f| {
                f.objects.push(ObjectFact { org: 2, ..object("catalogs", "77", None) });
                f.grants.push(grant(SubjectFact::User(1), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            Some(("catalogs", "77")),
            false,
        ),
        (
            "restricted membership: nothing globally",
            |f| {
                f.memberships.push(MembershipFact { restriction: Some(vec![100]), ..member(1, 11) });
                f.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            false,
        ),
        (
            "restricted membership: inside the node",
            |f| {
                f.memberships.push(MembershipFact { restriction: Some(vec![100]), ..member(1, 11) });
                f.grants.push(grant(SubjectFact::Group(10), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            Some(("products", "80")),
            true,
        ),
        (
            "restricted membership: outside the node",
            |f| {
                f.memberships.push(MembershipFact { restriction: Some(vec![100]), ..member(1, 11) });
                f.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            Some(("products", "42")),
            false,
        ),
        (
            "restricted to no nodes grants nothing",
            |f| {
                f.memberships.push(MembershipFact { restriction: Some(vec![]), ..member(1, 11) });
                f.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            Some(("products", "80")),
            false,
        ),
        (
            "unrestricted path wins",
            |f| {
                f.memberships.push(MembershipFact { restriction: Some(vec![]), ..member(1, 11) });
                f.memberships.push(member(1, 13));
                f.grants.push(grant(SubjectFact::Group(10), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            None,
            true,
        ),
        (
            "restriction covers roles through the membership",
            |f| {
                f.memberships.push(MembershipFact { restriction: Some(vec![100]), ..member(1, 11) });
                f.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::Group(11), expires_at: None });
                f.grants.push(grant(SubjectFact::Role(7), "catalogs", "read", None));
            },
            1,
            "catalogs.read",
            Some(("products", "42")),
            false,
        ),
        ("unknown user", |_| {}, 99, "catalogs.read", None, false),
        ("unknown module", |_| {}, 1, "nope.read", None, false),
    ];
    for (name, setup, user, perm, object, expected) in cases {
        let mut facts = base();
        setup(&mut facts);
        assert_eq!(allowed(&facts, user, perm, object), expected, "{name}");
    }
}

#[test]
fn denials_and_validity() {
    let mut facts = base();
    facts.grants.push(GrantFact { expires_at: Some(NOW + 50), ..grant(SubjectFact::User(1), "catalogs", "read", None) });
    facts.memberships.push(MembershipFact { expires_at: Some(NOW + 80), ..member(1, 11) });
    facts.grants.push(grant(SubjectFact::Group(11), "catalogs", "read", None));
    let ix = Index::build(&facts);
    let d = ix.check(1, "catalogs", "read", None, NOW);
    assert!(d.allowed);
    assert_eq!(d.valid_until, Some(NOW + 80), "the longest-lived path decides");
    assert!(!ix.check(1, "catalogs", "read", None, NOW + 80).allowed);
    assert_eq!(ix.check(4, "catalogs", "read", None, NOW).denial, Some(Denial::InactiveUser));
    assert_eq!(ix.check(1, "brands", "read", None, NOW).denial, Some(Denial::InactiveModule));
    assert_eq!(ix.check(1, "users", "read", None, NOW).denial, Some(Denial::NoGrant));
    assert_eq!(ix.check(1, "catalogs", "fly", None, NOW).denial, Some(Denial::UnknownAction));
}

#[test]
fn explain_lists_paths() {
    let mut facts = base();
    facts.memberships.push(member(1, 12));
    facts.role_assignments.push(RoleAssignmentFact { role: 7, subject: SubjectFact::Group(10), expires_at: None });
    facts.grants.push(grant(SubjectFact::Role(7), "catalogs", "full", Some(("catalogs", "9"))));
    facts.grants.push(grant(SubjectFact::User(1), "catalogs", "update", None));
    let ix = Index::build(&facts);
    let (decision, paths, total) = ix.explain(1, "catalogs", "update", Some(("products", "42")), NOW, 10);
    assert!(decision.allowed);
    assert_eq!(total, 2);
    let via_role = paths.iter().find(|p| p.steps.iter().any(|s| matches!(s, Step::Role { role: 7 }))).unwrap();
    assert_eq!(
        via_role.steps,
        vec![
            Step::User { pk: 1, superuser: false },
            Step::Member { group: 12, restricted: false },
            Step::Ancestor { group: 10 },
            Step::Role { role: 7 },
            Step::Grant { module: "catalogs".into(), action: "full".into(), object: Some(("catalogs".into(), "9".into())) },
            Step::Covers { object: ("products".into(), "42".into()) },
        ]
    );
    let (_, paths, total) = ix.explain(1, "catalogs", "update", Some(("products", "42")), NOW, 1);
    assert_eq!((paths.len(), total), (1, 2));
    let (_, paths, _) = ix.explain(3, "catalogs", "read", None, NOW, 10);
    assert_eq!(paths[0].steps, vec![Step::User { pk: 3, superuser: true }]);
}
