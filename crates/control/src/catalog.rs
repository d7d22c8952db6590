//! The instance-type catalog (`resources/instance-types.json`, compiled
//! in): what DescribeInstanceTypes lists and what the supervisor sizes VMs
//! with ([`instance_type`]).

use std::sync::OnceLock;

use serde::Deserialize;

const CATALOG_JSON: &str = include_str!("../../../resources/instance-types.json");

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct InstanceTypeInfo {
    pub name: String,
    pub vcpus: u32,
    pub cores: u32,
    pub threads_per_core: u32,
    pub memory_mib: u64,
    pub clock_ghz: f64,
    pub network: String,
    pub burstable: bool,
    pub free_tier: bool,
}

#[derive(Deserialize)]
struct Catalog {
    instance_types: Vec<InstanceTypeInfo>,
}

/// Every type, in catalog order. The file is part of the binary; were it
/// ever malformed the catalog is empty (and a unit test fails).
pub fn catalog() -> &'static [InstanceTypeInfo] {
    static CATALOG: OnceLock<Vec<InstanceTypeInfo>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str::<Catalog>(CATALOG_JSON)
            .map(|c| c.instance_types)
            .unwrap_or_default()
    })
}

pub fn info(name: &str) -> Option<&'static InstanceTypeInfo> {
    catalog().iter().find(|t| t.name == name)
}

/// (vCPUs, memory MiB) of a type, as EC2 publishes them.
pub fn instance_type(name: &str) -> Option<(u32, u64)> {
    info(name).map(|t| (t.vcpus, t.memory_mib))
}
