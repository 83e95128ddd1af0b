//! The `sgx.*` settings of a final Gramine `.manifest.sgx` that decide the layout and
//! the SIGSTRUCT, with Gramine v1.9's defaults.

/// One of Gramine's `sgx.cpu_features.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuFeature {
    /// `"unspecified"`: neither value nor mask bits are touched.
    #[default]
    Unspecified,
    /// `"required"`: the bits are set in the XFRM value and in its mask.
    Required,
    /// `"disabled"`: the bits are cleared in the value and set in the mask.
    Disabled,
}

/// Gramine's `sgx.cpu_features` table, with v1.9's defaults (avx, avx512 and amx
/// unspecified; mpx and pkru disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFeatures {
    /// `sgx.cpu_features.avx` (XFRM bits 0x4).
    pub avx: CpuFeature,
    /// `sgx.cpu_features.avx512` (XFRM bits 0xE4).
    pub avx512: CpuFeature,
    /// `sgx.cpu_features.amx` (XFRM bits 0x60000).
    pub amx: CpuFeature,
    /// `sgx.cpu_features.mpx` (XFRM bits 0x18); `unspecified` is not allowed.
    pub mpx: CpuFeature,
    /// `sgx.cpu_features.pkru` (XFRM bits 0x200); `unspecified` is not allowed.
    pub pkru: CpuFeature,
}

impl Default for CpuFeatures {
    fn default() -> Self {
        Self {
            avx: CpuFeature::Unspecified,
            avx512: CpuFeature::Unspecified,
            amx: CpuFeature::Unspecified,
            mpx: CpuFeature::Disabled,
            pkru: CpuFeature::Disabled,
        }
    }
}

/// The settings of a final manifest that the enclave layout and the SIGSTRUCT depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxManifestParams {
    /// `sgx.enclave_size` in bytes (default 256M, or 1024G with EDMM). A power of two.
    pub enclave_size: u64,
    /// `sgx.max_threads` (default 4): the number of TCS slots. At least 1.
    pub max_threads: u32,
    /// `sgx.debug` (default false).
    pub debug: bool,
    /// `sgx.edmm_enable` (default false).
    pub edmm_enable: bool,
    /// `sgx.use_exinfo` (default false).
    pub use_exinfo: bool,
    /// `sgx.isvprodid` (default 0).
    pub isvprodid: u16,
    /// `sgx.isvsvn` (default 0).
    pub isvsvn: u16,
    /// `sgx.cpu_features.*`.
    pub cpu_features: CpuFeatures,
}
