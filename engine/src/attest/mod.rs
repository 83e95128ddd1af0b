//! Verifying a running enclave: an SGX DCAP quote, alone or inside an RA-TLS
//! certificate, against Intel's collateral, and a policy.
//!
//! The cryptography is Phala's `dcap-qvl` (pure Rust, RustCrypto backend, so the same
//! code runs natively, in the browser and in the worker): the ISV enclave report is
//! signed by the quote's attestation key, the QE report by the PCK certificate, the PCK
//! chain, TCB info and QE identity chain to the trust root (Intel's SGX root CA unless a
//! test passes its own) and are not revoked, every piece of collateral is valid at the
//! given time, and the platform's TCB level is found. kiln then applies its policy and
//! reports one [`Check`] per claim, like `kiln verify` does for images:
//!
//! | id | passes when |
//! |---|---|
//! | `tee` | the quote is an SGX quote |
//! | `collateral-time` | the time lies inside the TCB info's and QE identity's issueDate..nextUpdate |
//! | `quote-signature` | dcap-qvl verifies the quote against the collateral at that time |
//! | `tcb-status` | the platform's TCB status is one the policy accepts (default `UpToDate` only) |
//! | `debug` | the enclave is not a debug enclave, or the policy allows debug enclaves |
//! | `report-data-binding` | (certificates) the report data binds the certificate's public key |
//! | `expected-mrenclave` / `expected-mrsigner` | (when asked) the values match |
//! | `image-enclave` / `image-mrsigner` | (with an image) MRENCLAVE is the image's SGX1 or EDMM enclave, MRSIGNER the image's |
//!
//! **Policy defaults.** Only `UpToDate` is accepted, as Gramine's RA-TLS verifier does
//! without its `RA_TLS_ALLOW_*` variables: any other status (`SWHardeningNeeded`,
//! `ConfigurationNeeded`, `ConfigurationAndSWHardeningNeeded`, `OutOfDate`,
//! `OutOfDateConfigurationNeeded`) must be listed in
//! [`AttestPolicy::allowed_tcb_statuses`]. `Revoked` is refused by dcap-qvl whatever the
//! policy. Debug enclaves are refused unless [`AttestPolicy::allow_debug`].
//!
//! Limits: SGX quotes of version 3 are verified; dcap-qvl 0.7 parses SGX quotes of
//! version 4 but refuses to verify them (the `quote-signature` check then fails with its
//! reason). The quote must carry its PCK certificate chain (certification data type 5,
//! what Gramine's DCAP quotes carry) unless the collateral includes it.
//!
//! The engine does no I/O: collateral comes as dcap-qvl's JSON ([`read_collateral`]) or
//! from a PCCS through the host's transport ([`pccs`]); the time comes from the caller.
//!
//! MANAGER_CA issuance builds on it: [`issue`] decides whether the operator's CA signs a
//! certificate for an enclave's key (quote, key binding, approval record, subject), and
//! [`approvals`] keeps the operator's records (pending, approved, revoked).

pub mod approvals;
pub mod cbor;
pub mod collateral_cache;
pub mod evidence;
pub mod issue;
pub mod pccs;

use serde::{Deserialize, Serialize};

pub use dcap_qvl::QuoteCollateralV3;
pub use evidence::{read_evidence, CertificateEvidence, Evidence, RaTlsFormat};

use crate::pipeline::config::{parse_rfc3339, BuildTime};
use crate::verify::check::Out;
use crate::verify::{Check, CheckStatus};

/// Why evidence or collateral could not be read. Everything else is a failed [`Check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The evidence (quote or certificate) is unreadable.
    #[error("evidence: {0}")]
    Evidence(String),
    /// The quote does not parse.
    #[error("quote: {0}")]
    Quote(String),
    /// The collateral JSON is unreadable.
    #[error("collateral: {0}")]
    Collateral(String),
    /// A policy value is invalid (names the field).
    #[error("policy: {0}")]
    Policy(String),
    /// Fetching collateral from a PCCS failed.
    #[error("PCCS: {0}")]
    Pccs(String),
}

/// The TCB statuses a policy may accept (`Revoked` never is).
pub const TCB_STATUSES: [&str; 6] = [
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
];

/// A verification instant as people write it: RFC 3339 (`2025-07-01T00:00:00Z`, any
/// offset) or Unix seconds. The CLI's `--at` and the web app's field.
pub fn parse_time(v: &str) -> Result<u64, String> {
    let t = v.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| format!("{t} is too large for Unix seconds"));
    }
    parse_rfc3339(t)
        .and_then(|s| u64::try_from(s).ok())
        .ok_or_else(|| {
            format!("expected RFC 3339 (2025-07-01T00:00:00Z) or Unix seconds, got {t:?}")
        })
}

/// The canonical spelling of a TCB status name (any case), or an error listing them.
pub fn tcb_status_name(s: &str) -> Result<&'static str, String> {
    let t = s.trim();
    TCB_STATUSES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(t))
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown TCB status {t:?}; one of {} (Revoked is never accepted)",
                TCB_STATUSES.join(", ")
            )
        })
}

fn default_tcb() -> Vec<String> {
    vec!["UpToDate".into()]
}

/// What the verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestPolicy {
    /// TCB statuses accepted (names from [`TCB_STATUSES`]); default `["UpToDate"]`.
    #[serde(default = "default_tcb")]
    pub allowed_tcb_statuses: Vec<String>,
    /// Accept debug enclaves (their memory is readable by the host).
    #[serde(default)]
    pub allow_debug: bool,
    /// Expected MRENCLAVE, 64 hex digits.
    #[serde(default)]
    pub expect_mrenclave: Option<String>,
    /// Expected MRSIGNER, 64 hex digits.
    #[serde(default)]
    pub expect_mrsigner: Option<String>,
}

impl Default for AttestPolicy {
    fn default() -> Self {
        Self {
            allowed_tcb_statuses: default_tcb(),
            allow_debug: false,
            expect_mrenclave: None,
            expect_mrsigner: None,
        }
    }
}

impl AttestPolicy {
    /// Checks every field: status names known, measurements 64 hex digits. Returns the
    /// policy with canonical status names and lower-case hex.
    pub fn validated(&self) -> Result<AttestPolicy, AttestError> {
        let mut statuses = Vec::new();
        for s in &self.allowed_tcb_statuses {
            let n = tcb_status_name(s)
                .map_err(|e| AttestError::Policy(format!("allowedTcbStatuses: {e}")))?;
            if !statuses.iter().any(|x: &String| x == n) {
                statuses.push(n.to_string());
            }
        }
        let hex32 = |field: &str, v: &Option<String>| -> Result<Option<String>, AttestError> {
            match v {
                None => Ok(None),
                Some(h) => {
                    let t = h.trim();
                    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Ok(Some(t.to_ascii_lowercase()))
                    } else {
                        Err(AttestError::Policy(format!(
                            "{field}: expected 64 hex digits (a 32-byte measurement), got {} characters",
                            t.len()
                        )))
                    }
                }
            }
        };
        Ok(AttestPolicy {
            allowed_tcb_statuses: statuses,
            allow_debug: self.allow_debug,
            expect_mrenclave: hex32("expectMrenclave", &self.expect_mrenclave)?,
            expect_mrsigner: hex32("expectMrsigner", &self.expect_mrsigner)?,
        })
    }
}

/// The root the collateral and PCK chain must chain to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustRoot {
    /// Intel's SGX Root CA (the certificate dcap-qvl ships).
    #[default]
    Intel,
    /// Another root certificate, DER (tests with their own PCK chain).
    Custom(Vec<u8>),
}

/// The enclaves of an image, from `kiln verify` of it ([`crate::verify::VerifyReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEnclaves {
    /// The image reference as given.
    pub image: String,
    /// Its manifest digest.
    pub manifest_digest: String,
    /// Whether every check of the image's own verification passed.
    pub image_verified: bool,
    /// (`sgx1` | `edmm` | other name, MRENCLAVE hex).
    pub mrenclaves: Vec<(String, String)>,
    /// MRSIGNER hex.
    pub mrsigner: Option<String>,
}

impl ImageEnclaves {
    /// From an image's verify report.
    pub fn from_report(image: &str, r: &crate::verify::VerifyReport) -> Self {
        Self {
            image: image.to_string(),
            manifest_digest: r.manifest_digest.clone(),
            image_verified: r.passed,
            mrenclaves: r.mrenclaves.clone(),
            mrsigner: r.mrsigner.clone(),
        }
    }
}

/// The SGX report fields of the quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnclaveIdentity {
    /// MRENCLAVE, hex.
    pub mrenclave: String,
    /// MRSIGNER, hex.
    pub mrsigner: String,
    /// ISVPRODID.
    pub isv_prod_id: u16,
    /// ISVSVN.
    pub isv_svn: u16,
    /// ATTRIBUTES (flags then XFRM, 16 bytes), hex.
    pub attributes: String,
    /// The DEBUG attribute bit.
    pub debug: bool,
    /// The MODE64BIT attribute bit.
    pub mode64bit: bool,
    /// MISCSELECT.
    pub misc_select: u32,
    /// CPUSVN, hex.
    pub cpu_svn: String,
    /// REPORTDATA (64 bytes), hex.
    pub report_data: String,
}

/// The result of [`verify_evidence`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestReport {
    /// True when no check failed.
    pub passed: bool,
    /// `quote`, or `ra-tls certificate (tcg-dice | legacy)`.
    pub evidence: String,
    /// The certificate's subject, for certificates.
    pub certificate_subject: Option<String>,
    /// Quote version.
    pub quote_version: u16,
    /// The enclave's identity as the quote states it (trust it only if `passed`).
    pub enclave: Option<EnclaveIdentity>,
    /// The platform's TCB status, when the quote verified.
    pub tcb_status: Option<String>,
    /// Intel security advisories that apply to the platform's TCB level.
    pub advisory_ids: Vec<String>,
    /// The instant verified at, RFC 3339.
    pub verified_at: String,
    /// With an image: which of its enclaves is running (`sgx1` or `edmm`).
    pub image_enclave: Option<String>,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl AttestReport {
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Fail)
    }
}

/// Reads dcap-qvl's collateral JSON (`QuoteCollateralV3`: CRLs and signatures as hex,
/// issuer chains as PEM, TCB info and QE identity as the exact signed JSON text).
pub fn read_collateral(json: &[u8]) -> Result<QuoteCollateralV3, AttestError> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        AttestError::Collateral(format!("{path}: {}", e.inner()))
    })
}

fn rfc3339(unix: u64) -> String {
    BuildTime { unix }.rfc3339()
}

/// `issueDate..nextUpdate` of a TCB info / QE identity JSON text.
fn validity(json: &str, what: &str) -> Result<(u64, u64), String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("{what} is not JSON: {e}"))?;
    let date = |k: &str| -> Result<u64, String> {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .and_then(parse_rfc3339)
            .and_then(|s| u64::try_from(s).ok())
            .ok_or_else(|| format!("{what} has no valid {k}"))
    };
    Ok((date("issueDate")?, date("nextUpdate")?))
}

fn collateral_time(c: &QuoteCollateralV3, now: u64) -> Result<String, String> {
    let mut parts = Vec::new();
    let mut bad = Vec::new();
    for (json, what) in [(&c.tcb_info, "TCB info"), (&c.qe_identity, "QE identity")] {
        let (from, to) = validity(json, what)?;
        parts.push(format!("{what} {}..{}", rfc3339(from), rfc3339(to)));
        if now < from {
            bad.push(format!(
                "{what} is not yet valid (issued {})",
                rfc3339(from)
            ));
        } else if now > to {
            bad.push(format!("{what} expired at {}", rfc3339(to)));
        }
    }
    if bad.is_empty() {
        Ok(format!("at {}: {}", rfc3339(now), parts.join(", ")))
    } else {
        Err(format!(
            "at {}: {} (fetch current collateral, or verify old evidence with a time inside the validity)",
            rfc3339(now),
            bad.join("; ")
        ))
    }
}

/// dcap-qvl's error with its causes (anyhow's alternate form: `a: b: c`).
fn anyhow_chain(e: &impl std::fmt::Display) -> String {
    format!("{e:#}")
}

/// Parses the quote and returns its version and SGX report (None for another TEE).
pub fn parse_quote(
    quote: &[u8],
) -> Result<(u16, Option<dcap_qvl::quote::EnclaveReport>), AttestError> {
    let q = dcap_qvl::quote::Quote::parse(quote).map_err(|e| {
        AttestError::Quote(format!(
            "{} bytes do not parse as an SGX/TDX quote: {}",
            quote.len(),
            anyhow_chain(&e)
        ))
    })?;
    Ok((q.header.version, q.report.as_sgx().copied()))
}

fn identity(r: &dcap_qvl::quote::EnclaveReport) -> EnclaveIdentity {
    EnclaveIdentity {
        mrenclave: hex::encode(r.mr_enclave),
        mrsigner: hex::encode(r.mr_signer),
        isv_prod_id: r.isv_prod_id,
        isv_svn: r.isv_svn,
        attributes: hex::encode(r.attributes),
        debug: r.attributes[0] & 0x02 != 0,
        mode64bit: r.attributes[0] & 0x04 != 0,
        misc_select: r.misc_select,
        cpu_svn: hex::encode(r.cpu_svn),
        report_data: hex::encode(r.report_data),
    }
}

/// The debug check alone: refused unless allowed.
pub fn debug_check(id: &EnclaveIdentity, allow_debug: bool) -> (bool, String) {
    match (id.debug, allow_debug) {
        (false, _) => (true, "production enclave (ATTRIBUTES.DEBUG clear)".into()),
        (true, true) => (
            true,
            "DEBUG enclave accepted because debug enclaves are allowed: the host can read and change its memory, so it proves nothing about the code that runs".into(),
        ),
        (true, false) => (
            false,
            "DEBUG enclave (ATTRIBUTES.DEBUG set): the host can read and change its memory; refused unless debug enclaves are allowed".into(),
        ),
    }
}

/// The TCB status check alone.
pub fn tcb_check(status: &str, advisories: &[String], allowed: &[String]) -> (bool, String) {
    let adv = if advisories.is_empty() {
        String::new()
    } else {
        format!(" (advisories {})", advisories.join(", "))
    };
    if allowed.iter().any(|a| a == status) {
        (
            true,
            format!("{status}{adv}; accepted: {}", allowed.join(", ")),
        )
    } else {
        (
            false,
            format!(
                "{status}{adv} is not accepted (accepted: {}); allow it explicitly (--allow-tcb {status}) if the platform's state is acceptable to you",
                allowed.join(", ")
            ),
        )
    }
}

/// Verifies evidence against collateral at `now_secs` (Unix seconds) under `policy`,
/// optionally naming which enclave of `image` runs. An `Err` means the evidence or the
/// policy is unreadable; a verification failure is a failed check in the report.
pub fn verify_evidence(
    evidence: &Evidence,
    collateral: &QuoteCollateralV3,
    now_secs: u64,
    policy: &AttestPolicy,
    root: &TrustRoot,
    image: Option<&ImageEnclaves>,
) -> Result<AttestReport, AttestError> {
    let policy = policy.validated()?;
    let (version, report) = parse_quote(&evidence.quote)?;
    let mut out = Out(Vec::new());
    let ident = report.as_ref().map(identity);
    out.push(
        "tee",
        "quote",
        report.is_some(),
        match &report {
            Some(_) => format!("SGX quote, version {version}"),
            None => format!("not an SGX enclave quote (version {version}; TDX quotes are not what kiln's enclaves produce)"),
        },
    );
    match collateral_time(collateral, now_secs) {
        Ok(m) => out.push("collateral-time", "collateral", true, m),
        Err(m) => out.push("collateral-time", "collateral", false, m),
    }
    let verifier = match root {
        TrustRoot::Intel => dcap_qvl::verify::QuoteVerifier::new_prod(),
        TrustRoot::Custom(der) => dcap_qvl::verify::QuoteVerifier::new(der.clone()),
    }
    .with_config::<dcap_qvl::configs::RustCryptoConfig>()
    // kiln decides about debug enclaves itself (the `debug` check), so the verifier
    // reports them instead of stopping.
    .allow_debug(true);
    let root_name = match root {
        TrustRoot::Intel => "Intel's SGX Root CA",
        TrustRoot::Custom(_) => "the configured (non-Intel) root CA",
    };
    let verified = verifier.verify(&evidence.quote, collateral, now_secs);
    let (tcb_status, advisory_ids) = match &verified {
        Ok(v) => {
            out.push(
                "quote-signature",
                "quote",
                true,
                format!(
                    "report signed by the quote's attestation key, which the Quoting Enclave certified under a PCK certificate chaining to {root_name}; TCB info, QE identity and CRLs signed under the same root and valid at {}",
                    rfc3339(now_secs)
                ),
            );
            (Some(v.status.clone()), v.advisory_ids.clone())
        }
        Err(e) => {
            out.push(
                "quote-signature",
                "quote",
                false,
                format!("not verified: {}", anyhow_chain(e)),
            );
            (None, Vec::new())
        }
    };
    match &tcb_status {
        Some(s) => {
            let (ok, m) = tcb_check(s, &advisory_ids, &policy.allowed_tcb_statuses);
            out.push("tcb-status", "platform", ok, m);
        }
        None => out.push(
            "tcb-status",
            "platform",
            false,
            "unknown: the quote did not verify".into(),
        ),
    }
    if let Some(id) = &ident {
        let (ok, m) = debug_check(id, policy.allow_debug);
        out.push("debug", "enclave", ok, m);
    }
    if let (Some(cert), Some(r)) = (&evidence.certificate, &report) {
        match cert.binding(&r.report_data) {
            Ok(m) => out.push("report-data-binding", "certificate", true, m),
            Err(m) => out.push("report-data-binding", "certificate", false, m),
        }
    }
    if let Some(id) = &ident {
        // The policy's expected measurements, each one check of the same form.
        for (check, expected, quoted) in [
            (
                "expected-mrenclave",
                &policy.expect_mrenclave,
                &id.mrenclave,
            ),
            ("expected-mrsigner", &policy.expect_mrsigner, &id.mrsigner),
        ] {
            if let Some(want) = expected {
                let ok = want == quoted;
                out.push(
                    check,
                    "enclave",
                    ok,
                    format!("expected {want}, quote has {quoted}"),
                );
            }
        }
    }
    let mut image_enclave = None;
    if let (Some(img), Some(id)) = (image, &ident) {
        let found = img
            .mrenclaves
            .iter()
            .find(|(_, m)| m.eq_ignore_ascii_case(&id.mrenclave));
        let listed = img
            .mrenclaves
            .iter()
            .map(|(n, m)| format!("{n} {m}"))
            .collect::<Vec<_>>()
            .join(", ");
        let note = if img.image_verified {
            String::new()
        } else {
            " (note: the image's own verification failed; see kiln verify)".to_string()
        };
        match found {
            Some((name, _)) => {
                image_enclave = Some(name.clone());
                let what = match name.as_str() {
                    "sgx1" => "the SGX1 enclave (mrenclave)",
                    "edmm" => "the EDMM enclave (mrenclave2)",
                    _ => "an enclave of the image",
                };
                out.push(
                    "image-enclave",
                    "image",
                    true,
                    format!(
                        "MRENCLAVE {} is {what} of {} ({}){note}",
                        id.mrenclave, img.image, img.manifest_digest
                    ),
                );
            }
            None => out.push(
                "image-enclave",
                "image",
                false,
                format!(
                    "MRENCLAVE {} is none of the enclaves of {} ({}): {listed}{note}",
                    id.mrenclave, img.image, img.manifest_digest
                ),
            ),
        }
        match &img.mrsigner {
            Some(m) => out.push(
                "image-mrsigner",
                "image",
                m.eq_ignore_ascii_case(&id.mrsigner),
                format!("image signed by {m}, quote has {}", id.mrsigner),
            ),
            None => out.push(
                "image-mrsigner",
                "image",
                false,
                "the image names no MRSIGNER".into(),
            ),
        }
    }
    let checks = out.0;
    Ok(AttestReport {
        passed: !checks.iter().any(|c| c.status == CheckStatus::Fail),
        evidence: match &evidence.certificate {
            None => "quote".into(),
            Some(c) => match c.format {
                RaTlsFormat::TcgDice => "ra-tls certificate (tcg-dice)".into(),
                RaTlsFormat::Legacy => "ra-tls certificate (legacy)".into(),
            },
        },
        certificate_subject: evidence.certificate.as_ref().map(|c| c.subject.clone()),
        quote_version: version,
        enclave: ident,
        tcb_status,
        advisory_ids,
        verified_at: rfc3339(now_secs),
        image_enclave,
        checks,
    })
}

#[cfg(test)]
mod tests;
