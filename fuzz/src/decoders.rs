//! Every decoder of the `ratelimit` type: arbitrary bytes are refused or read as a valid value,
//! never misread (a payload of this version is canonical: re-encoding gives the same bytes; an
//! older or later one re-encodes to a payload that reads back the same), never a crash, and
//! never allocate out of proportion with their length. What a decoded value then goes through
//! on the server (RL.ALLOW / RL.PEEK at various times, RL.INSPECT, replication) keeps every
//! invariant too.

use redis_ratelimit::algo::leases::{
    self, decode_effect, encode_effect, Acquire, LeaseId, EFFECT_VERSION, MAX_LEASES,
};
use redis_ratelimit::algo::moving_window::FORMAT_MAX_RUNS;
use redis_ratelimit::algo::{
    Algorithm, Bounds, Limiter, Outcome, Replication, Rule, State, MAX_COUNT, MAX_TIMESTAMP_US,
    MAX_WINDOW_US,
};
use redis_ratelimit::datatype::codec::{
    decode, decode_hit, encode, encode_hit, HIT_VERSION, MIN_READER_VERSION, PAYLOAD_VERSION,
};

use crate::algos::{replicate_lease, Node, Op};
use crate::alloc::within;

/// A decoder of bytes the module receives from outside.
pub struct Decoder {
    /// The fuzz target's name (`fuzz/fuzz_targets/<name>.rs`).
    pub name: &'static str,
    /// What reaches it.
    pub sources: &'static str,
    /// Decodes and checks.
    pub check: fn(&[u8]),
}

/// Every decoder. A new payload form = one line here and a three-line target file.
pub const DECODERS: &[Decoder] = &[
    Decoder {
        name: "decode",
        sources: "RDB values, DUMP/RESTORE, RL.SETSTATE (replication, AOF)",
        check: check_state,
    },
    Decoder {
        name: "decode_hit",
        sources: "RL.APPLY of a rate limit's hit (replication, AOF)",
        check: check_hit,
    },
    Decoder {
        name: "decode_effect",
        sources: "RL.APPLY of a lease effect (replication, AOF)",
        check: check_effect,
    },
];

/// Runs the decoder called `name`.
pub fn run(name: &str, data: &[u8]) {
    let decoder = DECODERS.iter().find(|d| d.name == name);
    (decoder.unwrap_or_else(|| panic!("no decoder {name}")).check)(data);
}

/// What decoding `len` bytes may allocate at most: a constant plus a few bytes per byte read
/// (a moving-window log holds its runs as varints, as the payload does).
pub fn decode_budget(len: usize) -> usize {
    1024 + 4 * len
}

/// What decoding a state payload may allocate: [`decode_budget`], and for a lease key (tag 6 in
/// the payload's third byte) 1 KiB + 10 bytes per byte: a lease is 24 bytes in memory and at
/// least 3 in the payload, and the vector is reserved once for what the bytes can hold.
pub fn state_budget(bytes: &[u8]) -> usize {
    if bytes.get(2) == Some(&Algorithm::Leases.tag()) {
        1024 + 10 * bytes.len()
    } else {
        decode_budget(bytes.len())
    }
}

/// What a decoded value's later commands may allocate (copies of the value, one more run).
pub fn use_budget(len: usize) -> usize {
    16 * 1024 + 16 * len
}

fn check_state(bytes: &[u8]) {
    let Some(l) = within("decode", state_budget(bytes), || decode(bytes)) else {
        return;
    };
    assert!(l.is_valid(), "decoded an invalid {l:?}");
    assert!(l.expires_at_us() > 0, "decoded an empty {l:?}");
    let again = encode(&l);
    if bytes.first() == Some(&PAYLOAD_VERSION) {
        assert_eq!(bytes.get(1), Some(&MIN_READER_VERSION));
        assert_eq!(
            again, bytes,
            "a payload of this version is not canonical: {l:?}"
        );
    } else {
        assert_eq!(
            decode(&again).as_ref(),
            Some(&l),
            "an older/later payload re-encodes wrong"
        );
    }
    within(
        "commands on a decoded value",
        use_budget(bytes.len()),
        || exercise(&l),
    );
}

/// What the server does with a restored value: look at it and write to it at telling times
/// (`RL.ALLOW`, `RL.PEEK`, with and without `BLOCK`, `RL.CHARGE`, `RL.REFUND`; `RL.ACQUIRE`,
/// `RL.RELEASE` on leases), replicating each write.
fn exercise(l: &Limiter) {
    if !l.rule.algorithm().is_rate_limit() {
        return exercise_leases(l);
    }
    // The algorithms' guarantees hold for a clock well before MAX_TIMESTAMP_US (year 9999).
    let exp = l.expires_at_us();
    let clock = |t: u64| t.min(MAX_TIMESTAMP_US / 2);
    let times = [
        0,
        1_700_000_000_000_000,
        exp - 1,
        exp,
        exp.saturating_add(1),
    ]
    .map(clock);
    let own = l.rule;
    let a = own.algorithm();
    // Its own rule, and others a request may bring (the state is then carried over).
    let others = [
        Rule::new(a, 1, 1, None),
        Rule::new(a, MAX_COUNT, MAX_WINDOW_US, None),
        Rule::new(
            a,
            own.limit().saturating_mul(2).min(MAX_COUNT),
            (own.window_us() / 2).max(1),
            None,
        ),
    ];
    let _ = l.inspect(exp.saturating_sub(1));
    for now in times {
        for cost in [0, 1, own.capacity()] {
            let mut node = Node {
                stored: Some(l.clone()),
                replica: Some(l.clone()),
            };
            node.request(&own, cost, now, &Bounds::DEFAULT);
            node.request(&own, 1, now.saturating_add(1), &Bounds::DEFAULT);
        }
        // Debts, refunds and blocks on it.
        let mut node = Node {
            stored: Some(l.clone()),
            replica: Some(l.clone()),
        };
        let cap = own.capacity();
        for op in [
            Op::Peek {
                cost: 1,
                block_us: 1_000,
            },
            Op::Allow {
                cost: 1,
                block_us: 1_000,
            },
            Op::Charge(cap),
            Op::Refund(1),
            Op::Allow {
                cost: cap,
                block_us: 0,
            },
            Op::Refund(MAX_COUNT),
        ] {
            node.op(&own, op, now, &Bounds::DEFAULT);
        }
    }
    for rule in others.into_iter().flatten() {
        for now in [times[1], times[3]] {
            let mut node = Node {
                stored: Some(l.clone()),
                replica: Some(l.clone()),
            };
            node.request(&rule, 1, now, &Bounds::DEFAULT);
            node.request(
                &rule,
                rule.capacity(),
                now.saturating_add(1),
                &Bounds::DEFAULT,
            );
        }
    }
}

/// `RL.ACQUIRE` (new, renewal, another id) and `RL.RELEASE` on a decoded lease key at telling
/// times, each effect replicated through its payload.
fn exercise_leases(l: &Limiter) {
    let State::Leases(s) = &l.state else {
        panic!("a lease key holds {l:?}");
    };
    let exp = l.expires_at_us();
    let first = s.leases().next().map(|x| x.id.clone());
    let limit = l.rule.limit().min(MAX_LEASES);
    let times = [1_700_000_000_000_000, exp - 1, exp, exp.saturating_add(1)]
        .map(|t: u64| t.min(MAX_TIMESTAMP_US / 2));
    for now in times {
        let mut key = Some(l.clone());
        let mut replica = Some(l.clone());
        let ids = [None, first.clone(), LeaseId::parse(b"fuzz")];
        for (i, id) in ids.into_iter().enumerate() {
            let Ok(req) = Acquire::new(limit, l.rule.window_us(), id) else {
                continue;
            };
            let t = now.saturating_add(i as u64);
            let v = leases::acquire(key.as_mut(), &req, t).expect("a lease key");
            match v.outcome {
                Outcome::Created(l) => key = Some(l),
                Outcome::Emptied => key = None,
                Outcome::Updated | Outcome::Unchanged => {}
            }
            if let Some(e) = &v.effect {
                replicate_lease(&mut replica, key.as_ref(), e);
            }
            assert_eq!(key, replica, "replica after {req:?} at {t}");
        }
        if let Some(id) = &first {
            let r = leases::release(key.as_mut(), id, now.saturating_add(5)).expect("a lease key");
            match r.outcome {
                Outcome::Created(l) => key = Some(l),
                Outcome::Emptied => key = None,
                Outcome::Updated | Outcome::Unchanged => {}
            }
            if let Some(e) = &r.effect {
                replicate_lease(&mut replica, key.as_ref(), e);
            }
            assert_eq!(key, replica, "replica after a release at {now}");
        }
        if let Some(k) = &key {
            assert!(k.is_valid(), "{k:?}");
            assert_eq!(decode(&encode(k)).as_ref(), Some(k));
        }
        // A rate limit's request on it is refused.
        let other = Rule::new(Algorithm::FixedWindow, 1, 1, None).expect("a rule");
        assert!(Limiter::peek(Some(l), &other, 1, now).is_err());
    }
}

/// A lease effect (`RL.APPLY key effect`): refused, or an effect whose payload of this version
/// is canonical; replaying it on an absent key, then again, leaves valid states.
fn check_effect(bytes: &[u8]) {
    let Some((effect, after)) = within("decode_effect", decode_budget(bytes.len()), || {
        decode_effect(bytes)
    }) else {
        return;
    };
    assert!(leases::is_effect(bytes));
    assert!(effect.now_us() <= MAX_TIMESTAMP_US, "{effect:?}");
    if bytes.first() == Some(&EFFECT_VERSION) {
        let again = encode_effect(&effect, after.unwrap_or(u64::MAX));
        assert_eq!(
            again.as_slice(),
            bytes,
            "an effect of this version is not canonical: {effect:?} {after:?}"
        );
    }
    within(
        "replaying a decoded effect",
        use_budget(bytes.len()),
        || {
            let mut key: Option<Limiter> = None;
            for _ in 0..2 {
                let Ok(outcome) = leases::replay(key.as_mut(), &effect) else {
                    return;
                };
                match outcome {
                    Outcome::Created(l) => key = Some(l),
                    Outcome::Emptied => key = None,
                    Outcome::Updated | Outcome::Unchanged => {}
                }
                if let Some(l) = &key {
                    assert!(l.is_valid(), "replay left an invalid {l:?}");
                    assert_eq!(decode(&encode(l)).as_ref(), Some(l));
                }
            }
        },
    );
}

fn check_hit(bytes: &[u8]) {
    let Some(hit) = within("decode_hit", decode_budget(bytes.len()), || {
        decode_hit(bytes)
    }) else {
        return;
    };
    let algorithm = hit.rule.algorithm();
    assert_eq!(algorithm.replication(), Replication::Hits, "{hit:?}");
    assert!(
        hit.now_us <= MAX_TIMESTAMP_US && hit.cost <= MAX_COUNT,
        "{hit:?}"
    );
    assert!(
        (2..=FORMAT_MAX_RUNS).contains(&hit.bounds.max_runs),
        "{hit:?}"
    );
    let again = encode_hit(&hit);
    assert_eq!(decode_hit(again.as_slice()), Some(hit), "hit round trip");
    if bytes.first().is_some_and(|&v| v <= HIT_VERSION) {
        assert_eq!(
            again.as_slice(),
            bytes,
            "a hit of a known version is not canonical: {hit:?}"
        );
    }
    within("replaying a decoded hit", use_budget(bytes.len()), || {
        // On an absent key, then again on what that left (a replica applying it twice).
        let mut key: Option<Limiter> = None;
        for _ in 0..2 {
            let outcome = Limiter::replay(key.as_mut(), &hit).expect("a hit kind replays");
            match outcome {
                Outcome::Created(l) => key = Some(l),
                Outcome::Emptied => key = None,
                Outcome::Updated | Outcome::Unchanged => {}
            }
            if let Some(l) = &key {
                assert!(l.is_valid(), "replay left an invalid {l:?}");
                assert_eq!(decode(&encode(l)).as_ref(), Some(l));
            }
        }
    });
}
