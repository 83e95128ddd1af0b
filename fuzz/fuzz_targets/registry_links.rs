//! Registry auth challenges and links, as the engine and the worker's proxy read them:
//! - `WWW-Authenticate`: the engine's `parse_challenge` (then `token_url`) never panics;
//!   the proxy's realm rewriting never panics, and a bearer challenge whose realm is an
//!   http(s) URL still parses as bearer after it, its realm now under the proxy;
//! - `Location`: the engine's `resolve_url` always gives an http(s) URL from an http(s)
//!   base; the proxy's `rewrite_location` gives links under `/proxy/` that the proxy
//!   itself opens again (`open_signed_path`) to the same upstream path.
//!
//! Input: a mode byte, then the header value (lossy UTF-8).
#![no_main]

use kiln_engine::image::registry::auth::{parse_challenge, token_url, Challenge, Scope};
use kiln_engine::image::registry::client::{resolve_url, same_origin};
use kiln_worker::rewrite::{open_signed_path, rewrite_location, rewrite_www_authenticate};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [7; 32];
const PROXY: &str = "https://kiln.example";

fn is_http(u: &str) -> bool {
    let l = u.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// RFC 7235 `challenge = auth-scheme [ 1*SP auth-param *( OWS "," OWS auth-param ) ]`
/// with `auth-param = token BWS "=" BWS ( token / quoted-string )`.
fn well_formed(h: &str) -> bool {
    fn tchar(c: char) -> bool {
        c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
    }
    let ows = |s: &str| s.trim_start_matches([' ', '\t']).len();
    let mut s = h;
    let scheme_len = s.find(|c: char| !tchar(c)).unwrap_or(s.len());
    if scheme_len == 0 {
        return false;
    }
    s = &s[scheme_len..];
    if s.is_empty() {
        return true;
    }
    if !s.starts_with(' ') {
        return false;
    }
    let mut first = true;
    loop {
        s = &s[s.len() - ows(s)..];
        if !first {
            if s.is_empty() {
                return true;
            }
            let Some(rest) = s.strip_prefix(',') else {
                return false;
            };
            s = &rest[rest.len() - ows(rest)..];
        }
        first = false;
        let name_len = s.find(|c: char| !tchar(c)).unwrap_or(s.len());
        if name_len == 0 {
            return false;
        }
        s = &s[name_len..];
        s = &s[s.len() - ows(s)..];
        let Some(rest) = s.strip_prefix('=') else {
            return false;
        };
        s = &rest[rest.len() - ows(rest)..];
        if let Some(body) = s.strip_prefix('"') {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    (false, c) if c.is_control() && c != '\t' => return false,
                    _ => {}
                }
            }
            let Some(e) = end else { return false };
            s = &body[e + 1..];
        } else {
            let v = s.find(|c: char| !tchar(c)).unwrap_or(s.len());
            if v == 0 {
                return false;
            }
            s = &s[v..];
        }
        if s.is_empty() {
            return true;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 2 {
        0 => {
            let before = parse_challenge(&text);
            if let Some(Challenge::Bearer { realm, service, .. }) = &before {
                let _ = token_url(realm, service.as_deref(), &[Scope::pull("a/b")]);
            }
            let rewritten = rewrite_www_authenticate(&text, PROXY, &KEY);
            // On a malformed header the two parsers may disagree; the proxy then leaves
            // the realm alone and the browser's token request fails closed (an unsigned
            // non-/v2 path). On a well-formed one they must agree.
            if !well_formed(&text) {
                return;
            }
            if let Some(Challenge::Bearer { realm, .. }) = &before {
                if url::Url::parse(realm).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                    match parse_challenge(&rewritten) {
                        Some(Challenge::Bearer { realm: r2, .. }) => assert!(
                            r2.starts_with(&format!("{PROXY}/proxy/")),
                            "realm {realm:?} -> {r2:?} in {rewritten:?}"
                        ),
                        other => panic!("{text:?} -> {rewritten:?} parses as {other:?}"),
                    }
                }
            }
        }
        _ => {
            let base = "https://reg.test:5000/v2/a/blobs/uploads/";
            let resolved = resolve_url(base, &text);
            assert!(is_http(&resolved), "{text:?} -> {resolved:?}");
            assert_eq!(
                same_origin(base, &resolved),
                same_origin(&resolved, base),
                "{resolved:?}"
            );
            let upstream = url::Url::parse(base).unwrap_or_else(|_| unreachable!());
            if let Some(out) = rewrite_location(&text, &upstream, PROXY, &KEY) {
                let Some(tail) = out.strip_prefix(&format!("{PROXY}/proxy/")) else {
                    panic!("{text:?} -> {out:?} not under the proxy");
                };
                let (authority, path_query) = tail.split_at(tail.find('/').unwrap_or(tail.len()));
                let path = path_query.split('?').next().unwrap_or("");
                let abs = upstream
                    .join(text.trim())
                    .unwrap_or_else(|_| unreachable!());
                assert_eq!(
                    open_signed_path(&KEY, authority, path),
                    Some(abs.path()),
                    "{text:?} -> {out:?}"
                );
            }
        }
    }
});
