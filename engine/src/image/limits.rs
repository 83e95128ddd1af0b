//! Bounds on what an image may make kiln read, hold or compute: one policy
//! ([`ImageLimits`]) that every front (CLI, worker, app) passes to the engine, so a
//! hostile image is refused with a 400 naming the layer and the limit instead of taking
//! the process's memory or CPU.
//!
//! Each limit has a kebab-case name, used by `kiln --limit NAME=VALUE`, by the worker's
//! `KILN_LIMIT_NAME` variables (upper case, `_` for `-`) and by the app's config; see
//! docs/limits.md for the table of defaults.

use serde::{Deserialize, Serialize};

/// Bytes of memory one file-index entry costs besides its path, counted against
/// [`ImageLimits::index_bytes`]: the B-tree slot (key `String` 24, `FileEntry` 48) and
/// the node overhead, rounded up. Layer summaries cost about the same per entry
/// (`LayerEntry` 80 bytes plus the path).
pub const INDEX_ENTRY_OVERHEAD: u64 = 128;

/// The limits of one conversion, verification or inspection. `Default` is the native
/// (CLI) policy, generous enough for a 20 GiB, 200k-file ML image;
/// [`ImageLimits::edge`] is the Worker's (128 MB isolates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageLimits {
    /// `path-bytes`: longest normalised entry path or link target (Linux's PATH_MAX).
    pub path_bytes: u64,
    /// `path-depth`: most components in one entry path.
    pub path_depth: u64,
    /// `layer-entries`: most tar entries (whiteouts included) in one layer.
    pub layer_entries: u64,
    /// `image-entries`: most paths in the merged file index (implicit parent
    /// directories included).
    pub image_entries: u64,
    /// `index-bytes`: memory of the merged file index, counted as path bytes plus
    /// [`INDEX_ENTRY_OVERHEAD`] per entry.
    pub index_bytes: u64,
    /// `layer-bytes`: uncompressed bytes (the tar stream) of one layer.
    pub layer_bytes: u64,
    /// `image-bytes`: uncompressed bytes of all layers together.
    pub image_bytes: u64,
    /// `zstd-window`: largest zstd window a frame may ask for (memory the decoder holds).
    pub zstd_window: u64,
    /// `capture-bytes`: file contents one layer scan may keep in memory in total
    /// (`/etc/passwd`, a runtime's libpal, ...).
    pub capture_bytes: u64,
    /// `manifest-layers`: most layers in an image manifest.
    pub manifest_layers: u64,
    /// `config-bytes`: largest image config blob.
    pub config_bytes: u64,
    /// `manifest-bytes`: largest manifest or index.
    pub manifest_bytes: u64,
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            path_bytes: 4096,
            path_depth: 256,
            layer_entries: 1_000_000,
            image_entries: 2_000_000,
            index_bytes: GIB,
            layer_bytes: 64 * GIB,
            image_bytes: 128 * GIB,
            zstd_window: 32 * MIB,
            capture_bytes: 64 * MIB,
            manifest_layers: 1000,
            config_bytes: 8 * MIB,
            manifest_bytes: 4 * MIB,
        }
    }
}

/// The names of the limits, in table order.
pub const LIMIT_NAMES: &[&str] = &[
    "path-bytes",
    "path-depth",
    "layer-entries",
    "image-entries",
    "index-bytes",
    "layer-bytes",
    "image-bytes",
    "zstd-window",
    "capture-bytes",
    "manifest-layers",
    "config-bytes",
    "manifest-bytes",
];

/// A limit was hit: which one, its value, and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit {name}={value} exceeded: {found}")]
pub struct LimitExceeded {
    /// The limit's name (`path-bytes`, ...).
    pub name: &'static str,
    /// Its value.
    pub value: u64,
    /// What exceeded it (a size, a count, a path prefix), for the message.
    pub found: String,
}

impl LimitExceeded {
    /// A limit `name` of `value` exceeded by `found`.
    pub fn new(name: &'static str, value: u64, found: impl Into<String>) -> Self {
        LimitExceeded {
            name,
            value,
            found: found.into(),
        }
    }
}

/// Why a `NAME=VALUE` setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitSettingError {
    /// No such limit.
    #[error("unknown limit {0:?} (known: {names})", names = LIMIT_NAMES.join(", "))]
    UnknownName(String),
    /// The value is not a number (with an optional K/M/G/T, KiB/MiB/GiB/TiB suffix).
    #[error("limit {name}: {value:?} is not a number of the form 123, 64MiB or 2G")]
    BadValue {
        /// The limit.
        name: String,
        /// The value as given.
        value: String,
    },
    /// Not of the form `NAME=VALUE`.
    #[error("limit setting {0:?} is not of the form NAME=VALUE")]
    NotAssignment(String),
}

impl ImageLimits {
    /// The Worker's defaults: an isolate has 128 MB, so less index, fewer entries and
    /// fewer uncompressed bytes than the CLI (a conversion there must also end within
    /// the request's wall time). Entries: a conversion in workerd peaks at about 1.8 KiB
    /// of wasm memory per file plus ~16 MiB of JS heap (docs/benchmarks.md, "isolate"), so
    /// 40,000 files stay near 90 MB; a 100k-file image measured 180 MiB and would kill the
    /// isolate. Larger images convert with the CLI (or with `KILN_LIMIT_*` raised where the
    /// platform gives more memory).
    pub fn edge() -> Self {
        ImageLimits {
            layer_entries: 40_000,
            image_entries: 40_000,
            index_bytes: 64 * MIB,
            layer_bytes: 8 * GIB,
            image_bytes: 16 * GIB,
            zstd_window: 16 * MIB,
            capture_bytes: 32 * MIB,
            ..Self::default()
        }
    }

    /// The value of the limit `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(*self.field(name)?)
    }

    fn field(&self, name: &str) -> Option<&u64> {
        Some(match name {
            "path-bytes" => &self.path_bytes,
            "path-depth" => &self.path_depth,
            "layer-entries" => &self.layer_entries,
            "image-entries" => &self.image_entries,
            "index-bytes" => &self.index_bytes,
            "layer-bytes" => &self.layer_bytes,
            "image-bytes" => &self.image_bytes,
            "zstd-window" => &self.zstd_window,
            "capture-bytes" => &self.capture_bytes,
            "manifest-layers" => &self.manifest_layers,
            "config-bytes" => &self.config_bytes,
            "manifest-bytes" => &self.manifest_bytes,
            _ => return None,
        })
    }

    /// Sets the limit `name` (kebab-case, or the `KILN_LIMIT_` variable's
    /// `UPPER_SNAKE` form) to `value` (`123`, `64MiB`, `2G`: K/M/G/T are powers of 1024
    /// too, as in docker's flags).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), LimitSettingError> {
        let key = name.trim().to_ascii_lowercase().replace('_', "-");
        let parsed = parse_size(value).ok_or_else(|| LimitSettingError::BadValue {
            name: key.clone(),
            value: value.to_string(),
        })?;
        let slot = match key.as_str() {
            "path-bytes" => &mut self.path_bytes,
            "path-depth" => &mut self.path_depth,
            "layer-entries" => &mut self.layer_entries,
            "image-entries" => &mut self.image_entries,
            "index-bytes" => &mut self.index_bytes,
            "layer-bytes" => &mut self.layer_bytes,
            "image-bytes" => &mut self.image_bytes,
            "zstd-window" => &mut self.zstd_window,
            "capture-bytes" => &mut self.capture_bytes,
            "manifest-layers" => &mut self.manifest_layers,
            "config-bytes" => &mut self.config_bytes,
            "manifest-bytes" => &mut self.manifest_bytes,
            _ => return Err(LimitSettingError::UnknownName(name.to_string())),
        };
        *slot = parsed;
        Ok(())
    }

    /// Applies one `NAME=VALUE` setting.
    pub fn apply(&mut self, setting: &str) -> Result<(), LimitSettingError> {
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| LimitSettingError::NotAssignment(setting.to_string()))?;
        self.set(name, value)
    }

    /// Applies `KILN_LIMIT_<NAME>` variables from `vars` (name, value pairs); others are
    /// ignored.
    pub fn apply_env<'a>(
        &mut self,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), LimitSettingError> {
        for (k, v) in vars {
            if let Some(name) = k.strip_prefix("KILN_LIMIT_") {
                self.set(name, v)?;
            }
        }
        Ok(())
    }

    /// `Err` naming `name` when `found > value`.
    pub fn check(
        name: &'static str,
        value: u64,
        found: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), LimitExceeded> {
        if found > value {
            Err(LimitExceeded::new(name, value, what()))
        } else {
            Ok(())
        }
    }
}

/// `123`, `64KiB`, `64K`, `2GiB`, `1T` (binary multiples), surrounding spaces ignored.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => GIB * KIB,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_every_field_and_parse() {
        let d = ImageLimits::default();
        for name in LIMIT_NAMES {
            assert!(d.get(name).is_some(), "{name}");
            let mut l = d;
            l.set(name, "7").unwrap();
            assert_eq!(l.get(name), Some(7), "{name}");
        }
        let mut l = d;
        l.apply("layer-bytes=2GiB").unwrap();
        assert_eq!(l.layer_bytes, 2 * GIB);
        l.apply_env([("KILN_LIMIT_ZSTD_WINDOW", "8M"), ("OTHER", "x")])
            .unwrap();
        assert_eq!(l.zstd_window, 8 * MIB);
        assert!(matches!(
            l.apply("nope=1"),
            Err(LimitSettingError::UnknownName(_))
        ));
        assert!(matches!(
            l.apply("path-bytes=lots"),
            Err(LimitSettingError::BadValue { .. })
        ));
        assert!(l.apply("path-bytes").is_err());
        assert!(l.set("image-bytes", "99999999999T").is_err());
        let e = LimitExceeded::new("path-bytes", 4096, "path of 80002 bytes");
        assert_eq!(
            e.to_string(),
            "limit path-bytes=4096 exceeded: path of 80002 bytes"
        );
    }

    #[test]
    fn edge_is_lower_and_serde_defaults() {
        let (e, d) = (ImageLimits::edge(), ImageLimits::default());
        assert!(e.layer_bytes < d.layer_bytes && e.image_bytes < d.image_bytes);
        let partial: ImageLimits = serde_json::from_str(r#"{"layerBytes": 5}"#).unwrap();
        assert_eq!(partial.layer_bytes, 5);
        assert_eq!(partial.path_bytes, d.path_bytes);
    }
}
