//! End to end: a real nginx (`auth_request`, as `docs/forward-auth.md` configures it) in front of a tiny upstream,
//! with Castellan deciding each request. `./scripts/test` installs Debian's `nginx-light` when it is missing.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use axum::http::{HeaderMap, Uri};
use common::TestServer;
use common::permissions::{member, ok};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The nginx configuration of `docs/forward-auth.md`, with this test's ports and directories.
fn config(dir: &std::path::Path, listen: u16, castellan: &str, upstream: SocketAddr) -> String {
    let template = include_str!("../../../docs/forward-auth.nginx.conf");
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{}\n}}\n",
        template
            .replace("listen 80;", &format!("listen 127.0.0.1:{listen};"))
            .replace("castellan:8080", castellan)
            .replace("app:8000", &upstream.to_string())
    )
}

/// An nginx process, stopped when dropped (also when the test fails). SIGTERM, not SIGKILL: the master then stops
/// its workers, which SIGKILL would leave running.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nginx is not installed: ./scripts/test installs Debian's nginx-light")
}

/// The upstream: echoes what reached it.
async fn upstream() -> SocketAddr {
    async fn echo(uri: Uri, headers: HeaderMap) -> axum::Json<Value> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        axum::Json(json!({
            "uri": uri.to_string(),
            "user_id": header("x-user-id"),
            "username": header("x-username"),
            "groups": header("x-user-groups"),
            "cookie": header("cookie"),
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(echo)).await });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_nginx(dir: &std::path::Path, conf: &str, port: u16) -> Nginx {
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(nginx_binary())
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &dir.join("nginx.conf").display().to_string(),
            "-e",
            &dir.join("error.log").display().to_string(),
        ])
        .spawn()
        .expect("start nginx");
    let nginx = Nginx(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return nginx;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
}

#[tokio::test]
async fn nginx_lets_through_only_what_castellan_allows() {
    let server = TestServer::start().await;
    let admin = server.admin().await;
    let ns = admin.post("/api/v1/be_permission_namespace/", json!({"name": "shop"})).await.body["pk"].as_i64().unwrap();
    let be = admin.post("/api/v1/be_permissions/", json!({"namespace": ns, "action": "get", "path": "api/v1/products/$"})).await;
    let be = be.body["pk"].as_i64().unwrap();
    let (user, _) = member(&server, &admin, "shopper", &[]).await;
    let team = common::permissions::group_pk(&admin, "shoppers", None, json!({})).await;
    admin.patch(&format!("/api/v1/groups/{team}/assign-users/"), json!({"users": [user]})).await;
    ok(&admin.patch(&format!("/api/v1/be_permissions/{be}/assign-users/"), json!({"users": [user]})).await);
    let (_, stranger) = member(&server, &admin, "stranger", &[]).await;

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let castellan = server.base.trim_start_matches("http://").to_string();
    let _nginx = start_nginx(dir.path(), &config(dir.path(), port, &castellan, upstream().await), port).await;
    let proxy = format!("http://127.0.0.1:{port}");

    // The user logs in through the proxy's origin with a cookie session, as a browser would.
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = browser
        .post(format!("{}/api/v1/auth/login/", server.base))
        .json(&json!({"username": "shopper", "password": common::permissions::PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let cookie = format!("{}; theme=dark", cookies.join("; "));

    let get = |path: &str, cookie: Option<&str>, bearer: Option<&str>| {
        let mut req = reqwest::Client::new().get(format!("{proxy}{path}"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send()
    };

    let r = get("/api/v1/products/", Some(&cookie), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["user_id"], user.to_string());
    assert_eq!(seen["username"], "shopper");
    assert_eq!(seen["groups"], team.to_string());
    // The session cookies stop at the proxy; the application's own cookies go through.
    assert_eq!(seen["cookie"], "theme=dark", "{seen}");

    assert_eq!(get("/api/v1/orders/", Some(&cookie), None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(get("/api/v1/products/", None, None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get("/api/v1/products/", None, stranger.token.as_deref()).await.unwrap().status(), StatusCode::FORBIDDEN);
    // Crafted paths do not slip past.
    for crafted in
        ["/api/v1/%2e%2e/admin", "/api/v1/products/%2e%2e/%2e%2e/admin", "/api/v1/products%2F..%2Fadmin", "/api/v1/products./"]
    {
        let status = get(crafted, Some(&cookie), None).await.unwrap().status();
        assert!(status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST, "{crafted}: {status}");
    }
}
