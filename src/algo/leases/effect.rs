//! The replicated form of a leases write (`RL.APPLY key effect`): O(1) in the number of leases.

use super::{Algorithm, Effect, LeaseId, Rule, MAX_TIMESTAMP_US};
use crate::varint::{put_u64, Reader, Sink, StackBuf};

/// The payload version of an effect, and the oldest reader that can replay it: the header rule
/// of `RL.APPLY` hits (see `datatype::codec`); a release that does not know the leases tag
/// refuses the payload.
pub const EFFECT_VERSION: u8 = 3;

const OP_ACQUIRE: u8 = 1;
const OP_RELEASE: u8 = 2;
const OP_CLAMP: u8 = 3;

/// Extension record: the number of leases the master stores after the write.
const EXT_STORED: u64 = 2;

/// Encodes an effect for `RL.APPLY`: header `version, oldest reader, tag, op`, varints `now_us`,
/// then for an acquire `limit lease_us server_made id`, for a release `id`; then a record
/// `(2, length, stored)` with the leases the master stores after it (the replica checks its
/// own). O(1) in the number of leases: at most 160 bytes, built on the stack up to 64.
///
/// ```
/// use redis_ratelimit::algo::leases::{decode_effect, encode_effect, Acquire, Effect, LeaseId};
/// let rule = Acquire::new(10, 30_000_000, None).unwrap().rule;
/// let e = Effect::Acquire { now_us: 1_700_000_000_000_000, rule, id: LeaseId::Num(7), server_made: true };
/// let bytes = encode_effect(&e, 3);
/// assert!(bytes.as_slice().len() < 24);
/// assert_eq!(decode_effect(bytes.as_slice()), Some((e, Some(3))));
/// ```
pub fn encode_effect(effect: &Effect, stored_after: u64) -> StackBuf<64> {
    let mut out = StackBuf::<64>::new();
    let op = match effect {
        Effect::Acquire { .. } => OP_ACQUIRE,
        Effect::Release { .. } => OP_RELEASE,
        Effect::Clamp { .. } => OP_CLAMP,
    };
    out.push_bytes(&[EFFECT_VERSION, EFFECT_VERSION, Algorithm::Leases.tag(), op]);
    put_u64(&mut out, effect.now_us());
    match effect {
        Effect::Acquire {
            rule,
            id,
            server_made,
            ..
        } => {
            put_u64(&mut out, rule.limit());
            put_u64(&mut out, rule.window_us());
            put_u64(&mut out, u64::from(*server_made));
            id.encode(&mut out);
        }
        Effect::Release { id, .. } => id.encode(&mut out),
        Effect::Clamp { .. } => {}
    }
    let mut record = StackBuf::<16>::new();
    put_u64(&mut record, stored_after);
    put_u64(&mut out, EXT_STORED);
    put_u64(
        &mut out,
        u64::try_from(record.as_slice().len()).unwrap_or(u64::MAX),
    );
    out.push_bytes(record.as_slice());
    out
}

/// Whether `bytes` is an effect payload for leases (by its tag), whatever its version.
pub fn is_effect(bytes: &[u8]) -> bool {
    bytes.get(2) == Some(&Algorithm::Leases.tag())
}

/// Decodes an [`encode_effect`] payload: the effect and the master's stored count if sent.
/// Records come in increasing id order, each at most once; this version's payload has the
/// count. A later version is read when its oldest-reader byte allows, ignoring unknown
/// records; anything else is `None`.
pub fn decode_effect(bytes: &[u8]) -> Option<(Effect, Option<u64>)> {
    let mut r = Reader::new(bytes);
    let version = r.byte()?;
    let min_reader = r.byte()?;
    let later = version > EFFECT_VERSION;
    let readable = if later {
        min_reader <= EFFECT_VERSION
    } else {
        version == EFFECT_VERSION && min_reader == EFFECT_VERSION
    };
    if !readable || r.byte()? != Algorithm::Leases.tag() {
        return None;
    }
    let op = r.byte()?;
    let now_us = r.u64()?;
    if now_us > MAX_TIMESTAMP_US {
        return None;
    }
    let effect = match op {
        OP_ACQUIRE => {
            let limit = r.u64()?;
            let lease_us = r.u64()?;
            let server_made = match r.u64()? {
                0 => false,
                1 => true,
                _ => return None,
            };
            let id = LeaseId::decode(&mut r)?;
            // Any rule the master accepted, under whatever bound it had.
            let rule = Rule::new(Algorithm::Leases, limit, lease_us, None).ok()?;
            Effect::Acquire {
                now_us,
                rule,
                id,
                server_made,
            }
        }
        OP_RELEASE => Effect::Release {
            now_us,
            id: LeaseId::decode(&mut r)?,
        },
        OP_CLAMP => Effect::Clamp { now_us },
        _ => return None,
    };
    let mut stored = None;
    r.records(later, |id, record| {
        match id {
            EXT_STORED => stored = Some(record.u64()?),
            _ => return Some(false),
        }
        Some(true)
    })?;
    // This version always carries the master's count (a later one may not).
    if !later && stored.is_none() {
        return None;
    }
    Some((effect, stored))
}
