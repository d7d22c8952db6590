//! The account and location actions: DescribeRegions,
//! DescribeAvailabilityZones, DescribeAccountAttributes. A Flint host is
//! one region (`flint serve --region`, default us-east-1) with one zone,
//! `<region>a`.

use super::filters::{FILTER_PARAMS, Filters};
use super::{ActionSpec, Call, DryRun, Registry};
use ec2_wire::error::Ec2Error;

pub fn register(r: &mut Registry) {
    r.add(ActionSpec {
        name: "DescribeRegions",
        params: &[
            "RegionName.N",
            "AllRegions",
            FILTER_PARAMS[0],
            FILTER_PARAMS[1],
        ],
        dry_run: DryRun::Generic,
        handler: describe_regions,
    });
    r.add(ActionSpec {
        name: "DescribeAvailabilityZones",
        params: &[
            "ZoneName.N",
            "ZoneId.N",
            "AllAvailabilityZones",
            FILTER_PARAMS[0],
            FILTER_PARAMS[1],
        ],
        dry_run: DryRun::Generic,
        handler: describe_availability_zones,
    });
    r.add(ActionSpec {
        name: "DescribeAccountAttributes",
        params: &["AttributeName.N"],
        dry_run: DryRun::Generic,
        handler: describe_account_attributes,
    });
}

/// The endpoint a region's EC2 service would have.
fn endpoint(region: &str) -> String {
    format!("ec2.{region}.amazonaws.com")
}

fn describe_regions(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let region = &call.ctx.config.region;
    let names = call.req.string_list("RegionName")?;
    call.req.bool("AllRegions")?;
    if let Some(bad) = names.iter().find(|n| *n != region) {
        return Err(Ec2Error::new(
            "InvalidParameterValue",
            400,
            format!("Invalid region: {bad}"),
        ));
    }
    let filters = Filters::parse(call.req, &["endpoint", "region-name", "opt-in-status"])?;
    let shown = filters.matches("endpoint", &endpoint(region))
        && filters.matches("region-name", region)
        && filters.matches("opt-in-status", "opt-in-not-required");
    call.reply(|x| {
        x.list("regionInfo", shown.then_some(region), |x, r| {
            x.text("regionName", r)
                .text("regionEndpoint", &endpoint(r))
                .text("optInStatus", "opt-in-not-required");
        });
    })
}

fn describe_availability_zones(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let config = &call.ctx.config;
    let zone = config.availability_zone();
    let zone_id = format!("{}-az1", short_region(&config.region));
    let names = call.req.string_list("ZoneName")?;
    let ids = call.req.string_list("ZoneId")?;
    call.req.bool("AllAvailabilityZones")?;
    if let Some(bad) = names
        .iter()
        .find(|n| **n != zone)
        .or_else(|| ids.iter().find(|i| **i != zone_id))
    {
        return Err(Ec2Error::new(
            "InvalidParameterValue",
            400,
            format!("The zone '{bad}' does not exist."),
        ));
    }
    let filters = Filters::parse(
        call.req,
        &[
            "zone-name",
            "zone-id",
            "region-name",
            "state",
            "zone-type",
            "group-name",
            "opt-in-status",
        ],
    )?;
    let shown = filters.matches("zone-name", &zone)
        && filters.matches("zone-id", &zone_id)
        && filters.matches("region-name", &config.region)
        && filters.matches("state", "available")
        && filters.matches("zone-type", "availability-zone")
        && filters.matches("group-name", &config.region)
        && filters.matches("opt-in-status", "opt-in-not-required");
    call.reply(|x| {
        x.list("availabilityZoneInfo", shown.then_some(()), |x, ()| {
            x.text("zoneName", &zone)
                .text("zoneState", "available")
                .text("regionName", &config.region)
                .text("zoneId", &zone_id)
                .text("groupName", &config.region)
                .text("networkBorderGroup", &config.region)
                .text("zoneType", "availability-zone")
                .text("optInStatus", "opt-in-not-required")
                .list("messageSet", std::iter::empty::<()>(), |_, ()| {});
        });
    })
}

/// `us-east-1` → `use1`, as EC2 zone ids are spelled.
pub fn short_region(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    match parts.as_slice() {
        [geo, direction, number] => {
            let dir: String = direction
                .split(|c: char| !c.is_ascii_alphabetic())
                .flat_map(|w| w.chars().next())
                .collect();
            // "northeast" → "ne", "east" → "e": first letter of each
            // compass word.
            let dir = match *direction {
                "northeast" => "ne".to_string(),
                "northwest" => "nw".to_string(),
                "southeast" => "se".to_string(),
                "southwest" => "sw".to_string(),
                _ => dir,
            };
            format!("{geo}{dir}{number}")
        }
        _ => region.to_string(),
    }
}

/// The attributes EC2 reports for a VPC-only account, with this host's
/// limits.
fn describe_account_attributes(call: &Call<'_>) -> Result<Vec<u8>, Ec2Error> {
    let all: [(&str, &[&str]); 6] = [
        ("supported-platforms", &["VPC"]),
        ("default-vpc", &["vpc-00000000000000001"]),
        ("max-instances", &["64"]),
        ("vpc-max-security-groups-per-interface", &["5"]),
        ("max-elastic-ips", &["0"]),
        ("vpc-max-elastic-ips", &["0"]),
    ];
    let names = call.req.string_list("AttributeName")?;
    if let Some(bad) = names.iter().find(|n| !all.iter().any(|(a, _)| a == *n)) {
        return Err(Ec2Error::new(
            "InvalidParameterValue",
            400,
            format!("Value ({bad}) for parameter attributeName is invalid."),
        ));
    }
    let selected = all
        .iter()
        .filter(|(a, _)| names.is_empty() || names.contains(a));
    call.reply(|x| {
        x.list("accountAttributeSet", selected, |x, (name, values)| {
            x.text("attributeName", name).text_list(
                "attributeValueSet",
                "attributeValue",
                values.iter(),
            );
        });
    })
}
