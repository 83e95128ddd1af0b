//! The app's command line and its program, as docker computes them.
//!
//! - `entrypoint` given: it replaces ENTRYPOINT and resets CMD; `entrypointArgs` (if
//!   given) are the arguments.
//! - otherwise: the image's ENTRYPOINT, then `entrypointArgs` if given, else the image's
//!   CMD. (Shell-form instructions are already `["/bin/sh", "-c", ...]` in the config.)
//!
//! `argv[0]` is kept as written (it is what the app sees); the program
//! (`libos.entrypoint`) is `argv[0]` made absolute: a name without `/` is searched in the
//! app's PATH (docker's default PATH if the environment has none), a relative path is taken
//! from the working directory. Each candidate is looked up in the image, following symlinks
//! inside the image root; like `execvp`, a candidate must be a regular file with an execute
//! bit. The program keeps the path the search found (not the symlink's target), because
//! that is the path Gramine opens and checks against the trusted files.

use super::fsview::{resolve, Node};
use super::paths::{join, normalize_absolute};
use crate::image::file_index::FileIndex;

/// Why the command line could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    /// Nothing to run.
    #[error("no command: the image has neither ENTRYPOINT nor CMD and the request gives no `entrypoint`")]
    Empty,
    /// `argv[0]` is empty.
    #[error("the program name (argv[0]) is empty")]
    EmptyProgram,
    /// Not found.
    #[error("program `{program}` not found in the image (searched {searched})")]
    NotFound {
        /// `argv[0]`.
        program: String,
        /// Where it was looked for.
        searched: String,
    },
}

/// docker's argv rules (see the module documentation).
pub fn compose_argv(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    entrypoint: Option<&[String]>,
    entrypoint_args: Option<&[String]>,
) -> Result<Vec<String>, ArgvError> {
    let (ep, args): (&[String], &[String]) = match entrypoint {
        Some(ep) => (ep, entrypoint_args.unwrap_or_default()),
        None => (
            image_entrypoint.unwrap_or_default(),
            entrypoint_args.or(image_cmd).unwrap_or_default(),
        ),
    };
    let argv: Vec<String> = ep.iter().chain(args.iter()).cloned().collect();
    match argv.first() {
        None => Err(ArgvError::Empty),
        Some(p) if p.is_empty() => Err(ArgvError::EmptyProgram),
        Some(_) => Ok(argv),
    }
}

fn is_executable_file(index: &FileIndex, path: &str) -> bool {
    matches!(resolve(index, path), Ok((_, Node::File(e))) if e.mode & 0o111 != 0)
}

/// Finds the absolute program path for `argv0` (see the module documentation).
pub fn find_program(
    index: &FileIndex,
    argv0: &str,
    path_var: &str,
    work_dir: &str,
) -> Result<String, ArgvError> {
    if argv0.is_empty() {
        return Err(ArgvError::EmptyProgram);
    }
    if argv0.contains('/') {
        let p = join(work_dir, argv0).ok_or_else(|| ArgvError::NotFound {
            program: argv0.to_string(),
            searched: argv0.to_string(),
        })?;
        return if is_executable_file(index, &p) {
            Ok(p)
        } else {
            Err(ArgvError::NotFound {
                program: argv0.to_string(),
                searched: p,
            })
        };
    }
    let mut searched = Vec::new();
    for dir in path_var.split(':') {
        let Some(dir) = normalize_absolute(dir) else {
            continue;
        };
        let Some(candidate) = join(&dir, argv0) else {
            continue;
        };
        if is_executable_file(index, &candidate) {
            return Ok(candidate);
        }
        searched.push(dir);
    }
    Err(ArgvError::NotFound {
        program: argv0.to_string(),
        searched: format!(
            "PATH {}",
            if searched.is_empty() {
                "(empty)".to_string()
            } else {
                searched.join(":")
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gramine::fsview::tests::index;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_rules() {
        let ep = v(&["/entry.sh"]);
        let cmd = v(&["serve", "--port=80"]);
        let c = |iep: Option<&[String]>,
                 icmd: Option<&[String]>,
                 rep: Option<&[String]>,
                 rargs: Option<&[String]>| { compose_argv(iep, icmd, rep, rargs) };
        // Image only.
        assert_eq!(
            c(Some(&ep), Some(&cmd), None, None).unwrap(),
            v(&["/entry.sh", "serve", "--port=80"])
        );
        assert_eq!(c(None, Some(&cmd), None, None).unwrap(), cmd);
        // Args replace CMD.
        assert_eq!(
            c(Some(&ep), Some(&cmd), None, Some(&v(&["x"]))).unwrap(),
            v(&["/entry.sh", "x"])
        );
        // Entrypoint override resets CMD...
        assert_eq!(
            c(Some(&ep), Some(&cmd), Some(&v(&["/bin/app"])), None).unwrap(),
            v(&["/bin/app"])
        );
        // ...unless args are given.
        assert_eq!(
            c(
                Some(&ep),
                Some(&cmd),
                Some(&v(&["/bin/app"])),
                Some(&v(&["-v"]))
            )
            .unwrap(),
            v(&["/bin/app", "-v"])
        );
        // Empty entrypoint override: the args alone.
        assert_eq!(
            c(Some(&ep), Some(&cmd), Some(&[]), Some(&v(&["ls"]))).unwrap(),
            v(&["ls"])
        );
        assert_eq!(c(None, None, None, None), Err(ArgvError::Empty));
        assert_eq!(c(Some(&ep), None, Some(&[]), None), Err(ArgvError::Empty));
        assert_eq!(
            c(None, Some(&v(&[""])), None, None),
            Err(ArgvError::EmptyProgram)
        );
    }

    #[test]
    fn program_lookup() {
        let idx = index(&[
            ("/usr/bin/python3.11", "xpy"),
            ("/usr/bin/python3", "->python3.11"),
            ("/usr/local/bin/readme", "r"),
            ("/bin", "->usr/bin"),
            ("/app/run.sh", "xsh"),
        ]);
        let path = "/usr/local/bin:/bin:relative";
        assert_eq!(
            find_program(&idx, "python3", path, "/").unwrap(),
            "/bin/python3"
        );
        assert_eq!(
            find_program(&idx, "/usr/bin/python3", path, "/").unwrap(),
            "/usr/bin/python3"
        );
        assert_eq!(
            find_program(&idx, "./run.sh", path, "/app").unwrap(),
            "/app/run.sh"
        );
        // Not executable: skipped like execvp.
        let e = find_program(&idx, "readme", path, "/").unwrap_err();
        assert!(
            e.to_string().contains("`readme`") && e.to_string().contains("/usr/local/bin:/bin"),
            "{e}"
        );
        let e = find_program(&idx, "/nope", path, "/").unwrap_err();
        assert!(e.to_string().contains("/nope"));
    }
}
