//! What several engine integration tests share (`mod support;`).

use kiln_engine::gramine::runtime::RuntimeDescriptor;

/// A runtime descriptor with the standard layout under /opt/kiln/runtime and
/// placeholder hashes (`ab…` for libsysdb.so, `cd…` for the SGX libpal.so).
pub fn runtime() -> RuntimeDescriptor {
    RuntimeDescriptor {
        gramine_version: "1.9".into(),
        prefix: "/opt/kiln/runtime".into(),
        sgx_libpal: "sgx/libpal.so".into(),
        sgx_loader: "sgx/loader".into(),
        direct_libpal: "direct/libpal.so".into(),
        libsysdb: "libsysdb.so".into(),
        libsysdb_sha256: "ab".repeat(32),
        sgx_libpal_sha256: "cd".repeat(32),
        lib_dir: "lib".into(),
    }
}
