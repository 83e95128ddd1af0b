//! The layer scan's gzip decoder (ISA-L natively) fed in any split: it must never panic
//! or hang, and what it accepts must equal what flate2 (zlib-rs) decodes from the same
//! bytes. Input: a split size byte, a mode byte, then either a raw blob (mode even) or a
//! payload that is gzipped first and then damaged at the positions of the mode's
//! following bytes (mode odd), so that most runs reach deep into the deflate data.
#![no_main]

use std::io::{Read, Write};

use kiln_engine::image::scan::decompress::{Compression, Decoder};
use libfuzzer_sys::fuzz_target;

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
    if let Some(ours) = ours {
        let mut theirs = Vec::new();
        let r = flate2::read::MultiGzDecoder::new(&blob[..]).read_to_end(&mut theirs);
        assert!(r.is_ok(), "kiln accepted a stream flate2 refuses");
        assert!(ours == theirs, "kiln and flate2 decode the stream differently");
    }
});
