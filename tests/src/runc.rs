//! Running images for real: pull with skopeo into an OCI layout, unpack with umoci into a
//! runc bundle, run with runc (to the end, or in the background to probe a server and
//! stop it as `docker stop` would), probe a server inside the container's own network
//! namespace (loopback only), and the loud-skip rule of the runc tests. A bundle may share
//! the host's network namespace ([`share_host_network`]) and get host directories mounted
//! ([`bind_mount`]: the `/dev/attestation` stand-in of [`crate::attestation_standin`]).
//!
//! Needs root, skopeo, umoci and runc; [`runc_tests_can_run`] says why not (and fails the
//! test instead when `KILN_REQUIRE_RUNC=1`, as scripts/test.sh sets it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::HarnessError;

/// Why runc tests cannot run here (not root, or a tool is missing), if they cannot.
pub fn runc_unavailable(tools: &[&str]) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return Some("not running as root".into());
    }
    tools
        .iter()
        .find(|t| !crate::have_tool(t))
        .map(|t| format!("`{t}` is not installed (scripts/install-deps.sh)"))
}

/// True when the test may run; otherwise prints a loud SKIPPED line and returns false,
/// or panics when `KILN_REQUIRE_RUNC=1` (the suite must not skip them).
pub fn runc_tests_can_run(test: &str, tools: &[&str]) -> bool {
    match runc_unavailable(tools) {
        None => true,
        Some(why) if std::env::var("KILN_REQUIRE_RUNC").as_deref() == Ok("1") => {
            panic!("{test}: runc tests required (KILN_REQUIRE_RUNC=1) but {why}")
        }
        Some(why) => {
            eprintln!("\n!!!!!!!! SKIPPED {test}: {why} !!!!!!!!\n");
            false
        }
    }
}

/// Runs `cmd`; an error names the command and carries its output when it fails.
pub fn run_ok(cmd: &mut Command) -> Result<Output, HarnessError> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
        .into());
    }
    Ok(o)
}

/// Pulls `reference` (plain HTTP registry) with skopeo into `work/NAME-oci` and unpacks it
/// with umoci into the bundle `work/NAME-bundle`, whose config.json umoci derives from
/// the image config (argv, env, cwd, user; new namespaces, network included).
pub fn pull_and_unpack(reference: &str, work: &Path, name: &str) -> Result<PathBuf, HarnessError> {
    let layout = work.join(format!("{name}-oci"));
    let bundle = work.join(format!("{name}-bundle"));
    run_ok(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:x", layout.display()),
    ]))?;
    run_ok(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:x", layout.display()),
        &bundle.display().to_string(),
    ]))?;
    // The layout is not needed any more; the bundle holds the unpacked root.
    let _ = std::fs::remove_dir_all(&layout);
    Ok(bundle)
}

fn edit_config(
    bundle: &Path,
    edit: impl FnOnce(&mut serde_json::Value) -> Result<(), HarnessError>,
) -> Result<(), HarnessError> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    edit(&mut cfg)?;
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg)?)?;
    Ok(())
}

/// Makes the bundle's container share the host's network namespace (drops `network` from
/// `linux.namespaces`), so that it reaches servers on the host's loopback (tests only: a
/// worker in workerd on 127.0.0.1).
pub fn share_host_network(bundle: &Path) -> Result<(), HarnessError> {
    edit_config(bundle, |cfg| {
        let ns = cfg["linux"]["namespaces"]
            .as_array_mut()
            .ok_or("config.json: no linux.namespaces")?;
        ns.retain(|n| n["type"] != "network");
        Ok(())
    })
}

/// Bind-mounts the host directory `source` at `destination` in the bundle's container
/// (read-write, after the runtime's own mounts, so it may sit under `/dev`).
pub fn bind_mount(bundle: &Path, source: &Path, destination: &str) -> Result<(), HarnessError> {
    edit_config(bundle, |cfg| {
        let mounts = cfg["mounts"]
            .as_array_mut()
            .ok_or("config.json: no mounts")?;
        mounts.push(serde_json::json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": ["rbind", "rw"],
        }));
        Ok(())
    })
}

/// The capabilities Docker gives a container by default (moby's `DefaultCapabilities`).
pub const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// umoci turns each `VOLUME` of the image into an empty tmpfs owned by root; Docker
/// gives a new volume the image directory's owner and mode (and content). The tmpfs
/// mounts outside /dev get the owner and mode of the directory they cover, so an app
/// running as a user (redis in /data) can write its volume as under Docker.
fn volumes_like_docker(bundle: &Path, cfg: &mut serde_json::Value) {
    use std::os::unix::fs::MetadataExt;
    let Some(mounts) = cfg["mounts"].as_array_mut() else {
        return;
    };
    for m in mounts {
        let Some(dest) = m["destination"].as_str().map(str::to_string) else {
            continue;
        };
        if m["type"] != "tmpfs" || dest.starts_with("/dev") {
            continue;
        }
        let Ok(md) = std::fs::metadata(bundle.join("rootfs").join(dest.trim_start_matches('/')))
        else {
            continue;
        };
        if let Some(opts) = m["options"].as_array_mut() {
            opts.push(serde_json::json!(format!("mode={:o}", md.mode() & 0o7777)));
            opts.push(serde_json::json!(format!("uid={}", md.uid())));
            opts.push(serde_json::json!(format!("gid={}", md.gid())));
        }
    }
}

/// One runc container over an unpacked bundle; deleted (`runc delete --force`) on drop.
/// Its stdout and stderr go to files in the bundle directory.
#[derive(Debug)]
pub struct Container {
    bundle: PathBuf,
    id: String,
    state: PathBuf,
    child: Option<Child>,
}

impl Container {
    /// A container named after `name` (made unique) over `bundle`, with `extra_env`
    /// appended to the process environment and no terminal.
    pub fn new(bundle: &Path, name: &str, extra_env: &[&str]) -> Result<Self, HarnessError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "kiln-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let cfg_path = bundle.join("config.json");
        let text = std::fs::read(&cfg_path).map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let mut cfg: serde_json::Value = serde_json::from_slice(&text)?;
        cfg["process"]["terminal"] = serde_json::json!(false);
        if let Some(env) = cfg["process"]["env"].as_array_mut() {
            env.extend(extra_env.iter().map(|e| serde_json::json!(e)));
        }
        // Docker's default capabilities (umoci's config grants only three, so a root
        // nginx could not chown its temp dirs): all five sets for root, only the bounding
        // set for another user, as Docker does.
        let caps = serde_json::json!(DOCKER_CAPS);
        let root = cfg["process"]["user"]["uid"].as_u64().unwrap_or(0) == 0;
        let none = serde_json::json!([]);
        cfg["process"]["capabilities"] = serde_json::json!({
            "bounding": caps,
            "effective": if root { &caps } else { &none },
            "permitted": if root { &caps } else { &none },
            "inheritable": none,
        });
        volumes_like_docker(bundle, &mut cfg);
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
        Ok(Container {
            bundle: bundle.to_path_buf(),
            state: bundle.join("runc-state"),
            id,
            child: None,
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&self.state);
        c
    }

    fn log_path(&self, stream: &str) -> PathBuf {
        self.bundle.join(format!("{}.{stream}", self.id))
    }

    /// Starts `runc run` in the background (stdin closed, stdout/stderr to files).
    pub fn start(&mut self) -> Result<(), HarnessError> {
        let out = File::create(self.log_path("stdout"))?;
        let err = File::create(self.log_path("stderr"))?;
        let child = self
            .runc()
            .args(["run", "--bundle"])
            .arg(&self.bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Runs the container to its end (at most `limit`); returns its exit status.
    pub fn run_to_end(&mut self, limit: Duration) -> Result<ExitStatus, HarnessError> {
        self.start()?;
        self.wait(limit)?
            .ok_or_else(|| format!("{} still running after {limit:?}", self.id).into())
    }

    /// Waits at most `limit` for the container to end; `None` if it still runs.
    pub fn wait(&mut self, limit: Duration) -> Result<Option<ExitStatus>, HarnessError> {
        let child = self.child.as_mut().ok_or("container not started")?;
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the container wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.log_path("stdout")).unwrap_or_default()
    }

    /// What the container (and runc) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log_path("stderr")).unwrap_or_default()
    }

    /// The host pid of the container's init once it runs (polled for at most `limit`).
    pub fn pid(&mut self, limit: Duration) -> Result<u32, HarnessError> {
        let end = Instant::now() + limit;
        loop {
            let o = self.runc().args(["state", &self.id]).output()?;
            if o.status.success() {
                let st: serde_json::Value = serde_json::from_slice(&o.stdout)?;
                if st["status"] == "running" {
                    if let Some(pid) = st["pid"].as_u64().and_then(|p| u32::try_from(p).ok()) {
                        return Ok(pid);
                    }
                }
            }
            if let Some(st) = self.wait(Duration::ZERO)? {
                return Err(format!(
                    "{} ended ({st}) before it ran: stdout {:?} stderr {:?}",
                    self.id,
                    self.stdout(),
                    self.stderr()
                )
                .into());
            }
            if Instant::now() >= end {
                return Err(format!("{} not running after {limit:?}", self.id).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `runc kill ID SIGNAL` (what `docker stop` does first): the signal goes to the
    /// container's init.
    pub fn kill(&self, signal: &str) -> Result<(), HarnessError> {
        run_ok(self.runc().args(["kill", &self.id, signal]))?;
        Ok(())
    }

    /// `runc exec ID ARGS...` (as root, in the container's namespaces and root).
    pub fn exec(&self, args: &[&str]) -> Result<Output, HarnessError> {
        Ok(self.runc().args(["exec", &self.id]).args(args).output()?)
    }

    /// Runs `args` on the host inside the container's network namespace (its loopback is
    /// brought up first): a client reaching the container's servers on 127.0.0.1 without
    /// sharing the host's ports.
    pub fn in_netns(&mut self, args: &[&str]) -> Result<Output, HarnessError> {
        let pid = self.pid(Duration::from_secs(30))?;
        let ns = format!("--net=/proc/{pid}/ns/net");
        let _ = Command::new("nsenter")
            .args([ns.as_str(), "ip", "link", "set", "lo", "up"])
            .output();
        Ok(Command::new("nsenter").arg(&ns).args(args).output()?)
    }

    /// GETs `http://127.0.0.1:PORT{path}` inside the container's network namespace (curl),
    /// retrying until it answers or `limit` passes (or the container ends); returns the
    /// body.
    pub fn http_get(
        &mut self,
        port: u16,
        path: &str,
        limit: Duration,
    ) -> Result<String, HarnessError> {
        let url = format!("http://127.0.0.1:{port}{path}");
        let end = Instant::now() + limit;
        loop {
            let o = self.in_netns(&["curl", "-sS", "--fail", "--max-time", "5", &url])?;
            if o.status.success() {
                return Ok(String::from_utf8_lossy(&o.stdout).into_owned());
            }
            if let Some(st) = self.wait(Duration::ZERO)? {
                return Err(format!(
                    "{} ended ({st}) while waiting for {url}: stdout {:?} stderr {:?}",
                    self.id,
                    self.stdout(),
                    self.stderr()
                )
                .into());
            }
            if Instant::now() >= end {
                return Err(format!(
                    "{url} did not answer within {limit:?}: {}; container stderr {:?}",
                    String::from_utf8_lossy(&o.stderr).trim(),
                    self.stderr()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.runc().args(["delete", "--force", &self.id]).output();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
