//! The parts of the MANAGER_CA runc end-to-end (worker/test/manager-e2e.test.mjs) that stand
//! on their own: a container in the host's network namespace (`runc::share_host_network`)
//! reaches a server on the host's loopback, and the `/dev/attestation` stand-in
//! (`attestation_standin`, bind-mounted with `runc::bind_mount`) answers a process inside
//! the container that writes its report data and reads the quote back as kiln-init does;
//! the quote verifies under the TEST root with that report data.
//!
//! Needs root, docker-registry, skopeo, umoci, runc, mkfifo and /bin/busybox
//! (busybox-static); skipped loudly without them (a failure with `KILN_REQUIRE_RUNC=1`).

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

use kiln_engine::attest::{parse_quote, read_evidence, verify_evidence, AttestPolicy, TrustRoot};
use kiln_engine::image::registry::UploadMode;
use kiln_tests::attestation_standin::{AttestationStandIn, Served};
use kiln_tests::images::push_image;
use kiln_tests::registry::TestRegistry;
use kiln_tests::runc::{
    bind_mount, pull_and_unpack, runc_tests_can_run, share_host_network, Container,
};
use kiln_tests::sample_images::busybox_image;
use kiln_tests::test_quotes::{QuoteSpec, TestPki};
use kiln_tests::HarnessError;

/// A one-shot HTTP server on the host's loopback answering `body`; returns its port.
fn host_server(body: &'static str) -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_container_reaches_loopback_and_gets_a_test_quote() -> Result<(), HarnessError>
{
    if !runc_tests_can_run(
        "attested_runc",
        &["docker-registry", "skopeo", "umoci", "runc", "mkfifo"],
    ) {
        return Ok(());
    }
    if !std::path::Path::new("/bin/busybox").exists() {
        eprintln!(
            "\n!!!!!!!! SKIPPED attested_runc: needs /bin/busybox (busybox-static) !!!!!!!!\n"
        );
        return Ok(());
    }
    let port = host_server("hello from the host")?;
    // busybox as root: fetch from the host's loopback, then kiln-init's half of
    // /dev/attestation (64 bytes of report data written and closed, the quote read to EOF).
    let script = format!(
        "busybox wget -q -O - http://127.0.0.1:{port}/ && echo; \
         printf 'kiln-report-data-%047d' 7 > /dev/attestation/user_report_data && \
         cat /dev/attestation/quote > /tmp/quote && echo quote-bytes=$(busybox wc -c < /tmp/quote)"
    );
    let mut image = busybox_image()?;
    let mut cfg: serde_json::Value = serde_json::from_slice(&image.config.data)?;
    cfg["config"]["User"] = serde_json::json!("0:0");
    cfg["config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c", script]);
    cfg["config"]["Cmd"] = serde_json::json!([]);
    image.set_config(&cfg)?;
    let reg = TestRegistry::plain()?;
    push_image(
        &reg.client(None)?,
        "busybox-root",
        &image,
        Some("1"),
        UploadMode::Monolithic,
    )
    .await?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let pki = TestPki::new(now)?;
    let root = pki.root_der();
    let template = QuoteSpec::new(now, [0x5a; 32], [0xa5; 32], [0; 64]);
    let collateral = pki.collateral(&template)?;
    let work = tempfile::tempdir()?;
    let mut standin = AttestationStandIn::start(&work.path().join("attestation"), pki, template)?;
    let bundle = pull_and_unpack(&format!("{}/busybox-root:1", reg.host()), work.path(), "b")?;
    share_host_network(&bundle)?;
    bind_mount(&bundle, standin.dir(), "/dev/attestation")?;
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json"))?)?;
    assert!(
        !config["linux"]["namespaces"]
            .as_array()
            .ok_or("no namespaces")?
            .iter()
            .any(|n| n["type"] == "network"),
        "{config}"
    );

    let mut c = tokio::task::block_in_place(|| -> Result<_, HarnessError> {
        let mut c = Container::new(&bundle, "attested-parts", &[])?;
        c.run_to_end(Duration::from_secs(60))?;
        Ok(c)
    })?;
    let (stdout, stderr) = (c.stdout(), c.stderr());
    let _ = c.wait(Duration::ZERO);
    drop(c);
    assert!(
        stdout.contains("hello from the host"),
        "stdout {stdout:?} stderr {stderr:?}"
    );
    let served = standin.stop();
    let [Served::Quote { report_data, quote }] = served.as_slice() else {
        return Err(format!("served {served:?}; stdout {stdout:?} stderr {stderr:?}").into());
    };
    let expected = format!("kiln-report-data-{:047}", 7);
    assert_eq!(report_data.as_slice(), expected.as_bytes());
    assert!(
        stdout.contains(&format!("quote-bytes={}", quote.len())),
        "{stdout}"
    );
    let policy = AttestPolicy {
        allowed_tcb_statuses: vec!["UpToDate".into()],
        allow_debug: false,
        expect_mrenclave: Some("5a".repeat(32)),
        expect_mrsigner: Some("a5".repeat(32)),
    };
    let report = verify_evidence(
        &read_evidence(quote)?,
        &collateral,
        now,
        &policy,
        &TrustRoot::Custom(root),
        None,
    )?;
    assert!(report.passed, "{report:?}");
    let (_, body) = parse_quote(quote)?;
    assert_eq!(
        body.ok_or("no report body")?.report_data.as_slice(),
        expected.as_bytes()
    );
    Ok(())
}
