//! kiln's native state directory (`$XDG_STATE_HOME/kiln`, else `~/.local/state/kiln`):
//! the default signing key (generated on first use, mode 0600) and the layer cache.
//!
//! ```text
//! <state>/keys/default.pem     RSA-3072 e=3 PKCS#8 PEM, 0600 (directory 0700)
//! <state>/layers/               one layer summary per digest (engine DirCacheStore)
//! <state>/collateral/           PCCS collateral per platform (engine attest::collateral_cache)
//! ```

use std::path::{Path, PathBuf};

use kiln_engine::image::cache::DirCacheStore;
use kiln_engine::sgx::signer::{PrivateKeySigner, SignError};

/// A state directory problem.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Neither `$XDG_STATE_HOME` nor `$HOME` is set.
    #[error("no state directory: set $XDG_STATE_HOME or $HOME, or pass --state-dir")]
    NoHome,
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The key could not be read or generated.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: SignError,
    },
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// A state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `$XDG_STATE_HOME/kiln`, else `$HOME/.local/state/kiln`.
    pub fn default_root() -> Result<PathBuf, StateError> {
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            return Ok(PathBuf::from(x).join("kiln"));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or(StateError::NoHome)?;
        Ok(PathBuf::from(home).join(".local/state/kiln"))
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The default key's path.
    pub fn default_key_path(&self) -> PathBuf {
        self.root.join("keys").join("default.pem")
    }

    /// The default signing key if the state dir holds one.
    pub fn stored_key(&self) -> Result<Option<PrivateKeySigner>, StateError> {
        let path = self.default_key_path();
        match std::fs::read_to_string(&path) {
            Ok(pem) => PrivateKeySigner::from_pem(&pem, None)
                .map(Some)
                .map_err(|source| StateError::Key { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The default signing key: read, or generated and written (0600) on first use.
    pub fn default_key(&self) -> Result<PrivateKeySigner, StateError> {
        if let Some(key) = self.stored_key()? {
            return Ok(key);
        }
        self.ensure_keys_dir()?;
        let key = PrivateKeySigner::generate_with_os_rng().map_err(|source| StateError::Key {
            path: self.default_key_path(),
            source,
        })?;
        self.store_default_key(key)
    }

    /// Stores a newly generated `key` as the default key (0600) and returns the key that
    /// is now the default: `key`, or the one a concurrent first use stored before it.
    pub fn store_default_key(&self, key: PrivateKeySigner) -> Result<PrivateKeySigner, StateError> {
        let path = self.default_key_path();
        self.ensure_keys_dir()?;
        let pem = key.to_pkcs8_pem().map_err(|source| StateError::Key {
            path: path.clone(),
            source,
        })?;
        if write_private(&path, pem.as_bytes())? {
            return Ok(key);
        }
        // A concurrent first use stored its key first: that one is the default key.
        self.stored_key()?.ok_or_else(|| {
            io(&path)(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the key stored by a concurrent first use is gone",
            ))
        })
    }

    /// Creates the keys directory (0700) if missing.
    pub fn ensure_keys_dir(&self) -> Result<(), StateError> {
        create_private_dir(&self.root.join("keys"))
    }

    /// The layer cache.
    pub fn layer_cache(&self) -> DirCacheStore {
        DirCacheStore::new(self.root.join("layers"))
    }

    /// The store of collateral fetched from a PCCS (`kiln attest verify --pccs`).
    pub fn collateral_cache(&self) -> DirCacheStore {
        DirCacheStore::new(self.root.join("collateral"))
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), StateError> {
    std::fs::create_dir_all(dir).map_err(io(dir))
}

/// Writes a new file readable only by its owner, atomically (temp file, then a hard
/// link that fails if the file exists); an existing key (a concurrent first use) is
/// kept. Returns whether `data` is what the file now holds.
fn write_private(path: &Path, data: &[u8]) -> Result<bool, StateError> {
    use std::io::Write;
    // Unique per process and call, so concurrent writers never share a temp file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    // `hard_link` refuses an existing destination, so of two concurrent first uses
    // exactly one wins (a check-then-rename could let both think they stored theirs).
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_keeps_the_first_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("default.pem");
        assert!(write_private(&p, b"first").unwrap());
        assert!(!write_private(&p, b"second").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_first_uses_agree_on_one_key() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("kiln"));
        let keys: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|_| scope.spawn(|| s.default_key().unwrap().public_key_bytes()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let stored = s.default_key().unwrap().public_key_bytes();
        assert!(keys.iter().all(|k| *k == stored));
        let left: Vec<_> = std::fs::read_dir(d.path().join("kiln/keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("default.pem")]);
    }

    #[test]
    fn key_generated_once_with_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("kiln"));
        let k1 = s.default_key().unwrap();
        let k2 = s.default_key().unwrap();
        assert_eq!(k1.public_key_bytes(), k2.public_key_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(s.default_key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600);
            let m = std::fs::metadata(d.path().join("kiln/keys"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o700);
        }
    }
}
