//! What kiln can tell about the app at conversion time, and the warnings that follow.
//!
//! Direct mode (and so a test under `KILN_INSECURE_NO_SGX=1`) enforces neither
//! `sgx.max_threads` nor the enclave size, so a conversion that is too small for its app
//! fails only when it is deployed on SGX. Where the program is a runtime kiln recognises,
//! the response warns when the requested `threads` / `memSize` are below what that runtime
//! was measured to need (peaks measured under Gramine's direct mode with Debian bookworm's
//! packages; every figure includes glibc's 64 MiB per-thread malloc arenas and 8 MiB
//! thread stacks, and leaves room for Gramine's own helper threads):
//!
//! | runtime | recognised by | measured | kiln asks for |
//! |---|---|---|---|
//! | JVM (OpenJDK 17) | program `java`, or `javaMode` set | 16 threads | `threads` 32; `memSize` 1G with `javaMode`, 4G without |
//! | node 18 | program `node`/`nodejs` | 9 threads, 566 MB | `threads` 16, `memSize` 1G |
//! | python servers | `python*` running `http.server`, gunicorn, uvicorn, hypercorn, `manage.py runserver` | 11 threads, 622 MB under 8 concurrent requests | `threads` 16, `memSize` 1G |
//!
//! Apps that start worker *processes* (nginx, gunicorn, uwsgi, PostgreSQL, Apache httpd,
//! php-fpm) get a warning that on SGX1 every process is a whole enclave of `memSize`
//! (Gramine builds a new enclave per process and commits all of it,
//! pal/src/host/linux-sgx/host_main.c), and gunicorn one about its worker heartbeat.
//! PostgreSQL needs System V shared memory, which Gramine does not implement.

use super::size::format_size;

/// A runtime kiln recognises from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A Java virtual machine.
    Jvm,
    /// Node.js.
    Node,
    /// A Python web server.
    PythonServer,
}

/// What kiln needs to know about the conversion to judge it.
#[derive(Debug, Clone)]
pub struct Sizing<'a> {
    /// The program (`libos.entrypoint`), symlinks resolved.
    pub program: &'a str,
    /// The composed command line.
    pub argv: &'a [String],
    /// `threads`.
    pub threads: u32,
    /// The enclave size in bytes.
    pub enclave_size: u64,
    /// Whether `javaMode` is set.
    pub java_mode: bool,
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Every word of the command line, and the basenames of those that look like paths.
fn words<'a>(s: &'a Sizing<'a>) -> impl Iterator<Item = &'a str> + 'a {
    std::iter::once(s.program)
        .chain(s.argv.iter().map(String::as_str))
        .flat_map(|a| a.split_whitespace())
        .map(basename)
}

/// The runtime the command line runs, if kiln recognises it.
pub fn recognise(s: &Sizing<'_>) -> Option<Runtime> {
    let prog = basename(s.program);
    if prog == "java" || s.java_mode {
        return Some(Runtime::Jvm);
    }
    if prog == "node" || prog == "nodejs" {
        return Some(Runtime::Node);
    }
    let python = prog.starts_with("python");
    let server = words(s).any(|w| {
        matches!(
            w,
            "http.server" | "gunicorn" | "uvicorn" | "hypercorn" | "runserver"
        )
    });
    if (python && server) || matches!(prog, "gunicorn" | "uvicorn" | "hypercorn") {
        return Some(Runtime::PythonServer);
    }
    None
}

/// (threads, enclave size) a runtime needs.
fn needs(rt: Runtime, java_mode: bool) -> (u32, u64) {
    const G: u64 = 1 << 30;
    match rt {
        Runtime::Jvm if java_mode => (32, G),
        Runtime::Jvm => (32, 4 * G),
        Runtime::Node | Runtime::PythonServer => (16, G),
    }
}

fn runtime_name(rt: Runtime) -> &'static str {
    match rt {
        Runtime::Jvm => "a JVM",
        Runtime::Node => "node",
        Runtime::PythonServer => "a Python web server",
    }
}

/// Programs that start worker processes (each an enclave of its own on SGX1).
const MULTI_PROCESS: [&str; 8] = [
    "nginx",
    "gunicorn",
    "uwsgi",
    "postgres",
    "httpd",
    "apache2",
    "php-fpm",
    "postmaster",
];

/// The warnings for this conversion (see the module docs).
pub fn warnings(s: &Sizing<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rt) = recognise(s) {
        let (threads, size) = needs(rt, s.java_mode);
        let name = runtime_name(rt);
        if s.threads < threads {
            out.push(format!(
                "threads: {} runs {name}, which with Gramine's own helper threads needs about \
                 {threads} enclave threads; {} may make it fail on SGX (thread creation fails \
                 with EAGAIN). Convert with \"threads\": {threads}",
                s.program, s.threads
            ));
        }
        if s.enclave_size < size {
            out.push(format!(
                "memSize: {} runs {name}, which needs about {} of enclave memory; {} may make \
                 it fail on SGX (out of memory). Convert with \"memSize\": \"{}\"{}",
                s.program,
                format_size(size),
                format_size(s.enclave_size),
                format_size(size),
                if rt == Runtime::Jvm && !s.java_mode {
                    " or set javaMode (which shrinks the JVM's reservations to fit 1G)"
                } else {
                    ""
                }
            ));
        }
    }
    if let Some(w) = words(s).find(|w| MULTI_PROCESS.contains(w)) {
        out.push(format!(
            "processes: {w} starts worker processes; on SGX1 each process is a whole enclave of \
             memSize ({}) committed at start, and each start builds a new enclave (slow). \
             Keep the worker count small (nginx: worker_processes 1) or run on SGX2 (EDMM), \
             which commits memory as it is used",
            format_size(s.enclave_size)
        ));
    }
    if words(s).any(|w| w == "gunicorn") {
        out.push(
            "gunicorn: its workers signal liveness by fchmod on a file in --worker-tmp-dir; \
             Gramine's tmpfs and encrypted files do not update ctime, so the master kills \
             every worker after --timeout (WORKER TIMEOUT). Pass --worker-tmp-dir a \
             directory listed in rwDirs"
                .to_string(),
        );
    }
    if words(s).any(|w| w == "postgres" || w == "postmaster" || w == "pg_ctl") {
        out.push(
            "postgres: PostgreSQL needs System V shared memory, which Gramine does not \
             implement; it is expected to fail at start"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizing<'a>(program: &'a str, argv: &'a [String], threads: u32, mem: u64) -> Sizing<'a> {
        Sizing {
            program,
            argv,
            threads,
            enclave_size: mem,
            java_mode: false,
        }
    }

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    const M: u64 = 1 << 20;

    #[test]
    fn runtimes_are_recognised() {
        let java = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java";
        let argv = v(&["java", "-jar", "app.jar"]);
        assert_eq!(recognise(&sizing(java, &argv, 4, M)), Some(Runtime::Jvm));
        let argv = v(&["node", "server.js"]);
        assert_eq!(
            recognise(&sizing("/usr/bin/node", &argv, 4, M)),
            Some(Runtime::Node)
        );
        let argv = v(&["python3", "-m", "http.server", "8000"]);
        assert_eq!(
            recognise(&sizing("/usr/bin/python3.11", &argv, 4, M)),
            Some(Runtime::PythonServer)
        );
        let argv = v(&["/bin/sh", "-c", "exec gunicorn app:app"]);
        assert_eq!(recognise(&sizing("/bin/dash", &argv, 4, M)), None);
        let argv = v(&["python3", "-c", "print(1)"]);
        assert_eq!(recognise(&sizing("/usr/bin/python3.11", &argv, 4, M)), None);
    }

    #[test]
    fn small_sizes_are_warned_with_the_fix() {
        let argv = v(&["node", "server.js"]);
        let w = warnings(&sizing("/usr/bin/node", &argv, 4, 256 * M));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("threads:") && w[0].contains("\"threads\": 16"));
        assert!(w[1].starts_with("memSize:") && w[1].contains("\"memSize\": \"1G\""));
        assert!(warnings(&sizing("/usr/bin/node", &argv, 16, 1024 * M)).is_empty());

        let argv = v(&["java", "-version"]);
        let mut s = sizing("/usr/lib/jvm/j/bin/java", &argv, 16, 1024 * M);
        let w = warnings(&s);
        assert!(w[0].contains("\"threads\": 32"), "{w:?}");
        assert!(w[1].contains("\"memSize\": \"4G\"") && w[1].contains("javaMode"));
        s.java_mode = true;
        assert_eq!(warnings(&s).len(), 1);
    }

    #[test]
    fn multi_process_servers_and_their_limits_are_named() {
        let argv = v(&["nginx", "-g", "daemon off;"]);
        let w = warnings(&sizing("/usr/sbin/nginx", &argv, 16, 256 * M));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("nginx") && w[0].contains("whole enclave") && w[0].contains("256M"));

        let argv = v(&["/bin/sh", "-c", "gunicorn -w 3 app:app"]);
        let w = warnings(&sizing("/bin/dash", &argv, 16, M << 10));
        assert!(w.iter().any(|l| l.contains("--worker-tmp-dir")), "{w:?}");

        let argv = v(&["postgres"]);
        let w = warnings(&sizing(
            "/usr/lib/postgresql/15/bin/postgres",
            &argv,
            16,
            M << 10,
        ));
        assert!(w.iter().any(|l| l.contains("System V")), "{w:?}");

        let argv = v(&["redis-server"]);
        assert!(warnings(&sizing("/usr/bin/redis-server", &argv, 16, 256 * M)).is_empty());
    }
}
