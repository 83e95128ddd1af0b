//! The static launcher in a real container (runc), with fixture "loaders".
//!
//! Each test builds a bundle in a temp dir: a rootfs with only a static busybox, the
//! static `kiln-launcher` (built by scripts/build-launcher.sh), a launcher configuration at
//! /opt/kiln/launcher.json, the app files Gramine would read (`P.manifest.sgx`, `P.sig`,
//! `P.manifest`; dummies), and shell-script fixtures where Gramine's runtime would be
//! (`lib/ld-linux-x86-64.so.2`, `sgx/loader`, `direct/libpal.so`). A fixture prints the
//! argv it received, its cwd, uid and one env var, then exits with `$FIXTURE_EXIT`.
//!
//! What these tests prove: the launcher is a real static binary that runs with no libc in
//! the image; it reads its configuration from the fixed path; the device probe sees what
//! the container runtime provides; it execs (replaces itself with) the right program with
//! the right argv, keeping env, cwd, uid and stdio, so the exit status is the app's; and
//! every refusal is exactly one stderr line. In direct mode (`KILN_INSECURE_NO_SGX=1`) the
//! launcher instead stays PID 1 and supervises the "PAL": the rehearsal tests run a static
//! fixture app (tests/fixtures/rehearsal_app.rs, compiled here with rustc for musl) that
//! exceeds the configured `enclave.maxThreads` or `enclave.enclaveSize`, and check the
//! REHEARSAL line naming the fix, strict mode stopping the app, and signals sent to the
//! container (`runc kill`) reaching the app through the launcher. What they cannot prove: the EDMM branch (this
//! machine's CPU has no SGX, and a fake device is a regular file whose EDMM ioctl fails
//! with ENOTTY, so a fake device always yields SGX1); the unit tests in src/plan.rs cover
//! EDMM with injected facts. No override of the CPU or driver facts exists in any build.
//!
//! Needs root, runc and /bin/busybox (static; scripts/install-deps.sh installs them).
//! Without them the tests print why and pass, unless KILN_REQUIRE_RUNC=1 is set.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

const RT: &str = "/opt/kiln/runtime";

/// Why runc tests cannot run here, if they cannot.
fn unavailable() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => {}
        _ => return Some("not running as root".into()),
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("runc not found".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox not found (apt-get install busybox-static)".into());
    }
    None
}

/// Returns false (and says why) when the test must be skipped.
fn can_run(test: &str) -> bool {
    match unavailable() {
        None => true,
        Some(why) if std::env::var("KILN_REQUIRE_RUNC").as_deref() == Ok("1") => {
            panic!("{test}: runc tests required but {why}")
        }
        Some(why) => {
            eprintln!("{test}: skipped: {why}");
            false
        }
    }
}

/// The static launcher, built once per test run.
fn static_launcher() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Command::new(root.join("scripts/build-launcher.sh"))
            .output()
            .expect("run scripts/build-launcher.sh");
        assert!(
            out.status.success(),
            "build-launcher.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        assert!(
            is_static_elf(&path),
            "{} is not a static ELF",
            path.display()
        );
        path
    })
}

/// An ELF executable without PT_INTERP (no dynamic loader needed).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else {
        return false;
    };
    let u16at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u64at = |o: usize| {
        b.get(o..o + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_le_bytes)
    };
    if b.get(0..4) != Some(b"\x7fELF".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64at(0x20), u16at(0x36), u16at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let off = phoff as usize + i * usize::from(phentsize);
        u32at(off).is_some_and(|t| t != 3) // PT_INTERP
    })
}

/// A fixture standing in for one of Gramine's executables.
fn fixture(name: &str) -> String {
    format!(
        "#!/bin/sh\n\
         echo \"fixture={name}\"\n\
         echo \"script=$0\"\n\
         for a in \"$@\"; do echo \"arg=$a\"; done\n\
         echo \"cwd=$(pwd)\"\n\
         echo \"uid=$(id -u)\"\n\
         echo \"FOO=$FOO\"\n\
         echo \"pid=$$\"\n\
         echo \"ppid=$PPID\"\n\
         exit ${{FIXTURE_EXIT:-0}}\n"
    )
}

/// One runc bundle; deleted (container and files) on drop.
struct Bundle {
    dir: PathBuf,
    id: String,
    config: Value,
    launcher_config: Value,
}

impl Bundle {
    fn new(test: &str) -> Bundle {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "kiln-launcher-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "opt/kiln/runtime"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "echo", "id", "pwd", "cat", "sleep", "ps"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::copy(
            static_launcher(),
            rootfs.join("opt/kiln/runtime/kiln-launcher"),
        )
        .unwrap();
        let mut b = Bundle {
            dir,
            id,
            config: Value::Null,
            launcher_config: json!({
                "version": 1,
                "runtimeDir": RT,
                "sgx1App": "/opt/kiln/sgx1/app",
                "edmmApp": "/opt/kiln/edmm/app",
                "directApp": "/opt/kiln/direct/app",
                "allowCmdlineArgs": false
            }),
        };
        b.write_exec(&format!("{RT}/lib/ld-linux-x86-64.so.2"), &fixture("ldso"));
        b.write_exec(&format!("{RT}/sgx/loader"), &fixture("loader"));
        b.write_exec(&format!("{RT}/direct/libpal.so"), &fixture("direct"));
        for f in [
            "/opt/kiln/runtime/sgx/libpal.so",
            "/opt/kiln/runtime/libsysdb.so",
            "/opt/kiln/sgx1/app.manifest.sgx",
            "/opt/kiln/sgx1/app.sig",
            "/opt/kiln/edmm/app.manifest.sgx",
            "/opt/kiln/edmm/app.sig",
            "/opt/kiln/direct/app.manifest",
        ] {
            b.write(f, "dummy\n");
        }
        let out = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&b.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "runc spec: {out:?}");
        let text = std::fs::read(b.dir.join("config.json")).unwrap();
        let mut config: Value = serde_json::from_slice(&text).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!([format!("{RT}/kiln-launcher")]);
        config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
        config["process"]["cwd"] = json!("/tmp");
        config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        config["hostname"] = json!("kiln-test");
        b.config = config;
        b
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.join("rootfs").join(inside.trim_start_matches('/'))
    }

    fn write(&self, inside: &str, text: &str) {
        let p = self.path(inside);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn write_exec(&self, inside: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        self.write(inside, text);
        std::fs::set_permissions(self.path(inside), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }

    fn args(&mut self, args: &[&str]) -> &mut Self {
        let mut all = vec![format!("{RT}/kiln-launcher")];
        all.extend(args.iter().map(|s| s.to_string()));
        self.config["process"]["args"] = json!(all);
        self
    }

    fn env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(kv));
        self
    }

    /// Binds an empty regular file at `dest` (a fake device node).
    fn fake_device(&mut self, dest: &str) -> &mut Self {
        let src = self.dir.join(format!("fake{}", dest.replace('/', "_")));
        std::fs::write(&src, b"").unwrap();
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest,
            "type": "bind",
            "source": src,
            "options": ["bind", "ro"]
        }));
        self
    }

    /// Writes launcher.json and config.json.
    fn run_prepare(&mut self) {
        let lc = serde_json::to_vec_pretty(&self.launcher_config).unwrap();
        self.write("/opt/kiln/launcher.json", &String::from_utf8(lc).unwrap());
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    fn run(&mut self) -> Output {
        self.run_prepare();
        Command::new("runc")
            .arg("--root")
            .arg(self.dir.join("runc-state"))
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(&self.id)
            .output()
            .unwrap()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(self.dir.join("runc-state"))
            .args(["delete", "--force", &self.id])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `arg=` lines a fixture printed.
fn fixture_args(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.strip_prefix("arg=").map(str::to_owned))
        .collect()
}

fn sgx1_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--library-path",
        "/opt/kiln/runtime/lib",
        "/opt/kiln/runtime/sgx/loader",
        "/opt/kiln/runtime/sgx/libpal.so",
        "init",
        "/opt/kiln/sgx1/app",
    ]
    .map(String::from)
    .to_vec();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn assert_one_line(o: &Output, code: i32, text: &str) {
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(err.ends_with('\n'));
    assert!(err.starts_with("kiln-launcher: "), "{err:?}");
    assert!(err.contains(text), "{err:?} lacks {text:?}");
    assert_eq!(stdout(o), "");
}

#[test]
fn no_sgx_device_fails_with_one_line() {
    if !can_run("no_sgx_device_fails_with_one_line") {
        return;
    }
    let o = Bundle::new("nosgx").run();
    assert_one_line(&o, 1, "");
    assert_eq!(
        stderr(&o),
        "kiln-launcher: no SGX device (/dev/sgx_enclave, /dev/sgx/enclave): this image needs \
         an SGX machine; set KILN_INSECURE_NO_SGX=1 to run without SGX protection\n"
    );
}

#[test]
fn insecure_env_runs_direct_pal_after_warning() {
    if !can_run("insecure_env_runs_direct_pal_after_warning") {
        return;
    }
    let mut b = Bundle::new("direct");
    let o = b.env("KILN_INSECURE_NO_SGX=1").env("FIXTURE_EXIT=7").run();
    // Supervised: the PAL's exit status is the container's.
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("fixture=direct\n"), "{out}");
    assert!(out.contains(&format!("script={RT}/direct/libpal.so\n")));
    // The launcher stays PID 1 and the PAL is its child (no exec in direct mode).
    assert!(out.lines().any(|l| l == "ppid=1"), "{out}");
    assert!(!out.lines().any(|l| l == "pid=1"), "{out}");
    assert_eq!(
        fixture_args(&o),
        [
            "/opt/kiln/runtime/direct/libpal.so",
            "init",
            "/opt/kiln/direct/app"
        ]
    );
    let err = stderr(&o);
    assert!(err.lines().count() >= 3, "{err}");
    assert!(err.contains("WARNING: RUNNING WITHOUT SGX"), "{err}");
    // This launcher.json names no enclave limits (as from an older converter).
    assert!(
        err.contains("REHEARSAL: launcher.json names no enclave limits"),
        "{err}"
    );
    // Other values do not unlock the insecure mode.
    let mut b = Bundle::new("direct-true");
    let o = b.env("KILN_INSECURE_NO_SGX=true").run();
    assert_one_line(&o, 1, "no SGX device");
}

#[test]
fn fake_device_execs_sgx1_loader_through_bundled_ldso() {
    if !can_run("fake_device_execs_sgx1_loader_through_bundled_ldso") {
        return;
    }
    let mut b = Bundle::new("sgx1");
    // The insecure variable does not downgrade a machine with an SGX device.
    let o = b
        .fake_device("/dev/sgx_enclave")
        .env("KILN_INSECURE_NO_SGX=1")
        .env("FIXTURE_EXIT=7")
        .run();
    // exec: the fixture's exit status is the container's.
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("fixture=ldso\n"), "{out}");
    assert!(out.contains(&format!("script={RT}/lib/ld-linux-x86-64.so.2\n")));
    assert_eq!(fixture_args(&o), sgx1_args(&[]));
    // exec keeps the process's cwd, uid and environment.
    assert!(out.contains("cwd=/tmp\n"), "{out}");
    assert!(out.contains("uid=1000\n"), "{out}");
    assert!(out.contains("FOO=bar baz\n"), "{out}");
    // The launcher was the container's PID 1 and the loader replaced it (no wrapper
    // process between the container runtime and Gramine: signals reach the loader).
    assert!(out.lines().any(|l| l == "pid=1"), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("starting the SGX1 enclave /opt/kiln/sgx1/app"),
        "{err}"
    );
    assert!(!err.contains("WARNING"), "{err}");
}

#[test]
fn exec_loader_start_runs_loader_directly() {
    if !can_run("exec_loader_start_runs_loader_directly") {
        return;
    }
    let mut b = Bundle::new("exec");
    b.launcher_config["sgxLoaderStart"] = json!("exec");
    let o = b.fake_device("/dev/sgx_enclave").run();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("fixture=loader\n"));
    assert_eq!(
        fixture_args(&o),
        [
            "/opt/kiln/runtime/sgx/libpal.so",
            "init",
            "/opt/kiln/sgx1/app"
        ]
    );
}

#[test]
fn legacy_device_only_is_refused_with_hint() {
    if !can_run("legacy_device_only_is_refused_with_hint") {
        return;
    }
    let mut b = Bundle::new("legacy");
    let o = b.fake_device("/dev/sgx/enclave").run();
    assert_one_line(&o, 1, "--device /dev/sgx/enclave:/dev/sgx_enclave");
}

#[test]
fn runtime_args_refused_without_allow_cmdline_args() {
    if !can_run("runtime_args_refused_without_allow_cmdline_args") {
        return;
    }
    let mut b = Bundle::new("noargs");
    let o = b
        .fake_device("/dev/sgx_enclave")
        .args(&["--port", "80"])
        .run();
    assert_one_line(&o, 2, "takes no run-time arguments");
}

#[test]
fn runtime_args_passed_with_allow_cmdline_args() {
    if !can_run("runtime_args_passed_with_allow_cmdline_args") {
        return;
    }
    let mut b = Bundle::new("args");
    b.launcher_config["allowCmdlineArgs"] = json!(true);
    b.launcher_config["fixedArgs"] = json!(["-c"]);
    b.launcher_config["defaultArgs"] = json!(["echo default"]);
    b.fake_device("/dev/sgx_enclave");
    let o = b.args(&["echo run", "two words", ""]).run();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        fixture_args(&o),
        sgx1_args(&["-c", "echo run", "two words", ""])
    );
    let o = b.args(&[]).run();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(fixture_args(&o), sgx1_args(&["-c", "echo default"]));
    // The same rule in direct mode.
    let mut b = Bundle::new("args-direct");
    b.launcher_config["allowCmdlineArgs"] = json!(true);
    let o = b.env("KILN_INSECURE_NO_SGX=1").args(&["x"]).run();
    assert_eq!(
        fixture_args(&o),
        [
            "/opt/kiln/runtime/direct/libpal.so",
            "init",
            "/opt/kiln/direct/app",
            "x"
        ]
    );
}

#[test]
fn broken_images_fail_with_one_line() {
    if !can_run("broken_images_fail_with_one_line") {
        return;
    }
    let mut b = Bundle::new("nosig");
    std::fs::remove_file(b.path("/opt/kiln/sgx1/app.sig")).unwrap();
    let o = b.fake_device("/dev/sgx_enclave").run();
    assert_one_line(&o, 1, "/opt/kiln/sgx1/app.sig is missing");

    let mut b = Bundle::new("badcfg");
    b.launcher_config["version"] = json!(9);
    let o = b.run();
    assert_one_line(&o, 1, "unsupported launcher configuration version 9");

    let mut b = Bundle::new("nocfg");
    b.run();
    std::fs::remove_file(b.path("/opt/kiln/launcher.json")).unwrap();
    let o = Command::new("runc")
        .arg("--root")
        .arg(b.dir.join("runc-state"))
        .args(["run", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .output()
        .unwrap();
    assert_one_line(&o, 1, "cannot read /opt/kiln/launcher.json");
}

#[test]
fn sigterm_reaches_the_loader() {
    if !can_run("sigterm_reaches_the_loader") {
        return;
    }
    let mut b = Bundle::new("signal");
    b.write_exec(
        &format!("{RT}/lib/ld-linux-x86-64.so.2"),
        "#!/bin/sh\n\
         trap 'echo got-TERM; exit 42' TERM\n\
         echo ready\n\
         while :; do sleep 1 & wait $!; done\n",
    );
    b.fake_device("/dev/sgx_enclave");
    b.run_prepare();
    let log = b.dir.join("stdout.log");
    let out = std::fs::File::create(&log).unwrap();
    let status = Command::new("runc")
        .arg("--root")
        .arg(b.dir.join("runc-state"))
        .args(["run", "--detach", "--bundle"])
        .arg(&b.dir)
        .arg(&b.id)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let wait_for = |what: &dyn Fn() -> bool| {
        for _ in 0..200 {
            if what() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    };
    let log_has = |s: &str| {
        std::fs::read_to_string(&log)
            .map(|t| t.contains(s))
            .unwrap_or(false)
    };
    assert!(wait_for(&|| log_has("ready")), "fixture never got ready");
    let kill = Command::new("runc")
        .arg("--root")
        .arg(b.dir.join("runc-state"))
        .args(["kill", &b.id, "TERM"])
        .output()
        .unwrap();
    assert!(kill.status.success(), "{kill:?}");
    assert!(
        wait_for(&|| log_has("got-TERM")),
        "SIGTERM did not reach the loader: {:?}",
        std::fs::read_to_string(&log)
    );
}

/// The static fixture app (tests/fixtures/rehearsal_app.rs), compiled once per test run.
fn rehearsal_app() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rehearsal_app.rs");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rehearsal-app");
        let o = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .args([
                "--edition",
                "2021",
                "--target",
                "x86_64-unknown-linux-musl",
                "-C",
                "opt-level=1",
                "-C",
                "strip=symbols",
                "-o",
            ])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run rustc");
        assert!(
            o.status.success(),
            "rustc rehearsal_app.rs: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(is_static_elf(&out), "{} is not a static ELF", out.display());
        out
    })
}

impl Bundle {
    /// A direct-mode bundle whose "PAL" runs `script` (busybox sh), with the fixture app at
    /// /bin/rehearsal-app and enclave limits of 4 threads and 256 MiB in launcher.json.
    fn rehearsal(test: &str, script: &str) -> Bundle {
        use std::os::unix::fs::PermissionsExt;
        let mut b = Bundle::new(test);
        let app = b.path("/bin/rehearsal-app");
        std::fs::copy(rehearsal_app(), &app).unwrap();
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
        b.write_exec(
            &format!("{RT}/direct/libpal.so"),
            &format!("#!/bin/sh\n{script}\n"),
        );
        b.launcher_config["enclave"] = json!({"maxThreads": 4, "enclaveSize": 256u64 << 20});
        b.env("KILN_INSECURE_NO_SGX=1");
        b
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(self.dir.join("runc-state"));
        c
    }

    /// Starts `runc run` in the foreground of a child process, stdout and stderr into
    /// files; returns the child.
    fn start(&mut self) -> std::process::Child {
        self.run_prepare();
        let out = std::fs::File::create(self.dir.join("stdout.log")).unwrap();
        let err = std::fs::File::create(self.dir.join("stderr.log")).unwrap();
        self.runc()
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(&self.id)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Waits for `runc run` to end (at most `secs`); returns its status and the time taken.
    fn finish(
        &self,
        child: &mut std::process::Child,
        secs: u64,
    ) -> (std::process::ExitStatus, std::time::Duration) {
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > std::time::Duration::from_secs(secs) {
                let _ = self.runc().args(["kill", &self.id, "KILL"]).output();
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "container did not end within {secs} s; stdout: {:?} stderr: {:?}",
                    self.log("stdout.log"),
                    self.log("stderr.log")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until stdout holds `text` (at most 10 s).
    fn wait_stdout(&self, text: &str) {
        for _ in 0..500 {
            if self.log("stdout.log").contains(text) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "stdout never showed {text:?}: {:?} stderr: {:?}",
            self.log("stdout.log"),
            self.log("stderr.log")
        );
    }
}

/// The stderr lines that contain `text`.
fn lines_with<'a>(err: &'a str, text: &str) -> Vec<&'a str> {
    err.lines().filter(|l| l.contains(text)).collect()
}

#[test]
fn rehearsal_reports_threads_over_max_threads() {
    if !can_run("rehearsal_reports_threads_over_max_threads") {
        return;
    }
    // The PAL execs the app: the app is the launcher's child.
    let mut b = Bundle::rehearsal("rh-threads", "exec /bin/rehearsal-app threads 11 1500");
    let o = b.run();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("ready threads=11\n") && stdout(&o).contains("done\n"));
    let err = stderr(&o);
    assert_eq!(
        lines_with(&err, "REHEARSAL: every process of the app is checked").len(),
        1,
        "{err}"
    );
    assert!(
        err.contains("4 threads (sgx.max_threads), 256 MiB of memory (sgx.enclave_size)"),
        "{err}"
    );
    // Exactly one line for the threads, although the app ran over the limit for ~15 polls.
    let hits = lines_with(&err, "threads; the enclave allows");
    assert_eq!(hits.len(), 1, "{err}");
    let line = hits[0];
    assert!(
        line.starts_with("kiln-launcher: REHEARSAL: process "),
        "{line}"
    );
    assert!(
        line.contains(
            "(rehearsal-app) runs 11 threads; the enclave allows 4 (sgx.max_threads): convert \
             with \"threads\": 16 or more (Gramine's own helper threads also need slots"
        ),
        "{line}"
    );
    // Memory stayed within 256 MiB: no memory line.
    assert!(
        lines_with(&err, "sgx.enclave_size): convert").is_empty(),
        "{err}"
    );
    // At the end, the summary with the peak.
    let summary = lines_with(&err, "this run exceeded the enclave's limits");
    assert_eq!(summary.len(), 1, "{err}");
    assert!(
        summary[0].contains("peaks: 11 threads in process ")
            && summary[0].contains("convert with \"threads\": 16 or more"),
        "{err}"
    );
}

#[test]
fn rehearsal_reports_memory_over_enclave_size() {
    if !can_run("rehearsal_reports_memory_over_enclave_size") {
        return;
    }
    // The app is a grandchild here (sh waits for it): the whole tree is watched.
    let mut b = Bundle::rehearsal("rh-mem", "/bin/rehearsal-app alloc 600 1500\nexit $?");
    let o = b.run();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = stderr(&o);
    let hits = lines_with(&err, "of virtual memory (VmPeak)");
    assert_eq!(hits.len(), 1, "{err}");
    let line = hits[0];
    assert!(
        line.starts_with("kiln-launcher: REHEARSAL: process "),
        "{line}"
    );
    assert!(line.contains(" (rehearsal-app) maps 60"), "{line}");
    assert!(
        line.contains(
            "MiB of virtual memory (VmPeak); the enclave holds 256 MiB (sgx.enclave_size): \
             convert with \"memSize\": \"1G\" or more (a power of two"
        ),
        "{line}"
    );
    assert!(
        lines_with(&err, "sgx.max_threads): convert").is_empty(),
        "{err}"
    );
    assert_eq!(lines_with(&err, "this run exceeded").len(), 1, "{err}");
}

#[test]
fn rehearsal_strict_stops_the_app() {
    if !can_run("rehearsal_strict_stops_the_app") {
        return;
    }
    let mut b = Bundle::rehearsal(
        "rh-strict",
        "/bin/rehearsal-app threads 11 60000\necho app-ended-by-itself",
    );
    b.env("KILN_REHEARSAL=strict");
    let mut child = b.start();
    let (status, took) = b.finish(&mut child, 30);
    let err = b.log("stderr.log");
    assert_eq!(status.code(), Some(137), "{err}");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    assert!(
        err.contains("KILN_REHEARSAL=strict: the app is stopped"),
        "{err}"
    );
    assert_eq!(lines_with(&err, "runs 11 threads").len(), 1, "{err}");
    let stop = lines_with(&err, "stopped the app");
    assert_eq!(stop.len(), 1, "{err}");
    // Both the shell and the app were killed (the shell never printed its line).
    assert!(stop[0].contains("SIGKILL to 2 processes"), "{err}");
    let out = b.log("stdout.log");
    assert!(out.contains("ready threads=11"), "{out}");
    assert!(
        !out.contains("app-ended-by-itself") && !out.contains("done"),
        "{out}"
    );
    // An unknown mode is refused with one line before anything runs.
    let mut b = Bundle::rehearsal("rh-typo", "exec /bin/rehearsal-app threads 1 0");
    let o = b.env("KILN_REHEARSAL=strcit").run();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).ends_with(
        "kiln-launcher: KILN_REHEARSAL=\"strcit\" is not understood: use warn (the default), \
         strict or off\n"
    ));
    assert_eq!(stdout(&o), "");
}

#[test]
fn signals_reach_the_app_through_the_supervising_launcher() {
    if !can_run("signals_reach_the_app_through_the_supervising_launcher") {
        return;
    }
    let mut b = Bundle::rehearsal("rh-signals", "exec /bin/rehearsal-app signals");
    let mut child = b.start();
    b.wait_stdout("ready\n");
    for (sig, name) in [
        ("HUP", "HUP"),
        ("USR1", "USR1"),
        ("USR2", "USR2"),
        ("WINCH", "WINCH"),
        ("INT", "INT"),
        ("QUIT", "QUIT"),
    ] {
        let k = b.runc().args(["kill", &b.id, sig]).output().unwrap();
        assert!(k.status.success(), "{k:?}");
        b.wait_stdout(&format!("got-{name}\n"));
    }
    // `docker stop`: SIGTERM to the container's PID 1, the launcher; the app exits 0.
    let k = b.runc().args(["kill", &b.id, "TERM"]).output().unwrap();
    assert!(k.status.success(), "{k:?}");
    let (status, _) = b.finish(&mut child, 20);
    let out = b.log("stdout.log");
    assert!(out.contains("got-TERM\nexiting gracefully\n"), "{out}");
    assert_eq!(status.code(), Some(0), "{}", b.log("stderr.log"));

    // An app that does not handle SIGTERM dies of it: 128 + 15, as a shell reports it.
    let mut b = Bundle::rehearsal("rh-term", "echo ready\nexec /bin/sleep 60");
    let mut child = b.start();
    b.wait_stdout("ready\n");
    let k = b.runc().args(["kill", &b.id, "TERM"]).output().unwrap();
    assert!(k.status.success(), "{k:?}");
    let (status, took) = b.finish(&mut child, 20);
    assert_eq!(status.code(), Some(143), "{}", b.log("stderr.log"));
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
}

#[test]
fn attestation_needs_the_aesm_socket() {
    if !can_run("attestation_needs_the_aesm_socket") {
        return;
    }
    let mut b = Bundle::new("aesm-missing");
    b.launcher_config["attestation"] = json!(true);
    let o = b.fake_device("/dev/sgx_enclave").run();
    assert_one_line(
        &o,
        1,
        "/var/run/aesmd/aesm.socket is missing: run the container with -v \
         /var/run/aesmd:/var/run/aesmd",
    );
    // With the socket's path present (here a bound regular file), the loader runs.
    let mut b = Bundle::new("aesm-present");
    b.launcher_config["attestation"] = json!(true);
    let o = b
        .fake_device("/dev/sgx_enclave")
        .fake_device("/var/run/aesmd/aesm.socket")
        .run();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(fixture_args(&o), sgx1_args(&[]));
}

#[test]
fn sgx1_exinfo_is_checked_where_cpuid_allows() {
    if !can_run("sgx1_exinfo_is_checked_where_cpuid_allows") {
        return;
    }
    // A fake device on a CPU without SGX in CPUID (this machine) gives the "cannot be
    // checked" branch; on an SGX CPU the EXINFO bit decides. Every branch is unit-tested
    // with injected facts in src/plan.rs.
    let cpu = kiln_launcher::probe::cpu_facts();
    let mut b = Bundle::new("exinfo");
    b.launcher_config["sgx1Exinfo"] = json!(true);
    let o = b.fake_device("/dev/sgx_enclave").run();
    if cpu.sgx && !cpu.exinfo {
        assert_one_line(&o, 1, "does not report EXINFO");
        return;
    }
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(fixture_args(&o), sgx1_args(&[]));
    assert_eq!(
        stderr(&o).contains("the SGX1 enclave needs EXINFO, which cannot be checked"),
        !cpu.sgx,
        "{}",
        stderr(&o)
    );
}

/// The log relays: with `logRelays`, what the app writes to the kiln layer's
/// `/opt/kiln/logs/stdout` (-> /proc/self/fd/61) and `.../stderr` (-> fd 62) reaches the
/// container's stdout and stderr unchanged (raw pseudo-terminals: no `\r`), the last lines
/// included, both when the launcher supervises (direct mode) and when it execs the loader
/// (SGX, a fake device here).
#[test]
fn log_relays_carry_log_files_to_stdout_and_stderr() {
    if !can_run("log_relays_carry_log_files_to_stdout_and_stderr") {
        return;
    }
    let writer = "#!/bin/sh\n\
         echo \"access line one\" > /opt/kiln/logs/stdout\n\
         echo \"error line\" > /opt/kiln/logs/stderr\n\
         i=0; while [ $i -lt 200 ]; do echo \"access $i\"; i=$((i+1)); done > /opt/kiln/logs/stdout\n\
         echo \"direct stdout\"\n";
    for (mode, sgx) in [("direct", false), ("sgx", true)] {
        let mut b = Bundle::new(&format!("relay-{mode}"));
        b.launcher_config["logRelays"] = json!(true);
        for (link, fd) in [("stdout", 61), ("stderr", 62)] {
            let p = b.path(&format!("/opt/kiln/logs/{link}"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(format!("/proc/self/fd/{fd}"), p).unwrap();
        }
        b.write_exec(&format!("{RT}/direct/libpal.so"), writer);
        b.write_exec(&format!("{RT}/lib/ld-linux-x86-64.so.2"), writer);
        let o = if sgx {
            b.fake_device("/dev/sgx_enclave").run()
        } else {
            b.env("KILN_INSECURE_NO_SGX=1").run()
        };
        assert_eq!(o.status.code(), Some(0), "{mode}: {o:?}");
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(out.contains("access line one\n"), "{mode}: {out}");
        assert!(out.contains("access 199\n"), "{mode}: the last line: {out}");
        assert!(out.contains("direct stdout\n"), "{mode}: {out}");
        assert!(!out.contains('\r'), "{mode}: raw mode: {out:?}");
        assert!(err.contains("error line\n"), "{mode}: {err}");
        assert!(
            !err.contains("cannot start the log relays"),
            "{mode}: {err}"
        );
    }
}
