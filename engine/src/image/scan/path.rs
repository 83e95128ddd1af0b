//! Normalisation of tar entry names into absolute image paths.

/// Why a tar entry name cannot become an image path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `..` component would climb above the image root.
    #[error("tar entry {name:?}: `..` escapes the image root")]
    EscapesRoot {
        /// The name as stored in the layer.
        name: String,
    },
    /// The name is not valid UTF-8.
    #[error("tar entry {name:?}: name is not valid UTF-8")]
    NotUtf8 {
        /// The name, lossily decoded.
        name: String,
    },
    /// The name contains a NUL byte.
    #[error("tar entry {name:?}: name contains a NUL byte")]
    Nul {
        /// The name, lossily decoded.
        name: String,
    },
}

/// Turns a tar entry name (`./usr/bin/`, `/etc//passwd`, `a/../b`) into an absolute,
/// normalised path (`/usr/bin`, `/etc/passwd`, `/b`); `.`/`./` becomes `/`.
/// A `..` that would climb above the root is an error naming the entry.
pub fn normalize(raw: &[u8]) -> Result<String, PathError> {
    let name = std::str::from_utf8(raw).map_err(|_| PathError::NotUtf8 {
        name: String::from_utf8_lossy(raw).into_owned(),
    })?;
    if name.contains('\0') {
        return Err(PathError::Nul {
            name: name.to_string(),
        });
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::EscapesRoot {
                        name: name.to_string(),
                    });
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok("/".to_string());
    }
    let mut out = String::with_capacity(name.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    Ok(out)
}

/// The parent of a normalised absolute path (`/a/b` → `/a`, `/a` → `/`); `None` for `/`.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => path.get(..i),
        None => None,
    }
}

/// The last component of a normalised absolute path (`/a/b` → `b`; `/` → ``).
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// Joins a normalised absolute directory and a single component.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize(b"./").unwrap(), "/");
        assert_eq!(normalize(b".").unwrap(), "/");
        assert_eq!(normalize(b"./usr/bin/").unwrap(), "/usr/bin");
        assert_eq!(normalize(b"/etc//passwd").unwrap(), "/etc/passwd");
        assert_eq!(normalize(b"a/./b/../c").unwrap(), "/a/c");
        assert_eq!(normalize(b"etc").unwrap(), "/etc");
    }

    #[test]
    fn refuses_escapes_and_bad_bytes() {
        let err = normalize(b"../etc/shadow").unwrap_err();
        assert!(err.to_string().contains("../etc/shadow"), "{err}");
        assert!(normalize(b"a/../../b").is_err());
        assert!(matches!(
            normalize(b"a\xffb"),
            Err(PathError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn parent_name_join() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(file_name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
