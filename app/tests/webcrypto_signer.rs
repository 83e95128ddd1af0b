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
