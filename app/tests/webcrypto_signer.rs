//! The WebCryptoSigner in headless Chromium: a non-extractable RSA-3072 e = 3 WebCrypto
//! key signs a SIGSTRUCT body through the engine's `sign()`, and the SIGSTRUCT verifies.
//! Run: `cargo test --release -p kiln-app --target wasm32-unknown-unknown --tests`.

#![cfg(target_arch = "wasm32")]

use kiln_app::mrsigner::mrsigner_from_jwk_n;
use kiln_app::webcrypto::{generate_key, jwk_of, WebCryptoSigner};
use kiln_engine::sgx::signer::{sign, Signer};
use kiln_engine::sgx::sigstruct::Sigstruct;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const T1_SIG: &[u8] = include_bytes!("../../engine/testdata/gramine/t1.sig");

#[wasm_bindgen_test]
async fn webcrypto_key_signs_a_sigstruct_that_verifies() {
    let key = generate_key().await.unwrap();
    // The exported public JWK agrees with the generated one.
    assert_eq!(jwk_of(&key.public_key).await.unwrap(), key.jwk);
    let signer = WebCryptoSigner::new(key.private_key.clone(), key.jwk.clone());
    let public = signer.public_key().await.unwrap();
    assert_eq!(public.exponent_be, vec![3]);
    assert_eq!(public.modulus_be.len(), 384);

    // Re-sign the body of Gramine's t1 vector with the browser key.
    let body = Sigstruct::parse(T1_SIG).unwrap().body;
    let s = sign(body.clone(), &signer).await.unwrap();
    s.verify().unwrap();
    assert_eq!(s.body, body);
    // MRSIGNER from the JWK equals the SIGSTRUCT's.
    assert_eq!(
        mrsigner_from_jwk_n(&key.jwk.n).unwrap(),
        hex::encode(s.mrsigner())
    );
    // Round trip through the bytes.
    Sigstruct::parse(&s.to_bytes()).unwrap().verify().unwrap();
}

#[wasm_bindgen_test]
async fn the_private_key_is_not_extractable() {
    let key = generate_key().await.unwrap();
    let extractable = js_sys::Reflect::get(&key.private_key, &"extractable".into())
        .unwrap()
        .as_bool();
    assert_eq!(extractable, Some(false));
}

#[wasm_bindgen_test]
async fn a_stored_key_comes_back_from_indexeddb_usable_and_non_extractable() {
    use kiln_app::keystore;
    let key = generate_key().await.unwrap();
    let info = keystore::store_generated("wasm test key", &key)
        .await
        .unwrap();
    assert!(keystore::list()
        .await
        .unwrap()
        .iter()
        .any(|k| k.id == info.id && k.mrsigner == info.mrsigner));
    let signer = keystore::webcrypto_signer(&info.id).await.unwrap();
    let body = Sigstruct::parse(T1_SIG).unwrap().body;
    let s = sign(body, &signer).await.unwrap();
    s.verify().unwrap();
    assert_eq!(hex::encode(s.mrsigner()), info.mrsigner);
    keystore::delete(&info.id).await.unwrap();
    assert!(!keystore::list()
        .await
        .unwrap()
        .iter()
        .any(|k| k.id == info.id));
}

#[wasm_bindgen_test]
async fn sealed_bytes_need_the_passphrase() {
    use kiln_app::webcrypto::{seal_bytes, unseal_bytes};
    let sealed = seal_bytes("correct horse", b"pkcs8 bytes").await.unwrap();
    assert_eq!(
        unseal_bytes("correct horse", &sealed).await.unwrap(),
        b"pkcs8 bytes"
    );
    assert!(unseal_bytes("wrong", &sealed).await.is_err());
}

#[wasm_bindgen_test]
async fn an_imported_pem_signs_through_webcrypto_too() {
    use kiln_app::engine_bridge::{import_pem, pkcs8_der};
    use kiln_app::mrsigner::b64url_encode;
    use kiln_app::webcrypto::{import_private_pkcs8, JwkPublic};
    let pem = import_pem(
        include_str!("../../engine/testdata/gramine/test-key.pem"),
        None,
    )
    .unwrap();
    let private_key = import_private_pkcs8(&pkcs8_der(&pem).unwrap())
        .await
        .unwrap();
    let jwk = JwkPublic {
        n: b64url_encode(&pem.public.modulus_be),
        e: b64url_encode(&pem.public.exponent_be),
    };
    let signer = WebCryptoSigner::new(private_key, jwk);
    // PKCS#1 v1.5 is deterministic: the same bytes as Gramine's t1.sig.
    let body = Sigstruct::parse(T1_SIG).unwrap().body;
    let s = sign(body, &signer).await.unwrap();
    assert_eq!(s.to_bytes().as_slice(), T1_SIG);
}
