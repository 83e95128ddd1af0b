//! `kiln sgx show` on real SIGSTRUCTs (Gramine's t1.sig, Fortanix's test_enclave.sig).

use std::path::PathBuf;
use std::process::Command;

fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/testdata")
        .join(rel)
}

fn kiln(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

#[test]
fn text_output_of_t1() {
    let path = testdata("gramine/t1.sig");
    let out = kiln(&["sgx", "show", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "date:                 2025-01-02",
        "attributes.flags:     0x0000000000000006 [DEBUG, MODE64BIT]",
        "attributemask.xfrm:   0xfffffffffff9ff1b",
        "isvprodid:            7",
        "isvsvn:               3",
        "mrenclave:            deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b",
        "mrsigner:             6c1c0067059a174d7b902d449fd101ffff9e9c5ca096d19d16a22a4ab3cf0bfe",
        "signature check:      valid",
        "q1/q2 check:          valid",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn json_output_of_test_enclave() {
    let path = testdata("sgxs/test_enclave.sig");
    let out = kiln(&["sgx", "show", "--json", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["mrsigner"],
        "fb4bab3d6036ac1d730fa83d7366df1dd2dfeac194ef335d6854d8a6c6475542"
    );
    assert_eq!(
        v["enclavehash"],
        "784acfd7d5096a8f0fbd3265760bff21b120f62407a9a9e5ba31aa3c8ed198fc"
    );
    assert_eq!(v["date"], "2016-12-14");
    assert_eq!(v["isvprodid"], 0xFFFF);
    assert_eq!(v["attribute_mask"]["flags"], "0xfffffffffffffffd");
    assert_eq!(v["signature_valid"], true);
    assert_eq!(v["q1_q2_valid"], true);
}

#[test]
fn truncated_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("kiln-show-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("short.sig");
    let bytes = std::fs::read(testdata("gramine/t1.sig")).unwrap();
    std::fs::write(&path, &bytes[..100]).unwrap();
    let out = kiln(&["sgx", "show", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1808 bytes; got 100"), "{err}");
}
