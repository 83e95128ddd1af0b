//! The API error: every failure is a JSON body `{"errorType": "...", "reason": "..."}`
//! with a fitting HTTP status.
//!
//! | errorType | status | when |
//! |---|---|---|
//! | `BadRequest` | 400 | malformed or contradictory request (the reason names the field), or an image kiln cannot convert as asked (entrypoint not found, unknown user) |
//! | `Unauthorized` | 401 | a registry refused the given credentials (or demanded some) |
//! | `Forbidden` | 403 | a registry accepted the credentials but denied access |
//! | `NotFound` | 404 | the input image (or a blob of it) does not exist |
//! | `RegistryError` | 502 | a registry is unreachable or answered with an error |
//! | `RegistryTimeout` | 504 | a registry did not answer in time |
//! | `SignerError` | 502 | the signer failed: a KMS unreachable, failing or timing out, a browser key that would not sign |
//! | `Internal` | 500 | kiln's own bug |
//!
//! A reason never contains a password or API key: constructors take text the caller has
//! already built without secrets, and the request parser never quotes secret values.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of an API error; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ErrorType {
    /// 400: malformed or contradictory request.
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
    /// 500: kiln's own bug.
    Internal,
}

impl ErrorType {
    /// The HTTP status for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorType::BadRequest => 400,
            ErrorType::Unauthorized => 401,
            ErrorType::Forbidden => 403,
            ErrorType::NotFound => 404,
            ErrorType::RegistryError => 502,
            ErrorType::RegistryTimeout => 504,
            ErrorType::SignerError => 502,
            ErrorType::Internal => 500,
        }
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
            ErrorType::Internal => "Internal",
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
            (ErrorType::Internal, 500, "Internal"),
        ];
        for (t, s, n) in all {
            assert_eq!(t.status(), s);
            assert_eq!(t.as_str(), n);
            let e = ApiError::new(t, "why");
            assert_eq!(e.status, s);
            assert_eq!(
                e.to_json(),
                format!(r#"{{"errorType":"{n}","reason":"why"}}"#)
            );
        }
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
