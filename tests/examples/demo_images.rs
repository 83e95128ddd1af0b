//! Pushes the demo's images to a registry (plain HTTP, anonymous), built without a
//! container engine: the busybox sample (`sample/busybox:1`) and the fixture runtime
//! (`kiln/runtime:fixture`: synthetic PAL and fixture loader, NOT Gramine).
//!
//! `cargo run -p kiln-tests --example demo_images -- 127.0.0.1:PORT`

use std::sync::Arc;

use kiln_engine::image::registry::{ClientOptions, RegistryClient, UploadMode};
use kiln_native::HttpTransport;
use kiln_tests::images::push_image;
use kiln_tests::runtime_fixture::{runtime_image, RuntimeBinaries};
use kiln_tests::sample_images::push_busybox;
use kiln_tests::HarnessError;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), HarnessError> {
    let host = std::env::args()
        .nth(1)
        .ok_or("usage: demo_images HOST:PORT")?;
    let client = RegistryClient::new(
        Arc::new(HttpTransport::new()?),
        &host,
        ClientOptions {
            insecure: true,
            credentials: None,
        },
    );
    let d = push_busybox(&client, "sample/busybox").await?;
    println!("pushed {host}/sample/busybox:1 ({d})");
    let rt = runtime_image(&RuntimeBinaries::build()?)?;
    let d = push_image(
        &client,
        "kiln/runtime",
        &rt,
        Some("fixture"),
        UploadMode::Monolithic,
    )
    .await?;
    println!("pushed {host}/kiln/runtime:fixture ({d})");
    Ok(())
}
