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
    /// `POST /attest/verify`.
    AttestVerify,
    /// `POST /convert-image`.
    ConvertImage,
    /// `POST /convert-image/prepare` (offline two-step, step 1).
    PrepareImage,
    /// `POST /convert-image/complete` (offline two-step, step 2).
    CompleteImage,
    /// `POST /certificates/issue`: MANAGER_CA issuance ([`crate::manager`]).
    IssueCertificate,
    /// `GET /approvals`: the approval records (operator API, [`crate::approvals`]).
    ListApprovals,
    /// `POST /approvals`: register an image converted elsewhere (operator API).
    RegisterApproval,
    /// `POST /approvals/{id}/approve` or `/revoke` (operator API).
    ApprovalAction {
        /// The record id (checked by [`crate::approvals::check_id`]).
        id: &'a str,
        /// `true`: approve; `false`: revoke.
        approve: bool,
    },
    /// `GET /openapi.json`: the edge API's OpenAPI document.
    OpenApi,
    /// `GET /debug/metrics`: the isolate's figures ([`crate::metrics`]); 404 unless
    /// `KILN_DEBUG_METRICS=1`.
    DebugMetrics,
    /// A known path with a method it does not accept.
    MethodNotAllowed(&'static str),
    /// A proxy path that is neither the registry API (`/v2/...`) nor a signed link, or
    /// lacks a path.
    BadProxyPath,
    /// Anything else: the static assets.
    Asset,
}

/// Edge API endpoints (they run the engine).
pub const API_PATHS: [&str; 6] = [
    "/convert-image",
    "/convert-image/prepare",
    "/convert-image/complete",
    "/verify-image",
    "/attest/verify",
    "/certificates/issue",
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
        // The registry protocol, or a link the proxy signed itself (token realms; checked
        // by the proxy, [`crate::rewrite::open_signed_path`]). Nothing else is forwarded.
        let registry_api = crate::rewrite::is_protocol_path(upstream)
            || upstream.starts_with(crate::rewrite::SIGNED_SEGMENT);
        if !registry_api {
            return Route::BadProxyPath;
        }
        if !matches!(method, "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE") {
            return Route::MethodNotAllowed("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        }
        return Route::Proxy {
            authority,
            path: upstream,
        };
    }
    if let Some((id, action)) = path
        .strip_prefix("/approvals/")
        .and_then(|rest| rest.split_once('/'))
    {
        if matches!(action, "approve" | "revoke") && !id.is_empty() {
            return match method {
                "OPTIONS" => Route::Preflight,
                "POST" => Route::ApprovalAction {
                    id,
                    approve: action == "approve",
                },
                _ => Route::MethodNotAllowed("POST, OPTIONS"),
            };
        }
    }
    match (method, path) {
        ("GET" | "HEAD", "/approvals") => Route::ListApprovals,
        ("POST", "/approvals") => Route::RegisterApproval,
        ("OPTIONS", "/approvals") => Route::Preflight,
        (_, "/approvals") => Route::MethodNotAllowed("GET, HEAD, POST, OPTIONS"),
        ("POST", "/certificates/issue") => Route::IssueCertificate,
        ("GET" | "HEAD", "/healthz") => Route::Healthz,
        (_, "/healthz") => Route::MethodNotAllowed("GET, HEAD"),
        ("GET" | "HEAD", "/kiln-config.json") => Route::KilnConfig,
        (_, "/kiln-config.json") => Route::MethodNotAllowed("GET, HEAD"),
        ("OPTIONS", _) if is_api => Route::Preflight,
        ("POST", "/verify-image") => Route::VerifyImage,
        ("POST", "/attest/verify") => Route::AttestVerify,
        ("POST", "/convert-image") => Route::ConvertImage,
        ("POST", "/convert-image/prepare") => Route::PrepareImage,
        ("POST", "/convert-image/complete") => Route::CompleteImage,
        ("GET" | "HEAD", "/openapi.json") => Route::OpenApi,
        ("GET", "/debug/metrics") => Route::DebugMetrics,
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
        assert_eq!(route("GET", "/debug/metrics"), Route::DebugMetrics);
        assert_eq!(route("POST", "/debug/metrics"), Route::Asset);
        assert_eq!(route("POST", "/verify-image"), Route::VerifyImage);
        assert_eq!(route("POST", "/attest/verify"), Route::AttestVerify);
        assert_eq!(route("OPTIONS", "/attest/verify"), Route::Preflight);
        assert!(matches!(
            route("GET", "/attest/verify"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("POST", "/convert-image/prepare"), Route::PrepareImage);
        assert_eq!(
            route("POST", "/convert-image/complete"),
            Route::CompleteImage
        );
        assert_eq!(route("GET", "/openapi.json"), Route::OpenApi);
        assert!(matches!(
            route("GET", "/convert-image/prepare"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("OPTIONS", "/convert-image"), Route::Preflight);
        assert_eq!(
            route("POST", "/certificates/issue"),
            Route::IssueCertificate
        );
        assert!(matches!(
            route("GET", "/certificates/issue"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("GET", "/approvals"), Route::ListApprovals);
        assert_eq!(route("POST", "/approvals"), Route::RegisterApproval);
        assert!(matches!(
            route("DELETE", "/approvals"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(
            route("POST", "/approvals/ab12/approve"),
            Route::ApprovalAction {
                id: "ab12",
                approve: true
            }
        );
        assert_eq!(
            route("POST", "/approvals/ab12/revoke"),
            Route::ApprovalAction {
                id: "ab12",
                approve: false
            }
        );
        assert!(matches!(
            route("GET", "/approvals/ab12/approve"),
            Route::MethodNotAllowed(_)
        ));
        assert_eq!(route("POST", "/approvals//approve"), Route::Asset);
        assert_eq!(route("POST", "/approvals/ab12/delete"), Route::Asset);
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
            route("GET", "/proxy/auth.example/kiln-signed/00/token"),
            Route::Proxy {
                authority: "auth.example",
                path: "/kiln-signed/00/token"
            }
        );
        // Only the registry protocol: no other path of an allowlisted host.
        for p in [
            "/proxy/auth.example/token",
            "/proxy/storage.example/bucket/x.html",
            "/proxy/r.example/v2x",
            "/proxy/r.example/",
        ] {
            assert_eq!(route("GET", p), Route::BadProxyPath, "{p}");
        }
        assert_eq!(route("GET", "/proxy/host-only"), Route::BadProxyPath);
        assert_eq!(route("OPTIONS", "/proxy/x/v2/"), Route::Preflight);
        assert!(matches!(
            route("TRACE", "/proxy/x/v2/"),
            Route::MethodNotAllowed(_)
        ));
    }
}
