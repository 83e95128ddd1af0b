//! The Gramine manifest of a small synthetic image against a hand-checked golden file,
//! both variants, TOML validity, determinism, request errors that only the image can
//! reveal, and the size and time of a 20,000-file manifest. All but the timing test run
//! natively and in headless Chromium (wasm32).

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod support;

use kiln_engine::api::{parse_request, ErrorType};
use kiln_engine::gramine::manifest::{manifest_table, render_manifest, Variant};
use kiln_engine::gramine::spec::{build_spec, EnclaveSpec, SpecError};
use kiln_engine::gramine::validate::validate;
use kiln_engine::image::file_index::{FileEntry, FileIndex, FileKind};
use oci_spec::image::ImageConfiguration;
#[cfg(not(target_arch = "wasm32"))]
use sha2::{Digest, Sha256};

const GOLDEN: &str = include_str!("data/gramine_golden.manifest.sgx");

fn entry(kind: FileKind, mode: u32) -> FileEntry {
    FileEntry {
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

fn reg(byte: u8, mode: u32) -> FileEntry {
    entry(
        FileKind::Regular {
            size: 1,
            sha256: [byte; 32],
        },
        mode,
    )
}

fn link(t: &str) -> FileEntry {
    entry(FileKind::Symlink { target: t.into() }, 0o777)
}

fn dir() -> FileEntry {
    entry(FileKind::Directory, 0o755)
}

fn small_index() -> FileIndex {
    let mut idx = FileIndex::default();
    let e = &mut idx.entries;
    for d in [
        "/", "/app", "/dev", "/etc", "/proc", "/tmp", "/usr", "/usr/bin", "/usr/lib",
    ] {
        e.insert(d.into(), dir());
    }
    e.insert("/app/config.json".into(), reg(0x01, 0o644));
    e.insert("/bin".into(), link("usr/bin"));
    e.insert(
        "/dev/null".into(),
        entry(FileKind::CharDevice { major: 1, minor: 3 }, 0o666),
    );
    e.insert("/etc/group".into(), reg(0x02, 0o644));
    e.insert("/etc/hosts".into(), reg(0x03, 0o644));
    e.insert("/etc/passwd".into(), reg(0x04, 0o644));
    e.insert("/etc/resolv.conf".into(), reg(0x05, 0o644));
    e.insert("/lib64".into(), link("/usr/lib"));
    e.insert("/opt/kiln/runtime/libsysdb.so".into(), reg(0x06, 0o755));
    e.insert("/tmp/stale.pid".into(), reg(0x07, 0o644));
    e.insert("/usr/bin/app".into(), reg(0x08, 0o755));
    e.insert("/usr/lib/ld-linux-x86-64.so.2".into(), reg(0x09, 0o755));
    e.insert("/usr/lib/libc.so.6".into(), reg(0x0a, 0o755));
    e.insert("/usr/lib/libapp.so".into(), link("libapp.so.1"));
    e.insert("/usr/lib/libapp.so.1".into(), reg(0x0b, 0o644));
    idx.captured.insert(
        "/etc/passwd".into(),
        b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n".to_vec(),
    );
    idx.captured
        .insert("/etc/group".into(), b"root:x:0:\nstaff:x:50:app\n".to_vec());
    idx
}

fn image_config(extra: &str) -> ImageConfiguration {
    let json = format!(
        r#"{{"architecture":"amd64","os":"linux",
            "rootfs":{{"type":"layers","diff_ids":[]}},
            "config":{{"Entrypoint":["app"],"Cmd":["--serve","8080"],
                       "Env":["PATH=/usr/bin:/bin","LANG=C.UTF-8"],
                       "WorkingDir":"/app","User":"app:staff"{extra}}}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

const REQUEST: &str = r#"{"inputImageName":"reg/app:1","outputImageName":"reg/app-sgx:1",
    "isvprodid":7,"isvsvn":3,"memSize":"300M","threads":8,
    "manifestEnv":["LANG=en_US.UTF-8","QUOTE=say \"hi\"\\n"],
    "manifestOptions":{"sys.stack.size":"1M"}}"#;

fn spec_for(
    request: &str,
    config: &ImageConfiguration,
    index: &FileIndex,
) -> Result<EnclaveSpec, SpecError> {
    let req = validate(&parse_request(request.as_bytes()).unwrap()).unwrap();
    build_spec(&req, config, index, &support::runtime())
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn golden_manifest_sgx1() {
    let spec = spec_for(REQUEST, &image_config(""), &small_index()).unwrap();
    let got = render_manifest(&spec, Variant::Sgx1).unwrap();
    if got != GOLDEN {
        for (i, (a, b)) in got.lines().zip(GOLDEN.lines()).enumerate() {
            if a != b {
                panic!("line {}: got\n{a}\nwant\n{b}", i + 1);
            }
        }
        panic!("length differs: got {} want {}", got.len(), GOLDEN.len());
    }
    // Warnings: memSize rounding, the stale file hidden by the encrypted /tmp.
    assert!(
        spec.warnings
            .iter()
            .any(|w| w.contains("rounded up to 512M")),
        "{:?}",
        spec.warnings
    );
    assert!(
        spec.warnings
            .iter()
            .any(|w| w.contains("encryptedDirs `/tmp`") && w.contains("/tmp/stale.pid")),
        "{:?}",
        spec.warnings
    );
    assert_eq!(
        spec.host_dirs(),
        [
            "/opt/fortanix/enclave-os/default-efs-dirs/ftx-efs",
            "/opt/fortanix/enclave-os/default-efs-dirs/opt/fortanix/enclave-os/app-config/rw",
            "/opt/fortanix/enclave-os/default-efs-dirs/run",
            "/opt/fortanix/enclave-os/default-efs-dirs/tmp",
        ]
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn edmm_variant_differs_only_in_edmm_enable_and_exinfo() {
    let spec = spec_for(REQUEST, &image_config(""), &small_index()).unwrap();
    let sgx1 = render_manifest(&spec, Variant::Sgx1).unwrap();
    let edmm = render_manifest(&spec, Variant::Edmm).unwrap();
    assert_eq!(
        edmm,
        sgx1.replace("edmm_enable = false", "edmm_enable = true")
            .replace("use_exinfo = false", "use_exinfo = true")
    );
    assert_ne!(edmm, sgx1);
    // EDMM keeps EXINFO even when manifestOptions switch it off (it cannot run without).
    let no_exinfo = REQUEST.replace(
        r#""sys.stack.size":"1M""#,
        r#""sys.stack.size":"1M","sgx.use_exinfo":false"#,
    );
    let spec = spec_for(&no_exinfo, &image_config(""), &small_index()).unwrap();
    assert!(render_manifest(&spec, Variant::Edmm)
        .unwrap()
        .contains("use_exinfo = true"));
    assert!(render_manifest(&spec, Variant::Sgx1)
        .unwrap()
        .contains("use_exinfo = false"));
    // javaMode: the SGX1 enclave uses EXINFO too (the JVM recovers from SIGSEGV).
    let java = REQUEST.replace(r#""threads":8"#, r#""threads":8,"javaMode":"OPENJDK""#);
    let spec = spec_for(&java, &image_config(""), &small_index()).unwrap();
    assert!(render_manifest(&spec, Variant::Sgx1)
        .unwrap()
        .contains("use_exinfo = true"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn direct_variant_uses_tmpfs_for_encrypted_dirs() {
    let spec = spec_for(REQUEST, &image_config(""), &small_index()).unwrap();
    let sgx1 = render_manifest(&spec, Variant::Sgx1).unwrap();
    let direct = render_manifest(&spec, Variant::Direct).unwrap();
    let mut want = sgx1.clone();
    for d in [
        "ftx-efs",
        "opt/fortanix/enclave-os/app-config/rw",
        "run",
        "tmp",
    ] {
        want = want.replace(
            &format!(
                r#"{{ key_name = "_sgx_mrenclave", path = "/{d}", type = "encrypted", uri = "file:/opt/fortanix/enclave-os/default-efs-dirs/{d}" }}"#
            ),
            &format!(r#"{{ path = "/{d}", type = "tmpfs" }}"#),
        );
    }
    assert_ne!(want, sgx1);
    assert_eq!(direct, want);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn manifest_parses_as_toml_with_the_expected_values() {
    let spec = spec_for(REQUEST, &image_config(""), &small_index()).unwrap();
    for variant in [Variant::Sgx1, Variant::Edmm, Variant::Direct] {
        let text = render_manifest(&spec, variant).unwrap();
        let v: toml::Table = toml::from_str(&text).unwrap();
        let sgx = v["sgx"].as_table().unwrap();
        assert_eq!(sgx["enclave_size"].as_str(), Some("512M"));
        assert_eq!(sgx["max_threads"].as_integer(), Some(8));
        assert_eq!(sgx["edmm_enable"].as_bool(), Some(variant == Variant::Edmm));
        assert_eq!(sgx["trusted_files"].as_array().unwrap().len(), 13);
        assert_eq!(v["fs"]["start_dir"].as_str(), Some("/app"));
        assert_eq!(v["loader"]["env"]["QUOTE"].as_str(), Some("say \"hi\"\\n"));
        assert_eq!(v["loader"]["argv"].as_array().unwrap().len(), 3);
        assert_eq!(v["sys"]["stack"]["size"].as_str(), Some("1M"));
        // Deterministic: same spec, same bytes.
        assert_eq!(text, render_manifest(&spec.clone(), variant).unwrap());
        assert_eq!(
            manifest_table(&spec, variant),
            manifest_table(&spec, variant)
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn cmdline_args_replace_loader_argv() {
    let r = REQUEST.replace(r#""threads":8,"#, r#""threads":8,"allowCmdlineArgs":true,"#);
    let spec = spec_for(&r, &image_config(""), &small_index()).unwrap();
    let text = render_manifest(&spec, Variant::Sgx1).unwrap();
    let v: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        v["loader"]["insecure__use_cmdline_argv"].as_bool(),
        Some(true)
    );
    assert!(v["loader"].get("argv").is_none());
    assert_eq!(spec.argv, ["app", "--serve", "8080"]);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn debug_log_file_and_java_mode() {
    let r = r#"{"inputImageName":"a","outputImageName":"b","debug":true,
        "logFilePath":"/var/log/gramine.log","rwDirs":["/var/log"],"javaMode":"OPENJ9",
        "entrypoint":["/usr/bin/app"],"encryptedDirs":[]}"#;
    let spec = spec_for(r, &image_config(""), &small_index()).unwrap();
    let v: toml::Table = toml::from_str(&render_manifest(&spec, Variant::Sgx1).unwrap()).unwrap();
    assert_eq!(v["sgx"]["debug"].as_bool(), Some(true));
    assert_eq!(v["loader"]["log_level"].as_str(), Some("debug"));
    assert_eq!(
        v["loader"]["log_file"].as_str(),
        Some("/var/log/gramine.log")
    );
    assert_eq!(v["loader"]["argv"].as_array().unwrap().len(), 1);
    assert_eq!(v["loader"]["env"]["MALLOC_ARENA_MAX"].as_str(), Some("1"));
    assert_eq!(
        v["loader"]["env"]["JAVA_TOOL_OPTIONS"].as_str(),
        Some("-Xnojit -Xnoaot -Xdump:none")
    );
    assert_eq!(v["sgx"]["allowed_files"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["sys"]["enable_extra_runtime_domain_names_conf"].as_bool(),
        Some(false)
    );
    assert_eq!(v["fs"]["mounts"].as_array().unwrap().len(), 0);
    // Without encrypted /tmp, the stale file is a trusted file again.
    assert!(spec
        .trusted_files
        .iter()
        .any(|f| f.path == "/tmp/stale.pid"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn image_dependent_errors_are_400s() {
    let idx = small_index();
    let cases: [(&str, &str, &str); 6] = [
        (
            r#"{"inputImageName":"a","outputImageName":"b","entrypoint":["nothere"]}"#,
            "",
            "`nothere` not found",
        ),
        (
            r#"{"inputImageName":"a","outputImageName":"b"}"#,
            r#","User":"ghost""#,
            "user `ghost`",
        ),
        (
            r#"{"inputImageName":"a","outputImageName":"b"}"#,
            r#","User":"app:ghosts""#,
            "group `ghosts`",
        ),
        (
            r#"{"inputImageName":"a","outputImageName":"b","rwDirs":["/usr/bin"]}"#,
            "",
            "`/usr/bin/app` is not a trusted file",
        ),
        (
            r#"{"inputImageName":"a","outputImageName":"b","entrypoint":["/opt/kiln/runtime/libsysdb.so"]}"#,
            "",
            "is not a trusted file",
        ),
        (
            r#"{"inputImageName":"a","outputImageName":"b","entrypoint":["/app/config.json"]}"#,
            "",
            "not found",
        ),
    ];
    for (req, cfg_extra, want) in cases {
        let cfg = if cfg_extra.contains("User") {
            let c = image_config("");
            let j = serde_json::to_string(&c)
                .unwrap()
                .replace(r#""User":"app:staff""#, &cfg_extra[1..]);
            serde_json::from_str(&j).unwrap()
        } else {
            image_config(cfg_extra)
        };
        let e = spec_for(req, &cfg, &idx).unwrap_err();
        assert!(e.to_string().contains(want), "{req}: {e}");
        let api: kiln_engine::api::ApiError = e.into();
        assert_eq!(api.error_type, ErrorType::BadRequest);
        assert_eq!(api.status, 400);
    }
    // An image without ENTRYPOINT or CMD.
    let cfg: ImageConfiguration = serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#,
    )
    .unwrap();
    let e = spec_for(
        r#"{"inputImageName":"a","outputImageName":"b"}"#,
        &cfg,
        &idx,
    )
    .unwrap_err();
    assert!(e.to_string().contains("neither ENTRYPOINT nor CMD"), "{e}");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn numeric_user_and_default_working_dir() {
    let cfg: ImageConfiguration = serde_json::from_str(
        r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Cmd":["/usr/bin/app"],"User":"4242"}}"#,
    )
    .unwrap();
    let spec = spec_for(
        r#"{"inputImageName":"a","outputImageName":"b"}"#,
        &cfg,
        &small_index(),
    )
    .unwrap();
    assert_eq!((spec.uid, spec.gid), (4242, 0));
    assert_eq!(spec.start_dir, "/");
    assert_eq!(spec.program, "/usr/bin/app");
    // No PATH or HOME in the image: docker's defaults.
    assert_eq!(
        spec.env["PATH"],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(spec.env["HOME"], "/");
}

/// 20,000 regular files in 200 directories, plus the small image.
#[cfg(not(target_arch = "wasm32"))]
fn big_index() -> FileIndex {
    let mut idx = small_index();
    for d in 0..200 {
        idx.entries.insert(format!("/usr/share/pkg{d:03}"), dir());
        for f in 0..100 {
            let path = format!("/usr/share/pkg{d:03}/lib/file-{f:04}.so");
            let sha: [u8; 32] = Sha256::digest(path.as_bytes()).into();
            idx.entries.insert(
                path,
                entry(
                    FileKind::Regular {
                        size: 1,
                        sha256: sha,
                    },
                    0o644,
                ),
            );
        }
    }
    idx
}

#[cfg(not(target_arch = "wasm32"))]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn twenty_thousand_files() {
    use std::time::Instant;
    let idx = big_index();
    let cfg = image_config("");
    let t0 = Instant::now();
    let spec = spec_for(REQUEST, &cfg, &idx).unwrap();
    let t_spec = t0.elapsed();
    let t1 = Instant::now();
    let table = manifest_table(&spec, Variant::Sgx1).unwrap();
    let t_table = t1.elapsed();
    let t1 = Instant::now();
    let text = kiln_engine::gramine::canonical::to_canonical_toml(&table);
    let t_write = t1.elapsed();
    let t2 = Instant::now();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    let t_parse = t2.elapsed();
    let n = parsed["sgx"]["trusted_files"].as_array().unwrap().len();
    assert_eq!(n, 20_000 + 13);
    println!(
        "20,000-file manifest: {} trusted files, {} bytes; spec {:?}, table {:?}, write {:?}, toml-crate parse {:?}",
        n,
        text.len(),
        t_spec,
        t_table,
        t_write,
        t_parse
    );
    assert_eq!(text, render_manifest(&spec, Variant::Sgx1).unwrap());

    // ... and measured, with the synthetic libpal of the test vectors.
    let libpal = include_bytes!("../testdata/gramine/libpal_test.so");
    let t3 = Instant::now();
    let m = kiln_engine::sgx::gramine_layout::measure(text.as_bytes(), libpal).unwrap();
    let t_measure = t3.elapsed();
    assert!(m.params.enclave_size.is_power_of_two());
    println!(
        "20,000-file manifest measured: enclave {} MiB, mrenclave {}, {} EADD, {} EEXTEND, in {:?}",
        m.params.enclave_size >> 20,
        hex::encode(m.mrenclave),
        m.eadd_count,
        m.eextend_count,
        t_measure
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn program_through_a_directory_link_and_exclusions() {
    let mut idx = small_index();
    idx.entries.insert("/sys/kernel/x".into(), reg(0x0c, 0o644));
    idx.entries.insert(
        "/opt/fortanix/enclave-os/default-efs-dirs/tmp/blob".into(),
        reg(0x0d, 0o644),
    );
    let cfg = image_config("").clone();
    let json = serde_json::to_string(&cfg)
        .unwrap()
        .replace("PATH=/usr/bin:/bin", "PATH=/bin:/usr/bin")
        .replace(r#""WorkingDir":"/app""#, r#""WorkingDir":"/srv""#);
    let cfg: ImageConfiguration = serde_json::from_str(&json).unwrap();
    let spec = spec_for(
        r#"{"inputImageName":"a","outputImageName":"b"}"#,
        &cfg,
        &idx,
    )
    .unwrap();
    // Found through /bin -> usr/bin: the program is the resolved path, as the kernel
    // reports /proc/self/exe; the link's path stays a trusted file too.
    assert_eq!(spec.program, "/usr/bin/app");
    assert!(spec
        .trusted_files
        .iter()
        .any(|f| f.path == "/bin/app" && f.sha256 == [8; 32]));
    // Excluded: pseudo-filesystems, kiln's directory, the encrypted dirs' host side.
    for p in [
        "/dev/null",
        "/sys/kernel/x",
        "/opt/kiln/runtime/libsysdb.so",
    ] {
        assert!(!spec.trusted_files.iter().any(|f| f.path == p), "{p}");
    }
    assert!(!spec
        .trusted_files
        .iter()
        .any(|f| f.path.starts_with("/opt/fortanix")));
    assert_eq!(spec.start_dir, "/srv");
    for w in ["WorkingDir `/srv`", "already has files under /opt/kiln"] {
        assert!(
            spec.warnings.iter().any(|x| x.contains(w)),
            "{w}: {:?}",
            spec.warnings
        );
    }
    // Trusted files are sorted and unique.
    let paths: Vec<_> = spec.trusted_files.iter().map(|f| f.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(paths, sorted);
}

/// The pipeline reads each rendered manifest's SGX settings from the table it wrote the
/// text from (`render_with_params`), not by parsing the text back: both must agree.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn settings_from_the_table_equal_settings_parsed_from_the_text() {
    use kiln_engine::gramine::manifest::render_with_params;
    use kiln_engine::sgx::manifest_params::SgxManifestParams;
    let requests = [
        REQUEST.to_string(),
        r#"{"inputImageName":"reg/app:1","outputImageName":"reg/app-sgx:1"}"#.to_string(),
        r#"{"inputImageName":"reg/app:1","outputImageName":"reg/app-sgx:1","debug":true,
            "memSize":"4G","threads":64,"isvprodid":65535,"isvsvn":1,
            "manifestOptions":{"sgx.cpu_features.avx":"required","sgx.cpu_features.mpx":"disabled",
                               "sgx.use_exinfo":true}}"#
            .to_string(),
    ];
    for request in &requests {
        let spec = spec_for(request, &image_config(""), &small_index()).unwrap();
        for variant in [Variant::Sgx1, Variant::Edmm] {
            let r = render_with_params(&spec, variant).unwrap();
            assert_eq!(
                r.params,
                SgxManifestParams::from_manifest(r.text.as_bytes()).unwrap(),
                "{variant:?} {request}"
            );
            assert_eq!(r.text, render_manifest(&spec, variant).unwrap());
        }
    }
    let spec = spec_for(&requests[2], &image_config(""), &small_index()).unwrap();
    let p = render_with_params(&spec, Variant::Edmm).unwrap().params;
    assert!(p.debug && p.use_exinfo && p.edmm_enable);
    assert_eq!(
        (p.enclave_size, p.max_threads, p.isvprodid),
        (4 << 30, 64, 65535)
    );
    assert_eq!(
        p.cpu_features.avx,
        kiln_engine::sgx::manifest_params::CpuFeature::Required
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn links_into_encrypted_and_rw_dirs_and_log_links() {
    let mut idx = small_index();
    let e = &mut idx.entries;
    for d in [
        "/run",
        "/run/lock",
        "/var",
        "/var/log",
        "/var/log/nginx",
        "/srv",
        "/srv/data",
    ] {
        e.insert(d.into(), dir());
    }
    // Debian: /var/run -> /run, /var/lock -> /run/lock; an app link into an rwDir.
    e.insert("/var/run".into(), link("/run"));
    e.insert("/var/lock".into(), link("/run/lock"));
    e.insert("/data".into(), link("srv/data"));
    e.insert("/var/log/nginx/access.log".into(), link("/dev/stdout"));
    e.insert("/var/log/nginx/error.log".into(), link("/dev/stderr"));
    let req = REQUEST.replace(r#""threads":8"#, r#""threads":8,"rwDirs":["/srv/data"]"#);
    let spec = spec_for(&req, &image_config(""), &idx).unwrap();
    let m = render_manifest(&spec, Variant::Sgx1).unwrap();
    for want in [
        r#"{ key_name = "_sgx_mrenclave", path = "/var/run", type = "encrypted", uri = "file:/opt/fortanix/enclave-os/default-efs-dirs/run" }"#,
        r#"{ key_name = "_sgx_mrenclave", path = "/var/lock", type = "encrypted", uri = "file:/opt/fortanix/enclave-os/default-efs-dirs/run/lock" }"#,
        r#""file:/data""#,
        r#""file:/var/log/nginx/access.log""#,
        r#""file:/var/log/nginx/error.log""#,
    ] {
        assert!(m.contains(want), "{want} not in\n{m}");
    }
    assert!(spec
        .host_dirs()
        .contains(&"/opt/fortanix/enclave-os/default-efs-dirs/run/lock".to_string()));
    for w in [
        "`/var/run` is a link to `/run`",
        "`/data` is a link to the rwDir",
    ] {
        assert!(
            spec.warnings.iter().any(|x| x.contains(w)),
            "{w}: {:?}",
            spec.warnings
        );
    }
    assert_eq!(spec.log_links.len(), 2);
}
