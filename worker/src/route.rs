//! Request routing: which part of the worker answers a method and path.

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /healthz`.
    Healthz,
    /// `GET /kiln-config.json`: the web app's runtime configuration.
    KilnConfig,
    /// A CORS preflight (`OPTIONS`) for a proxy or API path.
    Preflight,
    /// `/proxy/{authority}{path}`: forward to the registry or token server.
    Proxy {
        /// The `host[:port]` segment.
        authority: &'a str,
        /// The upstream path, starting with `/`.
        path: &'a str,
    },
    /// `POST /verify-image`.
    VerifyImage,
    /// `POST /convert-image`.
    ConvertImage,
    /// An edge API endpoint that is not implemented yet (its path).
    NotImplemented(&'a str),
    /// A known path with a method it does not accept.
    MethodNotAllowed(&'static str),
    /// A proxy path that is not a registry API or token path, or lacks a path.
    BadProxyPath,
    /// Anything else: the static assets.
    Asset,
}

/// Edge API endpoints that will run the engine.
pub const API_PATHS: [&str; 4] = [
    "/convert-image",
    "/convert-image/prepare",
    "/convert-image/complete",
    "/verify-image",
];

/// Routes a request by method and (already normalised) path.
pub fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    let is_api = API_PATHS.contains(&path);
    if let Some(rest) = path.strip_prefix("/proxy/") {
        if method == "OPTIONS" {
            return Route::Preflight;
        }
        let Some(slash) = rest.find('/') else {
            return Route::BadProxyPath;
        };
        let (authority, upstream) = rest.split_at(slash);
        let registry_api = upstream == "/v2" || upstream.starts_with("/v2/");
        let allowed = if registry_api {
            matches!(method, "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE")
        } else {
            // Token endpoints: GET (distribution) or POST (OAuth2 form).
            matches!(method, "GET" | "POST")
        };
        if !allowed {
            return Route::MethodNotAllowed(if registry_api {
                "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
            } else {
                "GET, POST, OPTIONS"
            });
        }
        return Route::Proxy {
            authority,
            path: upstream,
        };
    }
    match (method, path) {
        ("GET" | "HEAD", "/healthz") => Route::Healthz,
        (_, "/healthz") => Route::MethodNotAllowed("GET, HEAD"),
        ("GET" | "HEAD", "/kiln-config.json") => Route::KilnConfig,
        (_, "/kiln-config.json") => Route::MethodNotAllowed("GET, HEAD"),
        ("OPTIONS", _) if is_api => Route::Preflight,
        ("POST", "/verify-image") => Route::VerifyImage,
        ("POST", "/convert-image") => Route::ConvertImage,
        ("POST", _) if is_api => Route::NotImplemented(path),
        (_, _) if is_api => Route::MethodNotAllowed("POST, OPTIONS"),
        _ => Route::Asset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/healthz"), Route::Healthz);
        assert_eq!(
            route("POST", "/healthz"),
            Route::MethodNotAllowed("GET, HEAD")
        );
        assert_eq!(route("GET", "/kiln-config.json"), Route::KilnConfig);
        assert!(matches!(
            route("POST", "/kiln-config.json"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("POST", "/convert-image"), Route::ConvertImage);
        assert_eq!(route("POST", "/verify-image"), Route::VerifyImage);
        assert_eq!(
            route("POST", "/convert-image/prepare"),
            Route::NotImplemented("/convert-image/prepare")
        );
        assert!(matches!(
            route("GET", "/convert-image/prepare"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("OPTIONS", "/convert-image"), Route::Preflight);
        assert_eq!(route("GET", "/"), Route::Asset);
        assert_eq!(route("GET", "/index.html"), Route::Asset);
        assert_eq!(
            route("PATCH", "/proxy/127.0.0.1:5000/v2/a/blobs/uploads/u"),
            Route::Proxy {
                authority: "127.0.0.1:5000",
                path: "/v2/a/blobs/uploads/u"
            }
        );
        assert_eq!(
            route("GET", "/proxy/[::1]:5000/v2"),
            Route::Proxy {
                authority: "[::1]:5000",
                path: "/v2"
            }
        );
        assert_eq!(
            route("GET", "/proxy/auth.example/token"),
            Route::Proxy {
                authority: "auth.example",
                path: "/token"
            }
        );
        assert!(matches!(
            route("PUT", "/proxy/auth.example/token"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("GET", "/proxy/host-only"), Route::BadProxyPath);
        assert_eq!(route("OPTIONS", "/proxy/x/v2/"), Route::Preflight);
        assert!(matches!(
            route("TRACE", "/proxy/x/v2/"),
            Route::MethodNotAllowed(_)
        ));
    }
}
