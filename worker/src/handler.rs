//! The fetch handler (wasm only): routing, CORS, configuration, the edge API, the OpenAPI
//! document and the static assets.

use crate::auth::{authenticate, Caller};
use crate::config::Config;
use crate::cors::{allow_headers, ALLOWED_METHODS, EXPOSED_HEADERS, MAX_AGE_SECS};
use crate::error::{ApiError, ErrorType};
use crate::proxy::{forward, Incoming};
use crate::route::{route, Route};
use worker::{console_log, event, Context, Env, Request, Result};

/// Headers added to every answer to a page from an allowed origin.
fn cors_headers(headers: &web_sys::Headers, origin: Option<&str>) {
    if let Some(o) = origin {
        let _ = headers.set("access-control-allow-origin", o);
        let _ = headers.set("access-control-expose-headers", EXPOSED_HEADERS);
        let _ = headers.append("vary", "Origin");
    }
}

/// Logs an API call's outcome (`what`, the caller's NAME in `who`, `timing` on success;
/// never the body or a token) and answers it: the JSON with 200, or the error; a 401 from
/// authentication carries `WWW-Authenticate`.
fn answer(
    result: std::result::Result<String, ApiError>,
    what: &str,
    who: &str,
    timing: impl FnOnce() -> String,
    auth_failed: bool,
    cors_origin: Option<&str>,
) -> Result<web_sys::Response> {
    match result {
        Ok(json) => {
            console_log!("{what}{who} -> 200{}", timing());
            json_response(200, &json, cors_origin)
        }
        Err(e) => {
            console_log!("{what}{who} -> {} {}", e.status, e.error_type.as_str());
            let resp = error_response(&e, cors_origin)?;
            if auth_failed && e.status == 401 {
                resp.headers()
                    .set("www-authenticate", "Bearer realm=\"kiln\"")?;
            }
            Ok(resp)
        }
    }
}

fn json_response(status: u16, body: &str, origin: Option<&str>) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
    for (name, value) in crate::headers::SECURITY_HEADERS {
        headers.set(name, value)?;
    }
    cors_headers(&headers, origin);
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_str_and_init(
        Some(body),
        &init,
    )?)
}

fn error_response(e: &ApiError, origin: Option<&str>) -> Result<web_sys::Response> {
    json_response(e.status, &e.to_json(), origin)
}

/// 429 `RateLimited` with `Retry-After`.
fn rate_limited(retry_after: u64, origin: Option<&str>) -> Result<web_sys::Response> {
    let e = ApiError::new(
        ErrorType::RateLimited,
        format!("rate limit reached; retry after {retry_after} s"),
    );
    let resp = error_response(&e, origin)?;
    resp.headers()
        .set("retry-after", &retry_after.to_string())?;
    Ok(resp)
}

fn with_allow(resp: Result<web_sys::Response>, allow: &str) -> Result<web_sys::Response> {
    let r = resp?;
    r.headers().set("allow", allow)?;
    Ok(r)
}

fn config(env: &Env) -> std::result::Result<Config, crate::config::ConfigError> {
    Config::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let url = req.url()?;
    let self_origin = url.origin().ascii_serialization();
    let method = req.method().to_string().to_ascii_uppercase();
    let route = route(&method, url.path());
    if route == Route::Asset {
        return assets(&env, &url, &method).await;
    }
    let cfg = match config(&env) {
        Ok(c) => c.for_manager(
            binding_text(&env, crate::manager::CA_KEY).is_some(),
            &self_origin,
        ),
        Err(e) => {
            console_log!("configuration error: {e}");
            return error_response(
                &ApiError::new(ErrorType::ConfigurationError, e.to_string()),
                None,
            );
        }
    };
    // A request from a page on another origin is answered only for allowed origins; requests
    // without Origin (scripts, the CLI) are always answered.
    let origin_header = req.headers().get("origin")?;
    let cors_origin = match origin_header.as_deref() {
        Some(o) if cfg.origins.allows(o, &self_origin) => Some(o),
        Some(o) => {
            let e = ApiError::new(
                ErrorType::OriginNotAllowed,
                format!("origin {o} may not use this worker"),
            );
            return error_response(&e, None);
        }
        None => None,
    };
    // The client's address as Cloudflare's edge reports it (for per-address limits).
    let client = req
        .headers()
        .get("cf-connecting-ip")?
        .filter(|v| v.len() <= 64)
        .unwrap_or_else(|| "unknown".into());
    match route {
        Route::Healthz => json_response(
            200,
            &serde_json::json!({
                "status": "ok",
                "service": "kiln-worker",
                "version": env!("CARGO_PKG_VERSION"),
                "registries": cfg.policy.len(),
                "defaultSigningKey": cfg.has_default_signing_key,
            })
            .to_string(),
            cors_origin,
        ),
        Route::KilnConfig => json_response(200, &cfg.client_config().to_string(), cors_origin),
        Route::Preflight => preflight(&req, cors_origin),
        Route::VerifyImage
        | Route::AttestVerify
        | Route::IssueCertificate
        | Route::ConvertImage
        | Route::PrepareImage
        | Route::CompleteImage => {
            // Verification (of an image or of a running enclave) is anonymous and limited per
            // client address; the conversions sign with the operator's key.
            // So is issuance: the enclave proves itself with its quote.
            let anonymous = matches!(
                route,
                Route::VerifyImage | Route::AttestVerify | Route::IssueCertificate
            );
            let what = match route {
                Route::VerifyImage => "verify-image",
                Route::AttestVerify => "attest/verify",
                Route::IssueCertificate => "certificates/issue",
                Route::ConvertImage => "convert-image",
                Route::PrepareImage => "convert-image/prepare",
                _ => "convert-image/complete",
            };
            let started = js_sys::Date::now();
            // The conversion endpoints sign with the operator's key: the caller is
            // authenticated before the body is read. Verification is anonymous.
            let caller = if anonymous {
                Ok(Caller::Anonymous)
            } else {
                let header = req.headers().get("authorization")?;
                authenticate(cfg.tokens.as_ref(), cfg.anonymous, header.as_deref())
            };
            let who = match &caller {
                Ok(c) if !anonymous => format!(" by {}", c.name()),
                _ => String::new(),
            };
            // Rate limits: per token on the conversions, per client address on /verify-image.
            let limited = match &caller {
                Err(_) => None,
                Ok(c) => {
                    let (key, limit) = match c {
                        _ if route == Route::VerifyImage => {
                            (format!("verify:{client}"), cfg.limits.verify)
                        }
                        _ if route == Route::AttestVerify => {
                            (format!("attest:{client}"), cfg.limits.verify)
                        }
                        _ if route == Route::IssueCertificate => {
                            (format!("issue:{client}"), cfg.limits.verify)
                        }
                        Caller::Token(t) => (format!("token:{}", t.name), cfg.limits.convert),
                        Caller::Anonymous => (format!("anonymous:{client}"), cfg.limits.convert),
                    };
                    crate::ratelimit::check(&env, &key, limit).await?
                }
            };
            if let Some(retry) = limited {
                console_log!("{what}{who} -> 429 RateLimited");
                return rate_limited(retry, cors_origin);
            }
            let auth_failed = caller.is_err();
            let result = match caller {
                Err(e) => Err(ApiError::from(e)),
                Ok(caller) => match read_body(&mut req).await {
                    Ok(body) => match route {
                        Route::VerifyImage => crate::api::verify_image(&cfg, &body).await,
                        Route::AttestVerify => {
                            crate::attest::verify(&body, (js_sys::Date::now() / 1000.0) as u64)
                        }
                        Route::IssueCertificate => issue_certificate(&cfg, &env, &body).await,
                        Route::ConvertImage => {
                            crate::api::convert_image(&cfg, &env, &caller, &body).await
                        }
                        Route::PrepareImage => {
                            crate::two_step::prepare(&cfg, &env, &caller, &body).await
                        }
                        _ => crate::two_step::complete(&cfg, &env, &caller, &body).await,
                    },
                    Err(e) => Err(e),
                },
            };
            // Never log the body (credentials), a token or the signatures: only the outcome
            // and the token's NAME.
            let elapsed = || format!(" ({:.0} ms)", js_sys::Date::now() - started);
            answer(result, what, &who, elapsed, auth_failed, cors_origin)
        }
        Route::ListApprovals | Route::RegisterApproval | Route::ApprovalAction { .. } => {
            let what = match route {
                Route::ListApprovals => "approvals list".to_string(),
                Route::RegisterApproval => "approvals register".to_string(),
                Route::ApprovalAction { approve, .. } => {
                    format!("approvals {}", if approve { "approve" } else { "revoke" })
                }
                _ => String::new(),
            };
            // The operator API: a token with the admin scope, never anonymous.
            let header = req.headers().get("authorization")?;
            let caller = authenticate(cfg.tokens.as_ref(), false, header.as_deref())
                .and_then(|c| c.check_admin().map(|()| c));
            let who = caller
                .as_ref()
                .map(|c| format!(" by {}", c.name()))
                .unwrap_or_default();
            let auth_failed = caller.is_err();
            let result = match caller {
                Err(e) => Err(ApiError::from(e)),
                Ok(_) => operator(&env, &mut req, &route).await,
            };
            answer(result, &what, &who, String::new, auth_failed, cors_origin)
        }
        Route::OpenApi => json_response(200, &crate::openapi::document(), cors_origin),
        Route::DebugMetrics => {
            let on = env
                .var(crate::metrics::DEBUG_METRICS)
                .map(|v| v.to_string() == "1")
                .unwrap_or(false);
            if on {
                json_response(200, &crate::metrics::body(), cors_origin)
            } else {
                error_response(
                    &ApiError::new(ErrorType::NotFound, "no such path: /debug/metrics"),
                    cors_origin,
                )
            }
        }
        Route::MethodNotAllowed(allow) => with_allow(
            error_response(
                &ApiError::new(
                    ErrorType::MethodNotAllowed,
                    format!("{method} is not allowed here; use {allow}"),
                ),
                cors_origin,
            ),
            allow,
        ),
        Route::BadProxyPath => error_response(
            &ApiError::bad_request(
                "expected /proxy/{registry-host[:port]}/v2/...: the proxy speaks only the \
                 registry protocol",
            ),
            cors_origin,
        ),
        Route::Proxy { authority, path } => {
            let key = format!("proxy:{client}");
            if let Some(retry) = crate::ratelimit::check(&env, &key, cfg.limits.proxy).await? {
                console_log!("proxy {method} {authority} -> 429 RateLimited");
                return rate_limited(retry, cors_origin);
            }
            let link_key = match cfg.link_key.0 {
                Some(k) => k,
                None => isolate_link_key()?,
            };
            let inc = Incoming {
                raw: req.inner(),
                method: &method,
                authority,
                path,
                query: url.query(),
                self_origin: &self_origin,
                link_key,
            };
            let started = js_sys::Date::now();
            // Never log headers, query strings or bodies: they may hold credentials.
            match forward(&cfg, &inc).await {
                Ok(resp) => {
                    console_log!(
                        "proxy {method} {authority}{path} -> {} ({:.0} ms)",
                        resp.status(),
                        js_sys::Date::now() - started
                    );
                    cors_headers(&resp.headers(), cors_origin);
                    Ok(resp)
                }
                Err(e) => {
                    console_log!(
                        "proxy {method} {authority}{path} -> {} {}",
                        e.status,
                        e.error_type.as_str()
                    );
                    error_response(&e, cors_origin)
                }
            }
        }
        Route::Asset => assets(&env, &url, &method).await,
    }
}

/// A secret or plain binding's text; unset and blank values are `None`.
fn binding_text(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|s| s.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Collateral fetched from the PCCS, reused by this isolate while it is fresh
/// ([`kiln_engine::attest::collateral_cache`]): one entry per platform (FMSPC) and PCK CA.
static COLLATERAL_CACHE: std::sync::LazyLock<kiln_engine::image::cache::MemoryCacheStore> =
    std::sync::LazyLock::new(Default::default);

/// `POST /certificates/issue`: the manager from its bindings, the collateral from the PCCS
/// at `KILN_PCCS_URL` when the request has none (through a transport that reaches only that
/// origin, [`crate::config::Config::pccs_policy`]; cached per isolate), the approval of the quote's MRENCLAVE
/// from the approvals store, then the engine's decision ([`crate::manager`]).
async fn issue_certificate(
    cfg: &Config,
    env: &Env,
    body: &[u8],
) -> std::result::Result<String, ApiError> {
    use crate::manager::{Manager, ManagerSettings, ALLOW_TCB, CA_CERT, CA_KEY, TEST_ROOT};
    let manager = Manager::new(&ManagerSettings {
        key: binding_text(env, CA_KEY),
        cert: binding_text(env, CA_CERT),
        allow_tcb: binding_text(env, ALLOW_TCB),
        test_root: binding_text(env, TEST_ROOT),
    })?;
    let mut input = crate::manager::parse(body)?;
    if input.collateral.is_none() {
        let quote = input.quote()?;
        let url = cfg.pccs_url.as_deref().ok_or_else(|| {
            ApiError::new(
                ErrorType::ConfigurationError,
                format!(
                    "collateral: the request has none and this worker has no PCCS to fetch it from ({})",
                    crate::config::PCCS_URL
                ),
            )
        })?;
        let transport = crate::transport::FetchTransport::new(
            cfg.pccs_policy.clone(),
            cfg.timeout_ms,
            cfg.upload_timeout_ms,
        );
        let (collateral, _) = kiln_engine::attest::collateral_cache::collateral(
            &transport,
            &*COLLATERAL_CACHE,
            url,
            &quote,
            (js_sys::Date::now() / 1000.0) as u64,
            kiln_engine::attest::collateral_cache::DEFAULT_MAX_AGE_SECS,
        )
        .await
        .map_err(|e| crate::manager::pccs_error(e, url, input.evidence_field()))?;
        input.collateral = Some(collateral);
    }
    let approval = match &input.mrenclave {
        Some(m) => {
            let found =
                crate::approvals::request(env, &crate::approvals::Op::Find(m.clone()), None)
                    .await?;
            match found.get("record").filter(|r| !r.is_null()) {
                Some(r) => Some(
                    serde_json::from_value::<kiln_engine::attest::issue::ApprovalRecord>(r.clone())
                        .map_err(|e| ApiError::internal(format!("approvals store: {e}")))?,
                ),
                None => None,
            }
        }
        None => None,
    };
    crate::manager::run(
        &manager,
        &input,
        approval.as_ref(),
        (js_sys::Date::now() / 1000.0) as u64,
    )
}

/// The operator API on the approvals store (the caller is already an admin).
async fn operator(
    env: &Env,
    req: &mut Request,
    route: &Route<'_>,
) -> std::result::Result<String, ApiError> {
    use crate::approvals::{check_id, request, Op};
    let (op, body) = match route {
        Route::ListApprovals => (Op::List, None),
        Route::RegisterApproval => (Op::Record, Some(read_body(req).await?)),
        Route::ApprovalAction { id, approve } => {
            check_id(id)?;
            let id = id.to_ascii_lowercase();
            (
                if *approve {
                    Op::Approve(id)
                } else {
                    Op::Revoke(id)
                },
                None,
            )
        }
        _ => return Err(ApiError::internal("not an operator route")),
    };
    request(env, &op, body.as_deref())
        .await
        .map(|v| v.to_string())
}

thread_local! {
    static ISOLATE_LINK_KEY: std::cell::OnceCell<[u8; 32]> = const { std::cell::OnceCell::new() };
}

/// A random key of this isolate for the proxy's signed links, when the worker has no
/// secret to derive one from (`crypto.getRandomValues`; no key, no proxy: fails closed).
fn isolate_link_key() -> Result<[u8; 32]> {
    use wasm_bindgen::JsCast;
    if let Some(k) = ISOLATE_LINK_KEY.with(|c| c.get().copied()) {
        return Ok(k);
    }
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    let get_random: js_sys::Function =
        js_sys::Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
    let arr = js_sys::Uint8Array::new_with_length(32);
    get_random.call1(&crypto, &arr)?;
    let mut key = [0u8; 32];
    arr.copy_to(&mut key);
    if key == [0u8; 32] {
        return Err(worker::Error::RustError(
            "no randomness for the link key".into(),
        ));
    }
    Ok(ISOLATE_LINK_KEY.with(|c| *c.get_or_init(|| key)))
}

/// Reads a JSON request body, enforcing [`crate::api::MAX_REQUEST_BYTES`] while reading: a
/// `Content-Length` over it is refused before a byte is read, and a streamed body is cut off
/// as soon as it passes the limit (never buffered whole first).
async fn read_body(req: &mut Request) -> std::result::Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let limit = crate::api::MAX_REQUEST_BYTES;
    let too_large = || {
        ApiError::bad_request(format!(
            "request body larger than the limit of {limit} bytes"
        ))
        .with_status(413)
    };
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    if req.inner().body().is_none() {
        return Ok(body);
    }
    let mut stream = req
        .stream()
        .map_err(|_| ApiError::bad_request("request body: unreadable"))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("request body: unreadable"))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn preflight(req: &Request, origin: Option<&str>) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    if let Some(o) = origin {
        headers.set("access-control-allow-origin", o)?;
        headers.set("access-control-allow-methods", ALLOWED_METHODS)?;
        let requested = req.headers().get("access-control-request-headers")?;
        let allow = allow_headers(requested.as_deref());
        if !allow.is_empty() {
            headers.set("access-control-allow-headers", &allow)?;
        }
        headers.set("access-control-max-age", &MAX_AGE_SECS.to_string())?;
        headers.set("access-control-expose-headers", EXPOSED_HEADERS)?;
    }
    headers.set("vary", "Origin, Access-Control-Request-Headers")?;
    let init = web_sys::ResponseInit::new();
    init.set_status(204);
    init.set_headers(&headers);
    Ok(web_sys::Response::new_with_opt_str_and_init(None, &init)?)
}

/// Serves the static assets through the `ASSETS` binding (Workers static assets on
/// Cloudflare; a disk service in bare workerd). `/dir/` serves `/dir/index.html`.
async fn assets(env: &Env, url: &worker::Url, method: &str) -> Result<web_sys::Response> {
    if !matches!(method, "GET" | "HEAD") {
        return error_response(
            &ApiError::new(ErrorType::NotFound, "no such endpoint"),
            None,
        );
    }
    let Ok(fetcher) = env.assets("ASSETS") else {
        return error_response(
            &ApiError::new(ErrorType::NotFound, "no static assets configured"),
            None,
        );
    };
    let mut target = url.clone();
    if target.path().ends_with('/') {
        let p = format!("{}index.html", target.path());
        target.set_path(&p);
    }
    let resp = fetcher.fetch(target.to_string(), None).await?;
    // Cloudflare's own `_headers` file is configuration, not content.
    if url.path() == "/_headers" || resp.status_code() == 404 {
        return error_response(
            &ApiError::new(ErrorType::NotFound, format!("{} not found", url.path())),
            None,
        );
    }
    // A bare disk service sends application/octet-stream; use the extension's type.
    let raw: web_sys::Response = resp.into();
    let headers = web_sys::Headers::new_with_headers(&raw.headers())?;
    let generic = headers
        .get("content-type")?
        .is_none_or(|ct| ct == "application/octet-stream");
    if generic {
        if let Some(ct) = content_type(target.path()) {
            headers.set("content-type", ct)?;
        }
    }
    headers.set("x-content-type-options", "nosniff")?;
    let init = web_sys::ResponseInit::new();
    init.set_status(raw.status());
    init.set_headers(&headers);
    let is_html = headers
        .get("content-type")?
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/html"));
    if is_html {
        // The app's pages get a strict CSP that allows exactly their inline scripts (hashed
        // here, so Trunk's generated loader needs no configuration).
        let mut page = worker::Response::from(raw);
        let html = page.text().await?;
        headers.set(
            "content-security-policy",
            &crate::headers::app_csp(&crate::headers::inline_scripts(&html)),
        )?;
        headers.set("referrer-policy", "no-referrer")?;
        headers.delete("content-length")?;
        let body = (method != "HEAD").then_some(html);
        return Ok(web_sys::Response::new_with_opt_str_and_init(
            body.as_deref(),
            &init,
        )?);
    }
    let body = if method == "HEAD" { None } else { raw.body() };
    Ok(web_sys::Response::new_with_opt_readable_stream_and_init(
        body.as_ref(),
        &init,
    )?)
}

fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit('.').next().unwrap_or_default();
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "css" => "text/css",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}
