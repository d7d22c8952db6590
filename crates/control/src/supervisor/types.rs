//! Instance type → vCPUs and memory, for the VM config: the catalog of
//! resources/instance-types.json (`crate::catalog`).

use crate::catalog::instance_type;

/// (vCPUs, memory MiB) of `instance_type`, if the catalog knows it.
pub fn shape(name: &str) -> Option<(u8, u64)> {
    let (vcpus, memory_mib) = instance_type(name)?;
    Some((u8::try_from(vcpus).ok()?, memory_mib))
}
