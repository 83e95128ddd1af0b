//! WebCrypto glue and the [`WebCryptoSigner`]: an SGX signing key held by the browser
//! (RSA-3072, e = 3, RSASSA-PKCS1-v1_5 SHA-256, non-extractable). The engine hands it
//! the 256-byte payload; `crypto.subtle.sign` signs it; the private key never leaves
//! WebCrypto.

use js_sys::{Object, Reflect, Uint8Array};
use kiln_engine::sgx::signer::{SignError, Signer, SignerPublicKey};
use kiln_engine::sgx::sigstruct::SIGNED_PAYLOAD_SIZE;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::backup::{self, aad_for, KeyBackup};
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
    #[wasm_bindgen(catch)]
    async fn generate_extractable_sgx_key() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn wrap_pkcs8(
        private_key: &JsValue,
        passphrase: &str,
        iterations: u32,
        aad: &Uint8Array,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn unwrap_pkcs8(
        passphrase: &str,
        salt: &Uint8Array,
        iterations: u32,
        iv: &Uint8Array,
        aad: &Uint8Array,
        wrapped: &Uint8Array,
    ) -> Result<JsValue, JsValue>;
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

/// A WebCrypto signing key to store (private key non-extractable).
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The private CryptoKey.
    pub private_key: JsValue,
    /// The public CryptoKey (`undefined` for keys unwrapped from a backup: the record's
    /// `n` and `e` are the public key).
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

/// Generates an RSA-3072, e = 3 key and its encrypted backup under `passphrase` (see
/// [`crate::backup`]). The key is generated extractable only so that WebCrypto can wrap
/// it; the key returned (and stored by the caller) is the backup unwrapped again,
/// non-extractable, and proven to match the backup's public key by a signature check, so
/// the file is known to restore. The extractable key is dropped here and never stored.
/// The caller checks the passphrase's rules first ([`crate::backup::check_new_passphrase`]).
pub async fn generate_key_with_backup(
    label: &str,
    passphrase: &str,
) -> Result<(GeneratedKey, KeyBackup), String> {
    let v = generate_extractable_sgx_key()
        .await
        .map_err(|e| js_error(&e))?;
    let extractable =
        Reflect::get(&v, &JsValue::from_str("privateKey")).map_err(|e| js_error(&e))?;
    let jwk = JwkPublic {
        n: get_str(&v, "n")?,
        e: get_str(&v, "e")?,
    };
    let aad = Uint8Array::from(&aad_for(&jwk.n, &jwk.e)[..]);
    let w = wrap_pkcs8(&extractable, passphrase, backup::ITERATIONS, &aad)
        .await
        .map_err(|e| format!("wrapping the key: {}", js_error(&e)))?;
    drop(extractable);
    drop(v);
    let bytes = |k: &str| -> Result<Vec<u8>, String> {
        let x = Reflect::get(&w, &JsValue::from_str(k)).map_err(|e| js_error(&e))?;
        Ok(Uint8Array::new(&x).to_vec())
    };
    let created = String::from(js_sys::Date::new_0().to_iso_string());
    let b = KeyBackup::new(
        label,
        &created,
        &jwk.n,
        &jwk.e,
        &bytes("salt")?,
        backup::ITERATIONS,
        &bytes("iv")?,
        &bytes("wrapped")?,
    )
    .map_err(|e| e.to_string())?;
    let private_key = unwrap_backup(&b, passphrase).await?;
    Ok((
        GeneratedKey {
            private_key,
            public_key: JsValue::UNDEFINED,
            jwk,
        },
        b,
    ))
}

/// Unwraps a checked backup with `passphrase` into a non-extractable WebCrypto signing
/// key, and proves that it is the private half of the backup's public key (it signs
/// [`backup::CHECK_MESSAGE`]; the engine verifies that under `publicKey`). A wrong
/// passphrase or an altered file is an error saying so.
pub async fn unwrap_backup(b: &KeyBackup, passphrase: &str) -> Result<JsValue, String> {
    let p = b.unwrap_params().map_err(|e| e.to_string())?;
    let private_key = unwrap_pkcs8(
        passphrase,
        &Uint8Array::from(&p.salt[..]),
        p.iterations,
        &Uint8Array::from(&p.iv[..]),
        &Uint8Array::from(&p.aad[..]),
        &Uint8Array::from(&p.wrapped[..]),
    )
    .await
    .map_err(|e| js_error(&e))?;
    let data = Uint8Array::from(backup::CHECK_MESSAGE);
    let sig = js_sign(&private_key, &data)
        .await
        .map_err(|e| format!("the backup's key cannot sign: {}", js_error(&e)))?;
    b.check_signature(backup::CHECK_MESSAGE, &Uint8Array::new(&sig).to_vec())
        .map_err(|e| e.to_string())?;
    Ok(private_key)
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
