//! A volume's performance as EC2 states it (IOPS, throughput), and the
//! `LIMITS` document the VMM throttles a disk by (per-VM socket contract:
//! `{"volume_type","size_gib","iops"?,"throughput_mibps"?}`).

use serde_json::{Value, json};

use crate::control::store::volumes::VolumeRecord;

/// gp3's baseline, included in its price and the default.
pub const GP3_DEFAULT_IOPS: u32 = 3000;
pub const GP3_DEFAULT_THROUGHPUT: u32 = 125;

/// gp2 earns 3 IOPS per GiB, at least 100 and at most 16,000.
pub fn gp2_baseline_iops(size_gib: u64) -> u32 {
    u32::try_from(size_gib.saturating_mul(3).clamp(100, 16_000)).unwrap_or(16_000)
}

/// The IOPS EC2 reports for the volume (`Volume.Iops`): provisioned for
/// gp3/io1/io2, the baseline for gp2, none for the HDD types.
pub fn effective_iops(v: &VolumeRecord) -> Option<u32> {
    match v.volume_type.as_str() {
        "gp2" => Some(gp2_baseline_iops(v.size_gib)),
        "gp3" => Some(v.iops.unwrap_or(GP3_DEFAULT_IOPS)),
        "io1" | "io2" => v.iops,
        _ => None,
    }
}

/// The throughput EC2 reports (`Volume.Throughput`): gp3 only.
pub fn effective_throughput(v: &VolumeRecord) -> Option<u32> {
    (v.volume_type == "gp3").then(|| v.throughput.unwrap_or(GP3_DEFAULT_THROUGHPUT))
}

/// The VMM's `LIMITS` for the volume. Every type is sent, `standard`
/// included: the VMM decides what throttling a type means. IOPS only where
/// they are provisioned (the VMM refuses them for gp2, whose baseline
/// follows from the size, as CreateVolume does).
pub fn limits(v: &VolumeRecord) -> Value {
    let mut doc = json!({
        "volume_type": v.volume_type,
        "size_gib": v.size_gib,
    });
    if let Some(iops) = effective_iops(v).filter(|_| v.volume_type != "gp2") {
        doc["iops"] = json!(iops);
    }
    if let Some(throughput) = effective_throughput(v) {
        doc["throughput_mibps"] = json!(throughput);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(kind: &str, size: u64, iops: Option<u32>) -> VolumeRecord {
        VolumeRecord {
            volume_type: kind.into(),
            size_gib: size,
            iops,
            ..VolumeRecord::default()
        }
    }

    #[test]
    fn limits_follow_the_volume_type() {
        assert_eq!(
            limits(&volume("gp3", 8, None)),
            json!({"volume_type": "gp3", "size_gib": 8, "iops": 3000, "throughput_mibps": 125})
        );
        assert_eq!(
            limits(&volume("gp2", 10, None)),
            json!({"volume_type": "gp2", "size_gib": 10})
        );
        assert_eq!(effective_iops(&volume("gp2", 10, None)), Some(100));
        assert_eq!(effective_iops(&volume("gp2", 1000, None)), Some(3000));
        assert_eq!(effective_iops(&volume("gp2", 10_000, None)), Some(16_000));
        assert_eq!(
            limits(&volume("io2", 10, Some(5000))),
            json!({"volume_type": "io2", "size_gib": 10, "iops": 5000})
        );
        assert_eq!(
            limits(&volume("standard", 10, None)),
            json!({"volume_type": "standard", "size_gib": 10})
        );
        assert_eq!(effective_throughput(&volume("st1", 500, None)), None);
    }

    #[test]
    fn the_vmm_takes_the_limits_of_every_type() {
        use crate::vmm::devices::virtio::block::throttle::Limits;
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
            let doc = limits(&volume(kind, size, iops));
            let parsed: Limits = serde_json::from_value(doc.clone()).unwrap();
            parsed.validate().unwrap_or_else(|e| panic!("{doc}: {e}"));
        }
    }
}
