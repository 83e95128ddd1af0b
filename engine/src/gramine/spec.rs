//! The enclave spec: everything the manifests, the measurement and the launcher need,
//! derived from the validated request, the image config, the image's [`FileIndex`] and the
//! runtime descriptor. [`build_spec`] does no I/O.
//!
//! Choices (the field docs of [`EnclaveSpec`] give the mapping to manifest keys):
//! - Root filesystem: the image itself, `fs.root = { type = "chroot", uri = "file:/" }`.
//!   The app uses the image's own libraries, except its C library where Gramine's patched
//!   glibc from the runtime fits (a glibc image no newer than it): then that glibc's
//!   directory leads `LD_LIBRARY_PATH`, as GSC does ([`super::runtime_libc`]).
//! - `/proc`, `/dev`, `/sys`: nothing to mount; Gramine's LibOS mounts its own emulated
//!   pseudo-filesystems there at start-up (libos/src/fs/libos_fs.c), and their image
//!   contents are excluded from the trusted files.
//! - No tmpfs by default: the default encrypted dirs (`/tmp`, `/run`, ...) give the app
//!   writable scratch space that, unlike Gramine's tmpfs, is shared between its processes.
//!   Users may add tmpfs mounts through `manifestOptions` (`fs.mounts`).
//! - Encrypted dirs: `{ type = "encrypted", path = D, uri = "file:<EFS_HOST_ROOT>D",
//!   key_name = "_sgx_mrenclave" }`. `_sgx_mrenclave`, not `_sgx_mrsigner`, because the
//!   service's default signing key is shared by every conversion: an MRSIGNER-bound key
//!   would let any other enclave signed with it unseal the files. The price: sealed data
//!   does not survive a re-conversion, and the SGX1 and EDMM enclaves (different
//!   MRENCLAVEs) cannot read each other's files; the launcher picks the same variant on a
//!   given machine every time. The host dirs must exist in the output image
//!   ([`EnclaveSpec::host_dirs`]).
//! - rwDirs → `sgx.allowed_files` (`file:<path>`; Gramine treats an entry as a prefix for
//!   everything below it). `/etc/resolv.conf` in rwDirs becomes
//!   `sys.enable_extra_runtime_domain_names_conf = true` instead (Gramine generates the file
//!   from the host's, sanitised, and sets the hostname); Gramine v1.9 emulates neither
//!   `/etc/hosts` nor `/etc/hostname`, so those two stay allowed files.
//! - `allowCmdlineArgs`: `loader.insecure__use_cmdline_argv = true` and no `loader.argv`
//!   (Gramine refuses both at once); the composed argv is kept in the spec as the
//!   launcher's default arguments. Otherwise `loader.argv` is the composed argv and
//!   `loader.insecure__use_cmdline_argv = false` is written explicitly.
//! - `coreDumpPattern` has no Gramine key (an enclave's memory cannot be dumped by the
//!   host kernel): it is launcher configuration, kept in the spec.
//! - `certificates` are provisioned inside the enclave at start-up by kiln-init
//!   ([`super::init`]): it becomes `libos.entrypoint` (the app's argv unchanged), it and
//!   `/opt/kiln/init.json` become trusted files, and `sgx.remote_attestation = "dcap"`.
//!   The certificates are self-signed with the SGX quote embedded (RA-TLS style); the
//!   warnings say so per issuer. Without certificates nothing of this appears.
//! - `externalPackages` is where the host looks the runtime image up: natively the CLI
//!   stages it from that directory (an OCI image layout) before the pipeline runs; the
//!   browser and the worker refuse it (see [`crate::pipeline::env::PipelineEnv`]).
//! - `debug` → `sgx.debug = true` and `loader.log_level = "debug"` (else `"error"`).
//! - `logFilePath` → `loader.log_file` (`"stderr"` means Gramine's default, so no key).
//! - Environment: as docker/runc, `PATH` defaults to docker's default PATH and `HOME` to
//!   the user's home from the image's /etc/passwd (else `/`) when neither the image nor
//!   the request sets them. `HOSTNAME` is not set: it is only known at run time.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;

use super::argv::{compose_argv, find_program, ArgvError};
use super::dirs::{collect, name_some, DirRules, EFS_HOST_ROOT, KILN_ROOT, PSEUDO_FS};
use super::env::{build_env, keep_interpreter_reachable, DEFAULT_PATH};
use super::fsview::{resolve, Node};
use super::init::{InitSetup, NO_KILN_INIT};
use super::log_links::{self, Stream};
use super::options::ManifestOptions;
use super::paths::{is_strictly_within, is_within, join, normalize_absolute};
use super::runtime_descriptor::RuntimeDescriptor;
use super::users::{resolve_user, UserError};
use super::validate::{Certificate, ValidRequest};
use crate::image::file_index::FileIndex;

/// The Gramine key name used for encrypted dirs.
pub const ENCRYPTED_KEY_NAME: &str = "_sgx_mrenclave";

/// `sys.stack.size` unless `manifestOptions` sets it: the 8 MiB Linux gives a main thread
/// (Gramine's default is 256 KiB, too small for e.g. PostgreSQL's `max_stack_depth`).
pub const DEFAULT_STACK_SIZE: u64 = 8 << 20;

/// One trusted file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrustedFile {
    /// Absolute path inside the enclave (the URI is `file:` + path).
    pub path: String,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
}

/// One encrypted mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedMount {
    /// Path inside the enclave.
    pub path: String,
    /// Directory in the container filesystem that holds the encrypted files.
    pub host_path: String,
    /// Gramine key name (`_sgx_mrenclave`).
    pub key_name: String,
}

/// Why a spec could not be built. All are the request's or the image's fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The command line.
    #[error("entrypoint: {0}")]
    Argv(#[from] ArgvError),
    /// The program is not a trusted file.
    #[error(
        "entrypoint: program `{0}` is not a trusted file (it must lie under roDirs, outside rwDirs and encryptedDirs)"
    )]
    ProgramNotTrusted(String),
    /// USER.
    #[error("{0}")]
    User(#[from] UserError),
    /// WorkingDir.
    #[error("image WorkingDir `{0}` is not a valid path")]
    WorkingDir(String),
    /// The runtime descriptor.
    #[error("{0}")]
    Runtime(String),
}

/// Everything the manifests and the launcher need.
#[derive(Debug, Clone, PartialEq)]
pub struct EnclaveSpec {
    /// `libos.entrypoint`: absolute path of the program (a trusted file).
    pub program: String,
    /// The composed command line (`loader.argv` unless `use_cmdline_argv`).
    pub argv: Vec<String>,
    /// `loader.insecure__use_cmdline_argv` (from `allowCmdlineArgs`).
    pub use_cmdline_argv: bool,
    /// `loader.env.*`.
    pub env: BTreeMap<String, String>,
    /// `fs.start_dir`.
    pub start_dir: String,
    /// `loader.uid`.
    pub uid: u32,
    /// `loader.gid`.
    pub gid: u32,
    /// `sgx.trusted_files`, sorted by path.
    pub trusted_files: Vec<TrustedFile>,
    /// `sgx.allowed_files` paths (URI `file:` + path), sorted.
    pub allowed_files: Vec<String>,
    /// `fs.mounts` of type encrypted, sorted by path.
    pub encrypted_mounts: Vec<EncryptedMount>,
    /// `sys.enable_extra_runtime_domain_names_conf`.
    pub runtime_domain_names: bool,
    /// `sgx.enclave_size` in bytes (a power of two).
    pub enclave_size: u64,
    /// `sgx.max_threads`.
    pub max_threads: u32,
    /// `sys.stack.size` in bytes (also RLIMIT_STACK, glibc's default pthread stack size).
    pub stack_size: u64,
    /// `sgx.use_exinfo` of the SGX1 enclave before `manifestOptions` (true with
    /// `javaMode`); the EDMM enclave always has it (see [`super::manifest`]).
    pub sgx1_exinfo: bool,
    /// Log files of the image linked to stdout/stderr: allowed files, re-pointed at the
    /// launcher's relays by the kiln layer ([`super::log_links`]).
    pub log_links: BTreeMap<String, Stream>,
    /// `sgx.debug`.
    pub debug: bool,
    /// `sgx.isvprodid`.
    pub isvprodid: u16,
    /// `sgx.isvsvn`.
    pub isvsvn: u16,
    /// `loader.log_level`.
    pub log_level: String,
    /// `loader.log_file` (None: stderr).
    pub log_file: Option<String>,
    /// `loader.entrypoint.uri`: the runtime's libsysdb.so.
    pub libos_uri: String,
    /// `loader.entrypoint.sha256` (hex).
    pub libos_sha256: String,
    /// Validated `manifestOptions`, merged last.
    pub options: ManifestOptions,
    /// Launcher configuration: `coreDumpPattern`.
    pub core_dump_pattern: Option<String>,
    /// Launcher configuration: `certificates`.
    pub certificates: Vec<Certificate>,
    /// kiln-init (when certificates are requested): `libos.entrypoint`, `init.json`,
    /// `sgx.remote_attestation = "dcap"`; its trusted files are in `trusted_files`.
    pub init: Option<InitSetup>,
    /// `externalPackages`, recorded.
    pub external_packages: Option<String>,
    /// Things to tell the user.
    pub warnings: Vec<String>,
}

impl EnclaveSpec {
    /// Directories the output image must contain for the encrypted mounts.
    pub fn host_dirs(&self) -> Vec<String> {
        self.encrypted_mounts
            .iter()
            .map(|m| m.host_path.clone())
            .collect()
    }
}

/// Builds the enclave spec for a runtime without kiln-init (a request with
/// `certificates` fails); see [`build_spec_with_init`].
pub fn build_spec(
    req: &ValidRequest,
    config: &ImageConfiguration,
    index: &FileIndex,
    runtime: &RuntimeDescriptor,
) -> Result<EnclaveSpec, SpecError> {
    build_spec_with_init(req, config, index, runtime, None)
}

/// Builds the enclave spec. `kiln_init_sha256` is the hash of the runtime's kiln-init
/// (from the runtime layer's scan), `None` when the runtime image has none; it is only
/// used when the request has `certificates`. No manager URL: see
/// [`build_spec_with_manager`].
pub fn build_spec_with_init(
    req: &ValidRequest,
    config: &ImageConfiguration,
    index: &FileIndex,
    runtime: &RuntimeDescriptor,
    kiln_init_sha256: Option<[u8; 32]>,
) -> Result<EnclaveSpec, SpecError> {
    build_spec_with_manager(req, config, index, runtime, kiln_init_sha256, None)
}

/// [`build_spec_with_init`] with the conversion's manager URL (checked by the caller with
/// [`super::init::check_manager_url`]): MANAGER_CA entries of `init.json` carry it, so
/// kiln-init has those certificates issued by the manager ([`super::init`]).
pub fn build_spec_with_manager(
    req: &ValidRequest,
    config: &ImageConfiguration,
    index: &FileIndex,
    runtime: &RuntimeDescriptor,
    kiln_init_sha256: Option<[u8; 32]>,
    manager_url: Option<&str>,
) -> Result<EnclaveSpec, SpecError> {
    runtime
        .validate()
        .map_err(|e| SpecError::Runtime(e.to_string()))?;
    let mut warnings = req.warnings.clone();
    let cfg = config.config().as_ref();

    // Working directory.
    let wd_raw = cfg
        .and_then(|c| c.working_dir().clone())
        .unwrap_or_default();
    let start_dir = if wd_raw.is_empty() {
        "/".to_string()
    } else {
        join("/", &wd_raw).ok_or_else(|| SpecError::WorkingDir(wd_raw.clone()))?
    };
    if !matches!(resolve(index, &start_dir), Ok((_, Node::Dir))) {
        warnings.push(format!(
            "image WorkingDir `{start_dir}` is not a directory in the image; the app may fail to start"
        ));
    }

    // User.
    let user = cfg.and_then(|c| c.user().clone()).unwrap_or_default();
    let ids = resolve_user(
        &user,
        index.captured.get("/etc/passwd").map(Vec::as_slice),
        index.captured.get("/etc/group").map(Vec::as_slice),
    )?;

    // Environment, with the variables a container runtime adds when absent.
    let image_env = cfg.and_then(|c| c.env().clone()).unwrap_or_default();
    let (mut env, skipped) = build_env(
        &image_env,
        req.java_mode,
        req.mem_size.bytes,
        &req.manifest_env,
    );
    env.entry("PATH".to_string())
        .or_insert_with(|| DEFAULT_PATH.to_string());
    env.entry("HOME".to_string()).or_insert_with(|| {
        ids.home
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".into())
    });
    if !skipped.is_empty() {
        warnings.push(format!(
            "image Env entries without `=` ignored: {}",
            name_some(&skipped)
        ));
    }

    // Command line and program.
    let argv = compose_argv(
        cfg.and_then(|c| c.entrypoint().as_deref()),
        cfg.and_then(|c| c.cmd().as_deref()),
        req.entrypoint.as_deref(),
        req.entrypoint_args.as_deref(),
    )?;
    let path_var = env.get("PATH").map(String::as_str).unwrap_or(DEFAULT_PATH);
    let argv0 = argv.first().map(String::as_str).unwrap_or_default();
    let found = find_program(index, argv0, path_var, &start_dir)?;
    // Gramine reports `libos.entrypoint` as /proc/self/exe without resolving symlinks, so a
    // program reached through links (/usr/bin/java -> /etc/alternatives/java -> the JVM)
    // would see the link's directory as `$ORIGIN` and its own path (the JVM finds its home
    // from it). The resolved path is what the kernel reports in a container.
    let program = match resolve(index, &found) {
        Ok((real, Node::File(_))) => real,
        _ => found,
    };
    // The C library: Gramine's patched glibc from the runtime where it fits the image.
    let libc = super::runtime_libc::plan(index, &mut env, runtime);
    warnings.extend(libc.warnings.iter().cloned());
    if !libc.runtime_glibc {
        if let Some(added) = keep_interpreter_reachable(&mut env, index) {
            warnings.push(format!(
                "LD_LIBRARY_PATH: `{added}` appended after the image's value: Gramine looks for \
                 the ELF interpreter only in LD_LIBRARY_PATH when it is set"
            ));
        }
    }

    // VOLUMEs are writable, as a container runtime makes them.
    let image_volumes: Vec<String> = cfg.and_then(|c| c.volumes().clone()).unwrap_or_default();
    let volumes = writable_volumes(req, &image_volumes);
    warnings.extend(volumes.warnings);
    let rw_dirs: Vec<String> = {
        let mut v = req.rw_dirs.clone();
        v.extend(volumes.rw.iter().cloned());
        v.sort();
        v.dedup();
        v
    };

    // Files.
    let rules = DirRules::new(&req.ro_dirs, &rw_dirs, &req.encrypted_dirs);
    let mut excluded: Vec<String> = PSEUDO_FS.iter().map(|s| s.to_string()).collect();
    excluded.push(KILN_ROOT.to_string());
    excluded.push(runtime.prefix.clone());
    excluded.push(EFS_HOST_ROOT.to_string());
    let set = collect(index, &rules, &req.encrypted_dirs, &excluded);
    for (dir, hidden) in &set.hidden_by_encrypted {
        warnings.push(format!(
            "encryptedDirs `{dir}`: {} path(s) of the image there are hidden by the encrypted mount (they cannot be sealed at conversion time): {}",
            hidden.len(),
            name_some(hidden)
        ));
    }
    if !set.skipped_links.is_empty() {
        warnings.push(format!(
            "symlinks to directories not followed (a cycle, nesting deeper than {}, or more than {} paths through links): {}",
            super::dirs::MAX_DIR_LINK_DEPTH,
            super::dirs::MAX_LINK_ALIASES,
            name_some(&set.skipped_links)
        ));
    }
    if let Some((p, _)) = crate::gramine::fsview::descendants(index, KILN_ROOT).next() {
        warnings.push(format!(
            "the image already has files under {KILN_ROOT} (e.g. `{p}`); they are replaced by kiln's and not trusted"
        ));
    }
    if !set.files.contains_key(&program) {
        return Err(SpecError::ProgramNotTrusted(program));
    }
    let mut trusted_files: Vec<TrustedFile> = set
        .files
        .into_iter()
        .map(|(path, sha256)| TrustedFile { path, sha256 })
        .chain(libc.trusted_files)
        .collect();
    trusted_files.sort();
    let init = if req.certificates.is_empty() {
        None
    } else {
        let hash = kiln_init_sha256.ok_or_else(|| SpecError::Runtime(NO_KILN_INIT.into()))?;
        let setup = super::init::setup(&program, &req.certificates, runtime, hash, manager_url);
        trusted_files.extend(setup.trusted_files.iter().cloned());
        trusted_files.sort();
        trusted_files.dedup_by(|a, b| a.path == b.path);
        warnings.extend(super::init::warnings(
            &req.certificates,
            &rules,
            manager_url,
        ));
        Some(setup)
    };

    let mut log_excluded = excluded.clone();
    log_excluded.extend(req.encrypted_dirs.iter().cloned());
    let log_links = log_links::find(index, &log_excluded);

    let runtime_domain_names = rw_dirs.iter().any(|p| p == "/etc/resolv.conf");
    let mut allowed_files: Vec<String> = rw_dirs
        .iter()
        .filter(|p| !(runtime_domain_names && p.as_str() == "/etc/resolv.conf"))
        .cloned()
        .collect();
    allowed_files.extend(log_links.keys().cloned());

    warnings.extend(super::workload::warnings(&super::workload::Sizing {
        program: &program,
        argv: &argv,
        threads: req.threads,
        enclave_size: req.mem_size.bytes,
        java_mode: req.java_mode.is_some(),
    }));
    let mut encrypted_mounts: Vec<EncryptedMount> = req
        .encrypted_dirs
        .iter()
        .map(|d| EncryptedMount {
            path: d.clone(),
            host_path: format!("{EFS_HOST_ROOT}{d}"),
            key_name: ENCRYPTED_KEY_NAME.to_string(),
        })
        .collect();
    let aliases = dir_link_aliases(index, &rw_dirs, &req.encrypted_dirs, &log_excluded);
    for (link, dir) in &aliases.rw {
        warnings.push(format!(
            "`{link}` is a link to the rwDir `{dir}`: Gramine checks the path the app opens, \
             so `{link}` is made writable too"
        ));
        allowed_files.push(link.clone());
    }
    allowed_files.sort();
    allowed_files.dedup();
    for (link, real) in &aliases.encrypted {
        warnings.push(format!(
            "`{link}` is a link to `{real}` in an encryptedDir: Gramine does not follow it into \
             the encrypted mount, so `{link}` is mounted onto the same encrypted files"
        ));
        encrypted_mounts.push(EncryptedMount {
            path: link.clone(),
            host_path: format!("{EFS_HOST_ROOT}{real}"),
            key_name: ENCRYPTED_KEY_NAME.to_string(),
        });
    }
    encrypted_mounts.sort_by(|a, b| a.path.cmp(&b.path));

    Ok(EnclaveSpec {
        program,
        argv,
        use_cmdline_argv: req.allow_cmdline_args,
        env,
        start_dir,
        uid: ids.uid,
        gid: ids.gid,
        trusted_files,
        allowed_files,
        encrypted_mounts,
        runtime_domain_names,
        enclave_size: req.mem_size.bytes,
        max_threads: req.threads,
        stack_size: DEFAULT_STACK_SIZE,
        sgx1_exinfo: req.java_mode.is_some(),
        log_links,
        debug: req.debug,
        isvprodid: req.isvprodid,
        isvsvn: req.isvsvn,
        log_level: if req.debug { "debug" } else { "error" }.to_string(),
        log_file: req.log_file_path.clone().filter(|p| p != "stderr"),
        libos_uri: runtime.libsysdb_uri(),
        libos_sha256: runtime.libsysdb_sha256.clone(),
        options: req.manifest_options.clone(),
        core_dump_pattern: req.core_dump_pattern.clone(),
        certificates: req.certificates.clone(),
        init,
        external_packages: req.external_packages.clone(),
        warnings,
    })
}

/// The image's VOLUMEs that become writable, and what to tell the user.
struct Volumes {
    rw: Vec<String>,
    warnings: Vec<String>,
}

/// A container runtime mounts writable storage on every `VOLUME` of the image, so the
/// app expects to write there (PostgreSQL's data directory, say); kiln makes each one an
/// rwDir unless the request already says what it is: inside an encryptedDir (sealed), an
/// rwDir (already writable), or exactly a roDir the request lists (kept read-only). A
/// VOLUME that would contain a narrower roDir cannot be writable as a whole (see
/// [`super::validate`]'s nesting rules) and stays read-only, with a warning.
fn writable_volumes(req: &ValidRequest, image_volumes: &[String]) -> Volumes {
    let mut out = Volumes {
        rw: Vec::new(),
        warnings: Vec::new(),
    };
    let mut made_rw = Vec::new();
    for raw in image_volumes {
        let Some(v) = normalize_absolute(raw) else {
            out.warnings.push(format!(
                "image VOLUME `{raw}` is not an absolute path; ignored"
            ));
            continue;
        };
        if v == "/"
            || req.encrypted_dirs.iter().any(|d| is_within(&v, d))
            || req.rw_dirs.iter().any(|d| is_within(&v, d))
            || req.ro_dirs.iter().any(|d| d == &v && d != "/")
        {
            continue;
        }
        if let Some(ro) = req.ro_dirs.iter().find(|d| is_strictly_within(d, &v)) {
            out.warnings.push(format!(
                "image VOLUME `{v}` stays read-only: it contains the roDir `{ro}`; list it in \
                 rwDirs or encryptedDirs and narrow roDirs to make it writable"
            ));
            continue;
        }
        out.rw.push(v.clone());
        made_rw.push(v);
    }
    if !made_rw.is_empty() {
        out.warnings.push(format!(
            "image VOLUME {}: writable (as rwDirs), as a container runtime mounts them; their \
             files are not integrity-protected: list them in encryptedDirs to seal them",
            name_some(&made_rw)
        ));
    }
    out
}

/// Directory links of the image that lead into an rwDir or an encryptedDir.
struct DirLinkAliases {
    /// (link, the rwDir it leads into).
    rw: Vec<(String, String)>,
    /// (link, the real directory inside an encryptedDir).
    encrypted: Vec<(String, String)>,
}

/// Gramine checks the path an app opens against its mounts and allowed files without
/// following the image's symlinks (the host follows them), so a link such as Debian's
/// `/var/run -> /run` bypasses the encrypted mount at `/run`: files created under
/// `/var/run` land in the read-only root and are refused (nginx's pid file). Each such link
/// (outside `excluded` and the three lists' own special dirs) gets what its target has:
/// a link into an rwDir becomes an allowed path, a link into an encryptedDir an encrypted
/// mount onto the same host directory and key (Gramine binds encrypted files to their host
/// path, so both names reach the same files).
fn dir_link_aliases(
    index: &FileIndex,
    rw_dirs: &[String],
    encrypted_dirs: &[String],
    excluded: &[String],
) -> DirLinkAliases {
    let mut out = DirLinkAliases {
        rw: Vec::new(),
        encrypted: Vec::new(),
    };
    for (path, entry) in crate::gramine::fsview::descendants(index, "/") {
        if !matches!(
            entry.kind,
            crate::image::file_index::FileKind::Symlink { .. }
        ) || excluded.iter().any(|x| is_within(path, x))
            || rw_dirs.iter().any(|d| is_within(path, d))
        {
            continue;
        }
        let Ok((real, Node::Dir)) = resolve(index, path) else {
            continue;
        };
        if real == *path {
            continue;
        }
        if encrypted_dirs.iter().any(|d| is_within(&real, d)) {
            out.encrypted.push((path.clone(), real));
        } else if let Some(d) = rw_dirs.iter().find(|d| is_within(&real, d)) {
            out.rw.push((path.clone(), d.clone()));
        }
    }
    out
}
