//! Builds (or reads from the cache) the real-app test images of tests/tests/real_apps.rs
//! (Debian bookworm from Debian packages: scripts/build-real-app-images.sh) and pushes them
//! to a registry, or writes them into one OCI layout, for manual checks with a real
//! Gramine.
//!
//! ```sh
//! cargo run -p kiln-tests --example real_app_images -- --push HOST:PORT[/PREFIX] [--insecure] [APP...]
//! cargo run -p kiln-tests --example real_app_images -- --oci DIR [APP...]
//! ```
//!
//! Pushes `HOST:PORT/PREFIX/APP:1` (anonymous; `--insecure`: plain HTTP), or writes
//! DIR as an OCI layout with one tag per app (`skopeo copy oci:DIR:APP ...`). APPs default
//! to all: bash python python-http ld-library-path nginx redis node java. Needs root and
//! debootstrap on first use.

use std::path::PathBuf;
use std::sync::Arc;

use kiln_engine::image::registry::{ClientOptions, RegistryClient, UploadMode};
use kiln_native::HttpTransport;
use kiln_tests::images::{push_image, write_oci_layout, TestImage};
use kiln_tests::real_apps::{real_app_image, APPS};
use kiln_tests::HarnessError;

const USAGE: &str =
    "usage: real_app_images (--push HOST:PORT[/PREFIX] [--insecure] | --oci DIR) [APP...]";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), HarnessError> {
    let mut push: Option<String> = None;
    let mut oci: Option<PathBuf> = None;
    let mut insecure = false;
    let mut apps: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--push" => push = Some(args.next().ok_or(USAGE)?),
            "--oci" => oci = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--insecure" => insecure = true,
            "-h" | "--help" => {
                println!("{USAGE}\napps: {}", APPS.join(" "));
                return Ok(());
            }
            app => apps.push(app.to_string()),
        }
    }
    if apps.is_empty() {
        apps = APPS.iter().map(|a| a.to_string()).collect();
    }
    let mut images: Vec<(String, TestImage)> = Vec::new();
    for app in &apps {
        images.push((app.clone(), real_app_image(app)?));
    }
    match (push, oci) {
        (Some(target), None) => {
            let (host, prefix) = match target.split_once('/') {
                Some((h, p)) => (h.to_string(), format!("{}/", p.trim_end_matches('/'))),
                None => (target.clone(), String::new()),
            };
            let client = RegistryClient::new(
                Arc::new(HttpTransport::new()?),
                &host,
                ClientOptions {
                    insecure,
                    credentials: None,
                },
            );
            for (app, image) in &images {
                let repo = format!("{prefix}{app}");
                let d =
                    push_image(&client, &repo, image, Some("1"), UploadMode::Monolithic).await?;
                println!("pushed {host}/{repo}:1 ({d})");
            }
        }
        (None, Some(dir)) => {
            let refs: Vec<&TestImage> = images.iter().map(|(_, i)| i).collect();
            let tags: Vec<(&str, _)> = images
                .iter()
                .map(|(a, i)| (a.as_str(), &i.manifest))
                .collect();
            write_oci_layout(&dir, &refs, &tags)?;
            for (app, image) in &images {
                println!(
                    "wrote oci:{}:{app} ({})",
                    dir.display(),
                    image.manifest.digest()
                );
            }
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}
