//! Which headers cross the proxy, and which upstream statuses are passed back.

/// Request headers of the distribution protocol (and token endpoints) passed upstream.
/// Everything else (cookies, Origin, Expect, TE, Transfer-Encoding, hop-by-hop, forwarding
/// headers) stays at the proxy.
pub const FORWARDED_REQUEST_HEADERS: [&str; 8] = [
    "authorization",
    "accept",
    "content-type",
    "content-length",
    "range",
    "content-range",
    "docker-content-digest",
    "user-agent",
];

/// Upstream response headers passed back to the client (lower-case): the distribution
/// protocol's and the token endpoints', nothing else. Everything not listed (cookies,
/// `Clear-Site-Data`, `Content-Disposition`, `Link`, `Refresh`, the upstream's CORS and CSP,
/// hop-by-hop headers) stays at the proxy. `content-type` passes through
/// [`safe_content_type`]; `location` and `www-authenticate` are rewritten.
pub const PASSED_RESPONSE_HEADERS: [&str; 17] = [
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "range",
    "etag",
    "last-modified",
    "cache-control",
    "retry-after",
    "location",
    "www-authenticate",
    "docker-content-digest",
    "docker-distribution-api-version",
    "docker-upload-uuid",
    "oci-subject",
    "oci-filters-applied",
    "oci-chunk-min-length",
];

/// Headers set on every proxy response (and every JSON answer of the worker): whatever an
/// allowlisted host sends is never a document that runs on the worker's origin.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("content-security-policy", "sandbox; default-src 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

/// Whether an upstream response header (lower-case name) is passed back to the client.
pub fn passes_response_header(lower_name: &str) -> bool {
    PASSED_RESPONSE_HEADERS.contains(&lower_name)
}

/// The `Content-Type` passed back for an upstream one: the registry protocol's types
/// (`application/...` JSON, octet streams, OCI/Docker media types, `text/plain` errors)
/// pass; anything a browser could render or run (HTML, XML, SVG, script, or unparsable)
/// becomes `application/octet-stream`.
pub fn safe_content_type(upstream: &str) -> &str {
    let essence = upstream
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(sub) = essence.strip_prefix("application/") else {
        return if essence == "text/plain" {
            upstream
        } else {
            "application/octet-stream"
        };
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c);
    let risky = sub.contains("xml")
        || sub.contains("html")
        || sub.contains("javascript")
        || sub.contains("ecmascript")
        || sub == "pdf"
        || sub.contains("wasm");
    if sub.is_empty() || !sub.chars().all(token) || risky {
        "application/octet-stream"
    } else {
        upstream
    }
}

/// The Content-Security-Policy of the web app's HTML pages: scripts only from the worker's
/// origin plus the page's own inline scripts by hash (Trunk's loader), WebAssembly, the job
/// Web Workers from `blob:` URLs, fetches only to the worker's origin (the proxy, the
/// API), no plugins, no framing, no `<base>`. `inline_scripts` are the page's inline
/// `<script>` bodies ([`inline_scripts`]).
pub fn app_csp(inline_scripts: &[&str]) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
    for body in inline_scripts {
        let h = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()));
        script_src.push_str(&format!(" 'sha256-{h}'"));
    }
    format!(
        "default-src 'none'; script-src {script_src}; worker-src 'self' blob:; \
         connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
         manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// The bodies of the inline `<script>` elements of an HTML page (those without `src`).
pub fn inline_scripts(html: &str) -> Vec<&str> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<script") {
        let open = at + i;
        let Some(gt) = lower[open..].find('>') else {
            break;
        };
        let tag = &lower[open..open + gt];
        let body_start = open + gt + 1;
        let Some(end) = lower[body_start..].find("</script") else {
            break;
        };
        let has_src = tag
            .split(|c: char| c.is_whitespace())
            .any(|a| a.starts_with("src="));
        if !has_src {
            out.push(&html[body_start..body_start + end]);
        }
        at = body_start + end;
    }
    out
}

/// The status the client sees for an upstream status: informational ones (< 200, which a
/// proxy cannot pass on as a final answer) become `None` (the caller answers 502).
pub fn client_status(upstream: u16) -> Option<u16> {
    (upstream >= 200).then_some(upstream)
}

/// Whether a response with this status carries no body.
pub fn is_null_body_status(status: u16) -> bool {
    matches!(status, 204 | 205 | 304)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers() {
        for h in [
            "expect",
            "te",
            "transfer-encoding",
            "cookie",
            "origin",
            "host",
            "connection",
        ] {
            assert!(!FORWARDED_REQUEST_HEADERS.contains(&h), "{h}");
        }
        assert!(FORWARDED_REQUEST_HEADERS.contains(&"authorization"));
    }

    #[test]
    fn response_headers() {
        for h in [
            "location",
            "docker-content-digest",
            "www-authenticate",
            "content-length",
            "content-type",
            "range",
        ] {
            assert!(passes_response_header(h), "{h}");
        }
        for h in [
            "set-cookie",
            "clear-site-data",
            "content-disposition",
            "content-security-policy",
            "link",
            "refresh",
            "transfer-encoding",
            "connection",
            "access-control-allow-origin",
            "x-frame-options",
        ] {
            assert!(!passes_response_header(h), "{h}");
        }
    }

    #[test]
    fn app_csp_hashes_inline_scripts() {
        let html = "<html><head><script type=\"module\">import init from './a.js';\nawait init();</script>\
                    <SCRIPT src=\"x.js\"></SCRIPT><script>b()</script></head></html>";
        let s = inline_scripts(html);
        assert_eq!(s, ["import init from './a.js';\nawait init();", "b()"]);
        let csp = app_csp(&s);
        // sha256("b()") in base64.
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        let h = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"b()"));
        assert!(csp.contains(&format!("'sha256-{h}'")), "{csp}");
        assert!(csp.starts_with("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("'unsafe-eval'"));
        assert!(inline_scripts("<script>unterminated").is_empty());
        assert!(inline_scripts("<script").is_empty());
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "application/octet-stream",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "text/plain; charset=utf-8",
        ] {
            assert_eq!(safe_content_type(ok), ok);
        }
        for bad in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "application/xhtml+xml",
            "image/svg+xml",
            "application/xml",
            "text/xml",
            "text/javascript",
            "application/javascript",
            "application/pdf",
            "application/wasm",
            "multipart/x-mixed-replace",
            "",
            "application/",
            "application/json\"html",
        ] {
            assert_eq!(safe_content_type(bad), "application/octet-stream", "{bad}");
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(client_status(100), None);
        assert_eq!(client_status(101), None);
        assert_eq!(client_status(103), None);
        assert_eq!(client_status(0), None);
        assert_eq!(client_status(200), Some(200));
        assert_eq!(client_status(404), Some(404));
        assert!(is_null_body_status(204));
        assert!(!is_null_body_status(200));
    }
}
