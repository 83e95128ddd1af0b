//! Fetching a quote's collateral from a PCCS (or Intel's PCS) through the host's
//! [`Transport`], into dcap-qvl's [`QuoteCollateralV3`].
//!
//! The PCCS v4 API (Intel's "Provisioning Certification Service" API, which a PCCS
//! mirrors), for an SGX quote whose certification data carries the PCK chain (type 5):
//!
//! - `GET {base}/sgx/certification/v4/pckcrl?ca={processor|platform}&encoding=der`: the PCK
//!   CRL (DER), issuer chain in `SGX-PCK-CRL-Issuer-Chain`;
//! - `GET {base}/sgx/certification/v4/tcb?fmspc={FMSPC}`: `{"tcbInfo": …, "signature": hex}`,
//!   issuer chain in `TCB-Info-Issuer-Chain` (or `SGX-TCB-Info-Issuer-Chain`);
//! - `GET {base}/sgx/certification/v4/qe/identity`: `{"enclaveIdentity": …, "signature": hex}`,
//!   issuer chain in `SGX-Enclave-Identity-Issuer-Chain`;
//! - `GET {base}/sgx/certification/v4/rootcacrl`: the root CA's CRL (a PCCS answers hex,
//!   DER is accepted too).
//!
//! Issuer chains are URL-encoded PEM. The signed JSON (`tcbInfo`, `enclaveIdentity`) is
//! kept byte for byte as the server sent it (its signature covers those bytes). Bodies are
//! read up to [`MAX_BODY`] bytes. Nothing is verified here: [`super::verify_evidence`]
//! does that, so a lying PCCS can only make verification fail.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{AttestError, QuoteCollateralV3};
use crate::image::transport::{Headers, Method, Request, Transport};

/// Largest response body read from a PCCS (TCB info is about 10 KiB).
pub const MAX_BODY: usize = 1 << 20;

/// Path prefix of the SGX PCCS v4 API.
pub const SGX_V4: &str = "/sgx/certification/v4";

/// `base` without a trailing slash or API path.
fn base_url(pccs: &str) -> Result<String, AttestError> {
    let t = pccs.trim();
    if !(t.starts_with("https://") || t.starts_with("http://")) {
        return Err(AttestError::Pccs(format!(
            "PCCS URL {t:?} must start with https:// or http://"
        )));
    }
    Ok(t.trim_end_matches('/')
        .trim_end_matches(SGX_V4)
        .trim_end_matches('/')
        .to_string())
}

/// Decodes `%XX` escapes (and `+` as a space is NOT applied: PEM has no spaces to lose).
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad %-escape at byte {i}"))?;
            out.push(h);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once %-decoded".to_string())
}

async fn get(t: &dyn Transport, url: &str) -> Result<(Headers, Vec<u8>), AttestError> {
    let resp = t
        .send(Request::new(Method::Get, url))
        .await
        .map_err(|e| AttestError::Pccs(format!("GET {url}: {e}")))?;
    let status = resp.status;
    if !(200..300).contains(&status) {
        return Err(AttestError::Pccs(format!("GET {url}: HTTP {status}")));
    }
    let headers = resp.headers.clone();
    let bytes = resp
        .bytes_limited(MAX_BODY)
        .await
        .map_err(|e| AttestError::Pccs(format!("GET {url}: {e}")))?;
    Ok((headers, bytes))
}

fn header(headers: &Headers, url: &str, names: &[&str]) -> Result<String, AttestError> {
    let v = names
        .iter()
        .find_map(|n| headers.get(n))
        .ok_or_else(|| AttestError::Pccs(format!("GET {url}: no {} header", names.join(" or "))))?;
    percent_decode(v).map_err(|e| AttestError::Pccs(format!("GET {url}: header {}: {e}", names[0])))
}

#[derive(Deserialize)]
struct Signed<'a> {
    #[serde(rename = "tcbInfo", alias = "enclaveIdentity", borrow)]
    body: &'a RawValue,
    signature: String,
}

fn signed_json(url: &str, body: &[u8]) -> Result<(String, Vec<u8>), AttestError> {
    let s: Signed<'_> = serde_json::from_slice(body)
        .map_err(|e| AttestError::Pccs(format!("GET {url}: body: {e}")))?;
    let sig = hex::decode(s.signature.trim())
        .map_err(|e| AttestError::Pccs(format!("GET {url}: signature is not hex: {e}")))?;
    Ok((s.body.get().to_string(), sig))
}

/// The URLs fetched for a quote, in order: PCK CRL, TCB info, QE identity, root CA CRL.
pub fn urls(pccs: &str, fmspc: &str, ca: &str) -> Result<[String; 4], AttestError> {
    let b = base_url(pccs)?;
    Ok([
        format!("{b}{SGX_V4}/pckcrl?ca={ca}&encoding=der"),
        format!("{b}{SGX_V4}/tcb?fmspc={fmspc}"),
        format!("{b}{SGX_V4}/qe/identity"),
        format!("{b}{SGX_V4}/rootcacrl"),
    ])
}

/// What a quote's collateral depends on: the PCCS, the platform's FMSPC and the PCK CA
/// (`processor` or `platform`); and the quote's own PCK chain, which goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollateralKey {
    /// The PCCS base URL (no trailing slash or API path).
    pub pccs: String,
    /// FMSPC, upper-case hex.
    pub fmspc: String,
    /// `processor` or `platform`.
    pub ca: String,
    /// The quote's PCK certificate chain (PEM).
    pub pck_chain: String,
}

impl CollateralKey {
    /// The key of `quote` at the PCCS `pccs`. The quote must carry its PCK certificate
    /// chain (certification data type 5).
    pub fn of(pccs: &str, quote: &[u8]) -> Result<Self, AttestError> {
        let q = dcap_qvl::quote::Quote::parse(quote)
            .map_err(|e| AttestError::Quote(format!("{e:#}")))?;
        if !q.header.is_sgx() {
            return Err(AttestError::Quote("not an SGX quote".into()));
        }
        if q.inner_cert_type() != 5 {
            return Err(AttestError::Pccs(format!(
                "the quote's certification data is of type {}, not 5 (PCK certificate chain): fetching its PCK certificate by encrypted PPID is not supported; pass collateral with the PCK chain instead",
                q.inner_cert_type()
            )));
        }
        let pck_chain = String::from_utf8(q.inner_cert_data().to_vec())
            .map_err(|_| AttestError::Quote("the PCK certificate chain is not PEM text".into()))?;
        let fmspc = dcap_qvl::intel::quote_fmspc(&q)
            .map_err(|e| AttestError::Quote(format!("FMSPC of the PCK certificate: {e:#}")))?;
        let ca = dcap_qvl::intel::quote_ca(&q)
            .map_err(|e| AttestError::Quote(format!("CA of the PCK certificate: {e:#}")))?;
        Ok(CollateralKey {
            pccs: base_url(pccs)?,
            fmspc: hex::encode_upper(fmspc),
            ca: ca.as_id_str().to_string(),
            pck_chain,
        })
    }

    /// The cache key: `sha256:` and the SHA-256 of PCCS, FMSPC and CA (the PCK chain
    /// differs per platform but not the collateral, so it is not part of it).
    pub fn cache_key(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        for part in [&self.pccs, &self.fmspc, &self.ca] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// Fetches the collateral for `quote` from the PCCS at `pccs` (its base URL, with or
/// without the `/sgx/certification/v4` path). The quote must carry its PCK certificate
/// chain (certification data type 5).
pub async fn fetch_collateral(
    transport: &dyn Transport,
    pccs: &str,
    quote: &[u8],
) -> Result<QuoteCollateralV3, AttestError> {
    fetch_for(transport, &CollateralKey::of(pccs, quote)?).await
}

/// Fetches the collateral of `key`.
pub(crate) async fn fetch_for(
    transport: &dyn Transport,
    key: &CollateralKey,
) -> Result<QuoteCollateralV3, AttestError> {
    let [pck_url, tcb_url, qe_url, root_url] = urls(&key.pccs, &key.fmspc, &key.ca)?;

    let (r, pck_crl) = get(transport, &pck_url).await?;
    let pck_crl_issuer_chain = header(&r, &pck_url, &["SGX-PCK-CRL-Issuer-Chain"])?;
    // A PCCS may answer the PCK CRL in hex even when DER is asked for.
    let pck_crl = der_or_hex(pck_crl, &pck_url)?;

    let (r, body) = get(transport, &tcb_url).await?;
    let tcb_info_issuer_chain = header(
        &r,
        &tcb_url,
        &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
    )?;
    let (tcb_info, tcb_info_signature) = signed_json(&tcb_url, &body)?;

    let (r, body) = get(transport, &qe_url).await?;
    let qe_identity_issuer_chain = header(&r, &qe_url, &["SGX-Enclave-Identity-Issuer-Chain"])?;
    let (qe_identity, qe_identity_signature) = signed_json(&qe_url, &body)?;

    let (_, root) = get(transport, &root_url).await?;
    let root_ca_crl = der_or_hex(root, &root_url)?;

    Ok(QuoteCollateralV3 {
        pck_crl_issuer_chain,
        root_ca_crl,
        pck_crl,
        tcb_info_issuer_chain,
        tcb_info,
        tcb_info_signature,
        qe_identity_issuer_chain,
        qe_identity,
        qe_identity_signature,
        pck_certificate_chain: Some(key.pck_chain.clone()),
    })
}

/// A CRL body: DER (starts with a SEQUENCE) or hex text of DER.
fn der_or_hex(body: Vec<u8>, url: &str) -> Result<Vec<u8>, AttestError> {
    if body.first() == Some(&0x30) {
        return Ok(body);
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| AttestError::Pccs(format!("GET {url}: CRL is neither DER nor hex")))?;
    hex::decode(text.trim())
        .map_err(|_| AttestError::Pccs(format!("GET {url}: CRL is neither DER nor hex")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_decoding() {
        let [a, b, c, d] = urls(
            "https://pccs.example/sgx/certification/v4/",
            "00A067110000",
            "processor",
        )
        .unwrap();
        assert_eq!(
            a,
            "https://pccs.example/sgx/certification/v4/pckcrl?ca=processor&encoding=der"
        );
        assert_eq!(
            b,
            "https://pccs.example/sgx/certification/v4/tcb?fmspc=00A067110000"
        );
        assert_eq!(c, "https://pccs.example/sgx/certification/v4/qe/identity");
        assert_eq!(d, "https://pccs.example/sgx/certification/v4/rootcacrl");
        assert!(urls("ftp://x", "", "")
            .unwrap_err()
            .to_string()
            .contains("https://"));
        assert_eq!(percent_decode("a%2Db%0A").as_deref(), Ok("a-b\n"));
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err());
        assert_eq!(der_or_hex(vec![0x30, 1], "u").ok(), Some(vec![0x30, 1]));
        assert_eq!(
            der_or_hex(b"3001\n".to_vec(), "u").ok(),
            Some(vec![0x30, 1])
        );
        assert!(der_or_hex(b"zz".to_vec(), "u").is_err());
        let (body, sig) =
            signed_json("u", br#"{"tcbInfo":{"a": 1.50},"signature":"0aff"}"#).unwrap();
        assert_eq!(body, r#"{"a": 1.50}"#);
        assert_eq!(sig, vec![0x0a, 0xff]);
        let (body, _) =
            signed_json("u", br#"{"enclaveIdentity":{"id":"QE"},"signature":""}"#).unwrap();
        assert_eq!(body, r#"{"id":"QE"}"#);
    }
}
