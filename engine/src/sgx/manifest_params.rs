//! The `sgx.*` settings of a final Gramine `.manifest.sgx` that decide the layout and
//! the SIGSTRUCT, with Gramine v1.9's defaults.

/// One of Gramine's `sgx.cpu_features.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuFeature {
    /// `"unspecified"`: neither value nor mask bits are touched.
    #[default]
    Unspecified,
    /// `"required"`: the bits are set in the XFRM value and in its mask.
    Required,
    /// `"disabled"`: the bits are cleared in the value and set in the mask.
    Disabled,
}

/// Gramine's `sgx.cpu_features` table, with v1.9's defaults (avx, avx512 and amx
/// unspecified; mpx and pkru disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFeatures {
    /// `sgx.cpu_features.avx` (XFRM bits 0x4).
    pub avx: CpuFeature,
    /// `sgx.cpu_features.avx512` (XFRM bits 0xE4).
    pub avx512: CpuFeature,
    /// `sgx.cpu_features.amx` (XFRM bits 0x60000).
    pub amx: CpuFeature,
    /// `sgx.cpu_features.mpx` (XFRM bits 0x18); `unspecified` is not allowed.
    pub mpx: CpuFeature,
    /// `sgx.cpu_features.pkru` (XFRM bits 0x200); `unspecified` is not allowed.
    pub pkru: CpuFeature,
}

impl Default for CpuFeatures {
    fn default() -> Self {
        Self {
            avx: CpuFeature::Unspecified,
            avx512: CpuFeature::Unspecified,
            amx: CpuFeature::Unspecified,
            mpx: CpuFeature::Disabled,
            pkru: CpuFeature::Disabled,
        }
    }
}

/// The settings of a final manifest that the enclave layout and the SIGSTRUCT depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgxManifestParams {
    /// `sgx.enclave_size` in bytes (default 256M, or 1024G with EDMM). A power of two.
    pub enclave_size: u64,
    /// `sgx.max_threads` (default 4): the number of TCS slots. At least 1.
    pub max_threads: u32,
    /// `sgx.debug` (default false).
    pub debug: bool,
    /// `sgx.edmm_enable` (default false).
    pub edmm_enable: bool,
    /// `sgx.use_exinfo` (default false).
    pub use_exinfo: bool,
    /// `sgx.isvprodid` (default 0).
    pub isvprodid: u16,
    /// `sgx.isvsvn` (default 0).
    pub isvsvn: u16,
    /// `sgx.cpu_features.*`.
    pub cpu_features: CpuFeatures,
}

/// Gramine v1.9's defaults for a manifest without any `sgx.*` key (an SGX1 enclave):
/// what `SgxManifestParams::from_manifest(b"")` gives.
impl Default for SgxManifestParams {
    fn default() -> Self {
        SgxManifestParams {
            enclave_size: 256 << 20,
            max_threads: 4,
            debug: false,
            edmm_enable: false,
            use_exinfo: false,
            isvprodid: 0,
            isvsvn: 0,
            cpu_features: CpuFeatures::default(),
        }
    }
}

/// Why a manifest's `sgx.*` settings are refused. Every variant names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestParamsError {
    /// The manifest is not UTF-8.
    #[error("manifest is not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    /// The manifest is not valid TOML.
    #[error("manifest is not valid TOML: {0}")]
    Toml(String),
    /// A key has the wrong TOML type.
    #[error("manifest key `{key}` must be {expected}")]
    WrongType {
        /// Dotted key.
        key: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A key has a value out of range or otherwise invalid.
    #[error("manifest key `{key}` = {value}: {reason}")]
    BadValue {
        /// Dotted key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A deprecated key that changes the SIGSTRUCT is present.
    #[error("manifest key `{0}` is deprecated and not supported; use `sgx.cpu_features` / `sgx.use_exinfo`")]
    Deprecated(String),
}

type Table = toml::Table;

fn bad(key: &str, value: impl std::fmt::Display, reason: &'static str) -> ManifestParamsError {
    ManifestParamsError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    }
}

fn wrong(key: &str, expected: &'static str) -> ManifestParamsError {
    ManifestParamsError::WrongType {
        key: key.to_string(),
        expected,
    }
}

fn get_bool(sgx: &Table, name: &str) -> Result<bool, ManifestParamsError> {
    match sgx.get(name) {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(_) => Err(wrong(&format!("sgx.{name}"), "a boolean")),
    }
}

fn get_int(sgx: &Table, name: &str, default: i64) -> Result<i64, ManifestParamsError> {
    match sgx.get(name) {
        None => Ok(default),
        Some(toml::Value::Integer(i)) => Ok(*i),
        Some(_) => Err(wrong(&format!("sgx.{name}"), "an integer")),
    }
}

fn get_u16(sgx: &Table, name: &str) -> Result<u16, ManifestParamsError> {
    let v = get_int(sgx, name, 0)?;
    u16::try_from(v).map_err(|_| bad(&format!("sgx.{name}"), v, "must be in 0..=65535"))
}

/// Python's `int(s, 0)` for non-negative results: optional sign, `0x`/`0o`/`0b`
/// prefixes, `_` between digits, no leading zeros on decimals. `None` if invalid.
fn python_int(s: &str) -> Option<i128> {
    let s = s.trim();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.strip_prefix('_').unwrap_or(d))
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.strip_prefix('_').unwrap_or(d))
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.strip_prefix('_').unwrap_or(d))
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    // Decimal literals may not have leading zeros unless they are all zeros.
    if radix == 10 && clean.len() > 1 && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
        return None;
    }
    if !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(&clean, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Gramine's `parse_size`: an optional `K`/`M`/`G` suffix on a Python `int(x, 0)`.
pub fn parse_size(value: &str) -> Option<u64> {
    let (num, scale) = match value.as_bytes().last() {
        Some(b'K') => (&value[..value.len() - 1], 1u64 << 10),
        Some(b'M') => (&value[..value.len() - 1], 1u64 << 20),
        Some(b'G') => (&value[..value.len() - 1], 1u64 << 30),
        _ => (value, 1),
    };
    let n = u64::try_from(python_int(num)?).ok()?;
    n.checked_mul(scale)
}

fn cpu_feature(
    table: Option<&Table>,
    name: &str,
    default: CpuFeature,
    unspecified_allowed: bool,
) -> Result<CpuFeature, ManifestParamsError> {
    let key = format!("sgx.cpu_features.{name}");
    let Some(value) = table.and_then(|t| t.get(name)) else {
        return Ok(default);
    };
    let s = value.as_str().ok_or_else(|| wrong(&key, "a string"))?;
    match s {
        "required" => Ok(CpuFeature::Required),
        "disabled" => Ok(CpuFeature::Disabled),
        "unspecified" if unspecified_allowed => Ok(CpuFeature::Unspecified),
        "unspecified" => Err(bad(&key, "\"unspecified\"", "not allowed for this feature")),
        other => Err(bad(
            &key,
            format!("{other:?}"),
            "must be \"required\", \"disabled\" or \"unspecified\"",
        )),
    }
}

const DEPRECATED: [&str; 6] = [
    "require_avx",
    "require_avx512",
    "require_amx",
    "require_mpx",
    "require_pkru",
    "require_exinfo",
];

impl SgxManifestParams {
    /// Parses the `sgx.*` settings of a final `.manifest.sgx` (TOML; dotted keys and
    /// `[sgx]` tables alike), applying Gramine v1.9's defaults.
    pub fn from_manifest(bytes: &[u8]) -> Result<Self, ManifestParamsError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ManifestParamsError::NotUtf8(e.valid_up_to()))?;
        let doc: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ManifestParamsError::Toml(e.message().to_string()))?;
        Self::from_document(&doc)
    }

    /// The same from a manifest already parsed (only its `sgx` table is read).
    pub fn from_document(doc: &Table) -> Result<Self, ManifestParamsError> {
        let empty = Table::new();
        let sgx = match doc.get("sgx") {
            None => &empty,
            Some(toml::Value::Table(t)) => t,
            Some(_) => return Err(wrong("sgx", "a table")),
        };
        if let Some(key) = DEPRECATED.iter().find(|k| sgx.contains_key(**k)) {
            return Err(ManifestParamsError::Deprecated(format!("sgx.{key}")));
        }
        let edmm_enable = get_bool(sgx, "edmm_enable")?;
        let enclave_size = match sgx.get("enclave_size") {
            None if edmm_enable => 1 << 40,
            None => 256 << 20,
            Some(toml::Value::String(s)) => {
                let size = parse_size(s).ok_or_else(|| {
                    bad(
                        "sgx.enclave_size",
                        format!("{s:?}"),
                        "not a size (integer with optional K/M/G suffix)",
                    )
                })?;
                if !size.is_power_of_two() {
                    return Err(bad(
                        "sgx.enclave_size",
                        format!("{s:?}"),
                        "must be a power of two",
                    ));
                }
                size
            }
            Some(_) => return Err(wrong("sgx.enclave_size", "a string such as \"256M\"")),
        };
        let threads = get_int(sgx, "max_threads", 4)?;
        let max_threads = match u32::try_from(threads) {
            Ok(n) if n >= 1 => n,
            _ => return Err(bad("sgx.max_threads", threads, "must be at least 1")),
        };
        let features = match sgx.get("cpu_features") {
            None => None,
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => return Err(wrong("sgx.cpu_features", "a table")),
        };
        let d = CpuFeatures::default();
        let cpu_features = CpuFeatures {
            avx: cpu_feature(features, "avx", d.avx, true)?,
            avx512: cpu_feature(features, "avx512", d.avx512, true)?,
            amx: cpu_feature(features, "amx", d.amx, true)?,
            mpx: cpu_feature(features, "mpx", d.mpx, false)?,
            pkru: cpu_feature(features, "pkru", d.pkru, false)?,
        };
        Ok(Self {
            enclave_size,
            max_threads,
            debug: get_bool(sgx, "debug")?,
            edmm_enable,
            use_exinfo: get_bool(sgx, "use_exinfo")?,
            isvprodid: get_u16(sgx, "isvprodid")?,
            isvsvn: get_u16(sgx, "isvsvn")?,
            cpu_features,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SgxManifestParams, ManifestParamsError> {
        SgxManifestParams::from_manifest(s.as_bytes())
    }

    fn key_of(e: ManifestParamsError) -> String {
        match e {
            ManifestParamsError::WrongType { key, .. }
            | ManifestParamsError::BadValue { key, .. } => key,
            ManifestParamsError::Deprecated(k) => k,
            other => panic!("no key in {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let p = parse("").unwrap();
        assert_eq!(p, SgxManifestParams::default());
        // Hand-checked against Gramine v1.9's manifest.py defaults.
        assert_eq!((p.enclave_size, p.max_threads), (256 << 20, 4));
        assert!(!p.debug && !p.edmm_enable && !p.use_exinfo);
        assert_eq!((p.isvprodid, p.isvsvn), (0, 0));
        assert_eq!(p.cpu_features, CpuFeatures::default());
        assert_eq!(
            parse("sgx.edmm_enable = true").unwrap().enclave_size,
            1 << 40
        );
    }

    #[test]
    fn test_vectors() {
        let p = SgxManifestParams::from_manifest(include_bytes!(
            "../../testdata/gramine/t1.manifest.sgx"
        ))
        .unwrap();
        assert_eq!(
            (p.enclave_size, p.max_threads, p.debug, p.edmm_enable),
            (2 << 20, 2, true, false)
        );
        let p = SgxManifestParams::from_manifest(include_bytes!(
            "../../testdata/gramine/t2.manifest.sgx"
        ))
        .unwrap();
        assert!(p.edmm_enable);
    }

    #[test]
    fn dotted_and_table_forms_agree() {
        let a = parse(
            "sgx.enclave_size = \"0x1000000\"\nsgx.max_threads = 8\nsgx.isvprodid = 7\nsgx.isvsvn = 3\nsgx.use_exinfo = true\nsgx.cpu_features.avx = \"required\"\nsgx.cpu_features.pkru = \"required\"\n",
        )
        .unwrap();
        let b = parse(
            "[sgx]\nenclave_size = \"16M\"\nmax_threads = 8\nisvprodid = 7\nisvsvn = 3\nuse_exinfo = true\n[sgx.cpu_features]\navx = \"required\"\npkru = \"required\"\n",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.enclave_size, 16 << 20);
        assert_eq!(a.cpu_features.avx, CpuFeature::Required);
        assert_eq!(a.cpu_features.mpx, CpuFeature::Disabled);
        assert_eq!((a.isvprodid, a.isvsvn, a.max_threads), (7, 3, 8));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size("1024G"), Some(1 << 40));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("0x10M"), Some(16 << 20));
        assert_eq!(parse_size("0b1_0K"), Some(2 << 10));
        assert_eq!(parse_size(" 4096 "), Some(4096));
        assert_eq!(parse_size("1_024"), Some(1024));
        assert_eq!(parse_size("010"), None);
        assert_eq!(parse_size("00"), Some(0));
        assert_eq!(parse_size("-1M"), None);
        assert_eq!(parse_size("2m"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("1__0"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("sgx.enclave_size = \"3M\"", "sgx.enclave_size"),
            ("sgx.enclave_size = \"lots\"", "sgx.enclave_size"),
            ("sgx.enclave_size = 4096", "sgx.enclave_size"),
            ("sgx.enclave_size = \"0\"", "sgx.enclave_size"),
            ("sgx.max_threads = 0", "sgx.max_threads"),
            ("sgx.max_threads = -3", "sgx.max_threads"),
            ("sgx.max_threads = \"4\"", "sgx.max_threads"),
            ("sgx.isvprodid = 65536", "sgx.isvprodid"),
            ("sgx.isvsvn = -1", "sgx.isvsvn"),
            ("sgx.debug = 1", "sgx.debug"),
            ("sgx.edmm_enable = \"yes\"", "sgx.edmm_enable"),
            (
                "sgx.cpu_features.mpx = \"unspecified\"",
                "sgx.cpu_features.mpx",
            ),
            (
                "sgx.cpu_features.pkru = \"unspecified\"",
                "sgx.cpu_features.pkru",
            ),
            ("sgx.cpu_features.avx = \"maybe\"", "sgx.cpu_features.avx"),
            ("sgx.cpu_features.avx = true", "sgx.cpu_features.avx"),
            ("sgx.cpu_features = 1", "sgx.cpu_features"),
            ("sgx = 1", "sgx"),
            ("sgx.require_avx = true", "sgx.require_avx"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.to_string().contains(key), "{text}: {err}");
            assert_eq!(key_of(err), key, "{text}");
        }
        assert!(matches!(
            parse("sgx.x = "),
            Err(ManifestParamsError::Toml(_))
        ));
        assert!(matches!(
            SgxManifestParams::from_manifest(b"a = \"\xff\""),
            Err(ManifestParamsError::NotUtf8(5))
        ));
    }
}
