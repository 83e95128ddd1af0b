//! Throughput of blob transfer against a real local registry (an `#[ignore]`
//! benchmark; run in release):
//!
//! ```sh
//! cargo test -p kiln-tests --release --test registry_bench -- --ignored --nocapture
//! ```
//!
//! Prints MiB/s for a streamed monolithic upload, chunked uploads (8 MiB and 1 MiB
//! PATCHes) and a verified streamed download, each as a ratio to the baseline of
//! hashing the same bytes in memory in the same run. No timed assertions.

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::UploadMode;
use kiln_engine::image::transport::{stream_from_chunks, Body};
use kiln_tests::images::noise;
use kiln_tests::registry::TestRegistry;
use kiln_tests::require_tool;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const SIZE: usize = 64 * 1024 * 1024;

fn body(chunks: &[Bytes]) -> Body {
    Body::Stream {
        stream: stream_from_chunks(chunks.to_vec()),
        length: Some(chunks.iter().map(|c| c.len() as u64).sum()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture, in release"]
async fn blob_transfer_throughput() -> R {
    require_tool!("docker-registry");
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    let mib = SIZE as f64 / (1024.0 * 1024.0);
    let mut results = Vec::new();

    let t = Instant::now();
    let data = noise(SIZE, 42);
    let digest = Digest::sha256_of(&data);
    let baseline = mib / t.elapsed().as_secs_f64();
    results.push(("generate + sha256 in memory (baseline)", baseline));
    let chunks: Vec<Bytes> = data
        .chunks(256 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();

    for (name, repo, mode) in [
        (
            "upload monolithic (streamed PUT)",
            "b/mono",
            UploadMode::Monolithic,
        ),
        (
            "upload chunked 8 MiB PATCHes",
            "b/c8",
            UploadMode::Chunked {
                chunk_size: 8 << 20,
            },
        ),
        (
            "upload chunked 1 MiB PATCHes",
            "b/c1",
            UploadMode::Chunked {
                chunk_size: 1 << 20,
            },
        ),
    ] {
        let t = Instant::now();
        client.push_blob(repo, &digest, body(&chunks), mode).await?;
        results.push((name, mib / t.elapsed().as_secs_f64()));
    }

    let t = Instant::now();
    let mut s = client
        .get_blob("b/mono", &digest, Some(SIZE as u64))
        .await?;
    let mut n = 0usize;
    while let Some(c) = s.next().await {
        n += c?.len();
    }
    assert_eq!(n, SIZE);
    results.push((
        "download, digest verified while streaming",
        mib / t.elapsed().as_secs_f64(),
    ));

    println!("\nblob transfer, {mib:.0} MiB, loopback docker-registry:");
    for (name, rate) in results {
        println!(
            "  {name:<45} {rate:8.1} MiB/s  ({:.2}x baseline)",
            rate / baseline
        );
    }
    Ok(())
}

/// What retries cost when nothing fails: the same 64 MiB blob pushed (from memory, so a
/// retrying client keeps it for a restart) and downloaded (through the resuming body
/// when retrying) by a client without and with a retry policy, alternated over rounds in
/// one run; prints the medians and their ratio. No timed assertions.
///
/// ```sh
/// cargo test -p kiln-tests --release --test registry_bench retry_overhead -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture, in release"]
async fn retry_overhead_when_nothing_fails() -> R {
    use std::sync::Arc;

    use kiln_engine::image::registry::{Retry, RetryPolicy};
    require_tool!("docker-registry");
    const ROUNDS: usize = 7;
    let reg = TestRegistry::plain()?;
    let plain = reg.client(None)?;
    let retrying = reg.client(None)?.with_retry(Retry {
        policy: RetryPolicy::default(),
        timer: Arc::new(kiln_native::TokioTimer),
        observer: None,
    });
    let data = Bytes::from(noise(SIZE, 7));
    let digest = Digest::sha256_of(&data);
    let mib = SIZE as f64 / (1024.0 * 1024.0);
    // [client][push, get] seconds per round.
    let mut times = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for round in 0..ROUNDS {
        // Alternate which client goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let client = if which == 0 { &plain } else { &retrying };
            let repo = format!("r{which}/n{round}");
            let t = Instant::now();
            client
                .push_blob(
                    &repo,
                    &digest,
                    Body::Bytes(data.clone()),
                    UploadMode::Monolithic,
                )
                .await?;
            times[which][0].push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let mut s = client.get_blob(&repo, &digest, Some(SIZE as u64)).await?;
            let mut n = 0usize;
            while let Some(c) = s.next().await {
                n += c?.len();
            }
            assert_eq!(n, SIZE);
            times[which][1].push(t.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("\nretry overhead when nothing fails, {mib:.0} MiB, {ROUNDS} rounds, medians:");
    for (i, what) in ["push (monolithic, from memory)", "download (verified)"]
        .iter()
        .enumerate()
    {
        let without = median(&mut times[0][i]);
        let with = median(&mut times[1][i]);
        println!(
            "  {what:<32} without {:.3} s ({:.0} MiB/s), with {:.3} s ({:.0} MiB/s): {:.3}x",
            without,
            mib / without,
            with,
            mib / with,
            with / without
        );
    }
    Ok(())
}
