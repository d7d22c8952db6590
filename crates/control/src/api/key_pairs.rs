//! CreateKeyPair / ImportKeyPair / DescribeKeyPairs / DeleteKeyPair.
//! Only the public half is kept; the private key of CreateKeyPair is
//! returned once, as on EC2.

use super::super::store::key_pairs::KeyPairRecord;
use super::super::store::{StoreError, now_ms};
use super::codec::base64_decode;
use super::filters::{FILTER_PARAMS, Filters};
use super::keygen::{self, KeyType};
use super::tags::{TAG_SPEC_PARAMS, tag_specifications, tags_for, write_tag_set};
use super::{ActionSpec, Call, DryRun, Registry};
use ec2_wire::error::Ec2Error;
use ec2_wire::ids::{self, ResourceKind};

pub const MAX_NAME_CHARS: usize = 255;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "CreateKeyPair",
        params: &[
            "KeyName",
            "KeyType",
            "KeyFormat",
            TAG_SPEC_PARAMS[0],
            TAG_SPEC_PARAMS[1],
            TAG_SPEC_PARAMS[2],
        ],
        dry_run: DryRun::Handler,
        handler: create_key_pair,
    });
    r.add(ActionSpec {
        name: "ImportKeyPair",
        params: &[
            "KeyName",
            "PublicKeyMaterial",
            TAG_SPEC_PARAMS[0],
            TAG_SPEC_PARAMS[1],
            TAG_SPEC_PARAMS[2],
        ],
        dry_run: DryRun::Handler,
        handler: import_key_pair,
    });
    r.add(ActionSpec {
        name: "DescribeKeyPairs",
        params: &[
            "KeyName.N",
            "KeyPairId.N",
            "IncludePublicKey",
            FILTER_PARAMS[0],
            FILTER_PARAMS[1],
        ],
        dry_run: DryRun::Generic,
        handler: describe_key_pairs,
    });
    r.add(ActionSpec {
        name: "DeleteKeyPair",
        params: &["KeyName", "KeyPairId"],
        dry_run: DryRun::Handler,
        handler: delete_key_pair,
    });
}

fn key_name<'a>(call: &Call<'a>) -> Result<&'a str, Ec2Error> {
    let name = call.req.required_string("KeyName")?;
    if name.chars().count() > MAX_NAME_CHARS || !name.is_ascii() || name.trim() != name {
        return Err(Ec2Error::invalid_parameter_value(
            "KeyName",
            name,
            "Key names are 1 to 255 ASCII characters without leading or trailing spaces.",
        ));
    }
    Ok(name)
}

/// Stores the key pair with its tags in one transaction.
fn insert(
    call: &Call<'_>,
    record: &KeyPairRecord,
    tags: &[(String, String)],
) -> Result<(), Ec2Error> {
    let mut store = call.ctx.store()?;
    store.write(|tx| {
        tx.insert_key_pair(record).map_err(|e| match e {
            StoreError::Duplicate { .. } => Ec2Error::key_pair_duplicate(&record.name),
            e => e.into(),
        })?;
        if !tags.is_empty() {
            tx.set_tags(&record.id, tags)?;
        }
        Ok::<_, Ec2Error>(())
    })
}

fn check_unused(call: &Call<'_>, name: &str) -> Result<(), Ec2Error> {
    let mut store = call.ctx.store()?;
    if store.read(|tx| tx.get_key_pair(name))?.is_some() {
        return Err(Ec2Error::key_pair_duplicate(name));
    }
    Ok(())
}

fn create_key_pair(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let name = key_name(call)?;
    let key_type = match call.req.string("KeyType").unwrap_or("rsa") {
        "rsa" => KeyType::Rsa,
        "ed25519" => KeyType::Ed25519,
        other => {
            return Err(Ec2Error::invalid_parameter_value(
                "KeyType",
                other,
                "Valid values are rsa and ed25519.",
            ));
        }
    };
    match call.req.string("KeyFormat").unwrap_or("pem") {
        "pem" => {}
        "ppk" => {
            return Err(Ec2Error::unsupported_operation(
                "KeyFormat ppk is not supported by Flint; use pem.",
            ));
        }
        other => {
            return Err(Ec2Error::invalid_parameter_value(
                "KeyFormat",
                other,
                "Valid values are pem and ppk.",
            ));
        }
    }
    let specs = tag_specifications(call.req, &["key-pair"])?;
    let tags = tags_for(&specs, "key-pair");
    check_unused(call, name)?;
    call.check_dry_run()?;
    let key = keygen::generate(key_type)
        .map_err(|e| Ec2Error::internal_error(format!("cannot generate the key: {e}")))?;
    let record = KeyPairRecord {
        name: name.to_string(),
        id: ids::new_id(ResourceKind::KeyPair),
        key_type: key_type.as_str().to_string(),
        fingerprint: key.fingerprint.clone(),
        public_key: key.public_key.clone(),
        created_ms: now_ms(),
    };
    insert(call, &record, &tags)?;
    call.reply(|x| {
        x.text("keyName", &record.name)
            .text("keyFingerprint", &record.fingerprint)
            .text("keyMaterial", &key.private_key)
            .text("keyPairId", &record.id);
        write_tag_set(x, &tags);
    })
}

fn import_key_pair(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let name = key_name(call)?;
    let material = call.req.required_string("PublicKeyMaterial")?;
    let format_error = |why: String| {
        Ec2Error::key_pair_format(format!(
            "Key is not in valid OpenSSH public key format: {why}"
        ))
    };
    // botocore sends the blob base64-encoded; what it encodes is the text
    // of the public key file.
    let text = base64_decode(material)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| format_error("PublicKeyMaterial is not base64 of a text key".into()))?;
    let public = keygen::parse_public_key(&text).map_err(|e| format_error(e.to_string()))?;
    let specs = tag_specifications(call.req, &["key-pair"])?;
    let tags = tags_for(&specs, "key-pair");
    check_unused(call, name)?;
    call.check_dry_run()?;
    let record = KeyPairRecord {
        name: name.to_string(),
        id: ids::new_id(ResourceKind::KeyPair),
        key_type: public.key_type.as_str().to_string(),
        fingerprint: public.import_fingerprint().to_string(),
        public_key: public.line().to_string(),
        created_ms: now_ms(),
    };
    insert(call, &record, &tags)?;
    call.reply(|x| {
        x.text("keyFingerprint", &record.fingerprint)
            .text("keyName", &record.name)
            .text("keyPairId", &record.id);
        write_tag_set(x, &tags);
    })
}

fn describe_key_pairs(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let names: Vec<String> = call
        .req
        .string_list("KeyName")?
        .into_iter()
        .map(str::to_string)
        .collect();
    let key_ids: Vec<String> = call
        .req
        .string_list("KeyPairId")?
        .into_iter()
        .map(str::to_string)
        .collect();
    for id in &key_ids {
        if !ids::is_valid(ResourceKind::KeyPair, id) {
            return Err(Ec2Error::malformed_id(ResourceKind::KeyPair, id));
        }
    }
    let include_public = call.req.bool("IncludePublicKey")?.unwrap_or(false);
    let filters = Filters::parse(
        call.req,
        &[
            "key-pair-id",
            "key-name",
            "fingerprint",
            "key-type",
            "tag:",
            "tag-key",
        ],
    )?;
    let mut store = call.ctx.store()?;
    let (pairs, tags) = store.read(|tx| {
        let pairs = tx.list_key_pairs(&names, &key_ids)?;
        let ids: Vec<String> = pairs.iter().map(|p| p.id.clone()).collect();
        let tags = tx.tags_of_many(&ids)?;
        Ok::<_, Ec2Error>((pairs, tags))
    })?;
    if let Some(missing) = names.iter().find(|n| !pairs.iter().any(|p| p.name == **n)) {
        return Err(Ec2Error::key_pair_not_found(missing));
    }
    if let Some(missing) = key_ids.iter().find(|i| !pairs.iter().any(|p| p.id == **i)) {
        return Err(Ec2Error::key_pair_not_found(missing));
    }
    let no_tags = Vec::new();
    let selected: Vec<_> = pairs
        .iter()
        .map(|p| (p, tags.get(&p.id).unwrap_or(&no_tags)))
        .filter(|(p, t)| {
            filters.matches("key-pair-id", &p.id)
                && filters.matches("key-name", &p.name)
                && filters.matches("fingerprint", &p.fingerprint)
                && filters.matches("key-type", &p.key_type)
                && filters.matches_tags(t)
        })
        .collect();
    call.reply(|x| {
        x.list("keySet", selected, |x, (p, t)| {
            x.text("keyPairId", &p.id).text("keyType", &p.key_type);
            write_tag_set(x, t);
            if include_public {
                x.text("publicKey", &p.public_key);
            }
            x.timestamp_ms("createTime", p.created_ms)
                .text("keyName", &p.name)
                .text("keyFingerprint", &p.fingerprint);
        });
    })
}

fn delete_key_pair(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let name = call.req.string("KeyName").filter(|n| !n.is_empty());
    let id = call.req.string("KeyPairId").filter(|i| !i.is_empty());
    if name.is_none() && id.is_none() {
        return Err(Ec2Error::missing_parameter("KeyName"));
    }
    if let Some(id) = id
        && !ids::is_valid(ResourceKind::KeyPair, id)
    {
        return Err(Ec2Error::malformed_id(ResourceKind::KeyPair, id));
    }
    call.check_dry_run()?;
    let mut store = call.ctx.store()?;
    let deleted = store.write(|tx| {
        let pairs = match (name, id) {
            (Some(n), _) => tx.list_key_pairs(&[n.to_string()], &[])?,
            (None, Some(i)) => tx.list_key_pairs(&[], &[i.to_string()])?,
            (None, None) => Vec::new(),
        };
        // Both given: they must name the same pair.
        let pair = pairs.into_iter().find(|p| id.is_none_or(|i| p.id == i));
        match pair {
            Some(p) => {
                tx.delete_key_pair(&p.name)?;
                Ok::<_, Ec2Error>(Some(p.id))
            }
            // EC2 succeeds for a key pair that is not there.
            None => Ok(None),
        }
    })?;
    call.reply(|x| {
        x.bool("return", true)
            .opt_text("keyPairId", deleted.as_deref());
    })
}
