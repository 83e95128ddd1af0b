//! The workspace's `kiln` CLI binary, for tests that run it as a user would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::HarnessError;

/// Builds (if needed) and returns the `kiln` binary of this workspace, next to the
/// running test executable (`target/<profile>/deps/<test>` → `target/<profile>/kiln`).
pub fn kiln_bin() -> Result<PathBuf, HarnessError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--quiet", "-p", "kiln"])
        .status()?;
    if !st.success() {
        return Err("cargo build -p kiln failed".into());
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).ok_or("no target dir")?;
    Ok(dir.join("kiln"))
}
