//! `verify`: rebuilds each enclave from the image's own contents and checks every claim
//! the image makes about it. The result is a [`VerifyReport`]: one [`Check`] per claim,
//! each passed, failed or informational, with an explanation a person can act on.
//!
//! Per enclave: the SIGSTRUCT parses, its RSA signature and Q1/Q2 verify; MRENCLAVE
//! recomputed from the manifest and the image's libpal.so equals ENCLAVEHASH; the
//! SIGSTRUCT body is what Gramine derives from that manifest (attributes, ISV ids); the
//! label names the same MRENCLAVE; the `ENCLAVEOS_SIGNATURE*` env var holds the same
//! bytes as the `.sig` file. Per image: libpal.so matches the runtime descriptor's hash;
//! MRSIGNER matches its label; every SIGSTRUCT has the same key and ISV ids; the
//! user's expected MRENCLAVE/MRSIGNER, if given.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::read::{labels, EnclaveFiles, ImageContents, ImageKind};
use crate::sgx::gramine_layout::measure;
use crate::sgx::signer::gramine_sigstruct_body;
use crate::sgx::sigstruct::Sigstruct;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The claim holds.
    Pass,
    /// The claim does not hold (or cannot be checked because something is missing).
    Fail,
    /// Shown for information; neither passes nor fails the image (e.g. a measurement
    /// that cannot be recomputed for a non-Gramine layout).
    Info,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What is checked: `signature`, `q1q2`, `mrenclave`, `sigstruct-body`, `label`,
    /// `env-signature`, `runtime-libpal`, `libsysdb`, `manifest-isv`, `mrsigner-label`, `same-key`, `same-isv`,
    /// `isv-labels`, `expected-mrenclave`, `expected-mrsigner`, `sigstruct`, `read`,
    /// `format`.
    pub id: String,
    /// The enclave (`sgx1`, `edmm`, `gsc`, env var name) or `image`.
    pub subject: String,
    /// The outcome.
    pub status: CheckStatus,
    /// What was compared, with the values.
    pub explanation: String,
}

/// What the user expects, if anything (hex, any case).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expectations {
    /// Expected MRENCLAVE (of either enclave).
    pub mrenclave: Option<String>,
    /// Expected MRSIGNER.
    pub mrsigner: Option<String>,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// What kind of image.
    pub format: ImageKind,
    /// Image manifest digest.
    pub manifest_digest: String,
    /// True when no check failed.
    pub passed: bool,
    /// Recomputed (or, where not recomputable, claimed) MRENCLAVE per enclave, hex.
    pub mrenclaves: Vec<(String, String)>,
    /// MRSIGNER of the first SIGSTRUCT, hex.
    pub mrsigner: Option<String>,
    /// ISVPRODID of the first SIGSTRUCT (check `same-isv` compares the others).
    #[serde(default)]
    pub isv_prod_id: Option<u16>,
    /// ISVSVN of the first SIGSTRUCT.
    #[serde(default)]
    pub isv_svn: Option<u16>,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Fail)
    }
}

/// The checks of a report as they are made (verify's and attest's).
pub(crate) struct Out(pub(crate) Vec<Check>);

impl Out {
    /// A check that passed when `ok`, else failed.
    pub(crate) fn push(&mut self, id: &str, subject: &str, ok: bool, explanation: String) {
        self.0.push(Check {
            id: id.into(),
            subject: subject.into(),
            status: if ok {
                CheckStatus::Pass
            } else {
                CheckStatus::Fail
            },
            explanation,
        });
    }
    /// A fact reported without a verdict.
    pub(crate) fn info(&mut self, id: &str, subject: &str, explanation: String) {
        self.0.push(Check {
            id: id.into(),
            subject: subject.into(),
            status: CheckStatus::Info,
            explanation,
        });
    }
}

/// One enclave's SIGSTRUCT and the MRENCLAVE verify settled on for it.
struct Verified {
    name: String,
    sig: Sigstruct,
    /// Recomputed MRENCLAVE, or `None` when not recomputable/recomputed.
    measured: Option<[u8; 32]>,
}

fn sigstruct_bytes(e: &EnclaveFiles) -> Result<&[u8], String> {
    match (&e.sig, &e.env_sig, &e.sig_path) {
        (Some(s), _, _) => Ok(s),
        (None, _, Some(p)) => Err(format!("{p} is missing from the image")),
        (None, Some(Ok(s)), None) => Ok(s),
        (None, Some(Err(err)), None) => Err(err.clone()),
        (None, None, None) => Err("no SIGSTRUCT".into()),
    }
}

fn check_enclave(c: &ImageContents, e: &EnclaveFiles, out: &mut Out) -> Option<Verified> {
    let n = e.name.as_str();
    let sig = match sigstruct_bytes(e).and_then(|b| Sigstruct::parse(b).map_err(|x| x.to_string()))
    {
        Ok(s) => s,
        Err(err) => {
            out.push(
                "sigstruct",
                n,
                false,
                format!("SIGSTRUCT unreadable: {err}"),
            );
            return None;
        }
    };
    let from = e
        .sig_path
        .clone()
        .or_else(|| e.env_var.clone())
        .unwrap_or_default();
    out.push("sigstruct", n, true, format!("SIGSTRUCT read from {from}"));
    match sig.verify_signature() {
        Ok(()) => out.push(
            "signature",
            n,
            true,
            "RSA-3072 signature verifies with the embedded modulus".into(),
        ),
        Err(err) => out.push("signature", n, false, format!("signature invalid: {err}")),
    }
    match sig.verify_q1_q2() {
        Ok(()) => out.push("q1q2", n, true, "Q1 and Q2 are correct".into()),
        Err(err) => out.push("q1q2", n, false, format!("Q1/Q2 invalid: {err}")),
    }
    let claimed = hex::encode(sig.body.enclavehash);
    let measured = if c.kind == ImageKind::EnclaveOsEnv {
        out.info(
            "mrenclave",
            n,
            format!(
                "not recomputable: the image does not use Gramine's enclave layout; \
                 the SIGSTRUCT claims MRENCLAVE {claimed}"
            ),
        );
        None
    } else {
        measure_enclave(c, e, &sig, out)
    };
    if let Some(label) = &e.label {
        let have = measured.map(hex::encode).unwrap_or_else(|| claimed.clone());
        match c.labels.get(label) {
            Some(v) if v.eq_ignore_ascii_case(&have) => {
                out.push("label", n, true, format!("label {label} = {v}"))
            }
            Some(v) => out.push(
                "label",
                n,
                false,
                format!("label {label} is {v}, but the enclave's MRENCLAVE is {have}"),
            ),
            None => out.push("label", n, false, format!("label {label} is missing")),
        }
    }
    if let Some(var) = &e.env_var {
        if c.kind == ImageKind::Kiln || e.sig.is_some() {
            match (&e.env_sig, &e.sig) {
                (Some(Ok(env)), Some(file)) if env == file => out.push(
                    "env-signature",
                    n,
                    true,
                    format!("{var} holds the same SIGSTRUCT as the .sig file"),
                ),
                (Some(Ok(_)), Some(_)) => out.push(
                    "env-signature",
                    n,
                    false,
                    format!("{var} holds a different SIGSTRUCT than the .sig file"),
                ),
                (Some(Err(err)), _) => out.push("env-signature", n, false, err.clone()),
                (None, _) => out.push(
                    "env-signature",
                    n,
                    false,
                    format!("env var {var} is missing"),
                ),
                (Some(Ok(_)), None) => out.push(
                    "env-signature",
                    n,
                    false,
                    "no .sig file to compare with".into(),
                ),
            }
        }
    }
    Some(Verified {
        name: e.name.clone(),
        sig,
        measured,
    })
}

fn measure_enclave(
    c: &ImageContents,
    e: &EnclaveFiles,
    sig: &Sigstruct,
    out: &mut Out,
) -> Option<[u8; 32]> {
    let n = e.name.as_str();
    let Some(manifest) = &e.manifest else {
        out.push(
            "mrenclave",
            n,
            false,
            format!(
                "cannot recompute MRENCLAVE: {} is missing from the image",
                e.manifest_path.as_deref().unwrap_or("the manifest")
            ),
        );
        return None;
    };
    let Some(libpal) = &c.libpal else {
        out.push(
            "mrenclave",
            n,
            false,
            "cannot recompute MRENCLAVE: no SGX libpal.so found in the image".into(),
        );
        return None;
    };
    let m = match measure(manifest, &libpal.bytes) {
        Ok(m) => m,
        Err(err) => {
            out.push(
                "mrenclave",
                n,
                false,
                format!("cannot recompute MRENCLAVE: {err}"),
            );
            return None;
        }
    };
    let got = hex::encode(m.mrenclave);
    let claimed = hex::encode(sig.body.enclavehash);
    out.push(
        "mrenclave",
        n,
        m.mrenclave == sig.body.enclavehash,
        if m.mrenclave == sig.body.enclavehash {
            format!("MRENCLAVE {got} recomputed from the manifest and {} equals the SIGSTRUCT's ENCLAVEHASH", libpal.path)
        } else {
            format!("MRENCLAVE recomputed from the manifest and {} is {got}, but the SIGSTRUCT's ENCLAVEHASH is {claimed}", libpal.path)
        },
    );
    // ISV ids may be overridden at signing time (as `kiln sgx sign` and Gramine's
    // signer allow), so the body is compared with the SIGSTRUCT's own ISV ids and the
    // manifest's ids are reported separately.
    let mut expected = gramine_sigstruct_body(m.mrenclave, &m.params, sig.body.date);
    expected.isvprodid = sig.body.isvprodid;
    expected.isvsvn = sig.body.isvsvn;
    // ENCLAVEHASH is the `mrenclave` check's.
    expected.enclavehash = sig.body.enclavehash;
    out.push(
        "sigstruct-body",
        n,
        expected == sig.body,
        if expected == sig.body {
            "attributes, masks and MISCSELECT are those Gramine derives from the manifest".into()
        } else {
            format!(
                "the SIGSTRUCT's attributes differ from those Gramine derives from the manifest \
                 (debug {}, edmm {}): SIGSTRUCT flags {:#x} xfrm {:#x} miscselect {:#x}, \
                 expected flags {:#x} xfrm {:#x} miscselect {:#x}",
                m.params.debug,
                m.params.edmm_enable,
                sig.body.attributes.flags,
                sig.body.attributes.xfrm,
                sig.body.miscselect,
                expected.attributes.flags,
                expected.attributes.xfrm,
                expected.miscselect
            )
        },
    );
    let ids = format!(
        "manifest isvprodid/isvsvn {}/{}, SIGSTRUCT {}/{}",
        m.params.isvprodid, m.params.isvsvn, sig.body.isvprodid, sig.body.isvsvn
    );
    if (m.params.isvprodid, m.params.isvsvn) == (sig.body.isvprodid, sig.body.isvsvn) {
        out.push("manifest-isv", n, true, ids);
    } else {
        out.info(
            "manifest-isv",
            n,
            format!("the SIGSTRUCT overrides the manifest's ISV ids ({ids})"),
        );
    }
    Some(m.mrenclave)
}

fn check_runtime(c: &ImageContents, out: &mut Out) {
    let (Some(rt), Some(pal)) = (&c.runtime, &c.libpal) else {
        out.push(
            "runtime-libpal",
            "image",
            false,
            "the runtime layer's descriptor or libpal.so could not be read".into(),
        );
        return;
    };
    let got = hex::encode(Sha256::digest(&pal.bytes));
    out.push(
        "runtime-libpal",
        "image",
        got == rt.sgx_libpal_sha256,
        if got == rt.sgx_libpal_sha256 {
            format!("{} has the descriptor's sha256 {got}", pal.path)
        } else {
            format!(
                "{} has sha256 {got}, but the runtime descriptor says {}",
                pal.path, rt.sgx_libpal_sha256
            )
        },
    );
}

/// `loader.entrypoint.uri` and `.sha256` of a manifest.
fn loader_entrypoint(manifest: &[u8]) -> Option<(String, String)> {
    let t: toml::Table = std::str::from_utf8(manifest).ok()?.parse().ok()?;
    let e = t.get("loader")?.get("entrypoint")?;
    Some((
        e.get("uri")?.as_str()?.to_string(),
        e.get("sha256")?.as_str()?.to_string(),
    ))
}

/// The manifest's LibOS (`loader.entrypoint`) is the runtime's `libsysdb.so`: same path
/// and hash as the descriptor, and the runtime layer's file has that hash.
fn check_libsysdb(c: &ImageContents, e: &EnclaveFiles, out: &mut Out) {
    let (Some(rt), Some(manifest)) = (&c.runtime, &e.manifest) else {
        return;
    };
    let n = e.name.as_str();
    let Some((uri, sha)) = loader_entrypoint(manifest) else {
        out.push(
            "libsysdb",
            n,
            false,
            "the manifest has no loader.entrypoint.uri/sha256".into(),
        );
        return;
    };
    let path = rt.path_of(&rt.libsysdb);
    let in_layer = c.runtime_files.get(&path).map(hex::encode);
    let problems: Vec<String> = [
        (uri != rt.libsysdb_uri()).then(|| {
            format!(
                "loader.entrypoint.uri is {uri}, the runtime's LibOS is {}",
                rt.libsysdb_uri()
            )
        }),
        (sha != rt.libsysdb_sha256).then(|| {
            format!(
                "loader.entrypoint.sha256 is {sha}, the runtime descriptor says {}",
                rt.libsysdb_sha256
            )
        }),
        (in_layer.as_deref() != Some(sha.as_str())).then(|| match &in_layer {
            Some(h) => format!("{path} in the runtime layer has sha256 {h}"),
            None => format!("{path} is not in the runtime layer"),
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        out.push(
            "libsysdb",
            n,
            true,
            format!("the LibOS {uri} (sha256 {sha}) is the runtime layer's"),
        );
    } else {
        out.push("libsysdb", n, false, problems.join("; "));
    }
}

fn check_image(c: &ImageContents, v: &[Verified], exp: &Expectations, out: &mut Out) {
    let Some(first) = v.first() else {
        return;
    };
    let mrsigner = hex::encode(first.sig.mrsigner());
    if c.kind == ImageKind::Kiln {
        match c.labels.get(labels::MRSIGNER) {
            Some(l) if l.eq_ignore_ascii_case(&mrsigner) => out.push(
                "mrsigner-label",
                "image",
                true,
                format!("label {} = {l}", labels::MRSIGNER),
            ),
            Some(l) => out.push(
                "mrsigner-label",
                "image",
                false,
                format!(
                    "label {} is {l}, but the SIGSTRUCT's MRSIGNER is {mrsigner}",
                    labels::MRSIGNER
                ),
            ),
            None => out.push(
                "mrsigner-label",
                "image",
                false,
                format!("label {} is missing", labels::MRSIGNER),
            ),
        }
        for (label, value, what) in [
            (labels::ISVPRODID, first.sig.body.isvprodid, "ISVPRODID"),
            (labels::ISVSVN, first.sig.body.isvsvn, "ISVSVN"),
        ] {
            let l = c.labels.get(label);
            let ok = l.map(|l| l.trim() == value.to_string()).unwrap_or(false);
            out.push(
                "isv-labels",
                "image",
                ok,
                format!(
                    "label {label} is {}, the SIGSTRUCT's {what} is {value}",
                    l.map(String::as_str).unwrap_or("missing")
                ),
            );
        }
    }
    if v.len() > 1 {
        let same_key = v.iter().all(|x| x.sig.modulus == first.sig.modulus);
        out.push(
            "same-key",
            "image",
            same_key,
            if same_key {
                format!("every SIGSTRUCT is signed by MRSIGNER {mrsigner}")
            } else {
                let all: Vec<String> = v
                    .iter()
                    .map(|x| format!("{}: {}", x.name, hex::encode(x.sig.mrsigner())))
                    .collect();
                format!(
                    "the SIGSTRUCTs are signed by different keys ({})",
                    all.join(", ")
                )
            },
        );
        let same_isv = v.iter().all(|x| {
            x.sig.body.isvprodid == first.sig.body.isvprodid
                && x.sig.body.isvsvn == first.sig.body.isvsvn
        });
        let all: Vec<String> = v
            .iter()
            .map(|x| format!("{}: {}/{}", x.name, x.sig.body.isvprodid, x.sig.body.isvsvn))
            .collect();
        out.push(
            "same-isv",
            "image",
            same_isv,
            format!("ISVPRODID/ISVSVN per enclave: {}", all.join(", ")),
        );
    }
    if let Some(want) = &exp.mrenclave {
        let have: Vec<String> = v
            .iter()
            .map(|x| hex::encode(x.measured.unwrap_or(x.sig.body.enclavehash)))
            .collect();
        let ok = have.iter().any(|h| h.eq_ignore_ascii_case(want.trim()));
        out.push(
            "expected-mrenclave",
            "image",
            ok,
            if ok {
                format!("an enclave has the expected MRENCLAVE {want}")
            } else {
                format!(
                    "expected MRENCLAVE {want}, the image's are {}",
                    have.join(", ")
                )
            },
        );
    }
    if let Some(want) = &exp.mrsigner {
        let ok = mrsigner.eq_ignore_ascii_case(want.trim());
        out.push(
            "expected-mrsigner",
            "image",
            ok,
            if ok {
                format!("MRSIGNER is the expected {want}")
            } else {
                format!("expected MRSIGNER {want}, the image's is {mrsigner}")
            },
        );
    }
}

/// Verifies an image read by [`super::read_image`].
pub fn verify(c: &ImageContents, exp: &Expectations) -> VerifyReport {
    let mut out = Out(Vec::new());
    if c.kind == ImageKind::Unknown {
        out.push(
            "format",
            "image",
            false,
            "not an enclave image kiln recognises: no dev.kiln.format label, no GSC \
             /gramine/app_files/entrypoint.manifest.sgx, no ENCLAVEOS_SIGNATURE env var"
                .into(),
        );
    }
    for p in &c.problems {
        out.push("read", "image", false, p.clone());
    }
    if c.kind == ImageKind::Kiln {
        check_runtime(c, &mut out);
    }
    let verified: Vec<Verified> = c
        .enclaves
        .iter()
        .filter_map(|e| {
            if c.kind == ImageKind::Kiln {
                check_libsysdb(c, e, &mut out);
            }
            check_enclave(c, e, &mut out)
        })
        .collect();
    check_image(c, &verified, exp, &mut out);
    let checks = out.0;
    VerifyReport {
        format: c.kind,
        manifest_digest: c.manifest_digest.clone(),
        passed: !checks.is_empty() && checks.iter().all(|x| x.status != CheckStatus::Fail),
        mrenclaves: verified
            .iter()
            .map(|x| {
                (
                    x.name.clone(),
                    hex::encode(x.measured.unwrap_or(x.sig.body.enclavehash)),
                )
            })
            .collect(),
        mrsigner: verified.first().map(|x| hex::encode(x.sig.mrsigner())),
        isv_prod_id: verified.first().map(|x| x.sig.body.isvprodid),
        isv_svn: verified.first().map(|x| x.sig.body.isvsvn),
        checks,
    }
}
