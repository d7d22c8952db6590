//! Egress NAT in nftables, spoken over nfnetlink (no `nft` binary, no
//! libnftnl): Flint's own table `ip flint`, one base chain per bridge,
//! `nat-BRIDGE`, holding the one rule that `nft` would print as
//!
//! ```text
//! table ip flint {
//!     chain nat-flintbr0 {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr 172.31.0.0/20 oifname != "flintbr0" masquerade
//!     }
//! }
//! ```
//!
//! (what `iptables -t nat -A POSTROUTING -s SUBNET ! -o BRIDGE -j
//! MASQUERADE` did). It is written as one nftables transaction: create the
//! table and the chain if missing, flush the chain, add the rule; so a
//! second run replaces the rule instead of adding another, and nothing
//! outside the chain is touched. [`disable_batch`] removes the chain,
//! [`delete_empty_table_batch`] the table once it holds nothing else.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_NONREC, NetlinkMessage};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions,
    Hook, InetHookNumber, ListAttribute, Meta, MetaKey, NfTablesMessage, Operator, Payload,
    Register, RuleAttribute, RuleMessage, TableAttribute, TableFlags, TableMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::netlink::{Failed, Netlink, message};

/// Flint's nftables table (family ip).
pub(super) const TABLE: &str = "flint";

/// nfnetlink's subsystem id of nftables (linux/netfilter/nfnetlink.h),
/// carried by a batch's begin and end messages.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// NFT_PAYLOAD_NETWORK_HEADER: payload offsets count from the IP header.
const NETWORK_HEADER: u32 = 1;
/// The source address in an IPv4 header.
const IPV4_SADDR_OFFSET: u32 = 12;
/// NF_ACCEPT, a base chain's policy.
const ACCEPT: u32 = 1;
/// NF_IP_PRI_NAT_SRC: `priority srcnat`.
const SRCNAT_PRIORITY: u32 = 100;
/// Interface names in nftables are compared as IFNAMSIZ bytes.
const IFNAMSIZ: usize = 16;

/// The base chain of `bridge`'s NAT.
pub(super) fn chain_name(bridge: &str) -> String {
    format!("nat-{bridge}")
}

/// Messages of one nftables transaction, each with what it does (for
/// errors), batch begin and end included.
pub(super) struct Batch {
    pub messages: Vec<NetlinkMessage<NetfilterMessage>>,
    what: Vec<String>,
}

impl Batch {
    fn new() -> Batch {
        let mut batch = Batch {
            messages: Vec::new(),
            what: Vec::new(),
        };
        batch.control(ControlMessage::BatchBegin, "begin an nftables transaction");
        batch
    }

    fn control(&mut self, control: ControlMessage, what: &str) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
        self.messages
            .push(message(NetfilterMessage::new(header, control), 0));
        self.what.push(what.to_string());
    }

    /// One nftables request on the ip family, acked.
    fn push(&mut self, request: NfTablesMessage, flags: u16, what: String) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0);
        let inner = NetfilterMessageInner::NfTables(request);
        self.messages.push(message(
            NetfilterMessage::new(header, inner),
            flags | NLM_F_ACK,
        ));
        self.what.push(what);
    }

    fn finish(mut self) -> Batch {
        self.control(ControlMessage::BatchEnd, "commit the nftables transaction");
        self
    }

    /// Runs the transaction: all of it, or (on an error) none of it.
    pub fn run(mut self) -> Result<(), BatchError> {
        let mut socket = Netlink::open(NETLINK_NETFILTER).map_err(|source| BatchError {
            what: "open an nfnetlink socket".to_string(),
            source,
        })?;
        socket
            .transaction(&mut self.messages)
            .map_err(|Failed { index, source }| BatchError {
                what: match index {
                    Some(i) => self.what[i].clone(),
                    None => "talk to nftables".to_string(),
                },
                source,
            })
    }
}

/// What failed in a transaction, and the kernel's error.
#[derive(Debug)]
pub(super) struct BatchError {
    pub what: String,
    pub source: io::Error,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}: {}", self.what, self.source)
    }
}

fn table() -> NfTablesMessage {
    NfTablesMessage::NewTable(TableMessage {
        attributes: vec![
            TableAttribute::Name(TABLE.to_string()),
            TableAttribute::Flags(TableFlags::empty()),
        ],
    })
}

fn nat_chain(chain: &str) -> NfTablesMessage {
    NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(TABLE.to_string()),
            ChainAttribute::Name(chain.to_string()),
            ChainAttribute::Type("nat".to_string()),
            ChainAttribute::Policy(ACCEPT),
            ChainAttribute::Hook(vec![
                Hook::Number(InetHookNumber::PostRouting.into()),
                Hook::Priority(SRCNAT_PRIORITY),
            ]),
        ],
    })
}

/// Without a handle, a rule deletion removes every rule of the chain
/// (what `nft flush chain` sends).
fn flush_chain(chain: &str) -> NfTablesMessage {
    NfTablesMessage::DeleteRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(TABLE.to_string()),
            RuleAttribute::Chain(chain.to_string()),
        ],
    })
}

fn expression(e: Expressions) -> ListAttribute<ExpressionAttribute> {
    e.into()
}

/// `ip saddr NETWORK/PREFIX oifname != "BRIDGE" masquerade`, expression
/// for expression as `nft` compiles it.
fn masquerade_rule(chain: &str, network: Ipv4Addr, prefix: u8, bridge: &str) -> NfTablesMessage {
    let mut expressions = Vec::new();
    if prefix > 0 {
        expressions.push(expression(Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NETWORK_HEADER),
            Payload::Offset(IPV4_SADDR_OFFSET),
            Payload::Len(4),
        ])));
        if prefix < 32 {
            let mask = u32::MAX << (32 - u32::from(prefix));
            expressions.push(expression(Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                Bitwise::Length(4),
                Bitwise::Mask(DataAttribute::Value(mask.to_be_bytes().to_vec())),
                Bitwise::Xor(DataAttribute::Value(vec![0; 4])),
            ])));
        }
        expressions.push(expression(Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(network.octets().to_vec())),
        ])));
    }
    let mut name = bridge.as_bytes().to_vec();
    name.resize(IFNAMSIZ, 0);
    expressions.push(expression(Expressions::Meta(vec![
        Meta::Key(MetaKey::Oifname),
        Meta::DestinationRegister(Register::Reg1),
    ])));
    expressions.push(expression(Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::NotEqual),
        Cmp::Data(DataAttribute::Value(name)),
    ])));
    expressions.push(expression(Expressions::Other {
        expression_type: "masq".to_string(),
        attributes: Vec::new(),
    }));
    NfTablesMessage::NewRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(TABLE.to_string()),
            RuleAttribute::Chain(chain.to_string()),
            RuleAttribute::Expressions(expressions),
        ],
    })
}

/// The transaction that sets (or resets) `bridge`'s NAT for
/// NETWORK/PREFIX: table and chain created if missing, the chain flushed,
/// the one rule added. `network` must have no host bits.
pub(super) fn enable_batch(network: Ipv4Addr, prefix: u8, bridge: &str) -> Batch {
    let chain = chain_name(bridge);
    let mut batch = Batch::new();
    batch.push(table(), NLM_F_CREATE, format!("create table ip {TABLE}"));
    batch.push(
        nat_chain(&chain),
        NLM_F_CREATE,
        format!("create chain ip {TABLE} {chain}"),
    );
    batch.push(
        flush_chain(&chain),
        0,
        format!("flush chain ip {TABLE} {chain}"),
    );
    batch.push(
        masquerade_rule(&chain, network, prefix, bridge),
        NLM_F_CREATE | NLM_F_APPEND,
        format!("add the masquerade rule to chain ip {TABLE} {chain}"),
    );
    batch.finish()
}

/// The transaction that deletes `bridge`'s NAT chain, rule included.
pub(super) fn disable_batch(bridge: &str) -> Batch {
    let chain = chain_name(bridge);
    let mut batch = Batch::new();
    batch.push(
        NfTablesMessage::DeleteChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(TABLE.to_string()),
                ChainAttribute::Name(chain.clone()),
            ],
        }),
        0,
        format!("delete chain ip {TABLE} {chain}"),
    );
    batch.finish()
}

/// The transaction that deletes the table, but only if it is empty
/// (NLM_F_NONREC: EBUSY otherwise).
pub(super) fn delete_empty_table_batch() -> Batch {
    let mut batch = Batch::new();
    batch.push(
        NfTablesMessage::DeleteTable(TableMessage {
            attributes: vec![TableAttribute::Name(TABLE.to_string())],
        }),
        NLM_F_NONREC,
        format!("delete table ip {TABLE}"),
    );
    batch.finish()
}
