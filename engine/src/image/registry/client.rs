//! The registry client: one registry host, one transport, its credentials and tokens.
//! Manifests, blobs and tags here; uploads and mounts in [`super::upload`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::auth::{
    parse_challenge, scope_key, token_form, token_url, Challenge, Credentials, Scope, TokenResponse,
};
use super::blob_stream::{BlobStream, VerifiedStream};
use super::error::{summarize_error_body, RegistryError};
use crate::image::limits::{ImageLimits, LimitExceeded};
use crate::image::manifest::{
    check_config_platform, select_platform, ManifestError, PlatformSpec, RawManifest,
    MANIFEST_ACCEPT, MANIFEST_SIZE_MAX,
};
use crate::image::reference::{Digest, Reference, ReferenceError};
use crate::image::transport::{Method, Request, Response, Transport, TransportError};

/// Largest error body read for a message.
const ERROR_BODY_MAX: usize = 64 * 1024;
/// Largest token response read.
const TOKEN_BODY_MAX: usize = 1024 * 1024;
/// Largest image config [`RegistryClient::resolve_image`] ever reads; the client's
/// [`ImageLimits::config_bytes`] (8 MiB by default) is usually lower.
pub const CONFIG_SIZE_MAX: usize = 16 * 1024 * 1024;
/// Largest tag list page read.
const TAGS_BODY_MAX: usize = 8 * 1024 * 1024;
/// Most redirects a blob `GET` follows when the transport hands them back.
pub const MAX_REDIRECTS: usize = 5;

/// Which registries are spoken to over plain HTTP (`--insecure-registry HOST:PORT`).
/// Every other registry is HTTPS with verified certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    insecure: Vec<String>,
}

impl RegistryConfig {
    /// No insecure registries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `host[:port]` (as written in references) as plain HTTP.
    pub fn with_insecure(mut self, host: &str) -> Self {
        self.insecure.push(host.to_ascii_lowercase());
        self
    }

    /// True when `host` was marked insecure.
    pub fn is_insecure(&self, host: &str) -> bool {
        let h = host.to_ascii_lowercase();
        self.insecure.contains(&h)
    }

    /// `http` for insecure registries, else `https`.
    pub fn scheme(&self, host: &str) -> &'static str {
        if self.is_insecure(host) {
            "http"
        } else {
            "https"
        }
    }
}

/// Options for one [`RegistryClient`].
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Credentials, if any (else anonymous).
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone, Default)]
enum Scheme {
    #[default]
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Default)]
struct AuthState {
    scheme: Scheme,
    tokens: HashMap<String, String>,
}

/// A manifest's identity as reported by `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `Docker-Content-Digest`.
    pub digest: Option<Digest>,
    /// `Content-Type`.
    pub media_type: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

/// An image resolved to linux/amd64: its manifest and config.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The index the manifest was chosen from, if the reference named one.
    pub index: Option<RawManifest>,
    /// The image manifest (exact bytes).
    pub manifest: RawManifest,
    /// The manifest parsed.
    pub image_manifest: oci_spec::image::ImageManifest,
    /// The config blob (exact bytes, digest verified).
    pub config: Bytes,
}

/// A client for one registry host.
pub struct RegistryClient {
    pub(super) transport: Arc<dyn Transport>,
    pub(super) host: String,
    pub(super) base: String,
    credentials: Option<Credentials>,
    auth: Arc<Mutex<AuthState>>,
    limits: ImageLimits,
    pub(super) retry: Option<super::retry::Retry>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for `host` (`host[:port]` of the registry API, e.g. from
    /// [`Reference::api_host`]).
    pub fn new(transport: Arc<dyn Transport>, host: &str, options: ClientOptions) -> Self {
        let scheme = if options.insecure { "http" } else { "https" };
        RegistryClient {
            transport,
            host: host.to_string(),
            base: format!("{scheme}://{host}"),
            credentials: options.credentials,
            auth: Arc::new(Mutex::new(AuthState::default())),
            limits: ImageLimits::default(),
            retry: None,
        }
    }

    /// Retries idempotent requests (`GET`, `HEAD` with no streamed body) that fail with
    /// 408/429/5xx or a connection error, as `retry` says (see [`super::retry`]).
    /// Without it (the default) nothing is retried.
    pub fn with_retry(mut self, retry: super::retry::Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The retry policy, when the client retries (see [`Self::with_retry`]).
    pub fn retry(&self) -> Option<&super::retry::Retry> {
        self.retry.as_ref()
    }

    /// Enforces `limits` on what this client reads whole (`manifest-bytes`,
    /// `config-bytes`, `manifest-layers` in [`RegistryClient::resolve_image`]) instead
    /// of [`ImageLimits::default`].
    pub fn with_limits(mut self, limits: ImageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits this client enforces.
    pub fn limits(&self) -> &ImageLimits {
        &self.limits
    }

    /// A client for the registry of `reference`, its scheme from `config`.
    pub fn for_reference(
        transport: Arc<dyn Transport>,
        reference: &Reference,
        config: &RegistryConfig,
        credentials: Option<Credentials>,
    ) -> Self {
        let insecure =
            config.is_insecure(reference.domain()) || config.is_insecure(reference.api_host());
        RegistryClient::new(
            transport,
            reference.api_host(),
            ClientOptions {
                insecure,
                credentials,
            },
        )
    }

    /// A second handle on this client sharing its tokens (for a blob stream that
    /// outlives the borrow it was made from and re-requests its blob).
    pub(super) fn share(&self) -> RegistryClient {
        RegistryClient {
            transport: self.transport.clone(),
            host: self.host.clone(),
            base: self.base.clone(),
            credentials: self.credentials.clone(),
            auth: self.auth.clone(),
            limits: self.limits,
            retry: self.retry.clone(),
        }
    }

    /// The registry host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://host`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(super) fn transport_err(&self, operation: &str, e: TransportError) -> RegistryError {
        RegistryError::Transport {
            registry: self.host.clone(),
            operation: operation.to_string(),
            source: e,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        // A poisoned lock only means another task panicked mid-update; the map is
        // still usable.
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the `Authorization` header the known scheme calls for; returns whether
    /// one was added.
    async fn authorize(&self, req: &mut Request, scopes: &[Scope]) -> Result<bool, RegistryError> {
        let scheme = self.lock().scheme.clone();
        match scheme {
            Scheme::Unknown => Ok(false),
            Scheme::Basic => match &self.credentials {
                Some(c) => {
                    req.headers.set("Authorization", c.basic_header());
                    Ok(true)
                }
                None => Ok(false),
            },
            Scheme::Bearer { realm, service } => {
                let key = scope_key(scopes);
                let cached = self.lock().tokens.get(&key).cloned();
                let token = match cached {
                    Some(t) => t,
                    None => {
                        let t = self.fetch_token(&realm, service.as_deref(), scopes).await?;
                        self.lock().tokens.insert(key, t.clone());
                        t
                    }
                };
                req.headers.set("Authorization", format!("Bearer {token}"));
                Ok(true)
            }
        }
    }

    /// Asks the token server for a token carrying `scopes`. An identity token goes by
    /// the OAuth2 `refresh_token` grant (POST); a password by GET with Basic auth, and
    /// by the OAuth2 `password` grant (POST) when the server does not serve GET (404,
    /// 405); anonymous by GET.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<String, RegistryError> {
        let post = |c: &Credentials| {
            Request::new(Method::Post, realm.to_string())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(token_form(c, service, scopes).into_bytes())
        };
        let (status, body) = match &self.credentials {
            Some(c) if c.is_identity_token() => self.token_exchange(post(c)).await?,
            creds => {
                let mut req = Request::new(Method::Get, token_url(realm, service, scopes));
                if let Some(c) = creds {
                    req.headers.set("Authorization", c.basic_header());
                }
                let (status, body) = self.token_exchange(req).await?;
                match creds {
                    Some(c) if matches!(status, 404 | 405) => self.token_exchange(post(c)).await?,
                    _ => (status, body),
                }
            }
        };
        let op = "token request";
        match status {
            200 => {}
            400 | 401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    registry: self.host.clone(),
                    detail: format!(
                        "the token server refused {} (HTTP {status})",
                        match &self.credentials {
                            Some(c) if c.is_identity_token() => "the identity token",
                            Some(_) => "the credentials",
                            None => "anonymous access",
                        }
                    ),
                })
            }
            _ => {
                return Err(RegistryError::Failed {
                    registry: self.host.clone(),
                    operation: op.into(),
                    status,
                    detail: summarize_error_body(&body),
                })
            }
        }
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| RegistryError::InvalidResponse {
                registry: self.host.clone(),
                operation: op.into(),
                detail: "no token in the token server's answer".into(),
            })
    }

    /// Sends one token request; returns its status and (bounded) body.
    async fn token_exchange(&self, req: Request) -> Result<(u16, Vec<u8>), RegistryError> {
        let op = "token request";
        let resp = self
            .transport
            .send(req)
            .await
            .map_err(|e| self.transport_err(op, e))?;
        let status = resp.status;
        let body = resp
            .bytes_limited(TOKEN_BODY_MAX)
            .await
            .map_err(|e| self.transport_err(op, e))?;
        Ok((status, body))
    }

    /// Sends a request with authentication for `scopes`, answering one challenge.
    /// Streamed bodies cannot be replayed: send such requests after a replayable one
    /// on the same scopes (an upload's POST), so the token is already cached.
    pub(super) async fn send(
        &self,
        scopes: &[Scope],
        req: Request,
        op: &str,
    ) -> Result<Response, RegistryError> {
        self.with_retries(req, op, |r| self.send_once(scopes, r, op))
            .await
    }

    /// Sends a request without credentials (a blob redirected to another origin),
    /// retried like [`Self::send`].
    async fn send_anonymous(&self, req: Request, op: &str) -> Result<Response, RegistryError> {
        self.with_retries(req, op, |r| async move {
            self.transport
                .send(r)
                .await
                .map_err(|e| self.transport_err(op, e))
        })
        .await
    }

    /// Runs `once` and, for an idempotent request with this client's [`super::retry::Retry`],
    /// again after a retryable failure, as the policy says.
    async fn with_retries<F, Fut>(
        &self,
        req: Request,
        op: &str,
        once: F,
    ) -> Result<Response, RegistryError>
    where
        F: Fn(Request) -> Fut,
        Fut: std::future::Future<Output = Result<Response, RegistryError>>,
    {
        use super::retry::{retry_after_ms, retryable_status, salt_of, RetryNotice};
        use crate::image::transport::TransportErrorKind;
        let Some(retry) = self.retry.as_ref() else {
            return once(req).await;
        };
        if !matches!(req.method, Method::Get | Method::Head) {
            return once(req).await;
        }
        let policy = retry.policy;
        let mut req = req;
        let mut attempt = 1u32;
        let mut waited = 0u64;
        loop {
            let spare = try_clone(&req);
            let result = once(req).await;
            let (reason, after) = match &result {
                Ok(resp) if retryable_status(resp.status) => (
                    format!("HTTP {}", resp.status),
                    resp.headers.get("retry-after").and_then(retry_after_ms),
                ),
                Err(RegistryError::Transport { source, .. })
                    if matches!(
                        source.kind,
                        TransportErrorKind::Connect
                            | TransportErrorKind::Io
                            | TransportErrorKind::Timeout
                    ) =>
                {
                    (source.to_string(), None)
                }
                _ => return result,
            };
            let Some(next) = spare else { return result };
            if attempt >= policy.max_tries {
                return result;
            }
            let delay = policy.delay_ms(attempt, after, salt_of(op));
            if waited.saturating_add(delay) > policy.max_total_ms {
                return result;
            }
            drop(result);
            if let Some(o) = &retry.observer {
                o.retrying(&RetryNotice {
                    operation: op.to_string(),
                    attempt,
                    delay_ms: delay,
                    reason,
                });
            }
            retry.timer.sleep_ms(delay).await;
            waited += delay;
            attempt += 1;
            req = next;
        }
    }

    /// One request, with the authentication dance (one replay after a 401 challenge).
    async fn send_once(
        &self,
        scopes: &[Scope],
        mut req: Request,
        op: &str,
    ) -> Result<Response, RegistryError> {
        let retry = try_clone(&req);
        let sent_auth = self.authorize(&mut req, scopes).await?;
        let resp = self
            .transport
            .send(req)
            .await
            .map_err(|e| self.transport_err(op, e))?;
        if resp.status != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers
            .get_all("www-authenticate")
            .find_map(parse_challenge);
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: self.host.clone(),
            detail,
        };
        let Some(mut retry) = retry else {
            return Err(unauthorized(format!("{op}: authentication failed")));
        };
        match challenge {
            Some(Challenge::Basic { .. }) => {
                if self.credentials.is_none() {
                    return Err(unauthorized("the registry requires credentials".into()));
                }
                if sent_auth {
                    return Err(unauthorized("the registry rejected the credentials".into()));
                }
                self.lock().scheme = Scheme::Basic;
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
                ..
            }) => {
                let mut want: Vec<Scope> = scopes.to_vec();
                if let Some(s) = scope {
                    for part in s.split(' ').filter(|p| !p.is_empty()) {
                        let sc = Scope(part.to_string());
                        if !want.contains(&sc) {
                            want.push(sc);
                        }
                    }
                }
                let token = self.fetch_token(&realm, service.as_deref(), &want).await?;
                let mut st = self.lock();
                st.scheme = Scheme::Bearer { realm, service };
                st.tokens.insert(scope_key(scopes), token);
            }
            None => {
                return Err(unauthorized(
                    "HTTP 401 without a usable WWW-Authenticate challenge".into(),
                ))
            }
        }
        self.authorize(&mut retry, scopes).await?;
        let resp = self
            .transport
            .send(retry)
            .await
            .map_err(|e| self.transport_err(op, e))?;
        if resp.status == 401 {
            if let Some(e) = self.insufficient_scope(&resp, scopes, op) {
                return Err(e);
            }
            let body = resp.bytes_limited(ERROR_BODY_MAX).await.unwrap_or_default();
            return Err(unauthorized(format!(
                "{op}: credentials not accepted: {}",
                summarize_error_body(&body)
            )));
        }
        Ok(resp)
    }

    /// The error for a 401 that a fresh token did not cure because the token server
    /// left an action out of it (`error="insufficient_scope"`, Docker Hub's answer for
    /// another account's repository, a private one, or one that does not exist): it
    /// names what was asked for and not granted. Anonymous callers get
    /// [`RegistryError::Unauthorized`] (credentials may help), accounts
    /// [`RegistryError::Forbidden`].
    fn insufficient_scope(
        &self,
        resp: &Response,
        scopes: &[Scope],
        op: &str,
    ) -> Option<RegistryError> {
        let scope =
            resp.headers
                .get_all("www-authenticate")
                .find_map(|h| match parse_challenge(h) {
                    Some(Challenge::Bearer {
                        error: Some(e),
                        scope,
                        ..
                    }) if e == "insufficient_scope" => Some(scope),
                    _ => None,
                })?;
        let asked = scope.unwrap_or_else(|| {
            scopes
                .iter()
                .map(|s| s.0.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        });
        let registry = self.host.clone();
        Some(match &self.credentials {
            None => RegistryError::Unauthorized {
                registry,
                detail: format!(
                    "{op}: anonymous access was not granted {asked} (insufficient_scope): \
                     the repository is private or does not exist; give credentials"
                ),
            },
            Some(c) => RegistryError::Forbidden {
                registry,
                detail: format!(
                    "{op}: the token server did not grant {} {asked} (insufficient_scope): \
                     the account may not do this, or the repository does not exist",
                    if c.is_identity_token() {
                        "the identity token's account".to_string()
                    } else {
                        format!("account {:?}", c.username)
                    }
                ),
            },
        })
    }

    /// Passes `resp` through when its status is one of `ok`, else turns it into the
    /// matching error (404 → [`RegistryError::NotFound`] naming `what`).
    pub(super) async fn expect(
        &self,
        resp: Response,
        ok: &[u16],
        op: &str,
        what: &str,
    ) -> Result<Response, RegistryError> {
        if ok.contains(&resp.status) {
            return Ok(resp);
        }
        let status = resp.status;
        let body = resp.bytes_limited(ERROR_BODY_MAX).await.unwrap_or_default();
        let detail = summarize_error_body(&body);
        let registry = self.host.clone();
        Err(match status {
            401 => RegistryError::Unauthorized { registry, detail },
            403 => RegistryError::Forbidden { registry, detail },
            404 => RegistryError::NotFound {
                registry,
                what: what.to_string(),
                detail,
            },
            400..=499 => RegistryError::Rejected {
                registry,
                operation: op.to_string(),
                status,
                detail,
            },
            _ => RegistryError::Failed {
                registry,
                operation: op.to_string(),
                status,
                detail,
            },
        })
    }

    /// `GET /v2/`: checks the registry answers and, when it challenges, learns its
    /// authentication scheme.
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let resp = self
            .send(&[], Request::new(Method::Get, self.url("/v2/")), "ping")
            .await?;
        self.expect(resp, &[200], "ping", "registry API /v2/")
            .await?;
        Ok(())
    }

    /// `GET` a manifest by tag or digest. The bytes are kept exact; a digest reference
    /// (or a `Docker-Content-Digest` answer) is verified against them.
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<RawManifest, RegistryError> {
        check_repository(repository)?;
        let op = format!("GET manifest {repository}:{reference}");
        let req = Request::new(
            Method::Get,
            self.url(&format!("/v2/{repository}/manifests/{reference}")),
        )
        .header("Accept", MANIFEST_ACCEPT);
        let resp = self.send(&[Scope::pull(repository)], req, &op).await?;
        let resp = self
            .expect(
                resp,
                &[200],
                &op,
                &format!("manifest {repository}:{reference}"),
            )
            .await?;
        let content_type = resp.headers.get("content-type").map(str::to_string);
        let header_digest = resp
            .headers
            .get("docker-content-digest")
            .map(str::to_string);
        let max = (self.limits.manifest_bytes).min(MANIFEST_SIZE_MAX as u64);
        let too_large = |found: String| RegistryError::Limit {
            what: format!("manifest {repository}:{reference}"),
            source: LimitExceeded::new("manifest-bytes", max, found),
        };
        if let Some(len) = resp
            .headers
            .get("content-length")
            .and_then(|l| l.trim().parse::<u64>().ok())
        {
            if len > max {
                return Err(too_large(format!("{len} bytes (Content-Length)")));
            }
        }
        let body = match resp.bytes_limited(max as usize).await {
            Ok(b) => b,
            Err(e) if e.kind == crate::image::transport::TransportErrorKind::BodyTooLarge => {
                return Err(too_large(format!("more than {max} bytes")))
            }
            Err(e) => return Err(self.transport_err(&op, e)),
        };
        let raw = RawManifest::from_bytes(body, content_type.as_deref())?;
        if reference.contains(':') {
            let want = Digest::parse(reference)?;
            raw.verify(&want)?;
        } else if let Some(h) = header_digest {
            if let Ok(want) = Digest::parse(&h) {
                if want.algorithm() == "sha256" && &want != raw.digest() {
                    return Err(ManifestError::DigestMismatch {
                        what: format!("manifest {repository}:{reference} (Docker-Content-Digest)"),
                        expected: want.to_string(),
                        actual: raw.digest().to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(raw)
    }

    /// `HEAD` a manifest: `None` when absent. Registries that refuse `HEAD` on
    /// manifests (405, 400, 403, or a 404 for a manifest `GET` serves), or answer it
    /// without a `Docker-Content-Digest`, are asked by `GET` instead, and the digest is
    /// computed from the bytes (bounded by `manifest-bytes`).
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, RegistryError> {
        check_repository(repository)?;
        let op = format!("HEAD manifest {repository}:{reference}");
        let req = Request::new(
            Method::Head,
            self.url(&format!("/v2/{repository}/manifests/{reference}")),
        )
        .header("Accept", MANIFEST_ACCEPT);
        let resp = self.send(&[Scope::pull(repository)], req, &op).await?;
        if resp.status == 200 {
            let digest = resp
                .headers
                .get("docker-content-digest")
                .and_then(|d| Digest::parse(d).ok());
            if digest.is_some() {
                return Ok(Some(ManifestInfo {
                    digest,
                    media_type: resp.headers.get("content-type").map(str::to_string),
                    size: resp
                        .headers
                        .get("content-length")
                        .and_then(|l| l.parse().ok()),
                }));
            }
        } else if !matches!(resp.status, 400 | 403 | 404 | 405) {
            self.expect(resp, &[200], &op, "manifest").await?;
        }
        // HEAD refused or told too little: GET tells everything.
        match self.get_manifest(repository, reference).await {
            Ok(raw) => Ok(Some(ManifestInfo {
                digest: Some(raw.digest().clone()),
                media_type: Some(raw.media_type().to_string()),
                size: Some(raw.size()),
            })),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT` a manifest under `reference` (a tag or its own digest), sending the exact
    /// bytes with their media type as `Content-Type`. Returns the digest, checked
    /// against the registry's `Docker-Content-Digest` when it sends one.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<Digest, RegistryError> {
        check_repository(repository)?;
        let op = format!("PUT manifest {repository}:{reference}");
        let req = Request::new(
            Method::Put,
            self.url(&format!("/v2/{repository}/manifests/{reference}")),
        )
        .header("Content-Type", manifest.media_type())
        .body(manifest.bytes().clone());
        let resp = self.send(&[Scope::push(repository)], req, &op).await?;
        let resp = self
            .expect(resp, &[200, 201, 202], &op, "repository")
            .await?;
        if let Some(d) = resp
            .headers
            .get("docker-content-digest")
            .and_then(|d| Digest::parse(d).ok())
        {
            if &d != manifest.digest() {
                return Err(ManifestError::DigestMismatch {
                    what: format!("pushed manifest {repository}:{reference}"),
                    expected: manifest.digest().to_string(),
                    actual: d.to_string(),
                }
                .into());
            }
        }
        Ok(manifest.digest().clone())
    }

    /// Pushes a manifest by its digest (no tag moves). Push blobs first, then this,
    /// then [`RegistryClient::tag_manifest`] last.
    pub async fn push_manifest(
        &self,
        repository: &str,
        manifest: &RawManifest,
    ) -> Result<Digest, RegistryError> {
        self.put_manifest(repository, &manifest.digest().to_string(), manifest)
            .await
    }

    /// Points `tag` at a manifest (the same exact bytes, pushed under the tag).
    pub async fn tag_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &RawManifest,
    ) -> Result<Digest, RegistryError> {
        if tag.contains(':') || tag.contains('@') || tag.contains('/') {
            return Err(ReferenceError::InvalidTag {
                tag: tag.to_string(),
                reason: "a tag may not contain ':', '@' or '/'",
            }
            .into());
        }
        self.put_manifest(repository, tag, manifest).await
    }

    /// `HEAD` a blob: its size when present, `None` when absent.
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        check_repository(repository)?;
        let op = format!("HEAD blob {repository}@{digest}");
        let req = Request::new(
            Method::Head,
            self.url(&format!("/v2/{repository}/blobs/{digest}")),
        );
        let resp = self.send(&[Scope::pull(repository)], req, &op).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let resp = self.expect(resp, &[200], &op, "blob").await?;
        Ok(Some(
            resp.headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0),
        ))
    }

    /// `GET` a blob as a stream that verifies digest (and `size`, when given) as it
    /// goes: the stream's last item is an error if the content is wrong.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobStream, RegistryError> {
        check_repository(repository)?;
        let op = format!("GET blob {repository}@{digest}");
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let resp = self.fetch_blob(repository, &url, 0, &op).await?;
        let resp = self
            .expect(resp, &[200], &op, &format!("blob {digest}"))
            .await?;
        let body = match &self.retry {
            Some(retry) => super::resume::ResumingBody::wrap(
                self.share(),
                retry.clone(),
                repository,
                url,
                op,
                size,
                resp.body,
            ),
            None => resp.body,
        };
        Ok(Box::pin(VerifiedStream::new(
            body,
            digest.clone(),
            size,
            &self.host,
            &format!("blob {repository}@{digest}"),
        )))
    }

    /// `GET` a blob URL from byte `from` on (a `Range` request when `from > 0`),
    /// following redirects the transport handed back (301, 302, 303, 307, 308; at most
    /// [`MAX_REDIRECTS`]): credentials go only to the registry's own origin, never to
    /// the storage host a blob is redirected to (its URL carries its own signature).
    pub(super) async fn fetch_blob(
        &self,
        repository: &str,
        url: &str,
        from: u64,
        op: &str,
    ) -> Result<Response, RegistryError> {
        let request = |u: &str| {
            let r = Request::new(Method::Get, u.to_string());
            if from > 0 {
                r.header("Range", format!("bytes={from}-"))
            } else {
                r
            }
        };
        let scopes = [Scope::pull(repository)];
        let mut current = url.to_string();
        let mut resp = self.send(&scopes, request(&current), op).await?;
        for _ in 0..MAX_REDIRECTS {
            if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                return Ok(resp);
            }
            let Some(loc) = resp.headers.get("location") else {
                return Ok(resp);
            };
            let next = resolve_url(&current, loc);
            let lower = next.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(RegistryError::InvalidResponse {
                    registry: self.host.clone(),
                    operation: op.to_string(),
                    detail: "a redirect to a URL that is not http(s)".into(),
                });
            }
            resp = if same_origin(&next, &self.base) {
                self.send(&scopes, request(&next), op).await?
            } else {
                self.send_anonymous(request(&next), op).await?
            };
            current = next;
        }
        if matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
            return Err(RegistryError::InvalidResponse {
                registry: self.host.clone(),
                operation: op.to_string(),
                detail: format!("more than {MAX_REDIRECTS} redirects"),
            });
        }
        Ok(resp)
    }

    /// `GET` a small blob (a config) whole, verified, at most `limit` bytes.
    pub async fn get_blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Bytes, RegistryError> {
        use futures_util::StreamExt;
        let mut s = self.get_blob(repository, digest, None).await?;
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(RegistryError::ContentMismatch {
                    what: format!("blob {repository}@{digest}"),
                    expected: format!("at most {limit} bytes"),
                    actual: "more".into(),
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    }

    /// `GET /v2/<name>/tags/list`, following `Link: <...>; rel="next"` pages.
    pub async fn list_tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Tags {
            tags: Option<Vec<String>>,
        }
        check_repository(repository)?;
        let op = format!("GET tags {repository}");
        let mut url = self.url(&format!("/v2/{repository}/tags/list"));
        let mut all = Vec::new();
        for _ in 0..1000 {
            let resp = self
                .send(
                    &[Scope::pull(repository)],
                    Request::new(Method::Get, url.clone()),
                    &op,
                )
                .await?;
            let resp = self
                .expect(resp, &[200], &op, &format!("repository {repository}"))
                .await?;
            let next = resp.headers.get("link").and_then(next_link);
            let body = resp
                .bytes_limited(TAGS_BODY_MAX)
                .await
                .map_err(|e| self.transport_err(&op, e))?;
            let t: Tags =
                serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse {
                    registry: self.host.clone(),
                    operation: op.clone(),
                    detail: e.to_string(),
                })?;
            all.extend(t.tags.unwrap_or_default());
            match next {
                Some(n) => url = resolve_url(&url, &n),
                None => return Ok(all),
            }
        }
        Ok(all)
    }

    /// Fetches what `reference` names and resolves it to an image for `platform`:
    /// an index is narrowed with [`select_platform`]; the manifest and config are
    /// verified against their digests; a single-platform image whose config names
    /// another platform is refused ([`check_config_platform`]).
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        platform: &PlatformSpec,
    ) -> Result<ResolvedImage, RegistryError> {
        let repo = reference.repository();
        let first = self
            .get_manifest(repo, &reference.manifest_reference())
            .await?;
        let (index, manifest) = if first.kind().is_index() {
            let idx = first.index()?;
            let desc = select_platform(&idx, platform)?;
            let d = Digest::try_from(desc.digest())?;
            let m = self.get_manifest(repo, &d.to_string()).await?;
            if m.size() != desc.size() {
                return Err(RegistryError::ContentMismatch {
                    what: format!("manifest {d}"),
                    expected: format!("{} bytes", desc.size()),
                    actual: format!("{} bytes", m.size()),
                });
            }
            (Some(first), m)
        } else {
            (None, first)
        };
        let image_manifest = manifest.image_manifest()?;
        let layers = image_manifest.layers().len() as u64;
        let what = || format!("manifest {}", manifest.digest());
        ImageLimits::check(
            "manifest-layers",
            self.limits.manifest_layers,
            layers,
            || format!("{layers} layers"),
        )
        .map_err(|source| RegistryError::Limit {
            what: what(),
            source,
        })?;
        let cfg = image_manifest.config();
        let cfg_digest = Digest::try_from(cfg.digest())?;
        let max_config = self.limits.config_bytes.min(CONFIG_SIZE_MAX as u64);
        let config_limit = |found: String| RegistryError::Limit {
            what: format!("config {cfg_digest}"),
            source: LimitExceeded::new("config-bytes", max_config, found),
        };
        if cfg.size() > max_config {
            return Err(config_limit(format!(
                "{} bytes (descriptor size)",
                cfg.size()
            )));
        }
        let config = self
            .get_blob_bytes(repo, &cfg_digest, max_config as usize)
            .await?;
        if config.len() as u64 != cfg.size() {
            return Err(RegistryError::ContentMismatch {
                what: format!("config {cfg_digest}"),
                expected: format!("{} bytes", cfg.size()),
                actual: format!("{} bytes", config.len()),
            });
        }
        check_config_platform(&config, platform)?;
        Ok(ResolvedImage {
            index,
            manifest,
            image_manifest,
            config,
        })
    }
}

/// Replayable copy of a request (none for streamed bodies).
fn try_clone(req: &Request) -> Option<Request> {
    use crate::image::transport::Body;
    let body = match &req.body {
        Body::Empty => Body::Empty,
        Body::Bytes(b) => Body::Bytes(b.clone()),
        Body::Stream { .. } => return None,
    };
    Some(Request {
        method: req.method,
        url: req.url.clone(),
        headers: req.headers.clone(),
        body,
    })
}

/// Resolves `loc` (a `Location` header: absolute, scheme-relative `//host/...`,
/// absolute-path `/v2/...`, query-only `?...` or path-relative `abc?...`) against the
/// URL `base` of the request it answered (RFC 3986 section 5.2, without dot-segment
/// removal; fragments dropped). Registries send every one of these forms for upload
/// sessions.
pub fn resolve_url(base: &str, loc: &str) -> String {
    let loc = loc.trim();
    let loc = loc.split('#').next().unwrap_or("");
    let lower = loc.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return loc.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(authority_on) = loc.strip_prefix("//") {
        return format!("{scheme}://{authority_on}");
    }
    let (authority, path_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let origin = format!("{scheme}://{authority}");
    if loc.starts_with('/') {
        return format!("{origin}{loc}");
    }
    let path = path_query.split('?').next().unwrap_or("/");
    if loc.starts_with('?') || loc.is_empty() {
        return format!("{origin}{path}{loc}");
    }
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{origin}{dir}{loc}")
}

/// Whether two absolute URLs have the same origin (scheme, host, port), compared as
/// written, case-insensitively: credentials go only to the registry's own origin.
pub fn same_origin(a: &str, b: &str) -> bool {
    fn origin(u: &str) -> Option<(String, String)> {
        let (scheme, rest) = u.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        let scheme = scheme.to_ascii_lowercase();
        let mut authority = authority.to_ascii_lowercase();
        let default = if scheme == "https" { ":443" } else { ":80" };
        if let Some(a) = authority.strip_suffix(default) {
            authority = a.to_string();
        }
        Some((scheme, authority))
    }
    match (origin(a), origin(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The target of `Link: <URL>; rel="next"`.
fn next_link(link: &str) -> Option<String> {
    for part in link.split(',') {
        let part = part.trim();
        if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
            continue;
        }
        let start = part.find('<')?;
        let end = part[start..].find('>')? + start;
        return Some(part[start + 1..end].to_string());
    }
    None
}

/// Repository paths go into URLs: they must follow the reference grammar.
pub(super) fn check_repository(repository: &str) -> Result<(), RegistryError> {
    crate::image::reference::validate_repository(repository).map_err(RegistryError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=1>; rel="next""#),
            Some("/v2/a/tags/list?last=b&n=1".into())
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn locations_resolve_in_every_form() {
        let base = "http://r:5000/v2/a/blobs/uploads/";
        for (loc, want) in [
            ("http://s:1/x?y=1", "http://s:1/x?y=1"),
            ("HTTPS://s/x", "HTTPS://s/x"),
            ("//s:2/up/1?q", "http://s:2/up/1?q"),
            (
                "/v2/a/blobs/uploads/u?_state=z",
                "http://r:5000/v2/a/blobs/uploads/u?_state=z",
            ),
            (
                "/v2/a/blobs/uploads/u",
                "http://r:5000/v2/a/blobs/uploads/u",
            ),
            (
                "u1?_state=z",
                "http://r:5000/v2/a/blobs/uploads/u1?_state=z",
            ),
            ("?_state=z", "http://r:5000/v2/a/blobs/uploads/?_state=z"),
            (" /x#frag ", "http://r:5000/x"),
        ] {
            assert_eq!(resolve_url(base, loc), want, "{loc}");
        }
        assert_eq!(resolve_url("https://r", "x"), "https://r/x");
        assert!(same_origin("http://r:5000/a", "HTTP://R:5000/b?c"));
        assert!(same_origin("https://r/a", "https://r:443/b"));
        assert!(!same_origin("http://r:5000/a", "http://r:5001/a"));
        assert!(!same_origin("http://r/a", "https://r/a"));
        assert!(!same_origin("http://r/a", "http://s/a"));
        assert!(!same_origin("garbage", "garbage"));
    }

    #[test]
    fn config_schemes() {
        let c = RegistryConfig::new().with_insecure("127.0.0.1:5000");
        assert_eq!(c.scheme("127.0.0.1:5000"), "http");
        assert_eq!(c.scheme("127.0.0.1:5001"), "https");
    }
}
