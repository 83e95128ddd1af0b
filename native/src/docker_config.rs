//! Registry credentials from docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): the `auths` map, with either a base64 `auth` of
//! `user:password` or `username`/`password` fields. Credential helpers (`credsStore`,
//! `credHelpers`) and identity tokens are not supported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use kiln_engine::image::registry::Credentials;

/// Reading `config.json` failed. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    /// The file could not be read.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path}: not a docker config file: {detail}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message (no values).
        detail: String,
    },
    /// An `auths` entry's `auth` field is not base64 of `user:password`.
    #[error("{path}: auths entry {registry:?}: the \"auth\" field is not base64 of user:password")]
    BadAuth {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        registry: String,
    },
}

#[derive(serde::Deserialize, Default)]
struct File {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(serde::Deserialize, Default)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The credentials of a docker config file, keyed by registry host.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    entries: BTreeMap<String, Credentials>,
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `HOST:PORT` stays.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    k.to_ascii_lowercase()
}

fn hub_alias(host: &str) -> &str {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io"
        }
        h => h,
    }
}

impl DockerConfig {
    /// The default file: `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Loads the default file; an absent file gives an empty config.
    pub fn load_default() -> Result<Self, DockerConfigError> {
        match Self::default_path() {
            Some(p) if p.exists() => Self::load(&p),
            _ => Ok(DockerConfig::default()),
        }
    }

    /// Loads a file.
    pub fn load(path: &Path) -> Result<Self, DockerConfigError> {
        let bytes = std::fs::read(path).map_err(|e| DockerConfigError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Self::from_json(&bytes, path)
    }

    /// Parses a file's bytes (`path` only names it in errors).
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self, DockerConfigError> {
        let f: File = serde_json::from_slice(bytes).map_err(|e| DockerConfigError::Json {
            path: path.to_path_buf(),
            // serde_json messages name positions and types, never values
            detail: format!(
                "line {} column {}: {:?}",
                e.line(),
                e.column(),
                e.classify()
            ),
        })?;
        let mut entries = BTreeMap::new();
        for (key, e) in f.auths {
            let creds = match (&e.auth, &e.username, &e.password) {
                (Some(a), _, _) if !a.is_empty() => {
                    let bad = || DockerConfigError::BadAuth {
                        path: path.to_path_buf(),
                        registry: key.clone(),
                    };
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(a.trim())
                        .map_err(|_| bad())?;
                    let s = String::from_utf8(raw).map_err(|_| bad())?;
                    let (u, p) = s.split_once(':').ok_or_else(bad)?;
                    Credentials::new(u, p)
                }
                (_, Some(u), Some(p)) => Credentials::new(u.clone(), p.clone()),
                _ => continue,
            };
            entries.insert(hub_alias(&normalize_key(&key)).to_string(), creds);
        }
        Ok(DockerConfig { entries })
    }

    /// The credentials for a registry domain (`docker.io`, `ghcr.io`, `host:5000`).
    pub fn credentials_for(&self, registry: &str) -> Option<Credentials> {
        let k = normalize_key(registry);
        self.entries.get(hub_alias(&k)).cloned()
    }

    /// The registries that have credentials.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> DockerConfig {
        match DockerConfig::from_json(json.as_bytes(), Path::new("config.json")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn reads_auth_and_fields() {
        // "alice:pw:with:colons" and a username/password entry
        let c = cfg(r#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"YWxpY2U6cHc6d2l0aDpjb2xvbnM="},
            "127.0.0.1:5001":{"username":"bob","password":"bobpw"},
            "https://ghcr.io":{"auth":""}
        },"credsStore":"desktop"}"#);
        let hub = c.credentials_for("docker.io");
        assert_eq!(hub.as_ref().map(|c| c.username.as_str()), Some("alice"));
        assert_eq!(hub.map(|c| c.password), Some("pw:with:colons".into()));
        assert_eq!(
            c.credentials_for("registry-1.docker.io")
                .map(|c| c.username),
            Some("alice".into())
        );
        assert_eq!(
            c.credentials_for("127.0.0.1:5001").map(|c| c.password),
            Some("bobpw".into())
        );
        assert!(c.credentials_for("ghcr.io").is_none());
        assert!(c.credentials_for("127.0.0.1:5000").is_none());
    }

    #[test]
    fn errors_hold_no_secrets() {
        let e = DockerConfig::from_json(
            br#"{"auths":{"r.io":{"auth":"c2VjcmV0LW5vLWNvbG9u"}}}"#,
            Path::new("c.json"),
        );
        let Err(e) = e else { panic!("must fail") };
        let m = e.to_string();
        assert!(m.contains("r.io"), "{m}");
        assert!(!m.contains("c2VjcmV0") && !m.contains("secret"), "{m}");
        let e = DockerConfig::from_json(br#"{"auths":{"r.io":{"auth":5}}}"#, Path::new("c.json"));
        assert!(matches!(e, Err(DockerConfigError::Json { .. })));
    }

    #[test]
    fn honours_docker_config_env() {
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else { panic!("tempdir") };
        let p = dir.path().join("config.json");
        let ok = std::fs::write(
            &p,
            r#"{"auths":{"localhost:5000":{"username":"u","password":"p"}}}"#,
        );
        assert!(ok.is_ok());
        // Only this test in this crate touches DOCKER_CONFIG.
        std::env::set_var("DOCKER_CONFIG", dir.path());
        assert_eq!(DockerConfig::default_path(), Some(p));
        let c = DockerConfig::load_default();
        std::env::remove_var("DOCKER_CONFIG");
        let Ok(c) = c else { panic!("load") };
        assert_eq!(
            c.credentials_for("localhost:5000").map(|c| c.username),
            Some("u".into())
        );
    }
}
