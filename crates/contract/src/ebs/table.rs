//! The one table of EBS volume-type rules, from AWS's EBS documentation
//! and EC2's API reference (CreateVolume, ModifyVolume; volume types,
//! General Purpose SSD, Provisioned IOPS SSD, Throughput Optimized / Cold
//! HDD, Magnetic, I/O characteristics):
//!
//! | type     | size          | IOPS                                   | throughput                                  |
//! |----------|---------------|----------------------------------------|---------------------------------------------|
//! | gp3      | 1 GiB-64 TiB  | 3,000 (default) to 80,000; <= 500/GiB  | 125 (default) to 2,000 MiB/s; <= 0.25/IOPS  |
//! | gp2      | 1 GiB-16 TiB  | 3/GiB, 100 to 16,000; burst to 3,000   | 128 MiB/s up to 170 GiB, else 250 MiB/s     |
//! | io1      | 4 GiB-16 TiB  | 100 to 64,000 (required); <= 50/GiB    | 256 KiB/IOPS up to 500 MiB/s; above 32,000  |
//! |          |               |                                        | IOPS 16 KiB/IOPS (1,000 MiB/s at 64,000)    |
//! | io2 (BX) | 4 GiB-64 TiB  | 100 to 256,000 (required); <= 1,000/GiB| 256 KiB/IOPS up to 4,000 MiB/s              |
//! | st1      | 125 GiB-16 TiB| 500 (1 MiB I/O)                        | 40 MiB/s/TiB base, 250/TiB burst, max 500   |
//! | sc1      | 125 GiB-16 TiB| 250 (1 MiB I/O)                        | 12 MiB/s/TiB base, 80/TiB burst, max 250    |
//! | standard | 1 GiB-1 TiB   | ~100 average, bursts to hundreds       | 40-90 MiB/s                                 |
//!
//! (gp3's size, IOPS and throughput ceilings and io2's size are EC2's
//! since 2025.) Only gp3, io1 and io2 take provisioned IOPS, only gp3
//! takes provisioned throughput.
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

use super::{KIB, MIB, VolumeType};

/// One volume type's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeRules {
    pub volume_type: VolumeType,
    pub min_size_gib: u64,
    pub max_size_gib: u64,
    /// Provisioned IOPS, for the types that take them.
    pub iops: Option<IopsRule>,
    /// Provisioned throughput, for the types that take it.
    pub throughput: Option<ThroughputRule>,
    /// The largest I/O counted as one operation, in bytes.
    pub io_unit: u64,
    /// CloudWatch reports the burst bucket's fill (`BurstBalance`).
    pub reports_burst_balance: bool,
    /// How the volume performs: what the VMM's throttle enforces.
    pub model: Model,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IopsRule {
    pub min: u64,
    pub max: u64,
    /// At most this many IOPS per GiB of size.
    pub max_per_gib: u64,
    /// What a volume gets when none are given (gp3's baseline, which comes
    /// with any size: the per-GiB ratio bounds only what is above it).
    /// None: the IOPS must be given (io1, io2).
    pub default: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThroughputRule {
    pub min_mibps: u64,
    pub max_mibps: u64,
    /// What a volume gets when none is given; it comes with any IOPS.
    pub default_mibps: u64,
    /// At most 1 MiB/s per this many IOPS (gp3: 0.25 MiB/s per IOPS).
    pub iops_per_mibps: u64,
}

/// What a volume of the type delivers, given its size and provisioned
/// values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// The provisioned IOPS and throughput, steadily (gp3).
    Provisioned,
    /// The provisioned IOPS; throughput `kib_per_iops` per IOPS up to
    /// `max_mibps`, and past `beyond`'s IOPS its own rate per IOPS,
    /// uncapped (io1, io2).
    PerIops {
        kib_per_iops: u64,
        max_mibps: u64,
        beyond: Option<Beyond>,
    },
    /// A baseline of `iops_per_gib` (between `min_iops` and `max_iops`);
    /// below `burst_iops` a bucket of `credits` I/O credits, full at
    /// creation and earned at the baseline, lets it burst there (gp2).
    /// Throughput `small_mibps` up to `small_max_gib`, else `large_mibps`.
    Burstable {
        iops_per_gib: u64,
        min_iops: u64,
        max_iops: u64,
        burst_iops: u64,
        credits: u64,
        small_max_gib: u64,
        small_mibps: u64,
        large_mibps: u64,
    },
    /// Throughput per TiB of size: `base` earned into a bucket of 1 TiB
    /// of credits per TiB (full at creation), `burst` while it lasts, both
    /// capped at `max_mibps`; `iops` in 1 MiB units, each charged as a
    /// whole MiB (st1, sc1).
    PerTib {
        base_mibps_per_tib: u64,
        burst_mibps_per_tib: u64,
        max_mibps: u64,
        iops: u64,
    },
    /// A bucket of `credits` I/O credits earned at `baseline_iops`, spent
    /// at up to `burst_iops`; throughput capped at `max_mibps` (standard).
    Magnetic {
        baseline_iops: u64,
        burst_iops: u64,
        credits: u64,
        max_mibps: u64,
    },
}

/// io1 past 32,000 IOPS: a lower throughput per IOPS, without the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beyond {
    pub iops: u64,
    pub kib_per_iops: u64,
}

const SSD_UNIT: u64 = 256 * KIB;
const HDD_UNIT: u64 = MIB;

pub const GP3: TypeRules = TypeRules {
    volume_type: VolumeType::Gp3,
    min_size_gib: 1,
    max_size_gib: 64 * 1024,
    iops: Some(IopsRule {
        min: 3_000,
        max: 80_000,
        max_per_gib: 500,
        default: Some(3_000),
    }),
    throughput: Some(ThroughputRule {
        min_mibps: 125,
        max_mibps: 2_000,
        default_mibps: 125,
        iops_per_mibps: 4,
    }),
    io_unit: SSD_UNIT,
    reports_burst_balance: false,
    model: Model::Provisioned,
};

pub const GP2: TypeRules = TypeRules {
    volume_type: VolumeType::Gp2,
    min_size_gib: 1,
    max_size_gib: 16 * 1024,
    iops: None,
    throughput: None,
    io_unit: SSD_UNIT,
    reports_burst_balance: true,
    model: Model::Burstable {
        iops_per_gib: 3,
        min_iops: 100,
        max_iops: 16_000,
        burst_iops: 3_000,
        credits: 5_400_000,
        small_max_gib: 170,
        small_mibps: 128,
        large_mibps: 250,
    },
};

pub const IO1: TypeRules = TypeRules {
    volume_type: VolumeType::Io1,
    min_size_gib: 4,
    max_size_gib: 16 * 1024,
    iops: Some(IopsRule {
        min: 100,
        max: 64_000,
        max_per_gib: 50,
        default: None,
    }),
    throughput: None,
    io_unit: SSD_UNIT,
    reports_burst_balance: false,
    model: Model::PerIops {
        kib_per_iops: 256,
        max_mibps: 500,
        beyond: Some(Beyond {
            iops: 32_000,
            kib_per_iops: 16,
        }),
    },
};

pub const IO2: TypeRules = TypeRules {
    volume_type: VolumeType::Io2,
    min_size_gib: 4,
    max_size_gib: 64 * 1024,
    iops: Some(IopsRule {
        min: 100,
        max: 256_000,
        max_per_gib: 1_000,
        default: None,
    }),
    throughput: None,
    io_unit: SSD_UNIT,
    reports_burst_balance: false,
    model: Model::PerIops {
        kib_per_iops: 256,
        max_mibps: 4_000,
        beyond: None,
    },
};

pub const ST1: TypeRules = TypeRules {
    volume_type: VolumeType::St1,
    min_size_gib: 125,
    max_size_gib: 16 * 1024,
    iops: None,
    throughput: None,
    io_unit: HDD_UNIT,
    reports_burst_balance: true,
    model: Model::PerTib {
        base_mibps_per_tib: 40,
        burst_mibps_per_tib: 250,
        max_mibps: 500,
        iops: 500,
    },
};

pub const SC1: TypeRules = TypeRules {
    volume_type: VolumeType::Sc1,
    min_size_gib: 125,
    max_size_gib: 16 * 1024,
    iops: None,
    throughput: None,
    io_unit: HDD_UNIT,
    reports_burst_balance: true,
    model: Model::PerTib {
        base_mibps_per_tib: 12,
        burst_mibps_per_tib: 80,
        max_mibps: 250,
        iops: 250,
    },
};

pub const STANDARD: TypeRules = TypeRules {
    volume_type: VolumeType::Standard,
    min_size_gib: 1,
    max_size_gib: 1024,
    iops: None,
    throughput: None,
    io_unit: HDD_UNIT,
    reports_burst_balance: false,
    model: Model::Magnetic {
        baseline_iops: 100,
        burst_iops: 200,
        credits: 30_000,
        max_mibps: 90,
    },
};

pub(super) fn rules(t: VolumeType) -> &'static TypeRules {
    match t {
        VolumeType::Gp3 => &GP3,
        VolumeType::Gp2 => &GP2,
        VolumeType::Io1 => &IO1,
        VolumeType::Io2 => &IO2,
        VolumeType::St1 => &ST1,
        VolumeType::Sc1 => &SC1,
        VolumeType::Standard => &STANDARD,
    }
}
