//! The XML of instances, as botocore's `Instance` and
//! `InstanceStateChange` shapes name their members (volumes: api/volumes/render.rs).

use std::collections::HashMap;

use super::super::XmlWriter;
use crate::store::instances::{InstanceRecord, InstanceState, StateChange};
use crate::store::volumes::{AttachmentState, VolumeRecord};
use crate::supervisor::network::derived_id;
use crate::supervisor::vm_config::{self, ROOT_DEVICE};
use crate::supervisor::{SupervisorConfig, types};
use ec2_wire::clock;
use flint_contract::metadata::{HttpTokens, MetadataOptions, Toggle};

/// What rendering instances needs besides their records.
pub struct Extras<'a> {
    pub cfg: &'a SupervisorConfig,
    pub tags: HashMap<String, Vec<(String, String)>>,
    pub volumes: Vec<VolumeRecord>,
}

pub fn state(x: &mut XmlWriter, name: &str, s: InstanceState) {
    x.element(name, |x| {
        x.int("code", s.code()).text("name", s.name());
    });
}

pub fn state_changes(x: &mut XmlWriter, changes: &[StateChange]) {
    x.list("instancesSet", changes, |x, c| {
        x.text("instanceId", &c.id);
        state(x, "currentState", c.current);
        state(x, "previousState", c.previous);
    });
}

pub fn tags(x: &mut XmlWriter, tags: &[(String, String)]) {
    x.list("tagSet", tags, |x, (k, v)| {
        x.text("key", k).text("value", v);
    });
}

pub fn metadata_options(x: &mut XmlWriter, name: &str, o: &MetadataOptions) {
    x.element(name, |x| {
        x.text("state", "applied")
            .text(
                "httpTokens",
                match o.http_tokens {
                    HttpTokens::Optional => "optional",
                    HttpTokens::Required => "required",
                },
            )
            .int("httpPutResponseHopLimit", o.http_put_response_hop_limit)
            .text("httpEndpoint", toggle(o.http_endpoint))
            .text("httpProtocolIpv6", "disabled")
            .text("instanceMetadataTags", toggle(o.instance_metadata_tags));
    });
}

pub fn toggle(t: Toggle) -> &'static str {
    match t {
        Toggle::Enabled => "enabled",
        Toggle::Disabled => "disabled",
    }
}

/// EC2's private DNS name of an address.
pub fn private_dns(cfg: &SupervisorConfig, ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    if cfg.region == "us-east-1" {
        format!("ip-{a}-{b}-{c}-{d}.ec2.internal")
    } else {
        format!("ip-{a}-{b}-{c}-{d}.{}.compute.internal", cfg.region)
    }
}

/// StateTransitionReason: "User initiated (2024-05-06 07:08:09 GMT)" for
/// what a user asked, the reason's message otherwise, "" when none.
fn transition_reason(r: &InstanceRecord) -> String {
    match &r.state_reason {
        Some(reason) if reason.code == "Client.UserInitiatedShutdown" => {
            let t = clock::iso8601_millis(r.state_changed_ms);
            let date = t.get(..10).unwrap_or("");
            let time = t.get(11..19).unwrap_or("");
            format!("User initiated ({date} {time} GMT)")
        }
        Some(reason) => reason.message.clone(),
        None => String::new(),
    }
}

/// The volumes attached to `instance_id`: the root first, then in device
/// order, as the VM sees them.
pub fn volumes_of<'v>(volumes: &'v [VolumeRecord], instance_id: &str) -> Vec<&'v VolumeRecord> {
    let mut on: Vec<&VolumeRecord> = volumes.iter().filter(|v| v.is_on(instance_id)).collect();
    on.sort_by_key(|v| {
        let device = v.device.as_deref().unwrap_or("");
        (device != ROOT_DEVICE, vm_config::device_order(device))
    });
    on
}

/// `blockDeviceMapping` (InstanceBlockDeviceMappingList) of `volumes`.
pub fn block_device_mapping(x: &mut XmlWriter, volumes: &[&VolumeRecord]) {
    x.list("blockDeviceMapping", volumes, |x, v| {
        let status = v
            .attachment_state
            .map_or("attached", AttachmentState::as_str);
        x.text("deviceName", v.device.as_deref().unwrap_or(ROOT_DEVICE))
            .element("ebs", |x| {
                x.text("volumeId", &v.id)
                    .text("status", status)
                    .timestamp_ms("attachTime", v.attach_time_ms.unwrap_or(v.created_ms))
                    .bool("deleteOnTermination", v.delete_on_termination);
            });
    });
}

pub fn instance(x: &mut XmlWriter, r: &InstanceRecord, e: &Extras<'_>) {
    let cfg = e.cfg;
    let subnet = cfg.subnet.to_string();
    let subnet_id = derived_id("subnet-", &subnet);
    let vpc_id = derived_id("vpc-", &subnet);
    let dns = r.private_ip.map(|ip| private_dns(cfg, ip));
    let ip = r.private_ip.map(|ip| ip.to_string());
    let no_tags = Vec::new();
    let tag_list = e.tags.get(&r.id).unwrap_or(&no_tags);
    let volumes = volumes_of(&e.volumes, &r.id);
    let terminated = r.state == InstanceState::Terminated;
    x.text("instanceId", &r.id).text("imageId", &r.image_id);
    state(x, "instanceState", r.state);
    x.text(
        "privateDnsName",
        if terminated {
            ""
        } else {
            dns.as_deref().unwrap_or("")
        },
    )
    .text("dnsName", "")
    .text("reason", &transition_reason(r))
    .opt_text("keyName", r.key_name.as_deref())
    .int("amiLaunchIndex", r.launch_index)
    .list("productCodes", std::iter::empty::<()>(), |_, _| {})
    .text("instanceType", &r.instance_type)
    .timestamp_ms("launchTime", r.launch_time_ms)
    .element("placement", |x| {
        x.text("availabilityZone", &cfg.availability_zone)
            .text("groupName", "")
            .text("tenancy", "default");
    })
    .element("monitoring", |x| {
        x.text("state", "disabled");
    });
    if !terminated {
        x.text("subnetId", &subnet_id)
            .text("vpcId", &vpc_id)
            .opt_text("privateIpAddress", ip.as_deref());
    }
    if let Some(reason) = &r.state_reason {
        x.element("stateReason", |x| {
            x.text("code", &reason.code)
                .text("message", &reason.message);
        });
    }
    x.text("architecture", "x86_64")
        .text("rootDeviceType", "ebs")
        .text("rootDeviceName", ROOT_DEVICE);
    block_device_mapping(x, &volumes);
    x.text("virtualizationType", "hvm")
        .opt_text("clientToken", r.client_token.as_deref());
    tags(x, tag_list);
    x.text("hypervisor", "xen");
    if !terminated {
        x.list("networkInterfaceSet", [()], |x, ()| {
            x.text("networkInterfaceId", &derived_id("eni-", &r.id))
                .text("subnetId", &subnet_id)
                .text("vpcId", &vpc_id)
                .text("description", "")
                .text("ownerId", &cfg.owner_id)
                .text("status", "in-use")
                .text("macAddress", &r.mac)
                .opt_text("privateIpAddress", ip.as_deref())
                .opt_text("privateDnsName", dns.as_deref())
                .bool("sourceDestCheck", true)
                .list("groupSet", [()], |x, ()| {
                    group(x, cfg);
                })
                .element("attachment", |x| {
                    x.text("attachmentId", &derived_id("eni-attach-", &r.id))
                        .int("deviceIndex", 0)
                        .text("status", "attached")
                        .timestamp_ms("attachTime", r.launch_time_ms)
                        .bool("deleteOnTermination", true)
                        .int("networkCardIndex", 0);
                })
                .list("privateIpAddressesSet", ip.iter(), |x, ip| {
                    x.opt_text("privateDnsName", dns.as_deref())
                        .text("privateIpAddress", ip)
                        .bool("primary", true);
                })
                .text("interfaceType", "interface");
        });
    } else {
        x.list("networkInterfaceSet", std::iter::empty::<()>(), |_, _| {});
    }
    x.bool("ebsOptimized", false)
        .bool("enaSupport", true)
        .bool("sourceDestCheck", true)
        .list("groupSet", [()], |x, ()| {
            group(x, cfg);
        });
    if let Some((vcpus, _)) = types::shape(&r.instance_type) {
        let threads = if vcpus > 1 { 2 } else { 1 };
        x.element("cpuOptions", |x| {
            x.int("coreCount", (vcpus / threads).max(1))
                .int("threadsPerCore", threads);
        });
    }
    metadata_options(x, "metadataOptions", &vm_config::metadata_options(r));
    x.text("bootMode", "legacy-bios")
        .text("platformDetails", "Linux/UNIX")
        .text("usageOperation", "RunInstances")
        .text("currentInstanceBootMode", "legacy-bios");
}

fn group(x: &mut XmlWriter, cfg: &SupervisorConfig) {
    x.text("groupId", &derived_id("sg-", &cfg.subnet.to_string()))
        .text("groupName", "default");
}
