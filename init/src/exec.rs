//! The hand-over: `execve(program, argv, environ)` with kiln-init's own argv (argv[0]
//! as given, which Gramine took from `loader.argv`) and environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// The command that replaces kiln-init: `program` with `argv` (argv[0] as given; when
/// `argv` is empty, argv[0] is `program`) and the inherited environment.
pub fn command(program: &str, argv: &[OsString]) -> Command {
    let mut cmd = Command::new(program);
    match argv.split_first() {
        Some((first, rest)) => {
            cmd.arg0(first).args(rest);
        }
        None => {
            cmd.arg0(program);
        }
    }
    cmd
}

/// Execs `program`; returns only on failure.
pub fn exec(program: &str, argv: &[OsString]) -> std::io::Error {
    command(program, argv).exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_passed_through() {
        let script = "tr '\\0' ' ' < /proc/$$/cmdline; echo \"|$0|$1\"";
        let argv: Vec<OsString> = vec![
            "mysh".into(),
            "-c".into(),
            script.into(),
            "zero".into(),
            "one".into(),
        ];
        let out = command("/bin/sh", &argv).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("mysh -c "), "{text}");
        assert!(text.ends_with("|zero|one\n"), "{text}");
    }
}
