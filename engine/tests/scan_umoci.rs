//! The merged file index against a real unpacker: builds OCI image layouts in Rust (layers
//! written with the `tar` crate, not with kiln: GNU and PAX headers, whiteouts, opaque
//! directories, hard links, devices, owners), unpacks them with `umoci unpack` (as root,
//! so owners and devices are kept), walks the rootfs and compares every path's kind,
//! mode, uid, gid, size and SHA-256 with kiln's scan + merge.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::file_index::{FileEntry, FileIndex, FileKind};
use kiln_engine::image::scan::{scan_blob, LayerSummary};
use sha2::Digest;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A tar being built with the `tar` crate.
struct Layer {
    b: tar::Builder<Vec<u8>>,
    gnu: bool,
}

impl Layer {
    fn new(gnu: bool) -> Self {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Complete);
        Self { b, gnu }
    }

    fn header(&self, kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = if self.gnu {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h
    }

    fn dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let mut h = self.header(tar::EntryType::Directory, mode, uid, gid);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(&mut self, path: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> &mut Self {
        let mut h = self.header(tar::EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
        let mut h = self.header(kind, 0o777, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    fn special(&mut self, kind: tar::EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = self.header(kind, 0o640, 0, 5);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A file whose path comes from a PAX `path` record (the header name is a stub).
    fn pax_file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.b
            .append_pax_extensions([("path", path.as_bytes())])
            .unwrap();
        let mut h = self.header(tar::EntryType::Regular, 0o640, 7, 8);
        h.set_size(data.len() as u64);
        h.set_path("stub").unwrap();
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    fn gzip(self) -> Vec<u8> {
        let tar = self.b.into_inner().unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    }
}

fn write_blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), data).unwrap();
    digest
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(blob)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Writes an OCI layout with one image tagged `test` made of `layers` (gzip blobs).
fn write_layout(dir: &Path, layers: &[Vec<u8>]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for blob in layers {
        let digest = write_blob(dir, blob);
        diff_ids.push(sha256_digest(&gunzip(blob)));
        descriptors.push(serde_json::json!({
            "mediaType": GZIP, "digest": digest, "size": blob.len()
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))
    .unwrap();
    let config_digest = write_blob(dir, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": descriptors
    }))
    .unwrap();
    let manifest_digest = write_blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "test"}}]
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

fn minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

/// Walks an unpacked rootfs into the same shape as a [`FileIndex`].
fn walk(root: &Path) -> BTreeMap<String, FileEntry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), "/".to_string())];
    while let Some((dir_path, image_path)) = stack.pop() {
        let md = std::fs::symlink_metadata(&dir_path).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            let mut children: Vec<_> = std::fs::read_dir(&dir_path)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            children.sort();
            for c in children {
                let child = if image_path == "/" {
                    format!("/{c}")
                } else {
                    format!("{image_path}/{c}")
                };
                stack.push((dir_path.join(&c), child));
            }
            FileKind::Directory
        } else if ft.is_symlink() {
            FileKind::Symlink {
                target: std::fs::read_link(&dir_path)
                    .unwrap()
                    .into_os_string()
                    .into_string()
                    .unwrap(),
            }
        } else if ft.is_file() {
            let data = std::fs::read(&dir_path).unwrap();
            FileKind::Regular {
                size: data.len() as u64,
                sha256: sha2::Sha256::digest(&data).into(),
            }
        } else if ft.is_char_device() {
            FileKind::CharDevice {
                major: major(md.rdev()),
                minor: minor(md.rdev()),
            }
        } else if ft.is_block_device() {
            FileKind::BlockDevice {
                major: major(md.rdev()),
                minor: minor(md.rdev()),
            }
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else {
            panic!("{image_path}: unexpected file type")
        };
        out.insert(
            image_path,
            FileEntry {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
            },
        );
    }
    out
}

fn have_umoci() -> bool {
    Command::new("umoci").arg("--version").output().is_ok()
}

/// Unpacks with umoci and compares with kiln's merge of the same blobs.
fn compare_with_umoci(layers: Vec<Vec<u8>>) -> FileIndex {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, &layers);
    let bundle = tmp.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    // Rootless unpacking loses owners and devices.
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unpacked = walk(&bundle.join("rootfs"));

    let summaries: Vec<LayerSummary> = layers
        .iter()
        .map(|blob| scan_blob(&sha256_digest(blob), GZIP, blob).unwrap())
        .collect();
    let index = FileIndex::from_layers(&summaries).unwrap();

    let ours: Vec<&String> = index.entries.keys().collect();
    let theirs: Vec<&String> = unpacked.keys().collect();
    assert_eq!(ours, theirs, "the same paths");
    for (path, mine) in &index.entries {
        let real = &unpacked[path];
        assert_eq!(mine.kind, real.kind, "kind of {path}");
        assert_eq!(
            (mine.uid, mine.gid),
            (real.uid, real.gid),
            "owner of {path}"
        );
        // Linux cannot chmod a symlink; umoci's root directory mode is its own.
        if !matches!(mine.kind, FileKind::Symlink { .. }) && path != "/" {
            if root {
                assert_eq!(mine.mode, real.mode, "mode of {path}");
            } else {
                assert_eq!(mine.mode & 0o777, real.mode & 0o777, "mode of {path}");
            }
        }
    }
    index
}

fn big(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 4 == 0 {
                (x >> 16) as u8
            } else {
                b'a' + (i % 13) as u8
            }
        })
        .collect()
}

#[test]
fn merged_index_matches_umoci_unpack() {
    if !have_umoci() {
        eprintln!("umoci not installed: skipping (apt-get install umoci)");
        return;
    }
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let long_dir = "d".repeat(90);
    let long_file = format!("usr/share/{long_dir}/{}", "f".repeat(80));

    let mut l1 = Layer::new(true);
    l1.dir("etc/", 0o755, 0, 0)
        .file("etc/passwd", 0o644, 0, 0, b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/group", 0o644, 0, 0, b"root:x:0:\n")
        .file("etc/motd", 0o644, 0, 0, b"hello\n")
        .dir("usr/", 0o755, 0, 0)
        .dir("usr/bin/", 0o755, 0, 0)
        .file("usr/bin/tool", 0o4755, 0, 0, &big(300_000, 1))
        .link(tar::EntryType::Link, "usr/bin/tool-link", "usr/bin/tool")
        .link(tar::EntryType::Symlink, "usr/bin/sym", "tool")
        .dir("usr/share/", 0o755, 0, 0)
        .dir(&format!("usr/share/{long_dir}/"), 0o750, 3, 4)
        .file(&long_file, 0o600, 1000, 1000, b"long gnu name")
        .dir("a/", 0o755, 0, 0)
        .dir("a/sub/", 0o700, 10, 10)
        .file("a/sub/gone", 0o644, 0, 0, b"gone")
        .file("a/keep", 0o644, 0, 0, b"keep")
        .dir("opq/", 0o755, 0, 0)
        .file("opq/lower", 0o644, 0, 0, b"lower")
        .dir("opq/lowerdir/", 0o755, 0, 0)
        .file("opq/lowerdir/x", 0o644, 0, 0, b"x")
        .dir("becomes-file/", 0o755, 0, 0)
        .file("becomes-file/child", 0o644, 0, 0, b"c")
        .file("becomes-dir", 0o644, 0, 0, b"d")
        .dir("var/", 0o755, 0, 0)
        .dir("tmp/", 0o1777, 0, 0)
        .file("var/old", 0o644, 0, 0, b"old");
    if root {
        l1.dir("dev/", 0o755, 0, 0)
            .special(tar::EntryType::Char, "dev/null", 1, 3)
            .special(tar::EntryType::Block, "dev/loop9", 7, 9)
            .special(tar::EntryType::Fifo, "var/fifo", 0, 0);
    }

    let mut l2 = Layer::new(false);
    l2.file("a/.wh.sub", 0o644, 0, 0, b"")
        .file("etc/.wh.motd", 0o644, 0, 0, b"")
        .file("opq/.wh..wh..opq", 0o644, 0, 0, b"")
        .file("opq/upper", 0o644, 0, 0, b"upper")
        .file(
            "etc/passwd",
            0o600,
            0,
            0,
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        )
        .file("becomes-file", 0o640, 0, 0, b"now a file")
        .dir("becomes-dir/", 0o711, 0, 0)
        .file("becomes-dir/inner", 0o644, 0, 0, b"inner")
        .link(tar::EntryType::Link, "var/tool-hardlink", "usr/bin/tool")
        .file(
            "implicit/deep/file",
            0o644,
            5,
            6,
            b"no parents in this layer",
        )
        .pax_file(&format!("var/{}/pax-name", "p".repeat(150)), b"pax path")
        .file("var/old", 0o600, 1, 1, &big(70_000, 2));

    let mut l3 = Layer::new(true);
    l3.file("var/.wh.tool-hardlink", 0o644, 0, 0, b"")
        .dir("a/sub/", 0o755, 0, 0)
        .file("a/sub/again", 0o644, 0, 0, b"again")
        .file("usr/bin/.wh.sym", 0o644, 0, 0, b"");

    let index = compare_with_umoci(vec![l1.gzip(), l2.gzip(), l3.gzip()]);
    assert!(index.entries.len() >= 29, "{:?}", index.entries.keys());

    // A few facts spelled out, beyond agreeing with umoci.
    assert!(index.get("/a/sub/gone").is_none());
    assert!(index.get("/a/sub/again").is_some());
    assert!(index.get("/opq/lower").is_none() && index.get("/opq/upper").is_some());
    assert!(index.get("/etc/motd").is_none());
    assert_eq!(index.get("/usr/bin/tool-link"), index.get("/usr/bin/tool"));
    assert_eq!(
        index.captured["/etc/passwd"],
        b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"
    );
    assert_eq!(index.captured["/etc/group"], b"root:x:0:\n");
}

#[test]
fn hardlink_metadata_follows_its_target_like_umoci() {
    if !have_umoci() {
        eprintln!("umoci not installed: skipping");
        return;
    }
    // A hard link header with its own (different) mode and owner.
    let mut l1 = Layer::new(true);
    l1.file("f", 0o640, 3, 3, b"contents");
    let mut h = l1.header(tar::EntryType::Link, 0o777, 9, 9);
    l1.b.append_link(&mut h, "g", "f").unwrap();
    compare_with_umoci(vec![l1.gzip()]);
}

#[test]
fn whiteouts_in_missing_directories_like_umoci() {
    if !have_umoci() {
        eprintln!("umoci not installed: skipping");
        return;
    }
    let mut l1 = Layer::new(true);
    l1.file("keep", 0o644, 0, 0, b"k");
    let mut l2 = Layer::new(false);
    l2.file("newdir/.wh..wh..opq", 0o644, 0, 0, b"")
        .file("other/sub/.wh.ghost", 0o644, 0, 0, b"")
        .file(".wh.keep", 0o644, 0, 0, b"");
    // umoci creates no directory for a whiteout's missing parent (containerd does);
    // kiln follows umoci.
    let index = compare_with_umoci(vec![l1.gzip(), l2.gzip()]);
    assert_eq!(index.entries.keys().collect::<Vec<_>>(), ["/"]);
}
