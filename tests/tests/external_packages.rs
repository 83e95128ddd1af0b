//! `externalPackages` through the `kiln convert` binary: the runtime image comes from an
//! OCI image layout on disk (never from `--runtime`'s registry, which is unreachable
//! here), is staged into the output repository by digest only, and gives the same
//! measurements as the same runtime read from a registry. A directory that does not
//! hold it is refused by name and leaves no tag.

use std::path::Path;
use std::process::{Command, Output};

use kiln_engine::api::ConvertResponse;
use kiln_tests::cli::kiln_bin;
use kiln_tests::images::write_oci_layout;
use kiln_tests::registry::TestRegistry;
use kiln_tests::runtime_fixture::{push_fixture_runtime, RuntimeBinaries};
use kiln_tests::sample_images::{busybox_image, push_busybox};
use kiln_tests::{require_tool, HarnessError};

struct Run {
    out: Output,
}

impl Run {
    fn response(&self) -> Result<ConvertResponse, HarnessError> {
        if !self.out.status.success() {
            return Err(format!(
                "kiln convert failed: {}\n{}",
                String::from_utf8_lossy(&self.out.stdout),
                String::from_utf8_lossy(&self.out.stderr)
            )
            .into());
        }
        Ok(serde_json::from_slice(&self.out.stdout)?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_from_a_directory_measures_like_the_registry_one() -> Result<(), HarnessError> {
    require_tool!("docker-registry");
    let a = TestRegistry::plain()?;
    let ca = a.client(None)?;
    push_busybox(&ca, "busybox").await?;
    let rt = push_fixture_runtime(&ca, &RuntimeBinaries::placeholders()).await?;
    let work = tempfile::tempdir()?;
    let layout = work.path().join("packages");
    write_oci_layout(&layout, &[&rt], &[("fixture", &rt.manifest)])?;
    let kiln = kiln_bin()?;
    let convert =
        |out: &str, runtime: &str, packages: Option<&Path>| -> Result<Run, HarnessError> {
            let mut c = Command::new(&kiln);
            c.args(["convert", "--no-bars", "--input"])
                .arg(format!("{}/busybox:1", a.host()))
                .arg("--output")
                .arg(format!("{}/{out}", a.host()))
                .arg("--runtime")
                .arg(runtime)
                .args(["--insecure-registry", &a.host()])
                .arg("--state-dir")
                .arg(work.path().join("state"))
                .env("SOURCE_DATE_EPOCH", "1700000000");
            if let Some(p) = packages {
                c.arg("--external-packages").arg(p);
            }
            Ok(Run { out: c.output()? })
        };

    // Baseline: the runtime from the registry.
    let base = convert(
        "from-registry:1",
        &format!("{}/kiln/runtime:fixture", a.host()),
        None,
    )?
    .response()?;
    // The same runtime from the directory; --runtime names a registry nobody listens on.
    let staged = convert(
        "from-dir:1",
        "127.0.0.1:9/kiln/runtime:fixture",
        Some(&layout),
    )?
    .response()?;
    assert_eq!(staged.mrenclave, base.mrenclave);
    assert_eq!(staged.mrenclave2, base.mrenclave2);
    assert_eq!(staged.mrsigner, base.mrsigner);
    // Staged by digest only: the output repository has just the requested tag.
    assert_eq!(ca.list_tags("from-dir").await?, vec!["1".to_string()]);

    // A directory holding several images, none tagged like --runtime: refused by name.
    let other = busybox_image()?;
    let bad = work.path().join("bad");
    write_oci_layout(
        &bad,
        &[&rt, &other],
        &[("a", &rt.manifest), ("b", &other.manifest)],
    )?;
    let r = convert("refused:1", "127.0.0.1:9/kiln/runtime:fixture", Some(&bad))?;
    assert!(!r.out.status.success());
    let err = String::from_utf8_lossy(&r.out.stderr);
    assert!(err.contains("externalPackages"), "{err}");
    assert!(
        ca.list_tags("refused").await.unwrap_or_default().is_empty(),
        "a refused conversion left a tag"
    );

    // A relative path is a validation error (400 naming the field), nothing pushed.
    let r = convert(
        "relative:1",
        "127.0.0.1:9/kiln/runtime:fixture",
        Some(Path::new("packages")),
    )?;
    assert!(!r.out.status.success());
    let body = String::from_utf8_lossy(&r.out.stdout);
    assert!(body.contains("externalPackages"), "{body}");
    Ok(())
}
