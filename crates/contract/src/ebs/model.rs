//! What a set of limits stands for in rates and buckets: the numbers the
//! VMM's throttle enforces, computed from the type's row of the table.

use super::table::{Beyond, Model};
use super::{GIB, KIB, Limits, LimitsError, MIB};

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

impl Limits {
    /// The rates and buckets these (validated) limits stand for.
    pub fn performance(&self) -> Result<Performance, LimitsError> {
        self.validate()?;
        let rules = self.volume_type.rules();
        let size = self.size_gib;
        let provisioned = self.with_defaults();
        let steady = |iops: u64, throughput: u64| Performance {
            io_unit_shift: rules.io_unit.trailing_zeros(),
            whole_units: false,
            iops,
            iops_credits: None,
            throughput,
            throughput_credits: None,
            reports_burst_balance: false,
        };
        Ok(match rules.model {
            Model::Provisioned => steady(
                provisioned.iops.unwrap_or(0),
                provisioned.throughput_mibps.unwrap_or(0) * MIB,
            ),
            Model::PerIops {
                kib_per_iops,
                max_mibps,
                beyond,
            } => {
                let iops = provisioned.iops.unwrap_or(0);
                let throughput = match beyond {
                    Some(Beyond {
                        iops: past,
                        kib_per_iops: beyond_kib,
                    }) if iops > past => iops * beyond_kib * KIB,
                    _ => (iops * kib_per_iops * KIB).min(max_mibps * MIB),
                };
                steady(iops, throughput)
            }
            Model::Burstable {
                burst_iops,
                credits,
                small_max_gib,
                small_mibps,
                large_mibps,
                ..
            } => {
                let baseline = self.baseline_iops().unwrap_or(0);
                let mibps = if size <= small_max_gib {
                    small_mibps
                } else {
                    large_mibps
                };
                if baseline >= burst_iops {
                    steady(baseline, mibps * MIB)
                } else {
                    Performance {
                        iops_credits: Some(Credits {
                            capacity: credits,
                            refill: baseline,
                            initial: credits,
                        }),
                        reports_burst_balance: rules.reports_burst_balance,
                        ..steady(burst_iops, mibps * MIB)
                    }
                }
            }
            Model::PerTib {
                base_mibps_per_tib,
                burst_mibps_per_tib,
                max_mibps,
                iops,
            } => {
                // MiB/s per TiB * GiB / 1024 = (per_tib * GiB) KiB/s.
                let per_tib = |mibps: u64| (mibps * size * KIB).min(max_mibps * MIB);
                Performance {
                    whole_units: true,
                    throughput_credits: Some(Credits {
                        capacity: size * GIB,
                        refill: per_tib(base_mibps_per_tib),
                        initial: size * GIB,
                    }),
                    reports_burst_balance: rules.reports_burst_balance,
                    ..steady(iops, per_tib(burst_mibps_per_tib))
                }
            }
            Model::Magnetic {
                baseline_iops,
                burst_iops,
                credits,
                max_mibps,
            } => Performance {
                iops_credits: Some(Credits {
                    capacity: credits,
                    refill: baseline_iops,
                    initial: credits,
                }),
                reports_burst_balance: rules.reports_burst_balance,
                ..steady(burst_iops, max_mibps * MIB)
            },
        })
    }
}
