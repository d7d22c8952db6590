//! Joining the instance's cgroup (v2). The daemon made it and set its
//! limits; the VMM only moves itself in, while still root.

use std::path::Path;

use super::JailError;

/// Writes our pid to `dir/cgroup.procs`.
pub fn join(dir: &Path) -> Result<(), JailError> {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(JailError::io(format!("join the cgroup {}", dir.display())))
}
