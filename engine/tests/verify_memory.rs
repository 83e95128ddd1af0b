//! The engine's read-back API end to end without any I/O, natively and in headless
//! Chromium (wasm32): a converted image built in memory (runtime layer from
//! `runtime_image::build`, a kiln layer with SGX1/EDMM manifests and SIGSTRUCTs signed
//! with test-key.pem), served by an in-memory [`BlobSource`], then `read_image`,
//! `inspect` and `verify` — as the app's Verify page and the worker call them.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use bytes::Bytes;
use kiln_engine::image::layer_writer::{write_layer, NewEntry, WrittenLayer};
use kiln_engine::image::manifest::{ManifestKind, RawManifest};
use kiln_engine::image::reference::Digest;
use kiln_engine::image::registry::{BlobStream, ResolvedImage};
use kiln_engine::runtime_image::{build_runtime_image, RuntimeFiles};
use kiln_engine::sgx::gramine_layout::measure;
use kiln_engine::sgx::signer::{gramine_sigstruct_body, PrivateKeySigner};
use kiln_engine::sgx::sigstruct_date::SigstructDate;
use kiln_engine::verify::{
    inspect, read_image, verify, BlobSource, Expectations, ImageKind, SourceError,
};
use serde_json::json;

const LIBPAL: &[u8] = include_bytes!("../testdata/gramine/libpal_test.so");
const KEY: &str = include_str!("../testdata/gramine/test-key.pem");
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Blobs held in memory.
struct MemoryBlobs(HashMap<String, Bytes>);

#[kiln_engine::util::async_trait]
impl BlobSource for MemoryBlobs {
    async fn open(&self, digest: &Digest, _size: u64) -> Result<BlobStream, SourceError> {
        let b = self
            .0
            .get(&digest.to_string())
            .cloned()
            .ok_or_else(|| SourceError::Fetch {
                digest: digest.to_string(),
                message: "not in memory".into(),
            })?;
        Ok(Box::pin(futures_util::stream::iter(vec![Ok(b)])))
    }
}

/// Runs a future whose I/O is all in memory (it never waits).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct Built {
    image: ResolvedImage,
    blobs: MemoryBlobs,
    mrenclave: String,
    mrsigner: String,
}

fn build(label_mrenclave: Option<&str>) -> Built {
    let files = RuntimeFiles {
        gramine_version: "1.9".into(),
        sgx_libpal: LIBPAL.to_vec(),
        sgx_loader: b"loader".to_vec(),
        direct_libpal: b"direct".to_vec(),
        libsysdb: b"libsysdb".to_vec(),
        libs: Default::default(),
        launcher: b"launcher".to_vec(),
        kiln_init: b"init".to_vec(),
        glibc: Default::default(),
    };
    let rt = build_runtime_image(&files, "/opt/kiln/runtime", 0).unwrap();
    let d = &rt.descriptor;
    let signer = PrivateKeySigner::from_pem(KEY, None).unwrap();
    let date = SigstructDate::new(2026, 1, 2).unwrap();
    let mut sigs = Vec::new();
    let mut manifests = Vec::new();
    for edmm in [false, true] {
        let m = format!(
            "loader.entrypoint.uri = \"{}\"\nloader.entrypoint.sha256 = \"{}\"\n[sgx]\n\
             enclave_size = \"2M\"\nmax_threads = 1\nedmm_enable = {edmm}\n",
            d.libsysdb_uri(),
            d.libsysdb_sha256
        );
        let g = measure(m.as_bytes(), LIBPAL).unwrap();
        let s = signer
            .sign_sigstruct(gramine_sigstruct_body(g.mrenclave, &g.params, date))
            .unwrap();
        sigs.push(s.to_bytes().to_vec());
        manifests.push(m);
    }
    let mrenclave = hex::encode(&sigs[0][960..992]);
    let mrenclave2 = hex::encode(&sigs[1][960..992]);
    let mrsigner = hex::encode(
        kiln_engine::sgx::sigstruct::Sigstruct::parse(&sigs[0])
            .unwrap()
            .mrsigner(),
    );
    let kiln = write_layer(
        &[
            NewEntry::file(
                "/opt/kiln/sgx1/app.manifest.sgx",
                0o644,
                manifests[0].clone(),
            ),
            NewEntry::file("/opt/kiln/sgx1/app.sig", 0o644, sigs[0].clone()),
            NewEntry::file(
                "/opt/kiln/edmm/app.manifest.sgx",
                0o644,
                manifests[1].clone(),
            ),
            NewEntry::file("/opt/kiln/edmm/app.sig", 0o644, sigs[1].clone()),
            NewEntry::file(
                "/opt/kiln/launcher.json",
                0o644,
                br#"{"version":1}"#.to_vec(),
            ),
        ],
        0,
    )
    .unwrap();
    let input = write_layer(&[NewEntry::file("/bin/app", 0o755, b"app".to_vec())], 0).unwrap();
    let layers: Vec<&WrittenLayer> = vec![&input, &rt.layer, &kiln];
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Entrypoint": ["/opt/kiln/runtime/kiln-launcher"],
            "Env": [format!("ENCLAVEOS_SIGNATURE={}", b64(&sigs[0])), format!("ENCLAVEOS_SIGNATURE2={}", b64(&sigs[1]))],
            "Labels": {
                "dev.kiln.format": "1",
                "dev.kiln.mrenclave": label_mrenclave.unwrap_or(&mrenclave),
                "dev.kiln.mrenclave2": mrenclave2,
                "dev.kiln.mrsigner": mrsigner,
                "dev.kiln.isvprodid": "0", "dev.kiln.isvsvn": "0",
            }
        },
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    let config = Bytes::from(serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::sha256_of(&config).to_string(), "size": config.len()},
        "layers": layers.iter().map(|l| json!({"mediaType": LAYER_GZIP, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
    });
    let manifest = RawManifest::with_kind(
        serde_json::to_vec(&manifest).unwrap(),
        ManifestKind::OciManifest,
    );
    let blobs = MemoryBlobs(
        layers
            .iter()
            .map(|l| (l.digest.clone(), Bytes::from(l.blob.clone())))
            .collect(),
    );
    Built {
        image: ResolvedImage {
            index: None,
            image_manifest: manifest.image_manifest().unwrap(),
            manifest,
            config,
        },
        blobs,
        mrenclave,
        mrsigner,
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn reads_inspects_and_verifies_in_memory() {
    let b = build(None);
    let contents = block_on(read_image(&b.image, &b.blobs)).unwrap();
    assert_eq!(contents.kind, ImageKind::Kiln);
    let i = inspect(&contents);
    assert_eq!(i.mrenclave.as_deref(), Some(b.mrenclave.as_str()));
    assert_eq!(i.gramine_version.as_deref(), Some("1.9"));
    let r = verify(
        &contents,
        &Expectations {
            mrenclave: Some(b.mrenclave.clone()),
            mrsigner: Some(b.mrsigner.clone()),
        },
    );
    assert!(r.passed, "{:#?}", r.checks);
    // The report is what the app and the worker serialise.
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["passed"], true);

    let bad = build(Some(&"00".repeat(32)));
    let contents = block_on(read_image(&bad.image, &bad.blobs)).unwrap();
    let r = verify(&contents, &Expectations::default());
    assert!(!r.passed);
    let failed: Vec<String> = r
        .failures()
        .map(|c| format!("{}/{}", c.subject, c.id))
        .collect();
    assert_eq!(failed, vec!["sgx1/label"]);
}
