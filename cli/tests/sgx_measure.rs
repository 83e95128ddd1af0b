//! `kiln sgx measure` on the Gramine test vectors.

use std::path::PathBuf;
use std::process::Command;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/testdata/gramine")
        .join(name)
}

fn kiln(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

fn measure(manifest: &str) -> std::process::Output {
    let m = testdata(manifest);
    let p = testdata("libpal_test.so");
    kiln(&[
        "sgx".as_ref(),
        "measure".as_ref(),
        "--manifest".as_ref(),
        m.as_os_str(),
        "--libpal".as_ref(),
        p.as_os_str(),
    ])
}

#[test]
fn t1() {
    let out = measure("t1.manifest.sgx");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mrenclave deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b\n"
    );
}

#[test]
fn t2() {
    let out = measure("t2.manifest.sgx");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mrenclave f3e636e9c4e2f36898cff29975b94299ac175fb72d84338ad090c7e44d516c18\n"
    );
}

#[test]
fn bad_libpal_is_a_clear_error() {
    let m = testdata("t1.manifest.sgx");
    let out = kiln(&[
        "sgx".as_ref(),
        "measure".as_ref(),
        "--manifest".as_ref(),
        m.as_os_str(),
        "--libpal".as_ref(),
        m.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("libpal.so: not an ELF file"), "{err}");
}

#[test]
fn writes_sgxs() {
    let dir = std::env::temp_dir().join(format!("kiln-measure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("t1.sgxs");
    let m = testdata("t1.manifest.sgx");
    let p = testdata("libpal_test.so");
    let out = kiln(&[
        "sgx".as_ref(),
        "measure".as_ref(),
        "--manifest".as_ref(),
        m.as_os_str(),
        "--libpal".as_ref(),
        p.as_os_str(),
        "--sgxs".as_ref(),
        out_path.as_os_str(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stream = std::fs::read(&out_path).unwrap();
    let hash = kiln_engine::sgx::sgxs::measure_sgxs(stream.as_slice()).unwrap();
    assert_eq!(
        hex::encode(hash.mrenclave),
        "deb0d147ec1d47de844d864dd75b7d9169ea0f5bbeacad8c7e2ad3b827fd476b"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
