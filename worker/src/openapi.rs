//! `GET /openapi.json`: the edge API's OpenAPI 3 document (`worker/openapi.json`), served
//! as it is. Its tests hold it to the code: the request schema's property names are the
//! engine's `ConvertRequest` fields, and its `errorType`s are exactly those the engine and
//! the worker answer with.

/// The document.
pub const DOCUMENT: &str = include_str!("../openapi.json");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn doc() -> Value {
        serde_json::from_str(DOCUMENT).unwrap()
    }

    fn props(schema: &str) -> BTreeSet<String> {
        doc()["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    /// The field names serde knows for `T`: its `deny_unknown_fields` error lists them all.
    fn serde_fields<T: serde::de::DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
        let e = serde_json::from_str::<T>(r#"{"--no-such-field--": 1}"#).unwrap_err();
        let msg = e.to_string();
        // "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, ...".
        let list = msg
            .split_once("expected")
            .unwrap_or_else(|| panic!("{msg}"))
            .1;
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn request_schema_is_the_engine_request() {
        use kiln_engine::api::{AuthConfig, CertificateConfig, ConvertRequest};
        assert_eq!(props("ConvertRequest"), serde_fields::<ConvertRequest>());
        assert_eq!(props("AuthConfig"), serde_fields::<AuthConfig>());
        assert_eq!(
            props("CertificateConfig"),
            serde_fields::<CertificateConfig>()
        );
        let required: BTreeSet<String> = doc()["components"]["schemas"]["ConvertRequest"]
            ["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            required,
            ["inputImageName", "outputImageName"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn response_schema_is_the_engine_response() {
        let r = kiln_engine::api::ConvertResponse {
            new_image: String::new(),
            image_sha: String::new(),
            image_size: 0,
            isvprodid: 0,
            isvsvn: 0,
            mrenclave: String::new(),
            mrenclave2: String::new(),
            mrsigner: String::new(),
            mem_size: 0,
            digest: String::new(),
            warnings: vec![String::new()],
        };
        let v = serde_json::to_value(r).unwrap();
        let fields: BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(props("ConvertResponse"), fields);
    }

    /// `errorType` literals the edge API's sources answer with (outside their tests). The
    /// registry proxy (`/proxy/...`, proxy.rs) is not part of the edge API document.
    fn worker_error_literals() -> BTreeSet<String> {
        let sources = [
            include_str!("api.rs"),
            include_str!("error.rs"),
            include_str!("handler.rs"),
            include_str!("two_step.rs"),
            include_str!("guarded_fetch.rs"),
            include_str!("transport.rs"),
        ];
        let mut out = BTreeSet::new();
        for src in sources {
            let code = src.split("#[cfg(test)]").next().unwrap();
            for piece in code.split("ApiError::new(").skip(1) {
                // ApiError::new(status, "Type", ...): the second argument, when a literal.
                let Some((_, rest)) = piece.split_once(',') else {
                    continue;
                };
                let rest = rest.trim_start();
                if let Some(lit) = rest.strip_prefix('"') {
                    if let Some((name, _)) = lit.split_once('"') {
                        out.insert(name.to_string());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn error_types_are_exactly_those_answered() {
        use kiln_engine::api::ErrorType as E;
        let documented: BTreeSet<String> = doc()["components"]["schemas"]["Error"]["properties"]
            ["errorType"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let mut known: BTreeSet<String> = [
            E::BadRequest,
            E::Unauthorized,
            E::Forbidden,
            E::NotFound,
            E::RegistryError,
            E::RegistryTimeout,
            E::SignerError,
            E::Internal,
        ]
        .iter()
        .map(|e| e.as_str().to_string())
        .collect();
        known.extend(
            crate::error::WORKER_ERROR_TYPES
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(documented, known);
        let used = worker_error_literals();
        assert!(used.len() >= 6, "{used:?}");
        for u in &used {
            assert!(known.contains(u), "{u} is answered but not documented");
        }
    }

    #[test]
    fn every_path_is_routed() {
        use crate::route::{route, Route};
        let d = doc();
        for (path, ops) in d["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                let r = route(&method.to_ascii_uppercase(), path);
                assert!(
                    !matches!(r, Route::Asset | Route::MethodNotAllowed(_)),
                    "{method} {path} -> {r:?}"
                );
            }
        }
    }
}
