//! zstd layers written by the reference `zstd` tool (checksums on and off, unknown content
//! size, several frames, long windows) scanned by kiln's push decoder in small chunks.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;
use std::process::{Command, Stdio};

use kiln_engine::image::digest::sha256_digest;
use kiln_engine::image::scan::{LayerScanner, ScanError};

const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut x: u32 = 7;
    for i in 0..40u32 {
        let data: Vec<u8> = (0..(i * 4099) % 60_000 + 10)
            .map(|j| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                if j % 5 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (j % 17) as u8
                }
            })
            .collect();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("data/file-{i}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn zstd(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("zstd")
        .args(args)
        .args(["-q", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn scan(blob: &[u8], chunk: usize) -> Result<kiln_engine::image::scan::LayerSummary, ScanError> {
    let mut s = LayerScanner::new(&sha256_digest(blob), ZSTD)?.computing_diff_id();
    for c in blob.chunks(chunk) {
        s.feed(c)?;
    }
    s.finish()
}

#[test]
fn reference_zstd_layers_scan() {
    if Command::new("zstd").arg("--version").output().is_err() {
        eprintln!("zstd not installed: skipping");
        return;
    }
    let tar = sample_tar();
    let diff_id = sha256_digest(&tar);
    let half = tar.len() / 2;
    let mut two_frames = zstd(&["-3"], &tar[..half]);
    two_frames.extend(zstd(&["-3", "--no-check"], &tar[half..]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("default", zstd(&[], &tar)),
        ("level 19 long window", zstd(&["-19", "--long=24"], &tar)),
        ("no checksum", zstd(&["--no-check", "-1"], &tar)),
        ("two frames", two_frames),
    ];
    for (name, blob) in &cases {
        for chunk in [1000, 64 * 1024] {
            let s = scan(blob, chunk).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(s.diff_id.as_ref(), Some(&diff_id), "{name}");
            assert_eq!(s.entries.len(), 40, "{name}");
        }
    }
    // Corruption inside a block is caught (by zstd's checksum or kiln's tar walk).
    let mut bad = cases[0].1.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    assert!(scan(&bad, 4096).is_err());
}
