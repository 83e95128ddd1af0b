//! Registry URLs through the worker's CORS proxy:
//! `scheme://host[:port]/path?q` → `{proxy}/host[:port]/path?q`.
//!
//! The proxy picks the upstream scheme from its allowlist, so the scheme is dropped; the
//! port is kept only when the URL names one (as the proxy's own `Location` and `realm`
//! rewriting does). URLs already under the proxy (the proxy rewrites upload `Location`s
//! and bearer realms to itself) pass unchanged.

use url::Url;

/// Why a URL cannot go through the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    /// Not an absolute URL.
    #[error("not an absolute URL: {0}")]
    Parse(String),
    /// Not http or https.
    #[error("unsupported scheme `{0}` (only http and https)")]
    Scheme(String),
    /// No host.
    #[error("URL without a host")]
    NoHost,
    /// User name or password in the URL (credentials go in headers).
    #[error("URL with user info is refused")]
    UserInfo,
}

/// The proxy base (`{origin}/proxy`) without a trailing slash.
pub fn proxy_base(origin_or_base: &str) -> String {
    origin_or_base.trim_end_matches('/').to_string()
}

/// Maps `url` to the same resource through the proxy at `proxy` (an absolute base such as
/// `https://kiln.example/proxy`).
pub fn to_proxy(url: &str, proxy: &str) -> Result<String, ProxyUrlError> {
    let proxy = proxy.trim_end_matches('/');
    if url
        .strip_prefix(proxy)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Ok(url.to_string());
    }
    let u = Url::parse(url).map_err(|e| ProxyUrlError::Parse(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(ProxyUrlError::Scheme(u.scheme().to_string()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ProxyUrlError::UserInfo);
    }
    let host = u
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(ProxyUrlError::NoHost)?;
    let mut out = match u.port() {
        Some(p) => format!("{proxy}/{host}:{p}{}", u.path()),
        None => format!("{proxy}/{host}{}", u.path()),
    };
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

/// The URL without its query and fragment, for error messages (upload URLs carry state
/// tokens in their query).
pub fn without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    url.get(..end).unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "http://127.0.0.1:8787/proxy";

    #[test]
    fn maps_registry_urls() {
        assert_eq!(
            to_proxy("http://127.0.0.1:5000/v2/app/manifests/1", P).unwrap(),
            "http://127.0.0.1:8787/proxy/127.0.0.1:5000/v2/app/manifests/1"
        );
        assert_eq!(
            to_proxy("https://registry.example/v2/a/b/blobs/uploads/?mount=sha256:ab&from=x", P)
                .unwrap(),
            "http://127.0.0.1:8787/proxy/registry.example/v2/a/b/blobs/uploads/?mount=sha256:ab&from=x"
        );
        // Default ports are not written (the proxy's allowlist decides the scheme).
        assert_eq!(
            to_proxy("https://r.example:443/v2/", P).unwrap(),
            format!("{P}/r.example/v2/")
        );
        assert_eq!(
            to_proxy("https://r.example:8443/v2/", P).unwrap(),
            format!("{P}/r.example:8443/v2/")
        );
        assert_eq!(
            to_proxy("http://[::1]:5000/v2/", P).unwrap(),
            format!("{P}/[::1]:5000/v2/")
        );
        assert_eq!(
            to_proxy("https://r.example", P).unwrap(),
            format!("{P}/r.example/")
        );
        // Fragments never reach the wire.
        assert_eq!(
            to_proxy("https://auth.example/token?service=r#x", P).unwrap(),
            format!("{P}/auth.example/token?service=r")
        );
    }

    #[test]
    fn proxy_urls_pass_unchanged() {
        let u = format!("{P}/127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=abc");
        assert_eq!(to_proxy(&u, P).unwrap(), u);
        assert_eq!(to_proxy(&u, &format!("{P}/")).unwrap(), u);
        // Only below the proxy path: the proxy's origin itself is a registry like any other.
        assert_eq!(
            to_proxy("http://127.0.0.1:8787/proxyx/v2/", P).unwrap(),
            format!("{P}/127.0.0.1:8787/proxyx/v2/")
        );
    }

    #[test]
    fn refuses_what_cannot_be_proxied() {
        assert!(matches!(
            to_proxy("ftp://x/y", P),
            Err(ProxyUrlError::Scheme(_))
        ));
        assert!(matches!(to_proxy("/v2/", P), Err(ProxyUrlError::Parse(_))));
        assert_eq!(
            to_proxy("https://u:p@r.example/v2/", P),
            Err(ProxyUrlError::UserInfo)
        );
        let e = to_proxy("https://u:secret@r.example/v2/", P).unwrap_err();
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn strips_queries_for_messages() {
        assert_eq!(without_query("http://a/b?_state=s"), "http://a/b");
        assert_eq!(without_query("http://a/b#f"), "http://a/b");
        assert_eq!(without_query("http://a/b"), "http://a/b");
        assert_eq!(proxy_base("http://o/proxy/"), "http://o/proxy");
    }
}
