//! A deterministic synthetic permission model (dataset D of the benchmarks), generated in memory.

use super::facts::{Facts, GrantFact, MembershipFact, ModuleFact, ObjectFact, SubjectFact, UserFact};

/// The shape of a synthetic model.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Users (keys 1..=users).
    pub users: u64,
    /// Root groups; each level below has `fanout` children per group.
    pub roots: u64,
    /// Children per group.
    pub fanout: u64,
    /// Levels of the group forest.
    pub depth: u32,
    /// Memberships per user, to random groups.
    pub memberships_per_user: u64,
    /// Modules (`m0`, `m1`, ...).
    pub modules: u64,
    /// Objects of module `m0`, each with a random earlier parent half of the time.
    pub objects: u64,
    /// Object grants to random users and groups.
    pub object_grants: u64,
}

impl Spec {
    /// Dataset D: 1M users, 111,110 groups 5 levels deep, 10M memberships, 50 modules, 1M objects, 1M object grants.
    pub fn d() -> Self {
        Self {
            users: 1_000_000,
            roots: 10,
            fanout: 10,
            depth: 5,
            memberships_per_user: 10,
            modules: 50,
            objects: 1_000_000,
            object_grants: 1_000_000,
        }
    }
}

/// SplitMix64: small, fast and reproducible.
pub struct Rng(pub u64);

impl Rng {
    /// The next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const ACTIONS: [&str; 5] = ["read", "create", "update", "delete", "full"];

/// Builds the facts of `spec`; group keys start at 1 with the roots, users at 1.
pub fn generate(spec: Spec) -> Facts {
    let mut rng = Rng(7);
    let mut facts = Facts {
        users: (1..=spec.users as i64).map(|pk| UserFact { pk, org: 1, is_active: true, is_superuser: false }).collect(),
        ..Facts::default()
    };
    let mut level: Vec<i64> = Vec::new();
    let mut next = 1i64;
    for d in 0..spec.depth {
        let parents: Vec<Option<i64>> = if d == 0 {
            vec![None; spec.roots as usize]
        } else {
            level.iter().flat_map(|p| std::iter::repeat_n(Some(*p), spec.fanout as usize)).collect()
        };
        level = Vec::with_capacity(parents.len());
        for parent in parents {
            facts.groups.push((next, 1, parent));
            level.push(next);
            next += 1;
        }
    }
    let groups = facts.groups.len() as u64;
    facts.modules =
        (0..spec.modules).map(|m| ModuleFact { id: format!("m{m}"), is_active: true, custom_actions: Vec::new() }).collect();
    for user in 1..=spec.users as i64 {
        for _ in 0..spec.memberships_per_user {
            facts.memberships.push(MembershipFact {
                user,
                group: 1 + rng.below(groups) as i64,
                expires_at: None,
                restriction: None,
            });
        }
    }
    // Each group grants one global permission on one module, so nested lookups have something to find.
    for (pk, _, _) in &facts.groups {
        let module = format!("m{}", rng.below(spec.modules));
        facts.grants.push(GrantFact {
            subject: SubjectFact::Group(*pk),
            module,
            action: ACTIONS[rng.below(5) as usize].into(),
            object: None,
            expires_at: None,
        });
    }
    facts.objects = (0..spec.objects)
        .map(|i| {
            let parent = (i > 0 && rng.below(2) == 0).then(|| ("m0".to_string(), rng.below(i).to_string()));
            ObjectFact { key: ("m0".into(), i.to_string()), parent, org: 1 }
        })
        .collect();
    for _ in 0..spec.object_grants {
        let subject = if rng.below(2) == 0 {
            SubjectFact::User(1 + rng.below(spec.users) as i64)
        } else {
            SubjectFact::Group(1 + rng.below(groups) as i64)
        };
        let object = Some(("m0".to_string(), rng.below(spec.objects.max(1)).to_string()));
        facts.grants.push(GrantFact {
            subject,
            module: "m0".into(),
            action: ACTIONS[rng.below(5) as usize].into(),
            object,
            expires_at: None,
        });
    }
    facts
}
