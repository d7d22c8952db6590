//! Other clients' traffic and malformed frames: dropped, never answered
//! wrongly; tolerated variations still answered.

use super::*;

#[test]
fn other_macs_are_ignored() {
    let mut server = server();
    // Ethernet source of another machine.
    let payload = discover().to_vec().unwrap();
    let frame = frame_with(
        &payload,
        OTHER_MAC,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
    );
    assert!(is_dhcp_to_server(&frame));
    assert_eq!(server.try_handle_frame(&frame), Err(DhcpError::ForeignMac));
    // Our Ethernet source, someone else's chaddr (a spoofing guest).
    let mut msg = discover();
    msg.set_chaddr(&OTHER_MAC);
    assert_eq!(
        server.try_handle_frame(&broadcast_frame(&msg)),
        Err(DhcpError::ForeignMac)
    );
    assert_eq!(server.stats().dropped, 2);
}

#[test]
fn malformed_frames_are_dropped() {
    let good = broadcast_frame(&discover());
    assert!(server().handle_frame(&good).is_some());

    let mut cases: Vec<(&str, Vec<u8>, DhcpError)> = vec![
        ("empty", vec![], DhcpError::TruncatedEthernet),
        (
            "short Ethernet",
            good[..13].to_vec(),
            DhcpError::TruncatedEthernet,
        ),
        ("Ethernet only", good[..14].to_vec(), DhcpError::BadIpHeader),
        ("short IPv4", good[..30].to_vec(), DhcpError::BadIpHeader),
        (
            "cut in UDP header",
            good[..38].to_vec(),
            DhcpError::BadIpHeader,
        ),
        ("cut in DHCP", good[..200].to_vec(), DhcpError::BadIpHeader),
    ];

    let mut vlan = good.clone();
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    cases.push(("VLAN tag", vlan, DhcpError::NotDhcp));
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    cases.push(("ARP", arp, DhcpError::NotDhcp));

    cases.push((
        "IHL 4",
        ip_edited(|ip| ip.set_header_len(16)),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "IHL past total length",
        ip_edited(|ip| {
            ip.set_header_len(60);
            ip.set_total_len(40);
        }),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "total length past frame",
        ip_edited(|ip| ip.set_total_len(1400)),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "IPv6 version",
        ip_edited(|ip| ip.set_version(6)),
        DhcpError::BadIpHeader,
    ));
    cases.push((
        "TCP",
        ip_edited(|ip| ip.set_next_header(IpProtocol::Tcp)),
        DhcpError::NotDhcp,
    ));
    cases.push((
        "more fragments",
        ip_edited(|ip| ip.set_more_frags(true)),
        DhcpError::Fragment,
    ));
    cases.push((
        "fragment offset",
        ip_edited(|ip| ip.set_frag_offset(64)),
        DhcpError::Fragment,
    ));
    let mut bad_ip_csum = good.clone();
    bad_ip_csum[IP_OFF + 10] ^= 0x55;
    cases.push(("IPv4 checksum", bad_ip_csum, DhcpError::BadIpChecksum));

    let mut udp_long = good.clone();
    let len = u16::from_be_bytes([good[UDP_OFF + 4], good[UDP_OFF + 5]]);
    udp_long[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&(len + 1).to_be_bytes());
    cases.push(("UDP length past IPv4", udp_long, DhcpError::BadUdpLength));
    let mut udp_short = good.clone();
    udp_short[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&(len - 10).to_be_bytes());
    cases.push((
        "UDP length short of IPv4",
        udp_short,
        DhcpError::BadUdpLength,
    ));
    let mut udp_tiny = good.clone();
    udp_tiny[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&4u16.to_be_bytes());
    cases.push(("UDP length below header", udp_tiny, DhcpError::BadUdpLength));
    let mut bad_udp_csum = good.clone();
    bad_udp_csum[UDP_OFF + 6] ^= 0x55;
    cases.push(("UDP checksum", bad_udp_csum, DhcpError::BadUdpChecksum));
    let mut to_dns = good.clone();
    to_dns[UDP_OFF + 2..UDP_OFF + 4].copy_from_slice(&53u16.to_be_bytes());
    cases.push(("UDP to port 53", to_dns, DhcpError::NotDhcp));
    let mut from_67 = good.clone();
    from_67[UDP_OFF..UDP_OFF + 2].copy_from_slice(&67u16.to_be_bytes());
    fix_up(&mut from_67);
    cases.push(("from port 67", from_67, DhcpError::BadClientPort(67)));

    cases.push((
        "DHCP shorter than BOOTP header",
        edited(|p| p.truncate(239)),
        DhcpError::TruncatedMessage,
    ));
    cases.push(("BOOTREPLY", edited(|p| p[0] = 2), DhcpError::NotBootRequest));
    cases.push((
        "htype 6",
        edited(|p| p[1] = 6),
        DhcpError::BadHardwareAddress { htype: 6, hlen: 6 },
    ));
    cases.push((
        "hlen 16",
        edited(|p| p[2] = 16),
        DhcpError::BadHardwareAddress { htype: 1, hlen: 16 },
    ));
    cases.push((
        "hlen 255",
        edited(|p| p[2] = 255),
        DhcpError::BadHardwareAddress {
            htype: 1,
            hlen: 255,
        },
    ));
    cases.push(("hops", edited(|p| p[3] = 1), DhcpError::Relayed));
    cases.push(("giaddr", edited(|p| p[24] = 10), DhcpError::Relayed));
    cases.push(("magic cookie", edited(|p| p[236] = 0), DhcpError::BadMagic));
    cases.push((
        "no options",
        edited(|p| p.truncate(240)),
        DhcpError::NoMessageType,
    ));
    cases.push((
        "only End",
        edited(|p| {
            p.truncate(240);
            p.push(255);
        }),
        DhcpError::NoMessageType,
    ));
    cases.push((
        "option length past the end",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 12, 200, b'x']);
        }),
        DhcpError::MalformedOptions,
    ));
    cases.push((
        "option length byte missing",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 12]);
        }),
        DhcpError::MalformedOptions,
    ));
    cases.push((
        "message type of length 2",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 2, 1, 1, 255]);
        }),
        DhcpError::BadOption(53),
    ));
    cases.push((
        "message type twice",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 0, 53, 1, 3, 255]);
        }),
        DhcpError::BadOption(53),
    ));
    cases.push((
        "requested IP of length 3",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 3, 50, 3, 10, 0, 1, 255]);
        }),
        DhcpError::BadOption(50),
    ));
    cases.push((
        "server id of length 5",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 3, 54, 5, 10, 0, 1, 1, 1, 255]);
        }),
        DhcpError::BadOption(54),
    ));
    cases.push((
        "client id of length 1",
        edited(|p| {
            p.truncate(240);
            p.extend_from_slice(&[53, 1, 1, 61, 1, 1, 255]);
        }),
        DhcpError::BadOption(61),
    ));
    cases.push((
        "oversized message",
        edited(|p| p.resize(MAX_REQUEST_LEN + 1, 0)),
        DhcpError::MessageTooLong(MAX_REQUEST_LEN + 1),
    ));

    let mut server = server();
    for (name, frame, expected) in cases {
        assert_eq!(server.try_handle_frame(&frame), Err(expected), "{name}");
        assert_eq!(server.handle_frame(&frame), None, "{name}");
    }
}

#[test]
fn tolerated_variations_are_answered() {
    let mut server = server();
    let good = broadcast_frame(&discover());

    // Ethernet padding after the IPv4 packet.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 32]);
    assert!(server.handle_frame(&padded).is_some(), "Ethernet padding");

    // No UDP checksum.
    let mut no_csum = good.clone();
    no_csum[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&[0, 0]);
    assert!(server.handle_frame(&no_csum).is_some(), "zero UDP checksum");

    // Checksum offloaded to the device: only the pseudo-header sum is there.
    let mut partial = good.clone();
    {
        let ip = Ipv4Packet::new_checked(&partial[IP_OFF..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let udp_len = u32::try_from(ip.payload().len()).unwrap();
        let mut sum = u32::from(u8::from(IpProtocol::Udp)) + udp_len;
        for addr in [src, dst] {
            let o = addr.octets();
            sum += u32::from(u16::from_be_bytes([o[0], o[1]]));
            sum += u32::from(u16::from_be_bytes([o[2], o[3]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let sum = u16::try_from(sum).unwrap();
        partial[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
    }
    assert!(server.handle_frame(&partial).is_some(), "partial checksum");

    // Options after End, and pad bytes, are ignored; a missing End is fine.
    let after_end = edited(|p| p.extend_from_slice(&[53, 1, 7, 0, 0]));
    assert!(server.handle_frame(&after_end).is_some(), "junk after End");
    let no_end = edited(|p| {
        p.truncate(240);
        p.extend_from_slice(&[0, 0, 53, 1, 1]);
    });
    assert!(server.handle_frame(&no_end).is_some(), "no End");

    // An RFC 3396 split parameter request list is joined.
    let split = edited(|p| {
        p.truncate(240);
        p.extend_from_slice(&[53, 1, 1, 55, 1, 26, 55, 2, 15, 3, 255]);
    });
    let offer = parse_reply(&server.handle_frame(&split).unwrap());
    assert_eq!(&offer.codes[5..8], &[26, 15, 3]);

    // IPv4 options in the header.
    let mut with_ip_options = good[..IP_OFF + 20].to_vec();
    with_ip_options.extend_from_slice(&[1, 1, 1, 0]); // NOP, NOP, NOP, EOL
    with_ip_options.extend_from_slice(&good[UDP_OFF..]);
    {
        let total = u16::try_from(with_ip_options.len() - IP_OFF).unwrap();
        let mut ip = Ipv4Packet::new_unchecked(&mut with_ip_options[IP_OFF..]);
        ip.set_header_len(24);
        ip.set_total_len(total);
        ip.fill_checksum();
    }
    assert!(
        server.handle_frame(&with_ip_options).is_some(),
        "IPv4 options"
    );
}

#[test]
fn every_option_code_and_length_is_survived() {
    let mut server = server();
    let ours = [0, 50, 53, 54, 55, 61, 255];
    for code in 0..=255u8 {
        for len in [0u8, 1, 2, 3, 4, 5, 16, 255] {
            let frame = edited(|p| {
                assert_eq!(p.pop(), Some(255));
                p.push(code);
                p.push(len);
                p.extend((0..len).map(|i| i.wrapping_mul(37)));
                p.push(255);
            });
            let reply = server.handle_frame(&frame);
            if !ours.contains(&code) {
                assert!(reply.is_some(), "option {code} length {len}");
            }
            if let Some(reply) = reply {
                parse_reply(&reply);
            }
        }
    }
}
