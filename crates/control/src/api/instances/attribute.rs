//! DescribeInstanceAttribute: one attribute of one instance, in botocore's
//! InstanceAttribute shape. What this host does not have answers as EC2
//! does for an instance without it (no kernel/ramdisk, no product codes,
//! no security groups, no enclave, termination and stop protection off).

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::{existing, one_instance_id, render};
use crate::api::codec;
use crate::supervisor::vm_config::ROOT_DEVICE;
use ec2_wire::error::Ec2Error;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "DescribeInstanceAttribute",
        params: &["InstanceId", "Attribute"],
        dry_run: DryRun::Handler,
        handler: describe_instance_attribute,
    });
}

/// InstanceAttributeName's values.
const ATTRIBUTES: [&str; 16] = [
    "instanceType",
    "kernel",
    "ramdisk",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "rootDeviceName",
    "blockDeviceMapping",
    "productCodes",
    "sourceDestCheck",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "enclaveOptions",
    "disableApiStop",
];

fn describe_instance_attribute(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let attribute = call.req.required_string("Attribute")?.to_string();
    let id = one_instance_id(call)?;
    if !ATTRIBUTES.contains(&attribute.as_str()) {
        return Err(Ec2Error::invalid_parameter_value(
            "Attribute",
            &attribute,
            &format!(
                "Value ({attribute:.64}) for parameter attribute is invalid. Unknown attribute."
            ),
        ));
    }
    let mut store = call.ctx.store()?;
    let (record, volumes) = store.read(|t| {
        let record = existing(t, std::slice::from_ref(&id))?.remove(0);
        let volumes = t.list_volumes(&[], std::slice::from_ref(&id))?;
        Ok::<_, Ec2Error>((record, volumes))
    })?;
    call.check_dry_run()?;
    call.reply(|x| {
        x.text("instanceId", &record.id);
        let value = |x: &mut ec2_wire::response::XmlWriter, name: &str, v: Option<&str>| {
            x.element(name, |x| {
                x.opt_text("value", v);
            });
        };
        let boolean = |x: &mut ec2_wire::response::XmlWriter, name: &str, v: bool| {
            x.element(name, |x| {
                x.bool("value", v);
            });
        };
        match attribute.as_str() {
            "instanceType" => value(x, "instanceType", Some(&record.instance_type)),
            "kernel" => value(x, "kernel", None),
            "ramdisk" => value(x, "ramdisk", None),
            "userData" => {
                let data = record.user_data.as_deref().map(codec::base64_encode);
                value(x, "userData", data.as_deref());
            }
            "disableApiTermination" => boolean(x, "disableApiTermination", false),
            "disableApiStop" => boolean(x, "disableApiStop", false),
            "instanceInitiatedShutdownBehavior" => value(
                x,
                "instanceInitiatedShutdownBehavior",
                Some(record.shutdown_behavior.as_str()),
            ),
            "rootDeviceName" => value(x, "rootDeviceName", Some(ROOT_DEVICE)),
            "blockDeviceMapping" => {
                render::block_device_mapping(x, &render::volumes_of(&volumes, &record.id));
            }
            "productCodes" => {
                x.list("productCodes", std::iter::empty::<()>(), |_, _| {});
            }
            "groupSet" => {
                x.list("groupSet", std::iter::empty::<()>(), |_, _| {});
            }
            "sourceDestCheck" => boolean(x, "sourceDestCheck", true),
            "ebsOptimized" => boolean(x, "ebsOptimized", false),
            "enaSupport" => boolean(x, "enaSupport", true),
            "sriovNetSupport" => value(x, "sriovNetSupport", None),
            _ => {
                x.element("enclaveOptions", |x| {
                    x.bool("enabled", false);
                });
            }
        }
    })
}
