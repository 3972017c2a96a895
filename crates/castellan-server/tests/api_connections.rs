//! Hostile clients at the connection level: slow headers, idle kept-alive connections, trickled bodies, and more
//! silent connections than the server may hold. Each is bounded, and the server keeps answering.

mod common;

use std::time::{Duration, Instant};

use castellan_server::ServerConfig;
use castellan_server::serve::ConnectionLimits;
use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server whose header and body timeouts are one second, holding at most `max_connections` connections.
async fn bounded(max_connections: usize) -> TestServer {
    let connections = ConnectionLimits {
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections,
        shutdown_grace: Duration::from_secs(1),
    };
    TestServer::start_with(ServerConfig { connections, ..ServerConfig::default() }).await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection (or 5 s pass); answers what was read and when it was closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), Some(started.elapsed())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_disconnected() {
    let server = bounded(64).await;
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (_, closed) = read_until_closed(&mut slow).await;
    let closed = closed.expect("the connection stays open past the header timeout");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let server = bounded(64).await;
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let (answered, closed) = read_until_closed(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    let closed = closed.expect("an idle connection stays open past the header timeout");
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_in_the_error_shape() {
    let server = bounded(64).await;
    let mut trickle = connect(&server).await;
    let head = "POST /api/v1/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    trickle.write_all(head.as_bytes()).await.unwrap();
    trickle.write_all(b"{\"username\": ").await.unwrap();
    let (answered, _) = read_until_closed(&mut trickle).await;
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(answered.contains("\"type\":\"RequestTimeout\""), "{answered}");
}

/// More silent connections than the cap: those beyond it are closed at once, the silent ones are closed by the
/// header timeout, and the server answers again without a restart.
#[tokio::test]
async fn silent_connections_beyond_the_cap_cannot_take_the_server_down() {
    let server = bounded(8).await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(connect(&server).await);
    }
    // Let the server accept all eight before the ninth arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut beyond = connect(&server).await;
    let (_, closed) = read_until_closed(&mut beyond).await;
    assert!(closed.expect("a connection beyond the cap is kept") < Duration::from_millis(900), "closed at once");

    let anon = server.anon();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = tokio::time::timeout(Duration::from_millis(500), anon.http.get(format!("{}/healthz", server.base)).send());
        if let Ok(Ok(r)) = answer.await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz does not answer once the silent connections time out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for mut s in silent {
        let (_, closed) = read_until_closed(&mut s).await;
        assert!(closed.is_some(), "a silent connection stays open");
    }
}

/// Shutdown lets requests in flight finish, but a `watch/` stream, which never ends by itself, holds it for the
/// grace period only.
#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_watch_stream() {
    let server = bounded(64).await;
    let admin = server.admin().await;
    let mut stream = admin
        .http
        .get(format!("{}/api/v1/watch/", server.base))
        .bearer_auth(admin.token.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let _ = tokio::time::timeout(Duration::from_millis(300), stream.chunk()).await;
    let took = tokio::time::timeout(Duration::from_secs(10), server.shut_down()).await.expect("shutdown hangs");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}

/// A request target or headers larger than the server reads are answered in the contract's error shape.
#[tokio::test]
async fn oversized_targets_and_headers_get_the_error_shape() {
    let server = bounded(64).await;
    let http = reqwest::Client::new();
    let long = format!("{}/api/v1/users/?search={}", server.base, "a".repeat(9000));
    let r = common::Client::read(http.get(long).send().await.unwrap()).await;
    r.error(414, "UriTooLong");
    let big = "b".repeat(8000);
    let mut req = http.get(format!("{}/healthz", server.base));
    for name in ["x-a", "x-b", "x-c", "x-d", "x-e"] {
        req = req.header(name, big.as_str());
    }
    let r = common::Client::read(req.send().await.unwrap()).await;
    r.error(431, "RequestHeaderFieldsTooLarge");
    assert_eq!(http.get(format!("{}/healthz", server.base)).send().await.unwrap().status(), 200);
}

/// Requests hyper cannot parse (a malformed request line, a header with a space in its name, more headers than it
/// reads) are answered by hyper itself before any handler runs: they still get the error shape, and the connection
/// serving them does not disturb the next.
#[tokio::test]
async fn requests_hyper_cannot_parse_are_answered_in_the_error_shape() {
    let server = bounded(64).await;
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let malformed = [
        ("GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n".to_string(), "400", "ValidationError"),
        ("GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n".to_string(), "400", "ValidationError"),
        ("\u{1}\u{2}\u{3} garbage\r\n\r\n".to_string(), "400", "ValidationError"),
        (format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n"), "431", "RequestHeaderFieldsTooLarge"),
    ];
    for (request, status, kind) in malformed {
        let mut stream = connect(&server).await;
        stream.write_all(request.as_bytes()).await.unwrap();
        let (answered, _) = read_until_closed(&mut stream).await;
        assert!(answered.starts_with(&format!("HTTP/1.1 {status}")), "{request:?}: {answered}");
        let (head, body) = answered.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("content-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(body["type"], kind, "{request:?}");
        assert_eq!(body["detail"], body["message"]);
        assert!(body["id"].as_str().is_some_and(|id| id.len() == 36), "{body}");
    }
    let mut fine = connect(&server).await;
    fine.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let (answered, _) = read_until_closed(&mut fine).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}
