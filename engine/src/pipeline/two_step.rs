//! The offline two-step conversion, for callers that keep their signing key to
//! themselves.
//!
//! 1. [`prepare`] runs the pipeline up to the two unsigned SIGSTRUCT bodies (SGX1 and
//!    EDMM) and returns their 256-byte signed payloads with a [`PreparedState`]: the
//!    request without credentials, the input and runtime manifest digests, the build time
//!    (the SIGSTRUCT date) and both MRENCLAVEs. Input layers may already be copied to the
//!    output repository; no manifest and no tag is pushed.
//! 2. The caller signs both payloads (RSASSA-PKCS#1 v1.5, SHA-256, RSA-3072, e = 3).
//! 3. [`complete`] runs the same pipeline again with the input and runtime pinned to the
//!    prepared digests and the prepared build time, so it rebuilds exactly the same
//!    bodies, verifies each signature over its body ([`crate::sgx::signer::complete`]),
//!    and only then builds and pushes the image as [`super::convert`] does (tag last).
//!
//! The state is plain data (serde, camelCase); the host keeps it (the worker puts it in an
//! authenticated token). It holds no credential: [`complete`] takes the request's auth
//! fields again.

use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ConvertRequest};
use crate::image::reference::Digest;
use crate::sgx::signer::{self, SignError, SignerPublicKey};
use crate::sgx::sigstruct::{Sigstruct, SigstructBody, SIGNED_PAYLOAD_SIZE};

use super::config::BuildTime;
use super::env::PipelineEnv;
use super::resolve::Endpoints;
use super::ConvertOutcome;

/// Version of [`PreparedState`]'s layout.
pub const STATE_VERSION: u32 = 1;

/// What [`prepare`] pins for [`complete`]. Holds no credential and no signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreparedState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The request without `inputAuthConfig`, `outputAuthConfig`, `authConfig` and
    /// `signingKey`.
    pub request: ConvertRequest,
    /// The input manifest digest `prepare` resolved (complete resolves exactly this).
    pub input_digest: String,
    /// The runtime image reference of the host that prepared.
    pub runtime_image: String,
    /// The runtime manifest digest `prepare` read.
    pub runtime_digest: String,
    /// The MANAGER_CA manager URL `prepare` measured into `init.json`
    /// ([`super::PipelineEnv::manager_url`]); complete must use the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_url: Option<String>,
    /// The build time (seconds since the epoch): mtimes and the SIGSTRUCT date.
    pub build_time: u64,
    /// SGX1 MRENCLAVE (hex).
    pub mrenclave: String,
    /// EDMM MRENCLAVE (hex).
    pub mrenclave2: String,
}

/// The result of [`prepare`]: the payloads to sign and the state to hand to [`complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The SGX1 SIGSTRUCT's signed payload.
    pub sgx1_payload: [u8; SIGNED_PAYLOAD_SIZE],
    /// The EDMM SIGSTRUCT's signed payload.
    pub edmm_payload: [u8; SIGNED_PAYLOAD_SIZE],
    /// What [`complete`] needs.
    pub state: PreparedState,
}

/// The signatures made elsewhere, with the key that made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalSignatures {
    /// The signer's public key (RSA-3072, e = 3).
    pub public_key: SignerPublicKey,
    /// Signature over the SGX1 payload, big-endian (384 bytes).
    pub sgx1: Vec<u8>,
    /// Signature over the EDMM payload, big-endian (384 bytes).
    pub edmm: Vec<u8>,
}

/// The request as [`PreparedState`] keeps it: no credentials, no signing key.
pub fn without_secrets(request: &ConvertRequest) -> ConvertRequest {
    ConvertRequest {
        input_auth_config: None,
        output_auth_config: None,
        auth_config: None,
        signing_key: None,
        ..request.clone()
    }
}

/// How [`super::run`] signs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode<'a> {
    /// A whole conversion with the request's signer.
    Convert,
    /// Stop at the SIGSTRUCT bodies.
    Prepare,
    /// Pinned to a prepared state, signed with external signatures.
    Complete {
        /// The prepared state.
        state: &'a PreparedState,
        /// The signatures.
        sigs: &'a ExternalSignatures,
    },
}

/// What [`super::run`] returns.
pub(crate) enum Ran {
    /// A finished conversion.
    Converted(Box<ConvertOutcome>),
    /// Stopped after the bodies ([`Mode::Prepare`]).
    Prepared(Box<Prepared>),
}

/// What the two-step modes sign: the bodies and what pins them.
pub(crate) struct Facts<'a> {
    pub request: &'a ConvertRequest,
    pub input_digest: String,
    pub runtime_digest: String,
    pub time: BuildTime,
    pub sgx1: SigstructBody,
    pub edmm: SigstructBody,
}

/// The outcome of the signing step in a two-step mode.
pub(crate) enum Signed {
    /// Stop here and hand back the payloads.
    Prepared(Box<Prepared>),
    /// Both SIGSTRUCTs, verified.
    Sigstructs(Box<Sigstruct>, Box<Sigstruct>),
}

fn digest(what: &str, d: &str) -> Result<Digest, ApiError> {
    Digest::parse(d).map_err(|e| ApiError::bad_request(format!("token: {what}: {e}")))
}

impl Mode<'_> {
    /// In complete mode: resolve the input and runtime by the prepared digests.
    pub(crate) fn pin(&self, ends: &mut Endpoints) -> Result<(), ApiError> {
        if let Mode::Complete { state, .. } = self {
            ends.input.reference = ends
                .input
                .reference
                .with_digest(digest("input digest", &state.input_digest)?);
            ends.runtime.reference = ends
                .runtime
                .reference
                .with_digest(digest("runtime digest", &state.runtime_digest)?);
        }
        Ok(())
    }

    /// The build time: the prepared one in complete mode.
    pub(crate) fn build_time(&self, chosen: BuildTime) -> BuildTime {
        match self {
            Mode::Complete { state, .. } => BuildTime {
                unix: state.build_time,
            },
            _ => chosen,
        }
    }

    /// The signing step of the two-step modes.
    pub(crate) fn sign(&self, f: Facts<'_>) -> Result<Signed, ApiError> {
        let (mr1, mr2) = (
            hex::encode(f.sgx1.enclavehash),
            hex::encode(f.edmm.enclavehash),
        );
        match self {
            Mode::Convert => Err(ApiError::internal("convert has a signer")),
            Mode::Prepare => Ok(Signed::Prepared(Box::new(Prepared {
                sgx1_payload: signer::prepare(&f.sgx1),
                edmm_payload: signer::prepare(&f.edmm),
                state: PreparedState {
                    version: STATE_VERSION,
                    request: without_secrets(f.request),
                    input_digest: f.input_digest,
                    runtime_image: String::new(),
                    runtime_digest: f.runtime_digest,
                    manager_url: None,
                    build_time: f.time.unix,
                    mrenclave: mr1,
                    mrenclave2: mr2,
                },
            }))),
            Mode::Complete { state, sigs } => {
                if mr1 != state.mrenclave || mr2 != state.mrenclave2 {
                    return Err(ApiError::bad_request(format!(
                        "token: this kiln now builds enclaves {mr1} / {mr2}, not the prepared \
                         {} / {}; prepare again",
                        state.mrenclave, state.mrenclave2
                    )));
                }
                let one = |body: SigstructBody, sig: &[u8], field: &str, what: &str| {
                    signer::complete(body, &sigs.public_key, sig).map_err(|e| match e {
                        SignError::Key(k) => ApiError::bad_request(format!("publicKey: {k}")),
                        other => ApiError::bad_request(format!(
                            "{field}: {other}: it does not verify over the prepared {what} \
                             payload with publicKey"
                        )),
                    })
                };
                let s1 = one(f.sgx1, &sigs.sgx1, "signatures.sgx1", "SGX1")?;
                let s2 = one(f.edmm, &sigs.edmm, "signatures.edmm", "EDMM")?;
                Ok(Signed::Sigstructs(Box::new(s1), Box::new(s2)))
            }
        }
    }
}

/// Offline step 1: runs the conversion up to the two SIGSTRUCT bodies and returns their
/// payloads and the state [`complete`] needs. The request must not name a `signingKey`
/// (the caller signs). No manifest or tag is pushed (input layers may be copied).
pub async fn prepare(request: ConvertRequest, env: &PipelineEnv) -> Result<Prepared, ApiError> {
    if request.signing_key.is_some() {
        return Err(ApiError::bad_request(
            "signingKey: the two-step conversion is signed by the caller; omit signingKey",
        ));
    }
    match super::run(request, env, Mode::Prepare).await? {
        Ran::Prepared(mut p) => {
            p.state.runtime_image = env.runtime_image.clone();
            p.state.manager_url = env.manager_url.clone();
            Ok(*p)
        }
        Ran::Converted(_) => Err(ApiError::internal("prepare ran to the end")),
    }
}

/// Offline step 2: `request` is the prepared request (`state.request`) with its auth
/// fields given again. Rebuilds the same bodies (input and runtime pinned to the
/// prepared digests, same build time), verifies both signatures (a 400 names the one
/// that does not verify), then builds and pushes the image as [`super::convert`] does.
pub async fn complete(
    request: ConvertRequest,
    state: &PreparedState,
    sigs: &ExternalSignatures,
    env: &PipelineEnv,
) -> Result<ConvertOutcome, ApiError> {
    if state.version != STATE_VERSION {
        return Err(ApiError::bad_request(format!(
            "token: state version {} is not {STATE_VERSION}; prepare again",
            state.version
        )));
    }
    if without_secrets(&request) != state.request {
        return Err(ApiError::bad_request(
            "request: differs from the prepared request (only the auth fields are given again)",
        ));
    }
    if env.runtime_image != state.runtime_image {
        return Err(ApiError::bad_request(format!(
            "token: prepared with runtime image {}, this kiln uses {}; prepare again",
            state.runtime_image, env.runtime_image
        )));
    }
    if env.manager_url != state.manager_url {
        let show = |u: &Option<String>| u.clone().unwrap_or_else(|| "none".into());
        return Err(ApiError::bad_request(format!(
            "token: prepared with MANAGER_CA manager URL {}, this kiln uses {} (it is measured \
             into the enclave); give both steps the same manager URL (`--manager-url`, \
             `KILN_MANAGER_URL`)",
            show(&state.manager_url),
            show(&env.manager_url)
        )));
    }
    match super::run(request, env, Mode::Complete { state, sigs }).await? {
        Ran::Converted(o) => Ok(*o),
        Ran::Prepared(_) => Err(ApiError::internal("complete stopped before signing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AuthConfig, SigningKey};

    #[test]
    fn state_has_no_secrets() {
        let r = ConvertRequest {
            input_image_name: "a/b:1".into(),
            output_image_name: "c/d:1".into(),
            auth_config: Some(AuthConfig {
                username: "u".into(),
                password: Some("pw-secret".into()),
            }),
            signing_key: Some(SigningKey::default()),
            threads: Some(8),
            ..Default::default()
        };
        let s = without_secrets(&r);
        assert_eq!(s.threads, Some(8));
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("pw-secret") && !json.contains("signingKey"),
            "{json}"
        );
    }

    #[test]
    fn state_round_trips_camel_case() {
        let st = PreparedState {
            version: STATE_VERSION,
            request: ConvertRequest {
                input_image_name: "a/b:1".into(),
                output_image_name: "c/d:1".into(),
                ..Default::default()
            },
            input_digest: format!("sha256:{}", "1".repeat(64)),
            runtime_image: "r/rt:1".into(),
            runtime_digest: format!("sha256:{}", "2".repeat(64)),
            manager_url: Some("https://kiln.example".into()),
            build_time: 86_400,
            mrenclave: "aa".into(),
            mrenclave2: "bb".into(),
        };
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["inputDigest"], st.input_digest);
        assert_eq!(v["request"]["inputImageName"], "a/b:1");
        let back: PreparedState = serde_json::from_value(v).unwrap();
        assert_eq!(back, st);
    }
}
