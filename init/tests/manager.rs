//! kiln-init's MANAGER_CA path against a loopback HTTP server (std `TcpListener` in a
//! thread) that checks what a manager checks of the request — the CSR's self-signature,
//! the quote being the attestation file's and its report data hashing the CSR's key, the
//! subject — and answers from a script: success writes the chain and the key; a 403
//! refusal stops with the reason; a 503 then 200 is retried once; a dead port gives up
//! after the (test-sized) budget.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use kiln_init::attest::Attestation;
use kiln_init::config::CertRequest;
use kiln_init::manager::{ManagerClient, ManagerError, RetryPolicy};
use kiln_init::provision::{provision_one, ProvisionError, Provisioned};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::sha2::{Digest as _, Sha256};
use rsa::signature::Verifier as _;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder};
use x509_cert::der::{Decode as _, DecodePem as _, Encode as _, EncodePem as _};
use x509_cert::request::CertReq;

const QUOTE: &[u8] = b"\x03\x00test quote bytes";
const SUBJECT: &str = "app.example.com";

/// One scripted answer: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);
/// Makes an answer from the request's CSR key.
type Script = Box<dyn FnOnce(&[u8]) -> Answer + Send>;

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    csr_spki: Vec<u8>,
    quote: Vec<u8>,
    subject: String,
    fields: Vec<String>,
}

struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A CA (RSA, from kiln-init's own key generator) that signs leaves for CSR keys.
struct Ca {
    key: rsa::PrivateKey,
    name: x509_cert::name::Name,
    pem: String,
}

struct Issued(x509_cert::name::Name, x509_cert::name::Name);

impl BuilderProfile for Issued {
    fn get_issuer(&self, _subject: &x509_cert::name::Name) -> x509_cert::name::Name {
        self.0.clone()
    }
    fn get_subject(&self) -> x509_cert::name::Name {
        self.1.clone()
    }
    fn build_extensions(
        &self,
        _spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: x509_cert::spki::SubjectPublicKeyInfoRef<'_>,
        _tbs: &x509_cert::certificate::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<x509_cert::ext::Extension>> {
        Ok(Vec::new())
    }
}

fn validity() -> x509_cert::time::Validity {
    let now = SystemTime::now();
    x509_cert::time::Validity::new(
        x509_cert::time::Time::try_from(now - Duration::from_secs(60)).unwrap(),
        x509_cert::time::Time::try_from(now + Duration::from_secs(3600)).unwrap(),
    )
}

fn sign(
    ca_key: &rsa::PrivateKey,
    issuer: &x509_cert::name::Name,
    subject: &x509_cert::name::Name,
    spki: &[u8],
) -> String {
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki).unwrap();
    let serial = x509_cert::serial_number::SerialNumber::new(&[1, 2, 3]).unwrap();
    let b = CertificateBuilder::new(
        Issued(issuer.clone(), subject.clone()),
        serial,
        validity(),
        spki,
    )
    .unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(ca_key.clone());
    b.build::<_, rsa::pkcs1v15::Signature>(&signer)
        .unwrap()
        .to_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
}

fn make_ca() -> Ca {
    let k = kiln_init::cert::generate_key(2048).unwrap();
    let name = kiln_init::cert::subject_name("kiln test manager CA").unwrap();
    let pem = sign(&k.key, &name, &name, &k.spki_der);
    Ca {
        key: k.key,
        name,
        pem,
    }
}

fn ok_answer(ca: &Ca, csr_spki: &[u8]) -> String {
    let leaf = sign(
        &ca.key,
        &ca.name,
        &kiln_init::cert::subject_name(SUBJECT).unwrap(),
        csr_spki,
    );
    serde_json::json!({
        "certificateChain": format!("{leaf}{}", ca.pem),
        "certificate": leaf,
        "serial": "010203",
    })
    .to_string()
}

/// Checks a request body as a manager would; returns what it saw.
fn check_request(path: &str, body: &[u8]) -> Seen {
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON body");
    let obj = v.as_object().expect("object");
    let mut fields: Vec<String> = obj.keys().cloned().collect();
    fields.sort();
    let csr = CertReq::from_pem(obj["csr"].as_str().unwrap().as_bytes()).expect("PEM CSR");
    let spki = csr.info.public_key.to_der().unwrap();
    // Self-signed by its RSA key (sha256WithRSAEncryption).
    assert_eq!(csr.algorithm.oid.to_string(), "1.2.840.113549.1.1.11");
    let pk = rsa::PublicKey::from_public_key_der(&spki).unwrap();
    let sig = rsa::pkcs1v15::Signature::try_from(csr.signature.raw_bytes()).unwrap();
    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk)
        .verify(&csr.info.to_der().unwrap(), &sig)
        .expect("the CSR's signature verifies with its key");
    assert_eq!(csr.info.subject.to_string(), format!("CN={SUBJECT}"));
    let quote = base64::engine::general_purpose::STANDARD
        .decode(obj["quote"].as_str().unwrap())
        .expect("base64 quote");
    Seen {
        path: path.to_string(),
        csr_spki: spki,
        quote,
        subject: obj["subject"].as_str().unwrap().to_string(),
        fields,
    }
}

/// Serves `script` (a function of the request's CSR key → answer), one connection per
/// request, then stops.
fn serve(script: Vec<Script>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/mgr/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for answer in script {
            let (stream, _) = listener.accept().unwrap();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap_or_default().to_string();
            assert!(line.starts_with("POST "), "{line}");
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            let s = check_request(&path, &body);
            let (status, headers, text) = answer(&s.csr_spki);
            seen2.lock().unwrap().push(s);
            let mut out = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                text.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&text);
            let mut stream = stream;
            stream.write_all(out.as_bytes()).unwrap();
            stream.flush().unwrap();
        }
    });
    Server { base, seen }
}

struct Env {
    _dir: tempfile::TempDir,
    att_dir: tempfile::TempDir,
    attestation: Attestation,
    req: CertRequest,
}

fn env(manager: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let att_dir = tempfile::tempdir().unwrap();
    let attestation = Attestation::at(att_dir.path());
    std::fs::write(attestation.user_report_data(), b"").unwrap();
    std::fs::write(attestation.quote(), QUOTE).unwrap();
    let base = dir.path().display().to_string();
    Env {
        req: CertRequest {
            subject: SUBJECT.into(),
            key_size: 2048,
            key_path: format!("{base}/keys/key.pem"),
            cert_path: format!("{base}/certs/chain.pem"),
            issuer: "MANAGER_CA".into(),
            manager: Some(manager.to_string()),
        },
        _dir: dir,
        att_dir,
        attestation,
    }
}

fn quick(lines: Arc<Mutex<Vec<String>>>) -> ManagerClient {
    ManagerClient::new(
        RetryPolicy {
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
            max_attempts: 3,
            budget: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        },
        move |l| lines.lock().unwrap().push(l.to_string()),
    )
}

/// Provisions `e`'s certificate as `certificates[index]` with the quick test policy, its
/// retry lines going to `lines`.
fn provision(
    e: &Env,
    index: usize,
    lines: Arc<Mutex<Vec<String>>>,
) -> Result<Provisioned, ProvisionError> {
    provision_one(
        index,
        &e.req,
        &e.attestation,
        &quick(lines),
        SystemTime::now(),
    )
}

#[test]
fn an_issued_chain_is_written_with_the_key() {
    let ca = Arc::new(make_ca());
    let ca2 = ca.clone();
    let server = serve(vec![Box::new(move |spki| {
        (200, vec![], ok_answer(&ca2, spki))
    })]);
    let e = env(&server.base);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let p = provision(&e, 0, lines.clone()).unwrap();
    assert!(p.manager_issued && !p.quote_embedded);
    assert!(lines.lock().unwrap().is_empty());

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.path, "/mgr/certificates/issue");
    // Exactly csr, quote, subject: no collateral.
    assert_eq!(s.fields, ["csr", "quote", "subject"]);
    assert_eq!(s.quote, QUOTE);
    assert_eq!(s.subject, SUBJECT);
    // The report data written before the quote was read hashes the CSR's key.
    let rd = std::fs::read(e.attestation.user_report_data()).unwrap();
    assert_eq!(&rd[..32], Sha256::digest(&s.csr_spki).as_slice());
    assert_eq!(rd[32..], [0u8; 32]);

    // certPath holds the chain (leaf then CA) for our key, 0644; keyPath the key, 0600.
    let chain = std::fs::read_to_string(&e.req.cert_path).unwrap();
    assert!(chain.ends_with(&ca.pem), "{chain}");
    let end = chain.find("-----END CERTIFICATE-----").unwrap() + 25;
    let leaf = x509_cert::Certificate::from_pem(&chain.as_bytes()[..end]).unwrap();
    assert_eq!(
        leaf.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        s.csr_spki
    );
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.req.cert_path), 0o644);
    assert_eq!(mode(&e.req.key_path), 0o600);
    let key = std::fs::read_to_string(&e.req.key_path).unwrap();
    let key = <rsa::PrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&key).unwrap();
    let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&key.to_public_key()).unwrap();
    assert_eq!(spki.as_bytes(), s.csr_spki.as_slice());
    drop(e.att_dir);
}

#[test]
fn a_refusal_stops_with_the_reason_and_writes_nothing() {
    let server = serve(vec![Box::new(|_| {
        (
            403,
            vec![],
            serde_json::json!({
                "errorType": "Forbidden",
                "reason": "refused by check approval: record r1 (registry.example/app:kiln) is pending: an operator has not approved it",
            })
            .to_string(),
        )
    })]);
    let e = env(&server.base);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = provision(&e, 2, lines.clone()).unwrap_err();
    assert!(
        matches!(
            &err,
            ProvisionError::Manager {
                source: ManagerError::Refused { status: 403, .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "certificate `{SUBJECT}` (certificates[2]): the manager at {} refused: refused by check approval: record r1 (registry.example/app:kiln) is pending: an operator has not approved it",
            server.base
        )
    );
    assert!(lines.lock().unwrap().is_empty(), "a 403 is not retried");
    assert_eq!(server.seen.lock().unwrap().len(), 1);
    assert!(!std::path::Path::new(&e.req.cert_path).exists());
    assert!(!std::path::Path::new(&e.req.key_path).exists());
}

#[test]
fn a_503_then_200_is_retried_once() {
    let ca = Arc::new(make_ca());
    let ca2 = ca.clone();
    let server = serve(vec![
        Box::new(|_| {
            (
                503,
                vec![("retry-after", "3600".to_string())],
                r#"{"errorType":"Unavailable","reason":"approvals store busy"}"#.to_string(),
            )
        }),
        Box::new(move |spki| (200, vec![], ok_answer(&ca2, spki))),
    ]);
    let e = env(&server.base);
    let lines = Arc::new(Mutex::new(Vec::new()));
    provision(&e, 0, lines.clone()).unwrap();
    // Retry-After 3600 s was capped at the policy's 50 ms (the retry line says so).
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        format!(
            "certificate `{SUBJECT}` (certificates[0]): the manager at {}: attempt 1 of 3 failed (HTTP 503: approvals store busy); retrying in 0.05 s",
            server.base
        )
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    // The same CSR both times.
    assert_eq!(seen[0].csr_spki, seen[1].csr_spki);
    assert!(std::fs::read_to_string(&e.req.cert_path)
        .unwrap()
        .ends_with(&ca.pem));
}

#[test]
fn a_dead_port_gives_up_after_the_budget() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let e = env(&base);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = provision(&e, 0, lines.clone()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            &err,
            ProvisionError::Manager {
                source: ManagerError::GaveUp { attempts: 3, .. },
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.starts_with(&format!(
            "certificate `{SUBJECT}` (certificates[0]): the manager at {base} did not issue the certificate after 3 attempts"
        )),
        "{msg}"
    );
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("attempt 1 of 3 failed") && lines[1].contains("attempt 2 of 3"));
    // No key or quote bytes in what was said.
    let quote_b64 = base64::engine::general_purpose::STANDARD.encode(QUOTE);
    for l in lines.iter().chain([&msg]) {
        assert!(!l.contains(&quote_b64) && !l.contains("PRIVATE"), "{l}");
    }
    assert!(!std::path::Path::new(&e.req.key_path).exists());
}

#[test]
fn a_200_for_another_key_is_not_written() {
    let ca = Arc::new(make_ca());
    let ca2 = ca.clone();
    let other = kiln_init::cert::generate_key(2048).unwrap();
    let server = serve(vec![Box::new(move |_| {
        (200, vec![], ok_answer(&ca2, &other.spki_der))
    })]);
    let e = env(&server.base);
    let err = provision(&e, 0, Arc::new(Mutex::new(Vec::new())))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not for this enclave's key"), "{err}");
    assert!(!std::path::Path::new(&e.req.cert_path).exists());
}
