//! Rewriting of upstream links so that a client's follow-up requests go through the proxy:
//! upload `Location`s and the `realm` of a bearer `WWW-Authenticate` challenge.
//!
//! The proxy speaks only the registry protocol: `/proxy/{host}/v2/...`. A link outside
//! `/v2` (a token realm such as `https://auth.docker.io/token`) is rewritten to
//! `/proxy/{host}/kiln-signed/{mac}{path}`, where `mac` is a truncated
//! HMAC-SHA256 of the host and path under the worker's realm key ([`link_mac`]); the proxy
//! forwards such a path only when the MAC matches ([`open_signed_path`]). So only links an
//! upstream registry itself handed out reach non-protocol paths, never an arbitrary
//! `/proxy/storage.example.com/bucket/page.html`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

/// The path segment that marks a signed non-protocol link.
pub const SIGNED_SEGMENT: &str = "/kiln-signed/";

/// Hex digits of the link MAC (128 bits).
pub const MAC_HEX_LEN: usize = 32;

/// The MAC of a link to `path` on `authority` (`host[:port]` as it appears in the proxy
/// path), hex, [`MAC_HEX_LEN`] digits.
pub fn link_mac(key: &[u8; 32], authority: &str, path: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(b"kiln-link-v1\0");
    m.update(authority.to_ascii_lowercase().as_bytes());
    m.update(b"\0");
    m.update(path.as_bytes());
    let tag = m.finalize().into_bytes();
    hex::encode(&tag[..MAC_HEX_LEN / 2])
}

/// Whether a proxied path is the registry protocol (`/v2` or below).
pub fn is_protocol_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// The upstream path of a proxied path: protocol paths as they are; a
/// `/kiln-signed/{mac}{path}` only when its MAC matches (then `path`); anything else `None`.
pub fn open_signed_path<'a>(key: &[u8; 32], authority: &str, path: &'a str) -> Option<&'a str> {
    if is_protocol_path(path) {
        return Some(path);
    }
    let rest = path.strip_prefix(SIGNED_SEGMENT)?;
    let (mac, upstream) = rest.split_at_checked(MAC_HEX_LEN)?;
    if !upstream.starts_with('/') {
        return None;
    }
    let want = link_mac(key, authority, upstream);
    // Constant time over the fixed-length hex.
    let diff = want
        .bytes()
        .zip(mac.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    (diff == 0).then_some(upstream)
}

/// `host[:port]` of an absolute http(s) URL, with the port only when explicit.
fn proxy_authority(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// Maps an absolute http(s) URL to the same resource through the proxy at `proxy_origin`
/// (e.g. `https://kiln.example.com`): `{proxy_origin}/proxy/{host[:port]}{path}{?query}`,
/// a path outside `/v2` signed with `key` (`.../kiln-signed/{mac}{path}`). Returns `None`
/// for other schemes.
pub fn to_proxy_url(url: &Url, proxy_origin: &str, key: &[u8; 32]) -> Option<String> {
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let authority = proxy_authority(url)?;
    let path = url.path();
    let signed = if is_protocol_path(path) {
        String::new()
    } else {
        format!("{SIGNED_SEGMENT}{}", link_mac(key, &authority, path))
    };
    let mut out = format!(
        "{}/proxy/{authority}{signed}{path}",
        proxy_origin.trim_end_matches('/'),
    );
    if let Some(q) = url.query() {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

/// Rewrites a `Location` header of an upstream response. Relative locations are resolved
/// against the upstream request URL first. Returns `None` when the value is unusable
/// (then the header is passed unchanged).
pub fn rewrite_location(
    location: &str,
    upstream: &Url,
    proxy_origin: &str,
    key: &[u8; 32],
) -> Option<String> {
    let abs = upstream.join(location.trim()).ok()?;
    to_proxy_url(&abs, proxy_origin, key)
}

/// Rewrites the `realm` parameter of every challenge in a `WWW-Authenticate` value when it
/// is an absolute http(s) URL (a bearer token endpoint). Other parameters and non-URL realms
/// (`Basic realm="registry"`) are kept byte for byte.
pub fn rewrite_www_authenticate(value: &str, proxy_origin: &str, key: &[u8; 32]) -> String {
    let mut out = String::with_capacity(value.len() + 32);
    let mut rest = value;
    while let Some((before, realm, after)) = find_realm(rest) {
        out.push_str(before);
        match Url::parse(&realm)
            .ok()
            .and_then(|u| to_proxy_url(&u, proxy_origin, key))
        {
            Some(new) => out.push_str(&quote(&new)),
            None => out.push_str(&quote(&realm)),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// Finds the next `realm=` parameter at a parameter boundary. Returns the text up to and
/// including `realm=`, the unquoted realm, and the text after the value.
fn find_realm(s: &str) -> Option<(&str, String, &str)> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower.get(from..)?.find("realm") {
        let at = from + pos;
        from = at + 5;
        // Boundary: start, whitespace or comma before.
        let ok_before = at == 0
            || s[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c == ',' || c.is_whitespace());
        if !ok_before || inside_quotes(&s[..at]) {
            continue;
        }
        let after_name = s[at + 5..].trim_start();
        let Some(after_eq) = after_name.strip_prefix('=') else {
            continue;
        };
        let after_eq = after_eq.trim_start();
        let value_start = s.len() - after_eq.len();
        let (value, consumed) = read_value(after_eq)?;
        return Some((&s[..value_start], value, &s[value_start + consumed..]));
    }
    None
}

/// Whether the text ends inside a quoted string.
fn inside_quotes(s: &str) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for c in s.chars() {
        match (inside, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => inside = !inside,
            _ => {}
        }
    }
    inside
}

/// Reads a token or quoted-string; returns the value and the bytes consumed.
fn read_value(s: &str) -> Option<(String, usize)> {
    if let Some(body) = s.strip_prefix('"') {
        let mut v = String::new();
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            if escaped {
                v.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return Some((v, i + 2));
            } else {
                v.push(c);
            }
        }
        None
    } else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        Some((s[..end].to_string(), end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://kiln.example";
    const KEY: [u8; 32] = [7; 32];

    fn signed(authority: &str, path: &str) -> String {
        format!(
            "{ORIGIN}/proxy/{authority}/kiln-signed/{}{path}",
            link_mac(&KEY, authority, path)
        )
    }

    #[test]
    fn signed_links_open_only_with_their_mac() {
        let url = signed("auth.example", "/token");
        let path = url
            .strip_prefix(&format!("{ORIGIN}/proxy/auth.example"))
            .unwrap();
        assert_eq!(open_signed_path(&KEY, "auth.example", path), Some("/token"));
        // Another key, host or path: refused.
        assert_eq!(open_signed_path(&[8; 32], "auth.example", path), None);
        assert_eq!(open_signed_path(&KEY, "storage.example", path), None);
        let other = path.replace("/token", "/page.html");
        assert_eq!(open_signed_path(&KEY, "auth.example", &other), None);
        // Unsigned non-protocol paths and malformed signed ones: refused.
        for p in [
            "/token",
            "/bucket/x.html",
            "/kiln-signed/",
            "/kiln-signed/00",
            "/kiln-signed/0123456789abcdef0123456789abcdef",
            "/kiln-signed/0123456789abcdef0123456789abcdef/x",
            "/v2x",
        ] {
            assert_eq!(open_signed_path(&KEY, "auth.example", p), None, "{p}");
        }
        assert_eq!(
            open_signed_path(&KEY, "r.example", "/v2/a/blobs/x"),
            Some("/v2/a/blobs/x")
        );
        assert_eq!(open_signed_path(&KEY, "r.example", "/v2"), Some("/v2"));
    }

    #[test]
    fn absolute_and_relative_locations() {
        let up = Url::parse("http://127.0.0.1:5000/v2/a/b/blobs/uploads/").unwrap();
        assert_eq!(
            rewrite_location(
                "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=xy%3D",
                &up,
                ORIGIN,
                &KEY
            )
            .unwrap(),
            "https://kiln.example/proxy/127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=xy%3D"
        );
        assert_eq!(
            rewrite_location("/v2/a/b/blobs/uploads/u2?x=1", &up, ORIGIN, &KEY).unwrap(),
            "https://kiln.example/proxy/127.0.0.1:5000/v2/a/b/blobs/uploads/u2?x=1"
        );
        let up = Url::parse("https://registry.example.com/v2/a/manifests/1").unwrap();
        assert_eq!(
            rewrite_location(
                "https://registry.example.com/v2/a/manifests/sha256:00",
                &up,
                ORIGIN,
                &KEY
            )
            .unwrap(),
            "https://kiln.example/proxy/registry.example.com/v2/a/manifests/sha256:00"
        );
        let up6 = Url::parse("http://[::1]:5000/v2/").unwrap();
        assert_eq!(
            rewrite_location("/v2/x", &up6, "http://127.0.0.1:8787/", &KEY).unwrap(),
            "http://127.0.0.1:8787/proxy/[::1]:5000/v2/x"
        );
        assert!(rewrite_location("ftp://x/y", &up, ORIGIN, &KEY).is_none());
    }

    #[test]
    fn bearer_realm_is_rewritten_and_other_params_kept() {
        let v = r#"Bearer realm="http://127.0.0.1:5555/token",service="test-registry",scope="repository:a/b:pull,push""#;
        assert_eq!(
            rewrite_www_authenticate(v, ORIGIN, &KEY),
            format!(
                r#"Bearer realm="{}",service="test-registry",scope="repository:a/b:pull,push""#,
                signed("127.0.0.1:5555", "/token")
            )
        );
        let v = r#"Bearer realm="https://auth.docker.io/token?x=1",service="registry.docker.io""#;
        assert_eq!(
            rewrite_www_authenticate(v, ORIGIN, &KEY),
            format!(
                r#"Bearer realm="{}?x=1",service="registry.docker.io""#,
                signed("auth.docker.io", "/token")
            )
        );
    }

    #[test]
    fn arbitrary_inputs_never_panic() {
        let pieces = [
            "realm",
            "=",
            "\"",
            "\\",
            ",",
            " ",
            "é",
            "😀",
            "http://h/",
            "Bearer ",
            "REALM",
            "x",
            "\t",
        ];
        // Every sequence of up to four pieces.
        let n = pieces.len();
        for i in 0..n.pow(4) {
            let mut v = String::new();
            let mut k = i;
            for _ in 0..4 {
                v.push_str(pieces[k % n]);
                k /= n;
            }
            let _ = rewrite_www_authenticate(&v, ORIGIN, &KEY);
            let up = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
            let _ = rewrite_location(&v, &up, ORIGIN, &KEY);
        }
    }

    #[test]
    fn basic_realm_and_odd_inputs_are_kept() {
        let v = r#"Basic realm="basic-realm""#;
        assert_eq!(rewrite_www_authenticate(v, ORIGIN, &KEY), v);
        let v = r#"Bearer service="x",scope="realm=http://evil/""#;
        assert_eq!(rewrite_www_authenticate(v, ORIGIN, &KEY), v);
        let v = "Bearer realm=https://a.example/t, service=s";
        assert_eq!(
            rewrite_www_authenticate(v, ORIGIN, &KEY),
            format!(r#"Bearer realm="{}", service=s"#, signed("a.example", "/t"))
        );
        let v = r#"Bearer realm="unterminated"#;
        assert_eq!(rewrite_www_authenticate(v, ORIGIN, &KEY), v);
        assert_eq!(rewrite_www_authenticate("", ORIGIN, &KEY), "");
        let v = r#"Bearer realm="http://127.0.0.1:5555/t", Basic realm="r""#;
        assert_eq!(
            rewrite_www_authenticate(v, ORIGIN, &KEY),
            format!(
                r#"Bearer realm="{}", Basic realm="r""#,
                signed("127.0.0.1:5555", "/t")
            )
        );
    }
}
