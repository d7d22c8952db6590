//! EBS volume types and what each promises, from AWS's EBS documentation
//! (volume types, General Purpose SSD, Provisioned IOPS SSD, Throughput
//! Optimized / Cold HDD, Magnetic, I/O characteristics):
//!
//! | type     | size          | IOPS                                   | throughput                                  |
//! |----------|---------------|----------------------------------------|---------------------------------------------|
//! | gp3      | 1 GiB-64 TiB  | 3,000 (default) to 80,000; <= 500/GiB  | 125 (default) to 2,000 MiB/s; <= 0.25/IOPS  |
//! | gp2      | 1 GiB-16 TiB  | 3/GiB, 100 to 16,000; burst to 3,000   | 128 MiB/s up to 170 GiB, else 250 MiB/s     |
//! | io1      | 4 GiB-16 TiB  | 100 to 64,000; <= 50/GiB               | 256 KiB/IOPS up to 500 MiB/s; above 32,000  |
//! |          |               |                                        | IOPS 16 KiB/IOPS (1,000 MiB/s at 64,000)    |
//! | io2 (BX) | 4 GiB-64 TiB  | 100 to 256,000; <= 1,000/GiB           | 256 KiB/IOPS up to 4,000 MiB/s              |
//! | st1      | 125 GiB-16 TiB| 500 (1 MiB I/O)                        | 40 MiB/s/TiB base, 250/TiB burst, max 500   |
//! | sc1      | 125 GiB-16 TiB| 250 (1 MiB I/O)                        | 12 MiB/s/TiB base, 80/TiB burst, max 250    |
//! | standard | 1 GiB-1 TiB   | ~100 average, bursts to hundreds       | 40-90 MiB/s                                 |
//!
//! (gp3's size, IOPS and throughput ceilings are EC2's since 2025, as the
//! control plane's CreateVolume/ModifyVolume rules take them.)
//!
//! Burst buckets: gp2 holds 5.4 million I/O credits (full at creation),
//! earned at the baseline rate, spent one per I/O, while it bursts to 3,000
//! IOPS; a gp2 whose baseline is 3,000 or more never bursts. st1/sc1 hold
//! 1 TiB of throughput credits per TiB of size, earned at the baseline
//! throughput and spent by the bytes moved while bursting. `BurstBalance`
//! is the bucket's fill in percent, for gp2, st1 and sc1 only.
//!
//! I/O accounting: SSD volumes count an I/O in units of up to 256 KiB (a
//! 1 MiB I/O is 4 operations, anything smaller is 1); HDD volumes in units
//! of up to 1 MiB, and st1/sc1 charge every unit as a full 1 MiB of
//! throughput ("an I/O request of 1 MiB or less counts as a 1 MiB I/O
//! credit"). EBS merges physically sequential small I/Os; Flint does not
//! (the guest's block layer already merges what it queues together).
//!
//! Choices of ours where AWS publishes no number: io2 is modelled as Block
//! Express (its "0.256 MiB/s per IOPS" read as 256 KiB, which matches its
//! 4,000 MiB/s at 16,000 IOPS); standard bursts to 200 IOPS from a bucket
//! of 30,000 credits earned at 100 IOPS, caps at 90 MiB/s, and reports no
//! BurstBalance (CloudWatch has none for it).

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl VolumeType {
    pub fn name(self) -> &'static str {
        match self {
            VolumeType::Gp2 => "gp2",
            VolumeType::Gp3 => "gp3",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
            VolumeType::St1 => "st1",
            VolumeType::Sc1 => "sc1",
            VolumeType::Standard => "standard",
        }
    }

    /// Allowed sizes in GiB.
    fn sizes(self) -> (u64, u64) {
        match self {
            VolumeType::Gp2 => (1, 16 * 1024),
            VolumeType::Gp3 => (1, 64 * 1024),
            VolumeType::Io1 => (4, 16 * 1024),
            VolumeType::Io2 => (4, 64 * 1024),
            VolumeType::St1 | VolumeType::Sc1 => (125, 16 * 1024),
            VolumeType::Standard => (1, 1024),
        }
    }
}

impl std::fmt::Display for VolumeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An EBS volume's performance settings, as CreateVolume takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub volume_type: VolumeType,
    pub size_gib: u64,
    /// Provisioned IOPS: gp3 (default 3,000), io1 and io2 (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u64>,
    /// Provisioned throughput in MiB/s: gp3 only (default 125).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_mibps: Option<u64>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LimitsError {
    #[error("a {volume_type} volume must be {min} to {max} GiB, got {size_gib}")]
    Size {
        volume_type: VolumeType,
        size_gib: u64,
        min: u64,
        max: u64,
    },
    #[error("iops cannot be set for a {0} volume (only gp3, io1 and io2)")]
    IopsNotAllowed(VolumeType),
    #[error("a {0} volume needs iops")]
    IopsRequired(VolumeType),
    #[error("a {volume_type} volume takes {min} to {max} iops, got {iops}")]
    IopsRange {
        volume_type: VolumeType,
        iops: u64,
        min: u64,
        max: u64,
    },
    #[error(
        "a {size_gib} GiB {volume_type} volume takes at most {max} iops ({per_gib} per GiB), got {iops}"
    )]
    IopsPerGib {
        volume_type: VolumeType,
        iops: u64,
        size_gib: u64,
        per_gib: u64,
        max: u64,
    },
    #[error("throughput_mibps cannot be set for a {0} volume (only gp3)")]
    ThroughputNotAllowed(VolumeType),
    #[error("a gp3 volume takes 125 to 2000 throughput_mibps, got {0}")]
    ThroughputRange(u64),
    #[error(
        "a gp3 volume with {iops} iops takes at most {max} throughput_mibps (0.25 MiB/s per IOPS), got {throughput}"
    )]
    ThroughputPerIops {
        throughput: u64,
        iops: u64,
        max: u64,
    },
}

/// A burst bucket: capacity, how fast it refills, what it starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credits {
    pub capacity: u64,
    /// Per second: the volume's baseline.
    pub refill: u64,
    pub initial: u64,
}

/// What the throttle enforces for one set of limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Performance {
    /// log2 of the largest I/O counted as one operation.
    pub io_unit_shift: u32,
    /// Throughput is charged in whole I/O units (st1/sc1), not bytes.
    pub whole_units: bool,
    /// Highest IOPS (the burst rate where there is an I/O credit bucket).
    pub iops: u64,
    pub iops_credits: Option<Credits>,
    /// Highest throughput in bytes/s (the burst rate for st1/sc1).
    pub throughput: u64,
    pub throughput_credits: Option<Credits>,
    /// The bucket behind BurstBalance, if the type reports one.
    pub reports_burst_balance: bool,
}

/// gp2's I/O credit bucket and burst rate.
pub const GP2_CREDITS: u64 = 5_400_000;
pub const GP2_BURST_IOPS: u64 = 3_000;
const SSD_UNIT_SHIFT: u32 = 18; // 256 KiB
const HDD_UNIT_SHIFT: u32 = 20; // 1 MiB
const STANDARD_BASELINE_IOPS: u64 = 100;
const STANDARD_BURST_IOPS: u64 = 200;
const STANDARD_CREDITS: u64 = 30_000;

impl Limits {
    /// Checks the limits against the type's documented ranges.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let t = self.volume_type;
        let (min, max) = t.sizes();
        if !(min..=max).contains(&self.size_gib) {
            return Err(LimitsError::Size {
                volume_type: t,
                size_gib: self.size_gib,
                min,
                max,
            });
        }
        let iops_rule: Option<(u64, u64, u64)> = match t {
            VolumeType::Gp3 => Some((3_000, 80_000, 500)),
            VolumeType::Io1 => Some((100, 64_000, 50)),
            VolumeType::Io2 => Some((100, 256_000, 1_000)),
            _ => None,
        };
        match (iops_rule, self.iops) {
            (None, Some(_)) => return Err(LimitsError::IopsNotAllowed(t)),
            (Some(_), None) if t != VolumeType::Gp3 => return Err(LimitsError::IopsRequired(t)),
            (Some((min, max, per_gib)), Some(iops)) => {
                if !(min..=max).contains(&iops) {
                    return Err(LimitsError::IopsRange {
                        volume_type: t,
                        iops,
                        min,
                        max,
                    });
                }
                // gp3's 3,000 come with any size; the ratio limits more.
                let included = if t == VolumeType::Gp3 { 3_000 } else { 0 };
                let by_size = per_gib.saturating_mul(self.size_gib).max(included);
                if iops > by_size {
                    return Err(LimitsError::IopsPerGib {
                        volume_type: t,
                        iops,
                        size_gib: self.size_gib,
                        per_gib,
                        max: by_size.min(max),
                    });
                }
            }
            _ => {}
        }
        match (t, self.throughput_mibps) {
            (VolumeType::Gp3, Some(mibps)) => {
                if !(125..=2_000).contains(&mibps) {
                    return Err(LimitsError::ThroughputRange(mibps));
                }
                let iops = self.iops.unwrap_or(3_000);
                let max = iops / 4;
                if mibps > max {
                    return Err(LimitsError::ThroughputPerIops {
                        throughput: mibps,
                        iops,
                        max,
                    });
                }
            }
            (_, Some(_)) => return Err(LimitsError::ThroughputNotAllowed(t)),
            _ => {}
        }
        Ok(())
    }

    /// The rates and buckets these (validated) limits stand for.
    pub fn performance(&self) -> Result<Performance, LimitsError> {
        self.validate()?;
        let size = self.size_gib;
        let ssd = |iops: u64, throughput: u64| Performance {
            io_unit_shift: SSD_UNIT_SHIFT,
            whole_units: false,
            iops,
            iops_credits: None,
            throughput,
            throughput_credits: None,
            reports_burst_balance: false,
        };
        Ok(match self.volume_type {
            VolumeType::Gp3 => ssd(
                self.iops.unwrap_or(3_000),
                self.throughput_mibps.unwrap_or(125) * MIB,
            ),
            VolumeType::Gp2 => {
                let baseline = (3 * size).clamp(100, 16_000);
                let throughput = if size <= 170 { 128 } else { 250 } * MIB;
                if baseline >= GP2_BURST_IOPS {
                    ssd(baseline, throughput)
                } else {
                    Performance {
                        iops_credits: Some(Credits {
                            capacity: GP2_CREDITS,
                            refill: baseline,
                            initial: GP2_CREDITS,
                        }),
                        reports_burst_balance: true,
                        ..ssd(GP2_BURST_IOPS, throughput)
                    }
                }
            }
            VolumeType::Io1 => {
                let iops = self.iops.unwrap_or(100);
                let throughput = if iops <= 32_000 {
                    (iops * 256 * KIB).min(500 * MIB)
                } else {
                    iops * 16 * KIB
                };
                ssd(iops, throughput)
            }
            VolumeType::Io2 => {
                let iops = self.iops.unwrap_or(100);
                ssd(iops, (iops * 256 * KIB).min(4_000 * MIB))
            }
            VolumeType::St1 => hdd(size, 40, 250, 500, 500),
            VolumeType::Sc1 => hdd(size, 12, 80, 250, 250),
            VolumeType::Standard => Performance {
                io_unit_shift: HDD_UNIT_SHIFT,
                whole_units: false,
                iops: STANDARD_BURST_IOPS,
                iops_credits: Some(Credits {
                    capacity: STANDARD_CREDITS,
                    refill: STANDARD_BASELINE_IOPS,
                    initial: STANDARD_CREDITS,
                }),
                throughput: 90 * MIB,
                throughput_credits: None,
                reports_burst_balance: false,
            },
        })
    }
}

/// st1/sc1: per-TiB baseline and burst throughput (MiB/s), capped; a
/// bucket of 1 TiB of credits per TiB, full at creation.
fn hdd(
    size_gib: u64,
    base_per_tib: u64,
    burst_per_tib: u64,
    cap_mibps: u64,
    iops: u64,
) -> Performance {
    // MiB/s per TiB * GiB / 1024 = (per_tib * GiB) KiB/s.
    let per_tib = |mibps: u64| (mibps * size_gib * KIB).min(cap_mibps * MIB);
    Performance {
        io_unit_shift: HDD_UNIT_SHIFT,
        whole_units: true,
        iops,
        iops_credits: None,
        throughput: per_tib(burst_per_tib),
        throughput_credits: Some(Credits {
            capacity: size_gib * GIB,
            refill: per_tib(base_per_tib),
            initial: size_gib * GIB,
        }),
        reports_burst_balance: true,
    }
}
