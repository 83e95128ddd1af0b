//! A minimal Docker registry token server (the `auth.token` realm): GET `/token` with
//! `service` and `scope` parameters, optional Basic credentials; answers an RS256 JWT
//! whose header carries the issuer certificate as `x5c`, which the registry checks
//! against its `rootcertbundle`.
//!
//! Also the OAuth2 form (`POST /token`, distribution's token spec): `grant_type=password`
//! with `username`/`password`, or `grant_type=refresh_token` with the server's identity
//! token ([`TokenServer::identity_token`]); scopes space-separated in `scope`.
//!
//! Policy ([`Grants`]): by default right credentials get every action asked for and no
//! credentials get `pull` only. [`Grants::HubLike`] grants as Docker Hub's token server
//! does: each user pushes to the repositories under its name, anyone pulls a public one
//! and only the owner a private one, and an action outside that is silently left out of
//! the token (a 200, never a
//! refusal), so the registry answers the request with 401 `insufficient_scope`. Wrong
//! credentials get 401 (400 `invalid_grant` on POST). Every request is recorded for
//! assertions.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

use crate::certs::TokenIssuer;
use crate::loopback_http::{read_request, respond_json, LoopbackServer};
use crate::HarnessError;

/// One token request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The authenticated user, if credentials were sent and right.
    pub user: Option<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// The `scope` parameters, in order.
    pub scopes: Vec<String>,
    /// False when the credentials were wrong (401).
    pub granted: bool,
    /// `GET` or `POST`.
    pub method: String,
}

/// Which actions a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grants {
    /// Every action asked for to a user; `pull` to anonymous callers.
    All,
    /// Docker Hub's way: a user may push to `<user>/*`; anyone may pull a public
    /// repository, and only its owner a private one (`<user>/private*`); anything else
    /// is dropped from the token without an error.
    HubLike,
}

impl Grants {
    /// Whether `user` gets `action` on repository `name`.
    fn allows(self, user: Option<&str>, name: &str, action: &str) -> bool {
        match self {
            Grants::All => user.is_some() || action == "pull",
            Grants::HubLike => {
                let (owner, repo) = name.split_once('/').unwrap_or(("", name));
                let owns = user.is_some_and(|u| u == owner);
                match action {
                    "push" => owns,
                    "pull" => owns || !repo.starts_with("private"),
                    _ => false,
                }
            }
        }
    }
}

struct Shared {
    issuer: TokenIssuer,
    key: RsaKeyPair,
    /// The accounts (name, password); the first is the one identity tokens belong to.
    users: Vec<(String, String)>,
    grants: Grants,
    requests: Mutex<Vec<TokenRequest>>,
}

impl Shared {
    /// The user whose password is `password`, if `username` is known.
    fn check(&self, username: &str, password: &str) -> Option<String> {
        self.users
            .iter()
            .find(|(u, p)| u == username && p == password)
            .map(|(u, _)| u.clone())
    }
}

/// A running token server on 127.0.0.1; stopped on drop.
pub struct TokenServer {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl TokenServer {
    /// Starts a server that signs as `issuer` and accepts `username`/`password`
    /// ([`Grants::All`]).
    pub fn start(
        issuer: TokenIssuer,
        username: &str,
        password: &str,
    ) -> Result<Self, HarnessError> {
        Self::start_with(issuer, &[(username, password)], Grants::All)
    }

    /// Starts a server for several accounts (the first owns the identity token) with
    /// the given grant policy.
    pub fn start_with(
        issuer: TokenIssuer,
        users: &[(&str, &str)],
        grants: Grants,
    ) -> Result<Self, HarnessError> {
        let key = RsaKeyPair::from_pkcs8(&issuer.key_pkcs8_der)
            .map_err(|e| format!("token signing key: {e}"))?;
        if users.is_empty() {
            return Err("a token server needs at least one account".into());
        }
        let shared = Arc::new(Shared {
            issuer,
            key,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            grants,
            requests: Mutex::new(Vec::new()),
        });
        let s2 = shared.clone();
        let server = LoopbackServer::start(move |conn| {
            let _ = handle(conn, &s2);
        })?;
        Ok(TokenServer { server, shared })
    }

    /// The realm URL for the registry's config.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.server.port())
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer.issuer
    }

    /// The issuer certificate (PEM), for the registry's `rootcertbundle`.
    pub fn cert_pem(&self) -> &str {
        &self.shared.issuer.cert_pem
    }

    /// The identity (refresh) token this server accepts with `grant_type=refresh_token`.
    pub fn identity_token(&self) -> String {
        identity_token_of(&self.shared)
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

fn percent_decode(s: &str) -> String {
    let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(h), Some(l)) if hexval(h).is_some() && hexval(l).is_some() => {
                out.push(hexval(h).unwrap_or(0) * 16 + hexval(l).unwrap_or(0));
                i += 2;
            }
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn identity_token_of(s: &Shared) -> String {
    let (user, password) = s
        .users
        .first()
        .map(|(u, p)| (u.as_str(), p.len()))
        .unwrap_or(("", 0));
    format!("kiln-refresh-{user}-{password}")
}

fn handle(mut conn: TcpStream, s: &Shared) -> std::io::Result<()> {
    let Some(req) = read_request(&mut conn, 64 * 1024)? else {
        return Ok(());
    };
    let method = req.method;
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    if path != "/token" || !matches!(method.as_str(), "GET" | "POST") {
        return respond_json(&mut conn, 404, b"{}");
    }
    if method == "POST" {
        return handle_post(conn, s, &String::from_utf8_lossy(&req.body));
    }
    let mut service = None;
    let mut scopes = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "service" => service = Some(percent_decode(v)),
            "scope" => scopes.push(percent_decode(v)),
            _ => {}
        }
    }
    let mut user = None;
    if let Some(a) = req.authorization {
        let known = a
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|raw| {
                let raw = String::from_utf8(raw).ok()?;
                let (u, p) = raw.split_once(':')?;
                s.check(u, p)
            });
        let Some(known) = known else {
            if let Ok(mut r) = s.requests.lock() {
                r.push(TokenRequest {
                    user: None,
                    service,
                    scopes,
                    granted: false,
                    method,
                });
            }
            return respond_json(&mut conn, 401, br#"{"details":"bad credentials"}"#);
        };
        user = Some(known);
    }
    grant(conn, s, user, service, scopes, method)
}

/// `POST /token`: the OAuth2 password or refresh-token grant.
fn handle_post(mut conn: TcpStream, s: &Shared, form: &str) -> std::io::Result<()> {
    let mut f: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for pair in form.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        f.insert(percent_decode(k), percent_decode(v));
    }
    let get = |k: &str| f.get(k).map(String::as_str);
    let user = match get("grant_type") {
        Some("password") => s.check(get("username").unwrap_or(""), get("password").unwrap_or("")),
        Some("refresh_token") if get("refresh_token") == Some(identity_token_of(s).as_str()) => {
            s.users.first().map(|(u, _)| u.clone())
        }
        _ => None,
    };
    let service = get("service").map(str::to_string);
    let scopes: Vec<String> = get("scope")
        .map(|sc| {
            sc.split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let user = user.filter(|_| get("client_id").is_some_and(|c| !c.is_empty()));
    let Some(user) = user else {
        if let Ok(mut r) = s.requests.lock() {
            r.push(TokenRequest {
                user: None,
                service,
                scopes,
                granted: false,
                method: "POST".into(),
            });
        }
        return respond_json(&mut conn, 400, br#"{"error":"invalid_grant"}"#);
    };
    grant(conn, s, Some(user), service, scopes, "POST".into())
}

/// Answers a token for `scopes`, carrying the actions [`Grants`] allows.
fn grant(
    mut conn: TcpStream,
    s: &Shared,
    user: Option<String>,
    service: Option<String>,
    scopes: Vec<String>,
    method: String,
) -> std::io::Result<()> {
    let mut access = Vec::new();
    for sc in &scopes {
        let Some((typ, rest)) = sc.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let acts: Vec<&str> = actions
            .split(',')
            .filter(|a| s.grants.allows(user.as_deref(), name, a))
            .collect();
        access.push(serde_json::json!({"type": typ, "name": name, "actions": acts}));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "iss": s.issuer.issuer,
        "sub": user.clone().unwrap_or_default(),
        "aud": service.clone().unwrap_or_default(),
        "exp": now + 300,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("{now}-{}", scopes.len()),
        "access": access,
    });
    let token = match sign_jwt(s, &claims) {
        Ok(t) => t,
        Err(_) => return respond_json(&mut conn, 500, b"{}"),
    };
    if let Ok(mut r) = s.requests.lock() {
        r.push(TokenRequest {
            user,
            service,
            scopes,
            granted: true,
            method,
        });
    }
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    respond_json(&mut conn, 200, body.to_string().as_bytes())
}

fn sign_jwt(s: &Shared, claims: &serde_json::Value) -> Result<String, HarnessError> {
    let b64u = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&s.issuer.cert_der)],
    });
    let signing_input = format!(
        "{}.{}",
        b64u(header.to_string().as_bytes()),
        b64u(claims.to_string().as_bytes())
    );
    let rng = ring::rand::SystemRandom::new();
    let mut sig = vec![0u8; s.key.public().modulus_len()];
    s.key
        .sign(&RSA_PKCS1_SHA256, &rng, signing_input.as_bytes(), &mut sig)
        .map_err(|e| format!("sign: {e}"))?;
    Ok(format!("{signing_input}.{}", b64u(&sig)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_values() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull%2Cpush"),
            "repository:a/b:pull,push"
        );
        assert_eq!(percent_decode("a+b%"), "a b%");
    }
}
