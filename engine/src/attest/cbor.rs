//! The small, definite-length subset of CBOR (RFC 8949) that Gramine's TCG DICE "tagged
//! evidence" uses: unsigned integers, byte and text strings, arrays, maps and tags.
//! Indefinite lengths, floats, negative integers and simple values are refused; so is
//! nesting deeper than [`MAX_DEPTH`]. Lengths are checked against the input before
//! anything is allocated, so hostile input cannot make the reader allocate more than it
//! was given.

/// Deepest nesting accepted (Gramine's evidence nests three levels).
pub const MAX_DEPTH: usize = 16;

/// A decoded item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Major type 0.
    Uint(u64),
    /// Major type 2.
    Bytes(Vec<u8>),
    /// Major type 3.
    Text(String),
    /// Major type 4.
    Array(Vec<Item>),
    /// Major type 5, pairs in the order met.
    Map(Vec<(Item, Item)>),
    /// Major type 6.
    Tag(u64, Box<Item>),
}

/// Decodes exactly one item that spans all of `input`.
pub fn decode(input: &[u8]) -> Result<Item, String> {
    let mut r = Reader { b: input, pos: 0 };
    let item = r.item(0)?;
    if r.pos != input.len() {
        return Err(format!(
            "{} bytes after the CBOR item (at byte {})",
            input.len() - r.pos,
            r.pos
        ));
    }
    Ok(item)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self
            .b
            .get(self.pos)
            .ok_or_else(|| format!("CBOR ends early at byte {}", self.pos))?;
        self.pos += 1;
        Ok(v)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(format!(
                "CBOR string of {n} bytes at byte {} but only {left} left",
                self.pos
            ));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn argument(&mut self, info: u8) -> Result<u64, String> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes([self.byte()?, self.byte()?])),
            26 => {
                let s = self.take(4)?;
                u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            }
            27 => {
                let s = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_be_bytes(a)
            }
            _ => {
                return Err(format!(
                    "CBOR indefinite or reserved length (additional info {info}) at byte {}",
                    self.pos - 1
                ))
            }
        })
    }

    fn item(&mut self, depth: usize) -> Result<Item, String> {
        if depth > MAX_DEPTH {
            return Err(format!("CBOR nested deeper than {MAX_DEPTH} levels"));
        }
        let at = self.pos;
        let head = self.byte()?;
        let (major, info) = (head >> 5, head & 0x1f);
        let arg = self.argument(info)?;
        // Every element takes at least one byte: a count larger than what is left is
        // refused before any allocation.
        let left = (self.b.len() - self.pos) as u64;
        Ok(match major {
            0 => Item::Uint(arg),
            2 => Item::Bytes(self.take(arg)?.to_vec()),
            3 => Item::Text(
                String::from_utf8(self.take(arg)?.to_vec())
                    .map_err(|_| format!("CBOR text string at byte {at} is not UTF-8"))?,
            ),
            4 => {
                if arg > left {
                    return Err(format!(
                        "CBOR array of {arg} items at byte {at} is longer than the input"
                    ));
                }
                let mut v = Vec::with_capacity(arg as usize);
                for _ in 0..arg {
                    v.push(self.item(depth + 1)?);
                }
                Item::Array(v)
            }
            5 => {
                if arg.saturating_mul(2) > left {
                    return Err(format!(
                        "CBOR map of {arg} pairs at byte {at} is longer than the input"
                    ));
                }
                let mut v = Vec::with_capacity(arg as usize);
                for _ in 0..arg {
                    let k = self.item(depth + 1)?;
                    let val = self.item(depth + 1)?;
                    v.push((k, val));
                }
                Item::Map(v)
            }
            6 => Item::Tag(arg, Box::new(self.item(depth + 1)?)),
            _ => {
                return Err(format!(
                    "CBOR major type {major} at byte {at} is not used by RA-TLS evidence"
                ))
            }
        })
    }
}

/// Encoding, for tests that build evidence the way Gramine does.
#[cfg(test)]
pub(crate) fn encode(item: &Item, out: &mut Vec<u8>) {
    fn head(major: u8, n: u64, out: &mut Vec<u8>) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend(n.to_be_bytes());
            }
        }
    }
    match item {
        Item::Uint(n) => head(0, *n, out),
        Item::Bytes(b) => {
            head(2, b.len() as u64, out);
            out.extend(b);
        }
        Item::Text(t) => {
            head(3, t.len() as u64, out);
            out.extend(t.as_bytes());
        }
        Item::Array(v) => {
            head(4, v.len() as u64, out);
            v.iter().for_each(|i| encode(i, out));
        }
        Item::Map(v) => {
            head(5, v.len() as u64, out);
            for (k, val) in v {
                encode(k, out);
                encode(val, out);
            }
        }
        Item::Tag(t, i) => {
            head(6, *t, out);
            encode(i, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_evidence_shapes() {
        let item = Item::Tag(
            60000,
            Box::new(Item::Array(vec![
                Item::Bytes(vec![7; 300]),
                Item::Bytes(vec![1, 2]),
                Item::Map(vec![(Item::Text("pubkey-hash".into()), Item::Uint(70000))]),
            ])),
        );
        let mut b = Vec::new();
        encode(&item, &mut b);
        assert_eq!(decode(&b), Ok(item));
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        // Truncated, trailing, indefinite, negative, huge counts.
        assert!(decode(&[]).unwrap_err().contains("ends early"));
        assert!(decode(&[0x42, 1]).unwrap_err().contains("only 1 left"));
        assert!(decode(&[0x01, 0x01])
            .unwrap_err()
            .contains("after the CBOR item"));
        assert!(decode(&[0x5f]).unwrap_err().contains("indefinite"));
        assert!(decode(&[0x20]).unwrap_err().contains("major type 1"));
        assert!(
            decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .contains("longer than the input")
        );
        assert!(
            decode(&[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .contains("longer than the input")
        );
        assert!(
            decode(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
                .unwrap_err()
                .contains("bytes at byte")
        );
        assert!(decode(&[0x62, 0xff, 0xfe])
            .unwrap_err()
            .contains("not UTF-8"));
        let deep = vec![0x81; MAX_DEPTH + 2];
        assert!(decode(&deep).unwrap_err().contains("deeper"));
        // Every 3-byte input decodes or errs; none panics.
        for a in 0..=255u8 {
            for b in [0u8, 1, 0x18, 0xff] {
                let _ = decode(&[a, b, 0]);
            }
        }
    }
}
