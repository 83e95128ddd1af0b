//! Registry authentication: credentials, `WWW-Authenticate` challenges, token scopes.
//!
//! The client learns a registry's scheme from its first 401: `Basic` (send the
//! credentials) or `Bearer` (ask the challenge's realm for a token carrying the scopes
//! the operation needs, with the credentials as Basic auth when there are any).
//! Tokens are cached per scope set; a 401 with a cached token fetches a fresh one.

use std::fmt;

use base64::Engine as _;

/// The user name Docker uses to mark an identity token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// A username and password (or identity token). The password never appears in
/// `Debug` output, errors or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password or token. Kept out of `Debug`.
    pub password: String,
}

impl Credentials {
    /// New credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }

    /// An identity (refresh) token, as `docker login` stores it (`identitytoken`) or a
    /// credential helper returns it: Docker's convention, user name `<token>`. A token
    /// server is asked with the OAuth2 `refresh_token` grant (POST), never with Basic.
    pub fn identity_token(token: impl Into<String>) -> Self {
        Credentials::new(IDENTITY_TOKEN_USER, token)
    }

    /// True for an identity token (see [`Credentials::identity_token`]).
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }

    /// The `Authorization: Basic ...` header value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic {
        /// The realm, if given.
        realm: Option<String>,
    },
    /// A token server.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry asked for, if any.
        scope: Option<String>,
        /// The registry's `error` (`invalid_token`, `insufficient_scope`), if any.
        error: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` header value (`Bearer realm="...",service="..."`).
/// Unknown schemes give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    let params = parse_auth_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic {
            realm: get("realm"),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
            error: get("error"),
        })
    } else {
        None
    }
}

/// `k=v, k="quoted, with \"escapes\""` → pairs. Malformed tails (an unterminated
/// quoted-string included) are dropped.
fn parse_auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            break;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            // An unterminated quoted-string is malformed: it and the rest are dropped
            // (as the worker's proxy reads it, so both see the same challenge).
            if !closed {
                break;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name, value));
    }
    out
}

/// A token scope such as `repository:library/busybox:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(pub String);

impl Scope {
    /// `repository:NAME:pull`.
    pub fn pull(repository: &str) -> Self {
        Scope(format!("repository:{repository}:pull"))
    }

    /// `repository:NAME:pull,push`.
    pub fn push(repository: &str) -> Self {
        Scope(format!("repository:{repository}:pull,push"))
    }

    /// No scope, for the bare `/v2/` ping (no repository).
    pub fn none() -> Vec<Scope> {
        Vec::new()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cache key for a set of scopes (order-independent).
pub fn scope_key(scopes: &[Scope]) -> String {
    let mut v: Vec<&str> = scopes.iter().map(|s| s.0.as_str()).collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

/// A token server's answer (`token` or `access_token`).
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    /// The token (Docker).
    pub token: Option<String>,
    /// The token (OAuth2).
    pub access_token: Option<String>,
}

impl TokenResponse {
    /// The token, whichever field carries it.
    pub fn into_token(self) -> Option<String> {
        self.token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenResponse(<redacted>)")
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The OAuth2 client id kiln sends in POST token requests.
pub const OAUTH_CLIENT_ID: &str = "kiln";

/// The form body of an OAuth2 token request (distribution's `POST /token`):
/// `grant_type=refresh_token` for an identity token, else `grant_type=password`;
/// `service`, the scopes space-separated in one `scope`, and `client_id`.
pub fn token_form(credentials: &Credentials, service: Option<&str>, scopes: &[Scope]) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if credentials.is_identity_token() {
        pairs.push(("grant_type", "refresh_token".into()));
        pairs.push(("refresh_token", credentials.password.clone()));
    } else {
        pairs.push(("grant_type", "password".into()));
        pairs.push(("username", credentials.username.clone()));
        pairs.push(("password", credentials.password.clone()));
    }
    if let Some(s) = service {
        pairs.push(("service", s.to_string()));
    }
    let mut seen: Vec<&str> = Vec::new();
    for s in scopes {
        if !seen.contains(&s.0.as_str()) {
            seen.push(&s.0);
        }
    }
    if !seen.is_empty() {
        pairs.push(("scope", seen.join(" ")));
    }
    pairs.push(("client_id", OAUTH_CLIENT_ID.into()));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The token request URL: `REALM?service=S&scope=A&scope=B`.
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[Scope]) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(s) = service {
        url.push(sep);
        url.push_str("service=");
        url.push_str(&query_escape(s));
        sep = '&';
    }
    let mut seen: Vec<&str> = Vec::new();
    for s in scopes {
        if seen.contains(&s.0.as_str()) {
            continue;
        }
        seen.push(&s.0);
        url.push(sep);
        url.push_str("scope=");
        url.push_str(&query_escape(&s.0));
        sep = '&';
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unterminated_quote_drops_the_parameter() {
        // Found by the registry_links fuzz target: the engine took the rest of the
        // header as the realm where the worker's proxy saw no realm to rewrite.
        assert_eq!(
            parse_challenge(r#"Bearer realm="https:/a/x"#),
            None,
            "no realm, no bearer challenge"
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://a/t",service="s"#),
            Some(Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None,
                scope: None,
                error: None,
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="r"#),
            Some(Challenge::Basic { realm: None })
        );
    }

    #[test]
    fn password_never_in_debug() {
        let c = Credentials::new("alice", "s3cr3t-pw");
        let d = format!("{c:?}");
        assert!(d.contains("alice"));
        assert!(!d.contains("s3cr3t-pw"), "{d}");
        assert_eq!(c.basic_header(), "Basic YWxpY2U6czNjcjN0LXB3");
    }

    #[test]
    fn parses_bearer() {
        let h = r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("repository:a/b:pull,push".into()),
                error: None,
            })
        );
        // Docker Hub and distribution name what the token lacked.
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:u/app:pull,push",error="insufficient_scope""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:u/app:pull,push".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=http://x/t , service = "s""#),
            Some(Challenge::Bearer {
                realm: "http://x/t".into(),
                service: Some("s".into()),
                scope: None,
                error: None,
            })
        );
        assert_eq!(
            parse_challenge("Bearer service=\"s\""),
            None,
            "realm required"
        );
    }

    #[test]
    fn parses_basic_and_unknown() {
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic {
                realm: Some("basic-realm".into())
            })
        );
        assert_eq!(
            parse_challenge("Basic"),
            Some(Challenge::Basic { realm: None })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(
            parse_challenge(r#"Basic realm="a \"q\" b""#),
            Some(Challenge::Basic {
                realm: Some("a \"q\" b".into())
            })
        );
    }

    #[test]
    fn oauth_forms() {
        let scopes = [Scope::pull("a/b"), Scope::push("c"), Scope::pull("a/b")];
        let f = token_form(&Credentials::identity_token("r t"), Some("reg"), &scopes);
        assert_eq!(
            f,
            "grant_type=refresh_token&refresh_token=r%20t&service=reg\
             &scope=repository%3Aa%2Fb%3Apull%20repository%3Ac%3Apull%2Cpush&client_id=kiln"
        );
        let f = token_form(&Credentials::new("u", "p&w"), None, &[]);
        assert_eq!(
            f,
            "grant_type=password&username=u&password=p%26w&client_id=kiln"
        );
        assert!(Credentials::identity_token("x").is_identity_token());
        assert!(!Credentials::new("u", "x").is_identity_token());
    }

    #[test]
    fn token_urls() {
        let u = token_url(
            "http://127.0.0.1:1/token",
            Some("reg"),
            &[Scope::push("a/b"), Scope::pull("c"), Scope::pull("c")],
        );
        assert_eq!(
            u,
            "http://127.0.0.1:1/token?service=reg&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository%3Ac%3Apull"
        );
        assert_eq!(token_url("http://x/t?a=1", None, &[]), "http://x/t?a=1");
        assert_eq!(
            scope_key(&[Scope::pull("b"), Scope::pull("a")]),
            scope_key(&[Scope::pull("a"), Scope::pull("b")])
        );
    }

    #[test]
    fn token_response_fields() {
        let t: Result<TokenResponse, _> = serde_json::from_str(r#"{"access_token":"x"}"#);
        assert_eq!(t.ok().and_then(|t| t.into_token()), Some("x".into()));
        let t: Result<TokenResponse, _> =
            serde_json::from_str(r#"{"token":"","access_token":"y"}"#);
        assert_eq!(t.ok().and_then(|t| t.into_token()), Some("y".into()));
    }
}
