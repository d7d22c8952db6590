use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Barrier};

use super::super::ips::Subnet;
use super::super::{Store, StoreError};
use super::{TempDir, instance, ip, open};

#[test]
fn subnets_parse_strictly() {
    let s = Subnet::parse("10.0.0.0/24").unwrap();
    assert_eq!(s.to_string(), "10.0.0.0/24");
    assert_eq!(
        s.usable(),
        u32::from(ip("10.0.0.4"))..=u32::from(ip("10.0.0.254"))
    );
    assert_eq!(s.gateway(), ip("10.0.0.1"));
    assert!(Subnet::parse("172.31.0.0/16").is_ok());
    assert!(Subnet::parse("192.168.1.16/28").is_ok());
    for bad in [
        "",
        "10.0.0.0",
        "10.0.0.0/",
        "10.0.0.0/8",
        "10.0.0.0/29",
        "10.0.0.1/24",
        "10.0.0.0/+24",
        "10.0.0.0/024",
        "10.0.0/24",
        "10.0.0.256/24",
        "::1/64",
    ] {
        assert!(
            matches!(Subnet::parse(bad), Err(StoreError::InvalidSubnet(_))),
            "{bad:?}"
        );
    }
}

fn allocate(store: &mut Store, subnet: &Subnet, n: u32) -> Result<Ipv4Addr, StoreError> {
    let record = instance(n);
    store.write(|t| {
        t.insert_instance(&record)?;
        t.allocate_ip(subnet, &record.id)
    })
}

#[test]
fn allocation_takes_the_lowest_free_address_and_reuses_released_ones() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let subnet = Subnet::parse("10.1.2.0/24").unwrap();
    assert_eq!(allocate(&mut store, &subnet, 1).unwrap(), ip("10.1.2.4"));
    assert_eq!(allocate(&mut store, &subnet, 2).unwrap(), ip("10.1.2.5"));
    assert_eq!(allocate(&mut store, &subnet, 3).unwrap(), ip("10.1.2.6"));
    let first = instance(1).id;
    assert_eq!(store.write(|t| t.release_ips(&first)).unwrap(), 1);
    assert_eq!(allocate(&mut store, &subnet, 4).unwrap(), ip("10.1.2.4"));
    let other = Subnet::parse("10.9.0.0/16").unwrap();
    let fifth = instance(5);
    store
        .write(|t| {
            t.insert_instance(&fifth)?;
            t.allocate_ip(&other, &fifth.id)?;
            t.allocate_ip(&subnet, &fifth.id)
        })
        .unwrap();
    assert_eq!(
        store.read(|t| t.ips_of(&fifth.id)).unwrap(),
        [
            ("10.1.2.0/24".to_string(), ip("10.1.2.7")),
            ("10.9.0.0/16".to_string(), ip("10.9.0.4"))
        ]
    );
}

#[test]
fn a_full_subnet_is_an_error_and_allocates_nothing() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let subnet = Subnet::parse("192.168.0.0/28").unwrap();
    let usable = subnet.usable().count() as u32;
    assert_eq!(usable, 11);
    for n in 0..usable {
        allocate(&mut store, &subnet, n).unwrap();
    }
    assert!(matches!(
        allocate(&mut store, &subnet, 99),
        Err(StoreError::SubnetFull { subnet }) if subnet == "192.168.0.0/28"
    ));
    // The failed transaction took its instance row with it.
    assert!(
        store
            .read(|t| t.get_instance(&instance(99).id))
            .unwrap()
            .is_none()
    );
}

#[test]
fn specific_addresses_are_checked() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let subnet = Subnet::parse("10.0.0.0/24").unwrap();
    let (a, b) = (instance(1), instance(2));
    store
        .write(|t| {
            t.insert_instance(&a)?;
            t.insert_instance(&b)?;
            t.reserve_ip(&subnet, ip("10.0.0.50"), &a.id)
        })
        .unwrap();
    for (address, outside) in [
        ("10.0.0.50", false),
        ("10.0.0.1", true),
        ("10.0.0.255", true),
        ("10.0.1.4", true),
    ] {
        let result = store.write(|t| t.reserve_ip(&subnet, ip(address), &b.id));
        match (result, outside) {
            (Err(StoreError::AddressInUse { .. }), false)
            | (Err(StoreError::AddressOutsideSubnet { .. }), true) => {}
            (other, _) => panic!("{address}: {other:?}"),
        }
    }
    assert_eq!(allocate(&mut store, &subnet, 3).unwrap(), ip("10.0.0.4"));
}

#[test]
fn an_address_for_a_missing_instance_fails_at_commit() {
    let dir = TempDir::new();
    let mut store = open(&dir);
    let subnet = Subnet::parse("10.0.0.0/24").unwrap();
    let result = store.write(|t| t.allocate_ip(&subnet, "i-0000000000000dead"));
    assert!(
        matches!(result, Err(StoreError::MissingReference { .. })),
        "{result:?}"
    );
    assert!(
        store
            .read(|t| t.ips_of("i-0000000000000dead"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(allocate(&mut store, &subnet, 1).unwrap(), ip("10.0.0.4"));
}

#[test]
fn concurrent_connections_never_share_an_address() {
    const THREADS: u32 = 4;
    const EACH: u32 = 30;
    let dir = TempDir::new();
    drop(open(&dir));
    let subnet = Subnet::parse("10.20.0.0/24").unwrap();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let path = dir.path().to_path_buf();
            let subnet = subnet.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                start.wait();
                (0..EACH)
                    .map(|i| allocate(&mut store, &subnet, thread * 1000 + i).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<Ipv4Addr> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: HashSet<Ipv4Addr> = all.iter().copied().collect();
    assert_eq!(all.len(), (THREADS * EACH) as usize);
    assert_eq!(unique.len(), all.len(), "an address was handed out twice");
    assert!(all.iter().all(|a| subnet.contains_usable(*a)));
    // Lowest-free under contention still packs the range.
    let expected: HashSet<Ipv4Addr> = subnet
        .usable()
        .take(all.len())
        .map(Ipv4Addr::from)
        .collect();
    assert_eq!(unique, expected);
    let store = open(&dir);
    let rows: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM ip_allocations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, i64::from(THREADS * EACH));
}
