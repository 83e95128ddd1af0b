//! SGX enclave attributes (flags, XFRM, MISCSELECT): bit names and Gramine v1.9's
//! defaults for the SIGSTRUCT, computed from a manifest's `sgx.*` settings.
//!
//! Gramine (`python/graminelibos/sgx_sign.py`, `get_enclave_attributes`, and
//! `sgx_arch.h`) starts from flags MODE64BIT (+ DEBUG), mask all ones; XFRM LEGACY (3)
//! with mask `SGX_XFRM_MASK_CONST` = `0xFFFFFFFFFFF9FF1B`; then applies
//! `sgx.cpu_features` in the order avx, avx512, amx, mpx, pkru ("required": set in value
//! and mask, "disabled": clear in value, set in mask, "unspecified": untouched).
//! MISCSELECT is EXINFO if `sgx.use_exinfo`, mask all ones.

use super::manifest_params::{CpuFeature, SgxManifestParams};

/// ATTRIBUTES.FLAGS bit INIT.
pub const FLAG_INIT: u64 = 0x1;
/// ATTRIBUTES.FLAGS bit DEBUG.
pub const FLAG_DEBUG: u64 = 0x2;
/// ATTRIBUTES.FLAGS bit MODE64BIT.
pub const FLAG_MODE64BIT: u64 = 0x4;
/// ATTRIBUTES.FLAGS bit PROVISIONKEY.
pub const FLAG_PROVISIONKEY: u64 = 0x10;
/// ATTRIBUTES.FLAGS bit EINITTOKENKEY.
pub const FLAG_EINITTOKENKEY: u64 = 0x20;
/// ATTRIBUTES.FLAGS bit CET.
pub const FLAG_CET: u64 = 0x40;
/// ATTRIBUTES.FLAGS bit KSS.
pub const FLAG_KSS: u64 = 0x80;
/// ATTRIBUTES.FLAGS bit AEXNOTIFY.
pub const FLAG_AEXNOTIFY: u64 = 0x400;

/// XFRM bits x87 and SSE, always required by SGX.
pub const XFRM_LEGACY: u64 = 0x3;
/// XFRM bits of AVX.
pub const XFRM_AVX: u64 = 0x4;
/// XFRM bits of AVX-512 (includes AVX).
pub const XFRM_AVX512: u64 = 0xE4;
/// XFRM bits of AMX.
pub const XFRM_AMX: u64 = 0x6_0000;
/// XFRM bits of MPX.
pub const XFRM_MPX: u64 = 0x18;
/// XFRM bit of PKRU.
pub const XFRM_PKRU: u64 = 0x200;
/// Gramine's base XFRM mask (`SGX_XFRM_MASK_CONST`).
pub const GRAMINE_XFRM_MASK: u64 = 0xFFFF_FFFF_FFF9_FF1B;
/// Gramine's flags mask (`SGX_FLAGS_MASK_CONST`): every bit.
pub const GRAMINE_FLAGS_MASK: u64 = u64::MAX;
/// Gramine's MISCSELECT mask (`SGX_MISCSELECT_MASK_CONST`): every bit.
pub const GRAMINE_MISC_MASK: u32 = u32::MAX;

/// MISCSELECT bit EXINFO.
pub const MISC_EXINFO: u32 = 0x1;
/// MISCSELECT bit CPINFO.
pub const MISC_CPINFO: u32 = 0x2;

const FLAG_NAMES: &[(u64, &str)] = &[
    (FLAG_INIT, "INIT"),
    (FLAG_DEBUG, "DEBUG"),
    (FLAG_MODE64BIT, "MODE64BIT"),
    (FLAG_PROVISIONKEY, "PROVISIONKEY"),
    (FLAG_EINITTOKENKEY, "EINITTOKENKEY"),
    (FLAG_CET, "CET"),
    (FLAG_KSS, "KSS"),
    (FLAG_AEXNOTIFY, "AEXNOTIFY"),
];

const XFRM_NAMES: &[(u64, &str)] = &[
    (0x1, "X87"),
    (0x2, "SSE"),
    (0x4, "AVX"),
    (0x8, "BNDREGS"),
    (0x10, "BNDCSR"),
    (0x20, "OPMASK"),
    (0x40, "ZMM_HI256"),
    (0x80, "HI16_ZMM"),
    (0x200, "PKRU"),
    (0x2_0000, "XTILECFG"),
    (0x4_0000, "XTILEDATA"),
];

const MISC_NAMES: &[(u64, &str)] = &[(0x1, "EXINFO"), (0x2, "CPINFO")];

fn names(value: u64, table: &[(u64, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    for bit in 0..64 {
        let mask = 1u64 << bit;
        if value & mask == 0 {
            continue;
        }
        match table.iter().find(|(m, _)| *m == mask) {
            Some((_, name)) => out.push((*name).to_string()),
            None => out.push(format!("bit{bit}")),
        }
    }
    out
}

fn cleared_names(mask: u64, table: &[(u64, &str)]) -> Vec<String> {
    table
        .iter()
        .filter(|(bit, _)| mask & bit == 0)
        .map(|(_, name)| (*name).to_string())
        .collect()
}

/// Names of the known FLAGS bits that a mask leaves unchecked (clear in the mask).
pub fn flag_names_unchecked(mask: u64) -> Vec<String> {
    cleared_names(mask, FLAG_NAMES)
}

/// Names of the known XFRM bits that a mask leaves unchecked (clear in the mask).
pub fn xfrm_names_unchecked(mask: u64) -> Vec<String> {
    cleared_names(mask, XFRM_NAMES)
}

/// Names of the set ATTRIBUTES.FLAGS bits (unknown bits as `bitN`).
pub fn flag_names(flags: u64) -> Vec<String> {
    names(flags, FLAG_NAMES)
}

/// Names of the set XFRM bits (unknown bits as `bitN`).
pub fn xfrm_names(xfrm: u64) -> Vec<String> {
    names(xfrm, XFRM_NAMES)
}

/// Names of the set MISCSELECT bits (unknown bits as `bitN`).
pub fn misc_names(misc: u32) -> Vec<String> {
    names(u64::from(misc), MISC_NAMES)
}

/// The attribute part of a SIGSTRUCT: values and masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningAttributes {
    /// ATTRIBUTES.FLAGS.
    pub flags: u64,
    /// ATTRIBUTEMASK.FLAGS.
    pub flags_mask: u64,
    /// ATTRIBUTES.XFRM.
    pub xfrm: u64,
    /// ATTRIBUTEMASK.XFRM.
    pub xfrm_mask: u64,
    /// MISCSELECT.
    pub miscselect: u32,
    /// MISCMASK.
    pub miscmask: u32,
}

fn apply_feature(feature: CpuFeature, bits: u64, xfrm: &mut u64, mask: &mut u64) {
    match feature {
        CpuFeature::Required => {
            *xfrm |= bits;
            *mask |= bits;
        }
        CpuFeature::Disabled => {
            *xfrm &= !bits;
            *mask |= bits;
        }
        CpuFeature::Unspecified => {}
    }
}

impl SigningAttributes {
    /// Gramine v1.9's attributes for a manifest's settings (see the module doc).
    pub fn gramine(params: &SgxManifestParams) -> Self {
        let mut flags = FLAG_MODE64BIT;
        if params.debug {
            flags |= FLAG_DEBUG;
        }
        let mut xfrm = XFRM_LEGACY;
        let mut xfrm_mask = GRAMINE_XFRM_MASK;
        let f = &params.cpu_features;
        // Gramine's order: avx, avx512, amx, then the security-relevant mpx, pkru.
        for (feature, bits) in [
            (f.avx, XFRM_AVX),
            (f.avx512, XFRM_AVX512),
            (f.amx, XFRM_AMX),
            (f.mpx, XFRM_MPX),
            (f.pkru, XFRM_PKRU),
        ] {
            apply_feature(feature, bits, &mut xfrm, &mut xfrm_mask);
        }
        Self {
            flags,
            flags_mask: GRAMINE_FLAGS_MASK,
            xfrm,
            xfrm_mask,
            miscselect: if params.use_exinfo { MISC_EXINFO } else { 0 },
            miscmask: GRAMINE_MISC_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SgxManifestParams {
        SgxManifestParams::default()
    }

    #[test]
    fn defaults_match_gramine() {
        let a = SigningAttributes::gramine(&params());
        assert_eq!(a.flags, 4);
        assert_eq!(a.flags_mask, u64::MAX);
        assert_eq!(a.xfrm, 3);
        assert_eq!(a.xfrm_mask, 0xFFFF_FFFF_FFF9_FF1B);
        assert_eq!((a.miscselect, a.miscmask), (0, 0xFFFF_FFFF));
    }

    #[test]
    fn debug_and_exinfo() {
        let mut p = params();
        p.debug = true;
        p.use_exinfo = true;
        let a = SigningAttributes::gramine(&p);
        assert_eq!(a.flags, 6);
        assert_eq!(a.miscselect, 1);
    }

    #[test]
    fn cpu_features_follow_gramines_order() {
        let mut p = params();
        p.cpu_features.avx = CpuFeature::Required;
        p.cpu_features.amx = CpuFeature::Required;
        p.cpu_features.pkru = CpuFeature::Required;
        let a = SigningAttributes::gramine(&p);
        assert_eq!(a.xfrm, 3 | 0x4 | 0x6_0000 | 0x200);
        assert_eq!(a.xfrm_mask, 0xFFFF_FFFF_FFF9_FF1B | 0x4 | 0x6_0000);

        // avx required, then avx512 disabled clears the shared AVX bit again.
        let mut p = params();
        p.cpu_features.avx = CpuFeature::Required;
        p.cpu_features.avx512 = CpuFeature::Disabled;
        let a = SigningAttributes::gramine(&p);
        assert_eq!(a.xfrm, 3);
        assert_eq!(a.xfrm_mask, 0xFFFF_FFFF_FFF9_FFFF);
    }

    #[test]
    fn names_of_bits() {
        assert_eq!(flag_names(6), vec!["DEBUG", "MODE64BIT"]);
        assert_eq!(xfrm_names(3), vec!["X87", "SSE"]);
        assert_eq!(flag_names(1 << 40), vec!["bit40"]);
        assert_eq!(misc_names(1), vec!["EXINFO"]);
        assert_eq!(flag_names_unchecked(0xFFFF_FFFF_FFFF_FFFD), vec!["DEBUG"]);
        assert_eq!(
            xfrm_names_unchecked(0xFFFF_FFFF_FFF9_FF1B),
            vec![
                "AVX",
                "OPMASK",
                "ZMM_HI256",
                "HI16_ZMM",
                "XTILECFG",
                "XTILEDATA"
            ]
        );
    }
}
