//! Hostile images for the fronts' limit tests (issue 16): each one small to push and
//! built to make a reader without limits hold or burn far more than it should. The
//! same layers as engine/tests/hostile_images.rs (which builds them inline: the engine
//! cannot depend on this crate), as whole images a registry accepts, so the worker's
//! and the page's tests can push them (example `hostile_images`).
//!
//! | name | what | the limit it meets (edge defaults) |
//! |---|---|---|
//! | `deep-path` | a PAX path `"a/" * 40000 + "f"` (under 2 KB gzipped) | `path-bytes` |
//! | `zstd-window` | a zstd frame asking a 2 GiB window | `zstd-window` |
//! | `symlink-chain` | 100,000 symlinks `l0 -> l1 -> ...` | `layer-entries` (40,000 at the edge; natively the hop limit) |
//! | `many-layers` | a manifest of 10,000 layers (one tiny blob, repeated) | `manifest-layers` |
//! | `big-config` | a 16 MiB config | `config-bytes` |
//! | `many-entries` | 50,000 empty files in one layer | `layer-entries` |
//! | `gzip-bomb` | a ~10 MB gzip layer that inflates to 10 GiB | `layer-bytes` |

use kiln_engine::image::manifest::{ManifestKind, RawManifest, OCI_CONFIG, OCI_MANIFEST};
use serde_json::json;

use crate::images::{gzip, Blob, ImageFormat, TestImage};
use crate::HarnessError;

/// Media type of a gzip layer.
pub const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of a zstd layer.
pub const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The bombs by name, in the table's order.
pub const NAMES: &[&str] = &[
    "deep-path",
    "zstd-window",
    "symlink-chain",
    "many-layers",
    "big-config",
    "many-entries",
    "gzip-bomb",
];

/// The limit each bomb meets with the edge's defaults ([`ImageLimits::edge`]).
///
/// [`ImageLimits::edge`]: kiln_engine::image::limits::ImageLimits::edge
pub fn edge_limit(name: &str) -> Option<&'static str> {
    Some(match name {
        "deep-path" => "path-bytes",
        "zstd-window" => "zstd-window",
        "symlink-chain" => "layer-entries",
        "many-layers" => "manifest-layers",
        "big-config" => "config-bytes",
        "many-entries" => "layer-entries",
        "gzip-bomb" => "layer-bytes",
        _ => return None,
    })
}

/// The bomb `name` as an image (linux/amd64, OCI), or `None` for an unknown name.
pub fn bomb(name: &str) -> Result<Option<TestImage>, HarnessError> {
    Ok(Some(match name {
        "deep-path" => image_of(vec![Blob::new(GZ, deep_path_layer()?)], 0)?,
        "zstd-window" => image_of(vec![Blob::new(ZSTD, zstd_window_layer())], 0)?,
        "symlink-chain" => image_of(vec![Blob::new(GZ, symlink_chain_layer(100_000)?)], 0)?,
        "many-layers" => {
            let one = Blob::new(GZ, gzip(&[0u8; 1024])?);
            image_of(vec![one; 10_000], 0)?
        }
        "big-config" => image_of(vec![Blob::new(GZ, gzip(&[0u8; 1024])?)], 16 << 20)?,
        "many-entries" => image_of(vec![Blob::new(GZ, empty_files_layer(50_000)?)], 0)?,
        "gzip-bomb" => image_of(vec![Blob::new(GZ, gzip_bomb_layer(10 << 30)?)], 0)?,
        _ => return Ok(None),
    }))
}

/// An OCI image of `layers` (their blob digests stand in for the diff_ids: kiln never
/// reads those), its config padded with a label to at least `config_bytes`.
pub fn image_of(layers: Vec<Blob>, config_bytes: usize) -> Result<TestImage, HarnessError> {
    let mut cfg = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
    });
    if config_bytes > 0 {
        cfg["config"]["Labels"] = json!({"padding": "p".repeat(config_bytes)});
    }
    let config = Blob::new(OCI_CONFIG, serde_json::to_vec(&cfg)?);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    Ok(TestImage {
        format: ImageFormat::Oci,
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        layers,
        config,
        manifest: RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest),
    })
}

/// A ustar header block.
fn header(
    name: &str,
    size: u64,
    kind: tar::EntryType,
    link: Option<&str>,
) -> Result<Vec<u8>, HarnessError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(kind);
    if let Some(l) = link {
        h.set_link_name(l)?;
    }
    h.set_cksum();
    Ok(h.as_bytes().to_vec())
}

fn pad(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(512) {
        v.push(0);
    }
}

/// A gzip layer with one PAX path of 40,000 one-byte components (80 KB of path).
pub fn deep_path_layer() -> Result<Vec<u8>, HarnessError> {
    let name = format!("{}f", "a/".repeat(40_000));
    let record_body = format!(" path={name}\n");
    let mut len = record_body.len();
    while format!("{len}{record_body}").len() != len {
        len = format!("{len}{record_body}").len();
    }
    let pax = format!("{len}{record_body}");
    let mut t = header("pax", pax.len() as u64, tar::EntryType::XHeader, None)?;
    t.extend_from_slice(pax.as_bytes());
    pad(&mut t);
    t.extend(header("f", 0, tar::EntryType::Regular, None)?);
    t.extend([0u8; 1024]);
    gzip(&t)
}

/// A zstd frame whose window descriptor asks 2 GiB (windowLog 31), then an empty last
/// raw block that no reader with a window limit reaches.
pub fn zstd_window_layer() -> Vec<u8> {
    let mut blob = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3];
    blob.extend([0x01, 0x00, 0x00]);
    blob
}

/// A gzip layer of `n` symlinks, `l{i}` -> `l{i+1}`.
pub fn symlink_chain_layer(n: usize) -> Result<Vec<u8>, HarnessError> {
    let mut t = Vec::with_capacity((n + 2) * 512);
    for i in 0..n {
        let target = format!("l{}", i + 1);
        t.extend(header(
            &format!("l{i}"),
            0,
            tar::EntryType::Symlink,
            Some(&target),
        )?);
    }
    t.extend([0u8; 1024]);
    gzip(&t)
}

/// A gzip layer of `n` empty files `d/00000000`, ...
pub fn empty_files_layer(n: usize) -> Result<Vec<u8>, HarnessError> {
    let mut t = Vec::with_capacity((n + 2) * 512);
    for i in 0..n {
        t.extend(header(
            &format!("d/{i:08}"),
            0,
            tar::EntryType::Regular,
            None,
        )?);
    }
    t.extend([0u8; 1024]);
    gzip(&t)
}

/// A gzip layer inflating to `bytes` (rounded down to MiB) + 512: one member with a tar
/// header announcing a file of that size, then one member of 1 MiB of zeros repeated
/// (about 1 KB each: 10 GiB take about 10 MB).
pub fn gzip_bomb_layer(bytes: u64) -> Result<Vec<u8>, HarnessError> {
    let mib = bytes >> 20;
    let mut blob = gzip(&header("big", mib << 20, tar::EntryType::Regular, None)?)?;
    let zeros = gzip(&vec![0u8; 1 << 20])?;
    blob.reserve(zeros.len() * mib as usize);
    for _ in 0..mib {
        blob.extend_from_slice(&zeros);
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bomb_builds_small_and_names_its_limit() -> Result<(), HarnessError> {
        for name in NAMES {
            let image = bomb(name)?.ok_or("unknown")?;
            let total: usize = image
                .layers
                .iter()
                .map(|l| l.data.len())
                .collect::<std::collections::BTreeSet<_>>()
                .iter()
                .sum::<usize>()
                + image.config.data.len();
            assert!(total < 20 << 20, "{name}: {total} bytes");
            assert!(edge_limit(name).is_some(), "{name}");
        }
        assert!(bomb("nope")?.is_none());
        Ok(())
    }
}
