//! Converted images for the inspect/verify tests, built by hand exactly as
//! docs/image-formats.md describes (until the real pipeline's output replaces them):
//! an input layer, a runtime layer (engine `runtime_image::build` over the synthetic
//! libpal `engine/testdata/gramine/libpal_test.so`), and a kiln layer with SGX1 and EDMM
//! manifests, SIGSTRUCTs signed with `engine/testdata/gramine/test-key.pem`,
//! launcher.json, conversion.json; labels, annotations and `ENCLAVEOS_SIGNATURE*`.
//!
//! [`Tamper`] variants break one claim each; [`gsc_image`] is a GSC-style image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use kiln_engine::image::layer_writer::{write_layer, NewEntry, NewEntryKind};
use kiln_engine::image::manifest::{
    ManifestKind, RawManifest, OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST,
};
use kiln_engine::runtime_image::build::{build_runtime_image, descriptor_for, layer_entries};
use kiln_engine::runtime_image::RuntimeFiles;
use kiln_engine::sgx::gramine_layout::measure;
use kiln_engine::sgx::signer::{gramine_sigstruct_body, PrivateKeySigner};
use kiln_engine::sgx::sigstruct::Sigstruct;
use kiln_engine::sgx::sigstruct_date::SigstructDate;
use serde_json::json;

use crate::images::{build_image, Blob, FileSpec, ImageFormat, TestImage};
use crate::HarnessError;

/// The runtime prefix.
pub const PREFIX: &str = "/opt/kiln/runtime";

/// One broken claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Nothing broken.
    None,
    /// One byte of the SGX1 manifest changed after signing.
    ManifestByte,
    /// `dev.kiln.mrenclave` names another MRENCLAVE.
    WrongMrenclaveLabel,
    /// The SGX1 SIGSTRUCT is signed by another key.
    OtherKey,
    /// The runtime layer's libpal.so differs from the descriptor's hash.
    WrongLibpal,
    /// `ENCLAVEOS_SIGNATURE` holds the EDMM SIGSTRUCT.
    MismatchedEnvSignature,
    /// The runtime layer's libsysdb.so differs from the one the manifests name.
    WrongLibsysdb,
    /// The SGX1 SIGSTRUCT sets DEBUG although the manifest says `debug = false`.
    DebugAttribute,
}

/// A converted image and what it claims.
#[derive(Debug, Clone)]
pub struct ConvertedFixture {
    /// The converted image.
    pub image: TestImage,
    /// SGX1 MRENCLAVE (hex).
    pub mrenclave: String,
    /// EDMM MRENCLAVE (hex).
    pub mrenclave2: String,
    /// MRSIGNER (hex).
    pub mrsigner: String,
}

/// engine/testdata/gramine.
pub fn gramine_testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("engine")
        .join("testdata")
        .join("gramine")
}

/// The synthetic SGX PAL.
pub fn test_libpal() -> Result<Vec<u8>, HarnessError> {
    Ok(std::fs::read(gramine_testdata().join("libpal_test.so"))?)
}

/// The test signer (test-key.pem).
pub fn test_signer() -> Result<PrivateKeySigner, HarnessError> {
    let pem = std::fs::read_to_string(gramine_testdata().join("test-key.pem"))?;
    Ok(PrivateKeySigner::from_pem(&pem, None)?)
}

/// Runtime files over the synthetic libpal (other files are small placeholders).
pub fn test_runtime_files() -> Result<RuntimeFiles, HarnessError> {
    Ok(RuntimeFiles {
        gramine_version: "1.9".into(),
        sgx_libpal: test_libpal()?,
        sgx_loader: b"\x7fELF fake loader".to_vec(),
        direct_libpal: b"\x7fELF fake direct pal".to_vec(),
        libsysdb: b"\x7fELF fake libsysdb".to_vec(),
        libs: [("ld-linux-x86-64.so.2".to_string(), b"ld".to_vec())].into(),
        launcher: b"\x7fELF fake launcher".to_vec(),
        kiln_init: b"\x7fELF fake kiln-init".to_vec(),
        glibc: Default::default(),
    })
}

fn to_test_image(
    layers: Vec<Blob>,
    config: Vec<u8>,
    annotations: Option<serde_json::Value>,
) -> Result<TestImage, HarnessError> {
    let config = Blob::new(OCI_CONFIG, config);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    if let Some(a) = annotations {
        manifest["annotations"] = a;
    }
    Ok(TestImage {
        format: ImageFormat::Oci,
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        layers,
        config,
        manifest: RawManifest::with_kind(serde_json::to_vec(&manifest)?, ManifestKind::OciManifest),
    })
}

/// The runtime image as a [`TestImage`].
pub fn runtime_test_image() -> Result<TestImage, HarnessError> {
    let built = build_runtime_image(&test_runtime_files()?, PREFIX, 0)?;
    Ok(TestImage {
        format: ImageFormat::Oci,
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        layers: vec![Blob::new(OCI_LAYER_GZIP, built.layer.blob)],
        config: Blob::new(OCI_CONFIG, built.config.to_vec()),
        manifest: built.manifest,
    })
}

fn manifest_text(libsysdb_sha256: &str, edmm: bool) -> String {
    format!(
        "libos.entrypoint = \"/bin/app\"\nloader.entrypoint.uri = \"file:{PREFIX}/libsysdb.so\"\n\
         loader.entrypoint.sha256 = \"{libsysdb_sha256}\"\n[sgx]\nenclave_size = \"{}\"\n\
         max_threads = 2\ndebug = false\nedmm_enable = {edmm}\nisvprodid = 7\nisvsvn = 3\n",
        if edmm { "64M" } else { "2M" }
    )
}

fn sign(
    signer: &PrivateKeySigner,
    manifest: &[u8],
    libpal: &[u8],
) -> Result<Sigstruct, HarnessError> {
    sign_with(signer, manifest, libpal, false)
}

/// Signs as Gramine would; `force_debug` sets DEBUG whatever the manifest says.
fn sign_with(
    signer: &PrivateKeySigner,
    manifest: &[u8],
    libpal: &[u8],
    force_debug: bool,
) -> Result<Sigstruct, HarnessError> {
    let mut m = measure(manifest, libpal)?;
    m.params.debug |= force_debug;
    let date = SigstructDate::new(2026, 1, 2)?;
    Ok(signer.sign_sigstruct(gramine_sigstruct_body(m.mrenclave, &m.params, date))?)
}

/// Builds the converted image, broken as `tamper` says.
pub fn converted_image(tamper: Tamper) -> Result<ConvertedFixture, HarnessError> {
    let files = test_runtime_files()?;
    let descriptor = descriptor_for(&files, PREFIX)?;
    // The runtime layer (a wrong libpal keeps the descriptor of the right one).
    let mut rt_entries = layer_entries(&files, &descriptor)?;
    let altered = match tamper {
        Tamper::WrongLibpal => Some(descriptor.path_of(&descriptor.sgx_libpal)),
        Tamper::WrongLibsysdb => Some(descriptor.path_of(&descriptor.libsysdb)),
        _ => None,
    };
    for e in &mut rt_entries {
        if Some(&e.path) == altered.as_ref() {
            if let NewEntryKind::File(data) = &mut e.kind {
                if let Some(b) = data.last_mut() {
                    *b ^= 0xff;
                }
            }
        }
    }
    let runtime_layer = write_layer(&rt_entries, 0)?;

    let signer = test_signer()?;
    let m1 = manifest_text(&descriptor.libsysdb_sha256, false);
    let m2 = manifest_text(&descriptor.libsysdb_sha256, true);
    let sig1 = if tamper == Tamper::OtherKey {
        sign(
            &PrivateKeySigner::generate_with_os_rng()?,
            m1.as_bytes(),
            &files.sgx_libpal,
        )?
    } else {
        sign_with(
            &signer,
            m1.as_bytes(),
            &files.sgx_libpal,
            tamper == Tamper::DebugAttribute,
        )?
    };
    let sig2 = sign(&signer, m2.as_bytes(), &files.sgx_libpal)?;
    let mrenclave = hex::encode(sig1.body.enclavehash);
    let mrenclave2 = hex::encode(sig2.body.enclavehash);
    let mrsigner = hex::encode(sig2.mrsigner());
    let sig1_bytes = sig1.to_bytes().to_vec();
    let sig2_bytes = sig2.to_bytes().to_vec();

    let mut m1_bytes = m1.into_bytes();
    if tamper == Tamper::ManifestByte {
        if let Some(p) = m1_bytes.iter().position(|&b| b == b'2') {
            m1_bytes[p] = b'3';
        }
    }
    let launcher = json!({
        "version": 1, "runtimeDir": PREFIX, "sgx1App": "/opt/kiln/sgx1/app",
        "edmmApp": "/opt/kiln/edmm/app", "directApp": "/opt/kiln/direct/app",
    });
    let conversion = json!({
        "input": {"reference": "registry.test/app:1", "digest": "sha256:00"},
        "runtime": {"reference": "registry.test/runtime:1.9"},
        "options": {"isvprodid": 7, "isvsvn": 3},
        "response": {"mrenclave": mrenclave, "mrenclave2": mrenclave2, "mrsigner": mrsigner},
        "kilnVersion": "0.1.0",
    });
    let kiln_layer = write_layer(
        &[
            NewEntry::file(
                "/opt/kiln/launcher.json",
                0o644,
                serde_json::to_vec(&launcher)?,
            ),
            NewEntry::file(
                "/opt/kiln/conversion.json",
                0o644,
                serde_json::to_vec(&conversion)?,
            ),
            NewEntry::file("/opt/kiln/sgx1/app.manifest.sgx", 0o644, m1_bytes),
            NewEntry::file("/opt/kiln/sgx1/app.sig", 0o644, sig1_bytes.clone()),
            NewEntry::file("/opt/kiln/edmm/app.manifest.sgx", 0o644, m2.into_bytes()),
            NewEntry::file("/opt/kiln/edmm/app.sig", 0o644, sig2_bytes.clone()),
            NewEntry::file(
                "/opt/kiln/direct/app.manifest",
                0o644,
                b"# direct\n".to_vec(),
            ),
        ],
        0,
    )?;

    let input = build_image(
        ImageFormat::Oci,
        "linux",
        "amd64",
        None,
        &[vec![FileSpec::new("bin/app", "#!/bin/sh\necho hi\n")]],
    )?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let env1 = if tamper == Tamper::MismatchedEnvSignature {
        b64(&sig2_bytes)
    } else {
        b64(&sig1_bytes)
    };
    let mut labels: BTreeMap<&str, String> = BTreeMap::new();
    labels.insert("dev.kiln.format", "1".into());
    labels.insert("dev.kiln.version", "0.1.0".into());
    labels.insert(
        "dev.kiln.mrenclave",
        if tamper == Tamper::WrongMrenclaveLabel {
            "00".repeat(32)
        } else {
            mrenclave.clone()
        },
    );
    labels.insert("dev.kiln.mrenclave2", mrenclave2.clone());
    labels.insert("dev.kiln.mrsigner", mrsigner.clone());
    labels.insert("dev.kiln.isvprodid", "7".into());
    labels.insert("dev.kiln.isvsvn", "3".into());
    let rt_image = runtime_test_image()?;
    labels.insert("dev.kiln.runtime", rt_image.manifest.digest().to_string());

    let mut cfg: serde_json::Value = serde_json::from_slice(&input.config.data)?;
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array_mut().ok_or("diff_ids")?;
    diff_ids.push(json!(runtime_layer.diff_id));
    diff_ids.push(json!(kiln_layer.diff_id));
    let c = &mut cfg["config"];
    c["Entrypoint"] = json!([format!("{PREFIX}/kiln-launcher")]);
    if let Some(o) = c.as_object_mut() {
        o.remove("Cmd");
    }
    let env = c["Env"].as_array_mut().ok_or("Env")?;
    env.push(json!(format!("ENCLAVEOS_SIGNATURE={env1}")));
    env.push(json!(format!("ENCLAVEOS_SIGNATURE2={}", b64(&sig2_bytes))));
    c["Labels"] = json!(labels);
    cfg["history"] = json!([
        {"created_by": "kiln convert (runtime layer)", "created": "2026-01-02T00:00:00Z"},
        {"created_by": "kiln convert (kiln layer)", "created": "2026-01-02T00:00:00Z"},
    ]);
    let mut layers = input.layers.clone();
    layers.push(Blob::new(OCI_LAYER_GZIP, runtime_layer.blob));
    layers.push(Blob::new(OCI_LAYER_GZIP, kiln_layer.blob));
    let image = to_test_image(layers, serde_json::to_vec(&cfg)?, Some(json!(labels)))?;
    Ok(ConvertedFixture {
        image,
        mrenclave,
        mrenclave2,
        mrsigner,
    })
}

/// A GSC-style image: a base layer, Gramine's install under
/// `/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/`, and the signed
/// `/gramine/app_files/entrypoint.manifest.sgx` + `entrypoint.sig`. Returns the image
/// and its MRENCLAVE.
pub fn gsc_image() -> Result<(TestImage, String), HarnessError> {
    let libpal = test_libpal()?;
    let manifest = "libos.entrypoint = \"/gramine/app_files/entrypoint\"\n\
        loader.entrypoint.uri = \"file:/gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/libsysdb.so\"\n\
        [sgx]\nenclave_size = \"4M\"\nmax_threads = 1\ndebug = true\n";
    let sig = sign(&test_signer()?, manifest.as_bytes(), &libpal)?;
    let pal = FileSpec {
        path: "gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/sgx/libpal.so".into(),
        data: libpal,
        mode: 0o755,
    };
    let image = build_image(
        ImageFormat::Oci,
        "linux",
        "amd64",
        None,
        &[
            vec![FileSpec::new("bin/app", "app")],
            vec![pal],
            vec![
                FileSpec::new("gramine/app_files/entrypoint.manifest.sgx", manifest),
                FileSpec::new("gramine/app_files/entrypoint.sig", sig.to_bytes().to_vec()),
            ],
        ],
    )?;
    Ok((image, hex::encode(sig.body.enclavehash)))
}

/// A GSC-style image holding Gramine's own test vector: `t1.manifest.sgx` and `t1.sig`
/// (signed by Gramine v1.9's signer, not by kiln) with `libpal_test.so`. Its MRENCLAVE
/// is `deb0d147…476b`, its MRSIGNER `6c1c0067…0bfe` (engine/testdata/gramine).
pub fn gsc_vector_image() -> Result<TestImage, HarnessError> {
    let d = gramine_testdata();
    let pal = FileSpec {
        path: "gramine/meson_build_output/lib/x86_64-linux-gnu/gramine/sgx/libpal.so".into(),
        data: std::fs::read(d.join("libpal_test.so"))?,
        mode: 0o755,
    };
    build_image(
        ImageFormat::Oci,
        "linux",
        "amd64",
        None,
        &[vec![
            pal,
            FileSpec::new(
                "gramine/app_files/entrypoint.manifest.sgx",
                std::fs::read(d.join("t1.manifest.sgx"))?,
            ),
            FileSpec::new(
                "gramine/app_files/entrypoint.sig",
                std::fs::read(d.join("t1.sig"))?,
            ),
        ]],
    )
}
