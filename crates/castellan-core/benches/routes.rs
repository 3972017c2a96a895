//! Route matching cost per request as the BE permission catalog grows (issue 11): 200, 2,000 and 20,000 BE
//! permissions shaped like Omnitron's (a list and a detail route per resource, several methods each), one user
//! holding one permission per resource. Run: `cargo bench -p castellan-core --bench routes`.

use std::hint::black_box;
use std::time::Instant;

use castellan_core::catalog::{BePermission, Catalog, CatalogRows, Namespace};
use castellan_core::engine::synthetic::Rng;
use castellan_core::routes::normalize_path;

/// Methods per route shape: a list (get, post) and a detail (get, put, patch, delete) route: 6 per resource.
const SHAPES: [(&str, &str); 6] = [
    ("get", "$"),
    ("post", "$"),
    ("get", "(?P<pk>[^/.]+)/$"),
    ("put", "(?P<pk>[^/.]+)/$"),
    ("patch", "(?P<pk>[^/.]+)/$"),
    ("delete", "(?P<pk>[^/.]+)/$"),
];

fn catalog(permissions: usize) -> (Catalog, usize) {
    let resources = permissions / SHAPES.len();
    let mut rows = CatalogRows::default();
    for ns in 0..20 {
        rows.namespaces.push(Namespace { pk: ns + 1, name: format!("ns{ns}"), builtin: false, created: 0, modified: 0 });
    }
    let mut pk = 0;
    for r in 0..resources {
        for (action, tail) in SHAPES {
            pk += 1;
            let path = format!("api/v1/resource{r}/{tail}");
            rows.be.push(BePermission {
                pk,
                name: format!("ns{}-{action}-{path}", r % 20),
                namespace: (r % 20) as i64 + 1,
                action: action.into(),
                path,
                builtin: false,
                stale: false,
                created: 0,
                modified: 0,
            });
        }
        // The user holds the detail GET of every resource.
        rows.be_users.push((pk - 3, 7));
    }
    (Catalog::build(rows, None), resources)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("BE permissions | build ms | normalise+match ns/request p50 | p99 | allowed");
    for permissions in [200, 2_000, 20_000] {
        let started = Instant::now();
        let (catalog, resources) = catalog(permissions);
        let built = started.elapsed();
        let mut rng = Rng(42);
        let mut samples = Vec::with_capacity(200_000);
        let mut allowed = 0usize;
        let paths: Vec<String> =
            (0..4096).map(|_| format!("/api/v1/resource{}/{}/", rng.below(resources as u64), rng.below(1_000_000))).collect();
        for i in 0..200_000 {
            let raw = &paths[i % paths.len()];
            let t = Instant::now();
            let path = normalize_path(black_box(raw)).unwrap_or_default();
            let decision = catalog.route(7, false, "GET", &path);
            samples.push(t.elapsed().as_nanos() as u64);
            allowed += usize::from(black_box(decision).allowed);
        }
        samples.sort_unstable();
        let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        println!("{permissions:>14} | {:>8.1} | {:>30} | {:>4} | {allowed}", built.as_secs_f64() * 1e3, p(0.5), p(0.99));
    }
}
