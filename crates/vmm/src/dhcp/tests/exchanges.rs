//! Whole exchanges with the instance: DISCOVER/OFFER/REQUEST/ACK,
//! renewals, rebinding, INIT-REBOOT, NAKs, INFORM, options.

use super::*;

#[test]
fn discover_offer_request_ack() {
    let mut server = server();

    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    assert_eq!(msg_type(&offer), MessageType::Offer);
    assert_eq!(offer.msg.yiaddr(), CLIENT_IP);
    assert_eq!(offer.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.msg.giaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.msg.flags(), Flags::default());
    assert_lease_options(&offer);
    // No broadcast flag, no address: unicast to the hardware address + yiaddr.
    assert_eq!(offer.eth_src, EC2_GATEWAY_MAC);
    assert_eq!(offer.eth_dst, CLIENT_MAC);
    assert_eq!(offer.ip_src, ROUTER);
    assert_eq!(offer.ip_dst, CLIENT_IP);
    assert!(offer.dhcp_len >= 300, "BOOTP minimum size");
    assert!(offer.ip_total_len <= 576);

    let Some(DhcpOption::ServerIdentifier(server_id)) = offer.opt(OptionCode::ServerIdentifier)
    else {
        panic!("no server identifier");
    };
    let request = request_selecting(*server_id, offer.msg.yiaddr());
    let ack = exchange(&mut server, &broadcast_frame(&request));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.yiaddr(), CLIENT_IP);
    assert_lease_options(&ack);
    assert_eq!(ack.eth_dst, CLIENT_MAC);
    assert_eq!(ack.ip_dst, CLIENT_IP);

    let stats = server.stats();
    assert_eq!(
        (stats.offers, stats.acks, stats.naks, stats.dropped),
        (1, 1, 0, 0)
    );
}

#[test]
fn broadcast_flag_gets_broadcast_reply() {
    let mut server = server();
    let mut msg = discover();
    msg.set_flags(Flags::default().set_broadcast());
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    assert!(offer.msg.flags().broadcast(), "flags are copied");
    assert_eq!(offer.eth_dst, BROADCAST_MAC);
    assert_eq!(offer.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(offer.msg.yiaddr(), CLIENT_IP);
}

#[test]
fn renewal_is_unicast_to_ciaddr() {
    let mut server = server();
    let ack = exchange(&mut server, &renew_frame(CLIENT_IP));
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.ciaddr(), CLIENT_IP);
    assert_eq!(ack.msg.yiaddr(), CLIENT_IP);
    assert_lease_options(&ack);
    assert_eq!(ack.eth_dst, CLIENT_MAC);
    assert_eq!(ack.ip_dst, CLIENT_IP);
}

#[test]
fn rebinding_broadcast_with_ciaddr_is_answered_unicast() {
    let mut server = server();
    let mut msg = request_renewing(CLIENT_IP);
    msg.set_flags(Flags::default().set_broadcast());
    let frame = frame_with(
        &msg.to_vec().unwrap(),
        CLIENT_MAC,
        CLIENT_IP,
        Ipv4Addr::BROADCAST,
    );
    let ack = exchange(&mut server, &frame);
    assert_eq!(msg_type(&ack), MessageType::Ack);
    // A client with an address gets unicast whatever the flag says.
    assert_eq!(ack.ip_dst, CLIENT_IP);
    assert_eq!(ack.eth_dst, CLIENT_MAC);
}

#[test]
fn renewal_of_another_address_is_naked() {
    let mut server = server();
    let nak = exchange(&mut server, &renew_frame(OTHER_IP));
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(nak.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.eth_dst, BROADCAST_MAC);
    assert_eq!(nak.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(nak.opt(OptionCode::AddressLeaseTime), None);
}

#[test]
fn init_reboot_right_address_acks() {
    let mut server = server();
    let ack = exchange(
        &mut server,
        &broadcast_frame(&request_init_reboot(CLIENT_IP)),
    );
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.yiaddr(), CLIENT_IP);
    assert_eq!(ack.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    assert_lease_options(&ack);
    assert_eq!(ack.ip_dst, CLIENT_IP);
}

#[test]
fn init_reboot_wrong_address_naks() {
    let mut server = server();
    // An address from the instance's previous life on another subnet.
    let stale = Ipv4Addr::new(192, 168, 7, 7);
    let nak = exchange(&mut server, &broadcast_frame(&request_init_reboot(stale)));
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(nak.eth_src, EC2_GATEWAY_MAC);
    assert_eq!(nak.eth_dst, BROADCAST_MAC);
    assert_eq!(nak.ip_src, ROUTER);
    assert_eq!(nak.ip_dst, Ipv4Addr::BROADCAST);
    assert_eq!(nak.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(
        nak.opt(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(ROUTER))
    );
    assert!(matches!(
        nak.opt(OptionCode::Message),
        Some(DhcpOption::Message(_))
    ));
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::Hostname,
    ] {
        assert_eq!(nak.opt(code), None, "{code:?} in a NAK");
    }
    assert_eq!(server.stats().naks, 1);
}

#[test]
fn selecting_wrong_address_naks() {
    let mut server = server();
    let nak = exchange(
        &mut server,
        &broadcast_frame(&request_selecting(ROUTER, OTHER_IP)),
    );
    assert_eq!(msg_type(&nak), MessageType::Nak);
    assert_eq!(nak.ip_dst, Ipv4Addr::BROADCAST);
}

#[test]
fn request_for_another_server_gets_no_reply() {
    let mut server = server();
    let frame = broadcast_frame(&request_selecting(Ipv4Addr::new(10, 0, 1, 5), CLIENT_IP));
    assert_eq!(server.try_handle_frame(&frame), Ok(None));
    assert_eq!(server.stats(), DhcpStats::default());
}

#[test]
fn request_naming_no_address_is_dropped() {
    let mut server = server();
    let frame = broadcast_frame(&client_msg(MessageType::Request));
    assert_eq!(
        server.try_handle_frame(&frame),
        Err(DhcpError::RequestWithoutAddress)
    );
}

#[test]
fn inform_gets_ack_without_lease() {
    let mut server = server();
    let mut msg = client_msg(MessageType::Inform);
    msg.set_ciaddr(CLIENT_IP);
    let frame = frame_with(&msg.to_vec().unwrap(), CLIENT_MAC, CLIENT_IP, ROUTER);
    let ack = exchange(&mut server, &frame);
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert_eq!(ack.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.msg.ciaddr(), CLIENT_IP);
    for code in [
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ] {
        assert_eq!(ack.opt(code), None, "{code:?} in an INFORM ACK");
    }
    assert_config_options(&ack, &config());
    assert_eq!(ack.eth_dst, CLIENT_MAC);
    assert_eq!(ack.ip_dst, CLIENT_IP);
}

#[test]
fn release_and_decline_get_no_reply() {
    let mut server = server();
    let mut release = client_msg(MessageType::Release);
    release.set_ciaddr(CLIENT_IP);
    release
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(ROUTER));
    let frame = frame_with(&release.to_vec().unwrap(), CLIENT_MAC, CLIENT_IP, ROUTER);
    assert_eq!(server.try_handle_frame(&frame), Ok(None));
    assert_eq!(server.handle_frame(&frame), None);

    let mut decline = request_selecting(ROUTER, CLIENT_IP);
    decline
        .opts_mut()
        .insert(DhcpOption::MessageType(MessageType::Decline));
    assert_eq!(
        server.try_handle_frame(&broadcast_frame(&decline)),
        Ok(None)
    );

    let stats = server.stats();
    assert_eq!((stats.releases, stats.declines, stats.dropped), (2, 1, 0));
}

#[test]
fn server_message_types_from_the_guest_are_dropped() {
    let mut server = server();
    for ty in [MessageType::Offer, MessageType::Ack, MessageType::Nak] {
        assert_eq!(
            server.try_handle_frame(&broadcast_frame(&client_msg(ty))),
            Err(DhcpError::UnexpectedMessageType(u8::from(ty)))
        );
    }
    let frame = broadcast_frame(&client_msg(MessageType::Unknown(200)));
    assert_eq!(
        server.try_handle_frame(&frame),
        Err(DhcpError::UnexpectedMessageType(200))
    );
}

#[test]
fn options_follow_parameter_request_list_order() {
    let mut server = server();
    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    // Type, server id, lease times; then the PRL's order of the options we
    // serve (1, 28, 3, 15, 6, 12, 26 from dhclient's list); then End.
    assert_eq!(
        offer.codes,
        vec![53, 54, 51, 58, 59, 1, 28, 3, 15, 6, 12, 26]
    );

    let mut msg = discover();
    msg.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::InterfaceMtu,
        OptionCode::Router,
        OptionCode::Router,
        OptionCode::ClasslessStaticRoute,
    ]));
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    // Requested ones first (duplicates once), then the other essentials.
    assert_eq!(
        offer.codes,
        vec![53, 54, 51, 58, 59, 26, 3, 1, 6, 12, 15, 28]
    );
}

#[test]
fn essentials_are_sent_without_parameter_request_list() {
    let mut server = server();
    let mut msg = discover();
    msg.opts_mut().remove(OptionCode::ParameterRequestList);
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    assert_lease_options(&offer);
    assert_eq!(
        offer.codes,
        vec![53, 54, 51, 58, 59, 1, 3, 6, 12, 15, 26, 28]
    );
}

#[test]
fn client_identifier_is_echoed() {
    let mut server = server();
    let mut msg = discover();
    let mut id = vec![1];
    id.extend_from_slice(&CLIENT_MAC);
    msg.opts_mut()
        .insert(DhcpOption::ClientIdentifier(id.clone()));
    let offer = exchange(&mut server, &broadcast_frame(&msg));
    assert_eq!(
        offer.opt(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(id))
    );

    let mut msg = discover();
    msg.opts_mut().insert(DhcpOption::ClientIdentifier(vec![
        0xff;
        MAX_CLIENT_ID_LEN + 1
    ]));
    assert_eq!(
        server.try_handle_frame(&broadcast_frame(&msg)),
        Err(DhcpError::ClientIdTooLong(MAX_CLIENT_ID_LEN + 1))
    );
}

#[test]
fn ec2_mtu_and_us_east_1_domain_reach_the_guest() {
    let mut cfg = DhcpConfig::ec2_style(CLIENT_MAC, CLIENT_IP, 24, "us-east-1").unwrap();
    cfg.mtu = EC2_MTU;
    let mut server = DhcpServer::new(cfg).unwrap();
    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    assert_eq!(
        offer.opt(OptionCode::InterfaceMtu),
        Some(&DhcpOption::InterfaceMtu(9001))
    );
    assert_eq!(
        offer.opt(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("ec2.internal".to_string()))
    );
    assert_eq!(
        offer.opt(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("ip-10-0-1-23".to_string()))
    );
}

#[test]
fn empty_optional_settings_omit_their_options() {
    let mut cfg = config();
    cfg.dns.clear();
    cfg.hostname.clear();
    cfg.domain.clear();
    let mut server = DhcpServer::new(cfg).unwrap();
    let offer = exchange(&mut server, &broadcast_frame(&discover()));
    assert_eq!(offer.codes, vec![53, 54, 51, 58, 59, 1, 28, 3, 26]);
}

#[test]
fn largest_reply_fits_576_bytes_and_matches_the_size_estimate() {
    let mut cfg = config();
    cfg.dns = vec![
        DNS,
        Ipv4Addr::new(8, 8, 8, 8),
        Ipv4Addr::new(1, 1, 1, 1),
        OTHER_IP,
    ];
    cfg.hostname = "h".repeat(63);
    cfg.domain = format!("{}.{}", "d".repeat(63), "e".repeat(40));
    cfg.validate().unwrap();
    let mut server = DhcpServer::new(cfg.clone()).unwrap();

    let mut msg = request_init_reboot(CLIENT_IP);
    msg.opts_mut()
        .insert(DhcpOption::ClientIdentifier(vec![7; MAX_CLIENT_ID_LEN]));
    let reply = server.handle_frame(&broadcast_frame(&msg)).unwrap();
    let ack = parse_reply(&reply);
    assert_eq!(msg_type(&ack), MessageType::Ack);
    assert!(ack.ip_total_len <= 576, "{} bytes", ack.ip_total_len);

    // The options area up to End, without the client id echo.
    let payload = &reply[DHCP_OFF..];
    let mut at = 240;
    while payload[at] != 255 {
        at += 2 + usize::from(payload[at + 1]);
    }
    let options_len = at + 1 - 240 - (2 + MAX_CLIENT_ID_LEN);
    assert_eq!(options_len, cfg.max_options_len());
}
