//! Manifests as fetched and pushed: the raw bytes (so digests stay exact), their media
//! type, and typed views through `oci-spec`.
//!
//! Four kinds: OCI image manifest, Docker v2 schema 2 manifest, OCI image index, Docker
//! manifest list. The Docker kinds have the same JSON shape as their OCI counterparts,
//! so both parse into `oci_spec::image::{ImageManifest, ImageIndex}`.
//!
//! An index resolves to linux/amd64 with [`select_platform`]; when none is present the
//! error lists the platforms that are.

use std::fmt;

use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::reference::{Digest, ReferenceError};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config media type.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config media type.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI gzip layer media type.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer media type.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI uncompressed layer media type.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker gzip layer media type.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign (non-distributable) gzip layer media type.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The `Accept` header value for manifest requests: every kind kiln understands.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest accepted (distribution's own limit is 4 MiB).
pub const MANIFEST_SIZE_MAX: usize = 4 * 1024 * 1024;

/// What is wrong with a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The media type is not one kiln understands.
    #[error("unsupported manifest media type {0:?} (supported: OCI manifest/index, Docker v2 schema 2 manifest/list)")]
    UnsupportedMediaType(String),
    /// A Docker schema 1 manifest (deprecated, not supported).
    #[error("unsupported Docker schema 1 manifest: push the image again with a current client")]
    Schema1,
    /// The JSON does not parse as the detected kind.
    #[error("malformed {kind} manifest: {detail}")]
    Malformed {
        /// The kind it was parsed as.
        kind: ManifestKind,
        /// The parser's message.
        detail: String,
    },
    /// An index was asked for where an image manifest was needed, or the reverse.
    #[error("expected an {expected}, got a {got}")]
    WrongKind {
        /// What was expected ("image manifest" / "index").
        expected: &'static str,
        /// The kind found.
        got: ManifestKind,
    },
    /// The content does not match its digest.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// No manifest for the wanted platform in an index.
    #[error("no {wanted} image in the index; platforms present: {}", if present.is_empty() { "none".to_string() } else { present.join(", ") })]
    NoMatchingPlatform {
        /// The wanted platform (`linux/amd64`).
        wanted: String,
        /// The platforms present (`linux/arm64/v8`, ...).
        present: Vec<String>,
    },
    /// The manifest is larger than [`MANIFEST_SIZE_MAX`].
    #[error("manifest larger than {MANIFEST_SIZE_MAX} bytes")]
    TooLarge,
    /// A digest inside the manifest is malformed.
    #[error("bad digest in manifest: {0}")]
    Digest(#[from] ReferenceError),
}

/// The four manifest kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// OCI image manifest.
    OciManifest,
    /// Docker v2 schema 2 manifest.
    DockerManifest,
    /// OCI image index.
    OciIndex,
    /// Docker manifest list.
    DockerManifestList,
}

impl ManifestKind {
    /// The kind for a media type (parameters such as `; charset=` ignored).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let mt = media_type.split(';').next().unwrap_or("").trim();
        match mt {
            OCI_MANIFEST => Some(ManifestKind::OciManifest),
            DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            OCI_INDEX => Some(ManifestKind::OciIndex),
            DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// The media type string.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::DockerManifest => DOCKER_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// True for an index or manifest list.
    pub fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::OciIndex | ManifestKind::DockerManifestList
        )
    }
}

impl fmt::Display for ManifestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManifestKind::OciManifest => "OCI image manifest",
            ManifestKind::DockerManifest => "Docker v2 schema 2 manifest",
            ManifestKind::OciIndex => "OCI image index",
            ManifestKind::DockerManifestList => "Docker manifest list",
        })
    }
}

/// Only the fields needed to tell the kinds apart.
#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// Tells the kind of a manifest from its own `mediaType` field, else the response's
/// `Content-Type`, else its shape (`manifests` → index; `config`/`layers` → manifest).
pub fn detect_kind(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<ManifestKind, ManifestError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed {
        kind: ManifestKind::OciManifest,
        detail: format!("not a JSON object: {e}"),
    })?;
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    if let Some(mt) = &probe.media_type {
        return ManifestKind::from_media_type(mt)
            .ok_or_else(|| ManifestError::UnsupportedMediaType(mt.clone()));
    }
    if let Some(ct) = content_type {
        if let Some(k) = ManifestKind::from_media_type(ct) {
            return Ok(k);
        }
        let ct0 = ct.split(';').next().unwrap_or("").trim();
        if ct0.contains("schema1") || ct0.contains("prettyjws") {
            return Err(ManifestError::Schema1);
        }
    }
    if probe.manifests.is_some() {
        Ok(ManifestKind::OciIndex)
    } else if probe.layers.is_some() || probe.config.is_some() {
        Ok(ManifestKind::OciManifest)
    } else {
        Err(ManifestError::UnsupportedMediaType(
            content_type.unwrap_or("(none)").to_string(),
        ))
    }
}

/// A manifest's exact bytes with its kind and digest.
#[derive(Clone, PartialEq, Eq)]
pub struct RawManifest {
    kind: ManifestKind,
    bytes: Bytes,
    digest: Digest,
}

impl fmt::Debug for RawManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawManifest")
            .field("kind", &self.kind)
            .field("digest", &self.digest)
            .field("size", &self.bytes.len())
            .finish()
    }
}

impl RawManifest {
    /// Wraps bytes, detecting the kind (see [`detect_kind`]) and computing the digest.
    pub fn from_bytes(
        bytes: impl Into<Bytes>,
        content_type: Option<&str>,
    ) -> Result<Self, ManifestError> {
        let bytes: Bytes = bytes.into();
        if bytes.len() > MANIFEST_SIZE_MAX {
            return Err(ManifestError::TooLarge);
        }
        let kind = detect_kind(content_type, &bytes)?;
        let digest = Digest::sha256_of(&bytes);
        Ok(RawManifest {
            kind,
            bytes,
            digest,
        })
    }

    /// Wraps bytes of a known kind (for manifests kiln writes itself).
    pub fn with_kind(bytes: impl Into<Bytes>, kind: ManifestKind) -> Self {
        let bytes: Bytes = bytes.into();
        let digest = Digest::sha256_of(&bytes);
        RawManifest {
            kind,
            bytes,
            digest,
        }
    }

    /// The kind.
    pub fn kind(&self) -> ManifestKind {
        self.kind
    }

    /// The media type (for `Content-Type` on push and for descriptors).
    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The `sha256:` digest of the bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Fails unless the bytes hash to `expected`.
    pub fn verify(&self, expected: &Digest) -> Result<(), ManifestError> {
        verify_digest(&format!("manifest {expected}"), expected, &self.bytes)
    }

    /// Parses as an image manifest (OCI or Docker v2).
    pub fn image_manifest(&self) -> Result<ImageManifest, ManifestError> {
        if self.kind.is_index() {
            return Err(ManifestError::WrongKind {
                expected: "image manifest",
                got: self.kind,
            });
        }
        let m: ImageManifest =
            serde_json::from_slice(&self.bytes).map_err(|e| ManifestError::Malformed {
                kind: self.kind,
                detail: e.to_string(),
            })?;
        if m.schema_version() != 2 {
            return Err(ManifestError::Malformed {
                kind: self.kind,
                detail: format!("schemaVersion {} (expected 2)", m.schema_version()),
            });
        }
        Ok(m)
    }

    /// Parses as an index (OCI index or Docker manifest list).
    pub fn index(&self) -> Result<ImageIndex, ManifestError> {
        if !self.kind.is_index() {
            return Err(ManifestError::WrongKind {
                expected: "index",
                got: self.kind,
            });
        }
        serde_json::from_slice(&self.bytes).map_err(|e| ManifestError::Malformed {
            kind: self.kind,
            detail: e.to_string(),
        })
    }
}

/// Fails unless `data` hashes to `expected` (sha256 only).
pub fn verify_digest(what: &str, expected: &Digest, data: &[u8]) -> Result<(), ManifestError> {
    if expected.algorithm() != "sha256" {
        return Err(ManifestError::Digest(
            ReferenceError::UnsupportedDigestAlgorithm(expected.algorithm().to_string()),
        ));
    }
    let actual = Digest::sha256_of(data);
    if &actual != expected {
        return Err(ManifestError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// A platform to pick out of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    /// `linux`.
    pub os: String,
    /// `amd64`.
    pub architecture: String,
}

impl PlatformSpec {
    /// linux/amd64, the only platform SGX enclaves run on.
    pub fn linux_amd64() -> Self {
        PlatformSpec {
            os: "linux".into(),
            architecture: "amd64".into(),
        }
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)
    }
}

/// Preference among amd64 variants: none or v1 first (runs on every x86-64 CPU), then
/// v2, v3, and anything else last.
fn variant_rank(variant: Option<&str>) -> u8 {
    match variant {
        None | Some("") => 0,
        Some("v1") => 1,
        Some("v2") => 2,
        Some("v3") => 3,
        Some(_) => 9,
    }
}

fn platform_string(d: &Descriptor) -> String {
    match d.platform() {
        None => "unknown".into(),
        Some(p) => {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant().as_deref().filter(|v| !v.is_empty()) {
                s.push('/');
                s.push_str(v);
            }
            s
        }
    }
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
}

/// Picks the manifest for `wanted` out of an index: exact os/architecture match, amd64
/// variants preferred none/v1 < v2 < v3 < others, ties broken by index order;
/// attestation manifests are ignored. Else an error listing the platforms present.
pub fn select_platform(
    index: &ImageIndex,
    wanted: &PlatformSpec,
) -> Result<Descriptor, ManifestError> {
    let mut best: Option<(u8, &Descriptor)> = None;
    let mut present: Vec<String> = Vec::new();
    for d in index.manifests() {
        if is_attestation(d) {
            continue;
        }
        let ps = platform_string(d);
        if !present.contains(&ps) {
            present.push(ps);
        }
        let Some(p) = d.platform() else { continue };
        if p.os().to_string() != wanted.os || p.architecture().to_string() != wanted.architecture {
            continue;
        }
        let rank = variant_rank(p.variant().as_deref());
        if best.is_none_or(|(r, _)| rank < r) {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d.clone())
        .ok_or_else(|| ManifestError::NoMatchingPlatform {
            wanted: wanted.to_string(),
            present,
        })
}

/// Checks an image config's own `os`/`architecture` (when present) against `wanted`:
/// a single-platform image of another architecture is refused like a missing index
/// entry, naming the platform it has.
pub fn check_config_platform(config: &[u8], wanted: &PlatformSpec) -> Result<(), ManifestError> {
    #[derive(serde::Deserialize)]
    struct P {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let Ok(p) = serde_json::from_slice::<P>(config) else {
        return Ok(());
    };
    let os_ok = p.os.as_deref().is_none_or(|o| o == wanted.os);
    let arch_ok = p
        .architecture
        .as_deref()
        .is_none_or(|a| a == wanted.architecture);
    if os_ok && arch_ok {
        return Ok(());
    }
    let mut have = format!(
        "{}/{}",
        p.os.as_deref().unwrap_or("unknown"),
        p.architecture.as_deref().unwrap_or("unknown")
    );
    if let Some(v) = p.variant.filter(|v| !v.is_empty()) {
        have.push('/');
        have.push_str(&v);
    }
    Err(ManifestError::NoMatchingPlatform {
        wanted: wanted.to_string(),
        present: vec![have],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(s: &str) -> String {
        Digest::sha256_of(s.as_bytes()).to_string()
    }

    fn image_manifest_json(media: Option<&str>, config_media: &str, layer_media: &str) -> String {
        let mt = media.map_or(String::new(), |m| format!("\"mediaType\":\"{m}\","));
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{config_media}","digest":"{}","size":2}},"layers":[{{"mediaType":"{layer_media}","digest":"{}","size":3}}]}}"#,
            digest_of("{}"),
            digest_of("abc")
        )
    }

    fn entry(arch: &str, variant: Option<&str>, tag: &str) -> String {
        let v = variant.map_or(String::new(), |v| format!(",\"variant\":\"{v}\""));
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"architecture":"{arch}","os":"linux"{v}}}}}"#,
            digest_of(tag)
        )
    }

    fn index_of(entries: &[String]) -> ImageIndex {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
            entries.join(",")
        );
        let raw = RawManifest::from_bytes(json.into_bytes(), None);
        match raw.and_then(|r| r.index()) {
            Ok(i) => i,
            Err(e) => panic!("index: {e}"),
        }
    }

    #[test]
    fn detects_kinds() {
        let oci = image_manifest_json(Some(OCI_MANIFEST), OCI_CONFIG, OCI_LAYER_GZIP);
        assert_eq!(
            detect_kind(None, oci.as_bytes()),
            Ok(ManifestKind::OciManifest)
        );
        let docker = image_manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, DOCKER_LAYER_GZIP);
        assert_eq!(
            detect_kind(Some(OCI_MANIFEST), docker.as_bytes()),
            Ok(ManifestKind::DockerManifest),
            "the body's mediaType wins"
        );
        let bare = image_manifest_json(None, OCI_CONFIG, OCI_LAYER_GZIP);
        assert_eq!(
            detect_kind(
                Some(&format!("{DOCKER_MANIFEST}; charset=utf-8")),
                bare.as_bytes()
            ),
            Ok(ManifestKind::DockerManifest)
        );
        assert_eq!(
            detect_kind(None, bare.as_bytes()),
            Ok(ManifestKind::OciManifest)
        );
        assert_eq!(
            detect_kind(None, br#"{"schemaVersion":2,"manifests":[]}"#),
            Ok(ManifestKind::OciIndex)
        );
        assert_eq!(
            detect_kind(None, br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#),
            Ok(ManifestKind::DockerManifestList)
        );
        assert_eq!(
            detect_kind(None, br#"{"schemaVersion":1,"name":"x"}"#),
            Err(ManifestError::Schema1)
        );
        assert!(matches!(
            detect_kind(None, br#"{"schemaVersion":2,"mediaType":"text/plain"}"#),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            detect_kind(None, b"not json"),
            Err(ManifestError::Malformed { .. })
        ));
    }

    #[test]
    fn raw_bytes_and_digest_kept_exact() {
        // odd whitespace: re-serialising would change the digest
        let json = format!(
            "{}  \n",
            image_manifest_json(Some(DOCKER_MANIFEST), DOCKER_CONFIG, DOCKER_LAYER_GZIP)
        );
        let raw = RawManifest::from_bytes(json.clone().into_bytes(), None);
        let Ok(raw) = raw else { panic!("parse") };
        assert_eq!(raw.bytes().as_ref(), json.as_bytes());
        assert_eq!(raw.digest(), &Digest::sha256_of(json.as_bytes()));
        assert_eq!(raw.media_type(), DOCKER_MANIFEST);
        assert!(raw.verify(&Digest::sha256_of(json.as_bytes())).is_ok());
        assert!(matches!(
            raw.verify(&Digest::sha256_of(b"other")),
            Err(ManifestError::DigestMismatch { .. })
        ));
        let m = raw.image_manifest();
        assert_eq!(m.map(|m| m.layers().len()), Ok(1));
        assert!(matches!(raw.index(), Err(ManifestError::WrongKind { .. })));
    }

    #[test]
    fn selects_amd64() {
        let idx = index_of(&[
            entry("arm64", Some("v8"), "a"),
            entry("amd64", Some("v3"), "b"),
            entry("amd64", None, "c"),
            entry("amd64", None, "d"),
        ]);
        let d = select_platform(&idx, &PlatformSpec::linux_amd64());
        assert_eq!(d.map(|d| d.digest().to_string()), Ok(digest_of("c")));
        let idx = index_of(&[
            entry("amd64", Some("v3"), "b"),
            entry("amd64", Some("v2"), "e"),
        ]);
        let d = select_platform(&idx, &PlatformSpec::linux_amd64());
        assert_eq!(d.map(|d| d.digest().to_string()), Ok(digest_of("e")));
    }

    #[test]
    fn missing_platform_lists_present_ones() {
        let idx = index_of(&[
            entry("arm64", Some("v8"), "a"),
            entry("arm", Some("v7"), "b"),
            entry("s390x", None, "c"),
        ]);
        let e = select_platform(&idx, &PlatformSpec::linux_amd64());
        let Err(e) = e else { panic!("must fail") };
        assert_eq!(
            e,
            ManifestError::NoMatchingPlatform {
                wanted: "linux/amd64".into(),
                present: vec![
                    "linux/arm64/v8".into(),
                    "linux/arm/v7".into(),
                    "linux/s390x".into()
                ]
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("linux/arm64/v8, linux/arm/v7, linux/s390x"),
            "{msg}"
        );
    }

    #[test]
    fn config_platform_checked() {
        let w = PlatformSpec::linux_amd64();
        assert!(check_config_platform(br#"{"os":"linux","architecture":"amd64"}"#, &w).is_ok());
        assert!(check_config_platform(br#"{}"#, &w).is_ok());
        assert_eq!(
            check_config_platform(
                br#"{"os":"linux","architecture":"arm64","variant":"v8"}"#,
                &w
            ),
            Err(ManifestError::NoMatchingPlatform {
                wanted: "linux/amd64".into(),
                present: vec!["linux/arm64/v8".into()]
            })
        );
    }

    #[test]
    fn attestations_ignored() {
        let att = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":10,"platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}"#,
            digest_of("att")
        );
        let idx = index_of(&[att, entry("arm64", None, "a")]);
        let e = select_platform(&idx, &PlatformSpec::linux_amd64());
        assert!(
            matches!(e, Err(ManifestError::NoMatchingPlatform { ref present, .. }) if present == &vec!["linux/arm64".to_string()])
        );
    }
}
