//! Classification of IP addresses and host names: which ones a proxy must never reach.
//!
//! Pure functions, no DNS and no connections. Host names are classified by their literal
//! form only (`localhost` and `*.localhost` are loopback by definition); a DNS name that
//! resolves to a private address is kept out by the registry allowlist, and on Cloudflare by
//! the platform itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address a host is, as far as the proxy is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    /// A public address or a DNS name that is not special.
    Public,
    /// Loopback: 127.0.0.0/8, ::1, `localhost` (reachable only with the loopback switch on).
    Loopback,
    /// Never reachable through the proxy; the string names the range.
    Forbidden(&'static str),
}

/// Classifies an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let o = ip.octets();
    match o {
        [127, ..] => AddrClass::Loopback,
        [0, ..] => AddrClass::Forbidden("0.0.0.0/8 (this network)"),
        [10, ..] => AddrClass::Forbidden("10.0.0.0/8 (private)"),
        [172, b, ..] if (16..=31).contains(&b) => AddrClass::Forbidden("172.16.0.0/12 (private)"),
        [192, 168, ..] => AddrClass::Forbidden("192.168.0.0/16 (private)"),
        [169, 254, ..] => AddrClass::Forbidden("169.254.0.0/16 (link-local)"),
        [100, b, ..] if (64..=127).contains(&b) => {
            AddrClass::Forbidden("100.64.0.0/10 (shared address space)")
        }
        [192, 0, 0, _] => AddrClass::Forbidden("192.0.0.0/24 (IETF protocol assignments)"),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => {
            AddrClass::Forbidden("documentation range")
        }
        [198, b, ..] if b == 18 || b == 19 => AddrClass::Forbidden("198.18.0.0/15 (benchmarking)"),
        [a, ..] if (224..=239).contains(&a) => AddrClass::Forbidden("224.0.0.0/4 (multicast)"),
        [a, ..] if a >= 240 => AddrClass::Forbidden("240.0.0.0/4 (reserved, broadcast)"),
        _ => AddrClass::Public,
    }
}

/// Classifies an IPv6 address, looking inside the forms that embed an IPv4 address
/// (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
pub fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let s = ip.segments();
    if ip.is_unspecified() {
        return AddrClass::Forbidden(":: (unspecified)");
    }
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        return classify_v4(embedded_v4(s[6], s[7]));
    }
    // 64:ff9b::/96 (NAT64 well-known prefix) and 64:ff9b:1::/48 (local-use NAT64).
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return AddrClass::Forbidden("64:ff9b:1::/48 (local-use NAT64)");
    }
    // 2002::/16 (6to4) carries an IPv4 address in its next 32 bits.
    if s[0] == 0x2002 {
        return match classify_v4(embedded_v4(s[1], s[2])) {
            AddrClass::Public => AddrClass::Public,
            _ => AddrClass::Forbidden("2002::/16 (6to4 of a non-public IPv4 address)"),
        };
    }
    match s[0] {
        x if x & 0xffc0 == 0xfe80 => AddrClass::Forbidden("fe80::/10 (link-local)"),
        x if x & 0xffc0 == 0xfec0 => AddrClass::Forbidden("fec0::/10 (site-local)"),
        x if x & 0xfe00 == 0xfc00 => AddrClass::Forbidden("fc00::/7 (unique local)"),
        x if x & 0xff00 == 0xff00 => AddrClass::Forbidden("ff00::/8 (multicast)"),
        0x2001 if s[1] == 0x0db8 => AddrClass::Forbidden("2001:db8::/32 (documentation)"),
        0x0100 if s[1..4] == [0, 0, 0] => AddrClass::Forbidden("100::/64 (discard)"),
        0 => AddrClass::Forbidden("::/8 (reserved)"),
        _ => AddrClass::Public,
    }
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Classifies an IP address of either family.
pub fn classify_ip(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Classifies a host as parsed by the WHATWG URL parser (the same parser `fetch` uses, so
/// forms such as `2130706433`, `0x7f.1` or `[::ffff:7f00:1]` are already normalised).
pub fn classify_host(host: &url::Host<&str>) -> AddrClass {
    match host {
        url::Host::Ipv4(v4) => classify_v4(*v4),
        url::Host::Ipv6(v6) => classify_v6(*v6),
        url::Host::Domain(name) => classify_name(name),
    }
}

/// Classifies a DNS name by its literal form.
pub fn classify_name(name: &str) -> AddrClass {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return AddrClass::Forbidden("empty host name");
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return AddrClass::Loopback;
    }
    // Names that only make sense on a local network.
    for suffix in [".local", ".internal", ".lan", ".home.arpa", ".intranet"] {
        if name.ends_with(suffix) || name == suffix[1..] {
            return AddrClass::Forbidden("local-network host name");
        }
    }
    AddrClass::Public
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> AddrClass {
        classify_v4(s.parse().unwrap())
    }
    fn v6(s: &str) -> AddrClass {
        classify_v6(s.parse().unwrap())
    }
    fn forbidden(c: AddrClass) -> bool {
        matches!(c, AddrClass::Forbidden(_))
    }

    #[test]
    fn ipv4_ranges() {
        assert_eq!(v4("127.0.0.1"), AddrClass::Loopback);
        assert_eq!(v4("127.255.1.2"), AddrClass::Loopback);
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
        ] {
            assert!(forbidden(v4(a)), "{a}");
        }
        for a in [
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "192.167.1.1",
            "169.253.1.1",
            "1.1.1.1",
        ] {
            assert_eq!(v4(a), AddrClass::Public, "{a}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        assert_eq!(v6("::1"), AddrClass::Loopback);
        assert_eq!(v6("::ffff:127.0.0.1"), AddrClass::Loopback);
        assert_eq!(v6("::127.0.0.1"), AddrClass::Loopback);
        for a in [
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:192.168.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert!(forbidden(v6(a)), "{a}");
        }
        for a in [
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
            "64:ff9b::808:808",
        ] {
            assert_eq!(v6(a), AddrClass::Public, "{a}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(classify_name("localhost"), AddrClass::Loopback);
        assert_eq!(classify_name("LOCALHOST."), AddrClass::Loopback);
        assert_eq!(classify_name("a.localhost"), AddrClass::Loopback);
        assert!(forbidden(classify_name("printer.local")));
        assert!(forbidden(classify_name("metadata.google.internal")));
        assert!(forbidden(classify_name("")));
        assert_eq!(classify_name("registry-1.docker.io"), AddrClass::Public);
        assert_eq!(classify_name("ghcr.io"), AddrClass::Public);
    }

    #[test]
    fn whatwg_forms_are_normalised_before_classification() {
        for host in [
            "2130706433",
            "0x7f.1",
            "127.1",
            "0177.0.0.1",
            "[::ffff:7f00:1]",
        ] {
            let url = url::Url::parse(&format!("http://{host}/")).unwrap();
            let h = url.host().unwrap();
            assert_eq!(classify_host(&h), AddrClass::Loopback, "{host}");
        }
        let url = url::Url::parse("http://0/").unwrap();
        assert!(forbidden(classify_host(&url.host().unwrap())));
        let url = url::Url::parse("http://[::ffff:a9fe:a9fe]/").unwrap();
        assert!(forbidden(classify_host(&url.host().unwrap())));
    }
}
