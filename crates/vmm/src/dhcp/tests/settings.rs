//! Frame classification and the server's settings (EC2-style values,
//! validation).

use super::*;

#[test]
fn is_dhcp_to_server_classifies() {
    let good = broadcast_frame(&discover());
    assert!(is_dhcp_to_server(&good));
    assert!(is_dhcp_to_server(&renew_frame(CLIENT_IP)));
    // Malformed but aimed at port 67: still claimed so it never leaves.
    assert!(is_dhcp_to_server(&good[..DHCP_OFF]), "empty payload");
    assert!(is_dhcp_to_server(&good[..UDP_OFF + 4]), "ports only");
    let mut bad_csum = good.clone();
    bad_csum[IP_OFF + 10] ^= 1;
    assert!(is_dhcp_to_server(&bad_csum), "bad checksum");
    assert!(
        is_dhcp_to_server(&ip_edited(|ip| ip.set_more_frags(true))),
        "first fragment"
    );

    assert!(!is_dhcp_to_server(&[]));
    assert!(!is_dhcp_to_server(&good[..13]));
    assert!(!is_dhcp_to_server(&good[..IP_OFF + 19]));
    assert!(!is_dhcp_to_server(&good[..UDP_OFF + 3]));
    assert!(
        !is_dhcp_to_server(&ip_edited(|ip| ip.set_frag_offset(8))),
        "later fragment"
    );
    assert!(!is_dhcp_to_server(&ip_edited(
        |ip| ip.set_next_header(IpProtocol::Tcp)
    )));
    assert!(!is_dhcp_to_server(&ip_edited(|ip| ip.set_version(6))));
    assert!(!is_dhcp_to_server(&ip_edited(|ip| ip.set_header_len(16))));
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(!is_dhcp_to_server(&arp));

    // Server-to-client traffic (our own replies) and other UDP.
    let reply = server().handle_frame(&good).unwrap();
    assert!(!is_dhcp_to_server(&reply));
    let ends = UdpEndpoints {
        src_mac: CLIENT_MAC,
        dst_mac: OTHER_MAC,
        src_ip: CLIENT_IP,
        dst_ip: Ipv4Addr::new(169, 254, 169, 254),
        src_port: 40000,
        dst_port: 53,
    };
    assert!(!is_dhcp_to_server(
        &build_udp_frame(&ends, b"query").unwrap()
    ));
    // Any client port, any destination: port 67 is claimed.
    let ends = UdpEndpoints {
        dst_port: 67,
        ..ends
    };
    assert!(is_dhcp_to_server(&build_udp_frame(&ends, b"x").unwrap()));
}

// --------------------------------------------------------------- validation

#[test]
fn ec2_style_derives_ec2_values() {
    let cfg = config();
    assert_eq!(cfg.router, ROUTER);
    assert_eq!(cfg.dns, vec![DNS]);
    assert_eq!(cfg.hostname, "ip-10-0-1-23");
    assert_eq!(cfg.domain, "us-west-2.compute.internal");
    assert_eq!(cfg.mtu, DEFAULT_MTU);
    assert_eq!(cfg.lease_secs, DEFAULT_LEASE_SECS);
    assert_eq!(cfg.server_mac, EC2_GATEWAY_MAC);
    assert_eq!(cfg.netmask(), Ipv4Addr::new(255, 255, 255, 0));
    assert_eq!(cfg.broadcast(), Ipv4Addr::new(10, 0, 1, 255));
    assert_eq!((cfg.t1_secs(), cfg.t2_secs()), (1800, 3150));

    let cfg = DhcpConfig::ec2_style(CLIENT_MAC, Ipv4Addr::new(172, 31, 22, 135), 20, "us-east-1")
        .unwrap();
    assert_eq!(cfg.router, Ipv4Addr::new(172, 31, 16, 1));
    assert_eq!(cfg.dns, vec![Ipv4Addr::new(172, 31, 16, 2)]);
    assert_eq!(cfg.netmask(), Ipv4Addr::new(255, 255, 240, 0));
    assert_eq!(cfg.broadcast(), Ipv4Addr::new(172, 31, 31, 255));
    assert_eq!(cfg.hostname, "ip-172-31-22-135");
    assert_eq!(cfg.domain, "ec2.internal");

    assert_eq!(
        ec2_domain("ap-northeast-1").unwrap(),
        "ap-northeast-1.compute.internal"
    );
}

#[test]
fn ec2_style_rejects_bad_input() {
    let ec2 = |ip: Ipv4Addr, prefix: u8, region: &str| {
        DhcpConfig::ec2_style(CLIENT_MAC, ip, prefix, region).unwrap_err()
    };
    for prefix in [0, 31, 32, 33, 255] {
        assert_eq!(
            ec2(CLIENT_IP, prefix, "us-west-2"),
            DhcpError::BadPrefixLen(prefix)
        );
    }
    for region in ["", "US West!", "-us", "us.west", &"r".repeat(64)] {
        assert_eq!(
            ec2(CLIENT_IP, 24, region),
            DhcpError::BadRegion(region.to_string())
        );
    }
    let net = Ipv4Addr::new(10, 0, 1, 0);
    assert_eq!(ec2(net, 24, "us-west-2"), DhcpError::ReservedAddress(net));
    let bcast = Ipv4Addr::new(10, 0, 1, 255);
    assert_eq!(
        ec2(bcast, 24, "us-west-2"),
        DhcpError::ReservedAddress(bcast)
    );
    assert_eq!(
        ec2(ROUTER, 24, "us-west-2"),
        DhcpError::RouterIsClient(ROUTER)
    );
    assert_eq!(ec2(DNS, 24, "us-west-2"), DhcpError::BadDns(DNS));
    let multicast = Ipv4Addr::new(224, 0, 0, 5);
    assert_eq!(
        ec2(multicast, 24, "us-west-2"),
        DhcpError::BadClientIp(multicast)
    );
    assert_eq!(
        DhcpConfig::ec2_style([0x01, 0, 0, 0, 0, 1], CLIENT_IP, 24, "us-west-2").unwrap_err(),
        DhcpError::BadMac("client")
    );
}

#[test]
fn validate_rejects_each_bad_field() {
    let check = |edit: &dyn Fn(&mut DhcpConfig), expected: DhcpError| {
        let mut cfg = config();
        edit(&mut cfg);
        assert_eq!(cfg.validate(), Err(expected.clone()), "{expected}");
        assert_eq!(DhcpServer::new(cfg).unwrap_err(), expected);
    };
    check(&|c| c.client_mac = [0; 6], DhcpError::BadMac("client"));
    check(
        &|c| c.server_mac = BROADCAST_MAC,
        DhcpError::BadMac("server"),
    );
    check(
        &|c| c.server_mac = [0x33, 0x33, 0, 0, 0, 1],
        DhcpError::BadMac("server"),
    );
    check(&|c| c.server_mac = CLIENT_MAC, DhcpError::SameMac);
    check(
        &|c| c.router = Ipv4Addr::new(10, 0, 2, 1),
        DhcpError::OutsideSubnet {
            addr: Ipv4Addr::new(10, 0, 2, 1),
            network: Ipv4Addr::new(10, 0, 1, 0),
            prefix_len: 24,
        },
    );
    check(
        &|c| c.router = Ipv4Addr::new(10, 0, 1, 255),
        DhcpError::ReservedAddress(Ipv4Addr::new(10, 0, 1, 255)),
    );
    check(
        &|c| c.router = CLIENT_IP,
        DhcpError::RouterIsClient(CLIENT_IP),
    );
    check(&|c| c.dns = vec![DNS; 5], DhcpError::TooManyDns(5));
    for bad in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(239, 1, 1, 1),
        CLIENT_IP,
        Ipv4Addr::new(10, 0, 1, 0),
    ] {
        check(&|c| c.dns = vec![DNS, bad], DhcpError::BadDns(bad));
    }
    for bad in [
        "bad_name",
        "-x",
        "x-",
        "a..b",
        "host.",
        "ümlaut",
        &"h".repeat(64),
    ] {
        check(
            &|c| c.hostname = bad.to_string(),
            DhcpError::BadHostname(bad.to_string()),
        );
    }
    for bad in ["compute.internal.", ".internal", "a b", "x.-y"] {
        check(
            &|c| c.domain = bad.to_string(),
            DhcpError::BadDomain(bad.to_string()),
        );
    }
    check(&|c| c.mtu = MIN_MTU - 1, DhcpError::BadMtu(MIN_MTU - 1));
    check(
        &|c| c.lease_secs = MIN_LEASE_SECS - 1,
        DhcpError::BadLeaseTime(59),
    );
    check(
        &|c| c.lease_secs = u32::MAX,
        DhcpError::BadLeaseTime(u32::MAX),
    );
    check(
        &|c| {
            c.hostname = "h".repeat(63);
            c.domain = format!("{}.{}", "d".repeat(63), "e".repeat(63));
        },
        DhcpError::OptionsTooLarge(3 + 6 * 7 + 4 + 1 + 6 + 65 + 2 + 127),
    );
    check(&|c| c.prefix_len = 31, DhcpError::BadPrefixLen(31));
}

#[test]
fn validate_accepts_reasonable_variations() {
    let mut cfg = config();
    // A resolver outside the subnet (EC2's 169.254.169.253), a dotted
    // hostname, EC2's MTU, extremes of the lease range.
    cfg.dns = vec![Ipv4Addr::new(169, 254, 169, 253)];
    cfg.hostname = "ip-10-0-1-23.us-west-2.compute.internal".to_string();
    cfg.mtu = EC2_MTU;
    for lease in [MIN_LEASE_SECS, MAX_LEASE_SECS] {
        cfg.lease_secs = lease;
        assert_eq!(cfg.validate(), Ok(()));
    }
    assert_eq!(
        cfg.t2_secs(),
        u32::try_from(u64::from(MAX_LEASE_SECS) * 7 / 8).unwrap()
    );
    assert_eq!(
        ec2_hostname(Ipv4Addr::new(192, 168, 0, 1)),
        "ip-192-168-0-1"
    );
}
