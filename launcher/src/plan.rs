//! The decision: which Gramine variant to start, and the exact command line.
//!
//! Rules (each one unit-tested below):
//! 1. An SGX device decides whether SGX is used. The kernel creates `/dev/sgx_enclave` only
//!    when SGX is present and enabled, so the device is trusted over CPUID (which a VM may
//!    mask); a CPUID/device disagreement is reported on stderr and SGX1 is tried, where
//!    Gramine's loader reports the precise hardware problem.
//! 2. With the in-kernel device: EDMM when the image has an EDMM variant, CPUID reports
//!    SGX2, and the driver supports EDMM ([`EdmmDriver::Supported`]); SGX1 otherwise.
//! 3. With only the legacy `/dev/sgx/enclave`: refuse with a hint, since Gramine v1.9 opens
//!    only `/dev/sgx_enclave` (the container must map the device under that name).
//! 4. With no device: refuse with one line, unless `KILN_INSECURE_NO_SGX=1`, which runs the
//!    direct-mode PAL after a loud warning. The variable never downgrades a machine that
//!    has SGX: it is a permission to run without SGX, not a switch to turn SGX off.
//! 5. Run-time arguments: see [`crate::config`] (`allowCmdlineArgs`); refused (exit 2) when
//!    the image was converted without `allowCmdlineArgs`, because the measured
//!    `loader.argv` would silently replace them.
//! 6. SGX1 chosen and the configuration says its enclave uses EXINFO (`sgx1Exinfo`): refuse
//!    when CPUID reports SGX but no EXINFO (such an enclave cannot be initialised there);
//!    when CPUID reports no SGX at all (a VM masking it, rule 1) it cannot be checked, which
//!    is noted and SGX1 tried.
//! 7. An SGX enclave with `attestation`: refuse when the AESM socket is missing, naming the
//!    mount, since Gramine's loader contacts the quoting enclave before the app starts.
//! 8. Direct mode is supervised, not exec'd ([`Launch::supervise`]): signals forwarded,
//!    children reaped, the enclave's limits rehearsed as `KILN_REHEARSAL` says (refused,
//!    exit 2, when it holds anything but `warn`, `strict`, `off` or nothing). SGX modes keep
//!    exec'ing the loader (same PID: signals reach Gramine, which passes SIGTERM to the app
//!    with `sys.enable_sigterm_injection = true`).

use crate::config::{LauncherConfig, SgxLoaderStart};
use crate::facts::{
    EdmmDriver, HostFacts, SgxDevice, AESM_SOCKET, INSECURE_ENV, LEGACY_SGX_ENCLAVE_DEVICE,
    REHEARSAL_ENV, SGX_ENCLAVE_DEVICE,
};
use crate::rehearsal::{RehearsalMode, Supervision};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Which Gramine variant runs the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// SGX2 with EDMM (`sgx.edmm_enable = true`; measured as mrenclave2).
    Edmm,
    /// SGX1 (measured as mrenclave).
    Sgx1,
    /// No SGX at all: Gramine's direct-mode PAL. Insecure; only on explicit request.
    InsecureDirect,
}

/// The process to exec, and what to say before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The chosen variant.
    pub mode: Mode,
    /// The file to exec; also passed as argv\[0\].
    pub program: PathBuf,
    /// argv\[1..\].
    pub args: Vec<OsString>,
    /// Lines to print on stderr before exec (each already prefixed with `kiln-launcher: `).
    pub notices: Vec<String>,
    /// Files that must exist for this launch to make sense (checked before exec so a broken
    /// image fails with a clear line rather than a loader error).
    pub required_files: Vec<PathBuf>,
    /// `Some` (direct mode only): spawn `program` as a child and supervise it
    /// ([`crate::supervise`]) instead of exec'ing it.
    pub supervise: Option<Supervision>,
}

impl Launch {
    /// The first required file that `exists` says is absent.
    pub fn missing_file(&self, exists: impl Fn(&Path) -> bool) -> Option<&Path> {
        self.required_files
            .iter()
            .map(PathBuf::as_path)
            .find(|p| !exists(p))
    }
}

/// Why the launcher will not start the app. `Display` is the single stderr line (without
/// the `kiln-launcher: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// No SGX device, and the insecure mode was not requested.
    #[error("no SGX device ({SGX_ENCLAVE_DEVICE}, {LEGACY_SGX_ENCLAVE_DEVICE}): this image needs an SGX machine; set {INSECURE_ENV}=1 to run without SGX protection")]
    NoSgx,
    /// Only the legacy device node exists.
    #[error("only {LEGACY_SGX_ENCLAVE_DEVICE} exists but Gramine opens {SGX_ENCLAVE_DEVICE}: map the device under that name (e.g. docker run --device {LEGACY_SGX_ENCLAVE_DEVICE}:{SGX_ENCLAVE_DEVICE})")]
    LegacyDeviceOnly,
    /// Run-time arguments given to an image converted without `allowCmdlineArgs`.
    #[error("this image takes no run-time arguments (converted without allowCmdlineArgs; its arguments are measured into the enclave), got {count}: {first:?}...")]
    ArgsRefused {
        /// How many arguments were given.
        count: usize,
        /// The first one (lossy UTF-8).
        first: String,
    },
    /// The SGX1 enclave needs EXINFO, which the CPU does not report.
    #[error("the SGX1 enclave of this image was built with sgx.use_exinfo = true (MISCSELECT.EXINFO, part of its signed identity), but this CPU does not report EXINFO (CPUID.(EAX=0x12,ECX=0):EBX[0]), so the enclave cannot start here; SGX1 was chosen because {why}; run it on a CPU with EXINFO, or on an SGX2 host whose driver has EDMM (Linux >= 6.0)")]
    NoExinfo {
        /// Why SGX1 and not EDMM was chosen.
        why: String,
    },
    /// The enclave attests, and AESM's socket is not in the container.
    #[error("this image's enclave uses DCAP remote attestation, but {AESM_SOCKET} is missing: run the container with -v /var/run/aesmd:/var/run/aesmd; the host needs AESM (aesmd) with the DCAP quote provider (libsgx-dcap-ql) and a PCCS for its certificates")]
    NoAesm,
    /// `KILN_REHEARSAL` holds a value the launcher does not know.
    #[error("{REHEARSAL_ENV}={value:?} is not understood: use warn (the default), strict or off")]
    BadRehearsal {
        /// The value found.
        value: String,
    },
}

impl LaunchError {
    /// The process exit status for this error: 2 for a usage error, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::ArgsRefused { .. } | LaunchError::BadRehearsal { .. } => 2,
            LaunchError::NoSgx
            | LaunchError::LegacyDeviceOnly
            | LaunchError::NoExinfo { .. }
            | LaunchError::NoAesm => 1,
        }
    }
}

/// The multi-line warning printed before running without SGX.
pub const INSECURE_WARNING: &[&str] = &[
    "kiln-launcher: ****************************************************************",
    "kiln-launcher: WARNING: RUNNING WITHOUT SGX (KILN_INSECURE_NO_SGX=1, no SGX device).",
    "kiln-launcher: The app runs under Gramine's direct-mode PAL: no enclave, no memory",
    "kiln-launcher: encryption, no attestation, no sealing. The host can read and change",
    "kiln-launcher: everything the app holds. Trusted-file hashes are still checked.",
    "kiln-launcher: Do not give this instance any secret.",
    "kiln-launcher: ****************************************************************",
];

/// Decides what to exec from the configuration, the host facts and the launcher's own
/// run-time arguments (argv\[1..\]).
pub fn decide(
    config: &LauncherConfig,
    facts: &HostFacts,
    runtime_args: &[OsString],
) -> Result<Launch, LaunchError> {
    let app_args = app_args(config, runtime_args)?;
    let rt = &config.runtime_dir;
    match &facts.device {
        SgxDevice::Missing if facts.insecure_no_sgx => {
            let mode = RehearsalMode::from_env(facts.rehearsal_env.as_deref())
                .map_err(|value| LaunchError::BadRehearsal { value })?;
            let supervision = Supervision {
                limits: config.enclave,
                mode,
            };
            let mut notices: Vec<String> =
                INSECURE_WARNING.iter().map(|s| (*s).to_owned()).collect();
            notices.push(supervision.describe());
            let pal = rt.join("direct/libpal.so");
            let mut args: Vec<OsString> = vec![
                pal.clone().into(),
                "init".into(),
                config.direct_app.clone().into(),
            ];
            args.extend(app_args);
            Ok(Launch {
                mode: Mode::InsecureDirect,
                required_files: vec![pal.clone(), suffixed(&config.direct_app, ".manifest")],
                program: pal,
                args,
                notices,
                supervise: Some(supervision),
            })
        }
        SgxDevice::Missing => Err(LaunchError::NoSgx),
        SgxDevice::LegacyOnly(_) => Err(LaunchError::LegacyDeviceOnly),
        SgxDevice::InKernel(device) => {
            let mut notices = Vec::new();
            if !facts.cpu.sgx {
                notices.push(format!(
                    "kiln-launcher: note: CPUID reports no SGX but {} exists; trying SGX1",
                    device.display()
                ));
            }
            let (mode, app, why) = choose_variant(config, facts);
            if mode == Mode::Sgx1 && config.sgx1_exinfo {
                if !facts.cpu.sgx {
                    notices.push(
                        "kiln-launcher: note: the SGX1 enclave needs EXINFO, which cannot be \
                         checked while CPUID reports no SGX"
                            .to_owned(),
                    );
                } else if !facts.cpu.exinfo {
                    return Err(LaunchError::NoExinfo { why });
                }
            }
            if config.attestation && facts.aesm_socket != Some(true) {
                return Err(LaunchError::NoAesm);
            }
            notices.push(format!(
                "kiln-launcher: starting the {} enclave {} ({why})",
                if mode == Mode::Edmm {
                    "SGX2/EDMM"
                } else {
                    "SGX1"
                },
                app.display()
            ));
            let loader = rt.join("sgx/loader");
            let libpal = rt.join("sgx/libpal.so");
            let (program, mut args, mut required_files) = match config.sgx_loader_start {
                SgxLoaderStart::BundledLdso => {
                    let ldso = rt.join("lib/ld-linux-x86-64.so.2");
                    let args: Vec<OsString> = vec![
                        "--library-path".into(),
                        rt.join("lib").into(),
                        loader.clone().into(),
                    ];
                    (ldso.clone(), args, vec![ldso, loader])
                }
                SgxLoaderStart::Exec => (loader.clone(), Vec::new(), vec![loader]),
            };
            args.extend([libpal.clone().into(), "init".into(), app.into()]);
            args.extend(app_args);
            required_files.extend([
                libpal,
                suffixed(app, ".manifest.sgx"),
                suffixed(app, ".sig"),
            ]);
            // With log relays the launcher stays the container's init and supervises the
            // loader, so that the relay can copy the app's last lines before the container
            // ends (it ends when its PID 1 exits); signals are forwarded to the loader.
            let supervise = config.log_relays.then_some(Supervision {
                limits: None,
                mode: RehearsalMode::Off,
            });
            Ok(Launch {
                mode,
                program,
                args,
                notices,
                required_files,
                supervise,
            })
        }
    }
}

/// Picks EDMM or SGX1 on a host with the in-kernel device, with the reason in words.
fn choose_variant<'a>(config: &'a LauncherConfig, facts: &HostFacts) -> (Mode, &'a Path, String) {
    let sgx1 = |why: String| (Mode::Sgx1, config.sgx1_app.as_path(), why);
    let Some(edmm_app) = &config.edmm_app else {
        return sgx1("the image has no EDMM variant".into());
    };
    if !(facts.cpu.sgx && facts.cpu.sgx2) {
        return sgx1("the CPU has no SGX2".into());
    }
    match &facts.edmm_driver {
        Some(EdmmDriver::Supported) => (
            Mode::Edmm,
            edmm_app.as_path(),
            "CPU and driver support EDMM".into(),
        ),
        Some(EdmmDriver::Unsupported) => {
            sgx1("the SGX driver has no EDMM (in-kernel since Linux 6.0)".into())
        }
        Some(EdmmDriver::Unknown(reason)) => sgx1(format!("EDMM support unknown: {reason}")),
        None => sgx1("the driver's EDMM support was not probed".into()),
    }
}

/// The arguments after Gramine's application path.
fn app_args(
    config: &LauncherConfig,
    runtime_args: &[OsString],
) -> Result<Vec<OsString>, LaunchError> {
    if !config.allow_cmdline_args {
        return match runtime_args.first() {
            None => Ok(Vec::new()),
            Some(first) => Err(LaunchError::ArgsRefused {
                count: runtime_args.len(),
                first: first.to_string_lossy().into_owned(),
            }),
        };
    }
    let tail: Vec<OsString> = if runtime_args.is_empty() {
        config.default_args.iter().map(OsString::from).collect()
    } else {
        runtime_args.to_vec()
    };
    Ok(config
        .fixed_args
        .iter()
        .map(OsString::from)
        .chain(tail)
        .collect())
}

/// `path` with `suffix` appended to its last component (Gramine's `P.manifest.sgx`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::CpuFacts;

    fn config(edmm: bool, allow: bool) -> LauncherConfig {
        LauncherConfig {
            version: 1,
            runtime_dir: "/opt/kiln/runtime".into(),
            sgx_loader_start: SgxLoaderStart::BundledLdso,
            sgx1_app: "/opt/kiln/sgx1/app".into(),
            edmm_app: edmm.then(|| "/opt/kiln/edmm/app".into()),
            direct_app: "/opt/kiln/direct/app".into(),
            allow_cmdline_args: allow,
            fixed_args: Vec::new(),
            default_args: Vec::new(),
            enclave: None,
            attestation: false,
            sgx1_exinfo: false,
            log_relays: false,
        }
    }

    const SGX2: CpuFacts = CpuFacts {
        sgx: true,
        sgx1: true,
        sgx2: true,
        exinfo: true,
    };
    const SGX1: CpuFacts = CpuFacts {
        sgx: true,
        sgx1: true,
        sgx2: false,
        exinfo: false,
    };
    const SGX1_EXINFO: CpuFacts = CpuFacts {
        exinfo: true,
        ..SGX1
    };
    const NONE: CpuFacts = CpuFacts {
        sgx: false,
        sgx1: false,
        sgx2: false,
        exinfo: false,
    };

    fn facts(cpu: CpuFacts, device: SgxDevice, edmm: Option<EdmmDriver>) -> HostFacts {
        HostFacts {
            cpu,
            device,
            edmm_driver: edmm,
            insecure_no_sgx: false,
            aesm_socket: None,
            rehearsal_env: None,
        }
    }

    fn dev() -> SgxDevice {
        SgxDevice::InKernel(SGX_ENCLAVE_DEVICE.into())
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn sgx_argv(app: &str, extra: &[&str]) -> Vec<OsString> {
        let mut v = os(&[
            "--library-path",
            "/opt/kiln/runtime/lib",
            "/opt/kiln/runtime/sgx/loader",
            "/opt/kiln/runtime/sgx/libpal.so",
            "init",
            app,
        ]);
        v.extend(os(extra));
        v
    }

    #[test]
    fn edmm_when_cpu_and_driver_support_it() {
        let f = facts(SGX2, dev(), Some(EdmmDriver::Supported));
        let l = decide(&config(true, false), &f, &[]).unwrap();
        assert_eq!(l.mode, Mode::Edmm);
        assert_eq!(
            l.program,
            PathBuf::from("/opt/kiln/runtime/lib/ld-linux-x86-64.so.2")
        );
        assert_eq!(l.args, sgx_argv("/opt/kiln/edmm/app", &[]));
        assert_eq!(
            l.required_files,
            [
                "/opt/kiln/runtime/lib/ld-linux-x86-64.so.2",
                "/opt/kiln/runtime/sgx/loader",
                "/opt/kiln/runtime/sgx/libpal.so",
                "/opt/kiln/edmm/app.manifest.sgx",
                "/opt/kiln/edmm/app.sig",
            ]
            .map(PathBuf::from)
        );
        assert_eq!(l.notices.len(), 1);
        assert!(l.notices[0].contains("SGX2/EDMM"), "{:?}", l.notices);
    }

    #[test]
    fn sgx1_in_every_other_sgx_case() {
        let cases = [
            (
                config(true, false),
                facts(SGX1, dev(), None),
                "the CPU has no SGX2",
            ),
            (
                config(true, false),
                facts(SGX2, dev(), Some(EdmmDriver::Unsupported)),
                "no EDMM",
            ),
            (
                config(true, false),
                facts(SGX2, dev(), Some(EdmmDriver::Unknown("EPERM".into()))),
                "unknown: EPERM",
            ),
            (config(true, false), facts(SGX2, dev(), None), "not probed"),
            (
                config(false, false),
                facts(SGX2, dev(), Some(EdmmDriver::Supported)),
                "no EDMM variant",
            ),
        ];
        for (c, f, why) in cases {
            let l = decide(&c, &f, &[]).unwrap();
            assert_eq!(l.mode, Mode::Sgx1, "{f:?}");
            assert_eq!(l.args, sgx_argv("/opt/kiln/sgx1/app", &[]));
            assert_eq!(l.notices.len(), 1);
            assert!(l.notices[0].contains(why), "{:?} vs {why}", l.notices);
            assert!(l.notices[0].contains("SGX1 enclave /opt/kiln/sgx1/app"));
        }
    }

    #[test]
    fn device_without_cpuid_sgx_tries_sgx1_with_note() {
        let f = facts(NONE, dev(), None);
        let l = decide(&config(true, false), &f, &[]).unwrap();
        assert_eq!(l.mode, Mode::Sgx1);
        assert_eq!(l.notices.len(), 2);
        assert!(l.notices[0].contains("CPUID reports no SGX"));
    }

    #[test]
    fn exec_loader_start_skips_ldso() {
        let mut c = config(false, false);
        c.sgx_loader_start = SgxLoaderStart::Exec;
        let l = decide(&c, &facts(SGX1, dev(), None), &[]).unwrap();
        assert_eq!(l.program, PathBuf::from("/opt/kiln/runtime/sgx/loader"));
        assert_eq!(
            l.args,
            os(&[
                "/opt/kiln/runtime/sgx/libpal.so",
                "init",
                "/opt/kiln/sgx1/app"
            ])
        );
        assert_eq!(l.required_files.len(), 4);
    }

    #[test]
    fn no_device_refuses_with_one_line() {
        for cpu in [NONE, SGX2] {
            let err = decide(
                &config(true, false),
                &facts(cpu, SgxDevice::Missing, None),
                &[],
            )
            .unwrap_err();
            assert_eq!(err, LaunchError::NoSgx);
            assert_eq!(err.exit_code(), 1);
            let line = err.to_string();
            assert!(!line.contains('\n'));
            assert_eq!(
                line,
                "no SGX device (/dev/sgx_enclave, /dev/sgx/enclave): this image needs an SGX \
                 machine; set KILN_INSECURE_NO_SGX=1 to run without SGX protection"
            );
        }
    }

    #[test]
    fn legacy_device_only_refuses_even_when_insecure() {
        let mut f = facts(
            SGX2,
            SgxDevice::LegacyOnly(LEGACY_SGX_ENCLAVE_DEVICE.into()),
            None,
        );
        f.insecure_no_sgx = true;
        let err = decide(&config(true, false), &f, &[]).unwrap_err();
        assert_eq!(err, LaunchError::LegacyDeviceOnly);
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn insecure_runs_direct_pal_with_warning() {
        let mut f = facts(NONE, SgxDevice::Missing, None);
        f.insecure_no_sgx = true;
        let l = decide(&config(true, false), &f, &[]).unwrap();
        assert_eq!(l.mode, Mode::InsecureDirect);
        assert_eq!(
            l.program,
            PathBuf::from("/opt/kiln/runtime/direct/libpal.so")
        );
        assert_eq!(
            l.args,
            os(&[
                "/opt/kiln/runtime/direct/libpal.so",
                "init",
                "/opt/kiln/direct/app"
            ])
        );
        assert_eq!(
            l.required_files,
            [
                "/opt/kiln/runtime/direct/libpal.so",
                "/opt/kiln/direct/app.manifest"
            ]
            .map(PathBuf::from)
        );
        assert!(l.notices.len() >= 3);
        assert!(l.notices.iter().all(|n| n.starts_with("kiln-launcher: ")));
        assert!(l.notices.iter().any(|n| n.contains("WITHOUT SGX")));
        // Supervised, not exec'd; without limits in the config nothing is watched.
        assert_eq!(
            l.supervise,
            Some(Supervision {
                limits: None,
                mode: RehearsalMode::Warn
            })
        );
        assert!(l
            .notices
            .last()
            .unwrap()
            .contains("names no enclave limits"));
    }

    #[test]
    fn insecure_never_downgrades_an_sgx_machine() {
        let mut f = facts(SGX1, dev(), None);
        f.insecure_no_sgx = true;
        let l = decide(&config(false, false), &f, &[]).unwrap();
        assert_eq!(l.mode, Mode::Sgx1);
    }

    #[test]
    fn args_refused_without_allow_cmdline_args() {
        let f = facts(SGX1, dev(), None);
        let err = decide(&config(false, false), &f, &os(&["--port", "80"])).unwrap_err();
        assert_eq!(
            err,
            LaunchError::ArgsRefused {
                count: 2,
                first: "--port".into()
            }
        );
        assert_eq!(err.exit_code(), 2);
        assert!(!err.to_string().contains('\n'));
        // Refused before anything else, so the user learns it on any machine.
        let err = decide(
            &config(false, false),
            &facts(NONE, SgxDevice::Missing, None),
            &os(&["x"]),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn args_passed_with_allow_cmdline_args() {
        let mut c = config(false, true);
        c.fixed_args = vec!["-c".into()];
        c.default_args = vec!["echo default".into()];
        let f = facts(SGX1, dev(), None);
        let l = decide(&c, &f, &os(&["echo run", "x"])).unwrap();
        assert_eq!(
            l.args,
            sgx_argv("/opt/kiln/sgx1/app", &["-c", "echo run", "x"])
        );
        let l = decide(&c, &f, &[]).unwrap();
        assert_eq!(
            l.args,
            sgx_argv("/opt/kiln/sgx1/app", &["-c", "echo default"])
        );
        // Direct mode gets the same arguments.
        let mut f = facts(NONE, SgxDevice::Missing, None);
        f.insecure_no_sgx = true;
        let l = decide(&c, &f, &os(&["y"])).unwrap();
        assert_eq!(
            l.args,
            os(&[
                "/opt/kiln/runtime/direct/libpal.so",
                "init",
                "/opt/kiln/direct/app",
                "-c",
                "y"
            ])
        );
    }

    #[test]
    fn non_utf8_args_pass_through() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![0x66, 0xff, 0x6f]);
        let l = decide(
            &config(false, true),
            &facts(SGX1, dev(), None),
            std::slice::from_ref(&odd),
        )
        .unwrap();
        assert_eq!(l.args.last(), Some(&odd));
    }

    #[test]
    fn missing_file_reports_first_absent() {
        let l = decide(&config(false, false), &facts(SGX1, dev(), None), &[]).unwrap();
        assert_eq!(l.missing_file(|_| true), None);
        assert_eq!(
            l.missing_file(|p| !p.to_string_lossy().ends_with(".sig")),
            Some(Path::new("/opt/kiln/sgx1/app.sig"))
        );
    }

    fn insecure() -> HostFacts {
        let mut f = facts(NONE, SgxDevice::Missing, None);
        f.insecure_no_sgx = true;
        f
    }

    #[test]
    fn direct_mode_rehearses_the_configured_limits() {
        let c = config(true, false).with_enclave_limits(4, 256 << 20);
        let mut f = insecure();
        for (env, mode) in [
            (None, RehearsalMode::Warn),
            (Some("warn"), RehearsalMode::Warn),
            (Some("strict"), RehearsalMode::Strict),
            (Some("off"), RehearsalMode::Off),
        ] {
            f.rehearsal_env = env.map(str::to_owned);
            let l = decide(&c, &f, &[]).unwrap();
            let sup = l.supervise.expect("direct mode is supervised");
            assert_eq!(sup.mode, mode, "{env:?}");
            assert_eq!(sup.limits, c.enclave);
            assert_eq!(l.notices.last(), Some(&sup.describe()));
        }
    }

    #[test]
    fn unknown_rehearsal_value_refused_in_direct_mode_only() {
        let mut f = insecure();
        f.rehearsal_env = Some("strcit".into());
        let err = decide(&config(true, false), &f, &[]).unwrap_err();
        assert_eq!(
            err,
            LaunchError::BadRehearsal {
                value: "strcit".into()
            }
        );
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("KILN_REHEARSAL=\"strcit\""),
            "{err}"
        );
        // Under SGX the variable means nothing and is not checked.
        let mut f = facts(SGX1, dev(), None);
        f.rehearsal_env = Some("strcit".into());
        let l = decide(&config(true, false), &f, &[]).unwrap();
        assert_eq!((l.mode, l.supervise), (Mode::Sgx1, None));
    }

    #[test]
    fn sgx_modes_exec_without_supervision() {
        let f = facts(SGX2, dev(), Some(EdmmDriver::Supported));
        let c = config(true, false).with_enclave_limits(4, 256 << 20);
        assert_eq!(decide(&c, &f, &[]).unwrap().supervise, None);
    }

    #[test]
    fn log_relays_keep_the_launcher_as_init_under_sgx() {
        let f = facts(SGX2, dev(), Some(EdmmDriver::Supported));
        let c = config(true, false).with_log_relays(true);
        let l = decide(&c, &f, &[]).unwrap();
        assert_eq!(l.mode, Mode::Edmm);
        assert_eq!(
            l.supervise,
            Some(Supervision {
                limits: None,
                mode: RehearsalMode::Off
            })
        );
    }

    #[test]
    fn sgx1_exinfo_needs_cpu_exinfo() {
        let c = config(true, false).with_sgx1_exinfo(true);
        // SGX1 CPU without EXINFO: refused, with the reason SGX1 was chosen.
        let err = decide(&c, &facts(SGX1, dev(), None), &[]).unwrap_err();
        assert_eq!(
            err,
            LaunchError::NoExinfo {
                why: "the CPU has no SGX2".into()
            }
        );
        assert_eq!(err.exit_code(), 1);
        let line = err.to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("sgx.use_exinfo = true"), "{line}");
        assert!(line.contains("CPUID.(EAX=0x12,ECX=0):EBX[0]"), "{line}");
        // SGX2 CPU but a driver without EDMM: SGX1 again, also refused without EXINFO.
        let no_exinfo_sgx2 = CpuFacts {
            exinfo: false,
            ..SGX2
        };
        let err = decide(
            &c,
            &facts(no_exinfo_sgx2, dev(), Some(EdmmDriver::Unsupported)),
            &[],
        )
        .unwrap_err();
        assert!(matches!(&err, LaunchError::NoExinfo { why } if why.contains("no EDMM")));
        // With EXINFO: SGX1 runs.
        let l = decide(&c, &facts(SGX1_EXINFO, dev(), None), &[]).unwrap();
        assert_eq!(l.mode, Mode::Sgx1);
        // EDMM chosen: the SGX1 requirement does not apply.
        let l = decide(
            &c,
            &facts(no_exinfo_sgx2, dev(), Some(EdmmDriver::Supported)),
            &[],
        )
        .unwrap();
        assert_eq!(l.mode, Mode::Edmm);
        // Without sgx1Exinfo nothing is required.
        let l = decide(&config(true, false), &facts(SGX1, dev(), None), &[]).unwrap();
        assert_eq!(l.mode, Mode::Sgx1);
        // CPUID masked (device present, no SGX in CPUID): cannot check, noted, SGX1 tried.
        let l = decide(&c, &facts(NONE, dev(), None), &[]).unwrap();
        assert_eq!(l.mode, Mode::Sgx1);
        assert!(
            l.notices
                .iter()
                .any(|n| n.contains("EXINFO, which cannot be checked")),
            "{:?}",
            l.notices
        );
    }

    #[test]
    fn attestation_needs_the_aesm_socket() {
        let c = config(true, false).with_attestation(true);
        for socket in [Some(false), None] {
            let mut f = facts(SGX2, dev(), Some(EdmmDriver::Supported));
            f.aesm_socket = socket;
            let err = decide(&c, &f, &[]).unwrap_err();
            assert_eq!(err, LaunchError::NoAesm);
            assert_eq!(err.exit_code(), 1);
            let line = err.to_string();
            assert!(!line.contains('\n'));
            assert!(
                line.contains("/var/run/aesmd/aesm.socket is missing"),
                "{line}"
            );
            assert!(line.contains("-v /var/run/aesmd:/var/run/aesmd"), "{line}");
            assert!(
                line.contains("DCAP quote provider") && line.contains("PCCS"),
                "{line}"
            );
        }
        let mut f = facts(SGX1, dev(), None);
        f.aesm_socket = Some(true);
        assert_eq!(decide(&c, &f, &[]).unwrap().mode, Mode::Sgx1);
        // Direct mode has no attestation to check.
        let l = decide(&c, &insecure(), &[]).unwrap();
        assert_eq!(l.mode, Mode::InsecureDirect);
        // Without attestation the socket does not matter.
        let mut f = facts(SGX1, dev(), None);
        f.aesm_socket = Some(false);
        assert!(decide(&config(true, false), &f, &[]).is_ok());
    }
}
