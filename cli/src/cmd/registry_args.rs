//! Flags shared by every command that talks to registries (`convert`, `inspect`,
//! `verify`, `runtime pack`): plain-HTTP registries and an extra CA ([`RegistryArgs`]);
//! the flags only `convert` uses, the runtime image and the state dir
//! ([`ConvertEnvArgs`], so other commands' `--help` does not list them); and opening an
//! image (`oci:DIR[:TAG]` or a registry reference) for reading.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use kiln_engine::image::limits::ImageLimits;
use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::image::reference::{ImageSource, Reference};
use kiln_engine::image::registry::{
    Credentials, RegistryClient, RegistryConfig, ResolvedImage, Retry, RetryPolicy,
};
use kiln_engine::image::transport::Transport;
use kiln_engine::verify::{read_image, read_remote, ImageContents};
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
    /// Raises or lowers one of the input image's limits (`NAME=VALUE`, repeatable):
    /// path-bytes, path-depth, layer-entries, image-entries, index-bytes, layer-bytes,
    /// image-bytes, zstd-window, capture-bytes, manifest-layers, config-bytes,
    /// manifest-bytes; sizes as 123, 64MiB or 2G. Defaults and meaning: docs/limits.md.
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limit: Vec<String>,
    /// Changes how failed registry requests are retried (`NAME=VALUE`, repeatable):
    /// tries (attempts per request, 1 = no retries; default 5), base (backoff base,
    /// 500ms), cap (longest wait, 30s), total (most waiting per request, 2m); durations
    /// as 500ms, 2s, 1m. See docs/limits.md.
    #[arg(long = "retry", value_name = "NAME=VALUE")]
    pub retry: Vec<String>,
    /// Seconds a registry request may go without the network moving a byte (while kiln
    /// sends or waits for an answer) before it fails as a timeout and is retried or
    /// resumed (default 300).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub idle_timeout: Option<u64>,
}

impl RegistryArgs {
    /// The HTTP transport (with `--registry-ca`).
    pub fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        let mut o = HttpOptions::default();
        if let Some(secs) = self.idle_timeout {
            o.read_timeout = std::time::Duration::from_secs(secs);
        }
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

    /// The image limits: the engine's defaults with every `--limit` applied.
    pub fn limits(&self) -> anyhow::Result<ImageLimits> {
        let mut l = ImageLimits::default();
        for setting in &self.limit {
            l.apply(setting).context("--limit")?;
        }
        Ok(l)
    }

    /// The retry policy: the engine's defaults with every `--retry` applied, and a
    /// random jitter seed.
    pub fn retry_policy(&self) -> anyhow::Result<RetryPolicy> {
        let mut p = RetryPolicy {
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 ^ u64::from(std::process::id()))
                .unwrap_or(0),
            ..RetryPolicy::default()
        };
        for setting in &self.retry {
            p.apply(setting).context("--retry")?;
        }
        Ok(p)
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
        )
        .with_limits(self.limits()?)
        .with_retry(Retry {
            policy: self.retry_policy()?,
            timer: Arc::new(kiln_native::TokioTimer),
            observer: None,
        }))
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
            read_remote(&client, &reference, image)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.reason))
        }
    }
}

/// A single-threaded tokio runtime for one command.
pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_flags_apply_over_the_defaults() {
        let args = RegistryArgs {
            retry: vec!["tries=9".into(), "total=5m".into()],
            ..Default::default()
        };
        let p = args.retry_policy().unwrap();
        assert_eq!((p.max_tries, p.max_total_ms), (9, 300_000));
        assert_eq!(p.base_delay_ms, RetryPolicy::default().base_delay_ms);
        let bad = RegistryArgs {
            retry: vec!["tries=many".into()],
            ..Default::default()
        };
        let e = format!("{:#}", bad.retry_policy().unwrap_err());
        assert!(e.contains("--retry") && e.contains("tries"), "{e}");
    }

    #[test]
    fn limit_flags_apply_over_the_defaults() {
        let args = RegistryArgs {
            limit: vec!["layer-bytes=2GiB".into(), "manifest-layers=50".into()],
            ..RegistryArgs::default()
        };
        let l = args.limits().unwrap();
        assert_eq!(l.layer_bytes, 2 << 30);
        assert_eq!(l.manifest_layers, 50);
        assert_eq!(l.path_bytes, ImageLimits::default().path_bytes);
        let bad = RegistryArgs {
            limit: vec!["nope=1".into()],
            ..RegistryArgs::default()
        };
        let e = format!("{:#}", bad.limits().unwrap_err());
        assert!(e.contains("--limit") && e.contains("nope"), "{e}");
    }
}
