//! The worker's configuration, read from its environment bindings (wrangler `[vars]` and
//! secrets on Cloudflare; `fromEnvironment` bindings in bare workerd).

use kiln_engine::image::limits::{ImageLimits, LIMIT_NAMES};
use kiln_engine::image::registry::{RetryPolicy, RETRY_NAMES};

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
/// Binding: base URL of the PCCS (or Intel's PCS, `https://api.trustedservices.intel.com`)
/// that `POST /certificates/issue` fetches a quote's collateral from when the request has
/// none. Like [`KMS_URL`], its origin is its own exemption (the operator configured it; not
/// on the registry allowlist, still under the address guard). Unset: such requests are a
/// 500 `ConfigurationError` naming it.
pub const PCCS_URL: &str = "KILN_PCCS_URL";
/// Secret binding: the API tokens of the conversion endpoints, one
/// `NAME SHA256HEX [OUTPUT-PREFIX ...]` per line ([`crate::auth`]).
pub const API_TOKENS: &str = "KILN_API_TOKENS";
/// Secret binding (optional): the key of the proxy's signed links (token realms outside
/// `/v2`, [`crate::rewrite`]). Unset: derived from the worker's other secrets, or random
/// per isolate when it has none.
pub const PROXY_SECRET: &str = "KILN_PROXY_SECRET";
/// Secret binding: the offline two-step's token key.
pub const TWO_STEP_SECRET: &str = "KILN_TWO_STEP_SECRET";
/// Every binding that holds a secret: each must be a secret binding (`wrangler secret put`),
/// never a `[vars]` entry (checked against wrangler.toml by this module's tests and by
/// scripts/build-worker.sh), and none is ever logged or answered.
pub const SECRET_BINDINGS: [&str; 5] = [
    DEFAULT_SIGNING_KEY,
    TWO_STEP_SECRET,
    API_TOKENS,
    PROXY_SECRET,
    crate::manager::CA_KEY,
];
/// Binding: the largest `memSize` a conversion may ask for (`64G` by default; K, M, G, T
/// suffixes, powers of 1024). The enclave's size drives the work of measuring it (one EADD
/// record per 4 KiB page), so a few bytes of request may not buy hours of CPU.
pub const MAX_ENCLAVE_SIZE: &str = "KILN_MAX_ENCLAVE_SIZE";
/// Default of [`MAX_ENCLAVE_SIZE`] (64 GiB).
pub const DEFAULT_MAX_ENCLAVE_SIZE: u64 = 64 << 30;
/// Binding: the MANAGER_CA manager's base URL that conversions measure into their
/// `init.json` (kiln-init requests MANAGER_CA certificates from `{url}/certificates/issue`).
/// Used only when the worker is a MANAGER_CA (secret `KILN_MANAGER_CA_KEY` set); default
/// then: the origin of the conversion request's URL. Absolute http(s), no userinfo, query
/// or fragment.
pub const MANAGER_URL: &str = "KILN_MANAGER_URL";
/// Binding: `1` opens the conversion endpoints to anonymous callers when [`API_TOKENS`] is
/// unset. Development only: anyone could then sign with the default key.
pub const EDGE_ANONYMOUS: &str = "KILN_EDGE_ANONYMOUS";

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
    /// `KILN_API_TOKENS` does not parse.
    #[error(transparent)]
    Tokens(#[from] crate::auth::TokensError),
    /// The KMS URL is not `http(s)://host[:port][/path]`.
    #[error("{KMS_URL} {url:?} is not http(s)://host[:port][/path]: {why}")]
    KmsUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The PCCS URL is not `http(s)://host[:port][/path]` (the value is not quoted: it
    /// might carry credentials, which are refused).
    #[error("{PCCS_URL} is not http(s)://host[:port][/path]: {why}")]
    PccsUrl {
        /// What is wrong with it.
        why: String,
    },
    /// A size binding is not a size.
    #[error("{name} must be a size like 64G (K, M, G or T), not {value:?}")]
    BadSize {
        /// Binding name.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// [`MANAGER_URL`] is not a usable manager base URL.
    #[error("{MANAGER_URL}: {0}")]
    ManagerUrl(String),
    /// A count binding is not a positive integer.
    #[error("{name} must be a positive whole number, not {value:?}")]
    BadCount {
        /// Binding name.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A `KILN_LIMIT_*` binding is not a size, or a `KILN_RETRY_*` binding not a valid
    /// retry setting.
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
    /// PCCS base URL ([`PCCS_URL`]), if set.
    pub pccs_url: Option<String>,
    /// What the collateral fetches of `/certificates/issue` may reach: only the origin of
    /// [`Config::pccs_url`] (empty when unset), under the same address rules as registries.
    pub pccs_policy: Policy,
    /// The allowlist as `scheme://host:port` (`*.` kept for wildcards), for the web app.
    pub registries: Vec<String>,
    /// The API tokens ([`API_TOKENS`]); `None` when unset.
    pub tokens: Option<crate::auth::ApiTokens>,
    /// [`EDGE_ANONYMOUS`]: conversions without a token when no tokens are configured.
    pub anonymous: bool,
    /// The key of the proxy's signed links, derived from the secrets.
    pub link_key: LinkKey,
    /// [`MAX_ENCLAVE_SIZE`] in bytes.
    pub max_enclave_size: u64,
    /// Rate limits ([`crate::ratelimit`]).
    pub limits: crate::ratelimit::Limits,
    /// What input images may make a conversion or verification read and hold:
    /// [`ImageLimits::edge`] with the `KILN_LIMIT_*` bindings applied; also sent to the
    /// web app in `/kiln-config.json`.
    pub image_limits: ImageLimits,
    /// How registry requests are retried: [`RetryPolicy::default`] with the
    /// `KILN_RETRY_*` bindings applied ([`RETRY_PREFIX`]); also sent to the web app in
    /// `/kiln-config.json` (`retry`).
    pub retry: RetryPolicy,
    /// The manager URL conversions measure into MANAGER_CA certificates' `init.json`
    /// entries: from the bindings, [`MANAGER_URL`] (checked); the handler then keeps it
    /// only when the worker is a MANAGER_CA (`KILN_MANAGER_CA_KEY` set), defaulting to the
    /// request's origin ([`Config::for_manager`]).
    pub manager_url: Option<String>,
}

/// Prefix of the bindings that change the retry policy: `KILN_RETRY_TRIES`,
/// `KILN_RETRY_BASE`, `KILN_RETRY_CAP`, `KILN_RETRY_TOTAL` (one per name of
/// [`kiln_engine::image::registry::RETRY_NAMES`]); durations as `500ms`, `2s`, `1m`.
pub const RETRY_PREFIX: &str = kiln_engine::image::registry::retry::RETRY_ENV_PREFIX;

/// Parses `64G`, `512M`, `1T`, `4096` (K, M, G, T: powers of 1024; case-insensitive).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b't' | b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

impl Config {
    /// Checks a request's `memSize` against [`MAX_ENCLAVE_SIZE`]. A value that is not a
    /// size is left to the engine's own 400.
    pub fn check_mem_size(&self, mem_size: Option<&str>) -> Result<(), String> {
        let Some(n) = mem_size.and_then(parse_size) else {
            return Ok(());
        };
        if n > self.max_enclave_size {
            return Err(format!(
                "memSize: {} bytes is over this worker's limit of {} bytes \
                 ({MAX_ENCLAVE_SIZE}, default 64G)",
                n, self.max_enclave_size
            ));
        }
        Ok(())
    }
}

/// The key of the proxy's signed links: SHA-256 over the worker's secret bindings
/// ([`SECRET_BINDINGS`], those set), `None` when it has none (the handler then uses a
/// random key of the isolate). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LinkKey(pub Option<[u8; 32]>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "LinkKey(derived)"
        } else {
            "LinkKey(per isolate)"
        })
    }
}

impl LinkKey {
    fn derive(get: impl Fn(&str) -> Option<String>) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"kiln-link-key-v1\0");
        let mut any = false;
        for name in SECRET_BINDINGS {
            if let Some(v) = get(name) {
                any = true;
                h.update(name.as_bytes());
                h.update(b"\0");
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
        }
        LinkKey(any.then(|| h.finalize().into()))
    }
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
            "limits": self.image_limits,
            "retry": self.retry,
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
        let count = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::BadCount { name, value: v }),
                },
            }
        };
        use crate::ratelimit as rl;
        let limits = rl::Limits {
            convert: count(rl::CONVERT_PER_MIN, rl::DEFAULT_CONVERT_PER_MIN)?,
            verify: count(rl::VERIFY_PER_MIN, rl::DEFAULT_VERIFY_PER_MIN)?,
            proxy: count(rl::PROXY_PER_MIN, rl::DEFAULT_PROXY_PER_MIN)?,
        };
        let mut image_limits = ImageLimits::edge();
        for name in LIMIT_NAMES {
            let var = format!(
                "{LIMIT_PREFIX}{}",
                name.to_ascii_uppercase().replace('-', "_")
            );
            if let Some(v) = get(&var) {
                image_limits.set(name, &v).map_err(|e| ConfigError::Limit {
                    name: var.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        let mut retry = RetryPolicy::default();
        for name in RETRY_NAMES {
            let var = format!("{RETRY_PREFIX}{}", name.to_ascii_uppercase());
            if let Some(v) = get(&var) {
                retry.set(name, &v).map_err(|e| ConfigError::Limit {
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
            pccs_url: get(PCCS_URL).map(|u| u.trim().to_string()),
            pccs_policy: Policy::default(),
            registries: registry_entries(&get(ALLOWLIST).unwrap_or_default()),
            tokens: get(API_TOKENS)
                .map(|t| crate::auth::ApiTokens::parse(&t))
                .transpose()?,
            anonymous: flag(EDGE_ANONYMOUS),
            link_key: LinkKey::derive(get),
            limits,
            max_enclave_size: match get(MAX_ENCLAVE_SIZE) {
                None => DEFAULT_MAX_ENCLAVE_SIZE,
                Some(v) => parse_size(&v)
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError::BadSize {
                        name: MAX_ENCLAVE_SIZE,
                        value: v,
                    })?,
            },
            image_limits,
            retry,
            manager_url: get(MANAGER_URL)
                .map(|u| u.trim().to_string())
                .map(|u| {
                    kiln_engine::gramine::init::check_manager_url(&u)
                        .map(|()| u)
                        .map_err(ConfigError::ManagerUrl)
                })
                .transpose()?,
        }
        .with_kms_policy(flag(ALLOW_LOOPBACK))?
        .with_pccs_policy(flag(ALLOW_LOOPBACK))
    }

    /// The manager URL of this request's conversions: `None` unless the worker is a
    /// MANAGER_CA (`is_manager`), else [`MANAGER_URL`] or, unset, `self_origin`.
    pub fn for_manager(mut self, is_manager: bool, self_origin: &str) -> Self {
        self.manager_url = is_manager.then(|| {
            self.manager_url
                .take()
                .unwrap_or_else(|| self_origin.trim_end_matches('/').to_string())
        });
        self
    }

    /// Derives [`Config::kms_policy`] from [`Config::kms_endpoint`].
    fn with_kms_policy(mut self, allow_loopback: bool) -> Result<Self, ConfigError> {
        let Some(raw) = self.kms_endpoint.clone() else {
            return Ok(self);
        };
        self.kms_policy = origin_policy(&raw, allow_loopback)
            .map_err(|why| ConfigError::KmsUrl { url: raw, why })?;
        Ok(self)
    }

    /// Derives [`Config::pccs_policy`] from [`Config::pccs_url`].
    fn with_pccs_policy(mut self, allow_loopback: bool) -> Result<Self, ConfigError> {
        let Some(raw) = self.pccs_url.clone() else {
            return Ok(self);
        };
        self.pccs_policy =
            origin_policy(&raw, allow_loopback).map_err(|why| ConfigError::PccsUrl { why })?;
        Ok(self)
    }
}

/// A policy that reaches only the origin of the operator-configured service URL `raw`
/// (`http(s)://host[:port][/path]`, no credentials or query), under the registries' address
/// rules; or what is wrong with the URL.
fn origin_policy(raw: &str, allow_loopback: bool) -> Result<Policy, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http:// and https:// are allowed".into());
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err("no credentials or query in the URL".into());
    }
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().ok_or("no port")?;
    let entry = format!("{}://{host}:{port}", url.scheme());
    Policy::new(&entry, allow_loopback).map_err(|e| e.to_string())
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
    fn the_manager_url_is_checked_and_used_only_by_a_manager_ca() {
        assert_eq!(cfg(&[]).unwrap().manager_url, None);
        let c = cfg(&[(MANAGER_URL, " https://kiln.example/ ")]).unwrap();
        assert_eq!(c.manager_url.as_deref(), Some("https://kiln.example/"));
        assert_eq!(
            c.clone()
                .for_manager(true, "https://self.example")
                .manager_url
                .as_deref(),
            Some("https://kiln.example/")
        );
        assert_eq!(
            c.for_manager(false, "https://self.example").manager_url,
            None
        );
        assert_eq!(
            cfg(&[])
                .unwrap()
                .for_manager(true, "http://127.0.0.1:8787")
                .manager_url
                .as_deref(),
            Some("http://127.0.0.1:8787")
        );
        let e = cfg(&[(MANAGER_URL, "https://u:p@kiln.example")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("KILN_MANAGER_URL: ") && e.contains("userinfo"),
            "{e}"
        );
        assert!(!e.contains("u:p"), "{e}");
    }

    #[test]
    fn limits_default_to_the_edge_and_take_kiln_limit_bindings() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.image_limits, ImageLimits::edge());
        assert!(c.image_limits.layer_bytes < ImageLimits::default().layer_bytes);
        let c = cfg(&[
            ("KILN_LIMIT_LAYER_BYTES", "1GiB"),
            ("KILN_LIMIT_MANIFEST_LAYERS", "64"),
        ])
        .unwrap();
        assert_eq!(
            (c.image_limits.layer_bytes, c.image_limits.manifest_layers),
            (1 << 30, 64)
        );
        assert_eq!(c.client_config()["limits"]["manifestLayers"], 64);
        let e = cfg(&[("KILN_LIMIT_PATH_BYTES", "many")]).unwrap_err();
        assert!(e.to_string().contains("KILN_LIMIT_PATH_BYTES"), "{e}");
    }

    #[test]
    fn retry_defaults_to_the_engine_and_takes_kiln_retry_bindings() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.retry, RetryPolicy::default());
        let c = cfg(&[("KILN_RETRY_TRIES", "3"), ("KILN_RETRY_TOTAL", "30s")]).unwrap();
        assert_eq!((c.retry.max_tries, c.retry.max_total_ms), (3, 30_000));
        assert_eq!(c.client_config()["retry"]["maxTries"], 3);
        let e = cfg(&[("KILN_RETRY_BASE", "soon")]).unwrap_err();
        assert!(e.to_string().contains("KILN_RETRY_BASE"), "{e}");
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
        assert_eq!(c.tokens, None);
        assert!(!c.anonymous);
    }

    #[test]
    fn rate_limits() {
        use crate::ratelimit::*;
        assert_eq!(cfg(&[]).unwrap().limits, Limits::default());
        let c = cfg(&[(CONVERT_PER_MIN, "2"), (PROXY_PER_MIN, "9")]).unwrap();
        assert_eq!(
            (c.limits.convert, c.limits.verify, c.limits.proxy),
            (2, 30, 9)
        );
        let e = cfg(&[(VERIFY_PER_MIN, "0")]).unwrap_err();
        assert!(e.to_string().contains(VERIFY_PER_MIN), "{e}");
    }

    #[test]
    fn max_enclave_size() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.max_enclave_size, 64 << 30);
        assert!(c.check_mem_size(Some("64G")).is_ok());
        assert!(c.check_mem_size(None).is_ok());
        assert!(c.check_mem_size(Some("not a size")).is_ok());
        for big in ["1T", "65G", "68719476737"] {
            let e = c.check_mem_size(Some(big)).unwrap_err();
            assert!(
                e.contains("KILN_MAX_ENCLAVE_SIZE") && e.contains("memSize"),
                "{e}"
            );
        }
        let c = cfg(&[(MAX_ENCLAVE_SIZE, "2g")]).unwrap();
        assert!(c.check_mem_size(Some("4G")).is_err());
        assert!(c.check_mem_size(Some("2048M")).is_ok());
        assert!(cfg(&[(MAX_ENCLAVE_SIZE, "lots")]).is_err());
        assert!(cfg(&[(MAX_ENCLAVE_SIZE, "0")]).is_err());
        assert_eq!(parse_size("99999999999999T"), None);
    }

    #[test]
    fn link_key_from_secrets() {
        assert_eq!(cfg(&[]).unwrap().link_key, LinkKey(None));
        let a = cfg(&[(TWO_STEP_SECRET, "0123456789abcdef0")])
            .unwrap()
            .link_key;
        let b = cfg(&[(TWO_STEP_SECRET, "0123456789abcdef1")])
            .unwrap()
            .link_key;
        let c = cfg(&[(PROXY_SECRET, "0123456789abcdef0")])
            .unwrap()
            .link_key;
        assert!(a.0.is_some() && a != b && a != c);
        assert!(!format!("{a:?}").contains("01"));
    }

    /// Secrets come only from secret bindings: wrangler.toml's `[vars]` (plain text,
    /// visible in the dashboard and the repository) may not name one.
    #[test]
    fn no_secret_in_wrangler_vars() {
        let toml = include_str!("../wrangler.toml");
        let mut in_vars = false;
        for line in toml.lines() {
            let l = line.trim();
            if l.starts_with('[') {
                in_vars = l == "[vars]";
                continue;
            }
            if !in_vars || l.starts_with('#') {
                continue;
            }
            if let Some((k, _)) = l.split_once('=') {
                assert!(
                    !SECRET_BINDINGS.contains(&k.trim()),
                    "wrangler.toml [vars] holds the secret {}",
                    k.trim()
                );
            }
        }
    }

    #[test]
    fn api_tokens() {
        let h = "ab".repeat(32);
        let c = cfg(&[
            (API_TOKENS, &format!("ci {h} ghcr.io/acme")),
            (EDGE_ANONYMOUS, "1"),
        ])
        .unwrap();
        assert_eq!(c.tokens.as_ref().map(|t| t.len()), Some(1));
        assert!(c.anonymous);
        let e = cfg(&[(API_TOKENS, "ci not-a-hash")]).unwrap_err();
        assert!(e.to_string().contains("KILN_API_TOKENS line 1"), "{e}");
        assert!(!e.to_string().contains("not-a-hash"), "{e}");
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
    fn pccs_url_is_its_own_exemption_and_never_quoted() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.pccs_url, None);
        assert!(c.pccs_policy.is_empty());
        let c = cfg(&[
            (ALLOWLIST, "ghcr.io"),
            (
                PCCS_URL,
                " https://pccs.example:8081/sgx/certification/v4/ ",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.pccs_url.as_deref(),
            Some("https://pccs.example:8081/sgx/certification/v4/")
        );
        assert!(c.pccs_policy.check_authority("pccs.example:8081").is_ok());
        assert!(c.pccs_policy.check_authority("ghcr.io").is_err());
        assert!(c.policy.check_authority("pccs.example:8081").is_err());
        assert!(c.kms_policy.check_authority("pccs.example:8081").is_err());
        // Loopback only with the test flag.
        let c = cfg(&[(PCCS_URL, "http://127.0.0.1:8081"), (ALLOW_LOOPBACK, "1")]).unwrap();
        assert!(c.pccs_policy.check_authority("127.0.0.1:8081").is_ok());
        let c = cfg(&[(PCCS_URL, "http://127.0.0.1:8081")]).unwrap();
        assert!(c.pccs_policy.check_authority("127.0.0.1:8081").is_err());
        for bad in [
            "ftp://x",
            "pccs.example",
            "https://u:s3cret@h",
            "https://h/?key=s3cret",
        ] {
            let e = cfg(&[(PCCS_URL, bad)]).unwrap_err().to_string();
            assert!(e.contains(PCCS_URL), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
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
