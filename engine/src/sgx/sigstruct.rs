//! The 1808-byte SIGSTRUCT: typed fields, `to_bytes`, strict `parse`, the signed
//! payload, `verify` (RSA and Q1/Q2) and MRSIGNER.
//!
//! Layout (SDM Table 38-19, Gramine `sgx_arch.h`): see shared/spec/sgx-measurement.md §3.
//! The signed fields live in [`SigstructBody`]; [`Sigstruct`] adds the key, signature
//! and Q1/Q2, all stored little-endian.

use sha2::{Digest, Sha256};

use super::attributes::SigningAttributes;
use super::rsa3072::{self, KeyError, SignatureError, MODULUS_BYTES};
use super::sigstruct_date::{DateError, SigstructDate};

/// Size of a SIGSTRUCT in bytes.
pub const SIGSTRUCT_SIZE: usize = 1808;
/// Size of the signed payload: bytes `[0,128) ‖ [900,1028)`.
pub const SIGNED_PAYLOAD_SIZE: usize = 256;
/// HEADER (bytes 0–15).
pub const HEADER: [u8; 16] = [6, 0, 0, 0, 0xE1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];
/// HEADER2 (bytes 24–39).
pub const HEADER2: [u8; 16] = [1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0];
/// The exponent field every SIGSTRUCT carries.
pub const EXPONENT: u32 = 3;

// Field offsets.
const OFF_VENDOR: usize = 16;
const OFF_DATE: usize = 20;
const OFF_HEADER2: usize = 24;
const OFF_SWDEFINED: usize = 40;
const OFF_RESERVED1: usize = 44;
const OFF_MODULUS: usize = 128;
const OFF_EXPONENT: usize = 512;
const OFF_SIGNATURE: usize = 516;
const OFF_MISCSELECT: usize = 900;
const OFF_MISCMASK: usize = 904;
const OFF_CET_ATTRIBUTES: usize = 908;
const OFF_CET_ATTRIBUTES_MASK: usize = 909;
const OFF_RESERVED2: usize = 910;
const OFF_ISVFAMILYID: usize = 912;
const OFF_ATTRIBUTES: usize = 928;
const OFF_ATTRIBUTEMASK: usize = 944;
const OFF_ENCLAVEHASH: usize = 960;
const OFF_RESERVED3: usize = 992;
const OFF_ISVEXTPRODID: usize = 1008;
const OFF_ISVPRODID: usize = 1024;
const OFF_ISVSVN: usize = 1026;
const OFF_RESERVED4: usize = 1028;
const OFF_Q1: usize = 1040;
const OFF_Q2: usize = 1424;

/// Reserved ranges, all of which must be zero: (offset, length).
const RESERVED: [(usize, usize); 4] = [
    (OFF_RESERVED1, 84),
    (OFF_RESERVED2, 2),
    (OFF_RESERVED3, 16),
    (OFF_RESERVED4, 12),
];

/// SGX ATTRIBUTES (or an attribute mask): FLAGS then XFRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attributes {
    /// FLAGS (DEBUG, MODE64BIT, …).
    pub flags: u64,
    /// XFRM (the XSAVE feature request mask).
    pub xfrm: u64,
}

/// The signed fields of a SIGSTRUCT: everything but MODULUS, EXPONENT, SIGNATURE, Q1, Q2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigstructBody {
    /// HEADER: [`HEADER`], possibly with bit 31 of bytes 12–15 set (Intel ReleaseType).
    pub header: [u8; 16],
    /// VENDOR: 0, or 0x8086 for Intel-signed enclaves.
    pub vendor: u32,
    /// DATE.
    pub date: SigstructDate,
    /// HEADER2: [`HEADER2`].
    pub header2: [u8; 16],
    /// SWDEFINED.
    pub swdefined: u32,
    /// MISCSELECT.
    pub miscselect: u32,
    /// MISCMASK.
    pub miscmask: u32,
    /// CET_ATTRIBUTES.
    pub cet_attributes: u8,
    /// CET_ATTRIBUTES_MASK.
    pub cet_attributes_mask: u8,
    /// ISVFAMILYID.
    pub isvfamilyid: [u8; 16],
    /// ATTRIBUTES.
    pub attributes: Attributes,
    /// ATTRIBUTEMASK.
    pub attribute_mask: Attributes,
    /// ENCLAVEHASH (MRENCLAVE).
    pub enclavehash: [u8; 32],
    /// ISVEXTPRODID.
    pub isvextprodid: [u8; 16],
    /// ISVPRODID.
    pub isvprodid: u16,
    /// ISVSVN.
    pub isvsvn: u16,
}

/// A complete SIGSTRUCT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sigstruct {
    /// The signed fields.
    pub body: SigstructBody,
    /// MODULUS, little-endian.
    pub modulus: [u8; MODULUS_BYTES],
    /// EXPONENT (always 3).
    pub exponent: u32,
    /// SIGNATURE, little-endian.
    pub signature: [u8; MODULUS_BYTES],
    /// Q1, little-endian.
    pub q1: [u8; MODULUS_BYTES],
    /// Q2, little-endian.
    pub q2: [u8; MODULUS_BYTES],
}

/// Why bytes are not a SIGSTRUCT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigstructError {
    /// Not 1808 bytes.
    #[error("a SIGSTRUCT is 1808 bytes; got {len}")]
    Size {
        /// The length found.
        len: usize,
    },
    /// HEADER (offset 0) is not the SGX constant.
    #[error("HEADER at offset 0 is {found}, expected 06000000e10000000000010000000000")]
    Header {
        /// The bytes found, hex.
        found: String,
    },
    /// HEADER2 (offset 24) is not the SGX constant.
    #[error("HEADER2 at offset 24 is {found}, expected 01010000600000006000000001000000")]
    Header2 {
        /// The bytes found, hex.
        found: String,
    },
    /// EXPONENT (offset 512) is not 3.
    #[error("EXPONENT at offset 512 is {0}, SGX requires 3")]
    Exponent(u32),
    /// A reserved range is not zero.
    #[error("reserved bytes at offset {offset} (length {len}) are not zero")]
    Reserved {
        /// Offset of the range.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// DATE (offset 20) is not a valid BCD date.
    #[error("DATE at offset 20: {0}")]
    Date(#[from] DateError),
}

/// Why a SIGSTRUCT does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The embedded modulus/exponent are not an SGX key.
    #[error("embedded key: {0}")]
    Key(#[from] KeyError),
    /// The RSA signature does not verify.
    #[error("SIGNATURE: {0}")]
    Signature(#[from] SignatureError),
    /// SIGNATURE is not below MODULUS, so Q1/Q2 cannot be computed.
    #[error("SIGNATURE is not smaller than MODULUS")]
    SignatureRange,
    /// Q1 (offset 1040) is not ⌊S²/N⌋.
    #[error("Q1 at offset 1040 does not equal floor(S^2 / N)")]
    Q1,
    /// Q2 (offset 1424) is not ⌊(S³ − Q1·S·N)/N⌋.
    #[error("Q2 at offset 1424 does not equal floor((S^3 - Q1*S*N) / N)")]
    Q2,
}

fn put(buf: &mut [u8; SIGSTRUCT_SIZE], offset: usize, bytes: &[u8]) {
    // Offsets are compile-time constants within the 1808-byte buffer.
    if let Some(dst) = buf.get_mut(offset..offset + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = bytes.get(offset..offset + N) {
        out.copy_from_slice(src);
    }
    out
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(array(bytes, offset))
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(array(bytes, offset))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(array(bytes, offset))
}

/// Bit 31 of HEADER bytes 12–15, set by Intel's `sgx_sign` for ReleaseType 1.
const HEADER_RELEASE_BIT: u8 = 0x80;

fn header_ok(header: &[u8; 16]) -> bool {
    let mut normalised = *header;
    normalised[15] &= !HEADER_RELEASE_BIT;
    normalised == HEADER
}

impl SigstructBody {
    /// A body with the SGX constants, zero VENDOR/SWDEFINED/CET/ISVFAMILYID/ISVEXTPRODID,
    /// and the given hash, date, attributes, ISVPRODID and ISVSVN.
    pub fn new(
        enclavehash: [u8; 32],
        date: SigstructDate,
        attributes: &SigningAttributes,
        isvprodid: u16,
        isvsvn: u16,
    ) -> Self {
        Self {
            header: HEADER,
            vendor: 0,
            date,
            header2: HEADER2,
            swdefined: 0,
            miscselect: attributes.miscselect,
            miscmask: attributes.miscmask,
            cet_attributes: 0,
            cet_attributes_mask: 0,
            isvfamilyid: [0; 16],
            attributes: Attributes {
                flags: attributes.flags,
                xfrm: attributes.xfrm,
            },
            attribute_mask: Attributes {
                flags: attributes.flags_mask,
                xfrm: attributes.xfrm_mask,
            },
            enclavehash,
            isvextprodid: [0; 16],
            isvprodid,
            isvsvn,
        }
    }

    fn write_into(&self, buf: &mut [u8; SIGSTRUCT_SIZE]) {
        put(buf, 0, &self.header);
        put(buf, OFF_VENDOR, &self.vendor.to_le_bytes());
        put(buf, OFF_DATE, &self.date.to_bytes());
        put(buf, OFF_HEADER2, &self.header2);
        put(buf, OFF_SWDEFINED, &self.swdefined.to_le_bytes());
        put(buf, OFF_MISCSELECT, &self.miscselect.to_le_bytes());
        put(buf, OFF_MISCMASK, &self.miscmask.to_le_bytes());
        put(buf, OFF_CET_ATTRIBUTES, &[self.cet_attributes]);
        put(buf, OFF_CET_ATTRIBUTES_MASK, &[self.cet_attributes_mask]);
        put(buf, OFF_ISVFAMILYID, &self.isvfamilyid);
        put(buf, OFF_ATTRIBUTES, &self.attributes.flags.to_le_bytes());
        put(buf, OFF_ATTRIBUTES + 8, &self.attributes.xfrm.to_le_bytes());
        put(
            buf,
            OFF_ATTRIBUTEMASK,
            &self.attribute_mask.flags.to_le_bytes(),
        );
        put(
            buf,
            OFF_ATTRIBUTEMASK + 8,
            &self.attribute_mask.xfrm.to_le_bytes(),
        );
        put(buf, OFF_ENCLAVEHASH, &self.enclavehash);
        put(buf, OFF_ISVEXTPRODID, &self.isvextprodid);
        put(buf, OFF_ISVPRODID, &self.isvprodid.to_le_bytes());
        put(buf, OFF_ISVSVN, &self.isvsvn.to_le_bytes());
    }

    /// The 256 signed bytes: SIGSTRUCT bytes `[0,128) ‖ [900,1028)`.
    pub fn signed_payload(&self) -> [u8; SIGNED_PAYLOAD_SIZE] {
        let mut buf = [0u8; SIGSTRUCT_SIZE];
        self.write_into(&mut buf);
        let mut out = [0u8; SIGNED_PAYLOAD_SIZE];
        out[..128].copy_from_slice(&buf[..128]);
        out[128..].copy_from_slice(&buf[OFF_MISCSELECT..OFF_RESERVED4]);
        out
    }
}

impl Sigstruct {
    /// The 1808 bytes.
    pub fn to_bytes(&self) -> [u8; SIGSTRUCT_SIZE] {
        let mut buf = [0u8; SIGSTRUCT_SIZE];
        self.body.write_into(&mut buf);
        put(&mut buf, OFF_MODULUS, &self.modulus);
        put(&mut buf, OFF_EXPONENT, &self.exponent.to_le_bytes());
        put(&mut buf, OFF_SIGNATURE, &self.signature);
        put(&mut buf, OFF_Q1, &self.q1);
        put(&mut buf, OFF_Q2, &self.q2);
        buf
    }

    /// Parses exactly 1808 bytes, checking HEADER, HEADER2, EXPONENT = 3, the reserved
    /// ranges (zero) and the DATE. Does not check the signature: see [`Self::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Self, SigstructError> {
        if bytes.len() != SIGSTRUCT_SIZE {
            return Err(SigstructError::Size { len: bytes.len() });
        }
        let header: [u8; 16] = array(bytes, 0);
        if !header_ok(&header) {
            return Err(SigstructError::Header {
                found: hex::encode(header),
            });
        }
        let header2: [u8; 16] = array(bytes, OFF_HEADER2);
        if header2 != HEADER2 {
            return Err(SigstructError::Header2 {
                found: hex::encode(header2),
            });
        }
        let exponent = u32_at(bytes, OFF_EXPONENT);
        if exponent != EXPONENT {
            return Err(SigstructError::Exponent(exponent));
        }
        for (offset, len) in RESERVED {
            let zero = bytes
                .get(offset..offset + len)
                .is_some_and(|r| r.iter().all(|b| *b == 0));
            if !zero {
                return Err(SigstructError::Reserved { offset, len });
            }
        }
        let date = SigstructDate::from_bytes(array(bytes, OFF_DATE))?;
        let body = SigstructBody {
            header,
            vendor: u32_at(bytes, OFF_VENDOR),
            date,
            header2,
            swdefined: u32_at(bytes, OFF_SWDEFINED),
            miscselect: u32_at(bytes, OFF_MISCSELECT),
            miscmask: u32_at(bytes, OFF_MISCMASK),
            cet_attributes: array::<1>(bytes, OFF_CET_ATTRIBUTES)[0],
            cet_attributes_mask: array::<1>(bytes, OFF_CET_ATTRIBUTES_MASK)[0],
            isvfamilyid: array(bytes, OFF_ISVFAMILYID),
            attributes: Attributes {
                flags: u64_at(bytes, OFF_ATTRIBUTES),
                xfrm: u64_at(bytes, OFF_ATTRIBUTES + 8),
            },
            attribute_mask: Attributes {
                flags: u64_at(bytes, OFF_ATTRIBUTEMASK),
                xfrm: u64_at(bytes, OFF_ATTRIBUTEMASK + 8),
            },
            enclavehash: array(bytes, OFF_ENCLAVEHASH),
            isvextprodid: array(bytes, OFF_ISVEXTPRODID),
            isvprodid: u16_at(bytes, OFF_ISVPRODID),
            isvsvn: u16_at(bytes, OFF_ISVSVN),
        };
        Ok(Self {
            body,
            modulus: array(bytes, OFF_MODULUS),
            exponent,
            signature: array(bytes, OFF_SIGNATURE),
            q1: array(bytes, OFF_Q1),
            q2: array(bytes, OFF_Q2),
        })
    }

    /// The 256 signed bytes: `[0,128) ‖ [900,1028)`.
    pub fn signed_payload(&self) -> [u8; SIGNED_PAYLOAD_SIZE] {
        self.body.signed_payload()
    }

    /// MRSIGNER: SHA-256 of the 384 little-endian modulus bytes as stored.
    pub fn mrsigner(&self) -> [u8; 32] {
        Sha256::digest(self.modulus).into()
    }

    /// Checks the RSA signature (PKCS#1 v1.5, SHA-256) with the embedded modulus,
    /// which must be RSA-3072 with e = 3.
    pub fn verify_signature(&self) -> Result<(), VerifyError> {
        let n_be = rsa3072::reverse_384(&self.modulus);
        let key = rsa3072::sgx_public_key(&n_be, &self.exponent.to_be_bytes())?;
        let s_be = rsa3072::reverse_384(&self.signature);
        rsa3072::verify_sha256(&key, &self.signed_payload(), &s_be)?;
        Ok(())
    }

    /// Checks Q1 and Q2 against SIGNATURE and MODULUS.
    pub fn verify_q1_q2(&self) -> Result<(), VerifyError> {
        let n_be = rsa3072::reverse_384(&self.modulus);
        let s_be = rsa3072::reverse_384(&self.signature);
        let (q1, q2) = rsa3072::q1_q2(&s_be, &n_be).ok_or(VerifyError::SignatureRange)?;
        if q1 != self.q1 {
            return Err(VerifyError::Q1);
        }
        if q2 != self.q2 {
            return Err(VerifyError::Q2);
        }
        Ok(())
    }

    /// Checks the signature and Q1/Q2.
    pub fn verify(&self) -> Result<(), VerifyError> {
        self.verify_signature()?;
        self.verify_q1_q2()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG1: &[u8] = include_bytes!("../../testdata/sgxs/sig1.sigstruct.bin");

    #[test]
    fn parse_and_to_bytes_round_trip() {
        let s = Sigstruct::parse(SIG1).unwrap();
        assert_eq!(s.to_bytes().as_slice(), SIG1);
        assert_eq!(s.body.date.to_string(), "2016-01-09");
        assert_eq!(s.body.attributes.flags, 4);
        assert!(s.verify().is_ok());
    }

    #[test]
    fn payload_is_the_two_signed_ranges() {
        let s = Sigstruct::parse(SIG1).unwrap();
        let p = s.signed_payload();
        assert_eq!(&p[..128], &SIG1[..128]);
        assert_eq!(&p[128..], &SIG1[900..1028]);
    }

    #[test]
    fn strict_parse_names_the_problem() {
        assert_eq!(
            Sigstruct::parse(&SIG1[..1807]),
            Err(SigstructError::Size { len: 1807 })
        );
        let mut b = SIG1.to_vec();
        b[0] = 7;
        assert!(matches!(
            Sigstruct::parse(&b),
            Err(SigstructError::Header { .. })
        ));
        let mut b = SIG1.to_vec();
        b[25] = 0;
        assert!(matches!(
            Sigstruct::parse(&b),
            Err(SigstructError::Header2 { .. })
        ));
        let mut b = SIG1.to_vec();
        b[512] = 0x01;
        b[514] = 0x01;
        assert_eq!(Sigstruct::parse(&b), Err(SigstructError::Exponent(0x10001)));
        let mut b = SIG1.to_vec();
        b[1030] = 1;
        assert_eq!(
            Sigstruct::parse(&b),
            Err(SigstructError::Reserved {
                offset: 1028,
                len: 12
            })
        );
        let mut b = SIG1.to_vec();
        b[20] = 0x32;
        assert!(matches!(Sigstruct::parse(&b), Err(SigstructError::Date(_))));
        // Intel's release bit in HEADER is accepted and kept.
        let mut b = SIG1.to_vec();
        b[15] |= 0x80;
        let s = Sigstruct::parse(&b).unwrap();
        assert_eq!(s.to_bytes().as_slice(), b.as_slice());
    }

    #[test]
    fn tampering_is_detected() {
        let mut s = Sigstruct::parse(SIG1).unwrap();
        s.body.isvsvn = 1;
        assert!(matches!(s.verify(), Err(VerifyError::Signature(_))));
        let mut s = Sigstruct::parse(SIG1).unwrap();
        s.q1[0] ^= 1;
        assert_eq!(s.verify(), Err(VerifyError::Q1));
        let mut s = Sigstruct::parse(SIG1).unwrap();
        s.q2[5] ^= 1;
        assert_eq!(s.verify(), Err(VerifyError::Q2));
    }
}
