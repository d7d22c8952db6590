//! GetConsoleOutput, ModifyInstanceMetadataOptions (pushed live to the
//! VM's metadata service), ModifyInstanceAttribute (InstanceType and
//! UserData, while stopped; BlockDeviceMapping's DeleteOnTermination of
//! attached volumes, in any state but terminated).

use super::super::{ActionSpec, Call, DryRun, Registry};
use super::run::{metadata_options, user_data};
use super::{existing, one_instance_id, render, supervisor};
use crate::api::codec;
use crate::store::instances::InstanceState;
use crate::supervisor::{types, vm_config};
use ec2_wire::clock;
use ec2_wire::error::Ec2Error;
use flint_contract::metadata::MetadataUpdate;
use tracing::warn;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "GetConsoleOutput",
        params: &["InstanceId", "Latest"],
        dry_run: DryRun::Handler,
        handler: get_console_output,
    });
    r.add(ActionSpec {
        name: "ModifyInstanceMetadataOptions",
        params: &[
            "InstanceId",
            "HttpTokens",
            "HttpPutResponseHopLimit",
            "HttpEndpoint",
            "HttpProtocolIpv6",
            "InstanceMetadataTags",
        ],
        dry_run: DryRun::Handler,
        handler: modify_metadata_options,
    });
    r.add(ActionSpec {
        name: "ModifyInstanceAttribute",
        params: &[
            "InstanceId",
            "InstanceType.Value",
            "UserData.Value",
            "Attribute",
            "Value",
            "BlockDeviceMapping.N.DeviceName",
            "BlockDeviceMapping.N.Ebs.DeleteOnTermination",
            "BlockDeviceMapping.N.Ebs.VolumeId",
            "BlockDeviceMapping.N.NoDevice",
            "BlockDeviceMapping.N.VirtualName",
        ],
        dry_run: DryRun::Handler,
        handler: modify_instance_attribute,
    });
}

fn get_console_output(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let id = one_instance_id(call)?;
    call.req.bool("Latest")?;
    let mut store = call.ctx.store()?;
    store.read(|t| existing(t, std::slice::from_ref(&id)))?;
    call.check_dry_run()?;
    let output = sup.console_output(&id);
    call.reply(|x| {
        x.text("instanceId", &id)
            .timestamp_ms("timestamp", clock::now_unix_ms())
            .text("output", &codec::base64_encode(&output));
    })
}

fn modify_metadata_options(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let sup = supervisor(call)?;
    let id = one_instance_id(call)?;
    let mut store = call.ctx.store()?;
    let options = store.write(|t| {
        let record = existing(t, std::slice::from_ref(&id))?.remove(0);
        if matches!(
            record.state,
            InstanceState::ShuttingDown | InstanceState::Terminated
        ) {
            return Err(Ec2Error::incorrect_instance_state(
                &id,
                record.state.name(),
                "modified",
            ));
        }
        let options = metadata_options(&call.req.root(), vm_config::metadata_options(&record))?;
        call.check_dry_run()?;
        let value =
            serde_json::to_value(options).map_err(|e| Ec2Error::internal_error(e.to_string()))?;
        t.set_metadata_options(&id, &value)?;
        Ok::<_, Ec2Error>(options)
    })?;
    let update = MetadataUpdate {
        metadata_options: Some(options.into()),
        ..MetadataUpdate::default()
    };
    if let Err(e) = sup.push_metadata(&id, &update) {
        // Stored; a VM that cannot take it now gets it at its next start.
        warn!(instance_id = %id, "flint serve: instance {id}: metadata options not pushed: {e}");
    }
    call.reply(|x| {
        x.text("instanceId", &id);
        render::metadata_options(x, "instanceMetadataOptions", &options);
    })
}

/// `BlockDeviceMapping.N`: (device, DeleteOnTermination) of volumes
/// attached to the instance.
fn delete_on_termination(call: &Call<'_>) -> Result<Vec<(String, bool)>, Ec2Error> {
    let mut out = Vec::new();
    for m in call.req.structs("BlockDeviceMapping")? {
        let device = m.required_string("DeviceName")?;
        if m.string("NoDevice").is_some() || m.string("VirtualName").is_some() {
            return Err(Ec2Error::unsupported_operation(
                "Instance store volumes cannot be added or removed here.",
            ));
        }
        // EC2: without a value, DeleteOnTermination is true.
        let ebs = m.child("Ebs");
        let value = ebs.bool("DeleteOnTermination")?.unwrap_or(true);
        out.push((device.to_string(), value));
    }
    Ok(out)
}

fn modify_block_devices(
    call: &Call<'_>,
    id: &str,
    mappings: &[(String, bool)],
) -> Result<Vec<u8>, Ec2Error> {
    let mut store = call.ctx.store()?;
    store.write(|t| {
        let record = existing(t, &[id.to_string()])?.remove(0);
        if record.state == InstanceState::Terminated {
            return Err(Ec2Error::incorrect_instance_state(
                id,
                record.state.name(),
                "modified",
            ));
        }
        let volumes = t.list_volumes(&[], &[id.to_string()])?;
        let mut changes = Vec::new();
        for (device, value) in mappings {
            let found = volumes.iter().find(|v| {
                v.device
                    .as_deref()
                    .is_some_and(|d| vm_config::device_slot(d) == vm_config::device_slot(device))
            });
            let Some(v) = found else {
                return Err(Ec2Error::new(
                    "InvalidInstanceAttributeValue",
                    400,
                    format!("No device is currently mapped at {device:.64}"),
                ));
            };
            changes.push((v.id.clone(), *value));
        }
        call.check_dry_run()?;
        for (volume, value) in &changes {
            t.set_delete_on_termination(volume, *value)?;
        }
        Ok::<_, Ec2Error>(())
    })?;
    call.reply(|x| {
        x.bool("return", true);
    })
}

fn modify_instance_attribute(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let id = one_instance_id(call)?;
    let req = call.req;
    let mappings = delete_on_termination(call)?;
    if !mappings.is_empty() {
        if req.string("InstanceType.Value").is_some()
            || req.string("UserData.Value").is_some()
            || req.string("Attribute").is_some()
        {
            return Err(Ec2Error::invalid_parameter_combination(
                "BlockDeviceMapping cannot be modified together with another attribute.",
            ));
        }
        return modify_block_devices(call, &id, &mappings);
    }
    let mut instance_type = req.string("InstanceType.Value");
    let mut data = req.string("UserData.Value");
    match (req.string("Attribute"), req.string("Value")) {
        (Some("instanceType"), Some(v)) => instance_type = Some(v),
        (Some("userData"), Some(v)) => data = Some(v),
        (Some(attr), _) => {
            return Err(Ec2Error::invalid_parameter_value(
                "Attribute",
                attr,
                "Only instanceType and userData can be modified.",
            ));
        }
        (None, Some(_)) => return Err(Ec2Error::missing_parameter("Attribute")),
        (None, None) => {}
    }
    if instance_type.is_none() && data.is_none() {
        return Err(Ec2Error::missing_parameter(
            "InstanceType.Value or UserData.Value",
        ));
    }
    if let Some(kind) = instance_type
        && types::shape(kind).is_none()
    {
        return Err(Ec2Error::invalid_parameter_value(
            "InstanceType",
            kind,
            "The instance type is not supported on this host.",
        ));
    }
    // UserData.Value is a blob: botocore sends the base64 of the bytes.
    let data = match data {
        Some(text) => Some(user_data(Some(text))?.unwrap_or_default()),
        None => None,
    };
    let mut store = call.ctx.store()?;
    store.write(|t| {
        let record = existing(t, std::slice::from_ref(&id))?.remove(0);
        if record.state != InstanceState::Stopped {
            return Err(Ec2Error::incorrect_instance_state(
                &id,
                record.state.name(),
                "modified",
            ));
        }
        call.check_dry_run()?;
        if let Some(kind) = instance_type {
            t.set_instance_type(&id, kind)?;
        }
        if let Some(bytes) = &data {
            t.set_user_data(&id, (!bytes.is_empty()).then_some(bytes.as_slice()))?;
        }
        Ok::<_, Ec2Error>(())
    })?;
    call.reply(|x| {
        x.bool("return", true);
    })
}
