//! The MANAGER_CA approval records at the edge: a Durable Object (class `Approvals`,
//! binding `KILN_APPROVALS`, one object named [`OBJECT_NAME`]) that keeps the engine's
//! [`kiln_engine::attest::approvals::Approvals`] in its storage, and the operator API over it.
//!
//! The rules (pending → approved, revocation final, subjects merged, which record a
//! MRENCLAVE finds) live in the engine; this module only maps requests onto them
//! ([`apply`], pure and unit-tested natively) and stores the result. Each record is one
//! storage value (`rec:NNNNNNNN`, JSON, oldest first), so no value nears the 128 KiB limit.
//!
//! Operator API (a token with the `admin` scope, [`crate::auth::Caller::check_admin`]):
//!
//! - `GET /approvals` → `{"records": [...]}`; each record has `createdAt` and `updatedAt`
//!   (Unix seconds, 0 for records stored before records had times)
//! - `POST /approvals` `{mrenclave, mrenclave2?, mrsigner, isvProdId, isvSvn, image?,
//!   allowedSubjects?}`, or `{verifyReport, image?, allowedSubjects?}` with the image's
//!   `kiln verify --json` report (which must have passed) → the record (pending, or the
//!   existing one with the subjects added)
//! - `POST /approvals/{id}/approve`, `POST /approvals/{id}/revoke` → the record; 404
//!   `NotFound` for an unknown id, 403 `Forbidden` to approve a revoked record (final).
//!
//! Every conversion the worker signs is recorded as pending ([`from_conversion`]).

use kiln_engine::api::{CertificateConfig, ConvertResponse};
use kiln_engine::attest::approvals::{
    ApprovalError, Approvals as Records, NewEnclave, ReportRegistration,
};
use kiln_engine::attest::issue::valid_dns_name;

use crate::error::{ApiError, ErrorType};

/// Binding: the Durable Object namespace of the approval records.
pub const BINDING: &str = "KILN_APPROVALS";
/// The one object holding every record.
pub const OBJECT_NAME: &str = "approvals";
/// Prefix of the storage keys of records.
pub const KEY_PREFIX: &str = "rec:";

/// An operation on the records (the Durable Object's path: `/list`, `/record`,
/// `/approve/{id}`, `/revoke/{id}`, `/find/{mrenclave}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Every record.
    List,
    /// Record the body's [`NewEnclave`] as pending.
    Record,
    /// Approve a record.
    Approve(String),
    /// Revoke a record.
    Revoke(String),
    /// The record covering a MRENCLAVE (`{"record": null}` when none).
    Find(String),
}

impl Op {
    /// The object's path for this operation.
    pub fn path(&self) -> String {
        match self {
            Op::List => "/list".into(),
            Op::Record => "/record".into(),
            Op::Approve(id) => format!("/approve/{id}"),
            Op::Revoke(id) => format!("/revoke/{id}"),
            Op::Find(m) => format!("/find/{m}"),
        }
    }

    /// Parses an object path ([`Op::path`]).
    pub fn parse(path: &str) -> Option<Op> {
        let p = path.strip_prefix('/')?;
        Some(match p.split_once('/') {
            None if p == "list" => Op::List,
            None if p == "record" => Op::Record,
            Some(("approve", id)) => Op::Approve(id.to_string()),
            Some(("revoke", id)) => Op::Revoke(id.to_string()),
            Some(("find", m)) => Op::Find(m.to_string()),
            _ => return None,
        })
    }

    /// Whether the operation may change the records.
    pub fn writes(&self) -> bool {
        matches!(self, Op::Record | Op::Approve(_) | Op::Revoke(_))
    }
}

/// Checks a record id from a path: 1-64 lowercase hex digits (ids are 32); a 400 naming
/// the field otherwise (the value is not quoted back).
pub fn check_id(id: &str) -> Result<(), ApiError> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "id: expected the record id (32 hex digits) in /approvals/{{id}}/..., got {} characters",
            id.len()
        )))
    }
}

/// The engine's refusal as the API's error: 404 `NotFound`, 403 `Forbidden` (approving a
/// revoked record), 400 naming the field.
pub fn approval_error(e: ApprovalError) -> ApiError {
    let reason = e.to_string();
    match e {
        ApprovalError::NotFound(_) => ApiError::new(ErrorType::NotFound, reason),
        ApprovalError::Revoked(_) => ApiError::new(ErrorType::Forbidden, reason),
        ApprovalError::Invalid { .. } => ApiError::bad_request(reason),
    }
}

/// Applies `op` (with the request `body` for [`Op::Record`]) to `records` at `now` (Unix
/// seconds: the records' `createdAt`/`updatedAt`; the Durable Object passes
/// `Date.now() / 1000`); the answer's JSON.
pub fn apply(
    records: &mut Records,
    op: &Op,
    body: &[u8],
    now: u64,
) -> Result<serde_json::Value, ApiError> {
    let value = |r: &kiln_engine::attest::issue::ApprovalRecord| {
        serde_json::to_value(r).map_err(|e| ApiError::internal(e.to_string()))
    };
    match op {
        Op::List => serde_json::to_value(&*records).map_err(|e| ApiError::internal(e.to_string())),
        Op::Record => {
            let new = registration(body)?;
            value(records.record_pending(&new, now).map_err(approval_error)?)
        }
        Op::Approve(id) => {
            check_id(id)?;
            value(records.approve(id, now).map_err(approval_error)?)
        }
        Op::Revoke(id) => {
            check_id(id)?;
            value(records.revoke(id, now).map_err(approval_error)?)
        }
        Op::Find(m) => Ok(serde_json::json!({ "record": records.find(m) })),
    }
}

/// The enclaves a `POST /approvals` body registers: a `kiln verify --json` report
/// (`{"verifyReport": …}`, [`ReportRegistration`]) or the fields ([`NewEnclave`]).
fn registration(body: &[u8]) -> Result<NewEnclave, ApiError> {
    let by_report = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("verifyReport").is_some());
    if by_report {
        let reg: ReportRegistration = crate::body::parse_json(body)?;
        reg.new_enclave().map_err(approval_error)
    } else {
        crate::body::parse_json(body)
    }
}

/// Whether a certificate is issued by MANAGER_CA (the default issuer).
fn manager_ca(c: &CertificateConfig) -> bool {
    c.issuer
        .as_deref()
        .is_none_or(|i| i.eq_ignore_ascii_case("MANAGER_CA"))
}

/// Whether a conversion request asks for MANAGER_CA certificates.
pub fn wants_manager_ca(certificates: Option<&[CertificateConfig]>) -> bool {
    certificates.is_some_and(|cs| cs.iter().any(manager_ca))
}

/// What a signed conversion records: its enclaves, image and the subjects of its MANAGER_CA
/// certificates, plus a warning for each subject that is not a DNS name (MANAGER_CA issues
/// only for DNS names, so it is left out of the record).
pub fn from_conversion(
    response: &ConvertResponse,
    certificates: Option<&[CertificateConfig]>,
) -> (NewEnclave, Vec<String>) {
    let mut subjects = Vec::new();
    let mut warnings = Vec::new();
    for (i, c) in certificates.unwrap_or_default().iter().enumerate() {
        if !manager_ca(c) {
            continue;
        }
        let Some(s) = c.subject.as_deref() else {
            continue;
        };
        let n = s.trim().trim_end_matches('.').to_ascii_lowercase();
        if valid_dns_name(&n) {
            if !subjects.contains(&n) {
                subjects.push(n);
            }
        } else {
            warnings.push(format!(
                "certificates[{i}].subject is not a DNS name: MANAGER_CA will not issue a \
                 certificate for it (it is not in the approval record)"
            ));
        }
    }
    let new = NewEnclave {
        mrenclave: response.mrenclave.clone(),
        mrenclave2: Some(response.mrenclave2.clone()).filter(|m| !m.is_empty()),
        mrsigner: response.mrsigner.clone(),
        isv_prod_id: response.isvprodid,
        isv_svn: response.isvsvn,
        image: response.new_image.clone(),
        allowed_subjects: subjects,
    };
    (new, warnings)
}

/// The warning a conversion carries when its enclaves could not be recorded.
pub fn not_recorded_warning(why: &str) -> String {
    format!(
        "approvals: this conversion was not recorded for MANAGER_CA approval ({why}); an \
         operator can register it with POST /approvals"
    )
}

#[cfg(target_arch = "wasm32")]
pub use object::{record_conversion, request, Approvals};

#[cfg(target_arch = "wasm32")]
#[allow(missing_docs)] // what #[durable_object] generates
mod object {
    use super::{apply, Op, Records, BINDING, KEY_PREFIX, OBJECT_NAME};
    use crate::error::ApiError;
    use kiln_engine::attest::issue::ApprovalRecord;
    use wasm_bindgen::JsCast;
    use worker::{durable_object, Env, Method, Request, RequestInit, Response, Result, State};

    /// The Durable Object: the records in its storage, one value per record.
    #[durable_object]
    pub struct Approvals {
        state: State,
    }

    /// Reads every record with its storage key, oldest first.
    async fn load(state: &State) -> Result<(Records, Vec<String>)> {
        let map = state
            .storage()
            .list_with_options(worker::ListOptions::new().prefix(KEY_PREFIX))
            .await?;
        let mut records = Records::default();
        let mut keys = Vec::new();
        for entry in map.entries() {
            let pair: js_sys::Array = entry?.dyn_into()?;
            let key = pair.get(0).as_string().unwrap_or_default();
            let text = pair.get(1).as_string().unwrap_or_default();
            let rec: ApprovalRecord = serde_json::from_str(&text)
                .map_err(|e| worker::Error::RustError(format!("approval record {key}: {e}")))?;
            records.records.push(rec);
            keys.push(key);
        }
        Ok((records, keys))
    }

    fn answer(result: std::result::Result<serde_json::Value, ApiError>) -> Result<Response> {
        match result {
            Ok(v) => Response::from_json(&v),
            Err(e) => Ok(Response::error(e.to_json(), e.status)?),
        }
    }

    impl worker::DurableObject for Approvals {
        fn new(state: State, _env: Env) -> Self {
            Approvals { state }
        }

        async fn fetch(&self, mut req: Request) -> Result<Response> {
            let Some(op) = Op::parse(req.path().as_str()) else {
                return answer(Err(ApiError::bad_request("approvals: unknown operation")));
            };
            let body = req.bytes().await.unwrap_or_default();
            let (mut records, keys) = load(&self.state).await?;
            let before = records.clone();
            // The records' times: Unix seconds from the isolate's clock.
            let now = (js_sys::Date::now() / 1000.0) as u64;
            let result = apply(&mut records, &op, &body, now);
            if result.is_ok() && op.writes() {
                let storage = self.state.storage();
                for (i, rec) in records.records.iter().enumerate() {
                    if before.records.get(i) == Some(rec) {
                        continue;
                    }
                    let key = keys
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("{KEY_PREFIX}{i:08}"));
                    let text = serde_json::to_string(rec)
                        .map_err(|e| worker::Error::RustError(e.to_string()))?;
                    storage.put_raw(&key, text).await?;
                }
            }
            answer(result)
        }
    }

    /// Runs `op` on the records. Without the binding: a 500 `ConfigurationError` naming it.
    pub async fn request(
        env: &Env,
        op: &Op,
        body: Option<&[u8]>,
    ) -> std::result::Result<serde_json::Value, ApiError> {
        let internal = |e: worker::Error| ApiError::internal(format!("approvals store: {e}"));
        let ns = env.durable_object(BINDING).map_err(|_| {
            ApiError::new(
                crate::error::ErrorType::ConfigurationError,
                format!("this worker has no approvals store (Durable Object binding {BINDING})"),
            )
        })?;
        let stub = ns
            .id_from_name(OBJECT_NAME)
            .and_then(|id| id.get_stub())
            .map_err(internal)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post);
        if let Some(b) = body {
            init.with_body(Some(js_sys::Uint8Array::from(b).into()));
        }
        let req = Request::new_with_init(&format!("https://approvals{}", op.path()), &init)
            .map_err(internal)?;
        crate::metrics::count_subrequest();
        let mut resp = stub.fetch_with_request(req).await.map_err(internal)?;
        let status = resp.status_code();
        let text = resp.text().await.map_err(internal)?;
        if status == 200 {
            serde_json::from_str(&text)
                .map_err(|e| ApiError::internal(format!("approvals store: {e}")))
        } else {
            let e: ApiError = serde_json::from_str(&text)
                .map_err(|_| ApiError::internal(format!("approvals store answered {status}")))?;
            Err(e.with_status(status))
        }
    }

    /// Records a signed conversion as pending. Returns the warnings to add to its response
    /// (subjects left out, or why it was not recorded). Without the binding nothing is
    /// recorded: a warning only when the request asked for MANAGER_CA certificates.
    pub async fn record_conversion(
        env: &Env,
        response: &kiln_engine::api::ConvertResponse,
        certificates: Option<&[kiln_engine::api::CertificateConfig]>,
    ) -> Vec<String> {
        let (new, mut warnings) = super::from_conversion(response, certificates);
        if env.durable_object(BINDING).is_err() {
            if super::wants_manager_ca(certificates) {
                warnings.push(super::not_recorded_warning(&format!(
                    "this worker has no approvals store, binding {BINDING}"
                )));
            }
            return warnings;
        }
        let body = match serde_json::to_vec(&new) {
            Ok(b) => b,
            Err(e) => {
                warnings.push(super::not_recorded_warning(&e.to_string()));
                return warnings;
            }
        };
        match request(env, &Op::Record, Some(&body)).await {
            Ok(rec) => worker::console_log!(
                "approvals: conversion recorded as {} ({})",
                rec["id"].as_str().unwrap_or("?"),
                rec["status"].as_str().unwrap_or("?")
            ),
            Err(e) => {
                worker::console_log!("approvals: conversion not recorded: {}", e.reason);
                warnings.push(super::not_recorded_warning(&e.reason));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000;

    fn new_json(m: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "mrenclave": m.repeat(32), "mrenclave2": "ee".repeat(32), "mrsigner": "22".repeat(32),
            "isvProdId": 1, "isvSvn": 2, "image": "r.example/app:1",
            "allowedSubjects": ["app.example"],
        }))
        .unwrap()
    }

    #[test]
    fn ops_round_trip_their_paths() {
        for op in [
            Op::List,
            Op::Record,
            Op::Approve("ab".into()),
            Op::Revoke("cd".into()),
            Op::Find("11".repeat(32)),
        ] {
            assert_eq!(Op::parse(&op.path()), Some(op.clone()));
        }
        assert_eq!(Op::parse("/nope"), None);
        assert_eq!(Op::parse("list"), None);
        assert!(!Op::List.writes() && Op::Record.writes());
    }

    #[test]
    fn operator_flow() {
        let mut r = Records::default();
        let rec = apply(&mut r, &Op::Record, &new_json("11"), NOW).unwrap();
        assert_eq!(rec["status"], "pending");
        assert_eq!(
            (rec["createdAt"].as_u64(), rec["updatedAt"].as_u64()),
            (Some(NOW), Some(NOW))
        );
        // Registered again: createdAt kept.
        let again = apply(&mut r, &Op::Record, &new_json("11"), NOW + 5).unwrap();
        assert_eq!(
            (again["createdAt"].as_u64(), again["updatedAt"].as_u64()),
            (Some(NOW), Some(NOW))
        );
        let id = rec["id"].as_str().unwrap().to_string();
        let list = apply(&mut r, &Op::List, b"", NOW).unwrap();
        assert_eq!(list["records"][0]["id"], id.as_str());
        let found = apply(&mut r, &Op::Find("11".repeat(32)), b"", NOW).unwrap();
        assert_eq!(found["record"]["id"], id.as_str());
        let none = apply(&mut r, &Op::Find("33".repeat(32)), b"", NOW).unwrap();
        assert!(none["record"].is_null());
        assert_eq!(
            apply(&mut r, &Op::Approve(id.clone()), b"", NOW + 10).unwrap()["status"],
            "approved"
        );
        assert_eq!(
            apply(&mut r, &Op::Revoke(id.clone()), b"", NOW + 20).unwrap()["status"],
            "revoked"
        );
        let e = apply(&mut r, &Op::Approve(id.clone()), b"", NOW).unwrap_err();
        assert_eq!((e.status, e.error_type), (403, ErrorType::Forbidden));
        // Times: the record's creation kept, its last change the revocation.
        let list = apply(&mut r, &Op::List, b"", NOW + 50).unwrap();
        assert_eq!(list["records"][0]["createdAt"], NOW);
        assert_eq!(list["records"][0]["updatedAt"], NOW + 20);
        let e = apply(&mut r, &Op::Approve("ab".repeat(16)), b"", NOW).unwrap_err();
        assert_eq!((e.status, e.error_type), (404, ErrorType::NotFound));
        let e = apply(&mut r, &Op::Revoke("../x".into()), b"", NOW).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.reason.starts_with("id:"), "{}", e.reason);
    }

    /// `POST /approvals` with `body` at [`NOW`].
    fn record(r: &mut Records, body: &serde_json::Value) -> Result<serde_json::Value, ApiError> {
        apply(r, &Op::Record, &serde_json::to_vec(body).unwrap(), NOW)
    }

    #[test]
    fn register_errors_name_the_field() {
        let mut r = Records::default();
        let mut body: serde_json::Value = serde_json::from_slice(&new_json("11")).unwrap();
        body["mrsigner"] = "00".into();
        let e = record(&mut r, &body).unwrap_err();
        assert!(e.reason.starts_with("mrsigner:"), "{}", e.reason);
        body["mrsigner"] = "22".repeat(32).into();
        body["isvSvn"] = "two".into();
        let e = record(&mut r, &body).unwrap_err();
        assert!(e.reason.starts_with("isvSvn:"), "{}", e.reason);
        let e = apply(&mut r, &Op::Record, br#"{"mrenclave":"x","color":1}"#, NOW).unwrap_err();
        assert!(e.reason.contains("color"), "{}", e.reason);
        assert!(r.records.is_empty());
    }

    #[test]
    fn registers_by_a_verify_report() {
        let mut r = Records::default();
        let mut body = serde_json::json!({
            "verifyReport": {
                "format": "kiln", "manifestDigest": "sha256:00", "passed": true,
                "mrenclaves": [["sgx1", "11".repeat(32)], ["edmm", "ee".repeat(32)]],
                "mrsigner": "22".repeat(32), "isvProdId": 5, "isvSvn": 6, "checks": [],
            },
            "image": "r.example/app:1",
            "allowedSubjects": ["app.example.com"],
        });
        let rec = record(&mut r, &body).unwrap();
        assert_eq!(rec["status"], "pending");
        assert_eq!(
            (rec["isvProdId"].as_u64(), rec["isvSvn"].as_u64()),
            (Some(5), Some(6))
        );
        assert_eq!(rec["mrenclave2"], "ee".repeat(32));
        body["verifyReport"]["passed"] = false.into();
        let e = record(&mut r, &body).unwrap_err();
        assert!(e.reason.starts_with("verifyReport.passed:"), "{}", e.reason);
        body["verifyReport"]["passed"] = true.into();
        body["verifyReport"]["mrsigner"] = 3.into();
        let e = record(&mut r, &body).unwrap_err();
        assert!(
            e.reason.starts_with("verifyReport.mrsigner:"),
            "{}",
            e.reason
        );
        assert_eq!(r.records.len(), 1);
    }

    #[test]
    fn conversions_record_manager_ca_subjects() {
        let resp = ConvertResponse {
            new_image: "r.example/app-sgx:1".into(),
            mrenclave: "11".repeat(32),
            mrenclave2: "ee".repeat(32),
            mrsigner: "22".repeat(32),
            isvprodid: 3,
            isvsvn: 4,
            ..Default::default()
        };
        let cert = |issuer: Option<&str>, subject: &str| CertificateConfig {
            issuer: issuer.map(String::from),
            subject: Some(subject.into()),
            ..Default::default()
        };
        let certs = [
            cert(Some("MANAGER_CA"), "App.Example."),
            cert(None, "b.example"),
            cert(Some("NODE"), "node.example"),
            cert(Some("manager_ca"), "not a name"),
        ];
        let (new, warnings) = from_conversion(&resp, Some(&certs));
        assert_eq!(new.allowed_subjects, ["app.example", "b.example"]);
        assert_eq!(new.mrenclave2.as_deref(), Some(&*"ee".repeat(32)));
        assert_eq!((new.isv_prod_id, new.isv_svn), (3, 4));
        assert_eq!(new.image, "r.example/app-sgx:1");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("certificates[3].subject"));
        assert!(wants_manager_ca(Some(&certs)));
        assert!(!wants_manager_ca(Some(&certs[2..3])));
        assert!(!wants_manager_ca(None));
        // Recordable as is.
        let mut r = Records::default();
        let rec = record(&mut r, &serde_json::to_value(&new).unwrap()).unwrap();
        assert_eq!(rec["status"], "pending");
        let (none, w) = from_conversion(&resp, None);
        assert!(none.allowed_subjects.is_empty() && w.is_empty());
    }
}
