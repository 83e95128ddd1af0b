//! The layer scan's gzip decoder (ISA-L natively) fed in any split: it must never panic
//! or hang, and it must accept exactly what zlib-rs's gzip mode accepts (member after
//! member, as the engine drives it in wasm), with the same bytes. (flate2's
//! `MultiGzDecoder` is no oracle: it parses headers itself and caps their fields.) Input: a split size byte, a mode byte, then either a raw blob (mode even) or a
//! payload that is gzipped first and then damaged at the positions of the mode's
//! following bytes (mode odd), so that most runs reach deep into the deflate data.
#![no_main]

use std::io::Write;

use kiln_engine::image::scan::decompress::{Compression, Decoder};
use flate2::{Decompress, FlushDecompress, Status};
use libfuzzer_sys::fuzz_target;

/// The blob through zlib-rs's gzip mode, one member after another; `None` if it fails.
fn zlib_rs(blob: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut rest = blob;
    let mut members = 0;
    while members == 0 || !rest.is_empty() {
        let mut z = Decompress::new_gzip(15);
        loop {
            let (i, o) = (z.total_in(), z.total_out());
            let status = z.decompress(rest, &mut buf, FlushDecompress::None).ok()?;
            let used = (z.total_in() - i) as usize;
            let made = (z.total_out() - o) as usize;
            rest = &rest[used..];
            out.extend_from_slice(&buf[..made]);
            if status == Status::StreamEnd {
                break;
            }
            if used == 0 && made == 0 {
                return None; // cut short
            }
        }
        members += 1;
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let [split, mode, rest @ ..] = data else {
        return;
    };
    let split = usize::from(*split).max(1) * (1 + usize::from(mode >> 4) * 97);
    let blob = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let flips = usize::from((mode >> 1) & 7).min(rest.len() / 4);
        let (positions, payload) = rest.split_at(flips * 4);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if e.write_all(payload).is_err() {
            return;
        }
        let Ok(mut blob) = e.finish() else { return };
        for p in positions.chunks(4) {
            let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % blob.len();
            blob[at] ^= p[2] | 1;
        }
        blob
    };
    let mut d = Decoder::new(Compression::Gzip, Vec::new());
    let mut ok = true;
    for piece in blob.chunks(split) {
        if d.write(piece).is_err() {
            ok = false;
            break;
        }
    }
    let ours = if ok { d.finish().ok() } else { None };
    let theirs = zlib_rs(&blob);
    assert!(
        ours.is_some() == theirs.is_some(),
        "kiln {} a stream zlib-rs {}",
        if ours.is_some() { "accepts" } else { "refuses" },
        if theirs.is_some() { "accepts" } else { "refuses" },
    );
    assert!(ours == theirs, "kiln and zlib-rs decode the stream differently");
});
