//! Algorithm invariants: random operation sequences (read from the fuzzer's bytes) against the
//! reference models of `src/algo/reference.rs`, for every kind, with the invariants every kind
//! keeps checked at each step ([`Node::request`]): peek = decide, written states valid and
//! expiring exactly `reset_after` later, RDB round trip, and replication — the replica that
//! receives the write's effect (`RL.SETSTATE` state or `RL.APPLY` hit, through the codec) ends
//! equal to the master.
//!
//! The first byte picks the kind from `Algorithm::ALL`, so a new kind is fuzzed with the generic
//! invariants at once; its reference model is one line in [`MODELS`].

use redis_ratelimit::algo::leases::reference::Model as LeaseModel;
use redis_ratelimit::algo::leases::{self, decode_effect, encode_effect, Acquire, LeaseId};
use redis_ratelimit::algo::reference::{
    self, BucketRef, FixedRef, LimitsLua, LogRef, Model, SlidingRef,
};
use redis_ratelimit::algo::settle_reference::{reference_op, RefKey};
pub use redis_ratelimit::algo::settle_reference::{Did, Op};
use redis_ratelimit::algo::{
    Algorithm, Bounds, Decision, Hit, Limiter, Outcome, RetryAfter, Rule, State, Verdict,
    MAX_BLOCK_US, MAX_COUNT, MAX_TIMESTAMP_US, MAX_WINDOW_US,
};
use redis_ratelimit::datatype::codec::{decode, decode_hit, encode, encode_hit};

use crate::input::Input;

/// A kind's reference: a sequence driver comparing the kind with its model.
pub type Driver = fn(&mut Input<'_>, Algorithm) -> Option<()>;

/// The reference model of each kind: its `RL.ALLOW` sequences, and its sequences of
/// `RL.ALLOW` / `RL.PEEK` with `BLOCK`, `RL.CHARGE` and `RL.REFUND` (the debts' and blocks'
/// reference, `settle_reference.rs`). A kind missing here, or a missing driver, runs
/// [`generic`].
pub const MODELS: &[(Algorithm, Driver, Option<Driver>)] = &[
    (
        Algorithm::SlidingWindow,
        compare::<SlidingRef>,
        Some(compare_settle::<SlidingRef>),
    ),
    (
        Algorithm::FixedWindow,
        compare::<FixedRef>,
        Some(compare_settle::<FixedRef>),
    ),
    (
        Algorithm::Gcra,
        compare::<BucketRef>,
        Some(compare_settle::<BucketRef>),
    ),
    (
        Algorithm::MovingWindow,
        compare::<LogRef>,
        Some(compare_settle::<LogRef>),
    ),
    (Algorithm::LimitsSlidingWindow, compare_limits, None),
    (Algorithm::Leases, compare_leases, None),
];

/// Steps per input at most (the reference models search by brute force).
pub const MAX_STEPS: usize = 200;

/// Around 2024 in µs: realistic timestamps, far from 0 so steps back stay positive.
pub const BASE_US: u64 = 1_700_000_000_000_000;

/// The `algo` target: the first byte picks the kind, the second the driver (one input in five
/// the invariants alone, with a tiny run cap; of the others, half the plain sequences, half the
/// settle/block sequences).
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(algorithm) = input.pick(Algorithm::ALL) else {
        return;
    };
    let Some(mode) = input.range(0, 99) else {
        return;
    };
    let (plain, settle) = MODELS
        .iter()
        .find(|(a, ..)| *a == algorithm)
        .map_or((None, None), |(_, p, s)| (Some(*p), *s));
    let settle_ops = mode % 2 == 0;
    match (mode, plain, settle) {
        (20.., _, Some(driver)) if settle_ops => driver(&mut input, algorithm),
        (20.., Some(driver), _) if !settle_ops || algorithm == Algorithm::Leases => {
            driver(&mut input, algorithm)
        }
        _ if algorithm == Algorithm::Leases => compare_leases(&mut input, algorithm),
        _ => generic(&mut input, algorithm, settle_ops),
    };
}

/// One key on a master and its replica, fed the master's replicated effects.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// The master's value.
    pub stored: Option<Limiter>,
    /// The replica's value.
    pub replica: Option<Limiter>,
}

impl Node {
    /// `RL.ALLOW` on the master (checked against `RL.PEEK`), with the replication of what it
    /// wrote; checks every invariant. Returns the decision and whether the master stored
    /// something.
    pub fn request(
        &mut self,
        rule: &Rule,
        cost: u64,
        now: u64,
        bounds: &Bounds,
    ) -> Option<(Decision, bool)> {
        let op = Op::Allow { cost, block_us: 0 };
        self.op(rule, op, now, bounds)
            .map(|(d, did)| (d, did != Did::Nothing))
    }

    /// One operation on the master — `RL.ALLOW` / `RL.PEEK` with `BLOCK`, `RL.CHARGE`,
    /// `RL.REFUND` — and the replication of what it wrote; checks every invariant. `None` when
    /// the key holds another algorithm (then nothing changed).
    pub fn op(
        &mut self,
        rule: &Rule,
        op: Op,
        now: u64,
        bounds: &Bounds,
    ) -> Option<(Decision, Did)> {
        let ctx = || format!("{op:?} rule {rule:?} now {now} stored {:?}", self.stored);
        let mut copy = self.stored.clone();
        let verdict = match op {
            Op::Peek { cost, block_us } => {
                let peeked = Limiter::peek_with(self.stored.as_ref(), rule, cost, now, block_us);
                let d = peeked.ok()?;
                check_decision(&d, rule, Some(cost), &ctx);
                return Some((d, Did::Nothing));
            }
            Op::Allow { cost, block_us } => {
                let peeked = Limiter::peek_with(self.stored.as_ref(), rule, cost, now, block_us);
                let v = Limiter::decide_with(copy.as_mut(), rule, cost, now, bounds, block_us);
                match (v, peeked) {
                    (Err(a), Err(b)) => {
                        assert_eq!(a, b, "{}", ctx());
                        assert_eq!(copy, self.stored, "a mismatch changed the key: {}", ctx());
                        return None;
                    }
                    (Ok(v), Ok(p)) => {
                        assert_eq!(v.decision, p, "peek differs from decide: {}", ctx());
                        check_decision(&v.decision, rule, Some(cost), &ctx);
                        v
                    }
                    (a, b) => panic!("decide {a:?} but peek {b:?}: {}", ctx()),
                }
            }
            Op::Charge(n) | Op::Refund(n) => {
                let v = if matches!(op, Op::Charge(_)) {
                    Limiter::charge(copy.as_mut(), rule, n, now, bounds)
                } else {
                    Limiter::refund(copy.as_mut(), rule, n, now, bounds)
                };
                let Ok(v) = v else {
                    assert_eq!(copy, self.stored, "a mismatch changed the key: {}", ctx());
                    return None;
                };
                check_decision(&v.decision, rule, None, &ctx);
                v
            }
        };
        Some(self.commit(rule, op, now, bounds, copy, verdict))
    }

    /// Stores what `op` decided (`verdict`, computed on `copy`, a clone of the stored value
    /// that the decision changed in place) and replicates it, checking every invariant of a
    /// write: unchanged means unchanged; a written state is valid, has the rule, expires exactly
    /// `reset_after` later, reads back from its payload, and its effect replayed on the replica
    /// gives the same value. Also what one group of `RL.ALLOWALL` stores (`op` its
    /// `RL.ALLOW`).
    pub fn commit(
        &mut self,
        rule: &Rule,
        op: Op,
        now: u64,
        bounds: &Bounds,
        copy: Option<Limiter>,
        verdict: Verdict,
    ) -> (Decision, Did) {
        let ctx = || format!("{op:?} rule {rule:?} now {now} stored {:?}", self.stored);
        let d = verdict.decision;
        let written = match verdict.outcome {
            Outcome::Unchanged => {
                assert_eq!(copy, self.stored, "Unchanged but changed: {}", ctx());
                return (d, Did::Nothing);
            }
            Outcome::Emptied => {
                assert!(self.stored.is_some(), "emptied nothing: {}", ctx());
                self.stored = None;
                self.replica = None;
                return (d, Did::Emptied);
            }
            Outcome::Created(l) => {
                assert!(self.stored.is_none(), "{}", ctx());
                l
            }
            Outcome::Updated => copy.unwrap_or_else(|| panic!("Updated nothing: {}", ctx())),
        };
        let did = if self.stored.is_some() {
            Did::Updated
        } else {
            Did::Created
        };
        assert_eq!(written.rule, *rule, "{}", ctx());
        assert!(
            written.is_valid(),
            "wrote an invalid {written:?}: {}",
            ctx()
        );
        if d.reset_after_us == 0 && written.state.algorithm().lives_through_expiry_ms() {
            // Written in its counters' expiry ms (limits' INCRBY on a key whose TTL is 0): the
            // state keeps that ms, and the key with it.
            assert_eq!(
                written.expires_at_us() / 1_000,
                now / 1_000,
                "written in its expiry ms: {written:?} {d:?}: {}",
                ctx()
            );
        } else {
            assert_eq!(
                written.expires_at_us(),
                now.saturating_add(d.reset_after_us),
                "expiry is not now + reset_after: {written:?} {d:?}: {}",
                ctx()
            );
            assert!(written.expires_at_us() > now, "{written:?}: {}", ctx());
        }
        // RDB, DUMP/RESTORE, AOF rewrite: the state's payload reads back as itself.
        let payload = encode(&written);
        assert_eq!(decode(&payload).as_ref(), Some(&written), "{}", ctx());
        // Replication: the replica ends equal to the master.
        let hit = match op {
            Op::Refund(n) => written.refund_hit(now, n, bounds),
            Op::Charge(n) => written.hit(now, n, bounds),
            Op::Allow { cost, .. } => written.hit(now, if d.allowed { cost } else { 0 }, bounds),
            Op::Peek { .. } => None,
        };
        match hit {
            Some(hit) => {
                let bytes = encode_hit(&hit);
                // A version-2 hit (what the previous release reads) carries no `after`.
                let sent = Hit {
                    after: hit.after.filter(|_| hit.needs_current_replay),
                    ..hit
                };
                let got = decode_hit(bytes.as_slice());
                assert_eq!(got, Some(sent), "hit round trip: {}", ctx());
                let mut replica = self.replica.clone();
                let outcome = Limiter::replay(replica.as_mut(), &hit)
                    .unwrap_or_else(|m| panic!("replay refused {m:?}: {}", ctx()));
                let replica = match outcome {
                    Outcome::Created(l) => Some(l),
                    Outcome::Updated | Outcome::Unchanged => replica,
                    Outcome::Emptied => None,
                };
                assert_eq!(
                    replica.as_ref(),
                    Some(&written),
                    "replica differs: {}",
                    ctx()
                );
                assert!(written.agrees_with(&hit), "{}", ctx());
                self.replica = replica;
            }
            None => self.replica = decode(&payload),
        }
        self.stored = Some(written);
        (d, did)
    }
}

/// What every reply must hold: `cost` for `RL.ALLOW` / `RL.PEEK`, `None` for a settle (its
/// retry-after is for a request of cost 1).
pub fn check_decision(d: &Decision, rule: &Rule, cost: Option<u64>, ctx: &dyn Fn() -> String) {
    assert_eq!(d.capacity, rule.capacity(), "{}", ctx());
    assert!(d.remaining <= d.capacity, "{d:?}: {}", ctx());
    let cost = cost.unwrap_or(1);
    match d.retry_after {
        RetryAfter::Now => assert!(d.allowed, "{d:?}: {}", ctx()),
        RetryAfter::Never => assert!(!d.allowed && cost > rule.capacity(), "{d:?}: {}", ctx()),
        RetryAfter::After(us) => assert!(!d.allowed && us >= 1, "{d:?}: {}", ctx()),
    }
}

/// A rule of `algorithm`, from the input.
pub fn rule(input: &mut Input<'_>, algorithm: Algorithm) -> Option<Rule> {
    for _ in 0..8 {
        let limit = match input.range(0, 9)? {
            0..=4 => input.pick(&[1, 2, 3, 4, 5, 7, 10])?,
            5..=7 => input.range(1, 100)?,
            8 => input.range(1, 1_000_000)?,
            _ => input.pick(&[MAX_COUNT, MAX_COUNT / 3, 1 << 40])?,
        };
        let window = match input.range(0, 9)? {
            0..=2 => input.pick(&[1, 2, 3, 7, 10, 1_000, 1_500])?,
            3..=5 => input.range(1, 1_000)? * input.pick(&[1, 1_000])?,
            6..=7 => input.pick(&[1_000_000, 60_000_000, 3_600_000_000])?,
            8 => input.range(1, 100_000_000)?,
            _ => MAX_WINDOW_US,
        };
        let burst = if algorithm.takes_burst() && input.chance(50)? {
            Some(match input.range(0, 3)? {
                0 => input.range(1, 5)?,
                1 => limit,
                2 => input.range(1, 1_000)?,
                _ => limit.saturating_mul(2),
            })
        } else {
            None
        };
        if let Ok(rule) = Rule::new(algorithm, limit, window, burst) {
            return Some(rule);
        }
    }
    None
}

/// Sometimes a changed rule of the same algorithm.
pub fn maybe_changed(input: &mut Input<'_>, rule: Rule) -> Option<Rule> {
    if !input.chance(5)? {
        return Some(rule);
    }
    let fresh = self::rule(input, rule.algorithm())?;
    let (limit, window) = match input.range(0, 3)? {
        0 => (fresh.limit(), rule.window_us()),
        1 => (rule.limit(), fresh.window_us()),
        2 => (
            rule.limit().saturating_add(input.range(0, 3)?),
            rule.window_us(),
        ),
        _ => (fresh.limit(), fresh.window_us()),
    };
    let burst = (rule.algorithm().takes_burst() && input.chance(50)?).then_some(fresh.burst());
    Some(Rule::new(rule.algorithm(), limit, window, burst).unwrap_or(fresh))
}

pub fn cost(input: &mut Input<'_>, rule: &Rule, last: Option<&Decision>) -> Option<u64> {
    let cap = rule.capacity();
    Some(match input.range(0, 19)? {
        0..=1 => 0,
        2..=8 => 1,
        9..=12 => input.range(1, 5)?.min(cap),
        13..=14 => last.map_or(1, |d| d.remaining.max(1)).min(cap),
        15 => cap.saturating_add(1).min(MAX_COUNT),
        16 => cap,
        _ => input.range(1, cap)?,
    })
}

pub fn next_time(
    input: &mut Input<'_>,
    now: u64,
    rule: &Rule,
    stored: Option<&Limiter>,
    last: Option<&Decision>,
) -> Option<u64> {
    let w = rule.window_us();
    let next = match input.range(0, 19)? {
        0..=3 => now,
        4..=7 => now + input.range(1, 3)?,
        8 => now.saturating_sub(input.range(1, 3)?),
        9 if input.chance(25)? => now.saturating_sub(input.range(w, 5 * w)?), // clock step back
        9 => now.saturating_sub(input.range(0, w / 2)?),
        10..=11 => (now - now % w + w + input.range(0, 2)?).saturating_sub(1),
        12..=13 => match stored.map(Limiter::expires_at_us) {
            Some(exp) if exp > 0 => (exp + input.range(0, 2)?).saturating_sub(1),
            _ => now + 1,
        },
        14..=15 => match last.map(|d| d.retry_after) {
            Some(RetryAfter::After(d)) => (now + d + input.range(0, 1)?).saturating_sub(1),
            _ => now + input.range(0, w)?,
        },
        16 => now + input.range(0, w)?,
        17 => now + input.range(0, 3 * w)?,
        18 => now + input.range(2, 6)? * w,
        _ => now + input.range(0, 10_000)?,
    };
    // Realistic times (the spans the reference searches stay small).
    Some(next.clamp(BASE_US / 2, MAX_TIMESTAMP_US / 2))
}

/// The invariants alone, with the operator's bound on runs sometimes tiny (a moving window then
/// coalesces, which the exact reference does not model).
pub fn generic(input: &mut Input<'_>, algorithm: Algorithm, settle_ops: bool) -> Option<()> {
    let mut rule = rule(input, algorithm)?;
    let bounds = if input.chance(50)? {
        Bounds {
            max_runs: input.range(2, 40)? as usize,
        }
    } else {
        Bounds::DEFAULT
    };
    let mut now = BASE_US + input.range(0, 1 << 40)?;
    let mut node = Node::default();
    let mut last = None;
    for _ in 0..MAX_STEPS {
        rule = maybe_changed(input, rule)?;
        now = next_time(input, now, &rule, node.stored.as_ref(), last.as_ref())?;
        let op = if settle_ops {
            settle_op(input, &rule, last.as_ref())?
        } else {
            Op::Allow {
                cost: cost(input, &rule, last.as_ref())?,
                block_us: 0,
            }
        };
        last = node.op(&rule, op, now, &bounds).map(|(d, _)| d);
        if let Some(l) = &node.stored {
            if let State::MovingWindow(log) = &l.state {
                assert!(
                    log.run_count() <= bounds.max_runs.max(1),
                    "{} runs",
                    log.run_count()
                );
            }
        }
    }
    Some(())
}

/// The kind against its reference model `M` (as `src/algo/tests.rs` does with a fixed RNG).
pub fn compare<M: Model>(input: &mut Input<'_>, algorithm: Algorithm) -> Option<()> {
    let mut rule = rule(input, algorithm)?;
    let mut now = BASE_US + input.range(0, 1 << 40)?;
    let mut node = Node::default();
    let mut model: Option<(Rule, M)> = None;
    let mut last: Option<Decision> = None;
    for step in 0..MAX_STEPS {
        rule = maybe_changed(input, rule)?;
        now = next_time(input, now, &rule, node.stored.as_ref(), last.as_ref())?;
        let cost = cost(input, &rule, last.as_ref())?;
        let before = node.stored.clone();
        let Some((decision, wrote)) = node.request(&rule, cost, now, &Bounds::DEFAULT) else {
            panic!("one kind per key: no mismatch possible");
        };
        let view = match &model {
            None => M::empty(),
            Some((old, m)) if old == &rule => m.clone(),
            Some((old, m)) => m.carry_over(old, &rule, now),
        };
        let (expected, ref_written) = reference::decide(&view, &rule, cost, now);
        // A denial of a converted (new rule) or clamped (clock step) state stores it.
        let converted = model
            .as_ref()
            .is_some_and(|(old, m)| *old != rule || m.is_ahead(old, now));
        let ref_written = match ref_written {
            None if converted && matches!(expected.retry_after, RetryAfter::After(_)) => {
                Some(view.at(&rule, now))
            }
            other => other,
        };
        assert_eq!(
            decision, expected,
            "step {step}: rule {rule:?} cost {cost} now {now} stored {before:?}"
        );
        assert_eq!(
            wrote,
            ref_written.is_some(),
            "step {step}: stored {before:?}"
        );
        if let Some(m) = ref_written {
            model = Some((rule, m));
        }
        last = Some(decision);
    }
    Some(())
}

/// `limits-sliding-window` against the transliteration of limits' Lua scripts (times in ms):
/// the same admissions, counters and expiry after every hit and every read.
pub fn compare_limits(input: &mut Input<'_>, algorithm: Algorithm) -> Option<()> {
    let limit = input.pick(&[1, 2, 3, 5, 10, 100, 1_000])?;
    let secs = input.pick(&[1, 2, 10, 60, 3_600])?;
    let rule = Rule::new(algorithm, limit, secs * 1_000_000, None).ok()?;
    let e = secs * 1_000;
    let mut lua = LimitsLua::default();
    let mut node = Node::default();
    let mut now = BASE_US + input.range(0, 999)?;
    for _ in 0..MAX_STEPS {
        now += match input.range(0, 5)? {
            0 => 0,
            1 => input.range(0, 1_000)?,
            2 => input.range(0, e * 1_000 / 4)?,
            3 => input.range(0, e * 1_000)?,
            _ => input.range(0, 3 * e * 1_000)?,
        };
        let t = now / 1_000;
        // The server expires a key whose state is over before any command sees it.
        if node.stored.as_ref().is_some_and(|l| l.is_over(now)) {
            node = Node::default();
        }
        if input.chance(70)? {
            // Cost 0 included: limits' acquire of 0, which starts an empty counter on an absent
            // limiter (RL.ALLOW … COST 0 on this algorithm).
            let cost = match input.range(0, 2)? {
                0 => 1,
                1 => input.range(0, limit + 1)?,
                _ => input.range(1, 3)?,
            };
            let mut probe = lua.clone();
            let want = lua.acquire(limit, e, cost, t);
            let (d, _) = node.request(&rule, cost, now, &Bounds::DEFAULT)?;
            assert_eq!(d.allowed, want, "{rule:?} cost {cost} at {t}");
            if let RetryAfter::After(us) = d.retry_after {
                let at = (now + us) / 1_000;
                assert!(probe.clone().acquire(limit, e, cost, at), "retry at {at}");
                assert!(
                    !probe.acquire(limit, e, cost, at - 1),
                    "retry not at {}",
                    at - 1
                );
            }
        } else {
            // limits' read as rl:// sends it: RL.INSPECT, and RL.ALLOW … COST 0 (storing the
            // shift) only when the key exists.
            let (pc, pt, cc, ct) = lua.get(e, t);
            let d = if node.stored.is_some() {
                node.request(&rule, 0, now, &Bounds::DEFAULT)?.0
            } else {
                Limiter::peek(None, &rule, 0, now).ok()?
            };
            let fields = node
                .stored
                .as_ref()
                .map_or_else(Vec::new, |l| l.inspect(now));
            assert_eq!(
                LimitsLua::window_of(&fields),
                (pc, pt, cc, ct),
                "fields at {t}"
            );
            let weighted = LimitsLua::weighted((pc, pt, cc, ct), e);
            assert_eq!(d.remaining, limit.saturating_sub(weighted));
        }
        // The key lives exactly as long as limits' last key; the server drops it then.
        let last = lua.last_expire_ms();
        match &node.stored {
            Some(l) if last >= t => assert_eq!(l.expires_at_us(), last * 1_000),
            Some(_) => {
                node = Node::default();
                lua = LimitsLua::default();
            }
            None => {}
        }
    }
    Some(())
}

/// An operation of the settle sequences: `RL.ALLOW` / `RL.PEEK` (with `BLOCK` one time in
/// three), `RL.CHARGE` (up to three capacities: debts), `RL.REFUND`.
pub fn settle_op(input: &mut Input<'_>, rule: &Rule, last: Option<&Decision>) -> Option<Op> {
    let cap = rule.capacity();
    let block_us = if input.chance(30)? {
        input
            .range(1, 3 * rule.window_us().min(1 << 40))?
            .min(MAX_BLOCK_US)
    } else {
        0
    };
    Some(match input.range(0, 19)? {
        0..=8 => Op::Allow {
            cost: cost(input, rule, last)?,
            block_us,
        },
        9..=10 => Op::Peek {
            cost: cost(input, rule, last)?,
            block_us,
        },
        11..=15 => Op::Charge(match input.range(0, 3)? {
            0 => input.range(0, 3)?,
            1 => cost(input, rule, last)?,
            _ => input.range(1, cap.saturating_mul(3).min(MAX_COUNT))?,
        }),
        _ => Op::Refund(match input.range(0, 3)? {
            0 => input.range(0, 3)?,
            1 => cost(input, rule, last)?,
            _ => input.range(1, cap.saturating_mul(2).min(MAX_COUNT))?,
        }),
    })
}

/// `RL.ALLOW` / `RL.PEEK` with `BLOCK`, `RL.CHARGE` and `RL.REFUND` against the reference
/// semantics of debts and blocks over the kind's model `M` (as `settle_tests.rs` does with a
/// fixed RNG): the same replies, the same writes, and every invariant of [`Node::op`].
pub fn compare_settle<M: Model + std::fmt::Debug>(
    input: &mut Input<'_>,
    algorithm: Algorithm,
) -> Option<()> {
    let mut rule = rule(input, algorithm)?;
    let mut now = BASE_US + input.range(0, 1 << 40)?;
    let mut node = Node::default();
    let mut model: Option<RefKey<M>> = None;
    let mut last: Option<Decision> = None;
    for step in 0..MAX_STEPS {
        rule = maybe_changed(input, rule)?;
        now = next_time(input, now, &rule, node.stored.as_ref(), last.as_ref())?;
        let op = settle_op(input, &rule, last.as_ref())?;
        let before = node.stored.clone();
        let (want, want_did, after) = reference_op(model.as_ref(), &rule, op, now);
        let Some((got, did)) = node.op(&rule, op, now, &Bounds::DEFAULT) else {
            panic!("one kind per key: no mismatch possible");
        };
        let context = || format!("step {step}: {op:?} rule {rule:?} now {now} stored {before:?}");
        assert_eq!(got, want, "{}", context());
        assert_eq!(did, want_did, "{}", context());
        model = after;
        last = Some(got);
    }
    Some(())
}

/// A lease id from the input: a few names, numbers (canonical and not), numbers near the
/// server's own ids (they collide), long ones.
fn lease_id(input: &mut Input<'_>, t: u64) -> Option<Vec<u8>> {
    Some(match input.range(0, 9)? {
        0..=4 => input
            .pick(&[&b"a"[..], b"b", b"c", b"worker-7", b"d"])?
            .to_vec(),
        5 => input
            .pick(&[&b"7"[..], b"0", b"007", b"18446744073709551615"])?
            .to_vec(),
        6..=7 => (t + input.range(0, 3_000)?).to_string().into_bytes(),
        _ => vec![b'x'; input.range(1, leases::MAX_ID_LEN as u64)? as usize],
    })
}

/// The leases a stored key holds at `t` (ends as read then), to compare with the model.
fn held_of(l: Option<&Limiter>, t: u64) -> std::collections::BTreeMap<Vec<u8>, u64> {
    let Some(l) = l else {
        return Default::default();
    };
    let State::Leases(s) = &l.state else {
        panic!("not leases: {l:?}")
    };
    s.leases()
        .filter(|x| x.end_us > t)
        .map(|x| (x.id.to_bytes(), x.end_us.min(t + s.longest_us())))
        .collect()
}

fn leases_stored(l: Option<&Limiter>) -> u64 {
    match l.map(|l| &l.state) {
        Some(State::Leases(s)) => s.stored() as u64,
        _ => 0,
    }
}

/// Replicates a lease effect as `RL.APPLY` carries it (with the master's count after it) and
/// checks its payload: canonical, small, read back as sent.
pub fn replicate_lease(
    replica: &mut Option<Limiter>,
    master: Option<&Limiter>,
    e: &leases::Effect,
) {
    let after = leases_stored(master);
    let bytes = encode_effect(e, after);
    let bytes = bytes.as_slice();
    assert!(leases::is_effect(bytes), "{e:?}");
    let (decoded, sent_after) = decode_effect(bytes).unwrap_or_else(|| panic!("{e:?}: {bytes:?}"));
    assert_eq!((&decoded, sent_after), (e, Some(after)));
    assert_eq!(encode_effect(&decoded, after).as_slice(), bytes);
    match leases::replay(replica.as_mut(), &decoded).expect("a lease effect replays") {
        Outcome::Created(l) => *replica = Some(l),
        Outcome::Emptied => *replica = None,
        Outcome::Updated | Outcome::Unchanged => {}
    }
}

/// `RL.ACQUIRE` / `RL.RELEASE` against the leases' reference model (`leases/reference.rs`):
/// the same grants, releases, held sets and expiry; the replica fed the effects (through their
/// `RL.APPLY` payload) equal to the master; a rate-limit request on a lease key refused
/// without a change.
pub fn compare_leases(input: &mut Input<'_>, algorithm: Algorithm) -> Option<()> {
    let mut model = LeaseModel::default();
    let mut key: Option<Limiter> = None;
    let mut replica: Option<Limiter> = None;
    let mut t = BASE_US + input.range(0, 1 << 40)?;
    let mut limit = input.range(1, 5)?;
    let other = Rule::new(Algorithm::SlidingWindow, 10, 1_000_000, None).ok()?;
    for step in 0..MAX_STEPS {
        t = match input.range(0, 19)? {
            0 => t.saturating_sub(input.range(1, 2_000)?), // a clock step back
            1 => t + input.range(1_000, 20_000)?,
            2..=4 => t, // the same µs
            5 => t + input.range(0, 1 << 36)?,
            _ => t + input.range(1, 300)?,
        };
        if input.chance(5)? {
            limit = match input.range(0, 9)? {
                0 => input.range(1, leases::MAX_LEASES)?,
                _ => input.range(1, 6)?,
            };
        }
        if model.read(t).is_empty() && input.chance(50)? {
            // The server's expiry removes a key whose last lease ended.
            (key, replica, model) = (None, None, LeaseModel::default());
        }
        let before = key.clone();
        let ctx = || format!("step {step} at {t}: key {before:?}");
        match input.range(0, 19)? {
            0..=4 => {
                let id = lease_id(input, t)?;
                let lid = LeaseId::parse(&id)?;
                let want = model.release(&id, t);
                let r = leases::release(key.as_mut(), &lid, t).expect("a lease key");
                assert_eq!(r.released, want, "release: {}", ctx());
                assert_eq!(r.effect.is_some(), want, "{}", ctx());
                match r.outcome {
                    Outcome::Created(l) => key = Some(l),
                    Outcome::Emptied => key = None,
                    Outcome::Updated | Outcome::Unchanged => {}
                }
                if let Some(e) = &r.effect {
                    replicate_lease(&mut replica, key.as_ref(), e);
                }
            }
            5 => {
                // A rate limit's command on a lease key: refused, nothing changed.
                let v = Limiter::decide_with(key.as_mut(), &other, 1, t, &Bounds::DEFAULT, 0);
                assert_eq!(v.is_err(), before.is_some(), "{}", ctx());
                if before.is_some() {
                    assert_eq!(key, before, "{}", ctx());
                    assert!(Limiter::charge(key.as_mut(), &other, 1, t, &Bounds::DEFAULT).is_err());
                    assert!(Limiter::refund(key.as_mut(), &other, 1, t, &Bounds::DEFAULT).is_err());
                    assert_eq!(key, before, "{}", ctx());
                }
                continue;
            }
            _ => {
                let lease = match input.range(0, 9)? {
                    0 => MAX_WINDOW_US,
                    1 => input.range(1, 1 << 32)?,
                    _ => input.pick(&[1, 2, 10, 100, 1_000, 5_000])?,
                };
                let id = if input.chance(60)? {
                    Some(lease_id(input, t)?)
                } else {
                    None
                };
                let req =
                    Acquire::new(limit, lease, id.as_deref().and_then(LeaseId::parse)).ok()?;
                assert_eq!(req.rule.algorithm(), algorithm);
                let want = model.acquire(limit, lease, id.as_deref(), t);
                let v = leases::acquire(key.as_mut(), &req, t).expect("a lease key");
                let g = &v.grant;
                let got = (
                    g.allowed,
                    g.id.as_ref().map(LeaseId::to_bytes),
                    g.in_flight,
                    g.retry_after_us,
                    g.reset_after_us,
                );
                let want = (
                    want.allowed,
                    want.id,
                    want.in_flight,
                    want.retry,
                    want.reset,
                );
                assert_eq!(got, want, "{req:?}: {}", ctx());
                match v.outcome {
                    Outcome::Created(l) => key = Some(l),
                    Outcome::Emptied => key = None,
                    Outcome::Updated | Outcome::Unchanged => {}
                }
                if let Some(e) = &v.effect {
                    replicate_lease(&mut replica, key.as_ref(), e);
                }
            }
        }
        assert_eq!(held_of(key.as_ref(), t), model.read(t), "{}", ctx());
        assert_eq!(key, replica, "replica differs: {}", ctx());
        if let Some(l) = &key {
            assert!(l.is_valid(), "{}", ctx());
            assert_eq!(decode(&encode(l)).as_ref(), Some(l), "{}", ctx());
            let last = model.ends.values().max().copied().unwrap_or(0);
            assert_eq!(l.expires_at_us(), last, "{}", ctx());
        }
    }
    Some(())
}
