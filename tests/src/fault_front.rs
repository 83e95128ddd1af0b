//! A fault-injecting front for a registry, on loopback: each new connection's first
//! request is read; a `GET`/`HEAD` may be answered with a fault instead of being
//! forwarded (by a seeded schedule), everything else is relayed byte for byte to the
//! registry behind it (the rest of a kept-alive connection included, so faults hit the
//! first request of each connection; a fault closes its connection, so the client opens
//! new ones).
//!
//! Faults: `503` with `Retry-After: 0`, `502`, `429` with `Retry-After: 0`, or a reset
//! (the connection closed without an answer). Only `GET`/`HEAD` are faulted: they are
//! what kiln retries; a faulted upload would (rightly) fail the conversion.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::loopback_http::LoopbackServer;
use crate::HarnessError;

/// The front; stops on drop.
pub struct FaultFront {
    server: LoopbackServer,
    faults: Arc<AtomicU64>,
}

impl FaultFront {
    /// Fronts `127.0.0.1:{upstream_port}`, faulting `percent` % of the first
    /// `GET`/`HEAD` requests of connections, chosen by `seed`.
    pub fn start(upstream_port: u16, percent: u64, seed: u64) -> Result<Self, HarnessError> {
        let faults = Arc::new(AtomicU64::new(0));
        let counter = Arc::new(AtomicU64::new(0));
        let f2 = faults.clone();
        let server = LoopbackServer::start(move |conn| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let _ = serve(conn, upstream_port, percent, seed, n, &f2);
        })?;
        Ok(FaultFront { server, faults })
    }

    /// `127.0.0.1:PORT`, for references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// Faults injected so far.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::SeqCst)
    }
}

/// Whether the `n`th connection (0-based) is faulted under `seed` and `percent`.
pub fn faulted(seed: u64, n: u64, percent: u64) -> bool {
    mix(seed ^ n) % 100 < percent
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn serve(
    mut conn: TcpStream,
    upstream_port: u16,
    percent: u64,
    seed: u64,
    n: u64,
    faults: &AtomicU64,
) -> std::io::Result<()> {
    // Read the first request's head (its body, if any, is relayed afterwards).
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let k = conn.read(&mut chunk)?;
        if k == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..k]);
        if head.len() > 64 * 1024 {
            return Ok(());
        }
    }
    let idempotent = head.starts_with(b"GET ") || head.starts_with(b"HEAD ");
    if idempotent && faulted(seed, n, percent) {
        faults.fetch_add(1, Ordering::SeqCst);
        let answer: &[u8] = match mix(seed ^ n ^ 0xfa) % 4 {
            0 => b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            1 => b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            2 => b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            _ => b"",
        };
        conn.write_all(answer)?;
        let _ = conn.shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream_port))?;
    up.write_all(&head)?;
    let (mut c2, mut u2) = (conn.try_clone()?, up.try_clone()?);
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(Shutdown::Both);
    });
    let _ = std::io::copy(&mut conn, &mut up);
    let _ = up.shutdown(Shutdown::Write);
    let _ = t.join();
    Ok(())
}
