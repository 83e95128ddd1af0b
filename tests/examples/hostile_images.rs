//! Pushes the hostile images of [`kiln_tests::bombs`] to a
//! registry (plain HTTP, anonymous) as `bomb/NAME:1`, and prints their references as one
//! JSON object `{"NAME": "HOST/bomb/NAME:1", ...}` on stdout (progress on stderr). For the worker's tests (worker/test/hostile.test.mjs).
//!
//! `cargo run -p kiln-tests --example hostile_images -- 127.0.0.1:PORT [NAME...]`

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kiln_engine::image::registry::{ClientOptions, RegistryClient, UploadMode};
use kiln_native::HttpTransport;
use kiln_tests::bombs::{bomb, NAMES};
use kiln_tests::images::push_blob_if_missing;
use kiln_tests::HarnessError;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), HarnessError> {
    let mut args = std::env::args().skip(1);
    let host = args
        .next()
        .ok_or("usage: hostile_images HOST:PORT [NAME...]")?;
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = NAMES.iter().map(|n| n.to_string()).collect();
    }
    let client = RegistryClient::new(
        Arc::new(HttpTransport::new()?),
        &host,
        ClientOptions {
            insecure: true,
            credentials: None,
        },
    );
    let mut refs = BTreeMap::new();
    for name in &names {
        let image = bomb(name)?.ok_or_else(|| format!("no bomb named {name:?}"))?;
        let repo = format!("bomb/{name}");
        // Each distinct blob once (many-layers repeats one layer 10,000 times).
        let mut seen = HashSet::new();
        for blob in image.layers.iter().chain([&image.config]) {
            if seen.insert(blob.digest.to_string()) {
                push_blob_if_missing(&client, &repo, blob, UploadMode::Monolithic).await?;
            }
        }
        client.push_manifest(&repo, &image.manifest).await?;
        client.tag_manifest(&repo, "1", &image.manifest).await?;
        eprintln!("pushed {host}/{repo}:1");
        refs.insert(name.clone(), format!("{host}/{repo}:1"));
    }
    println!("{}", serde_json::to_string(&refs)?);
    Ok(())
}
