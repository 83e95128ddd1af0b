//! The engine worker's key resolution (`browser::keys`) in headless Chromium: a stored
//! WebCrypto key, a sealed imported PEM (right and wrong passphrase) and an in-memory PEM
//! each give a signer whose SIGSTRUCT verifies under the expected MRSIGNER.

#![cfg(target_arch = "wasm32")]

use kiln_app::browser::keys;
use kiln_app::browser::protocol::KeySpec;
use kiln_app::engine_bridge::{import_pem, pkcs8_der};
use kiln_app::keystore::{self, KeyInfo, KeyKind};
use kiln_app::mrsigner::b64url_encode;
use kiln_app::webcrypto::{generate_key, seal_bytes, JwkPublic};
use kiln_engine::sgx::signer::sign;
use kiln_engine::sgx::sigstruct::Sigstruct;
use wasm_bindgen_test::*;
use zeroize::Zeroizing;

wasm_bindgen_test_configure!(run_in_browser);

const T1_SIG: &[u8] = include_bytes!("../../engine/testdata/gramine/t1.sig");
const TEST_KEY: &str = include_str!("../../engine/testdata/gramine/test-key.pem");

async fn signs_as(spec: &KeySpec, mrsigner: &str) {
    let signer = keys::signer(spec).await.unwrap();
    let body = Sigstruct::parse(T1_SIG).unwrap().body;
    let s = sign(body, signer.as_ref()).await.unwrap();
    s.verify().unwrap();
    assert_eq!(hex::encode(s.mrsigner()), mrsigner);
}

#[wasm_bindgen_test]
async fn stored_webcrypto_key() {
    let key = generate_key().await.unwrap();
    let info = keystore::store_generated("browser runtime test", &key)
        .await
        .unwrap();
    signs_as(
        &KeySpec::Stored {
            id: info.id.clone(),
        },
        &info.mrsigner,
    )
    .await;
    assert!(keys::signer(&KeySpec::Stored {
        id: "no-such-key".into()
    })
    .await
    .is_err());
    keystore::delete(&info.id).await.unwrap();
}

#[wasm_bindgen_test]
async fn sealed_and_in_memory_pem() {
    let pem = import_pem(TEST_KEY, None).unwrap();
    let der = pkcs8_der(&pem).unwrap();
    let sealed = seal_bytes("correct horse", &der).await.unwrap();
    let info = KeyInfo {
        id: keystore::fresh_id(),
        label: "sealed test key".into(),
        kind: KeyKind::SealedPem,
        created: keystore::now_ms(),
        jwk: JwkPublic {
            n: b64url_encode(&pem.public.modulus_be),
            e: b64url_encode(&pem.public.exponent_be),
        },
        mrsigner: pem.mrsigner.clone(),
    };
    keystore::store_sealed(&info, &sealed).await.unwrap();
    let spec = |p: &str| KeySpec::Sealed {
        id: info.id.clone(),
        passphrase: Zeroizing::new(p.to_string()),
    };
    signs_as(&spec("correct horse"), &pem.mrsigner).await;
    let e = keys::signer(&spec("wrong")).await.err().unwrap();
    assert!(e.contains("passphrase"), "{e}");
    keystore::delete(&info.id).await.unwrap();

    signs_as(
        &KeySpec::Pem {
            pem: Zeroizing::new(TEST_KEY.to_string()),
        },
        &pem.mrsigner,
    )
    .await;
}
