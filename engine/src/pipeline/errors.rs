//! Mapping every failure of the pipeline onto the API's errors: 400 for the request
//! (naming the field), 401/403/404 as the registry said, 502/504 when a registry fails,
//! 500 only for kiln's own bugs. Reasons never contain credentials: registry errors
//! carry none, and nothing here formats a request's secrets.

use crate::api::{ApiError, ErrorType};
use crate::gramine::validate::ValidationErrors;
use crate::image::limits::LimitExceeded;
use crate::image::registry::{ErrorClass, RegistryError};
use crate::image::scan::ScanError;
use crate::sgx::signer::{RemoteFailure, SignError};

/// A signing failure. `field` names the request field holding the key (`signingKey`, or
/// `publicKey` for external signatures); `what` the enclave (`SGX1`, `EDMM`). A bad key is
/// a 400; a remote signer's failure keeps its kind; anything else the signer did is a
/// 502 `SignerError`, never a registry's.
pub fn signing(e: SignError, field: &str, what: &str) -> ApiError {
    match e {
        SignError::Key(k) => ApiError::bad_request(format!("{field}: {k}")),
        SignError::Remote(r) => {
            let kind = match r.kind {
                RemoteFailure::Request => ErrorType::BadRequest,
                RemoteFailure::Unauthorized => ErrorType::Unauthorized,
                RemoteFailure::Forbidden => ErrorType::Forbidden,
                RemoteFailure::Unavailable => ErrorType::SignerError,
            };
            ApiError::new(kind, r.reason)
        }
        other => ApiError::new(
            ErrorType::SignerError,
            format!("signing the {what} enclave: {other}"),
        ),
    }
}

/// Which image an error is about, for the reason's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `inputImageName`.
    Input,
    /// `outputImageName`.
    Output,
    /// The runtime image of the service.
    Runtime,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Input => "input image",
            Side::Output => "output image",
            Side::Runtime => "runtime image",
        }
    }
}

/// The API error kind for a registry failure of each class, on an image the caller
/// names: as the registry said.
fn class_type(class: ErrorClass) -> ErrorType {
    match class {
        ErrorClass::BadInput => ErrorType::BadRequest,
        ErrorClass::Unauthorized => ErrorType::Unauthorized,
        ErrorClass::Forbidden => ErrorType::Forbidden,
        ErrorClass::NotFound => ErrorType::NotFound,
        ErrorClass::Upstream => ErrorType::RegistryError,
        ErrorClass::Timeout => ErrorType::RegistryTimeout,
    }
}

/// A registry error while reading an image the caller named in `field` (`/verify-image`'s
/// `image`, the page's verify form): the kind the registry's answer calls for.
pub fn registry_read(field: &str, e: &RegistryError) -> ApiError {
    ApiError::new(class_type(e.class()), format!("{field}: {e}"))
}

/// A registry error about `side`. A missing output repository or blob is the
/// registry's problem (502), never a 404 of the request; a missing runtime image is
/// the service's configuration (502).
pub fn registry(side: Side, e: &RegistryError) -> ApiError {
    let kind = match (e.class(), side) {
        (ErrorClass::BadInput, Side::Runtime) => ErrorType::RegistryError,
        (ErrorClass::NotFound, Side::Output | Side::Runtime) => ErrorType::RegistryError,
        (class, _) => class_type(class),
    };
    let field = match side {
        Side::Input => " (inputImageName)",
        Side::Output => " (outputImageName)",
        Side::Runtime => "",
    };
    ApiError::new(kind, format!("{}{field}: {e}", side.label()))
}

/// A reference that does not parse: the request's field.
pub fn reference(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{field}: {e}"))
}

/// All validation problems in one 400.
pub fn validation(e: &ValidationErrors) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// A layer that cannot be scanned: an unknown media type or a limit hit is the image's
/// problem (400), a broken blob is the registry's (502).
pub fn scan(e: &ScanError) -> ApiError {
    match e {
        ScanError::UnknownMediaType { .. } => ApiError::bad_request(format!("input image: {e}")),
        _ if e.limit().is_some() => ApiError::bad_request(format!("input image {e}")),
        _ => ApiError::new(ErrorType::RegistryError, format!("input image layer: {e}")),
    }
}

/// A limit of the image hit outside a scan (merging the layers, totals): a 400 naming
/// the layer and the limit.
pub fn limit(layer: &str, hit: &LimitExceeded) -> ApiError {
    ApiError::bad_request(format!("input image layer {layer}: {hit}"))
}

/// The runtime image is not what docs/image-formats.md describes.
pub fn runtime(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorType::RegistryError,
        format!("runtime image is not a usable kiln runtime (format 1): {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_by_side() {
        let nf = RegistryError::NotFound {
            registry: "r".into(),
            what: "manifest".into(),
            detail: "".into(),
        };
        assert_eq!(registry(Side::Input, &nf).status, 404);
        assert_eq!(registry(Side::Output, &nf).status, 502);
        assert_eq!(registry(Side::Runtime, &nf).status, 502);
        let un = RegistryError::Unauthorized {
            registry: "r".into(),
            detail: "".into(),
        };
        assert_eq!(registry(Side::Output, &un).status, 401);
        assert!(registry(Side::Input, &un).reason.contains("inputImageName"));
    }

    #[test]
    fn limit_hits_are_400_naming_layer_and_limit() {
        use crate::image::scan::tar::TarError;
        let hit = LimitExceeded::new("layer-bytes", 10, "more than 10 uncompressed bytes");
        let e = scan(&ScanError::Tar {
            layer: "sha256:abc".into(),
            source: TarError::Limit {
                source: hit.clone(),
                offset: 0,
            },
        });
        assert_eq!(e.status, 400);
        assert!(
            e.reason.contains("sha256:abc") && e.reason.contains("layer-bytes=10"),
            "{}",
            e.reason
        );
        let e = scan(&ScanError::Limit {
            layer: "sha256:abc".into(),
            source: hit.clone(),
        });
        assert_eq!(e.status, 400);
        let e = limit("sha256:def", &hit);
        assert_eq!(e.status, 400);
        assert!(e.reason.contains("sha256:def"), "{}", e.reason);
        let limited = RegistryError::Limit {
            what: "config sha256:1".into(),
            source: hit,
        };
        assert_eq!(registry(Side::Input, &limited).status, 400);
    }
}
