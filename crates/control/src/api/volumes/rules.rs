//! EC2's checks of a volume's type, size, IOPS and throughput
//! (CreateVolume, ModifyVolume, RunInstances' root volume), with EC2's
//! error codes and messages. The rules themselves are the contract's one
//! table (`contract::ebs::table`), which the VMM's throttle enforces too:
//! an IOPS or throughput given for a type that has none is
//! `InvalidParameterCombination`, as is a missing IOPS for io1/io2; a
//! value out of range is `InvalidParameterValue`.

use crate::store::modifications::VolumeSpec;
use ec2_wire::error::Ec2Error;
use flint_contract::ebs::{Limits, LimitsError, VolumeType};

/// A VolumeType value that EC2 knows.
pub fn check_type(kind: &str) -> Result<VolumeType, Ec2Error> {
    kind.parse().map_err(|_| {
        let names: Vec<&str> = VolumeType::ALL.iter().map(|t| t.name()).collect();
        Ec2Error::invalid_parameter_value(
            "VolumeType",
            kind,
            &format!("Valid volume types are: {}.", names.join(", ")),
        )
    })
}

fn invalid(message: String) -> Ec2Error {
    Ec2Error::new("InvalidParameterValue", 400, message)
}

/// The table's verdict in EC2's words.
fn ec2_error(e: &LimitsError) -> Ec2Error {
    match *e {
        LimitsError::Size {
            volume_type: t,
            size_gib: size,
            min,
            ..
        } if size < min => invalid(format!(
            "The volume size is invalid for {t} volumes: {size} GiB. {t} volumes must be at \
             least {min} GiB in size. Please specify a volume size above the minimum limit."
        )),
        LimitsError::Size {
            volume_type: t,
            size_gib: size,
            max,
            ..
        } => invalid(format!(
            "The volume size is invalid for {t} volumes: {size} GiB. {t} volumes must be at \
             most {max} GiB in size."
        )),
        LimitsError::IopsNotAllowed(t) => Ec2Error::invalid_parameter_combination(format!(
            "The parameter iops is not supported for {t} volumes."
        )),
        LimitsError::IopsRequired(t) => Ec2Error::invalid_parameter_combination(format!(
            "The parameter iops must be specified for {t} volumes."
        )),
        LimitsError::IopsRange { iops, min, .. } if iops < min => invalid(format!(
            "Volume iops of {iops} is too low; minimum is {min}."
        )),
        LimitsError::IopsRange { iops, max, .. } => invalid(format!(
            "Volume iops of {iops} is too high; maximum is {max}."
        )),
        LimitsError::IopsPerGib {
            iops,
            size_gib,
            per_gib,
            ..
        } => invalid(format!(
            "Iops to volume size ratio of {:.6} is too high; maximum is {:.6}",
            iops as f64 / size_gib as f64,
            per_gib as f64
        )),
        LimitsError::ThroughputNotAllowed(t) => Ec2Error::invalid_parameter_combination(format!(
            "The parameter throughput is not supported for {t} volumes."
        )),
        LimitsError::ThroughputRange {
            volume_type: t,
            throughput,
            min,
            max,
        } => invalid(format!(
            "Volume throughput of {throughput} MiB/s is invalid: {t} volumes take {min} to \
             {max} MiB/s."
        )),
        LimitsError::ThroughputPerIops {
            throughput,
            iops,
            iops_per_mibps,
            ..
        } => invalid(format!(
            "Throughput (MiBps) to iops ratio of {:.6} is too high; maximum is {:.6} MiBps \
             per iops.",
            throughput as f64 / iops as f64,
            1.0 / iops_per_mibps as f64
        )),
    }
}

/// Checks `spec` by the table and fills the defaults EC2 applies (gp3's
/// 3000 IOPS and 125 MiB/s).
pub fn validate(spec: &VolumeSpec) -> Result<VolumeSpec, Ec2Error> {
    let limits = Limits {
        volume_type: check_type(&spec.volume_type)?,
        size_gib: spec.size_gib,
        iops: spec.iops.map(u64::from),
        throughput_mibps: spec.throughput.map(u64::from),
    };
    limits.validate().map_err(|e| ec2_error(&e))?;
    let filled = limits.with_defaults();
    // Validated: within the table's ranges, which fit u32.
    let small = |n: Option<u64>| n.and_then(|n| u32::try_from(n).ok());
    Ok(VolumeSpec {
        iops: small(filled.iops),
        throughput: small(filled.throughput_mibps),
        ..spec.clone()
    })
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

    #[test]
    fn the_contract_table_drives_the_api() {
        // Every row's size range, at its edges and past them, with the
        // IOPS the type needs.
        for t in VolumeType::ALL {
            let r = t.rules();
            let iops = r.iops.filter(|i| i.default.is_none()).map(|i| i.min as u32);
            let at = |size| code(spec(t.name(), size, iops, None));
            assert_eq!(at(r.min_size_gib), "ok", "{t}");
            assert_eq!(at(r.max_size_gib), "ok", "{t}");
            assert_eq!(at(r.min_size_gib - 1), "InvalidParameterValue", "{t}");
            assert_eq!(at(r.max_size_gib + 1), "InvalidParameterValue", "{t}");
        }
        // The numbers the VMM's throttle is tested with.
        assert_eq!(code(spec("gp3", 100, Some(16_000), Some(1_000))), "ok");
        assert_eq!(code(spec("gp3", 65_536, Some(80_000), Some(2_000))), "ok");
        assert_eq!(code(spec("io2", 65_536, Some(256_000), None)), "ok");
        assert_eq!(
            code(spec("gp3", 160, Some(80_001), None)),
            "InvalidParameterValue"
        );
        let e = validate(&spec("gp3", 100, Some(4_000), Some(1_001))).unwrap_err();
        assert_eq!(
            e.message,
            "Throughput (MiBps) to iops ratio of 0.250250 is too high; maximum is 0.250000 \
             MiBps per iops."
        );
        let e = validate(&spec("gp3", 100, None, Some(2_001))).unwrap_err();
        assert_eq!(
            e.message,
            "Volume throughput of 2001 MiB/s is invalid: gp3 volumes take 125 to 2000 MiB/s."
        );
    }
}
