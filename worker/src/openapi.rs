//! `GET /openapi.json`: the edge API's OpenAPI 3 document (`worker/openapi.json`), served
//! with its `errorType` enum filled in from the one error vocabulary,
//! `kiln_engine::api::ErrorType` (every kind but the registry proxy's). Its tests hold it to
//! the code: the request schema's property names are the engine's `ConvertRequest` fields,
//! and the edge API's sources answer with no kind the document leaves out.

use kiln_engine::api::ErrorType;

/// The document as written: its `errorType` enum is empty ([`ERROR_TYPES_SLOT`]).
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The one place in [`DOCUMENT`] where [`document`] puts the list of error kinds.
pub const ERROR_TYPES_SLOT: &str = r#""enum": []"#;

/// The `errorType`s of the edge API: the engine's kinds without the registry proxy's.
pub fn edge_error_types() -> impl Iterator<Item = ErrorType> {
    ErrorType::ALL
        .into_iter()
        .filter(|t| !t.registry_proxy_only())
}

/// The document served: [`DOCUMENT`] with the `errorType` enum listing
/// [`edge_error_types`]. Everything else stays as written.
pub fn document() -> String {
    let names: Vec<String> = edge_error_types()
        .map(|t| format!("\"{}\"", t.as_str()))
        .collect();
    let list = format!(r#""enum": [{}]"#, names.join(", "));
    DOCUMENT.replacen(ERROR_TYPES_SLOT, &list, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn doc() -> Value {
        serde_json::from_str(&document()).unwrap()
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

    /// `ErrorType::X` names the edge API's sources answer with (outside their tests). The
    /// registry proxy (`/proxy/...`, proxy.rs) is not part of the edge API document.
    fn edge_api_kinds() -> BTreeSet<String> {
        let sources = [
            include_str!("api.rs"),
            include_str!("attest.rs"),
            include_str!("auth.rs"),
            include_str!("body.rs"),
            include_str!("error.rs"),
            include_str!("handler.rs"),
            include_str!("two_step.rs"),
            include_str!("approvals.rs"),
            include_str!("manager.rs"),
            include_str!("auth.rs"),
            include_str!("guarded_fetch.rs"),
            include_str!("transport.rs"),
        ];
        let mut out = BTreeSet::new();
        for src in sources {
            let code = src.split("#[cfg(test)]").next().unwrap();
            for piece in code.split("ErrorType::").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        out
    }

    #[test]
    fn error_types_are_the_engines() {
        let documented: Vec<String> = doc()["components"]["schemas"]["Error"]["properties"]
            ["errorType"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let edge: Vec<String> = edge_error_types().map(|t| t.as_str().into()).collect();
        assert_eq!(documented, edge);
        assert_eq!(documented.len(), 16, "{documented:?}");
        assert_eq!(DOCUMENT.matches(ERROR_TYPES_SLOT).count(), 1);
        // The edge API answers with no kind the document leaves out (the proxy's).
        let used = edge_api_kinds();
        assert!(used.len() >= 8, "{used:?}");
        for u in &used {
            assert!(documented.contains(u), "{u} is answered but not documented");
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
