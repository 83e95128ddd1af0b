//! The worker's errors are the engine's: [`ApiError`] with an [`ErrorType`] whose HTTP
//! status is defined once, in `kiln_engine::api` (with the worker's own kinds such as
//! `RegistryNotAllowed`, `RateLimited` and the registry proxy's). Every failure carries the
//! JSON body `{"errorType", "reason"}` ([`ApiError::to_json`]); the handler adds the headers
//! some kinds need (`Retry-After`, `WWW-Authenticate`, `Allow`).

pub use kiln_engine::api::{ApiError, ErrorType};

impl From<crate::policy::GuardError> for ApiError {
    /// `RegistryNotAllowed`: 403, or 400 when the registry name itself is malformed.
    fn from(e: crate::policy::GuardError) -> Self {
        use crate::policy::GuardError as G;
        let status = match e {
            G::BadAuthority { .. } | G::BadScheme { .. } => 400,
            _ => 403,
        };
        ApiError::new(ErrorType::RegistryNotAllowed, e.to_string()).with_status(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_the_documented_json() {
        let e = ApiError::new(ErrorType::RateLimited, "later \"soon\"");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["errorType"], "RateLimited");
        assert_eq!(v["reason"], "later \"soon\"");
        assert_eq!(v.as_object().unwrap().len(), 2);
        assert_eq!(e.status, 429);
    }

    #[test]
    fn guard_errors_are_registry_not_allowed() {
        let p = crate::policy::Policy::new("registry.example.com", false).unwrap();
        let e = ApiError::from(p.check_authority("other.example.com").unwrap_err());
        assert_eq!(
            (e.status, e.error_type),
            (403, ErrorType::RegistryNotAllowed)
        );
        let e = ApiError::from(p.check_authority("a b").unwrap_err());
        assert_eq!(
            (e.status, e.error_type),
            (400, ErrorType::RegistryNotAllowed)
        );
    }
}
