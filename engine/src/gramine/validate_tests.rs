//! Tests of request validation: every field, every default, every bad input.

use super::*;
use crate::gramine::request::{parse_request, DefaultKey};

fn req(extra: &str) -> ConvertRequest {
    let body = format!(r#"{{"inputImageName":"reg/in:1","outputImageName":"reg/out:1"{extra}}}"#);
    parse_request(body.as_bytes()).unwrap()
}

fn ok(extra: &str) -> ValidRequest {
    validate(&req(extra)).unwrap()
}

/// Validates and expects exactly one error, on `field`; returns its problem text.
fn bad(extra: &str, field: &str) -> String {
    let e = validate(&req(extra)).unwrap_err();
    assert_eq!(e.0.len(), 1, "{extra}: {e}");
    assert_eq!(e.0[0].field, field, "{extra}: {e}");
    assert!(e.to_string().starts_with(field), "{e}");
    e.0[0].problem.clone()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn defaults() {
    let v = ok("");
    assert_eq!(v.input_image, "reg/in:1");
    assert_eq!(v.output_image, "reg/out:1");
    assert_eq!(v.input_auth, None);
    assert_eq!(v.output_auth, None);
    assert_eq!(v.isvprodid, 0);
    assert_eq!(v.isvsvn, 0);
    assert_eq!(
        v.mem_size,
        MemSize {
            requested: None,
            requested_bytes: 256 << 20,
            bytes: 256 << 20
        }
    );
    assert_eq!(v.threads, 16);
    assert!(!v.debug);
    assert_eq!(v.entrypoint, None);
    assert_eq!(v.entrypoint_args, None);
    assert_eq!(
        v.ro_dirs,
        s(&["/", "/opt/fortanix/enclave-os/app-config/ro"])
    );
    assert_eq!(
        v.rw_dirs,
        s(&["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"])
    );
    assert_eq!(
        v.encrypted_dirs,
        s(&[
            "/ftx-efs",
            "/opt/fortanix/enclave-os/app-config/rw",
            "/run",
            "/tmp"
        ])
    );
    assert!(!v.allow_cmdline_args);
    assert!(v.manifest_env.is_empty());
    assert!(v.manifest_options.is_empty());
    assert!(v.certificates.is_empty());
    assert_eq!(v.signing_key, SigningKey::Default(DefaultKey {}));
    assert_eq!(v.external_packages, None);
    assert_eq!(v.core_dump_pattern, None);
    assert_eq!(v.log_file_path, None);
    assert_eq!(v.java_mode, None);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn auth_fallback() {
    let v = ok(
        r#","authConfig":{"username":"both","password":"p"},"inputAuthConfig":{"username":"in"}"#,
    );
    assert_eq!(v.input_auth.as_ref().unwrap().0.username, "in");
    assert_eq!(v.input_auth.as_ref().unwrap().0.password, None);
    assert_eq!(v.output_auth.as_ref().unwrap().0.username, "both");
    assert_eq!(
        v.output_auth.as_ref().unwrap().0.password.as_deref(),
        Some("p")
    );
    let v = ok(r#","outputAuthConfig":{"username":"out","password":"q"}"#);
    assert_eq!(v.input_auth, None);
    assert_eq!(v.output_auth.unwrap().0.username, "out");
    bad(r#","authConfig":{"username":""}"#, "authConfig.username");
    // Secrets never reach an error or Debug output.
    let e = validate(&req(
        r#","authConfig":{"username":"","password":"hunter2"},"threads":0"#,
    ))
    .unwrap_err();
    assert!(!e.to_string().contains("hunter2"));
    let v = ok(r#","authConfig":{"username":"u","password":"hunter2"}"#);
    assert!(!format!("{v:?}").contains("hunter2"));
}

#[test]
fn image_names() {
    let mut r = req("");
    r.input_image_name = String::new();
    r.output_image_name = "a b".into();
    let e = validate(&r).unwrap_err();
    let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["inputImageName", "outputImageName"]);
}

#[test]
fn isv_ids() {
    let v = ok(r#","isvprodid":65535,"isvsvn":1"#);
    assert_eq!((v.isvprodid, v.isvsvn), (65535, 1));
    assert!(bad(r#","isvprodid":65536"#, "isvprodid").contains("0..=65535"));
    bad(r#","isvprodid":-1"#, "isvprodid");
    bad(r#","isvsvn":70000"#, "isvsvn");
    bad(r#","isvsvn":-5"#, "isvsvn");
}

#[test]
fn mem_size() {
    let v = ok(r#","memSize":"2048M""#);
    assert_eq!(v.mem_size.bytes, 2 << 30);
    assert!(v.warnings.is_empty());
    let v = ok(r#","memSize":"3g""#);
    assert_eq!(v.mem_size.requested_bytes, 3 << 30);
    assert_eq!(v.mem_size.bytes, 4 << 30);
    assert!(
        v.warnings[0].contains("rounded up to 4G"),
        "{:?}",
        v.warnings
    );
    let v = ok(r#","memSize":"1048576""#);
    assert_eq!(v.mem_size.bytes, 1 << 20);
    let v = ok(r#","memSize":"1100000""#);
    assert_eq!(v.mem_size.bytes, 2 << 20);
    let v = ok(r#","memSize":"1536k""#);
    assert_eq!(v.mem_size.bytes, 2 << 20);
    let v = ok(r#","memSize":"1024G""#);
    assert_eq!(v.mem_size.bytes, 1 << 40);
    bad(r#","memSize":"lots""#, "memSize");
    bad(r#","memSize":"12MB""#, "memSize");
    bad(r#","memSize":"1025G""#, "memSize");
    bad(r#","memSize":"1000""#, "memSize");
    bad(r#","memSize":"0""#, "memSize");
}

#[test]
fn threads_and_debug() {
    let v = ok(r#","threads":1,"debug":true"#);
    assert_eq!(v.threads, 1);
    assert!(v.debug);
    assert_eq!(ok(r#","threads":1024"#).threads, 1024);
    assert!(ok(r#","threads":3"#).warnings[0].starts_with("threads:"));
    bad(r#","threads":0"#, "threads");
    bad(r#","threads":1025"#, "threads");
    bad(r#","threads":-4"#, "threads");
}

#[test]
fn entrypoint_fields() {
    let v = ok(r#","entrypoint":["/bin/app","-x"],"entrypointArgs":["a b"]"#);
    assert_eq!(v.entrypoint, Some(s(&["/bin/app", "-x"])));
    assert_eq!(v.entrypoint_args, Some(s(&["a b"])));
    bad(r#","entrypoint":[""]"#, "entrypoint[0]");
    bad(
        r#","entrypointArgs":["ok","a\u0000b"]"#,
        "entrypointArgs[1]",
    );
}

#[test]
fn dirs_are_normalised_and_replace_defaults() {
    let v = ok(r#","roDirs":["/app/","/app//lib/.."],"rwDirs":[],"encryptedDirs":["/data/./x"]"#);
    assert_eq!(v.ro_dirs, s(&["/app"]));
    assert!(v.rw_dirs.is_empty());
    assert_eq!(v.encrypted_dirs, s(&["/data/x"]));
    bad(r#","roDirs":["app"]"#, "roDirs[0]");
    bad(r#","rwDirs":["/ok","rel/x"]"#, "rwDirs[1]");
    bad(r#","encryptedDirs":[""]"#, "encryptedDirs[0]");
}

#[test]
fn dir_conflicts() {
    assert!(bad(r#","rwDirs":["/tmp"]"#, "rwDirs").contains("also in encryptedDirs"));
    assert!(bad(r#","encryptedDirs":["/"]"#, "encryptedDirs").contains("cannot be encrypted"));
    let p = bad(
        r#","encryptedDirs":["/data"],"rwDirs":["/data/log"]"#,
        "rwDirs",
    );
    assert!(p.contains("inside encryptedDirs entry `/data`"), "{p}");
    let p = bad(
        r#","encryptedDirs":["/data"],"roDirs":["/","/data/conf"]"#,
        "roDirs",
    );
    assert!(p.contains("/data/conf"), "{p}");
    let p = bad(
        r#","encryptedDirs":["/data","/data/inner"]"#,
        "encryptedDirs",
    );
    assert!(p.contains("must not overlap"), "{p}");
    let p = bad(
        r#","rwDirs":["/srv"],"roDirs":["/","/srv/static"]"#,
        "roDirs",
    );
    assert!(p.contains("allowed files take precedence"), "{p}");
    // The usual shapes are fine: narrower rw/encrypted inside ro.
    ok(r#","rwDirs":["/var/log"],"encryptedDirs":["/data"],"roDirs":["/"]"#);
    let v = ok(r#","rwDirs":["/"],"roDirs":[]"#);
    assert!(v
        .warnings
        .iter()
        .any(|w| w.contains("no file of the image")));
}

#[test]
fn cmdline_args() {
    let v = ok(r#","allowCmdlineArgs":true"#);
    assert!(v.allow_cmdline_args);
    assert!(v.warnings.iter().any(|w| w.starts_with("allowCmdlineArgs")));
}

#[test]
fn manifest_env() {
    let v = ok(r#","manifestEnv":["A=1","B=","C=x=y","A=2"]"#);
    assert_eq!(
        v.manifest_env,
        vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), String::new()),
            ("C".to_string(), "x=y".to_string()),
            ("A".to_string(), "2".to_string()),
        ]
    );
    assert!(bad(r#","manifestEnv":["NOEQ"]"#, "manifestEnv[0]").contains("KEY=VALUE"));
    bad(r#","manifestEnv":["A=1","=v"]"#, "manifestEnv[1]");
    bad(r#","manifestEnv":["A B=1"]"#, "manifestEnv[0]");
}

#[test]
fn manifest_options() {
    let v = ok(r#","manifestOptions":{"sys.stack.size":"2M"}"#);
    assert_eq!(v.manifest_options.leaves.len(), 1);
    let p = bad(
        r#","manifestOptions":{"sgx.debug":true}"#,
        "manifestOptions",
    );
    assert!(p.contains("`sgx.debug`") && p.contains("`debug`"), "{p}");
    // Equal to the rounded memSize: fine.
    ok(r#","memSize":"300M","manifestOptions":{"sgx.enclave_size":"512M"}"#);
    bad(
        r#","memSize":"300M","manifestOptions":{"sgx.enclave_size":"300M"}"#,
        "manifestOptions",
    );
    ok(r#","threads":8,"manifestOptions":{"sgx.max_threads":8}"#);
    ok(r#","allowCmdlineArgs":true,"manifestOptions":{"loader.insecure__use_cmdline_argv":true}"#);
    ok(
        r#","logFilePath":"/var/log/g.log","rwDirs":["/var/log"],"manifestOptions":{"loader.log_file":"/var/log/g.log"}"#,
    );
    bad(
        r#","manifestOptions":{"fs.mounts":[{"type":"tmpfs","path":"/run"}]}"#,
        "manifestOptions",
    );
    let e = validate(&req(
        r#","manifestOptions":{"sgx.debug":true,"sgx.edmm_enable":true}"#,
    ))
    .unwrap_err();
    assert_eq!(e.0.len(), 2);
}

#[test]
fn certificates() {
    let v = ok(
        r#","certificates":[{"subject":"app.example","keyPath":"/tmp/k.pem","certPath":"/tmp/c.pem"},
           {"issuer":"SELF_IAS","subject":"x","keyType":"RSA","keyParam":{"size":4096},"keyPath":"/k","certPath":"/c"}]"#,
    );
    assert_eq!(
        v.certificates[0],
        Certificate {
            issuer: Issuer::ManagerCa,
            subject: "app.example".into(),
            rsa_bits: 2048,
            key_path: "/tmp/k.pem".into(),
            cert_path: "/tmp/c.pem".into(),
        }
    );
    assert_eq!(v.certificates[1].issuer, Issuer::SelfIas);
    assert_eq!(v.certificates[1].rsa_bits, 4096);
    // /k and /c are not in an encrypted dir: warned, not refused.
    assert_eq!(
        v.warnings
            .iter()
            .filter(|w| w.starts_with("certificates"))
            .count(),
        2
    );
    let c = |x: &str| {
        format!(r#","certificates":[{{"subject":"s","keyPath":"/tmp/k","certPath":"/tmp/c"{x}}}]"#)
    };
    ok(&c(r#","issuer":"NODE""#));
    bad(&c(r#","issuer":"ACME""#), "certificates[0].issuer");
    bad(&c(r#","keyType":"EC""#), "certificates[0].keyType");
    bad(
        &c(r#","keyParam":{"size":1024}"#),
        "certificates[0].keyParam.size",
    );
    bad(
        &c(r#","keyParam":{"size":3071}"#),
        "certificates[0].keyParam.size",
    );
    ok(&c(r#","keyParam":{"size":3072}"#));
    bad(
        r#","certificates":[{"keyPath":"/tmp/k","certPath":"/tmp/c"}]"#,
        "certificates[0].subject",
    );
    bad(
        r#","certificates":[{"subject":"s","certPath":"/tmp/c"}]"#,
        "certificates[0].keyPath",
    );
    bad(
        r#","certificates":[{"subject":"s","keyPath":"/tmp/k","certPath":"c"}]"#,
        "certificates[0].certPath",
    );
}

#[test]
fn signing_key() {
    let v = ok(r#","signingKey":{"sdkms":{"name":"prod","apiKey":"sekrit"}}"#);
    assert!(matches!(&v.signing_key, SigningKey::Sdkms(k) if k.name == "prod"));
    assert!(!format!("{v:?}").contains("sekrit"));
    bad(
        r#","signingKey":{"sdkms":{"name":"","apiKey":"k"}}"#,
        "signingKey.sdkms.name",
    );
    bad(
        r#","signingKey":{"sdkms":{"name":"n","apiKey":""}}"#,
        "signingKey.sdkms.apiKey",
    );
}

#[test]
fn misc_fields() {
    let v = ok(
        r#","externalPackages":"/mnt/pkgs/","coreDumpPattern":"/tmp/core.%p","logFilePath":"stderr","javaMode":"LIBERTY-JRE","debug":true"#,
    );
    assert_eq!(v.external_packages.as_deref(), Some("/mnt/pkgs"));
    assert_eq!(v.core_dump_pattern.as_deref(), Some("/tmp/core.%p"));
    assert_eq!(v.log_file_path.as_deref(), Some("stderr"));
    assert_eq!(v.java_mode, Some(JavaMode::LibertyJre));
    // The JVM's sizes are judged with the program known (gramine::workload).
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let v = ok(r#","coreDumpPattern":"core","logFilePath":"/var//log/x""#);
    assert!(v.warnings.iter().any(|w| w.starts_with("coreDumpPattern")));
    assert_eq!(v.log_file_path.as_deref(), Some("/var/log/x"));
    for m in ["JAVA-ORACLE", "OPENJDK", "OPENJ9", "LIBERTY-JRE"] {
        assert_eq!(
            ok(&format!(r#","javaMode":"{m}""#))
                .java_mode
                .map(JavaMode::as_str),
            Some(m)
        );
    }
    bad(r#","javaMode":"openjdk""#, "javaMode");
    bad(r#","externalPackages":"pkgs""#, "externalPackages");
    bad(r#","logFilePath":"log.txt""#, "logFilePath");
    bad(r#","coreDumpPattern":"""#, "coreDumpPattern");
}

#[test]
fn all_problems_are_reported_at_once() {
    let e = validate(&req(
        r#","threads":0,"isvsvn":-1,"memSize":"x","javaMode":"X""#,
    ))
    .unwrap_err();
    let fields: Vec<_> = e.0.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["isvsvn", "memSize", "threads", "javaMode"]);
}
