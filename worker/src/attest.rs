//! `POST /attest/verify`: verifies a running enclave's SGX quote or RA-TLS certificate
//! with the engine's `attest` module (pure: no I/O, so it is unit-tested natively; the
//! handler passes the request body and the current time).
//!
//! Body (JSON, camelCase; errors name the field, never quote a value):
//!
//! ```json
//! { "certificate": "-----BEGIN CERTIFICATE-----…",   // or "quote": "<base64 of the quote>"
//!   "collateral": { …dcap-qvl QuoteCollateralV3… },
//!   "at": 1751328000,                                 // optional, Unix seconds; default now
//!   "allowTcb": ["SWHardeningNeeded"],                // optional; UpToDate always accepted
//!   "allowDebug": false,
//!   "expectMrenclave": "…64 hex…", "expectMrsigner": "…64 hex…" }
//! ```
//!
//! The answer is the engine's `AttestReport` (200 whether or not every check passed, like
//! `/verify-image`); unreadable evidence, collateral or policy values are a 400. The edge
//! does not fetch collateral from a PCCS: the caller sends it (docs/attestation.md).

use base64::Engine as _;
use kiln_engine::attest::{
    read_evidence, verify_evidence, AttestError, AttestPolicy, QuoteCollateralV3, TrustRoot,
};
use serde::Deserialize;

use crate::error::ApiError;

/// The body of `POST /attest/verify`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttestBody {
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    quote: Option<String>,
    collateral: QuoteCollateralV3,
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    allow_tcb: Vec<String>,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default)]
    expect_mrenclave: Option<String>,
    #[serde(default)]
    expect_mrsigner: Option<String>,
}

/// The evidence of a request body that carries `certificate` (PEM RA-TLS) or `quote`
/// (base64), exactly one of them: its bytes and the field it came in. `quote_kind` says in
/// the error for neither what quote is wanted.
pub fn evidence_field(
    certificate: Option<&str>,
    quote: Option<&str>,
    quote_kind: &str,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    match (certificate, quote) {
        (Some(pem), None) => Ok((pem.as_bytes().to_vec(), "certificate")),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(|q| (q, "quote"))
            .map_err(|_| ApiError::bad_request("quote: not base64 (standard alphabet, padded)")),
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "certificate, quote: give one of them, not both",
        )),
        (None, None) => Err(ApiError::bad_request(format!(
            "certificate or quote: one is required (a PEM RA-TLS certificate, or {quote_kind})"
        ))),
    }
}

fn attest_error(e: &AttestError) -> ApiError {
    // The engine's messages name the field or the structure and carry no secret (evidence
    // and collateral are public data).
    ApiError::bad_request(match e {
        AttestError::Policy(m) => m.clone(),
        other => other.to_string(),
    })
}

/// Verifies the request `body` at `now_secs` (used when the body has no `at`); returns
/// the `AttestReport` as JSON.
pub fn verify(body: &[u8], now_secs: u64) -> Result<String, ApiError> {
    let req: AttestBody = crate::body::parse_json(body)?;
    let (evidence_bytes, _) = evidence_field(
        req.certificate.as_deref(),
        req.quote.as_deref(),
        "a base64 SGX quote",
    )?;
    let evidence = read_evidence(&evidence_bytes).map_err(|e| attest_error(&e))?;
    let mut allowed = vec!["UpToDate".to_string()];
    allowed.extend(req.allow_tcb);
    let policy = AttestPolicy {
        allowed_tcb_statuses: allowed,
        allow_debug: req.allow_debug,
        expect_mrenclave: req.expect_mrenclave,
        expect_mrsigner: req.expect_mrsigner,
    };
    let policy = policy.validated().map_err(|e| {
        attest_error(&match e {
            AttestError::Policy(m) => {
                AttestError::Policy(m.replace("allowedTcbStatuses", "allowTcb"))
            }
            other => other,
        })
    })?;
    let report = verify_evidence(
        &evidence,
        &req.collateral,
        req.at.unwrap_or(now_secs),
        &policy,
        &TrustRoot::Intel,
        None,
    )
    .map_err(|e| attest_error(&e))?;
    serde_json::to_string(&report).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTE: &[u8] = include_bytes!("../../engine/testdata/attest/sgx_quote");
    const COLLATERAL: &str = include_str!("../../engine/testdata/attest/sgx_quote_collateral.json");
    const CERT: &str = include_str!("../../engine/testdata/attest/ratls-tcg-dice.pem");
    const INSIDE: u64 = 1_751_328_000;

    fn body(evidence: serde_json::Value, extra: serde_json::Value) -> Vec<u8> {
        let mut v = serde_json::json!({
            "collateral": serde_json::from_str::<serde_json::Value>(COLLATERAL).unwrap(),
        });
        for (k, x) in evidence
            .as_object()
            .unwrap()
            .iter()
            .chain(extra.as_object().unwrap())
        {
            v[k] = x.clone();
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    #[test]
    fn sample_quote_and_certificate() {
        let q = serde_json::json!({ "quote": b64(QUOTE) });
        let allow =
            serde_json::json!({ "at": INSIDE, "allowTcb": ["ConfigurationAndSWHardeningNeeded"] });
        let r: serde_json::Value =
            serde_json::from_str(&verify(&body(q.clone(), allow.clone()), 0).unwrap()).unwrap();
        assert_eq!(r["passed"], true, "{r}");
        assert_eq!(r["tcbStatus"], "ConfigurationAndSWHardeningNeeded");
        // Default policy at the request's time (now = INSIDE): refused on the status.
        let r: serde_json::Value =
            serde_json::from_str(&verify(&body(q.clone(), serde_json::json!({})), INSIDE).unwrap())
                .unwrap();
        assert_eq!(r["passed"], false);
        // A changed MRENCLAVE byte: the signature check fails.
        let mut t = QUOTE.to_vec();
        t[112] ^= 1;
        let r: serde_json::Value = serde_json::from_str(
            &verify(
                &body(serde_json::json!({ "quote": b64(&t) }), allow.clone()),
                0,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(r["passed"], false);
        let sig = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "quote-signature");
        assert_eq!(sig.unwrap()["status"], "fail");
        // The certificate (its key is not bound by the sample quote).
        let r: serde_json::Value = serde_json::from_str(
            &verify(&body(serde_json::json!({ "certificate": CERT }), allow), 0).unwrap(),
        )
        .unwrap();
        assert_eq!(r["evidence"], "ra-tls certificate (tcg-dice)");
        assert_eq!(r["passed"], false);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let reason = |b: &[u8]| verify(b, 0).unwrap_err().reason;
        let q = serde_json::json!({ "quote": b64(QUOTE) });
        assert!(
            reason(&body(serde_json::json!({}), serde_json::json!({}))).contains("one is required")
        );
        let both = serde_json::json!({ "quote": b64(QUOTE), "certificate": CERT });
        assert!(reason(&body(both, serde_json::json!({}))).contains("not both"));
        assert!(reason(&body(
            serde_json::json!({ "quote": "***" }),
            serde_json::json!({})
        ))
        .contains("quote: not base64"));
        let r = reason(&body(
            q.clone(),
            serde_json::json!({ "allowTcb": ["Revoked"] }),
        ));
        assert!(r.starts_with("allowTcb:"), "{r}");
        let r = reason(&body(
            q.clone(),
            serde_json::json!({ "expectMrenclave": "00" }),
        ));
        assert!(r.contains("expectMrenclave"), "{r}");
        let r = reason(&body(q.clone(), serde_json::json!({ "at": "soon" })));
        assert!(r.starts_with("at:"), "{r}");
        let r = reason(br#"{"quote":"AAAA","collateral":{"pck_crl_issuer_chain":1}}"#);
        assert!(r.starts_with("collateral.pck_crl_issuer_chain"), "{r}");
        let r = reason(&body(
            serde_json::json!({ "quote": b64(&[3, 0, 2]) }),
            serde_json::json!({}),
        ));
        assert!(r.contains("quote"), "{r}");
    }
}
