//! The layer writer and the scanner against GNU tar: GNU tar must list and extract what
//! kiln writes, byte for byte; kiln must read what GNU tar writes (pax and gnu formats).
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::file_index::{FileIndex, FileKind};
use kiln_engine::image::layer_writer::{write_layer, NewEntry, LAYER_MEDIA_TYPE};
use kiln_engine::image::scan::scan_blob;
use sha2::Digest;

fn tar(args: &[&str], cwd: &Path) -> std::process::Output {
    let out = Command::new("tar")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("GNU tar runs");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn gnu_tar_lists_and_extracts_written_layers() {
    let long = format!("/opt/{}/{}", "d".repeat(130), "f".repeat(99));
    let longer = format!("/opt/{}/{}", "x".repeat(200), "y".repeat(200));
    let entries = vec![
        NewEntry::file("/opt/kiln/app.manifest.sgx", 0o644, b"[loader]\n".to_vec()),
        NewEntry::file("/opt/kiln/launcher", 0o4755, vec![1u8; 100_000]),
        NewEntry::symlink("/opt/kiln/current", "app.manifest.sgx"),
        NewEntry::symlink("/opt/kiln/far", format!("/{}", "t/".repeat(70))),
        NewEntry::dir("/opt/kiln/keys", 0o700),
        NewEntry::file(long.clone(), 0o600, b"long".to_vec()),
        NewEntry::file(longer.clone(), 0o640, b"longer".to_vec()),
    ];
    let layer = write_layer(&entries, 1_700_000_000).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("layer.tar.gz");
    std::fs::write(&blob, &layer.blob).unwrap();

    let listing = tar(&["-tvzf", "layer.tar.gz"], tmp.path());
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.contains("root/root") || listing.contains("0/0"),
        "{listing}"
    );
    assert!(listing.contains("2023-11-14"), "fixed mtime: {listing}");
    assert!(listing.contains(&"y".repeat(200)), "{listing}");

    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    tar(
        &[
            "-xzf",
            "../layer.tar.gz",
            "--numeric-owner",
            "--same-permissions",
        ],
        &out,
    );
    for e in &entries {
        let p = out.join(e.path.trim_start_matches('/'));
        let md = std::fs::symlink_metadata(&p).unwrap();
        match &e.kind {
            kiln_engine::image::layer_writer::NewEntryKind::File(data) => {
                assert_eq!(&std::fs::read(&p).unwrap(), data, "{}", e.path);
                assert_eq!(md.mode() & 0o7777, e.mode, "{}", e.path);
            }
            kiln_engine::image::layer_writer::NewEntryKind::Symlink(t) => {
                assert_eq!(std::fs::read_link(&p).unwrap().to_str().unwrap(), t);
            }
            kiln_engine::image::layer_writer::NewEntryKind::Directory => {
                assert!(md.is_dir());
                assert_eq!(md.mode() & 0o7777, e.mode, "{}", e.path);
            }
        }
        assert_eq!(md.mtime(), 1_700_000_000, "{}", e.path);
    }

    // The diff_id is the digest of exactly the tar GNU tar read.
    let gunzipped = Command::new("gzip")
        .args(["-dc", blob.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(sha256_digest(&gunzipped.stdout), layer.diff_id);
}

#[test]
fn scanner_reads_gnu_tar_pax_and_gnu_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let deep = root.join("a".repeat(120)).join("b".repeat(120));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("c".repeat(200)), b"deep file").unwrap();
    std::fs::write(root.join("big"), vec![42u8; 1_000_000]).unwrap();
    std::fs::write(root.join("ünïcödé"), b"utf8 name").unwrap();
    std::os::unix::fs::symlink("l".repeat(180), root.join("longlink")).unwrap();
    std::fs::hard_link(root.join("big"), root.join("big-again")).unwrap();

    let mut expected = BTreeMap::new();
    for p in ["big", "big-again", "ünïcödé"] {
        let data = std::fs::read(root.join(p)).unwrap();
        expected.insert(format!("/{p}"), data);
    }
    let deep_rel = format!(
        "/{}/{}/{}",
        "a".repeat(120),
        "b".repeat(120),
        "c".repeat(200)
    );
    expected.insert(deep_rel, b"deep file".to_vec());

    for format in ["pax", "gnu", "posix"] {
        let name = format!("{format}.tar.gz");
        tar(
            &[
                &format!("--format={format}"),
                "-czf",
                &format!("../{name}"),
                ".",
            ],
            &root,
        );
        let blob = std::fs::read(tmp.path().join(&name)).unwrap();
        let summary = scan_blob(&sha256_digest(&blob), LAYER_MEDIA_TYPE, &blob).unwrap();
        let index = FileIndex::from_layers([&summary]).unwrap();
        for (path, data) in &expected {
            let e = index
                .get(path)
                .unwrap_or_else(|| panic!("{format}: {path}"));
            assert_eq!(
                e.kind,
                FileKind::Regular {
                    size: data.len() as u64,
                    sha256: sha2::Sha256::digest(data).into()
                },
                "{format}: {path}"
            );
        }
        assert_eq!(
            index.get("/longlink").unwrap().kind,
            FileKind::Symlink {
                target: "l".repeat(180)
            },
            "{format}"
        );
    }
}
