//! What the launcher needs to know about the host, and the probe that finds it out.
//!
//! The decision ([`crate::plan`]) is a pure function of these facts, so every branch is
//! unit-tested with made-up facts; only [`crate::probe::HostProbe`] touches the machine.
//! There is no way to override a fact at run time: a test build and a production build
//! probe the same way.

use crate::config::LauncherConfig;
use std::path::{Path, PathBuf};

/// The in-kernel SGX driver's enclave device (Linux >= 5.11). Gramine v1.9 opens exactly
/// this path (`open_sgx_driver` in `pal/src/host/linux-sgx/host_framework.c`).
pub const SGX_ENCLAVE_DEVICE: &str = "/dev/sgx_enclave";

/// The enclave device of Intel's old out-of-tree DCAP driver (also a udev symlink on some
/// hosts). Gramine v1.9 does not open it.
pub const LEGACY_SGX_ENCLAVE_DEVICE: &str = "/dev/sgx/enclave";

/// SGX support reported by CPUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFacts {
    /// CPUID.(EAX=7,ECX=0):EBX bit 2: the CPU has SGX.
    pub sgx: bool,
    /// CPUID.(EAX=0x12,ECX=0):EAX bit 0: SGX1 leaf functions.
    pub sgx1: bool,
    /// CPUID.(EAX=0x12,ECX=0):EAX bit 1: SGX2 leaf functions (needed for EDMM).
    pub sgx2: bool,
    /// CPUID.(EAX=0x12,ECX=0):EBX bit 0: MISCSELECT.EXINFO can be set, i.e. an enclave
    /// built with `sgx.use_exinfo = true` can be initialised (the CPU reports the faulting
    /// address of #PF/#GP in the SSA).
    pub exinfo: bool,
}

/// Which SGX enclave device exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SgxDevice {
    /// [`SGX_ENCLAVE_DEVICE`] exists (whatever else does).
    InKernel(PathBuf),
    /// Only [`LEGACY_SGX_ENCLAVE_DEVICE`] exists.
    LegacyOnly(PathBuf),
    /// Neither exists.
    Missing,
}

/// Whether the SGX driver supports EDMM.
///
/// Checked the way Gramine's loader checks it (`edmm_supported_by_driver`): the ioctl
/// `SGX_IOC_ENCLAVE_REMOVE_PAGES` with length 0 on a fresh device fd fails with `EINVAL`
/// when the driver knows it (in-kernel driver of Linux >= 6.0, or a backport) and with
/// `ENOTTY` when it does not. The kernel version (uname) is not used: distributions
/// backport EDMM (e.g. RHEL 9's 5.14), so the ioctl is the exact test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdmmDriver {
    /// The driver implements the EDMM ioctls.
    Supported,
    /// The driver lacks them.
    Unsupported,
    /// The check itself failed (device not openable, unexpected errno): the reason.
    Unknown(String),
}

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// CPUID's view of SGX.
    pub cpu: CpuFacts,
    /// Which enclave device exists.
    pub device: SgxDevice,
    /// EDMM support of the driver; `None` when not probed (no SGX2 CPU, no in-kernel
    /// device, or the image has no EDMM variant).
    pub edmm_driver: Option<EdmmDriver>,
    /// `KILN_INSECURE_NO_SGX=1` is set.
    pub insecure_no_sgx: bool,
    /// Whether [`AESM_SOCKET`] exists; `None` when not probed (the image does not ask for
    /// attestation).
    pub aesm_socket: Option<bool>,
    /// The raw value of [`REHEARSAL_ENV`], if set (interpreted by [`crate::plan`]).
    pub rehearsal_env: Option<String>,
}

/// The name of the environment variable that allows running without SGX.
pub const INSECURE_ENV: &str = "KILN_INSECURE_NO_SGX";

/// The environment variable that sets how the direct-mode rehearsal reacts to an app that
/// exceeds the enclave's limits: unset or `warn` (say so), `strict` (say so and stop the
/// app), `off` (do not watch).
pub const REHEARSAL_ENV: &str = "KILN_REHEARSAL";

/// AESM's socket, through which Gramine's loader reaches the quoting enclave for DCAP
/// attestation (the aesmd service's default path).
pub const AESM_SOCKET: &str = "/var/run/aesmd/aesm.socket";

/// Reads the host. Implemented for real by [`crate::probe::HostProbe`] and by fakes in tests.
pub trait Probe {
    /// CPUID's SGX bits.
    fn cpu(&self) -> CpuFacts;
    /// Whether `path` exists (device node, or any file in tests).
    fn exists(&self, path: &Path) -> bool;
    /// Asks the driver behind `device` whether it supports EDMM.
    fn edmm_driver(&self, device: &Path) -> EdmmDriver;
    /// The value of an environment variable, if set and valid Unicode.
    fn env(&self, name: &str) -> Option<String>;
}

/// Gathers the facts for `config`, probing the driver for EDMM only when it can matter (the
/// image has an EDMM variant, the CPU reports SGX2, and the in-kernel device exists) and the
/// AESM socket only when the image asks for attestation.
pub fn gather(probe: &dyn Probe, config: &LauncherConfig) -> HostFacts {
    let want_edmm = config.edmm_app.is_some();
    let cpu = probe.cpu();
    let device = if probe.exists(Path::new(SGX_ENCLAVE_DEVICE)) {
        SgxDevice::InKernel(PathBuf::from(SGX_ENCLAVE_DEVICE))
    } else if probe.exists(Path::new(LEGACY_SGX_ENCLAVE_DEVICE)) {
        SgxDevice::LegacyOnly(PathBuf::from(LEGACY_SGX_ENCLAVE_DEVICE))
    } else {
        SgxDevice::Missing
    };
    let edmm_driver = match &device {
        SgxDevice::InKernel(path) if want_edmm && cpu.sgx && cpu.sgx2 => {
            Some(probe.edmm_driver(path))
        }
        _ => None,
    };
    HostFacts {
        cpu,
        device,
        edmm_driver,
        insecure_no_sgx: probe.env(INSECURE_ENV).as_deref() == Some("1"),
        aesm_socket: config
            .attestation
            .then(|| probe.exists(Path::new(AESM_SOCKET))),
        rehearsal_env: probe.env(REHEARSAL_ENV),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    /// A scripted host.
    pub(crate) struct FakeProbe {
        pub cpu: CpuFacts,
        pub files: Vec<&'static str>,
        pub edmm: EdmmDriver,
        pub insecure: Option<&'static str>,
        pub rehearsal: Option<&'static str>,
        pub edmm_probed: Cell<u32>,
    }

    impl FakeProbe {
        pub(crate) fn new(cpu: CpuFacts, files: Vec<&'static str>) -> Self {
            FakeProbe {
                cpu,
                files,
                edmm: EdmmDriver::Supported,
                insecure: None,
                rehearsal: None,
                edmm_probed: Cell::new(0),
            }
        }
    }

    impl Probe for FakeProbe {
        fn cpu(&self) -> CpuFacts {
            self.cpu
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.iter().any(|f| Path::new(f) == path)
        }
        fn edmm_driver(&self, device: &Path) -> EdmmDriver {
            assert_eq!(device, Path::new(SGX_ENCLAVE_DEVICE));
            self.edmm_probed.set(self.edmm_probed.get() + 1);
            self.edmm.clone()
        }
        fn env(&self, name: &str) -> Option<String> {
            match name {
                INSECURE_ENV => self.insecure.map(str::to_owned),
                REHEARSAL_ENV => self.rehearsal.map(str::to_owned),
                other => panic!("unexpected env lookup {other}"),
            }
        }
    }

    pub(crate) const SGX2: CpuFacts = CpuFacts {
        sgx: true,
        sgx1: true,
        sgx2: true,
        exinfo: true,
    };

    fn config(edmm: bool) -> LauncherConfig {
        LauncherConfig::standard(edmm, false, vec![], vec![])
    }

    #[test]
    fn in_kernel_device_wins_over_legacy() {
        let p = FakeProbe::new(SGX2, vec![SGX_ENCLAVE_DEVICE, LEGACY_SGX_ENCLAVE_DEVICE]);
        let f = gather(&p, &config(true));
        assert_eq!(f.device, SgxDevice::InKernel(SGX_ENCLAVE_DEVICE.into()));
        assert_eq!(f.edmm_driver, Some(EdmmDriver::Supported));
    }

    #[test]
    fn legacy_device_alone_is_reported_and_not_probed() {
        let p = FakeProbe::new(SGX2, vec![LEGACY_SGX_ENCLAVE_DEVICE]);
        let f = gather(&p, &config(true));
        assert_eq!(
            f.device,
            SgxDevice::LegacyOnly(LEGACY_SGX_ENCLAVE_DEVICE.into())
        );
        assert_eq!(f.edmm_driver, None);
        assert_eq!(p.edmm_probed.get(), 0);
    }

    #[test]
    fn driver_probed_only_when_it_matters() {
        let sgx1_cpu = CpuFacts {
            sgx2: false,
            ..SGX2
        };
        for (cpu, want, probed) in [(SGX2, true, 1), (SGX2, false, 0), (sgx1_cpu, true, 0)] {
            let p = FakeProbe::new(cpu, vec![SGX_ENCLAVE_DEVICE]);
            let f = gather(&p, &config(want));
            assert_eq!(p.edmm_probed.get(), probed, "{cpu:?} want_edmm={want}");
            assert_eq!(f.edmm_driver.is_some(), probed == 1);
        }
    }

    #[test]
    fn insecure_only_for_exactly_one() {
        for (value, on) in [
            (None, false),
            (Some("1"), true),
            (Some("0"), false),
            (Some("true"), false),
            (Some(""), false),
        ] {
            let mut p = FakeProbe::new(CpuFacts::default(), vec![]);
            p.insecure = value;
            let f = gather(&p, &config(true));
            assert_eq!(f.insecure_no_sgx, on, "{value:?}");
            assert_eq!(f.device, SgxDevice::Missing);
        }
    }

    #[test]
    fn aesm_socket_probed_only_for_attestation() {
        let p = FakeProbe::new(SGX2, vec![SGX_ENCLAVE_DEVICE, AESM_SOCKET]);
        assert_eq!(gather(&p, &config(true)).aesm_socket, None);
        let with = config(true).with_attestation(true);
        assert_eq!(gather(&p, &with).aesm_socket, Some(true));
        let p = FakeProbe::new(SGX2, vec![SGX_ENCLAVE_DEVICE]);
        assert_eq!(gather(&p, &with).aesm_socket, Some(false));
    }

    #[test]
    fn rehearsal_env_passed_raw() {
        let mut p = FakeProbe::new(CpuFacts::default(), vec![]);
        assert_eq!(gather(&p, &config(true)).rehearsal_env, None);
        p.rehearsal = Some("strict");
        assert_eq!(
            gather(&p, &config(true)).rehearsal_env.as_deref(),
            Some("strict")
        );
    }
}
