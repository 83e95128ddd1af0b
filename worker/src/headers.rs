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

/// Upstream response headers never passed back (hop-by-hop, cookies, the upstream's own CORS).
const DROPPED_RESPONSE_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "set-cookie",
];

/// Whether an upstream response header (lower-case name) is passed back to the client.
pub fn passes_response_header(lower_name: &str) -> bool {
    !DROPPED_RESPONSE_HEADERS.contains(&lower_name) && !lower_name.starts_with("access-control-")
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
            "range",
        ] {
            assert!(passes_response_header(h), "{h}");
        }
        for h in [
            "set-cookie",
            "transfer-encoding",
            "connection",
            "access-control-allow-origin",
        ] {
            assert!(!passes_response_header(h), "{h}");
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
