//! The worker's configuration, read from its environment bindings (wrangler `[vars]` and
//! secrets on Cloudflare; `fromEnvironment` bindings in bare workerd).

use kiln_engine::image::limits::{ImageLimits, LIMIT_NAMES};

use crate::cors::Origins;
use crate::policy::{Policy, PolicyError};

/// Binding: registries the proxy may reach, `[http[s]://]host[:port]` separated by commas.
pub const ALLOWLIST: &str = "KILN_REGISTRY_ALLOWLIST";
/// Binding: `1` lets loopback registries through the address guard (tests only).
pub const ALLOW_LOOPBACK: &str = "KILN_ALLOW_LOOPBACK_REGISTRIES";
/// Binding: page origins allowed to call the proxy (`*`, or a list; empty: own origin).
pub const ALLOWED_ORIGINS: &str = "KILN_ALLOWED_ORIGINS";
/// Binding: seconds an upstream has to answer a request without a body.
pub const TIMEOUT_SECS: &str = "KILN_PROXY_TIMEOUT_SECS";
/// Binding: seconds an upstream has to answer a request with a body (uploads).
pub const UPLOAD_TIMEOUT_SECS: &str = "KILN_PROXY_UPLOAD_TIMEOUT_SECS";
/// Binding: seconds a response may go without a byte in the web app's browser transport
/// before it fails as a timeout (sent to the app in `/kiln-config.json`).
pub const BROWSER_IDLE_TIMEOUT_SECS: &str = "KILN_BROWSER_IDLE_TIMEOUT_SECS";
/// Secret binding: the service's default SGX signing key (PEM). Not used yet.
pub const DEFAULT_SIGNING_KEY: &str = "KILN_DEFAULT_SIGNING_KEY";
/// Binding: reference of the Gramine runtime image conversions build on. Not used yet.
pub const RUNTIME_IMAGE: &str = "KILN_RUNTIME_IMAGE";
/// Binding: base URL of the Fortanix DSM that `signingKey.sdkms` signs with, e.g.
/// `https://api.amer.smartkey.io`. Its origin is the one host the engine's KMS transport
/// may reach (its own exemption, not on the registry allowlist, still under the address
/// guard). Unset: `signingKey.sdkms` is refused as not configured.
pub const KMS_URL: &str = "KILN_KMS_URL";
/// Binding: older name of [`KMS_URL`], read when that is unset.
pub const KMS_ENDPOINT: &str = "KILN_KMS_ENDPOINT";

/// Prefix of the bindings that set the input image's limits: `KILN_LIMIT_LAYER_BYTES`,
/// `KILN_LIMIT_IMAGE_ENTRIES`, ... (one per name of
/// [`kiln_engine::image::limits::LIMIT_NAMES`], upper case with `_`); values as `123`,
/// `64MiB`, `2G`. Unset: [`ImageLimits::edge`] (lower than the CLI's defaults).
pub const LIMIT_PREFIX: &str = "KILN_LIMIT_";

/// Default for [`TIMEOUT_SECS`].
pub const DEFAULT_TIMEOUT_SECS: u32 = 30;
/// Default for [`UPLOAD_TIMEOUT_SECS`].
pub const DEFAULT_UPLOAD_TIMEOUT_SECS: u32 = 300;
/// Default for [`BROWSER_IDLE_TIMEOUT_SECS`] (the native CLI's read timeout).
pub const DEFAULT_BROWSER_IDLE_TIMEOUT_SECS: u32 = 300;

/// Why the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The allowlist does not parse.
    #[error(transparent)]
    Allowlist(#[from] PolicyError),
    /// The KMS URL is not `http(s)://host[:port][/path]`.
    #[error("{KMS_URL} {url:?} is not http(s)://host[:port][/path]: {why}")]
    KmsUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A `KILN_LIMIT_*` binding is not a size.
    #[error("{name}: {reason}")]
    Limit {
        /// Binding name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A number binding is not a positive integer.
    #[error("{name} must be a positive whole number of seconds, not {value:?}")]
    BadNumber {
        /// Binding name.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

/// Everything the worker reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Reachability policy of the proxy.
    pub policy: Policy,
    /// Allowed page origins.
    pub origins: Origins,
    /// Header timeout for requests without a body, in milliseconds.
    pub timeout_ms: u32,
    /// Header timeout for requests with a body, in milliseconds.
    pub upload_timeout_ms: u32,
    /// The web app's idle timeout ([`BROWSER_IDLE_TIMEOUT_SECS`]), in milliseconds.
    pub browser_idle_timeout_ms: u32,
    /// Whether a default signing key is configured (its bytes are not kept here).
    pub has_default_signing_key: bool,
    /// Runtime image reference, if set.
    pub runtime_image: Option<String>,
    /// Fortanix DSM base URL ([`KMS_URL`]), if set.
    pub kms_endpoint: Option<String>,
    /// What the KMS transport may reach: only the origin of [`Config::kms_endpoint`]
    /// (empty when unset), under the same address rules as registries.
    pub kms_policy: Policy,
    /// The allowlist as `scheme://host:port` (`*.` kept for wildcards), for the web app.
    pub registries: Vec<String>,
    /// What input images may make a conversion or verification read and hold:
    /// [`ImageLimits::edge`] with the `KILN_LIMIT_*` bindings applied; also sent to the
    /// web app in `/kiln-config.json`.
    pub limits: ImageLimits,
}

/// The allowlist entries (already accepted by [`Policy::new`]) as `scheme://host:port`.
fn registry_entries(allowlist: &str) -> Vec<String> {
    allowlist
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .filter_map(|raw| {
            let (scheme, rest) = match raw.split_once("://") {
                Some((s, r)) => (s, r),
                None => ("https", raw),
            };
            let rest = rest.trim_end_matches('/');
            let (wild, rest) = match rest.strip_prefix("*.") {
                Some(r) => ("*.", r),
                None => ("", rest),
            };
            let url = url::Url::parse(&format!("{scheme}://{rest}/")).ok()?;
            let host = url.host_str()?;
            let port = url.port_or_known_default()?;
            Some(format!("{scheme}://{wild}{host}:{port}"))
        })
        .collect()
}

impl Config {
    /// The body of `GET /kiln-config.json`: what the web app needs to run the engine in the
    /// browser (runtime image, the proxy's path, the registries it reaches, the idle
    /// timeout of its transport). No secrets.
    pub fn client_config(&self) -> serde_json::Value {
        serde_json::json!({
            "runtimeImage": self.runtime_image,
            "proxy": "/proxy",
            "registries": self.registries,
            "idleTimeoutSecs": self.browser_idle_timeout_ms / 1000,
            "limits": self.limits,
        })
    }
}

impl Config {
    /// Builds the configuration from a lookup of binding names (absent or empty: unset).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |n: &str| get(n).filter(|v| !v.trim().is_empty());
        let flag = |n: &str| {
            get(n).is_some_and(|v| {
                matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes")
            })
        };
        let secs = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                None => Ok(default.saturating_mul(1000)),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => Ok(n.saturating_mul(1000)),
                    _ => Err(ConfigError::BadNumber { name, value: v }),
                },
            }
        };
        let mut limits = ImageLimits::edge();
        for name in LIMIT_NAMES {
            let var = format!(
                "{LIMIT_PREFIX}{}",
                name.to_ascii_uppercase().replace('-', "_")
            );
            if let Some(v) = get(&var) {
                limits.set(name, &v).map_err(|e| ConfigError::Limit {
                    name: var.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        Config {
            policy: Policy::new(&get(ALLOWLIST).unwrap_or_default(), flag(ALLOW_LOOPBACK))?,
            origins: Origins::parse(&get(ALLOWED_ORIGINS).unwrap_or_default()),
            timeout_ms: secs(TIMEOUT_SECS, DEFAULT_TIMEOUT_SECS)?,
            upload_timeout_ms: secs(UPLOAD_TIMEOUT_SECS, DEFAULT_UPLOAD_TIMEOUT_SECS)?,
            browser_idle_timeout_ms: secs(
                BROWSER_IDLE_TIMEOUT_SECS,
                DEFAULT_BROWSER_IDLE_TIMEOUT_SECS,
            )?,
            has_default_signing_key: get(DEFAULT_SIGNING_KEY).is_some(),
            runtime_image: get(RUNTIME_IMAGE),
            kms_endpoint: get(KMS_URL).or_else(|| get(KMS_ENDPOINT)),
            kms_policy: Policy::default(),
            registries: registry_entries(&get(ALLOWLIST).unwrap_or_default()),
            limits,
        }
        .with_kms_policy(flag(ALLOW_LOOPBACK))
    }

    /// Derives [`Config::kms_policy`] from [`Config::kms_endpoint`].
    fn with_kms_policy(mut self, allow_loopback: bool) -> Result<Self, ConfigError> {
        let Some(raw) = self.kms_endpoint.clone() else {
            return Ok(self);
        };
        let bad = |why: String| ConfigError::KmsUrl {
            url: raw.clone(),
            why,
        };
        let url = url::Url::parse(raw.trim()).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http:// and https:// are allowed".into()));
        }
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
            return Err(bad("no credentials or query in the URL".into()));
        }
        let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| bad("no port".into()))?;
        let entry = format!("{}://{host}:{port}", url.scheme());
        self.kms_policy = Policy::new(&entry, allow_loopback).map_err(|e| bad(e.to_string()))?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn limits_default_to_the_edge_and_take_kiln_limit_bindings() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.limits, ImageLimits::edge());
        assert!(c.limits.layer_bytes < ImageLimits::default().layer_bytes);
        let c = cfg(&[
            ("KILN_LIMIT_LAYER_BYTES", "1GiB"),
            ("KILN_LIMIT_MANIFEST_LAYERS", "64"),
        ])
        .unwrap();
        assert_eq!(
            (c.limits.layer_bytes, c.limits.manifest_layers),
            (1 << 30, 64)
        );
        assert_eq!(c.client_config()["limits"]["manifestLayers"], 64);
        let e = cfg(&[("KILN_LIMIT_PATH_BYTES", "many")]).unwrap_err();
        assert!(e.to_string().contains("KILN_LIMIT_PATH_BYTES"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert!(c.policy.is_empty());
        assert_eq!(c.origins, Origins::SameOrigin);
        assert_eq!(c.timeout_ms, 30_000);
        assert_eq!(c.upload_timeout_ms, 300_000);
        assert_eq!(c.browser_idle_timeout_ms, 300_000);
        assert_eq!(c.client_config()["idleTimeoutSecs"], 300);
        assert!(!c.has_default_signing_key);
    }

    #[test]
    fn values() {
        let c = cfg(&[
            (ALLOWLIST, "http://127.0.0.1:5000"),
            (ALLOW_LOOPBACK, "1"),
            (ALLOWED_ORIGINS, "*"),
            (TIMEOUT_SECS, "5"),
            (BROWSER_IDLE_TIMEOUT_SECS, "2"),
            (DEFAULT_SIGNING_KEY, "-----BEGIN"),
            (RUNTIME_IMAGE, "r/x:1"),
        ])
        .unwrap();
        assert!(c.policy.check_authority("127.0.0.1:5000").is_ok());
        assert_eq!(c.origins, Origins::Any);
        assert_eq!(c.timeout_ms, 5000);
        assert_eq!(c.client_config()["idleTimeoutSecs"], 2);
        assert!(c.has_default_signing_key);
        assert_eq!(c.runtime_image.as_deref(), Some("r/x:1"));
    }

    #[test]
    fn kms_url_is_its_own_exemption() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.kms_endpoint, None);
        assert!(c.kms_policy.is_empty());
        let c = cfg(&[
            (ALLOWLIST, "ghcr.io"),
            (KMS_URL, "https://api.amer.smartkey.io/"),
        ])
        .unwrap();
        assert_eq!(
            c.kms_endpoint.as_deref(),
            Some("https://api.amer.smartkey.io/")
        );
        assert!(c.kms_policy.check_authority("api.amer.smartkey.io").is_ok());
        assert!(c.kms_policy.check_authority("ghcr.io").is_err());
        assert!(c.policy.check_authority("api.amer.smartkey.io").is_err());
        // The older binding name still works; loopback only with the test flag.
        let c = cfg(&[
            (KMS_ENDPOINT, "http://127.0.0.1:8200"),
            (ALLOW_LOOPBACK, "1"),
        ])
        .unwrap();
        assert!(c.kms_policy.check_authority("127.0.0.1:8200").is_ok());
        let c = cfg(&[(KMS_URL, "http://127.0.0.1:8200")]).unwrap();
        assert!(c.kms_policy.check_authority("127.0.0.1:8200").is_err());
        for bad in [
            "ftp://x",
            "api.smartkey.io",
            "https://u:p@h",
            "https://h/?q=1",
        ] {
            let e = cfg(&[(KMS_URL, bad)]).unwrap_err();
            assert!(e.to_string().contains(KMS_URL), "{e}");
        }
    }

    #[test]
    fn client_config_lists_registries() {
        let c = cfg(&[
            (
                ALLOWLIST,
                "http://127.0.0.1:5000, ghcr.io *.example.com https://[::1]:8443/",
            ),
            (RUNTIME_IMAGE, "127.0.0.1:5000/kiln/runtime:1.9"),
            (DEFAULT_SIGNING_KEY, "-----BEGIN"),
        ])
        .unwrap();
        let v = c.client_config();
        assert_eq!(v["runtimeImage"], "127.0.0.1:5000/kiln/runtime:1.9");
        assert_eq!(v["proxy"], "/proxy");
        assert_eq!(
            v["registries"],
            serde_json::json!([
                "http://127.0.0.1:5000",
                "https://ghcr.io:443",
                "https://*.example.com:443",
                "https://[::1]:8443"
            ])
        );
        assert!(!v.to_string().contains("BEGIN"));
        assert_eq!(
            cfg(&[]).unwrap().client_config()["runtimeImage"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn errors_name_the_binding() {
        let e = cfg(&[(TIMEOUT_SECS, "0")]).unwrap_err();
        assert!(e.to_string().contains(TIMEOUT_SECS));
        assert!(matches!(
            cfg(&[(ALLOWLIST, "ftp://x")]),
            Err(ConfigError::Allowlist(_))
        ));
    }
}
