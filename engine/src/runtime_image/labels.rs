//! The runtime image's config labels, and the descriptor read back from a config.

use crate::gramine::runtime_descriptor::{RuntimeDescriptor, RuntimeError};

/// Label: the runtime image format (`1`).
pub const LABEL_FORMAT: &str = "dev.kiln.runtime.format";
/// Label: the descriptor as compact JSON.
pub const LABEL_DESCRIPTOR: &str = "dev.kiln.runtime.descriptor";
/// Label: the Gramine version, e.g. `1.9`.
pub const LABEL_GRAMINE_VERSION: &str = "dev.kiln.runtime.gramine-version";
/// The runtime image format this engine writes and reads.
pub const RUNTIME_FORMAT: &str = "1";
/// Name of the descriptor file below the prefix.
pub const DESCRIPTOR_FILE: &str = "runtime.json";
/// Name of the launcher below the prefix.
pub const LAUNCHER_FILE: &str = "kiln-launcher";
/// Name of kiln-init below the prefix (see [`crate::gramine::init`]).
pub const INIT_FILE: &str = crate::gramine::init::KILN_INIT;

/// Why an image config is not a usable runtime image config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeImageError {
    /// The config is not JSON.
    #[error("runtime image config: not JSON: {0}")]
    ConfigJson(String),
    /// A label is missing.
    #[error("runtime image config: label `{0}` is missing (is this a kiln runtime image?)")]
    MissingLabel(&'static str),
    /// The format label names a format this engine does not know.
    #[error("runtime image config: label `{LABEL_FORMAT}` is `{0}`, expected `{RUNTIME_FORMAT}`")]
    UnknownFormat(String),
    /// The descriptor label is invalid.
    #[error("runtime image config: label `{LABEL_DESCRIPTOR}`: {0}")]
    Descriptor(#[from] RuntimeError),
}

/// The labels of an image config (`config.Labels`), empty when absent.
pub fn config_labels(config: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    config
        .get("config")
        .and_then(|c| c.get("Labels"))
        .and_then(|l| l.as_object())
        .cloned()
        .unwrap_or_default()
}

/// Reads and validates the runtime descriptor from a runtime image's config blob.
pub fn descriptor_from_config(config: &[u8]) -> Result<RuntimeDescriptor, RuntimeImageError> {
    let v: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| RuntimeImageError::ConfigJson(e.to_string()))?;
    let labels = config_labels(&v);
    let get = |k: &'static str| {
        labels
            .get(k)
            .and_then(|x| x.as_str())
            .ok_or(RuntimeImageError::MissingLabel(k))
    };
    let format = get(LABEL_FORMAT)?;
    if format != RUNTIME_FORMAT {
        return Err(RuntimeImageError::UnknownFormat(format.to_string()));
    }
    Ok(RuntimeDescriptor::from_json(
        get(LABEL_DESCRIPTOR)?.as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_labels() {
        assert!(matches!(
            descriptor_from_config(b"nope"),
            Err(RuntimeImageError::ConfigJson(_))
        ));
        assert_eq!(
            descriptor_from_config(br#"{"config":{}}"#),
            Err(RuntimeImageError::MissingLabel(LABEL_FORMAT))
        );
        assert_eq!(
            descriptor_from_config(br#"{"config":{"Labels":{"dev.kiln.runtime.format":"2"}}}"#),
            Err(RuntimeImageError::UnknownFormat("2".into()))
        );
        let cfg = br#"{"config":{"Labels":{"dev.kiln.runtime.format":"1","dev.kiln.runtime.descriptor":"{}"}}}"#;
        assert!(matches!(
            descriptor_from_config(cfg),
            Err(RuntimeImageError::Descriptor(_))
        ));
    }
}
