//! `signingKey.sdkms`: signing SIGSTRUCTs with a key held in Fortanix DSM (formerly
//! SDKMS), over its REST API (docs: /work/shared/spec/kms.md):
//!
//! 1. `POST {base}/sys/v1/session/auth` with `Authorization: Basic <apiKey>` gives a
//!    bearer `access_token` (cached per signer; re-fetched once if it expires);
//! 2. `POST {base}/crypto/v1/keys/info` `{"name": ...}` gives the key's public part
//!    (`pub_key`, base64 DER), which must be RSA-3072 with e = 3;
//! 3. `POST {base}/crypto/v1/sign` with the SHA-256 of the payload, PKCS#1 v1.5, gives
//!    the signature, which is verified against that public key before it is returned;
//! 4. [`SdkmsSigner::terminate`] ends the session (`POST {base}/sys/v1/session/terminate`).
//!
//! Errors are [`ApiError`]s that name the request field,
//! the call and the HTTP status: a refused API key is 401 `Unauthorized`
//! (`signingKey.sdkms.apiKey`), an unknown key 400 `BadRequest`
//! (`signingKey.sdkms.name`), a key the API key may not use 403 `Forbidden`, a key that
//! cannot sign enclaves 400, DSM unreachable, failing or timing out 502 `SignerError`.
//! The signer hands them to the pipeline as [`SignError::Remote`] ([`remote`]). The API
//! key and the session token appear in no error, log or `Debug` output.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::api::{ApiError, ErrorType};
use crate::image::transport::{Method, Request, Transport};
use crate::pipeline::env::SdkmsSignerFactory;
use crate::sgx::rsa3072;
use crate::sgx::signer::{RemoteFailure, RemoteSignError, SignError, Signer, SignerPublicKey};
use crate::sgx::sigstruct::SIGNED_PAYLOAD_SIZE;

/// The largest DSM response body read (key info with a certificate chain fits easily).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// How much of a DSM error body is quoted in an error reason.
const MAX_DETAIL_CHARS: usize = 200;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a DSM base URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdkmsConfigError {
    /// The URL is not `http://host[:port][/path]` or `https://...`.
    #[error("the Fortanix DSM URL {url:?} must be http(s)://host[:port][/path], without query")]
    BadUrl {
        /// The URL as given.
        url: String,
    },
}

/// One DSM call, for error reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Auth,
    KeyInfo,
    Sign,
    Terminate,
}

impl Call {
    fn path(self) -> &'static str {
        match self {
            Call::Auth => "/sys/v1/session/auth",
            Call::KeyInfo => "/crypto/v1/keys/info",
            Call::Sign => "/crypto/v1/sign",
            Call::Terminate => "/sys/v1/session/terminate",
        }
    }
}

/// Builds [`SdkmsSigner`]s for the pipeline ([`SdkmsSignerFactory`]): one DSM
/// deployment, reached through the host's [`Transport`].
pub struct SdkmsFactory {
    transport: Arc<dyn Transport>,
    base_url: String,
}

impl std::fmt::Debug for SdkmsFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkmsFactory")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SdkmsFactory {
    /// A factory for the DSM at `base_url` (e.g. `https://api.amer.smartkey.io`; a
    /// trailing `/` is dropped).
    pub fn new(transport: Arc<dyn Transport>, base_url: &str) -> Result<Self, SdkmsConfigError> {
        Ok(SdkmsFactory {
            transport,
            base_url: normalize_base_url(base_url)?,
        })
    }

    /// The DSM base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

impl SdkmsSignerFactory for SdkmsFactory {
    fn signer(&self, name: &str, api_key: &str) -> Result<Arc<dyn Signer>, ApiError> {
        Ok(Arc::new(SdkmsSigner::new(
            self.transport.clone(),
            &self.base_url,
            name,
            api_key,
        )))
    }
}

/// Checks and normalises a DSM base URL: `http(s)://` and a host, no query or fragment,
/// no trailing `/`.
fn normalize_base_url(url: &str) -> Result<String, SdkmsConfigError> {
    let bad = || SdkmsConfigError::BadUrl {
        url: url.to_string(),
    };
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || rest.contains(['?', '#'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    Ok(trimmed.to_string())
}

/// A [`Signer`] for one key held in Fortanix DSM, authenticated with an API key.
///
/// The session token and the key's public part are cached for the signer's life; the
/// pipeline uses one signer per conversion (it signs the SGX1 and the EDMM enclave).
pub struct SdkmsSigner {
    transport: Arc<dyn Transport>,
    base_url: String,
    key_name: String,
    api_key: Zeroizing<String>,
    session: Mutex<Option<Zeroizing<String>>>,
    public_key: Mutex<Option<SignerPublicKey>>,
}

impl std::fmt::Debug for SdkmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the API key or the session token.
        f.debug_struct("SdkmsSigner")
            .field("base_url", &self.base_url)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

/// `POST /sys/v1/session/auth`'s answer (only what is used).
#[derive(Deserialize)]
struct AuthResponse {
    access_token: String,
}

/// `POST /crypto/v1/keys/info`'s answer, a security object (only what is used).
#[derive(Deserialize)]
struct KeyInfo {
    #[serde(default)]
    obj_type: Option<String>,
    #[serde(default)]
    pub_key: Option<String>,
}

/// `POST /crypto/v1/sign`'s answer.
#[derive(Deserialize)]
struct SignResponse {
    signature: String,
}

impl SdkmsSigner {
    /// A signer for the key `key_name` at the DSM `base_url` (already normalised, as
    /// [`SdkmsFactory`] does), authenticated with `api_key` (the base64 credential DSM
    /// issues). Nothing is sent until the key is used.
    pub fn new(
        transport: Arc<dyn Transport>,
        base_url: &str,
        key_name: &str,
        api_key: &str,
    ) -> Self {
        SdkmsSigner {
            transport,
            base_url: base_url.trim_end_matches('/').to_string(),
            key_name: key_name.to_string(),
            api_key: Zeroizing::new(api_key.trim().to_string()),
            session: Mutex::new(None),
            public_key: Mutex::new(None),
        }
    }

    /// The key's name in DSM.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Ends the DSM session, if one is open (`POST /sys/v1/session/terminate`). Without
    /// it the session simply expires on DSM's side.
    pub async fn terminate(&self) -> Result<(), ApiError> {
        let token = self.session.lock().ok().and_then(|mut s| s.take());
        let Some(token) = token else {
            return Ok(());
        };
        let (status, body) = self.send(Call::Terminate, Some(&token), None).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(self.status_error(Call::Terminate, status, &body))
        }
    }

    fn url(&self, call: Call) -> String {
        format!("{}{}", self.base_url, call.path())
    }

    /// Sends one call; transport failures become 502/504 errors.
    async fn send(
        &self,
        call: Call,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        let mut req =
            Request::new(Method::Post, self.url(call)).header("Accept", "application/json");
        req = match bearer {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req.header("Authorization", format!("Basic {}", self.api_key.as_str())),
        };
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string().into_bytes());
        }
        let response = self
            .transport
            .send(req)
            .await
            .map_err(|e| self.unreachable(call, &e.to_string()))?;
        let status = response.status;
        let bytes = response
            .bytes_limited(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| self.unreachable(call, &e.to_string()))?;
        Ok((status, bytes))
    }

    fn unreachable(&self, call: Call, what: &str) -> ApiError {
        ApiError::new(
            ErrorType::SignerError,
            self.scrub(format!(
                "signingKey.sdkms: Fortanix DSM at {} could not be reached (POST {}): {what}",
                self.base_url,
                call.path()
            )),
        )
    }

    /// Removes the API key and the session token from a text (belt and braces: nothing
    /// formats them, but a server or transport message might echo them).
    fn scrub(&self, text: String) -> String {
        let mut out = text;
        let mut secrets: Vec<Zeroizing<String>> = vec![self.api_key.clone()];
        if let Some(Some(t)) = self.session.lock().ok().map(|s| s.clone()) {
            secrets.push(t);
        }
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }

    /// A short, printable excerpt of a DSM error body (`: excerpt`), or nothing.
    fn detail(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(body);
        let text: String = text
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_DETAIL_CHARS)
            .collect();
        if text.is_empty() {
            String::new()
        } else {
            self.scrub(format!(": {text}"))
        }
    }

    /// The error for a non-2xx answer to `call`.
    fn status_error(&self, call: Call, status: u16, body: &[u8]) -> ApiError {
        let at = format!("POST {}: HTTP {status}{}", call.path(), self.detail(body));
        let name = &self.key_name;
        match (status, call) {
            (400 | 401 | 403, Call::Auth) | (401, _) => ApiError::new(
                ErrorType::Unauthorized,
                format!("signingKey.sdkms.apiKey: Fortanix DSM refused the API key ({at})"),
            ),
            (403, _) => ApiError::new(
                ErrorType::Forbidden,
                format!("signingKey.sdkms: Fortanix DSM denies this API key the use of key {name:?} ({at})"),
            ),
            (400 | 404, Call::KeyInfo | Call::Sign) => ApiError::bad_request(format!(
                "signingKey.sdkms.name: Fortanix DSM has no key {name:?} usable for RSA signing with this API key ({at})"
            )),
            (408 | 504, _) => ApiError::new(
                ErrorType::SignerError,
                format!("signingKey.sdkms: Fortanix DSM at {} timed out ({at})", self.base_url),
            ),
            _ => self.upstream(format!("Fortanix DSM at {} failed ({at})", self.base_url)),
        }
    }

    fn upstream(&self, what: String) -> ApiError {
        ApiError::new(
            ErrorType::SignerError,
            self.scrub(format!("signingKey.sdkms: {what}")),
        )
    }

    /// Opens a session: the bearer token.
    async fn authenticate(&self) -> Result<Zeroizing<String>, ApiError> {
        let (status, body) = self.send(Call::Auth, None, None).await?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(Call::Auth, status, &body));
        }
        let body = Zeroizing::new(body);
        let auth: AuthResponse = serde_json::from_slice(&body).map_err(|e| {
            self.upstream(format!(
                "unreadable answer to POST {}: {e}",
                Call::Auth.path()
            ))
        })?;
        let token = Zeroizing::new(auth.access_token);
        if token.trim().is_empty() {
            return Err(self.upstream(format!(
                "POST {} returned an empty access_token",
                Call::Auth.path()
            )));
        }
        if let Ok(mut s) = self.session.lock() {
            *s = Some(token.clone());
        }
        Ok(token)
    }

    /// An authenticated call with a JSON body: uses the cached session, or opens one; a
    /// cached session refused with 401 (expired) is replaced once.
    async fn call(&self, call: Call, body: &Value) -> Result<Vec<u8>, ApiError> {
        let cached = self.session.lock().ok().and_then(|s| s.clone());
        let (token, fresh) = match cached {
            Some(t) => (t, false),
            None => (self.authenticate().await?, true),
        };
        let (status, bytes) = self.send(call, Some(&token), Some(body)).await?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        if status != 401 || fresh {
            return Err(self.status_error(call, status, &bytes));
        }
        let token = self.authenticate().await?;
        let (status, bytes) = self.send(call, Some(&token), Some(body)).await?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(self.status_error(call, status, &bytes))
        }
    }

    /// Fetches (once) and checks the key's public part.
    async fn fetch_public_key(&self) -> Result<SignerPublicKey, ApiError> {
        if let Some(k) = self.public_key.lock().ok().and_then(|k| k.clone()) {
            return Ok(k);
        }
        let bytes = self
            .call(Call::KeyInfo, &json!({ "name": self.key_name }))
            .await?;
        let info: KeyInfo = serde_json::from_slice(&bytes).map_err(|e| {
            self.upstream(format!(
                "unreadable answer to POST {}: {e}",
                Call::KeyInfo.path()
            ))
        })?;
        let key = parse_key_info(&self.key_name, &info)?;
        if let Ok(mut k) = self.public_key.lock() {
            *k = Some(key.clone());
        }
        Ok(key)
    }

    /// Has DSM sign the SHA-256 of `payload` and verifies the signature.
    async fn sign(&self, payload: &[u8; SIGNED_PAYLOAD_SIZE]) -> Result<Vec<u8>, ApiError> {
        let public = self.fetch_public_key().await?;
        let key = sgx_key(&self.key_name, &public)?;
        let digest = Sha256::digest(payload);
        let request = json!({
            "key": { "name": self.key_name },
            "hash_alg": "SHA256",
            "hash": B64.encode(digest),
            "mode": { "PKCS1_V15": {} },
        });
        let bytes = self.call(Call::Sign, &request).await?;
        let answer: SignResponse = serde_json::from_slice(&bytes).map_err(|e| {
            self.upstream(format!(
                "unreadable answer to POST {}: {e}",
                Call::Sign.path()
            ))
        })?;
        let signature = B64.decode(answer.signature.trim()).map_err(|e| {
            self.upstream(format!(
                "the signature from POST {} is not base64: {e}",
                Call::Sign.path()
            ))
        })?;
        rsa3072::verify_sha256(&key, payload, &signature).map_err(|e| {
            self.upstream(format!(
                "the signature made with key {:?} does not verify against its public key: {e}",
                self.key_name
            ))
        })?;
        Ok(signature)
    }
}

/// The key's public part from a DSM security object: `pub_key` is base64 DER, a
/// SubjectPublicKeyInfo (a bare PKCS#1 RSAPublicKey is accepted too). Refuses anything
/// but RSA-3072 with e = 3, naming the key.
fn parse_key_info(name: &str, info: &KeyInfo) -> Result<SignerPublicKey, ApiError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    if let Some(t) = info.obj_type.as_deref() {
        if !t.eq_ignore_ascii_case("RSA") {
            return Err(ApiError::bad_request(format!(
                "signingKey.sdkms.name: key {name:?} is a {t} key; SGX needs an RSA-3072 key with public exponent 3"
            )));
        }
    }
    let bad = |why: String| {
        ApiError::new(
            ErrorType::SignerError,
            format!("signingKey.sdkms: Fortanix DSM's pub_key of key {name:?} {why}"),
        )
    };
    let b64 = info
        .pub_key
        .as_deref()
        .ok_or_else(|| bad("is missing".into()))?;
    let der = B64
        .decode(b64.trim())
        .map_err(|e| bad(format!("is not base64: {e}")))?;
    let key = rsa::PublicKey::from_public_key_der(&der)
        .or_else(|_| rsa::PublicKey::from_pkcs1_der(&der))
        .map_err(|e| bad(format!("is not a DER RSA public key: {e}")))?;
    let public = SignerPublicKey::from(&key);
    sgx_key(name, &public)?;
    Ok(public)
}

/// A DSM failure as the signer reports it to the pipeline.
pub fn remote(e: ApiError) -> SignError {
    let kind = match e.error_type {
        ErrorType::BadRequest | ErrorType::NotFound => RemoteFailure::Request,
        ErrorType::Unauthorized => RemoteFailure::Unauthorized,
        ErrorType::Forbidden => RemoteFailure::Forbidden,
        _ => RemoteFailure::Unavailable,
    };
    SignError::Remote(RemoteSignError {
        kind,
        reason: e.reason,
    })
}

/// Checks (n, e) is an SGX signing key, naming the DSM key if not.
fn sgx_key(name: &str, key: &SignerPublicKey) -> Result<rsa::PublicKey, ApiError> {
    rsa3072::sgx_public_key(&key.modulus_be, &key.exponent_be).map_err(|e| {
        ApiError::bad_request(format!(
            "signingKey.sdkms.name: key {name:?} in Fortanix DSM cannot sign SGX enclaves: {e}"
        ))
    })
}

#[kiln_macros::async_trait]
impl Signer for SdkmsSigner {
    async fn public_key(&self) -> Result<SignerPublicKey, SignError> {
        self.fetch_public_key().await.map_err(remote)
    }

    async fn sign_payload(
        &self,
        payload: &[u8; SIGNED_PAYLOAD_SIZE],
    ) -> Result<Vec<u8>, SignError> {
        self.sign(payload).await.map_err(remote)
    }

    /// Ends the DSM session (`/sys/v1/session/terminate`); a failure only means the
    /// session expires on DSM's side.
    async fn finish(&self) {
        let _ = self.terminate().await;
    }
}

#[cfg(test)]
#[path = "sdkms_tests.rs"]
mod tests;
