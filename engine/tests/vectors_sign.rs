//! SIGSTRUCT and signing against independent vectors (Fortanix sgxs-tools, Gramine v1.9),
//! natively and in headless Chromium (wasm32).

use std::future::Future;

use kiln_engine::sgx::attributes::SigningAttributes;
use kiln_engine::sgx::manifest_params::SgxManifestParams;
use kiln_engine::sgx::rsa3072::{self, KeyError, SignatureError};
use kiln_engine::sgx::signer::{
    complete, gramine_sigstruct_body, prepare, sign, ExternalSignature, PrivateKeySigner,
    SignError, SignerPublicKey,
};
use kiln_engine::sgx::sigstruct::{Sigstruct, SigstructBody, SigstructError};
use kiln_engine::sgx::sigstruct_date::SigstructDate;
use kiln_engine::sgx::sigstruct_view::SigstructView;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const SIG1_KEY: &str = include_str!("../testdata/sgxs/sig1.key.pem");
const SIG1_SIGSTRUCT: &[u8] = include_bytes!("../testdata/sgxs/sig1.sigstruct.bin");
const SIG1_DATA: &[u8] = include_bytes!("../testdata/sgxs/sig1.data.bin");
const SIG1_SIG: &[u8] = include_bytes!("../testdata/sgxs/sig1.sig.bin");
const SIG1_Q1: &[u8] = include_bytes!("../testdata/sgxs/sig1.q1.bin");
const SIG1_Q2: &[u8] = include_bytes!("../testdata/sgxs/sig1.q2.bin");
const SIG1_KEY_N: &[u8] = include_bytes!("../testdata/sgxs/sig1.key_n.bin");
const TEST_ENCLAVE_SIG: &[u8] = include_bytes!("../testdata/sgxs/test_enclave.sig");
const T1_SIG: &[u8] = include_bytes!("../testdata/gramine/t1.sig");
const GRAMINE_KEY: &str = include_str!("../testdata/gramine/test-key.pem");
const GRAMINE_KEY_PKCS8: &str = include_str!("../testdata/keys/test-key.pkcs8.pem");
const GRAMINE_KEY_PKCS8_ENC: &str = include_str!("../testdata/keys/test-key.pkcs8-encrypted.pem");
const GRAMINE_KEY_LEGACY_ENC: &str = include_str!("../testdata/keys/test-key.legacy-encrypted.pem");
const RSA2048: &str = include_str!("../testdata/keys/rsa2048-e3.pem");
const RSA3072_E65537: &str = include_str!("../testdata/keys/rsa3072-e65537.pem");
const EC_P256: &str = include_str!("../testdata/keys/ec-p256.pem");
const EC_P256_SEC1: &str = include_str!("../testdata/keys/ec-p256-sec1.pem");

const T1_MRENCLAVE: &str = "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b";

/// Runs a future that completes on its first poll (everything here is synchronous underneath).
fn block_on<F: Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("the future never pends")
}

fn hash32(hex_text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).unwrap();
    out
}

fn sig1_body() -> SigstructBody {
    let attributes = SigningAttributes {
        flags: 4,
        flags_mask: 0xFFFF_FFFF_FFFF_FFFD,
        xfrm: 3,
        xfrm_mask: 0xFFFF_FFFF_FFFF_FF1B,
        miscselect: 0,
        miscmask: 0xFFFF_FFFF,
    };
    SigstructBody::new(
        hash32("c50673624a6cb17c1c6c2a4e6906f47a170c4629b8723781d1017ef376f1a75d"),
        SigstructDate::new(2016, 1, 9).unwrap(),
        &attributes,
        0,
        0,
    )
}

fn t1_params() -> SgxManifestParams {
    SgxManifestParams {
        enclave_size: 2 << 20,
        max_threads: 2,
        debug: true,
        isvprodid: 7,
        isvsvn: 3,
        ..SgxManifestParams::default()
    }
}

fn t1_body() -> SigstructBody {
    gramine_sigstruct_body(
        hash32(T1_MRENCLAVE),
        &t1_params(),
        "2025-01-02".parse().unwrap(),
    )
}

fn key_error(pem: &str, passphrase: Option<&[u8]>) -> KeyError {
    match PrivateKeySigner::from_pem(pem, passphrase) {
        Err(SignError::Key(e)) => e,
        Err(other) => panic!("expected a key error, got {other}"),
        Ok(_) => panic!("the key was accepted"),
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sig1_pem_key_signs_to_the_exact_sigstruct() {
    let signer = PrivateKeySigner::from_pem(SIG1_KEY, None).unwrap();
    let s = block_on(sign(sig1_body(), &signer)).unwrap();
    assert_eq!(s.to_bytes().as_slice(), SIG1_SIGSTRUCT);
    assert_eq!(
        hex::encode(s.mrsigner()),
        "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
    );
    assert_eq!(s.modulus.as_slice(), SIG1_KEY_N);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sig1_raw_vector_signature_q1_q2() {
    let signer = PrivateKeySigner::from_pem(SIG1_KEY, None).unwrap();
    let digest: [u8; 32] = SIG1_DATA.try_into().unwrap();
    let sig_be = signer.sign_sha256_digest(&digest).unwrap();
    let mut sig_le = sig_be.clone();
    sig_le.reverse();
    assert_eq!(sig_le.as_slice(), SIG1_SIG);
    let n_be = signer.public_key_bytes().modulus_be;
    let mut n_le = n_be.clone();
    n_le.reverse();
    assert_eq!(n_le.as_slice(), SIG1_KEY_N);
    let (q1, q2) = rsa3072::q1_q2(&sig_be, &n_be).unwrap();
    assert_eq!(q1.as_slice(), SIG1_Q1);
    assert_eq!(q2.as_slice(), SIG1_Q2);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn test_enclave_sig_parses_and_verifies() {
    let s = Sigstruct::parse(TEST_ENCLAVE_SIG).unwrap();
    s.verify().unwrap();
    assert_eq!(s.to_bytes().as_slice(), TEST_ENCLAVE_SIG);
    assert_eq!(
        hex::encode(s.mrsigner()),
        "fb4bab3d6036ac1d730fa83d7366df1dd2dfeac194ef335d6854d8a6c6475542"
    );
    assert_eq!(
        hex::encode(s.body.enclavehash),
        "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc"
    );
    assert_eq!(s.body.date.to_bcd(), 0x2016_1214);
    assert_eq!(s.body.attributes.flags, 4);
    assert_eq!(s.body.attribute_mask.flags, 0xFFFF_FFFF_FFFF_FFFD);
    assert_eq!(s.body.attributes.xfrm, 3);
    assert_eq!(s.body.attribute_mask.xfrm, 0xFFFF_FFFF_FFFF_FF1B);
    assert_eq!(s.body.isvprodid, 0xFFFF);
    let view = SigstructView::new(&s);
    assert!(view.signature_valid && view.q1_q2_valid);
    assert_eq!(view.date, "2016-12-14");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn t1_gramine_defaults_sign_to_the_exact_sig() {
    let body = t1_body();
    assert_eq!(body.attributes.flags, 6);
    assert_eq!(body.attribute_mask.flags, u64::MAX);
    assert_eq!(body.attribute_mask.xfrm, 0xFFFF_FFFF_FFF9_FF1B);
    let signer = PrivateKeySigner::from_pem(GRAMINE_KEY, None).unwrap();
    let s = block_on(sign(body, &signer)).unwrap();
    assert_eq!(s.to_bytes().as_slice(), T1_SIG);
    assert_eq!(
        hex::encode(s.mrsigner()),
        "6c1c0067059a174d7b902d449fd101ffff9e9c5ca096d19d16a22a4ab3cf0bfe"
    );
    let parsed = Sigstruct::parse(T1_SIG).unwrap();
    assert_eq!(parsed, s);
    parsed.verify().unwrap();
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn pkcs8_and_encrypted_pkcs8_keys_sign_the_same() {
    for (pem, pass) in [
        (GRAMINE_KEY_PKCS8, None),
        (GRAMINE_KEY_PKCS8_ENC, Some(b"kiln-test".as_slice())),
    ] {
        let signer = PrivateKeySigner::from_pem(pem, pass).unwrap();
        let s = signer.sign_sigstruct(t1_body()).unwrap();
        assert_eq!(s.to_bytes().as_slice(), T1_SIG);
    }
    assert_eq!(
        key_error(GRAMINE_KEY_PKCS8_ENC, None),
        KeyError::NeedsPassphrase
    );
    assert_eq!(
        key_error(GRAMINE_KEY_PKCS8_ENC, Some(b"wrong")),
        KeyError::Decrypt
    );
    assert_eq!(
        key_error(GRAMINE_KEY_LEGACY_ENC, Some(b"kiln-test")),
        KeyError::LegacyEncryption
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn wrong_keys_are_refused_saying_what_they_are() {
    assert_eq!(
        key_error(RSA2048, None),
        KeyError::ModulusBits { bits: 2048 }
    );
    assert_eq!(
        key_error(RSA3072_E65537, None),
        KeyError::Exponent {
            exponent: "65537".into()
        }
    );
    let ec = key_error(EC_P256, None);
    assert_eq!(ec, KeyError::NotRsa("an EC P-256 private key".into()));
    assert!(ec.to_string().contains("EC P-256"), "{ec}");
    assert!(matches!(key_error(EC_P256_SEC1, None), KeyError::NotRsa(_)));
    assert!(matches!(key_error("hello", None), KeyError::Pem(_)));
    // Messages name the problem, never the key.
    for pem in [RSA2048, RSA3072_E65537, EC_P256] {
        let msg = SignError::Key(key_error(pem, None)).to_string();
        let body_line = pem.lines().nth(1).unwrap();
        assert!(!msg.contains(&body_line[..20]), "{msg}");
    }
    // The same checks apply to a remote signer's public key, before it is asked to sign.
    let small = PrivateKeySigner::from_pem(GRAMINE_KEY, None).unwrap();
    let mut public_key = small.public_key_bytes();
    public_key.exponent_be = vec![1, 0, 1];
    let external = ExternalSignature {
        public_key,
        signature_be: vec![0; 384],
    };
    assert!(matches!(
        block_on(sign(t1_body(), &external)),
        Err(SignError::Key(KeyError::Exponent { .. }))
    ));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn external_signature_two_step_and_corruption() {
    let signer = PrivateKeySigner::from_pem(GRAMINE_KEY, None).unwrap();
    let body = t1_body();
    let payload = prepare(&body);
    let sig = signer.sign_message(&payload).unwrap();
    let public_key: SignerPublicKey = signer.public_key_bytes();
    let s = complete(body.clone(), &public_key, &sig).unwrap();
    assert_eq!(s.to_bytes().as_slice(), T1_SIG);

    let external = ExternalSignature {
        public_key: public_key.clone(),
        signature_be: sig.clone(),
    };
    assert_eq!(
        block_on(sign(body.clone(), &external)).unwrap().to_bytes(),
        s.to_bytes()
    );

    let mut corrupted = sig.clone();
    corrupted[200] ^= 0x10;
    let external = ExternalSignature {
        public_key: public_key.clone(),
        signature_be: corrupted,
    };
    assert_eq!(
        block_on(sign(body.clone(), &external)),
        Err(SignError::Signature(SignatureError::Invalid))
    );
    // A valid signature by another key does not verify either.
    let other = PrivateKeySigner::from_pem(SIG1_KEY, None).unwrap();
    let foreign = other.sign_message(&payload).unwrap();
    assert_eq!(
        complete(body, &public_key, &foreign),
        Err(SignError::Signature(SignatureError::Invalid))
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn corrupted_and_truncated_sig_files() {
    assert_eq!(
        Sigstruct::parse(&T1_SIG[..1000]),
        Err(SigstructError::Size { len: 1000 })
    );
    let mut bytes = T1_SIG.to_vec();
    bytes[600] ^= 1; // inside SIGNATURE
    let s = Sigstruct::parse(&bytes).unwrap();
    assert!(s.verify_signature().is_err());
    let view = SigstructView::new(&s);
    assert!(!view.signature_valid);
    assert!(view.signature_error.is_some());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn generated_key_signs_and_exports_pkcs8() {
    let signer = PrivateKeySigner::generate(&mut getrandom::SysRng).unwrap();
    let s = block_on(sign(t1_body(), &signer)).unwrap();
    s.verify().unwrap();
    let pem = signer.to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let again = PrivateKeySigner::from_pem(&pem, None).unwrap();
    assert_eq!(again.public_key_bytes(), signer.public_key_bytes());
    assert_eq!(again.sign_sigstruct(t1_body()).unwrap(), s);
}
