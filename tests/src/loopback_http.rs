//! The plumbing the harness's small HTTP stand-ins share (the token server, the DSM):
//! a listener on 127.0.0.1 with a thread per connection that stops on drop, reading one
//! request (head, `Authorization`, `Content-Length` body) and writing one JSON answer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::HarnessError;

/// Largest request head read.
const HEAD_MAX: usize = 64 * 1024;

/// A listener on 127.0.0.1 (a free port) serving each connection on its own thread;
/// stopped and joined on drop.
pub struct LoopbackServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts serving: `handle` gets each accepted connection.
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let h = handle.clone();
                std::thread::spawn(move || h(conn));
            }
        });
        Ok(LoopbackServer {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request as read by [`read_request`].
#[derive(Debug)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Reads one request (10 s read timeout); `None` when the peer closes early, the head
/// exceeds 64 KiB or the body `max_body`.
pub fn read_request(conn: &mut TcpStream, max_body: usize) -> std::io::Result<Option<HttpRequest>> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 || buf.len() > HEAD_MAX {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut authorization = None;
    for l in lines {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        if n.trim().eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().unwrap_or(0);
        } else if n.trim().eq_ignore_ascii_case("authorization") {
            authorization = Some(v.trim().to_string());
        }
    }
    if length > max_body {
        return Ok(None);
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(HttpRequest {
        method,
        target,
        authorization,
        body,
    }))
}

/// Writes a JSON answer with `status` and closes the exchange.
pub fn respond_json(conn: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}
