//! CORS for the registry proxy: which origins may call it and which headers a page sees.

/// Response headers a page must be able to read from registry responses.
pub const EXPOSED_HEADERS: &str = "Location, Docker-Content-Digest, Range, Content-Range, \
     Docker-Upload-UUID, WWW-Authenticate, Content-Length, Content-Type, \
     Docker-Distribution-API-Version, OCI-Chunk-Min-Length";

/// Methods the proxy accepts from a page.
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECS: u32 = 600;

/// Which page origins may use the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origins {
    /// Only the worker's own origin (the page it serves). The default.
    #[default]
    SameOrigin,
    /// Any origin (`*`).
    Any,
    /// These origins (exact `scheme://host[:port]`, lower case), plus the worker's own.
    List(Vec<String>),
}

impl Origins {
    /// Parses a comma- or whitespace-separated list; `*` allows any origin; empty means the
    /// worker's own origin only.
    pub fn parse(s: &str) -> Self {
        let items: Vec<String> = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|x| !x.is_empty())
            .map(|x| x.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if items.iter().any(|x| x == "*") {
            Origins::Any
        } else if items.is_empty() {
            Origins::SameOrigin
        } else {
            Origins::List(items)
        }
    }

    /// Whether a request carrying `Origin: origin` may be answered, given the worker's own
    /// origin.
    pub fn allows(&self, origin: &str, self_origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        if origin == self_origin.trim_end_matches('/').to_ascii_lowercase() {
            return true;
        }
        match self {
            Origins::SameOrigin => false,
            Origins::Any => true,
            Origins::List(list) => list.contains(&origin),
        }
    }
}

/// The `Access-Control-Allow-Headers` value for a preflight: the requested headers, echoed
/// (a `*` would not cover `Authorization`), restricted to valid header-name characters.
pub fn allow_headers(requested: Option<&str>) -> String {
    let Some(req) = requested else {
        return String::new();
    };
    req.split(',')
        .map(str::trim)
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 64
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let me = "https://kiln.example";
        assert!(Origins::parse("").allows("https://kiln.example", me));
        assert!(!Origins::parse("").allows("https://other.example", me));
        assert!(Origins::parse(" * ").allows("https://other.example", me));
        let l = Origins::parse("https://a.example, http://127.0.0.1:9000/");
        assert!(l.allows("http://127.0.0.1:9000", me));
        assert!(l.allows("HTTPS://A.example", me));
        assert!(!l.allows("https://b.example", me));
        assert!(!l.allows("null", me));
    }

    #[test]
    fn requested_headers_are_echoed_and_sanitised() {
        assert_eq!(
            allow_headers(Some("authorization, content-type,range")),
            "authorization, content-type, range"
        );
        assert_eq!(allow_headers(Some("x\r\nevil: 1, accept")), "accept");
        assert_eq!(allow_headers(None), "");
    }
}
