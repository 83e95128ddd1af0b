//! Caller authentication of the conversion endpoints (pure, unit-tested natively).
//!
//! `POST /convert-image`, `/convert-image/prepare` and `/convert-image/complete` sign with the
//! operator's key, so they need `Authorization: Bearer <token>`. The secret binding
//! `KILN_API_TOKENS` holds one line per token:
//!
//! ```text
//! # NAME  SHA256HEX-OF-THE-TOKEN                                              [admin] [OUTPUT-PREFIX ...]
//! ci      9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  ghcr.io/acme
//! ops     60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  admin
//! ```
//!
//! The word `admin` among the fields gives the token the operator scope: the approvals API
//! (`/approvals...`, [`Caller::check_admin`]) answers only such tokens (403 for others, 401
//! without a token, never anonymous).
//!
//! Only the hex SHA-256 of a token is stored, never the token. A token with output prefixes
//! may push only to `domain/repository` names equal to a prefix or below it (`ghcr.io/acme`
//! covers `ghcr.io/acme/app`, not `ghcr.io/acme-evil/app`); without prefixes it may push to
//! any allowlisted registry. Blank lines and lines starting with `#` are ignored.
//!
//! Without `KILN_API_TOKENS` the conversion endpoints refuse every call (fail closed) unless
//! `KILN_EDGE_ANONYMOUS=1` (development only). Logs name a token's NAME, never the token.

use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorType};

/// One configured token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// Its name (what logs show).
    pub name: String,
    /// SHA-256 of the token.
    hash: [u8; 32],
    /// Output prefixes (`domain/repository...`); empty: any allowlisted output.
    pub prefixes: Vec<String>,
    /// The operator scope (the word `admin` on its line): the approvals API.
    pub admin: bool,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("prefixes", &self.prefixes)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Why `KILN_API_TOKENS` does not parse. Names the line, never quotes a hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("KILN_API_TOKENS line {line}: {why}")]
pub struct TokensError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub why: &'static str,
}

/// The parsed `KILN_API_TOKENS`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiTokens {
    entries: Vec<TokenEntry>,
}

/// Who is calling a conversion endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A configured token.
    Token(TokenEntry),
    /// Nobody (only with `KILN_EDGE_ANONYMOUS=1`).
    Anonymous,
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header, or an unknown token: 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The output is outside the token's prefixes: 403.
    #[error("outputImageName: token {name} may push only under {prefixes}")]
    OutputNotAllowed {
        /// The token's name.
        name: String,
        /// Its prefixes, comma-separated.
        prefixes: String,
    },
    /// The token lacks the operator scope: 403.
    #[error("token {0} lacks the admin scope this operator endpoint needs")]
    NotAdmin(String),
    /// No tokens configured and anonymous mode off: the endpoints are closed.
    #[error(
        "this worker has no API tokens configured (secret KILN_API_TOKENS); conversions are \
         refused (KILN_EDGE_ANONYMOUS=1 opens them, for development only)"
    )]
    NotConfigured,
}

impl From<AuthError> for ApiError {
    /// 401 `Unauthorized`, 403 `Forbidden`, or 503 `ConfigurationError` (no tokens).
    fn from(e: AuthError) -> Self {
        let reason = e.to_string();
        match e {
            AuthError::Unauthorized(_) => ApiError::new(ErrorType::Unauthorized, reason),
            AuthError::OutputNotAllowed { .. } | AuthError::NotAdmin(_) => {
                ApiError::new(ErrorType::Forbidden, reason)
            }
            AuthError::NotConfigured => {
                ApiError::new(ErrorType::ConfigurationError, reason).with_status(503)
            }
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Constant-time equality of two hashes.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ApiTokens {
    /// Parses the binding's text.
    pub fn parse(text: &str) -> Result<Self, TokensError> {
        let mut entries: Vec<TokenEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut parts = l.split_whitespace();
            let name = parts.next().unwrap_or_default();
            if !valid_name(name) {
                return Err(TokensError {
                    line,
                    why: "NAME must be 1-64 characters of A-Z a-z 0-9 . _ - @",
                });
            }
            let hex_text = parts.next().ok_or(TokensError {
                line,
                why: "expected NAME SHA256HEX [OUTPUT-PREFIX ...]",
            })?;
            let mut hash = [0u8; 32];
            if hex_text.len() != 64 || hex::decode_to_slice(hex_text, &mut hash).is_err() {
                return Err(TokensError {
                    line,
                    why: "the second field must be the token's SHA-256 as 64 hex digits \
                          (the raw token is never stored)",
                });
            }
            let mut prefixes = Vec::new();
            let mut admin = false;
            for p in parts {
                if p == "admin" {
                    admin = true;
                    continue;
                }
                let p = p.trim_end_matches('/');
                if p.is_empty() || !p.contains('/') && !p.contains('.') && !p.contains(':') {
                    return Err(TokensError {
                        line,
                        why: "an OUTPUT-PREFIX is registry[/repository...], e.g. ghcr.io/acme",
                    });
                }
                prefixes.push(p.to_string());
            }
            if entries.iter().any(|e| e.name == name) {
                return Err(TokensError {
                    line,
                    why: "NAME used twice",
                });
            }
            entries.push(TokenEntry {
                name: name.to_string(),
                hash,
                prefixes,
                admin,
            });
        }
        Ok(ApiTokens { entries })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of a presented token (compared by SHA-256 in constant time, every entry).
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let h: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if ct_eq(&e.hash, &h) && found.is_none() {
                found = Some(e);
            }
        }
        found
    }
}

/// The token of an `Authorization` header value (`Bearer <token>`, scheme case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Authenticates a conversion call from its `Authorization` header. `tokens` is `None` when
/// `KILN_API_TOKENS` is unset; then only `anonymous` lets the call through.
pub fn authenticate(
    tokens: Option<&ApiTokens>,
    anonymous: bool,
    header: Option<&str>,
) -> Result<Caller, AuthError> {
    let Some(tokens) = tokens.filter(|t| !t.is_empty()) else {
        return if anonymous {
            Ok(Caller::Anonymous)
        } else {
            Err(AuthError::NotConfigured)
        };
    };
    let Some(h) = header else {
        return Err(AuthError::Unauthorized(
            "this endpoint needs Authorization: Bearer <token>",
        ));
    };
    let token = bearer(h).ok_or(AuthError::Unauthorized(
        "Authorization must be Bearer <token>",
    ))?;
    tokens
        .find(token)
        .cloned()
        .map(Caller::Token)
        .ok_or(AuthError::Unauthorized("unknown API token"))
}

impl Caller {
    /// The name logs show: the token's NAME, or `anonymous`.
    pub fn name(&self) -> &str {
        match self {
            Caller::Token(t) => &t.name,
            Caller::Anonymous => "anonymous",
        }
    }

    /// Checks that the caller may use the operator API: a token with the `admin` scope.
    /// Anonymous callers (development mode) are refused too: approvals are never open.
    pub fn check_admin(&self) -> Result<(), AuthError> {
        match self {
            Caller::Token(t) if t.admin => Ok(()),
            Caller::Token(t) => Err(AuthError::NotAdmin(t.name.clone())),
            Caller::Anonymous => Err(AuthError::Unauthorized(
                "the operator API needs Authorization: Bearer <token> of a token with the admin scope",
            )),
        }
    }

    /// Checks an output image (its normalised `domain/repository`) against the token's
    /// prefixes.
    pub fn check_output(&self, domain_repository: &str) -> Result<(), AuthError> {
        let Caller::Token(t) = self else {
            return Ok(());
        };
        if t.prefixes.is_empty() {
            return Ok(());
        }
        let under = |p: &String| {
            domain_repository == p
                || domain_repository
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if t.prefixes.iter().any(under) {
            Ok(())
        } else {
            Err(AuthError::OutputNotAllowed {
                name: t.name.clone(),
                prefixes: t.prefixes.join(", "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status and `errorType` a refusal is answered with.
    fn status(e: AuthError) -> (u16, &'static str) {
        let e = ApiError::from(e);
        (e.status, e.error_type.as_str())
    }

    fn sha(t: &str) -> String {
        hex::encode(Sha256::digest(t.as_bytes()))
    }

    fn tokens() -> ApiTokens {
        ApiTokens::parse(&format!(
            "# comment\n\n ci {} ghcr.io/acme 127.0.0.1:5000/out/\nadmin {}\nops {} admin\n",
            sha("tok-ci"),
            sha("tok-admin"),
            sha("tok-ops")
        ))
        .unwrap()
    }

    #[test]
    fn parses_and_finds() {
        let t = tokens();
        assert_eq!(t.len(), 3);
        assert_eq!(t.find("tok-ci").unwrap().name, "ci");
        assert_eq!(
            t.find("tok-ci").unwrap().prefixes,
            ["ghcr.io/acme", "127.0.0.1:5000/out"]
        );
        assert_eq!(t.find("tok-admin").unwrap().name, "admin");
        assert!(t.find("tok-other").is_none());
        // The hash itself is not a token.
        assert!(t.find(&sha("tok-ci")).is_none());
        // Debug never shows the hash.
        assert!(!format!("{t:?}").contains(&sha("tok-ci")));
    }

    #[test]
    fn bad_lines_name_the_line_not_the_value() {
        for (text, line) in [
            ("ci\n", 1),
            ("\nci abc\n", 2),
            (&format!("ci {}\nci {}", sha("a"), sha("b")) as &str, 2),
            (&format!("c/i {}", sha("a")), 1),
            (&format!("ci {} nohost", sha("a")), 1),
            ("ci tok-ci-raw-token-not-a-hash", 1),
        ] {
            let e = ApiTokens::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}");
            assert!(e.to_string().contains("KILN_API_TOKENS line"));
            assert!(!e.to_string().contains("tok-ci-raw"), "{e}");
        }
    }

    #[test]
    fn authenticate_fails_closed() {
        let t = tokens();
        assert_eq!(
            authenticate(None, false, Some("Bearer tok-ci")),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(authenticate(None, true, None), Ok(Caller::Anonymous));
        let empty = ApiTokens::parse("# none\n").unwrap();
        assert_eq!(
            authenticate(Some(&empty), false, None),
            Err(AuthError::NotConfigured)
        );
        for h in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic dG9rLWNpOg=="),
            Some("Bearer tok-wrong"),
            Some("tok-ci"),
        ] {
            let e = authenticate(Some(&t), true, h).unwrap_err();
            assert_eq!(status(e), (401, "Unauthorized"), "{h:?}");
        }
        let c = authenticate(Some(&t), false, Some("bearer  tok-ci ")).unwrap();
        assert_eq!(c.name(), "ci");
        assert_eq!(
            status(AuthError::NotConfigured),
            (503, "ConfigurationError")
        );
    }

    #[test]
    fn output_prefixes() {
        let t = tokens();
        let ci = authenticate(Some(&t), false, Some("Bearer tok-ci")).unwrap();
        assert!(ci.check_output("ghcr.io/acme").is_ok());
        assert!(ci.check_output("ghcr.io/acme/app").is_ok());
        assert!(ci.check_output("127.0.0.1:5000/out/x").is_ok());
        for bad in [
            "ghcr.io/acme-evil/app",
            "ghcr.io/other/app",
            "quay.io/acme/app",
            "127.0.0.1:5000/outside",
        ] {
            let e = ci.check_output(bad).unwrap_err();
            assert!(e.to_string().contains("ghcr.io/acme"), "{e}");
            assert_eq!(status(e), (403, "Forbidden"));
        }
        let admin = authenticate(Some(&t), false, Some("Bearer tok-admin")).unwrap();
        assert!(admin.check_output("quay.io/anything/at/all").is_ok());
        assert!(Caller::Anonymous.check_output("quay.io/x").is_ok());
    }

    #[test]
    fn admin_scope() {
        let t = tokens();
        let ops = authenticate(Some(&t), false, Some("Bearer tok-ops")).unwrap();
        assert!(ops.check_admin().is_ok());
        // `admin` is a scope word, not an output prefix: ops may push anywhere.
        assert!(ops.check_output("quay.io/x").is_ok());
        // A token named admin without the scope word is not an operator.
        let named = authenticate(Some(&t), false, Some("Bearer tok-admin")).unwrap();
        let e = named.check_admin().unwrap_err();
        assert!(e.to_string().contains("admin scope"), "{e}");
        assert_eq!(status(e), (403, "Forbidden"));
        let ci = authenticate(Some(&t), false, Some("Bearer tok-ci")).unwrap();
        assert_eq!(status(ci.check_admin().unwrap_err()), (403, "Forbidden"));
        assert_eq!(
            status(Caller::Anonymous.check_admin().unwrap_err()),
            (401, "Unauthorized")
        );
    }
}
