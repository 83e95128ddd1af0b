//! The proxy's guard: which upstream hosts it may reach.
//!
//! A target must be on the configured allowlist AND must not be a private, loopback or
//! link-local address (loopback only when explicitly allowed, for tests). Everything here
//! is a pure function of its inputs: it never resolves a name nor connects.

use crate::addr::{classify_host, AddrClass};
use url::Url;

/// URL scheme the proxy uses to reach an upstream host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TLS (the default for an allowlist entry without a scheme).
    Https,
    /// Plain HTTP (only when the allowlist entry says `http://`).
    Http,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Https => 443,
            Scheme::Http => 80,
        }
    }
}

/// One allowlist entry: `host[:port]`, `http://host:port`, `https://host`, or a wildcard
/// `*.example.com` (any subdomain, https, port 443).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    scheme: Scheme,
    /// Normalised host (lower case, IPv6 in brackets); for a wildcard the suffix with its dot.
    host: String,
    port: u16,
    wildcard: bool,
}

/// Why the allowlist configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// An entry is not `[scheme://]host[:port]`.
    #[error("registry allowlist entry {entry:?} is not [http[s]://]host[:port]: {why}")]
    BadEntry {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Why a target was refused. Each variant names the host that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The `{host[:port]}` part of the proxy path is not a plain host and port.
    #[error("{authority:?} is not a registry host[:port]")]
    BadAuthority {
        /// The authority as given.
        authority: String,
    },
    /// The URL scheme is neither http nor https.
    #[error("scheme {scheme:?} is not proxied")]
    BadScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// The host resolves literally to an address the proxy never reaches.
    #[error("{host} is a {range} address; the proxy never connects there")]
    ForbiddenAddress {
        /// The host.
        host: String,
        /// The range it falls in.
        range: &'static str,
    },
    /// A loopback host while loopback registries are not allowed.
    #[error("{host} is a loopback address; the proxy does not connect there")]
    Loopback {
        /// The host.
        host: String,
    },
    /// The host is not on the registry allowlist.
    #[error("{host_port} is not on this proxy's registry allowlist")]
    NotAllowlisted {
        /// The host and port.
        host_port: String,
    },
}

/// An upstream the guard has accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Scheme to use.
    pub scheme: Scheme,
    /// Normalised host (IPv6 in brackets).
    pub host: String,
    /// Port (explicit or the scheme's default).
    pub port: u16,
}

impl Target {
    /// `scheme://host:port`, without a trailing slash.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }

    /// Whether `url` points at exactly this host and port.
    pub fn matches(&self, url: &Url) -> bool {
        url.host_str().map(str::to_ascii_lowercase).as_deref() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }
}

/// The proxy's reachability policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    allowlist: Vec<AllowEntry>,
    allow_loopback: bool,
}

impl Policy {
    /// Parses a comma- or whitespace-separated allowlist. `allow_loopback` lets loopback
    /// hosts (127.0.0.0/8, ::1, localhost) through the address check; they still have to be
    /// on the allowlist.
    pub fn new(allowlist: &str, allow_loopback: bool) -> Result<Self, PolicyError> {
        let mut entries = Vec::new();
        for raw in allowlist
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            entries.push(parse_entry(raw)?);
        }
        Ok(Policy {
            allowlist: entries,
            allow_loopback,
        })
    }

    /// Number of allowlist entries.
    pub fn len(&self) -> usize {
        self.allowlist.len()
    }

    /// Whether the allowlist is empty (then nothing is proxied).
    pub fn is_empty(&self) -> bool {
        self.allowlist.is_empty()
    }

    /// Checks the `{host[:port]}` segment of a `/proxy/{host[:port]}/...` path.
    pub fn check_authority(&self, authority: &str) -> Result<Target, GuardError> {
        let bad = || GuardError::BadAuthority {
            authority: authority.to_string(),
        };
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| matches!(c, '@' | '/' | '\\' | '?' | '#' | '%') || c.is_whitespace())
        {
            return Err(bad());
        }
        // The entry's scheme decides; parse as http first only to read host and port.
        let url = Url::parse(&format!("http://{authority}/")).map_err(|_| bad())?;
        let host = normalized_host(&url).ok_or_else(bad)?;
        self.check_address(&url)?;
        let explicit_port = url.port();
        let entry = self
            .allowlist
            .iter()
            .find(|e| e.covers(&host, explicit_port.unwrap_or(e.scheme.default_port())))
            .ok_or_else(|| GuardError::NotAllowlisted {
                host_port: host_port(&host, explicit_port),
            })?;
        Ok(Target {
            scheme: entry.scheme,
            port: explicit_port.unwrap_or(entry.scheme.default_port()),
            host,
        })
    }

    /// The `host:port` of every plain-http, non-wildcard allowlist entry: the registries the
    /// engine must reach over http (its `RegistryConfig` insecure hosts).
    pub fn plain_http_authorities(&self) -> Vec<String> {
        self.allowlist
            .iter()
            .filter(|e| e.scheme == Scheme::Http && !e.wildcard)
            .map(|e| {
                if e.host.contains(':') {
                    format!("[{}]:{}", e.host, e.port)
                } else {
                    format!("{}:{}", e.host, e.port)
                }
            })
            .collect()
    }

    /// Checks an absolute URL (a redirect target or a rewritten link) before connecting.
    /// A plain-http URL is accepted only when the matching allowlist entry is plain http.
    pub fn check_url(&self, url: &Url) -> Result<Target, GuardError> {
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => {
                return Err(GuardError::BadScheme {
                    scheme: other.to_string(),
                })
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(GuardError::BadAuthority {
                authority: url.host_str().unwrap_or_default().to_string(),
            });
        }
        let host = normalized_host(url).ok_or_else(|| GuardError::BadAuthority {
            authority: url.as_str().to_string(),
        })?;
        self.check_address(url)?;
        let port = url.port_or_known_default().unwrap_or(scheme.default_port());
        self.allowlist
            .iter()
            .find(|e| e.scheme == scheme && e.covers(&host, port))
            .ok_or_else(|| GuardError::NotAllowlisted {
                host_port: format!("{}://{}", scheme.as_str(), host_port(&host, Some(port))),
            })?;
        Ok(Target { scheme, host, port })
    }

    fn check_address(&self, url: &Url) -> Result<(), GuardError> {
        let host = url.host().ok_or_else(|| GuardError::BadAuthority {
            authority: url.as_str().to_string(),
        })?;
        match classify_host(&host) {
            AddrClass::Public => Ok(()),
            AddrClass::Loopback if self.allow_loopback => Ok(()),
            AddrClass::Loopback => Err(GuardError::Loopback {
                host: host.to_string(),
            }),
            AddrClass::Forbidden(range) => Err(GuardError::ForbiddenAddress {
                host: host.to_string(),
                range,
            }),
        }
    }
}

impl AllowEntry {
    fn covers(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        if self.wildcard {
            host.len() > self.host.len() && host.ends_with(&self.host)
        } else {
            host == self.host
        }
    }
}

fn normalized_host(url: &Url) -> Option<String> {
    let h = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    (!h.is_empty()).then_some(h)
}

fn host_port(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn parse_entry(raw: &str) -> Result<AllowEntry, PolicyError> {
    let bad = |why: &str| PolicyError::BadEntry {
        entry: raw.to_string(),
        why: why.to_string(),
    };
    let (scheme, rest) = if let Some(r) = raw.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = raw.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if raw.contains("://") {
        return Err(bad("only http:// and https:// are allowed"));
    } else {
        (Scheme::Https, raw)
    };
    let rest = rest.trim_end_matches('/');
    let (wildcard, rest) = match rest.strip_prefix("*.") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains(['/', '@', '?', '#', '*']) {
        return Err(bad("expected host[:port] with nothing after it"));
    }
    let url = Url::parse(&format!("{}://{rest}/", scheme.as_str()))
        .map_err(|e| bad(&format!("unparsable host: {e}")))?;
    let host = normalized_host(&url).ok_or_else(|| bad("no host"))?;
    if wildcard && !matches!(url.host(), Some(url::Host::Domain(_))) {
        return Err(bad("a wildcard needs a DNS name"));
    }
    let port = url.port_or_known_default().unwrap_or(scheme.default_port());
    Ok(AllowEntry {
        scheme,
        host: if wildcard { format!(".{host}") } else { host },
        port,
        wildcard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_authorities_lists_http_entries() {
        let p = Policy::new(
            "http://127.0.0.1:5000, registry.example, http://*.x.example",
            true,
        )
        .unwrap();
        assert_eq!(
            p.plain_http_authorities(),
            vec!["127.0.0.1:5000".to_string()]
        );
    }

    fn policy(list: &str, lo: bool) -> Policy {
        Policy::new(list, lo).unwrap()
    }

    #[test]
    fn allowlisted_public_host_defaults_to_https_443() {
        let p = policy("registry.example.com, ghcr.io:443", false);
        let t = p.check_authority("registry.example.com").unwrap();
        assert_eq!(t.origin(), "https://registry.example.com:443");
        let t = p.check_authority("GHCR.io:443").unwrap();
        assert_eq!(t.host, "ghcr.io");
        assert!(matches!(
            p.check_authority("ghcr.io:5000"),
            Err(GuardError::NotAllowlisted { .. })
        ));
        assert!(matches!(
            p.check_authority("evil.example.com"),
            Err(GuardError::NotAllowlisted { .. })
        ));
    }

    #[test]
    fn http_entries_keep_their_scheme_and_port() {
        let p = policy("http://127.0.0.1:5000 http://[::1]:5001", true);
        let t = p.check_authority("127.0.0.1:5000").unwrap();
        assert_eq!(t.origin(), "http://127.0.0.1:5000");
        let t = p.check_authority("[::1]:5001").unwrap();
        assert_eq!(t.origin(), "http://[::1]:5001");
        assert!(matches!(
            p.check_authority("127.0.0.1:5002"),
            Err(GuardError::NotAllowlisted { .. })
        ));
    }

    #[test]
    fn loopback_needs_the_switch_even_when_allowlisted() {
        let p = policy("http://127.0.0.1:5000,http://localhost:5000", false);
        assert!(matches!(
            p.check_authority("127.0.0.1:5000"),
            Err(GuardError::Loopback { .. })
        ));
        assert!(matches!(
            p.check_authority("localhost:5000"),
            Err(GuardError::Loopback { .. })
        ));
        // Other spellings of loopback are normalised by the URL parser, as fetch does.
        for a in ["2130706433:5000", "0x7f.1:5000", "[::ffff:127.0.0.1]:5000"] {
            assert!(
                matches!(p.check_authority(a), Err(GuardError::Loopback { .. })),
                "{a}"
            );
        }
    }

    #[test]
    fn private_addresses_are_refused_even_when_allowlisted_and_loopback_is_on() {
        let list = "10.0.0.1, 192.168.1.1:5000, 169.254.169.254:80, [fe80::1], [fd00::1], \
                    0.0.0.0, [::], 100.64.0.1, 172.16.0.1, [::ffff:10.0.0.1]";
        let p = policy(list, true);
        for a in [
            "10.0.0.1",
            "192.168.1.1:5000",
            "169.254.169.254:80",
            "[fe80::1]",
            "[fd00::1]",
            "0.0.0.0",
            "[::]",
            "100.64.0.1",
            "172.16.0.1",
            "[::ffff:10.0.0.1]",
            "[::ffff:a00:1]",
            "167772161", // 10.0.0.1 as one number
        ] {
            assert!(
                matches!(
                    p.check_authority(a),
                    Err(GuardError::ForbiddenAddress { .. })
                ),
                "{a}"
            );
        }
    }

    #[test]
    fn malformed_authorities_are_refused() {
        let p = policy("registry.example.com", false);
        for a in [
            "",
            "user@registry.example.com",
            "registry.example.com%2f",
            "a b",
            "registry.example.com:99999",
            "registry.example.com:x",
            "[::1",
        ] {
            assert!(
                matches!(p.check_authority(a), Err(GuardError::BadAuthority { .. })),
                "{a}"
            );
        }
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let p = policy("*.blob.example.net", false);
        assert!(p.check_authority("eu.blob.example.net").is_ok());
        assert!(p.check_authority("blob.example.net").is_err());
        assert!(p.check_authority("evilblob.example.net").is_err());
        assert!(Policy::new("*.10.0.0.1", false).is_err());
    }

    #[test]
    fn bad_entries_are_reported() {
        assert!(matches!(
            Policy::new("ftp://x", false),
            Err(PolicyError::BadEntry { .. })
        ));
        assert!(Policy::new("x/y", false).is_err());
        assert!(Policy::new("", false).unwrap().is_empty());
    }

    #[test]
    fn urls_are_checked_with_their_scheme() {
        let p = policy("https://r.example.com, http://127.0.0.1:5000", true);
        let u = Url::parse("https://r.example.com/v2/x/blobs/sha256:1").unwrap();
        assert!(p.check_url(&u).is_ok());
        // A downgrade to http is not the https entry.
        let u = Url::parse("http://r.example.com:443/v2/").unwrap();
        assert!(p.check_url(&u).is_err());
        let u = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert!(p.check_url(&u).is_ok());
        let u = Url::parse("http://127.0.0.1:5009/v2/").unwrap();
        assert!(matches!(
            p.check_url(&u),
            Err(GuardError::NotAllowlisted { .. })
        ));
        let u = Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        assert!(matches!(
            p.check_url(&u),
            Err(GuardError::ForbiddenAddress { .. })
        ));
        let u = Url::parse("file:///etc/passwd").unwrap();
        assert!(matches!(p.check_url(&u), Err(GuardError::BadScheme { .. })));
        let u = Url::parse("http://a:b@127.0.0.1:5000/").unwrap();
        assert!(p.check_url(&u).is_err());
    }

    #[test]
    fn target_matches_only_its_host_and_port() {
        let p = policy("http://127.0.0.1:5000", true);
        let t = p.check_authority("127.0.0.1:5000").unwrap();
        assert!(t.matches(&Url::parse("http://127.0.0.1:5000/v2/").unwrap()));
        assert!(!t.matches(&Url::parse("http://127.0.0.1:5001/v2/").unwrap()));
    }
}
