//! For `kiln runtime pack`: the SGX loader's dynamic dependencies. Reads PT_INTERP,
//! DT_NEEDED and DT_RUNPATH/DT_RPATH with goblin, and resolves every needed library
//! (transitively) the way ld.so would for a default install: the object's RUNPATH/RPATH
//! (`$ORIGIN` expanded), then the Gramine libdir, then the system's library dirs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// The system's library directories, searched after RUNPATH/RPATH.
pub const SYSTEM_LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/lib/x86_64-linux-gnu",
];

/// The dynamic facts of one ELF object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfDeps {
    /// PT_INTERP, if any.
    pub interpreter: Option<String>,
    /// DT_NEEDED names.
    pub needed: Vec<String>,
    /// DT_RUNPATH then DT_RPATH entries.
    pub search: Vec<String>,
}

/// Reads the dynamic facts of an ELF file.
pub fn elf_deps(bytes: &[u8], what: &Path) -> anyhow::Result<ElfDeps> {
    let elf = goblin::elf::Elf::parse(bytes)
        .with_context(|| format!("{} is not an ELF file", what.display()))?;
    let mut search = Vec::new();
    for list in elf.runpaths.iter().chain(elf.rpaths.iter()) {
        search.extend(
            list.split(':')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    Ok(ElfDeps {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        search,
    })
}

fn expand_origin(dir: &str, origin: &Path) -> PathBuf {
    let o = origin.display().to_string();
    PathBuf::from(dir.replace("${ORIGIN}", &o).replace("$ORIGIN", &o))
}

/// Resolves the interpreter and every library `root` needs, transitively. Returns
/// (file name in `lib/`, resolved path); the interpreter is keyed by its base name.
pub fn resolve_libs(
    root: &Path,
    extra_dirs: &[PathBuf],
) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let bytes = std::fs::read(root).with_context(|| format!("reading {}", root.display()))?;
    let deps = elf_deps(&bytes, root)?;
    let mut out = BTreeMap::new();
    let Some(interp) = &deps.interpreter else {
        bail!(
            "{} has no ELF interpreter (PT_INTERP): expected a dynamically linked loader",
            root.display()
        );
    };
    let interp_path = PathBuf::from(interp);
    let name = interp_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .context("interpreter path has no file name")?;
    if !interp_path.is_file() {
        bail!("{}'s interpreter {interp} does not exist", root.display());
    }
    out.insert(name, interp_path);
    let mut queue: Vec<(PathBuf, ElfDeps)> = vec![(root.to_path_buf(), deps)];
    while let Some((obj, deps)) = queue.pop() {
        let origin = obj.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut dirs: Vec<PathBuf> = deps
            .search
            .iter()
            .map(|d| expand_origin(d, &origin))
            .collect();
        dirs.extend(extra_dirs.iter().cloned());
        dirs.extend(SYSTEM_LIB_DIRS.iter().map(PathBuf::from));
        for needed in &deps.needed {
            if out.contains_key(needed) {
                continue;
            }
            let found = if needed.contains('/') {
                Some(PathBuf::from(needed)).filter(|p| p.is_file())
            } else {
                dirs.iter().map(|d| d.join(needed)).find(|p| p.is_file())
            };
            let Some(path) = found else {
                bail!(
                    "{} needs {needed}, which is in none of: {}",
                    obj.display(),
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let lib_bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let lib_deps = elf_deps(&lib_bytes, &path)?;
            let key = Path::new(needed)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| needed.clone());
            out.insert(key, path.clone());
            queue.push((path, lib_deps));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_a_system_binary() {
        let bin = Path::new("/bin/true");
        if !bin.exists() {
            return;
        }
        let libs = resolve_libs(bin, &[]).unwrap();
        assert!(libs.contains_key("libc.so.6"), "{libs:?}");
        assert!(libs.contains_key("ld-linux-x86-64.so.2"), "{libs:?}");
    }

    /// Cross-check with `ldd` on a few system binaries: the same set of libraries.
    #[test]
    fn agrees_with_ldd() {
        for bin in [
            "/bin/true",
            "/usr/bin/gpgv",
            "/usr/bin/curl",
            "/usr/sbin/runc",
        ] {
            let bin = Path::new(bin);
            let Ok(out) = std::process::Command::new("ldd").arg(bin).output() else {
                return;
            };
            if !bin.exists() || !out.status.success() {
                continue;
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut from_ldd: Vec<String> = text
                .lines()
                .filter_map(|l| {
                    let l = l.trim();
                    if l.starts_with("linux-vdso") {
                        return None;
                    }
                    let name = l.split_whitespace().next()?;
                    Path::new(name)
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                })
                .collect();
            from_ldd.sort();
            from_ldd.dedup();
            let ours: Vec<String> = resolve_libs(bin, &[]).unwrap().into_keys().collect();
            assert_eq!(ours, from_ldd, "{}", bin.display());
        }
    }

    #[test]
    fn origin_expansion_and_errors() {
        assert_eq!(
            expand_origin("$ORIGIN/../lib", Path::new("/a/b")),
            PathBuf::from("/a/b/../lib")
        );
        assert!(elf_deps(b"not elf", Path::new("x")).is_err());
    }
}
