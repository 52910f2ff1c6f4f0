//! The served stack on an Ethernet-like link (`tcpdrill serve --tap`): IPv4 in Ethernet II frames, and ARP
//! (RFC 826) for the stack's one address, so that whatever is on the TAP device's other end (the kernel, or a
//! harness impersonating a peer there: the raw backend) finds the stack as it finds any host on a LAN.
//!
//! The stack answers requests for its address and learns the sender's; it learns the source of every IPv4
//! frame to it too. A datagram to an address not learned yet waits (64 at most, the oldest dropped, none longer
//! than 3 s) while a request goes out, once per 100 ms at most.

use pnet_datalink::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::Packet;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The stack's MAC address: locally administered (RFC 7042 2.1), fixed, so that captures of two runs compare.
pub const STACK_MAC: MacAddr = MacAddr(0x02, 0x74, 0x64, 0x00, 0x00, 0x02);

/// Datagrams held for an address being resolved.
const PENDING: usize = 64;

/// How often a request for an unresolved address is sent again.
const ASK_AGAIN: Duration = Duration::from_millis(100);

/// How long a datagram waits for its address before it is dropped (Linux's neighbour entries give up after
/// about 3 s too): a stale SYN must not go out long after.
const GIVE_UP: Duration = Duration::from_secs(3);

/// The stack's end of the link: its ARP table and what waits on it.
#[derive(Debug)]
pub struct Ether {
    ip: Ipv4Addr,
    table: BTreeMap<Ipv4Addr, MacAddr>,
    pending: VecDeque<(Ipv4Addr, Vec<u8>, Instant)>,
    asked: BTreeMap<Ipv4Addr, Instant>,
}

/// What a frame from the link brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    /// An IPv4 datagram for the stack.
    pub datagram: Option<Vec<u8>>,
    /// Frames to send (an ARP reply, and what waited for the address the frame taught).
    pub send: Vec<Vec<u8>>,
}

impl Ether {
    /// The link end of a stack at `ip`.
    pub fn new(ip: Ipv4Addr) -> Ether {
        Ether { ip, table: BTreeMap::new(), pending: VecDeque::new(), asked: BTreeMap::new() }
    }

    /// A frame from the link.
    pub fn receive(&mut self, frame: &[u8]) -> Incoming {
        let nothing = Incoming::default();
        let Some(eth) = EthernetPacket::new(frame) else { return nothing };
        let to_us = eth.get_destination() == STACK_MAC || eth.get_destination() == MacAddr::broadcast();
        match eth.get_ethertype() {
            EtherTypes::Arp => {
                let Some(arp) = ArpPacket::new(eth.payload()) else { return nothing };
                let ethernet_ipv4 = arp.get_hardware_type() == ArpHardwareTypes::Ethernet
                    && arp.get_protocol_type() == EtherTypes::Ipv4
                    && arp.get_hw_addr_len() == 6
                    && arp.get_proto_addr_len() == 4;
                if !ethernet_ipv4 {
                    return nothing;
                }
                let (sender, mac) = (arp.get_sender_proto_addr(), arp.get_sender_hw_addr());
                let mut out = Vec::new();
                // RFC 826's merge: a sender already in the table is updated; a new one is added only by a
                // packet for us.
                let for_us = arp.get_target_proto_addr() == self.ip;
                if (for_us || self.table.contains_key(&sender)) && !sender.is_unspecified() {
                    out.extend(self.learn(sender, mac));
                }
                if for_us && arp.get_operation() == ArpOperations::Request {
                    out.insert(0, arp_frame(ArpOperations::Reply, (mac, sender), self.ip));
                }
                Incoming { datagram: None, send: out }
            }
            EtherTypes::Ipv4 if to_us => {
                let d = eth.payload();
                if d.len() < 20 || d[0] >> 4 != 4 || d[16..20] != self.ip.octets() {
                    return nothing;
                }
                let src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
                // Ethernet pads a short frame: the datagram is as long as its header says.
                let total = usize::from(u16::from_be_bytes([d[2], d[3]]));
                let datagram = d[..total.clamp(20, d.len())].to_vec();
                Incoming { datagram: Some(datagram), send: self.learn(src, eth.get_source()) }
            }
            _ => nothing,
        }
    }

    /// Records `ip` at `mac`: the frames of what waited for it.
    fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr) -> Vec<Vec<u8>> {
        self.table.insert(ip, mac);
        self.asked.remove(&ip);
        let (ready, rest): (VecDeque<_>, VecDeque<_>) = self.pending.drain(..).partition(|(to, ..)| *to == ip);
        self.pending = rest;
        let now = Instant::now();
        ready
            .into_iter()
            .filter(|(_, _, at)| now.duration_since(*at) < GIVE_UP)
            .map(|(_, d, _)| frame(mac, EtherTypes::Ipv4, &d))
            .collect()
    }

    /// The frames that carry the stack's `datagram` now: it, or an ARP request while it waits.
    pub fn send(&mut self, datagram: Vec<u8>, now: Instant) -> Vec<Vec<u8>> {
        if datagram.len() < 20 {
            return Vec::new();
        }
        let to = Ipv4Addr::new(datagram[16], datagram[17], datagram[18], datagram[19]);
        if let Some(mac) = self.table.get(&to) {
            return vec![frame(*mac, EtherTypes::Ipv4, &datagram)];
        }
        self.pending.retain(|(_, _, at)| now.duration_since(*at) < GIVE_UP);
        if self.pending.len() >= PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back((to, datagram, now));
        match self.asked.get(&to) {
            Some(t) if now.duration_since(*t) < ASK_AGAIN => Vec::new(),
            _ => {
                self.asked.insert(to, now);
                vec![arp_frame(ArpOperations::Request, (MacAddr::zero(), to), self.ip)]
            }
        }
    }
}

/// An Ethernet II frame from the stack to `to`.
fn frame(to: MacAddr, ethertype: pnet_packet::ethernet::EtherType, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + payload.len()];
    let mut eth = MutableEthernetPacket::new(&mut buf).expect("the buffer holds the header");
    eth.set_destination(to);
    eth.set_source(STACK_MAC);
    eth.set_ethertype(ethertype);
    eth.set_payload(payload);
    buf
}

/// An ARP request for `target`'s address (broadcast) or a reply to it, from the stack at `ip`.
fn arp_frame(op: ArpOperation, target: (MacAddr, Ipv4Addr), ip: Ipv4Addr) -> Vec<u8> {
    let mut arp = [0u8; 28];
    {
        let mut p = MutableArpPacket::new(&mut arp).expect("28 bytes hold ARP");
        p.set_hardware_type(ArpHardwareTypes::Ethernet);
        p.set_protocol_type(EtherTypes::Ipv4);
        p.set_hw_addr_len(6);
        p.set_proto_addr_len(4);
        p.set_operation(op);
        p.set_sender_hw_addr(STACK_MAC);
        p.set_sender_proto_addr(ip);
        p.set_target_hw_addr(target.0);
        p.set_target_proto_addr(target.1);
    }
    let to = if op == ArpOperations::Request { MacAddr::broadcast() } else { target.0 };
    frame(to, EtherTypes::Arp, &arp)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PEER_MAC: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);

    fn request_from_peer(target: Ipv4Addr) -> Vec<u8> {
        let mut arp = [0u8; 28];
        let mut p = MutableArpPacket::new(&mut arp).unwrap();
        p.set_hardware_type(ArpHardwareTypes::Ethernet);
        p.set_protocol_type(EtherTypes::Ipv4);
        p.set_hw_addr_len(6);
        p.set_proto_addr_len(4);
        p.set_operation(ArpOperations::Request);
        p.set_sender_hw_addr(PEER_MAC);
        p.set_sender_proto_addr(PEER);
        p.set_target_proto_addr(target);
        let mut buf = vec![0u8; 42];
        let mut eth = MutableEthernetPacket::new(&mut buf).unwrap();
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(PEER_MAC);
        eth.set_ethertype(EtherTypes::Arp);
        eth.set_payload(&arp);
        buf
    }

    fn datagram(to: Ipv4Addr) -> Vec<u8> {
        let mut d = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 2];
        d.extend(to.octets());
        d
    }

    #[test]
    fn answers_a_request_for_its_address_only_and_learns_the_asker() {
        let mut e = Ether::new(STACK);
        assert_eq!(e.receive(&request_from_peer(Ipv4Addr::new(192, 0, 2, 9))), Incoming::default());
        let out = e.receive(&request_from_peer(STACK)).send;
        let eth = EthernetPacket::new(&out[0]).unwrap();
        assert_eq!(eth.get_destination(), PEER_MAC);
        let arp = ArpPacket::new(eth.payload()).unwrap();
        assert_eq!(arp.get_operation(), ArpOperations::Reply);
        assert_eq!((arp.get_sender_hw_addr(), arp.get_sender_proto_addr()), (STACK_MAC, STACK));
        assert_eq!((arp.get_target_hw_addr(), arp.get_target_proto_addr()), (PEER_MAC, PEER));
        // Learned: a datagram to the asker goes at once, in a frame to its MAC.
        let f = e.send(datagram(PEER), Instant::now());
        assert_eq!(f.len(), 1);
        let eth = EthernetPacket::new(&f[0]).unwrap();
        assert_eq!((eth.get_destination(), eth.get_ethertype()), (PEER_MAC, EtherTypes::Ipv4));
        assert_eq!(eth.payload(), &datagram(PEER)[..]);
    }

    #[test]
    fn a_datagram_to_an_unknown_address_waits_for_the_answer_to_a_request() {
        let mut e = Ether::new(STACK);
        let t0 = Instant::now();
        let f = e.send(datagram(PEER), t0);
        let arp = ArpPacket::new(&f[0][14..]).unwrap();
        assert_eq!((arp.get_operation(), arp.get_target_proto_addr()), (ArpOperations::Request, PEER));
        // Asked once per 100 ms, however many datagrams wait.
        assert!(e.send(datagram(PEER), t0 + Duration::from_millis(10)).is_empty());
        assert_eq!(e.send(datagram(PEER), t0 + ASK_AGAIN).len(), 1);
        let out = e.receive(&request_from_peer(STACK)).send;
        // The reply, then the three datagrams that waited, in order.
        assert_eq!(out.len(), 4);
        assert!(out[1..].iter().all(|f| f[14..] == datagram(PEER)[..]));
    }

    #[test]
    fn takes_ipv4_to_its_address_without_the_padding() {
        let mut e = Ether::new(STACK);
        let mut d = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
        let want = d.clone();
        d.extend([0u8; 26]);
        let mut f = frame(STACK_MAC, EtherTypes::Ipv4, &d);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        assert_eq!(e.receive(&f), Incoming { datagram: Some(want), send: vec![] });
        let other = frame(MacAddr(2, 0, 0, 0, 0, 9), EtherTypes::Ipv4, &d);
        assert_eq!(e.receive(&other), Incoming::default());
    }
}
