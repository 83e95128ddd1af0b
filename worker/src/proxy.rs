//! The registry proxy's forwarding (wasm only): one request upstream, bodies streamed both
//! ways, blob redirects followed here after the guard accepts them.

use crate::config::Config;
use crate::error::{ApiError, ErrorType};
use crate::guarded_fetch::{fetch_guarded, js_err, FetchFailure, MAX_REDIRECTS};
use crate::headers::{
    client_status, is_null_body_status, passes_response_header, safe_content_type,
    FORWARDED_REQUEST_HEADERS, SECURITY_HEADERS,
};
use crate::rewrite::{open_signed_path, rewrite_location, rewrite_www_authenticate};
use url::Url;
use wasm_bindgen::JsCast;
use web_sys::{Headers, ResponseInit};

/// What the handler needs from the incoming request.
pub struct Incoming<'a> {
    /// The raw request (headers, body stream).
    pub raw: &'a web_sys::Request,
    /// Upper-case method.
    pub method: &'a str,
    /// `host[:port]` from the proxy path.
    pub authority: &'a str,
    /// Upstream path, starting with `/`.
    pub path: &'a str,
    /// Query string without `?`.
    pub query: Option<&'a str>,
    /// The worker's own origin, for rewritten links.
    pub self_origin: &'a str,
    /// The key of signed links ([`crate::rewrite`]).
    pub link_key: [u8; 32],
}

fn internal(what: &str, e: wasm_bindgen::JsValue) -> ApiError {
    ApiError::new(ErrorType::InternalError, format!("{what}: {}", js_err(e)))
}

/// Forwards one proxied request. Returns the upstream response with rewritten links and
/// without hop-by-hop headers (CORS headers are added by the caller), or an error.
pub async fn forward(cfg: &Config, inc: &Incoming<'_>) -> Result<web_sys::Response, ApiError> {
    let target = cfg.policy.check_authority(inc.authority)?;
    // Only the registry protocol, or a link this proxy signed (a token realm).
    let path = open_signed_path(&inc.link_key, inc.authority, inc.path).ok_or_else(|| {
        ApiError::new(
            ErrorType::Forbidden,
            "the proxy forwards only /v2/... and links it rewrote itself; this link's \
             signature does not match",
        )
    })?;
    let mut url_text = format!("{}{}", target.origin(), path);
    if let Some(q) = inc.query {
        url_text.push('?');
        url_text.push_str(q);
    }
    let url = Url::parse(&url_text)
        .map_err(|e| ApiError::bad_request(format!("bad upstream path: {e}")))?;
    if !target.matches(&url) {
        return Err(ApiError::bad_request(
            "the proxied path changes the upstream host",
        ));
    }

    let headers = Headers::new().map_err(|e| internal("headers", e))?;
    let in_headers = inc.raw.headers();
    for name in FORWARDED_REQUEST_HEADERS {
        if let Ok(Some(v)) = in_headers.get(name) {
            headers
                .set(name, &v)
                .map_err(|e| internal("copying a request header", e))?;
        }
    }
    let has_body = !matches!(inc.method, "GET" | "HEAD");
    let body = if has_body { inc.raw.body() } else { None };
    let timeout_ms = if has_body {
        cfg.upload_timeout_ms
    } else {
        cfg.timeout_ms
    };
    let (resp, url) = fetch_guarded(
        &cfg.policy,
        url,
        target,
        inc.method,
        &headers,
        body.as_ref().map(|b| b.as_ref()),
        timeout_ms,
    )
    .await
    .map_err(|f| match f {
        FetchFailure::RedirectRefused(m) => ApiError::new(ErrorType::RegistryNotAllowed, m),
        FetchFailure::BadRedirect(m) => ApiError::new(ErrorType::BadRedirect, m),
        FetchFailure::Unreachable(m) => ApiError::new(ErrorType::RegistryUnreachable, m),
        FetchFailure::Timeout(m) => ApiError::new(ErrorType::RegistryTimeout, m),
        FetchFailure::TooManyRedirects => ApiError::new(
            ErrorType::TooManyRedirects,
            format!("more than {MAX_REDIRECTS} redirects"),
        ),
        FetchFailure::Internal(m) => ApiError::new(ErrorType::InternalError, m),
    })?;
    respond(resp, &url, inc.self_origin, &inc.link_key)
}

/// Builds the response passed back: status < 200 becomes 502; only allowlisted headers
/// ([`passes_response_header`]), a renderable `Content-Type` replaced, links rewritten, the
/// [`SECURITY_HEADERS`] set; body streamed.
fn respond(
    resp: web_sys::Response,
    upstream: &Url,
    self_origin: &str,
    key: &[u8; 32],
) -> Result<web_sys::Response, ApiError> {
    let upstream_status = resp.status();
    let Some(status) = client_status(upstream_status) else {
        return Err(ApiError::new(
            ErrorType::BadUpstreamStatus,
            format!("registry answered with informational status {upstream_status}"),
        ));
    };
    let out = Headers::new().map_err(|e| internal("headers", e))?;
    let entries = js_sys::try_iter(&resp.headers())
        .map_err(|e| internal("header iteration", e))?
        .ok_or_else(|| ApiError::new(ErrorType::InternalError, "headers are not iterable"))?;
    for entry in entries {
        let entry = entry.map_err(|e| internal("header entry", e))?;
        let pair: js_sys::Array = entry.unchecked_into();
        let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) else {
            continue;
        };
        let lname = name.to_ascii_lowercase();
        if !passes_response_header(&lname) {
            continue;
        }
        let value = match lname.as_str() {
            "location" => match rewrite_location(&value, upstream, self_origin, key) {
                Some(v) => v,
                None => continue,
            },
            "www-authenticate" => rewrite_www_authenticate(&value, self_origin, key),
            "content-type" => safe_content_type(&value).to_string(),
            _ => value,
        };
        out.append(&name, &value)
            .map_err(|e| internal("copying a response header", e))?;
    }
    for (name, value) in SECURITY_HEADERS {
        out.set(name, value)
            .map_err(|e| internal("setting a security header", e))?;
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_status_text(&resp.status_text());
    init.set_headers(&out);
    let body = if is_null_body_status(status) {
        None
    } else {
        resp.body()
    };
    web_sys::Response::new_with_opt_readable_stream_and_init(body.as_ref(), &init)
        .map_err(|e| internal("building the response", e))
}
