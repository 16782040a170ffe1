//! The one binary encoding of a [`Limiter`], used for RDB, AOF rewrite, replication
//! (`RL.SETSTATE`) and `DEBUG DIGEST`, and of a replicated hit (`RL.APPLY`). Pure code: each
//! kind encodes its own state ([`crate::algo::Kind::encode`]); this file is the envelope.
//!
//! ## Versions 2 and 3 (written by this release)
//!
//! | field | encoding |
//! |---|---|
//! | format version ([`PAYLOAD_VERSION`], or [`EXTENDED_VERSION`]) | 1 byte |
//! | oldest reader version that can read it (the same) | 1 byte |
//! | algorithm tag: 1 sliding-window, 2 fixed-window, 3 gcra, 4 moving-window, 5 limits-sliding-window, 6 leases | 1 byte |
//! | limit, window (µs) | varints |
//! | burst | varint, gcra only |
//! | state length, then the state | varint, bytes |
//! | extensions: (id, length, bytes) records | varints, bytes |
//!
//! States (each kind's `encode`): sliding `window_start_us current previous`; fixed
//! `window_start_us count`; gcra `tat × limit` (a varint of up to 128 bits), then flags `1`
//! after a debt (version 3 only); moving-window the number of runs, then each run's timestamp
//! (the first absolute, then the gap to the previous one) and count; leases `longest_us last_id
//! n`, then each lease's end (the first absolute, then the gap) and id (a length, 0 for a number
//! followed by the number, else the bytes); for leases `limit window` are the last
//! `RL.ACQUIRE`'s limit and lease. All integers are LEB128 varints ([`crate::varint`]). A
//! release that does not know a tag refuses the payload (the previous release refuses leases
//! this way).
//!
//! A key with neither a penalty block nor a gcra debt is written in version 2, byte for byte
//! what the previous release wrote (so its replicas and RDB files keep up during a rolling
//! upgrade). A key with either is written in **version 3, oldest reader 3**: the previous
//! release cannot honour a block or a debt (it would admit during the block, or read the debt
//! as a clock step and clamp it away), so it must refuse such a payload rather than misread it,
//! and it does. Version 3's one extension record: id 1, the block, `start_us until_us`.
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
//! that breaks its invariants or one that holds nothing all give `None`. Nothing is allocated
//! beyond what was read (a declared length or count reserves nothing).
//!
//! ## Hits (`RL.APPLY`)
//!
//! (A lease write replicates its own effect through `RL.APPLY`, tag 6: see
//! `algo::leases::encode_effect`.)
//!
//! A hit is what a moving-window write changed, in O(1) bytes whatever the log's size: header
//! `version, oldest reader, tag`, then varints `limit window now_us cost` (cost 0 = a conversion
//! without a charge).
//!
//! * **Version 2** (the previous release's only form): exactly those fields. It means "replay
//!   as that release did": a run of its own, the two oldest merged at 100,000 runs. This release
//!   still writes it when that replay gives the same log (the default cap, a log below the
//!   coalescing threshold), so a replica still on the previous release keeps up during a
//!   rolling upgrade.
//! * **Version 3**, oldest reader 3: the same fields, then extension records
//!   `(id, length, bytes)`: id 1 the master's run cap (replay needs it: nodes may be configured
//!   differently), id 2 `runs total` of the master's log after the write (the replica checks its
//!   own and counts a mismatch).
//! * **Version 4**, oldest reader 4: version 3's fields and records, and record id 3 (empty) for
//!   a refund (`RL.REFUND`: the cost is given back, newest runs first) or id 4 `start_us
//!   until_us` for the key's penalty block after the write. Written only when one of them is
//!   present: the previous release, which knows neither, refuses such a hit.
//! * Records come in increasing id order, each at most once, in every version (so a hit has one
//!   encoding; a repeated or out-of-order record is refused).
//! * A later version is read when its oldest-reader byte is at most 4, ignoring records this
//!   release does not know — the same rule as for states.

use crate::algo::moving_window::FORMAT_MAX_RUNS;
use crate::algo::{
    Algorithm, Block, Bounds, FixedWindowState, GcraState, Hit, Limiter, Replication, Rule,
    SlidingWindowState, State, MAX_COUNT, MAX_TIMESTAMP_US,
};
use crate::varint::{put_u64, Reader, Sink, StackBuf};

/// The format version this module writes for the states of keys without a block or a debt.
pub const PAYLOAD_VERSION: u8 = 2;
/// The oldest reader version that can read those.
pub const MIN_READER_VERSION: u8 = 2;
/// The version (and oldest reader) of a state with a block or a gcra debt; the newest known.
pub const EXTENDED_VERSION: u8 = 3;
/// The version of the hits this module writes when the previous one cannot express them.
pub const HIT_VERSION: u8 = 3;
/// The version (and oldest reader) of a hit with a refund or a block; the newest known.
pub const SETTLE_HIT_VERSION: u8 = 4;

const V1: u8 = 1;
const V1_LEN: usize = 2 + 8 * 6;

/// Hit extension records.
const EXT_MAX_RUNS: u64 = 1;
const EXT_AFTER: u64 = 2;
const EXT_REFUND: u64 = 3;
const EXT_HIT_BLOCK: u64 = 4;

/// State extension records.
const EXT_BLOCK: u64 = 1;

/// Whether a limiter needs a version-3 payload (a block, or a state the kind says needs it).
fn extended(limiter: &Limiter) -> bool {
    limiter.state.block().is_some() || limiter.state.needs_current_reader()
}

/// Encodes a limiter (version 2, or 3 with a block or a debt) into `out`: a counter's payload
/// without a block fits a [`StackBuf`] of 64 bytes.
pub fn encode_into(limiter: &Limiter, out: &mut impl Sink) {
    let rule = &limiter.rule;
    let algorithm = rule.algorithm();
    let version = if extended(limiter) {
        EXTENDED_VERSION
    } else {
        PAYLOAD_VERSION
    };
    out.push_bytes(&[version, version, algorithm.tag()]);
    put_u64(out, rule.limit());
    put_u64(out, rule.window_us());
    if algorithm.takes_burst() {
        put_u64(out, rule.burst());
    }
    let mut state = StackBuf::<48>::new();
    limiter.state.encode(&mut state);
    put_u64(
        out,
        u64::try_from(state.as_slice().len()).unwrap_or(u64::MAX),
    );
    out.push_bytes(state.as_slice());
    if let Some(block) = limiter.state.block() {
        put_block(out, EXT_BLOCK, &block);
    }
}

fn put_block(out: &mut impl Sink, id: u64, block: &Block) {
    let mut record = StackBuf::<24>::new();
    put_u64(&mut record, block.start_us);
    put_u64(&mut record, block.until_us);
    put_record(out, id, record.as_slice());
}

/// A block record's value; `None` unless valid.
fn read_block(record: &mut Reader<'_>) -> Option<Block> {
    let block = Block {
        start_us: record.u64()?,
        until_us: record.u64()?,
    };
    block.is_valid().then_some(block)
}

/// Encodes a limiter (version 2, or 3 with a block or a debt).
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
    let mut out = Vec::with_capacity(32);
    encode_into(limiter, &mut out);
    out
}

/// Decodes and validates a limiter of any version this module reads; `None` for anything else.
pub fn decode(bytes: &[u8]) -> Option<Limiter> {
    let limiter = match bytes.first()? {
        &V1 => decode_v1(bytes)?,
        _ => decode_versioned(bytes)?,
    };
    // A state that holds nothing is never written (it equals an absent key), so never accepted.
    (limiter.is_valid() && limiter.expires_at_us() > 0).then_some(limiter)
}

/// The header rule shared by states and hits: `(readable, later)` for a payload of `version`
/// needing `min_reader`, when this module writes `current` (needing `current_min`).
fn readable(version: u8, min_reader: u8, current: u8, current_min: u8) -> (bool, bool) {
    let later = version > current;
    let ok = if later {
        min_reader <= current
    } else {
        version == current && min_reader == current_min
    };
    (ok, later)
}

/// The rule fields of a payload: tag, limit, window, and the burst where the kind takes one.
fn decode_rule(r: &mut Reader<'_>) -> Option<Rule> {
    let algorithm = Algorithm::from_tag(r.byte()?)?;
    let limit = r.u64()?;
    let window_us = r.u64()?;
    let burst = if algorithm.takes_burst() {
        Some(r.u64()?)
    } else {
        None
    };
    Rule::new(algorithm, limit, window_us, burst).ok()
}

fn decode_versioned(bytes: &[u8]) -> Option<Limiter> {
    let mut r = Reader::new(bytes);
    let version = r.byte()?;
    let min_reader = r.byte()?;
    let v2 = version == PAYLOAD_VERSION && min_reader == MIN_READER_VERSION;
    let (ok, later) = readable(version, min_reader, EXTENDED_VERSION, EXTENDED_VERSION);
    if !v2 && !ok {
        return None;
    }
    let rule = decode_rule(&mut r)?;
    let state_len = usize::try_from(r.u64()?).ok()?;
    let mut s = Reader::new(r.take(state_len)?);
    let mut state = rule.algorithm().decode_state(&mut s, &rule, !v2)?;
    // Later versions may append state fields and extension records that this one ignores.
    if !later && !s.is_empty() {
        return None;
    }
    let mut block = None;
    while !r.is_empty() {
        let id = r.u64()?;
        let len = usize::try_from(r.u64()?).ok()?;
        let mut record = Reader::new(r.take(len)?);
        match id {
            // Penalty blocks are for rate limits: leases take none (in any version).
            EXT_BLOCK if !rule.algorithm().is_rate_limit() => return None,
            EXT_BLOCK if !v2 && block.is_none() => block = Some(read_block(&mut record)?),
            _ if later => continue,
            _ => return None,
        }
        if !later && !record.is_empty() {
            return None;
        }
    }
    state.set_block(block);
    let limiter = Limiter { rule, state };
    // This release writes version 3 exactly for a block or a debt, and canonically: the bytes
    // of a payload in a version it writes are the ones it would write.
    if !later && (v2 == extended(&limiter) || !v2 && encode(&limiter) != bytes) {
        return None;
    }
    Some(limiter)
}

/// Encodes a replicated hit (see the module docs): version 2 when the previous release's replay
/// gives the same log, else version 3 with the cap and the master's `runs total`.
///
/// ```
/// use redis_ratelimit::algo::{Algorithm, Bounds, Hit, Rule};
/// use redis_ratelimit::datatype::codec::{decode_hit, encode_hit};
/// let rule = Rule::new(Algorithm::MovingWindow, 10, 60_000_000, None).unwrap();
/// let hit = Hit {
///     rule, now_us: 1_700_000_000_000_000, cost: 1_000_000, bounds: Bounds::DEFAULT,
///     after: None, needs_current_replay: false, refund: false, block: None,
/// };
/// let bytes = encode_hit(&hit);
/// assert!(bytes.as_slice().len() < 24);
/// assert_eq!(decode_hit(bytes.as_slice()), Some(hit));
/// ```
pub fn encode_hit(hit: &Hit) -> StackBuf<64> {
    let mut out = StackBuf::<64>::new();
    let settle = hit.refund || hit.block.is_some();
    let version = if settle {
        SETTLE_HIT_VERSION
    } else if hit.needs_current_replay {
        HIT_VERSION
    } else {
        PAYLOAD_VERSION
    };
    out.push_bytes(&[version, version, hit.rule.algorithm().tag()]);
    for v in [hit.rule.limit(), hit.rule.window_us(), hit.now_us, hit.cost] {
        put_u64(&mut out, v);
    }
    if hit.needs_current_replay || settle {
        let max_runs = u64::try_from(hit.bounds.max_runs).unwrap_or(u64::MAX);
        let mut record = StackBuf::<24>::new();
        put_u64(&mut record, max_runs);
        put_record(&mut out, EXT_MAX_RUNS, record.as_slice());
        if let Some((runs, total)) = hit.after {
            let mut record = StackBuf::<24>::new();
            put_u64(&mut record, runs);
            put_u64(&mut record, total);
            put_record(&mut out, EXT_AFTER, record.as_slice());
        }
        if hit.refund {
            put_record(&mut out, EXT_REFUND, &[]);
        }
        if let Some(block) = &hit.block {
            put_block(&mut out, EXT_HIT_BLOCK, block);
        }
    }
    out
}

fn put_record(out: &mut impl Sink, id: u64, bytes: &[u8]) {
    put_u64(out, id);
    put_u64(out, u64::try_from(bytes.len()).unwrap_or(u64::MAX));
    out.push_bytes(bytes);
}

/// Decodes an [`encode_hit`] payload of any version this module reads, for a kind that
/// replicates hits, with its time and cap within bounds; `None` otherwise.
pub fn decode_hit(bytes: &[u8]) -> Option<Hit> {
    let mut r = Reader::new(bytes);
    let version = r.byte()?;
    let min_reader = r.byte()?;
    let v2 = version == PAYLOAD_VERSION && min_reader == MIN_READER_VERSION;
    let v3 = version == HIT_VERSION && min_reader == HIT_VERSION;
    let (ok, later) = readable(version, min_reader, SETTLE_HIT_VERSION, SETTLE_HIT_VERSION);
    if !v2 && !v3 && !ok {
        return None;
    }
    let v4 = ok && !later;
    let algorithm = Algorithm::from_tag(r.byte()?)?;
    if algorithm.replication() != Replication::Hits || algorithm.takes_burst() {
        return None;
    }
    let rule = Rule::new(algorithm, r.u64()?, r.u64()?, None).ok()?;
    let (now_us, cost) = (r.u64()?, r.u64()?);
    if now_us > MAX_TIMESTAMP_US || cost > MAX_COUNT {
        return None;
    }
    let mut hit = Hit {
        rule,
        now_us,
        cost,
        bounds: Bounds::DEFAULT,
        after: None,
        needs_current_replay: !v2,
        refund: false,
        block: None,
    };
    if v2 {
        return r.is_empty().then_some(hit);
    }
    let mut max_runs = None;
    r.records(later, |id, record| {
        match id {
            EXT_MAX_RUNS => {
                let n = usize::try_from(record.u64()?).ok()?;
                max_runs = Some(n).filter(|n| (2..=FORMAT_MAX_RUNS).contains(n));
                max_runs?;
            }
            EXT_AFTER => hit.after = Some((record.u64()?, record.u64()?)),
            EXT_REFUND if !v3 && !hit.refund => hit.refund = true,
            EXT_HIT_BLOCK if !v3 && hit.block.is_none() => hit.block = Some(read_block(record)?),
            _ => return Some(false),
        }
        Some(true)
    })?;
    hit.bounds = Bounds {
        max_runs: max_runs?,
    };
    // Version 4 is written exactly when there is a refund or a block.
    if v4 && !hit.refund && hit.block.is_none() {
        return None;
    }
    Some(hit)
}

fn decode_v1(bytes: &[u8]) -> Option<Limiter> {
    if bytes.len() != V1_LEN {
        return None;
    }
    let algorithm = Algorithm::from_tag(*bytes.get(1)?)?;
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
    // The first release's fixed layout of its three kinds.
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
    use crate::algo::MovingWindowState;

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
                    debt: false,
                }),
            },
            Limiter {
                rule: Rule::new(Algorithm::MovingWindow, 100, 60_000_000, None).unwrap(),
                state: State::MovingWindow(
                    MovingWindowState::from_runs([(t, 3), (t + 1, 1), (t + 70_000, 96)]).unwrap(),
                ),
            },
            Limiter {
                rule: Rule::new(Algorithm::LimitsSlidingWindow, 10, 60_000_000, None).unwrap(),
                state: State::LimitsSlidingWindow(crate::algo::LimitsSlidingState::new(
                    4,
                    t / 1000 + 90_000,
                    7,
                    t / 1000 + 30_000,
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
            // Version 4 that version 3 may read, with an extra state field and an extension.
            // Re-encoded by hand: header, rule, a longer state, an extension record.
            let mut later = vec![4, 3];
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
            if tag == 3 {
                state.push(0); // version 3's gcra flags: no debt
            }
            state.push(42); // a field version 3 does not know
            put_u64(&mut later, state.len() as u64);
            later.extend_from_slice(&state);
            later.extend_from_slice(&[9, 2, 0xaa, 0xbb]); // extension 9, 2 bytes
            assert_eq!(decode(&later), Some(l.clone()));
            // The same payload claiming to need a version-4 reader is refused.
            later[1] = 4;
            assert_eq!(decode(&later), None);
            // Version 2 itself must be canonical.
            let mut extra = good.clone();
            extra.extend_from_slice(&[9, 0]);
            assert_eq!(decode(&extra), None);
        }
    }

    /// Found by `scripts/fuzz` (decode_hit): a version-3 hit with its `after` record twice was
    /// read (the second one counting), so one hit had several encodings.
    #[test]
    fn hit_records_are_canonical() {
        let head = [
            3, 3, 4, 232, 7, 128, 173, 226, 4, 160, 141, 255, 192, 193, 7, 0,
        ];
        let with = |records: &[u8]| [&head[..], records].concat();
        let canonical = with(&[1, 2, 232, 7, 2, 2, 40, 40]);
        let hit = decode_hit(&canonical).unwrap();
        assert_eq!((hit.bounds.max_runs, hit.after), (1_000, Some((40, 40))));
        assert_eq!(encode_hit(&hit).as_slice(), canonical);
        for bad in [
            with(&[2, 2, 3, 2, 1, 2, 232, 7, 2, 2, 40, 40]), // the fuzz input: `after` twice
            with(&[2, 2, 40, 40, 1, 2, 232, 7]),             // out of order
            with(&[1, 2, 232, 7, 1, 2, 232, 7, 2, 2, 40, 40]), // the cap twice
        ] {
            assert_eq!(decode_hit(&bad), None, "{bad:?}");
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
        for l in samples().into_iter().chain(extended_samples()) {
            let good = encode(&l);
            for i in 0..good.len() {
                for b in 0..=255u8 {
                    let mut v = good.clone();
                    v[i] = b;
                    if let Some(d) = decode(&v) {
                        assert!(d.is_valid());
                        if v[0] == PAYLOAD_VERSION || v[0] == EXTENDED_VERSION {
                            assert_eq!(encode(&d), v, "decoding must be canonical");
                        }
                    }
                }
            }
        }
    }

    /// Limiters with a block or a gcra debt (written in version 3).
    fn extended_samples() -> Vec<Limiter> {
        let t = 1_700_000_000_000_000u64;
        let block = Block {
            start_us: t,
            until_us: t + 900_000_000,
        };
        let mut out: Vec<Limiter> = samples()
            .into_iter()
            .map(|mut l| {
                l.state.set_block(Some(block));
                l
            })
            .collect();
        let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap();
        let debt = GcraState {
            tat_scaled: u128::from(t + 1_500_000) * 10,
            debt: true,
        };
        out.push(Limiter {
            rule,
            state: State::Gcra(debt),
        });
        let mut both = State::Gcra(debt);
        both.set_block(Some(block));
        out.push(Limiter { rule, state: both });
        out
    }

    /// Found by `scripts/fuzz` (decode): a lease key's payload with a block record was read as
    /// a blocked lease key (which no command writes, and on which RL.ACQUIRE then failed as
    /// if the key held another kind). Leases take no block, in any version.
    #[test]
    fn a_lease_key_with_a_block_is_refused() {
        use crate::algo::leases::{Lease, LeaseId, LeasesState};
        let t = 1_700_000_000_000_000u64;
        let rule = Rule::new(Algorithm::Leases, 5, 30_000_000, None).unwrap();
        let leases = vec![Lease::new(t + 30_000_000, LeaseId::Num(7))];
        let plain = Limiter {
            rule,
            state: State::Leases(LeasesState::from_parts(leases, 30_000_000, 7).unwrap()),
        };
        assert_eq!(decode(&encode(&plain)), Some(plain.clone()));
        let mut blocked = plain.clone();
        blocked.state.set_block(Some(Block {
            start_us: t,
            until_us: t + 60_000_000,
        }));
        let bytes = encode(&blocked);
        assert_eq!(decode(&bytes), None);
        // Nor from a later version that this one may read.
        let mut later = bytes.clone();
        later[0] = 9;
        assert_eq!(decode(&later), None);
        let found = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/decode/lease-key-with-a-block"
        ))
        .unwrap();
        assert_eq!(decode(&found), None);
    }

    #[test]
    fn blocks_and_debts_need_a_current_reader() {
        for l in extended_samples() {
            let bytes = encode(&l);
            // Version 3, oldest reader 3: the previous release (2) refuses it.
            assert_eq!(bytes[..2], [EXTENDED_VERSION, EXTENDED_VERSION]);
            assert_eq!(decode(&bytes), Some(l.clone()));
            // The same bytes labelled version 2 are refused, not misread.
            let mut v2 = bytes.clone();
            v2[..2].copy_from_slice(&[2, 2]);
            assert_eq!(decode(&v2), None);
        }
        // Without block or debt, version 2 exactly as before.
        for l in samples() {
            assert_eq!(encode(&l)[..2], [2, 2]);
            let mut v3 = encode(&l);
            v3[..2].copy_from_slice(&[3, 3]);
            assert_eq!(
                decode(&v3),
                None,
                "version 3 is written only for a block or a debt"
            );
        }
    }

    #[test]
    fn refund_and_block_hits_are_version_4() {
        let rule = Rule::new(Algorithm::MovingWindow, 10, 60_000_000, None).unwrap();
        let t = 1_700_000_000_000_000u64;
        let plain = Hit {
            rule,
            now_us: t,
            cost: 3,
            bounds: Bounds::DEFAULT,
            after: Some((2, 5)),
            needs_current_replay: true,
            refund: false,
            block: None,
        };
        let block = Some(Block {
            start_us: t,
            until_us: t + 1,
        });
        for hit in [
            Hit {
                refund: true,
                ..plain
            },
            Hit { block, ..plain },
            Hit {
                refund: true,
                block,
                ..plain
            },
        ] {
            let bytes = encode_hit(&hit);
            assert_eq!(
                bytes.as_slice()[..2],
                [SETTLE_HIT_VERSION, SETTLE_HIT_VERSION]
            );
            assert_eq!(decode_hit(bytes.as_slice()), Some(hit));
            // Labelled version 3, the previous release's newest, it is refused.
            let mut v3 = bytes.as_slice().to_vec();
            v3[..2].copy_from_slice(&[3, 3]);
            assert_eq!(decode_hit(&v3), None);
        }
        let bytes = encode_hit(&plain);
        assert_eq!(bytes.as_slice()[..2], [HIT_VERSION, HIT_VERSION]);
        let mut v4 = bytes.as_slice().to_vec();
        v4[..2].copy_from_slice(&[4, 4]);
        assert_eq!(
            decode_hit(&v4),
            None,
            "version 4 only with a refund or a block"
        );
    }
}
