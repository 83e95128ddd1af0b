//! The real host probe: CPUID (SGX1, SGX2, EXINFO), the device and socket nodes, the driver's EDMM ioctl, the environment.
//!
//! The crate's only `unsafe` code lives here, in two tiny functions: `cpuid` and
//! `remove_pages_ioctl`.

use crate::facts::{CpuFacts, EdmmDriver, Probe};
use std::path::Path;

/// Probes the machine the launcher runs on.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostProbe;

impl Probe for HostProbe {
    fn cpu(&self) -> CpuFacts {
        cpu_facts()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn edmm_driver(&self, device: &Path) -> EdmmDriver {
        edmm_driver(device)
    }

    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Reads CPUID leaf `leaf`, sub-leaf `sub` as (eax, ebx, ecx, edx).
#[cfg(target_arch = "x86_64")]
#[allow(unused_unsafe)] // `__cpuid_count` is a safe fn since Rust 1.94; unsafe before.
fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    // SAFETY: the CPUID instruction exists on every x86_64 CPU and only reads registers.
    let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, sub) };
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// SGX bits from CPUID (all false off x86_64).
pub fn cpu_facts() -> CpuFacts {
    #[cfg(target_arch = "x86_64")]
    {
        let (max_leaf, ..) = cpuid(0, 0);
        let sgx = max_leaf >= 7 && (cpuid(7, 0).1 >> 2) & 1 == 1;
        let (eax12, ebx12) = if sgx && max_leaf >= 0x12 {
            let (a, b, ..) = cpuid(0x12, 0);
            (a, b)
        } else {
            (0, 0)
        };
        CpuFacts {
            sgx,
            sgx1: eax12 & 1 == 1,
            sgx2: (eax12 >> 1) & 1 == 1,
            // EBX of leaf 0x12 sub-leaf 0 is MISCSELECT's supported bits; bit 0 is EXINFO.
            exinfo: ebx12 & 1 == 1,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    CpuFacts::default()
}

/// `SGX_IOC_ENCLAVE_REMOVE_PAGES` = `_IOWR(0xA4, 0x07, struct sgx_enclave_remove_pages)`,
/// the struct being three u64 (offset, length, count): 24 bytes.
const SGX_IOC_ENCLAVE_REMOVE_PAGES: u64 = (3 << 30) | (24 << 16) | (0xA4 << 8) | 0x07;

/// Calls `SGX_IOC_ENCLAVE_REMOVE_PAGES` with offset = length = count = 0 on `fd`; returns
/// the errno on failure, `None` on success.
fn remove_pages_ioctl(fd: std::os::fd::BorrowedFd<'_>) -> Option<std::io::Error> {
    use std::os::fd::AsRawFd;
    let mut params = [0u64; 3];
    // SAFETY: `fd` is a live descriptor (borrowed), and `params` is a writable 24-byte buffer
    // matching the ioctl's struct; the kernel reads and writes only those 24 bytes.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            SGX_IOC_ENCLAVE_REMOVE_PAGES as _,
            params.as_mut_ptr(),
        )
    };
    (ret != 0).then(std::io::Error::last_os_error)
}

/// Asks the driver behind `device` whether it implements EDMM, like Gramine's
/// `edmm_supported_by_driver`: on a fresh enclave fd, REMOVE_PAGES fails with `EINVAL`
/// when the ioctl exists and with `ENOTTY` when it does not.
pub fn edmm_driver(device: &Path) -> EdmmDriver {
    use std::os::fd::AsFd;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
    {
        Ok(f) => f,
        Err(e) => return EdmmDriver::Unknown(format!("cannot open {}: {e}", device.display())),
    };
    match remove_pages_ioctl(file.as_fd()) {
        Some(e) if e.raw_os_error() == Some(libc::EINVAL) => EdmmDriver::Supported,
        Some(e) if e.raw_os_error() == Some(libc::ENOTTY) => EdmmDriver::Unsupported,
        Some(e) => EdmmDriver::Unknown(format!("{}: REMOVE_PAGES ioctl: {e}", device.display())),
        None => EdmmDriver::Unknown(format!(
            "{}: REMOVE_PAGES ioctl unexpectedly succeeded",
            device.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_number_matches_linux_header() {
        // _IOWR('\xa4', 0x07, 24-byte struct) from arch/x86/include/uapi/asm/sgx.h.
        assert_eq!(SGX_IOC_ENCLAVE_REMOVE_PAGES, 0xC018_A407);
    }

    #[test]
    fn cpu_facts_are_consistent() {
        let c = cpu_facts();
        assert!(c.sgx || (!c.sgx1 && !c.sgx2 && !c.exinfo), "{c:?}");
    }

    #[test]
    fn regular_file_has_no_edmm_ioctl() {
        let dir = std::env::temp_dir().join(format!("kiln-launcher-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("fake_sgx_enclave");
        std::fs::write(&f, b"").unwrap();
        assert_eq!(edmm_driver(&f), EdmmDriver::Unsupported);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unopenable_device_is_unknown() {
        let r = edmm_driver(Path::new("/nonexistent/kiln/sgx_enclave"));
        assert!(
            matches!(&r, EdmmDriver::Unknown(m) if m.contains("cannot open")),
            "{r:?}"
        );
    }
}
