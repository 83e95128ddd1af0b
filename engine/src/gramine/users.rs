//! The image's USER: numeric or symbolic, resolved through the image's own `/etc/passwd`
//! and `/etc/group` (as docker/runc do).
//!
//! Forms: `""` (root), `user`, `uid`, `user:group`, `uid:gid`, `user:gid`, `uid:group`.
//! A numeric uid need not exist in /etc/passwd; its gid then defaults to the passwd entry's
//! gid if there is one, else 0. A name must exist; an unknown name is an error. The home
//! directory of the passwd entry (if any) is returned too: runc sets `HOME` from it when
//! the image's environment has none.

use std::collections::BTreeMap;

/// Numeric ids the app runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// `loader.uid`.
    pub uid: u32,
    /// `loader.gid`.
    pub gid: u32,
    /// The user's home directory from /etc/passwd, if the user is listed there.
    pub home: Option<String>,
}

/// Why a USER could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// A user name not in /etc/passwd.
    #[error("image USER `{user}`: user `{name}` is not in the image's /etc/passwd")]
    UnknownUser {
        /// The USER string.
        user: String,
        /// The name.
        name: String,
    },
    /// A group name not in /etc/group.
    #[error("image USER `{user}`: group `{name}` is not in the image's /etc/group")]
    UnknownGroup {
        /// The USER string.
        user: String,
        /// The name.
        name: String,
    },
    /// Malformed USER string.
    #[error("image USER `{0}` is malformed")]
    Malformed(String),
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    uid: u32,
    gid: u32,
    home: String,
}

/// Parses /etc/passwd lines `name:pw:uid:gid:gecos:home:shell`; malformed lines are skipped.
fn parse_passwd(bytes: &[u8]) -> BTreeMap<String, PasswdEntry> {
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(uid), Some(gid)) = (f.first(), f.get(2), f.get(3)) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse()) {
            let home = f.get(5).map(|h| h.to_string()).unwrap_or_default();
            out.entry(name.to_string())
                .or_insert(PasswdEntry { uid, gid, home });
        }
    }
    out
}

/// Parses /etc/group lines `name:pw:gid:members`; malformed lines are skipped.
fn parse_group(bytes: &[u8]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(gid)) = (f.first(), f.get(2)) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if let Ok(gid) = gid.parse() {
            out.entry(name.to_string()).or_insert(gid);
        }
    }
    out
}

/// Resolves a USER string against the image's /etc/passwd and /etc/group contents (either
/// may be absent).
pub fn resolve_user(
    user: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Ids, UserError> {
    let pw = passwd.map(parse_passwd).unwrap_or_default();
    let by_uid = |uid: u32| pw.values().find(|e| e.uid == uid);
    if user.is_empty() {
        let home = by_uid(0).map(|e| e.home.clone());
        return Ok(Ids {
            uid: 0,
            gid: 0,
            home,
        });
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() || g == Some("") || g.is_some_and(|g| g.contains(':')) {
        return Err(UserError::Malformed(user.to_string()));
    }
    let (uid, default_gid, home) = if let Ok(uid) = u.parse::<u32>() {
        match by_uid(uid) {
            Some(e) => (uid, e.gid, Some(e.home.clone())),
            None => (uid, 0, None),
        }
    } else {
        match pw.get(u) {
            Some(e) => (e.uid, e.gid, Some(e.home.clone())),
            None => {
                return Err(UserError::UnknownUser {
                    user: user.to_string(),
                    name: u.to_string(),
                })
            }
        }
    };
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => match group.map(parse_group).unwrap_or_default().get(g) {
                Some(gid) => *gid,
                None => {
                    return Err(UserError::UnknownGroup {
                        user: user.to_string(),
                        name: g.to_string(),
                    })
                }
            },
        },
    };
    Ok(Ids { uid, gid, home })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:1000:1001::/home/app:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n";
    const GROUP: &[u8] = b"root:x:0:\nstaff:x:50:app\napp:x:1001:\n";

    fn r(u: &str) -> Result<(u32, u32), UserError> {
        resolve_user(u, Some(PASSWD), Some(GROUP)).map(|i| (i.uid, i.gid))
    }

    #[test]
    fn forms() {
        assert_eq!(r(""), Ok((0, 0)));
        assert_eq!(r("app"), Ok((1000, 1001)));
        assert_eq!(r("1000"), Ok((1000, 1001)));
        assert_eq!(r("4242"), Ok((4242, 0)));
        assert_eq!(r("app:staff"), Ok((1000, 50)));
        assert_eq!(r("app:7"), Ok((1000, 7)));
        assert_eq!(r("5:6"), Ok((5, 6)));
        assert_eq!(r("0:staff"), Ok((0, 50)));
        assert_eq!(r("nobody"), Ok((65534, 65534)));
    }

    #[test]
    fn homes() {
        let h = |u: &str| resolve_user(u, Some(PASSWD), None).unwrap().home;
        assert_eq!(h("app").as_deref(), Some("/home/app"));
        assert_eq!(h("1000").as_deref(), Some("/home/app"));
        assert_eq!(h("").as_deref(), Some("/root"));
        assert_eq!(h("4242"), None);
    }

    #[test]
    fn errors() {
        assert!(matches!(r("ghost"), Err(UserError::UnknownUser { .. })));
        assert!(matches!(
            r("app:ghosts"),
            Err(UserError::UnknownGroup { .. })
        ));
        assert!(matches!(r(":1"), Err(UserError::Malformed(_))));
        assert!(matches!(r("1:"), Err(UserError::Malformed(_))));
        assert!(matches!(r("1:2:3"), Err(UserError::Malformed(_))));
        // No passwd in the image: numeric works, names fail.
        let none = resolve_user("7", None, None).unwrap();
        assert_eq!((none.uid, none.gid, none.home), (7, 0, None));
        assert!(resolve_user("app", None, None).is_err());
        let e = r("ghost").unwrap_err().to_string();
        assert!(e.contains("ghost") && e.contains("/etc/passwd"));
    }
}
