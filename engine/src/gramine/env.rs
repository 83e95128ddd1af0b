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
//! | `OPENJDK`, `JAVA-ORACLE` | `-XX:CompressedClassSpaceSize=16m -XX:-UsePerfData -XX:ReservedCodeCacheSize=16m -XX:+UseSerialGC` | both are HotSpot: shrink the 1G class space and 240M code cache reservations to fit the enclave, no hsperfdata mmap file in /tmp, one GC thread instead of a thread per CPU |
//! | `OPENJ9` | `-Xnojit -Xnoaot -Xdump:none` | OpenJ9's JIT maps executable memory in ways that need EDMM and its dump agents fork; both off |
//! | `LIBERTY-JRE` | `-Xnojit -Xnoaot -Xdump:none -Xshareclasses:none` | Liberty runs on an OpenJ9-based JRE: as OPENJ9, plus no shared class cache (Liberty enables one by default; it lives in host shared memory, which an enclave can neither trust nor share) |

use std::collections::BTreeMap;

use super::validate::JavaMode;

/// The JVM options a `javaMode` adds to `JAVA_TOOL_OPTIONS`.
pub fn java_options(mode: JavaMode) -> &'static str {
    match mode {
        JavaMode::OpenJdk | JavaMode::JavaOracle => {
            "-XX:CompressedClassSpaceSize=16m -XX:-UsePerfData -XX:ReservedCodeCacheSize=16m -XX:+UseSerialGC"
        }
        JavaMode::OpenJ9 => "-Xnojit -Xnoaot -Xdump:none",
        JavaMode::LibertyJre => "-Xnojit -Xnoaot -Xdump:none -Xshareclasses:none",
    }
}

/// Builds the environment. `image_env` entries without `=` are skipped and returned as
/// the second value (for a warning).
pub fn build_env(
    image_env: &[String],
    java_mode: Option<JavaMode>,
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
        let opts = java_options(mode);
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
            &[kv("B", "3"), kv("A", "4=5")],
        );
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["A"], "4=5");
        assert_eq!(env["B"], "3");
        assert_eq!(skipped, ["NOEQ", "=x"]);
        assert!(!env.contains_key("MALLOC_ARENA_MAX"));
    }

    #[test]
    fn java_modes() {
        let (env, _) = build_env(&[], Some(JavaMode::OpenJdk), &[]);
        assert_eq!(env["MALLOC_ARENA_MAX"], "1");
        assert_eq!(
            env["JAVA_TOOL_OPTIONS"],
            "-XX:CompressedClassSpaceSize=16m -XX:-UsePerfData -XX:ReservedCodeCacheSize=16m -XX:+UseSerialGC"
        );
        let (env, _) = build_env(
            &["JAVA_TOOL_OPTIONS=-Dx=1".into()],
            Some(JavaMode::OpenJ9),
            &[],
        );
        assert_eq!(
            env["JAVA_TOOL_OPTIONS"],
            "-Dx=1 -Xnojit -Xnoaot -Xdump:none"
        );
        let (env, _) = build_env(&[], Some(JavaMode::LibertyJre), &[]);
        assert!(env["JAVA_TOOL_OPTIONS"].ends_with("-Xshareclasses:none"));
        let (env, _) = build_env(
            &[],
            Some(JavaMode::JavaOracle),
            &[kv("MALLOC_ARENA_MAX", "2")],
        );
        assert_eq!(env["MALLOC_ARENA_MAX"], "2");
        assert!(env["JAVA_TOOL_OPTIONS"].contains("UseSerialGC"));
    }
}
