//! The HTTP API's wire types: the error body `{errorType, reason}` with its status, and
//! the convert-image response. The request lives in [`crate::gramine::request`] and is
//! re-exported here.

mod error;
mod response;

pub use crate::gramine::request::{
    parse_request, AuthConfig, CertificateConfig, ConvertRequest, DefaultKey, KeyParam, SdkmsKey,
    SigningKey,
};
pub use error::{ApiError, ErrorType};
pub use response::ConvertResponse;
