//! The state directory's default signing key as a [`Signer`] that never delays a
//! conversion: read at once when it exists; otherwise generated (RSA-3072 keygen takes
//! from a fraction of a second to over a second) and stored on a background thread while
//! the conversion fetches and scans, since the pipeline needs the key only to sign.
//! A generated key is stored only when it is first used (to sign), so a conversion that
//! fails before signing leaves no key behind (the next run generates one again).

use std::sync::Mutex;
use std::thread::JoinHandle;

use kiln_engine::sgx::signer::{PrivateKeySigner, SignError, Signer, SignerPublicKey};
use kiln_engine::sgx::sigstruct::SIGNED_PAYLOAD_SIZE;

use crate::state::{StateDir, StateError};

enum KeyState {
    /// Being generated; the thread sends the new key, not yet stored (or why not).
    Pending(
        tokio::sync::oneshot::Receiver<Result<PrivateKeySigner, StateError>>,
        StateDir,
    ),
    Ready(Box<PrivateKeySigner>),
    Failed(String),
}

/// The default key, ready or on its way (see the module docs).
pub struct DefaultKeySigner {
    state: tokio::sync::Mutex<KeyState>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for DefaultKeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultKeySigner").finish_non_exhaustive()
    }
}

impl DefaultKeySigner {
    /// The default key of `state`: read now if it exists, else generated on a background
    /// thread and stored (0600) when first used. A state directory that cannot hold a key
    /// fails here, before any conversion work.
    pub fn open(state: &StateDir) -> Result<Self, StateError> {
        if let Some(key) = state.stored_key()? {
            return Ok(Self::ready(key));
        }
        state.ensure_keys_dir()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir = state.clone();
        let store_in = state.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-keygen".into())
            .spawn(move || {
                // The receiver may be gone (the conversion failed early): the key is
                // then dropped, never stored.
                let key =
                    PrivateKeySigner::generate_with_os_rng().map_err(|source| StateError::Key {
                        path: dir.default_key_path(),
                        source,
                    });
                let _ = tx.send(key);
            });
        match thread {
            Ok(handle) => Ok(Self {
                state: tokio::sync::Mutex::new(KeyState::Pending(rx, store_in)),
                thread: Mutex::new(Some(handle)),
            }),
            // No thread: generate here.
            Err(_) => Ok(Self::ready(state.default_key()?)),
        }
    }

    fn ready(key: PrivateKeySigner) -> Self {
        Self {
            state: tokio::sync::Mutex::new(KeyState::Ready(Box::new(key))),
            thread: Mutex::new(None),
        }
    }

    /// Whether the key is being generated (the state dir had none; until [`Self::settle`]).
    pub fn generating(&self) -> bool {
        self.thread.lock().is_ok_and(|t| t.is_some())
    }

    /// Waits for a generating thread to end (call before exiting; returns at once when
    /// nothing is pending). A key is written only by its first use, inside `sign_payload`
    /// or `public_key`, so an unused key is not stored.
    pub fn settle(&self) {
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// The key, waiting for the generating thread and storing its key the first time.
    async fn with_key(&self) -> tokio::sync::MutexGuard<'_, KeyState> {
        let mut state = self.state.lock().await;
        if let KeyState::Pending(rx, dir) = &mut *state {
            *state = match rx.await {
                Ok(Ok(key)) => match dir.store_default_key(key) {
                    Ok(stored) => KeyState::Ready(Box::new(stored)),
                    Err(e) => KeyState::Failed(format!("default signing key: {e}")),
                },
                Ok(Err(e)) => KeyState::Failed(format!("default signing key: {e}")),
                Err(_) => KeyState::Failed("default signing key: key generation stopped".into()),
            };
        }
        state
    }
}

fn key(state: &KeyState) -> Result<&PrivateKeySigner, SignError> {
    match state {
        KeyState::Ready(k) => Ok(k),
        KeyState::Failed(why) => Err(SignError::Signer(why.clone())),
        KeyState::Pending(..) => Err(SignError::Signer(
            "default signing key: not generated yet".into(),
        )),
    }
}

#[async_trait::async_trait]
impl Signer for DefaultKeySigner {
    async fn public_key(&self) -> Result<SignerPublicKey, SignError> {
        let state = self.with_key().await;
        key(&state)?.public_key().await
    }

    async fn sign_payload(
        &self,
        payload: &[u8; SIGNED_PAYLOAD_SIZE],
    ) -> Result<Vec<u8>, SignError> {
        let state = self.with_key().await;
        key(&state)?.sign_payload(payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn generated_in_the_background_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("kiln"));
        let signer = DefaultKeySigner::open(&state).unwrap();
        assert!(signer.generating());
        let first = block_on(signer.public_key()).unwrap();
        signer.settle();
        let stored = state.default_key().unwrap().public_key_bytes();
        assert_eq!(first, stored);
        let again = DefaultKeySigner::open(&state).unwrap();
        assert!(!again.generating());
        assert_eq!(block_on(again.public_key()).unwrap(), stored);
        let payload = [7u8; SIGNED_PAYLOAD_SIZE];
        assert_eq!(
            block_on(again.sign_payload(&payload)).unwrap(),
            block_on(signer.sign_payload(&payload)).unwrap()
        );
    }

    #[test]
    fn settle_without_use_stores_no_key() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("kiln"));
        DefaultKeySigner::open(&state).unwrap().settle();
        let files = std::fs::read_dir(d.path().join("kiln/keys"))
            .unwrap()
            .count();
        assert_eq!(files, 0);
        assert!(state.stored_key().unwrap().is_none());
    }

    #[test]
    fn first_use_stores_exactly_the_key() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("kiln"));
        let signer = DefaultKeySigner::open(&state).unwrap();
        block_on(signer.sign_payload(&[1u8; SIGNED_PAYLOAD_SIZE])).unwrap();
        signer.settle();
        let files: Vec<_> = std::fs::read_dir(d.path().join("kiln/keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [std::ffi::OsString::from("default.pem")]);
    }

    #[cfg(unix)]
    #[test]
    fn an_unusable_state_dir_fails_at_once() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = DefaultKeySigner::open(&StateDir::new(file.join("kiln"))).unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }
}
