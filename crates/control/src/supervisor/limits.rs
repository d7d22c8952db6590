//! A volume record's EBS limits (`contract::ebs::Limits`): what the VMM
//! throttles the disk by, and the IOPS and throughput EC2 reports for the
//! volume. The numbers are the contract's table's.

use super::SupervisorError;
use crate::store::volumes::VolumeRecord;
use flint_contract::ebs::{Limits, VolumeType};

/// The limits of `v`: its type and size, the IOPS and throughput it has
/// provisioned (or the type's defaults). Every type is sent, `standard`
/// included: the VMM decides what throttling a type means.
pub fn limits(v: &VolumeRecord) -> Result<Limits, SupervisorError> {
    let volume_type: VolumeType = v
        .volume_type
        .parse()
        .map_err(|e| SupervisorError::Config(format!("volume {}: {e}", v.id)))?;
    Ok(Limits::of_volume(
        volume_type,
        v.size_gib,
        v.iops.map(u64::from),
        v.throughput.map(u64::from),
    ))
}

fn reported(v: &VolumeRecord, value: impl Fn(&Limits) -> Option<u64>) -> Option<u32> {
    let limits = limits(v).ok()?;
    value(&limits).and_then(|n| u32::try_from(n).ok())
}

/// The IOPS EC2 reports for the volume (`Volume.Iops`): provisioned for
/// gp3/io1/io2, the baseline for gp2, none for the HDD types.
pub fn effective_iops(v: &VolumeRecord) -> Option<u32> {
    reported(v, Limits::reported_iops)
}

/// The throughput EC2 reports (`Volume.Throughput`): gp3 only.
pub fn effective_throughput(v: &VolumeRecord) -> Option<u32> {
    reported(v, Limits::reported_throughput_mibps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(kind: &str, size: u64, iops: Option<u32>) -> VolumeRecord {
        VolumeRecord {
            id: "vol-0123456789abcdef0".into(),
            volume_type: kind.into(),
            size_gib: size,
            iops,
            ..VolumeRecord::default()
        }
    }

    fn json(v: &VolumeRecord) -> serde_json::Value {
        serde_json::to_value(limits(v).unwrap()).unwrap()
    }

    #[test]
    fn limits_follow_the_volume_type() {
        use serde_json::json;
        assert_eq!(
            json(&volume("gp3", 8, None)),
            json!({"volume_type": "gp3", "size_gib": 8, "iops": 3000, "throughput_mibps": 125})
        );
        assert_eq!(
            json(&volume("gp2", 10, None)),
            json!({"volume_type": "gp2", "size_gib": 10})
        );
        assert_eq!(effective_iops(&volume("gp2", 10, None)), Some(100));
        assert_eq!(effective_iops(&volume("gp2", 1000, None)), Some(3000));
        assert_eq!(effective_iops(&volume("gp2", 10_000, None)), Some(16_000));
        assert_eq!(
            json(&volume("io2", 10, Some(5000))),
            json!({"volume_type": "io2", "size_gib": 10, "iops": 5000})
        );
        assert_eq!(
            json(&volume("standard", 10, None)),
            json!({"volume_type": "standard", "size_gib": 10})
        );
        assert_eq!(effective_throughput(&volume("st1", 500, None)), None);
        assert_eq!(effective_throughput(&volume("gp3", 8, None)), Some(125));
        assert!(limits(&volume("gp9", 8, None)).is_err());
        assert_eq!(effective_iops(&volume("gp9", 8, None)), None);
    }

    #[test]
    fn every_recorded_volume_has_limits_the_table_accepts() {
        for (kind, size, iops) in [
            ("gp2", 10, None),
            ("gp2", 16_384, None),
            ("gp3", 8, None),
            ("gp3", 65_536, Some(80_000)),
            ("io1", 100, Some(5000)),
            ("io2", 10, Some(5000)),
            ("st1", 500, None),
            ("sc1", 125, None),
            ("standard", 10, None),
        ] {
            let l = limits(&volume(kind, size, iops)).unwrap();
            l.validate().unwrap_or_else(|e| panic!("{l:?}: {e}"));
        }
    }
}
