//! The one binary encoding of a [`Limiter`], used for RDB, AOF rewrite, replication
//! (`RL.SETSTATE`) and `DEBUG DIGEST`. Pure code.
//!
//! ## Version 2 (written by this release)
//!
//! | field | encoding |
//! |---|---|
//! | format version ([`PAYLOAD_VERSION`]) | 1 byte |
//! | oldest reader version that can read it ([`MIN_READER_VERSION`]) | 1 byte |
//! | algorithm tag: 1 sliding-window, 2 fixed-window, 3 gcra, 4 moving-window | 1 byte |
//! | limit, window (µs) | varints |
//! | burst | varint, gcra only |
//! | state length, then the state | varint, bytes |
//! | extensions: (id, length, bytes) records | varints, bytes; none written yet |
//!
//! States: sliding `window_start_us current previous`; fixed `window_start_us count`;
//! gcra `tat × limit` (a varint of up to 128 bits); moving-window the number of runs, then each
//! run's timestamp (the first absolute, then the gap to the previous one) and count. All
//! integers are LEB128 varints ([`crate::varint`]).
//!
//! **Forward compatibility.** A payload of a later format version is read when its "oldest
//! reader" byte is at most [`PAYLOAD_VERSION`]: this release then ignores state bytes after the
//! fields it knows and extension records it does not know. That is the promise a later release
//! keeps for additions that older replicas may safely ignore; anything else raises the oldest
//! reader version and is refused here, as is an unknown algorithm tag. A payload of *this*
//! version must be canonical (every byte read, nothing left over), so decode∘encode is the
//! identity and digests agree.
//!
//! ## Version 1 (the first release; still read)
//!
//! 50 bytes: version 1, tag, then six little-endian `u64`: limit, window, burst, and the state
//! (sliding `start current previous`, fixed `start count 0`, gcra `tat_us 0 0`).
//!
//! Decoding is strict: an unknown version or tag, a rule that `RL.ALLOW` would refuse, a state
//! that breaks its invariants or one that holds nothing all give `None`.

use crate::algo::moving_window::MAX_RUNS;
use crate::algo::{
    Algorithm, FixedWindowState, GcraState, Limiter, MovingWindowState, Rule, SlidingWindowState,
    State, MAX_COUNT, MAX_TIMESTAMP_US,
};
use crate::varint::{put_u128, put_u64, Reader};

/// The format version this module writes, and the newest it knows.
pub const PAYLOAD_VERSION: u8 = 2;
/// The oldest reader version that can read what this module writes.
pub const MIN_READER_VERSION: u8 = 2;

const V1: u8 = 1;
const V1_LEN: usize = 2 + 8 * 6;

fn tag(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::SlidingWindow => 1,
        Algorithm::FixedWindow => 2,
        Algorithm::Gcra => 3,
        Algorithm::MovingWindow => 4,
    }
}

fn algorithm(tag: u8) -> Option<Algorithm> {
    match tag {
        1 => Some(Algorithm::SlidingWindow),
        2 => Some(Algorithm::FixedWindow),
        3 => Some(Algorithm::Gcra),
        4 => Some(Algorithm::MovingWindow),
        _ => None,
    }
}

/// Encodes a limiter (version 2).
///
/// ```
/// use redis_ratelimit::algo::{Algorithm, GcraState, Limiter, Rule, State};
/// use redis_ratelimit::datatype::codec::{decode, encode};
/// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
/// let state = State::Gcra(GcraState::from_tat_us(&rule, 1_700_000_000_000_000));
/// let l = Limiter { rule, state };
/// assert_eq!(decode(&encode(&l)), Some(l));
/// ```
pub fn encode(limiter: &Limiter) -> Vec<u8> {
    let rule = &limiter.rule;
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&[PAYLOAD_VERSION, MIN_READER_VERSION, tag(rule.algorithm())]);
    put_u64(&mut out, rule.limit());
    put_u64(&mut out, rule.window_us());
    if rule.algorithm() == Algorithm::Gcra {
        put_u64(&mut out, rule.burst());
    }
    let mut state = Vec::with_capacity(24);
    match &limiter.state {
        State::MovingWindow(log) => {
            state.reserve(log.run_count().saturating_mul(4));
            put_u64(
                &mut state,
                u64::try_from(log.run_count()).unwrap_or(u64::MAX),
            );
            let mut previous = 0;
            for (ts, count) in log.runs() {
                put_u64(&mut state, ts.saturating_sub(previous));
                put_u64(&mut state, count);
                previous = ts;
            }
        }
        State::SlidingWindow(s) => {
            put_u64(&mut state, s.window_start_us);
            put_u64(&mut state, s.current);
            put_u64(&mut state, s.previous);
        }
        State::FixedWindow(s) => {
            put_u64(&mut state, s.window_start_us);
            put_u64(&mut state, s.count);
        }
        State::Gcra(s) => put_u128(&mut state, s.tat_scaled),
    }
    put_u64(&mut out, u64::try_from(state.len()).unwrap_or(u64::MAX));
    out.extend_from_slice(&state);
    out
}

/// Decodes and validates a limiter of any version this module reads; `None` for anything else.
pub fn decode(bytes: &[u8]) -> Option<Limiter> {
    let limiter = match bytes.first()? {
        &V1 => decode_v1(bytes)?,
        _ => decode_v2(bytes)?,
    };
    // A state that holds nothing is never written (it equals an absent key), so never accepted.
    (limiter.is_valid() && limiter.expires_at_us() > 0).then_some(limiter)
}

fn decode_v2(bytes: &[u8]) -> Option<Limiter> {
    let mut r = Reader::new(bytes);
    let version = r.byte()?;
    let min_reader = r.byte()?;
    let later = version > PAYLOAD_VERSION;
    let readable = if later {
        min_reader <= PAYLOAD_VERSION
    } else {
        version == PAYLOAD_VERSION && min_reader == MIN_READER_VERSION
    };
    if !readable {
        return None;
    }
    let algorithm = algorithm(r.byte()?)?;
    let limit = r.u64()?;
    let window_us = r.u64()?;
    let burst = match algorithm {
        Algorithm::Gcra => Some(r.u64()?),
        _ => None,
    };
    let rule = Rule::new(algorithm, limit, window_us, burst).ok()?;
    let state_len = usize::try_from(r.u64()?).ok()?;
    let mut s = Reader::new(r.take(state_len)?);
    let state = match algorithm {
        Algorithm::SlidingWindow => State::SlidingWindow(SlidingWindowState {
            window_start_us: s.u64()?,
            current: s.u64()?,
            previous: s.u64()?,
        }),
        Algorithm::FixedWindow => State::FixedWindow(FixedWindowState {
            window_start_us: s.u64()?,
            count: s.u64()?,
        }),
        Algorithm::Gcra => State::Gcra(GcraState {
            tat_scaled: s.u128()?,
        }),
        Algorithm::MovingWindow => State::MovingWindow(Box::new(decode_log(&mut s)?)),
    };
    // Later versions may append state fields and extension records that this one ignores.
    let canonical = s.is_empty() && r.is_empty();
    if !later && !canonical {
        return None;
    }
    while !r.is_empty() {
        let _id = r.u64()?;
        let len = usize::try_from(r.u64()?).ok()?;
        r.take(len)?;
    }
    Some(Limiter { rule, state })
}

/// A replicated hit (`RL.APPLY`): what a moving-window admission at `now_us` changed, in O(1)
/// bytes whatever the log's size. Layout: version, oldest reader, tag, then varints `limit`,
/// `window`, `now_us`, `cost` (0 = a conversion without a charge).
///
/// ```
/// use redis_ratelimit::algo::{Algorithm, Rule};
/// use redis_ratelimit::datatype::codec::{decode_hit, encode_hit};
/// let rule = Rule::new(Algorithm::MovingWindow, 10, 60_000_000, None).unwrap();
/// let bytes = encode_hit(&rule, 1_700_000_000_000_000, 1_000_000);
/// assert!(bytes.len() < 24);
/// assert_eq!(decode_hit(&bytes), Some((rule, 1_700_000_000_000_000, 1_000_000)));
/// ```
pub fn encode_hit(rule: &Rule, now_us: u64, cost: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    out.extend_from_slice(&[PAYLOAD_VERSION, MIN_READER_VERSION, tag(rule.algorithm())]);
    for v in [rule.limit(), rule.window_us(), now_us, cost] {
        put_u64(&mut out, v);
    }
    out
}

/// Decodes an [`encode_hit`] payload: `(rule, now_us, cost)` for a moving-window rule whose
/// time is within bounds; `None` otherwise.
pub fn decode_hit(bytes: &[u8]) -> Option<(Rule, u64, u64)> {
    let mut r = Reader::new(bytes);
    if r.byte()? != PAYLOAD_VERSION || r.byte()? != MIN_READER_VERSION {
        return None;
    }
    if algorithm(r.byte()?)? != Algorithm::MovingWindow {
        return None;
    }
    let rule = Rule::new(Algorithm::MovingWindow, r.u64()?, r.u64()?, None).ok()?;
    let (now_us, cost) = (r.u64()?, r.u64()?);
    let valid = r.is_empty() && now_us <= MAX_TIMESTAMP_US && cost <= MAX_COUNT;
    valid.then_some((rule, now_us, cost))
}

/// A moving-window log: `n`, then `n` (timestamp gap, count) pairs.
fn decode_log(s: &mut Reader<'_>) -> Option<MovingWindowState> {
    let n = usize::try_from(s.u64()?).ok()?;
    if n == 0 || n > MAX_RUNS {
        return None;
    }
    let mut runs = Vec::with_capacity(n);
    let mut ts: u64 = 0;
    for _ in 0..n {
        ts = ts.checked_add(s.u64()?)?;
        runs.push((ts, s.u64()?));
    }
    MovingWindowState::from_runs(runs)
}

fn decode_v1(bytes: &[u8]) -> Option<Limiter> {
    if bytes.len() != V1_LEN {
        return None;
    }
    let algorithm = algorithm(*bytes.get(1)?)?;
    let mut words = [0u64; 6];
    for (word, chunk) in words.iter_mut().zip(bytes.get(2..)?.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    let [limit, window_us, burst, s0, s1, s2] = words;
    let burst = match algorithm {
        Algorithm::Gcra => Some(burst),
        _ if burst == limit => None,
        _ => return None,
    };
    let rule = Rule::new(algorithm, limit, window_us, burst).ok()?;
    let state = match algorithm {
        Algorithm::SlidingWindow => State::SlidingWindow(SlidingWindowState {
            window_start_us: s0,
            current: s1,
            previous: s2,
        }),
        Algorithm::FixedWindow if s2 == 0 => State::FixedWindow(FixedWindowState {
            window_start_us: s0,
            count: s1,
        }),
        // The first release kept tat in whole µs (its emission interval rounded down).
        Algorithm::Gcra if s1 == 0 && s2 == 0 => State::Gcra(GcraState::from_tat_us(&rule, s0)),
        _ => return None,
    };
    Some(Limiter { rule, state })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn samples() -> Vec<Limiter> {
        let t = 1_700_000_000_000_000u64;
        let gcra = Rule::new(Algorithm::Gcra, 3, 1_000_000, Some(7)).unwrap();
        vec![
            Limiter {
                rule: Rule::new(Algorithm::SlidingWindow, 10, 60_000_000, None).unwrap(),
                state: State::SlidingWindow(SlidingWindowState {
                    window_start_us: t - t % 60_000_000,
                    current: 3,
                    previous: 9,
                }),
            },
            Limiter {
                rule: Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap(),
                state: State::FixedWindow(FixedWindowState {
                    window_start_us: t,
                    count: 5,
                }),
            },
            Limiter {
                rule: gcra,
                state: State::Gcra(GcraState {
                    tat_scaled: u128::from(t) * 3 + 2,
                }),
            },
            Limiter {
                rule: Rule::new(Algorithm::MovingWindow, 100, 60_000_000, None).unwrap(),
                state: State::MovingWindow(Box::new(
                    MovingWindowState::from_runs([(t, 3), (t + 1, 1), (t + 70_000, 96)]).unwrap(),
                )),
            },
        ]
    }

    /// What the first release wrote (its own layout, rebuilt here from the v1 table).
    fn v1_bytes(tag: u8, words: [u64; 6]) -> Vec<u8> {
        let mut out = vec![1, tag];
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    #[test]
    fn round_trip() {
        for l in samples() {
            let bytes = encode(&l);
            assert!(bytes.len() < 40, "{} bytes", bytes.len());
            assert_eq!(decode(&bytes), Some(l));
        }
    }

    #[test]
    fn reads_the_first_release() {
        let t = 1_700_000_000_000_000u64;
        let l = decode(&v1_bytes(3, [3, 1_000_000, 7, t, 0, 0])).unwrap();
        assert_eq!(l.state, State::Gcra(GcraState::from_tat_us(&l.rule, t)));
        let l = decode(&v1_bytes(1, [10, 60_000_000, 10, t - t % 60_000_000, 3, 9])).unwrap();
        assert_eq!(l, samples()[0]);
        assert_eq!(
            decode(&v1_bytes(2, [5, 1_000, 5, t, 5, 0])),
            Some(samples()[1].clone())
        );
        // Its strictness holds: counters store burst == limit and zero padding.
        assert_eq!(decode(&v1_bytes(2, [5, 1_000, 7, t, 5, 0])), None);
        assert_eq!(decode(&v1_bytes(2, [5, 1_000, 5, t, 5, 1])), None);
        assert_eq!(decode(&v1_bytes(2, [5, 1_000, 5, t, 5, 0])[..49]), None);
    }

    #[test]
    fn later_versions_are_read_when_they_say_so() {
        for l in samples() {
            let good = encode(&l);
            // Version 3 that version 2 may read, with an extra state field and an extension.
            // Re-encoded by hand: header, rule, a longer state, an extension record.
            let mut later = vec![3, 2];
            let mut r = Reader::new(&good[2..]);
            let tag = r.byte().unwrap();
            later.push(tag);
            put_u64(&mut later, r.u64().unwrap());
            put_u64(&mut later, r.u64().unwrap());
            if tag == 3 {
                put_u64(&mut later, r.u64().unwrap());
            }
            let n = r.u64().unwrap() as usize;
            let mut state = r.take(n).unwrap().to_vec();
            state.push(42); // a field version 2 does not know
            put_u64(&mut later, state.len() as u64);
            later.extend_from_slice(&state);
            later.extend_from_slice(&[9, 2, 0xaa, 0xbb]); // extension 9, 2 bytes
            assert_eq!(decode(&later), Some(l.clone()));
            // The same payload claiming to need a version-3 reader is refused.
            later[1] = 3;
            assert_eq!(decode(&later), None);
            // Version 2 itself must be canonical.
            let mut extra = good.clone();
            extra.extend_from_slice(&[9, 0]);
            assert_eq!(decode(&extra), None);
        }
    }

    #[test]
    fn rejects_damage() {
        for l in samples() {
            let good = encode(&l);
            for n in 0..good.len() {
                assert_eq!(decode(&good[..n]), None, "truncated to {n}");
            }
            let mut v = good.clone();
            v[2] = 9;
            assert_eq!(decode(&v), None, "unknown tag");
            let mut v = good.clone();
            v[0] = 0;
            assert_eq!(decode(&v), None, "version 0");
            let mut v = good.clone();
            v[3] = 0;
            assert_eq!(decode(&v), None, "limit 0");
        }
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn every_single_byte_corruption_is_rejected_or_valid() {
        for l in samples() {
            let good = encode(&l);
            for i in 0..good.len() {
                for b in 0..=255u8 {
                    let mut v = good.clone();
                    v[i] = b;
                    if let Some(d) = decode(&v) {
                        assert!(d.is_valid());
                        if v[0] == PAYLOAD_VERSION {
                            assert_eq!(encode(&d), v, "decoding must be canonical");
                        }
                    }
                }
            }
        }
    }
}
