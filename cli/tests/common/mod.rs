//! Shared by the CLI's test files: run the built `kiln` in an isolated home.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `kiln ARGS` with its Docker config and state under `home`, and no `KILN_RUNTIME`
/// or `SOURCE_DATE_EPOCH` from the caller's environment.
pub fn kiln_in<S: AsRef<std::ffi::OsStr>>(args: &[S], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("XDG_STATE_HOME", home.join("xdg-state"))
        .env_remove("KILN_RUNTIME")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kiln")
}

/// The exit code, stdout and stderr, for an assertion message.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
