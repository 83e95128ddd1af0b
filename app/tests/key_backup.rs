//! Encrypted key backups (`kiln_app::backup`, `webcrypto::generate_key_with_backup` /
//! `unwrap_backup`) in headless Chromium: a generated key is stored non-extractable and
//! its backup file restores the same MRSIGNER after the key is deleted; a wrong
//! passphrase and an altered file are refused and store nothing.
//! Run: `cargo test --release -p kiln-app --target wasm32-unknown-unknown --test key_backup`.

#![cfg(target_arch = "wasm32")]

use kiln_app::backup::KeyBackup;
use kiln_app::browser::keys;
use kiln_app::browser::protocol::KeySpec;
use kiln_app::engine_bridge::import_pem;
use kiln_app::keystore;
use kiln_app::mrsigner::b64url_encode;
use kiln_app::webcrypto::{generate_key_with_backup, unwrap_backup};
use kiln_engine::sgx::signer::sign;
use kiln_engine::sgx::sigstruct::Sigstruct;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const T1_SIG: &[u8] = include_bytes!("../../engine/testdata/gramine/t1.sig");
const TEST_KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");
const PASS: &str = "correct horse battery staple";

/// The MRSIGNER of a SIGSTRUCT signed with the stored key `id` (the conversion's path:
/// the Web Worker's key resolution, then the engine's `sign`).
async fn signs_as(id: &str) -> String {
    let signer = keys::signer(&KeySpec::Stored { id: id.into() })
        .await
        .unwrap();
    let body = Sigstruct::parse(T1_SIG).unwrap().body;
    let s = sign(body, signer.as_ref()).await.unwrap();
    s.verify().unwrap();
    hex::encode(s.mrsigner())
}

fn extractable(key: &wasm_bindgen::JsValue) -> Option<bool> {
    js_sys::Reflect::get(key, &"extractable".into())
        .unwrap()
        .as_bool()
}

#[wasm_bindgen_test]
async fn backup_restores_the_same_mrsigner_and_refuses_wrong_passphrases() {
    let (key, backup) = generate_key_with_backup("backup test", PASS).await.unwrap();
    assert_eq!(extractable(&key.private_key), Some(false));
    let info = keystore::store_generated("backup test", &key)
        .await
        .unwrap();
    assert_eq!(info.mrsigner, backup.mrsigner);
    let before = signs_as(&info.id).await;
    assert_eq!(before, backup.mrsigner);

    // The file as downloaded, read back.
    let file = backup.to_json();
    assert!(!file.contains(PASS));
    let parsed = KeyBackup::parse(&file).unwrap();
    assert_eq!(parsed.kdf.iterations, 600_000);

    // While the key is stored, restoring it again is refused (named), nothing stored.
    let restored = unwrap_backup(&parsed, PASS).await.unwrap();
    let count = keystore::list().await.unwrap().len();
    let e = keystore::store_restored(&parsed, &restored)
        .await
        .unwrap_err();
    assert!(
        e.contains("already stored") && e.contains("backup test"),
        "{e}"
    );
    assert_eq!(keystore::list().await.unwrap().len(), count);

    // Delete, then restore with the right passphrase: the same MRSIGNER signs.
    keystore::delete(&info.id).await.unwrap();
    let e = unwrap_backup(&parsed, "wrong passphrase!!")
        .await
        .unwrap_err();
    assert!(e.contains("wrong passphrase"), "{e}");
    let restored = unwrap_backup(&parsed, PASS).await.unwrap();
    assert_eq!(extractable(&restored), Some(false));
    let again = keystore::store_restored(&parsed, &restored).await.unwrap();
    assert_eq!(again.label, "backup test");
    assert_eq!(signs_as(&again.id).await, before);
    keystore::delete(&again.id).await.unwrap();
}

#[wasm_bindgen_test]
async fn an_altered_backup_is_refused() {
    let (_, backup) = generate_key_with_backup("altered", PASS).await.unwrap();
    // Another RSA-3072 e = 3 public key (and its MRSIGNER) swapped in: the file still
    // parses, but the GCM tag binds the public key, so unwrapping fails.
    let other = import_pem(TEST_KEY, None).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&backup.to_json()).unwrap();
    v["publicKey"]["n"] = b64url_encode(&other.public.modulus_be).into();
    v["mrsigner"] = other.mrsigner.clone().into();
    let swapped = KeyBackup::parse(&v.to_string()).unwrap();
    let e = unwrap_backup(&swapped, PASS).await.unwrap_err();
    assert!(e.contains("altered"), "{e}");
    // One flipped ciphertext byte.
    let mut p = backup.unwrap_params().unwrap();
    p.wrapped[100] ^= 1;
    let mut flipped = backup.clone();
    use base64::Engine as _;
    flipped.wrapped_key = base64::engine::general_purpose::STANDARD.encode(&p.wrapped);
    let e = unwrap_backup(&flipped, PASS).await.unwrap_err();
    assert!(e.contains("altered"), "{e}");
}
