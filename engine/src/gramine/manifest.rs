//! The manifest writer: an [`EnclaveSpec`] → the final Gramine manifest bytes
//! (`.manifest.sgx`), in kiln's canonical TOML ([`super::canonical`]). The same spec always
//! gives the same bytes.
//!
//! Every key Gramine's signer would otherwise default, and every key that decides the
//! measurement, is written explicitly: `sgx.enclave_size`, `sgx.max_threads`, `sgx.debug`,
//! `sgx.edmm_enable`, `sgx.isvprodid`, `sgx.isvsvn`, `sgx.use_exinfo`,
//! `sgx.cpu_features.{avx,avx512,amx,mpx,pkru}`, `sgx.file_check_policy = "strict"`,
//! `sgx.remote_attestation`, `sgx.enable_stats`, `sgx.trusted_files` (inline tables
//! `{ sha256, uri }` sorted by uri), `sgx.allowed_files`, `fs.root`, `fs.mounts`,
//! `fs.start_dir` (inside `[fs]`), `loader.entrypoint.uri` and `.sha256`,
//! `libos.entrypoint`, `loader.argv`, `loader.insecure__use_cmdline_argv`, `loader.env.*`,
//! `loader.uid`, `loader.gid`, `loader.log_level`,
//! `sys.enable_extra_runtime_domain_names_conf`, `sys.enable_sigterm_injection`,
//! `sys.stack.size`. Key names follow Gramine v1.9's
//! Documentation/manifest-syntax.rst and python/graminelibos/manifest_check.py.
//!
//! With certificates ([`super::init`]), `libos.entrypoint` is kiln-init (which execs the
//! app with the same `loader.argv`) and `sgx.remote_attestation = "dcap"`.
//!
//! Two variants: [`Variant::Sgx1`] (`sgx.edmm_enable = false`, every page added at build
//! time) and [`Variant::Edmm`] (`sgx.edmm_enable = true`). Both use the *same*
//! `sgx.enclave_size` (the request's memSize), not Gramine's 1024G EDMM default: the app
//! gets the same memory limit whichever enclave the launcher picks, and memSize keeps its
//! meaning on SGX2 hardware. They differ in one more key, `sgx.use_exinfo`:
//! - EDMM: always `true`, also over `manifestOptions`. Gramine commits EDMM heap pages
//!   lazily on a page fault and needs the faulting address, which only EXINFO reports;
//!   without it the PAL exits at the first lazy fault ("Tried to handle a memory fault with
//!   no faulting address reported by SGX", pal/src/host/linux-sgx/pal_exception.c v1.9),
//!   which glibc's per-thread arenas (MAP_NORESERVE) cause in any multi-threaded app.
//!   Every CPU with SGX2 reports EXINFO, so this costs no host.
//! - SGX1: [`EnclaveSpec::sgx1_exinfo`] (true with `javaMode`, or as `manifestOptions`
//!   sets `sgx.use_exinfo`). Without EXINFO a #PF/#GP inside the enclave exits it ("Host
//!   injected malicious signal", pal_exception.c), so apps that recover from SIGSEGV (the
//!   JVM's implicit null checks and stack banging) die; with it the enclave starts only on
//!   CPUs that report EXINFO (MISCSELECT bit 0: SGX2-capable CPUs running a kernel without
//!   EDMM), and its SIGSTRUCT carries MISCSELECT 0x1 (the launcher checks the CPU).
//!
//! Always written, as Linux and docker behave: `sys.enable_sigterm_injection = true` (the
//! LibOS otherwise drops the host's SIGTERM, libos/src/libos_signal.c, so `docker stop`
//! would always end in SIGKILL) and `sys.stack.size` ([`EnclaveSpec::stack_size`], 8 MiB
//! unless `manifestOptions` says otherwise: Gramine's default is 256 KiB, where Linux gives
//! the main thread 8 MiB; it is also RLIMIT_STACK, which glibc uses as the default pthread
//! stack size, libos/src/libos_init.c and sys/libos_getrlimit.c).
//!
//! A third, unmeasured variant, [`Variant::Direct`], is for Gramine's insecure non-SGX mode
//! (`gramine-direct`, which reads `app.manifest`, not `.manifest.sgx`): it equals the SGX1
//! manifest except that encrypted dirs become `tmpfs` mounts, because the `_sgx_mrenclave`
//! key does not exist outside SGX (Gramine v1.9 mounts them but every file access fails).
//! Trusted files are still checked in direct mode. With certificates, direct mode maps
//! encrypted dirs to their host directories unencrypted (`chroot`) instead: Gramine's
//! tmpfs is per process and does not survive kiln-init's `execve` of the app (checked
//! with gramine-direct v1.9), so the app would find no certificate; their host directories
//! (`file:<host dir>/`) are then allowed files of the direct manifest.
//!
//! Log files the image links to stdout/stderr are allowed files (the kiln layer points
//! them at the launcher's relays, [`super::log_links`]).
//!
//! `manifestOptions` (validated) are merged last: leaves overwrite, `fs.mounts` entries are
//! appended after kiln's mounts.

use super::canonical::{insert_path, to_canonical_toml, Table, Value};
use super::size::format_size;
use super::spec::EnclaveSpec;
use crate::sgx::manifest_params::SgxManifestParams;

/// Which enclave a manifest is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// SGX1: `sgx.edmm_enable = false`.
    Sgx1,
    /// SGX2 with EDMM: `sgx.edmm_enable = true`.
    Edmm,
    /// Gramine's non-SGX mode: as `Sgx1`, encrypted dirs as `tmpfs`. Not measured.
    Direct,
}

/// A manifest option that could not be merged (cannot happen for validated options).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifestOptions: `{0}` clashes with a non-table manifest value")]
pub struct MergeError(pub String);

fn t(entries: Vec<(&str, Value)>) -> Table {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Lower-case hex of a SHA-256 (`hex::encode` goes through a char iterator, which is
/// measurably slow for tens of thousands of trusted files).
fn hex_lower(bytes: &[u8; 32]) -> String {
    let mut buf = [0u8; 64];
    match hex::encode_to_slice(bytes, &mut buf) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => hex::encode(bytes),
    }
}

fn strs(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::str(s.clone())).collect())
}

/// The manifest as a TOML table.
pub fn manifest_table(spec: &EnclaveSpec, variant: Variant) -> Result<Table, MergeError> {
    let mut mounts: Vec<Value> = spec
        .encrypted_mounts
        .iter()
        .map(|m| {
            Value::Table(if variant == Variant::Direct && spec.init.is_some() {
                t(vec![
                    ("type", Value::str("chroot")),
                    ("path", Value::str(m.path.clone())),
                    ("uri", Value::str(format!("file:{}", m.host_path))),
                ])
            } else if variant == Variant::Direct {
                t(vec![
                    ("type", Value::str("tmpfs")),
                    ("path", Value::str(m.path.clone())),
                ])
            } else {
                t(vec![
                    ("type", Value::str("encrypted")),
                    ("path", Value::str(m.path.clone())),
                    ("uri", Value::str(format!("file:{}", m.host_path))),
                    ("key_name", Value::str(m.key_name.clone())),
                ])
            })
        })
        .collect();
    mounts.extend(spec.options.extra_mounts.iter().cloned().map(Value::Table));

    let fs = t(vec![
        (
            "root",
            Value::Table(t(vec![
                ("type", Value::str("chroot")),
                ("uri", Value::str("file:/")),
            ])),
        ),
        ("mounts", Value::Array(mounts)),
        ("start_dir", Value::str(spec.start_dir.clone())),
    ]);

    let entrypoint = match &spec.init {
        Some(init) => init.entrypoint.clone(),
        None => spec.program.clone(),
    };
    let libos = t(vec![("entrypoint", Value::str(entrypoint))]);

    let env: Table = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), Value::str(v.clone())))
        .collect();
    let mut loader = t(vec![
        (
            "entrypoint",
            Value::Table(t(vec![
                ("uri", Value::str(spec.libos_uri.clone())),
                ("sha256", Value::str(spec.libos_sha256.clone())),
            ])),
        ),
        (
            "insecure__use_cmdline_argv",
            Value::Boolean(spec.use_cmdline_argv),
        ),
        ("env", Value::Table(env)),
        ("uid", Value::Integer(i64::from(spec.uid))),
        ("gid", Value::Integer(i64::from(spec.gid))),
        ("log_level", Value::str(spec.log_level.clone())),
    ]);
    if !spec.use_cmdline_argv {
        loader.insert("argv".into(), strs(&spec.argv));
    }
    if let Some(f) = &spec.log_file {
        loader.insert("log_file".into(), Value::str(f.clone()));
    }

    let trusted: Vec<Value> = spec
        .trusted_files
        .iter()
        .map(|f| {
            Value::Table(t(vec![
                ("uri", Value::str(format!("file:{}", f.path))),
                ("sha256", Value::str(hex_lower(&f.sha256))),
            ]))
        })
        .collect();
    let mut allowed: Vec<Value> = spec
        .allowed_files
        .iter()
        .map(|p| Value::str(format!("file:{p}")))
        .collect();
    if variant == Variant::Direct && spec.init.is_some() {
        // Gramine checks allowed files by host URI; the trailing `/` allows the tree.
        allowed.extend(
            spec.encrypted_mounts
                .iter()
                .map(|m| Value::str(format!("file:{}/", m.host_path))),
        );
    }
    let sgx = t(vec![
        ("debug", Value::Boolean(spec.debug)),
        ("edmm_enable", Value::Boolean(variant == Variant::Edmm)),
        ("enclave_size", Value::str(format_size(spec.enclave_size))),
        ("max_threads", Value::Integer(i64::from(spec.max_threads))),
        ("isvprodid", Value::Integer(i64::from(spec.isvprodid))),
        ("isvsvn", Value::Integer(i64::from(spec.isvsvn))),
        (
            "use_exinfo",
            Value::Boolean(variant == Variant::Edmm || spec.sgx1_exinfo),
        ),
        (
            "cpu_features",
            Value::Table(t(vec![
                ("avx", Value::str("unspecified")),
                ("avx512", Value::str("unspecified")),
                ("amx", Value::str("unspecified")),
                ("mpx", Value::str("disabled")),
                ("pkru", Value::str("disabled")),
            ])),
        ),
        ("file_check_policy", Value::str("strict")),
        (
            "remote_attestation",
            Value::str(if spec.init.is_some() {
                super::init::REMOTE_ATTESTATION
            } else {
                "none"
            }),
        ),
        ("enable_stats", Value::Boolean(false)),
        ("trusted_files", Value::Array(trusted)),
        ("allowed_files", Value::Array(allowed)),
    ]);
    let sys = t(vec![
        (
            "enable_extra_runtime_domain_names_conf",
            Value::Boolean(spec.runtime_domain_names),
        ),
        ("enable_sigterm_injection", Value::Boolean(true)),
        (
            "stack",
            Value::Table(t(vec![("size", Value::str(format_size(spec.stack_size)))])),
        ),
    ]);

    let mut root = t(vec![
        ("fs", Value::Table(fs)),
        ("libos", Value::Table(libos)),
        ("loader", Value::Table(loader)),
        ("sgx", Value::Table(sgx)),
        ("sys", Value::Table(sys)),
    ]);
    for (path, value) in &spec.options.leaves {
        insert_path(&mut root, path, value.clone()).map_err(MergeError)?;
    }
    if variant == Variant::Edmm {
        // EDMM cannot run without EXINFO (see the module docs), whatever the options say.
        let path = ["sgx".to_string(), "use_exinfo".to_string()];
        insert_path(&mut root, &path, Value::Boolean(true)).map_err(MergeError)?;
    }
    Ok(root)
}

/// The final manifest bytes for one variant.
pub fn render_manifest(spec: &EnclaveSpec, variant: Variant) -> Result<String, MergeError> {
    Ok(to_canonical_toml(&manifest_table(spec, variant)?))
}

/// Keys of the `sgx` table that list files: long, and read by no SGX setting.
const SGX_FILE_LISTS: [&str; 2] = ["trusted_files", "allowed_files"];

/// A manifest table as a TOML document holding only its `sgx` table, without the file
/// lists: what [`SgxManifestParams::from_document`] reads, so a rendered manifest's SGX
/// settings are known without parsing the rendered text back (on an image with tens of
/// thousands of files that parse costs more than rendering).
pub fn sgx_settings(root: &Table) -> toml::Table {
    let mut doc = toml::Table::new();
    if let Some(sgx) = root.get("sgx") {
        let sgx = match sgx {
            Value::Table(t) => toml::Value::Table(
                t.iter()
                    .filter(|(k, _)| !SGX_FILE_LISTS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), to_toml(v)))
                    .collect(),
            ),
            other => to_toml(other),
        };
        doc.insert("sgx".into(), sgx);
    }
    doc
}

fn to_toml(v: &Value) -> toml::Value {
    match v {
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Integer(i) => toml::Value::Integer(*i),
        Value::Boolean(b) => toml::Value::Boolean(*b),
        Value::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect()),
        Value::Table(t) => {
            toml::Value::Table(t.iter().map(|(k, v)| (k.clone(), to_toml(v))).collect())
        }
    }
}

/// One variant's final manifest with its SGX settings (for measuring and signing).
#[derive(Debug, Clone)]
pub struct RenderedManifest {
    /// The manifest bytes (canonical TOML).
    pub text: String,
    /// Its `sgx.*` settings, with Gramine's defaults.
    pub params: SgxManifestParams,
}

/// Renders one variant and reads its SGX settings from the same table the text was
/// written from.
pub fn render_with_params(
    spec: &EnclaveSpec,
    variant: Variant,
) -> Result<RenderedManifest, RenderError> {
    let table = manifest_table(spec, variant)?;
    let params = SgxManifestParams::from_document(&sgx_settings(&table))?;
    Ok(RenderedManifest {
        text: to_canonical_toml(&table),
        params,
    })
}

/// Why a manifest could not be rendered with its SGX settings.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifest options do not merge.
    #[error("{0}")]
    Merge(#[from] MergeError),
    /// An `sgx.*` setting is unusable (from `manifestOptions`).
    #[error("{0}")]
    Params(#[from] crate::sgx::manifest_params::ManifestParamsError),
}
