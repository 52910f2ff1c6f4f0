//! The out-of-order queue: segments beyond RCV.NXT held until the gap before them fills (RFC 9293 3.10.7.4,
//! seventh step: "segments with higher beginning sequence numbers SHOULD be held for later processing"), and the
//! SACK blocks that describe them (RFC 2018).

use crate::seq::SeqNum;
use std::collections::VecDeque;

/// Bytes received beyond RCV.NXT, as non-overlapping blocks, and an out-of-order FIN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reassembly {
    /// (start, bytes, when last touched), unordered, non-overlapping, each non-empty and beyond RCV.NXT.
    blocks: Vec<(SeqNum, Vec<u8>, u64)>,
    /// Sequence number of a FIN received out of order: nothing at or beyond it belongs to the stream.
    fin: Option<SeqNum>,
    /// Counts insertions: a block's stamp orders the SACK blocks, the most recently touched first (RFC 2018
    /// section 4: the first block holds the segment just received, then "the most recently reported" ones).
    clock: u64,
}

impl Reassembly {
    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.blocks.iter().map(|(_, d, _)| d.len()).sum()
    }

    /// The held blocks, unordered.
    pub(crate) fn blocks(&self) -> impl Iterator<Item = (SeqNum, &[u8])> {
        self.blocks.iter().map(|(s, d, _)| (*s, d.as_slice()))
    }

    /// An out-of-order FIN's sequence number, once seen.
    pub(crate) fn fin(&self) -> Option<SeqNum> {
        self.fin
    }

    /// Holds `data` starting at `start` (beyond `rcv_nxt`). Bytes already held win; bytes at or past a FIN
    /// already seen are dropped; touching blocks merge.
    pub(crate) fn insert(&mut self, rcv_nxt: SeqNum, start: SeqNum, data: &[u8]) {
        let limit = self.fin.map_or(data.len(), |f| ((f - start).max(0) as usize).min(data.len()));
        if limit == 0 {
            return;
        }
        let data = &data[..limit];
        let base = rcv_nxt;
        let s = (start - base) as u32;
        let e = s + data.len() as u32;
        let mut pieces = vec![(s, e)];
        for (bs, bd, _) in &self.blocks {
            let b0 = (*bs - base) as u32;
            let b1 = b0 + bd.len() as u32;
            pieces = pieces
                .into_iter()
                .flat_map(|(p0, p1)| {
                    let mut v = Vec::new();
                    if p0 < b0.min(p1) {
                        v.push((p0, b0.min(p1)));
                    }
                    if p1 > b1.max(p0) {
                        v.push((b1.max(p0), p1));
                    }
                    v
                })
                .collect();
        }
        self.clock += 1;
        for (p0, p1) in pieces {
            let bytes = data[(p0 - s) as usize..(p1 - s) as usize].to_vec();
            self.blocks.push((base + p0, bytes, self.clock));
        }
        self.blocks.sort_by_key(|(st, _, _)| (*st - base) as u32);
        let mut merged: Vec<(SeqNum, Vec<u8>, u64)> = Vec::with_capacity(self.blocks.len());
        for (st, d, t) in self.blocks.drain(..) {
            match merged.last_mut() {
                Some((ls, ld, lt)) if *ls + ld.len() == st => {
                    ld.extend_from_slice(&d);
                    *lt = (*lt).max(t);
                }
                _ => merged.push((st, d, t)),
            }
        }
        self.blocks = merged;
        // A segment wholly inside held bytes touches the block that holds it.
        let clock = self.clock;
        if let Some(b) = self.blocks.iter_mut().find(|(st, d, _)| *st <= start && start < *st + d.len()) {
            b.2 = clock;
        }
    }

    /// Moves the blocks that now continue the stream at `rcv_nxt` into `out`; returns the new RCV.NXT.
    pub(crate) fn pull(&mut self, mut rcv_nxt: SeqNum, out: &mut VecDeque<u8>) -> SeqNum {
        while let Some(i) = self.blocks.iter().position(|(st, d, _)| *st <= rcv_nxt && rcv_nxt <= *st + d.len()) {
            let (st, d, _) = self.blocks.swap_remove(i);
            let skip = (rcv_nxt - st) as usize;
            out.extend(&d[skip..]);
            rcv_nxt += d.len() - skip;
        }
        // What the loop left either lies wholly before RCV.NXT (the in-order data just taken covered it: it goes)
        // or starts beyond it (a block that reached RCV.NXT was pulled), so nothing is left to trim.
        self.blocks.retain(|(st, d, _)| *st + d.len() > rcv_nxt);
        debug_assert!(self.blocks.iter().all(|(st, _, _)| *st > rcv_nxt));
        rcv_nxt
    }

    /// Records a FIN at `fin_seq`, beyond RCV.NXT: held bytes at or past it are cut off.
    pub(crate) fn set_fin(&mut self, fin_seq: SeqNum) {
        self.fin = Some(fin_seq);
        for (st, d, _) in &mut self.blocks {
            d.truncate(((fin_seq - *st).max(0) as usize).min(d.len()));
        }
        self.blocks.retain(|(_, d, _)| !d.is_empty());
    }

    /// Forgets everything: the FIN was processed, nothing follows it.
    pub(crate) fn clear(&mut self) {
        *self = Reassembly::default();
    }

    /// Up to `max` SACK blocks, the most recently touched first (RFC 2018 section 4; Linux's tcp_sack_new_ofo_skb
    /// moves the touched block to the front the same way).
    pub(crate) fn sack_blocks(&self, max: usize) -> Vec<(SeqNum, SeqNum)> {
        let mut blocks: Vec<(u64, SeqNum, SeqNum)> =
            self.blocks.iter().map(|(s, d, t)| (*t, *s, *s + d.len())).collect();
        blocks.sort_by_key(|&(t, _, _)| core::cmp::Reverse(t));
        blocks.into_iter().take(max).map(|(_, s, e)| (s, e)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NXT: SeqNum = SeqNum(1000);

    #[test]
    fn held_bytes_fill_in_when_the_gap_closes() {
        let mut r = Reassembly::default();
        r.insert(NXT, SeqNum(1010), b"klmno");
        r.insert(NXT, SeqNum(1005), b"fghij");
        assert_eq!(r.blocks().collect::<Vec<_>>(), [(SeqNum(1005), &b"fghijklmno"[..])], "touching blocks merge");
        let mut out = VecDeque::from(b"abcde".to_vec());
        assert_eq!(r.pull(NXT + 5u32, &mut out), NXT + 15u32);
        assert_eq!(out, b"abcdefghijklmno");
        assert!(r.is_empty());
    }

    #[test]
    fn bytes_already_held_win_over_a_retransmission_that_overlaps_them() {
        let mut r = Reassembly::default();
        r.insert(NXT, SeqNum(1004), b"EF");
        r.insert(NXT, SeqNum(1002), b"cdefgh");
        let mut out = VecDeque::from(b"ab".to_vec());
        r.pull(NXT + 2u32, &mut out);
        assert_eq!(out, b"abcdEFgh");
    }

    #[test]
    fn a_pull_trims_a_block_that_starts_before_the_new_rcv_nxt() {
        let mut r = Reassembly::default();
        r.insert(NXT, SeqNum(1010), b"0123456789");
        let mut out = VecDeque::new();
        assert_eq!(r.pull(SeqNum(1012), &mut out), SeqNum(1020), "the block continues the stream at 1012");
        assert_eq!(out, b"23456789");
    }

    #[test]
    fn nothing_at_or_past_an_out_of_order_fin_is_held() {
        let mut r = Reassembly::default();
        r.insert(NXT, SeqNum(1010), b"0123456789");
        r.set_fin(SeqNum(1015));
        assert_eq!(r.bytes(), 5, "held bytes past the FIN are cut");
        r.insert(NXT, SeqNum(1015), b"late");
        assert_eq!(r.bytes(), 5, "bytes at the FIN are not stream data");
        assert_eq!(r.fin(), Some(SeqNum(1015)));
        r.clear();
        assert_eq!((r.is_empty(), r.fin()), (true, None));
    }

    #[test]
    fn sack_reports_the_blocks_most_recently_touched_first() {
        let mut r = Reassembly::default();
        r.insert(NXT, SeqNum(1100), b"x");
        r.insert(NXT, SeqNum(1300), b"y");
        r.insert(NXT, SeqNum(1200), b"z");
        let blocks = r.sack_blocks(4);
        assert_eq!(blocks, [(SeqNum(1200), SeqNum(1201)), (SeqNum(1300), SeqNum(1301)), (SeqNum(1100), SeqNum(1101))]);
        assert_eq!(r.sack_blocks(2).len(), 2, "bounded by the option space");
        r.insert(NXT, SeqNum(1101), b"w");
        assert_eq!(r.sack_blocks(1), [(SeqNum(1100), SeqNum(1102))], "a merged block takes the newest stamp");
    }
}
