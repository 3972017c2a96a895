//! Baselines for the load script (`scripts/load`), which measures Castellan beside them in the same run:
//! - `baseline serve ADDR`: a bare axum server with `GET /hello` and `POST /check` (JSON in and out), the ceiling an
//!   HTTP endpoint could reach on this machine with the same load tool;
//! - `baseline sqlite FILE SECONDS`: a bare rusqlite loop of single-row transactions in WAL/NORMAL (the store's
//!   pragmas) on the same file system, printing commits per second.

use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct CheckIn {
    user: i64,
    permission: String,
    #[serde(default)]
    object_pk: Option<String>,
}

#[derive(Serialize)]
struct CheckOut {
    allowed: bool,
    permission: String,
    revision: i64,
}

async fn check(Json(body): Json<CheckIn>) -> Json<CheckOut> {
    let allowed = body.user % 2 == 0 && body.object_pk.is_none();
    Json(CheckOut { allowed, permission: body.permission, revision: 1 })
}

fn serve(addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let app = axum::Router::new().route("/hello", get(|| async { "Hello, World!" })).route("/check", post(check));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

fn sqlite_loop(file: &str, seconds: u64) -> Result<(), Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(file)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS t (a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;",
    )?;
    let start = Instant::now();
    let mut n: i64 = 0;
    while start.elapsed() < Duration::from_secs(seconds) {
        conn.execute_batch("BEGIN")?;
        conn.prepare_cached("INSERT OR REPLACE INTO t (a, b) VALUES (?, ?)")?.execute([n, n % 7])?;
        conn.execute_batch("COMMIT")?;
        n += 1;
    }
    println!("{:.0}", n as f64 / start.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(args.get(2).map_or("127.0.0.1:18081", String::as_str)),
        Some("sqlite") => {
            let file = args.get(2).ok_or("baseline sqlite FILE SECONDS")?;
            let seconds = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
            sqlite_loop(file, seconds)
        }
        _ => Err("usage: baseline serve ADDR | baseline sqlite FILE SECONDS".into()),
    }
}
