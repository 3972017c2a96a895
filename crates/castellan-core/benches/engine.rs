//! In-process check latency on dataset D (or `SCALE`×D), with and without nesting, and the index's build time and
//! memory. Run: `cargo bench -p castellan-core --bench engine` (`SCALE=0.1` for a tenth of D).

use std::time::Instant;

use castellan_core::change::{Change, GroupRecord};
use castellan_core::engine::synthetic::{Rng, Spec, generate};
use castellan_core::engine::{Facts, Index, MembershipFact, Scope};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let scale: f64 = std::env::var("SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let d = Spec::d();
    let spec = Spec {
        users: (d.users as f64 * scale) as u64,
        objects: (d.objects as f64 * scale) as u64,
        object_grants: (d.object_grants as f64 * scale) as u64,
        ..d
    };
    let started = Instant::now();
    let facts = generate(spec);
    let generated = started.elapsed();
    let before = rss_mib();
    let started = Instant::now();
    let mut index = Index::build(&facts);
    let built = started.elapsed();
    let patches = Patches::sample(&facts, &mut Rng(7));
    let moves = subtree_moves(&facts);
    drop(facts);
    println!(
        "dataset: {} users, {} groups x5 levels, {} memberships, {} modules, {} objects, {} object grants; generated in {:.1} s, index built in {:.1} s, RSS {:.0} MiB (before build {:.0} MiB)",
        spec.users,
        111_110,
        spec.users * spec.memberships_per_user,
        spec.modules,
        spec.objects,
        spec.object_grants,
        generated.as_secs_f64(),
        built.as_secs_f64(),
        rss_mib(),
        before
    );
    let mut rng = Rng(99);
    measure_checks(&index, spec, "nested groups", &mut rng);
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let user = 1 + rng.below(spec.users) as i64;
        let t = Instant::now();
        let found = index.lookup_objects(user, "m0", "read", "m0", 0);
        samples.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(found);
    }
    samples.sort_unstable();
    println!(
        "lookup of objects: p50 {:.2} ms p99 {:.2} ms",
        percentile(&samples, 0.5) as f64 / 1e6,
        percentile(&samples, 0.99) as f64 / 1e6
    );
    measure_dry_runs(&index, &moves);
    patches.measure(&mut index);
    drop(index);

    // The same dataset with every group a root: each membership reaches one group instead of a chain of five.
    let mut flat = generate(spec);
    for group in &mut flat.groups {
        group.2 = None;
    }
    let index = Index::build(&flat);
    drop(flat);
    measure_checks(&index, spec, "flat groups", &mut Rng(99));
}

/// Global and object check latency over 200,000 random checks each.
fn measure_checks(index: &Index, spec: Spec, groups: &str, rng: &mut Rng) {
    for (kind, with_object) in [("global check", false), ("object check (parent chains)", true)] {
        let mut samples = Vec::with_capacity(200_000);
        let mut allowed = 0u64;
        for _ in 0..200_000 {
            let user = 1 + rng.below(spec.users) as i64;
            let module = format!("m{}", rng.below(spec.modules));
            let object_key = rng.below(spec.objects.max(1)).to_string();
            let object = with_object.then_some(("m0", object_key.as_str()));
            let module = if with_object { "m0" } else { module.as_str() };
            let t = Instant::now();
            let d = index.check(user, module, "read", object, 0);
            samples.push(t.elapsed().as_nanos() as u64);
            allowed += u64::from(d.allowed);
        }
        samples.sort_unstable();
        println!(
            "{kind}, {groups}: p50 {:.2} µs p99 {:.2} µs (target p99 <= 10 µs); {:.0}% allowed",
            percentile(&samples, 0.5) as f64 / 1000.0,
            percentile(&samples, 0.99) as f64 / 1000.0,
            allowed as f64 / 2000.0
        );
    }
}

/// Moves of second-level groups (subtrees of 1,111 groups) under another root, as typed changes.
fn subtree_moves(facts: &Facts) -> Vec<Change> {
    let roots: Vec<i64> = facts.groups.iter().filter(|g| g.2.is_none()).map(|g| g.0).collect();
    let record = |org: i64, parent: Option<i64>| GroupRecord {
        name: "g".into(),
        description: String::new(),
        org,
        parent,
        permissions: Default::default(),
    };
    facts
        .groups
        .iter()
        .filter(|g| g.2.is_some_and(|p| roots.contains(&p)))
        .take(5)
        .map(|&(pk, org, parent)| {
            let to = roots.iter().copied().find(|r| Some(*r) != parent);
            Change::GroupUpdated { pk, before: record(org, parent), after: record(org, to) }
        })
        .collect()
}

/// The dry run of each move, phase by phase: the affected users, the deciding facts read out of the index, the two
/// small indexes, and their diff.
fn measure_dry_runs(index: &Index, moves: &[Change]) {
    for change in moves {
        let t = Instant::now();
        let users: Vec<i64> = index.affected_users(change).into_iter().collect();
        let affected = t.elapsed();
        let t = Instant::now();
        let overlay = index.overlay(change, usize::MAX).expect("no cap");
        let read = t.elapsed();
        let t = Instant::now();
        let impact = overlay.impact(0);
        let diffed = t.elapsed();
        println!(
            "dry run of a subtree move ({} users, {} affected): affected users {:.0} ms, overlay {:.0} ms, impact {:.0} ms",
            users.len(),
            impact.users_affected,
            affected.as_secs_f64() * 1e3,
            read.as_secs_f64() * 1e3,
            diffed.as_secs_f64() * 1e3
        );
    }
}

/// Incremental updates to time: one user's memberships replaced, and subtrees of 1,111 groups moved between roots.
struct Patches {
    memberships: Vec<(Scope, Facts)>,
    moves: Vec<(Scope, Facts)>,
}

impl Patches {
    fn sample(facts: &Facts, rng: &mut Rng) -> Self {
        let memberships = (0..1000)
            .map(|_| {
                let user = facts.users[rng.below(facts.users.len() as u64) as usize].clone();
                let group = facts.groups[rng.below(facts.groups.len() as u64) as usize].0;
                let membership = MembershipFact { user: user.pk, group, expires_at: None, restriction: None };
                let scope = Scope { users: [user.pk].into(), ..Scope::default() };
                (scope, Facts { users: vec![user], memberships: vec![membership], ..Facts::default() })
            })
            .collect();
        let roots: Vec<i64> = facts.groups.iter().filter(|g| g.2.is_none()).map(|g| g.0).collect();
        let tops: Vec<(i64, i64, Option<i64>)> =
            facts.groups.iter().filter(|g| g.2.is_some_and(|p| roots.contains(&p))).copied().collect();
        let moves = (0..100)
            .map(|i| {
                let (pk, org, parent) = tops[i % tops.len()];
                let new_parent = roots.iter().copied().find(|r| Some(*r) != parent);
                let scope = Scope { groups: [pk].into(), ..Scope::default() };
                (scope, Facts { groups: vec![(pk, org, new_parent)], ..Facts::default() })
            })
            .collect();
        Patches { memberships, moves }
    }

    fn measure(self, index: &mut Index) {
        for (name, patches) in
            [("patch: one user's memberships", self.memberships), ("patch: move a subtree of 1,111 groups", self.moves)]
        {
            let mut samples: Vec<u64> = patches
                .iter()
                .map(|(scope, facts)| {
                    let t = Instant::now();
                    index.apply(scope, facts).expect("patch applies");
                    t.elapsed().as_nanos() as u64
                })
                .collect();
            samples.sort_unstable();
            println!(
                "{name}: p50 {:.1} µs p99 {:.1} µs ({} patches)",
                percentile(&samples, 0.5) as f64 / 1000.0,
                percentile(&samples, 0.99) as f64 / 1000.0,
                samples.len()
            );
        }
    }
}
