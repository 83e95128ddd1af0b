//! The HTTP API's wire types: the error body `{errorType, reason}` with its status, and
//! the convert-image response. The request lives in [`crate::gramine::request`] and is
//! re-exported here. The lower layers have error types of their own; their conversions
//! into [`ApiError`] live here (and, for the registry and the pipeline's own failures,
//! in `pipeline::errors`), so nothing below `api` depends on it.

mod error;
mod response;

pub use crate::gramine::request::{
    AuthConfig, CertificateConfig, ConvertRequest, DefaultKey, KeyParam, SdkmsKey, SigningKey,
};
pub use error::{ApiError, ErrorType};
pub use response::ConvertResponse;

use crate::gramine::request::RequestError;
use crate::gramine::spec::SpecError;
use crate::gramine::validate::{validate, ValidRequest, ValidationErrors};

/// Parses a request body; a problem is a 400 naming its JSON path (never quoting a secret).
pub fn parse_request(body: &[u8]) -> Result<ConvertRequest, ApiError> {
    Ok(crate::gramine::request::parse_request(body)?)
}

/// Parses a request body and validates it: the whole front half of the pipeline, with
/// every problem as one 400.
pub fn parse_and_validate(body: &[u8]) -> Result<ValidRequest, ApiError> {
    let req = parse_request(body)?;
    Ok(validate(&req)?)
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        ApiError::bad_request(e.reason)
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Runtime(r) => ApiError::internal(r),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate_in_one_step() {
        let v = parse_and_validate(br#"{"inputImageName":"a","outputImageName":"b","threads":9}"#)
            .unwrap();
        assert_eq!(v.threads, 9);
        let e = parse_and_validate(br#"{"inputImageName":"a","outputImageName":"b","threads":0}"#)
            .unwrap_err();
        assert_eq!((e.status, e.reason.starts_with("threads:")), (400, true));
        let e = parse_and_validate(br#"{"inputImageName":"a"}"#).unwrap_err();
        assert_eq!(e.status, 400);
    }

    #[test]
    fn a_body_that_does_not_parse_is_a_400() {
        let e = parse_request(b"{").unwrap_err();
        assert_eq!((e.status, e.error_type), (400, ErrorType::BadRequest));
    }
}
