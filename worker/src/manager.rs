//! `POST /certificates/issue`: the worker as MANAGER_CA. An enclave sends a CSR and an SGX
//! quote over the CSR key's hash (or an RA-TLS certificate for the same key) with its
//! collateral; the worker looks up the approval record of the quote's MRENCLAVE
//! ([`crate::approvals`]) and lets the engine's [`kiln_engine::attest::issue::issue`] decide.
//!
//! Body (JSON, camelCase; errors name the field, never quote a value):
//!
//! ```json
//! { "csr": "-----BEGIN CERTIFICATE REQUEST-----…",
//!   "quote": "<base64 of the quote>",            // or "certificate": "<PEM RA-TLS cert>"
//!   "collateral": { …dcap-qvl QuoteCollateralV3… }, // optional: fetched from KILN_PCCS_URL
//!   "subject": "app.example.com",
//!   "lifetimeSecs": 86400 }                      // optional
//! ```
//!
//! Answer: `{certificateChain (leaf then CA, PEM), certificate, serial, notBefore, notAfter,
//! approvalId}`; a refusal is 403 `Forbidden` naming the failed check (`refused by check
//! approval: …`); unreadable input a 400 naming the field. Without `collateral` the worker
//! fetches it for the quote (for an RA-TLS certificate: the quote inside it) from the PCCS at
//! [`crate::config::PCCS_URL`] (the handler, over a transport that reaches only that origin):
//! unset is a 500 `ConfigurationError` naming the variable, a PCCS failure a 502
//! `CollateralError` whose reason names the PCCS URL ([`pccs_error`]).
//!
//! Configuration: [`CA_KEY`] (secret, the CA's P-256 key), [`CA_CERT`] (its certificate),
//! optionally [`ALLOW_TCB`] (TCB statuses accepted besides `UpToDate`) and — tests only —
//! [`TEST_ROOT`], a PEM root that replaces Intel's SGX root. Missing CA settings are a 500
//! `ConfigurationError` naming the variable; no message ever contains the key.

use base64::Engine as _;
use kiln_engine::attest::issue::{issue, ApprovalRecord, IssueError, IssueRequest, Issuer};
use kiln_engine::attest::{parse_quote, read_evidence, AttestPolicy, QuoteCollateralV3, TrustRoot};
use serde::Deserialize;

use crate::error::{ApiError, ErrorType};

/// Secret: the CA's private key (ECDSA P-256, PKCS#8 or SEC1 PEM).
pub const CA_KEY: &str = "KILN_MANAGER_CA_KEY";
/// The CA's certificate (PEM).
pub const CA_CERT: &str = "KILN_MANAGER_CA_CERT";
/// TCB statuses accepted besides `UpToDate`, comma-separated (e.g. `SWHardeningNeeded`).
pub const ALLOW_TCB: &str = "KILN_MANAGER_ALLOW_TCB";
/// TESTS ONLY: a PEM root certificate used instead of Intel's SGX root CA, so that quotes
/// minted under a test PKI pass. Never set it in a deployment: anyone holding that root's
/// key could then mint quotes for any enclave.
pub const TEST_ROOT: &str = "KILN_ATTEST_TEST_ROOT";

/// The settings, as the bindings hold them (empty values count as unset).
#[derive(Default)]
pub struct ManagerSettings {
    /// [`CA_KEY`].
    pub key: Option<String>,
    /// [`CA_CERT`].
    pub cert: Option<String>,
    /// [`ALLOW_TCB`].
    pub allow_tcb: Option<String>,
    /// [`TEST_ROOT`].
    pub test_root: Option<String>,
}

impl std::fmt::Debug for ManagerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerSettings")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("cert", &self.cert.is_some())
            .field("allow_tcb", &self.allow_tcb)
            .field("test_root", &self.test_root.is_some())
            .finish()
    }
}

/// The issuer, its trust root and policy, from the settings.
pub struct Manager {
    issuer: Issuer,
    root: TrustRoot,
    policy: AttestPolicy,
}

fn config_error(reason: impl Into<String>) -> ApiError {
    ApiError::new(ErrorType::ConfigurationError, reason)
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn pem_certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

impl Manager {
    /// Builds the manager from its settings; a missing or unusable one is a 500
    /// `ConfigurationError` naming the variable (never quoting the key).
    pub fn new(s: &ManagerSettings) -> Result<Manager, ApiError> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let key = set(&s.key).ok_or_else(|| {
            config_error(format!(
                "this worker has no MANAGER_CA key configured (secret {CA_KEY}); it cannot issue certificates"
            ))
        })?;
        let cert = set(&s.cert).ok_or_else(|| {
            config_error(format!(
                "this worker has no MANAGER_CA certificate configured ({CA_CERT}); it cannot issue certificates"
            ))
        })?;
        let issuer = Issuer::new(&key, &cert).map_err(|e| match e {
            IssueError::Config(m) => config_error(format!("{CA_KEY} / {CA_CERT}: {m}")),
            other => config_error(format!("{CA_KEY} / {CA_CERT}: {other}")),
        })?;
        let root = match set(&s.test_root) {
            None => TrustRoot::Intel,
            Some(pem) => TrustRoot::Custom(
                pem_certificate_der(&pem)
                    .ok_or_else(|| config_error(format!("{TEST_ROOT}: not a PEM certificate")))?,
            ),
        };
        let mut allowed = vec!["UpToDate".to_string()];
        if let Some(list) = set(&s.allow_tcb) {
            allowed.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(String::from),
            );
        }
        let policy = AttestPolicy {
            allowed_tcb_statuses: allowed,
            allow_debug: false,
            expect_mrenclave: None,
            expect_mrsigner: None,
        }
        .validated()
        .map_err(|e| config_error(format!("{ALLOW_TCB}: {e}")))?;
        Ok(Manager {
            issuer,
            root,
            policy,
        })
    }
}

/// The body of `POST /certificates/issue`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IssueBody {
    csr: String,
    #[serde(default)]
    quote: Option<String>,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    collateral: Option<QuoteCollateralV3>,
    subject: String,
    #[serde(default)]
    lifetime_secs: Option<u64>,
}

/// A parsed request, before the approval lookup.
pub struct IssueInput {
    csr: String,
    evidence: Vec<u8>,
    evidence_field: &'static str,
    /// The request's collateral; `None` until fetched when it had none.
    pub collateral: Option<QuoteCollateralV3>,
    subject: String,
    lifetime_secs: Option<u64>,
    /// The quote's MRENCLAVE (hex) when the evidence parses: the approval to look up.
    pub mrenclave: Option<String>,
}

/// Parses the request body.
pub fn parse(body: &[u8]) -> Result<IssueInput, ApiError> {
    let req: IssueBody = crate::body::parse_json(body)?;
    let (evidence, evidence_field) = crate::attest::evidence_field(
        req.certificate.as_deref(),
        req.quote.as_deref(),
        "a base64 SGX quote over the CSR key's SHA-256",
    )?;
    let mrenclave = read_evidence(&evidence)
        .ok()
        .and_then(|ev| parse_quote(&ev.quote).ok())
        .and_then(|(_, report)| report)
        .map(|r| hex::encode(r.mr_enclave));
    Ok(IssueInput {
        csr: req.csr,
        evidence,
        evidence_field,
        collateral: req.collateral,
        subject: req.subject,
        lifetime_secs: req.lifetime_secs,
        mrenclave,
    })
}

impl IssueInput {
    /// The field the evidence came in (`quote` or `certificate`).
    pub fn evidence_field(&self) -> &'static str {
        self.evidence_field
    }

    /// The SGX quote to fetch collateral for: the quote field, or the quote inside the
    /// RA-TLS certificate; unreadable evidence or a quote that does not parse is a 400
    /// naming its field (before anything is fetched).
    pub fn quote(&self) -> Result<Vec<u8>, ApiError> {
        let bad = |e: kiln_engine::attest::AttestError| {
            ApiError::bad_request(format!("{}: {e}", self.evidence_field))
        };
        let ev = read_evidence(&self.evidence).map_err(bad)?;
        parse_quote(&ev.quote).map_err(bad)?;
        Ok(ev.quote)
    }
}

/// The answer for a failed collateral fetch from the PCCS at `pccs_url`: a quote the PCCS
/// API cannot serve is the caller's 400 (naming the evidence field); anything else is a 502
/// naming the URL (the engine's messages name the request URLs, built from `pccs_url`,
/// which the configuration holds free of credentials).
pub fn pccs_error(
    e: kiln_engine::attest::AttestError,
    pccs_url: &str,
    evidence_field: &str,
) -> ApiError {
    use kiln_engine::attest::AttestError;
    match e {
        AttestError::Quote(m) => ApiError::bad_request(format!("{evidence_field}: {m}")),
        other => ApiError::new(
            ErrorType::CollateralError,
            format!(
                "collateral: fetching it from the PCCS at {pccs_url} ({}) failed: {other}",
                crate::config::PCCS_URL
            ),
        ),
    }
}

/// Issues (or refuses) with the approval record found for the quote's MRENCLAVE; the
/// answer's JSON. The input must have its collateral by now (else a 500 naming it).
pub fn run(
    m: &Manager,
    input: &IssueInput,
    approval: Option<&ApprovalRecord>,
    now: u64,
) -> Result<String, ApiError> {
    let collateral = input.collateral.as_ref().ok_or_else(|| {
        ApiError::internal("collateral: neither in the request nor fetched from the PCCS")
    })?;
    let req = IssueRequest {
        csr: input.csr.as_bytes(),
        evidence: &input.evidence,
        collateral,
        policy: &m.policy,
        root: &m.root,
        approval,
        subject: &input.subject,
        lifetime_secs: input.lifetime_secs,
        now,
    };
    let issued = issue(&m.issuer, &req).map_err(|e| match e {
        IssueError::Config(msg) => config_error(format!("{CA_KEY} / {CA_CERT}: {msg}")),
        IssueError::Input { field, message } => {
            let field = if field == "evidence" {
                input.evidence_field
            } else {
                field
            };
            ApiError::bad_request(format!("{field}: {message}"))
        }
        refused @ IssueError::Refused { .. } => {
            ApiError::new(ErrorType::Forbidden, refused.to_string())
        }
    })?;
    Ok(serde_json::json!({
        "certificateChain": issued.chain,
        "certificate": issued.certificate,
        "serial": issued.serial,
        "notBefore": issued.not_before,
        "notAfter": issued.not_after,
        "approvalId": issued.approval_id,
    })
    .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_KEY_PEM: &str = include_str!("../../engine/testdata/attest/manager/ca-key.pem");
    const CA_CERT_PEM: &str = include_str!("../../engine/testdata/attest/manager/ca.pem");

    fn settings() -> ManagerSettings {
        ManagerSettings {
            key: Some(CA_KEY_PEM.into()),
            cert: Some(CA_CERT_PEM.into()),
            ..Default::default()
        }
    }

    #[test]
    fn missing_settings_name_the_variable_not_the_key() {
        let e = Manager::new(&ManagerSettings::default()).err().unwrap();
        assert_eq!(
            (e.status, e.error_type),
            (500, ErrorType::ConfigurationError)
        );
        assert!(e.reason.contains(CA_KEY), "{}", e.reason);
        let e = Manager::new(&ManagerSettings {
            cert: Some("  ".into()),
            ..settings()
        })
        .err()
        .unwrap();
        assert!(e.reason.contains(CA_CERT), "{}", e.reason);
        assert!(!e.reason.contains("PRIVATE KEY"), "{}", e.reason);
        // A key that is not the certificate's: named, never quoted.
        let other = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgq0yiWJ1rCzJ5Bh0o\n-----END PRIVATE KEY-----\n";
        let e = Manager::new(&ManagerSettings {
            key: Some(other.into()),
            ..settings()
        })
        .err()
        .unwrap();
        assert_eq!(e.error_type, ErrorType::ConfigurationError);
        assert!(!e.reason.contains("MIGHAgEA"), "{}", e.reason);
        let e = Manager::new(&ManagerSettings {
            test_root: Some("nope".into()),
            ..settings()
        })
        .err()
        .unwrap();
        assert!(e.reason.starts_with(TEST_ROOT), "{}", e.reason);
        let e = Manager::new(&ManagerSettings {
            allow_tcb: Some("Revoked".into()),
            ..settings()
        })
        .err()
        .unwrap();
        assert!(e.reason.starts_with(ALLOW_TCB), "{}", e.reason);
        assert!(Manager::new(&settings()).is_ok());
        assert!(!format!("{:?}", settings()).contains("PRIVATE"));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let reason = |b: &str| parse(b.as_bytes()).err().unwrap().reason;
        let col = r#""collateral":{"pck_crl_issuer_chain":"","root_ca_crl":"","pck_crl":"","tcb_info_issuer_chain":"","tcb_info":"","tcb_info_signature":"","qe_identity_issuer_chain":"","qe_identity":"","qe_identity_signature":""}"#;
        let r = reason(&format!(r#"{{"csr":"x","subject":"a.example",{col}}}"#));
        assert!(r.contains("one is required"), "{r}");
        let r = reason(&format!(
            r#"{{"csr":"x","quote":"***","subject":"a.example",{col}}}"#
        ));
        assert!(r.starts_with("quote: not base64"), "{r}");
        // No collateral: parsed (the handler fetches it), the quote for the PCCS read back;
        // an unreadable one is a 400 naming the field.
        let input = parse(br#"{"csr":"x","quote":"AAAA","subject":"a.example"}"#).unwrap();
        assert!(input.collateral.is_none());
        let e = input.quote().unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.reason.starts_with("quote:"), "{}", e.reason);
        let e = run(&Manager::new(&settings()).unwrap(), &input, None, 0).unwrap_err();
        assert_eq!(e.status, 500);
        let cert = include_str!("../../engine/testdata/attest/ratls-tcg-dice.pem");
        let body = serde_json::json!({"csr": "x", "certificate": cert, "subject": "a.example"});
        let input = parse(body.to_string().as_bytes()).unwrap();
        assert!(!input.quote().unwrap().is_empty());
        let r = reason(r#"{"csr":"x","quote":"AAAA","subject":"a.example","collateral":7}"#);
        assert!(r.starts_with("collateral"), "{r}");
        let r = reason(&format!(
            r#"{{"csr":"x","quote":"AAAA","subject":"a.example","lifetimeSecs":-1,{col}}}"#
        ));
        assert!(r.starts_with("lifetimeSecs"), "{r}");
        // A quote that does not parse: no MRENCLAVE, the engine names the field.
        let input = parse(
            format!(r#"{{"csr":"x","quote":"AAAA","subject":"a.example",{col}}}"#).as_bytes(),
        )
        .unwrap();
        assert!(input.mrenclave.is_none());
        let m = Manager::new(&settings()).unwrap();
        let e = run(&m, &input, None, 0).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.reason.starts_with("csr:") || e.reason.starts_with("quote:"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn pccs_failures_name_the_url_or_the_field() {
        use kiln_engine::attest::AttestError;
        let url = "https://pccs.example:8081";
        let e = pccs_error(
            AttestError::Pccs(format!(
                "GET {url}/sgx/certification/v4/qe/identity: HTTP 500"
            )),
            url,
            "quote",
        );
        assert_eq!((e.status, e.error_type), (502, ErrorType::CollateralError));
        assert!(e.reason.starts_with("collateral:"), "{}", e.reason);
        assert!(e.reason.contains(url), "{}", e.reason);
        assert!(e.reason.contains(crate::config::PCCS_URL), "{}", e.reason);
        let e = pccs_error(AttestError::Quote("truncated".into()), url, "certificate");
        assert_eq!(e.status, 400);
        assert!(e.reason.starts_with("certificate: "), "{}", e.reason);
    }

    /// The engine's TEST-root fixture (engine/testdata/attest/manager) through the body.
    #[test]
    fn fixture_issued_only_when_approved() {
        use kiln_engine::attest::issue::ApprovalStatus;
        const QUOTE: &[u8] = include_bytes!("../../engine/testdata/attest/manager/quote.bin");
        const ROOT: &[u8] = include_bytes!("../../engine/testdata/attest/manager/root.der");
        const CSR: &str = include_str!("../../engine/testdata/attest/manager/csr.pem");
        const COLLATERAL: &str =
            include_str!("../../engine/testdata/attest/manager/collateral.json");
        const NOW: u64 = 1_790_000_000;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let root_pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            b64(ROOT)
        );
        let body = serde_json::json!({
            "csr": CSR, "quote": b64(QUOTE), "subject": "app.example.com",
            "collateral": serde_json::from_str::<serde_json::Value>(COLLATERAL).unwrap(),
        });
        let input = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(input.mrenclave.as_deref(), Some(&*"11".repeat(32)));
        let m = Manager::new(&ManagerSettings {
            test_root: Some(root_pem),
            ..settings()
        })
        .unwrap();
        let mut rec = ApprovalRecord {
            id: "r1".into(),
            mrenclave: "11".repeat(32),
            mrenclave2: None,
            mrsigner: "22".repeat(32),
            isv_prod_id: 0,
            isv_svn: 0,
            image: "registry.example/app:kiln".into(),
            allowed_subjects: vec!["app.example.com".into()],
            status: ApprovalStatus::Pending,
            created_at: NOW,
            updated_at: NOW,
        };
        let refusal = |r: Result<String, ApiError>| {
            let e = r.unwrap_err();
            assert_eq!((e.status, e.error_type), (403, ErrorType::Forbidden));
            e.reason
        };
        let r = refusal(run(&m, &input, Some(&rec), NOW));
        assert!(r.starts_with("refused by check approval:"), "{r}");
        let r = refusal(run(&m, &input, None, NOW));
        assert!(r.starts_with("refused by check approval:"), "{r}");
        rec.status = ApprovalStatus::Approved;
        let out: serde_json::Value =
            serde_json::from_str(&run(&m, &input, Some(&rec), NOW).unwrap()).unwrap();
        let chain = out["certificateChain"].as_str().unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(chain.ends_with(CA_CERT_PEM.trim_start()) || chain.contains("END CERTIFICATE"));
        assert_eq!(out["approvalId"], "r1");
        assert!(!out.to_string().contains("PRIVATE KEY"));
        rec.status = ApprovalStatus::Revoked;
        let r = refusal(run(&m, &input, Some(&rec), NOW));
        assert!(r.starts_with("refused by check approval:"), "{r}");
        // Intel's root (the default): the TEST quote is refused.
        rec.status = ApprovalStatus::Approved;
        let intel = Manager::new(&settings()).unwrap();
        let r = refusal(run(&intel, &input, Some(&rec), NOW));
        assert!(r.starts_with("refused by check quote/"), "{r}");
    }
}
