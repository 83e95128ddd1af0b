//! `memSize` parsing and Gramine's size strings.

/// Smallest accepted enclave size (1 MiB): Gramine's PAL alone needs more than that, so
/// anything smaller is certainly a mistake.
pub const MIN_ENCLAVE_SIZE: u64 = 1 << 20;
/// Largest accepted enclave size (1 TiB, Gramine's EDMM default).
pub const MAX_ENCLAVE_SIZE: u64 = 1 << 40;
/// The default enclave size (256 MiB, as Gramine's signer).
pub const DEFAULT_ENCLAVE_SIZE: u64 = 256 << 20;

/// Parses `2048M`, `4g`, `512k` (suffixes K, M, G, case-insensitive, powers of 1024) or a
/// plain byte count. Surrounding whitespace is not accepted.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1u64 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1u64 << 30),
        _ => (s, 1u64),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{s}` is not a size (a number of bytes, or a number followed by K, M or G)"
        ));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is too large"))?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Formats a byte count as Gramine's size string, with the largest suffix that divides
/// it exactly (`268435456` → `"256M"`, `2147483648` → `"2G"`, `1536` → `"1536"`).
pub fn format_size(bytes: u64) -> String {
    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;
    const K: u64 = 1 << 10;
    if bytes != 0 && bytes.is_multiple_of(G) {
        format!("{}G", bytes / G)
    } else if bytes != 0 && bytes.is_multiple_of(M) {
        format!("{}M", bytes / M)
    } else if bytes != 0 && bytes.is_multiple_of(K) {
        format!("{}K", bytes / K)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes_case_insensitively() {
        assert_eq!(parse_size("2048M"), Ok(2048 << 20));
        assert_eq!(parse_size("2048m"), Ok(2048 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "M",
            "12MB",
            "1.5G",
            " 1G",
            "-1",
            "1T",
            "0x10",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(256 << 20), "256M");
        assert_eq!(format_size(2 << 30), "2G");
        assert_eq!(format_size(1 << 10), "1K");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(0), "0");
    }
}
