//! `kiln sgx sign`: a drop-in for `gramine-sgx-sign` on an existing final manifest:
//! measures it with its libpal.so, signs the SIGSTRUCT with Gramine's attribute defaults
//! (isvprodid, isvsvn and debug from the manifest) and writes the `.sig`.
//!
//! Three ways to sign:
//! - `--key key.pem`: a PEM private key (PKCS#1, PKCS#8, encrypted PKCS#8 with the
//!   passphrase read from `--passphrase-file` or `$KILN_KEY_PASSPHRASE`);
//! - offline step 1, `--payload-out FILE`: writes the 256 bytes to sign (e.g. with
//!   `openssl dgst -sha256 -sign key.pem -out sig.bin FILE` on an offline machine);
//! - offline step 2, `--signature sig.bin --public-key pub.pem`: verifies that signature
//!   (big-endian, as `openssl dgst` writes it) and assembles the SIGSTRUCT.

use std::path::PathBuf;

use anyhow::{bail, Context};
use kiln_engine::sgx::pem_key::load_public_key_pem;
use kiln_engine::sgx::sigstruct_date::SigstructDate;
use kiln_engine::sgx::{gramine_layout, signer};

/// Arguments of `kiln sgx sign`.
#[derive(clap::Args)]
pub struct Args {
    /// The final manifest (`.manifest.sgx`, as measured by Gramine).
    #[arg(long, value_name = "FILE.manifest.sgx")]
    manifest: PathBuf,
    /// Gramine's libpal.so (the SGX PAL).
    #[arg(long, value_name = "libpal.so")]
    libpal: PathBuf,
    /// The signing key (RSA-3072, e = 3) as PEM.
    #[arg(long, value_name = "key.pem", conflicts_with_all = ["payload_out", "signature"])]
    key: Option<PathBuf>,
    /// File holding the passphrase of an encrypted PKCS#8 key (else $KILN_KEY_PASSPHRASE).
    #[arg(long, value_name = "FILE", requires = "key")]
    passphrase_file: Option<PathBuf>,
    /// SIGSTRUCT date, YYYY-MM-DD (default: today, local time, as Gramine does).
    /// Required for the offline two-step flow, and the same in both steps.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<SigstructDate>,
    /// Offline step 1: write the 256-byte signed payload here instead of signing.
    #[arg(long, value_name = "FILE", conflicts_with = "signature")]
    payload_out: Option<PathBuf>,
    /// Offline step 2: the RSA signature over the payload (384 bytes, big-endian).
    #[arg(long, value_name = "sig.bin", requires = "public_key")]
    signature: Option<PathBuf>,
    /// Offline step 2: the signer's public key (PEM, SPKI or PKCS#1).
    #[arg(long, value_name = "pub.pem", requires = "signature")]
    public_key: Option<PathBuf>,
    /// ISVPRODID for the SIGSTRUCT, overriding the manifest's `sgx.isvprodid`.
    #[arg(long)]
    isvprodid: Option<u16>,
    /// ISVSVN for the SIGSTRUCT, overriding the manifest's `sgx.isvsvn`.
    #[arg(long)]
    isvsvn: Option<u16>,
    /// Where to write the SIGSTRUCT (`.sig`).
    #[arg(long, value_name = "FILE.sig", required_unless_present = "payload_out")]
    out: Option<PathBuf>,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_text(path: &PathBuf) -> anyhow::Result<String> {
    String::from_utf8(read(path)?).with_context(|| format!("{} is not text", path.display()))
}

/// Today's date in local time (UTC when the local offset cannot be determined).
fn today() -> anyhow::Result<SigstructDate> {
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let year = u16::try_from(now.year()).context("the current year does not fit a SIGSTRUCT")?;
    Ok(SigstructDate::new(year, u8::from(now.month()), now.day())?)
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let manifest = read(&args.manifest)?;
    let libpal = read(&args.libpal)?;
    let measured = gramine_layout::measure(&manifest, &libpal)
        .with_context(|| format!("measuring {}", args.manifest.display()))?;
    let two_step = args.payload_out.is_some() || args.signature.is_some();
    let date = match args.date {
        Some(date) => date,
        None if two_step => {
            bail!("--date is required for the offline two-step flow (the same date in both steps)")
        }
        None => today()?,
    };
    let mut params = measured.params.clone();
    params.isvprodid = args.isvprodid.unwrap_or(params.isvprodid);
    params.isvsvn = args.isvsvn.unwrap_or(params.isvsvn);
    let body = signer::gramine_sigstruct_body(measured.mrenclave, &params, date);
    println!("mrenclave {}", hex::encode(measured.mrenclave));

    if let Some(path) = &args.payload_out {
        std::fs::write(path, signer::prepare(&body))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("payload {}", path.display());
        return Ok(());
    }

    let sigstruct = match (&args.key, &args.signature, &args.public_key) {
        (Some(key), None, None) => {
            let pem = zeroize::Zeroizing::new(read_text(key)?);
            let passphrase = match &args.passphrase_file {
                Some(file) => Some(zeroize::Zeroizing::new(read(file)?)),
                None => std::env::var("KILN_KEY_PASSPHRASE")
                    .ok()
                    .map(|p| zeroize::Zeroizing::new(p.into_bytes())),
            };
            let passphrase = passphrase.as_ref().map(|p| trim_newline(p));
            let key_signer = signer::PrivateKeySigner::from_pem(&pem, passphrase)
                .with_context(|| format!("signing key {}", key.display()))?;
            key_signer.sign_sigstruct(body)?
        }
        (None, Some(signature), Some(public_key)) => {
            let public = load_public_key_pem(&read_text(public_key)?)
                .with_context(|| format!("public key {}", public_key.display()))?;
            let public = signer::SignerPublicKey::from(&public);
            signer::complete(body, &public, &read(signature)?)
                .with_context(|| format!("signature {}", signature.display()))?
        }
        _ => bail!("give --key, or --payload-out, or --signature with --public-key"),
    };
    let out = args.out.as_ref().context("--out is required")?;
    std::fs::write(out, sigstruct.to_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!("mrsigner {}", hex::encode(sigstruct.mrsigner()));
    Ok(())
}

/// A passphrase file usually ends with a newline that is not part of the passphrase.
fn trim_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}
