//! A test fixture that stands in for Gramine's loaders in kiln's end-to-end tests. It is
//! installed in the fixture runtime image as `direct/libpal.so` and as `sgx/loader`, and
//! behaves like Gramine's start-up for what the tests check: it finds the application
//! path after `init` on its command line, reads `<app>.manifest` (direct mode) or
//! `<app>.manifest.sgx`, then execs `libos.entrypoint` with `loader.argv` (or, with
//! `loader.insecure__use_cmdline_argv`, the run-time arguments), the environment of
//! `loader.env` only, the working directory `fs.start_dir`, and `loader.uid`/`loader.gid`.
//!
//! It enforces nothing (no trusted files, no enclave): it only proves that the converted
//! image hands the original argv, env, cwd and user to the app.

#![forbid(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

fn fail(msg: &str) -> ! {
    eprintln!("kiln-fixture-loader: {msg}");
    exit(127)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(pos) = args.iter().position(|a| a == "init") else {
        fail("usage: LOADER PAL init APP [ARGS...]")
    };
    let Some(app) = args.get(pos + 1) else {
        fail("no application path after `init`")
    };
    let runtime_args: Vec<String> = args.iter().skip(pos + 2).cloned().collect();
    let (path, text) = [format!("{app}.manifest"), format!("{app}.manifest.sgx")]
        .into_iter()
        .find_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .unwrap_or_else(|| fail(&format!("cannot read {app}.manifest or {app}.manifest.sgx")));
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let get = |table: &str, key: &str| manifest.get(table).and_then(|t| t.get(key)).cloned();
    let entrypoint = get("libos", "entrypoint")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| fail(&format!("{path}: no libos.entrypoint")));
    let cmdline = get("loader", "insecure__use_cmdline_argv")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let argv: Vec<String> = if cmdline {
        std::iter::once(entrypoint.clone())
            .chain(runtime_args)
            .collect()
    } else {
        get("loader", "argv")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut cmd = Command::new(&entrypoint);
    if let Some((first, rest)) = argv.split_first() {
        cmd.arg0(first).args(rest);
    }
    cmd.env_clear();
    if let Some(env) = get("loader", "env").and_then(|v| v.as_table().cloned()) {
        for (k, v) in env {
            match v {
                toml::Value::String(s) => {
                    cmd.env(k, s);
                }
                other => {
                    if let Some(s) = other.get("value").and_then(|v| v.as_str()) {
                        cmd.env(k, s);
                    }
                }
            }
        }
    }
    if let Some(dir) = get("fs", "start_dir").and_then(|v| v.as_str().map(str::to_string)) {
        cmd.current_dir(dir);
    }
    let id = |k: &str| {
        get("loader", k)
            .and_then(|v| v.as_integer())
            .and_then(|i| u32::try_from(i).ok())
    };
    if let Some(gid) = id("gid") {
        cmd.gid(gid);
    }
    if let Some(uid) = id("uid") {
        cmd.uid(uid);
    }
    let err = cmd.exec();
    fail(&format!("exec {entrypoint}: {err}"))
}
