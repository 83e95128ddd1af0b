//! WebCrypto glue and the [`WebCryptoSigner`]: an SGX signing key held by the browser
//! (RSA-3072, e = 3, RSASSA-PKCS1-v1_5 SHA-256, non-extractable). The engine hands it
//! the 256-byte payload; `crypto.subtle.sign` signs it; the private key never leaves
//! WebCrypto.

use js_sys::{Object, Reflect, Uint8Array};
use kiln_engine::sgx::signer::{SignError, Signer, SignerPublicKey};
use kiln_engine::sgx::sigstruct::SIGNED_PAYLOAD_SIZE;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::mrsigner::{b64url_decode, mrsigner_from_modulus_be};

#[wasm_bindgen(module = "/src/js/kiln_web.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn generate_sgx_key() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn public_jwk(public_key: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = sign)]
    async fn js_sign(private_key: &JsValue, data: &Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn import_pkcs8(der: &Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn spki_pem(n: &str, e: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn seal(passphrase: &str, plaintext: &Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn unseal(passphrase: &str, sealed: &JsValue) -> Result<JsValue, JsValue>;
}

/// A JavaScript error as text (never includes key material: WebCrypto does not put any
/// in its messages).
pub fn js_error(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

fn get_str(obj: &JsValue, key: &str) -> Result<String, String> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .and_then(|v| v.as_string())
        .ok_or_else(|| format!("WebCrypto: missing `{key}`"))
}

/// A public key as JWK fields (base64url, big-endian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwkPublic {
    /// Modulus.
    pub n: String,
    /// Exponent.
    pub e: String,
}

impl JwkPublic {
    /// The key as big-endian bytes for the engine.
    pub fn to_signer_public_key(&self) -> Result<SignerPublicKey, String> {
        Ok(SignerPublicKey {
            modulus_be: b64url_decode(&self.n).map_err(|e| e.to_string())?,
            exponent_be: b64url_decode(&self.e).map_err(|e| e.to_string())?,
        })
    }

    /// MRSIGNER, hex.
    pub fn mrsigner(&self) -> Result<String, String> {
        let k = self.to_signer_public_key()?;
        mrsigner_from_modulus_be(&k.modulus_be).map_err(|e| e.to_string())
    }

    /// The public key as PEM SubjectPublicKeyInfo.
    pub async fn spki_pem(&self) -> Result<String, String> {
        spki_pem(&self.n, &self.e)
            .await
            .map_err(|e| js_error(&e))?
            .as_string()
            .ok_or_else(|| "WebCrypto: SPKI export failed".to_string())
    }
}

/// A freshly generated WebCrypto key pair (private key non-extractable).
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The private CryptoKey.
    pub private_key: JsValue,
    /// The public CryptoKey.
    pub public_key: JsValue,
    /// The public key's JWK fields.
    pub jwk: JwkPublic,
}

/// Generates an RSA-3072, e = 3 signing key in WebCrypto (non-extractable).
pub async fn generate_key() -> Result<GeneratedKey, String> {
    let v = generate_sgx_key().await.map_err(|e| js_error(&e))?;
    let get = |k: &str| Reflect::get(&v, &JsValue::from_str(k)).map_err(|e| js_error(&e));
    Ok(GeneratedKey {
        private_key: get("privateKey")?,
        public_key: get("publicKey")?,
        jwk: JwkPublic {
            n: get_str(&v, "n")?,
            e: get_str(&v, "e")?,
        },
    })
}

/// The JWK fields of a public CryptoKey.
pub async fn jwk_of(public_key: &JsValue) -> Result<JwkPublic, String> {
    let v = public_jwk(public_key).await.map_err(|e| js_error(&e))?;
    Ok(JwkPublic {
        n: get_str(&v, "n")?,
        e: get_str(&v, "e")?,
    })
}

/// Imports unencrypted PKCS#8 DER as a non-extractable WebCrypto signing key.
pub async fn import_private_pkcs8(der: &[u8]) -> Result<JsValue, String> {
    let arr = Uint8Array::from(der);
    let key = import_pkcs8(&arr).await.map_err(|e| js_error(&e));
    arr.fill(0, 0, arr.length());
    key
}

/// Encrypts bytes under a passphrase (PBKDF2-SHA-256 → AES-256-GCM); returns the sealed
/// object `{salt, iv, iterations, ciphertext}` to store.
pub async fn seal_bytes(passphrase: &str, plaintext: &[u8]) -> Result<Object, String> {
    let arr = Uint8Array::from(plaintext);
    let sealed = seal(passphrase, &arr).await.map_err(|e| js_error(&e));
    arr.fill(0, 0, arr.length());
    sealed?
        .dyn_into::<Object>()
        .map_err(|_| "seal: not an object".to_string())
}

/// Decrypts what [`seal_bytes`] produced.
pub async fn unseal_bytes(passphrase: &str, sealed: &JsValue) -> Result<Vec<u8>, String> {
    let v = unseal(passphrase, sealed).await.map_err(|e| js_error(&e))?;
    let arr = Uint8Array::new(&v);
    let out = arr.to_vec();
    arr.fill(0, 0, arr.length());
    Ok(out)
}

/// An SGX signing key held by WebCrypto, usable wherever the engine takes a [`Signer`].
#[derive(Debug, Clone)]
pub struct WebCryptoSigner {
    private_key: JsValue,
    public: JwkPublic,
}

impl WebCryptoSigner {
    /// A signer from a private CryptoKey (RSASSA-PKCS1-v1_5, SHA-256) and its public
    /// key's JWK fields.
    pub fn new(private_key: JsValue, public: JwkPublic) -> Self {
        Self {
            private_key,
            public,
        }
    }

    /// The public key's JWK fields.
    pub fn jwk(&self) -> &JwkPublic {
        &self.public
    }
}

#[async_trait::async_trait(?Send)]
impl Signer for WebCryptoSigner {
    async fn public_key(&self) -> Result<SignerPublicKey, SignError> {
        self.public
            .to_signer_public_key()
            .map_err(SignError::Signer)
    }

    async fn sign_payload(
        &self,
        payload: &[u8; SIGNED_PAYLOAD_SIZE],
    ) -> Result<Vec<u8>, SignError> {
        let data = Uint8Array::from(&payload[..]);
        let sig = js_sign(&self.private_key, &data)
            .await
            .map_err(|e| SignError::Signer(format!("WebCrypto sign: {}", js_error(&e))))?;
        Ok(Uint8Array::new(&sig).to_vec())
    }
}
