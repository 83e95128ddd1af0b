//! `kiln runtime pack` on a FAKE Gramine install built here: the synthetic libpal as
//! sgx/libpal.so, a real dynamically linked program (built with gcc against a private
//! library in the install's libdir, else a copy of /bin/true) as sgx/loader, a static
//! program as direct/libpal.so, a dummy libsysdb.so. Checks the layer (umoci unpack),
//! the descriptor label and hashes, determinism, the registry push, the patched loader
//! running in a chroot holding only busybox and the runtime layer, and missing files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_engine::image::manifest::PlatformSpec;
use kiln_engine::runtime_image::descriptor_from_config;
use kiln_native::OciLayout;
use kiln_tests::converted_fixture::test_libpal;
use kiln_tests::registry::TestRegistry;
use kiln_tests::{have_tool, require_tool};
use sha2::{Digest as _, Sha256};

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type E = Box<dyn std::error::Error + Send + Sync>;

const LOADER_MESSAGE: &str = "kiln-fake-loader-ok";

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run kiln")
}

fn sh(cmd: &mut Command) -> Result<(), E> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A fake Gramine install; returns (prefix, whether the loader is the gcc-built one).
fn fake_gramine(root: &Path) -> Result<(PathBuf, bool), E> {
    let prefix = root.join("gramine");
    let libdir = prefix.join("lib/x86_64-linux-gnu");
    let pkglib = libdir.join("gramine");
    std::fs::create_dir_all(pkglib.join("sgx"))?;
    std::fs::create_dir_all(pkglib.join("direct"))?;
    std::fs::create_dir_all(libdir.join("pkgconfig"))?;
    std::fs::write(
        libdir.join("pkgconfig/gramine.pc"),
        "Name: Gramine\nVersion: 1.9\n",
    )?;
    std::fs::write(pkglib.join("sgx/libpal.so"), test_libpal()?)?;
    std::fs::write(pkglib.join("libsysdb.so"), b"\x7fELF fake libsysdb")?;
    let built = have_tool("gcc") && {
        let src = root.join("src");
        std::fs::create_dir_all(&src)?;
        std::fs::write(
            src.join("foo.c"),
            format!("#include <stdio.h>\nvoid kiln_foo(void) {{ puts(\"{LOADER_MESSAGE}\"); }}\n"),
        )?;
        std::fs::write(
            src.join("loader.c"),
            "void kiln_foo(void);\nint main(void) { kiln_foo(); return 0; }\n",
        )?;
        sh(Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(libdir.join("libkilnfoo.so"))
            .arg(src.join("foo.c")))?;
        sh(Command::new("gcc")
            .arg("-o")
            .arg(pkglib.join("sgx/loader"))
            .arg(src.join("loader.c"))
            .arg("-L")
            .arg(&libdir)
            .arg("-lkilnfoo"))?;
        sh(Command::new("gcc")
            .args(["-static-pie", "-o"])
            .arg(pkglib.join("direct/libpal.so"))
            .arg(src.join("loader.c"))
            .arg(src.join("foo.c")))
        .is_ok()
    };
    if !built {
        std::fs::copy("/bin/true", pkglib.join("sgx/loader"))?;
        std::fs::write(pkglib.join("direct/libpal.so"), b"\x7fELF fake direct pal")?;
    }
    Ok((prefix, built))
}

fn fake_launcher(root: &Path) -> Result<PathBuf, E> {
    let p = root.join("kiln-launcher");
    std::fs::write(&p, b"\x7fELF fake launcher")?;
    std::fs::write(root.join("kiln-init"), b"\x7fELF fake kiln-init")?;
    Ok(p)
}

fn pack(prefix: &Path, launcher: &Path, out: &str, extra: &[&str]) -> Output {
    let init = launcher.with_file_name("kiln-init");
    let mut args = vec![
        "runtime",
        "pack",
        "--kiln-init",
        init.to_str().unwrap_or_default(),
        "--gramine-prefix",
        prefix.to_str().unwrap_or_default(),
        "--launcher",
        launcher.to_str().unwrap_or_default(),
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    kiln(&args)
}

fn digest_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("digest: ").map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn packs_a_fake_install_to_an_oci_layout() -> R {
    require_tool!("patchelf");
    let tmp = tempfile::tempdir()?;
    let (prefix, built) = fake_gramine(tmp.path())?;
    let launcher = fake_launcher(tmp.path())?;
    let dir1 = tmp.path().join("oci1");
    let out = pack(
        &prefix,
        &launcher,
        &format!("oci:{}:rt", dir1.display()),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d1 = digest_line(&out);
    // Deterministic: a second pack (another layout) gives the same manifest digest.
    let dir2 = tmp.path().join("oci2");
    let out = pack(
        &prefix,
        &launcher,
        &format!("oci:{}:rt", dir2.display()),
        &[],
    );
    assert!(out.status.success());
    assert_eq!(digest_line(&out), d1);

    // The descriptor label and its hashes.
    let layout = OciLayout::open(&dir1)?;
    let img = layout.resolve(Some("rt"), &PlatformSpec::linux_amd64())?;
    assert_eq!(img.manifest.digest().to_string(), d1);
    assert_eq!(img.image_manifest.layers().len(), 1);
    let d = descriptor_from_config(&img.config)?;
    assert_eq!(d.prefix, "/opt/kiln/runtime");
    assert_eq!(d.gramine_version, "1.9");
    assert_eq!(
        d.sgx_libpal_sha256,
        hex::encode(Sha256::digest(test_libpal()?))
    );
    assert_eq!(
        d.libsysdb_sha256,
        hex::encode(Sha256::digest(b"\x7fELF fake libsysdb"))
    );

    require_tool!("umoci");
    let bundle = tmp.path().join("bundle");
    sh(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:rt", dir1.display()))
        .arg(&bundle))?;
    let rootfs = bundle.join("rootfs");
    let rt = rootfs.join("opt/kiln/runtime");
    for f in [
        "runtime.json",
        "sgx/libpal.so",
        "sgx/loader",
        "direct/libpal.so",
        "libsysdb.so",
        "kiln-launcher",
        "kiln-init",
        "lib/ld-linux-x86-64.so.2",
        "lib/libc.so.6",
    ] {
        assert!(rt.join(f).is_file(), "missing {f}");
    }
    if built {
        assert!(rt.join("lib/libkilnfoo.so").is_file());
    }
    let json = std::fs::read(rt.join("runtime.json"))?;
    assert_eq!(
        kiln_engine::gramine::runtime_descriptor::RuntimeDescriptor::from_json(&json)?,
        d
    );
    // Everything lives under the prefix.
    let top: Vec<String> = std::fs::read_dir(&rootfs)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    assert_eq!(top, vec!["opt"]);

    // The loader's interpreter and RUNPATH point into the runtime.
    let loader = std::fs::read(rt.join("sgx/loader"))?;
    let elf = goblin::elf::Elf::parse(&loader)?;
    assert_eq!(
        elf.interpreter,
        Some("/opt/kiln/runtime/lib/ld-linux-x86-64.so.2")
    );
    assert_eq!(elf.runpaths, vec!["/opt/kiln/runtime/lib"]);

    // It runs with nothing but busybox and the runtime layer.
    let is_root = Command::new("id").arg("-u").output()?.stdout == b"0\n";
    if built && is_root && have_tool("chroot") && Path::new("/bin/busybox").exists() {
        std::fs::create_dir_all(rootfs.join("bin"))?;
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))?;
        let out = Command::new("chroot")
            .arg(&rootfs)
            .args(["/bin/busybox", "sh", "-c", "/opt/kiln/runtime/sgx/loader"])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), LOADER_MESSAGE);
        // And nothing else from the host is there to help.
        assert!(!rootfs.join("lib").exists() && !rootfs.join("usr").exists());
    } else {
        eprintln!("SKIPPED chroot run (needs gcc, root, chroot, /bin/busybox)");
    }
    Ok(())
}

#[test]
fn pushes_to_a_registry() -> R {
    require_tool!("patchelf");
    require_tool!("docker-registry");
    let tmp = tempfile::tempdir()?;
    let (prefix, _) = fake_gramine(tmp.path())?;
    let launcher = fake_launcher(tmp.path())?;
    let reg = TestRegistry::plain()?;
    let host = reg.host();
    let out = pack(
        &prefix,
        &launcher,
        &format!("{host}/kiln/runtime:1.9"),
        &["--insecure-registry", &host],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oci = tmp.path().join("oci");
    let out2 = pack(&prefix, &launcher, &format!("oci:{}", oci.display()), &[]);
    assert_eq!(digest_line(&out), digest_line(&out2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reg.client(None)?;
    let reference = reg.reference("kiln/runtime:1.9")?;
    let img = rt.block_on(client.resolve_image(&reference, &PlatformSpec::linux_amd64()))?;
    assert_eq!(img.manifest.digest().to_string(), digest_line(&out));
    assert_eq!(descriptor_from_config(&img.config)?.gramine_version, "1.9");
    Ok(())
}

#[test]
fn names_the_missing_file() -> R {
    let tmp = tempfile::tempdir()?;
    let (prefix, _) = fake_gramine(tmp.path())?;
    let launcher = fake_launcher(tmp.path())?;
    let pal = prefix.join("lib/x86_64-linux-gnu/gramine/direct/libpal.so");
    std::fs::remove_file(&pal)?;
    let out = pack(
        &prefix,
        &launcher,
        &format!("oci:{}", tmp.path().join("o").display()),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("direct-mode PAL") && err.contains("direct/libpal.so"),
        "{err}"
    );

    let out = pack(&tmp.path().join("nowhere"), &launcher, "oci:/tmp/x", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Gramine install") && err.contains("sgx/libpal.so"),
        "{err}"
    );
    Ok(())
}

/// The `kiln-launcher` and `kiln-init` files in the runtime layer of `oci:DIR:rt`.
fn layer_helpers(dir: &Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>, E> {
    let layout = OciLayout::open(dir)?;
    let img = layout.resolve(Some("rt"), &PlatformSpec::linux_amd64())?;
    let layer = &img.image_manifest.layers()[0];
    let blob = layout.read_blob(&layer.digest().try_into()?, 1 << 30)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    let mut bins = std::collections::BTreeMap::new();
    for e in tar.entries()? {
        let mut e = e?;
        let path = e
            .path()?
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        if let Some(name @ ("kiln-launcher" | "kiln-init")) = path.strip_prefix("opt/kiln/runtime/")
        {
            let name = name.to_string();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v)?;
            bins.insert(name, v);
        }
    }
    Ok(bins)
}

/// An installed `kiln` (`cargo install`: the binary alone in a bin dir) packs with the
/// static `kiln-launcher` and `kiln-init` installed beside it. Debian's static busybox
/// stands in for both, so the layer shows which files were taken.
#[test]
fn an_installed_kiln_takes_the_helpers_beside_it() -> R {
    require_tool!("patchelf");
    if !Path::new("/bin/busybox").is_file() {
        eprintln!("SKIPPED: no /bin/busybox (busybox-static)");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let (prefix, _) = fake_gramine(tmp.path())?;
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), bin.join("kiln"))?;
    for name in ["kiln-launcher", "kiln-init"] {
        std::fs::copy("/bin/busybox", bin.join(name))?;
    }
    let dir = tmp.path().join("oci");
    let out = Command::new(bin.join("kiln"))
        .args(["runtime", "pack", "--gramine-prefix"])
        .arg(&prefix)
        .arg("--out")
        .arg(format!("oci:{}:rt", dir.display()))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let busybox = std::fs::read("/bin/busybox")?;
    let bins = layer_helpers(&dir)?;
    for name in ["kiln-launcher", "kiln-init"] {
        assert!(
            bins.get(name) == Some(&busybox),
            "{name} is not the one beside kiln"
        );
    }
    Ok(())
}

/// Without `--launcher` and `--kiln-init`, pack builds the static launcher and kiln-init
/// from the source tree (scripts/build-launcher.sh, scripts/build-init.sh) and ships them
/// as `<prefix>/kiln-launcher` and `<prefix>/kiln-init`.
#[test]
fn packs_the_launcher_built_from_source() -> R {
    require_tool!("patchelf");
    let tmp = tempfile::tempdir()?;
    let (prefix, _) = fake_gramine(tmp.path())?;
    let dir = tmp.path().join("oci");
    let out = kiln(&[
        "runtime",
        "pack",
        "--gramine-prefix",
        prefix.to_str().unwrap_or_default(),
        "--out",
        &format!("oci:{}:rt", dir.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bins = layer_helpers(&dir)?;
    for name in ["kiln-launcher", "kiln-init"] {
        let bin = bins.get(name).ok_or(format!("no {name} in the layer"))?;
        let elf = goblin::elf::Elf::parse(bin)?;
        assert_eq!(elf.interpreter, None, "{name} must be static");
        assert!(elf.libraries.is_empty(), "{name}");
    }
    Ok(())
}
