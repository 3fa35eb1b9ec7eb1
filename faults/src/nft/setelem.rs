//! Replacing what nftables sets hold, straight over a netfilter netlink socket: one batch of
//! "flush set" and "add elements" messages per change, with no ruleset cache to refresh first
//! (libnftables fetches tables, chains and sets before each command, several round trips).
//! Used for the faults that only change which flows a set holds.
//!
//! The messages are those `nft flush set` and `nft add element` send (see
//! `linux/netfilter/nf_tables.h`): `NFT_MSG_DELSETELEM` without elements flushes a set, and
//! `NFT_MSG_NEWSETELEM` adds keys, all inside one `NFNL_MSG_BATCH_BEGIN`/`END` transaction,
//! every message acknowledged.

use std::io::{Read, Write};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const NETLINK_NETFILTER: i32 = 12;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
/// Elements per message, to stay far below a page-sized netlink message.
const PER_MESSAGE: usize = 64;

/// The nftables family a table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Ip,
    Bridge,
    Netdev,
}

impl Family {
    fn code(self) -> u8 {
        match self {
            Family::Inet => 1,
            Family::Ip => 2,
            Family::Netdev => 5,
            Family::Bridge => 7,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
        }
    }
}

/// What a set must hold after the change: every key, as the kernel stores it (a concatenation
/// is its fields, each padded to 4 bytes; `ipv4_addr . ipv4_addr` is 8 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetContent {
    pub family: Family,
    pub table: String,
    pub set: String,
    pub keys: Vec<Vec<u8>>,
}

impl SetContent {
    fn name(&self) -> String {
        format!("{} {} {}", self.family.as_str(), self.table, self.set)
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(align(buf.len()), 0);
}

fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    pad(buf);
}

fn attr_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut z = s.as_bytes().to_vec();
    z.push(0);
    attr(buf, ty, &z);
}

fn nest(buf: &mut Vec<u8>, ty: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    body(buf);
    let len = (buf.len() - at) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    buf[at + 2..at + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

/// One netlink message: header, `nfgenmsg`, attributes.
fn message(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]); // length, patched below
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    buf.push(family);
    buf.push(0); // NFNETLINK_V0
    buf.extend_from_slice(&res_id.to_be_bytes());
    body(buf);
    pad(buf);
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
}

/// The batch that leaves each set holding exactly its `keys`, and, per acknowledged message
/// (by sequence number from `seq`), the set it is about.
pub fn batch(contents: &[SetContent], seq: u32) -> (Vec<u8>, Vec<String>) {
    let mut buf = Vec::new();
    let mut acked = Vec::new();
    let mut s = seq;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        s,
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    s += 1;
    for c in contents {
        let ty = |m: u16| (NFNL_SUBSYS_NFTABLES << 8) | m;
        message(
            &mut buf,
            ty(NFT_MSG_DELSETELEM),
            NLM_F_REQUEST | NLM_F_ACK,
            s,
            c.family.code(),
            0,
            |b| {
                attr_str(b, NFTA_SET_ELEM_LIST_TABLE, &c.table);
                attr_str(b, NFTA_SET_ELEM_LIST_SET, &c.set);
            },
        );
        acked.push(format!("flush set {}", c.name()));
        s += 1;
        for chunk in c.keys.chunks(PER_MESSAGE) {
            message(
                &mut buf,
                ty(NFT_MSG_NEWSETELEM),
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                s,
                c.family.code(),
                0,
                |b| {
                    attr_str(b, NFTA_SET_ELEM_LIST_TABLE, &c.table);
                    attr_str(b, NFTA_SET_ELEM_LIST_SET, &c.set);
                    nest(b, NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
                        for key in chunk {
                            nest(b, NFTA_LIST_ELEM, |b| {
                                nest(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, key));
                            });
                        }
                    });
                },
            );
            acked.push(format!("add element {}", c.name()));
            s += 1;
        }
    }
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        s,
        0,
        NFNL_SUBSYS_NFTABLES,
        |_| {},
    );
    (buf, acked)
}

/// A netfilter netlink socket, in the namespace of the thread that opens it.
pub struct SetSocket {
    sock: Socket,
    seq: u32,
}

impl SetSocket {
    pub fn open() -> std::io::Result<SetSocket> {
        let sock = Socket::new(
            Domain::from(nix::libc::AF_NETLINK),
            Type::RAW,
            Some(Protocol::from(NETLINK_NETFILTER)),
        )?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(SetSocket { sock, seq: 1 })
    }

    /// Make each set hold exactly its keys, in one transaction: all of it or none of it.
    pub fn replace(&mut self, contents: &[SetContent]) -> Result<(), String> {
        let (buf, acked) = batch(contents, self.seq);
        let first = self.seq + 1;
        self.seq = self.seq.wrapping_add(acked.len() as u32 + 2);
        (&self.sock)
            .write_all(&buf)
            .map_err(|e| format!("netlink send: {e}"))?;
        let mut answered = 0;
        let mut failure: Option<String> = None;
        let mut rx = vec![0u8; 64 * 1024];
        while answered < acked.len() {
            let n = (&self.sock).read(&mut rx).map_err(|e| {
                format!(
                    "netlink receive ({answered} of {} answered): {e}",
                    acked.len()
                )
            })?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(rx[at..at + 4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes(rx[at + 4..at + 6].try_into().expect("2 bytes"));
                if len < 16 || at + len > n {
                    break;
                }
                if ty == NLMSG_ERROR && len >= 20 {
                    let errno = i32::from_ne_bytes(rx[at + 16..at + 20].try_into().expect("4"));
                    // The error message quotes the header of the message it answers.
                    let seq = if len >= 36 {
                        u32::from_ne_bytes(rx[at + 28..at + 32].try_into().expect("4"))
                    } else {
                        0
                    };
                    answered += 1;
                    if errno != 0 && failure.is_none() {
                        let what = seq
                            .checked_sub(first)
                            .and_then(|i| acked.get(i as usize))
                            .cloned()
                            .unwrap_or_else(|| "a set change".into());
                        failure = Some(format!(
                            "{what}: {}",
                            std::io::Error::from_raw_os_error(-errno)
                        ));
                    }
                }
                at += align(len);
            }
        }
        match failure {
            None => Ok(()),
            Some(f) => Err(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_flushes_then_adds_and_nests_each_key() {
        let c = SetContent {
            family: Family::Bridge,
            table: "faultline".into(),
            set: "cut".into(),
            keys: vec![vec![10, 0, 0, 1, 10, 0, 0, 2]],
        };
        let (buf, acked) = batch(&[c], 7);
        assert_eq!(
            acked,
            vec![
                "flush set bridge faultline cut",
                "add element bridge faultline cut"
            ]
        );
        // Walk the messages: begin, delsetelem, newsetelem, end; lengths add up, 4-aligned.
        let mut at = 0;
        let mut types = Vec::new();
        let mut seqs = Vec::new();
        while at < buf.len() {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            types.push(u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap()));
            seqs.push(u32::from_ne_bytes(buf[at + 8..at + 12].try_into().unwrap()));
            at += len;
        }
        assert_eq!(at, buf.len());
        assert_eq!(types, vec![0x10, 0x0a0e, 0x0a0c, 0x11]);
        assert_eq!(seqs, vec![7, 8, 9, 10]);
        // The key's bytes are in the message, inside DATA_VALUE (len 12, type 1).
        let key = [12u8, 0, 1, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        assert!(buf.windows(key.len()).any(|w| w == key));
        // An empty set: only the flush.
        let (_, acked) = batch(
            &[SetContent {
                family: Family::Netdev,
                table: "t".into(),
                set: "s".into(),
                keys: vec![],
            }],
            1,
        );
        assert_eq!(acked, vec!["flush set netdev t s"]);
    }
}
