//! `kiln runtime pack`: builds kiln's runtime image (docs/image-formats.md) from an
//! installed Gramine — a `meson install` prefix or the distro package (`/usr`) — and
//! writes it to an OCI layout or pushes it to a registry (tag last).
//!
//! Needs `patchelf` on PATH (scripts/install-deps.sh installs it): the SGX loader's
//! interpreter becomes `<prefix>/lib/ld-linux-x86-64.so.2` and its RUNPATH `<prefix>/lib`.
//!
//! The static `kiln-launcher` and `kiln-init` the runtime carries are, in this order:
//! the `--launcher` / `--kiln-init` files; `kiln-launcher` / `kiln-init` next to the
//! `kiln` executable (where `cargo install` puts them: see [`INSTALL_HINT`]), used only
//! when statically linked; built from kiln's source tree (scripts/build-launcher.sh,
//! scripts/build-init.sh) when `kiln` runs from one. Why a lookup and not binaries
//! embedded by a build script: embedding would make every build of `kiln` (clippy, docs,
//! tests) run a nested cargo build for the musl target, needing that target even where
//! nobody packs a runtime, and a nested cargo in the same target dir deadlocks on its
//! lock; three `cargo install` lines put the same binaries in the same place with
//! cargo's own tracking (upgrade, uninstall), and the static check below refuses a
//! glibc build installed without `--target`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use kiln_engine::gramine::runtime_descriptor::DEFAULT_RUNTIME_PREFIX;
use kiln_engine::image::reference::{Digest, ImageSource};
use kiln_engine::image::registry::UploadMode;
use kiln_engine::image::transport::Body;
use kiln_engine::runtime_image::{build_runtime_image, BuiltRuntimeImage, RuntimeFiles};
use kiln_native::OciLayoutWriter;

use super::registry_args::{self, RegistryArgs};
use super::runtime_libs::resolve_libs;

/// Arguments of `kiln runtime pack`.
#[derive(clap::Args)]
pub struct Args {
    /// The Gramine install prefix (`meson setup --prefix`, or `/usr` for the distro
    /// package), or directly its `lib/.../gramine` directory.
    #[arg(long, value_name = "PREFIX")]
    pub gramine_prefix: PathBuf,
    /// Where to write: `oci:DIR[:TAG]` or `REGISTRY/REPO:TAG`.
    #[arg(long, value_name = "DEST")]
    pub out: String,
    /// The static kiln-launcher (default: `kiln-launcher` next to this `kiln` when
    /// statically linked, else built with scripts/build-launcher.sh when run from kiln's
    /// source tree).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
    /// The static kiln-init (default: `kiln-init` next to this `kiln` when statically
    /// linked, else built with scripts/build-init.sh when run from kiln's source tree).
    #[arg(long, value_name = "PATH")]
    pub kiln_init: Option<PathBuf>,
    /// The Gramine version (default: from the install's pkg-config file).
    #[arg(long, value_name = "VERSION")]
    pub gramine_version: Option<String>,
    /// The prefix the runtime is installed under inside images.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_RUNTIME_PREFIX)]
    pub runtime_prefix: String,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The loader's interpreter, as named in `lib/` (docs/image-formats.md).
const INTERPRETER: &str = "ld-linux-x86-64.so.2";

/// Library dirs of an install prefix, where Gramine's `pkglibdir` (`<libdir>/gramine`)
/// may be.
const LIBDIRS: &[&str] = &["lib/x86_64-linux-gnu", "lib64", "lib"];

/// Finds Gramine's `pkglibdir` (the directory holding `sgx/`, `direct/`, `libsysdb.so`).
pub fn find_pkglibdir(prefix: &Path) -> anyhow::Result<PathBuf> {
    if prefix.join("sgx").join("libpal.so").is_file() {
        return Ok(prefix.to_path_buf());
    }
    let tried: Vec<PathBuf> = LIBDIRS
        .iter()
        .map(|l| prefix.join(l).join("gramine"))
        .collect();
    for dir in &tried {
        if dir.join("sgx").join("libpal.so").is_file() {
            return Ok(dir.clone());
        }
    }
    bail!(
        "no Gramine install under {}: sgx/libpal.so is in none of {}",
        prefix.display(),
        tried
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn read_required(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    if !path.is_file() {
        bail!("Gramine install: {what} {} is missing", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The Gramine version from the installed Python package (`__version__` in
/// `<prefix>/lib*/python3*/{site,dist}-packages/graminelibos/__init__.py`), if present.
fn version_from_graminelibos(prefix: &Path) -> Option<String> {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let mut candidates = Vec::new();
    for lib in ["lib", "lib64", "local/lib"] {
        for py in dirs(&prefix.join(lib)) {
            let name = py.file_name().map(|n| n.to_string_lossy().to_string());
            if !name.is_some_and(|n| n.starts_with("python3")) {
                continue;
            }
            for pkgs in ["site-packages", "dist-packages"] {
                candidates.push(py.join(pkgs).join("graminelibos").join("__init__.py"));
            }
        }
    }
    candidates.sort();
    candidates.into_iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("__version__")?
                .trim()
                .strip_prefix('=')?;
            let v = v.trim().trim_matches(|c| c == '\'' || c == '"');
            (!v.is_empty() && !v.starts_with('@')).then(|| v.to_string())
        })
    })
}

/// The Gramine version from `<libdir>/pkgconfig/gramine.pc` (`Version:`), if present.
fn version_from_pkgconfig(pkglibdir: &Path) -> Option<String> {
    let libdir = pkglibdir.parent()?;
    ["gramine.pc", "gramine_sgx.pc"].iter().find_map(|name| {
        let text = std::fs::read_to_string(libdir.join("pkgconfig").join(name)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Version:"))
            .map(|v| v.trim().to_string())
    })
}

/// Copies the loader and rewrites its interpreter and RUNPATH with patchelf.
fn patch_loader(loader: &Path, prefix: &str) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("loader");
    std::fs::copy(loader, &copy).with_context(|| format!("copying {}", loader.display()))?;
    let interp = format!("{prefix}/lib/{INTERPRETER}");
    let status = Command::new("patchelf")
        .arg("--set-interpreter")
        .arg(&interp)
        .arg("--set-rpath")
        .arg(format!("{prefix}/lib"))
        .arg(&copy)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!("patchelf failed on {} ({s})", loader.display()),
        Err(e) => bail!(
            "kiln runtime pack needs `patchelf` on PATH (apt-get install patchelf, or \
             scripts/install-deps.sh): {e}"
        ),
    }
    Ok(std::fs::read(&copy)?)
}

/// The launcher: `--launcher`, else built from kiln's source tree.
fn launcher(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    static_binary(path, "build-launcher.sh", "launcher", "kiln-launcher")
        .context("the runtime's launcher (--launcher)")
}

/// kiln-init: `--kiln-init`, else built from kiln's source tree.
fn kiln_init(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    static_binary(path, "build-init.sh", "kiln-init", "kiln-init")
        .context("the runtime's kiln-init (--kiln-init)")
}

/// How to install `kiln` with its static helpers so `runtime pack` finds them.
pub const INSTALL_HINT: &str = "cargo install --path cli && \
     cargo install --path launcher --target x86_64-unknown-linux-musl && \
     CC_x86_64_unknown_linux_musl=gcc cargo install --path init --target x86_64-unknown-linux-musl \
     (from kiln's source tree; `rustup target add x86_64-unknown-linux-musl` first; the gcc \
     setting is for ring when no musl-gcc is installed)";

/// `name` in `dir` when it is there: its bytes if it is a statically linked ELF, else an
/// error saying why it cannot go into a runtime image.
pub fn find_beside(dir: &Path, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let p = dir.join(name);
    if !p.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not an ELF executable: {e}", p.display()))?;
    if let Some(interp) = elf.interpreter {
        bail!(
            "{} is dynamically linked (interpreter {interp}), but it must run in images without \
             a libc: install it with --target x86_64-unknown-linux-musl",
            p.display()
        );
    }
    Ok(Some(bytes))
}

/// One of kiln's static binaries: the given path, else the executable `file` next to
/// the running `kiln`, else built by `scripts/<script>` (see the module docs).
fn static_binary(
    path: Option<&Path>,
    script: &str,
    what: &str,
    file: &str,
) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = path {
        return std::fs::read(p).with_context(|| format!("reading {what} {}", p.display()));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .map(|dir| find_beside(&dir, file));
    let unusable = match beside {
        Some(Ok(Some(bytes))) => return Ok(bytes),
        Some(Err(e)) => Some(e),
        _ => None,
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join(script);
    if !script.is_file() {
        if let Some(e) = unusable {
            return Err(e.context(format!("no usable static {file}")));
        }
        bail!(
            "no {file} next to kiln and not running from kiln's source tree: pass its path, \
             or install it beside kiln: {INSTALL_HINT}"
        );
    }
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::read(&bin).with_context(|| format!("reading {what} {bin}"))
}

/// Gathers the runtime's files from an install.
pub fn gather(args: &Args) -> anyhow::Result<RuntimeFiles> {
    let pkglibdir = find_pkglibdir(&args.gramine_prefix)?;
    let sgx_loader_path = pkglibdir.join("sgx").join("loader");
    read_required(&sgx_loader_path, "the SGX loader")?;
    let gramine_version = match &args.gramine_version {
        Some(v) => v.clone(),
        None => version_from_graminelibos(&args.gramine_prefix)
            .or_else(|| version_from_pkgconfig(&pkglibdir))
            .with_context(|| {
                format!(
                    "cannot tell the Gramine version (no graminelibos Python package under {}, \
                     no pkgconfig/gramine.pc next to {}): pass --gramine-version",
                    args.gramine_prefix.display(),
                    pkglibdir.display()
                )
            })?,
    };
    let extra: Vec<PathBuf> = pkglibdir
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    let mut libs = BTreeMap::new();
    let resolved = resolve_libs(&sgx_loader_path, &extra)?;
    if !resolved.contains_key(INTERPRETER) {
        bail!(
            "{}'s ELF interpreter is not {INTERPRETER} (found: {}); only x86-64 glibc loaders are supported",
            sgx_loader_path.display(),
            resolved.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for (name, path) in resolved {
        libs.insert(
            name,
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    Ok(RuntimeFiles {
        gramine_version,
        sgx_libpal: read_required(&pkglibdir.join("sgx").join("libpal.so"), "the SGX PAL")?,
        sgx_loader: patch_loader(&sgx_loader_path, &args.runtime_prefix)?,
        direct_libpal: read_required(
            &pkglibdir.join("direct").join("libpal.so"),
            "the direct-mode PAL",
        )?,
        libsysdb: read_required(&pkglibdir.join("libsysdb.so"), "the LibOS")?,
        libs,
        launcher: launcher(args.launcher.as_deref())?,
        kiln_init: kiln_init(args.kiln_init.as_deref())?,
        glibc: runtime_glibc(&pkglibdir)?,
    })
}

/// Gramine's patched glibc (`<pkglibdir>/runtime/glibc`, built by `-Dlibc=glibc`, the
/// default), empty when the install has none. Kept: the interpreter and every versioned
/// shared library (`libc.so.6`, `libpthread.so.0`, ...), following links; left out: the
/// unversioned development names, static archives, start files, and the Gramine
/// libraries linked in there (mbedTLS, RA-TLS, secret provisioning) that only apps built
/// against them load.
fn runtime_glibc(pkglibdir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let dir = pkglibdir.join("runtime").join("glibc");
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !is_runtime_glibc_file(name) || !path.is_file() {
            continue;
        }
        out.insert(
            name.to_string(),
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    if !out.is_empty() {
        for required in kiln_engine::gramine::runtime_descriptor::GLIBC_REQUIRED {
            if !out.contains_key(required) {
                bail!(
                    "Gramine install: {} lacks {required}; rebuild Gramine with -Dlibc=glibc",
                    dir.display()
                );
            }
        }
    }
    Ok(out)
}

/// Whether a file of Gramine's `runtime/glibc` is a library the app may load.
fn is_runtime_glibc_file(name: &str) -> bool {
    if name == INTERPRETER {
        return true;
    }
    let Some((stem, version)) = name.split_once(".so.") else {
        return false;
    };
    stem.starts_with("lib")
        && !stem.contains("_gramine")
        && !stem.starts_with("libra_tls")
        && !stem.starts_with("libsecret_prov")
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `SOURCE_DATE_EPOCH`, else 0.
fn mtime() -> anyhow::Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH {v:?} is not a number")),
        Err(_) => Ok(0),
    }
}

/// Writes or pushes the built image; returns where it went.
async fn output(
    image: &BuiltRuntimeImage,
    out: &str,
    reg: &RegistryArgs,
) -> anyhow::Result<String> {
    match ImageSource::parse(out).with_context(|| format!("--out {out:?}"))? {
        ImageSource::OciLayout { dir, tag } => {
            let w = OciLayoutWriter::create(Path::new(&dir))?;
            w.put_blob(&image.layer.blob)?;
            w.put_blob(&image.config)?;
            w.put_manifest(&image.manifest, tag.as_deref())?;
            Ok(format!(
                "oci:{dir}{}",
                tag.map(|t| format!(":{t}")).unwrap_or_default()
            ))
        }
        ImageSource::Registry(reference) => {
            let client = reg.client(&reference)?;
            let repo = reference.repository();
            for (data, what) in [
                (bytes::Bytes::from(image.layer.blob.clone()), "layer"),
                (image.config.clone(), "config"),
            ] {
                let digest = Digest::sha256_of(&data);
                if client.blob_exists(repo, &digest).await?.is_none() {
                    client
                        .push_blob(repo, &digest, Body::Bytes(data), UploadMode::Monolithic)
                        .await
                        .with_context(|| format!("pushing the runtime {what}"))?;
                }
            }
            client.push_manifest(repo, &image.manifest).await?;
            if let Some(tag) = reference.tag() {
                client.tag_manifest(repo, tag, &image.manifest).await?;
            }
            Ok(reference.name())
        }
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let files = gather(&args)?;
    let image = build_runtime_image(&files, &args.runtime_prefix, mtime()?)?;
    let dest =
        registry_args::tokio_runtime()?.block_on(output(&image, &args.out, &args.registry))?;
    println!("runtime image: {dest}");
    println!("digest: {}", image.manifest.digest());
    println!("gramine: {}", image.descriptor.gramine_version);
    println!("sgx libpal sha256: {}", image.descriptor.sgx_libpal_sha256);
    println!("libsysdb sha256: {}", image.descriptor.libsysdb_sha256);
    match &image.descriptor.glibc {
        Some(g) => println!(
            "glibc: {} ({} libraries): glibc images up to {} run with it",
            g.version,
            g.files.len(),
            g.version
        ),
        None => println!(
            "glibc: none (Gramine built without -Dlibc=glibc): converted apps keep their own libc"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_gramines_runtime_glibc_libraries() {
        for keep in [
            "ld-linux-x86-64.so.2",
            "libc.so.6",
            "libpthread.so.0",
            "libnss_dns.so.2",
        ] {
            assert!(is_runtime_glibc_file(keep), "{keep}");
        }
        for skip in [
            "ld.so",
            "libc.so",
            "libc.a",
            "crt1.o",
            "libmbedtls_gramine.so.21",
            "libra_tls_attest.so",
            "libsecret_prov_attest.so",
            "libc.so.6x",
        ] {
            assert!(!is_runtime_glibc_file(skip), "{skip}");
        }
        let dir = tempfile::tempdir().unwrap();
        let glibc = dir.path().join("runtime").join("glibc");
        std::fs::create_dir_all(&glibc).unwrap();
        assert!(runtime_glibc(dir.path()).unwrap().is_empty());
        std::fs::write(glibc.join("libc.so.6"), b"libc").unwrap();
        let err = runtime_glibc(dir.path()).unwrap_err().to_string();
        assert!(err.contains("ld-linux-x86-64.so.2"), "{err}");
        std::fs::write(glibc.join("ld-linux-x86-64.so.2"), b"ld").unwrap();
        std::fs::write(glibc.join("libc.a"), b"a").unwrap();
        let got = runtime_glibc(dir.path()).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["ld-linux-x86-64.so.2", "libc.so.6"]
        );
    }

    #[test]
    fn finds_pkglibdir_in_every_layout() {
        for libdir in ["lib/x86_64-linux-gnu", "lib64", "lib"] {
            let tmp = tempfile::tempdir().unwrap();
            let pkg = tmp.path().join(libdir).join("gramine");
            std::fs::create_dir_all(pkg.join("sgx")).unwrap();
            std::fs::write(pkg.join("sgx/libpal.so"), b"x").unwrap();
            assert_eq!(find_pkglibdir(tmp.path()).unwrap(), pkg);
            // The pkglibdir itself is accepted too.
            assert_eq!(find_pkglibdir(&pkg).unwrap(), pkg);
        }
        let tmp = tempfile::tempdir().unwrap();
        let err = find_pkglibdir(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("lib/x86_64-linux-gnu/gramine"), "{err}");
    }

    #[test]
    fn helpers_beside_kiln_must_be_static() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(find_beside(tmp.path(), "kiln-launcher").unwrap().is_none());
        // Debian's busybox-static is a static ELF; /bin/true is dynamically linked.
        if Path::new("/bin/busybox").is_file() {
            std::fs::copy("/bin/busybox", tmp.path().join("kiln-launcher")).unwrap();
            let got = find_beside(tmp.path(), "kiln-launcher").unwrap();
            assert_eq!(got, Some(std::fs::read("/bin/busybox").unwrap()));
        }
        std::fs::copy("/bin/true", tmp.path().join("kiln-init")).unwrap();
        let err = find_beside(tmp.path(), "kiln-init")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("x86_64-unknown-linux-musl"), "{err}");
        std::fs::write(tmp.path().join("kiln-init"), b"#!/bin/sh\n").unwrap();
        let err = find_beside(tmp.path(), "kiln-init")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an ELF"), "{err}");
    }

    #[test]
    fn version_from_pc_file() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("gramine");
        std::fs::create_dir_all(tmp.path().join("pkgconfig")).unwrap();
        assert_eq!(version_from_pkgconfig(&pkg), None);
        std::fs::write(
            tmp.path().join("pkgconfig/gramine.pc"),
            "prefix=/usr\nVersion: 1.9\n",
        )
        .unwrap();
        assert_eq!(version_from_pkgconfig(&pkg).as_deref(), Some("1.9"));
    }

    #[test]
    fn version_from_python_package() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(version_from_graminelibos(tmp.path()), None);
        let d = tmp.path().join("lib/python3.11/site-packages/graminelibos");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("__init__.py"), "'''x'''\n\n__version__ = '1.9'\n").unwrap();
        assert_eq!(
            version_from_graminelibos(tmp.path()).as_deref(),
            Some("1.9")
        );
    }
}
