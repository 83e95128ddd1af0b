//! The offline two-step conversion at the edge (wasm only):
//! `POST /convert-image/prepare` and `POST /convert-image/complete`.
//!
//! prepare: the body is a convert-image request without `signingKey`; the answer holds
//! the two 256-byte payloads to sign (base64 and hex), both MRENCLAVEs and a token
//! ([`crate::token`], HMAC-SHA256 with the secret `KILN_TWO_STEP_SECRET`, 1 h).
//! complete: `{token, signatures: {sgx1, edmm}, publicKey | modulus, inputAuthConfig?,
//! outputAuthConfig?, authConfig?}`; the worker checks the token, rebuilds the same
//! SIGSTRUCT bodies, verifies both signatures and pushes: the standard convert response.

use base64::Engine as _;
use kiln_engine::api::{AuthConfig, ConvertRequest};
use kiln_engine::pipeline::{self, ExternalSignatures, PipelineEnv, PreparedState};
use kiln_engine::sgx::signer::SignerPublicKey;
use serde::Deserialize;
use serde_json::json;

use crate::body::parse_json;

use crate::api::check_request;
use crate::auth::Caller;
use crate::config::Config;
use crate::error::{ApiError, ErrorType};
use crate::token::{self, TokenError, MIN_SECRET_LEN, TOKEN_TTL_SECS};

/// The secret binding that authenticates tokens.
pub const SECRET_BINDING: &str = "KILN_TWO_STEP_SECRET";

/// Bytes of an RSA-3072 modulus or signature.
const RSA_BYTES: usize = 384;

fn bad_request(reason: impl Into<String>) -> ApiError {
    ApiError::bad_request(reason)
}

fn config_error(reason: impl Into<String>) -> ApiError {
    ApiError::new(ErrorType::ConfigurationError, reason)
}

fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

fn secret(env: &worker::Env) -> Result<Vec<u8>, ApiError> {
    let s = env
        .secret(SECRET_BINDING)
        .map(|s| s.to_string())
        .or_else(|_| env.var(SECRET_BINDING).map(|s| s.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            config_error(format!(
                "the offline two-step needs the secret {SECRET_BINDING}, which this worker \
                 does not have"
            ))
        })?;
    if s.len() < MIN_SECRET_LEN {
        return Err(config_error(format!(
            "{SECRET_BINDING} is shorter than {MIN_SECRET_LEN} bytes"
        )));
    }
    Ok(s.into_bytes())
}

/// The request checked, and the worker's engine environment ([`crate::api::engine_env`];
/// no signer: the caller signs).
fn engine_env(
    cfg: &Config,
    caller: &Caller,
    request: &ConvertRequest,
) -> Result<PipelineEnv, ApiError> {
    check_request(cfg, caller, request)?;
    crate::api::engine_env(cfg)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// `POST /convert-image/prepare`.
pub async fn prepare(
    cfg: &Config,
    env: &worker::Env,
    caller: &Caller,
    body: &[u8],
) -> Result<String, ApiError> {
    let secret = secret(env)?;
    let request: ConvertRequest = parse_json(body)?;
    let penv = engine_env(cfg, caller, &request)?;
    let p = pipeline::prepare(request, &penv).await?;
    let state = serde_json::to_value(&p.state).map_err(internal)?;
    let (token, exp) = token::seal(&secret, &state, now(), TOKEN_TTL_SECS);
    let b64 = base64::engine::general_purpose::STANDARD;
    let out = json!({
        "token": token,
        "expiresAt": exp,
        "mrenclave": p.state.mrenclave,
        "mrenclave2": p.state.mrenclave2,
        "payloads": {"sgx1": b64.encode(p.sgx1_payload), "edmm": b64.encode(p.edmm_payload)},
        "payloadsHex": {"sgx1": hex::encode(p.sgx1_payload), "edmm": hex::encode(p.edmm_payload)},
        "signatureScheme": "RSASSA-PKCS1-v1_5 with SHA-256, RSA-3072, public exponent 3",
    });
    Ok(out.to_string())
}

/// `signatures` of a complete request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Signatures {
    sgx1: String,
    edmm: String,
}

/// A complete request. Parsed by [`crate::body::parse_json`]: errors name the field, never
/// quote a value (the auth fields hold passwords).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CompleteBody {
    token: String,
    signatures: Signatures,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    modulus: Option<String>,
    #[serde(default)]
    input_auth_config: Option<AuthConfig>,
    #[serde(default)]
    output_auth_config: Option<AuthConfig>,
    #[serde(default)]
    auth_config: Option<AuthConfig>,
}

fn public_key(b: &CompleteBody) -> Result<SignerPublicKey, ApiError> {
    match (&b.public_key, &b.modulus) {
        (Some(pem), None) => kiln_engine::sgx::pem_key::load_public_key_pem(pem)
            .map(|k| SignerPublicKey::from(&k))
            .map_err(|e| bad_request(format!("publicKey: {e}"))),
        (None, Some(m)) => Ok(SignerPublicKey {
            modulus_be: token::decode_bytes("modulus", m, RSA_BYTES).map_err(bad_request)?,
            exponent_be: vec![3],
        }),
        _ => Err(bad_request(
            "publicKey or modulus: give exactly one (PEM public key, or the big-endian \
             modulus in hex or base64 with e = 3)",
        )),
    }
}

fn token_error(e: TokenError) -> ApiError {
    match e {
        TokenError::Malformed(_) => {
            ApiError::new(ErrorType::InvalidToken, e.to_string()).with_status(400)
        }
        TokenError::Forged => ApiError::new(ErrorType::InvalidToken, e.to_string()),
        TokenError::Expired { .. } => ApiError::new(ErrorType::TokenExpired, e.to_string()),
    }
}

/// `POST /convert-image/complete`.
pub async fn complete(
    cfg: &Config,
    env: &worker::Env,
    caller: &Caller,
    body: &[u8],
) -> Result<String, ApiError> {
    let secret = secret(env)?;
    let mut b: CompleteBody = parse_json(body)?;
    let (input_auth, output_auth, auth) = (
        b.input_auth_config.take(),
        b.output_auth_config.take(),
        b.auth_config.take(),
    );
    let state = token::open(&secret, &b.token, now()).map_err(token_error)?;
    let state: PreparedState = serde_json::from_value(state).map_err(|e| {
        ApiError::new(ErrorType::InvalidToken, format!("token: state: {e}")).with_status(400)
    })?;
    let sigs = ExternalSignatures {
        public_key: public_key(&b)?,
        sgx1: token::decode_bytes("signatures.sgx1", &b.signatures.sgx1, RSA_BYTES)
            .map_err(bad_request)?,
        edmm: token::decode_bytes("signatures.edmm", &b.signatures.edmm, RSA_BYTES)
            .map_err(bad_request)?,
    };
    let request = ConvertRequest {
        input_auth_config: input_auth,
        output_auth_config: output_auth,
        auth_config: auth,
        ..state.request.clone()
    };
    let penv = engine_env(cfg, caller, &request)?;
    let certificates = request.certificates.clone();
    let mut out = pipeline::complete(request, &state, &sigs, &penv).await?;
    // Recorded as a pending approval like /convert-image (a failure is a warning).
    let warnings =
        crate::approvals::record_conversion(env, &out.response, certificates.as_deref()).await;
    out.response.warnings.extend(warnings);
    serde_json::to_string(&out.response).map_err(internal)
}
