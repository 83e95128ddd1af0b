//! Runs the built kiln-init natively. It reads the fixed path /opt/kiln/init.json, so the
//! test runs it in a private mount namespace (`unshare -m`, root only) with a tmpfs over
//! /opt; elsewhere the test says why it skipped.

use std::process::Command;

use x509_cert::der::DecodePem as _;

fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Runs kiln-init as `argv0 ARGS...` with /opt/kiln/init.json = `config`.
fn run(config: &str, argv0: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("init.json");
    std::fs::write(&cfg, config).unwrap();
    let script = r#"mount -t tmpfs kiln-test /opt && mkdir -p /opt/kiln && cp "$1" /opt/kiln/init.json && shift && exec -a "$@""#;
    Command::new("unshare")
        .args(["-m", "bash", "-c", script, "wrapper"])
        .arg(&cfg)
        .arg(argv0)
        .arg(env!("CARGO_BIN_EXE_kiln-init"))
        .args(args)
        .env("KILN_TEST_VAR", "passed through")
        .output()
        .unwrap()
}

#[test]
fn provisions_then_execs_the_program_with_its_argv_and_env() {
    if !can_unshare() {
        eprintln!("skipped: `unshare -m` is not permitted here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/k.pem");
    let cert = dir.path().join("certs/c.pem");
    let config = serde_json::json!({
        "version": 1,
        "program": "/bin/sh",
        "certificates": [{
            "subject": "native.test", "keySize": 2048, "issuer": "MANAGER_CA",
            "keyPath": key, "certPath": cert,
        }],
    })
    .to_string();
    let script = r#"echo "argv0=$(tr '\0' '\n' < /proc/$$/cmdline | head -n 1) arg=$1 env=$KILN_TEST_VAR"; cat "$0""#;
    let out = run(
        &config,
        "app-sh",
        &["-c", script, cert.to_str().unwrap(), "one"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.starts_with("argv0=app-sh arg=one env=passed through\n-----BEGIN CERTIFICATE-----"),
        "{stdout}"
    );
    // Outside SGX: one line says the certificate carries no quote.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no SGX quote"), "{stderr}");
    let pem = stdout.split_once('\n').unwrap().1;
    let c = x509_cert::Certificate::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(c.tbs_certificate().subject().to_string(), "CN=native.test");
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn a_failure_stops_the_start_up() {
    if !can_unshare() {
        eprintln!("skipped: `unshare -m` is not permitted here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let config = serde_json::json!({
        "version": 1,
        "program": "/bin/sh",
        "certificates": [{
            "subject": "native.test", "keySize": 2048, "issuer": "NODE",
            "keyPath": blocker.join("k.pem"), "certPath": dir.path().join("c.pem"),
        }],
    })
    .to_string();
    let out = run(&config, "app", &["-c", "echo app ran"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kiln-init: certificate `native.test` (certificates[0]): writing ")
            && last.contains("not-a-dir/k.pem"),
        "{stderr}"
    );

    let out = run("{\"version\":9}", "app", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("kiln-init: /opt/kiln/init.json: "),
        "{stderr}"
    );
}

#[test]
fn a_manager_entry_without_attestation_stops_the_start_up() {
    if !can_unshare() {
        eprintln!("skipped: `unshare -m` is not permitted here");
        return;
    }
    if std::path::Path::new("/dev/attestation").exists() {
        eprintln!("skipped: /dev/attestation exists here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "version": 1,
        "program": "/bin/sh",
        "certificates": [{
            "subject": "native.test", "keySize": 2048, "issuer": "MANAGER_CA",
            "keyPath": dir.path().join("k.pem"), "certPath": dir.path().join("c.pem"),
            "manager": "http://127.0.0.1:9",
        }],
    })
    .to_string();
    let out = run(&config, "app", &["-c", "echo app ran"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    // One line: no "certificates carry no SGX quote" notice (nothing is self-signed).
    assert_eq!(
        stderr,
        "kiln-init: certificate `native.test` (certificates[0]): the manager at http://127.0.0.1:9 needs an SGX quote, but /dev/attestation is not available (not running under SGX with remote attestation)\n"
    );
    assert!(!dir.path().join("k.pem").exists());
}
