//! Certificates through kiln-init: the spec and the manifests with and without a
//! `certificates` request (entrypoint, trusted files, remote attestation, init.json,
//! warnings, the error for a runtime without kiln-init).

#![cfg(not(target_arch = "wasm32"))]

mod support;

use kiln_engine::api::parse_request;
use kiln_engine::gramine::init::{INIT_JSON_PATH, NO_KILN_INIT};
use kiln_engine::gramine::manifest::{manifest_table, render_manifest, Variant};
use kiln_engine::gramine::spec::{
    build_spec, build_spec_with_init, build_spec_with_manager, EnclaveSpec, SpecError,
};
use kiln_engine::gramine::validate::validate;
use kiln_engine::image::file_index::{FileEntry, FileIndex, FileKind};
use oci_spec::image::ImageConfiguration;
use sha2::{Digest, Sha256};

const KILN_INIT_HASH: [u8; 32] = [0x42; 32];

fn entry(kind: FileKind, mode: u32) -> FileEntry {
    FileEntry {
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

fn index() -> FileIndex {
    let mut idx = FileIndex::default();
    for d in ["/", "/app", "/etc", "/tmp", "/usr", "/usr/bin", "/data"] {
        idx.entries
            .insert(d.into(), entry(FileKind::Directory, 0o755));
    }
    for (p, b) in [("/usr/bin/app", 1u8), ("/etc/passwd", 2), ("/etc/group", 3)] {
        idx.entries.insert(
            p.into(),
            entry(
                FileKind::Regular {
                    size: 1,
                    sha256: [b; 32],
                },
                0o755,
            ),
        );
    }
    idx.captured.insert(
        "/etc/passwd".into(),
        b"root:x:0:0::/root:/bin/sh\n".to_vec(),
    );
    idx.captured
        .insert("/etc/group".into(), b"root:x:0:\n".to_vec());
    idx
}

fn config() -> ImageConfiguration {
    serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Entrypoint":["app"],"Cmd":["--serve","8080"],"Env":["PATH=/usr/bin"]}}"#,
    )
    .unwrap()
}

const PLAIN: &str = r#"{"inputImageName":"reg/app:1","outputImageName":"reg/app-sgx:1",
    "encryptedDirs":["/data"]"#;

fn request(certs: &str) -> String {
    format!("{PLAIN}{certs}}}")
}

const CERTS: &str = r#","certificates":[
    {"subject":"app.example","keyParam":{"size":3072},"keyPath":"/data/tls/key.pem","certPath":"/data/tls/cert.pem"},
    {"issuer":"SELF_IAS","subject":"other","keyPath":"/data/k2","certPath":"/data/c2"}]"#;

fn spec(req: &str, init: Option<[u8; 32]>) -> Result<EnclaveSpec, SpecError> {
    let req = validate(&parse_request(req.as_bytes()).unwrap()).unwrap();
    build_spec_with_init(&req, &config(), &index(), &support::runtime(), init)
}

fn trusted(spec: &EnclaveSpec, path: &str) -> Option<[u8; 32]> {
    spec.trusted_files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.sha256)
}

#[test]
fn certificates_start_kiln_init_with_the_apps_argv() {
    let s = spec(&request(CERTS), Some(KILN_INIT_HASH)).unwrap();
    let init = s.init.as_ref().unwrap();
    assert_eq!(init.entrypoint, "/opt/kiln/runtime/kiln-init");
    assert_eq!(s.program, "/usr/bin/app");
    assert_eq!(
        String::from_utf8(init.init_json.clone()).unwrap(),
        "{\"version\":1,\"program\":\"/usr/bin/app\",\"certificates\":[\
         {\"subject\":\"app.example\",\"keySize\":3072,\"keyPath\":\"/data/tls/key.pem\",\"certPath\":\"/data/tls/cert.pem\",\"issuer\":\"MANAGER_CA\"},\
         {\"subject\":\"other\",\"keySize\":2048,\"keyPath\":\"/data/k2\",\"certPath\":\"/data/c2\",\"issuer\":\"SELF_IAS\"}]}\n"
    );
    assert_eq!(
        trusted(&s, "/opt/kiln/runtime/kiln-init"),
        Some(KILN_INIT_HASH)
    );
    assert_eq!(
        trusted(&s, INIT_JSON_PATH),
        Some(Sha256::digest(&init.init_json).into())
    );
    assert!(trusted(&s, "/usr/bin/app").is_some());
    let mut sorted = s.trusted_files.clone();
    sorted.sort();
    assert_eq!(sorted, s.trusted_files);

    for variant in [Variant::Sgx1, Variant::Edmm, Variant::Direct] {
        let t = manifest_table(&s, variant).unwrap();
        let text = render_manifest(&s, variant).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(
            parsed["libos"]["entrypoint"].as_str(),
            Some("/opt/kiln/runtime/kiln-init")
        );
        let argv: Vec<&str> = parsed["loader"]["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(argv, ["app", "--serve", "8080"]);
        assert_eq!(parsed["sgx"]["remote_attestation"].as_str(), Some("dcap"));
        let uris: Vec<&str> = parsed["sgx"]["trusted_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["uri"].as_str().unwrap())
            .collect();
        assert!(uris.contains(&"file:/opt/kiln/runtime/kiln-init"));
        assert!(uris.contains(&"file:/opt/kiln/init.json"));
        assert!(!t.is_empty());
    }

    // The warnings say what is made and what is not available, per issuer.
    let w = s.warnings.join("\n");
    assert!(w.contains("self-signed") && w.contains("SGX quote"), "{w}");
    assert!(w.contains("certificates[0].issuer MANAGER_CA"), "{w}");
    assert!(!w.contains("certificates[1].issuer"), "{w}");
    assert!(!w.contains("not provisioned"), "{w}");
}

#[test]
fn a_manager_url_is_measured_into_manager_ca_entries() {
    let req = validate(&parse_request(request(CERTS).as_bytes()).unwrap()).unwrap();
    let plain = spec(&request(CERTS), Some(KILN_INIT_HASH)).unwrap();
    let url = "https://kiln.example";
    let s = build_spec_with_manager(
        &req,
        &config(),
        &index(),
        &support::runtime(),
        Some(KILN_INIT_HASH),
        Some(url),
    )
    .unwrap();
    let init = s.init.as_ref().unwrap();
    assert_eq!(
        String::from_utf8(init.init_json.clone()).unwrap(),
        "{\"version\":1,\"program\":\"/usr/bin/app\",\"certificates\":[\
         {\"subject\":\"app.example\",\"keySize\":3072,\"keyPath\":\"/data/tls/key.pem\",\"certPath\":\"/data/tls/cert.pem\",\"issuer\":\"MANAGER_CA\",\"manager\":\"https://kiln.example\"},\
         {\"subject\":\"other\",\"keySize\":2048,\"keyPath\":\"/data/k2\",\"certPath\":\"/data/c2\",\"issuer\":\"SELF_IAS\"}]}\n"
    );
    // init.json is a trusted file: the URL is measured.
    assert_eq!(
        trusted(&s, INIT_JSON_PATH),
        Some(Sha256::digest(&init.init_json).into())
    );
    assert_ne!(trusted(&s, INIT_JSON_PATH), trusted(&plain, INIT_JSON_PATH));
    let w = s.warnings.join("\n");
    assert!(
        w.contains("certificates[0].issuer MANAGER_CA: kiln-init requests the certificate from the manager at https://kiln.example at start-up")
            && w.contains("until an operator approves"),
        "{w}"
    );
    assert!(
        !w.contains("not available; the certificate is self-signed"),
        "{w}"
    );
    // Without the URL, the same bytes as build_spec_with_init.
    let none = build_spec_with_manager(
        &req,
        &config(),
        &index(),
        &support::runtime(),
        Some(KILN_INIT_HASH),
        None,
    )
    .unwrap();
    assert_eq!(none.init, plain.init);
    assert_eq!(none.warnings, plain.warnings);
}

#[test]
fn direct_mode_keeps_kiln_inits_files_across_exec() {
    let s = spec(&request(CERTS), Some(KILN_INIT_HASH)).unwrap();
    let direct: toml::Table = render_manifest(&s, Variant::Direct)
        .unwrap()
        .parse()
        .unwrap();
    let host = "/opt/fortanix/enclave-os/default-efs-dirs/data";
    let mount = direct["fs"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"].as_str() == Some("/data"))
        .unwrap();
    assert_eq!(mount["type"].as_str(), Some("chroot"));
    assert_eq!(mount["uri"].as_str(), Some(format!("file:{host}").as_str()));
    let allowed: Vec<&str> = direct["sgx"]["allowed_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        allowed.contains(&format!("file:{host}/").as_str()),
        "{allowed:?}"
    );
    // The measured manifests keep the encrypted mount and allow nothing more.
    let sgx1: toml::Table = render_manifest(&s, Variant::Sgx1).unwrap().parse().unwrap();
    let enc = sgx1["fs"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"].as_str() == Some("/data"))
        .unwrap();
    assert_eq!(enc["type"].as_str(), Some("encrypted"));
    assert!(!sgx1["sgx"]["allowed_files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_str().unwrap_or_default().contains("default-efs-dirs")));
    // Without certificates, direct mode keeps its tmpfs.
    let plain = spec(&request(""), Some(KILN_INIT_HASH)).unwrap();
    let text = render_manifest(&plain, Variant::Direct).unwrap();
    assert!(text.contains("type = \"tmpfs\""), "{text}");
    assert!(!text.contains("default-efs-dirs"), "{text}");
}

#[test]
fn a_runtime_without_kiln_init_is_refused_only_when_certificates_are_asked() {
    let e = spec(&request(CERTS), None).unwrap_err();
    assert_eq!(e, SpecError::Runtime(NO_KILN_INIT.into()));
    assert!(e.to_string().contains("repack it with `kiln runtime pack`"));
    assert!(spec(&request(""), None).is_ok());
}

#[test]
fn without_certificates_nothing_changes() {
    let req = validate(&parse_request(request("").as_bytes()).unwrap()).unwrap();
    let plain = build_spec(&req, &config(), &index(), &support::runtime()).unwrap();
    let with_init = spec(&request(""), Some(KILN_INIT_HASH)).unwrap();
    assert_eq!(plain, with_init);
    assert!(plain.init.is_none());
    assert!(trusted(&plain, "/opt/kiln/runtime/kiln-init").is_none());
    for variant in [Variant::Sgx1, Variant::Edmm, Variant::Direct] {
        let text = render_manifest(&plain, variant).unwrap();
        assert!(text.contains("entrypoint = \"/usr/bin/app\""), "{text}");
        assert!(text.contains("remote_attestation = \"none\""), "{text}");
        assert!(!text.contains("kiln-init") && !text.contains("init.json"));
    }
}
