//! `kiln attest verify` on dcap-qvl's sample SGX quote and collateral
//! (engine/testdata/attest): exit codes 0 / 2 / 1, text and JSON output, `--at`,
//! `--allow-tcb`, `--expect-mrenclave`, RA-TLS certificates, `--image` against a
//! converted fixture image, and `--pccs` against a loopback PCCS stand-in that serves the
//! sample's Intel-signed collateral the way a PCCS does (URL-encoded issuer-chain
//! headers, `{"tcbInfo": …, "signature": …}` bodies, hex root CA CRL).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use kiln_tests::converted_fixture::{converted_image, Tamper};
use kiln_tests::images::write_oci_layout;

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const INSIDE: &str = "2025-07-01T00:00:00Z";
const AFTER: &str = "1754006400"; // 2025-08-01, after the collateral's nextUpdate
const MRENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";

fn data(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "engine",
        "testdata",
        "attest",
        name,
    ]
    .iter()
    .collect();
    p.display().to_string()
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("run kiln")
}

fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn sample_quote_exit_codes() -> R {
    let (quote, coll) = (data("sgx_quote"), data("sgx_quote_collateral.json"));
    let base = ["attest", "verify", &quote, "--collateral", &coll];

    // Status ConfigurationAndSWHardeningNeeded: refused by default (2), passes when allowed (0).
    let out = kiln(&[&base[..], &["--at", INSIDE]].concat());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("FAIL platform/tcb-status: ConfigurationAndSWHardeningNeeded"),
        "{t}"
    );
    assert!(t.contains("PASS quote/quote-signature"), "{t}");
    assert!(t.contains("NOT verified: 1 check(s) failed"), "{t}");

    let allow = [
        "--at",
        INSIDE,
        "--allow-tcb",
        "configurationandswhardeningneeded",
    ];
    let out = kiln(&[&base[..], &allow].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains(&format!("mrenclave: {MRENCLAVE}")), "{t}");
    assert!(t.contains("tcb status: ConfigurationAndSWHardeningNeeded (advisories: INTEL-SA-00289, INTEL-SA-00615)"), "{t}");
    assert!(t.contains("verified: every check passed"), "{t}");

    let out = kiln(&[&base[..], &allow, &["--json"]].concat());
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["passed"], true);
    assert_eq!(v["enclave"]["mrenclave"], MRENCLAVE);
    assert_eq!(v["advisoryIds"][1], "INTEL-SA-00615");

    // Wrong expected MRENCLAVE: 2.
    let zero = "0".repeat(64);
    let out = kiln(&[&base[..], &allow, &["--expect-mrenclave", &zero]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("FAIL enclave/expected-mrenclave"));

    // Expired collateral (--at after its nextUpdate): 2.
    let out = kiln(
        &[
            &base[..],
            &[
                "--at",
                AFTER,
                "--allow-tcb",
                "ConfigurationAndSWHardeningNeeded",
            ],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains("FAIL collateral/collateral-time") && t.contains("expired"),
        "{t}"
    );
    Ok(())
}

#[test]
fn unreadable_inputs_and_usage_errors_exit_1() -> R {
    let (quote, coll) = (data("sgx_quote"), data("sgx_quote_collateral.json"));
    let dir = tempfile::tempdir()?;
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0x03u8, 0x00, 0x01])?;
    let junk = junk.display().to_string();
    let bad_json = dir.path().join("c.json");
    std::fs::write(&bad_json, b"{\"pck_crl_issuer_chain\": 1}")?;
    let bad_json = bad_json.display().to_string();
    for args in [
        vec!["attest", "verify", &junk, "--collateral", &coll],
        vec!["attest", "verify", &quote, "--collateral", &bad_json],
        vec!["attest", "verify", "/nonexistent/q", "--collateral", &coll],
        vec!["attest", "verify", &quote], // neither --collateral nor --pccs
        vec![
            "attest",
            "verify",
            &quote,
            "--collateral",
            &coll,
            "--allow-tcb",
            "Revoked",
        ],
        vec![
            "attest",
            "verify",
            &quote,
            "--collateral",
            &coll,
            "--at",
            "soon",
        ],
    ] {
        let out = kiln(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    }
    let out = kiln(&["attest", "verify", &quote, "--collateral", &bad_json]);
    assert!(
        text(&out).contains("pck_crl_issuer_chain"),
        "{}",
        text(&out)
    );
    Ok(())
}

#[test]
fn ratls_certificates_that_do_not_bind_their_key_fail() -> R {
    let coll = data("sgx_quote_collateral.json");
    for (cert, format) in [
        ("ratls-legacy.pem", "legacy"),
        ("ratls-gramine-legacy-oid.pem", "legacy"),
        ("ratls-tcg-dice.pem", "tcg-dice"),
    ] {
        let path = data(cert);
        let out = kiln(&[
            "attest",
            "verify",
            &path,
            "--collateral",
            &coll,
            "--at",
            INSIDE,
            "--allow-tcb",
            "ConfigurationAndSWHardeningNeeded",
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let t = text(&out);
        assert!(
            t.contains(&format!("evidence: ra-tls certificate ({format})")),
            "{t}"
        );
        assert!(t.contains("FAIL certificate/report-data-binding"), "{t}");
        assert!(t.contains("NOT verified: 1 check(s) failed"), "{t}");
    }
    Ok(())
}

#[test]
fn image_that_is_not_the_running_enclave_fails() -> R {
    let f = converted_image(Tamper::None)?;
    let dir = tempfile::tempdir()?;
    write_oci_layout(dir.path(), &[&f.image], &[("v1", &f.image.manifest)])?;
    let img = format!("oci:{}:v1", dir.path().display());
    let out = kiln(&[
        "attest",
        "verify",
        &data("sgx_quote"),
        "--collateral",
        &data("sgx_quote_collateral.json"),
        "--at",
        INSIDE,
        "--allow-tcb",
        "ConfigurationAndSWHardeningNeeded",
        "--image",
        &img,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let failed: Vec<_> = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        failed,
        ["image-enclave", "image-mrsigner"],
        "{}",
        text(&out)
    );
    let why = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == "image-enclave")
        .map(|c| c["explanation"].to_string())
        .unwrap_or_default();
    assert!(why.contains(&f.mrenclave), "{why}");
    assert!(v["imageEnclave"].is_null());
    Ok(())
}

/// The sample collateral served as a PCCS serves it; returns the base URL and the
/// request paths seen (after the test).
fn pccs_stand_in() -> Result<(String, std::sync::mpsc::Receiver<String>), std::io::Error> {
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("sgx_quote_collateral.json"))?)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    let enc = |pem: &str| -> String {
        pem.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let pck_crl = hex_decode(&s("pck_crl"));
    let tcb = format!(
        r#"{{"tcbInfo":{},"signature":"{}"}}"#,
        s("tcb_info"),
        s("tcb_info_signature")
    );
    let qe = format!(
        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
        s("qe_identity"),
        s("qe_identity_signature")
    );
    let root_crl_hex = s("root_ca_crl");
    let (pck_chain, tcb_chain, qe_chain) = (
        enc(&s("pck_crl_issuer_chain")),
        enc(&s("tcb_info_issuer_chain")),
        enc(&s("qe_identity_issuer_chain")),
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => return,
            });
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                return;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            let _ = tx.send(path.clone());
            let (header, body): (String, Vec<u8>) = if path.contains("/pckcrl?ca=processor") {
                (
                    format!("SGX-PCK-CRL-Issuer-Chain: {pck_chain}"),
                    pck_crl.clone(),
                )
            } else if path.contains("/tcb?fmspc=00A067110000") {
                (
                    format!("TCB-Info-Issuer-Chain: {tcb_chain}"),
                    tcb.clone().into_bytes(),
                )
            } else if path.ends_with("/qe/identity") {
                (
                    format!("SGX-Enclave-Identity-Issuer-Chain: {qe_chain}"),
                    qe.clone().into_bytes(),
                )
            } else if path.ends_with("/rootcacrl") {
                ("X-Kind: crl".into(), root_crl_hex.clone().into_bytes())
            } else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\n{header}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        }
    });
    Ok((url, rx))
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[test]
fn collateral_from_a_pccs() -> R {
    let (url, seen) = pccs_stand_in()?;
    let dir = tempfile::tempdir()?;
    let saved = dir.path().join("collateral.json");
    let saved_path = saved.display().to_string();
    let state = dir.path().join("state");
    let state_path = state.display().to_string();
    let out = kiln(&[
        "attest",
        "verify",
        &data("sgx_quote"),
        "--pccs",
        &url,
        "--at",
        INSIDE,
        "--allow-tcb",
        "ConfigurationAndSWHardeningNeeded",
        "--save-collateral",
        &saved_path,
        "--state-dir",
        &state_path,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The fetched collateral is kept for the next quote of this platform. (The sample's
    // nextUpdate is in the past, so a later run fetches it again: the engine's
    // collateral_cache tests cover reuse.)
    let kept = std::fs::read_dir(state.join("collateral"))?.count();
    assert_eq!(kept, 1);
    // The saved collateral verifies the same quote offline.
    let out = kiln(&[
        "attest",
        "verify",
        &data("sgx_quote"),
        "--collateral",
        &saved_path,
        "--at",
        INSIDE,
        "--allow-tcb",
        "ConfigurationAndSWHardeningNeeded",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let paths: Vec<String> = seen.try_iter().collect();
    assert_eq!(
        paths,
        [
            "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
            "/sgx/certification/v4/tcb?fmspc=00A067110000",
            "/sgx/certification/v4/qe/identity",
            "/sgx/certification/v4/rootcacrl",
        ]
    );
    // Nothing listening: unreadable collateral, 1.
    let closed = TcpListener::bind("127.0.0.1:0")?;
    let dead = format!("http://{}", closed.local_addr()?);
    drop(closed);
    let out = kiln(&[
        "attest",
        "verify",
        &data("sgx_quote"),
        "--pccs",
        &dead,
        "--state-dir",
        &state_path,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("PCCS"), "{}", text(&out));
    Ok(())
}
