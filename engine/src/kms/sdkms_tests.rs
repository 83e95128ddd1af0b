//! Unit tests of the DSM signer against an in-memory DSM (a [`Transport`] that answers
//! the four calls with a real RSA key from engine/testdata).

use std::sync::Mutex;

use futures_util::FutureExt;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::Pkcs1v15Sign;

use super::*;
use crate::image::transport::TransportErrorKind;
use crate::image::transport::{Body, Headers, Response, TransportError};
use crate::sgx::signer::{sign, PrivateKeySigner};
use crate::sgx::sigstruct::{Sigstruct, SigstructBody};

const SGX_KEY: &str = include_str!("../../testdata/gramine/test-key.pem");
const RSA2048_E3: &str = include_str!("../../testdata/keys/rsa2048-e3.pem");
const RSA3072_E65537: &str = include_str!("../../testdata/keys/rsa3072-e65537.pem");
const SIG1: &[u8] = include_bytes!("../../testdata/sgxs/sig1.sigstruct.bin");
const API_KEY: &str = "a2lsbi10ZXN0OnN1cGVyLXNlY3JldC1hcGkta2V5";
const NAME: &str = "kiln-sgx";
const BASE: &str = "http://dsm.test";

/// What the in-memory DSM does.
#[derive(Default, Clone, Copy)]
struct Behaviour {
    /// Tokens are refused after this many uses (0: never).
    token_uses: usize,
    /// Corrupt the signature.
    bad_signature: bool,
    /// Report this obj_type.
    obj_type: Option<&'static str>,
    /// Answer every call with this status.
    status: Option<u16>,
    /// Fail with this transport error.
    transport: Option<TransportErrorKind>,
}

struct MockDsm {
    key: rsa::PrivateKey,
    how: Behaviour,
    calls: Mutex<Vec<String>>,
    tokens: Mutex<Vec<(String, usize)>>,
}

impl MockDsm {
    fn new(pem: &str, how: Behaviour) -> Arc<Self> {
        Arc::new(MockDsm {
            key: rsa::PrivateKey::from_pkcs8_pem(pem)
                .or_else(|_| {
                    use rsa::pkcs1::DecodeRsaPrivateKey;
                    rsa::PrivateKey::from_pkcs1_pem(pem)
                })
                .unwrap(),
            how,
            calls: Mutex::new(Vec::new()),
            tokens: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn answer(&self, req: &Request) -> (u16, String) {
        let path = req.url.strip_prefix(BASE).unwrap_or("?").to_string();
        let auth = req.headers.get("authorization").unwrap_or("").to_string();
        self.calls.lock().unwrap().push(path.clone());
        if let Some(s) = self.how.status {
            return (s, format!("failure; you sent {auth}"));
        }
        let body: Value = match &req.body {
            Body::Bytes(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        if path == "/sys/v1/session/auth" {
            if auth != format!("Basic {API_KEY}") {
                return (401, "invalid credentials".into());
            }
            let mut t = self.tokens.lock().unwrap();
            let token = format!("token-{}", t.len());
            t.push((token.clone(), 0));
            return (
                200,
                json!({"token_type": "Bearer", "expires_in": 600, "access_token": token, "entity_id": "e"})
                    .to_string(),
            );
        }
        let token = auth.strip_prefix("Bearer ").unwrap_or("");
        {
            let mut t = self.tokens.lock().unwrap();
            let Some(entry) = t.iter_mut().find(|(k, _)| k == token) else {
                return (401, "no session".into());
            };
            entry.1 += 1;
            if self.how.token_uses > 0 && entry.1 > self.how.token_uses {
                return (401, "session expired".into());
            }
            if path == "/sys/v1/session/terminate" {
                entry.0 = String::new();
                return (204, String::new());
            }
        }
        let name = match path.as_str() {
            "/crypto/v1/keys/info" => body["name"].as_str(),
            _ => body["key"]["name"].as_str(),
        };
        if name != Some(NAME) {
            return (404, "sobject not found".into());
        }
        match path.as_str() {
            "/crypto/v1/keys/info" => {
                let der = self.key.to_public_key().to_public_key_der().unwrap();
                (
                    200,
                    json!({"name": NAME, "kid": "k1", "obj_type": self.how.obj_type.unwrap_or("RSA"),
                           "key_size": 3072, "pub_key": B64.encode(der.as_bytes())})
                    .to_string(),
                )
            }
            "/crypto/v1/sign" => {
                assert_eq!(body["hash_alg"], "SHA256");
                assert_eq!(body["mode"], json!({"PKCS1_V15": {}}));
                let hash = B64.decode(body["hash"].as_str().unwrap()).unwrap();
                assert_eq!(hash.len(), 32);
                let mut sig = self
                    .key
                    .sign(Pkcs1v15Sign::new::<rsa::sha2::Sha256>(), &hash)
                    .unwrap();
                if self.how.bad_signature {
                    sig[10] ^= 1;
                }
                (
                    200,
                    json!({"kid": "k1", "signature": B64.encode(sig)}).to_string(),
                )
            }
            _ => (404, "no such path".into()),
        }
    }
}

#[kiln_macros::async_trait]
impl Transport for MockDsm {
    async fn send(&self, req: Request) -> Result<Response, TransportError> {
        assert_eq!(req.method, Method::Post);
        if let Some(k) = self.how.transport {
            return Err(TransportError::new(k, "connection refused"));
        }
        let (status, body) = self.answer(&req);
        Ok(Response::from_bytes(
            status,
            Headers::new(),
            body.into_bytes(),
        ))
    }
}

fn signer(dsm: &Arc<MockDsm>, name: &str, api_key: &str) -> Arc<dyn Signer> {
    SdkmsFactory::new(dsm.clone(), &format!("{BASE}/"))
        .unwrap()
        .signer(name, api_key)
        .unwrap()
}

fn body() -> SigstructBody {
    Sigstruct::parse(SIG1).unwrap().body
}

fn api_err(r: Result<impl std::fmt::Debug, SignError>) -> ApiError {
    match r {
        Err(e @ SignError::Remote(_)) => {
            let e = crate::pipeline::errors::signing(e, "signingKey", "test");
            assert!(!e.reason.contains(API_KEY), "{e}");
            assert!(!e.reason.contains("super-secret"), "{e}");
            e
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn signs_a_sigstruct_that_verifies_with_the_dsm_key() {
    let dsm = MockDsm::new(SGX_KEY, Behaviour::default());
    let s = signer(&dsm, NAME, API_KEY);
    let local = PrivateKeySigner::from_pem(SGX_KEY, None).unwrap();
    let a = sign(body(), s.as_ref()).now_or_never().unwrap().unwrap();
    let b = local.sign_sigstruct(body()).unwrap();
    // PKCS#1 v1.5 is deterministic: the same SIGSTRUCT, byte for byte.
    assert_eq!(a.to_bytes(), b.to_bytes());
    assert_eq!(a.mrsigner(), b.mrsigner());
    // A second signature reuses the session and the public key.
    sign(body(), s.as_ref()).now_or_never().unwrap().unwrap();
    assert_eq!(
        dsm.calls(),
        [
            "/sys/v1/session/auth",
            "/crypto/v1/keys/info",
            "/crypto/v1/sign",
            "/crypto/v1/sign"
        ]
    );
}

#[test]
fn terminate_ends_the_session() {
    let dsm = MockDsm::new(SGX_KEY, Behaviour::default());
    let s = SdkmsSigner::new(dsm.clone(), BASE, NAME, API_KEY);
    s.terminate().now_or_never().unwrap().unwrap(); // nothing open: no call
    assert!(dsm.calls().is_empty());
    s.public_key().now_or_never().unwrap().unwrap();
    s.terminate().now_or_never().unwrap().unwrap();
    assert_eq!(dsm.calls().last().unwrap(), "/sys/v1/session/terminate");
    // The next use opens a new session.
    s.sign_payload(&[7u8; SIGNED_PAYLOAD_SIZE])
        .now_or_never()
        .unwrap()
        .unwrap();
    assert_eq!(
        dsm.calls()
            .iter()
            .filter(|c| *c == "/sys/v1/session/auth")
            .count(),
        2
    );
}

#[test]
fn an_expired_session_is_renewed_once() {
    let dsm = MockDsm::new(
        SGX_KEY,
        Behaviour {
            token_uses: 1,
            ..Default::default()
        },
    );
    let s = signer(&dsm, NAME, API_KEY);
    sign(body(), s.as_ref()).now_or_never().unwrap().unwrap();
    assert_eq!(
        dsm.calls(),
        [
            "/sys/v1/session/auth",
            "/crypto/v1/keys/info",
            "/crypto/v1/sign",
            "/sys/v1/session/auth",
            "/crypto/v1/sign"
        ]
    );
}

#[test]
fn a_refused_api_key_is_401_without_the_key() {
    let dsm = MockDsm::new(SGX_KEY, Behaviour::default());
    let wrong = "d3Jvbmc6c3VwZXItc2VjcmV0LXdyb25n";
    let s = SdkmsSigner::new(dsm.clone(), BASE, NAME, wrong);
    let e = api_err(s.public_key().now_or_never().unwrap());
    assert_eq!(e.error_type, ErrorType::Unauthorized, "{e}");
    assert!(e.reason.contains("signingKey.sdkms.apiKey"), "{e}");
    assert!(e.reason.contains("HTTP 401"), "{e}");
    assert!(!e.reason.contains(wrong), "{e}");
    let dbg = format!("{s:?}");
    assert!(!dbg.contains(wrong) && dbg.contains(NAME), "{dbg}");
}

#[test]
fn an_unknown_key_is_400_naming_the_field() {
    let dsm = MockDsm::new(SGX_KEY, Behaviour::default());
    let s = signer(&dsm, "no-such-key", API_KEY);
    let e = api_err(s.public_key().now_or_never().unwrap());
    assert_eq!(e.error_type, ErrorType::BadRequest, "{e}");
    assert!(
        e.reason.contains("signingKey.sdkms.name") && e.reason.contains("\"no-such-key\""),
        "{e}"
    );
    assert!(e.reason.contains("HTTP 404: sobject not found"), "{e}");
}

#[test]
fn keys_that_cannot_sign_enclaves_are_refused_by_name() {
    for (pem, obj_type, expect) in [
        (RSA2048_E3, None, "RSA-2048"),
        (RSA3072_E65537, None, "65537"),
        (SGX_KEY, Some("EC"), "is a EC key"),
    ] {
        let dsm = MockDsm::new(
            pem,
            Behaviour {
                obj_type,
                ..Default::default()
            },
        );
        let s = signer(&dsm, NAME, API_KEY);
        let e = api_err(sign(body(), s.as_ref()).now_or_never().unwrap().map(|_| ()));
        assert_eq!(e.error_type, ErrorType::BadRequest, "{e}");
        assert!(
            e.reason.contains(expect) && e.reason.contains("signingKey.sdkms.name"),
            "{e}"
        );
        assert!(e.reason.contains(NAME), "{e}");
        // Refused before anything was signed.
        assert!(!dsm.calls().contains(&"/crypto/v1/sign".to_string()));
    }
}

#[test]
fn a_signature_that_does_not_verify_is_refused() {
    let dsm = MockDsm::new(
        SGX_KEY,
        Behaviour {
            bad_signature: true,
            ..Default::default()
        },
    );
    let s = signer(&dsm, NAME, API_KEY);
    let e = api_err(sign(body(), s.as_ref()).now_or_never().unwrap().map(|_| ()));
    assert_eq!(e.error_type, ErrorType::SignerError, "{e}");
    assert!(e.reason.contains("does not verify"), "{e}");
}

#[test]
fn dsm_failures_are_signer_errors_and_never_echo_secrets() {
    for (how, t, expect) in [
        (
            Behaviour {
                status: Some(503),
                ..Default::default()
            },
            ErrorType::SignerError,
            "HTTP 503",
        ),
        (
            Behaviour {
                status: Some(504),
                ..Default::default()
            },
            ErrorType::SignerError,
            "HTTP 504",
        ),
        (
            Behaviour {
                transport: Some(TransportErrorKind::Connect),
                ..Default::default()
            },
            ErrorType::SignerError,
            "could not be reached",
        ),
        (
            Behaviour {
                transport: Some(TransportErrorKind::Timeout),
                ..Default::default()
            },
            ErrorType::SignerError,
            "could not be reached",
        ),
    ] {
        let dsm = MockDsm::new(SGX_KEY, how);
        let s = signer(&dsm, NAME, API_KEY);
        let e = api_err(s.public_key().now_or_never().unwrap());
        assert_eq!(e.error_type, t, "{e}");
        assert!(e.reason.contains(expect) && e.reason.contains(BASE), "{e}");
    }
    // The 503 body echoes the Authorization header: scrubbed.
    let dsm = MockDsm::new(
        SGX_KEY,
        Behaviour {
            status: Some(503),
            ..Default::default()
        },
    );
    let e = api_err(
        signer(&dsm, NAME, API_KEY)
            .public_key()
            .now_or_never()
            .unwrap(),
    );
    assert!(e.reason.contains("<redacted>"), "{e}");
}

#[test]
fn base_urls() {
    assert_eq!(
        normalize_base_url(" https://api.amer.smartkey.io/ ").unwrap(),
        "https://api.amer.smartkey.io"
    );
    assert_eq!(
        normalize_base_url("http://127.0.0.1:8443/dsm").unwrap(),
        "http://127.0.0.1:8443/dsm"
    );
    for bad in [
        "",
        "api.smartkey.io",
        "ftp://x",
        "https://",
        "https://u:p@host",
        "https://h/?q",
    ] {
        assert!(normalize_base_url(bad).is_err(), "{bad}");
    }
    let dsm = MockDsm::new(SGX_KEY, Behaviour::default());
    let f = SdkmsFactory::new(dsm, "https://dsm.example/").unwrap();
    assert_eq!(f.base_url(), "https://dsm.example");
    assert!(format!("{f:?}").contains("dsm.example"));
}
