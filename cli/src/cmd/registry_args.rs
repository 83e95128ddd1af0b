//! Flags shared by every command that talks to registries (`convert`, `inspect`,
//! `verify`): the runtime image, plain-HTTP registries, an extra CA, the state dir.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use kiln_engine::image::registry::{Credentials, RegistryConfig};
use kiln_engine::image::transport::Transport;
use kiln_native::{DockerConfig, HttpOptions, HttpTransport, StateDir};

/// Registry flags. `#[command(flatten)]` them into a command's `Args`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// The kiln runtime image (`registry/repo:tag` or `@sha256:...`), built with
    /// `kiln runtime pack`.
    #[arg(long, value_name = "REF", env = "KILN_RUNTIME")]
    pub runtime: Option<String>,
    /// A registry spoken to over plain HTTP (`HOST:PORT` as written in references);
    /// repeatable. Every other registry is HTTPS with verified certificates.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
    /// Extra CA certificates (PEM) trusted for registry TLS.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// kiln's state directory (default key, layer cache).
    /// Default: `$XDG_STATE_HOME/kiln`, else `~/.local/state/kiln`.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
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

    /// Credentials for `registry` from ~/.docker/config.json (`$DOCKER_CONFIG`), if any.
    pub fn docker_credentials(registry: &str) -> Option<Credentials> {
        DockerConfig::load_default().ok()?.credentials_for(registry)
    }
}
