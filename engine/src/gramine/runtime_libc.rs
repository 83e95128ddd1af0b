//! Which C library the app runs with inside the enclave.
//!
//! An unmodified glibc or musl issues `syscall` instructions, which trap in an enclave and
//! are emulated by Gramine at the cost of an enclave exit each ("Emulating a raw
//! system/supervisor call"). Gramine builds a patched glibc (`-Dlibc=glibc`, installed in
//! `<libdir>/gramine/runtime/glibc`) whose system calls enter the LibOS directly; GSC runs
//! every glibc image with it by putting its directory first in `LD_LIBRARY_PATH`
//! (GSC `templates/debian/entrypoint.manifest.template`). kiln does the same when
//! [`plan`] finds it safe:
//!
//! - the runtime image carries Gramine's glibc ([`RuntimeGlibc`], packed by
//!   `kiln runtime pack` from an install that has it);
//! - the image is a glibc image (it has glibc's x86-64 ELF interpreter) and its own glibc
//!   release, read from its `libc.so.6` while the layers streamed through
//!   ([`crate::image::scan::libc_probe`]), is not newer than the runtime's: binaries built
//!   against a newer glibc may need symbols the older one lacks.
//!
//! Why the first `LD_LIBRARY_PATH` entry is enough: Gramine looks the program's ELF
//! interpreter up by file name in the `LD_LIBRARY_PATH` directories when that is set
//! (libos/src/libos_rtld.c `find_interp`, v1.9), so the runtime's `ld-linux-x86-64.so.2`
//! loads, and it then finds the runtime's `libc.so.6` (and `libpthread`, `libm`, ...) in
//! the same first directory. That loader's own defaults (`/etc/ld.so.cache` and its
//! library dirs, under Gramine's install prefix) do not exist in the image, so the image's
//! library directories follow: its own `LD_LIBRARY_PATH`, then the directories of its
//! `/etc/ld.so.conf` (as `ldconfig` would cache them; GSC lists them with `ldconfig`), then
//! the standard ones. The runtime's glibc files become trusted files.
//!
//! musl images, images with a newer or unreadable glibc, and runtimes without Gramine's
//! glibc keep the image's libc (as before), and the response's warnings say so.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::fsview::{resolve, Node};
use super::runtime_descriptor::{RuntimeDescriptor, RuntimeGlibc};
use super::spec::TrustedFile;
use crate::image::file_index::{FileIndex, FileKind};
use crate::image::scan::libc_probe::compare_versions;

/// Where x86-64 glibc's ELF interpreter lives (`PT_INTERP` is `/lib64/...`; Debian and
/// Ubuntu keep the file in the multiarch dir).
const GLIBC_INTERPRETERS: [&str; 4] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-x86-64.so.2",
];

/// musl's x86-64 ELF interpreter.
const MUSL_INTERPRETER: &str = "/lib/ld-musl-x86_64.so.1";

/// Where an image's glibc keeps `libc.so.6`, most specific first.
const LIBC_PATHS: [&str; 6] = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
    "/lib/libc.so.6",
    "/usr/lib/libc.so.6",
];

/// The directories glibc's `ldconfig` always caches on x86-64 (Debian's multiarch ones
/// first, as its `/etc/ld.so.conf.d/x86_64-linux-gnu.conf` lists them), after those of
/// `/etc/ld.so.conf`.
const STANDARD_LIB_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// `include` nesting followed in `/etc/ld.so.conf`.
const MAX_CONF_DEPTH: usize = 4;

/// The C library an image brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLibc {
    /// glibc; its `MAJOR.MINOR` release when `libc.so.6` was found and read.
    Glibc {
        /// Where `libc.so.6` was found (the path asked for, before links).
        libc: Option<String>,
        /// Its release.
        version: Option<String>,
    },
    /// musl.
    Musl,
    /// No dynamic C library (static programs, scratch images).
    None,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibcPlan {
    /// Whether the app runs with the runtime's glibc (`LD_LIBRARY_PATH` was set).
    pub runtime_glibc: bool,
    /// The runtime glibc's files, to trust.
    pub trusted_files: Vec<TrustedFile>,
    /// What to tell the user.
    pub warnings: Vec<String>,
}

/// The C library `index` brings.
pub fn image_libc(index: &FileIndex) -> ImageLibc {
    let is_file = |p: &str| matches!(resolve(index, p), Ok((_, Node::File(_))));
    if GLIBC_INTERPRETERS.iter().any(|p| is_file(p)) {
        for path in LIBC_PATHS {
            if let Ok((_, Node::File(entry))) = resolve(index, path) {
                let version = match &entry.kind {
                    FileKind::Regular { sha256, .. } => {
                        index.libc_versions.get(&hex::encode(sha256)).cloned()
                    }
                    _ => None,
                };
                return ImageLibc::Glibc {
                    libc: Some(path.to_string()),
                    version,
                };
            }
        }
        return ImageLibc::Glibc {
            libc: None,
            version: None,
        };
    }
    if is_file(MUSL_INTERPRETER) {
        return ImageLibc::Musl;
    }
    ImageLibc::None
}

/// Decides the app's C library and, when it is the runtime's glibc, sets
/// `LD_LIBRARY_PATH` in `env` (see the module doc). `env` holds the environment built so
/// far (the image's, with the request's over it).
pub fn plan(
    index: &FileIndex,
    env: &mut BTreeMap<String, String>,
    runtime: &RuntimeDescriptor,
) -> LibcPlan {
    const EMULATED: &str = "its system calls trap and are emulated by Gramine (an enclave \
                            exit each; Gramine prints \"Emulating a raw system/supervisor call\")";
    let mut out = LibcPlan::default();
    let image = image_libc(index);
    let (libc_path, version) = match image {
        ImageLibc::None => return out,
        ImageLibc::Musl => {
            out.warnings.push(format!(
                "musl image: the app keeps its own musl libc (Gramine's runtime libc is \
                 glibc); {EMULATED}"
            ));
            return out;
        }
        ImageLibc::Glibc { libc, version } => (libc, version),
    };
    let Some(glibc) = &runtime.glibc else {
        out.warnings.push(format!(
            "the runtime image carries no Gramine glibc: the app keeps the image's glibc and \
             {EMULATED}; repack the runtime with `kiln runtime pack` from a Gramine built with \
             -Dlibc=glibc"
        ));
        return out;
    };
    let Some(version) = version else {
        let found = match libc_path {
            Some(p) => format!("`{p}` carries no glibc release banner kiln can read"),
            None => "no libc.so.6 found".to_string(),
        };
        out.warnings.push(format!(
            "glibc image, but its release is unknown ({found}): the app keeps its own glibc \
             rather than Gramine's {}, and {EMULATED}",
            glibc.version
        ));
        return out;
    };
    match compare_versions(&version, &glibc.version) {
        Some(Ordering::Less | Ordering::Equal) => {}
        _ => {
            out.warnings.push(format!(
                "the image's glibc {version} is newer than Gramine's runtime glibc {}: the app \
                 keeps its own glibc (its programs may need symbols the older one lacks), and \
                 {EMULATED}",
                glibc.version
            ));
            return out;
        }
    }
    let value = library_path(index, env.get("LD_LIBRARY_PATH"), runtime, glibc);
    env.insert("LD_LIBRARY_PATH".into(), value);
    out.warnings.extend(keep_locales(index, env));
    out.runtime_glibc = true;
    out.trusted_files = glibc
        .trusted_files(runtime)
        .filter_map(|(path, hash)| {
            let sha256 = <[u8; 32]>::try_from(hex::decode(hash).ok()?).ok()?;
            Some(TrustedFile { path, sha256 })
        })
        .collect();
    out
}

/// The image's compiled locales (glibc's `localedef` output; Debian and Ubuntu ship
/// `C.utf8` there).
const LOCALE_DIR: &str = "/usr/lib/locale";
/// glibc's archive of locales (`locale-gen`'s output).
const LOCALE_ARCHIVE: &str = "/usr/lib/locale/locale-archive";

/// Keeps the image's locales usable with the runtime glibc, whose compiled-in locale path
/// is under Gramine's install prefix: `LOCPATH` points at the image's locale directory
/// (unless the image or request sets it). With `LOCPATH` set glibc reads only locale
/// directories, never `locale-archive`, so locales that exist only in the archive fall
/// back to `C`; the returned warning says so. (Checked under Gramine 1.9 with Debian 12's
/// `C.utf8`: `setlocale(LC_ALL, "")` with `LANG=C.UTF-8` fails without `LOCPATH` and works
/// with it.)
fn keep_locales(index: &FileIndex, env: &mut BTreeMap<String, String>) -> Option<String> {
    if env.contains_key("LOCPATH") || !matches!(resolve(index, LOCALE_DIR), Ok((_, Node::Dir))) {
        return None;
    }
    env.insert("LOCPATH".into(), LOCALE_DIR.into());
    matches!(resolve(index, LOCALE_ARCHIVE), Ok((_, Node::File(_)))).then(|| {
        format!(
            "`{LOCALE_ARCHIVE}`: with Gramine's runtime glibc, locales are read from \
             LOCPATH={LOCALE_DIR} directories only, so locales that exist only in the archive \
             fall back to `C`; compile the ones the app needs into directories \
             (`localedef --no-archive`)"
        )
    })
}

/// `LD_LIBRARY_PATH` for the runtime glibc: its directory, the image's own value, then the
/// image's library directories.
fn library_path(
    index: &FileIndex,
    image_value: Option<&String>,
    runtime: &RuntimeDescriptor,
    glibc: &RuntimeGlibc,
) -> String {
    let mut dirs: Vec<String> = vec![runtime.path_of(&glibc.dir)];
    if let Some(v) = image_value {
        dirs.extend(v.split(':').filter(|d| !d.is_empty()).map(String::from));
    }
    let mut real_seen = BTreeSet::new();
    for dir in conf_dirs(index)
        .into_iter()
        .chain(STANDARD_LIB_DIRS.iter().map(|d| d.to_string()))
    {
        let Ok((real, Node::Dir)) = resolve(index, &dir) else {
            continue;
        };
        if real_seen.insert(real) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let mut seen = BTreeSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs.join(":")
}

/// The directories `/etc/ld.so.conf` names, following its `include` lines through the
/// captured `/etc/ld.so.conf.d/` files, in file order (includes sorted, as glob(3) does).
pub fn conf_dirs(index: &FileIndex) -> Vec<String> {
    let mut out = Vec::new();
    read_conf(index, "/etc/ld.so.conf", 0, &mut out);
    out
}

fn read_conf(index: &FileIndex, path: &str, depth: usize, out: &mut Vec<String>) {
    let Some(bytes) = index.captured.get(path) else {
        return;
    };
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(pattern) = line.strip_prefix("include") {
            let pattern = pattern.trim();
            if depth >= MAX_CONF_DEPTH || pattern.is_empty() {
                continue;
            }
            let pattern = if pattern.starts_with('/') {
                pattern.to_string()
            } else {
                format!("/etc/{pattern}")
            };
            let matches: Vec<String> = index
                .captured
                .keys()
                .filter(|k| glob_match(&pattern, k))
                .cloned()
                .collect();
            for m in matches {
                read_conf(index, &m, depth + 1, out);
            }
            continue;
        }
        if line.starts_with("hwcap") {
            continue;
        }
        for dir in line.split(|c: char| c.is_whitespace() || c == ':' || c == ',') {
            let dir = dir.trim_end_matches('/');
            if dir.starts_with('/') && !out.iter().any(|d| d == dir) {
                out.push(dir.to_string());
            }
        }
    }
}

/// Shell-style matching of a whole path: `*` and `?` never match `/`.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => {
                matches!(t.split_first(), Some((c, tr)) if *c != b'/' && go(rest, tr))
            }
            Some((c, rest)) => matches!(t.split_first(), Some((d, tr)) if d == c && go(rest, tr)),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gramine::runtime_descriptor::DEFAULT_RUNTIME_PREFIX;
    use crate::image::file_index::FileEntry;

    const LIBC_HASH: [u8; 32] = [7; 32];

    fn entry(kind: FileKind) -> FileEntry {
        FileEntry {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    /// A Debian-like glibc image (merged /usr) whose libc is `version`.
    fn debian(version: Option<&str>) -> FileIndex {
        let mut index = FileIndex::default();
        let file = |hash| {
            entry(FileKind::Regular {
                size: 1,
                sha256: hash,
            })
        };
        let link = |t: &str| {
            entry(FileKind::Symlink {
                target: t.to_string(),
            })
        };
        for d in [
            "/",
            "/usr",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
            "/usr/local",
            "/usr/local/lib",
            "/etc",
            "/etc/ld.so.conf.d",
            "/opt",
            "/opt/app",
            "/opt/app/lib",
            "/usr/lib/locale",
            "/usr/lib/locale/C.utf8",
        ] {
            index.entries.insert(d.into(), entry(FileKind::Directory));
        }
        index.entries.insert("/lib".into(), link("usr/lib"));
        index.entries.insert("/lib64".into(), link("usr/lib64"));
        index.entries.insert(
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
            file([1; 32]),
        );
        index.entries.insert(
            "/usr/lib64/ld-linux-x86-64.so.2".into(),
            link("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        );
        index.entries.insert(
            "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            file(LIBC_HASH),
        );
        if let Some(v) = version {
            index
                .libc_versions
                .insert(hex::encode(LIBC_HASH), v.to_string());
        }
        let conf = [
            ("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n"),
            ("/etc/ld.so.conf.d/libc.conf", "# libc default\n/usr/local/lib\n"),
            (
                "/etc/ld.so.conf.d/x86_64-linux-gnu.conf",
                "/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
            ),
            ("/etc/ld.so.conf.d/zz-app.conf", "/opt/app/lib\n"),
            ("/etc/ld.so.conf.d/README", "/not/a/conf\n"),
        ];
        for (p, text) in conf {
            index.entries.insert(p.into(), file([0; 32]));
            index.captured.insert(p.into(), text.as_bytes().to_vec());
        }
        index
    }

    fn runtime(with_glibc: bool) -> RuntimeDescriptor {
        let mut r = RuntimeDescriptor::standard(
            "1.9",
            DEFAULT_RUNTIME_PREFIX,
            "ab".repeat(32),
            "cd".repeat(32),
        );
        if with_glibc {
            r.glibc = Some(RuntimeGlibc {
                dir: "glibc".into(),
                version: "2.40".into(),
                files: [
                    ("ld-linux-x86-64.so.2".to_string(), "11".repeat(32)),
                    ("libc.so.6".to_string(), "22".repeat(32)),
                ]
                .into(),
            });
        }
        r
    }

    #[test]
    fn an_older_glibc_image_runs_with_the_runtime_glibc() {
        let index = debian(Some("2.36"));
        assert_eq!(
            image_libc(&index),
            ImageLibc::Glibc {
                libc: Some("/lib/x86_64-linux-gnu/libc.so.6".into()),
                version: Some("2.36".into())
            }
        );
        let mut env = BTreeMap::new();
        let plan = plan(&index, &mut env, &runtime(true));
        assert!(plan.runtime_glibc);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert_eq!(
            env["LD_LIBRARY_PATH"],
            "/opt/kiln/runtime/glibc:/usr/local/lib:/lib/x86_64-linux-gnu:/opt/app/lib:/lib64:/lib"
        );
        let paths: Vec<&str> = plan.trusted_files.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/opt/kiln/runtime/glibc/ld-linux-x86-64.so.2",
                "/opt/kiln/runtime/glibc/libc.so.6"
            ]
        );
        assert_eq!(plan.trusted_files[1].sha256, [0x22; 32]);
        assert_eq!(env["LOCPATH"], "/usr/lib/locale");
        // A locale archive: LOCPATH still set, and the user is told what it costs.
        let mut index = debian(Some("2.36"));
        index.entries.insert(
            LOCALE_ARCHIVE.into(),
            entry(FileKind::Regular {
                size: 1,
                sha256: [3; 32],
            }),
        );
        let mut env = BTreeMap::from([("LOCPATH".to_string(), "/mine".to_string())]);
        assert!(super::plan(&index, &mut env, &runtime(true))
            .warnings
            .is_empty());
        assert_eq!(env["LOCPATH"], "/mine", "the image's own value wins");
        let mut env = BTreeMap::new();
        let w = super::plan(&index, &mut env, &runtime(true)).warnings;
        assert!(w.len() == 1 && w[0].contains("localedef"), "{w:?}");
    }

    #[test]
    fn the_images_own_library_path_comes_right_after_the_runtime_glibc() {
        let index = debian(Some("2.40"));
        let mut env = BTreeMap::from([(
            "LD_LIBRARY_PATH".to_string(),
            "/usr/local/lib:/opt/x".to_string(),
        )]);
        assert!(plan(&index, &mut env, &runtime(true)).runtime_glibc);
        assert!(env["LD_LIBRARY_PATH"]
            .starts_with("/opt/kiln/runtime/glibc:/usr/local/lib:/opt/x:/lib/x86_64-linux-gnu:"));
    }

    #[test]
    fn newer_unknown_musl_and_no_runtime_glibc_keep_the_images_libc() {
        let check = |index: &FileIndex, runtime: &RuntimeDescriptor, says: &str| {
            let mut env = BTreeMap::new();
            let plan = plan(index, &mut env, runtime);
            assert!(!plan.runtime_glibc);
            assert!(plan.trusted_files.is_empty());
            assert!(env.is_empty());
            assert_eq!(plan.warnings.len(), 1);
            assert!(plan.warnings[0].contains(says), "{}", plan.warnings[0]);
            assert!(plan.warnings[0].contains("emulated"));
        };
        check(&debian(Some("2.41")), &runtime(true), "glibc 2.41 is newer");
        check(&debian(None), &runtime(true), "release is unknown");
        check(&debian(Some("2.36")), &runtime(false), "no Gramine glibc");
        let mut musl = FileIndex::default();
        musl.entries.insert(
            MUSL_INTERPRETER.into(),
            entry(FileKind::Regular {
                size: 1,
                sha256: [0; 32],
            }),
        );
        check(&musl, &runtime(true), "musl image");
        // A static program alone: nothing to say, nothing to change.
        let mut env = BTreeMap::new();
        assert_eq!(
            plan(&FileIndex::default(), &mut env, &runtime(true)),
            LibcPlan::default()
        );
    }

    #[test]
    fn ld_so_conf_includes_nest_and_stop() {
        let mut index = FileIndex::default();
        index.captured.insert(
            "/etc/ld.so.conf".into(),
            b"include ld.so.conf.d/*.conf\n/a /b:/c\n".to_vec(),
        );
        index.captured.insert(
            "/etc/ld.so.conf.d/1.conf".into(),
            b"include /etc/ld.so.conf\n/d/\n".to_vec(),
        );
        // The nested include reads ld.so.conf again (bounded), so its dirs come first.
        assert_eq!(conf_dirs(&index), ["/a", "/b", "/c", "/d"]);
        assert!(glob_match(
            "/etc/ld.so.conf.d/*.conf",
            "/etc/ld.so.conf.d/x.conf"
        ));
        assert!(!glob_match(
            "/etc/ld.so.conf.d/*.conf",
            "/etc/ld.so.conf.d/a/x.conf"
        ));
        assert!(glob_match("/etc/?.conf", "/etc/a.conf"));
    }
}
