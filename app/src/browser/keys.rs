//! The page's signing key, resolved inside the Web Worker: a stored WebCrypto key (read
//! from the key store; the CryptoKey stays non-extractable), a sealed imported key
//! (unsealed and imported into WebCrypto here), or an in-memory PEM. Nothing here makes a
//! network request.

use std::sync::Arc;

use kiln_engine::sgx::signer::Signer;

use super::protocol::KeySpec;
use crate::keystore;
use crate::webcrypto::{import_private_pkcs8, unseal_bytes, WebCryptoSigner};

/// The signer for `key`; the error says which key and why (never key material).
// Single-threaded wasm: the signer holds JavaScript objects and is never sent anywhere.
#[allow(clippy::arc_with_non_send_sync)]
pub async fn signer(key: &KeySpec) -> Result<Arc<dyn Signer>, String> {
    match key {
        KeySpec::Stored { id } => {
            let s = keystore::webcrypto_signer(id)
                .await
                .map_err(|e| format!("key {id}: {e}"))?;
            Ok(Arc::new(s))
        }
        KeySpec::Sealed { id, passphrase } => {
            let info = keystore::list()
                .await
                .map_err(|e| format!("key store: {e}"))?
                .into_iter()
                .find(|k| &k.id == id)
                .ok_or_else(|| format!("no key with id {id}"))?;
            let sealed = keystore::sealed_blob(id)
                .await
                .map_err(|e| format!("key {id}: {e}"))?;
            let der = zeroize::Zeroizing::new(
                unseal_bytes(passphrase, &sealed)
                    .await
                    .map_err(|e| format!("key {id}: {e}"))?,
            );
            let private_key = import_private_pkcs8(&der)
                .await
                .map_err(|e| format!("key {id}: importing into WebCrypto: {e}"))?;
            Ok(Arc::new(WebCryptoSigner::new(private_key, info.jwk)))
        }
        KeySpec::Pem { pem } => {
            let k =
                crate::engine_bridge::import_pem(pem, None).map_err(|e| format!("PEM key: {e}"))?;
            Ok(Arc::new(k.signer))
        }
    }
}
