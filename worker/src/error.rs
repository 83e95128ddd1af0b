//! The JSON error body every failure of the worker carries: `{"errorType", "reason"}`.

/// Every `errorType` the worker itself answers with, besides the engine's
/// (`kiln_engine::api::ErrorType`). `openapi.json` documents exactly these plus the engine's.
pub const WORKER_ERROR_TYPES: [&str; 7] = [
    "RegistryNotAllowed",
    "ConfigurationError",
    "OriginNotAllowed",
    "MethodNotAllowed",
    "InvalidToken",
    "TokenExpired",
    "RateLimited",
];

/// An error answered to the client. `reason` never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine-readable kind, e.g. `RegistryNotAllowed`.
    pub error_type: &'static str,
    /// Human-readable explanation.
    pub reason: String,
}

impl ApiError {
    /// A new error.
    pub fn new(status: u16, error_type: &'static str, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            error_type,
            reason: reason.into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({ "errorType": self.error_type, "reason": self.reason }).to_string()
    }
}

impl From<crate::policy::GuardError> for ApiError {
    fn from(e: crate::policy::GuardError) -> Self {
        use crate::policy::GuardError as G;
        let status = match e {
            G::BadAuthority { .. } | G::BadScheme { .. } => 400,
            _ => 403,
        };
        ApiError::new(status, "RegistryNotAllowed", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_documented_json() {
        let e = ApiError::new(501, "NotImplemented", "later \"soon\"");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["errorType"], "NotImplemented");
        assert_eq!(v["reason"], "later \"soon\"");
    }
}
