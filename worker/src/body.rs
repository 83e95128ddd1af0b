//! Parsing of the JSON bodies the worker accepts, with errors that never quote the input
//! (pure, unit-tested natively).
//!
//! serde's messages quote the offending value (`invalid type: string "user:pass", expected
//! struct AuthConfig`), which may be a password, an API key or a PEM. Every body the worker
//! parses goes through [`parse_json`] instead: a 400 whose reason is the JSON path of the
//! problem and its kind (`inputAuthConfig: wrong type, expected struct AuthConfig`), built
//! only from field names and the expected types, never from the value.

use crate::error::ApiError;

/// Longest field name quoted back (an unknown field's name comes from the caller).
const MAX_FIELD_NAME: usize = 64;

/// Parses `body` as `T`; a failure is a 400 `BadRequest` naming the path and the kind.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize::<_, T>(&mut *de).map_err(|e| {
        let path = path(e.path());
        let kind = kind(e.inner());
        let reason = if path.is_empty() || path == "." {
            format!("request body: {kind}")
        } else {
            format!("{path}: {kind}")
        };
        ApiError::bad_request(reason)
    })?;
    // Trailing bytes after the value are an error too.
    de.end()
        .map_err(|e| ApiError::bad_request(format!("request body: {}", kind(&e))))?;
    Ok(value)
}

/// Whether a name is a plain field name (quoted back only then).
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FIELD_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The JSON path as `a.b[2].c`; a key that is not a plain name (it comes from the caller,
/// e.g. an unknown field) is shown as `?`.
fn path(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if plain_name(key) { key } else { "?" });
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// A name quoted in backticks in a serde message, if it is a plain field name.
fn quoted_name(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg[start..].find('`')?;
    let name = &msg[start..start + len];
    plain_name(name).then_some(name)
}

/// What serde expected, from a message's `, expected ...` tail (the type's own static text).
fn expected(msg: &str) -> Option<&str> {
    let at = msg.rfind(", expected ")?;
    let tail = &msg[at + ", expected ".len()..];
    // A list of variants or fields quotes only the type's own names; still keep it short.
    (!tail.is_empty() && tail.len() <= 200 && !tail.contains('"')).then_some(tail)
}

/// The kind of a serde_json error, without the input's text.
fn kind(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    match e.classify() {
        Category::Io => "unreadable".into(),
        Category::Eof => "the JSON ends early".into(),
        Category::Syntax => format!("not valid JSON (line {line}, column {column})"),
        Category::Data => {
            let full = e.to_string();
            // serde_json appends " at line L column C".
            let msg = match full.rfind(" at line ") {
                Some(i) => &full[..i],
                None => full.as_str(),
            };
            let with_expected = |what: &str| match expected(msg) {
                Some(x) => format!("{what}, expected {x}"),
                None => what.to_string(),
            };
            if msg.starts_with("invalid type: ") {
                with_expected("wrong type")
            } else if msg.starts_with("invalid value: ") {
                with_expected("invalid value")
            } else if msg.starts_with("invalid length ") {
                with_expected("invalid length")
            } else if msg.starts_with("unknown variant ") {
                with_expected("unknown variant")
            } else if msg.starts_with("unknown field ") {
                match quoted_name(msg) {
                    Some(n) => with_expected(&format!("unknown field `{n}`")),
                    None => with_expected("unknown field"),
                }
            } else if let Some(what) = ["missing field", "duplicate field"]
                .into_iter()
                .find(|p| msg.starts_with(p))
            {
                match quoted_name(msg) {
                    Some(n) => format!("{what} `{n}`"),
                    None => what.to_string(),
                }
            } else {
                // A custom message of a deserializer may quote the value.
                "invalid value".into()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Auth {
        username: String,
        #[serde(default)]
        password: Option<String>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        image: String,
        #[serde(default)]
        input_auth_config: Option<Auth>,
        #[serde(default)]
        count: Option<u8>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase")]
    enum Mode {
        Fast,
    }

    const SECRET: &str = "user:s3cr3t-PASS";

    fn reason(body: &str) -> String {
        let e = parse_json::<Body>(body.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.error_type.as_str()), (400, "BadRequest"));
        assert!(!e.reason.contains("s3cr3t"), "{}", e.reason);
        e.reason
    }

    #[test]
    fn errors_name_path_and_kind_never_the_value() {
        let r = reason(&format!(r#"{{"image":"a","inputAuthConfig":"{SECRET}"}}"#));
        assert_eq!(r, "inputAuthConfig: wrong type, expected struct Auth");
        let r = reason(r#"{"image":"a","inputAuthConfig":{"username":"u","password":42}}"#);
        assert_eq!(r, "inputAuthConfig.password: wrong type, expected a string");
        let r = reason(&format!(r#"{{"image":["{SECRET}"]}}"#));
        assert_eq!(r, "image: wrong type, expected a string");
        let r = reason(&format!(r#"{{"image":"a","mode":"{SECRET}"}}"#));
        assert!(r.starts_with("mode: unknown variant, expected"), "{r}");
        let r = reason(r#"{"image":"a","count":1000}"#);
        assert!(r.starts_with("count: invalid value"), "{r}");
        let r = reason(r#"{"imag":"a"}"#);
        assert!(r.contains("unknown field `imag`"), "{r}");
        let r = reason(&format!(r#"{{"image":"a","{SECRET}":1}}"#));
        assert!(r.contains("unknown field"), "{r}");
        let r = reason(r#"{}"#);
        assert_eq!(r, "request body: missing field `image`");
        let r = reason(&format!(r#"{{"image":"{SECRET}"#));
        assert_eq!(r, "image: the JSON ends early");
        let r = reason(&format!(r#"{{"image":"a"}} {SECRET}"#));
        assert!(r.starts_with("request body: not valid JSON"), "{r}");
        let r = reason(SECRET);
        assert!(r.starts_with("request body: not valid JSON"), "{r}");
        let r = reason(&format!(r#""{SECRET}""#));
        assert_eq!(r, "request body: wrong type, expected struct Body");
    }

    #[test]
    fn valid_bodies_parse() {
        let b: Body = parse_json(br#"{"image":"a","mode":"fast","count":3}"#).unwrap();
        assert_eq!(b.image, "a");
        assert_eq!(b.count, Some(3));
    }
}
