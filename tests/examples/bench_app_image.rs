//! Pushes a large image for the browser benchmark (scripts/bench-app.sh): the busybox
//! sample's base (so the entrypoint exists) plus layers of random, incompressible
//! files, `MIB` MiB of them in all, as `bench/random:1` (plain HTTP, anonymous).
//!
//! `cargo run -p kiln-tests --example bench_app_image -- 127.0.0.1:PORT [MIB]`

use std::sync::Arc;

use kiln_engine::image::registry::{ClientOptions, RegistryClient, UploadMode};
use kiln_native::HttpTransport;
use kiln_tests::images::{noise, push_image, tar_of, FileSpec};
use kiln_tests::sample_images::{busybox_image, oci_image};
use kiln_tests::HarnessError;
use serde_json::json;

/// Random layers the image gets (each a few files).
const LAYERS: u64 = 4;
/// Files per random layer.
const FILES: u64 = 4;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), HarnessError> {
    let mut args = std::env::args().skip(1);
    let host = args
        .next()
        .ok_or("usage: bench_app_image HOST:PORT [MIB]")?;
    let mib: u64 = match args.next() {
        Some(s) => s.parse().map_err(|_| format!("MIB: not a number: {s}"))?,
        None => 220,
    };
    let file_len =
        usize::try_from(mib * 1024 * 1024 / (LAYERS * FILES)).map_err(|_| "MIB: too large")?;
    let busybox = busybox_image()?;
    // The sample's base layer, uncompressed again (oci_image compresses).
    let base_gz = busybox
        .layers
        .first()
        .ok_or("busybox sample has no layer")?
        .data
        .clone();
    let mut base = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&base_gz[..]), &mut base)?;
    let mut tars = vec![base];
    for l in 0..LAYERS {
        let files: Vec<FileSpec> = (0..FILES)
            .map(|f| {
                FileSpec::new(
                    &format!("data/layer{l}/file{f}.bin"),
                    noise(file_len, 0x6b696c6e ^ (l * 131 + f + 1)),
                )
            })
            .collect();
        tars.push(tar_of(&files)?);
    }
    let image = oci_image(
        &tars,
        json!({
            "Entrypoint": ["/bin/sh", "-c", "ls -l /data"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/",
        }),
        "2025-01-01T00:00:00Z",
    )?;
    let total: usize = image.layers.iter().map(|b| b.data.len()).sum();
    let client = RegistryClient::new(
        Arc::new(HttpTransport::new()?),
        &host,
        ClientOptions {
            insecure: true,
            credentials: None,
        },
    );
    let d = push_image(
        &client,
        "bench/random",
        &image,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;
    println!("pushed {host}/bench/random:1 ({d}, {total} compressed layer bytes)");
    Ok(())
}
