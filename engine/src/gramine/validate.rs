//! Request validation: every field checked, defaults applied, one error per problem.
//!
//! [`validate`] turns a [`ConvertRequest`] into a [`ValidRequest`] or a list of
//! [`FieldError`]s (all problems at once, each naming its field); [`ValidationErrors`]
//! converts into a 400 `api::ApiError` whose reason lists them.
//!
//! Defaults (shared/spec/convert-image.md): isvprodid 0, isvsvn 0, memSize 256M, threads 16
//! (the spec says 4, but Gramine's own IPC, async and per-pipe TLS-handshake threads take
//! slots too, so with 4 an idle single-threaded app already runs 3 and forks and pipes fail;
//! a slot costs ~360 KiB of enclave memory),
//! debug false, allowCmdlineArgs false, roDirs `/` and `/opt/fortanix/enclave-os/app-config/ro`,
//! rwDirs `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`, encryptedDirs `/tmp`, `/run`,
//! `/ftx-efs`, `/opt/fortanix/enclave-os/app-config/rw`, signingKey `{default: {}}`. A list
//! field that is given replaces its default (an empty list means none).
//!
//! Kiln's own rules beyond the spec:
//! - memSize must lie in 1M..=1024G; it is rounded up to a power of two (a warning says so).
//! - A path in two of roDirs/rwDirs/encryptedDirs is a 400. Nesting that Gramine cannot
//!   express is a 400 too: a roDir or rwDir inside an encryptedDir (the encrypted mount
//!   hides it), a roDir inside an rwDir (Gramine's allowed-file check wins over the
//!   trusted-file check, so it could not be protected), an encryptedDir inside another
//!   (host paths would overlap), and `/` as an encryptedDir. The usual shapes (a narrower
//!   rw or encrypted dir inside a read-only one) are exactly "the most specific wins".
//! - Certificates need `subject`, `keyPath` and `certPath`.
//! - `allowCmdlineArgs: true` adds a warning (the host then chooses the app's arguments).

use std::fmt;

use super::options::{validate_options, ManifestOptions, OptionContext};
use super::paths::{is_strictly_within, is_within, normalize_absolute};
use super::request::{AuthConfig, ConvertRequest, SigningKey};
use super::size::{parse_size, DEFAULT_ENCLAVE_SIZE, MAX_ENCLAVE_SIZE, MIN_ENCLAVE_SIZE};

/// Default `roDirs`.
pub const DEFAULT_RO_DIRS: [&str; 2] = ["/", "/opt/fortanix/enclave-os/app-config/ro"];
/// Default `rwDirs`.
pub const DEFAULT_RW_DIRS: [&str; 3] = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];
/// Default `encryptedDirs`.
pub const DEFAULT_ENCRYPTED_DIRS: [&str; 4] = [
    "/tmp",
    "/run",
    "/ftx-efs",
    "/opt/fortanix/enclave-os/app-config/rw",
];
/// Default `threads` (see the module docs for why not the spec's 4).
pub const DEFAULT_THREADS: u32 = 16;
/// Fewer `threads` than this get a warning: Gramine's helpers need up to 3.
pub const MIN_SENSIBLE_THREADS: u32 = 4;
/// Largest accepted `threads`.
pub const MAX_THREADS: u32 = 1024;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The request field (JSON name, with an index or key where useful: `roDirs[1]`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// All problems found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Registry credentials after the `authConfig` fallback.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Credentials(pub AuthConfig);

/// The JVM a `javaMode` tunes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JavaMode {
    /// `JAVA-ORACLE`: Oracle's HotSpot JVM.
    JavaOracle,
    /// `OPENJDK`: OpenJDK's HotSpot JVM.
    OpenJdk,
    /// `OPENJ9`: Eclipse OpenJ9.
    OpenJ9,
    /// `LIBERTY-JRE`: WebSphere/Open Liberty on its OpenJ9-based JRE.
    LibertyJre,
}

impl JavaMode {
    /// Parses the API's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "JAVA-ORACLE" => Some(Self::JavaOracle),
            "OPENJDK" => Some(Self::OpenJdk),
            "OPENJ9" => Some(Self::OpenJ9),
            "LIBERTY-JRE" => Some(Self::LibertyJre),
            _ => None,
        }
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JavaOracle => "JAVA-ORACLE",
            Self::OpenJdk => "OPENJDK",
            Self::OpenJ9 => "OPENJ9",
            Self::LibertyJre => "LIBERTY-JRE",
        }
    }
}

/// Who issues a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// `MANAGER_CA` (default).
    ManagerCa,
    /// `NODE`.
    Node,
    /// `SELF_IAS`.
    SelfIas,
}

impl Issuer {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ManagerCa => "MANAGER_CA",
            Self::Node => "NODE",
            Self::SelfIas => "SELF_IAS",
        }
    }
}

/// A validated certificate request (key type is always RSA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Issuer.
    pub issuer: Issuer,
    /// Common name.
    pub subject: String,
    /// RSA key size in bits (default 2048).
    pub rsa_bits: u32,
    /// Absolute path of the PEM key inside the enclave.
    pub key_path: String,
    /// Absolute path of the PEM certificate inside the enclave.
    pub cert_path: String,
}

/// The enclave size: what was asked and what is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemSize {
    /// `memSize` as given (`None`: the default).
    pub requested: Option<String>,
    /// Bytes asked for (before rounding).
    pub requested_bytes: u64,
    /// Bytes used: the next power of two at or above `requested_bytes`.
    pub bytes: u64,
}

/// A request that passed validation, with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRequest {
    /// `inputImageName` (non-empty, no whitespace).
    pub input_image: String,
    /// `outputImageName` (non-empty, no whitespace).
    pub output_image: String,
    /// Pull credentials (`inputAuthConfig`, else `authConfig`).
    pub input_auth: Option<Credentials>,
    /// Push credentials (`outputAuthConfig`, else `authConfig`).
    pub output_auth: Option<Credentials>,
    /// `isvprodid`.
    pub isvprodid: u16,
    /// `isvsvn`.
    pub isvsvn: u16,
    /// `memSize`, rounded.
    pub mem_size: MemSize,
    /// `threads`.
    pub threads: u32,
    /// `debug`.
    pub debug: bool,
    /// `entrypoint` (None: the image's).
    pub entrypoint: Option<Vec<String>>,
    /// `entrypointArgs` (None: the image's CMD unless `entrypoint` is given).
    pub entrypoint_args: Option<Vec<String>>,
    /// `roDirs`, normalised, deduplicated, sorted.
    pub ro_dirs: Vec<String>,
    /// `rwDirs`, normalised, deduplicated, sorted.
    pub rw_dirs: Vec<String>,
    /// `encryptedDirs`, normalised, deduplicated, sorted.
    pub encrypted_dirs: Vec<String>,
    /// `allowCmdlineArgs`.
    pub allow_cmdline_args: bool,
    /// `manifestEnv` as (KEY, VALUE), in request order (later wins).
    pub manifest_env: Vec<(String, String)>,
    /// `manifestOptions`, validated.
    pub manifest_options: ManifestOptions,
    /// `certificates`.
    pub certificates: Vec<Certificate>,
    /// `signingKey` (default `{default: {}}`).
    pub signing_key: SigningKey,
    /// `externalPackages`: where runtime images/packages are looked up (a converter path).
    pub external_packages: Option<String>,
    /// `coreDumpPattern`.
    pub core_dump_pattern: Option<String>,
    /// `logFilePath` (`"stderr"` or an absolute path).
    pub log_file_path: Option<String>,
    /// `javaMode`.
    pub java_mode: Option<JavaMode>,
    /// Things to tell the user (e.g. memSize rounded).
    pub warnings: Vec<String>,
}

struct Ctx {
    errors: Vec<FieldError>,
}

impl Ctx {
    fn err(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }
}

fn check_image_name(c: &mut Ctx, field: &str, v: &str) -> String {
    if v.is_empty() {
        c.err(field, "must not be empty");
    } else if v.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        c.err(field, "must not contain whitespace or control characters");
    }
    v.to_string()
}

fn check_auth(c: &mut Ctx, field: &str, a: &Option<AuthConfig>) {
    if let Some(a) = a {
        if a.username.is_empty() {
            c.err(format!("{field}.username"), "must not be empty");
        }
    }
}

fn check_u16(c: &mut Ctx, field: &str, v: Option<i64>) -> u16 {
    match v {
        None => 0,
        Some(n) => match u16::try_from(n) {
            Ok(x) => x,
            Err(_) => {
                c.err(field, format!("{n} is out of range 0..=65535"));
                0
            }
        },
    }
}

fn check_dirs(
    c: &mut Ctx,
    field: &str,
    given: &Option<Vec<String>>,
    defaults: &[&str],
) -> Vec<String> {
    let list: Vec<String> = match given {
        Some(v) => v.clone(),
        None => defaults.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        match normalize_absolute(p) {
            Some(n) => out.push(n),
            None => c.err(
                format!("{field}[{i}]"),
                format!("`{p}` must be an absolute path without control characters"),
            ),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn check_dir_relations(c: &mut Ctx, ro: &[String], rw: &[String], enc: &[String]) {
    if enc.iter().any(|p| p == "/") {
        c.err(
            "encryptedDirs",
            "`/` cannot be encrypted (the app and its libraries live there)",
        );
    }
    // `/` is reported above; leave it out of the relation checks.
    let enc: Vec<String> = enc.iter().filter(|p| p.as_str() != "/").cloned().collect();
    let enc = enc.as_slice();
    let lists: [(&str, &[String]); 3] = [("roDirs", ro), ("rwDirs", rw), ("encryptedDirs", enc)];
    for (i, (fa, la)) in lists.iter().enumerate() {
        for (fb, lb) in lists.iter().skip(i + 1) {
            for p in la.iter().filter(|p| lb.contains(p)) {
                c.err(
                    *fa,
                    format!("`{p}` is also in {fb}; a path can have only one kind"),
                );
            }
        }
    }
    for e in enc {
        for inner in ro.iter().filter(|p| is_strictly_within(p, e)) {
            c.err(
                "roDirs",
                format!(
                    "`{inner}` lies inside encryptedDirs entry `{e}`, whose mount would hide it"
                ),
            );
        }
        for inner in rw.iter().filter(|p| is_strictly_within(p, e)) {
            c.err(
                "rwDirs",
                format!(
                    "`{inner}` lies inside encryptedDirs entry `{e}`, whose mount would hide it"
                ),
            );
        }
        for inner in enc.iter().filter(|p| is_strictly_within(p, e)) {
            c.err(
                "encryptedDirs",
                format!("`{inner}` lies inside `{e}`; encrypted mounts must not overlap"),
            );
        }
    }
    for w in rw {
        for inner in ro.iter().filter(|p| is_strictly_within(p, w)) {
            c.err(
                "roDirs",
                format!(
                    "`{inner}` lies inside rwDirs entry `{w}`; Gramine's allowed files take \
                     precedence, so it could not be integrity-protected"
                ),
            );
        }
    }
}

fn check_env_entry(s: &str) -> Result<(String, String), &'static str> {
    let Some((k, v)) = s.split_once('=') else {
        return Err("must be KEY=VALUE");
    };
    if k.is_empty() {
        return Err("the KEY before `=` must not be empty");
    }
    if k.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err("the KEY must not contain whitespace or control characters");
    }
    if v.contains('\0') {
        return Err("the VALUE must not contain NUL");
    }
    Ok((k.to_string(), v.to_string()))
}

fn check_certificates(
    c: &mut Ctx,
    certs: &[super::request::CertificateConfig],
) -> Vec<Certificate> {
    let mut out = Vec::new();
    for (i, cert) in certs.iter().enumerate() {
        let f = |name: &str| format!("certificates[{i}].{name}");
        let before = c.errors.len();
        let issuer = match cert.issuer.as_deref() {
            None | Some("MANAGER_CA") => Issuer::ManagerCa,
            Some("NODE") => Issuer::Node,
            Some("SELF_IAS") => Issuer::SelfIas,
            Some(other) => {
                c.err(
                    f("issuer"),
                    format!("`{other}` is not one of MANAGER_CA, NODE, SELF_IAS"),
                );
                Issuer::ManagerCa
            }
        };
        let subject = match cert.subject.as_deref() {
            Some(s) if !s.is_empty() && !s.chars().any(char::is_control) => s.to_string(),
            Some(_) => {
                c.err(
                    f("subject"),
                    "must be a non-empty name without control characters",
                );
                String::new()
            }
            None => {
                c.err(f("subject"), "is required");
                String::new()
            }
        };
        match cert.key_type.as_deref() {
            None | Some("RSA") => {}
            Some(other) => c.err(
                f("keyType"),
                format!("`{other}` is not supported (only RSA)"),
            ),
        }
        let bits = cert.key_param.as_ref().and_then(|k| k.size).unwrap_or(2048);
        let rsa_bits = if !(2048..=16384).contains(&bits) || bits % 2 != 0 {
            c.err(
                f("keyParam.size"),
                format!("{bits} must be even and in 2048..=16384"),
            );
            2048
        } else {
            bits as u32
        };
        let mut path = |name: &str, v: &Option<String>| -> String {
            match v.as_deref().map(|p| (p, normalize_absolute(p))) {
                Some((_, Some(n))) => n,
                Some((p, None)) => {
                    c.err(f(name), format!("`{p}` must be an absolute path"));
                    String::new()
                }
                None => {
                    c.err(f(name), "is required");
                    String::new()
                }
            }
        };
        let key_path = path("keyPath", &cert.key_path);
        let cert_path = path("certPath", &cert.cert_path);
        if c.errors.len() == before {
            out.push(Certificate {
                issuer,
                subject,
                rsa_bits,
                key_path,
                cert_path,
            });
        }
    }
    out
}

/// The next power of two at or above `n` (n >= 1), if it fits.
fn next_pow2(n: u64) -> Option<u64> {
    n.checked_next_power_of_two()
}

/// Validates a request and applies the defaults.
pub fn validate(req: &ConvertRequest) -> Result<ValidRequest, ValidationErrors> {
    let mut c = Ctx { errors: Vec::new() };
    let mut warnings = Vec::new();

    let input_image = check_image_name(&mut c, "inputImageName", &req.input_image_name);
    let output_image = check_image_name(&mut c, "outputImageName", &req.output_image_name);
    check_auth(&mut c, "inputAuthConfig", &req.input_auth_config);
    check_auth(&mut c, "outputAuthConfig", &req.output_auth_config);
    check_auth(&mut c, "authConfig", &req.auth_config);
    let input_auth = req
        .input_auth_config
        .clone()
        .or_else(|| req.auth_config.clone())
        .map(Credentials);
    let output_auth = req
        .output_auth_config
        .clone()
        .or_else(|| req.auth_config.clone())
        .map(Credentials);

    let isvprodid = check_u16(&mut c, "isvprodid", req.isvprodid);
    let isvsvn = check_u16(&mut c, "isvsvn", req.isvsvn);

    let requested_bytes = match req.mem_size.as_deref() {
        None => DEFAULT_ENCLAVE_SIZE,
        Some(s) => match parse_size(s) {
            Ok(b) if (MIN_ENCLAVE_SIZE..=MAX_ENCLAVE_SIZE).contains(&b) => b,
            Ok(_) => {
                c.err("memSize", format!("`{s}` is outside 1M..=1024G"));
                DEFAULT_ENCLAVE_SIZE
            }
            Err(e) => {
                c.err("memSize", e);
                DEFAULT_ENCLAVE_SIZE
            }
        },
    };
    let bytes = next_pow2(requested_bytes).unwrap_or(MAX_ENCLAVE_SIZE);
    if bytes != requested_bytes {
        warnings.push(format!(
            "memSize: {} is not a power of two; rounded up to {} ({bytes} bytes)",
            req.mem_size.as_deref().unwrap_or_default(),
            super::size::format_size(bytes)
        ));
    }
    let mem_size = MemSize {
        requested: req.mem_size.clone(),
        requested_bytes,
        bytes,
    };

    let threads = match req.threads {
        None => DEFAULT_THREADS,
        Some(n) if (1..=i64::from(MAX_THREADS)).contains(&n) => n as u32,
        Some(n) => {
            c.err("threads", format!("{n} is out of range 1..={MAX_THREADS}"));
            DEFAULT_THREADS
        }
    };
    let debug = req.debug.unwrap_or(false);
    if threads < MIN_SENSIBLE_THREADS {
        warnings.push(format!(
            "threads: Gramine itself uses up to 3 helper threads (IPC, async, TLS handshake); \
             {threads} may leave the app without a thread"
        ));
    }

    for (field, list) in [
        ("entrypoint", &req.entrypoint),
        ("entrypointArgs", &req.entrypoint_args),
    ] {
        if let Some(l) = list {
            for (i, a) in l.iter().enumerate() {
                if a.contains('\0') {
                    c.err(format!("{field}[{i}]"), "must not contain NUL");
                }
            }
        }
    }
    if let Some(ep) = &req.entrypoint {
        if ep.first().is_some_and(|p| p.is_empty()) {
            c.err("entrypoint[0]", "the program must not be empty");
        }
    }

    let ro_dirs = check_dirs(&mut c, "roDirs", &req.ro_dirs, &DEFAULT_RO_DIRS);
    let rw_dirs = check_dirs(&mut c, "rwDirs", &req.rw_dirs, &DEFAULT_RW_DIRS);
    let encrypted_dirs = check_dirs(
        &mut c,
        "encryptedDirs",
        &req.encrypted_dirs,
        &DEFAULT_ENCRYPTED_DIRS,
    );
    check_dir_relations(&mut c, &ro_dirs, &rw_dirs, &encrypted_dirs);
    if rw_dirs.iter().any(|p| p == "/") {
        warnings.push("rwDirs contains `/`: no file of the image is integrity-protected".into());
    }

    let allow_cmdline_args = req.allow_cmdline_args.unwrap_or(false);
    if allow_cmdline_args {
        warnings.push(
            "allowCmdlineArgs: the host chooses the app's arguments; they are not measured".into(),
        );
    }

    let mut manifest_env = Vec::new();
    for (i, e) in req.manifest_env.iter().flatten().enumerate() {
        match check_env_entry(e) {
            Ok(kv) => manifest_env.push(kv),
            Err(p) => c.err(format!("manifestEnv[{i}]"), p),
        }
    }

    let certificates = check_certificates(&mut c, req.certificates.as_deref().unwrap_or_default());
    for cert in &certificates {
        for p in [&cert.key_path, &cert.cert_path] {
            if !encrypted_dirs.iter().any(|d| is_within(p, d)) {
                warnings.push(format!(
                    "certificates: `{p}` is not inside an encryptedDirs entry; the enclave could \
                     not write it"
                ));
            }
        }
    }

    let signing_key = req.signing_key.clone().unwrap_or_default();
    if let SigningKey::Sdkms(k) = &signing_key {
        if k.name.is_empty() {
            c.err("signingKey.sdkms.name", "must not be empty");
        }
        if k.api_key.is_empty() {
            c.err("signingKey.sdkms.apiKey", "must not be empty");
        }
    }

    let external_packages = match req.external_packages.as_deref() {
        None => None,
        Some(p) => match normalize_absolute(p) {
            Some(n) => Some(n),
            None => {
                c.err(
                    "externalPackages",
                    format!("`{p}` must be an absolute path"),
                );
                None
            }
        },
    };
    let core_dump_pattern = match req.core_dump_pattern.as_deref() {
        None => None,
        Some(p) if p.is_empty() || p.chars().any(char::is_control) => {
            c.err(
                "coreDumpPattern",
                "must be non-empty, without control characters",
            );
            None
        }
        Some(p) => {
            if !debug {
                warnings.push(
                    "coreDumpPattern: a production (non-debug) enclave never dumps core".into(),
                );
            }
            Some(p.to_string())
        }
    };
    let log_file_path = match req.log_file_path.as_deref() {
        None => None,
        Some("stderr") => Some("stderr".to_string()),
        Some(p) => match normalize_absolute(p) {
            Some(n) => Some(n),
            None => {
                c.err(
                    "logFilePath",
                    format!("`{p}` must be `stderr` or an absolute path"),
                );
                None
            }
        },
    };
    let java_mode = match req.java_mode.as_deref() {
        None => None,
        Some(s) => match JavaMode::parse(s) {
            Some(m) => Some(m),
            None => {
                c.err(
                    "javaMode",
                    format!("`{s}` is not one of JAVA-ORACLE, OPENJDK, OPENJ9, LIBERTY-JRE"),
                );
                None
            }
        },
    };

    let ctx = OptionContext {
        debug,
        enclave_size: bytes,
        threads,
        isvprodid,
        isvsvn,
        allow_cmdline_args,
        log_file_path: log_file_path.clone(),
    };
    let manifest_options = match &req.manifest_options {
        None => ManifestOptions::default(),
        Some(map) => match validate_options(map, &ctx, &encrypted_dirs) {
            Ok(o) => o,
            Err(es) => {
                for e in es {
                    c.err("manifestOptions", e.trim_start_matches("manifestOptions: "));
                }
                ManifestOptions::default()
            }
        },
    };

    if !c.errors.is_empty() {
        return Err(ValidationErrors(c.errors));
    }
    Ok(ValidRequest {
        input_image,
        output_image,
        input_auth,
        output_auth,
        isvprodid,
        isvsvn,
        mem_size,
        threads,
        debug,
        entrypoint: req.entrypoint.clone(),
        entrypoint_args: req.entrypoint_args.clone(),
        ro_dirs,
        rw_dirs,
        encrypted_dirs,
        allow_cmdline_args,
        manifest_env,
        manifest_options,
        certificates,
        signing_key,
        external_packages,
        core_dump_pattern,
        log_file_path,
        java_mode,
        warnings,
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
