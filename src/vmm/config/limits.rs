//! EBS volume-type limits of a disk (`"limits"` in the VM config's disks and
//! on the control socket's /vm/disks). Only their shape is checked here;
//! what they mean (IOPS, throughput, burst) belongs to the block device's
//! rate limiter. `null`/absent: unthrottled.

use serde::{Deserialize, Serialize};

/// The EBS volume types.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Gp2,
    Gp3,
    Io1,
    Io2,
    St1,
    Sc1,
    Standard,
}

/// `{"volume_type":"gp3","size_gib":100,"iops":3000,"throughput_mibps":125}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeLimits {
    pub volume_type: VolumeType,
    pub size_gib: u64,
    /// Provisioned IOPS (gp3, io1, io2); the type's baseline when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u64>,
    /// Provisioned throughput (gp3); the type's baseline when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_mibps: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_shape_and_rejects_others() {
        let l: VolumeLimits =
            serde_json::from_str(r#"{"volume_type":"gp3","size_gib":8,"iops":3000}"#).unwrap();
        assert_eq!(l.volume_type, VolumeType::Gp3);
        assert_eq!(
            (l.size_gib, l.iops, l.throughput_mibps),
            (8, Some(3000), None)
        );
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"volume_type":"gp3","size_gib":8,"iops":3000}"#
        );
        for bad in [
            r#"{"volume_type":"gp4","size_gib":8}"#,
            r#"{"volume_type":"gp2"}"#,
            r#"{"volume_type":"gp2","size_gib":-1}"#,
            r#"{"volume_type":"gp2","size_gib":8,"burst":1}"#,
            r#""gp2""#,
        ] {
            assert!(serde_json::from_str::<VolumeLimits>(bad).is_err(), "{bad}");
        }
    }
}
