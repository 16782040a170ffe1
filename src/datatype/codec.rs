//! The one binary encoding of a [`Limiter`], used for RDB, AOF rewrite, replication
//! (`RL.SETSTATE`) and `DEBUG DIGEST`. Pure code.
//!
//! Layout (little-endian), [`PAYLOAD_LEN`] bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version ([`PAYLOAD_VERSION`]) |
//! | 1 | 1 | algorithm tag: 1 sliding-window, 2 fixed-window, 3 gcra |
//! | 2 | 8 | limit |
//! | 10 | 8 | window (µs) |
//! | 18 | 8 | burst (equals limit for the counters) |
//! | 26 | 8×3 | state: sliding `window_start_us, current, previous`; fixed `window_start_us, count, 0`; gcra `tat_us, 0, 0` |
//!
//! Decoding is strict: wrong length, unknown version or tag, a rule that `RL.ALLOW` would refuse,
//! non-zero unused fields, a state that breaks its invariants or one that holds nothing all give
//! `None`. A new algorithm
//! adds a tag; a new field layout bumps the version (and the RDB encoding version).

use crate::algo::{
    Algorithm, FixedWindowState, GcraState, Limiter, Rule, SlidingWindowState, State,
};

/// The version byte this module writes and reads.
pub const PAYLOAD_VERSION: u8 = 1;
/// Encoded size of every limiter.
pub const PAYLOAD_LEN: usize = 2 + 8 * 6;

fn tag(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::SlidingWindow => 1,
        Algorithm::FixedWindow => 2,
        Algorithm::Gcra => 3,
    }
}

fn algorithm(tag: u8) -> Option<Algorithm> {
    match tag {
        1 => Some(Algorithm::SlidingWindow),
        2 => Some(Algorithm::FixedWindow),
        3 => Some(Algorithm::Gcra),
        _ => None,
    }
}

/// Encodes a limiter.
///
/// ```
/// use redis_ratelimit::algo::{Algorithm, GcraState, Limiter, Rule, State};
/// use redis_ratelimit::datatype::codec::{decode, encode};
/// let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
/// let l = Limiter { rule, state: State::Gcra(GcraState { tat_us: 1_700_000_000_000_000 }) };
/// assert_eq!(decode(&encode(&l)), Some(l));
/// ```
pub fn encode(limiter: &Limiter) -> [u8; PAYLOAD_LEN] {
    let rule = &limiter.rule;
    let state = match limiter.state {
        State::SlidingWindow(s) => [s.window_start_us, s.current, s.previous],
        State::FixedWindow(s) => [s.window_start_us, s.count, 0],
        State::Gcra(s) => [s.tat_us, 0, 0],
    };
    let words = [rule.limit(), rule.window_us(), rule.burst()];
    let mut out = [0u8; PAYLOAD_LEN];
    out[0] = PAYLOAD_VERSION;
    out[1] = tag(rule.algorithm());
    for (chunk, word) in out[2..].chunks_exact_mut(8).zip(words.iter().chain(&state)) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// Decodes and validates a limiter; `None` for anything `encode` could not have produced from a
/// valid limiter.
pub fn decode(bytes: &[u8]) -> Option<Limiter> {
    if bytes.len() != PAYLOAD_LEN || bytes.first() != Some(&PAYLOAD_VERSION) {
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
        Algorithm::Gcra if s1 == 0 && s2 == 0 => State::Gcra(GcraState { tat_us: s0 }),
        _ => return None,
    };
    let limiter = Limiter { rule, state };
    // A state that holds nothing is never written (it equals an absent key), so never accepted.
    (limiter.is_valid() && limiter.expires_at_us() > 0).then_some(limiter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Limiter> {
        let t = 1_700_000_000_000_000u64;
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
                rule: Rule::new(Algorithm::Gcra, 10, 1_000_000, Some(3)).unwrap(),
                state: State::Gcra(GcraState { tat_us: t }),
            },
        ]
    }

    #[test]
    fn round_trip() {
        for l in samples() {
            let bytes = encode(&l);
            assert_eq!(bytes.len(), PAYLOAD_LEN);
            assert_eq!(decode(&bytes), Some(l));
        }
    }

    #[test]
    fn rejects_damage() {
        for l in samples() {
            let good = encode(&l);
            assert_eq!(decode(&good[..PAYLOAD_LEN - 1]), None);
            let mut longer = good.to_vec();
            longer.push(0);
            assert_eq!(decode(&longer), None);
            let mut v = good;
            v[0] = 2;
            assert_eq!(decode(&v), None, "unknown version");
            let mut v = good;
            v[1] = 9;
            assert_eq!(decode(&v), None, "unknown tag");
            let mut v = good;
            v[2..10].copy_from_slice(&0u64.to_le_bytes());
            assert_eq!(decode(&v), None, "limit 0");
            let mut v = good;
            v[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
            assert_eq!(decode(&v), None, "window too long");
        }
        // Counters store burst == limit and zero padding.
        let fixed = encode(&samples()[1]);
        let mut v = fixed;
        v[18..26].copy_from_slice(&7u64.to_le_bytes());
        assert_eq!(decode(&v), None);
        let mut v = fixed;
        v[42..50].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(decode(&v), None);
        assert_eq!(decode(&[]), None);
    }

    #[test]
    fn every_single_byte_corruption_is_rejected_or_valid() {
        for l in samples() {
            let good = encode(&l);
            for i in 0..PAYLOAD_LEN {
                for b in [0u8, 1, 0x7f, 0xff] {
                    let mut v = good;
                    v[i] = b;
                    if let Some(d) = decode(&v) {
                        assert!(d.is_valid());
                        assert_eq!(encode(&d), v, "decoding must be canonical");
                    }
                }
            }
        }
    }
}
