//! Real apps, converted by kiln and run under runc: Debian bookworm images built like the
//! official ones from Debian packages (kiln_tests::real_apps, scripts/build-real-app-images.sh;
//! cached, never pulled from a registry) are pushed to a loopback docker-registry,
//! converted by the engine's pipeline with only the flags a user would pass (threads,
//! memSize, javaMode), pulled and unpacked (skopeo, umoci) and run with runc and
//! `KILN_INSECURE_NO_SGX=1`. Each app must do its job: print (bash, python, java, an image
//! setting LD_LIBRARY_PATH), serve HTTP (python http.server as user 1000, nginx configured
//! as the official image, node), answer PING (redis); nginx and redis must stop gracefully
//! on SIGTERM to the container's init (`runc kill ID TERM`, what `docker stop` sends).
//!
//! Runtime: the fixture runtime image (the fixture loader stands in for Gramine's direct
//! PAL: it execs the manifest's entrypoint with its argv, env, cwd and uid). With
//! `KILN_REAL_APPS_GRAMINE=PREFIX` the runtime is packed by `kiln runtime pack` from the
//! Gramine install at PREFIX instead, and the apps run under Gramine's direct mode; then
//! no output may contain Gramine's raw-syscall emulation message.
//!
//! Servers listen in the container's own network namespace; the test reaches them on its
//! 127.0.0.1 through nsenter + curl (or `runc exec redis-cli`). Needs root, debootstrap,
//! docker-registry, skopeo, umoci, runc, curl, nsenter; skips loudly otherwise unless
//! KILN_REQUIRE_RUNC=1.

use std::sync::OnceLock;
use std::time::Duration;

use kiln_engine::image::registry::UploadMode;
use kiln_tests::images::push_image;
use kiln_tests::real_apps::{cannot_build, real_app_image};
use kiln_tests::registry::TestRegistry;
use kiln_tests::runc::{pull_and_unpack, runc_tests_can_run, Container};
use kiln_tests::runtime_fixture::{
    pack_gramine_runtime, push_fixture_runtime, test_pipeline_env, RuntimeBinaries,
};
use kiln_tests::HarnessError;

const TOOLS: &[&str] = &[
    "docker-registry",
    "skopeo",
    "umoci",
    "runc",
    "curl",
    "nsenter",
    "debootstrap",
    "unshare",
];

/// Gramine's message for a `syscall` instruction trapped and emulated (unpatched libc).
const RAW_SYSCALL: &str = "Emulating a raw system/supervisor call";

fn can_run(test: &str) -> bool {
    if !runc_tests_can_run(test, TOOLS) {
        return false;
    }
    if let Some(why) = cannot_build() {
        if std::env::var("KILN_REQUIRE_RUNC").as_deref() == Ok("1") {
            panic!("{test}: real-app images cannot be built: {why}");
        }
        eprintln!("\n!!!!!!!! SKIPPED {test}: {why} !!!!!!!!\n");
        return false;
    }
    true
}

/// The fixture runtime's binaries, built once per test binary.
fn runtime_binaries() -> Result<&'static RuntimeBinaries, HarnessError> {
    static BINS: OnceLock<Result<RuntimeBinaries, String>> = OnceLock::new();
    BINS.get_or_init(|| RuntimeBinaries::build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone().into())
}

fn gramine_prefix() -> Option<String> {
    std::env::var("KILN_REAL_APPS_GRAMINE")
        .ok()
        .filter(|p| !p.is_empty())
}

/// A converted app, unpacked into a runc bundle.
struct Converted {
    _registry: TestRegistry,
    work: tempfile::TempDir,
    bundle: std::path::PathBuf,
    /// The conversion's warnings.
    warnings: Vec<String>,
}

impl Converted {
    /// A file of the converted image's root filesystem, as text.
    fn file(&self, path: &str) -> String {
        let p = self
            .bundle
            .join("rootfs")
            .join(path.trim_start_matches('/'));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Whether some warning contains every one of `parts`.
    fn warned(&self, parts: &[&str]) -> bool {
        self.warnings
            .iter()
            .any(|w| parts.iter().all(|p| w.contains(p)))
    }
}

/// Builds (or reads from the cache) `app`'s image, pushes it to a fresh loopback
/// registry with a runtime image, converts it with `options` (only user flags) and
/// unpacks the output.
async fn convert(app: &str, options: serde_json::Value) -> Result<Converted, HarnessError> {
    let t0 = std::time::Instant::now();
    let app_owned = app.to_string();
    let image = tokio::task::spawn_blocking(move || real_app_image(&app_owned)).await??;
    let reg = TestRegistry::plain()?;
    let client = reg.client(None)?;
    push_image(&client, app, &image, Some("1"), UploadMode::Monolithic).await?;
    let runtime = match gramine_prefix() {
        None => {
            push_fixture_runtime(&client, runtime_binaries()?).await?;
            format!("{}/kiln/runtime:fixture", reg.host())
        }
        Some(prefix) => pack_gramine_runtime(&prefix, &reg.host())?,
    };
    let mut env = test_pipeline_env(reg.transport()?, runtime, &reg.host())?;
    env.scans = std::sync::Arc::new(kiln_native::ThreadedScans::default());
    let mut body = serde_json::json!({
        "inputImageName": format!("{}/{app}:1", reg.host()),
        "outputImageName": format!("{}/{app}-sgx:1", reg.host()),
    });
    if let (Some(b), Some(o)) = (body.as_object_mut(), options.as_object()) {
        b.extend(o.clone());
    }
    let req = kiln_engine::api::parse_request(body.to_string().as_bytes())
        .map_err(|e| format!("{app}: request {body}: {}", e.reason))?;
    let out = kiln_engine::pipeline::convert(req, &env)
        .await
        .map_err(|e| format!("{app}: conversion failed: {}", e.reason))?;
    let work = tempfile::tempdir()?;
    let reference = format!("{}/{app}-sgx:1", reg.host());
    let w = work.path().to_path_buf();
    let bundle =
        tokio::task::spawn_blocking(move || pull_and_unpack(&reference, &w, "conv")).await??;
    eprintln!(
        "{app}: converted and unpacked in {:.1} s (mrenclave {}, warnings {:?})",
        t0.elapsed().as_secs_f64(),
        out.response.mrenclave,
        out.response.warnings
    );
    Ok(Converted {
        _registry: reg,
        work,
        bundle,
        warnings: out.response.warnings.clone(),
    })
}

fn no_sgx_env() -> Vec<&'static str> {
    vec!["KILN_INSECURE_NO_SGX=1"]
}

/// Under real Gramine, no process may trap its system calls.
fn check_no_raw_syscalls(app: &str, c: &Container) {
    if gramine_prefix().is_some() {
        let all = format!("{}{}", c.stdout(), c.stderr());
        assert!(!all.contains(RAW_SYSCALL), "{app}: {all}");
    }
}

/// Runs a converted app that prints and ends; returns its stdout + stderr after checking
/// it exited 0 and printed `want`.
/// Converts `app`, runs `check` on the conversion, runs the image to its end and checks
/// that it printed `want`; returns all it printed.
async fn prints(
    app: &str,
    options: serde_json::Value,
    want: &str,
    check: impl FnOnce(&Converted),
) -> Result<String, HarnessError> {
    let conv = convert(app, options).await?;
    check(&conv);
    let mut c = Container::new(&conv.bundle, app, &no_sgx_env())?;
    let status = tokio::task::block_in_place(|| c.run_to_end(Duration::from_secs(120)))?;
    let (out, err) = (c.stdout(), c.stderr());
    eprintln!("{app}: {status}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(status.success(), "{app}: {status}\n{out}\n{err}");
    assert!(
        out.contains(want) || err.contains(want),
        "{app}: no {want:?} in\n{out}\n{err}"
    );
    check_no_raw_syscalls(app, &c);
    drop(c);
    drop(conv.work);
    Ok(format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bash_prints_and_refuses_without_sgx() -> Result<(), HarnessError> {
    if !can_run("bash_prints_and_refuses_without_sgx") {
        return Ok(());
    }
    let conv = convert("bash", serde_json::json!({})).await?;
    // Without SGX and without the insecure switch the launcher refuses in one line.
    let mut c = Container::new(&conv.bundle, "bash-nosgx", &[])?;
    let st = tokio::task::block_in_place(|| c.run_to_end(Duration::from_secs(60)))?;
    assert!(!st.success(), "{}", c.stdout());
    assert!(c.stdout().is_empty(), "{}", c.stdout());
    assert!(c.stderr().contains("no SGX device"), "{}", c.stderr());
    drop(c);
    let mut c = Container::new(&conv.bundle, "bash", &no_sgx_env())?;
    let st = tokio::task::block_in_place(|| c.run_to_end(Duration::from_secs(60)))?;
    assert!(st.success(), "{}\n{}", c.stdout(), c.stderr());
    assert!(
        c.stdout().contains("hello from bash 5.2"),
        "{}\n{}",
        c.stdout(),
        c.stderr()
    );
    check_no_raw_syscalls("bash", &c);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_prints() -> Result<(), HarnessError> {
    if !can_run("python_prints") {
        return Ok(());
    }
    prints(
        "python",
        serde_json::json!({}),
        "hello from python 3.11",
        check_libc_choice,
    )
    .await?;
    Ok(())
}

/// Debian 12's glibc (2.36) is older than Gramine 1.9's (2.40): with a runtime that
/// carries Gramine's glibc the app runs with it (its directory leads LD_LIBRARY_PATH, the
/// image's locales through LOCPATH); the fixture runtime has none, and the response says
/// the app keeps its own glibc.
fn check_libc_choice(c: &Converted) {
    let manifest = c.file("/opt/kiln/direct/app.manifest");
    if gramine_prefix().is_some() {
        assert!(
            manifest.contains(
                "LD_LIBRARY_PATH = \"/opt/kiln/runtime/glibc:/usr/local/lib:/lib/x86_64-linux-gnu:"
            ),
            "{manifest}"
        );
        assert!(manifest.contains("LOCPATH = \"/usr/lib/locale\""));
        assert!(manifest.contains("uri = \"file:/opt/kiln/runtime/glibc/libc.so.6\""));
        assert!(!c.warned(&["glibc"]), "{:?}", c.warnings);
    } else {
        assert!(!manifest.contains("LD_LIBRARY_PATH"), "{manifest}");
        assert!(
            c.warned(&["runtime image carries no Gramine glibc", "emulated"]),
            "{:?}",
            c.warnings
        );
    }
}

/// The glibc release of a real Debian image is read from its `libc.so.6` while the layer
/// streams through the scanner (no runc needed).
#[test]
fn debian_glibc_release_is_read_while_scanning() -> Result<(), HarnessError> {
    if let Some(why) = cannot_build() {
        eprintln!(
            "\n!!!!!!!! SKIPPED debian_glibc_release_is_read_while_scanning: {why} !!!!!!!!\n"
        );
        return Ok(());
    }
    let image = real_app_image("python")?;
    let mut versions = std::collections::BTreeMap::new();
    for layer in &image.layers {
        let mut scanner = kiln_engine::image::scan::LayerScanner::new(
            &layer.digest.to_string(),
            &layer.media_type,
        )?;
        for chunk in layer.data.chunks(256 * 1024) {
            scanner.feed(chunk)?;
        }
        versions.extend(scanner.finish()?.libc_versions);
    }
    assert_eq!(
        versions.values().collect::<Vec<_>>(),
        ["2.36"],
        "Debian 12's glibc, found once"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_setting_ld_library_path_runs() -> Result<(), HarnessError> {
    if !can_run("image_setting_ld_library_path_runs") {
        return Ok(());
    }
    // With Gramine's glibc in the runtime its directory leads (it holds the interpreter),
    // then the image's own value; with the fixture runtime (no glibc) the directory holding
    // the image's interpreter is appended after the image's value, since Gramine looks for
    // the ELF interpreter only in LD_LIBRARY_PATH when it is set.
    let (want, value) = if gramine_prefix().is_some() {
        (
            "hello from python with LD_LIBRARY_PATH=/opt/kiln/runtime/glibc:/usr/local/lib:",
            r#"LD_LIBRARY_PATH = "/opt/kiln/runtime/glibc:/usr/local/lib:/lib/x86_64-linux-gnu:"#,
        )
    } else {
        (
            "hello from python with LD_LIBRARY_PATH=/usr/local/lib:/lib64",
            r#"LD_LIBRARY_PATH = "/usr/local/lib:/lib64""#,
        )
    };
    prints("ld-library-path", serde_json::json!({}), want, |conv| {
        let manifest = conv.file("/opt/kiln/sgx1/app.manifest.sgx");
        assert!(manifest.contains(value), "{manifest}");
        if gramine_prefix().is_none() {
            assert!(
                conv.warned(&["LD_LIBRARY_PATH", "/lib64"]),
                "{:?}",
                conv.warnings
            );
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openjdk_through_the_alternatives_symlinks_runs() -> Result<(), HarnessError> {
    if !can_run("openjdk_through_the_alternatives_symlinks_runs") {
        return Ok(());
    }
    // `java` is /usr/bin/java -> /etc/alternatives/java -> /usr/lib/jvm/.../bin/java.
    let opts = serde_json::json!({"javaMode": "OPENJDK", "threads": 32, "memSize": "2G"});
    // The image runs a class compiled by the host's javac, or `java -version` without one.
    let all = prints("java", opts, "17.0.", |conv| {
        let sgx1 = conv.file("/opt/kiln/sgx1/app.manifest.sgx");
        // libos.entrypoint is the JVM itself, not the /usr/bin/java link, so that
        // /proc/self/exe and $ORIGIN lead to the JVM's home.
        assert!(
            sgx1.contains("entrypoint = \"/usr/lib/jvm/java-17-openjdk-amd64/bin/java\""),
            "{sgx1}"
        );
        // The JVM recovers from SIGSEGV: the SGX1 enclave has EXINFO with javaMode, and
        // the launcher checks the CPU for it.
        assert!(sgx1.contains("use_exinfo = true"), "{sgx1}");
        assert!(conv
            .file("/opt/kiln/launcher.json")
            .contains("\"sgx1Exinfo\": true"));
        assert!(
            conv.warned(&["SGX1 enclave", "EXINFO"]),
            "{:?}",
            conv.warnings
        );
    })
    .await?;
    assert!(
        all.contains("hello from java 17") || all.contains("openjdk version \"17"),
        "{all}"
    );
    Ok(())
}

/// Starts a converted server; returns the converted image and its running container.
async fn serve(
    app: &str,
    options: serde_json::Value,
) -> Result<(Converted, Container), HarnessError> {
    let conv = convert(app, options).await?;
    let mut c = Container::new(&conv.bundle, app, &no_sgx_env())?;
    c.start()?;
    Ok((conv, c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_http_server_serves_as_user_1000() -> Result<(), HarnessError> {
    if !can_run("python_http_server_serves_as_user_1000") {
        return Ok(());
    }
    let (_conv, mut c) = serve(
        "python-http",
        serde_json::json!({"threads": 16, "memSize": "1G"}),
    )
    .await?;
    let body =
        tokio::task::block_in_place(|| c.http_get(8000, "/hello.txt", Duration::from_secs(60)))?;
    assert_eq!(body, "hello from the python http server\n");
    // The server process (the container's init after the launcher's and the loader's
    // execs) runs as the image's USER.
    let pid = c.pid(Duration::from_secs(5))?;
    assert_eq!(uid_of(pid)?, 1000);
    check_no_raw_syscalls("python-http", &c);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serves_http() -> Result<(), HarnessError> {
    if !can_run("node_serves_http") {
        return Ok(());
    }
    let (_conv, mut c) = serve("node", serde_json::json!({"threads": 16, "memSize": "1G"})).await?;
    let body = tokio::task::block_in_place(|| c.http_get(3000, "/", Duration::from_secs(60)))?;
    assert!(body.starts_with("hello from node v18."), "{body}");
    let logged = wait_for(|| c.stdout().contains("node listening on 3000"));
    assert!(logged, "stdout {:?} stderr {:?}", c.stdout(), c.stderr());
    check_no_raw_syscalls("node", &c);
    Ok(())
}

/// nginx built like the official image (logs linked to /dev/stdout and /dev/stderr):
/// serves, its access log reaches the container's stdout, and `docker stop`'s SIGTERM
/// ends it gracefully (nginx's fast shutdown: notice lines, exit status 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_logs_to_stdout_and_stops_on_sigterm() -> Result<(), HarnessError> {
    if !can_run("nginx_serves_logs_to_stdout_and_stops_on_sigterm") {
        return Ok(());
    }
    let (conv, mut c) = serve("nginx", serde_json::json!({"threads": 16})).await?;
    // The log links lead to the launcher's relays (a pseudo-terminal, which Gramine opens
    // where it refuses the container's stdout pipe) and are allowed files; nginx's SIGQUIT
    // stop signal becomes SIGTERM (the only signal Gramine passes on); each worker is an
    // enclave.
    let direct = conv.file("/opt/kiln/direct/app.manifest");
    for (log, relay) in [
        ("/var/log/nginx/access.log", "/opt/kiln/logs/stdout"),
        ("/var/log/nginx/error.log", "/opt/kiln/logs/stderr"),
    ] {
        assert!(direct.contains(&format!("\"file:{log}\"")), "{direct}");
        let link = conv.bundle.join("rootfs").join(log.trim_start_matches('/'));
        assert_eq!(std::fs::read_link(&link)?, std::path::Path::new(relay));
    }
    assert!(conv
        .file("/opt/kiln/launcher.json")
        .contains("\"logRelays\": true"));
    assert!(
        conv.warned(&["StopSignal", "SIGQUIT", "SIGTERM"]),
        "{:?}",
        conv.warnings
    );
    assert!(conv.warned(&["processes", "nginx"]), "{:?}", conv.warnings);
    let body = tokio::task::block_in_place(|| c.http_get(80, "/", Duration::from_secs(60)))?;
    assert!(body.contains("Welcome to nginx!"), "{body}");
    // The access log line (access.log -> /dev/stdout) reaches the container's stdout.
    let logged = wait_for(|| c.stdout().contains("\"GET / HTTP/1.1\" 200"));
    assert!(logged, "stdout {:?} stderr {:?}", c.stdout(), c.stderr());
    let status = stop(&mut c)?;
    let err = c.stderr();
    eprintln!("nginx: {status}\nstdout:\n{}\nstderr:\n{err}", c.stdout());
    assert!(err.contains("signal 15 (SIGTERM) received"), "{err}");
    assert!(status.success(), "nginx ended with {status}: {err}");
    check_no_raw_syscalls("nginx", &c);
    drop(c);
    drop(conv);
    Ok(())
}

/// redis as the official image runs it (user redis, /data): answers PING, then stops
/// gracefully on SIGTERM (saves and says goodbye, exit status 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_ping_and_stops_on_sigterm() -> Result<(), HarnessError> {
    if !can_run("redis_answers_ping_and_stops_on_sigterm") {
        return Ok(());
    }
    let (conv, mut c) = serve("redis", serde_json::json!({"threads": 16})).await?;
    let mut pong = String::new();
    let answered = wait_for(|| {
        if let Ok(o) = c.exec(&["/usr/bin/redis-cli", "ping"]) {
            pong = String::from_utf8_lossy(&o.stdout).into_owned();
        }
        pong.trim() == "PONG"
    });
    assert!(
        answered,
        "redis-cli ping: {pong:?}; stdout {:?} stderr {:?}",
        c.stdout(),
        c.stderr()
    );
    // As the image's USER redis (uid 100 in the image's /etc/passwd).
    let pid = c.pid(Duration::from_secs(5))?;
    assert_eq!(uid_of(pid)?, 100);
    let status = stop(&mut c)?;
    let out = format!("{}{}", c.stdout(), c.stderr());
    eprintln!("redis: {status}\n{out}");
    assert!(
        out.contains("Received SIGTERM scheduling shutdown"),
        "{out}"
    );
    assert!(out.contains("ready to exit, bye bye"), "{out}");
    assert!(status.success(), "redis ended with {status}: {out}");
    check_no_raw_syscalls("redis", &c);
    drop(c);
    drop(conv);
    Ok(())
}

/// `docker stop` without the SIGKILL: SIGTERM to the container's init, then the
/// container must end by itself within 20 s.
fn stop(c: &mut Container) -> Result<std::process::ExitStatus, HarnessError> {
    c.kill("TERM")?;
    tokio::task::block_in_place(|| c.wait(Duration::from_secs(20)))?.ok_or_else(|| {
        format!(
            "{} still running 20 s after SIGTERM: stdout {:?} stderr {:?}",
            c.id(),
            c.stdout(),
            c.stderr()
        )
        .into()
    })
}

/// The real uid of a host process.
fn uid_of(pid: u32) -> Result<u32, HarnessError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| format!("/proc/{pid}/status: no Uid line"))?;
    Ok(uid.parse()?)
}

fn wait_for(mut what: impl FnMut() -> bool) -> bool {
    for _ in 0..150 {
        if what() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
