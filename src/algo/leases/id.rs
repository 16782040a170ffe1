//! Lease ids and leases: what a holder is called (a number or bytes, one spelling per number),
//! and the fingerprint a scan for an id compares before the bytes.

use crate::varint::{put_u64, Reader, Sink};

/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// The longest canonical decimal id (`u64::MAX` has 20 digits).
const MAX_DECIMAL_LEN: usize = 20;

/// A lease's id: a number (what the server makes, and any caller id that is a canonical
/// decimal) or other bytes. Numbers sort before bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeaseId {
    /// A canonical decimal number.
    Num(u64),
    /// Any other 1 to [`MAX_ID_LEN`] bytes.
    Text(Box<[u8]>),
}

impl LeaseId {
    /// An id from a caller's bytes; `None` when empty or longer than [`MAX_ID_LEN`].
    ///
    /// ```
    /// use redis_ratelimit::algo::leases::LeaseId;
    /// assert_eq!(LeaseId::parse(b"42"), Some(LeaseId::Num(42)));
    /// assert_eq!(LeaseId::parse(b"042"), Some(LeaseId::Text(b"042".to_vec().into())));
    /// assert_eq!(LeaseId::parse(b""), None);
    /// ```
    pub fn parse(bytes: &[u8]) -> Option<LeaseId> {
        if bytes.is_empty() || bytes.len() > MAX_ID_LEN {
            return None;
        }
        Some(match canonical_decimal(bytes) {
            Some(n) => LeaseId::Num(n),
            None => LeaseId::Text(bytes.into()),
        })
    }

    /// Calls `f` with the id's bytes (a number in decimal, formatted on the stack).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            LeaseId::Text(t) => f(t),
            LeaseId::Num(n) => {
                let mut buf = [0u8; MAX_DECIMAL_LEN];
                let mut at = buf.len();
                let mut v = *n;
                loop {
                    at = at.saturating_sub(1);
                    if let Some(slot) = buf.get_mut(at) {
                        // v % 10 < 10: the cast and the addition cannot overflow.
                        *slot = b'0'.saturating_add(u8::try_from(v % 10).unwrap_or(0));
                    }
                    v /= 10;
                    if v == 0 || at == 0 {
                        break;
                    }
                }
                f(buf.get(at..).unwrap_or(&[]))
            }
        }
    }

    /// The id's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }

    /// Heap bytes it owns (a text id's buffer), for `MEMORY USAGE` and defrag.
    pub fn heap_block(&self) -> Option<*const u8> {
        match self {
            LeaseId::Text(t) => Some(t.as_ptr()),
            LeaseId::Num(_) => None,
        }
    }

    /// A length (0 for a number), then the number or the bytes.
    pub(super) fn encode(&self, out: &mut impl Sink) {
        match self {
            LeaseId::Num(n) => {
                put_u64(out, 0);
                put_u64(out, *n);
            }
            LeaseId::Text(t) => {
                put_u64(out, u64::try_from(t.len()).unwrap_or(u64::MAX));
                out.push_bytes(t);
            }
        }
    }

    /// Reads an [`LeaseId::encode`]d id; `None` for anything [`LeaseId::parse`] would not make.
    pub(super) fn decode(r: &mut Reader<'_>) -> Option<LeaseId> {
        match usize::try_from(r.u64()?).ok()? {
            0 => Some(LeaseId::Num(r.u64()?)),
            n if n <= MAX_ID_LEN => {
                let bytes = r.take(n)?;
                canonical_decimal(bytes)
                    .is_none()
                    .then(|| LeaseId::Text(bytes.into()))
            }
            _ => None,
        }
    }

    pub(super) fn is_valid(&self) -> bool {
        match self {
            LeaseId::Num(_) => true,
            LeaseId::Text(t) => {
                !t.is_empty() && t.len() <= MAX_ID_LEN && canonical_decimal(t).is_none()
            }
        }
    }
}

/// The number a canonical decimal spells (`0`, or digits without a leading zero, fitting u64).
fn canonical_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty()
        || bytes.len() > MAX_DECIMAL_LEN
        || !bytes.iter().all(u8::is_ascii_digit)
        || (bytes.len() > 1 && bytes.first() == Some(&b'0'))
    {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &c| {
        n.checked_mul(10)?
            .checked_add(u64::from(c.wrapping_sub(b'0')))
    })
}

/// One lease: who holds it and when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// When it ends (µs since the epoch): held while `now < end_us`.
    pub end_us: u64,
    /// The id's fingerprint: finding an id compares these inline before touching a text id's
    /// bytes on the heap (a scan of 10,000 text ids is then a scan of one array).
    pub(super) print: u64,
    /// Its id.
    pub id: LeaseId,
}

/// A 64-bit fingerprint of an id: the number itself, or FNV-1a of the bytes.
pub(super) fn fingerprint(id: &LeaseId) -> u64 {
    match id {
        LeaseId::Num(n) => *n,
        LeaseId::Text(t) => t.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }),
    }
}

impl Lease {
    /// A lease of `id` ending at `end_us`.
    pub fn new(end_us: u64, id: LeaseId) -> Lease {
        Lease {
            end_us,
            print: fingerprint(&id),
            id,
        }
    }

    /// Whether it sorts before `(end_us, id)` in the table.
    pub(super) fn before(&self, end_us: u64, id: &LeaseId) -> bool {
        (self.end_us, &self.id) < (end_us, id)
    }
}
