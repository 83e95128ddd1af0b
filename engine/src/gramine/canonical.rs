//! A small TOML value model and kiln's canonical TOML writer.
//!
//! MRENCLAVE covers the exact bytes of the final manifest, so the writer is deliberately
//! simple and fully deterministic:
//!
//! - Keys are sorted (byte order) at every level ([`Table`] is a `BTreeMap`).
//! - Within a table, plain entries (strings, integers, booleans, arrays) come first, one
//!   `key = value` line each, then each sub-table under its own `[dotted.header]`, sorted,
//!   depth first. A header is written only for a table that has plain entries, or is empty
//!   (so an empty table survives a round trip).
//! - Arrays of scalars are written inline on one line; an array containing tables is
//!   written one element per line, each element an inline table (`{ a = 1, b = "x" }`),
//!   which keeps a 20,000-entry `sgx.trusted_files` compact.
//! - Strings are TOML basic strings: `"` and `\` escaped, `\b \t \n \f \r` by name, other
//!   control characters (and DEL) as `\uXXXX`; everything else, including non-ASCII UTF-8,
//!   verbatim.
//! - Keys matching `[A-Za-z0-9_-]+` are bare; any other key is a quoted basic string.
//! - Lines end with `\n`; the file ends with a newline; no comments, no trailing spaces.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A TOML table with sorted keys.
pub type Table = BTreeMap<String, Value>;

/// A TOML value (no floats or dates: Gramine's manifests need none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    String(String),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A boolean.
    Boolean(bool),
    /// An array.
    Array(Vec<Value>),
    /// A table.
    Table(Table),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Value::String(s.into())
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The table inside, if this is a table.
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// Sets `value` at the dotted path `path` (already split into keys) inside `root`,
/// creating intermediate tables. Returns the path prefix (joined by dots) that is not a
/// table, if an intermediate key holds a non-table value.
pub fn insert_path(root: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err(String::new());
    };
    let mut cur = root;
    for (i, key) in parents.iter().enumerate() {
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(t) => cur = t,
            _ => return Err(path[..=i].join(".")),
        }
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// Looks up a dotted path (already split) inside `root`.
pub fn get_path<'a>(root: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = root;
    for key in parents {
        cur = cur.get(*key)?.as_table()?;
    }
    cur.get(*last)
}

/// Writes `root` as canonical TOML (see the module documentation).
pub fn to_canonical_toml(root: &Table) -> String {
    let mut out = String::new();
    write_table_body(&mut out, root);
    let mut path = Vec::new();
    write_sub_tables(&mut out, root, &mut path);
    out
}

fn is_plain(v: &Value) -> bool {
    !matches!(v, Value::Table(_))
}

fn write_table_body(out: &mut String, table: &Table) {
    for (k, v) in table.iter().filter(|(_, v)| is_plain(v)) {
        write_key(out, k);
        out.push_str(" = ");
        write_value(out, v, true);
        out.push('\n');
    }
}

fn write_sub_tables<'a>(out: &mut String, table: &'a Table, path: &mut Vec<&'a str>) {
    for (k, v) in table.iter() {
        let Value::Table(sub) = v else { continue };
        path.push(k);
        let has_plain = sub.values().any(is_plain);
        if has_plain || sub.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push('[');
            for (i, p) in path.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                write_key(out, p);
            }
            out.push_str("]\n");
            write_table_body(out, sub);
        }
        write_sub_tables(out, sub, path);
        path.pop();
    }
}

fn is_bare_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn write_key(out: &mut String, k: &str) {
    if is_bare_key(k) {
        out.push_str(k);
    } else {
        write_string(out, k);
    }
}

/// Writes `s` as a TOML basic string (with quotes).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Most strings (paths, hashes) need no escape: copy them whole.
    if !s
        .bytes()
        .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(out: &mut String, v: &Value, top: bool) {
    match v {
        Value::String(s) => write_string(out, s),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Array(items) => {
            let multiline = top && items.iter().any(|i| matches!(i, Value::Table(_)));
            if items.is_empty() {
                out.push_str("[]");
            } else if multiline {
                out.push_str("[\n");
                for item in items {
                    out.push_str("  ");
                    write_value(out, item, false);
                    out.push_str(",\n");
                }
                out.push(']');
            } else {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_value(out, item, false);
                }
                out.push(']');
            }
        }
        Value::Table(t) => write_inline_table(out, t),
    }
}

fn write_inline_table(out: &mut String, t: &Table) {
    if t.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push_str("{ ");
    for (i, (k, v)) in t.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_key(out, k);
        out.push_str(" = ");
        write_value(out, v, false);
    }
    out.push_str(" }");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(entries: &[(&str, Value)]) -> Table {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_string(&mut s, "a\"b\\c\n\t\r\u{8}\u{c}\u{1}\u{7f}é");
        assert_eq!(s, r#""a\"b\\c\n\t\r\b\f\u0001\u007Fé""#);
    }

    #[test]
    fn keys_bare_or_quoted() {
        let mut s = String::new();
        write_key(&mut s, "A_b-9");
        write_key(&mut s, "a.b");
        write_key(&mut s, "");
        assert_eq!(s, r#"A_b-9"a.b""""#);
    }

    #[test]
    fn layout_is_canonical() {
        let root = t(&[
            (
                "sgx",
                Value::Table(t(&[
                    ("debug", Value::Boolean(false)),
                    ("cpu_features", Value::Table(t(&[("avx", Value::str("x"))]))),
                    (
                        "trusted_files",
                        Value::Array(vec![Value::Table(t(&[
                            ("uri", Value::str("file:/a")),
                            ("sha256", Value::str("00")),
                        ]))]),
                    ),
                ])),
            ),
            (
                "loader",
                Value::Table(t(&[
                    (
                        "entrypoint",
                        Value::Table(t(&[("uri", Value::str("file:/l"))])),
                    ),
                    ("argv", Value::Array(vec![Value::str("a"), Value::str("b")])),
                    ("empty", Value::Table(Table::new())),
                    ("uid", Value::Integer(-3)),
                ])),
            ),
            ("top", Value::Integer(1)),
        ]);
        let s = to_canonical_toml(&root);
        let want = "top = 1\n\
            \n[loader]\nargv = [\"a\", \"b\"]\nuid = -3\n\
            \n[loader.empty]\n\
            \n[loader.entrypoint]\nuri = \"file:/l\"\n\
            \n[sgx]\ndebug = false\ntrusted_files = [\n  { sha256 = \"00\", uri = \"file:/a\" },\n]\n\
            \n[sgx.cpu_features]\navx = \"x\"\n";
        assert_eq!(s, want);
    }

    /// Converts a parsed `toml` crate value back into ours (strings, integers, booleans,
    /// arrays, tables only).
    fn from_toml(v: &::toml::Value) -> Value {
        match v {
            ::toml::Value::String(s) => Value::String(s.clone()),
            ::toml::Value::Integer(i) => Value::Integer(*i),
            ::toml::Value::Boolean(b) => Value::Boolean(*b),
            ::toml::Value::Array(a) => Value::Array(a.iter().map(from_toml).collect()),
            ::toml::Value::Table(t) => {
                Value::Table(t.iter().map(|(k, v)| (k.clone(), from_toml(v))).collect())
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_character_round_trips_through_the_toml_crate() {
        let mut chars: Vec<char> = (0u32..0x80).filter_map(char::from_u32).collect();
        chars.extend(['é', 'ß', '€', '\u{2028}', '\u{feff}', '😀', '\u{10ffff}']);
        let mut root = Table::new();
        let mut inner = Table::new();
        let mut items = Vec::new();
        for c in &chars {
            let s = format!("k{c}x");
            inner.insert(s.clone(), Value::str(format!("v{c}\"{c}")));
            items.push(Value::Table(t(&[(s.as_str(), Value::str(c.to_string()))])));
        }
        inner.insert("list".into(), Value::Array(items));
        inner.insert("".into(), Value::Integer(i64::MIN));
        inner.insert("max".into(), Value::Integer(i64::MAX));
        inner.insert(
            "nested".into(),
            Value::Table(t(&[("deep", Value::Table(Table::new()))])),
        );
        root.insert("a.b".into(), Value::Table(inner));
        root.insert("plain".into(), Value::Array(vec![]));
        let text = to_canonical_toml(&root);
        let parsed: ::toml::Table = ::toml::from_str(&text).unwrap();
        let back: Table = parsed
            .iter()
            .map(|(k, v)| (k.clone(), from_toml(v)))
            .collect();
        assert_eq!(back, root);
        assert_eq!(to_canonical_toml(&back), text);
    }

    #[test]
    fn insert_and_get_paths() {
        let mut root = Table::new();
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        insert_path(&mut root, &p("a.b.c"), Value::Integer(1)).unwrap();
        insert_path(&mut root, &p("a.d"), Value::Boolean(true)).unwrap();
        assert_eq!(get_path(&root, &["a", "b", "c"]), Some(&Value::Integer(1)));
        assert_eq!(
            insert_path(&mut root, &p("a.d.e"), Value::Integer(2)),
            Err("a.d".to_string())
        );
    }
}
