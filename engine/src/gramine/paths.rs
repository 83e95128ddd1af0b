//! Absolute path normalisation and prefix tests on normalised paths.

/// Normalises an absolute path lexically: collapses `//`, drops `.` components, resolves
/// `..` (never above `/`), removes a trailing slash. Returns `None` if the path is not
/// absolute or contains a NUL or other control character.
pub fn normalize_absolute(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.chars().any(|c| c.is_control()) {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Some("/".to_string());
    }
    let mut out = String::with_capacity(path.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    Some(out)
}

/// Whether `path` is `dir` or lies below it (both normalised).
pub fn is_within(path: &str, dir: &str) -> bool {
    if dir == "/" {
        return path.starts_with('/');
    }
    path == dir
        || (path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/')
}

/// Whether `path` lies strictly below `dir` (both normalised).
pub fn is_strictly_within(path: &str, dir: &str) -> bool {
    path != dir && is_within(path, dir)
}

/// Joins a normalised absolute directory and a relative or absolute path, then normalises.
pub fn join(dir: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        normalize_absolute(rel)
    } else if dir == "/" {
        normalize_absolute(&format!("/{rel}"))
    } else {
        normalize_absolute(&format!("{dir}/{rel}"))
    }
}

/// The parent directory of a normalised absolute path (`/` for `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let n = |s| normalize_absolute(s);
        assert_eq!(n("/").as_deref(), Some("/"));
        assert_eq!(n("//a///b/").as_deref(), Some("/a/b"));
        assert_eq!(n("/a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(n("/../../x").as_deref(), Some("/x"));
        assert_eq!(n("/a/.."), Some("/".to_string()));
        assert_eq!(n("a/b"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("/a\0b"), None);
        assert_eq!(n("/a\nb"), None);
    }

    #[test]
    fn within() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
        assert!(is_strictly_within("/a/b", "/a"));
        assert!(!is_strictly_within("/a", "/a"));
    }

    #[test]
    fn joins_and_parents() {
        assert_eq!(join("/", "bin/sh").as_deref(), Some("/bin/sh"));
        assert_eq!(join("/usr", "../bin").as_deref(), Some("/bin"));
        assert_eq!(join("/usr", "/etc").as_deref(), Some("/etc"));
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
    }
}
