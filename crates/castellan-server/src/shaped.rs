//! hyper answers a request it cannot parse (a malformed request line or header, too many or too large headers)
//! itself, before any service sees it, with a status line and an empty body; it has no hook to give that answer a
//! body (hyperium/hyper#3225). A connection wrapped here recognises those canned answers as hyper writes them and
//! sends them with the API's error body (API.md §1) instead. Every answer of the service itself passes through
//! untouched: its errors always carry a body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ErrorBody, FieldErrorOut};

/// A connection whose canned error answers get the API's error body.
pub struct Shaped<S> {
    inner: S,
    /// A rewritten answer still to be written, and how much of it has been.
    pending: Vec<u8>,
    written: usize,
}

impl<S> Shaped<S> {
    /// Wraps a connection.
    pub fn new(inner: S) -> Self {
        Self { inner, pending: Vec::new(), written: 0 }
    }
}

/// The canned answers hyper writes, and the type and detail of the body each gets.
const CANNED: [(&[u8], &str, &str); 3] = [
    (
        b"HTTP/1.1 400 Bad Request\r\n",
        "ValidationError",
        "The request could not be read: its request line or a header is malformed.",
    ),
    (b"HTTP/1.1 414 URI Too Long\r\n", "UriTooLong", "The request target is longer than the server reads."),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "RequestHeaderFieldsTooLarge",
        "The request has more headers, or larger ones, than the server reads.",
    ),
];

/// The answer `written` with the API's error body, when it is one of hyper's canned answers: one of their status
/// lines, headers only, and an empty body.
fn rewrite(written: &[u8]) -> Option<Vec<u8>> {
    let (status, kind, detail) = CANNED.iter().find(|(status, _, _)| written.starts_with(status))?;
    let head = written.strip_suffix(b"\r\n\r\n")?;
    if head.windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let lines: Vec<&[u8]> = head[status.len()..].split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    let is_length = |line: &[u8]| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:");
    if !lines.iter().any(|line| is_length(line) && line[15..].trim_ascii() == b"0") {
        return None;
    }
    let errors = match *kind {
        "ValidationError" => vec![FieldErrorOut { field: "non_field_errors".into(), message: (*detail).into() }],
        _ => Vec::new(),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let body = ErrorBody { kind, detail: (*detail).into(), message: (*detail).into(), id, errors, code: None };
    let body = serde_json::to_vec(&body).ok()?;
    let mut out = status.to_vec();
    for line in lines.iter().filter(|line| !line.is_empty() && !is_length(line)) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

impl<S: AsyncWrite + Unpin> Shaped<S> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shaped<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shaped<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(rewritten) = rewrite(buf) {
            self.pending = rewritten;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canned_answer_gets_the_error_body_and_a_served_one_does_not() {
        let canned = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 20:00:00 GMT\r\n\r\n";
        let out = rewrite(canned).expect("rewritten");
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("date: Mon, 07 Dec 2026"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["type"], "ValidationError");
        assert_eq!(body["errors"][0]["field"], "non_field_errors");
        let served = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(rewrite(served).is_none(), "an answer with a body is the service's own");
        let head_only = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n";
        assert!(rewrite(head_only).is_none(), "a head written before its body");
        assert!(rewrite(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        let large = rewrite(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(String::from_utf8(large).unwrap().contains("\"type\":\"RequestHeaderFieldsTooLarge\""));
    }
}
