//! DescribeInstanceTypes, over the instance-type catalog
//! (`crate::catalog`).

use super::super::catalog::{InstanceTypeInfo, catalog, info};
use super::filters::{FILTER_PARAMS, Filters};
use super::paging::{PAGING_PARAMS, PageRequest, paginate};
use super::{ActionSpec, Call, DryRun, Registry, XmlWriter};
use ec2_wire::error::Ec2Error;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "DescribeInstanceTypes",
        params: &[
            "InstanceType.N",
            FILTER_PARAMS[0],
            FILTER_PARAMS[1],
            PAGING_PARAMS[0],
            PAGING_PARAMS[1],
            "IncludeUnsupportedInRegion",
        ],
        dry_run: DryRun::Generic,
        handler: describe_instance_types,
    });
}

const FILTERS: &[&str] = &[
    "instance-type",
    "current-generation",
    "free-tier-eligible",
    "burstable-performance-supported",
    "vcpu-info.default-vcpus",
    "memory-info.size-in-mib",
    "processor-info.supported-architecture",
];

fn describe_instance_types(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let req = call.req;
    let names = req.string_list("InstanceType")?;
    for name in &names {
        if info(name).is_none() {
            return Err(Ec2Error::new(
                "InvalidInstanceType",
                400,
                format!("The following supplied instance types do not exist: [{name}]"),
            ));
        }
    }
    let filters = Filters::parse(req, FILTERS)?;
    let page = PageRequest::parse(req, call.action(), 5..=100)?;
    let bool_text = |b: bool| if b { "true" } else { "false" };
    let selected: Vec<&InstanceTypeInfo> = catalog()
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t.name.as_str()))
        .filter(|t| {
            filters.matches("instance-type", &t.name)
                && filters.matches("current-generation", "true")
                && filters.matches("free-tier-eligible", bool_text(t.free_tier))
                && filters.matches("burstable-performance-supported", bool_text(t.burstable))
                && filters.matches("vcpu-info.default-vcpus", &t.vcpus.to_string())
                && filters.matches("memory-info.size-in-mib", &t.memory_mib.to_string())
                && filters.matches("processor-info.supported-architecture", "x86_64")
        })
        .collect();
    let (items, next) = paginate(selected, |t| t.name.clone(), &page, call.action());
    call.reply(|x| {
        x.list("instanceTypeSet", items, write_type);
        x.opt_text("nextToken", next.as_deref());
    })
}

fn write_type(x: &mut XmlWriter, t: &InstanceTypeInfo) {
    x.text("instanceType", &t.name)
        .bool("currentGeneration", true)
        .bool("freeTierEligible", t.free_tier)
        .string_items("supportedUsageClasses", ["on-demand"])
        .string_items("supportedRootDeviceTypes", ["ebs"])
        .string_items("supportedVirtualizationTypes", ["hvm"])
        .bool("bareMetal", false)
        .text("hypervisor", "nitro")
        .element("processorInfo", |x| {
            x.string_items("supportedArchitectures", ["x86_64"])
                .text("sustainedClockSpeedInGhz", &t.clock_ghz.to_string());
        })
        .element("vCpuInfo", |x| {
            x.int("defaultVCpus", t.vcpus)
                .int("defaultCores", t.cores)
                .int("defaultThreadsPerCore", t.threads_per_core);
        })
        .element("memoryInfo", |x| {
            x.int("sizeInMiB", t.memory_mib);
        })
        .bool("instanceStorageSupported", false)
        .element("ebsInfo", |x| {
            x.text("ebsOptimizedSupport", "default")
                .text("encryptionSupport", "unsupported")
                .text("nvmeSupport", "unsupported");
        })
        .element("networkInfo", |x| {
            x.text("networkPerformance", &t.network)
                .int("maximumNetworkInterfaces", 1)
                .int("maximumNetworkCards", 1)
                .int("defaultNetworkCardIndex", 0)
                .int("ipv4AddressesPerInterface", 1)
                .int("ipv6AddressesPerInterface", 0)
                .bool("ipv6Supported", false)
                .text("enaSupport", "unsupported")
                .bool("efaSupported", false);
        })
        .string_items("supportedBootModes", ["legacy-bios", "uefi"])
        .bool("burstablePerformanceSupported", t.burstable)
        .bool("hibernationSupported", false)
        .bool("autoRecoverySupported", false)
        .bool("dedicatedHostsSupported", false);
}
