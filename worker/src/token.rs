//! The offline two-step's token, and the byte decoding of its API (pure, unit-tested
//! natively).
//!
//! A token is `base64url(envelope JSON) "." base64url(HMAC-SHA256(secret, "kiln-two-step-v1." ||
//! first part))`, both parts unpadded, where the envelope is `{"v": 1, "exp": <unix seconds>,
//! "state": <the engine's PreparedState>}`. The worker signs it with the secret
//! `KILN_TWO_STEP_SECRET`; the MAC is checked in constant time before anything of the
//! envelope is read. The state carries no credential, so the token is not encrypted.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// How long a token stays valid (seconds).
pub const TOKEN_TTL_SECS: i64 = 3600;

/// Shortest accepted `KILN_TWO_STEP_SECRET` (bytes).
pub const MIN_SECRET_LEN: usize = 16;

/// Envelope layout version.
const VERSION: u64 = 1;

/// Domain separation of the MAC.
const MAC_CONTEXT: &[u8] = b"kiln-two-step-v1.";

/// Why a token is refused. Never quotes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not `payload.mac`, not base64url, or not the envelope JSON.
    #[error("token: malformed ({0})")]
    Malformed(&'static str),
    /// The MAC does not match: forged, altered, or made with another secret.
    #[error("token: not issued by this worker (authentication failed)")]
    Forged,
    /// Past its expiry.
    #[error("token: expired at {expired_at} (now {now}); prepare again")]
    Expired {
        /// Its `exp`.
        expired_at: i64,
        /// The worker's clock.
        now: i64,
    },
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], payload: &str) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(MAC_CONTEXT);
    m.update(payload.as_bytes());
    m
}

/// Seals `state` into a token valid until `now + ttl`; returns the token and its expiry.
pub fn seal(secret: &[u8], state: &Value, now: i64, ttl: i64) -> (String, i64) {
    let exp = now.saturating_add(ttl);
    let envelope = json!({ "v": VERSION, "exp": exp, "state": state });
    let payload = URL_SAFE_NO_PAD.encode(envelope.to_string());
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, &payload).finalize().into_bytes());
    (format!("{payload}.{tag}"), exp)
}

/// Opens a token: checks the MAC (constant time), then the version and the expiry, and
/// returns the state.
pub fn open(secret: &[u8], token: &str, now: i64) -> Result<Value, TokenError> {
    let (payload, tag) = token
        .trim()
        .split_once('.')
        .ok_or(TokenError::Malformed("expected two parts separated by '.'"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed("MAC is not base64url"))?;
    mac(secret, payload)
        .verify_slice(&tag)
        .map_err(|_| TokenError::Forged)?;
    let raw = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let mut envelope: Value =
        serde_json::from_slice(&raw).map_err(|_| TokenError::Malformed("payload is not JSON"))?;
    if envelope.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return Err(TokenError::Malformed("unknown version"));
    }
    let exp = envelope
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenError::Malformed("no expiry"))?;
    if now >= exp {
        return Err(TokenError::Expired {
            expired_at: exp,
            now,
        });
    }
    envelope
        .get_mut("state")
        .map(Value::take)
        .ok_or(TokenError::Malformed("no state"))
}

/// Decodes bytes given as hex (exactly `2 * hex_len` hex digits) or base64 (standard or
/// URL-safe, padded or not). `field` names the request field in the error.
pub fn decode_bytes(field: &str, text: &str, hex_len: usize) -> Result<Vec<u8>, String> {
    let t = text.trim();
    if t.len() == 2 * hex_len && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(t).map_err(|e| format!("{field}: hex: {e}"));
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(b) = engine.decode(t) {
            return Ok(b);
        }
    }
    Err(format!(
        "{field}: neither {} hex digits nor base64",
        2 * hex_len
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-0123456789";

    #[test]
    fn round_trip() {
        let state = json!({"inputDigest": "sha256:00", "n": 1});
        let (t, exp) = seal(SECRET, &state, 1000, TOKEN_TTL_SECS);
        assert_eq!(exp, 1000 + TOKEN_TTL_SECS);
        assert!(!t.contains('='));
        assert_eq!(open(SECRET, &t, 1001).unwrap(), state);
    }

    #[test]
    fn expired() {
        let (t, exp) = seal(SECRET, &json!({}), 1000, 10);
        assert_eq!(
            open(SECRET, &t, 1010),
            Err(TokenError::Expired {
                expired_at: exp,
                now: 1010
            })
        );
    }

    #[test]
    fn forged_or_other_secret() {
        let (t, _) = seal(SECRET, &json!({"a": 1}), 1000, 10);
        assert_eq!(
            open(b"another-secret-xxxxxx", &t, 1001),
            Err(TokenError::Forged)
        );
        // Change the payload, keep the MAC.
        let (p, m) = t.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD
            .encode(json!({"v": 1, "exp": 99_999_999_999_i64, "state": {"a": 2}}).to_string());
        assert_ne!(other, p);
        assert_eq!(
            open(SECRET, &format!("{other}.{m}"), 1001),
            Err(TokenError::Forged)
        );
        // Truncated MAC.
        assert_eq!(
            open(SECRET, &format!("{p}.{}", &m[..8]), 1001),
            Err(TokenError::Forged)
        );
        assert!(matches!(
            open(SECRET, "nodot", 1),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            open(SECRET, "a.!!!", 1),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn bytes_hex_or_base64() {
        let b = vec![0xab_u8; 4];
        assert_eq!(decode_bytes("f", "abababab", 4).unwrap(), b);
        assert_eq!(decode_bytes("f", &STANDARD.encode(&b), 4).unwrap(), b);
        assert_eq!(
            decode_bytes("f", &URL_SAFE_NO_PAD.encode(&b), 4).unwrap(),
            b
        );
        let e = decode_bytes("signatures.sgx1", "not base64 !", 384).unwrap_err();
        assert!(e.starts_with("signatures.sgx1:"), "{e}");
    }
}
