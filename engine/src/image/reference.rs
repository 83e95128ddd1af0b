//! Image references, parsed and normalised exactly as docker does
//! (`github.com/distribution/reference`): `[DOMAIN/]PATH[:TAG][@DIGEST]`.
//!
//! - A name without a domain lives on Docker Hub (`docker.io`); a single-component Hub
//!   name gets the `library/` prefix (`busybox` → `docker.io/library/busybox`).
//! - The first component is a domain when it is `localhost`, contains `.` or `:`, or has
//!   an uppercase letter; `index.docker.io` is canonicalised to `docker.io`.
//! - The API host of `docker.io` is `registry-1.docker.io` ([`Reference::api_host`]).
//! - Repository names are lowercase; the whole name is at most 255 characters; tags are
//!   `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; digests are `ALGO:HEX` (sha256, sha384, sha512).
//! - A bare 64-hex-digit string is refused (docker reserves it for image IDs).
//!
//! [`ImageSource`] adds, for native callers, `oci:DIR[:TAG]` (an OCI image layout).

use std::fmt;
use std::str::FromStr;

/// Docker Hub's canonical domain.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy domain, canonicalised to [`DOCKER_HUB_DOMAIN`].
pub const DOCKER_HUB_LEGACY_DOMAIN: &str = "index.docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Longest allowed name (domain and path), as docker's `NameTotalLengthMax`.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest allowed tag.
pub const TAG_LENGTH_MAX: usize = 128;
/// The tag used when a reference names neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// What is wrong with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference is empty.
    #[error("invalid reference: empty")]
    Empty,
    /// A bare 64-hex-digit string (an image ID, not a reference).
    #[error("invalid reference {0:?}: a 64-character hexadecimal string is an image ID, not a repository name")]
    HexOnly(String),
    /// The tag is malformed.
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The tag as written.
        tag: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The digest is malformed.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest as written.
        digest: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The digest algorithm is well-formed but not supported.
    #[error("unsupported digest algorithm {0:?} (supported: sha256, sha384, sha512)")]
    UnsupportedDigestAlgorithm(String),
    /// The registry domain is malformed.
    #[error("invalid registry domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The domain as written.
        domain: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A repository path component is malformed.
    #[error("invalid repository name component {component:?} in {repository:?}: {reason}")]
    InvalidPathComponent {
        /// The repository path.
        repository: String,
        /// The bad component.
        component: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The repository path has uppercase letters.
    #[error("invalid repository name {0:?}: must be lowercase")]
    Uppercase(String),
    /// The whole name is too long.
    #[error("invalid repository name: {len} characters, at most {NAME_TOTAL_LENGTH_MAX} allowed")]
    NameTooLong {
        /// The normalised name's length.
        len: usize,
    },
    /// `oci:` with no directory.
    #[error("invalid OCI layout reference {0:?}: expected oci:DIR[:TAG]")]
    InvalidOciLayout(String),
}

/// A content digest `ALGORITHM:HEX` (lowercase hex), as used by registries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: String,
    hex: String,
}

impl Digest {
    /// Parses and validates `ALGORITHM:HEX`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let bad = |reason| ReferenceError::InvalidDigest {
            digest: s.to_string(),
            reason,
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("expected ALGORITHM:HEX"))?;
        if !valid_digest_algorithm(alg) {
            return Err(bad("malformed algorithm"));
        }
        if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the hex part must be at least 32 hexadecimal digits"));
        }
        let want = match alg {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            other => {
                return Err(ReferenceError::UnsupportedDigestAlgorithm(
                    other.to_string(),
                ))
            }
        };
        if hex.len() != want {
            return Err(bad("wrong hex length for the algorithm"));
        }
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("hex must be lowercase"));
        }
        Ok(Digest {
            algorithm: alg.to_string(),
            hex: hex.to_string(),
        })
    }

    /// The `sha256:` digest of some bytes.
    pub fn sha256_of(data: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest::from_sha256(sha2::Sha256::digest(data).into())
    }

    /// A `sha256:` digest from a raw hash.
    pub fn from_sha256(hash: [u8; 32]) -> Self {
        Digest {
            algorithm: "sha256".to_string(),
            hex: hex::encode(hash),
        }
    }

    /// The algorithm (`sha256`, ...).
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The raw SHA-256 hash, for a `sha256:` digest.
    pub fn sha256_bytes(&self) -> Option<[u8; 32]> {
        if self.algorithm != "sha256" {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.hex, &mut out).ok()?;
        Some(out)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl TryFrom<&oci_spec::image::Digest> for Digest {
    type Error = ReferenceError;
    fn try_from(d: &oci_spec::image::Digest) -> Result<Self, Self::Error> {
        Digest::parse(d.as_ref())
    }
}

impl TryFrom<&Digest> for oci_spec::image::Digest {
    type Error = oci_spec::OciSpecError;
    fn try_from(d: &Digest) -> Result<Self, Self::Error> {
        oci_spec::image::Digest::from_str(&d.to_string())
    }
}

fn valid_digest_algorithm(alg: &str) -> bool {
    // component ( [+._-] component )*, component = [A-Za-z][A-Za-z0-9]*
    let mut expect_component_start = true;
    for b in alg.bytes() {
        if expect_component_start {
            if !b.is_ascii_alphabetic() {
                return false;
            }
            expect_component_start = false;
        } else if matches!(b, b'+' | b'.' | b'_' | b'-') {
            expect_component_start = true;
        } else if !b.is_ascii_alphanumeric() {
            return false;
        }
    }
    !expect_component_start
}

/// A normalised registry image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a docker-style reference (`busybox`, `ghcr.io/o/r:tag`,
    /// `localhost:5000/x@sha256:...`).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexOnly(s.to_string()));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(c) if last_slash.is_none_or(|sl| c > sl) => {
                (&name_tag[..c], Some(name_tag[c + 1..].to_string()))
            }
            _ => (name_tag, None),
        };
        if let Some(t) = &tag {
            validate_tag(t)?;
        }
        if name.is_empty() {
            return Err(ReferenceError::InvalidPathComponent {
                repository: String::new(),
                component: String::new(),
                reason: "the repository name is empty",
            });
        }
        let (domain, repository) = split_domain(name);
        if repository.to_lowercase() != repository {
            return Err(ReferenceError::Uppercase(repository));
        }
        validate_domain(&domain)?;
        validate_path(&repository)?;
        let len = domain.len() + 1 + repository.len();
        if len > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong { len });
        }
        Ok(Reference {
            domain,
            repository,
            tag,
            digest,
        })
    }

    /// A reference from parts already split (validated like [`Reference::parse`]).
    pub fn from_parts(
        domain: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, ReferenceError> {
        let mut s = format!("{domain}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        Reference::parse(&s)
    }

    /// The registry domain as normalised (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The `host[:port]` that serves the registry API (`registry-1.docker.io` for Hub).
    pub fn api_host(&self) -> &str {
        if self.domain == DOCKER_HUB_DOMAIN {
            DOCKER_HUB_API_HOST
        } else {
            &self.domain
        }
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if one was written.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if one was written.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when given (it wins over a tag), else
    /// the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(tag)?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest (tag kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `domain/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }
}

impl fmt::Display for Reference {
    /// The fully normalised form (`docker.io/library/busybox:latest`); a reference
    /// without tag or digest prints with `:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => write!(f, ":{t}@{d}"),
            (Some(t), None) => write!(f, ":{t}"),
            (None, Some(d)) => write!(f, "@{d}"),
            (None, None) => write!(f, ":{DEFAULT_TAG}"),
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, remote) = match name.split_once('/') {
        None => (DOCKER_HUB_DOMAIN.to_string(), name.to_string()),
        Some((first, rest)) => {
            if first == "localhost" || first.contains(['.', ':']) {
                if first == DOCKER_HUB_LEGACY_DOMAIN {
                    (DOCKER_HUB_DOMAIN.to_string(), rest.to_string())
                } else {
                    (first.to_string(), rest.to_string())
                }
            } else if first.to_lowercase() != first {
                (first.to_string(), rest.to_string())
            } else {
                (DOCKER_HUB_DOMAIN.to_string(), name.to_string())
            }
        }
    };
    if domain == DOCKER_HUB_DOMAIN && !remote.contains('/') {
        (domain, format!("library/{remote}"))
    } else {
        (domain, remote)
    }
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let bad = |reason| ReferenceError::InvalidTag {
        tag: tag.to_string(),
        reason,
    };
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.first() {
        None => return Err(bad("empty")),
        Some(&b) if !is_word(b) => return Err(bad("must start with a letter, digit or '_'")),
        _ => {}
    }
    if bytes.len() > TAG_LENGTH_MAX {
        return Err(bad("longer than 128 characters"));
    }
    if !bytes.iter().all(|&b| is_word(b) || b == b'.' || b == b'-') {
        return Err(bad("only letters, digits, '_', '.' and '-' are allowed"));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), ReferenceError> {
    let bad = |reason| ReferenceError::InvalidDomain {
        domain: domain.to_string(),
        reason,
    };
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in IPv6 address"))?;
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad("malformed IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected ':PORT' after the IPv6 address"))?,
            ),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        for comp in host.split('.') {
            let b = comp.as_bytes();
            let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
                return Err(bad("empty host component"));
            };
            if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
                return Err(bad(
                    "host components must start and end with a letter or digit",
                ));
            }
            if !b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-') {
                return Err(bad("host components may hold only letters, digits and '-'"));
            }
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the port must be decimal digits"));
        }
        if port.parse::<u32>().map_or(true, |p| p > 65535) {
            return Err(bad("the port must be at most 65535"));
        }
    }
    Ok(())
}

/// Validates a repository path (`library/busybox`) against the reference grammar
/// (lowercase components joined by `/`, at most 255 characters).
pub fn validate_repository(repository: &str) -> Result<(), ReferenceError> {
    if repository.to_lowercase() != repository {
        return Err(ReferenceError::Uppercase(repository.to_string()));
    }
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong {
            len: repository.len(),
        });
    }
    validate_path(repository)
}

fn validate_path(repository: &str) -> Result<(), ReferenceError> {
    for component in repository.split('/') {
        if let Err(reason) = validate_path_component(component) {
            return Err(ReferenceError::InvalidPathComponent {
                repository: repository.to_string(),
                component: component.to_string(),
                reason,
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_path_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("empty component (leading, trailing or doubled '/')");
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return Err("must start and end with a lowercase letter or digit");
        }
        if i == b.len() {
            return Ok(());
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => {
                return Err(
                    "only lowercase letters, digits and separators '.', '_', '__', '-' are allowed",
                )
            }
        }
        if i == b.len() {
            return Err("must start and end with a lowercase letter or digit");
        }
        if !alnum(b[i]) {
            return Err("separators must be followed by a lowercase letter or digit");
        }
    }
}

/// Where an image comes from or goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A registry reference.
    Registry(Reference),
    /// An OCI image layout directory (native only): `oci:DIR[:TAG]`.
    OciLayout {
        /// The layout directory (it may not contain ':').
        dir: String,
        /// The `org.opencontainers.image.ref.name` to pick, if given.
        tag: Option<String>,
    },
}

impl ImageSource {
    /// Parses `oci:DIR[:TAG]`, `docker://REF` or a plain registry reference.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = match rest.split_once(':') {
                Some((d, t)) => (d, Some(t)),
                None => (rest, None),
            };
            if dir.is_empty() {
                return Err(ReferenceError::InvalidOciLayout(s.to_string()));
            }
            if let Some(t) = tag {
                validate_tag(t)?;
            }
            return Ok(ImageSource::OciLayout {
                dir: dir.to_string(),
                tag: tag.map(str::to_string),
            });
        }
        let r = s.strip_prefix("docker://").unwrap_or(s);
        Ok(ImageSource::Registry(Reference::parse(r)?))
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Registry(r) => r.fmt(f),
            ImageSource::OciLayout { dir, tag: Some(t) } => write!(f, "oci:{dir}:{t}"),
            ImageSource::OciLayout { dir, tag: None } => write!(f, "oci:{dir}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b";

    fn p(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = p(s);
        (
            r.domain().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(|d| d.to_string()),
        )
    }

    #[test]
    fn hub_short_names() {
        assert_eq!(
            parts("busybox"),
            ("docker.io".into(), "library/busybox".into(), None, None)
        );
        assert_eq!(p("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(p("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(p("busybox:1.36").tag(), Some("1.36"));
        assert_eq!(p("user/repo").repository(), "user/repo");
        assert_eq!(p("user/repo").domain(), "docker.io");
        assert_eq!(p("docker.io/busybox").repository(), "library/busybox");
        assert_eq!(
            p("docker.io/library/busybox").repository(),
            "library/busybox"
        );
        assert_eq!(p("index.docker.io/busybox").domain(), "docker.io");
        assert_eq!(p("index.docker.io/busybox").repository(), "library/busybox");
        assert_eq!(p("index.docker.io/a/b").repository(), "a/b");
        assert_eq!(p("a/b/c").repository(), "a/b/c");
        assert_eq!(p("a/b/c").domain(), "docker.io");
    }

    #[test]
    fn other_registries() {
        assert_eq!(
            parts("localhost/foo"),
            ("localhost".into(), "foo".into(), None, None)
        );
        assert_eq!(
            parts("localhost:5000/foo/bar:v1"),
            (
                "localhost:5000".into(),
                "foo/bar".into(),
                Some("v1".into()),
                None
            )
        );
        assert_eq!(p("127.0.0.1:5000/x").domain(), "127.0.0.1:5000");
        assert_eq!(p("127.0.0.1:5000/x").api_host(), "127.0.0.1:5000");
        assert_eq!(p("ghcr.io/owner/img:tag").domain(), "ghcr.io");
        assert_eq!(p("myhost:5000/img").domain(), "myhost:5000");
        assert_eq!(p("[::1]:5000/img").domain(), "[::1]:5000");
        assert_eq!(p("[::1]/img").domain(), "[::1]");
        assert_eq!(p("[2001:db8::1]:443/a/b").domain(), "[2001:db8::1]:443");
        // uppercase first component: a domain
        assert_eq!(p("Foo/bar").domain(), "Foo");
        assert_eq!(
            p("Registry.Example.COM/bar").domain(),
            "Registry.Example.COM"
        );
        // no dot, no port, lowercase: a Hub namespace
        assert_eq!(p("myhost/img").domain(), "docker.io");
        assert_eq!(p("myhost/img").repository(), "myhost/img");
    }

    #[test]
    fn tags_and_digests() {
        let r = p(&format!("busybox@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(|d| d.to_string()), Some(D.to_string()));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r = p(&format!("localhost:5000/a:v2@{D}"));
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.manifest_reference(), D, "digest wins over tag");
        assert_eq!(r.to_string(), format!("localhost:5000/a:v2@{D}"));
        assert_eq!(p("a").manifest_reference(), "latest");
        assert_eq!(p("a:_x.Y-1").tag(), Some("_x.Y-1"));
        // localhost:5000 alone is name "localhost", tag "5000"
        assert_eq!(
            parts("localhost:5000"),
            (
                "docker.io".into(),
                "library/localhost".into(),
                Some("5000".into()),
                None
            )
        );
        let long = "a".repeat(128);
        assert_eq!(p(&format!("x:{long}")).tag(), Some(long.as_str()));
    }

    #[test]
    fn separators() {
        for ok in [
            "a.b",
            "a_b",
            "a__b",
            "a-b",
            "a---b",
            "a.b-c_d__e",
            "0",
            "a1/b2",
        ] {
            p(ok);
        }
        for bad in [
            "a..b", "a___b", "a._b", "-a", "a-", ".a", "a.", "_a", "a_", "a//b", "a/",
        ] {
            assert!(
                matches!(
                    Reference::parse(bad),
                    Err(ReferenceError::InvalidPathComponent { .. })
                ),
                "{bad:?}: {:?}",
                Reference::parse(bad)
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        let hex = "a".repeat(64);
        assert_eq!(Reference::parse(&hex), Err(ReferenceError::HexOnly(hex)));
        assert_eq!(
            Reference::parse("docker.io/Foo/bar"),
            Err(ReferenceError::Uppercase("Foo/bar".into()))
        );
        assert_eq!(
            Reference::parse("BusyBox"),
            Err(ReferenceError::Uppercase("library/BusyBox".into()))
        );
        assert!(matches!(
            Reference::parse("a:"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse("a:-x"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse(&format!("a:{}", "b".repeat(129))),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(matches!(
            Reference::parse("a:b/c"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            Reference::parse("a@sha256:abc"),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse(&format!("a@sha256:{}", "A".repeat(64))),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse(&format!("a@md5:{}", "a".repeat(32))),
            Err(ReferenceError::UnsupportedDigestAlgorithm(_))
        ));
        assert!(matches!(
            Reference::parse(&format!("a@{D}@{D}")),
            Err(ReferenceError::InvalidDigest { .. })
        ));
        assert!(matches!(
            Reference::parse("host:99999/a"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            Reference::parse("host:/a"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            Reference::parse("-bad.com/a"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            Reference::parse("[::1/a"),
            Err(ReferenceError::InvalidDomain { .. })
        ));
        assert!(matches!(
            Reference::parse("a b"),
            Err(ReferenceError::InvalidPathComponent { .. })
        ));
        let long = format!("registry.example.com/{}", "a".repeat(240));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong { .. })
        ));
        // 255 exactly is fine
        let name = format!("h.io/{}", "a".repeat(250));
        assert_eq!(name.len(), 255);
        p(&name);
        let e = Reference::parse("a:-x").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("-x")));
    }

    #[test]
    fn digests() {
        let d = Digest::parse(D).ok();
        assert_eq!(d.as_ref().map(|d| d.algorithm()), Some("sha256"));
        assert!(d.as_ref().and_then(|d| d.sha256_bytes()).is_some());
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(Digest::parse("sha256").is_err());
        assert!(Digest::parse(&format!("1sha:{}", "0".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "0".repeat(63))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "g".repeat(64))).is_err());
        let oci: Result<oci_spec::image::Digest, _> = d.as_ref().map_or_else(
            || Err("none".to_string()),
            |d| oci_spec::image::Digest::try_from(d).map_err(|e| e.to_string()),
        );
        assert_eq!(oci.map(|o| o.to_string()), Ok(D.to_string()));
    }

    #[test]
    fn builders() {
        let r = p("localhost:5000/a/b:v1");
        assert_eq!(r.name(), "localhost:5000/a/b");
        let t = r.with_tag("v2").ok();
        assert_eq!(
            t.map(|t| t.to_string()),
            Some("localhost:5000/a/b:v2".into())
        );
        assert!(r.with_tag("bad tag").is_err());
        let d = Digest::sha256_of(b"x");
        assert_eq!(r.with_digest(d.clone()).manifest_reference(), d.to_string());
        let f = Reference::from_parts("docker.io", "busybox", Some("1"), None).ok();
        assert_eq!(
            f.map(|f| f.repository().to_string()),
            Some("library/busybox".into())
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let alphabet: Vec<char> = "aZ09:/@._-[]%é\u{0}sha256:".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut y = x;
            for _ in 0..len {
                y = y.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(y >> 33) as usize % alphabet.len()]);
            }
            let _ = Reference::parse(&s);
            let _ = ImageSource::parse(&s);
            let _ = Digest::parse(&s);
            let _ = super::super::registry::auth::parse_challenge(&s);
        }
    }

    #[test]
    fn image_sources() {
        assert_eq!(
            ImageSource::parse("oci:/tmp/layout:amd64"),
            Ok(ImageSource::OciLayout {
                dir: "/tmp/layout".into(),
                tag: Some("amd64".into())
            })
        );
        assert_eq!(
            ImageSource::parse("oci:rel/dir"),
            Ok(ImageSource::OciLayout {
                dir: "rel/dir".into(),
                tag: None
            })
        );
        assert!(ImageSource::parse("oci:").is_err());
        assert!(ImageSource::parse("oci:/d:bad tag").is_err());
        assert_eq!(
            ImageSource::parse("docker://busybox").map(|s| s.to_string()),
            Ok("docker.io/library/busybox:latest".into())
        );
        assert_eq!(
            ImageSource::parse("oci:/x:y").map(|s| s.to_string()),
            Ok("oci:/x:y".into())
        );
    }
}
