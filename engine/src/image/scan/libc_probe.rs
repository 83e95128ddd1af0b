//! Finding the glibc release of an image while its layers stream through: every regular
//! file named like glibc's C library (`libc.so.6`, or `libc-2.NN.so` before glibc 2.34)
//! is searched for glibc's banner, `GNU C Library (...) stable release version 2.36.`,
//! which every glibc build carries (`csu/version.c`). The result is kept by the file's
//! SHA-256 ([`super::LayerSummary::libc_versions`]), so whiteouts, links and later layers
//! need no special handling: the enclave spec resolves `libc.so.6` in the merged view and
//! looks its hash up. Memory stays at a few dozen bytes whatever the file's size.

/// What precedes the version in glibc's banner.
const MARKER: &[u8] = b"release version ";
/// Longest version text kept (`2.40`, `2.39.9000`).
const MAX_VERSION: usize = 16;

/// Whether a file of this name may be glibc's C library.
pub fn is_libc_name(file_name: &str) -> bool {
    file_name == "libc.so.6" || (file_name.starts_with("libc-2.") && file_name.ends_with(".so"))
}

/// A streaming search for glibc's release version in one file's contents.
#[derive(Debug, Default, Clone)]
pub struct LibcVersionProbe {
    /// The end of the previous chunk, so a banner split across chunks is still found.
    tail: Vec<u8>,
    found: Option<String>,
}

impl LibcVersionProbe {
    /// A probe at the start of a file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        if self.found.is_some() || data.is_empty() {
            return;
        }
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(data);
        let mut from = 0;
        while let Some(at) = find(&window[from..], MARKER) {
            let start = from + at + MARKER.len();
            match parse_version(&window[start..]) {
                Parsed::Version(v) => {
                    self.found = Some(v);
                    return;
                }
                // The version may continue in the next chunk: keep the marker onwards.
                Parsed::NeedMore => {
                    self.tail = window[from + at..].to_vec();
                    return;
                }
                Parsed::NotAVersion => from = start,
            }
        }
        let keep = MARKER.len().saturating_sub(1).min(window.len());
        self.tail = window[window.len() - keep..].to_vec();
    }

    /// The `MAJOR.MINOR` release found, if any (a banner at the very end of the file
    /// counts too).
    pub fn finish(self) -> Option<String> {
        if self.found.is_some() {
            return self.found;
        }
        let mut rest = self.tail.strip_prefix(MARKER)?.to_vec();
        rest.push(b'\n');
        match parse_version(&rest) {
            Parsed::Version(v) => Some(v),
            _ => None,
        }
    }
}

/// The `MAJOR.MINOR` glibc release in a whole file's contents.
pub fn libc_release(contents: &[u8]) -> Option<String> {
    let mut p = LibcVersionProbe::new();
    p.update(contents);
    p.finish()
}

enum Parsed {
    Version(String),
    NeedMore,
    NotAVersion,
}

/// Reads `MAJOR.MINOR[.PATCH]` followed by a byte that cannot continue it, and keeps
/// `MAJOR.MINOR`.
fn parse_version(bytes: &[u8]) -> Parsed {
    let len = bytes
        .iter()
        .take(MAX_VERSION + 1)
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    if len > MAX_VERSION {
        return Parsed::NotAVersion;
    }
    if len == bytes.len() {
        return Parsed::NeedMore;
    }
    let text = String::from_utf8_lossy(&bytes[..len]);
    let mut parts = text.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor))
            if !major.is_empty() && !minor.is_empty() && major.len() <= 3 && minor.len() <= 3 =>
        {
            Parsed::Version(format!("{major}.{minor}"))
        }
        _ => Parsed::NotAVersion,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Compares two `MAJOR.MINOR` versions numerically; `None` when either does not parse.
pub fn compare_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (major, minor) = v.split_once('.')?;
        let minor = minor.split('.').next()?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    Some(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    const DEBIAN: &[u8] =
        b"\x00\x7fELF junk GNU C Library (Debian GLIBC 2.36-9+deb12u9) stable release version 2.36.\nCopyright";

    #[test]
    fn finds_the_banner_in_one_piece_and_split_at_every_byte() {
        assert_eq!(libc_release(DEBIAN).as_deref(), Some("2.36"));
        for cut in 0..DEBIAN.len() {
            let mut p = LibcVersionProbe::new();
            p.update(&DEBIAN[..cut]);
            p.update(&DEBIAN[cut..]);
            assert_eq!(p.finish().as_deref(), Some("2.36"), "cut at {cut}");
        }
        // One byte at a time.
        let mut p = LibcVersionProbe::new();
        for b in DEBIAN {
            p.update(std::slice::from_ref(b));
        }
        assert_eq!(p.finish().as_deref(), Some("2.36"));
    }

    #[test]
    fn other_banners() {
        assert_eq!(
            libc_release(b"GNU C Library (GNU libc) stable release version 2.40.").as_deref(),
            Some("2.40")
        );
        assert_eq!(
            libc_release(b"(GNU libc) stable release version 2.17, by Roland").as_deref(),
            Some("2.17")
        );
        assert_eq!(
            libc_release(b"development release version 2.39.9000.\n").as_deref(),
            Some("2.39")
        );
        // A false start before the real one.
        assert_eq!(
            libc_release(b"release version x release version 2.31.\n").as_deref(),
            Some("2.31")
        );
        assert_eq!(libc_release(b"no banner here"), None);
        assert_eq!(
            libc_release(b"release version 2.36").as_deref(),
            Some("2.36"),
            "at the end"
        );
        assert_eq!(libc_release(b"release version 2"), None);
        assert_eq!(libc_release(b"release version 12345678901234567890."), None);
    }

    #[test]
    fn names_and_comparison() {
        assert!(is_libc_name("libc.so.6"));
        assert!(is_libc_name("libc-2.31.so"));
        assert!(!is_libc_name("libc.so"));
        assert!(!is_libc_name("libcrypt.so.1"));
        assert_eq!(compare_versions("2.36", "2.40"), Some(Ordering::Less));
        assert_eq!(compare_versions("2.41", "2.40"), Some(Ordering::Greater));
        assert_eq!(compare_versions("2.9", "2.10"), Some(Ordering::Less));
        assert_eq!(compare_versions("2.40", "2.40"), Some(Ordering::Equal));
        assert_eq!(compare_versions("x", "2.40"), None);
    }
}
