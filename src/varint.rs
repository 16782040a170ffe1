//! LEB128 unsigned varints: 7 bits per byte, low bits first, high bit = "more follows".
//!
//! Used by the payload codec and by the moving window's in-memory log. Reading is strict: an
//! overlong encoding (a trailing `0x80 … 0x00`) or a value that does not fit is refused, so every
//! value has exactly one encoding and decoded payloads re-encode to the same bytes.
//!
//! ```
//! use redis_ratelimit::varint::{put_u64, Reader};
//! let mut out = Vec::new();
//! put_u64(&mut out, 300);
//! assert_eq!(out, [0xac, 0x02]);
//! let mut r = Reader::new(&out);
//! assert_eq!(r.u64(), Some(300));
//! assert!(r.is_empty());
//! assert_eq!(Reader::new(&[0x80, 0x00]).u64(), None); // overlong
//! ```

/// Where encoded bytes go: a `Vec`, or a [`StackBuf`] on the hot path.
pub trait Sink {
    /// Appends one byte.
    fn push_byte(&mut self, b: u8);
    /// Appends bytes.
    fn push_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push_byte(b);
        }
    }
    /// Appends `v` as a varint (a sink with room writes it in place).
    #[inline]
    fn push_varint(&mut self, mut v: u64) {
        let mut bytes = [0u8; 10];
        let n = encode_into_slice(&mut v, &mut bytes);
        self.push_bytes(bytes.get(..n).unwrap_or(&bytes));
    }
}

/// Writes `v` as a varint at the start of `out` (10 bytes hold any `u64`); the bytes written.
#[inline]
fn encode_into_slice(v: &mut u64, out: &mut [u8]) -> usize {
    let mut n: usize = 0;
    for slot in out.iter_mut() {
        let low = (*v & 0x7f) as u8;
        *v >>= 7;
        n = n.saturating_add(1);
        if *v == 0 {
            *slot = low;
            break;
        }
        *slot = low | 0x80;
    }
    n
}

/// The 7-bit groups of `v` (< 2^56) spread over the bytes of a `u64`, the low group in the low
/// byte: three mask-and-shift steps instead of a loop over the bytes.
#[inline(always)]
fn spread56(v: u64) -> u64 {
    let mut x = v;
    x = (x & 0x0000_0000_0FFF_FFFF) | ((x & 0x00FF_FFFF_F000_0000) << 4);
    x = (x & 0x0000_3FFF_0000_3FFF) | ((x & 0x0FFF_C000_0FFF_C000) << 2);
    (x & 0x007F_007F_007F_007F) | ((x & 0x3F80_3F80_3F80_3F80) << 1)
}

/// [`spread56`] for `v` < 2^28, in 32 bits.
#[inline(always)]
fn spread28(v: u32) -> u32 {
    let x = (v & 0x0000_3FFF) | ((v & 0x0FFF_C000) << 2);
    (x & 0x007F_007F) | ((x & 0x3F80_3F80) << 1)
}

/// [`encode_into_slice`] for a slot of at least 10 bytes, without a loop: one or two bytes
/// directly, three or four from [`spread28`], five to eight from [`spread56`] (times in µs take
/// eight), nine or ten as eight and the rest; each written in one store (bytes past the
/// varint's end are written with 0, inside the slot). The hot path replicates a counter's state
/// as a handful of varints: the loop spends ~8 instructions per byte.
#[inline(always)]
fn encode_into_wide_slot(v: u64, out: &mut [u8]) -> usize {
    let Some(Ok(dst)) = out.get_mut(..10).map(<&mut [u8; 10]>::try_from) else {
        let mut v = v;
        return encode_into_slice(&mut v, out);
    };
    if v < 1 << 7 {
        dst[0] = v as u8;
        1
    } else if v < 1 << 14 {
        dst[0] = v as u8 | 0x80;
        dst[1] = (v >> 7) as u8;
        2
    } else if v < 1 << 28 {
        let (n, more) = if v < 1 << 21 {
            (3, 0x8080)
        } else {
            (4, 0x80_8080)
        };
        let x = spread28(v as u32) | more;
        dst[..4].copy_from_slice(&x.to_le_bytes());
        n
    } else if v < 1 << 56 {
        // 29..=56 bits: 5..=8 bytes, the high bit set on all but the last (nothing wraps).
        let n = 64u32.wrapping_sub(v.leading_zeros()).div_ceil(7);
        let more =
            0x8080_8080_8080_8080u64 >> 64u32.wrapping_sub(n.wrapping_sub(1).wrapping_mul(8));
        dst[..8].copy_from_slice(&(spread56(v) | more).to_le_bytes());
        n as usize
    } else {
        let low = spread56(v & ((1 << 56) - 1)) | 0x8080_8080_8080_8080;
        dst[..8].copy_from_slice(&low.to_le_bytes());
        // 1..=255.
        let high = v >> 56;
        if high < 1 << 7 {
            dst[8] = high as u8;
            9
        } else {
            dst[8] = high as u8 | 0x80;
            dst[9] = 1;
            10
        }
    }
}

impl Sink for Vec<u8> {
    fn push_byte(&mut self, b: u8) {
        self.push(b);
    }
    fn push_bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A byte buffer on the stack that moves to the heap only when it outgrows `N` bytes: a
/// counter's whole payload fits, so replicating it allocates nothing.
///
/// ```
/// use redis_ratelimit::varint::{put_u64, StackBuf};
/// let mut buf = StackBuf::<4>::new();
/// put_u64(&mut buf, 300);
/// assert_eq!(buf.as_slice(), [0xac, 0x02]);
/// put_u64(&mut buf, u64::MAX); // spills to the heap
/// assert_eq!(buf.as_slice().len(), 12);
/// ```
#[derive(Debug)]
pub struct StackBuf<const N: usize> {
    inline: [u8; N],
    len: usize,
    heap: Option<Vec<u8>>,
}

impl<const N: usize> StackBuf<N> {
    /// An empty buffer.
    pub fn new() -> Self {
        StackBuf {
            inline: [0; N],
            len: 0,
            heap: None,
        }
    }

    /// The bytes written.
    pub fn as_slice(&self) -> &[u8] {
        match &self.heap {
            Some(v) => v,
            None => self.inline.get(..self.len).unwrap_or(&[]),
        }
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Sink for StackBuf<N> {
    /// In place while the inline buffer has room for any varint: no copy, no `memcpy` call
    /// (the hot path replicates a counter's state as a handful of varints).
    #[inline]
    fn push_varint(&mut self, mut v: u64) {
        if self.heap.is_none() {
            if let Some(dst) = self.inline.get_mut(self.len..self.len.saturating_add(10)) {
                let n = encode_into_wide_slot(v, dst);
                self.len = self.len.saturating_add(n);
                return;
            }
        }
        let mut bytes = [0u8; 10];
        let n = encode_into_slice(&mut v, &mut bytes);
        self.push_bytes(bytes.get(..n).unwrap_or(&bytes));
    }

    #[inline]
    fn push_bytes(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match (&mut self.heap, self.inline.get_mut(self.len..end)) {
            (None, Some(slot)) => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            _ => bytes.iter().for_each(|&b| self.push_byte(b)),
        }
    }

    #[inline]
    fn push_byte(&mut self, b: u8) {
        if let Some(v) = &mut self.heap {
            v.push(b);
            return;
        }
        if let Some(slot) = self.inline.get_mut(self.len) {
            *slot = b;
            self.len = self.len.saturating_add(1);
            return;
        }
        let mut v = Vec::with_capacity(N.saturating_mul(2).max(16));
        v.extend_from_slice(&self.inline);
        v.push(b);
        self.heap = Some(v);
    }
}

/// Appends `v`.
#[inline]
pub fn put_u64(out: &mut impl Sink, v: u64) {
    if v < 0x80 {
        out.push_byte(v as u8);
        return;
    }
    out.push_varint(v);
}

/// Appends `v` (encoded on the stack, then appended in one go).
#[inline]
pub fn put_u128(out: &mut impl Sink, mut v: u128) {
    if let Ok(small) = u64::try_from(v) {
        return put_u64(out, small);
    }
    // A gcra `tat × limit` above 2^64: its low 56 bits as eight bytes that all say "more",
    // then the rest (the loop below spends ~10 instructions per byte in 128 bits).
    if v >> 120 == 0 {
        let low = spread56((v as u64) & ((1 << 56) - 1)) | 0x8080_8080_8080_8080;
        out.push_bytes(&low.to_le_bytes());
        return put_u64(out, (v >> 56) as u64);
    }
    let mut bytes = [0u8; 19];
    let mut n: usize = 0;
    for slot in bytes.iter_mut() {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        n = n.saturating_add(1);
        if v == 0 {
            *slot = low;
            break;
        }
        *slot = low | 0x80;
    }
    out.push_bytes(bytes.get(..n).unwrap_or(&bytes));
}

/// Encoded length of `v` in bytes.
///
/// ```
/// use redis_ratelimit::varint::len_u64;
/// assert_eq!((len_u64(0), len_u64(127), len_u64(128), len_u64(u64::MAX)), (1, 1, 2, 10));
/// ```
pub fn len_u64(v: u64) -> usize {
    let bits = 64usize.saturating_sub(v.leading_zeros() as usize).max(1);
    bits.div_ceil(7)
}

/// Reads one varint of at most `max_bits` bits from `bytes` at `pos`: the value and the position
/// after it.
fn read(bytes: &[u8], mut pos: usize, max_bits: u32) -> Option<(u128, usize)> {
    let mut v: u128 = 0;
    let mut shift: u32 = 0;
    loop {
        let b = *bytes.get(pos)?;
        pos = pos.checked_add(1)?;
        let low = u128::from(b & 0x7f);
        // Bits still free for this byte's payload; more would overflow the type.
        let free = max_bits.checked_sub(shift).filter(|&f| f > 0)?;
        if free < 7 && low >> free != 0 {
            return None;
        }
        v |= low.checked_shl(shift)?;
        if b & 0x80 == 0 {
            // The last byte of a multi-byte varint must carry bits (no overlong forms).
            if b == 0 && shift > 0 {
                return None;
            }
            return Some((v, pos));
        }
        shift = shift.checked_add(7)?;
    }
}

/// Reads a `u64` varint at `pos` in `bytes`: the value and the position after it.
#[inline]
pub fn read_u64(bytes: &[u8], pos: usize) -> Option<(u64, usize)> {
    // Run log scans decode thousands of these per call: one- and two-byte fast paths, then a u64 loop
    // as strict as `read` (no overlong forms, nothing past 64 bits).
    let b0 = *bytes.get(pos)?;
    if b0 < 0x80 {
        return Some((u64::from(b0), pos.checked_add(1)?));
    }
    let b1 = *bytes.get(pos.checked_add(1)?)?;
    if b1 < 0x80 {
        let v = u64::from(b0 & 0x7f) | (u64::from(b1) << 7);
        // The last byte of a multi-byte varint must carry bits.
        return (b1 != 0).then_some((v, pos.checked_add(2)?));
    }
    let mut v = u64::from(b0 & 0x7f) | (u64::from(b1 & 0x7f) << 7);
    let mut shift: u32 = 14;
    let mut at = pos.checked_add(2)?;
    loop {
        let b = *bytes.get(at)?;
        at = at.checked_add(1)?;
        let low = u64::from(b & 0x7f);
        // Nine bytes carry 63 bits: a tenth may add one more, nothing above.
        if shift == 63 && low > 1 {
            return None;
        }
        v |= low.checked_shl(shift)?;
        if b < 0x80 {
            // The last byte of a multi-byte varint must carry bits.
            return (b != 0).then_some((v, at));
        }
        shift = shift.checked_add(7).filter(|&s| s <= 63)?;
    }
}

/// A cursor over an encoded payload.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    /// One raw byte.
    pub fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos = self.pos.checked_add(1)?;
        Some(b)
    }

    /// A `u64` varint.
    pub fn u64(&mut self) -> Option<u64> {
        let (v, pos) = read_u64(self.bytes, self.pos)?;
        self.pos = pos;
        Some(v)
    }

    /// A `u128` varint.
    pub fn u128(&mut self) -> Option<u128> {
        let (v, pos) = read(self.bytes, self.pos, 128)?;
        self.pos = pos;
        Some(v)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Reads extension records `(id, length, bytes)` to the end, ids strictly increasing: one
    /// encoding per payload (a repeated record would leave which one counts to the reader).
    /// `read` parses a record it knows and answers `Some(true)`, `Some(false)` for an id it does
    /// not know, `None` for a bad record. An unknown record is skipped in a `later` version's
    /// payload (read by its oldest-reader byte) and refused otherwise, as is a known record not
    /// read to its end.
    ///
    /// ```
    /// use redis_ratelimit::varint::Reader;
    /// let mut seen = vec![];
    /// let ok = Reader::new(&[1, 1, 7, 3, 0]).records(false, |id, r| {
    ///     seen.push((id, r.u64()));
    ///     Some(true)
    /// });
    /// assert_eq!((ok, seen), (Some(()), vec![(1, Some(7)), (3, None)]));
    /// assert_eq!(Reader::new(&[2, 0, 1, 0]).records(false, |_, _| Some(true)), None);
    /// assert_eq!(Reader::new(&[9, 1, 0]).records(true, |_, _| Some(false)), Some(()));
    /// ```
    pub fn records(
        &mut self,
        later: bool,
        mut read: impl FnMut(u64, &mut Reader<'a>) -> Option<bool>,
    ) -> Option<()> {
        let mut previous_id = None;
        while !self.is_empty() {
            let id = self.u64()?;
            if previous_id.is_some_and(|p| id <= p) {
                return None;
            }
            previous_id = Some(id);
            let len = usize::try_from(self.u64()?).ok()?;
            let mut record = Reader::new(self.take(len)?);
            if !read(id, &mut record)? {
                if later {
                    continue;
                }
                return None;
            }
            if !later && !record.is_empty() {
                return None;
            }
        }
        Some(())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    /// The in-place encoder of the hot path writes what the loop writes, at every length and
    /// around every byte boundary.
    #[test]
    fn wide_slot_encoding_matches_the_loop() {
        let mut values = vec![0u64, u64::MAX];
        for bits in 1..64u32 {
            let p = 1u64 << bits;
            values.extend([
                p - 1,
                p,
                p + 1,
                p | (p >> 1),
                p | 0x5555_5555_5555_5555 & (p - 1),
            ]);
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            let (mut a, mut b) = ([0xAAu8; 10], [0xAAu8; 10]);
            let n = encode_into_wide_slot(v, &mut a);
            let m = encode_into_slice(&mut v.clone(), &mut b);
            assert_eq!((n, &a[..n]), (m, &b[..m]), "{v}");
            let mut buf = StackBuf::<16>::new();
            buf.push_varint(v);
            assert_eq!(buf.as_slice(), &b[..m], "{v}");
            assert_eq!(read_u64(buf.as_slice(), 0), Some((v, m)));
            // u128s above 2^64 (written eight bytes first), against the bytes one by one.
            let wide = (u128::from(v) << (v % 57)) | u128::from(x);
            let mut expected = Vec::new();
            let mut w = wide;
            loop {
                let low = (w & 0x7f) as u8;
                w >>= 7;
                if w == 0 {
                    expected.push(low);
                    break;
                }
                expected.push(low | 0x80);
            }
            let mut got = Vec::new();
            put_u128(&mut got, wide);
            assert_eq!(got, expected, "{wide}");
            assert_eq!(Reader::new(&got).u128(), Some(wide));
        }
    }

    #[test]
    fn round_trips_and_lengths() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            assert_eq!(out.len(), len_u64(v), "{v}");
            assert_eq!(read_u64(&out, 0), Some((v, out.len())));
        }
        for v in [0u128, u128::from(u64::MAX) + 1, u128::MAX] {
            let mut out = Vec::new();
            put_u128(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.u128(), Some(v));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn refuses_overlong_overflowing_and_short_input() {
        assert_eq!(read_u64(&[0x81, 0x00], 0), None);
        assert_eq!(read_u64(&[0xff; 10], 0), None);
        // 2^64 does not fit a u64 but fits a u128.
        let mut big = Vec::new();
        put_u128(&mut big, u128::from(u64::MAX) + 1);
        assert_eq!(read_u64(&big, 0), None);
        assert!(Reader::new(&big).u128().is_some());
        assert_eq!(read_u64(&[0x80], 0), None);
        assert_eq!(read_u64(&[], 0), None);
        assert_eq!(Reader::new(&[0xff; 20]).u128(), None);
    }

    /// The u64 reader agrees with the general strict reader on every input: random bytes,
    /// and every value around each power of two with continuation bytes appended.
    #[test]
    fn u64_reader_agrees_with_the_general_reader() {
        let general =
            |bytes: &[u8]| read(bytes, 0, 64).and_then(|(v, n)| Some((u64::try_from(v).ok()?, n)));
        let mut x: u64 = 1;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut bytes: Vec<u8> = x
                .to_le_bytes()
                .iter()
                .chain(&[0xff, 0x01, 0x80, 0x00])
                .copied()
                .collect();
            // Mostly continuation bits, so that long forms come up.
            for b in bytes.iter_mut().take(len) {
                *b |= 0x80;
            }
            bytes.truncate(len.max(1));
            assert_eq!(read_u64(&bytes, 0), general(&bytes), "{bytes:x?}");
        }
        for bit in 0..64 {
            for v in [(1u64 << bit) - 1, 1u64 << bit, (1u64 << bit) + 1] {
                let mut out = Vec::new();
                put_u64(&mut out, v);
                assert_eq!(read_u64(&out, 0), Some((v, out.len())));
                for tail in [0x00u8, 0x01, 0x02, 0x7f, 0x80] {
                    let mut long = out.clone();
                    if let Some(last) = long.last_mut() {
                        *last |= 0x80;
                    }
                    long.push(tail);
                    assert_eq!(read_u64(&long, 0), general(&long), "{long:x?}");
                }
            }
        }
    }

    #[test]
    fn every_encoding_is_canonical() {
        // Exhaustive over 1- and 2-byte inputs, plus all 3-byte ones with a given middle.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for bytes in [&[a][..], &[a, b][..]] {
                    if let Some((v, n)) = read_u64(bytes, 0) {
                        let mut out = Vec::new();
                        put_u64(&mut out, v);
                        assert_eq!(&out[..], &bytes[..n]);
                    }
                }
            }
        }
    }
}
