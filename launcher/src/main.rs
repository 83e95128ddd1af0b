//! `kiln-launcher`: the converted image's ENTRYPOINT (see the library docs).

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = launch::run(&args);
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("kiln-launcher: runs only on Linux");
    std::process::ExitCode::FAILURE
}

#[cfg(unix)]
mod launch {
    use kiln_launcher::config::{LauncherConfig, CONFIG_PATH};
    use kiln_launcher::{facts, log_relay, plan, probe::HostProbe, supervise};
    use std::ffi::OsString;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Reads the configuration, probes the host, decides and execs (SGX) or supervises
    /// (direct mode). Returns the exit status: after exec only when the launch failed (after
    /// one line on stderr); in direct mode the app's.
    pub fn run(args: &[OsString]) -> i32 {
        let bytes = match std::fs::read(CONFIG_PATH) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "kiln-launcher: cannot read {CONFIG_PATH}: {e} (is this a kiln-converted image?)"
                );
                return 1;
            }
        };
        let config = match LauncherConfig::parse(&bytes, CONFIG_PATH) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("kiln-launcher: {e}");
                return 1;
            }
        };
        let host = facts::gather(&HostProbe, &config);
        let launch = match plan::decide(&config, &host, args) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("kiln-launcher: {e}");
                return e.exit_code();
            }
        };
        if let Some(missing) = launch.missing_file(|p| p.exists()) {
            eprintln!(
                "kiln-launcher: {} is missing: the image's runtime or kiln layer is incomplete",
                missing.display()
            );
            return 1;
        }
        for line in &launch.notices {
            eprintln!("{line}");
        }
        let relay = if config.log_relays {
            match log_relay::start() {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!(
                        "kiln-launcher: cannot start the log relays ({e}): the app's log files \
                         linked to /dev/stdout or /dev/stderr will not open"
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some(supervision) = launch.supervise {
            let code = supervise::run(&launch.program, &launch.args, supervision);
            if let Some(r) = relay {
                log_relay::finish(r, std::time::Duration::from_secs(2));
            }
            return code;
        }
        let err = Command::new(&launch.program)
            .arg0(&launch.program)
            .args(&launch.args)
            .exec();
        eprintln!(
            "kiln-launcher: cannot exec {}: {err}",
            launch.program.display()
        );
        127
    }
}
