//! The browser's key store (IndexedDB database `kiln`, object store `keys`).
//!
//! A record is `{id, label, kind, created, n, e, mrsigner, ...}` plus, by kind:
//! - `webcrypto`: `privateKey` (and, for keys generated before backups existed,
//!   `publicKey`) as CryptoKey objects (the private key is non-extractable; IndexedDB's
//!   structured clone keeps it so). Generated keys and keys restored from a backup file
//!   are both the backup unwrapped (`webcrypto::unwrap_backup`);
//! - `sealed-pem`: `sealed` = `{salt, iv, iterations, ciphertext}`: the key's PKCS#8,
//!   AES-256-GCM under a PBKDF2-SHA-256 key from the user's passphrase.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::webcrypto::{js_error, GeneratedKey, JwkPublic, WebCryptoSigner};

#[wasm_bindgen(module = "/src/js/kiln_web.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn db_put(record: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn db_list() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn db_get(id: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn db_delete(id: &str) -> Result<JsValue, JsValue>;
    fn new_id() -> String;
}

/// How a key is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Generated in WebCrypto, non-extractable, stored as a CryptoKey.
    WebCrypto,
    /// Imported from PEM, stored encrypted with a passphrase.
    SealedPem,
    /// Imported from PEM, kept in this tab's memory only.
    SessionPem,
}

impl KeyKind {
    /// The record's `kind` string.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::WebCrypto => "webcrypto",
            KeyKind::SealedPem => "sealed-pem",
            KeyKind::SessionPem => "session-pem",
        }
    }

    /// A short description for the key list.
    pub fn describe(self) -> &'static str {
        match self {
            KeyKind::WebCrypto => "WebCrypto, non-extractable, stored in this browser",
            KeyKind::SealedPem => "imported PEM, stored encrypted with your passphrase",
            KeyKind::SessionPem => "imported PEM, this tab only (gone on reload)",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "webcrypto" => Some(KeyKind::WebCrypto),
            "sealed-pem" => Some(KeyKind::SealedPem),
            "session-pem" => Some(KeyKind::SessionPem),
            _ => None,
        }
    }
}

/// What the key list shows about a key (no private material).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    /// Record id.
    pub id: String,
    /// User's label.
    pub label: String,
    /// How it is held.
    pub kind: KeyKind,
    /// Creation time, ms since the epoch.
    pub created: f64,
    /// Public key.
    pub jwk: JwkPublic,
    /// MRSIGNER, hex.
    pub mrsigner: String,
}

fn set(obj: &Object, key: &str, value: &JsValue) -> Result<(), String> {
    Reflect::set(obj, &JsValue::from_str(key), value)
        .map(|_| ())
        .map_err(|e| js_error(&e))
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A new record id.
pub fn fresh_id() -> String {
    new_id()
}

/// Now, ms since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn base_record(info: &KeyInfo) -> Result<Object, String> {
    let o = Object::new();
    set(&o, "id", &JsValue::from_str(&info.id))?;
    set(&o, "label", &JsValue::from_str(&info.label))?;
    set(&o, "kind", &JsValue::from_str(info.kind.as_str()))?;
    set(&o, "created", &JsValue::from_f64(info.created))?;
    set(&o, "n", &JsValue::from_str(&info.jwk.n))?;
    set(&o, "e", &JsValue::from_str(&info.jwk.e))?;
    set(&o, "mrsigner", &JsValue::from_str(&info.mrsigner))?;
    Ok(o)
}

/// Asks the browser to keep this origin's storage (`navigator.storage.persist()`), so that
/// storage pressure does not evict the key store. `Some(true)`: granted; `Some(false)`:
/// refused (the key may still be evicted); `None`: the API is missing. Best effort: called
/// whenever a key is stored.
pub async fn request_persistence() -> Option<bool> {
    let navigator = Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).ok()?;
    let storage = Reflect::get(&navigator, &JsValue::from_str("storage")).ok()?;
    let persist: js_sys::Function = Reflect::get(&storage, &JsValue::from_str("persist"))
        .ok()?
        .dyn_into()
        .ok()?;
    let promise: js_sys::Promise = persist.call0(&storage).ok()?.dyn_into().ok()?;
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .ok()?
        .as_bool()
}

/// Stores a generated WebCrypto key; returns its listing.
pub async fn store_generated(label: &str, key: &GeneratedKey) -> Result<KeyInfo, String> {
    let info = KeyInfo {
        id: fresh_id(),
        label: label.to_string(),
        kind: KeyKind::WebCrypto,
        created: now_ms(),
        jwk: key.jwk.clone(),
        mrsigner: key.jwk.mrsigner()?,
    };
    let o = base_record(&info)?;
    set(&o, "privateKey", &key.private_key)?;
    if !key.public_key.is_undefined() {
        set(&o, "publicKey", &key.public_key)?;
    }
    db_put(&o).await.map_err(|e| js_error(&e))?;
    Ok(info)
}

/// Stores the key restored from a backup (`webcrypto::unwrap_backup`: a non-extractable
/// CryptoKey) as a `webcrypto` record with the backup's label and date. Refused when a
/// key with the same MRSIGNER is stored already (naming it), so nothing is stored twice.
pub async fn store_restored(
    backup: &crate::backup::KeyBackup,
    private_key: &JsValue,
) -> Result<KeyInfo, String> {
    let mrsigner = backup.mrsigner.to_ascii_lowercase();
    if let Some(k) = list().await?.into_iter().find(|k| k.mrsigner == mrsigner) {
        return Err(format!(
            "this key (MRSIGNER {mrsigner}) is already stored here as “{}”",
            k.label
        ));
    }
    let created = js_sys::Date::parse(&backup.created);
    let info = KeyInfo {
        id: fresh_id(),
        label: backup.label.clone(),
        kind: KeyKind::WebCrypto,
        created: if created.is_finite() {
            created
        } else {
            now_ms()
        },
        jwk: JwkPublic {
            n: backup.public_key.n.clone(),
            e: backup.public_key.e.clone(),
        },
        mrsigner,
    };
    let o = base_record(&info)?;
    set(&o, "privateKey", private_key)?;
    db_put(&o).await.map_err(|e| js_error(&e))?;
    Ok(info)
}

/// Stores an imported key sealed under a passphrase (see `webcrypto::seal_bytes`).
pub async fn store_sealed(info: &KeyInfo, sealed: &Object) -> Result<(), String> {
    let o = base_record(info)?;
    set(&o, "sealed", sealed)?;
    db_put(&o).await.map_err(|e| js_error(&e))?;
    Ok(())
}

/// Every stored key, oldest first. Records that cannot be read are skipped.
pub async fn list() -> Result<Vec<KeyInfo>, String> {
    let all = db_list().await.map_err(|e| js_error(&e))?;
    let mut out = Vec::new();
    for r in Array::from(&all).iter() {
        let s = |k: &str| get(&r, k).as_string();
        let (Some(id), Some(kind), Some(n), Some(e), Some(mrsigner)) =
            (s("id"), s("kind"), s("n"), s("e"), s("mrsigner"))
        else {
            continue;
        };
        let Some(kind) = KeyKind::parse(&kind) else {
            continue;
        };
        out.push(KeyInfo {
            id,
            label: s("label").unwrap_or_default(),
            kind,
            created: get(&r, "created").as_f64().unwrap_or(0.0),
            jwk: JwkPublic { n, e },
            mrsigner,
        });
    }
    Ok(out)
}

/// A signer for a stored WebCrypto key.
pub async fn webcrypto_signer(id: &str) -> Result<WebCryptoSigner, String> {
    let r = db_get(id).await.map_err(|e| js_error(&e))?;
    if r.is_undefined() {
        return Err(format!("no key with id {id}"));
    }
    let private_key = get(&r, "privateKey");
    if private_key.is_undefined() {
        return Err("this key is not a WebCrypto key".into());
    }
    let jwk = JwkPublic {
        n: get(&r, "n").as_string().unwrap_or_default(),
        e: get(&r, "e").as_string().unwrap_or_default(),
    };
    Ok(WebCryptoSigner::new(private_key, jwk))
}

/// The sealed blob of a stored imported key.
pub async fn sealed_blob(id: &str) -> Result<JsValue, String> {
    let r = db_get(id).await.map_err(|e| js_error(&e))?;
    let sealed = get(&r, "sealed");
    if sealed.is_undefined() {
        return Err("this key has no sealed PKCS#8".into());
    }
    Ok(sealed)
}

/// Deletes a stored key.
pub async fn delete(id: &str) -> Result<(), String> {
    db_delete(id).await.map_err(|e| js_error(&e))?;
    Ok(())
}
