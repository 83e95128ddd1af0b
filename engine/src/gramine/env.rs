//! The app's environment: the image's `Env`, then `javaMode`'s settings, then
//! `manifestEnv` (later entries win; the user's explicit entries beat kiln's defaults).
//!
//! `javaMode` sets `MALLOC_ARENA_MAX=1` (glibc otherwise reserves an arena per thread,
//! which wastes enclave memory) and appends JVM options to `JAVA_TOOL_OPTIONS` (after any
//! value the image sets; the JVM reads this variable itself, so no launcher script is
//! needed):
//!
//! | javaMode | options | why |
//! |---|---|---|
//! | `OPENJDK`, `JAVA-ORACLE` | `-XX:CompressedClassSpaceSize=16m -XX:-UsePerfData -XX:ReservedCodeCacheSize=16m -XX:+UseSerialGC -XX:MaxRAM=<memSize>` | both are HotSpot: shrink the 1G class space and 240M code cache reservations to fit the enclave, no hsperfdata mmap file in /tmp, one GC thread instead of a thread per CPU; the JVM sizes its heap from the memory it sees, which under SGX is the enclave but in direct mode (and so in the launcher's rehearsal) the host's RAM: `MaxRAM` makes both the enclave |
//! | `OPENJ9` | `-Xnojit -Xnoaot -Xdump:none` | OpenJ9's JIT maps executable memory in ways that need EDMM and its dump agents fork; both off |
//! | `LIBERTY-JRE` | `-Xnojit -Xnoaot -Xdump:none -Xshareclasses:none` | Liberty runs on an OpenJ9-based JRE: as OPENJ9, plus no shared class cache (Liberty enables one by default; it lives in host shared memory, which an enclave can neither trust nor share) |

use std::collections::BTreeMap;

use super::fsview::{resolve, Node};
use super::validate::JavaMode;
use crate::image::file_index::FileIndex;

/// The JVM options a `javaMode` adds to `JAVA_TOOL_OPTIONS`, for an enclave of
/// `enclave_size` bytes.
pub fn java_options(mode: JavaMode, enclave_size: u64) -> String {
    match mode {
        JavaMode::OpenJdk | JavaMode::JavaOracle => format!(
            "-XX:CompressedClassSpaceSize=16m -XX:-UsePerfData -XX:ReservedCodeCacheSize=16m -XX:+UseSerialGC -XX:MaxRAM={}",
            enclave_size.div_ceil(1 << 20).max(1).to_string() + "m"
        ),
        JavaMode::OpenJ9 => "-Xnojit -Xnoaot -Xdump:none".to_string(),
        JavaMode::LibertyJre => "-Xnojit -Xnoaot -Xdump:none -Xshareclasses:none".to_string(),
    }
}

/// Builds the environment. `image_env` entries without `=` are skipped and returned as
/// the second value (for a warning).
pub fn build_env(
    image_env: &[String],
    java_mode: Option<JavaMode>,
    enclave_size: u64,
    manifest_env: &[(String, String)],
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env = BTreeMap::new();
    let mut skipped = Vec::new();
    for e in image_env {
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('\0') => {
                env.insert(k.to_string(), v.to_string());
            }
            _ => skipped.push(e.clone()),
        }
    }
    if let Some(mode) = java_mode {
        env.insert("MALLOC_ARENA_MAX".to_string(), "1".to_string());
        let opts = java_options(mode, enclave_size);
        let v = match env.get("JAVA_TOOL_OPTIONS") {
            Some(old) if !old.trim().is_empty() => format!("{} {opts}", old.trim_end()),
            _ => opts.to_string(),
        };
        env.insert("JAVA_TOOL_OPTIONS".to_string(), v);
    }
    for (k, v) in manifest_env {
        env.insert(k.clone(), v.clone());
    }
    (env, skipped)
}

/// Where Gramine looks for the ELF interpreter when `LD_LIBRARY_PATH` is not set
/// (libos/src/libos_rtld.c `find_interp`, v1.9).
pub const GRAMINE_INTERP_DIRS: [&str; 2] = ["/lib", "/lib64"];

/// The interpreters of x86-64 glibc and musl, by file name.
const INTERPRETERS: [&str; 2] = ["ld-linux-x86-64.so.2", "ld-musl-x86_64.so.1"];

/// Keeps the ELF interpreter reachable when the image sets `LD_LIBRARY_PATH`.
///
/// Gramine loads the program's interpreter itself and searches for its *file name* only in
/// the directories of `LD_LIBRARY_PATH` when that is set, else in `/lib` and `/lib64`
/// (`find_interp`); the directory in `PT_INTERP` is ignored. An image that sets
/// `LD_LIBRARY_PATH=/usr/local/lib` therefore fails at start (`libos_init() failed in
/// init_elf_objects: ENOENT`). kiln appends to the image's value those of `/lib` and
/// `/lib64` that hold an interpreter (both when the image has neither), after the image's
/// own directories, so the app's library search order is unchanged before them. Returns
/// what was appended (for a warning), `None` when nothing was needed.
pub fn keep_interpreter_reachable(
    env: &mut BTreeMap<String, String>,
    index: &FileIndex,
) -> Option<String> {
    let value = env.get_mut("LD_LIBRARY_PATH")?;
    let holds_interp = |dir: &str| {
        INTERPRETERS.iter().any(|name| {
            matches!(
                resolve(index, &format!("{dir}/{name}")),
                Ok((_, Node::File(_)))
            )
        })
    };
    let listed: Vec<&str> = value.split(':').filter(|d| !d.is_empty()).collect();
    if listed.iter().any(|d| holds_interp(d.trim_end_matches('/'))) {
        return None;
    }
    let mut add: Vec<&str> = GRAMINE_INTERP_DIRS
        .into_iter()
        .filter(|d| holds_interp(d))
        .collect();
    if add.is_empty() {
        add = GRAMINE_INTERP_DIRS.to_vec();
    }
    let added = add.join(":");
    *value = if listed.is_empty() {
        added.clone()
    } else {
        format!("{}:{added}", value.trim_end_matches(':'))
    };
    Some(added)
}

/// The PATH docker uses when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn later_wins_and_bad_entries_are_skipped() {
        let (env, skipped) = build_env(
            &[
                "PATH=/bin".into(),
                "A=1".into(),
                "NOEQ".into(),
                "A=2".into(),
                "=x".into(),
            ],
            None,
            1 << 30,
            &[kv("B", "3"), kv("A", "4=5")],
        );
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["A"], "4=5");
        assert_eq!(env["B"], "3");
        assert_eq!(skipped, ["NOEQ", "=x"]);
        assert!(!env.contains_key("MALLOC_ARENA_MAX"));
    }

    fn index_with(files: &[&str], links: &[(&str, &str)]) -> FileIndex {
        use crate::image::file_index::{FileEntry, FileKind};
        let mut index = FileIndex::default();
        let entry = |kind| FileEntry {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
        };
        for f in files {
            let kind = FileKind::Regular {
                size: 1,
                sha256: [0; 32],
            };
            index.entries.insert(f.to_string(), entry(kind));
        }
        for (p, t) in links {
            let kind = FileKind::Symlink {
                target: t.to_string(),
            };
            index.entries.insert(p.to_string(), entry(kind));
        }
        index
    }

    #[test]
    fn the_interpreter_stays_reachable_through_ld_library_path() {
        // Debian: /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/..., /lib -> usr/lib.
        let index = index_with(
            &["/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"],
            &[
                ("/lib", "usr/lib"),
                (
                    "/lib64/ld-linux-x86-64.so.2",
                    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                ),
            ],
        );
        let mut env = BTreeMap::new();
        assert_eq!(keep_interpreter_reachable(&mut env, &index), None);
        env.insert("LD_LIBRARY_PATH".to_string(), "/usr/local/lib".to_string());
        assert_eq!(
            keep_interpreter_reachable(&mut env, &index).as_deref(),
            Some("/lib64")
        );
        assert_eq!(env["LD_LIBRARY_PATH"], "/usr/local/lib:/lib64");
        // Already reachable: unchanged.
        assert_eq!(keep_interpreter_reachable(&mut env, &index), None);
        assert_eq!(env["LD_LIBRARY_PATH"], "/usr/local/lib:/lib64");

        // musl (Alpine): /lib/ld-musl-x86_64.so.1; an empty value.
        let index = index_with(&["/lib/ld-musl-x86_64.so.1"], &[]);
        let mut env = BTreeMap::from([("LD_LIBRARY_PATH".to_string(), String::new())]);
        assert_eq!(
            keep_interpreter_reachable(&mut env, &index).as_deref(),
            Some("/lib")
        );
        assert_eq!(env["LD_LIBRARY_PATH"], "/lib");

        // No interpreter known: Gramine's own defaults.
        let index = index_with(&[], &[]);
        let mut env = BTreeMap::from([("LD_LIBRARY_PATH".to_string(), "/opt/x:".to_string())]);
        keep_interpreter_reachable(&mut env, &index);
        assert_eq!(env["LD_LIBRARY_PATH"], "/opt/x:/lib:/lib64");
    }

    #[test]
    fn java_modes() {
        let (env, _) = build_env(&[], Some(JavaMode::OpenJdk), 1 << 30, &[]);
        assert_eq!(env["MALLOC_ARENA_MAX"], "1");
        assert_eq!(
            env["JAVA_TOOL_OPTIONS"],
            "-XX:CompressedClassSpaceSize=16m -XX:-UsePerfData -XX:ReservedCodeCacheSize=16m -XX:+UseSerialGC -XX:MaxRAM=1024m"
        );
        let (env, _) = build_env(
            &["JAVA_TOOL_OPTIONS=-Dx=1".into()],
            Some(JavaMode::OpenJ9),
            1 << 30,
            &[],
        );
        assert_eq!(
            env["JAVA_TOOL_OPTIONS"],
            "-Dx=1 -Xnojit -Xnoaot -Xdump:none"
        );
        let (env, _) = build_env(&[], Some(JavaMode::LibertyJre), 1 << 30, &[]);
        assert!(env["JAVA_TOOL_OPTIONS"].ends_with("-Xshareclasses:none"));
        let (env, _) = build_env(
            &[],
            Some(JavaMode::JavaOracle),
            256 << 20,
            &[kv("MALLOC_ARENA_MAX", "2")],
        );
        assert_eq!(env["MALLOC_ARENA_MAX"], "2");
        assert!(env["JAVA_TOOL_OPTIONS"].contains("UseSerialGC"));
    }
}
