//! The hand-over: `execve(program, argv, environ)` with kiln-init's own argv (argv\[0\]
//! as given, which Gramine took from `loader.argv`, see [`argv0`]) and environment.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// kiln-init's file name: an argv\[0\] naming it is replaced by the program.
pub const SELF_NAME: &str = "kiln-init";

/// The argv\[0\] the app gets: as given (Gramine passes `loader.argv`'s), except when it
/// names kiln-init itself (no argv at all, or `loader.insecure__use_cmdline_argv`, where
/// Gramine sets argv\[0\] to `libos.entrypoint`): then `program`, as the app would have
/// seen without kiln-init.
pub fn argv0(program: &str, given: Option<&OsString>) -> OsString {
    match given {
        Some(a) if std::path::Path::new(a).file_name() != Some(SELF_NAME.as_ref()) => a.clone(),
        _ => OsString::from(program),
    }
}

/// The command that replaces kiln-init: `program` with `argv` (argv\[0\] per [`argv0`])
/// and the inherited environment.
pub fn command(program: &str, argv: &[OsString]) -> Command {
    let mut cmd = Command::new(program);
    cmd.arg0(argv0(program, argv.first()));
    cmd.args(argv.iter().skip(1));
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
    fn argv0_naming_kiln_init_becomes_the_program() {
        let p = "/usr/bin/app";
        assert_eq!(argv0(p, Some(&"app".into())), "app");
        assert_eq!(argv0(p, Some(&"/bin/sh".into())), "/bin/sh");
        assert_eq!(argv0(p, Some(&"/opt/kiln/runtime/kiln-init".into())), p);
        assert_eq!(argv0(p, Some(&"kiln-init".into())), p);
        assert_eq!(argv0(p, None), p);
    }

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
