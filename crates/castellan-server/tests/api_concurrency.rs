//! Many concurrent writers over HTTP (memberships, group moves, grants): every acknowledged write is kept, after the
//! run and after a restart, revisions are unique and gapless, and the served index equals one rebuilt from the store.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use castellan_core::engine::Index;
use castellan_store::{SqliteStore, Store};
use common::{Client, TestServer};
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::json;

const WRITERS: usize = 64;
const RUN_FOR: Duration = Duration::from_secs(3);
const USERS: usize = 16;
const OBJECTS: usize = 8;

/// What the writers had acknowledged, with the revision each answer carried.
#[derive(Default)]
struct Acknowledged {
    revisions: Vec<i64>,
    memberships: BTreeSet<(i64, i64)>,
    /// Mover group → (revision, parent) of each acknowledged move.
    moves: BTreeMap<i64, Vec<(i64, i64)>>,
    grants: BTreeSet<(i64, usize)>,
}

/// Now in µs since the epoch, as the engine's checks take it.
fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

struct Fixture {
    users: Vec<i64>,
    leaves: Vec<i64>,
    roots: [i64; 2],
    movers: Vec<i64>,
}

async fn group(admin: &Client, name: &str, parent: Option<i64>) -> i64 {
    let r = admin.post("/api/v1/groups/", json!({"name": name, "parent": parent})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["pk"].as_i64().unwrap()
}

async fn fixture(server: &TestServer, admin: &Client) -> Fixture {
    let r = admin.post("/api/v1/modules/", json!({"id": "brands", "description": "Brands"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let roots = [group(admin, "north", None).await, group(admin, "south", None).await];
    let mut leaves = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        for j in 0..4 {
            leaves.push(group(admin, &format!("leaf-{i}-{j}"), Some(*root)).await);
        }
    }
    let mut movers = Vec::new();
    for j in 0..4 {
        movers.push(group(admin, &format!("mover-{j}"), Some(roots[0])).await);
    }
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(server.create_user(admin, &format!("writer{i}"), json!({})).await);
    }
    Fixture { users, leaves, roots, movers }
}

/// One writer: memberships, moves and grants in turn until the time is up.
async fn write_until(admin: Client, f: Arc<Fixture>, seed: usize, deadline: Instant, acked: Arc<Mutex<Acknowledged>>) {
    let mut n = seed;
    while Instant::now() < deadline {
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let pick = |len: usize, shift: u32| (n >> shift) % len;
        let user = f.users[pick(USERS, 20)];
        match pick(3, 40) {
            0 => {
                let leaf = f.leaves[pick(f.leaves.len(), 30)];
                let r = admin.patch(&format!("/api/v1/groups/{leaf}/assign-users/"), json!({"users": [user]})).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                let mut a = acked.lock();
                a.revisions.push(r.revision().expect("X-Revision"));
                a.memberships.insert((user, leaf));
            }
            1 => {
                let mover = f.movers[pick(f.movers.len(), 30)];
                let parent = f.roots[pick(2, 50)];
                let r = admin.patch(&format!("/api/v1/groups/{mover}/"), json!({"parent": parent})).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                let revision = r.revision().expect("X-Revision");
                let mut a = acked.lock();
                a.revisions.push(revision);
                a.moves.entry(mover).or_default().push((revision, parent));
            }
            _ => {
                let object = pick(OBJECTS, 30);
                let r = admin
                    .post(
                        &format!("/api/v1/rbac/permissions/assigned_by_users/{user}/assign/"),
                        json!({"permissions": ["brands.read"], "model": "brands", "object_pk": format!("o{object}")}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                let mut a = acked.lock();
                a.revisions.push(r.revision().expect("X-Revision"));
                a.grants.insert((user, object));
            }
        }
    }
}

/// Every acknowledged membership, move and grant is in `store`.
async fn assert_kept(store: &dyn Store, f: &Fixture, acked: &Acknowledged) {
    for &(user, group) in &acked.memberships {
        assert!(store.membership(user, group).await.unwrap().is_some(), "membership ({user}, {group}) lost");
    }
    for (mover, moves) in &acked.moves {
        let last = moves.iter().max().map(|m| m.1);
        assert_eq!(store.get_group(*mover).await.unwrap().parent, last, "the last acknowledged move of {mover}");
    }
    let (facts, _) = store.engine_facts().await.unwrap();
    let index = Index::build(&facts);
    let now = now_micros();
    for &(user, object) in &acked.grants {
        let key = format!("o{object}");
        assert!(index.check(user, "brands", "read", Some(("brands", &key)), now).allowed, "grant ({user}, {key}) lost");
    }
    assert!(f.users.iter().all(|u| index.has_user(*u)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_every_acknowledged_write_with_gapless_revisions() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let f = Arc::new(fixture(&server, &admin).await);
    let start_revision = server.revision().await;
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let deadline = Instant::now() + RUN_FOR;
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| tokio::spawn(write_until(admin.clone(), f.clone(), i * 7919 + 1, deadline, acked.clone())))
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let acked = Arc::into_inner(acked).unwrap().into_inner();
    assert!(acked.revisions.len() > WRITERS, "only {} writes in {RUN_FOR:?}", acked.revisions.len());

    // Unique revisions, and the log holds exactly the run's revisions, without gaps.
    let answered: BTreeSet<i64> = acked.revisions.iter().copied().collect();
    assert_eq!(answered.len(), acked.revisions.len(), "two writes answered the same revision");
    let logged: Vec<i64> = server.store.changes(0, 1_000_000).await.unwrap().iter().filter_map(|c| c.revision).collect();
    let expected: Vec<i64> = (1..=*logged.last().unwrap()).collect();
    assert_eq!(logged, expected, "revisions are gapless and in log order");
    let run: BTreeSet<i64> = logged.iter().copied().filter(|r| *r > start_revision).collect();
    assert_eq!(run, answered, "every write of the run was acknowledged with its own logged revision");

    assert_kept(server.store.as_ref(), &f, &acked).await;
    served_index_equals_a_rebuild(&server, &admin, &f).await;

    // After a restart: the same file opened anew.
    let reopened = SqliteStore::open(&server.db_path()).await.unwrap();
    assert_kept(&reopened, &f, &acked).await;
}

/// Bulk checks answered by the server's followed index equal those of an index built from the store's facts.
async fn served_index_equals_a_rebuild(server: &TestServer, admin: &Client, f: &Fixture) {
    let (facts, revision) = server.store.engine_facts().await.unwrap();
    let rebuilt = Index::build(&facts);
    let now = now_micros();
    let mut checks = Vec::new();
    let mut expected = Vec::new();
    for &user in &f.users {
        for object in 0..OBJECTS {
            let key = format!("o{object}");
            checks.push(json!({"user": user, "permission": "brands.read", "object_pk": key}));
            expected.push(rebuilt.check(user, "brands", "read", Some(("brands", &key)), now).allowed);
        }
    }
    let r = admin.post("/api/v1/check/bulk/", json!({"checks": checks, "at_least_revision": revision})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let served: Vec<bool> = r.body["results"].as_array().unwrap().iter().map(|c| c["allowed"].as_bool().unwrap()).collect();
    assert_eq!(served, expected);
    assert!(expected.iter().any(|a| *a), "some grants were written");
}
