//! The fetch handler (wasm only): routing, CORS, configuration, the edge API, the OpenAPI
//! document and the static assets.

use crate::config::Config;
use crate::cors::{allow_headers, ALLOWED_METHODS, EXPOSED_HEADERS, MAX_AGE_SECS};
use crate::error::ApiError;
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

fn json_response(status: u16, body: &str, origin: Option<&str>) -> Result<web_sys::Response> {
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "application/json")?;
    headers.set("cache-control", "no-store")?;
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
    json_response(e.status, &e.body(), origin)
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
        Ok(c) => c,
        Err(e) => {
            console_log!("configuration error: {e}");
            return error_response(
                &ApiError::new(500, "ConfigurationError", e.to_string()),
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
                403,
                "OriginNotAllowed",
                format!("origin {o} may not use this worker"),
            );
            return error_response(&e, None);
        }
        None => None,
    };
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
        Route::VerifyImage | Route::ConvertImage | Route::PrepareImage | Route::CompleteImage => {
            let what = match route {
                Route::VerifyImage => "verify-image",
                Route::ConvertImage => "convert-image",
                Route::PrepareImage => "convert-image/prepare",
                _ => "convert-image/complete",
            };
            let started = js_sys::Date::now();
            let result = match read_body(&mut req).await {
                Ok(body) => match route {
                    Route::VerifyImage => crate::api::verify_image(&cfg, &body).await,
                    Route::ConvertImage => crate::api::convert_image(&cfg, &env, &body).await,
                    Route::PrepareImage => crate::two_step::prepare(&cfg, &env, &body).await,
                    _ => crate::two_step::complete(&cfg, &env, &body).await,
                },
                Err(e) => Err(e),
            };
            // Never log the body (credentials), a token or the signatures: only the outcome.
            match result {
                Ok(json) => {
                    console_log!("{what} -> 200 ({:.0} ms)", js_sys::Date::now() - started);
                    json_response(200, &json, cors_origin)
                }
                Err(e) => {
                    console_log!("{what} -> {} {}", e.status, e.error_type);
                    error_response(&e, cors_origin)
                }
            }
        }
        Route::OpenApi => json_response(200, crate::openapi::DOCUMENT, cors_origin),
        Route::MethodNotAllowed(allow) => with_allow(
            error_response(
                &ApiError::new(
                    405,
                    "MethodNotAllowed",
                    format!("{method} is not allowed here; use {allow}"),
                ),
                cors_origin,
            ),
            allow,
        ),
        Route::BadProxyPath => error_response(
            &ApiError::new(
                400,
                "BadRequest",
                "expected /proxy/{registry-host[:port]}/v2/...",
            ),
            cors_origin,
        ),
        Route::Proxy { authority, path } => {
            let inc = Incoming {
                raw: req.inner(),
                method: &method,
                authority,
                path,
                query: url.query(),
                self_origin: &self_origin,
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
                        e.error_type
                    );
                    error_response(&e, cors_origin)
                }
            }
        }
        Route::Asset => assets(&env, &url, &method).await,
    }
}

async fn read_body(req: &mut Request) -> std::result::Result<Vec<u8>, ApiError> {
    let body = req
        .bytes()
        .await
        .map_err(|e| ApiError::new(400, "BadRequest", format!("request body: {e}")))?;
    if body.len() > crate::api::MAX_REQUEST_BYTES {
        return Err(ApiError::new(
            413,
            "BadRequest",
            format!(
                "request body larger than {} bytes",
                crate::api::MAX_REQUEST_BYTES
            ),
        ));
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
        return error_response(&ApiError::new(404, "NotFound", "no such endpoint"), None);
    }
    let Ok(fetcher) = env.assets("ASSETS") else {
        return error_response(
            &ApiError::new(404, "NotFound", "no static assets configured"),
            None,
        );
    };
    let mut target = url.clone();
    if target.path().ends_with('/') {
        let p = format!("{}index.html", target.path());
        target.set_path(&p);
    }
    let resp = fetcher.fetch(target.to_string(), None).await?;
    if resp.status_code() == 404 {
        return error_response(
            &ApiError::new(404, "NotFound", format!("{} not found", url.path())),
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
    let init = web_sys::ResponseInit::new();
    init.set_status(raw.status());
    init.set_headers(&headers);
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
