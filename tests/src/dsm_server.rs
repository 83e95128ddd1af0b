//! A stand-in for Fortanix DSM on 127.0.0.1: exactly the calls kiln's `signingKey.sdkms`
//! signer makes (/work/shared/spec/kms.md), with real RSA keys.
//!
//! - `POST /sys/v1/session/auth` with `Authorization: Basic <apiKey>` → a bearer token;
//! - `POST /crypto/v1/keys/info` `{"name"}` → the key as a security object (`pub_key`:
//!   base64 DER SubjectPublicKeyInfo);
//! - `POST /crypto/v1/sign` `{"key":{"name"},"hash_alg":"SHA256","hash","mode":{"PKCS1_V15":{}}}`
//!   → `{"kid","signature"}`;
//! - `POST /sys/v1/session/terminate` → 204.
//!
//! Keys: [`DsmServer::SGX_KEY`], an RSA-3072 e = 3 key generated at start; and two keys
//! SGX cannot use ([`DsmServer::WRONG_SIZE_KEY`], [`DsmServer::WRONG_EXPONENT_KEY`],
//! from engine/testdata/keys). A wrong API key gets 401 and is recorded; an unknown key
//! name gets 404 `sobject not found`.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use kiln_engine::sgx::signer::{PrivateKeySigner, SignerPublicKey};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

use crate::loopback_http::{read_request, respond_json, HttpRequest, LoopbackServer};
use crate::HarnessError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const RSA2048_E3: &str = include_str!("../../engine/testdata/keys/rsa2048-e3.pem");
const RSA3072_E65537: &str = include_str!("../../engine/testdata/keys/rsa3072-e65537.pem");

/// One call as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsmCall {
    /// The request path, e.g. `/crypto/v1/sign`.
    pub path: String,
    /// The status answered.
    pub status: u16,
}

struct Shared {
    api_key: String,
    keys: HashMap<String, rsa::PrivateKey>,
    sessions: Mutex<Vec<String>>,
    calls: Mutex<Vec<DsmCall>>,
    bad_credentials: AtomicBool,
}

/// A running stand-in DSM on 127.0.0.1; stopped on drop.
pub struct DsmServer {
    server: LoopbackServer,
    shared: Arc<Shared>,
    sgx_public: SignerPublicKey,
}

impl DsmServer {
    /// The RSA-3072, e = 3 key generated at start.
    pub const SGX_KEY: &'static str = "kiln-sgx";
    /// An RSA-2048 key (e = 3).
    pub const WRONG_SIZE_KEY: &'static str = "rsa2048-e3";
    /// An RSA-3072 key with e = 65537.
    pub const WRONG_EXPONENT_KEY: &'static str = "rsa3072-e65537";
    /// The API key the stand-in accepts (base64 of `app:secret`, as DSM issues them).
    pub const API_KEY: &'static str = "a2lsbi10ZXN0LWFwcDpzdGFuZC1pbi1zZWNyZXQtMGM5ZQ==";

    /// Generates the SGX key (a second or two) and starts serving.
    pub fn start() -> Result<Self, HarnessError> {
        let generated = PrivateKeySigner::generate_with_os_rng()?;
        let pem = generated.to_pkcs8_pem()?;
        let sgx = rsa::PrivateKey::from_pkcs8_pem(&pem)?;
        let sgx_public = generated.public_key_bytes();
        let mut keys = HashMap::new();
        keys.insert(Self::SGX_KEY.to_string(), sgx);
        keys.insert(Self::WRONG_SIZE_KEY.to_string(), read_pem(RSA2048_E3)?);
        keys.insert(
            Self::WRONG_EXPONENT_KEY.to_string(),
            read_pem(RSA3072_E65537)?,
        );
        let shared = Arc::new(Shared {
            api_key: Self::API_KEY.to_string(),
            keys,
            sessions: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            bad_credentials: AtomicBool::new(false),
        });
        let s2 = shared.clone();
        let server = LoopbackServer::start(move |conn| {
            let _ = handle(conn, &s2);
        })?;
        Ok(DsmServer {
            server,
            shared,
            sgx_public,
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The public part of [`Self::SGX_KEY`].
    pub fn sgx_public_key(&self) -> &SignerPublicKey {
        &self.sgx_public
    }

    /// MRSIGNER of [`Self::SGX_KEY`], hex: SHA-256 of the modulus as 384 little-endian bytes.
    pub fn sgx_mrsigner_hex(&self) -> String {
        let mut le = self.sgx_public.modulus_be.clone();
        le.reverse();
        le.resize(384, 0);
        hex::encode(Sha256::digest(&le))
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<DsmCall> {
        self.shared
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// How many signatures were made.
    pub fn signatures(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.path == "/crypto/v1/sign" && c.status == 200)
            .count()
    }

    /// True once any request carried a wrong API key or an unknown session token.
    pub fn saw_bad_credentials(&self) -> bool {
        self.shared.bad_credentials.load(Ordering::SeqCst)
    }
}

fn read_pem(pem: &str) -> Result<rsa::PrivateKey, HarnessError> {
    Ok(rsa::PrivateKey::from_pkcs8_pem(pem).or_else(|_| rsa::PrivateKey::from_pkcs1_pem(pem))?)
}

fn handle(mut conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let Some(req) = read_request(&mut conn, 1 << 20)? else {
        return Ok(());
    };
    let (status, body) = answer(&req, s);
    if let Ok(mut c) = s.calls.lock() {
        c.push(DsmCall {
            path: req.target.clone(),
            status,
        });
    }
    respond_json(&mut conn, status, body.as_bytes())
}

fn answer(req: &HttpRequest, s: &Shared) -> (u16, String) {
    if req.method != "POST" {
        return (405, "\"method not allowed\"".into());
    }
    let auth = req.authorization.as_deref().unwrap_or("");
    if req.target == "/sys/v1/session/auth" {
        if auth.strip_prefix("Basic ") != Some(s.api_key.as_str()) {
            s.bad_credentials.store(true, Ordering::SeqCst);
            return (401, "\"invalid API key\"".into());
        }
        let Ok(mut sessions) = s.sessions.lock() else {
            return (500, "\"poisoned\"".into());
        };
        let token = format!("standin-session-{}-{}", std::process::id(), sessions.len());
        sessions.push(token.clone());
        let body = serde_json::json!({
            "token_type": "Bearer",
            "expires_in": 600,
            "access_token": token,
            "entity_id": "00000000-0000-0000-0000-00000000a991",
        });
        return (200, body.to_string());
    }
    let token = auth.strip_prefix("Bearer ").unwrap_or("");
    let known = s
        .sessions
        .lock()
        .map(|v| !token.is_empty() && v.iter().any(|t| t == token))
        .unwrap_or(false);
    if !known {
        s.bad_credentials.store(true, Ordering::SeqCst);
        return (401, "\"invalid session\"".into());
    }
    let json: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) if req.target == "/sys/v1/session/terminate" => serde_json::Value::Null,
        Err(e) => return (400, format!("\"bad JSON: {e}\"")),
    };
    match req.target.as_str() {
        "/sys/v1/session/terminate" => {
            if let Ok(mut v) = s.sessions.lock() {
                v.retain(|t| t != token);
            }
            (204, String::new())
        }
        "/crypto/v1/keys/info" => {
            let name = json["name"].as_str().unwrap_or("");
            let Some(key) = s.keys.get(name) else {
                return (404, "\"sobject not found\"".into());
            };
            let der = match key.to_public_key().to_public_key_der() {
                Ok(d) => d,
                Err(e) => return (500, format!("\"{e}\"")),
            };
            let body = serde_json::json!({
                "kid": format!("kid-{name}"),
                "name": name,
                "obj_type": "RSA",
                "key_size": key.n_bytes().len() * 8,
                "key_ops": ["SIGN", "VERIFY", "APPMANAGEABLE"],
                "pub_key": B64.encode(der.as_bytes()),
            });
            (200, body.to_string())
        }
        "/crypto/v1/sign" => sign(&json, s),
        _ => (404, "\"no such API\"".into()),
    }
}

fn sign(json: &serde_json::Value, s: &Shared) -> (u16, String) {
    let name = json["key"]["name"].as_str().unwrap_or("");
    let Some(key) = s.keys.get(name) else {
        return (404, "\"sobject not found\"".into());
    };
    if json["hash_alg"] != "SHA256" || json["mode"] != serde_json::json!({"PKCS1_V15": {}}) {
        return (400, "\"only SHA256 with PKCS1_V15 here\"".into());
    }
    let hash = match json["hash"].as_str().map(|h| B64.decode(h)) {
        Some(Ok(h)) if h.len() == 32 => h,
        _ => return (400, "\"hash must be 32 bytes of base64\"".into()),
    };
    match key.sign(rsa::Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &hash) {
        Ok(sig) => (
            200,
            serde_json::json!({"kid": format!("kid-{name}"), "signature": B64.encode(sig)})
                .to_string(),
        ),
        Err(e) => (500, format!("\"{e}\"")),
    }
}
