//! In-process check latency on dataset D (or `SCALE`×D), with and without nesting, and the index's build time and
//! memory. Run: `cargo bench -p castellan-core --bench engine` (`SCALE=0.1` for a tenth of D).

use std::time::Instant;

use castellan_core::engine::Index;
use castellan_core::engine::synthetic::{Rng, Spec, generate};

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
    let index = Index::build(&facts);
    let built = started.elapsed();
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
    for (name, with_object) in [("global check (nested groups)", false), ("object check (parent chains, nested groups)", true)] {
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
            "{name}: p50 {:.2} µs p99 {:.2} µs (target p99 <= 10 µs); {:.0}% allowed",
            percentile(&samples, 0.5) as f64 / 1000.0,
            percentile(&samples, 0.99) as f64 / 1000.0,
            allowed as f64 / 2000.0
        );
    }
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
}
