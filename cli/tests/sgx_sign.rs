//! `kiln sgx sign` on the Gramine vectors: a PEM key and the offline two-step flow both
//! give exactly Gramine's t1.sig; wrong keys are refused with a clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/testdata")
        .join(rel)
}

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn sign_args(out_dir: &Path) -> Vec<String> {
    vec![
        "sgx".into(),
        "sign".into(),
        "--manifest".into(),
        testdata("gramine/t1.manifest.sgx").display().to_string(),
        "--libpal".into(),
        testdata("gramine/libpal_test.so").display().to_string(),
        "--date".into(),
        "2025-01-02".into(),
        "--isvprodid".into(),
        "7".into(),
        "--isvsvn".into(),
        "3".into(),
        "--out".into(),
        out_dir.join("t1.sig").display().to_string(),
    ]
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-sgx-sign-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn pem_key_gives_gramines_sig() {
    let dir = tempdir("pem");
    let out = kiln()
        .args(sign_args(&dir))
        .arg("--key")
        .arg(testdata("gramine/test-key.pem"))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout
        .contains("mrenclave deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b"));
    assert!(stdout
        .contains("mrsigner 6c1c0067059a174d7b902d449fd101ffff9e9c5ca096d19d16a22a4ab3cf0bfe"));
    let written = std::fs::read(dir.join("t1.sig")).expect("sig written");
    let expected = std::fs::read(testdata("gramine/t1.sig")).expect("vector");
    assert!(written == expected, "t1.sig differs from Gramine's");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn offline_two_step_gives_gramines_sig() {
    let dir = tempdir("two-step");
    // Step 1: the payload.
    let mut args = sign_args(&dir);
    let out_pos = args.iter().position(|a| a == "--out").expect("--out");
    args.drain(out_pos..out_pos + 2);
    let payload = dir.join("payload.bin");
    let out = kiln()
        .args(&args)
        .arg("--payload-out")
        .arg(&payload)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payload_bytes = std::fs::read(&payload).expect("payload");
    assert_eq!(payload_bytes.len(), 256);

    // Signed elsewhere: here with the engine's own PEM signer standing in for an HSM.
    let pem = std::fs::read_to_string(testdata("gramine/test-key.pem")).expect("key");
    let key = kiln_engine::sgx::signer::PrivateKeySigner::from_pem(&pem, None).expect("key");
    let signature = key.sign_message(&payload_bytes).expect("sign");
    std::fs::write(dir.join("sig.bin"), &signature).expect("write sig");
    let public = kiln_engine::sgx::pem_key::load_private_key_pem(&pem, None).expect("key");
    let public_pem = rsa_public_pem(&public);
    std::fs::write(dir.join("pub.pem"), public_pem).expect("write pub");

    // Step 2: assemble.
    let out = kiln()
        .args(sign_args(&dir))
        .arg("--signature")
        .arg(dir.join("sig.bin"))
        .arg("--public-key")
        .arg(dir.join("pub.pem"))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(dir.join("t1.sig")).expect("sig written");
    let expected = std::fs::read(testdata("gramine/t1.sig")).expect("vector");
    assert!(
        written == expected,
        "two-step t1.sig differs from Gramine's"
    );

    // A signature over other bytes is refused, and no .sig is written.
    std::fs::remove_file(dir.join("t1.sig")).expect("rm");
    let mut bad = signature.clone();
    bad[10] ^= 1;
    std::fs::write(dir.join("sig.bin"), &bad).expect("write sig");
    let out = kiln()
        .args(sign_args(&dir))
        .arg("--signature")
        .arg(dir.join("sig.bin"))
        .arg("--public-key")
        .arg(dir.join("pub.pem"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));
    assert!(!dir.join("t1.sig").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

fn rsa_public_pem(private: &rsa::PrivateKey) -> String {
    use rsa::pkcs8::EncodePublicKey;
    rsa::PublicKey::from(private)
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .expect("encode")
}

#[test]
fn wrong_keys_are_refused_by_name() {
    for (file, expect) in [
        ("keys/rsa2048-e3.pem", "RSA-2048"),
        ("keys/rsa3072-e65537.pem", "65537"),
        ("keys/ec-p256.pem", "EC"),
    ] {
        let dir = tempdir("wrong");
        let out = kiln()
            .args(sign_args(&dir))
            .arg("--key")
            .arg(testdata(file))
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{file} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        assert!(!dir.join("t1.sig").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
