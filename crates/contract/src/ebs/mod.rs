//! EBS volume types: the one table of their rules ([`table`]) and a
//! volume's [`Limits`], which both sides of the daemon <-> VMM boundary
//! read from it:
//!
//! - the daemon's CreateVolume / ModifyVolume / RunInstances validation
//!   ([`Limits::validate`], whose [`LimitsError`] it turns into EC2's
//!   error codes), the defaults it records ([`Limits::with_defaults`]) and
//!   the IOPS and throughput it reports ([`Limits::reported_iops`]);
//! - the VMM's throttle: what a volume's limits stand for in rates, burst
//!   buckets and I/O units ([`Limits::performance`]).
//!
//! On the per-VM socket and in vm.json the limits are
//! `{"volume_type": "gp2|gp3|io1|io2|st1|sc1|standard", "size_gib": N,
//! "iops": N?, "throughput_mibps": N?}`.

mod model;
pub mod table;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use model::{Credits, Performance};
pub use table::{Model, TypeRules};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Every type, in the order EC2 lists them ("Valid volume types are:
    /// standard, io1, io2, gp2, sc1, st1, gp3.").
    pub const ALL: [VolumeType; 7] = [
        VolumeType::Standard,
        VolumeType::Io1,
        VolumeType::Io2,
        VolumeType::Gp2,
        VolumeType::Sc1,
        VolumeType::St1,
        VolumeType::Gp3,
    ];

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

    /// The type's row of the table.
    pub fn rules(self) -> &'static TypeRules {
        table::rules(self)
    }

    /// Takes provisioned IOPS (gp3, io1, io2).
    pub fn takes_iops(self) -> bool {
        self.rules().iops.is_some()
    }

    /// Takes provisioned throughput (gp3).
    pub fn takes_throughput(self) -> bool {
        self.rules().throughput.is_some()
    }
}

impl std::fmt::Display for VolumeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("unknown volume type {0:?}")]
pub struct UnknownVolumeType(pub String);

impl std::str::FromStr for VolumeType {
    type Err = UnknownVolumeType;
    fn from_str(s: &str) -> Result<Self, UnknownVolumeType> {
        VolumeType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownVolumeType(s.to_string()))
    }
}

/// The largest size any type takes, in GiB.
pub fn max_size_gib() -> u64 {
    VolumeType::ALL
        .iter()
        .map(|t| t.rules().max_size_gib)
        .max()
        .unwrap_or(0)
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
    #[error("a {volume_type} volume takes {min} to {max} throughput_mibps, got {throughput}")]
    ThroughputRange {
        volume_type: VolumeType,
        throughput: u64,
        min: u64,
        max: u64,
    },
    #[error(
        "a {volume_type} volume with {iops} iops takes at most {max} throughput_mibps ({} MiB/s per IOPS), got {throughput}",
        1.0 / *iops_per_mibps as f64
    )]
    ThroughputPerIops {
        volume_type: VolumeType,
        throughput: u64,
        iops: u64,
        max: u64,
        /// The ratio: 1 MiB/s per this many IOPS.
        iops_per_mibps: u64,
    },
}

impl Limits {
    /// Settings of `volume_type` at `size_gib`, with IOPS and throughput
    /// when given (not yet validated: see [`Limits::validate`]).
    pub fn of(
        volume_type: VolumeType,
        size_gib: u64,
        iops: Option<u64>,
        throughput_mibps: Option<u64>,
    ) -> Limits {
        Limits {
            volume_type,
            size_gib,
            iops,
            throughput_mibps,
        }
    }

    /// A 100 GiB gp3 at its baseline (3,000 IOPS, 125 MiB/s).
    pub fn gp3_baseline() -> Limits {
        Limits::of(VolumeType::Gp3, 100, None, None)
    }

    /// A gp2 of `size_gib` (its IOPS follow from the size).
    pub fn gp2(size_gib: u64) -> Limits {
        Limits::of(VolumeType::Gp2, size_gib, None, None)
    }

    /// A volume's limits from what its record holds: the provisioned IOPS
    /// and throughput where the type takes them (dropped elsewhere: gp2's
    /// IOPS follow from its size), the type's defaults where none is set.
    pub fn of_volume(
        volume_type: VolumeType,
        size_gib: u64,
        iops: Option<u64>,
        throughput_mibps: Option<u64>,
    ) -> Limits {
        Limits {
            volume_type,
            size_gib,
            iops: iops.filter(|_| volume_type.takes_iops()),
            throughput_mibps: throughput_mibps.filter(|_| volume_type.takes_throughput()),
        }
        .with_defaults()
    }

    /// The limits with the type's defaults filled in where a value is not
    /// given (gp3's 3,000 IOPS and 125 MiB/s), as EC2 records them.
    pub fn with_defaults(self) -> Limits {
        let rules = self.volume_type.rules();
        Limits {
            iops: self.iops.or(rules.iops.and_then(|r| r.default)),
            throughput_mibps: self
                .throughput_mibps
                .or(rules.throughput.map(|r| r.default_mibps)),
            ..self
        }
    }

    /// Checks the limits against the type's row of the table.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let t = self.volume_type;
        let rules = t.rules();
        let (min, max) = (rules.min_size_gib, rules.max_size_gib);
        if !(min..=max).contains(&self.size_gib) {
            return Err(LimitsError::Size {
                volume_type: t,
                size_gib: self.size_gib,
                min,
                max,
            });
        }
        match (rules.iops, self.iops) {
            (None, Some(_)) => return Err(LimitsError::IopsNotAllowed(t)),
            (Some(rule), None) if rule.default.is_none() => {
                return Err(LimitsError::IopsRequired(t));
            }
            (Some(rule), Some(iops)) => {
                if !(rule.min..=rule.max).contains(&iops) {
                    return Err(LimitsError::IopsRange {
                        volume_type: t,
                        iops,
                        min: rule.min,
                        max: rule.max,
                    });
                }
                // The default (gp3's baseline) comes with any size; the
                // ratio bounds what is provisioned above it.
                let by_size = rule
                    .max_per_gib
                    .saturating_mul(self.size_gib)
                    .max(rule.default.unwrap_or(0));
                if iops > by_size {
                    return Err(LimitsError::IopsPerGib {
                        volume_type: t,
                        iops,
                        size_gib: self.size_gib,
                        per_gib: rule.max_per_gib,
                        max: by_size.min(rule.max),
                    });
                }
            }
            _ => {}
        }
        match (rules.throughput, self.throughput_mibps) {
            (None, Some(_)) => return Err(LimitsError::ThroughputNotAllowed(t)),
            (Some(rule), Some(mibps)) => {
                if !(rule.min_mibps..=rule.max_mibps).contains(&mibps) {
                    return Err(LimitsError::ThroughputRange {
                        volume_type: t,
                        throughput: mibps,
                        min: rule.min_mibps,
                        max: rule.max_mibps,
                    });
                }
                let iops = self.with_defaults().iops.unwrap_or(0);
                // The default throughput comes with any IOPS.
                let max = (iops / rule.iops_per_mibps).max(rule.default_mibps);
                if mibps > max {
                    return Err(LimitsError::ThroughputPerIops {
                        volume_type: t,
                        throughput: mibps,
                        iops,
                        max,
                        iops_per_mibps: rule.iops_per_mibps,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// gp2's baseline: IOPS per GiB between a floor and a ceiling; None
    /// for the types without one.
    pub fn baseline_iops(&self) -> Option<u64> {
        match self.volume_type.rules().model {
            Model::Burstable {
                iops_per_gib,
                min_iops,
                max_iops,
                ..
            } => Some(
                iops_per_gib
                    .saturating_mul(self.size_gib)
                    .clamp(min_iops, max_iops),
            ),
            _ => None,
        }
    }

    /// The IOPS EC2 reports for the volume (`Volume.Iops`): provisioned
    /// (or the default) for gp3/io1/io2, the baseline for gp2, none for
    /// the HDD types and standard.
    pub fn reported_iops(&self) -> Option<u64> {
        self.with_defaults().iops.or_else(|| self.baseline_iops())
    }

    /// The throughput EC2 reports (`Volume.Throughput`), in MiB/s: gp3's
    /// provisioned (or default) value, none for the other types.
    pub fn reported_throughput_mibps(&self) -> Option<u64> {
        self.with_defaults().throughput_mibps
    }
}
