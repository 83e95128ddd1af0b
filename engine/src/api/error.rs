//! The API error: every failure is a JSON body `{"errorType": "...", "reason": "..."}`
//! with a fitting HTTP status. This is kiln's one error vocabulary: the engine, the
//! worker's edge API and its registry proxy all answer with these kinds.
//!
//! | errorType | status | who answers | when |
//! |---|---|---|---|
//! | `BadRequest` | 400 (413) | all | malformed or contradictory request (the reason names the field), or an image kiln cannot convert as asked (entrypoint not found, unknown user); 413 for a request body over the worker's limit |
//! | `Unauthorized` | 401 | all | a registry refused the given credentials (or demanded some); no or an unknown API token |
//! | `Forbidden` | 403 | all | a registry accepted the credentials but denied access; an API token may not push there; a proxy link the worker did not sign |
//! | `NotFound` | 404 | all | the input image (or a blob of it) does not exist; an unknown path |
//! | `RegistryError` | 502 | all | a registry is unreachable or answered with an error |
//! | `RegistryTimeout` | 504 | all | a registry did not answer in time |
//! | `SignerError` | 502 | all | the signer failed: a KMS unreachable, failing or timing out, a browser key that would not sign |
//! | `CollateralError` | 502 | all | the PCCS (or Intel's PCS) that should provide a quote's collateral is unreachable or failing |
//! | `Internal` | 500 | all | kiln's own bug |
//! | `RegistryNotAllowed` | 403 (400) | worker | a registry off the worker's allowlist; 400 when the registry name itself is malformed |
//! | `ConfigurationError` | 500 (503) | worker | the worker lacks a setting (runtime image, default key, two-step secret); 503 when it has no API tokens |
//! | `OriginNotAllowed` | 403 | worker | a page origin the worker does not serve |
//! | `MethodNotAllowed` | 405 | worker | the wrong method for a path |
//! | `InvalidToken` | 401 (400) | worker | a two-step token not made with the worker's secret; 400 when malformed |
//! | `TokenExpired` | 401 | worker | a two-step token past its expiry |
//! | `RateLimited` | 429 | worker | a rate limit is reached |
//! | `BadRedirect` | 502 | registry proxy | a registry's redirect the proxy cannot follow |
//! | `RegistryUnreachable` | 502 | registry proxy | a registry that cannot be reached |
//! | `TooManyRedirects` | 502 | registry proxy | a redirect chain too long |
//! | `BadUpstreamStatus` | 502 | registry proxy | a registry's informational (1xx) status |
//! | `InternalError` | 500 | registry proxy | the proxy's own failure (its name for `Internal`) |
//!
//! Each kind's status is [`ErrorType::status`]; the few in brackets are the other statuses a
//! kind may carry ([`ErrorType::statuses`], set with [`ApiError::with_status`]). The edge
//! API's OpenAPI document lists every kind but the registry proxy's
//! ([`ErrorType::registry_proxy_only`]).
//!
//! A reason never contains a password or API key: constructors take text the caller has
//! already built without secrets, and the request parser never quotes secret values.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of an API error; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ErrorType {
    /// 400 (413 for a body over the limit): malformed or contradictory request.
    BadRequest,
    /// 401: credentials refused.
    Unauthorized,
    /// 403: access denied.
    Forbidden,
    /// 404: input image not found.
    NotFound,
    /// 502: registry unreachable or failing.
    RegistryError,
    /// 504: registry timed out.
    RegistryTimeout,
    /// 502: the signer (a KMS, a browser key) failed or is unreachable.
    SignerError,
    /// 502: the PCCS providing a quote's collateral failed or is unreachable.
    CollateralError,
    /// 500: kiln's own bug.
    Internal,
    /// 403 (400 for a malformed registry name): a registry off the worker's allowlist.
    RegistryNotAllowed,
    /// 500 (503 when no API tokens are configured): the worker lacks a setting.
    ConfigurationError,
    /// 403: a page origin the worker does not serve.
    OriginNotAllowed,
    /// 405: the wrong method for a path.
    MethodNotAllowed,
    /// 401 (400 when malformed): a two-step token not made with the worker's secret.
    InvalidToken,
    /// 401: a two-step token past its expiry.
    TokenExpired,
    /// 429: a rate limit is reached.
    RateLimited,
    /// 502, registry proxy: a redirect it cannot follow.
    BadRedirect,
    /// 502, registry proxy: the registry cannot be reached.
    RegistryUnreachable,
    /// 502, registry proxy: too many redirects.
    TooManyRedirects,
    /// 502, registry proxy: the registry answered with an informational status.
    BadUpstreamStatus,
    /// 500, registry proxy: its own failure (the proxy's name for `Internal`).
    InternalError,
}

impl ErrorType {
    /// Every kind, in the order of the table above.
    pub const ALL: [ErrorType; 21] = [
        ErrorType::BadRequest,
        ErrorType::Unauthorized,
        ErrorType::Forbidden,
        ErrorType::NotFound,
        ErrorType::RegistryError,
        ErrorType::RegistryTimeout,
        ErrorType::SignerError,
        ErrorType::CollateralError,
        ErrorType::Internal,
        ErrorType::RegistryNotAllowed,
        ErrorType::ConfigurationError,
        ErrorType::OriginNotAllowed,
        ErrorType::MethodNotAllowed,
        ErrorType::InvalidToken,
        ErrorType::TokenExpired,
        ErrorType::RateLimited,
        ErrorType::BadRedirect,
        ErrorType::RegistryUnreachable,
        ErrorType::TooManyRedirects,
        ErrorType::BadUpstreamStatus,
        ErrorType::InternalError,
    ];

    /// The statuses this kind may carry; the first is its usual one ([`Self::status`]).
    pub fn statuses(self) -> &'static [u16] {
        use ErrorType as E;
        match self {
            E::BadRequest => &[400, 413],
            E::Unauthorized | E::TokenExpired => &[401],
            E::InvalidToken => &[401, 400],
            E::Forbidden | E::OriginNotAllowed => &[403],
            E::RegistryNotAllowed => &[403, 400],
            E::NotFound => &[404],
            E::MethodNotAllowed => &[405],
            E::RateLimited => &[429],
            E::Internal | E::InternalError => &[500],
            E::ConfigurationError => &[500, 503],
            E::RegistryError
            | E::SignerError
            | E::CollateralError
            | E::BadRedirect
            | E::RegistryUnreachable
            | E::TooManyRedirects
            | E::BadUpstreamStatus => &[502],
            E::RegistryTimeout => &[504],
        }
    }

    /// The HTTP status for this kind.
    pub fn status(self) -> u16 {
        self.statuses()[0]
    }

    /// Answered only by the worker's registry proxy (`/proxy/...`), not by the edge API or
    /// the engine: left out of the edge API's OpenAPI document.
    pub fn registry_proxy_only(self) -> bool {
        matches!(
            self,
            ErrorType::BadRedirect
                | ErrorType::RegistryUnreachable
                | ErrorType::TooManyRedirects
                | ErrorType::BadUpstreamStatus
                | ErrorType::InternalError
        )
    }

    /// The `errorType` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadRequest => "BadRequest",
            ErrorType::Unauthorized => "Unauthorized",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::NotFound => "NotFound",
            ErrorType::RegistryError => "RegistryError",
            ErrorType::RegistryTimeout => "RegistryTimeout",
            ErrorType::SignerError => "SignerError",
            ErrorType::CollateralError => "CollateralError",
            ErrorType::Internal => "Internal",
            ErrorType::RegistryNotAllowed => "RegistryNotAllowed",
            ErrorType::ConfigurationError => "ConfigurationError",
            ErrorType::OriginNotAllowed => "OriginNotAllowed",
            ErrorType::MethodNotAllowed => "MethodNotAllowed",
            ErrorType::InvalidToken => "InvalidToken",
            ErrorType::TokenExpired => "TokenExpired",
            ErrorType::RateLimited => "RateLimited",
            ErrorType::BadRedirect => "BadRedirect",
            ErrorType::RegistryUnreachable => "RegistryUnreachable",
            ErrorType::TooManyRedirects => "TooManyRedirects",
            ErrorType::BadUpstreamStatus => "BadUpstreamStatus",
            ErrorType::InternalError => "InternalError",
        }
    }
}

/// An API error. Serialises as `{"errorType": ..., "reason": ...}`; `status` is the HTTP
/// status and is not part of the body (deserialising derives it from `errorType`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "ErrorBody", into = "ErrorBody")]
pub struct ApiError {
    /// HTTP status (`error_type.status()`).
    pub status: u16,
    /// The kind of error.
    pub error_type: ErrorType,
    /// What went wrong, naming the field, key, file or registry involved.
    pub reason: String,
}

/// The wire form of [`ApiError`].
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_type: ErrorType,
    reason: String,
}

impl From<ErrorBody> for ApiError {
    fn from(b: ErrorBody) -> Self {
        ApiError::new(b.error_type, b.reason)
    }
}

impl From<ApiError> for ErrorBody {
    fn from(e: ApiError) -> Self {
        ErrorBody {
            error_type: e.error_type,
            reason: e.reason,
        }
    }
}

impl ApiError {
    /// An error of the given kind (status from the kind).
    pub fn new(error_type: ErrorType, reason: impl Into<String>) -> Self {
        Self {
            status: error_type.status(),
            error_type,
            reason: reason.into(),
        }
    }

    /// A 400 `BadRequest`.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(ErrorType::BadRequest, reason)
    }

    /// A 500 `Internal`.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, reason)
    }

    /// The same error with another of the statuses its kind may carry
    /// ([`ErrorType::statuses`], e.g. 413 for a `BadRequest` body over the limit). A status
    /// the kind does not list is ignored: the error keeps its kind's usual status.
    pub fn with_status(mut self, status: u16) -> Self {
        if self.error_type.statuses().contains(&status) {
            self.status = status;
        }
        self
    }

    /// The same error with `prefix: ` before its reason (the field or part it concerns).
    pub fn in_field(mut self, prefix: &str) -> Self {
        self.reason = format!("{prefix}: {}", self.reason);
        self
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        // Serialising a struct of a string and a unit enum cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"errorType":"Internal","reason":"error serialisation failed"}"#)
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.error_type.as_str(),
            self.status,
            self.reason
        )
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_names() {
        let all = [
            (ErrorType::BadRequest, 400, "BadRequest"),
            (ErrorType::Unauthorized, 401, "Unauthorized"),
            (ErrorType::Forbidden, 403, "Forbidden"),
            (ErrorType::NotFound, 404, "NotFound"),
            (ErrorType::RegistryError, 502, "RegistryError"),
            (ErrorType::RegistryTimeout, 504, "RegistryTimeout"),
            (ErrorType::SignerError, 502, "SignerError"),
            (ErrorType::CollateralError, 502, "CollateralError"),
            (ErrorType::Internal, 500, "Internal"),
            (ErrorType::RegistryNotAllowed, 403, "RegistryNotAllowed"),
            (ErrorType::ConfigurationError, 500, "ConfigurationError"),
            (ErrorType::OriginNotAllowed, 403, "OriginNotAllowed"),
            (ErrorType::MethodNotAllowed, 405, "MethodNotAllowed"),
            (ErrorType::InvalidToken, 401, "InvalidToken"),
            (ErrorType::TokenExpired, 401, "TokenExpired"),
            (ErrorType::RateLimited, 429, "RateLimited"),
            (ErrorType::BadRedirect, 502, "BadRedirect"),
            (ErrorType::RegistryUnreachable, 502, "RegistryUnreachable"),
            (ErrorType::TooManyRedirects, 502, "TooManyRedirects"),
            (ErrorType::BadUpstreamStatus, 502, "BadUpstreamStatus"),
            (ErrorType::InternalError, 500, "InternalError"),
        ];
        assert_eq!(all.len(), ErrorType::ALL.len());
        for (t, s, n) in all {
            assert_eq!(t.status(), s);
            assert_eq!(t.as_str(), n);
            let e = ApiError::new(t, "why");
            assert_eq!(e.status, s);
            assert_eq!(
                e.to_json(),
                format!(r#"{{"errorType":"{n}","reason":"why"}}"#)
            );
            // The wire name is serde's name, and it reads back as the same kind.
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{n}\""));
            let back: ApiError = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(back, e);
        }
        for (i, t) in ErrorType::ALL.iter().enumerate() {
            assert!(!ErrorType::ALL[..i].contains(t), "{t:?} twice in ALL");
        }
    }

    #[test]
    fn other_statuses_only_where_the_kind_lists_them() {
        let e = ApiError::bad_request("body too large").with_status(413);
        assert_eq!((e.status, e.error_type), (413, ErrorType::BadRequest));
        let e = ApiError::new(ErrorType::RegistryNotAllowed, "bad host").with_status(400);
        assert_eq!(e.status, 400);
        let e = ApiError::new(ErrorType::InvalidToken, "malformed").with_status(400);
        assert_eq!(e.status, 400);
        let e = ApiError::new(ErrorType::ConfigurationError, "no tokens").with_status(503);
        assert_eq!(e.status, 503);
        // A status the kind does not list keeps the usual one.
        let e = ApiError::new(ErrorType::NotFound, "x").with_status(200);
        assert_eq!(e.status, 404);
        let e = ApiError::bad_request("x").in_field("inputImageName");
        assert_eq!(e.reason, "inputImageName: x");
    }

    #[test]
    fn registry_proxy_kinds() {
        let proxy: Vec<&str> = ErrorType::ALL
            .iter()
            .filter(|t| t.registry_proxy_only())
            .map(|t| t.as_str())
            .collect();
        assert_eq!(
            proxy,
            [
                "BadRedirect",
                "RegistryUnreachable",
                "TooManyRedirects",
                "BadUpstreamStatus",
                "InternalError"
            ]
        );
    }

    #[test]
    fn round_trips_body() {
        let e: ApiError =
            serde_json::from_str(r#"{"errorType":"NotFound","reason":"no such image"}"#).unwrap();
        assert_eq!(e.error_type, ErrorType::NotFound);
        assert_eq!(e.status, 404);
        assert_eq!(e.reason, "no such image");
    }
}
