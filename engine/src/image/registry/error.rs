//! Registry errors, each with the HTTP-ish class the API reports.

use crate::image::manifest::ManifestError;
use crate::image::reference::ReferenceError;
use crate::image::transport::{TransportError, TransportErrorKind};

/// How an error maps onto the API's HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request (reference, platform, manifest) is wrong: 400.
    BadInput,
    /// Credentials missing or rejected: 401.
    Unauthorized,
    /// Credentials valid but not allowed: 403.
    Forbidden,
    /// Repository, manifest or blob absent: 404.
    NotFound,
    /// The registry could not be reached or failed: 502.
    Upstream,
    /// The registry timed out: 504.
    Timeout,
}

impl ErrorClass {
    /// The HTTP status for this class.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::BadInput => 400,
            ErrorClass::Unauthorized => 401,
            ErrorClass::Forbidden => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::Upstream => 502,
            ErrorClass::Timeout => 504,
        }
    }
}

/// A registry operation failed. Messages never contain credentials or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// 401: no or wrong credentials (or the token server refused them).
    #[error("registry {registry}: unauthorized ({detail})")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// What the registry said.
        detail: String,
    },
    /// 403: credentials valid but the action is not allowed.
    #[error("registry {registry}: forbidden ({detail})")]
    Forbidden {
        /// The registry host.
        registry: String,
        /// What the registry said.
        detail: String,
    },
    /// 404: no such repository, manifest, blob or upload.
    #[error("registry {registry}: {what} not found ({detail})")]
    NotFound {
        /// The registry host.
        registry: String,
        /// What was looked for.
        what: String,
        /// What the registry said.
        detail: String,
    },
    /// 400 (or another 4xx): the registry rejected the request.
    #[error("registry {registry}: {operation} rejected with HTTP {status} ({detail})")]
    Rejected {
        /// The registry host.
        registry: String,
        /// What was attempted.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// What the registry said.
        detail: String,
    },
    /// 5xx or an unexpected status.
    #[error("registry {registry}: {operation} failed with HTTP {status} ({detail})")]
    Failed {
        /// The registry host.
        registry: String,
        /// What was attempted.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// What the registry said.
        detail: String,
    },
    /// The registry could not be reached (connect, TLS, timeout, broken body).
    #[error("registry {registry}: {operation}: {source}")]
    Transport {
        /// The registry host.
        registry: String,
        /// What was attempted.
        operation: String,
        /// The transport failure.
        source: TransportError,
    },
    /// The registry answered something kiln cannot use (missing header, bad JSON).
    #[error("registry {registry}: invalid response to {operation}: {detail}")]
    InvalidResponse {
        /// The registry host.
        registry: String,
        /// What was attempted.
        operation: String,
        /// What is wrong.
        detail: String,
    },
    /// Content does not match its digest or size.
    #[error("{what}: content mismatch: expected {expected}, got {actual}")]
    ContentMismatch {
        /// What was checked.
        what: String,
        /// Expected digest or size.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The image is larger than a limit allows (manifest bytes, layers, config bytes):
    /// the image's fault, a 400 for the input.
    #[error("{what}: {source}")]
    Limit {
        /// What was being read (`manifest REPO:REF`, `config DIGEST`).
        what: String,
        /// Which limit, and what exceeded it.
        source: crate::image::limits::LimitExceeded,
    },
    /// A manifest problem (kind, platform, digest).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A reference problem.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl RegistryError {
    /// The API class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Unauthorized { .. } => ErrorClass::Unauthorized,
            RegistryError::Forbidden { .. } => ErrorClass::Forbidden,
            RegistryError::NotFound { .. } => ErrorClass::NotFound,
            RegistryError::Rejected { .. } => ErrorClass::BadInput,
            RegistryError::Failed { .. } => ErrorClass::Upstream,
            RegistryError::Transport { source, .. } => match source.kind {
                TransportErrorKind::Timeout => ErrorClass::Timeout,
                _ => ErrorClass::Upstream,
            },
            RegistryError::InvalidResponse { .. } => ErrorClass::Upstream,
            RegistryError::ContentMismatch { .. } => ErrorClass::Upstream,
            RegistryError::Manifest(m) => match m {
                ManifestError::DigestMismatch { .. } | ManifestError::TooLarge => {
                    ErrorClass::Upstream
                }
                _ => ErrorClass::BadInput,
            },
            RegistryError::Reference(_) => ErrorClass::BadInput,
            RegistryError::Limit { .. } => ErrorClass::BadInput,
        }
    }

    /// The HTTP status of this error's class.
    pub fn http_status(&self) -> u16 {
        self.class().http_status()
    }
}

/// Summarises a registry error body (`{"errors":[{"code","message"}]}`) in at most
/// 300 characters; other bodies are quoted, truncated.
pub fn summarize_error_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    let s = if let Ok(e) = serde_json::from_slice::<Errs>(body) {
        e.errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        String::from_utf8_lossy(body).trim().to_string()
    };
    let s = if s.is_empty() {
        "no details".to_string()
    } else {
        s
    };
    truncate(&s, 300)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let u = RegistryError::Unauthorized {
            registry: "r".into(),
            detail: "d".into(),
        };
        assert_eq!(u.http_status(), 401);
        let t = RegistryError::Transport {
            registry: "r".into(),
            operation: "GET".into(),
            source: TransportError::new(TransportErrorKind::Timeout, "slow"),
        };
        assert_eq!(t.http_status(), 504);
        let c = RegistryError::Transport {
            registry: "r".into(),
            operation: "GET".into(),
            source: TransportError::new(TransportErrorKind::Connect, "refused"),
        };
        assert_eq!(c.http_status(), 502);
        let p = RegistryError::Manifest(ManifestError::NoMatchingPlatform {
            wanted: "linux/amd64".into(),
            present: vec![],
        });
        assert_eq!(p.http_status(), 400);
    }

    #[test]
    fn summarizes_bodies() {
        let b =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            summarize_error_body(b),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(summarize_error_body(b""), "no details");
        let long = "x".repeat(1000);
        assert!(summarize_error_body(long.as_bytes()).chars().count() <= 301);
    }
}
