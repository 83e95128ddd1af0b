//! Registry credentials from docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): the `auths` map, with either a base64 `auth` of
//! `user:password` or `username`/`password` fields, or an `identitytoken` (asked for with
//! the OAuth2 refresh-token grant). Credential helpers work as docker's: `credHelpers`
//! names the helper for one registry, `credsStore` the one for all; kiln runs
//! `docker-credential-<name> get` with the server URL on stdin. When the helper is not
//! installed or knows nothing of the registry, the `auths` entry (if any) is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use kiln_engine::image::registry::auth::IDENTITY_TOKEN_USER;
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
    /// A credential helper failed (its stderr is not quoted: it may echo input).
    #[error("credential helper docker-credential-{helper} for {registry}: {detail}")]
    Helper {
        /// The helper's name (`desktop`, `pass`, `ecr-login`, ...).
        helper: String,
        /// The registry asked for.
        registry: String,
        /// What went wrong.
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
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// A credential helper's answer to `get`.
#[derive(serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The credentials of a docker config file, keyed by registry host.
#[derive(Debug, Clone, Default)]
pub struct DockerConfig {
    entries: BTreeMap<String, Credentials>,
    /// `credsStore`.
    store: Option<String>,
    /// `credHelpers`, keyed like `entries`.
    helpers: BTreeMap<String, String>,
    /// Where helpers are looked for; `None`: `$PATH`.
    helper_dirs: Option<Vec<PathBuf>>,
}

/// A helper name is a plain word (it becomes part of a program name).
fn valid_helper_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// What a helper is asked for: docker's server URL for Hub, else the host.
fn helper_server_url(key: &str) -> String {
    if key == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        key.to_string()
    }
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
            if let Some(t) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
                entries.insert(
                    hub_alias(&normalize_key(&key)).to_string(),
                    Credentials::identity_token(t),
                );
                continue;
            }
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
        let helpers = f
            .cred_helpers
            .into_iter()
            .map(|(k, h)| (hub_alias(&normalize_key(&k)).to_string(), h))
            .collect();
        Ok(DockerConfig {
            entries,
            store: f.creds_store.filter(|s| !s.is_empty()),
            helpers,
            helper_dirs: None,
        })
    }

    /// Looks credential helpers up in these directories instead of `$PATH`.
    pub fn with_helper_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.helper_dirs = Some(dirs);
        self
    }

    /// The credentials for a registry domain (`docker.io`, `ghcr.io`, `host:5000`);
    /// a failing helper counts as none (see [`Self::lookup`] for the error).
    pub fn credentials_for(&self, registry: &str) -> Option<Credentials> {
        self.lookup(registry).ok().flatten()
    }

    /// The credentials for a registry domain: its `credHelpers` helper, else the
    /// `credsStore` helper, else the `auths` entry. A helper that is not installed or
    /// answers "not found" falls through to the `auths` entry; one that fails
    /// otherwise is an error (naming the helper and registry, never a secret).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, DockerConfigError> {
        let k = normalize_key(registry);
        let key = hub_alias(&k);
        let helper = self.helpers.get(key).or(self.store.as_ref());
        if let Some(h) = helper {
            if let Some(c) = self.run_helper(h, key)? {
                return Ok(Some(c));
            }
        }
        Ok(self.entries.get(key).cloned())
    }

    fn helper_program(&self, name: &str) -> Option<PathBuf> {
        let exe = format!("docker-credential-{name}");
        let dirs: Vec<PathBuf> = match &self.helper_dirs {
            Some(d) => d.clone(),
            None => std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        };
        dirs.into_iter().map(|d| d.join(&exe)).find(|p| p.is_file())
    }

    /// Runs `docker-credential-<name> get`; `None` when not installed or not found.
    fn run_helper(&self, name: &str, key: &str) -> Result<Option<Credentials>, DockerConfigError> {
        use std::io::Write as _;
        let err = |detail: String| DockerConfigError::Helper {
            helper: name.to_string(),
            registry: key.to_string(),
            detail,
        };
        if !valid_helper_name(name) {
            return Err(err("not a valid helper name".into()));
        }
        let Some(program) = self.helper_program(name) else {
            return Ok(None);
        };
        let mut child = std::process::Command::new(&program)
            .arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(helper_server_url(key).as_bytes())
                .map_err(|e| err(format!("writing its input: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| err(format!("waiting for it: {e}")))?;
        if !out.status.success() {
            // docker's helpers say "credentials not found in native keychain" on stdout.
            let said = String::from_utf8_lossy(&out.stdout);
            if said.to_ascii_lowercase().contains("credentials not found") {
                return Ok(None);
            }
            return Err(err(format!("exited with {}", out.status)));
        }
        let a: HelperAnswer = serde_json::from_slice(&out.stdout)
            .map_err(|_| err("its answer is not {\"Username\", \"Secret\"} JSON".into()))?;
        if a.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(if a.username == IDENTITY_TOKEN_USER {
            Credentials::identity_token(a.secret)
        } else {
            Credentials::new(a.username, a.secret)
        }))
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

    /// Writes an executable helper script into `dir`.
    fn helper(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(format!("docker-credential-{name}"));
        assert!(std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).is_ok());
        assert!(std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).is_ok());
    }

    #[test]
    fn credential_helpers_and_identity_tokens() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        // Answers for one server URL only, as a keychain would.
        helper(
            dir.path(),
            "kiln-test",
            r#"read url
case "$url" in
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"hubuser","Secret":"hubpw"}' ;;
  r.example:5000) echo '{"ServerURL":"x","Username":"<token>","Secret":"refresh-1"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
        );
        helper(dir.path(), "broken", "echo 'secret-leak'; exit 3");
        let c = cfg(r#"{"auths":{
            "other.example":{"auth":"dTpw"},
            "tok.example":{"identitytoken":"idt"}
        },"credsStore":"kiln-test","credHelpers":{"b.example":"broken","n.example":"absent"}}"#)
        .with_helper_dirs(vec![dir.path().to_path_buf()]);
        let hub = c
            .credentials_for("docker.io")
            .map(|c| (c.username, c.password));
        assert_eq!(hub, Some(("hubuser".into(), "hubpw".into())));
        let t = c.credentials_for("r.example:5000");
        assert!(t.as_ref().is_some_and(Credentials::is_identity_token));
        assert_eq!(t.map(|c| c.password), Some("refresh-1".into()));
        // The store knows nothing of it: the auths entry.
        assert_eq!(
            c.credentials_for("other.example").map(|c| c.username),
            Some("u".into())
        );
        let idt = c.credentials_for("tok.example");
        assert!(idt.as_ref().is_some_and(Credentials::is_identity_token));
        // A helper that is not installed: nothing (no auths entry either).
        assert!(c.credentials_for("n.example").is_none());
        // A failing helper: an error naming it, without what it printed.
        let e = c
            .lookup("b.example")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("docker-credential-broken") && e.contains("b.example"),
            "{e}"
        );
        assert!(!e.contains("secret-leak"), "{e}");
        assert!(cfg(r#"{"credsStore":"../x"}"#).lookup("a.b").is_err());
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
