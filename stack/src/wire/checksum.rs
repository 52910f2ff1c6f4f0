//! The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum.
//!
//! [`sum`] is the fast path: it adds eight bytes per step into a 64-bit accumulator and folds once at the end.
//! This works because the one's complement sum is independent of byte order (RFC 1071 section 2(B)): words
//! are added in the machine's native order and the folded result is swapped into network order once.
//! [`naive_sum`] is the textbook loop over big-endian 16-bit words; property tests hold the two equal.

use core::net::{Ipv4Addr, Ipv6Addr};

/// A partial one's complement sum, not yet complemented. Sums of consecutive even-length pieces can be
/// combined with [`combine`]; complement the total with [`finish`].
pub type PartialSum = u32;

/// One's complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with zero), folded
/// to 16 bits. Processes 32 bytes per loop iteration, 8 per addition.
#[inline]
pub fn sum(data: &[u8]) -> PartialSum {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        // Each 8-byte load is split into two 32-bit halves so that the 64-bit accumulator cannot overflow:
        // it would take 2^31 such additions.
        for i in 0..4 {
            let w = u64::from_ne_bytes([
                c[8 * i],
                c[8 * i + 1],
                c[8 * i + 2],
                c[8 * i + 3],
                c[8 * i + 4],
                c[8 * i + 5],
                c[8 * i + 6],
                c[8 * i + 7],
            ]);
            acc += (w & 0xffff_ffff) + (w >> 32);
        }
    }
    let mut rest = chunks.remainder();
    while rest.len() >= 4 {
        acc += u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        acc += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [last] = rest {
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    let native = fold(acc);
    // The sum of native-order words is the byte-swap of the sum of big-endian words (RFC 1071 2(B)).
    u32::from(u16::from_be_bytes(native.to_ne_bytes()))
}

/// The reference: big-endian 16-bit words, one at a time. Used by tests to check [`sum`].
pub fn naive_sum(data: &[u8]) -> PartialSum {
    let mut acc: u64 = 0;
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map_or(0, u64::from);
        acc += hi | lo;
    }
    u32::from(fold(acc))
}

#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Adds partial sums of consecutive pieces. Every piece but the last must have even length.
#[inline]
pub fn combine(parts: &[PartialSum]) -> PartialSum {
    u32::from(fold(parts.iter().map(|&p| u64::from(p)).sum()))
}

/// The checksum field value for a total partial sum: its one's complement.
#[inline]
pub fn finish(total: PartialSum) -> u16 {
    !fold(u64::from(total))
}

/// Partial sum of the IPv4 pseudo-header (RFC 9293 section 3.1): source, destination, zero, protocol,
/// upper-layer length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> PartialSum {
    let mut b = [0u8; 12];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b[9] = protocol;
    // The IPv4 pseudo-header carries a 16-bit length; an IPv4 datagram cannot be longer.
    b[10..12].copy_from_slice(&(length as u16).to_be_bytes());
    sum(&b)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination, 32-bit upper-layer
/// length, three zero bytes, next header.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> PartialSum {
    let mut b = [0u8; 40];
    b[0..16].copy_from_slice(&src.octets());
    b[16..32].copy_from_slice(&dst.octets());
    b[32..36].copy_from_slice(&length.to_be_bytes());
    b[39] = next_header;
    sum(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 works this example by hand: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(naive_sum(&data), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn ipv4_header_checksum_of_a_known_header() {
        // A well-known example header (Wikipedia's IPv4 checksum example): checksum field b861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&hdr)), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(finish(sum(&hdr)), 0, "a header with a correct checksum sums to all ones");
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    proptest! {
        #[test]
        fn fast_equals_naive(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(sum(&data), naive_sum(&data));
        }

        #[test]
        fn combining_even_pieces_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..300,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(combine(&[sum(a), sum(b)]), sum(&data));
        }
    }
}
