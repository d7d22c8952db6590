//! `MetadataConfig::validate`: every value is served to the guest as a line
//! of a listing or as a leaf, so besides EC2's own formats we insist on no
//! control characters (a newline would forge listing entries) and bounded
//! sizes.

use super::{Credentials, MAX_USER_DATA, MetadataConfig, MetadataError};

const MAX_TAGS: usize = 50; // EC2's per-resource tag limit
const MAX_PUBLIC_KEYS: usize = 16;
const MAX_SECURITY_GROUPS: usize = 16; // EC2's per-interface maximum
const MAX_CIDR_BLOCKS: usize = 50;
const MAX_BLOCK_DEVICES: usize = 64;
const MAX_TEXT: usize = 1024;

type Result<T = ()> = std::result::Result<T, MetadataError>;

impl MetadataConfig {
    pub fn validate(&self) -> Result {
        resource_id("instance_id", &self.instance_id, "i-")?;
        resource_id("ami_id", &self.ami_id, "ami-")?;
        resource_id("reservation_id", &self.reservation_id, "r-")?;
        resource_id("interface_id", &self.interface_id, "eni-")?;
        resource_id("subnet_id", &self.subnet_id, "subnet-")?;
        resource_id("vpc_id", &self.vpc_id, "vpc-")?;
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("account_id", "must be 12 digits"));
        }
        text("ami_manifest_path", &self.ami_manifest_path, MAX_TEXT)?;
        token_chars("instance_type", &self.instance_type, 64, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
        })?;
        if !["on-demand", "spot", "scheduled", "capacity-block"]
            .contains(&self.instance_life_cycle.as_str())
        {
            return Err(invalid(
                "instance_life_cycle",
                "must be on-demand, spot, scheduled or capacity-block",
            ));
        }
        let zone_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        token_chars("region", &self.region, 32, zone_char)?;
        token_chars("availability_zone", &self.availability_zone, 48, zone_char)?;
        token_chars(
            "availability_zone_id",
            &self.availability_zone_id,
            32,
            zone_char,
        )?;
        // botocore and cloud-init derive the region by dropping the zone's
        // last letter, so the zone must extend the region.
        if self.availability_zone.len() <= self.region.len()
            || !self.availability_zone.starts_with(&self.region)
        {
            return Err(invalid(
                "availability_zone",
                format!(
                    "must be the region {:?} followed by a zone letter",
                    self.region
                ),
            ));
        }
        let host_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
        if let Some(h) = &self.hostname {
            token_chars("hostname", h, 253, host_char)?;
        }
        if let Some(h) = &self.local_hostname {
            token_chars("local_hostname", h, 253, host_char)?;
        }
        mac("mac", &self.mac)?;
        cidr("subnet_ipv4_cidr_block", &self.subnet_ipv4_cidr_block)?;
        cidr("vpc_ipv4_cidr_block", &self.vpc_ipv4_cidr_block)?;
        bounded(
            "vpc_ipv4_cidr_blocks",
            self.vpc_ipv4_cidr_blocks.len(),
            MAX_CIDR_BLOCKS,
        )?;
        for (i, block) in self.vpc_ipv4_cidr_blocks.iter().enumerate() {
            cidr(&format!("vpc_ipv4_cidr_blocks[{i}]"), block)?;
        }
        self.validate_groups()?;
        self.validate_keys()?;
        if let Some(data) = &self.user_data
            && data.len() > MAX_USER_DATA
        {
            return Err(invalid(
                "user_data_base64",
                format!(
                    "user data is {} bytes; EC2 allows at most {MAX_USER_DATA}",
                    data.len()
                ),
            ));
        }
        self.validate_tags()?;
        self.validate_block_devices()?;
        if let Some(iam) = &self.iam {
            if !iam.instance_profile_arn.starts_with("arn:") {
                return Err(invalid(
                    "iam.instance_profile_arn",
                    "must start with \"arn:\"",
                ));
            }
            text("iam.instance_profile_arn", &iam.instance_profile_arn, 2048)?;
            token_chars(
                "iam.instance_profile_id",
                &iam.instance_profile_id,
                128,
                |c| c.is_ascii_alphanumeric(),
            )?;
            // IAM's role-name character set; the name is also a path segment.
            token_chars("iam.role_name", &iam.role_name, 64, |c| {
                c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
            })?;
            credentials("iam.credentials", &iam.credentials)?;
        }
        if let Some(creds) = &self.identity_credentials {
            credentials("identity_credentials", creds)?;
        }
        timestamp("pending_time", &self.pending_time)?;
        let hop = self.metadata_options.http_put_response_hop_limit;
        if !(1..=64).contains(&hop) {
            return Err(invalid(
                "metadata_options.http_put_response_hop_limit",
                format!("{hop} is outside 1..=64"),
            ));
        }
        Ok(())
    }

    fn validate_groups(&self) -> Result {
        for (field, list) in [
            ("security_groups", &self.security_groups),
            ("security_group_ids", &self.security_group_ids),
        ] {
            if list.is_empty() {
                return Err(invalid(
                    field,
                    "an instance has at least one security group",
                ));
            }
            bounded(field, list.len(), MAX_SECURITY_GROUPS)?;
        }
        for (i, name) in self.security_groups.iter().enumerate() {
            text(&format!("security_groups[{i}]"), name, 255)?;
        }
        for (i, id) in self.security_group_ids.iter().enumerate() {
            resource_id(&format!("security_group_ids[{i}]"), id, "sg-")?;
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result {
        bounded("public_keys", self.public_keys.len(), MAX_PUBLIC_KEYS)?;
        for (i, key) in self.public_keys.iter().enumerate() {
            text(&format!("public_keys[{i}].name"), &key.name, 255)?;
            text(
                &format!("public_keys[{i}].openssh_key"),
                &key.openssh_key,
                16 * 1024,
            )?;
        }
        Ok(())
    }

    fn validate_tags(&self) -> Result {
        bounded("tags", self.tags.len(), MAX_TAGS)?;
        for (key, value) in &self.tags {
            let field = format!("tags[{key:?}]");
            // The rules EC2 imposes on tag keys while tags are in the
            // metadata (a key is a path segment there). Checked even while
            // tags are disabled, so enabling them later cannot fail.
            token_chars(&field, key, 128, |c| {
                c.is_ascii_alphanumeric() || "+-=._:@".contains(c)
            })?;
            if key == "." || key == ".." || key == "_index" {
                return Err(invalid(
                    field,
                    "is not allowed as a tag key in instance metadata",
                ));
            }
            if value.len() > 256 || value.chars().any(char::is_control) {
                return Err(invalid(
                    field,
                    "tag value must be at most 256 bytes without control characters",
                ));
            }
        }
        Ok(())
    }

    fn validate_block_devices(&self) -> Result {
        bounded(
            "block_device_mapping",
            self.block_device_mapping.len(),
            MAX_BLOCK_DEVICES,
        )?;
        for (name, device) in &self.block_device_mapping {
            let field = format!("block_device_mapping[{name:?}]");
            token_chars(&field, name, 32, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit()
            })?;
            token_chars(&field, device, 64, |c| {
                c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-'
            })?;
        }
        Ok(())
    }
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> MetadataError {
    MetadataError::invalid(field, reason)
}

fn bounded(field: &str, len: usize, max: usize) -> Result {
    if len > max {
        return Err(invalid(
            field,
            format!("{len} entries; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Non-empty, at most `max` bytes, one line without control characters.
fn text(field: &str, value: &str, max: usize) -> Result {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(invalid(field, format!("longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "must be a single line without control characters",
        ));
    }
    Ok(())
}

fn token_chars(field: &str, value: &str, max: usize, ok: impl Fn(char) -> bool) -> Result {
    text(field, value, max)?;
    if let Some(c) = value.chars().find(|&c| !ok(c)) {
        return Err(invalid(
            field,
            format!("character {c:?} is not allowed in {value:?}"),
        ));
    }
    Ok(())
}

/// EC2 ids: a prefix and 8 or 17 lower-case hex digits (we allow 1..=32).
fn resource_id(field: &str, value: &str, prefix: &str) -> Result {
    let Some(hex) = value.strip_prefix(prefix) else {
        return Err(invalid(
            field,
            format!("{value:?} must start with {prefix:?}"),
        ));
    };
    if hex.is_empty()
        || hex.len() > 32
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(invalid(
            field,
            format!("{value:?} must be {prefix:?} followed by lower-case hex digits"),
        ));
    }
    Ok(())
}

fn mac(field: &str, value: &str) -> Result {
    let parts: Vec<&str> = value.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(invalid(
            field,
            format!("{value:?} is not a MAC like 06:00:00:00:00:01"),
        ));
    }
    Ok(())
}

fn cidr(field: &str, value: &str) -> Result {
    let ok = value.split_once('/').is_some_and(|(addr, len)| {
        addr.parse::<std::net::Ipv4Addr>().is_ok()
            && !len.is_empty()
            && len.len() <= 2
            && len.bytes().all(|b| b.is_ascii_digit())
            && len.parse::<u8>().is_ok_and(|n| n <= 32)
    });
    if !ok {
        return Err(invalid(
            field,
            format!("{value:?} is not an IPv4 CIDR like 10.0.0.0/16"),
        ));
    }
    Ok(())
}

/// "YYYY-MM-DDTHH:MM:SSZ", the form EC2 uses in every metadata timestamp.
fn timestamp(field: &str, value: &str) -> Result {
    let b = value.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(invalid(
            field,
            format!("{value:?} is not a time like 2024-01-31T12:00:00Z"),
        ));
    }
    Ok(())
}

fn credentials(field: &str, c: &Credentials) -> Result {
    text(&format!("{field}.access_key_id"), &c.access_key_id, 128)?;
    text(
        &format!("{field}.secret_access_key"),
        &c.secret_access_key,
        256,
    )?;
    text(&format!("{field}.token"), &c.token, 8192)?;
    timestamp(&format!("{field}.expiration"), &c.expiration)?;
    timestamp(&format!("{field}.last_updated"), &c.last_updated)
}
