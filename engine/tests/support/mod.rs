//! What several engine integration tests share (`mod support;`).

use kiln_engine::gramine::runtime_descriptor::RuntimeDescriptor;

/// A runtime descriptor with the standard layout under /opt/kiln/runtime and
/// placeholder hashes (`ab…` for libsysdb.so, `cd…` for the SGX libpal.so).
pub fn runtime() -> RuntimeDescriptor {
    RuntimeDescriptor::standard("1.9", "/opt/kiln/runtime", "ab".repeat(32), "cd".repeat(32))
}
