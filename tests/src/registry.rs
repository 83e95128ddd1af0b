//! A real registry (Debian's `docker-registry`, distribution 2.8) on a free loopback
//! port in its own temp dir, stopped on drop. Each test starts its own, so tests run
//! in parallel without sharing state.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln_engine::image::reference::Reference;
use kiln_engine::image::registry::{ClientOptions, Credentials, RegistryClient};
use kiln_engine::image::transport::Transport;
use kiln_native::{HttpOptions, HttpTransport};

use crate::certs::{make_tls, make_token_issuer, TlsMaterial};
use crate::token_server::{Grants, TokenServer};
use crate::HarnessError;

/// The test user.
pub const TEST_USER: &str = "kiln-tester";
/// The test user's password (distinctive, so tests can check it never leaks).
pub const TEST_PASSWORD: &str = "pw-Zq8v1-do-not-leak";
/// The `service` name of token-auth registries.
pub const TOKEN_SERVICE: &str = "kiln-test-registry";

/// How the registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryAuth {
    /// No authentication.
    Anonymous,
    /// htpasswd (bcrypt) Basic auth with [`TEST_USER`]/[`TEST_PASSWORD`].
    Basic,
    /// Bearer tokens from a [`TokenServer`] accepting [`TEST_USER`]/[`TEST_PASSWORD`].
    Token,
    /// Bearer tokens granted as Docker Hub grants them ([`Grants::HubLike`]): accounts
    /// [`TEST_USER`] and [`SECOND_USER`], each owning `<user>/*`, `library/*` pullable by
    /// all, anything else left out of the token silently.
    HubToken,
}

/// The second account of a [`RegistryAuth::HubToken`] registry.
pub const SECOND_USER: &str = "kiln-other";
/// [`SECOND_USER`]'s password.
pub const SECOND_PASSWORD: &str = "pw-other-Kq2m-do-not-leak";

/// What to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryOptions {
    /// The authentication.
    pub auth: RegistryAuth,
    /// HTTPS with a fresh private CA (else plain HTTP).
    pub tls: bool,
}

/// A running registry; killed and its directory removed on drop.
pub struct TestRegistry {
    child: Child,
    port: u16,
    tls: Option<TlsMaterial>,
    token: Option<TokenServer>,
    options: RegistryOptions,
    log_path: PathBuf,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("port", &self.port)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn free_port() -> Result<u16, HarnessError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn yaml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

impl TestRegistry {
    /// An anonymous plain-HTTP registry.
    pub fn plain() -> Result<Self, HarnessError> {
        Self::start(RegistryOptions {
            auth: RegistryAuth::Anonymous,
            tls: false,
        })
    }

    /// A plain-HTTP registry with Basic auth.
    pub fn basic() -> Result<Self, HarnessError> {
        Self::start(RegistryOptions {
            auth: RegistryAuth::Basic,
            tls: false,
        })
    }

    /// An HTTPS registry (private CA) with Basic auth.
    pub fn tls() -> Result<Self, HarnessError> {
        Self::start(RegistryOptions {
            auth: RegistryAuth::Basic,
            tls: true,
        })
    }

    /// A plain-HTTP registry with bearer-token auth.
    pub fn token() -> Result<Self, HarnessError> {
        Self::start(RegistryOptions {
            auth: RegistryAuth::Token,
            tls: false,
        })
    }

    /// Starts a registry as described.
    pub fn start(options: RegistryOptions) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("kiln-registry-")
            .tempdir()?;
        let root = dir.path().to_path_buf();
        let mut http_extra = String::new();
        let tls = if options.tls {
            let t = make_tls()?;
            fs::write(root.join("server.crt"), &t.server_cert_pem)?;
            fs::write(root.join("server.key"), &t.server_key_pem)?;
            fs::write(root.join("ca.crt"), &t.ca_pem)?;
            http_extra = format!(
                ", tls: {{certificate: {}, key: {}}}",
                yaml_str(&root.join("server.crt")),
                yaml_str(&root.join("server.key"))
            );
            Some(t)
        } else {
            None
        };
        let mut token = None;
        let auth = match options.auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic => {
                let hash = bcrypt::hash(TEST_PASSWORD, 4)?;
                fs::write(root.join("htpasswd"), format!("{TEST_USER}:{hash}\n"))?;
                format!(
                    "auth: {{htpasswd: {{realm: kiln-basic-realm, path: {}}}}}\n",
                    yaml_str(&root.join("htpasswd"))
                )
            }
            RegistryAuth::Token | RegistryAuth::HubToken => {
                let issuer = make_token_issuer("kiln-test-issuer")?;
                let ts = if options.auth == RegistryAuth::HubToken {
                    TokenServer::start_with(
                        issuer,
                        &[(TEST_USER, TEST_PASSWORD), (SECOND_USER, SECOND_PASSWORD)],
                        Grants::HubLike,
                    )?
                } else {
                    TokenServer::start(issuer, TEST_USER, TEST_PASSWORD)?
                };
                fs::write(root.join("token.crt"), ts.cert_pem())?;
                let a = format!(
                    "auth: {{token: {{realm: {:?}, service: {TOKEN_SERVICE}, issuer: {}, rootcertbundle: {}}}}}\n",
                    ts.realm(),
                    ts.issuer(),
                    yaml_str(&root.join("token.crt"))
                );
                token = Some(ts);
                a
            }
        };
        let log_path = root.join("registry.log");
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            let config = format!(
                "version: 0.1\nlog: {{level: info, accesslog: {{disabled: true}}}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: \"127.0.0.1:{port}\", secret: kiln-test-secret{http_extra}}}\n{auth}",
                yaml_str(&root.join("data"))
            );
            let cfg_path = root.join("config.yml");
            fs::write(&cfg_path, config)?;
            let log = fs::File::create(&log_path)?;
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait()? {
                    last_err = format!(
                        "docker-registry exited ({status}): {}",
                        fs::read_to_string(&log_path).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(TestRegistry {
                        child,
                        port,
                        tls,
                        token,
                        options,
                        log_path,
                        dir,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = "docker-registry did not listen within 20 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(last_err.into())
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry process's id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The options it was started with.
    pub fn options(&self) -> RegistryOptions {
        self.options
    }

    /// The private CA (PEM) of a TLS registry.
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// The registry's storage root (filesystem driver: blobs under
    /// `docker/registry/v2/blobs/sha256/XX/HEX/data`).
    pub fn storage_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding config, certs, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The token server of a token-auth registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The right credentials.
    pub fn credentials() -> Credentials {
        Credentials::new(TEST_USER, TEST_PASSWORD)
    }

    /// A native transport trusting this registry's CA (if any).
    pub fn transport(&self) -> Result<Arc<dyn Transport>, HarnessError> {
        let mut o = HttpOptions::default();
        if let Some(t) = &self.tls {
            o.extra_ca_pem.push(t.ca_pem.clone().into_bytes());
        }
        Ok(Arc::new(HttpTransport::with_options(o)?))
    }

    /// A client for this registry (HTTPS when TLS, else plain HTTP).
    pub fn client(&self, credentials: Option<Credentials>) -> Result<RegistryClient, HarnessError> {
        Ok(self.client_with(self.transport()?, credentials))
    }

    /// A client over a given transport.
    pub fn client_with(
        &self,
        transport: Arc<dyn Transport>,
        credentials: Option<Credentials>,
    ) -> RegistryClient {
        RegistryClient::new(
            transport,
            &self.host(),
            ClientOptions {
                insecure: self.tls.is_none(),
                credentials,
            },
        )
    }

    /// `127.0.0.1:PORT/<repo_and_tag>` parsed.
    pub fn reference(&self, repo_and_tag: &str) -> Result<Reference, HarnessError> {
        Ok(Reference::parse(&format!(
            "{}/{repo_and_tag}",
            self.host()
        ))?)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
