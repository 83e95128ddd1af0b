//! The state directory's default signing key as a [`Signer`] that never delays a
//! conversion: read at once when it exists; otherwise generated (RSA-3072 keygen takes
//! from a fraction of a second to over a second) and stored on a background thread while
//! the conversion fetches and scans, since the pipeline needs the key only to sign.

use std::sync::Mutex;
use std::thread::JoinHandle;

use kiln_engine::sgx::signer::{PrivateKeySigner, SignError, Signer, SignerPublicKey};
use kiln_engine::sgx::sigstruct::SIGNED_PAYLOAD_SIZE;

use crate::state::{StateDir, StateError};

enum KeyState {
    /// Being generated; the thread sends the stored key (or why not).
    Pending(tokio::sync::oneshot::Receiver<Result<PrivateKeySigner, StateError>>),
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
    /// The default key of `state`: read now if it exists, else generated and stored
    /// (0600) on a background thread. A state directory that cannot hold a key fails
    /// here, before any conversion work.
    pub fn open(state: &StateDir) -> Result<Self, StateError> {
        if let Some(key) = state.stored_key()? {
            return Ok(Self::ready(key));
        }
        state.ensure_keys_dir()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir = state.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-keygen".into())
            .spawn(move || {
                // The receiver may be gone (the conversion failed early): the key is
                // stored all the same, for the next run.
                let _ = tx.send(dir.default_key());
            });
        match thread {
            Ok(handle) => Ok(Self {
                state: tokio::sync::Mutex::new(KeyState::Pending(rx)),
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

    /// Waits until a key being generated is stored, so the process never exits halfway
    /// through writing it (call before exiting; returns at once when nothing is pending).
    pub fn settle(&self) {
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// The key, waiting for the generating thread the first time.
    async fn with_key(&self) -> tokio::sync::MutexGuard<'_, KeyState> {
        let mut state = self.state.lock().await;
        if let KeyState::Pending(rx) = &mut *state {
            *state = match rx.await {
                Ok(Ok(key)) => KeyState::Ready(Box::new(key)),
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
        KeyState::Pending(_) => Err(SignError::Signer(
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
    fn settle_without_use_leaves_exactly_the_key() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path().join("kiln"));
        DefaultKeySigner::open(&state).unwrap().settle();
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
