//! Castellan's engine against casbin-rs, side by side, on casbin-rs's own RBAC benchmark data.
//!
//! casbin-rs (`benches/benchmark.rs`, `b_benchmark_rbac_model_{small,medium,large}`) builds its RBAC data in code:
//! `roles` policies `(group{i}, data{i / 10}, read)` for `i in 0..roles` (so `roles / 10` resources) and `users`
//! groupings `(user{i}, group{i / 10})` for `i in 0..users`, with role links built once after loading; it then
//! times one `enforce` call. The same users, roles and rules go into Castellan as facts, and both engines answer
//! the bench's request, a deterministic mix of allowed and denied requests by existing users, and a few requests
//! by unknown users (measured apart: they are casbin's slow path); every answer must agree.

use std::hint::black_box;
use std::time::{Duration, Instant};

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use castellan_core::engine::{Facts, GrantFact, Index, ModuleFact, ObjectFact, RoleAssignmentFact, SubjectFact, UserFact};

/// casbin-rs's `examples/rbac_model.conf`, inline.
const MODEL: &str = "
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
";

/// Castellan's module for casbin's resources (also the object model of every resource).
const MODULE: &str = "data";

/// The time Castellan checks at (µs since the epoch); nothing here expires.
const NOW: i64 = 1_800_000_000_000_000;

/// Least time each engine spends on each request list.
const MIN_TIME: Duration = Duration::from_secs(1);

/// Least time of one timed batch (calibrated per engine and list), so clock reads stay negligible.
const BATCH: Duration = Duration::from_millis(20);

/// The casbin version measured (as locked in Cargo.lock).
const CASBIN_VERSION: &str = "2.20.0";

/// Requests in the randomised mix.
const MIX_LEN: usize = 1000;

/// Requests by unknown users.
const UNKNOWN_LEN: usize = 20;

/// One of casbin-rs's RBAC benchmark sizes.
struct Size {
    /// casbin-rs's name for it.
    name: &'static str,
    /// Roles (`group{i}`), one `read` policy each.
    roles: u64,
    /// Users (`user{i}`), one grouping each.
    users: u64,
    /// The request casbin-rs's bench enforces.
    bench_request: (&'static str, &'static str, &'static str),
}

impl Size {
    /// Resources (`data{i}`): ten roles share each.
    fn resources(&self) -> u64 {
        self.roles / 10
    }
}

/// casbin-rs's three sizes, with the request each of its benches enforces.
const SIZES: [Size; 3] = [
    Size { name: "small", roles: 100, users: 1_000, bench_request: ("user501", "data9", "read") },
    Size { name: "medium", roles: 1_000, users: 10_000, bench_request: ("user5001", "data15", "read") },
    Size { name: "large", roles: 10_000, users: 100_000, bench_request: ("user50001", "data1500", "read") },
];

/// casbin-rs's policies: `(group{i}, data{i / 10}, read)`.
fn policies(size: &Size) -> Vec<Vec<String>> {
    (0..size.roles).map(|i| vec![format!("group{i}"), format!("data{}", i / 10), "read".to_owned()]).collect()
}

/// casbin-rs's groupings: `(user{i}, group{i / 10})`.
fn groupings(size: &Size) -> Vec<Vec<String>> {
    (0..size.users).map(|i| vec![format!("user{i}"), format!("group{}", i / 10)]).collect()
}

/// Loads the size into a casbin enforcer the way casbin-rs's bench does (auto role links off, links built once).
async fn load_casbin(size: &Size) -> Enforcer {
    let model = DefaultModel::from_str(MODEL).await.expect("the RBAC model parses");
    let mut e = Enforcer::new(model, MemoryAdapter::default()).await.expect("the enforcer builds");
    e.enable_auto_build_role_links(false);
    assert!(e.add_policies(policies(size)).await.expect("policies load"), "every policy is new");
    assert!(e.add_grouping_policies(groupings(size)).await.expect("groupings load"), "every grouping is new");
    e.build_role_links().expect("role links build");
    e
}

/// The same data as Castellan facts: user `user{i}` is user pk `i`, role `group{i}` is role pk `i`, resource
/// `data{i}` is object `("data", "data{i}")`; policies become role grants on objects, groupings role assignments.
fn castellan_facts(size: &Size) -> Facts {
    Facts {
        users: (0..size.users as i64).map(|pk| UserFact { pk, org: 1, is_active: true, is_superuser: false }).collect(),
        roles: (0..size.roles as i64).map(|pk| (pk, 1)).collect(),
        modules: vec![ModuleFact { id: MODULE.to_owned(), is_active: true, custom_actions: Vec::new() }],
        role_assignments: (0..size.users as i64)
            .map(|u| RoleAssignmentFact { role: u / 10, subject: SubjectFact::User(u), expires_at: None })
            .collect(),
        grants: (0..size.roles as i64)
            .map(|r| GrantFact {
                subject: SubjectFact::Role(r),
                module: MODULE.to_owned(),
                action: "read".to_owned(),
                object: Some((MODULE.to_owned(), format!("data{}", r / 10))),
                expires_at: None,
            })
            .collect(),
        objects: (0..size.resources())
            .map(|d| ObjectFact { key: (MODULE.to_owned(), format!("data{d}")), parent: None, org: 1 })
            .collect(),
        ..Facts::default()
    }
}

/// One request, as each engine takes it: casbin by user name, Castellan by user pk.
#[derive(Debug, Clone)]
struct Request {
    /// casbin subject, `user{pk}`.
    user: String,
    /// Castellan user pk.
    user_pk: i64,
    /// Resource name, also Castellan's object key.
    object: String,
    /// Action.
    action: &'static str,
}

impl Request {
    /// A request for user number `pk`.
    fn new(pk: u64, object: String, action: &'static str) -> Self {
        Self { user: format!("user{pk}"), user_pk: pk as i64, object, action }
    }

    /// casbin-rs's bench request.
    fn from_bench(&(user, object, action): &(&'static str, &'static str, &'static str)) -> Self {
        let pk = user.strip_prefix("user").and_then(|n| n.parse().ok()).expect("bench users are user{n}");
        Self::new(pk, object.to_owned(), action)
    }
}

/// xorshift64: deterministic and dependency-free.
struct XorShift(u64);

impl XorShift {
    /// The next value.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The randomised mix, all by existing users: 40% a user reading its role's resource (allowed), 40% a user reading
/// a random resource (denied unless it happens to be its own), 10% an `update` of its own resource (denied: only
/// `read` is granted), 10% a read of a resource no policy names (denied).
fn mix(size: &Size) -> Vec<Request> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ size.users);
    (0..MIX_LEN)
        .map(|_| {
            let user = rng.below(size.users);
            match rng.below(10) {
                0..4 => Request::new(user, own_resource(user), "read"),
                4..8 => Request::new(user, format!("data{}", rng.below(size.resources())), "read"),
                8 => Request::new(user, own_resource(user), "update"),
                _ => Request::new(user, format!("data{}", size.resources() + rng.below(size.resources())), "read"),
            }
        })
        .collect()
}

/// Reads by users no grouping names (denied), kept apart from the mix: casbin's role manager finds an unknown
/// name by scanning every node of its role graph, once per policy, which would swamp the mix's mean.
fn unknown_users(size: &Size) -> Vec<Request> {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03 ^ size.users);
    (0..UNKNOWN_LEN)
        .map(|_| {
            let resource = own_resource(rng.below(size.users));
            Request::new(size.users + rng.below(size.users), resource, "read")
        })
        .collect()
}

/// The resource user number `user` may read: its role is `group{user / 10}`, whose resource is `data{role / 10}`.
fn own_resource(user: u64) -> String {
    format!("data{}", user / 100)
}

/// casbin's answer.
fn casbin_allows(e: &Enforcer, r: &Request) -> bool {
    e.enforce((r.user.as_str(), r.object.as_str(), r.action)).expect("enforce succeeds")
}

/// Castellan's answer.
fn castellan_allows(ix: &Index, r: &Request) -> bool {
    ix.check(r.user_pk, MODULE, r.action, Some((MODULE, r.object.as_str())), NOW).allowed
}

/// Time of `reps` passes of `allows` over `reqs`.
fn run(reqs: &[Request], reps: u64, allows: &dyn Fn(&Request) -> bool) -> Duration {
    let start = Instant::now();
    for _ in 0..reps {
        for r in reqs {
            black_box(allows(black_box(r)));
        }
    }
    start.elapsed()
}

/// One engine's running total while measuring.
struct Meter<'a> {
    /// The engine's check.
    allows: &'a dyn Fn(&Request) -> bool,
    /// Passes per timed batch.
    reps: u64,
    /// Time spent so far.
    time: Duration,
    /// Checks done so far.
    checks: u64,
}

impl<'a> Meter<'a> {
    /// A meter whose batches last about `BATCH`, given the time of one pass over the list.
    fn new(allows: &'a dyn Fn(&Request) -> bool, one_pass: Duration) -> Self {
        let reps = (BATCH.as_nanos() / one_pass.as_nanos().max(1)).max(1) as u64;
        Self { allows, reps, time: Duration::ZERO, checks: 0 }
    }

    /// One timed batch.
    fn batch(&mut self, reqs: &[Request]) {
        self.time += run(reqs, self.reps, self.allows);
        self.checks += self.reps * reqs.len() as u64;
    }

    /// Mean ns per check.
    fn ns_per_check(&self) -> f64 {
        self.time.as_nanos() as f64 / self.checks as f64
    }
}

/// Both engines on one request list, batches interleaved until each has run for at least `MIN_TIME`.
struct Measured {
    /// Requests in the list.
    requests: usize,
    /// Requests both engines allow.
    allowed: usize,
    /// Requests the engines answer differently.
    mismatches: usize,
    /// casbin ns per check.
    casbin_ns: f64,
    /// Castellan ns per check.
    castellan_ns: f64,
    /// casbin checks timed.
    casbin_checks: u64,
    /// Castellan checks timed.
    castellan_checks: u64,
}

/// Verifies both engines agree on every request (a pass that also warms up and sizes the batches), then measures
/// both.
fn measure(label: &str, reqs: &[Request], e: &Enforcer, ix: &Index) -> Measured {
    let start = Instant::now();
    let casbin_answers: Vec<bool> = reqs.iter().map(|r| casbin_allows(e, r)).collect();
    let casbin_pass = start.elapsed();
    let start = Instant::now();
    let castellan_answers: Vec<bool> = reqs.iter().map(|r| castellan_allows(ix, r)).collect();
    let castellan_pass = start.elapsed();
    let mut mismatches = 0;
    for ((r, c), k) in reqs.iter().zip(&casbin_answers).zip(&castellan_answers) {
        if c != k {
            if mismatches < 5 {
                eprintln!("  MISMATCH {label}: {r:?}: casbin {c}, castellan {k}");
            }
            mismatches += 1;
        }
    }
    let allowed = casbin_answers.iter().zip(&castellan_answers).filter(|(c, k)| **c && **k).count();
    let casbin = |r: &Request| casbin_allows(e, r);
    let castellan = |r: &Request| castellan_allows(ix, r);
    let mut meters = [Meter::new(&casbin, casbin_pass), Meter::new(&castellan, castellan_pass)];
    while meters.iter().any(|m| m.time < MIN_TIME) {
        for m in meters.iter_mut().filter(|m| m.time < MIN_TIME) {
            m.batch(reqs);
        }
    }
    let [c, k] = meters;
    Measured {
        requests: reqs.len(),
        allowed,
        mismatches,
        casbin_ns: c.ns_per_check(),
        castellan_ns: k.ns_per_check(),
        casbin_checks: c.checks,
        castellan_checks: k.checks,
    }
}

/// A result line of the final table.
struct Row {
    /// Size name.
    size: &'static str,
    /// Which request list.
    list: &'static str,
    /// casbin load time.
    casbin_load: Duration,
    /// Castellan facts + index build time.
    castellan_build: Duration,
    /// The measurement.
    m: Measured,
}

/// A duration in a readable unit.
fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Nanoseconds in a readable unit (ns kept below a microsecond).
fn fmt_ns(ns: f64) -> String {
    if ns < 1e3 { format!("{ns:.1} ns") } else { fmt_duration(Duration::from_nanos(ns.round() as u64)) }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    println!(
        "casbin-rs {CASBIN_VERSION} vs castellan-core; {} CPU(s) available; >= {:?} per engine per list",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        MIN_TIME
    );
    let mut rows = Vec::new();
    for size in &SIZES {
        println!(
            "\n== {}: {} roles, {} resources, {} users ({} policies, {} groupings)",
            size.name,
            size.roles,
            size.resources(),
            size.users,
            size.roles,
            size.users
        );
        let start = Instant::now();
        let e = load_casbin(size).await;
        let casbin_load = start.elapsed();
        let start = Instant::now();
        let facts = castellan_facts(size);
        let facts_time = start.elapsed();
        let start = Instant::now();
        let ix = Index::build(&facts);
        let index_time = start.elapsed();
        drop(facts);
        let castellan_build = facts_time + index_time;
        println!(
            "casbin load {} (data generation, add_policies, add_grouping_policies, build_role_links)",
            fmt_duration(casbin_load)
        );
        println!(
            "castellan build {} (facts {}, Index::build {})",
            fmt_duration(castellan_build),
            fmt_duration(facts_time),
            fmt_duration(index_time)
        );
        let lists: [(&'static str, Vec<Request>); 3] = [
            ("bench request", vec![Request::from_bench(&size.bench_request)]),
            ("mix", mix(size)),
            ("unknown users", unknown_users(size)),
        ];
        for (list, reqs) in lists {
            let m = measure(list, &reqs, &e, &ix);
            println!(
                "{list:<13} {:>5} req ({:>4} allowed), mismatches {}: casbin {:>9}/check ({} checks), castellan {:>9}/check ({} checks), casbin/castellan {:.0}x",
                m.requests,
                m.allowed,
                m.mismatches,
                fmt_ns(m.casbin_ns),
                m.casbin_checks,
                fmt_ns(m.castellan_ns),
                m.castellan_checks,
                m.casbin_ns / m.castellan_ns
            );
            rows.push(Row { size: size.name, list, casbin_load, castellan_build, m });
        }
    }
    println!(
        "\n| size | requests | allowed | mismatches | casbin ns/check | castellan ns/check | ratio | casbin load | castellan build |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} × {} | {} | {} | {:.0} | {:.1} | {:.0}x | {} | {} |",
            r.size,
            r.m.requests,
            r.list,
            r.m.allowed,
            r.m.mismatches,
            r.m.casbin_ns,
            r.m.castellan_ns,
            r.m.casbin_ns / r.m.castellan_ns,
            fmt_duration(r.casbin_load),
            fmt_duration(r.castellan_build)
        );
    }
    let mismatches: usize = rows.iter().map(|r| r.m.mismatches).sum();
    assert_eq!(mismatches, 0, "casbin and Castellan must agree on every request");
}
