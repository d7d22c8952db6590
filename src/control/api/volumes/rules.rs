//! EC2's rules for a volume's type, size, IOPS and throughput (CreateVolume
//! and ModifyVolume), with EC2's error codes:
//!
//! | type     | size GiB   | IOPS                         | throughput MiB/s        |
//! |----------|------------|------------------------------|-------------------------|
//! | gp2      | 1–16384    | not settable (3/GiB, ≥100)   | not settable            |
//! | gp3      | 1–65536    | 3000–80000, ≤ 500/GiB        | 125–2000, ≤ 0.25/IOPS   |
//! | io1      | 4–16384    | required, 100–64000, ≤ 50/GiB| not settable            |
//! | io2      | 4–65536    | required, 100–256000, ≤1000/GiB | not settable         |
//! | st1, sc1 | 125–16384  | not settable                 | not settable            |
//! | standard | 1–1024     | not settable                 | not settable            |
//!
//! (gp3 and io2 sizes, gp3 IOPS and throughput are EC2's limits since
//! 2025.) An IOPS or throughput given for a type that has none is
//! `InvalidParameterCombination`, as is a missing IOPS for io1/io2; a
//! value out of range is `InvalidParameterValue`.

use crate::control::ec2::error::Ec2Error;
use crate::control::store::modifications::VolumeSpec;
use crate::control::supervisor::limits::{GP3_DEFAULT_IOPS, GP3_DEFAULT_THROUGHPUT};

pub const VOLUME_TYPES: [&str; 7] = ["standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"];

struct TypeRules {
    size: (u64, u64),
    /// (min, max, max per GiB) when IOPS can be provisioned.
    iops: Option<(u32, u32, u32)>,
    iops_required: bool,
}

fn rules(kind: &str) -> Option<TypeRules> {
    let (size, iops, iops_required) = match kind {
        "gp2" => ((1, 16_384), None, false),
        "gp3" => ((1, 65_536), Some((3000, 80_000, 500)), false),
        "io1" => ((4, 16_384), Some((100, 64_000, 50)), true),
        "io2" => ((4, 65_536), Some((100, 256_000, 1000)), true),
        "st1" | "sc1" => ((125, 16_384), None, false),
        "standard" => ((1, 1024), None, false),
        _ => return None,
    };
    Some(TypeRules {
        size,
        iops,
        iops_required,
    })
}

/// A VolumeType value that EC2 knows.
pub fn check_type(kind: &str) -> Result<(), Ec2Error> {
    if rules(kind).is_none() {
        return Err(Ec2Error::invalid_parameter_value(
            "VolumeType",
            kind,
            &format!("Valid volume types are: {}.", VOLUME_TYPES.join(", ")),
        ));
    }
    Ok(())
}

fn invalid(message: String) -> Ec2Error {
    Ec2Error::new("InvalidParameterValue", 400, message)
}

/// Checks `spec` (its type already checked) and fills the defaults EC2
/// applies (gp3's 3000 IOPS and 125 MiB/s).
pub fn validate(spec: &VolumeSpec) -> Result<VolumeSpec, Ec2Error> {
    let kind = spec.volume_type.as_str();
    check_type(kind)?;
    let Some(r) = rules(kind) else {
        return Err(Ec2Error::internal_error("volume type rules"));
    };
    let size = spec.size_gib;
    if size < r.size.0 {
        return Err(invalid(format!(
            "The volume size is invalid for {kind} volumes: {size} GiB. {kind} volumes must be at \
             least {} GiB in size. Please specify a volume size above the minimum limit.",
            r.size.0
        )));
    }
    if size > r.size.1 {
        return Err(invalid(format!(
            "The volume size is invalid for {kind} volumes: {size} GiB. {kind} volumes must be at \
             most {} GiB in size.",
            r.size.1
        )));
    }
    let mut out = spec.clone();
    match (r.iops, spec.iops) {
        (None, Some(_)) => {
            return Err(Ec2Error::invalid_parameter_combination(format!(
                "The parameter iops is not supported for {kind} volumes."
            )));
        }
        (Some(_), None) if r.iops_required => {
            return Err(Ec2Error::invalid_parameter_combination(format!(
                "The parameter iops must be specified for {kind} volumes."
            )));
        }
        (Some((min, max, per_gib)), Some(iops)) => {
            if iops < min {
                return Err(invalid(format!(
                    "Volume iops of {iops} is too low; minimum is {min}."
                )));
            }
            if iops > max {
                return Err(invalid(format!(
                    "Volume iops of {iops} is too high; maximum is {max}."
                )));
            }
            // gp3's baseline is free at any size; only more is bounded.
            let bounded = kind != "gp3" || iops > GP3_DEFAULT_IOPS;
            if bounded && u64::from(iops) > size.saturating_mul(u64::from(per_gib)) {
                return Err(invalid(format!(
                    "Iops to volume size ratio of {:.6} is too high; maximum is {:.6}",
                    f64::from(iops) / size as f64,
                    f64::from(per_gib)
                )));
            }
        }
        (Some(_), None) => out.iops = Some(GP3_DEFAULT_IOPS),
        (None, None) => {}
    }
    match (kind, spec.throughput) {
        ("gp3", Some(t)) => {
            if !(125..=2000).contains(&t) {
                return Err(invalid(format!(
                    "Volume throughput of {t} MiB/s is invalid: gp3 volumes take 125 to 2000 MiB/s."
                )));
            }
            let iops = out.iops.unwrap_or(GP3_DEFAULT_IOPS);
            if t > GP3_DEFAULT_THROUGHPUT && f64::from(t) > f64::from(iops) * 0.25 {
                return Err(invalid(format!(
                    "Throughput (MiBps) to iops ratio of {:.6} is too high; maximum is 0.250000 \
                     MiBps per iops.",
                    f64::from(t) / f64::from(iops)
                )));
            }
        }
        ("gp3", None) => out.throughput = Some(GP3_DEFAULT_THROUGHPUT),
        (_, Some(_)) => {
            return Err(Ec2Error::invalid_parameter_combination(format!(
                "The parameter throughput is not supported for {kind} volumes."
            )));
        }
        (_, None) => {}
    }
    Ok(out)
}

/// A `Size`/`Iops`/`Throughput` parameter: any integer parses (the rules
/// above give the precise error), a non-number is InvalidParameterValue.
pub fn non_negative(name: &str, value: Option<i64>) -> Result<Option<u64>, Ec2Error> {
    match value {
        None => Ok(None),
        Some(v) => u64::try_from(v).map(Some).map_err(|_| {
            Ec2Error::invalid_parameter_value(name, &v.to_string(), "It must be positive.")
        }),
    }
}

/// `non_negative`, capped to u32 (IOPS and throughput).
pub fn small(name: &str, value: Option<i64>) -> Result<Option<u32>, Ec2Error> {
    match non_negative(name, value)? {
        None => Ok(None),
        Some(v) => Ok(Some(u32::try_from(v).unwrap_or(u32::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, size: u64, iops: Option<u32>, throughput: Option<u32>) -> VolumeSpec {
        VolumeSpec {
            size_gib: size,
            volume_type: kind.into(),
            iops,
            throughput,
        }
    }

    fn code(s: VolumeSpec) -> &'static str {
        validate(&s).map_or_else(|e| e.code, |_| "ok")
    }

    #[test]
    fn sizes_per_type() {
        assert_eq!(code(spec("gp2", 1, None, None)), "ok");
        assert_eq!(code(spec("gp2", 0, None, None)), "InvalidParameterValue");
        assert_eq!(
            code(spec("gp2", 16_385, None, None)),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(spec("io1", 3, Some(100), None)),
            "InvalidParameterValue"
        );
        assert_eq!(code(spec("st1", 124, None, None)), "InvalidParameterValue");
        assert_eq!(code(spec("sc1", 125, None, None)), "ok");
        assert_eq!(
            code(spec("standard", 1025, None, None)),
            "InvalidParameterValue"
        );
        assert_eq!(code(spec("gp3", 65_536, None, None)), "ok");
    }

    #[test]
    fn iops_and_throughput_per_type() {
        assert_eq!(
            code(spec("gp2", 10, Some(300), None)),
            "InvalidParameterCombination"
        );
        assert_eq!(
            code(spec("io1", 10, None, None)),
            "InvalidParameterCombination"
        );
        assert_eq!(code(spec("io1", 10, Some(500), None)), "ok");
        assert_eq!(
            code(spec("io1", 10, Some(501), None)),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(spec("io2", 10, Some(99), None)),
            "InvalidParameterValue"
        );
        assert_eq!(code(spec("gp3", 1, Some(3000), None)), "ok");
        assert_eq!(
            code(spec("gp3", 8, Some(4001), None)),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(spec("gp3", 8, Some(2999), None)),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(spec("gp3", 8, None, Some(124))),
            "InvalidParameterValue"
        );
        assert_eq!(code(spec("gp3", 8, None, Some(750))), "ok");
        assert_eq!(
            code(spec("gp3", 8, None, Some(751))),
            "InvalidParameterValue"
        );
        assert_eq!(
            code(spec("st1", 500, None, Some(250))),
            "InvalidParameterCombination"
        );
        let filled = validate(&spec("gp3", 8, None, None)).unwrap();
        assert_eq!((filled.iops, filled.throughput), (Some(3000), Some(125)));
        assert_eq!(check_type("gp4").unwrap_err().code, "InvalidParameterValue");
    }
}
