//! Reading an SGX signing key from PEM: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8
//! (`PRIVATE KEY`) and encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2). Any other key
//! is refused with an error naming what it is; errors never carry key material.

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::der::pem;
use rsa::pkcs8::{
    DecodePrivateKey, EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef,
};

use super::rsa3072::{check_key_parts, KeyError};

const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A readable name for a PKCS#8 algorithm (and curve) identifier.
fn algorithm_name(oid: &ObjectIdentifier, curve: Option<ObjectIdentifier>) -> String {
    let curve_name = curve.map(|c| match c.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256".to_string(),
        "1.3.132.0.34" => "P-384".to_string(),
        "1.3.132.0.35" => "P-521".to_string(),
        "1.3.132.0.10" => "secp256k1".to_string(),
        other => format!("curve {other}"),
    });
    match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => match curve_name {
            Some(c) => format!("an EC {c} private key"),
            None => "an EC private key".to_string(),
        },
        "1.2.840.113549.1.1.10" => "an RSASSA-PSS private key".to_string(),
        "1.2.840.10040.4.1" => "a DSA private key".to_string(),
        "1.3.101.110" => "an X25519 private key".to_string(),
        "1.3.101.111" => "an X448 private key".to_string(),
        "1.3.101.112" => "an Ed25519 private key".to_string(),
        "1.3.101.113" => "an Ed448 private key".to_string(),
        other => format!("a private key of algorithm {other}"),
    }
}

/// Decodes a PKCS#8 `PrivateKeyInfo` (DER) that must be RSA.
fn rsa_from_pkcs8_der(der: &[u8]) -> Result<rsa::PrivateKey, KeyError> {
    let info = PrivateKeyInfoRef::try_from(der)
        .map_err(|e| KeyError::Pem(format!("PKCS#8 structure: {e}")))?;
    let oid = info.algorithm.oid;
    if oid.to_string() != OID_RSA {
        let curve = info
            .algorithm
            .parameters
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        return Err(KeyError::NotRsa(algorithm_name(&oid, curve)));
    }
    rsa::PrivateKey::from_pkcs8_der(der).map_err(|e| KeyError::Invalid(e.to_string()))
}

/// The label and DER bytes of the first PEM block; text before it (comments) is allowed.
fn first_pem_block(pem_text: &str) -> Result<(&str, Vec<u8>), KeyError> {
    let start = pem_text
        .find("-----BEGIN ")
        .ok_or_else(|| KeyError::Pem("no -----BEGIN line".into()))?;
    let block = pem_text.get(start..).unwrap_or_default();
    pem::decode_vec(block.as_bytes()).map_err(|e| KeyError::Pem(format!("PEM encoding: {e}")))
}

/// Reads an RSA private key from PEM text and checks it is RSA-3072 with e = 3.
/// `passphrase` is used only for `ENCRYPTED PRIVATE KEY`.
pub fn load_private_key_pem(
    pem_text: &str,
    passphrase: Option<&[u8]>,
) -> Result<rsa::PrivateKey, KeyError> {
    if pem_text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(KeyError::LegacyEncryption);
    }
    let (label, der) = first_pem_block(pem_text)?;
    let der = zeroize::Zeroizing::new(der);
    let key = match label {
        "RSA PRIVATE KEY" => {
            rsa::PrivateKey::from_pkcs1_der(&der).map_err(|e| KeyError::Invalid(e.to_string()))?
        }
        "PRIVATE KEY" => rsa_from_pkcs8_der(&der)?,
        "ENCRYPTED PRIVATE KEY" => {
            let passphrase = passphrase.ok_or(KeyError::NeedsPassphrase)?;
            let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                .map_err(|e| KeyError::Pem(format!("encrypted PKCS#8 structure: {e}")))?;
            let plain = info.decrypt(passphrase).map_err(|_| KeyError::Decrypt)?;
            rsa_from_pkcs8_der(plain.as_bytes())?
        }
        "EC PRIVATE KEY" => return Err(KeyError::NotRsa("an EC private key (SEC1)".into())),
        "DSA PRIVATE KEY" => return Err(KeyError::NotRsa("a DSA private key".into())),
        "OPENSSH PRIVATE KEY" => {
            return Err(KeyError::NotRsa(
                "an OpenSSH-format key; convert it with ssh-keygen -p -m PKCS8".into(),
            ))
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
            return Err(KeyError::PublicKeyOnly(label.to_string()))
        }
        other => return Err(KeyError::Pem(format!("unsupported PEM label {other:?}"))),
    };
    check_key_parts(&key)?;
    Ok(key)
}

/// Reads an RSA public key from PEM (`PUBLIC KEY` SPKI or `RSA PUBLIC KEY` PKCS#1), for
/// the offline two-step flow, and checks it is RSA-3072 with e = 3.
pub fn load_public_key_pem(pem_text: &str) -> Result<rsa::PublicKey, KeyError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let (label, der) = first_pem_block(pem_text)?;
    let key = match label {
        "PUBLIC KEY" => rsa::PublicKey::from_public_key_der(&der)
            .map_err(|e| KeyError::Invalid(format!("SPKI public key: {e}")))?,
        "RSA PUBLIC KEY" => rsa::PublicKey::from_pkcs1_der(&der)
            .map_err(|e| KeyError::Invalid(format!("PKCS#1 public key: {e}")))?,
        other => {
            return Err(KeyError::Pem(format!(
                "expected a PUBLIC KEY or RSA PUBLIC KEY block, found {other:?}"
            )))
        }
    };
    check_key_parts(&key)?;
    Ok(key)
}

#[cfg(test)]
mod public_key_tests {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;

    #[test]
    fn public_key_round_trip_and_refusals() {
        let private =
            load_private_key_pem(include_str!("../../testdata/gramine/test-key.pem"), None)
                .expect("test key");
        let public = rsa::PublicKey::from(&private);
        let pem = public
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("encode");
        let back = load_public_key_pem(&pem).expect("reads back");
        assert_eq!(back, public);
        assert!(matches!(
            load_public_key_pem("garbage"),
            Err(KeyError::Pem(_))
        ));
        let private_pem = include_str!("../../testdata/gramine/test-key.pem");
        assert!(matches!(
            load_public_key_pem(private_pem),
            Err(KeyError::Pem(_))
        ));
    }
}
