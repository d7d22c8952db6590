//! The messages Flint sends, compared byte for byte with what iproute2's
//! `ip` and nftables' `nft` send for the same job (captured with strace
//! from ip 6.1 and nft 1.0.6 on Debian 12); and the real thing, as root,
//! in a network namespace made for the test (never the host's).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NetlinkMessage};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook,
    HookNumber, InetHookNumber, ListAttribute, NfTablesMessage, Operator, Payload, RuleAttribute,
    RuleMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkAttribute;
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::netlink::{Netlink, encode, message};
use super::{links, nat};
use crate::supervisor::SupervisorError;

fn unhex(hex: &str) -> Vec<u8> {
    hex::decode(hex).unwrap()
}

/// A netlink message as bytes: header (length, type, flags, seq 0, port
/// 0) and payload.
fn wire(message_type: u16, flags: u16, payload: &str) -> Vec<u8> {
    let payload = unhex(payload);
    let mut out = Vec::new();
    out.extend_from_slice(&(16 + payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&message_type.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&payload);
    out
}

fn rtnl_bytes(payload: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    encode(&[message(payload, flags | NLM_F_ACK)])
}

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
/// NLM_F_REQUEST | NLM_F_ACK, and with NLM_F_EXCL | NLM_F_CREATE.
const REQ_ACK: u16 = 0x5;
const REQ_ACK_EXCL_CREATE: u16 = 0x605;

#[test]
fn rtnetlink_requests_are_the_ones_ip_sends() {
    // ip addr add 172.31.0.1/20 dev flintbr0 (index 2)
    assert_eq!(
        rtnl_bytes(
            links::new_address(2, Ipv4Addr::new(172, 31, 0, 1), 20),
            NLM_F_CREATE | NLM_F_EXCL
        ),
        wire(
            RTM_NEWADDR,
            REQ_ACK_EXCL_CREATE,
            "021400000200000008000200ac1f000108000100ac1f0001"
        )
    );
    // ip link set dev flintbr0 up
    assert_eq!(
        rtnl_bytes(links::set_up(2), 0),
        wire(RTM_NEWLINK, REQ_ACK, "00000000020000000100000001000000")
    );
    // ip link set dev fl0123 (index 3) master flintbr0
    assert_eq!(
        rtnl_bytes(links::set_controller(3, 2), 0),
        wire(
            RTM_NEWLINK,
            REQ_ACK,
            "0000000003000000000000000000000008000a0002000000"
        )
    );
    // ip link del dev fl0123
    assert_eq!(
        rtnl_bytes(links::del_link(3), 0),
        wire(RTM_DELLINK, REQ_ACK, "00000000030000000000000000000000")
    );
    // ip link add name flintbr1 type bridge; but where ip sends
    // IFLA_INFO_KIND "bridge" without its NUL (length 0x0a),
    // netlink-packet-route includes it (0x0b): the kernel's NLA_STRING
    // takes either.
    assert_eq!(
        rtnl_bytes(links::new_bridge("flintbr1"), NLM_F_CREATE | NLM_F_EXCL),
        wire(
            RTM_NEWLINK,
            REQ_ACK_EXCL_CREATE,
            "00000000000000000000000000000000\
             0d000300666c696e7462723100000000\
             100012000b0001006272696467650000"
        )
    );
}

/// What `nft -f` sends for
/// `table ip flint { chain nat-flintbr0 { type nat hook postrouting
/// priority srcnat; policy accept; ip saddr 172.31.0.0/20 oifname !=
/// "flintbr0" masquerade } }`, payloads after the nlmsghdr.
const NFT_TABLE: &str = "020000000a000100666c696e740000000800020000000000";
const NFT_CHAIN: &str = "020000000a000100666c696e74000000110003006e61742d666c696e74627230\
     00000000080007006e6174000800050000000001140004800800010000000004\
     0800020000000064";
const NFT_RULE: &str = "020000000a000100666c696e74000000110002006e61742d666c696e74627230\
     0000000018010480340001800c0001007061796c6f6164002400028008000100\
     000000010800020000000001080003000000000c080004000000000444000180\
     0c00010062697477697365003400028008000100000000010800020000000001\
     08000300000000040c00048008000100fffff0000c0005800800010000000000\
     2c00018008000100636d70002000028008000100000000010800020000000000\
     0c00038008000100ac1f000024000180090001006d6574610000000014000280\
     080002000000000708000100000000013800018008000100636d70002c000280\
     080001000000000108000200000000011800038014000100666c696e74627230\
     000000000000000014000180090001006d6173710000000004000280";

fn payload_hex(message: &NetlinkMessage<NetfilterMessage>) -> String {
    hex::encode(&encode(std::slice::from_ref(message))[16..])
}

#[test]
fn the_nat_transaction_is_what_nft_sends_plus_a_flush() {
    let batch = nat::enable_batch(Ipv4Addr::new(172, 31, 0, 0), 20, "flintbr0");
    let m = &batch.messages;
    assert_eq!(m.len(), 6);
    // begin and end: NFNL_MSG_BATCH_BEGIN/END for res_id 10 (nftables).
    assert_eq!(encode(&m[..1]), wire(0x10, 0x1, "0000000a"));
    assert_eq!(encode(&m[5..]), wire(0x11, 0x1, "0000000a"));
    // NFT_MSG_NEWTABLE, NEWCHAIN, DELRULE, NEWRULE of subsystem 10, each
    // acked; the chain created if missing, the rule appended.
    let types: Vec<u16> = m.iter().map(|m| m.header.message_type).collect();
    assert_eq!(types, [0x10, 0xa00, 0xa03, 0xa08, 0xa06, 0x11]);
    let flags: Vec<u16> = m.iter().map(|m| m.header.flags).collect();
    assert_eq!(flags, [0x1, 0x405, 0x405, 0x5, 0xc05, 0x1]);
    assert_eq!(payload_hex(&m[1]), NFT_TABLE);
    assert_eq!(payload_hex(&m[2]), NFT_CHAIN);
    assert_eq!(payload_hex(&m[4]), NFT_RULE);
    // The flush: a rule deletion naming the table and the chain only.
    assert_eq!(
        payload_hex(&m[3]),
        "020000000a000100666c696e74000000110002006e61742d666c696e7462723000000000"
    );
}

#[test]
fn nat_rules_match_any_prefix_like_nft() {
    let ops = |prefix| {
        let batch = nat::enable_batch(Ipv4Addr::new(10, 0, 0, 0), prefix, "br0");
        let Some(NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(rule))) =
            batch.messages.get(4).and_then(|m| match &m.payload {
                netlink_packet_core::NetlinkPayload::InnerMessage(i) => Some(i.inner.clone()),
                _ => None,
            })
        else {
            panic!("no rule");
        };
        expression_names(&rule)
    };
    // /32: no mask; /0: no address match at all (as nft compiles them).
    assert_eq!(ops(32), ["payload", "cmp", "meta", "cmp", "masq"]);
    assert_eq!(ops(0), ["meta", "cmp", "masq"]);
    assert_eq!(ops(8), ["payload", "bitwise", "cmp", "meta", "cmp", "masq"]);
}

fn expression_names(rule: &RuleMessage) -> Vec<String> {
    let mut names = Vec::new();
    for attribute in &rule.attributes {
        if let RuleAttribute::Expressions(list) = attribute {
            for element in list {
                if let ListAttribute::Element(parts) = element {
                    for part in parts {
                        if let ExpressionAttribute::Name(name) = part {
                            names.push(name.clone());
                        }
                    }
                }
            }
        }
    }
    names
}

#[test]
fn bad_input_is_a_network_error_not_a_panic() {
    for cidr in ["172.31.0.1", "172.31.0.1/33", "not/20", ""] {
        assert!(
            matches!(super::parse_cidr(cidr), Err(SupervisorError::Network(ref m)) if m.contains("A.B.C.D/NN")),
            "{cidr}"
        );
    }
    assert_eq!(
        super::parse_cidr("172.31.0.1/20").unwrap(),
        (Ipv4Addr::new(172, 31, 0, 1), 20)
    );
    let long = links::create_persistent_tap("sixteen-chars-xx").unwrap_err();
    assert_eq!(long.kind(), std::io::ErrorKind::InvalidInput);
}

/// Runs `f` on a thread of its own in a network namespace of its own
/// (unshare(CLONE_NEWNET) changes only the calling thread's), so nothing
/// it does reaches the host's interfaces or firewall; the namespace and
/// all in it go away when the thread ends.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare takes flags by value and changes only this
        // thread's namespaces.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) failed ({}): these tests need root",
            std::io::Error::last_os_error()
        );
        f()
    })
    .join()
    .unwrap()
}

/// iproute2's `ip`, which the tests (only they: an independent witness)
/// use to look at what the product did and to build the scene around it.
/// A child runs in the namespace of the thread that starts it.
fn iproute2(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().unwrap()
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = iproute2(args);
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// `ip -j ARGS`, parsed.
fn ip_json(args: &[&str]) -> serde_json::Value {
    let out = iproute2(&[&["-j"], args].concat());
    assert!(out.status.success(), "ip -j {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()
}

#[test]
fn bridge_and_taps_in_a_namespace_of_the_test() {
    let host_forward = ip_forward();
    in_new_netns(|| {
        // Twice: the second finds everything in place and changes nothing.
        for _ in 0..2 {
            super::ensure_bridge("flintbr0", "172.31.0.1/20").unwrap();
        }
        let bridge = &ip_json(&["-d", "addr", "show", "dev", "flintbr0"])[0];
        let flags = bridge["flags"].as_array().unwrap();
        assert!(flags.iter().any(|f| f == "UP"), "{bridge}");
        assert_eq!(bridge["linkinfo"]["info_kind"], "bridge", "{bridge}");
        let inet: Vec<_> = bridge["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .collect();
        assert_eq!(inet.len(), 1, "{bridge}");
        assert_eq!(inet[0]["local"], "172.31.0.1");
        assert_eq!(inet[0]["prefixlen"], 20);

        let tap = "fltest0123";
        for _ in 0..2 {
            super::create_tap(tap, "flintbr0").unwrap();
        }
        let link = &ip_json(&["-d", "link", "show", "dev", tap])[0];
        assert_eq!(link["master"], "flintbr0", "{link}");
        assert!(
            link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
            "{link}"
        );
        let tun = &link["linkinfo"]["info_data"];
        assert_eq!(link["linkinfo"]["info_kind"], "tun", "{link}");
        assert_eq!(tun["type"], "tap", "{link}");
        assert_eq!(tun["pi"], false, "{link}");
        assert_eq!(tun["persist"], true, "{link}");
        // The same through our own rtnetlink lookup.
        let mut rtnl = links::Rtnl::open().unwrap();
        let bridge_index = rtnl.link_index("flintbr0").unwrap().unwrap();
        let tap_link = rtnl.link(tap).unwrap().unwrap();
        assert!(
            tap_link
                .attributes
                .contains(&LinkAttribute::Controller(bridge_index))
        );

        // A TAP on a bridge that is not there: a clear error.
        let Err(SupervisorError::Network(message)) = super::create_tap("fltest0124", "nobr") else {
            panic!("a missing bridge must fail");
        };
        assert_eq!(message, "bridge nobr does not exist");

        for _ in 0..2 {
            super::delete_tap(tap).unwrap();
        }
        assert_eq!(rtnl.link_index(tap).unwrap(), None);
        super::delete_tap("fltest0124").unwrap();
        // The bridge stays.
        assert!(rtnl.link_index("flintbr0").unwrap().is_some());
    });
    // The host's own namespace saw none of it.
    assert_eq!(ip_forward(), host_forward);
    assert!(
        !iproute2(&["link", "show", "dev", "fltest0123"])
            .status
            .success()
    );
}

fn nft_request(request: NfTablesMessage) -> NetfilterMessage {
    NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
        request,
    )
}

/// Every chain and rule of table ip flint, read back from the kernel.
fn dump_flint() -> (Vec<ChainMessage>, Vec<RuleMessage>) {
    let mut nfnl = Netlink::open(NETLINK_NETFILTER).unwrap();
    let only_flint = || vec![nat::TABLE.to_string()];
    let chains = nfnl
        .dump(nft_request(NfTablesMessage::GetChain(ChainMessage {
            attributes: only_flint()
                .into_iter()
                .map(ChainAttribute::Table)
                .collect(),
        })))
        .unwrap()
        .into_iter()
        .filter_map(|m| match m.inner {
            NetfilterMessageInner::NfTables(NfTablesMessage::NewChain(c)) => Some(c),
            _ => None,
        })
        .filter(|c| {
            c.attributes
                .contains(&ChainAttribute::Table(nat::TABLE.into()))
        })
        .collect();
    let rules = nfnl
        .dump(nft_request(NfTablesMessage::GetRule(RuleMessage {
            attributes: only_flint().into_iter().map(RuleAttribute::Table).collect(),
        })))
        .unwrap()
        .into_iter()
        .filter_map(|m| match m.inner {
            NetfilterMessageInner::NfTables(NfTablesMessage::NewRule(r)) => Some(r),
            _ => None,
        })
        .filter(|r| {
            r.attributes
                .contains(&RuleAttribute::Table(nat::TABLE.into()))
        })
        .collect();
    (chains, rules)
}

fn flint_table_exists() -> bool {
    let mut nfnl = Netlink::open(NETLINK_NETFILTER).unwrap();
    let tables = nfnl
        .dump(nft_request(NfTablesMessage::GetTable(TableMessage {
            attributes: vec![],
        })))
        .unwrap();
    tables.iter().any(|m| {
        matches!(&m.inner, NetfilterMessageInner::NfTables(NfTablesMessage::NewTable(t))
            if t.attributes.contains(&TableAttribute::Name(nat::TABLE.into())))
    })
}

fn data_values(rule: &RuleMessage) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for attribute in &rule.attributes {
        let RuleAttribute::Expressions(list) = attribute else {
            continue;
        };
        for element in list {
            let ListAttribute::Element(parts) = element else {
                continue;
            };
            for part in parts {
                match part {
                    ExpressionAttribute::Data(Expressions::Cmp(cmp)) => {
                        let op = cmp.iter().find_map(|c| match c {
                            Cmp::Op(Operator::Equal) => Some("=="),
                            Cmp::Op(Operator::NotEqual) => Some("!="),
                            _ => None,
                        });
                        let value = cmp.iter().find_map(|c| match c {
                            Cmp::Data(DataAttribute::Value(v)) => Some(v.clone()),
                            _ => None,
                        });
                        out.push((op.unwrap().to_string(), value.unwrap()));
                    }
                    ExpressionAttribute::Data(Expressions::Payload(p)) => {
                        assert!(p.contains(&Payload::Offset(12)) && p.contains(&Payload::Len(4)));
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[test]
fn nat_in_a_namespace_of_the_test_is_idempotent_and_removable() {
    let host_forward = ip_forward();
    in_new_netns(|| {
        assert_eq!(ip_forward().trim(), "0");
        super::ensure_bridge("flintbr0", "172.31.0.1/20").unwrap();
        // Three daemon starts, one rule; host bits in the subnet are
        // masked off as iptables did.
        super::enable_nat("172.31.0.0/20", "flintbr0").unwrap();
        super::enable_nat("172.31.0.0/20", "flintbr0").unwrap();
        super::enable_nat("172.31.0.9/20", "flintbr0").unwrap();
        assert_eq!(ip_forward().trim(), "1");

        let (chains, rules) = dump_flint();
        assert_eq!(chains.len(), 1, "{chains:?}");
        let chain = &chains[0].attributes;
        assert!(chain.contains(&ChainAttribute::Name("nat-flintbr0".into())));
        assert!(chain.contains(&ChainAttribute::Type("nat".into())));
        assert!(chain.contains(&ChainAttribute::Policy(1)));
        let hook = chain
            .iter()
            .find_map(|a| match a {
                ChainAttribute::Hook(h) => Some(h.clone()),
                _ => None,
            })
            .unwrap();
        assert!(hook.contains(&Hook::Number(HookNumber::Inet(InetHookNumber::PostRouting))));
        assert!(hook.contains(&Hook::Priority(100)));

        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(
            expression_names(&rules[0]),
            ["payload", "bitwise", "cmp", "meta", "cmp", "masq"]
        );
        let mut name = b"flintbr0".to_vec();
        name.resize(16, 0);
        assert_eq!(
            data_values(&rules[0]),
            [
                ("==".to_string(), vec![172, 31, 0, 0]),
                ("!=".to_string(), name)
            ]
        );

        // A second bridge gets a chain of its own beside the first.
        super::enable_nat("10.9.0.0/16", "flintbr9").unwrap();
        assert_eq!(dump_flint().0.len(), 2);
        super::disable_nat("flintbr9").unwrap();
        let (chains, rules) = dump_flint();
        assert_eq!((chains.len(), rules.len()), (1, 1));
        assert!(flint_table_exists());

        // The last chain out takes the table with it; twice is fine.
        super::disable_nat("flintbr0").unwrap();
        assert!(!flint_table_exists());
        super::disable_nat("flintbr0").unwrap();

        // Invalid input is refused before anything is touched.
        let Err(SupervisorError::Network(message)) = super::enable_nat("172.31.0.0", "flintbr0")
        else {
            panic!("a subnet without a prefix must fail");
        };
        assert!(message.contains("A.B.C.D/NN"), "{message}");
        assert!(!flint_table_exists());
    });
    assert_eq!(ip_forward(), host_forward);
}

/// A thread in a network namespace of its own, told what to do through
/// a channel: the "instance" and the "outside world" of the test below.
struct Peer {
    tid: i32,
    jobs: mpsc::Sender<Box<dyn FnOnce() + Send>>,
    thread: std::thread::JoinHandle<()>,
}

impl Peer {
    fn start() -> Peer {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (jobs, jobs_rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let thread = std::thread::spawn(move || {
            // SAFETY: as in in_new_netns; gettid has no arguments.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            // SAFETY: gettid takes nothing and cannot fail.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            for job in jobs_rx {
                job();
            }
        });
        Peer {
            tid: tid_rx.recv().unwrap(),
            jobs,
            thread,
        }
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move || tx.send(f()).unwrap()))
            .unwrap();
        rx.recv().unwrap()
    }

    fn stop(self) {
        drop(self.jobs);
        self.thread.join().unwrap();
    }
}

/// The source address the outside sees for one UDP datagram from the
/// instance (a fresh socket, so a fresh conntrack flow each time).
fn seen_source(instance: &Peer, outside: &Peer) -> Ipv4Addr {
    let server = outside.run(|| {
        let socket = UdpSocket::bind("192.0.2.2:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        socket
    });
    let port = server.local_addr().unwrap().port();
    let client = instance.run(|| UdpSocket::bind("172.31.0.5:0").unwrap());
    for _ in 0..25 {
        client.send_to(b"hello", ("192.0.2.2", port)).unwrap();
        let mut buf = [0; 16];
        if let Ok((_, SocketAddr::V4(from))) = server.recv_from(&mut buf) {
            return *from.ip();
        }
    }
    panic!("nothing from the instance reached the outside");
}

/// What the masquerade is for, end to end in three namespaces made here:
/// an instance on the bridge reaches the outside through the "host" (the
/// test's own namespace) with the host's address once NAT is on, and
/// with its own when it is off.
#[test]
fn masquerade_gives_instance_traffic_the_hosts_address() {
    in_new_netns(|| {
        let instance = Peer::start();
        let outside = Peer::start();
        super::ensure_bridge("flintbr0", "172.31.0.1/20").unwrap();
        let (i_tid, o_tid) = (instance.tid.to_string(), outside.tid.to_string());
        ip(&[
            "link", "add", "name", "flvm", "type", "veth", "peer", "name", "eth0", "netns", &i_tid,
        ]);
        ip(&["link", "set", "dev", "flvm", "master", "flintbr0", "up"]);
        ip(&[
            "link", "add", "name", "uplink", "type", "veth", "peer", "name", "eth0", "netns",
            &o_tid,
        ]);
        ip(&["addr", "add", "192.0.2.1/24", "dev", "uplink"]);
        ip(&["link", "set", "dev", "uplink", "up"]);
        instance.run(|| {
            ip(&["addr", "add", "172.31.0.5/20", "dev", "eth0"]);
            ip(&["link", "set", "dev", "eth0", "up"]);
            ip(&["route", "add", "default", "via", "172.31.0.1"]);
        });
        outside.run(|| {
            ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
            ip(&["link", "set", "dev", "eth0", "up"]);
        });
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap();

        assert_eq!(
            seen_source(&instance, &outside),
            Ipv4Addr::new(172, 31, 0, 5)
        );
        super::enable_nat("172.31.0.0/20", "flintbr0").unwrap();
        assert_eq!(
            seen_source(&instance, &outside),
            Ipv4Addr::new(192, 0, 2, 1)
        );
        super::disable_nat("flintbr0").unwrap();
        assert_eq!(
            seen_source(&instance, &outside),
            Ipv4Addr::new(172, 31, 0, 5)
        );

        instance.stop();
        outside.stop();
    });
}
