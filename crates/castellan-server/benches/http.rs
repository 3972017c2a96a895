//! HTTP load figures for issue 2, measured side by side in one run on this machine:
//! - logins/s against raw argon2id hashes/s on all cores (same parameters), and `/healthz` latency idle vs during
//!   a login flood;
//! - `GET /api/v1/users/?page_size=50` (first and last page) and a `search=` query with 100k users: p50/p99.
//!
//! - membership writes/s against raw single-row SQLite WAL inserts/s, one of each in turn; with a synthetic directory (1M users, 111,110
//!   groups 5 levels deep): moving a subtree of 1,111 groups, recursive members of a root group, users with
//!   `groups=true`.
//!
//! Run: `cargo bench -p castellan-server --bench http` (`USERS=N`, `DIRECTORY_USERS=N`, `SECONDS=S`, `ROUNDS=N` change
//! sizes and durations; `ONLY=login|list|directory` runs one section).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use castellan_core::password;
use castellan_server::{AppState, ServerConfig};
use castellan_store::{SqliteStore, Store, WriteCtx};

const PASSWORD: &str = "Bench123!";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Raw argon2id hashes per second with one thread per core, for `secs`.
fn raw_hash_rate(secs: u64) -> f64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    password::hash(PASSWORD).expect("hash");
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("thread");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

struct Server {
    base: String,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
}

async fn start() -> Server {
    start_with(None).await.0
}

/// Starts a server over a fresh store, bulk-loading `dataset` first (as a restart over existing data would see it).
async fn start_with(dataset: Option<castellan_store::DatasetSpec>) -> (Server, Option<castellan_store::DatasetInfo>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(&dir.path().join("castellan.db")).await.expect("open");
    sqlite.migrate().await.expect("migrate");
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    castellan_server::bootstrap::first_start(store.as_ref(), Some(PASSWORD.into()), &dir.path().join("pw"))
        .await
        .expect("bootstrap");
    let mut info = None;
    if let Some(spec) = dataset {
        let loading = Instant::now();
        let loaded = sqlite.load_dataset(&spec, &password::hash(PASSWORD).expect("hash")).await.expect("dataset");
        let groups: i64 = loaded.levels.iter().map(|(a, b)| b - a + 1).sum();
        println!(
            "dataset: {} users, {groups} groups in {} levels, {} memberships loaded in {:.1} s",
            spec.users,
            loaded.levels.len(),
            loaded.memberships,
            loading.elapsed().as_secs_f64()
        );
        info = Some(loaded);
    }
    let state = AppState::new(store.clone(), ServerConfig::default(), None).await.expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(castellan_server::serve(listener, state, std::future::pending()));
    (Server { base, store, dir }, info)
}

async fn timed_get(client: &reqwest::Client, url: &str, token: Option<&str>) -> Duration {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let start = Instant::now();
    let r = req.send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.bytes().await.expect("body");
    start.elapsed()
}

async fn healthz_latencies(client: &reqwest::Client, base: &str, secs: u64) -> Vec<Duration> {
    let url = format!("{base}/healthz");
    let end = Instant::now() + Duration::from_secs(secs);
    let mut out = Vec::new();
    while Instant::now() < end {
        out.push(timed_get(client, &url, None).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out.sort();
    out
}

async fn login(client: &reqwest::Client, base: &str) -> (u16, Option<String>) {
    let r = client
        .post(format!("{base}/api/v1/auth/login/"))
        .json(&serde_json::json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["token"].as_str().map(str::to_string))
}

/// Logins per second from `flooders` concurrent clients for `secs`.
async fn login_rate(client: &reqwest::Client, base: &str, flooders: usize, secs: f64) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..flooders)
        .map(|_| {
            let (stop, ok, refused, client, base) = (stop.clone(), ok.clone(), refused.clone(), client.clone(), base.to_string());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match login(&client, &base).await.0 {
                        200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("flooder");
    }
    (ok.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64(), refused.load(Ordering::Relaxed))
}

async fn login_figures(secs: u64) {
    let server = start().await;
    let client = reqwest::Client::new();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Alternate short rounds of raw hashing and login floods so drift in the shared machine's load hits both alike.
    let (mut hashes, mut logins, mut refused) = (0.0, 0.0, 0);
    let rounds = 3;
    for _ in 0..rounds {
        hashes += tokio::task::spawn_blocking(move || raw_hash_rate(secs)).await.expect("hash rate") / rounds as f64;
        let (rate, no) = login_rate(&client, &server.base, cores * 2, secs as f64).await;
        logins += rate / rounds as f64;
        refused += no;
    }
    println!(
        "login: raw argon2id hashes/s on {cores} cores = {hashes:.1}; logins/s = {logins:.1}; ratio = {:.2} (target >= 0.9); refused (429) = {refused}",
        logins / hashes
    );
    let idle = healthz_latencies(&client, &server.base, secs).await;
    let flood = {
        let (client, base) = (client.clone(), server.base.clone());
        tokio::spawn(async move { login_rate(&client, &base, cores * 2, secs as f64 + 0.5).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let flooded = healthz_latencies(&client, &server.base, secs).await;
    flood.await.expect("flood");
    println!(
        "healthz: idle p50 {:.3} ms p99 {:.3} ms; during login flood p50 {:.3} ms p99 {:.3} ms; p99 ratio = {:.2} (target <= 2)",
        ms(percentile(&idle, 0.5)),
        ms(percentile(&idle, 0.99)),
        ms(percentile(&flooded, 0.5)),
        ms(percentile(&flooded, 0.99)),
        percentile(&flooded, 0.99).as_secs_f64() / percentile(&idle, 0.99).as_secs_f64()
    );
}

async fn list_figures(users: u64, rounds: usize) {
    let spec = castellan_store::DatasetSpec { users, roots: 0, fanout: 0, depth: 0, memberships_per_user: 0, org: 1 };
    let server = start_with(Some(spec)).await.0;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base).await.1.expect("token");
    let last_page = (users + 1).div_ceil(50);
    let cases = [
        ("first page", "/api/v1/users/?page_size=50".to_string()),
        ("last page", format!("/api/v1/users/?page_size=50&page={last_page}")),
        ("search (substring)", "/api/v1/users/?page_size=50&search=domain42".to_string()),
        ("search (last page)", "/api/v1/users/?page_size=50&search=domain42&page=21".to_string()),
        ("search (prefix, 2 chars)", "/api/v1/users/?page_size=50&search=us".to_string()),
    ];
    for (name, path) in cases {
        let url = format!("{}{path}", server.base);
        let mut samples = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            samples.push(timed_get(&client, &url, Some(&token)).await);
        }
        samples.sort();
        println!(
            "GET users {name} ({users} users): p50 {:.2} ms p99 {:.2} ms (target p99 <= 15 ms)",
            ms(percentile(&samples, 0.5)),
            ms(percentile(&samples, 0.99))
        );
    }
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!("p50 {:.2} ms p99 {:.2} ms", ms(percentile(samples, 0.5)), ms(percentile(samples, 0.99)))
}

/// A raw SQLite WAL database (the store writer's pragmas) with one two-column table, for single-row inserts.
async fn raw_db(path: &std::path::Path) -> Arc<std::sync::Mutex<rusqlite::Connection>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(&path).expect("raw db");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE t (a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID",
        )
        .expect("table");
        Arc::new(std::sync::Mutex::new(conn))
    })
    .await
    .expect("raw db thread")
}

/// Time taken by single-row inserts of keys `from..to`, one autocommit statement each, on a blocking thread.
async fn raw_inserts(conn: &Arc<std::sync::Mutex<rusqlite::Connection>>, from: i64, to: i64) -> Duration {
    let conn = conn.clone();
    let start = Instant::now();
    tokio::task::spawn_blocking(move || {
        let conn = conn.lock().expect("raw db lock");
        let mut insert = conn.prepare_cached("INSERT INTO t (a, b) VALUES (?1, ?2)").expect("prepare");
        for i in from..to {
            insert.execute((i, i % 7)).expect("insert");
        }
    })
    .await
    .expect("raw inserts thread");
    start.elapsed()
}

async fn timed_send(req: reqwest::RequestBuilder) -> Duration {
    let start = Instant::now();
    let r = req.send().await.expect("request");
    assert!(r.status().is_success(), "{}", r.status());
    r.bytes().await.expect("body");
    start.elapsed()
}

async fn directory_figures(users: u64, rounds: usize) {
    let spec = castellan_store::DatasetSpec { users, roots: 10, fanout: 10, depth: 5, memberships_per_user: 1, org: 1 };
    let (server, info) = start_with(Some(spec)).await;
    let info = info.expect("dataset info");

    // One of each in turn, so that drift in the shared machine's load hits both sides alike.
    let writes = 4000i64;
    let ctx = WriteCtx::default();
    let (leaf_first, leaf_last) = *info.levels.last().expect("levels");
    let raw = raw_db(&server.dir.path().join("raw.db")).await;
    let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
    for i in 0..writes {
        let user = info.users.0 + i;
        let group = leaf_last - (i % (leaf_last - leaf_first));
        let start = Instant::now();
        castellan_store::planned::add_members(server.store.as_ref(), &ctx, group, &[user], None).await.expect("membership");
        ours += start.elapsed();
        theirs += raw_inserts(&raw, i, i + 1).await;
    }
    let membership_rate = writes as f64 / ours.as_secs_f64();
    let raw_rate = writes as f64 / theirs.as_secs_f64();
    println!(
        "membership writes/s = {membership_rate:.0}; raw single-row WAL inserts/s = {raw_rate:.0}; ratio = {:.2} (target >= 0.3)",
        membership_rate / raw_rate
    );

    let client = reqwest::Client::new();
    let token = login(&client, &server.base).await.1.expect("token");
    let (root_a, second_root) = (info.levels[0].0, info.levels[0].0 + 1);
    let subtree = info.levels[1].0;
    let mut moves = Vec::new();
    for i in 0..rounds.min(100) {
        let parent = if i % 2 == 0 { second_root } else { root_a };
        let req = client
            .patch(format!("{}/api/v1/groups/{subtree}/", server.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"parent": parent}));
        moves.push(timed_send(req).await);
    }
    println!("PATCH group parent (subtree of 1,111 groups): {}", summary(&mut moves));

    let recursive = format!("{}/api/v1/groups/{}/users/?recursive=true&page_size=50", server.base, info.levels[0].0 + 2);
    let mut samples = Vec::new();
    for _ in 0..rounds {
        samples.push(timed_get(&client, &recursive, Some(&token)).await);
    }
    println!("GET recursive members of a root group (~{} members), page of 50: {}", users / 10, summary(&mut samples));

    let expanded = format!("{}/api/v1/users/?page_size=50&groups=true&page=100", server.base);
    let mut samples = Vec::new();
    for _ in 0..rounds {
        samples.push(timed_get(&client, &expanded, Some(&token)).await);
    }
    println!("GET 50 users with groups=true: {}", summary(&mut samples));
}

/// Requests per second from `clients` concurrent clients for `secs`, each request built by `make`.
async fn request_rate(clients: usize, secs: f64, make: impl Fn() -> reqwest::RequestBuilder + Send + Sync + 'static) -> f64 {
    let make = Arc::new(make);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (make, stop, done) = (make.clone(), stop.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = make().send().await.expect("request");
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.expect("body");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// `POST /api/v1/check/` against a bare axum hello-world with the same client, and bulk checks in batches of 1,000.
async fn check_figures(secs: u64) {
    let server = start().await;
    let client = reqwest::Client::new();
    let token = login(&client, &server.base).await.1.expect("token");
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{}{path}", server.base)).bearer_auth(&token).json(&body).send()
    };
    post("/api/v1/modules/", serde_json::json!({"id": "catalogs"})).await.expect("module");
    let user = post(
        "/api/v1/users/",
        serde_json::json!({"username": "checked", "password": PASSWORD, "email": "c@example.com", "groups": []}),
    )
    .await
    .expect("user")
    .json::<serde_json::Value>()
    .await
    .expect("json")["pk"]
        .as_i64()
        .expect("pk");
    post(&format!("/api/v1/users/{user}/permissions/catalogs/"), serde_json::json!({"permissions": ["read"]}))
        .await
        .expect("grant");

    let hello_app =
        axum::Router::new().route("/", axum::routing::post(|| async { axum::Json(serde_json::json!({"allowed": true})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hello_base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, hello_app).await });

    let clients = 16;
    let (c, b, t) = (client.clone(), server.base.clone(), token.clone());
    let check = move || {
        c.post(format!("{b}/api/v1/check/"))
            .bearer_auth(&t)
            .json(&serde_json::json!({"user": user, "permission": "catalogs.read"}))
    };
    let c = client.clone();
    let hello = move || c.post(format!("{hello_base}/")).json(&serde_json::json!({"user": user}));
    // Alternate short rounds so that drift in the shared machine's load hits both alike.
    let rounds = 10;
    let round = secs as f64 / rounds as f64;
    let (mut checks, mut hellos) = (0.0, 0.0);
    for _ in 0..rounds {
        checks += request_rate(clients, round, check.clone()).await / rounds as f64;
        hellos += request_rate(clients, round, hello.clone()).await / rounds as f64;
    }
    println!(
        "POST /api/v1/check/ req/s = {checks:.0}; bare axum hello-world req/s = {hellos:.0}; ratio = {:.2} (target >= 0.6), {clients} clients",
        checks / hellos
    );

    let batch: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"user": if i % 2 == 0 { user } else { 1 }, "permission": "catalogs.read"}))
        .collect();
    let body = serde_json::json!({"checks": batch});
    let (c, b, t) = (client.clone(), server.base.clone(), token.clone());
    let batches =
        request_rate(4, secs as f64, move || c.post(format!("{b}/api/v1/check/bulk/")).bearer_auth(&t).json(&body)).await;
    println!("bulk checks/s = {:.0} in batches of 1,000 (target >= 1M)", batches * 1000.0);
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: measure only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs = env_or("SECONDS", 5);
    let rounds = env_or("ROUNDS", 300) as usize;
    let only = std::env::var("ONLY").unwrap_or_default();
    if only.is_empty() || only == "login" {
        login_figures(secs).await;
    }
    if only.is_empty() || only == "list" {
        list_figures(env_or("USERS", 100_000), rounds).await;
    }
    if only.is_empty() || only == "check" {
        check_figures(secs).await;
    }
    if only.is_empty() || only == "directory" {
        directory_figures(env_or("DIRECTORY_USERS", 1_000_000), rounds).await;
    }
}
