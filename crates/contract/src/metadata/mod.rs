//! What the metadata service knows about its instance: the JSON document
//! given to `flint vmm --metadata FILE.json` (and vm.json's `metadata`),
//! and the runtime updates the per-VM control socket may apply to it
//! (`PUT /vm/metadata`: tags, block device mapping, metadata options, user
//! data — what EC2 lets you change on a running instance).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[cfg(test)]
mod tests;
mod validate;

/// EC2's limit on user data (before base64).
pub const MAX_USER_DATA: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("cannot read metadata file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid metadata JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("metadata field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
}

impl MetadataError {
    pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        MetadataError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    /// IMDSv1 and IMDSv2 both work (EC2's historical default).
    #[default]
    Optional,
    /// IMDSv2 only: every GET must carry a valid session token.
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Enabled,
    Disabled,
}

/// EC2's InstanceMetadataOptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataOptions {
    pub http_tokens: HttpTokens,
    pub http_endpoint: Toggle,
    /// IP TTL of the packets that carry a token PUT response (1..=64).
    pub http_put_response_hop_limit: u8,
    pub instance_metadata_tags: Toggle,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            http_tokens: HttpTokens::Optional,
            http_endpoint: Toggle::Enabled,
            http_put_response_hop_limit: 1,
            instance_metadata_tags: Toggle::Disabled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    pub name: String,
    /// One line, e.g. "ssh-ed25519 AAAA... comment".
    pub openssh_key: String,
}

/// The temporary credentials of a role, as botocore reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// "YYYY-MM-DDTHH:MM:SSZ"
    pub expiration: String,
    /// "YYYY-MM-DDTHH:MM:SSZ"
    pub last_updated: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamInstanceProfile {
    pub instance_profile_arn: String,
    pub instance_profile_id: String,
    pub role_name: String,
    pub credentials: Credentials,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    pub instance_id: String,
    pub ami_id: String,
    pub ami_launch_index: u32,
    pub ami_manifest_path: String,
    pub instance_type: String,
    pub instance_life_cycle: String,
    pub reservation_id: String,
    pub account_id: String,
    pub region: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
    /// Defaults to `local_hostname`.
    pub hostname: Option<String>,
    /// Defaults to EC2's IP-based name, see [`MetadataConfig::local_hostname`].
    pub local_hostname: Option<String>,
    pub local_ipv4: Ipv4Addr,
    pub mac: String,
    pub interface_id: String,
    pub device_number: u32,
    pub subnet_id: String,
    pub subnet_ipv4_cidr_block: String,
    pub vpc_id: String,
    pub vpc_ipv4_cidr_block: String,
    /// Every CIDR block of the VPC; empty means just `vpc_ipv4_cidr_block`.
    pub vpc_ipv4_cidr_blocks: Vec<String>,
    pub security_groups: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub public_keys: Vec<PublicKey>,
    /// Raw bytes; base64 in the JSON, as in RunInstances.
    #[serde(
        rename = "user_data_base64",
        with = "user_data_base64",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_data: Option<Vec<u8>>,
    /// Served under meta-data/tags/instance/ only while
    /// `metadata_options.instance_metadata_tags` is enabled.
    pub tags: BTreeMap<String, String>,
    pub iam: Option<IamInstanceProfile>,
    /// What meta-data/identity-credentials/ec2/security-credentials/
    /// ec2-instance serves. EC2 mints these for AWS-internal use; without a
    /// value here the document carries empty key fields.
    pub identity_credentials: Option<Credentials>,
    /// Mapping name (ami, root, ebs1, ephemeral0) → device (/dev/xvda, sdf).
    pub block_device_mapping: BTreeMap<String, String>,
    /// Launch time, "YYYY-MM-DDTHH:MM:SSZ".
    pub pending_time: String,
    pub metadata_options: MetadataOptions,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        // The example values of the EC2 documentation: a config that sets
        // nothing still describes one coherent instance.
        MetadataConfig {
            instance_id: "i-1234567890abcdef0".into(),
            ami_id: "ami-0abcdef1234567890".into(),
            ami_launch_index: 0,
            ami_manifest_path: "(unknown)".into(),
            instance_type: "t3.micro".into(),
            instance_life_cycle: "on-demand".into(),
            reservation_id: "r-0123456789abcdef0".into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            availability_zone: "us-east-1a".into(),
            availability_zone_id: "use1-az1".into(),
            hostname: None,
            local_hostname: None,
            local_ipv4: Ipv4Addr::new(172, 31, 16, 10),
            mac: "06:00:00:00:00:01".into(),
            interface_id: "eni-0123456789abcdef0".into(),
            device_number: 0,
            subnet_id: "subnet-0123456789abcdef0".into(),
            subnet_ipv4_cidr_block: "172.31.16.0/20".into(),
            vpc_id: "vpc-0123456789abcdef0".into(),
            vpc_ipv4_cidr_block: "172.31.0.0/16".into(),
            vpc_ipv4_cidr_blocks: Vec::new(),
            security_groups: vec!["default".into()],
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
            public_keys: Vec::new(),
            user_data: None,
            tags: BTreeMap::new(),
            iam: None,
            identity_credentials: None,
            block_device_mapping: BTreeMap::from([
                ("ami".to_string(), "/dev/xvda".to_string()),
                ("root".to_string(), "/dev/xvda".to_string()),
            ]),
            pending_time: "2024-01-01T00:00:00Z".into(),
            metadata_options: MetadataOptions::default(),
        }
    }
}

impl MetadataConfig {
    /// Parses and validates a metadata document.
    pub fn from_json(text: &str) -> Result<Self, MetadataError> {
        let config: MetadataConfig = serde_json::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates `flint vmm --metadata FILE.json`.
    pub fn load(path: &Path) -> Result<Self, MetadataError> {
        let text = std::fs::read_to_string(path).map_err(|source| MetadataError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// EC2's private DNS name: "ip-172-31-16-10.ec2.internal" in us-east-1,
    /// "ip-10-0-0-5.eu-west-1.compute.internal" everywhere else.
    pub fn local_hostname(&self) -> String {
        if let Some(name) = &self.local_hostname {
            return name.clone();
        }
        let [a, b, c, d] = self.local_ipv4.octets();
        if self.region == "us-east-1" {
            format!("ip-{a}-{b}-{c}-{d}.ec2.internal")
        } else {
            format!("ip-{a}-{b}-{c}-{d}.{}.compute.internal", self.region)
        }
    }

    pub fn hostname(&self) -> String {
        self.hostname
            .clone()
            .unwrap_or_else(|| self.local_hostname())
    }

    /// EC2 serves MACs in lower case whatever case the config used.
    pub fn mac(&self) -> String {
        self.mac.to_ascii_lowercase()
    }

    pub fn vpc_ipv4_cidr_blocks(&self) -> Vec<String> {
        if self.vpc_ipv4_cidr_blocks.is_empty() {
            vec![self.vpc_ipv4_cidr_block.clone()]
        } else {
            self.vpc_ipv4_cidr_blocks.clone()
        }
    }

    /// services/partition and services/domain follow the region's partition.
    pub fn partition_and_domain(&self) -> (&'static str, &'static str) {
        if self.region.starts_with("cn-") {
            ("aws-cn", "amazonaws.com.cn")
        } else if self.region.starts_with("us-gov-") {
            ("aws-us-gov", "amazonaws.com")
        } else {
            ("aws", "amazonaws.com")
        }
    }

    pub fn tags_enabled(&self) -> bool {
        self.metadata_options.instance_metadata_tags == Toggle::Enabled
    }
}

/// A runtime change sent through the per-VM control socket. Every field is
/// optional; a present field replaces (lists, maps, user data) or merges
/// (metadata options, field by field) into the running configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_device_mapping: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_options: Option<MetadataOptionsUpdate>,
    /// New user data, base64. An empty string removes the user data, as an
    /// empty value does in EC2's ModifyInstanceAttribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data_base64: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataOptionsUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tokens: Option<HttpTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_endpoint: Option<Toggle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_put_response_hop_limit: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_metadata_tags: Option<Toggle>,
}

/// Every option set: the whole of `options` replaces the running ones.
impl From<MetadataOptions> for MetadataOptionsUpdate {
    fn from(o: MetadataOptions) -> Self {
        MetadataOptionsUpdate {
            http_tokens: Some(o.http_tokens),
            http_endpoint: Some(o.http_endpoint),
            http_put_response_hop_limit: Some(o.http_put_response_hop_limit),
            instance_metadata_tags: Some(o.instance_metadata_tags),
        }
    }
}

impl MetadataConfig {
    /// The configuration after `update`, validated; `self` is untouched, so a
    /// rejected update changes nothing.
    pub fn updated(&self, update: &MetadataUpdate) -> Result<MetadataConfig, MetadataError> {
        let mut next = self.clone();
        if let Some(tags) = &update.tags {
            next.tags = tags.clone();
        }
        if let Some(bdm) = &update.block_device_mapping {
            next.block_device_mapping = bdm.clone();
        }
        if let Some(o) = update.metadata_options {
            let opts = &mut next.metadata_options;
            opts.http_tokens = o.http_tokens.unwrap_or(opts.http_tokens);
            opts.http_endpoint = o.http_endpoint.unwrap_or(opts.http_endpoint);
            opts.http_put_response_hop_limit = o
                .http_put_response_hop_limit
                .unwrap_or(opts.http_put_response_hop_limit);
            opts.instance_metadata_tags = o
                .instance_metadata_tags
                .unwrap_or(opts.instance_metadata_tags);
        }
        if let Some(text) = &update.user_data_base64 {
            next.user_data = user_data_base64::decode_str(text)
                .map_err(|e| MetadataError::invalid("user_data_base64", e))?;
        }
        next.validate()?;
        Ok(next)
    }
}

/// `user_data_base64` in JSON ↔ raw bytes in memory. The size limit is
/// enforced here too, before a hostile file makes us hold a huge buffer.
mod user_data_base64 {
    use base64::Engine;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::MAX_USER_DATA;

    /// Lenient, as a hand-written metadata file may be: padding optional,
    /// bits past the last whole byte ignored. [`decode`] also takes the
    /// URL-safe alphabet and skips ASCII whitespace.
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );

    /// Either alphabet (standard or URL-safe); ASCII whitespace skipped, so
    /// the output of `base64` (wrapped at 76 columns) is accepted.
    fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
        let standard: Vec<u8> = text
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| match b {
                b'-' => b'+',
                b'_' => b'/',
                b => b,
            })
            .collect();
        LENIENT.decode(standard)
    }

    pub fn decode_str(text: &str) -> Result<Option<Vec<u8>>, String> {
        // Base64 grows data by 4/3; allow generous line wrapping on top.
        if text.len() > MAX_USER_DATA * 2 {
            return Err(format!("user data is larger than {MAX_USER_DATA} bytes"));
        }
        let bytes = decode(text).map_err(|e| format!("invalid base64: {e}"))?;
        if bytes.len() > MAX_USER_DATA {
            return Err(format!(
                "user data is {} bytes; EC2 allows at most {MAX_USER_DATA}",
                bytes.len()
            ));
        }
        Ok(if bytes.is_empty() { None } else { Some(bytes) })
    }

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => decode_str(&text).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
