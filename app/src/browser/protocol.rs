//! The messages between the page and the engine's Web Worker (JSON strings over
//! `postMessage`; nothing here ever goes over the network) and the worker service's
//! `/kiln-config.json`.

use kiln_engine::api::{AuthConfig, ConvertResponse};
use kiln_engine::verify::{InspectReport, VerifyReport};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::progress::ProgressView;

/// `GET /kiln-config.json` of the kiln worker that serves the app.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KilnConfig {
    /// The runtime image conversions build on (`null`: conversion not configured).
    #[serde(default)]
    pub runtime_image: Option<String>,
    /// The CORS proxy's path or URL (`/proxy`), resolved against the config's URL.
    #[serde(default = "default_proxy")]
    pub proxy: String,
    /// The registries the proxy reaches, as `scheme://host:port`.
    #[serde(default)]
    pub registries: Vec<String>,
    /// Seconds a response may go without a byte before the browser transport fails it
    /// (absent: the transport's default, 300 s).
    #[serde(default)]
    pub idle_timeout_secs: Option<u32>,
    /// The input image's limits (the worker's `KILN_LIMIT_*`; absent: the engine's edge
    /// defaults, [`kiln_engine::image::limits::ImageLimits::edge`]).
    #[serde(default = "kiln_engine::image::limits::ImageLimits::edge")]
    pub limits: kiln_engine::image::limits::ImageLimits,
    /// How registry requests are retried (the worker's `KILN_RETRY_*`; absent fields:
    /// the engine's defaults).
    #[serde(default)]
    pub retry: kiln_engine::image::registry::RetryPolicy,
}

fn default_proxy() -> String {
    "/proxy".to_string()
}

impl KilnConfig {
    /// The browser transport's idle timeout in milliseconds: [`Self::idle_timeout_secs`],
    /// or `default_ms` when absent or zero.
    pub fn idle_timeout_ms(&self, default_ms: u32) -> u32 {
        match self.idle_timeout_secs {
            Some(s) if s > 0 => s.saturating_mul(1000),
            _ => default_ms,
        }
    }

    /// Whether the registry of `image` is one this service's proxy reaches: `Ok(host)` when
    /// it is on [`Self::registries`], `Err(why)` naming the host and the allowlist when not.
    /// `None` when it cannot tell: no allowlist published, or `image` is empty or not a
    /// reference (the form's own check names that). Docker Hub names are checked as the
    /// host that serves them (`registry-1.docker.io`), like the proxy does.
    pub fn registry_allowed(&self, image: &str) -> Option<Result<String, String>> {
        let image = image.trim();
        if image.is_empty() || self.registries.is_empty() {
            return None;
        }
        let r = kiln_engine::image::reference::Reference::parse(image).ok()?;
        let host = r.api_host();
        let hosts: Vec<&str> = self
            .registries
            .iter()
            .map(|e| {
                let e = e.trim().trim_end_matches('/');
                e.split_once("://").map_or(e, |(_, h)| h)
            })
            .collect();
        if hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            Some(Ok(host.to_string()))
        } else {
            Some(Err(format!(
                "{host} is not on this service's registry allowlist ({}): the conversion would be refused",
                hosts.join(", ")
            )))
        }
    }

    /// `host:port` of every plain-http registry (the engine's insecure registries).
    pub fn plain_http_authorities(&self) -> Vec<String> {
        self.registries
            .iter()
            .filter_map(|r| r.strip_prefix("http://"))
            .map(|a| a.trim_end_matches('/').to_string())
            .collect()
    }

    /// The proxy's absolute base URL, given the API origin (`http://127.0.0.1:8787`).
    pub fn proxy_base(&self, api_origin: &str) -> String {
        let p = self.proxy.trim_end_matches('/');
        if p.starts_with("http://") || p.starts_with("https://") {
            p.to_string()
        } else {
            format!(
                "{}/{}",
                api_origin.trim_end_matches('/'),
                p.trim_start_matches('/')
            )
        }
    }
}

/// The key a conversion signs with, as sent to the Web Worker.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum KeySpec {
    /// A WebCrypto key stored in the key store (IndexedDB `kiln`/`keys`), by record id.
    Stored {
        /// Record id.
        id: String,
    },
    /// An imported key stored sealed under a passphrase, by record id.
    Sealed {
        /// Record id.
        id: String,
        /// The passphrase that unseals it.
        passphrase: Zeroizing<String>,
    },
    /// A PEM private key held in the page's memory.
    Pem {
        /// The PEM text.
        pem: Zeroizing<String>,
    },
}

impl std::fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySpec::Stored { id } => write!(f, "Stored({id})"),
            KeySpec::Sealed { id, .. } => write!(f, "Sealed({id})"),
            KeySpec::Pem { .. } => f.write_str("Pem(<redacted>)"),
        }
    }
}

/// A job for the Web Worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "camelCase")]
pub enum JobSpec {
    /// Convert an image (the request as the API takes it, JSON).
    Convert {
        /// The convert-image request body (credentials included: it stays in the browser).
        request: String,
        /// What signs.
        key: KeySpec,
        /// The kiln worker's origin (`/kiln-config.json` and the proxy live there).
        #[serde(rename = "apiOrigin")]
        api_origin: String,
    },
    /// Verify an image in its registry.
    Verify {
        /// The image reference.
        image: String,
        /// Pull credentials.
        #[serde(default)]
        auth: Option<AuthConfig>,
        /// Expected MRENCLAVE (hex).
        #[serde(default, rename = "expectMrenclave")]
        expect_mrenclave: Option<String>,
        /// Expected MRSIGNER (hex).
        #[serde(default, rename = "expectMrsigner")]
        expect_mrsigner: Option<String>,
        /// The kiln worker's origin.
        #[serde(rename = "apiOrigin")]
        api_origin: String,
    },
}

/// A message from the Web Worker to the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WorkerMessage {
    /// A progress event.
    Progress {
        /// The event.
        event: ProgressView,
    },
    /// The conversion's response (terminal).
    Converted {
        /// The API response.
        response: ConvertResponse,
    },
    /// The verification's report (terminal).
    Verified {
        /// The report.
        report: VerifyReport,
        /// What the image says about itself (both SIGSTRUCTs' fields, labels, runtime).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inspect: Option<Box<InspectReport>>,
    },
    /// The job failed (terminal), with the API's `{errorType, reason}`.
    Failed {
        /// The API error type (`BadRequest`, `RegistryError`, ...).
        #[serde(rename = "errorType")]
        error_type: String,
        /// What went wrong.
        reason: String,
    },
}

impl WorkerMessage {
    /// A failure message.
    pub fn failed(error_type: impl Into<String>, reason: impl Into<String>) -> Self {
        WorkerMessage::Failed {
            error_type: error_type.into(),
            reason: reason.into(),
        }
    }

    /// Whether this message ends the job.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, WorkerMessage::Progress { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_allowlist_check() {
        let c = KilnConfig {
            registries: vec![
                "http://127.0.0.1:5000".into(),
                "https://registry-1.docker.io/".into(),
                "ghcr.io".into(),
            ],
            ..KilnConfig::default()
        };
        assert_eq!(
            c.registry_allowed("127.0.0.1:5000/out/app:1"),
            Some(Ok("127.0.0.1:5000".into()))
        );
        assert_eq!(
            c.registry_allowed("busybox"),
            Some(Ok("registry-1.docker.io".into()))
        );
        assert_eq!(
            c.registry_allowed("GHCR.io/o/r:1"),
            Some(Ok("GHCR.io".into()))
        );
        let e = c.registry_allowed("127.0.0.1:1/x:1").unwrap().unwrap_err();
        assert!(
            e.starts_with("127.0.0.1:1 is not on this service's registry allowlist (127.0.0.1:5000, registry-1.docker.io, ghcr.io)"),
            "{e}"
        );
        assert_eq!(c.registry_allowed(""), None);
        assert_eq!(c.registry_allowed("UPPER/Case"), None);
        assert_eq!(KilnConfig::default().registry_allowed("busybox"), None);
    }

    #[test]
    fn config_parses_and_resolves() {
        let c: KilnConfig = serde_json::from_str(
            r#"{"runtimeImage":"127.0.0.1:5000/kiln/runtime:1.9","proxy":"/proxy",
                "registries":["http://127.0.0.1:5000","https://ghcr.io:443"]}"#,
        )
        .unwrap();
        assert_eq!(
            c.runtime_image.as_deref(),
            Some("127.0.0.1:5000/kiln/runtime:1.9")
        );
        assert_eq!(c.plain_http_authorities(), vec!["127.0.0.1:5000"]);
        assert_eq!(
            c.proxy_base("http://127.0.0.1:8787/"),
            "http://127.0.0.1:8787/proxy"
        );
        assert_eq!(c.idle_timeout_ms(300_000), 300_000);
        let c: KilnConfig = serde_json::from_str(r#"{"runtimeImage":null}"#).unwrap();
        assert_eq!(c.runtime_image, None);
        assert_eq!(c.limits, kiln_engine::image::limits::ImageLimits::edge());
        let c: KilnConfig = serde_json::from_str(r#"{"limits":{"layerBytes":9}}"#).unwrap();
        assert_eq!(c.limits.layer_bytes, 9);
        assert_eq!(
            c.retry,
            kiln_engine::image::registry::RetryPolicy::default()
        );
        let c: KilnConfig = serde_json::from_str(r#"{"retry":{"maxTries":2}}"#).unwrap();
        assert_eq!(c.retry.max_tries, 2);
        for (secs, ms) in [("2", 2000), ("0", 7), ("null", 7)] {
            let c: KilnConfig =
                serde_json::from_str(&format!(r#"{{"idleTimeoutSecs":{secs}}}"#)).unwrap();
            assert_eq!(c.idle_timeout_ms(7), ms, "{secs}");
        }
        assert_eq!(c.proxy_base("https://k.example"), "https://k.example/proxy");
        let c = KilnConfig {
            proxy: "https://p.example/proxy/".into(),
            ..Default::default()
        };
        assert_eq!(c.proxy_base("https://k.example"), "https://p.example/proxy");
    }

    #[test]
    fn jobs_round_trip_and_hide_keys() {
        let j = JobSpec::Convert {
            request: "{}".into(),
            key: KeySpec::Pem {
                pem: Zeroizing::new("-----BEGIN PRIVATE KEY-----".into()),
            },
            api_origin: "http://o".into(),
        };
        assert!(!format!("{j:?}").contains("BEGIN"));
        let s = serde_json::to_string(&j).unwrap();
        let back: JobSpec = serde_json::from_str(&s).unwrap();
        assert!(matches!(
            back,
            JobSpec::Convert {
                key: KeySpec::Pem { .. },
                ..
            }
        ));
        let j = JobSpec::Convert {
            request: "{}".into(),
            key: KeySpec::Sealed {
                id: "k1".into(),
                passphrase: Zeroizing::new("hunter2".into()),
            },
            api_origin: "http://o".into(),
        };
        assert!(!format!("{j:?}").contains("hunter2"));
        let v: JobSpec = serde_json::from_str(
            r#"{"job":"verify","image":"r/a:1","apiOrigin":"http://o","expectMrsigner":"ab"}"#,
        )
        .unwrap();
        assert!(matches!(v, JobSpec::Verify { expect_mrsigner: Some(ref s), .. } if s == "ab"));
    }

    #[test]
    fn worker_messages() {
        let m = WorkerMessage::failed("BadRequest", "isvsvn: too large");
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(
            s,
            r#"{"type":"failed","errorType":"BadRequest","reason":"isvsvn: too large"}"#
        );
        assert!(m.is_terminal());
        let back: WorkerMessage = serde_json::from_str(&s).unwrap();
        assert_eq!(back, m);
        let c = WorkerMessage::Converted {
            response: ConvertResponse::default(),
        };
        let back: WorkerMessage =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
