//! Property test: for random inputs the engine's SIGSTRUCT equals Fortanix `sgxs`'s
//! `Signer` output (OpenSSL backend) byte for byte, with the same key. Native only.
//!
//! `sgxs::sigstruct::Signer` takes masks as given (not inverted; only the `sgxs-sign`
//! CLI inverts them), knows only the flag bits of `AttributesFlags` and the EXINFO
//! MISCSELECT bit, and has no setters for the CET fields or ISVFAMILYID (always 0).
#![cfg(not(target_arch = "wasm32"))]

use kiln_engine::sgx::attributes::SigningAttributes;
use kiln_engine::sgx::signer::PrivateKeySigner;
use kiln_engine::sgx::sigstruct::{Sigstruct, SigstructBody};
use kiln_engine::sgx::sigstruct_date::SigstructDate;
use proptest::prelude::*;
use sgxs::sigstruct::{AttributesFlags, EnclaveHash, Miscselect, Signer as SgxsSigner};

const KEY: &str = include_str!("../testdata/gramine/test-key.pem");

/// The flag bits sgxs's `AttributesFlags` can express.
const SGXS_FLAG_BITS: u64 = 0xF7;

#[derive(Debug, Clone)]
struct Inputs {
    hash: [u8; 32],
    year: u16,
    month: u8,
    day: u8,
    isvprodid: u16,
    isvsvn: u16,
    isvextprodid: [u8; 16],
    flags: u64,
    flags_mask: u64,
    xfrm: u64,
    xfrm_mask: u64,
    exinfo: bool,
    miscmask: u32,
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        (
            any::<[u8; 32]>(),
            0u16..=9999,
            1u8..=12,
            1u8..=28,
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 16]>(),
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<bool>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |(
                (hash, year, month, day, isvprodid, isvsvn, isvextprodid),
                (flags, flags_mask, xfrm, xfrm_mask, exinfo, miscmask),
            )| Inputs {
                hash,
                year,
                month,
                day,
                isvprodid,
                isvsvn,
                isvextprodid,
                flags: flags & SGXS_FLAG_BITS,
                flags_mask,
                xfrm,
                xfrm_mask,
                exinfo,
                miscmask,
            },
        )
}

fn ours(signer: &PrivateKeySigner, i: &Inputs) -> Sigstruct {
    let attributes = SigningAttributes {
        flags: i.flags,
        flags_mask: i.flags_mask,
        xfrm: i.xfrm,
        xfrm_mask: i.xfrm_mask,
        miscselect: u32::from(i.exinfo),
        miscmask: i.miscmask,
    };
    let mut body = SigstructBody::new(
        i.hash,
        SigstructDate::new(i.year, i.month, i.day).unwrap(),
        &attributes,
        i.isvprodid,
        i.isvsvn,
    );
    body.isvextprodid = i.isvextprodid;
    signer.sign_sigstruct(body).unwrap()
}

fn theirs(key: &openssl::rsa::Rsa<openssl::pkey::Private>, i: &Inputs) -> Vec<u8> {
    let mut s = SgxsSigner::new(EnclaveHash::new(i.hash));
    let misc = if i.exinfo {
        Miscselect::EXINFO
    } else {
        Miscselect::empty()
    };
    s.date(i.year, i.month, i.day)
        .isvprodid(i.isvprodid)
        .isvsvn(i.isvsvn)
        .isvextprodid(i.isvextprodid)
        .attributes_flags(AttributesFlags::from_bits_truncate(i.flags), i.flags_mask)
        .attributes_xfrm(i.xfrm, i.xfrm_mask)
        .miscselect(misc, i.miscmask);
    let sig = s.sign::<_, openssl::hash::Hasher>(&**key).unwrap();
    sig.as_ref().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn engine_matches_sgxs_signer(i in inputs()) {
        let signer = PrivateKeySigner::from_pem(KEY, None).unwrap();
        let key = openssl::rsa::Rsa::private_key_from_pem(KEY.as_bytes()).unwrap();
        let ours = ours(&signer, &i);
        let theirs = theirs(&key, &i);
        let ours_bytes = ours.to_bytes();
        prop_assert_eq!(ours_bytes.as_slice(), theirs.as_slice());
        let parsed = Sigstruct::parse(&theirs).unwrap();
        prop_assert_eq!(&parsed, &ours);
        prop_assert!(parsed.verify().is_ok());
    }
}
