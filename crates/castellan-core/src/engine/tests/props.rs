//! Property tests: the index against a naive reading of the rules, and patches against rebuilds.

use super::*;

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
