//! CreateTags / DeleteTags / DescribeTags, and the helpers other actions
//! use for tags: `TagSpecification.N` parsing, tag validation, resource
//! existence by id, and `resource-type` names.

use super::super::store::Tx;
use super::super::store::tags::TagFilter;
use super::filters::{FILTER_PARAMS, Filters};
use super::paging::{PAGING_PARAMS, PageRequest, paginate};
use super::{ActionSpec, Call, DryRun, Registry, XmlWriter};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};
use ec2_wire::request::{Ec2Request, Scope};

/// `ActionSpec::params` entries for actions taking `TagSpecification`.
pub const TAG_SPEC_PARAMS: [&str; 3] = [
    "TagSpecification.N.ResourceType",
    "TagSpecification.N.Tag.N.Key",
    "TagSpecification.N.Tag.N.Value",
];

pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_CHARS: usize = 256;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "CreateTags",
        params: &["ResourceId.N", "Tag.N.Key", "Tag.N.Value"],
        dry_run: DryRun::Handler,
        handler: create_tags,
    });
    r.add(ActionSpec {
        name: "DeleteTags",
        params: &["ResourceId.N", "Tag.N.Key", "Tag.N.Value"],
        dry_run: DryRun::Handler,
        handler: delete_tags,
    });
    r.add(ActionSpec {
        name: "DescribeTags",
        params: &[
            FILTER_PARAMS[0],
            FILTER_PARAMS[1],
            PAGING_PARAMS[0],
            PAGING_PARAMS[1],
        ],
        dry_run: DryRun::Generic,
        handler: describe_tags,
    });
}

/// EC2's `resource-type` name for an id's kind.
pub fn resource_type(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Instance => "instance",
        ResourceKind::Image => "image",
        ResourceKind::Volume => "volume",
        ResourceKind::Snapshot => "snapshot",
        ResourceKind::Reservation => "reserved-instances",
        ResourceKind::NetworkInterface => "network-interface",
        ResourceKind::KeyPair => "key-pair",
        ResourceKind::Subnet => "subnet",
        ResourceKind::Vpc => "vpc",
        ResourceKind::SecurityGroup => "security-group",
    }
}

/// A tag key and value as EC2 allows them.
pub fn validate_tag(key: &str, value: &str) -> Result<(), Ec2Error> {
    let bad = |name: &str, v: &str, why: &str| Err(Ec2Error::invalid_parameter_value(name, v, why));
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return bad("tag:key", key, "Tag keys must be 1 to 128 characters.");
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return bad(
            "tag:key",
            key,
            "Tag keys starting with 'aws:' are reserved.",
        );
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return bad(
            "tag:value",
            value,
            "Tag values may have at most 256 characters.",
        );
    }
    Ok(())
}

/// `Tag.N.Key` / `Tag.N.Value` under `scope` (the request, or one
/// `TagSpecification.N`); a missing value is the empty string.
pub fn read_tags(scope: &Scope<'_>) -> Result<Vec<(String, String)>, Ec2Error> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for t in scope.structs("Tag")? {
        let key = t.required_string("Key")?.to_string();
        let value = t.string("Value").unwrap_or("").to_string();
        validate_tag(&key, &value)?;
        if tags.iter().any(|(k, _)| *k == key) {
            return Err(Ec2Error::invalid_parameter_value(
                &t.wire_name("Key"),
                &key,
                "Duplicate tag key.",
            ));
        }
        tags.push((key, value));
    }
    Ok(tags)
}

/// Tags as (key, value).
pub type TagList = Vec<(String, String)>;

/// The tags of `TagSpecification.N` for resource types in `allowed`
/// (RegisterImage: `image`; RunInstances: `instance`, `volume`, …), as
/// (resource type, tags).
pub fn tag_specifications(
    req: &Ec2Request,
    allowed: &[&str],
) -> Result<Vec<(String, TagList)>, Ec2Error> {
    let mut out: Vec<(String, TagList)> = Vec::new();
    for spec in req.structs("TagSpecification")? {
        let kind = spec.required_string("ResourceType")?;
        if !allowed.contains(&kind) {
            return Err(Ec2Error::invalid_parameter_value(
                &spec.wire_name("ResourceType"),
                kind,
                &format!("Tags may be given here for: {}.", allowed.join(", ")),
            ));
        }
        let tags = read_tags(&spec)?;
        match out.iter_mut().find(|(k, _)| k == kind) {
            Some((_, existing)) => existing.extend(tags),
            None => out.push((kind.to_string(), tags)),
        }
    }
    Ok(out)
}

/// The tags given for `kind` in [`tag_specifications`]' result.
pub fn tags_for(specs: &[(String, TagList)], kind: &str) -> TagList {
    specs
        .iter()
        .filter(|(k, _)| k == kind)
        .flat_map(|(_, tags)| tags.iter().cloned())
        .collect()
}

/// `Ok` if `id` is a well-formed id of a resource that exists; else the
/// `.Malformed` / `.NotFound` / `InvalidID` error EC2 gives.
pub fn check_resource(tx: &Tx<'_>, id: &str) -> Result<(), Ec2Error> {
    let Some(kind) = ResourceKind::of(id) else {
        return Err(Ec2Error::invalid_id(id));
    };
    if !ids::is_valid(kind, id) {
        return Err(Ec2Error::malformed_id(kind, id));
    }
    let exists = match kind {
        ResourceKind::Instance => tx.get_instance(id)?.is_some(),
        ResourceKind::Image => tx.get_image(id)?.is_some(),
        ResourceKind::Volume => tx.get_volume(id)?.is_some(),
        ResourceKind::Snapshot => tx.get_snapshot(id)?.is_some(),
        ResourceKind::KeyPair => !tx.list_key_pairs(&[], &[id.to_string()])?.is_empty(),
        _ => false,
    };
    if exists {
        Ok(())
    } else if kind == ResourceKind::Image {
        Err(Ec2Error::ami_not_found(&[id]))
    } else if kind == ResourceKind::KeyPair {
        Err(Ec2Error::new(
            "InvalidKeyPair.NotFound",
            400,
            format!("The key pair '{id}' does not exist"),
        ))
    } else {
        Err(Ec2Error::not_found(kind, &[id]))
    }
}

fn resource_ids(call: &Call<'_>) -> Result<Vec<String>, Ec2Error> {
    let ids: Vec<String> = call
        .req
        .string_list("ResourceId")?
        .into_iter()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Err(Ec2Error::missing_parameter("ResourceId.1"));
    }
    Ok(ids)
}

fn create_tags(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let ids = resource_ids(call)?;
    let tags = read_tags(&call.req.root())?;
    if tags.is_empty() {
        return Err(Ec2Error::missing_parameter("Tag.1.Key"));
    }
    let mut store = call.ctx.store()?;
    store.read(|tx| ids.iter().try_for_each(|id| check_resource(tx, id)))?;
    call.check_dry_run()?;
    store.write(|tx| {
        for id in &ids {
            check_resource(tx, id)?;
            tx.set_tags(id, &tags)?;
        }
        Ok::<_, Ec2Error>(())
    })?;
    call.reply(|x| {
        x.bool("return", true);
    })
}

fn delete_tags(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let ids = resource_ids(call)?;
    let mut tags: Vec<(String, Option<String>)> = Vec::new();
    for t in call.req.structs("Tag")? {
        let key = t.required_string("Key")?.to_string();
        tags.push((key, t.string("Value").map(str::to_string)));
    }
    let mut store = call.ctx.store()?;
    store.read(|tx| ids.iter().try_for_each(|id| check_resource(tx, id)))?;
    call.check_dry_run()?;
    store.write(|tx| {
        for id in &ids {
            tx.delete_tags(id, &tags)?;
        }
        Ok::<_, Ec2Error>(())
    })?;
    call.reply(|x| {
        x.bool("return", true);
    })
}

fn describe_tags(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let filters = Filters::parse(
        call.req,
        &["resource-id", "resource-type", "key", "value", "tag:"],
    )?;
    let page = PageRequest::parse(call.req, call.action(), 5..=1000)?;
    let mut patterns = Vec::new();
    for t in filters.values("resource-type") {
        match ResourceKind::ALL
            .into_iter()
            .find(|k| resource_type(*k) == t)
        {
            Some(kind) => patterns.push(format!("{}*", kind.prefix())),
            None => {
                return Err(Ec2Error::invalid_parameter_value(
                    "resource-type",
                    &t,
                    "Unknown resource type.",
                ));
            }
        }
    }
    let filter = TagFilter {
        resource_ids: Vec::new(),
        resource_id_patterns: patterns,
        keys: filters.values("key"),
        values: filters.values("value"),
    };
    let mut store = call.ctx.store()?;
    let tags = store.read(|tx| tx.list_tags(&filter))?;
    // resource-id takes patterns on EC2 too; `tag:K` filters select
    // resources having that tag.
    let tag_filters = filters.tags();
    let all_tags: Vec<_> = if tag_filters.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<String> = tags.iter().map(|t| t.resource_id.clone()).collect();
        let by_resource = store.read(|tx| tx.tags_of_many(&ids))?;
        by_resource.into_iter().collect()
    };
    let tags: Vec<_> = tags
        .into_iter()
        .filter(|t| filters.matches("resource-id", &t.resource_id))
        .filter(|t| {
            tag_filters.is_empty()
                || all_tags
                    .iter()
                    .find(|(id, _)| *id == t.resource_id)
                    .is_some_and(|(_, rt)| filters.matches_tags(rt))
        })
        .collect();
    let (items, next) = paginate(
        tags,
        |t| format!("{}\u{1}{}", t.resource_id, t.key),
        &page,
        call.action(),
    );
    call.reply(|x| {
        x.list("tagSet", items, |x, t| {
            let kind = ResourceKind::of(&t.resource_id).map_or("", resource_type);
            x.text("resourceId", &t.resource_id)
                .text("resourceType", kind)
                .text("key", &t.key)
                .text("value", &t.value);
        });
        x.opt_text("nextToken", next.as_deref());
    })
}

/// `<tagSet>` of a resource, as DescribeImages & co. write it; left out
/// when there are no tags, as EC2 does (botocore then has no `Tags` key).
pub fn write_tag_set(x: &mut XmlWriter, tags: &[(String, String)]) {
    if tags.is_empty() {
        return;
    }
    x.list("tagSet", tags, |x, (k, v)| {
        x.text("key", k).text("value", v);
    });
}
