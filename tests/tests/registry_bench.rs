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
