//! The engine's semantic suite (table-driven) and a property test against a deliberately naive evaluator.

use proptest::prelude::*;

use super::*;

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

/// The reference: the rules applied literally to the facts, with no index.
fn naive(f: &Facts, user: i64, module: &str, action: &str, object: Option<(&str, &str)>, now: i64) -> bool {
    let alive = |e: Option<i64>| e.is_none_or(|e| e > now);
    let Some(u) = f.users.iter().find(|u| u.pk == user) else { return false };
    if !u.is_active {
        return false;
    }
    if u.is_superuser {
        return true;
    }
    let Some(m) = f.modules.iter().find(|m| m.id == module) else { return false };
    let actions: Vec<String> = ["access", "read", "create", "update", "delete", "full"]
        .iter()
        .map(|s| s.to_string())
        .chain(m.custom_actions.iter().cloned())
        .collect();
    if !m.is_active || !actions.iter().any(|a| a == action) {
        return false;
    }
    let mut chain: Vec<ObjectKey> = Vec::new();
    if let Some((model, key)) = object {
        let mut at = Some((model.to_string(), key.to_string()));
        while let Some(k) = at {
            if chain.contains(&k) {
                break;
            }
            at = f.objects.iter().find(|o| o.key == k).and_then(|o| o.parent.clone());
            chain.push(k);
        }
    }
    let object_org = object.and_then(|(m, k)| f.objects.iter().find(|o| o.key.0 == m && o.key.1 == k)).map(|o| o.org);
    let mut routes: Vec<(SubjectFact, Option<Vec<i64>>)> = vec![(SubjectFact::User(user), None)];
    for a in &f.role_assignments {
        if a.subject == SubjectFact::User(user) && alive(a.expires_at) {
            routes.push((SubjectFact::Role(a.role), None));
        }
    }
    for mem in f.memberships.iter().filter(|m| m.user == user && alive(m.expires_at)) {
        let mut at = Some(mem.group);
        let mut seen = Vec::new();
        while let Some(g) = at {
            if seen.contains(&g) || !f.groups.iter().any(|x| x.0 == g) {
                break;
            }
            seen.push(g);
            routes.push((SubjectFact::Group(g), mem.restriction.clone()));
            for a in &f.role_assignments {
                if a.subject == SubjectFact::Group(g) && alive(a.expires_at) {
                    routes.push((SubjectFact::Role(a.role), mem.restriction.clone()));
                }
            }
            at = f.groups.iter().find(|x| x.0 == g).and_then(|x| x.2);
        }
    }
    routes.iter().any(|(subject, restriction)| {
        if let Some(nodes) = restriction
            && !chain.iter().any(|k| k.0 == "nodes" && nodes.iter().any(|n| n.to_string() == k.1))
        {
            return false;
        }
        f.grants.iter().any(|g| {
            let action_ok = actions.contains(&g.action) && (g.action == action || g.action == "full" || action == "access");
            g.subject == *subject
                && g.module == module
                && alive(g.expires_at)
                && action_ok
                && match &g.object {
                    None => object_org.is_none_or(|o| o == u.org),
                    Some(k) => chain.contains(k),
                }
        })
    })
}

const ACTIONS: [&str; 7] = ["access", "read", "create", "update", "delete", "full", "reset_password"];
const MODELS: [&str; 3] = ["catalogs", "products", "nodes"];

fn facts_strategy() -> impl Strategy<Value = Facts> {
    let users = prop::collection::vec((any::<bool>(), prop::bool::weighted(0.1), 1i64..=2), 1..6);
    let groups = prop::collection::vec(prop::option::of(0usize..8), 1..8);
    let objects = prop::collection::vec((0usize..3, prop::option::of(0usize..10), 1i64..=2), 0..10);
    let memberships = prop::collection::vec(
        (0usize..6, 0usize..8, prop::option::of(0i64..20), prop::option::of(prop::collection::vec(0usize..10, 0..3))),
        0..10,
    );
    let roles = prop::collection::vec((0usize..3, 0usize..8, any::<bool>(), prop::option::of(0i64..20)), 0..6);
    let grants = prop::collection::vec(
        (0usize..3, 0usize..8, 0usize..3, 0usize..7, prop::option::of(0usize..10), prop::option::of(0i64..20)),
        0..14,
    );
    let modules = prop::collection::vec(prop::bool::weighted(0.85), 3);
    (users, groups, objects, memberships, roles, grants, modules).prop_map(
        |(users, groups, objects, memberships, roles, grants, modules)| {
            let users: Vec<UserFact> = users
                .iter()
                .enumerate()
                .map(|(i, (a, s, org))| UserFact { pk: i as i64 + 1, org: *org, is_active: *a, is_superuser: *s })
                .collect();
            let groups: Vec<(i64, i64, Option<i64>)> =
                groups.iter().enumerate().map(|(i, p)| (i as i64 + 10, 1, p.filter(|p| *p < i).map(|p| p as i64 + 10))).collect();
            let object_key = |i: usize, objs: &[(usize, Option<usize>, i64)]| -> ObjectKey {
                let model = MODELS[objs.get(i).map_or(i % 3, |o| o.0)];
                (model.to_string(), if model == "nodes" { (100 + i).to_string() } else { i.to_string() })
            };
            let objects_f: Vec<ObjectFact> = objects
                .iter()
                .enumerate()
                .map(|(i, (_, parent, org))| ObjectFact {
                    key: object_key(i, &objects),
                    parent: parent.filter(|p| *p < i).map(|p| object_key(p, &objects)),
                    org: *org,
                })
                .collect();
            let node_ids: Vec<i64> = (0..10).map(|i| 100 + i as i64).collect();
            Facts {
                memberships: memberships
                    .iter()
                    .filter(|(u, g, _, _)| *u < users.len() && *g < groups.len())
                    .map(|(u, g, e, r)| MembershipFact {
                        user: *u as i64 + 1,
                        group: *g as i64 + 10,
                        expires_at: *e,
                        restriction: r.as_ref().map(|r| r.iter().map(|n| node_ids[*n]).collect()),
                    })
                    .collect(),
                role_assignments: roles
                    .iter()
                    .map(|(r, s, to_user, e)| RoleAssignmentFact {
                        role: *r as i64 + 50,
                        subject: if *to_user { SubjectFact::User(*s as i64 % 6 + 1) } else { SubjectFact::Group(*s as i64 + 10) },
                        expires_at: *e,
                    })
                    .collect(),
                grants: grants
                    .iter()
                    .map(|(kind, s, m, a, o, e)| GrantFact {
                        subject: match kind {
                            0 => SubjectFact::User(*s as i64 % 6 + 1),
                            1 => SubjectFact::Group(*s as i64 + 10),
                            _ => SubjectFact::Role(*s as i64 % 3 + 50),
                        },
                        module: MODELS[*m].to_string(),
                        action: ACTIONS[*a].to_string(),
                        object: o.map(|o| object_key(o, &objects)),
                        expires_at: *e,
                    })
                    .collect(),
                modules: MODELS
                    .iter()
                    .zip(&modules)
                    .map(|(id, active)| ModuleFact {
                        id: id.to_string(),
                        is_active: *active,
                        custom_actions: vec!["reset_password".into()],
                    })
                    .collect(),
                roles: (0..3).map(|r| (r as i64 + 50, 1)).collect(),
                users,
                groups,
                objects: objects_f,
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn engine_matches_naive_reference(facts in facts_strategy(), now in 0i64..25, queries in prop::collection::vec((1i64..7, 0usize..3, 0usize..7, prop::option::of(0usize..12)), 1..20)) {
        let ix = Index::build(&facts);
        for (user, m, a, o) in queries {
            let object_keys: Vec<ObjectKey> = facts.objects.iter().map(|o| o.key.clone()).collect();
            let object = o.map(|i| object_keys.get(i).cloned().unwrap_or(("catalogs".to_string(), format!("unregistered{i}"))));
            let object_ref = object.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
            let expected = naive(&facts, user, MODELS[m], ACTIONS[a], object_ref, now);
            let got = ix.check(user, MODELS[m], ACTIONS[a], object_ref, now);
            prop_assert_eq!(got.allowed, expected, "user {} {}.{} on {:?} at {}", user, MODELS[m], ACTIONS[a], object, now);
            let (_, paths, total) = ix.explain(user, MODELS[m], ACTIONS[a], object_ref, now, 10);
            prop_assert_eq!(total > 0, expected);
            prop_assert!(paths.len() <= 10);
        }
    }

    #[test]
    fn lookups_agree_with_checks(facts in facts_strategy(), now in 0i64..25) {
        let ix = Index::build(&facts);
        for user in 1..7 {
            for m in MODELS {
                for a in ACTIONS {
                    for model in MODELS {
                        let found = ix.lookup_objects(user, m, a, model, now);
                        for o in facts.objects.iter().filter(|o| o.key.0 == model) {
                            let allowed = ix.check(user, m, a, Some((&o.key.0, &o.key.1)), now).allowed;
                            let listed = found.as_ref().is_none_or(|keys| keys.contains(&o.key.1));
                            // A global grant may stop at the org boundary: then the object is not listed either.
                            if found.is_none() {
                                prop_assert!(ix.check(user, m, a, None, now).allowed);
                            } else {
                                prop_assert_eq!(listed, allowed, "user {} {}.{} on {:?}", user, m, a, o.key);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn effective_global_matches_checks(facts in facts_strategy(), now in 0i64..25) {
        let ix = Index::build(&facts);
        for user in 1..7 {
            let eff = ix.effective(user, now);
            for m in MODELS {
                for a in ACTIONS {
                    let allowed = ix.check(user, m, a, None, now).allowed;
                    let listed = eff.superuser
                        || eff.global.iter().any(|g| g == &format!("{m}.{a}") || g == &format!("{m}.full") || (a == "access" && g.starts_with(&format!("{m}."))));
                    prop_assert_eq!(listed, allowed, "user {} {}.{}", user, m, a);
                }
            }
        }
    }

    #[test]
    fn engine_matches_after_updates(base in facts_strategy(), extra in facts_strategy(), now in 0i64..25) {
        let mut facts = base.clone();
        facts.grants.extend(extra.grants);
        facts.memberships.extend(extra.memberships.into_iter().filter(|m| base.users.iter().any(|u| u.pk == m.user)));
        facts.role_assignments.extend(extra.role_assignments);
        let ix = Index::build(&facts);
        for user in 1..7 {
            for m in MODELS {
                for a in ACTIONS {
                    prop_assert_eq!(ix.check(user, m, a, None, now).allowed, naive(&facts, user, m, a, None, now));
                }
            }
        }
    }
}

/// `base` with the facts of everything in `scope` taken from `other` instead, without dangling references (as a
/// store's foreign keys guarantee).
fn merged(base: &Facts, other: &Facts, scope: &Scope) -> Facts {
    let keep = |f: &Facts| -> Facts {
        let touched = f.restricted_to(scope);
        Facts {
            users: f.users.iter().filter(|u| !touched.users.contains(u)).cloned().collect(),
            groups: f.groups.iter().filter(|g| !scope.groups.contains(&g.0)).copied().collect(),
            roles: f.roles.iter().filter(|r| !scope.roles.contains(&r.0)).copied().collect(),
            modules: f.modules.clone(),
            memberships: f.memberships.iter().filter(|m| !touched.memberships.contains(m)).cloned().collect(),
            role_assignments: f.role_assignments.iter().filter(|a| !touched.role_assignments.contains(a)).cloned().collect(),
            grants: f.grants.iter().filter(|g| !touched.grants.contains(g)).cloned().collect(),
            objects: f.objects.iter().filter(|o| !scope.objects.contains(&o.key)).cloned().collect(),
        }
    };
    let mut out = keep(base);
    let taken = other.restricted_to(scope);
    out.users.extend(taken.users);
    out.groups.extend(taken.groups);
    out.roles.extend(taken.roles);
    out.memberships.extend(taken.memberships);
    out.role_assignments.extend(taken.role_assignments);
    out.grants.extend(taken.grants);
    out.objects.extend(taken.objects);
    let users: Vec<i64> = out.users.iter().map(|u| u.pk).collect();
    let groups: Vec<i64> = out.groups.iter().map(|g| g.0).collect();
    let roles: Vec<i64> = out.roles.iter().map(|r| r.0).collect();
    let exists = |s: SubjectFact| match s {
        SubjectFact::User(pk) => users.contains(&pk),
        SubjectFact::Group(pk) => groups.contains(&pk),
        SubjectFact::Role(pk) => roles.contains(&pk),
    };
    out.memberships.retain(|m| users.contains(&m.user) && groups.contains(&m.group));
    out.role_assignments.retain(|a| roles.contains(&a.role) && exists(a.subject));
    out.grants.retain(|g| exists(g.subject));
    // A deleted object's children become roots (the store sets their parent to null).
    let objects: Vec<ObjectKey> = out.objects.iter().map(|o| o.key.clone()).collect();
    for o in &mut out.objects {
        o.parent = o.parent.take().filter(|p| objects.contains(p));
    }
    // A parent that does not exist is refused by the store; here the group becomes a root.
    let parents: Vec<i64> = out.groups.iter().map(|g| g.0).collect();
    for g in &mut out.groups {
        g.2 = g.2.filter(|p| parents.contains(p));
    }
    out
}

fn scope_strategy() -> impl Strategy<Value = Scope> {
    let objects = prop::collection::btree_set(0usize..10, 0..4);
    (
        prop::collection::btree_set(1i64..7, 0..4),
        prop::collection::btree_set(10i64..18, 0..4),
        prop::collection::btree_set(50i64..53, 0..3),
        objects,
    )
        .prop_map(|(users, groups, roles, objects)| Scope {
            users,
            groups,
            roles,
            objects: objects
                .into_iter()
                .map(|i| {
                    let model = MODELS[i % 3];
                    (model.to_string(), if model == "nodes" { (100 + i).to_string() } else { i.to_string() })
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Patching an index with the facts of what changed answers like an index built from scratch.
    #[test]
    fn patched_index_matches_rebuilt(base in facts_strategy(), other in facts_strategy(), scope in scope_strategy(), now in 0i64..25) {
        // Deleting a group deletes its subtree, and the store's change log names every group deleted.
        let mut scope = scope;
        loop {
            let gone: Vec<i64> = base.groups.iter().filter(|g| scope.groups.contains(&g.0) && !other.groups.iter().any(|o| o.0 == g.0)).map(|g| g.0).collect();
            let below: Vec<i64> = base.groups.iter().filter(|g| g.2.is_some_and(|p| gone.contains(&p)) && !scope.groups.contains(&g.0)).map(|g| g.0).collect();
            if below.is_empty() {
                break;
            }
            scope.groups.extend(below);
        }
        let target = merged(&base, &other, &scope);
        let start = merged(&base, &base, &Scope::default());
        let mut ix = Index::build(&start);
        prop_assert_eq!(ix.apply(&scope, &target.restricted_to(&scope)), Ok(()));
        let fresh = Index::build(&target);
        let keys: Vec<Option<ObjectKey>> =
            std::iter::once(None).chain(start.objects.iter().chain(&target.objects).map(|o| Some(o.key.clone()))).collect();
        for user in 1..7 {
            prop_assert_eq!(ix.effective(user, now), fresh.effective(user, now), "user {}", user);
            for m in MODELS {
                for a in ACTIONS {
                    for key in &keys {
                        let object = key.as_ref().map(|(m, k)| (m.as_str(), k.as_str()));
                        let (got, want) = (ix.check(user, m, a, object, now), fresh.check(user, m, a, object, now));
                        prop_assert_eq!(got.allowed, want.allowed, "user {} {}.{} on {:?}", user, m, a, key);
                        prop_assert_eq!(got.allowed, naive(&target, user, m, a, object, now));
                    }
                }
                for model in MODELS {
                    prop_assert_eq!(ix.lookup_objects(user, m, "read", model, now), fresh.lookup_objects(user, m, "read", model, now));
                }
            }
        }
    }
}

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
}
