//! Registry flags and image opening shared by `kiln inspect`, `kiln verify` and
//! `kiln runtime pack`. A small local version: to be unified with the conversion
//! pipeline's registry flags (`--runtime`, `--state-dir`, ...) when both are merged.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::reference::{ImageSource, Reference};
use kiln_engine::image::registry::{RegistryClient, RegistryConfig, ResolvedImage};
use kiln_engine::image::transport::Transport;
use kiln_engine::verify::{read_image, ImageContents, RegistryBlobs};
use kiln_native::{DockerConfig, HttpOptions, HttpTransport, OciLayout};

/// How to reach registries.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// A registry (`host[:port]`) reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// A PEM CA certificate to trust for registry TLS (in addition to the system's).
    #[arg(long = "registry-ca", value_name = "PEM")]
    pub registry_ca: Option<PathBuf>,
}

impl RegistryArgs {
    /// A client for the registry of `reference`, with docker config.json credentials.
    pub fn client(&self, reference: &Reference) -> anyhow::Result<RegistryClient> {
        let mut options = HttpOptions::default();
        if let Some(ca) = &self.registry_ca {
            options = options
                .with_ca_file(ca)
                .with_context(|| format!("reading registry CA {}", ca.display()))?;
        }
        let transport: Arc<dyn Transport> = Arc::new(HttpTransport::with_options(options)?);
        let mut config = RegistryConfig::new();
        for host in &self.insecure_registry {
            config = config.with_insecure(host);
        }
        let credentials = DockerConfig::load_default()
            .ok()
            .and_then(|c| c.credentials_for(reference.domain()));
        Ok(RegistryClient::for_reference(
            transport,
            reference,
            &config,
            credentials,
        ))
    }
}

/// Resolves `image` (`oci:DIR[:TAG]` or a registry reference) to linux/amd64 and reads
/// what inspect and verify need.
pub async fn read(image: &str, args: &RegistryArgs) -> anyhow::Result<ImageContents> {
    let platform = PlatformSpec::linux_amd64();
    match ImageSource::parse(image).with_context(|| format!("image {image:?}"))? {
        ImageSource::OciLayout { dir, tag } => {
            let layout = OciLayout::open(std::path::Path::new(&dir))?;
            let resolved: ResolvedImage = layout.resolve(tag.as_deref(), &platform)?;
            Ok(read_image(&resolved, &layout).await?)
        }
        ImageSource::Registry(reference) => {
            let client = args.client(&reference)?;
            let resolved = client
                .resolve_image(&reference, &platform)
                .await
                .with_context(|| format!("resolving {image}"))?;
            let blobs = RegistryBlobs::new(&client, reference.repository());
            Ok(read_image(&resolved, &blobs).await?)
        }
    }
}

/// A single-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
