//! The image's USER: numeric or symbolic, resolved through the image's own `/etc/passwd`
//! and `/etc/group` (as docker/runc do).
//!
//! Forms: `""` (root), `user`, `uid`, `user:group`, `uid:gid`, `user:gid`, `uid:group`.
//! A numeric uid need not exist in /etc/passwd; its gid then defaults to the passwd entry's
//! gid if there is one, else 0. A name must exist; an unknown name is an error.

use std::collections::BTreeMap;

/// Numeric ids the app runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// `loader.uid`.
    pub uid: u32,
    /// `loader.gid`.
    pub gid: u32,
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

#[derive(Debug, Clone, Copy)]
struct PasswdEntry {
    uid: u32,
    gid: u32,
}

/// Parses /etc/passwd lines `name:pw:uid:gid:gecos:home:shell`; malformed lines are skipped.
fn parse_passwd(bytes: &[u8]) -> BTreeMap<String, PasswdEntry> {
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0].is_empty() {
            continue;
        }
        if let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) {
            out.entry(f[0].to_string())
                .or_insert(PasswdEntry { uid, gid });
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
        if f.len() < 3 || f[0].is_empty() {
            continue;
        }
        if let Ok(gid) = f[2].parse() {
            out.entry(f[0].to_string()).or_insert(gid);
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
    let user_s = user.to_string();
    if user.is_empty() {
        return Ok(Ids { uid: 0, gid: 0 });
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() || g == Some("") || g.is_some_and(|g| g.contains(':')) {
        return Err(UserError::Malformed(user_s));
    }
    let pw = passwd.map(parse_passwd).unwrap_or_default();
    let (uid, default_gid) = if let Ok(uid) = u.parse::<u32>() {
        let gid = pw
            .values()
            .find(|e| e.uid == uid)
            .map(|e| e.gid)
            .unwrap_or(0);
        (uid, gid)
    } else {
        match pw.get(u) {
            Some(e) => (e.uid, e.gid),
            None => {
                return Err(UserError::UnknownUser {
                    user: user_s,
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
                        user: user_s,
                        name: g.to_string(),
                    })
                }
            },
        },
    };
    Ok(Ids { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n# comment\nbroken line\napp:x:1000:1001::/home/app:/bin/sh\nnobody:x:65534:65534::/:/sbin/nologin\n";
    const GROUP: &[u8] = b"root:x:0:\nstaff:x:50:app\napp:x:1001:\n";

    fn r(u: &str) -> Result<Ids, UserError> {
        resolve_user(u, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn forms() {
        assert_eq!(r(""), Ok(Ids { uid: 0, gid: 0 }));
        assert_eq!(
            r("app"),
            Ok(Ids {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            r("1000"),
            Ok(Ids {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(r("4242"), Ok(Ids { uid: 4242, gid: 0 }));
        assert_eq!(r("app:staff"), Ok(Ids { uid: 1000, gid: 50 }));
        assert_eq!(r("app:7"), Ok(Ids { uid: 1000, gid: 7 }));
        assert_eq!(r("5:6"), Ok(Ids { uid: 5, gid: 6 }));
        assert_eq!(r("0:staff"), Ok(Ids { uid: 0, gid: 50 }));
        assert_eq!(
            r("nobody"),
            Ok(Ids {
                uid: 65534,
                gid: 65534
            })
        );
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
        assert_eq!(resolve_user("7", None, None), Ok(Ids { uid: 7, gid: 0 }));
        assert!(resolve_user("app", None, None).is_err());
        let e = r("ghost").unwrap_err().to_string();
        assert!(e.contains("ghost") && e.contains("/etc/passwd"));
    }
}
