//! Test harness: a real server on a bound loopback port over a fresh SQLite file, and a small client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use castellan_server::{AppState, ServerConfig};
use castellan_store::{SqliteStore, Store};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub mod auth;
pub mod directory;
pub mod permissions;
pub mod users;

/// The first superuser's password in every test server.
pub const ADMIN_PASSWORD: &str = "Admin123!";

/// A running server and its store.
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The store behind it, to assert that refused requests changed nothing.
    pub store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    shutdown: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Starts a server with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    /// Starts a server with `config`, bootstrapped with `admin` / `ADMIN_PASSWORD`.
    pub async fn start_with(config: ServerConfig) -> Self {
        Self::launch(config, None).await
    }

    /// Starts a server that records metrics with the process-wide recorder (installed by the first caller).
    pub async fn start_measured() -> Self {
        static RECORDER: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> = std::sync::OnceLock::new();
        let handle = RECORDER.get_or_init(castellan_server::install_metrics).clone();
        Self::launch(ServerConfig::default(), Some(handle.expect("no other recorder in this test binary"))).await
    }

    async fn launch(config: ServerConfig, metrics: Option<metrics_exporter_prometheus::PrometheusHandle>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("castellan.db")).await.unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        castellan_server::bootstrap::first_start(store.as_ref(), Some(ADMIN_PASSWORD.into()), &dir.path().join("pw"))
            .await
            .unwrap();
        let state = AppState::new(store.clone(), config, metrics).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(castellan_server::serve(listener, state, async {
            let _ = rx.await;
        }));
        TestServer { base: format!("http://{addr}"), store, _dir: dir, shutdown: tx, served }
    }

    /// Shuts the server down as SIGTERM does; answers how long serving took to end.
    pub async fn shut_down(self) -> std::time::Duration {
        let started = std::time::Instant::now();
        let _ = self.shutdown.send(());
        self.served.await.unwrap().unwrap();
        started.elapsed()
    }

    /// An anonymous client.
    pub fn anon(&self) -> Client {
        Client { base: self.base.clone(), http: reqwest::Client::new(), token: None }
    }

    /// A client logged in as `username` with a bearer token.
    pub async fn login(&self, username: &str, password: &str) -> Client {
        let anon = self.anon();
        let r = anon.post("/api/v1/auth/login/", json!({"username": username, "password": password})).await;
        assert_eq!(r.status, StatusCode::OK, "login of {username} failed: {}", r.body);
        Client { token: Some(r.body["token"].as_str().unwrap().to_string()), ..anon }
    }

    /// The bootstrap superuser.
    pub async fn admin(&self) -> Client {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user through the API as admin and returns its pk.
    pub async fn create_user(&self, admin: &Client, username: &str, extra: Value) -> i64 {
        let mut body =
            json!({"username": username, "password": "Passw0rd!", "email": format!("{username}@example.com"), "groups": []});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let r = admin.post("/api/v1/users/", body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["pk"].as_i64().unwrap()
    }

    /// The store's revision now.
    pub async fn revision(&self) -> i64 {
        self.store.revision().await.unwrap()
    }
}

/// A response: status, headers and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// Asserts the contract's error shape with `status` and `kind`, and returns the body.
    pub fn error(&self, status: u16, kind: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["type"], kind, "body: {}", self.body);
        assert!(self.body["detail"].is_string());
        assert_eq!(self.body["detail"], self.body["message"]);
        assert!(self.body["id"].as_str().is_some_and(|id| id.len() == 36), "request id: {}", self.body);
        assert!(self.body["errors"].is_array());
        &self.body
    }

    /// The field names listed in a validation error.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map_or(Vec::new(), |e| e.iter().map(|x| x["field"].as_str().unwrap_or("").to_string()).collect())
    }

    /// The `X-Revision` header.
    pub fn revision(&self) -> Option<i64> {
        self.headers.get("x-revision").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
    }
}

/// A client with an optional bearer token.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Client {
    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// Sends raw bytes with a content type.
    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path)).header("content-type", content_type).body(body);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Self::read(req.send().await.unwrap()).await
    }

    /// Reads a response into a `Resp`.
    pub async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }
}

impl TestServer {
    /// The SQLite file behind the server, for tests that plant rows no endpoint writes yet (object grants).
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("castellan.db")
    }
}
