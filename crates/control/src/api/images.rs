//! RegisterImage / DescribeImages / DeregisterImage.
//!
//! An AMI is a raw disk file `DATA_DIR/images/<ami-id>.raw`, made at
//! registration from a regular file in the import directory (see
//! [`super::import`]: `DATA_DIR/import` unless `--import-dir`): qcow2 is
//! converted with `qemu-img convert`, unprivileged and offline (refused if
//! it has a backing or external data file, which would pull other host
//! files into the image); anything else is taken as raw and copied as root
//! volumes are (reflink, else sparse copy).
//! What the store's image table has no column for (description, root
//! device name, architecture) lives beside it in `<ami-id>.json`.

use crate::api::admission_error;
use crate::supervisor::admission;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::store::images::{ImageFilter, ImageRecord, ImageState};
use super::super::store::{StoreError, now_ms};
use super::filters::{FILTER_PARAMS, Filters};
use super::import;
use super::paging::{PAGING_PARAMS, PageRequest, paginate};
use super::tags::{TAG_SPEC_PARAMS, tag_specifications, tags_for, write_tag_set};
use super::{ActionSpec, Call, Context, DryRun, Registry, XmlWriter};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};

const GIB: u64 = 1 << 30;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "RegisterImage",
        params: &[
            "Name",
            "ImageLocation",
            "BootMode",
            "Architecture",
            "Description",
            "RootDeviceName",
            "VirtualizationType",
            "EnaSupport",
            TAG_SPEC_PARAMS[0],
            TAG_SPEC_PARAMS[1],
            TAG_SPEC_PARAMS[2],
        ],
        dry_run: DryRun::Handler,
        handler: register_image,
    });
    r.add(ActionSpec {
        name: "DescribeImages",
        params: &[
            "ImageId.N",
            "Owner.N",
            "ExecutableBy.N",
            "IncludeDeprecated",
            "IncludeDisabled",
            FILTER_PARAMS[0],
            FILTER_PARAMS[1],
            PAGING_PARAMS[0],
            PAGING_PARAMS[1],
        ],
        dry_run: DryRun::Generic,
        handler: describe_images,
    });
    r.add(ActionSpec {
        name: "DeregisterImage",
        params: &["ImageId", "DeleteAssociatedSnapshots"],
        dry_run: DryRun::Handler,
        handler: deregister_image,
    });
}

/// The sidecar of an image record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageExtra {
    pub description: Option<String>,
    pub root_device_name: String,
    pub architecture: String,
}

pub fn extra_path(ctx: &Context, id: &str) -> PathBuf {
    ctx.images_dir().join(format!("{id}.json"))
}

pub fn read_extra(ctx: &Context, id: &str) -> ImageExtra {
    std::fs::read(extra_path(ctx, id))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| ImageExtra {
            description: None,
            root_device_name: "/dev/xvda".into(),
            architecture: "x86_64".into(),
        })
}

fn bad_value(name: &str, value: &str, why: &str) -> Ec2Error {
    Ec2Error::invalid_parameter_value(name, value, why)
}

/// EC2's AMI name rule: 3–128 of letters, digits, `( ) [ ] space . / - ' @ _`.
fn check_name(name: &str) -> Result<(), Ec2Error> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    if !(3..=128).contains(&name.chars().count()) || !name.chars().all(ok_char) {
        return Err(Ec2Error::new(
            "InvalidAMIName.Malformed",
            400,
            format!(
                "AMI names must be between 3 and 128 characters long, and may contain letters, \
                 numbers, '(', ')', '.', '-', '/', '_', '[', ']', ' ', '@' and '''; got {:?}",
                name.chars().take(140).collect::<String>()
            ),
        ));
    }
    Ok(())
}

fn is_qcow2(file: &std::fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 4];
    file.read_exact_at(&mut magic, 0).is_ok() && magic == *b"QFI\xfb"
}

/// Produces the raw image at `dest` from `source` (opened and checked by
/// [`import::open_import`]); `scratch` is a free name in the tmp dir.
fn import_disk(
    source: &import::ImportSource,
    location: &str,
    dest: &Path,
    scratch: &Path,
) -> Result<(), Ec2Error> {
    let invalid = |why: String| bad_value("ImageLocation", location, &why);
    if !is_qcow2(&source.file) {
        // The same reflink-or-sparse copy as root volumes, in-process: no
        // dependency on GNU cp (busybox's has neither option).
        crate::supervisor::volume::clone_open_file(
            &source.file,
            &source.path,
            dest,
            0,
            &mut |_| {},
        )
        .map_err(|e| Ec2Error::internal_error(e.to_string()))?;
        return Ok(());
    }
    let copy = import::readable_by_helper(source, scratch).map_err(Ec2Error::internal_error);
    let result = copy.and_then(|copy| {
        let input = copy.as_ref().unwrap_or(&source.file);
        convert_qcow2(input, dest, &invalid)
    });
    let _ = std::fs::remove_file(scratch);
    result
}

/// `qemu-img info` (refusing backing and external data files, which would
/// pull other host files into the image) and `qemu-img convert`, both
/// unprivileged on fds (see [`import`]).
fn convert_qcow2(
    input: &std::fs::File,
    dest: &Path,
    invalid: &dyn Fn(String) -> Ec2Error,
) -> Result<(), Ec2Error> {
    let src = import::fd_path(input);
    let info = import::qemu_img(
        &[
            "info".into(),
            "--output=json".into(),
            "-f".into(),
            "qcow2".into(),
            src.clone(),
        ],
        &[input],
    )
    .map_err(invalid)?;
    let info: serde_json::Value =
        serde_json::from_slice(&info).map_err(|e| invalid(format!("qemu-img info: {e}")))?;
    if info.get("backing-filename").is_some()
        || info.pointer("/format-specific/data/data-file").is_some()
    {
        return Err(invalid(
            "qcow2 images with a backing file or an external data file are refused.".into(),
        ));
    }
    let out = import::output_for_helper(dest).map_err(Ec2Error::internal_error)?;
    import::qemu_img(
        &[
            "convert".into(),
            "-q".into(),
            "-f".into(),
            "qcow2".into(),
            "-O".into(),
            "raw".into(),
            src,
            import::fd_path(&out),
        ],
        &[input, &out],
    )
    .map_err(invalid)?;
    import::reclaim_output(&out).map_err(Ec2Error::internal_error)
}

fn register_image(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let req = call.req;
    let name = req.required_string("Name")?;
    check_name(name)?;
    let location = req.required_string("ImageLocation")?;
    let source = import::open_import(&call.ctx.import_dir(), location)?;
    let boot_mode = req.string("BootMode").unwrap_or("legacy-bios");
    if !matches!(boot_mode, "legacy-bios" | "uefi") {
        return Err(bad_value(
            "BootMode",
            boot_mode,
            "Valid values are legacy-bios and uefi.",
        ));
    }
    let arch = req.string("Architecture").unwrap_or("x86_64");
    if arch != "x86_64" {
        return Err(bad_value(
            "Architecture",
            arch,
            "Flint runs x86_64 images only.",
        ));
    }
    if let Some(v) = req.string("VirtualizationType")
        && v != "hvm"
    {
        return Err(bad_value("VirtualizationType", v, "Only hvm is supported."));
    }
    req.bool("EnaSupport")?;
    let description = req.string("Description").map(str::to_string);
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        return Err(bad_value("Description", "…", "At most 255 characters."));
    }
    let root_device = req.string("RootDeviceName").unwrap_or("/dev/xvda");
    if !root_device.starts_with("/dev/") || root_device.len() > 64 {
        return Err(bad_value(
            "RootDeviceName",
            root_device,
            "Expected a name like /dev/xvda.",
        ));
    }
    let specs = tag_specifications(req, &["image"])?;
    let tags = tags_for(&specs, "image");
    let mut store = call.ctx.store()?;
    let taken = store.read(|tx| {
        tx.list_images(&ImageFilter {
            names: vec![
                name.replace('\\', "\\\\")
                    .replace('*', "\\*")
                    .replace('?', "\\?"),
            ],
            ..ImageFilter::default()
        })
    })?;
    if !taken.is_empty() {
        return Err(Ec2Error::ami_name_duplicate(name));
    }
    call.check_dry_run()?;
    // The image is a copy of the import (raw, or qcow2 converted to raw:
    // at most its virtual size; counted as the file's allocated bytes).
    let need = {
        use std::os::unix::fs::MetadataExt;
        source
            .file
            .metadata()
            .map_or(source.len, |m| m.blocks().saturating_mul(512))
    };
    admission::check_disk(&call.ctx.images_dir(), need)
        .map_err(|e| admission_error(e, Ec2Error::insufficient_capacity))?;

    let id = ids::new_id(ResourceKind::Image);
    let final_path = call.ctx.images_dir().join(format!("{id}.raw"));
    let record = ImageRecord {
        id: id.clone(),
        name: name.to_string(),
        location: location.to_string(),
        path: final_path.display().to_string(),
        size_bytes: 0,
        boot_mode: boot_mode.to_string(),
        state: ImageState::Pending,
        created_ms: now_ms(),
    };
    // The record first, as pending: it holds the name while the copy runs.
    store.write(|tx| {
        tx.insert_image(&record).map_err(|e| match e {
            StoreError::Duplicate { .. } => Ec2Error::ami_name_duplicate(name),
            e => e.into(),
        })?;
        if !tags.is_empty() {
            tx.set_tags(&id, &tags)?;
        }
        Ok::<_, Ec2Error>(())
    })?;
    let extra = ImageExtra {
        description,
        root_device_name: root_device.to_string(),
        architecture: arch.to_string(),
    };
    let tmp = call.ctx.tmp_dir().join(format!("{id}.raw.part"));
    let scratch = call.ctx.tmp_dir().join(format!("{id}.source.part"));
    let imported = import_disk(&source, location, &tmp, &scratch)
        .and_then(|()| {
            let extra_json =
                serde_json::to_vec(&extra).map_err(|e| Ec2Error::internal_error(e.to_string()))?;
            crate::private::write_private(&extra_path(call.ctx, &id), &extra_json)
                .and_then(|()| std::fs::rename(&tmp, &final_path))
                .map_err(|e| Ec2Error::internal_error(format!("cannot store the image: {e}")))?;
            std::fs::metadata(&final_path)
                .map(|m| m.len())
                .map_err(|e| Ec2Error::internal_error(e.to_string()))
        })
        .and_then(|size| {
            store
                .write(|tx| tx.set_image_state(&id, ImageState::Available, Some(size)))
                .map_err(Ec2Error::from)
        });
    if let Err(e) = imported {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(&final_path);
        let _ = std::fs::remove_file(extra_path(call.ctx, &id));
        let _ = store.write(|tx| tx.delete_image(&id));
        return Err(e);
    }
    call.reply(|x| {
        x.text("imageId", &id);
    })
}

/// Image ids from the request: malformed ones are an error.
fn image_ids(call: &Call<'_>, name: &str) -> Result<Vec<String>, Ec2Error> {
    let list = call.req.string_list(name)?;
    for id in &list {
        if !ids::is_valid(ResourceKind::Image, id) {
            return Err(Ec2Error::ami_id_malformed(id));
        }
    }
    Ok(list.into_iter().map(str::to_string).collect())
}

const IMAGE_FILTERS: &[&str] = &[
    "name",
    "image-id",
    "state",
    "tag:",
    "tag-key",
    "architecture",
    "boot-mode",
    "owner-id",
    "root-device-name",
    "root-device-type",
    "image-type",
    "is-public",
    "description",
    "virtualization-type",
    "hypervisor",
    "platform-details",
];

fn describe_images(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let req = call.req;
    let owner = &call.ctx.config.owner_id;
    let wanted = image_ids(call, "ImageId")?;
    let owners = req.string_list("Owner")?;
    req.string_list("ExecutableBy")?;
    req.bool("IncludeDeprecated")?;
    req.bool("IncludeDisabled")?;
    if !wanted.is_empty() && req.string("MaxResults").is_some() {
        return Err(Ec2Error::invalid_parameter_combination(
            "The parameter imageIdsSet cannot be used with the parameter maxResults",
        ));
    }
    let page = PageRequest::parse(req, call.action(), 5..=1000)?;
    let filters = Filters::parse(req, IMAGE_FILTERS)?;
    let ours = owners.is_empty() || owners.iter().any(|o| *o == "self" || o == owner);
    let filter = ImageFilter {
        ids: wanted.clone(),
        names: filters.values("name"),
        states: filters.values("state"),
        tags: filters.tags(),
        tag_keys: filters.values("tag-key"),
    };
    let mut store = call.ctx.store()?;
    let (images, tags) = store.read(|tx| {
        let images = tx.list_images(&filter)?;
        let ids: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
        Ok::<_, Ec2Error>((images, tx.tags_of_many(&ids)?))
    })?;
    // Explicit ids that do not exist are an error even when filters or
    // owners would leave them out, as on EC2.
    if filters.is_empty() {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|w| !images.iter().any(|i| i.id == **w))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::ami_not_found(&missing));
        }
    }
    let ctx = call.ctx;
    let selected: Vec<(ImageRecord, ImageExtra)> = images
        .into_iter()
        .filter(|_| ours)
        .map(|i| {
            let extra = read_extra(ctx, &i.id);
            (i, extra)
        })
        .filter(|(i, e)| {
            filters.matches("image-id", &i.id)
                && filters.matches("architecture", &e.architecture)
                && filters.matches("boot-mode", &i.boot_mode)
                && filters.matches("owner-id", owner)
                && filters.matches("root-device-name", &e.root_device_name)
                && filters.matches("root-device-type", "ebs")
                && filters.matches("image-type", "machine")
                && filters.matches("is-public", "false")
                && filters.matches("description", e.description.as_deref().unwrap_or(""))
                && filters.matches("virtualization-type", "hvm")
                && filters.matches("hypervisor", "xen")
                && filters.matches("platform-details", "Linux/UNIX")
        })
        .collect();
    let (items, next) = paginate(selected, |(i, _)| i.id.clone(), &page, call.action());
    let no_tags = Vec::new();
    call.reply(|x| {
        x.list("imagesSet", &items, |x, (i, e)| {
            write_image(x, i, e, owner, tags.get(&i.id).unwrap_or(&no_tags));
        });
        x.opt_text("nextToken", next.as_deref());
    })
}

fn write_image(
    x: &mut XmlWriter,
    i: &ImageRecord,
    e: &ImageExtra,
    owner: &str,
    tags: &[(String, String)],
) {
    let size_gib = i.size_bytes.div_ceil(GIB).max(1);
    x.text("imageId", &i.id)
        .text("imageLocation", &i.location)
        .text("imageState", i.state.as_str())
        .text("imageOwnerId", owner)
        .timestamp_ms("creationDate", i.created_ms)
        .bool("isPublic", false)
        .text("architecture", &e.architecture)
        .text("imageType", "machine")
        .text("name", &i.name)
        .opt_text("description", e.description.as_deref())
        .text("rootDeviceType", "ebs")
        .text("rootDeviceName", &e.root_device_name)
        .list("blockDeviceMapping", [()], |x, ()| {
            x.text("deviceName", &e.root_device_name)
                .element("ebs", |x| {
                    x.bool("deleteOnTermination", true)
                        .int("volumeSize", size_gib)
                        .text("volumeType", "gp3")
                        .bool("encrypted", false);
                });
        })
        .text("virtualizationType", "hvm")
        .text("hypervisor", "xen")
        .text("bootMode", &i.boot_mode)
        .text("platformDetails", "Linux/UNIX")
        .text("usageOperation", "RunInstances");
    if i.state == ImageState::Failed {
        x.element("stateReason", |x| {
            x.text("code", "Client.ImportError")
                .text("message", "The image could not be imported");
        });
    }
    write_tag_set(x, tags);
}

fn deregister_image(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let id = call.req.required_string("ImageId")?;
    if !ids::is_valid(ResourceKind::Image, id) {
        return Err(Ec2Error::ami_id_malformed(id));
    }
    call.req.bool("DeleteAssociatedSnapshots")?;
    let mut store = call.ctx.store()?;
    let Some(image) = store.read(|tx| tx.get_image(id))? else {
        return Err(Ec2Error::ami_not_found(&[id]));
    };
    call.check_dry_run()?;
    store.write(|tx| tx.delete_image(id)).map_err(|e| match e {
        StoreError::NotFound { .. } => Ec2Error::ami_not_found(&[id]),
        e => e.into(),
    })?;
    // Root volumes are copies, so instances launched from it keep working.
    let _ = std::fs::remove_file(&image.path);
    let _ = std::fs::remove_file(extra_path(call.ctx, id));
    call.reply(|x| {
        x.bool("return", true);
    })
}
