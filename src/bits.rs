//! Bit packing of a small state into a fixed number of bits: the compact form in which the
//! `ratelimit` type keeps a state in the key's value word itself instead of a heap block (see
//! `datatype::value`). Pure code; each kind packs its own state ([`crate::algo::Kind::pack`]).
//!
//! A packed state is a sequence of fields, low bits first: unsigned integers of a width the rule
//! fixes ([`Packer::uint`], [`Packer::count`]), then optionally one **anchor**
//! ([`Packer::anchor`]), the last field, which takes every bit left. An anchor is a large value —
//! a timestamp, a window index, a scaled `tat` — split in two: its low bits go into the packed
//! bits, its high bits ([`Packed::high`]) are kept once for every key with the same rule and the
//! same high bits (the rule table), so a 51-bit timestamp costs a key only the bits that differ
//! between keys alive at the same time. The kind says how many low bits the anchor needs at least
//! (`min_bits`): enough that keys alive together share at most two high parts.
//!
//! Packing fails (returns `false`) when a value does not fit its field: the state then stays on
//! the heap, whole. Unpacking reads the same fields in the same order under the same rule, so
//! `unpack(pack(s)) == s` for every state that packs.
//!
//! ```
//! use redis_ratelimit::bits::{Packer, Unpacker};
//! let mut p = Packer::new(40);
//! assert!(p.count(7, 100)); // 7 bits: 0..=100
//! assert!(p.anchor(1_700_000_000_123_456, 20)); // 33 bits left ≥ 20
//! let packed = p.finish();
//! let mut u = Unpacker::new(packed.bits, 40, packed.high);
//! assert_eq!(u.count(100), Some(7));
//! assert_eq!(u.anchor(), Some(1_700_000_000_123_456));
//! ```

/// The most bits a packed state can have.
pub const MAX_BITS: u32 = 128;

/// The number of bits needed to write `max` (0 for 0).
#[inline]
pub fn bit_width(max: u128) -> u32 {
    MAX_BITS.saturating_sub(max.leading_zeros())
}

/// A packed state: its bits and the high part of its anchor (0 without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    /// The fields, low bits first; only the low `cap` bits are used.
    pub bits: u128,
    /// The anchor's high bits (`anchor >> low bits`), shared by keys with the same rule.
    pub high: u64,
}

/// Writes fields into at most `cap` bits.
#[derive(Clone, Debug)]
pub struct Packer {
    bits: u128,
    used: u32,
    cap: u32,
    high: u64,
    closed: bool,
}

impl Packer {
    /// An empty packer of `cap` bits (at most [`MAX_BITS`]).
    #[inline(always)]
    pub fn new(cap: u32) -> Packer {
        Packer {
            bits: 0,
            used: 0,
            cap: cap.min(MAX_BITS),
            high: 0,
            closed: false,
        }
    }

    /// Bits still free.
    #[inline(always)]
    pub fn left(&self) -> u32 {
        self.cap.saturating_sub(self.used)
    }

    /// Appends `v` in `width` bits; `false` when it does not fit them or the packer.
    #[inline(always)]
    pub fn uint(&mut self, v: u64, width: u32) -> bool {
        if self.closed || width > 64 || width > self.left() || width64(v) > width {
            self.closed = true;
            return false;
        }
        // A packer of at most 64 bits (the value word) shifts in 64 bits: u128 shifts by a
        // variable amount cost several instructions each, and this is the hot path.
        self.bits |= if self.cap <= 64 {
            u128::from(v.checked_shl(self.used).unwrap_or(0))
        } else {
            u128::from(v).checked_shl(self.used).unwrap_or(0)
        };
        self.used = self.used.saturating_add(width);
        true
    }

    /// Appends a count from `0..=max`, in as many bits as `max` needs.
    #[inline(always)]
    pub fn count(&mut self, v: u64, max: u64) -> bool {
        v <= max && self.uint(v, width64(max))
    }

    /// Appends the anchor, the last field: its low bits fill every bit left (at least
    /// `min_bits`), its high bits must fit a `u64`.
    #[inline(always)]
    pub fn anchor(&mut self, v: u128, min_bits: u32) -> bool {
        let rest = self.left();
        if self.closed || rest < min_bits.max(1) {
            self.closed = true;
            return false;
        }
        let (low, high) = match u64::try_from(v) {
            // Most anchors are times: 64-bit shifts.
            Ok(v) if rest < 64 => {
                let low = v & mask64(rest);
                (u128::from(low), v.checked_shr(rest).unwrap_or(0))
            }
            _ => {
                let (low, high) = split(v, rest);
                let Ok(high) = u64::try_from(high) else {
                    self.closed = true;
                    return false;
                };
                (low, high)
            }
        };
        self.bits |= if self.cap <= 64 {
            u128::from((low as u64).checked_shl(self.used).unwrap_or(0))
        } else {
            low.checked_shl(self.used).unwrap_or(0)
        };
        self.used = self.cap;
        self.high = high;
        self.closed = true;
        true
    }

    /// The packed bits and anchor.
    #[inline(always)]
    pub fn finish(self) -> Packed {
        Packed {
            bits: self.bits,
            high: self.high,
        }
    }
}

/// `(v mod 2^rest, v >> rest)`.
#[inline(always)]
fn split(v: u128, rest: u32) -> (u128, u128) {
    if rest >= MAX_BITS {
        return (v, 0);
    }
    let mask = (1u128 << rest).wrapping_sub(1);
    (v & mask, v >> rest)
}

/// Reads what a [`Packer`] of the same `cap` wrote, field by field in the same order.
#[derive(Clone, Debug)]
pub struct Unpacker {
    bits: u128,
    used: u32,
    cap: u32,
    high: u64,
}

impl Unpacker {
    /// Reads `bits` (of a packer of `cap` bits) whose anchor's high part is `high`.
    #[inline(always)]
    pub fn new(bits: u128, cap: u32, high: u64) -> Unpacker {
        Unpacker {
            bits,
            used: 0,
            cap: cap.min(MAX_BITS),
            high,
        }
    }

    /// Bits not read yet.
    #[inline(always)]
    pub fn left(&self) -> u32 {
        self.cap.saturating_sub(self.used)
    }

    /// The next field of `width` bits.
    #[inline(always)]
    pub fn uint(&mut self, width: u32) -> Option<u64> {
        let end = self.used.checked_add(width)?;
        if width > 64 || end > self.cap {
            return None;
        }
        // used < cap ≤ 128 here unless width is 0 (then the mask is 0 anyway); in 64 bits when
        // the packer had at most 64.
        let v = if self.cap <= 64 {
            (self.bits as u64).wrapping_shr(self.used)
        } else {
            self.bits.wrapping_shr(self.used) as u64
        } & mask64(width);
        self.used = end;
        Some(v)
    }

    /// The next count from `0..=max`.
    #[inline(always)]
    pub fn count(&mut self, max: u64) -> Option<u64> {
        self.uint(width64(max))
    }

    /// The anchor: the bits left, below the high part.
    #[inline(always)]
    pub fn anchor(&mut self) -> Option<u128> {
        let rest = self.cap.saturating_sub(self.used);
        if self.cap <= 64 {
            let low = (self.bits as u64).checked_shr(self.used).unwrap_or(0) & mask64(rest);
            self.used = self.cap;
            // A high part that fits the 64 bits left of the low ones: all in 64 bits.
            if rest < 64 && self.high <= u64::MAX >> rest {
                return Some(u128::from(self.high << rest | low));
            }
            return Some(u128::from(self.high).wrapping_shl(rest) | u128::from(low));
        }
        let low = self.bits.checked_shr(self.used).unwrap_or(0) & mask128(rest);
        self.used = self.cap;
        let high = u128::from(self.high);
        if rest <= 64 {
            // high < 2^64, so high << rest < 2^128: nothing is lost.
            return Some(high.wrapping_shl(rest) | low);
        }
        if rest >= MAX_BITS {
            return (high == 0).then_some(low);
        }
        let shifted = high.wrapping_shl(rest);
        // The high part must survive the shift whole.
        (shifted.wrapping_shr(rest) == high).then_some(shifted | low)
    }
}

/// The number of bits needed to write `max` (0 for 0).
#[inline(always)]
fn width64(max: u64) -> u32 {
    64u32.saturating_sub(max.leading_zeros())
}

/// The low `width` bits set (`width` ≤ 64).
#[inline(always)]
fn mask64(width: u32) -> u64 {
    u64::MAX
        .checked_shr(64u32.saturating_sub(width))
        .unwrap_or(0)
}

/// The low `width` bits set (`width` ≤ 128).
#[inline(always)]
fn mask128(width: u32) -> u128 {
    u128::MAX
        .checked_shr(128u32.saturating_sub(width))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut p = Packer::new(47);
        assert!(p.uint(5, 3));
        assert!(p.count(0, 0)); // zero bits
        assert!(p.count(1000, 1000));
        assert_eq!(p.left(), 47 - 3 - 10);
        assert!(p.anchor(u128::from(u64::MAX) << 20 | 12345, 4));
        let packed = p.finish();
        assert!(packed.bits < 1 << 47);
        let mut u = Unpacker::new(packed.bits, 47, packed.high);
        assert_eq!(u.uint(3), Some(5));
        assert_eq!(u.count(0), Some(0));
        assert_eq!(u.count(1000), Some(1000));
        assert_eq!(u.anchor(), Some(u128::from(u64::MAX) << 20 | 12345));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(!Packer::new(47).uint(8, 3));
        assert!(!Packer::new(47).count(101, 100));
        assert!(!Packer::new(2).uint(1, 3));
        // Too few bits left for the anchor, and nothing after it.
        let mut p = Packer::new(47);
        assert!(p.uint(0, 40));
        assert!(!p.anchor(1, 8));
        let mut p = Packer::new(47);
        assert!(p.anchor(1, 8));
        assert!(!p.uint(0, 0));
        // An anchor whose high part needs more than 64 bits.
        assert!(!Packer::new(47).anchor(u128::MAX, 1));
        assert!(Packer::new(64).anchor(u128::MAX, 1));
        // A failed field closes the packer.
        let mut p = Packer::new(47);
        assert!(!p.uint(9, 3));
        assert!(!p.uint(0, 1));
    }

    #[test]
    fn anchors_split_at_the_bits_left() {
        for cap in [1, 17, 47, 64, 100, 128] {
            for v in [
                0u128,
                1,
                (1 << 47) - 1,
                1 << 47,
                u128::from(u64::MAX),
                1 << 100,
            ] {
                let mut p = Packer::new(cap);
                if !p.anchor(v, 1) {
                    assert!(cap < 64 && v >> cap > u128::from(u64::MAX), "{cap} {v}");
                    continue;
                }
                let packed = p.finish();
                assert!(cap == 128 || packed.bits >> cap == 0);
                assert_eq!(
                    Unpacker::new(packed.bits, cap, packed.high).anchor(),
                    Some(v)
                );
            }
        }
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(100), 7);
        assert_eq!(bit_width(u128::MAX), 128);
    }
}
