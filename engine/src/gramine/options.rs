//! `manifestOptions`: raw Gramine manifest keys merged into the manifest last, after
//! validation.
//!
//! Keys may be dotted (`"sys.stack.size": "1M"`) or nested objects
//! (`{"sys": {"stack": {"size": "1M"}}}`); both flatten to the same leaf keys. Every leaf
//! must be a key of Gramine v1.9's manifest schema (python/graminelibos/manifest_check.py)
//! with a value of the right type; a typo is a 400 rather than a silently ignored key.
//!
//! Rules, each violation a 400 naming the key:
//! - Keys that restate a request field must agree with it: `sgx.debug` (`debug`),
//!   `sgx.enclave_size` (`memSize`, after rounding), `sgx.max_threads` (`threads`),
//!   `sgx.isvprodid`, `sgx.isvsvn`, `loader.insecure__use_cmdline_argv`
//!   (`allowCmdlineArgs`), `loader.log_file` (`logFilePath`). An equal value is accepted
//!   and changes nothing.
//! - `sgx.edmm_enable` is always refused: kiln builds both variants itself.
//! - Keys kiln owns are refused with the request field to use instead: `libos.entrypoint`,
//!   `loader.argv`, `loader.argv_src_file` (entrypoint/entrypointArgs), `loader.env.*`,
//!   `loader.env_src_file` (manifestEnv), `loader.entrypoint.*` (the runtime), `fs.root.*`
//!   (kiln's root mount), `sgx.trusted_files` (roDirs), `sgx.allowed_files` (rwDirs).
//! - Keys that switch protection off: `sgx.file_check_policy` other than `"strict"`; any
//!   `insecure__*` key (`loader.insecure__*`, `sgx.insecure__*`, `sys.insecure__*`,
//!   `fs.insecure__keys.*`), `sgx.seal_key.*` masks, profiling (`sgx.profile.*`,
//!   `sgx.vtune_profile`), `sys.debug__mock_syscalls` and `loader.log_level` other than
//!   `error`/`none` are accepted only with `debug: true`.
//! - Keys that Gramine's release build refuses at start-up are refused here, naming the
//!   option, rather than failing at deployment (kiln runtimes are packed from release
//!   builds): `sgx.enable_stats = true` (pal/src/host/linux-sgx/host_main.c, v1.9 lines
//!   706-712: "specified in non-debug mode, this is disallowed") and `sgx.profile.enable`
//!   other than `"none"` (lines 817-823: "SGX profiling works only when Gramine is compiled
//!   in debug mode"). The other `sgx.profile.*` keys are ignored by a release build.
//! - `fs.mounts` entries are appended after kiln's own mounts; each must be a table with
//!   an absolute `path` and a known `type`, and may not reuse a path kiln mounts.

use serde_json::Value as Json;

use super::canonical::{Table, Value};
use super::paths::normalize_absolute;
use super::size::parse_size;

/// The request fields the options are checked against.
#[derive(Debug, Clone)]
pub struct OptionContext {
    /// `debug`.
    pub debug: bool,
    /// Enclave size in bytes (rounded `memSize`).
    pub enclave_size: u64,
    /// `threads`.
    pub threads: u32,
    /// `isvprodid`.
    pub isvprodid: u16,
    /// `isvsvn`.
    pub isvsvn: u16,
    /// `allowCmdlineArgs`.
    pub allow_cmdline_args: bool,
    /// `logFilePath`.
    pub log_file_path: Option<String>,
}

/// Validated `manifestOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestOptions {
    /// Leaf keys (dotted path split into keys) and their values, sorted by path. Keys that
    /// merely restate a request field are dropped.
    pub leaves: Vec<(Vec<String>, Value)>,
    /// `fs.mounts` entries to append after kiln's mounts, in the given order.
    pub extra_mounts: Vec<Table>,
}

impl ManifestOptions {
    /// Whether there is nothing to merge.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty() && self.extra_mounts.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Str,
    Size,
    AbsPath,
    Array,
    Any,
    OneOf(&'static [&'static str]),
}

enum Rule {
    /// Accepted (if of the right kind).
    Plain(Kind),
    /// Accepted only with `debug: true` (the reason says what it weakens).
    DebugOnly(Kind, &'static str),
    /// Must equal what the request field gives.
    SameAs(&'static str),
    /// Refused, with a hint.
    Refused(&'static str),
    /// `fs.mounts`: appended.
    Mounts,
    /// `loader.log_level`.
    LogLevel,
    /// `sgx.file_check_policy`.
    FileCheckPolicy,
    /// A boolean that Gramine's release loader refuses when true.
    ReleaseRefusesTrue(&'static str),
    /// `sgx.profile.enable`: only `"none"` starts with a release loader.
    ProfileEnable,
}

const CPU3: &[&str] = &["unspecified", "disabled", "required"];
const CPU2: &[&str] = &["disabled", "required"];
const LOG_LEVELS: &[&str] = &["none", "error", "warning", "debug", "trace", "all"];
const MOUNT_TYPES: &[&str] = &["chroot", "encrypted", "tmpfs", "untrusted_shm"];

fn rule_for(key: &str) -> Option<Rule> {
    use Kind::*;
    use Rule::*;
    if key.starts_with("loader.env.") {
        return Some(Refused("set the environment with `manifestEnv`"));
    }
    if key.starts_with("loader.entrypoint.") {
        return Some(Refused("the LibOS entrypoint is kiln's runtime"));
    }
    if key.starts_with("fs.root.") {
        return Some(Refused("kiln mounts the image as the root filesystem"));
    }
    if key.starts_with("fs.insecure__keys.") {
        return Some(DebugOnly(
            Str,
            "it hard-codes an encryption key in the manifest",
        ));
    }
    if key.starts_with("sys.ioctl_structs.") {
        return Some(Plain(Any));
    }
    if key.starts_with("sgx.seal_key.") {
        return Some(DebugOnly(
            Str,
            "it changes what the sealing key is bound to",
        ));
    }
    if key == "sgx.profile.enable" {
        return Some(ProfileEnable);
    }
    if key.starts_with("sgx.profile.") {
        return Some(DebugOnly(Any, "profiling exposes the enclave's execution"));
    }
    let r = match key {
        "libos.entrypoint" => Refused("use `entrypoint`"),
        "libos.check_invalid_pointers" => Plain(Bool),
        "loader.argv" | "loader.argv_src_file" => Refused("use `entrypoint` and `entrypointArgs`"),
        "loader.env_src_file" => Refused("set the environment with `manifestEnv`"),
        "loader.log_level" => LogLevel,
        "loader.log_file" => SameAs("logFilePath"),
        "loader.uid" | "loader.gid" => Plain(Int),
        "loader.insecure__use_cmdline_argv" => SameAs("allowCmdlineArgs"),
        "loader.insecure__use_host_env" => {
            DebugOnly(Bool, "the host would control the app's environment")
        }
        "loader.insecure__disable_aslr" => DebugOnly(Bool, "it disables ASLR"),
        "fs.mounts" => Mounts,
        "fs.start_dir" => Plain(AbsPath),
        "sgx.debug" => SameAs("debug"),
        "sgx.enclave_size" => SameAs("memSize"),
        "sgx.max_threads" => SameAs("threads"),
        "sgx.isvprodid" => SameAs("isvprodid"),
        "sgx.isvsvn" => SameAs("isvsvn"),
        "sgx.edmm_enable" => Refused("kiln builds both the SGX1 and the EDMM enclave"),
        "sgx.trusted_files" => Refused("use `roDirs`"),
        "sgx.allowed_files" => Refused("use `rwDirs`"),
        "sgx.file_check_policy" => FileCheckPolicy,
        "sgx.cpu_features.avx" | "sgx.cpu_features.avx512" | "sgx.cpu_features.amx" => {
            Plain(OneOf(CPU3))
        }
        "sgx.cpu_features.mpx" | "sgx.cpu_features.pkru" => Plain(OneOf(CPU2)),
        "sgx.use_exinfo" | "sgx.preheat_enclave" => Plain(Bool),
        "sgx.enable_stats" => ReleaseRefusesTrue(
            "Gramine's release build refuses `sgx.enable_stats = true` at start-up \
             (host_main.c: \"specified in non-debug mode, this is disallowed\")",
        ),
        "sgx.remote_attestation" => Plain(OneOf(&["none", "dcap"])),
        "sgx.vtune_profile" => DebugOnly(Bool, "profiling exposes the enclave's execution"),
        "sgx.insecure__rpc_thread_num" => {
            DebugOnly(Int, "exitless RPC threads are vulnerable (INTEL-SA-00657)")
        }
        "sgx.insecure__allow_memfaults_without_exinfo" => {
            DebugOnly(Bool, "the host could inject memory faults")
        }
        "sys.allowed_ioctls" => Plain(Array),
        "sys.debug__mock_syscalls" => DebugOnly(
            Array,
            "mocked system calls change what the app's system calls return",
        ),
        "sys.brk.max_size" | "sys.stack.size" => Plain(Size),
        "sys.fds.limit" => Plain(Int),
        "sys.disallow_subprocesses"
        | "sys.enable_extra_runtime_domain_names_conf"
        | "sys.enable_sigterm_injection"
        | "sys.experimental__enable_flock" => Plain(Bool),
        "sys.insecure__allow_eventfd" => DebugOnly(Bool, "eventfd is emulated by the host"),
        _ => return None,
    };
    Some(r)
}

/// Converts a JSON value into a manifest value (no null, no floats).
fn json_to_value(v: &Json) -> Result<Value, &'static str> {
    Ok(match v {
        Json::Null => return Err("null is not a manifest value"),
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => return Err("only integers that fit in 64 bits are supported"),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(json_to_value).collect::<Result<Vec<_>, _>>()?),
        Json::Object(o) => {
            let mut t = Table::new();
            for (k, v) in o {
                t.insert(k.clone(), json_to_value(v)?);
            }
            Value::Table(t)
        }
    })
}

fn flatten(
    prefix: &mut Vec<String>,
    map: &serde_json::Map<String, Json>,
    out: &mut Vec<(Vec<String>, Json)>,
    errors: &mut Vec<String>,
) {
    for (k, v) in map {
        let parts: Vec<&str> = k.split('.').collect();
        let shown = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{}.{k}", prefix.join("."))
        };
        if parts.iter().any(|p| p.is_empty()) {
            errors.push(format!(
                "manifestOptions: key `{shown}` has an empty component"
            ));
            continue;
        }
        let n = parts.len();
        prefix.extend(parts.into_iter().map(String::from));
        match v {
            Json::Object(inner) => flatten(prefix, inner, out, errors),
            other => out.push((prefix.clone(), other.clone())),
        }
        prefix.truncate(prefix.len() - n);
    }
}

fn check_kind(kind: Kind, v: &Value) -> Result<(), String> {
    let ok = match (kind, v) {
        (Kind::Bool, Value::Boolean(_)) => true,
        (Kind::Int, Value::Integer(i)) => *i >= 0,
        (Kind::Str, Value::String(_)) => true,
        (Kind::Size, Value::String(s)) => parse_size(s).is_ok(),
        (Kind::AbsPath, Value::String(s)) => normalize_absolute(s).as_deref() == Some(s),
        (Kind::Array, Value::Array(_)) => true,
        (Kind::Any, _) => true,
        (Kind::OneOf(set), Value::String(s)) => set.contains(&s.as_str()),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Bool => "must be true or false".to_string(),
        Kind::Int => "must be a non-negative integer".to_string(),
        Kind::Str => "must be a string".to_string(),
        Kind::Size => "must be a size string such as \"1M\"".to_string(),
        Kind::AbsPath => "must be an absolute, normalised path".to_string(),
        Kind::Array => "must be an array".to_string(),
        Kind::Any => String::new(),
        Kind::OneOf(set) => format!("must be one of {}", set.join(", ")),
    })
}

fn check_same(field: &str, v: &Value, ctx: &OptionContext) -> Result<(), String> {
    let same = match (field, v) {
        ("debug", Value::Boolean(b)) => *b == ctx.debug,
        ("memSize", Value::String(s)) => parse_size(s).ok() == Some(ctx.enclave_size),
        ("threads", Value::Integer(i)) => *i == i64::from(ctx.threads),
        ("isvprodid", Value::Integer(i)) => *i == i64::from(ctx.isvprodid),
        ("isvsvn", Value::Integer(i)) => *i == i64::from(ctx.isvsvn),
        ("allowCmdlineArgs", Value::Boolean(b)) => *b == ctx.allow_cmdline_args,
        ("logFilePath", Value::String(s)) => ctx.log_file_path.as_deref() == Some(s.as_str()),
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(format!(
            "contradicts the request field `{field}`; set `{field}` instead"
        ))
    }
}

fn check_mount(m: &Value, reserved: &[String]) -> Result<Table, String> {
    let Value::Table(t) = m else {
        return Err("each entry must be a table { type, path, uri }".into());
    };
    for k in t.keys() {
        if !["type", "path", "uri", "key_name", "enable_recovery"].contains(&k.as_str()) {
            return Err(format!("unknown mount key `{k}`"));
        }
    }
    let ty = match t.get("type") {
        None => "chroot",
        Some(Value::String(s)) if MOUNT_TYPES.contains(&s.as_str()) => s.as_str(),
        Some(_) => return Err(format!("`type` must be one of {}", MOUNT_TYPES.join(", "))),
    };
    let path = match t.get("path") {
        Some(Value::String(p)) if normalize_absolute(p).as_deref() == Some(p.as_str()) => p,
        _ => return Err("`path` must be an absolute, normalised path".into()),
    };
    if path == "/" {
        return Err("cannot mount over `/`".into());
    }
    if reserved.iter().any(|r| r == path) {
        return Err(format!(
            "`{path}` is already mounted by kiln (encryptedDirs)"
        ));
    }
    match t.get("uri") {
        Some(Value::String(u)) if u.starts_with("file:") || u.starts_with("dev:") => {}
        None if ty == "tmpfs" => {}
        _ => return Err("`uri` must be a `file:` or `dev:` URI".into()),
    }
    if let Some(k) = t.get("key_name") {
        if ty != "encrypted" || k.as_str().is_none() {
            return Err("`key_name` is a string and only for encrypted mounts".into());
        }
    }
    Ok(t.clone())
}

/// Validates `manifestOptions` against the request. `reserved_mounts` are the paths kiln
/// mounts itself (the encrypted dirs). Returns one error string per problem, each naming
/// the key.
pub fn validate_options(
    map: &serde_json::Map<String, Json>,
    ctx: &OptionContext,
    reserved_mounts: &[String],
) -> Result<ManifestOptions, Vec<String>> {
    let mut errors = Vec::new();
    let mut flat = Vec::new();
    flatten(&mut Vec::new(), map, &mut flat, &mut errors);
    flat.sort_by(|a, b| a.0.cmp(&b.0));

    let mut out = ManifestOptions::default();
    let mut prev: Option<&Vec<String>> = None;
    for (path, json) in &flat {
        let key = path.join(".");
        let err = |msg: String| format!("manifestOptions: `{key}` {msg}");
        if prev == Some(path) {
            errors.push(err("is given twice".into()));
            continue;
        }
        prev = Some(path);
        let value = match json_to_value(json) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(format!("has an unsupported value: {e}")));
                continue;
            }
        };
        let Some(rule) = rule_for(&key) else {
            errors.push(err("is not a Gramine v1.9 manifest key".into()));
            continue;
        };
        let res: Result<bool, String> = match rule {
            Rule::Plain(kind) => check_kind(kind, &value).map(|_| true),
            Rule::DebugOnly(kind, why) => {
                if ctx.debug {
                    check_kind(kind, &value).map(|_| true)
                } else {
                    Err(format!("needs `debug: true`: {why}"))
                }
            }
            Rule::SameAs(field) => check_same(field, &value, ctx).map(|_| false),
            Rule::Refused(hint) => Err(format!("cannot be set here: {hint}")),
            Rule::LogLevel => check_kind(Kind::OneOf(LOG_LEVELS), &value).and_then(|_| {
                let quiet = matches!(value.as_str(), Some("error" | "none"));
                if quiet || ctx.debug {
                    Ok(true)
                } else {
                    Err(
                        "above \"error\" needs `debug: true`: verbose logs may leak enclave data"
                            .into(),
                    )
                }
            }),
            Rule::FileCheckPolicy => {
                if value.as_str() == Some("strict") {
                    Ok(false)
                } else {
                    Err("must stay \"strict\": any other policy lets the host supply unchecked files"
                        .into())
                }
            }
            Rule::ReleaseRefusesTrue(why) => check_kind(Kind::Bool, &value).and_then(|_| {
                if value == Value::Boolean(true) {
                    Err(format!("cannot be true: {why}"))
                } else {
                    Ok(true)
                }
            }),
            Rule::ProfileEnable => check_kind(Kind::OneOf(&["none", "main", "all"]), &value)
                .and_then(|_| {
                    if value.as_str() == Some("none") {
                        Ok(true)
                    } else {
                        Err(
                            "must be \"none\": Gramine's release build refuses SGX profiling at \
                             start-up (host_main.c: \"SGX profiling works only when Gramine is \
                             compiled in debug mode\")"
                                .into(),
                        )
                    }
                }),
            Rule::Mounts => match &value {
                Value::Array(items) => {
                    for (i, m) in items.iter().enumerate() {
                        match check_mount(m, reserved_mounts) {
                            Ok(t) => out.extra_mounts.push(t),
                            Err(e) => errors.push(err(format!("[{i}]: {e}"))),
                        }
                    }
                    Ok(false)
                }
                _ => Err("must be an array of mount tables".into()),
            },
        };
        match res {
            Ok(true) => out.leaves.push((path.clone(), value)),
            Ok(false) => {}
            Err(e) => errors.push(err(e)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(debug: bool) -> OptionContext {
        OptionContext {
            debug,
            enclave_size: 256 << 20,
            threads: 4,
            isvprodid: 1,
            isvsvn: 2,
            allow_cmdline_args: false,
            log_file_path: None,
        }
    }

    fn run(json: &str, debug: bool) -> Result<ManifestOptions, Vec<String>> {
        let v: Json = serde_json::from_str(json).unwrap();
        validate_options(v.as_object().unwrap(), &ctx(debug), &["/tmp".to_string()])
    }

    fn key(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn dotted_and_nested_keys_flatten_alike() {
        let a = run(
            r#"{"sys.stack.size":"1M","sgx":{"cpu_features":{"avx":"required"}}}"#,
            false,
        )
        .unwrap();
        assert_eq!(
            a.leaves,
            vec![
                (key("sgx.cpu_features.avx"), Value::str("required")),
                (key("sys.stack.size"), Value::str("1M")),
            ]
        );
        let b = run(
            r#"{"sys":{"stack.size":"1M"},"sgx.cpu_features.avx":"required"}"#,
            false,
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn equal_restatements_are_dropped() {
        let o = run(
            r#"{"sgx.debug":false,"sgx.enclave_size":"256M","sgx.max_threads":4,
                "sgx.isvprodid":1,"sgx.isvsvn":2,"sgx.file_check_policy":"strict",
                "loader.insecure__use_cmdline_argv":false}"#,
            false,
        )
        .unwrap();
        assert!(o.is_empty(), "{o:?}");
    }

    #[test]
    fn contradictions_name_the_key_and_field() {
        for (json, k, field) in [
            (r#"{"sgx.debug":true}"#, "sgx.debug", "debug"),
            (
                r#"{"sgx.enclave_size":"512M"}"#,
                "sgx.enclave_size",
                "memSize",
            ),
            (r#"{"sgx.max_threads":8}"#, "sgx.max_threads", "threads"),
            (r#"{"sgx.isvprodid":9}"#, "sgx.isvprodid", "isvprodid"),
            (r#"{"sgx.isvsvn":9}"#, "sgx.isvsvn", "isvsvn"),
            (
                r#"{"loader.log_file":"/x"}"#,
                "loader.log_file",
                "logFilePath",
            ),
        ] {
            let e = run(json, false).unwrap_err();
            assert_eq!(e.len(), 1);
            assert!(e[0].contains(k) && e[0].contains(field), "{e:?}");
        }
    }

    #[test]
    fn protection_switches_are_refused() {
        for (json, k) in [
            (r#"{"sgx.edmm_enable":true}"#, "sgx.edmm_enable"),
            (
                r#"{"sgx.file_check_policy":"allow_all_but_log"}"#,
                "sgx.file_check_policy",
            ),
            (
                r#"{"loader.insecure__use_host_env":true}"#,
                "loader.insecure__use_host_env",
            ),
            (
                r#"{"loader.insecure__disable_aslr":true}"#,
                "loader.insecure__disable_aslr",
            ),
            (
                r#"{"sys.insecure__allow_eventfd":true}"#,
                "sys.insecure__allow_eventfd",
            ),
            (
                r#"{"sgx.insecure__rpc_thread_num":2}"#,
                "sgx.insecure__rpc_thread_num",
            ),
            (
                r#"{"fs.insecure__keys.default":"00"}"#,
                "fs.insecure__keys.default",
            ),
            (r#"{"sgx.allowed_files":["file:/"]}"#, "sgx.allowed_files"),
            (r#"{"sgx.trusted_files":[]}"#, "sgx.trusted_files"),
            (r#"{"loader.env.LD_PRELOAD":"x"}"#, "loader.env.LD_PRELOAD"),
            (r#"{"loader.argv":["a"]}"#, "loader.argv"),
            (r#"{"libos.entrypoint":"/bin/sh"}"#, "libos.entrypoint"),
            (
                r#"{"loader.entrypoint.uri":"file:/x"}"#,
                "loader.entrypoint.uri",
            ),
            (r#"{"fs.root.uri":"file:/x"}"#, "fs.root.uri"),
            (r#"{"loader.log_level":"trace"}"#, "loader.log_level"),
            (
                r#"{"sgx.seal_key.flags_mask":"0x0"}"#,
                "sgx.seal_key.flags_mask",
            ),
            (r#"{"sgx.vtune_profile":true}"#, "sgx.vtune_profile"),
        ] {
            let e = run(json, false).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].contains(&format!("`{k}`")), "{e:?}");
        }
    }

    #[test]
    fn options_the_release_loader_refuses_are_refused_even_with_debug() {
        for debug in [false, true] {
            let e = run(r#"{"sgx.enable_stats":true}"#, debug).unwrap_err();
            assert!(
                e[0].contains("`sgx.enable_stats`") && e[0].contains("release build"),
                "{e:?}"
            );
            for mode in ["main", "all"] {
                let e = run(&format!(r#"{{"sgx.profile.enable":"{mode}"}}"#), debug).unwrap_err();
                assert!(
                    e[0].contains("`sgx.profile.enable`") && e[0].contains("debug mode"),
                    "{e:?}"
                );
            }
        }
        assert!(run(r#"{"sgx.enable_stats":false}"#, false).is_ok());
        assert!(run(r#"{"sgx.profile.enable":"none"}"#, false).is_ok());
        assert!(run(r#"{"sgx.profile.enable":"sometimes"}"#, true).is_err());
    }

    #[test]
    fn mocked_syscalls_need_debug() {
        let e = run(r#"{"sys.debug__mock_syscalls":[]}"#, false).unwrap_err();
        assert!(
            e[0].contains("`sys.debug__mock_syscalls`") && e[0].contains("debug: true"),
            "{e:?}"
        );
        assert!(run(r#"{"sys.debug__mock_syscalls":[]}"#, true).is_ok());
    }

    #[test]
    fn insecure_keys_pass_with_debug() {
        let o = run(
            r#"{"loader.insecure__disable_aslr":true,"loader.log_level":"trace",
                "fs.insecure__keys.k":"00112233445566778899aabbccddeeff"}"#,
            true,
        )
        .unwrap();
        assert_eq!(o.leaves.len(), 3);
        // Still refused with debug: these widen access regardless.
        assert!(run(r#"{"sgx.file_check_policy":"allow_all_but_log"}"#, true).is_err());
        assert!(run(r#"{"sgx.allowed_files":["file:/"]}"#, true).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_types() {
        let e = run(r#"{"sgx.enclave_sise":"1G"}"#, false).unwrap_err();
        assert!(e[0].contains("`sgx.enclave_sise`") && e[0].contains("not a Gramine"));
        let e = run(r#"{"sys.stack.size":12}"#, false).unwrap_err();
        assert!(e[0].contains("`sys.stack.size`"));
        let e = run(r#"{"sgx.cpu_features.mpx":"unspecified"}"#, false).unwrap_err();
        assert!(e[0].contains("disabled, required"));
        let e = run(r#"{"loader.uid":1.5}"#, false).unwrap_err();
        assert!(e[0].contains("`loader.uid`"));
        let e = run(r#"{"loader.uid":null}"#, false).unwrap_err();
        assert!(e[0].contains("`loader.uid`"));
        let e = run(r#"{"sgx..debug":true}"#, false).unwrap_err();
        assert!(e[0].contains("empty component"));
        let e = run(
            r#"{"sgx.use_exinfo":true,"sgx":{"use_exinfo":true}}"#,
            false,
        )
        .unwrap_err();
        assert!(e[0].contains("twice"));
    }

    #[test]
    fn mounts_are_checked_and_appended() {
        let o = run(
            r#"{"fs.mounts":[{"type":"tmpfs","path":"/scratch"},
                             {"path":"/data","uri":"file:/data"}]}"#,
            false,
        )
        .unwrap();
        assert_eq!(o.extra_mounts.len(), 2);
        assert!(o.leaves.is_empty());
        for bad in [
            r#"{"fs.mounts":[{"type":"tmpfs","path":"/tmp"}]}"#,
            r#"{"fs.mounts":[{"type":"tmpfs","path":"rel"}]}"#,
            r#"{"fs.mounts":[{"type":"nfs","path":"/x","uri":"file:/x"}]}"#,
            r#"{"fs.mounts":[{"path":"/x"}]}"#,
            r#"{"fs.mounts":[{"path":"/","uri":"file:/"}]}"#,
            r#"{"fs.mounts":[{"path":"/x","uri":"file:/x","key_name":"k"}]}"#,
            r#"{"fs.mounts":{"path":"/x"}}"#,
        ] {
            let e = run(bad, false).unwrap_err();
            assert!(e[0].contains("`fs.mounts"), "{bad}: {e:?}");
        }
    }
}
