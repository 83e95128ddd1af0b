//! Flags shared by every command that talks to registries (`convert`, `inspect`,
//! `verify`, `runtime pack`): plain-HTTP registries and an extra CA ([`RegistryArgs`]);
//! the flags only `convert` uses, the runtime image and the state dir
//! ([`ConvertEnvArgs`], so other commands' `--help` does not list them); and opening an
//! image (`oci:DIR[:TAG]` or a registry reference) for reading.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::reference::{ImageSource, Reference};
use kiln_engine::image::registry::{Credentials, RegistryClient, RegistryConfig, ResolvedImage};
use kiln_engine::image::transport::Transport;
use kiln_engine::verify::{read_image, ImageContents, RegistryBlobs};
use kiln_native::{DockerConfig, HttpOptions, HttpTransport, OciLayout, StateDir};

/// `convert`'s own environment flags: the runtime image and the state directory.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConvertEnvArgs {
    /// The kiln runtime image (`registry/repo:tag` or `@sha256:...`), built with
    /// `kiln runtime pack`.
    #[arg(long, value_name = "REF", env = "KILN_RUNTIME")]
    pub runtime: Option<String>,
    /// kiln's state directory (default key, layer cache).
    /// Default: `$XDG_STATE_HOME/kiln`, else `~/.local/state/kiln`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl ConvertEnvArgs {
    /// The state directory.
    pub fn state(&self) -> anyhow::Result<StateDir> {
        Ok(StateDir::new(match &self.state_dir {
            Some(d) => d.clone(),
            None => StateDir::default_root()?,
        }))
    }

    /// The runtime image reference, required.
    pub fn runtime(&self) -> anyhow::Result<String> {
        self.runtime
            .clone()
            .context("no runtime image: pass --runtime REF (or set $KILN_RUNTIME); build one with `kiln runtime pack`")
    }
}

/// Registry flags. `#[command(flatten)]` them into a command's `Args`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// A registry spoken to over plain HTTP (`HOST:PORT` as written in references);
    /// repeatable. Every other registry is HTTPS with verified certificates.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
    /// Extra CA certificates (PEM) trusted for registry TLS.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
}

impl RegistryArgs {
    /// The HTTP transport (with `--registry-ca`).
    pub fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        let mut o = HttpOptions::default();
        if let Some(ca) = &self.registry_ca {
            o = o.with_ca_file(ca)?;
        }
        Ok(Arc::new(HttpTransport::with_options(o)?))
    }

    /// The registry configuration (`--insecure-registry`).
    pub fn registry_config(&self) -> RegistryConfig {
        self.insecure_registry
            .iter()
            .fold(RegistryConfig::new(), |c, h| c.with_insecure(h))
    }

    /// Credentials for `registry` from ~/.docker/config.json (`$DOCKER_CONFIG`), if any.
    /// A broken file or a failing credential helper is reported on stderr (never a
    /// secret) and counts as no credentials.
    pub fn docker_credentials(registry: &str) -> Option<Credentials> {
        let found = DockerConfig::load_default().and_then(|c| c.lookup(registry));
        match found {
            Ok(c) => c,
            Err(e) => {
                eprintln!("kiln: warning: docker config: {e}");
                None
            }
        }
    }

    /// A client for the registry of `reference`, with docker config.json credentials.
    pub fn client(&self, reference: &Reference) -> anyhow::Result<RegistryClient> {
        let transport = self
            .transport()
            .context("setting up the registry transport")?;
        Ok(RegistryClient::for_reference(
            transport,
            reference,
            &self.registry_config(),
            Self::docker_credentials(reference.domain()),
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
pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
