//! Sequence numbers: arithmetic and comparison modulo 2^32 (RFC 9293 section 3.4).
//!
//! RFC 9293 3.4: "It is essential to remember that the actual sequence number space is finite, though large
//! ... all arithmetic dealing with sequence numbers must be performed modulo 2**32." Comparing two raw `u32`
//! sequence numbers with `<` is therefore a bug anywhere in this project; [`SeqNum`] makes it impossible.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

/// A TCP sequence (or acknowledgment) number.
///
/// Ordering is the modular one: `a < b` when `b` lies less than 2^31 ahead of `a`. Two numbers exactly 2^31
/// apart are unordered (RFC 1982 leaves that case undefined), so `SeqNum` is `PartialOrd` and not `Ord`:
/// `partial_cmp` returns `None` there and every comparison operator answers `false`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// The raw 32-bit value, as carried on the wire.
    pub const fn value(self) -> u32 {
        self.0
    }

    /// Signed distance from `other` to `self` (`self - other`), in the range `-2^31 ..= 2^31 - 1`.
    pub const fn distance_from(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// Whether `self` lies in the half-open window `[start, start + len)`, the test RFC 9293 3.4 applies to
    /// segment acceptability. A zero-length window contains nothing.
    pub const fn in_window(self, start: SeqNum, len: u32) -> bool {
        self.0.wrapping_sub(start.0) < len
    }

    /// Whether `lo <= self <= hi` in sequence space (both ends inclusive).
    pub fn in_range_inclusive(self, lo: SeqNum, hi: SeqNum) -> bool {
        lo <= self && self <= hi
    }

    /// The later of two sequence numbers (`self` if they are unordered).
    pub fn max_seq(self, other: SeqNum) -> SeqNum {
        if other > self {
            other
        } else {
            self
        }
    }

    /// The earlier of two sequence numbers (`self` if they are unordered).
    pub fn min_seq(self, other: SeqNum) -> SeqNum {
        if other < self {
            other
        } else {
            self
        }
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        match self.0.wrapping_sub(other.0) {
            0 => Some(Ordering::Equal),
            0x8000_0000 => None,
            d if d < 0x8000_0000 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: usize) -> SeqNum {
        // Truncation is the modular arithmetic we want: adding 2^32 is adding 0.
        SeqNum(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, rhs: u32) {
        *self = *self + rhs;
    }
}

impl AddAssign<usize> for SeqNum {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl SubAssign<u32> for SeqNum {
    fn sub_assign(&mut self, rhs: u32) {
        *self = *self - rhs;
    }
}

/// `a - b` is the signed distance from `b` to `a`.
impl Sub<SeqNum> for SeqNum {
    type Output = i32;
    fn sub(self, rhs: SeqNum) -> i32 {
        self.distance_from(rhs)
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNum({})", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u32> for SeqNum {
    fn from(v: u32) -> SeqNum {
        SeqNum(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordering_across_the_wrap() {
        let before = SeqNum(u32::MAX - 1);
        let after = SeqNum(3);
        assert!(before < after, "0xfffffffe precedes 3 once the space wraps");
        assert!(after > before);
        assert_eq!(after - before, 5);
        assert_eq!(before - after, -5);
        assert_eq!(before + 5u32, after);
    }

    #[test]
    // The point of the test is that each operator on its own answers false for unordered numbers.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn half_space_apart_is_unordered() {
        let a = SeqNum(0);
        let b = SeqNum(0x8000_0000);
        assert_eq!(a.partial_cmp(&b), None);
        assert!(!(a < b) && !(a > b) && !(a <= b) && !(a >= b) && a != b);
    }

    #[test]
    fn window_membership() {
        let start = SeqNum(u32::MAX - 9);
        assert!(start.in_window(start, 20));
        assert!(SeqNum(9).in_window(start, 20), "last byte of a window that wraps");
        assert!(!SeqNum(10).in_window(start, 20), "one past the right edge");
        assert!(!(start - 1u32).in_window(start, 20), "one before the left edge");
        assert!(!start.in_window(start, 0), "a zero window holds nothing");
    }

    #[test]
    fn min_max() {
        let a = SeqNum(u32::MAX);
        let b = SeqNum(1);
        assert_eq!(a.max_seq(b), b);
        assert_eq!(a.min_seq(b), a);
    }

    proptest! {
        #[test]
        fn order_is_antisymmetric_and_matches_distance(a: u32, b: u32) {
            let (a, b) = (SeqNum(a), SeqNum(b));
            let ab = a.partial_cmp(&b);
            let ba = b.partial_cmp(&a);
            prop_assert_eq!(ab.map(Ordering::reverse), ba);
            match ab {
                Some(Ordering::Less) => prop_assert!((b - a) > 0),
                Some(Ordering::Greater) => prop_assert!((a - b) > 0),
                Some(Ordering::Equal) => prop_assert_eq!(a.0, b.0),
                None => prop_assert_eq!(a.0 ^ b.0, 0x8000_0000),
            }
        }

        #[test]
        fn add_then_distance_is_identity(a: u32, n in 0u32..0x8000_0000) {
            let a = SeqNum(a);
            prop_assert_eq!((a + n) - a, n as i32);
            prop_assert!(n == 0 || a + n > a);
        }

        #[test]
        fn in_window_agrees_with_order(a: u32, start: u32, len in 0u32..0x8000_0000) {
            let (a, start) = (SeqNum(a), SeqNum(start));
            let by_order = len > 0 && start <= a && a < start + len;
            prop_assert_eq!(a.in_window(start, len), by_order);
        }
    }
}
