//! Every call the app makes into `kiln_engine`, in one place. The small ones (validate,
//! measure one manifest, read a SIGSTRUCT) run on the page's thread; conversion and
//! verification run in a Web Worker ([`start_convert`], [`start_verify`]; wasm32 only),
//! which reports [`JobEvent`]s back to the page.

use kiln_engine::api::ConvertRequest;
use kiln_engine::gramine::validate::{validate, FieldError};
use kiln_engine::sgx::gramine_layout;
use kiln_engine::sgx::signer::{PrivateKeySigner, SignerPublicKey};
use kiln_engine::sgx::sigstruct::Sigstruct;
use kiln_engine::sgx::sigstruct_view::SigstructView;

use kiln_engine::api::ConvertResponse;
use kiln_engine::verify::{InspectReport, VerifyReport};
use zeroize::Zeroizing;

use crate::browser::protocol::{KeySpec, WorkerMessage};
use crate::mrsigner::mrsigner_from_modulus_be;

pub use crate::browser::progress::{ProgressKind, ProgressView};

/// The key that signs a conversion made in the browser (`signingKey.default` of the
/// request means this key; `signingKey.sdkms` is refused in the browser).
pub enum KeyChoice {
    /// A WebCrypto key of the key store, by record id (`keystore::KeyInfo::id`).
    Stored {
        /// Record id.
        id: String,
    },
    /// An imported key stored sealed under a passphrase, by record id; unsealed inside
    /// the Web Worker.
    Sealed {
        /// Record id.
        id: String,
        /// Its passphrase.
        passphrase: Zeroizing<String>,
    },
    /// A PEM private key held in this tab's memory (unencrypted PKCS#1 or PKCS#8).
    Pem(Zeroizing<String>),
}

impl std::fmt::Debug for KeyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format!("{:?}", self.to_spec()))
    }
}

impl KeyChoice {
    /// The form sent to the Web Worker.
    pub fn to_spec(&self) -> KeySpec {
        match self {
            KeyChoice::Stored { id } => KeySpec::Stored { id: id.clone() },
            KeyChoice::Sealed { id, passphrase } => KeySpec::Sealed {
                id: id.clone(),
                passphrase: passphrase.clone(),
            },
            KeyChoice::Pem(pem) => KeySpec::Pem { pem: pem.clone() },
        }
    }
}

/// What a running job reports. `Converted`, `Verified` and `Failed` end the job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// A progress event.
    Progress(ProgressView),
    /// The conversion finished: the API response.
    Converted(ConvertResponse),
    /// The verification finished: the engine's report (`passed` is the verdict) and what
    /// the image says about itself (both SIGSTRUCTs' fields, labels, runtime), if read.
    Verified(VerifyReport, Option<Box<InspectReport>>),
    /// The job failed, as the API would answer: `{errorType, reason}`.
    Failed {
        /// `BadRequest`, `Unauthorized`, `NotFound`, `RegistryError`, ... or
        /// `ConfigurationError` (no runtime image / proxy) and `Internal`.
        error_type: String,
        /// What went wrong, naming the field, image or registry.
        reason: String,
    },
}

impl JobEvent {
    /// Whether this event ends the job.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, JobEvent::Progress(_))
    }
}

impl From<WorkerMessage> for JobEvent {
    fn from(m: WorkerMessage) -> Self {
        match m {
            WorkerMessage::Progress { event } => JobEvent::Progress(event),
            WorkerMessage::Converted { response } => JobEvent::Converted(response),
            WorkerMessage::Verified { report, inspect } => JobEvent::Verified(report, inspect),
            WorkerMessage::Failed { error_type, reason } => JobEvent::Failed { error_type, reason },
        }
    }
}

impl From<JobEvent> for WorkerMessage {
    fn from(e: JobEvent) -> Self {
        match e {
            JobEvent::Progress(event) => WorkerMessage::Progress { event },
            JobEvent::Converted(response) => WorkerMessage::Converted { response },
            JobEvent::Verified(report, inspect) => WorkerMessage::Verified { report, inspect },
            JobEvent::Failed { error_type, reason } => WorkerMessage::Failed { error_type, reason },
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use crate::browser::spawn::JobHandle;

/// Starts a conversion in a new Web Worker: `req` as the API takes it, signed with
/// `key`; `on_event` gets progress and then exactly one terminal event (unless the job
/// is cancelled first). Errs only when the worker cannot be started.
#[cfg(target_arch = "wasm32")]
pub fn start_convert(
    req: ConvertRequest,
    key: KeyChoice,
    on_event: impl Fn(JobEvent) + 'static,
) -> Result<JobHandle, String> {
    let request = serde_json::to_string(&req).map_err(|e| format!("request: {e}"))?;
    crate::browser::spawn::spawn(
        crate::browser::protocol::JobSpec::Convert {
            request,
            key: key.to_spec(),
            api_origin: crate::browser::spawn::api_origin()?,
        },
        on_event,
    )
}

/// Verifies an image in its registry in a new Web Worker (through the proxy), checking
/// MRENCLAVE / MRSIGNER against the expectations when given.
#[cfg(target_arch = "wasm32")]
pub fn start_verify(
    image: String,
    auth: Option<kiln_engine::api::AuthConfig>,
    expect_mrenclave: Option<String>,
    expect_mrsigner: Option<String>,
    on_event: impl Fn(JobEvent) + 'static,
) -> Result<JobHandle, String> {
    crate::browser::spawn::spawn(
        crate::browser::protocol::JobSpec::Verify {
            image,
            auth,
            expect_mrenclave,
            expect_mrsigner,
            api_origin: crate::browser::spawn::api_origin()?,
        },
        on_event,
    )
}

/// The browser's layer cache: `(entries, bytes)`.
#[cfg(target_arch = "wasm32")]
pub async fn layer_cache_usage() -> Result<(u64, u64), String> {
    crate::browser::idb_cache::IdbLayerCache::new()
        .usage()
        .await
        .map_err(|e| e.to_string())
}

/// Empties the browser's layer cache.
#[cfg(target_arch = "wasm32")]
pub async fn clear_layer_cache() -> Result<(), String> {
    crate::browser::idb_cache::IdbLayerCache::new()
        .clear()
        .await
        .map_err(|e| e.to_string())
}

/// The outcome of validating a request with the engine's own rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validation {
    /// One entry per problem, each naming its field (`isvsvn`, `roDirs[1]`).
    pub errors: Vec<FieldError>,
    /// Things worth knowing about a valid request (rounded memSize, ...).
    pub warnings: Vec<String>,
}

/// Validates a request exactly as the API will.
pub fn validate_request(req: &ConvertRequest) -> Validation {
    match validate(req) {
        Ok(v) => Validation {
            errors: Vec::new(),
            warnings: v.warnings,
        },
        Err(e) => Validation {
            errors: e.0,
            warnings: Vec::new(),
        },
    }
}

/// Parses a SIGSTRUCT file and describes every field (verifying signature and Q1/Q2).
pub fn read_sigstruct(bytes: &[u8]) -> Result<SigstructView, String> {
    Sigstruct::parse(bytes)
        .map(|s| SigstructView::new(&s))
        .map_err(|e| format!("not a SIGSTRUCT: {e}"))
}

/// MRENCLAVE of a final `.manifest.sgx` and its libpal.so, with the settings it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// MRENCLAVE, hex.
    pub mrenclave: String,
    /// `sgx.enclave_size` in bytes.
    pub enclave_size: u64,
    /// `sgx.max_threads`.
    pub max_threads: u32,
    /// `sgx.edmm_enable`.
    pub edmm: bool,
    /// `sgx.debug`.
    pub debug: bool,
    /// `sgx.isvprodid`.
    pub isvprodid: u16,
    /// `sgx.isvsvn`.
    pub isvsvn: u16,
}

/// Measures a final manifest with Gramine v1.9's layout.
pub fn measure(manifest: &[u8], libpal: &[u8]) -> Result<Measured, String> {
    let m = gramine_layout::measure(manifest, libpal).map_err(|e| e.to_string())?;
    Ok(Measured {
        mrenclave: hex::encode(m.mrenclave),
        enclave_size: m.params.enclave_size,
        max_threads: m.params.max_threads,
        edmm: m.params.edmm_enable,
        debug: m.params.debug,
        isvprodid: m.params.isvprodid,
        isvsvn: m.params.isvsvn,
    })
}

/// Verifies a running enclave's evidence (an RA-TLS certificate, PEM or DER, or an SGX
/// quote) against collateral (dcap-qvl's JSON) at `at` (Unix seconds) under `policy`,
/// with Intel's root, all in this tab: the engine's `attest`, as `kiln attest verify`
/// and `POST /attest/verify` run it. An `Err` names the unreadable input.
pub fn attest(
    evidence: &[u8],
    collateral: &[u8],
    at: u64,
    policy: &kiln_engine::attest::AttestPolicy,
) -> Result<kiln_engine::attest::AttestReport, String> {
    use kiln_engine::attest::{read_collateral, read_evidence, verify_evidence, TrustRoot};
    let evidence = read_evidence(evidence).map_err(|e| format!("evidence: {e}"))?;
    let collateral = read_collateral(collateral).map_err(|e| format!("collateral: {e}"))?;
    verify_evidence(&evidence, &collateral, at, policy, &TrustRoot::Intel, None)
        .map_err(|e| e.to_string())
}

/// Whether a user-typed hex value equals a computed one (spaces, `0x` and case ignored).
pub fn hex_matches(expected: &str, actual_hex: &str) -> bool {
    let e: String = expected
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    e.eq_ignore_ascii_case(actual_hex)
}

/// A PEM private key read by the engine (RSA-3072, e = 3 or refused).
pub struct PemKey {
    /// The signer (the private key in memory).
    pub signer: PrivateKeySigner,
    /// Its public key.
    pub public: SignerPublicKey,
    /// Its MRSIGNER, hex.
    pub mrsigner: String,
}

impl std::fmt::Debug for PemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemKey")
            .field("mrsigner", &self.mrsigner)
            .finish_non_exhaustive()
    }
}

/// Reads a PEM private key (PKCS#1, PKCS#8 or encrypted PKCS#8 with `passphrase`).
pub fn import_pem(pem: &str, passphrase: Option<&str>) -> Result<PemKey, String> {
    let signer = PrivateKeySigner::from_pem(pem, passphrase.map(str::as_bytes))
        .map_err(|e| e.to_string())?;
    let public = signer.public_key_bytes();
    let mrsigner = mrsigner_from_modulus_be(&public.modulus_be).map_err(|e| e.to_string())?;
    Ok(PemKey {
        signer,
        public,
        mrsigner,
    })
}

/// The DER bytes of a PEM key's unencrypted PKCS#8 form (to seal it for storage or to
/// hand it to WebCrypto). Wiped on drop.
pub fn pkcs8_der(key: &PemKey) -> Result<Zeroizing<Vec<u8>>, String> {
    use base64::Engine as _;
    let pem = key.signer.to_pkcs8_pem().map_err(|e| e.to_string())?;
    let body: Zeroizing<String> = Zeroizing::new(
        pem.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with("-----"))
            .collect(),
    );
    base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "PKCS#8: not base64".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1_SIG: &[u8] = include_bytes!("../../engine/testdata/gramine/t1.sig");
    const T1_MANIFEST: &[u8] = include_bytes!("../../engine/testdata/gramine/t1.manifest.sgx");
    const LIBPAL: &[u8] = include_bytes!("../../engine/testdata/gramine/libpal_test.so");
    const TEST_KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");
    const T1_MRENCLAVE: &str = "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b";

    #[test]
    fn measures_the_t1_vector() {
        let m = measure(T1_MANIFEST, LIBPAL).unwrap();
        assert_eq!(m.mrenclave, T1_MRENCLAVE);
        assert!(hex_matches(
            &format!("  0x{}", T1_MRENCLAVE.to_uppercase()),
            &m.mrenclave
        ));
        assert!(!hex_matches("00", &m.mrenclave));
    }

    #[test]
    fn reads_the_t1_sigstruct() {
        let v = read_sigstruct(T1_SIG).unwrap();
        assert_eq!(v.enclavehash, T1_MRENCLAVE);
        assert!(v.signature_valid && v.q1_q2_valid);
        assert!(read_sigstruct(&T1_SIG[..100]).is_err());
    }

    #[test]
    fn pem_key_mrsigner_matches_the_sigstruct() {
        let k = import_pem(TEST_KEY, None).unwrap();
        let v = read_sigstruct(T1_SIG).unwrap();
        assert_eq!(k.mrsigner, v.mrsigner);
        let der = pkcs8_der(&k).unwrap();
        assert_eq!(der.first(), Some(&0x30));
        assert!(!format!("{k:?}").contains("BEGIN"));
    }

    #[test]
    fn job_events_from_worker_messages() {
        let e = JobEvent::from(WorkerMessage::failed(
            "NotFound",
            "input image: no such tag",
        ));
        assert!(e.is_terminal());
        assert!(matches!(e, JobEvent::Failed { ref error_type, .. } if error_type == "NotFound"));
        let k = KeyChoice::Pem(Zeroizing::new(TEST_KEY.to_string()));
        assert!(!format!("{k:?}").contains("BEGIN"));
        assert!(matches!(k.to_spec(), KeySpec::Pem { .. }));
    }

    #[test]
    fn validation_names_the_field() {
        let req = ConvertRequest {
            input_image_name: "a".into(),
            output_image_name: "b".into(),
            isvsvn: Some(70000),
            ..Default::default()
        };
        let v = validate_request(&req);
        assert_eq!(v.errors.len(), 1);
        assert_eq!(v.errors[0].field, "isvsvn");
    }

    #[test]
    fn attest_reads_the_sample_quote_and_names_bad_inputs() {
        use kiln_engine::attest::AttestPolicy;
        let quote = include_bytes!("../../engine/testdata/attest/sgx_quote");
        let collateral = include_bytes!("../../engine/testdata/attest/sgx_quote_collateral.json");
        let inside = 1_751_328_000;
        let mut policy = AttestPolicy::default();
        let r = attest(quote, collateral, inside, &policy).expect("report");
        assert!(
            !r.passed,
            "ConfigurationAndSWHardeningNeeded is not allowed by default"
        );
        policy
            .allowed_tcb_statuses
            .push("ConfigurationAndSWHardeningNeeded".into());
        let r = attest(quote, collateral, inside, &policy).expect("report");
        assert!(r.passed, "{:?}", r.failures().collect::<Vec<_>>());
        let e = attest(b"nonsense", collateral, inside, &policy).unwrap_err();
        assert!(e.contains("quote"), "{e}");
        assert!(attest(quote, b"{}", inside, &policy)
            .unwrap_err()
            .starts_with("collateral: "));
    }
}
