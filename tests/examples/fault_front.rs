//! Runs a [`FaultFront`] before a registry on loopback, for the worker's and the page's
//! tests (worker/test/hostile.test.mjs, tests/e2e-app): prints `{"port": N, "host":
//! "127.0.0.1:N", "seed": S}` on stdout once it listens, then serves until stdin closes
//! (or it is killed). A line `stats` on stdin prints the counters as one JSON line; at
//! the end of stdin it prints them once more and exits.
//!
//! `fault_front UPSTREAM_PORT PERCENT [SEED]`: `PERCENT` of the `GET`/`HEAD` requests
//! answered with a transient fault (503/502/429 with `Retry-After: 0`, or a reset);
//! without `SEED`, the first seed whose first two requests are both faulted, so retries
//! certainly happen.

use std::io::BufRead;
use std::sync::atomic::AtomicU64;

use kiln_tests::fault_front::{faulted, FaultFront, FrontStats};
use kiln_tests::HarnessError;

fn stats_json(s: &FrontStats) -> serde_json::Value {
    let g = |c: &AtomicU64| FrontStats::get(c);
    serde_json::json!({
        "faults": g(&s.faults),
        "cuts": g(&s.cuts),
        "stalls": g(&s.stalls),
        "rangeRequests": g(&s.range_requests),
        "uploadFaults": g(&s.upload_faults),
        "uploadStarts": g(&s.upload_starts),
        "redirects": g(&s.redirects),
    })
}

fn main() -> Result<(), HarnessError> {
    let usage = "usage: fault_front UPSTREAM_PORT PERCENT [SEED]";
    let mut args = std::env::args().skip(1);
    let upstream: u16 = args.next().ok_or(usage)?.parse().map_err(|_| usage)?;
    let percent: u64 = args.next().ok_or(usage)?.parse().map_err(|_| usage)?;
    if percent > 100 {
        return Err(format!("PERCENT {percent} is above 100").into());
    }
    let seed = match args.next() {
        Some(s) => s.parse().map_err(|_| usage)?,
        None => (0u64..10_000)
            .find(|s| faulted(*s, 0, percent) && faulted(*s, 1, percent))
            .unwrap_or(0),
    };
    let front = FaultFront::start(upstream, percent, seed)?;
    let port: u16 = front
        .host()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or("front without a port")?;
    println!(
        "{}",
        serde_json::json!({"port": port, "host": front.host(), "seed": seed})
    );
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "stats" {
            println!("{}", stats_json(front.stats()));
        }
    }
    println!("{}", stats_json(front.stats()));
    Ok(())
}
