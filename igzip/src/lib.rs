//! A safe, push-driven gzip inflater over Intel ISA-L's igzip.
//!
//! kiln's engine inflates every gzip layer it scans. Natively it uses this crate: igzip
//! inflates the benchmark image's layers about 1.9x as fast as zlib-rs on the same
//! machine (both with their AVX2 paths), which is most of a cold conversion's CPU. The
//! browser and the worker (wasm) keep zlib-rs. All of this crate is [`Inflater`], a
//! wrapper that owns one `inflate_state` and hands ISA-L borrowed input and output slices
//! for the length of one call; its `unsafe` blocks are the FFI calls and the state's
//! zeroed allocation.
//!
//! [`Inflater`] decodes one gzip member at a time (header, deflate data, trailer with
//! CRC-32 and length, all checked by ISA-L) and says when the member ended; the caller
//! starts the next member with [`Inflater::restart`]. Positions and multi-member policy
//! stay with the caller (the engine's `scan::decompress`), which drives this and zlib-rs
//! through the same loop.

use std::fmt;

use isal_sys::igzip_lib as isal;

/// What one [`Inflater::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed (ISA-L may hold a few of them internally until more arrive).
    pub consumed: usize,
    /// Output bytes written to the start of the output slice.
    pub produced: usize,
    /// Whether the member ended: its trailer was read and checked.
    pub member_end: bool,
}

/// The FLG bits RFC 1952 reserves (they must be zero).
const RESERVED_FLAGS: u32 = 0xE0;

/// The error code [`Inflater::step`] uses when ISA-L's counts do not add up.
const INCONSISTENT: i32 = -1000;

/// A gzip error reported by ISA-L.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateError {
    code: i32,
}

impl InflateError {
    /// ISA-L's return code (`ISAL_INVALID_BLOCK`, ...).
    pub fn code(&self) -> i32 {
        self.code
    }
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.code {
            isal::ISAL_INVALID_BLOCK => "invalid deflate block",
            isal::ISAL_INVALID_SYMBOL => "invalid deflate symbol",
            isal::ISAL_INVALID_LOOKBACK => "back-reference before the start of the data",
            isal::ISAL_INVALID_WRAPPER => "invalid gzip header",
            isal::ISAL_UNSUPPORTED_METHOD => "unsupported compression method",
            isal::ISAL_INCORRECT_CHECKSUM => "checksum mismatch (header CRC, CRC-32 or length)",
            INCONSISTENT => "the decoder reported more bytes than it was given",
            _ => return write!(f, "igzip error {}", self.code),
        };
        f.write_str(what)
    }
}

impl std::error::Error for InflateError {}

/// A heap-allocated `T` whose bytes are all zero (`Box::new_zeroed` needs Rust 1.92).
///
/// # Safety
/// All-zero bytes must be a valid `T`, and `T` must not be zero-sized.
unsafe fn boxed_zeroed<T>() -> Box<T> {
    let layout = std::alloc::Layout::new::<T>();
    // SAFETY: the layout is not zero-sized (caller); a null result is handled.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` was allocated by the global allocator with `T`'s layout and holds a
    // valid `T` (caller).
    unsafe { Box::from_raw(p) }
}

/// One gzip member decoder (ISA-L `inflate_state` in gzip mode), reusable for the next
/// member through [`Inflater::restart`].
pub struct Inflater {
    state: Box<isal::inflate_state>,
    /// The member header parsed so far. `isal_inflate` parses the header itself, but
    /// into a header record local to each call, so a header with optional fields
    /// (FEXTRA, FNAME, FCOMMENT, FHCRC) split across calls loses its flags and fails;
    /// [`Inflater::step`] parses the header into this record that lives as long as the
    /// member, then leaves the deflate data and the trailer to `isal_inflate`.
    header: Box<isal::isal_gzip_header>,
    /// The first error: ISA-L's state after an error is not promised to be usable, so
    /// every later call returns it again without calling ISA-L.
    failed: Option<InflateError>,
}

// SAFETY: `inflate_state` holds raw pointers only to the slices of the current `step`
// call (set at its start, cleared at its end) and to its own buffers; ISA-L keeps no
// thread-local or global state tied to a stream, so the state may move between threads.
unsafe impl Send for Inflater {}

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("total_out", &self.state.total_out)
            .field("block_state", &self.state.block_state)
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// A decoder at the start of a gzip member.
    pub fn new() -> Self {
        // SAFETY: `inflate_state` is a C struct of integers, arrays and pointers, for
        // which all-zero bytes are a valid value (null pointers); `isal_inflate_init`
        // then sets it up, and `crc_flag` selects the gzip wrapper.
        // The same holds for the header record, which `isal_gzip_header_init` sets up
        // with no buffers: the optional fields are skipped, not copied.
        let mut state = unsafe { boxed_zeroed::<isal::inflate_state>() };
        let mut header = unsafe { boxed_zeroed::<isal::isal_gzip_header>() };
        unsafe {
            isal::isal_inflate_init(&mut *state);
            isal::isal_gzip_header_init(&mut *header);
        }
        state.crc_flag = isal::ISAL_GZIP;
        Self {
            state,
            header,
            failed: None,
        }
    }

    /// Starts the next member (after [`Step::member_end`]); keeps the gzip mode. An
    /// inflater that failed stays failed.
    pub fn restart(&mut self) {
        // SAFETY: both were set up by their init functions.
        unsafe {
            isal::isal_inflate_reset(&mut *self.state);
            isal::isal_gzip_header_init(&mut *self.header);
        }
    }

    /// Decodes from `input` into `output` until the input is used up, the output is
    /// full or the member ends. At most 4 GiB - 1 of each is offered per call. After an
    /// error, every call returns that error.
    pub fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, InflateError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let avail_in = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let avail_out = u32::try_from(output.len()).unwrap_or(u32::MAX);
        let st = &mut *self.state;
        // ISA-L reads through `next_in` (never writes) and writes at most `avail_out`
        // bytes through `next_out`; both stay valid for the call below.
        st.next_in = input.as_ptr().cast_mut();
        st.avail_in = avail_in;
        st.next_out = output.as_mut_ptr();
        st.avail_out = avail_out;
        let mut ret = 0;
        if st.wrapper_flag == 0 {
            // Negative: an error; positive: more input needed; 0: the header is done
            // (`wrapper_flag` set) and `isal_inflate` goes on with the deflate data.
            // SAFETY: the state and header are initialised, the state's pointers
            // describe live slices of the lengths given, and it has not failed.
            ret = unsafe { isal::isal_read_gzip_header(st, &mut *self.header) };
            // RFC 1952: a decoder must refuse reserved FLG bits (zlib does; ISA-L not).
            if ret >= 0 && self.header.flags & RESERVED_FLAGS != 0 {
                ret = isal::ISAL_INVALID_WRAPPER;
            }
        }
        if ret == 0 {
            // SAFETY: as above.
            ret = unsafe { isal::isal_inflate(st) };
        }
        // On some error paths ISA-L leaves `avail_in` above what it was given (it winds
        // `next_in` back to where a symbol started), so the counts are only read on
        // success, and checked even then.
        let counts = (
            avail_in.checked_sub(st.avail_in),
            avail_out.checked_sub(st.avail_out),
        );
        st.next_in = std::ptr::null_mut();
        st.avail_in = 0;
        st.next_out = std::ptr::null_mut();
        st.avail_out = 0;
        let (consumed, produced) = match counts {
            _ if ret < 0 => return Err(self.fail(ret)),
            (Some(c), Some(p)) => (c as usize, p as usize),
            _ => return Err(self.fail(INCONSISTENT)),
        };
        Ok(Step {
            consumed,
            produced,
            member_end: self.state.block_state == isal::isal_block_state_ISAL_BLOCK_FINISH,
        })
    }

    /// Records the first error; later calls return it.
    fn fail(&mut self, code: i32) -> InflateError {
        let e = InflateError { code };
        self.failed = Some(e);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn text() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| format!("line {} of {}\n", i, i % 97).into_bytes())
            .collect()
    }

    /// Feeds `blob` in `chunk`-byte pieces through a small output buffer.
    fn run(blob: &[u8], chunk: usize, out_len: usize) -> Result<(Vec<u8>, bool), InflateError> {
        let mut inf = Inflater::new();
        let mut out = vec![0u8; out_len];
        let mut got = Vec::new();
        let mut ended = false;
        for mut piece in blob.chunks(chunk) {
            loop {
                let s = inf.step(piece, &mut out)?;
                got.extend_from_slice(&out[..s.produced]);
                piece = &piece[s.consumed..];
                ended |= s.member_end;
                if s.member_end || (piece.is_empty() && s.produced < out.len()) {
                    break;
                }
            }
        }
        Ok((got, ended))
    }

    #[test]
    fn a_member_decodes_in_any_split() {
        let data = text();
        let blob = gzip(&data);
        for (chunk, out) in [(1, 7), (13, 4096), (65536, 1 << 18), (blob.len(), 1 << 20)] {
            let (got, ended) = run(&blob, chunk, out).unwrap();
            assert!(ended, "{chunk}/{out}");
            assert_eq!(got, data, "{chunk}/{out}");
        }
    }

    #[test]
    fn a_cut_member_does_not_end_and_damage_is_an_error() {
        let data = text();
        let blob = gzip(&data);
        let (got, ended) = run(&blob[..blob.len() - 5], 4096, 1 << 16).unwrap();
        assert!(!ended);
        assert!(got.len() <= data.len());
        let n = blob.len();
        for (at, code) in [
            (0, isal::ISAL_INVALID_WRAPPER),
            (3, isal::ISAL_INVALID_WRAPPER),
            (2, isal::ISAL_UNSUPPORTED_METHOD),
            (n - 8, isal::ISAL_INCORRECT_CHECKSUM),
            (n - 1, isal::ISAL_INCORRECT_CHECKSUM),
        ] {
            let mut b = blob.clone();
            b[at] ^= 0x40;
            let err = run(&b, 4096, 1 << 16).unwrap_err();
            assert_eq!(err.code(), code, "byte {at}: {err}");
            assert!(!err.to_string().is_empty());
        }
        // After an error the inflater only repeats it, whatever it is given, even after
        // a restart.
        let mut inf = Inflater::new();
        let mut out = vec![0u8; 1 << 16];
        let e = inf.step(b"not gzip at all", &mut out).unwrap_err();
        inf.restart();
        assert_eq!(inf.step(&blob, &mut out), Err(e));
    }

    /// A member with every optional header field and a header CRC (RFC 1952).
    fn full_header_member(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3];
        m.extend(5u16.to_le_bytes());
        m.extend(b"AB\x02\x00\x07");
        m.extend(b"name.tar\0");
        m.extend(b"a comment\0");
        let mut crc = flate2::Crc::new();
        crc.update(&m);
        m.extend(((crc.sum() & 0xffff) as u16).to_le_bytes());
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(payload).unwrap();
        m.extend(e.finish().unwrap());
        let mut crc = flate2::Crc::new();
        crc.update(payload);
        m.extend(crc.sum().to_le_bytes());
        m.extend((payload.len() as u32).to_le_bytes());
        m
    }

    #[test]
    fn a_header_with_every_field_decodes_in_any_split_and_its_crc_is_checked() {
        let data = text();
        let blob = full_header_member(&data[..50_000]);
        for chunk in [1, 2, 3, 5, 11, 17, 4096] {
            let (got, ended) = run(&blob, chunk, 1 << 12).unwrap();
            assert!(ended, "{chunk}");
            assert_eq!(got, &data[..50_000], "{chunk}");
        }
        let hcrc_at = 10 + 2 + 5 + 9 + 10;
        for chunk in [1, 4096] {
            let mut b = blob.clone();
            b[hcrc_at] ^= 1;
            let err = run(&b, chunk, 1 << 12).unwrap_err();
            assert_eq!(err.code(), isal::ISAL_INCORRECT_CHECKSUM, "{chunk}");
        }
    }

    #[test]
    fn restart_decodes_the_next_member_and_the_state_moves_between_threads() {
        let data = text();
        let (a, b) = data.split_at(123_457);
        let mut blob = gzip(a);
        let first = blob.len();
        blob.extend(gzip(b));
        let mut inf = Inflater::new();
        let mut out = vec![0u8; 1 << 16];
        let mut got = Vec::new();
        let mut input = &blob[..];
        let mut members = 0;
        while !input.is_empty() {
            let s = inf.step(input, &mut out).unwrap();
            got.extend_from_slice(&out[..s.produced]);
            input = &input[s.consumed..];
            if s.member_end {
                members += 1;
                if members == 1 {
                    // The trailer's last byte is where the first member ends.
                    assert_eq!(blob.len() - input.len(), first);
                }
                inf.restart();
                inf = std::thread::spawn(move || inf).join().unwrap();
            }
        }
        assert_eq!(members, 2);
        assert_eq!(got, data);
    }
}
