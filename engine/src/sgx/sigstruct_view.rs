//! A serde view of a parsed SIGSTRUCT, for `kiln sgx show --json`, the web app and the
//! worker: every field, hex where binary, the date decoded, attribute bit names,
//! MRSIGNER and whether the signature and Q1/Q2 verify.
//!
//! 64-bit numbers are hex strings (`"0x…"`) so JavaScript never rounds them.

use serde::{Deserialize, Serialize};

use super::attributes::{
    flag_names, flag_names_unchecked, misc_names, xfrm_names, xfrm_names_unchecked,
};
use super::sigstruct::Sigstruct;

/// ATTRIBUTES or ATTRIBUTEMASK, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributesView {
    /// FLAGS, `0x…` (16 hex digits).
    pub flags: String,
    /// Names of the set FLAGS bits.
    pub flags_names: Vec<String>,
    /// XFRM, `0x…` (16 hex digits).
    pub xfrm: String,
    /// Names of the set XFRM bits.
    pub xfrm_names: Vec<String>,
}

/// ATTRIBUTEMASK, decoded: which known bits EINIT does not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeMaskView {
    /// FLAGS mask, `0x…` (16 hex digits).
    pub flags: String,
    /// Known FLAGS bits clear in the mask (not checked).
    pub flags_unchecked: Vec<String>,
    /// XFRM mask, `0x…` (16 hex digits).
    pub xfrm: String,
    /// Known XFRM bits clear in the mask (not checked).
    pub xfrm_unchecked: Vec<String>,
}

/// Every field of a SIGSTRUCT, plus MRSIGNER and the verification results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigstructView {
    /// HEADER, hex.
    pub header: String,
    /// VENDOR, `0x…`.
    pub vendor: String,
    /// DATE, `YYYY-MM-DD`.
    pub date: String,
    /// HEADER2, hex.
    pub header2: String,
    /// SWDEFINED, `0x…`.
    pub swdefined: String,
    /// MODULUS, hex of the 384 little-endian bytes as stored.
    pub modulus: String,
    /// EXPONENT.
    pub exponent: u32,
    /// SIGNATURE, hex of the 384 little-endian bytes as stored.
    pub signature: String,
    /// MISCSELECT, `0x…`.
    pub miscselect: String,
    /// Names of the set MISCSELECT bits.
    pub miscselect_names: Vec<String>,
    /// MISCMASK, `0x…`.
    pub miscmask: String,
    /// CET_ATTRIBUTES, `0x…`.
    pub cet_attributes: String,
    /// CET_ATTRIBUTES_MASK, `0x…`.
    pub cet_attributes_mask: String,
    /// ISVFAMILYID, hex.
    pub isvfamilyid: String,
    /// ATTRIBUTES.
    pub attributes: AttributesView,
    /// ATTRIBUTEMASK.
    pub attribute_mask: AttributeMaskView,
    /// ENCLAVEHASH (MRENCLAVE), hex.
    pub enclavehash: String,
    /// ISVEXTPRODID, hex.
    pub isvextprodid: String,
    /// ISVPRODID.
    pub isvprodid: u16,
    /// ISVSVN.
    pub isvsvn: u16,
    /// Q1, hex (little-endian as stored).
    pub q1: String,
    /// Q2, hex (little-endian as stored).
    pub q2: String,
    /// MRSIGNER: SHA-256 of the stored modulus, hex.
    pub mrsigner: String,
    /// Whether the RSA signature verifies with the embedded modulus.
    pub signature_valid: bool,
    /// Why not, if it does not.
    pub signature_error: Option<String>,
    /// Whether Q1 and Q2 are correct.
    pub q1_q2_valid: bool,
    /// Why not, if they are not.
    pub q1_q2_error: Option<String>,
}

fn attributes_view(a: &super::sigstruct::Attributes) -> AttributesView {
    AttributesView {
        flags: format!("{:#018x}", a.flags),
        flags_names: flag_names(a.flags),
        xfrm: format!("{:#018x}", a.xfrm),
        xfrm_names: xfrm_names(a.xfrm),
    }
}

impl SigstructView {
    /// The view of a SIGSTRUCT (verifies it to fill in the `*_valid` fields).
    pub fn new(s: &Sigstruct) -> Self {
        let b = &s.body;
        let signature = s.verify_signature();
        let q = s.verify_q1_q2();
        Self {
            header: hex::encode(b.header),
            vendor: format!("{:#x}", b.vendor),
            date: b.date.to_string(),
            header2: hex::encode(b.header2),
            swdefined: format!("{:#x}", b.swdefined),
            modulus: hex::encode(s.modulus),
            exponent: s.exponent,
            signature: hex::encode(s.signature),
            miscselect: format!("{:#010x}", b.miscselect),
            miscselect_names: misc_names(b.miscselect),
            miscmask: format!("{:#010x}", b.miscmask),
            cet_attributes: format!("{:#04x}", b.cet_attributes),
            cet_attributes_mask: format!("{:#04x}", b.cet_attributes_mask),
            isvfamilyid: hex::encode(b.isvfamilyid),
            attributes: attributes_view(&b.attributes),
            attribute_mask: AttributeMaskView {
                flags: format!("{:#018x}", b.attribute_mask.flags),
                flags_unchecked: flag_names_unchecked(b.attribute_mask.flags),
                xfrm: format!("{:#018x}", b.attribute_mask.xfrm),
                xfrm_unchecked: xfrm_names_unchecked(b.attribute_mask.xfrm),
            },
            enclavehash: hex::encode(b.enclavehash),
            isvextprodid: hex::encode(b.isvextprodid),
            isvprodid: b.isvprodid,
            isvsvn: b.isvsvn,
            q1: hex::encode(s.q1),
            q2: hex::encode(s.q2),
            mrsigner: hex::encode(s.mrsigner()),
            signature_valid: signature.is_ok(),
            signature_error: signature.err().map(|e| e.to_string()),
            q1_q2_valid: q.is_ok(),
            q1_q2_error: q.err().map(|e| e.to_string()),
        }
    }
}

impl From<&Sigstruct> for SigstructView {
    fn from(s: &Sigstruct) -> Self {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_of_sig1() {
        let bytes = include_bytes!("../../testdata/sgxs/sig1.sigstruct.bin");
        let s = Sigstruct::parse(bytes).unwrap();
        let v = SigstructView::new(&s);
        assert_eq!(v.date, "2016-01-09");
        assert_eq!(v.attributes.flags, "0x0000000000000004");
        assert_eq!(v.attributes.flags_names, vec!["MODE64BIT"]);
        assert_eq!(v.attribute_mask.xfrm, "0xffffffffffffff1b");
        assert!(v.signature_valid && v.q1_q2_valid);
        assert_eq!(
            v.mrsigner,
            "83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e"
        );
        let json = serde_json::to_string(&v).unwrap();
        let back: SigstructView = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }
}
