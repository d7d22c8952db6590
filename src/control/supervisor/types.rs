//! Instance type → vCPUs and memory, for the VM config.
//!
//! TODO(front): switch to `api::instance_types::instance_type` (the
//! catalog in resources/instance-types.json) once it lands; this table is
//! the fallback for the common small types until then.

/// (vCPUs, memory MiB) of `instance_type`, if known.
pub fn shape(instance_type: &str) -> Option<(u8, u64)> {
    let table: &[(&str, u8, u64)] = &[
        ("t2.nano", 1, 512),
        ("t2.micro", 1, 1024),
        ("t2.small", 1, 2048),
        ("t2.medium", 2, 4096),
        ("t3.nano", 2, 512),
        ("t3.micro", 2, 1024),
        ("t3.small", 2, 2048),
        ("t3.medium", 2, 4096),
        ("t3.large", 2, 8192),
        ("t3a.micro", 2, 1024),
        ("t3a.small", 2, 2048),
        ("m5.large", 2, 8192),
        ("m5.xlarge", 4, 16384),
        ("c5.large", 2, 4096),
        ("c5.xlarge", 4, 8192),
    ];
    table
        .iter()
        .find(|(name, _, _)| *name == instance_type)
        .map(|&(_, vcpus, mib)| (vcpus, mib))
}
