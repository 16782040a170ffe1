//! `RL.CHARGE` / `RL.REFUND` (debts), `BLOCK` and the all-or-nothing multi-key call, against the
//! reference models on random sequences that include rule changes and clock steps; and every
//! write replicated (hit replay or state payload) and round-tripped through the codec.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::multi::{allow_all, decide_all, Group};
use super::reference::{BucketRef, FixedRef, LogRef, Model, SlidingRef};
use super::settle_reference::{reference_op, Did, Op, RefKey};
use super::tests::{changed_rule, next_time, random_cost, random_rule, Rng, BASE_US};
use super::*;
use crate::datatype::codec::{decode, decode_hit, encode, encode_hit};

/// How many random sequences per test: `RL_SEEDS` (for long runs by hand), else `default`.
fn seeds(default: u64) -> u64 {
    std::env::var("RL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The same operation on the real code: the reply, what it did, and how it replicates.
fn real_op(
    stored: &mut Option<Limiter>,
    rule: &Rule,
    op: Op,
    now: u64,
) -> (Decision, Did, Option<Hit>) {
    let b = Bounds::DEFAULT;
    let v = match op {
        Op::Peek { cost, block_us } => {
            let d = Limiter::peek_with(stored.as_ref(), rule, cost, now, block_us).unwrap();
            return (d, Did::Nothing, None);
        }
        Op::Allow { cost, block_us } => {
            let peeked = Limiter::peek_with(stored.as_ref(), rule, cost, now, block_us).unwrap();
            let v = Limiter::decide_with(stored.as_mut(), rule, cost, now, &b, block_us).unwrap();
            assert_eq!(peeked, v.decision, "peek_with differs from decide_with");
            v
        }
        Op::Charge(cost) => Limiter::charge(stored.as_mut(), rule, cost, now, &b).unwrap(),
        Op::Refund(amount) => Limiter::refund(stored.as_mut(), rule, amount, now, &b).unwrap(),
    };
    let did = match v.outcome {
        Outcome::Unchanged => Did::Nothing,
        Outcome::Updated => Did::Updated,
        Outcome::Created(l) => {
            *stored = Some(l);
            Did::Created
        }
        Outcome::Emptied => {
            *stored = None;
            Did::Emptied
        }
    };
    let hit = match (did, stored.as_ref()) {
        (Did::Created | Did::Updated, Some(l)) => match op {
            Op::Refund(amount) => l.refund_hit(now, amount, &b),
            Op::Charge(cost) => l.hit(now, cost, &b),
            Op::Allow { cost, .. } => l.hit(now, if v.decision.allowed { cost } else { 0 }, &b),
            Op::Peek { .. } => None,
        },
        _ => None,
    };
    (v.decision, did, hit)
}

/// Applies a write to the replica as replication would: the hit through its payload, or the
/// state payload, or `DEL`.
fn replicate(replica: &mut Option<Limiter>, master: Option<&Limiter>, hit: Option<Hit>) {
    match (master, hit) {
        (None, _) => *replica = None,
        (Some(_), Some(hit)) => {
            let payload = encode_hit(&hit);
            let hit = decode_hit(payload.as_slice()).expect("a hit this release wrote");
            match Limiter::replay(replica.as_mut(), &hit).unwrap() {
                Outcome::Created(l) => *replica = Some(l),
                Outcome::Emptied => *replica = None,
                _ => {}
            }
        }
        (Some(l), None) => *replica = Some(decode(&encode(l)).expect("a state this release wrote")),
    }
}

fn random_op(rng: &mut Rng, rule: &Rule, last: Option<&Decision>) -> Op {
    let cap = rule.capacity();
    let block_us = if rng.chance(30) {
        rng.range(1, 3 * rule.window_us().min(1 << 40))
            .min(MAX_BLOCK_US)
    } else {
        0
    };
    match rng.range(0, 19) {
        0..=8 => Op::Allow {
            cost: random_cost(rng, rule, last),
            block_us,
        },
        9..=10 => Op::Peek {
            cost: random_cost(rng, rule, last),
            block_us,
        },
        11..=15 => Op::Charge(match rng.range(0, 3) {
            0 => rng.range(0, 3),
            1 => random_cost(rng, rule, last),
            _ => rng.range(1, cap.saturating_mul(3).min(MAX_COUNT)),
        }),
        _ => Op::Refund(match rng.range(0, 3) {
            0 => rng.range(0, 3),
            1 => random_cost(rng, rule, last),
            _ => rng.range(1, cap.saturating_mul(2).min(MAX_COUNT)),
        }),
    }
}

fn compare_settle<M: Model + std::fmt::Debug>(seed: u64, algorithm: Algorithm, steps: usize) {
    let mut rng = Rng(seed);
    let mut rule = random_rule(&mut rng, algorithm);
    let mut now = BASE_US + rng.range(0, 1 << 40);
    let mut stored: Option<Limiter> = None;
    let mut replica: Option<Limiter> = None;
    let mut model: Option<RefKey<M>> = None;
    let mut last: Option<Decision> = None;
    for step in 0..steps {
        if rng.chance(4) {
            rule = changed_rule(&mut rng, &rule);
        }
        now = next_time(&mut rng, now, &rule, stored.as_ref(), last.as_ref());
        let op = random_op(&mut rng, &rule, last.as_ref());
        let before = format!("{stored:?} model {model:?}");
        let context =
            || format!("seed {seed} step {step}: {op:?} rule {rule:?} now {now} stored {before}");
        let (want, want_did, after) = reference_op(model.as_ref(), &rule, op, now);
        let (got, did, hit) = real_op(&mut stored, &rule, op, now);
        assert_eq!(got, want, "{}", context());
        assert_eq!(did, want_did, "{}", context());
        if matches!(did, Did::Created | Did::Updated) {
            let l = stored.as_ref().unwrap();
            assert!(l.is_valid(), "{}: {l:?}", context());
            assert_eq!(l.rule, rule, "{}", context());
            assert_eq!(
                l.expires_at_us(),
                now + got.reset_after_us,
                "{}: {l:?}",
                context()
            );
            assert!(l.expires_at_us() > now, "{}", context());
            replicate(&mut replica, Some(l), hit);
            assert_eq!(replica.as_ref(), Some(l), "replica: {}", context());
        } else if did == Did::Emptied {
            replicate(&mut replica, None, None);
        }
        model = after;
        last = Some(got);
    }
}

#[test]
fn fixed_window_settle_and_block_match_reference() {
    for seed in 0..seeds(80) {
        compare_settle::<FixedRef>(10_000 + seed, Algorithm::FixedWindow, 250);
    }
}

#[test]
fn sliding_window_settle_and_block_match_reference() {
    for seed in 0..seeds(80) {
        compare_settle::<SlidingRef>(11_000 + seed, Algorithm::SlidingWindow, 250);
    }
}

#[test]
fn gcra_settle_and_block_match_reference() {
    for seed in 0..seeds(80) {
        compare_settle::<BucketRef>(12_000 + seed, Algorithm::Gcra, 250);
    }
}

#[test]
fn moving_window_settle_and_block_match_reference() {
    for seed in 0..seeds(80) {
        compare_settle::<LogRef>(13_000 + seed, Algorithm::MovingWindow, 250);
    }
}

/// A gcra debt is not a clock step: it is never clamped away, while a real step back still is
/// (on a replica too: the debt travels in the payload).
#[test]
fn a_gcra_debt_survives_clamping_and_a_clock_step_does_not() {
    let rule = Rule::new(Algorithm::Gcra, 10, 1_000_000, None).unwrap(); // T 100 ms, τ 1 s
    let t = BASE_US;
    let b = Bounds::DEFAULT;
    let Outcome::Created(mut l) = Limiter::charge(None, &rule, 15, t, &b).unwrap().outcome else {
        panic!()
    };
    // 5 cells of debt: 1.5 s until full, the next request in 600 ms; not "ahead".
    assert!(!l.is_ahead(t));
    let d = Limiter::peek(Some(&l), &rule, 1, t).unwrap();
    assert_eq!(d.retry_after, RetryAfter::After(600_000));
    let replica = decode(&encode(&l)).unwrap();
    assert_eq!(replica, l);
    assert_eq!(Limiter::peek(Some(&replica), &rule, 1, t).unwrap(), d);
    // The same tat without the debt flag is a clock step: clamped to an empty bucket now.
    let mut stepped = l.clone();
    if let State::Gcra(g) = &mut stepped.state {
        g.debt = false;
    }
    assert!(stepped.is_ahead(t));
    let d = Limiter::peek(Some(&stepped), &rule, 1, t).unwrap();
    assert_eq!(d.retry_after, RetryAfter::After(100_000));
    // A clock step back of a day on a key in debt costs at most τ + W = 2 s.
    let day = 86_400_000_000;
    let v = Limiter::decide_within(Some(&mut l), &rule, 1, t - day, &b).unwrap();
    assert!(v.clamped && !v.decision.allowed);
    assert_eq!(v.decision.retry_after, RetryAfter::After(1_100_000));
    assert_eq!(v.decision.reset_after_us, 2_000_000);
    // A debt is bounded by one window: 1,000 cells charged leave τ + W to wait.
    let v = Limiter::charge(None, &rule, 1_000, t, &b).unwrap();
    assert_eq!(v.decision.reset_after_us, 2_000_000);
}

/// Several keys, random interleavings of ALLOWALL / ALLOW / CHARGE / REFUND on overlapping
/// keys: every key matches its own reference model (so none admits more than its model
/// allows), a denied ALLOWALL charges no key (its keys change only by a `BLOCK` a denying
/// group starts, or a conversion a denial stores), and an admitted one charges every key.
#[test]
fn allow_all_is_all_or_nothing() {
    for seed in 0..seeds(120) {
        let mut rng = Rng(20_000 + seed);
        let n_keys = rng.range(2, 4) as usize;
        let mut rules: Vec<Rule> = (0..n_keys)
            .map(|_| {
                let a = rng.pick(Algorithm::ALL);
                let mut r = random_rule(&mut rng, a);
                while r.capacity() > 20 || r.window_us() > 10_000_000 {
                    r = random_rule(&mut rng, a);
                }
                r
            })
            .collect();
        let mut now = BASE_US + rng.range(0, 1 << 40);
        let mut keys: Vec<Option<Limiter>> = vec![None; n_keys];
        let mut admitted = vec![0u64; n_keys];
        for step in 0..150 {
            if rng.chance(3) {
                let i = rng.range(0, n_keys as u64 - 1) as usize;
                rules[i] = changed_rule(&mut rng, &rules[i]);
            }
            now = match rng.range(0, 9) {
                0 => now.saturating_sub(rng.range(0, 2_000_000)), // a clock step back
                1..=4 => now,
                _ => now + rng.range(0, 300_000),
            };
            // A group per distinct key, in random order.
            let mut order: Vec<usize> = (0..n_keys).collect();
            for i in (1..n_keys).rev() {
                order.swap(i, rng.range(0, i as u64) as usize);
            }
            order.truncate(rng.range(1, n_keys as u64) as usize);
            let groups: Vec<Group> = order
                .iter()
                .map(|&i| Group {
                    rule: rules[i],
                    cost: random_cost(&mut rng, &rules[i], None),
                    block_us: if rng.chance(15) {
                        rng.range(1, 2_000_000)
                    } else {
                        0
                    },
                })
                .collect();
            let keys_before = format!("{keys:?}");
            let context =
                || format!("seed {seed} step {step} now {now} groups {groups:?} {keys_before}");
            match rng.range(0, 9) {
                0..=5 => {
                    let before: Vec<Option<Limiter>> = keys.clone();
                    // What each key alone would say, as a reference for every group.
                    let alone: Vec<Decision> = order
                        .iter()
                        .zip(&groups)
                        .map(|(&i, g)| {
                            Limiter::peek_with(keys[i].as_ref(), &g.rule, g.cost, now, g.block_us)
                                .unwrap()
                        })
                        .collect();
                    let peeked = {
                        let view: Vec<Option<&Limiter>> =
                            order.iter().map(|&i| keys[i].as_ref()).collect();
                        decide_all(&view, &groups, now).unwrap()
                    };
                    let mut picked: Vec<Option<Limiter>> =
                        order.iter().map(|&i| keys[i].take()).collect();
                    let (d, verdicts) = {
                        let mut refs: Vec<Option<&mut Limiter>> =
                            picked.iter_mut().map(Option::as_mut).collect();
                        allow_all(&mut refs, &groups, now, &Bounds::DEFAULT).unwrap()
                    };
                    assert_eq!(d, peeked, "{}", context());
                    assert_eq!(d.allowed, alone.iter().all(|a| a.allowed), "{}", context());
                    for (((slot, v), &i), (a, g)) in picked
                        .iter_mut()
                        .zip(verdicts)
                        .zip(&order)
                        .zip(alone.iter().zip(&groups))
                    {
                        if let Outcome::Created(l) = v.outcome.clone() {
                            *slot = Some(l);
                        }
                        if d.allowed || !a.allowed {
                            assert_eq!(v.decision, *a, "{}", context());
                        } else {
                            // Admitted alone, not charged: the key as it stands.
                            assert!(v.decision.allowed && v.outcome == Outcome::Unchanged);
                        }
                        if d.allowed && a.allowed && g.cost > 0 {
                            admitted[i] += g.cost;
                        }
                        // (limits-sliding-window stores a rule change with the old rule's
                        // expiries, which the new rule then clamps: its view may move.)
                        let converts_its_view = g.rule.algorithm()
                            == Algorithm::LimitsSlidingWindow
                            && before[i].as_ref().is_some_and(|l| l.rule != g.rule);
                        if !d.allowed && g.block_us == 0 && !converts_its_view {
                            // Denied: no key is charged. Same state, possibly converted.
                            let now_view = |l: &Option<Limiter>| {
                                Limiter::peek_with(l.as_ref(), &g.rule, 0, now, 0).unwrap()
                            };
                            assert_eq!(now_view(slot), now_view(&before[i]), "{}", context());
                        }
                    }
                    for (slot, &i) in picked.into_iter().zip(&order) {
                        keys[i] = slot;
                    }
                    let binding = &d.groups[d.binding];
                    if !d.allowed {
                        assert!(!binding.allowed, "{}", context());
                    }
                }
                6 => {
                    let i = order[0];
                    let g = groups[0];
                    let v = Limiter::decide_with(
                        keys[i].as_mut(),
                        &g.rule,
                        g.cost,
                        now,
                        &Bounds::DEFAULT,
                        g.block_us,
                    )
                    .unwrap();
                    if let Outcome::Created(l) = v.outcome {
                        keys[i] = Some(l);
                    }
                }
                7 => {
                    let i = order[0];
                    let cost = rng.range(1, 2 * rules[i].capacity());
                    let v =
                        Limiter::charge(keys[i].as_mut(), &rules[i], cost, now, &Bounds::DEFAULT)
                            .unwrap();
                    if let Outcome::Created(l) = v.outcome {
                        keys[i] = Some(l);
                    }
                }
                _ => {
                    let i = order[0];
                    let amount = rng.range(1, rules[i].capacity());
                    let v =
                        Limiter::refund(keys[i].as_mut(), &rules[i], amount, now, &Bounds::DEFAULT)
                            .unwrap();
                    if v.outcome == Outcome::Emptied {
                        keys[i] = None;
                    }
                }
            }
        }
        let _ = admitted;
    }
}

/// ALLOWALL against each key's own reference model: keys of one algorithm under different
/// rules, interleaved with single-key ALLOW / CHARGE / REFUND, rule changes and clock steps.
fn multi_sequence<M: Model + std::fmt::Debug>(seed: u64, algorithm: Algorithm) {
    let mut rng = Rng(seed);
    let n_keys = rng.range(2, 4) as usize;
    let mut rules: Vec<Rule> = (0..n_keys)
        .map(|_| random_rule(&mut rng, algorithm))
        .collect();
    let mut now = BASE_US + rng.range(0, 1 << 40);
    let mut keys: Vec<Option<Limiter>> = vec![None; n_keys];
    let mut models: Vec<Option<RefKey<M>>> = vec![None; n_keys];
    let mut last: Option<Decision> = None;
    for step in 0..120 {
        if rng.chance(4) {
            let i = rng.range(0, n_keys as u64 - 1) as usize;
            rules[i] = changed_rule(&mut rng, &rules[i]);
        }
        let first = rng.range(0, n_keys as u64 - 1) as usize;
        now = next_time(
            &mut rng,
            now,
            &rules[first],
            keys[first].as_ref(),
            last.as_ref(),
        );
        let mut order: Vec<usize> = (0..n_keys).collect();
        for i in (1..n_keys).rev() {
            order.swap(i, rng.range(0, i as u64) as usize);
        }
        order.truncate(rng.range(1, n_keys as u64) as usize);
        if !rng.chance(65) {
            // A single-key operation on one of them.
            let i = order[0];
            let op = random_op(&mut rng, &rules[i], last.as_ref());
            let (want, want_did, after) = reference_op(models[i].as_ref(), &rules[i], op, now);
            let (got, did, _) = real_op(&mut keys[i], &rules[i], op, now);
            assert_eq!(
                (got, did),
                (want, want_did),
                "seed {seed} step {step} {op:?}"
            );
            models[i] = after;
            last = Some(got);
            continue;
        }
        let groups: Vec<Group> = order
            .iter()
            .map(|&i| Group {
                rule: rules[i],
                cost: random_cost(&mut rng, &rules[i], last.as_ref()),
                block_us: if rng.chance(20) {
                    rng.range(1, 2 * rules[i].window_us().min(1 << 40))
                        .min(MAX_BLOCK_US)
                } else {
                    0
                },
            })
            .collect();
        let before = format!("{keys:?}");
        let context = || format!("seed {seed} step {step} now {now} {groups:?} {before}");
        // The reference: every group decided alone; all admit → every key charged; else only
        // the denying groups act (their denial), the others show their key as it stands.
        let alone: Vec<Decision> = order
            .iter()
            .zip(&groups)
            .map(|(&i, g)| {
                let op = Op::Peek {
                    cost: g.cost,
                    block_us: g.block_us,
                };
                reference_op(models[i].as_ref(), &g.rule, op, now).0
            })
            .collect();
        let all = alone.iter().all(|d| d.allowed);
        let mut want = Vec::new();
        for ((&i, g), a) in order.iter().zip(&groups).zip(&alone) {
            if all || !a.allowed {
                let op = Op::Allow {
                    cost: g.cost,
                    block_us: g.block_us,
                };
                let (d, did, after) = reference_op(models[i].as_ref(), &g.rule, op, now);
                models[i] = after;
                want.push((d, did));
            } else {
                let op = Op::Peek {
                    cost: 0,
                    block_us: 0,
                };
                want.push((
                    reference_op(models[i].as_ref(), &g.rule, op, now).0,
                    Did::Nothing,
                ));
            }
        }
        let mut picked: Vec<Option<Limiter>> = order.iter().map(|&i| keys[i].take()).collect();
        let (d, verdicts) = {
            let mut refs: Vec<Option<&mut Limiter>> =
                picked.iter_mut().map(Option::as_mut).collect();
            allow_all(&mut refs, &groups, now, &Bounds::DEFAULT).unwrap()
        };
        assert_eq!(d.allowed, all, "{}", context());
        for ((slot, v), (wd, wdid)) in picked.iter_mut().zip(verdicts).zip(&want) {
            assert_eq!(v.decision, *wd, "{}", context());
            let did = match v.outcome {
                Outcome::Unchanged => Did::Nothing,
                Outcome::Updated => Did::Updated,
                Outcome::Created(l) => {
                    *slot = Some(l);
                    Did::Created
                }
                Outcome::Emptied => Did::Emptied,
            };
            assert_eq!(did, *wdid, "{}", context());
        }
        assert_eq!(
            d.groups,
            want.iter().map(|w| w.0).collect::<Vec<_>>(),
            "{}",
            context()
        );
        for (slot, &i) in picked.into_iter().zip(&order) {
            keys[i] = slot;
        }
        last = Some(d.groups[d.binding]);
    }
}

#[test]
fn allow_all_matches_each_keys_reference_model() {
    for seed in 0..seeds(40) {
        multi_sequence::<FixedRef>(30_000 + seed, Algorithm::FixedWindow);
        multi_sequence::<SlidingRef>(31_000 + seed, Algorithm::SlidingWindow);
        multi_sequence::<BucketRef>(32_000 + seed, Algorithm::Gcra);
        multi_sequence::<LogRef>(33_000 + seed, Algorithm::MovingWindow);
    }
}

/// Blocks and debts cost keys that never use them nothing: the value stays the size its kinds
/// need.
#[test]
fn blocks_and_debts_do_not_grow_the_value() {
    use super::LimitsSlidingState;
    assert_eq!(std::mem::size_of::<GcraState>(), 24);
    // The largest kind's state plus the tag: the block's box and the debt flag add nothing.
    let largest = std::mem::size_of::<LimitsSlidingState>().max(24);
    assert_eq!(std::mem::size_of::<State>(), largest + 8);
}

/// `limits-sliding-window` under `RL.CHARGE` / `RL.REFUND`, against limits' own scripts (the
/// transliteration in `reference::LimitsLua`) extended by the definitions: a charge is limits'
/// acquire without its check, a refund takes from the current key, then the previous one.
#[test]
fn limits_sliding_window_charge_and_refund_match_limits_keys() {
    use super::reference::LimitsLua;
    for seed in 0..seeds(60) {
        let mut rng = Rng(40_000 + seed);
        let limit = rng.range(1, 20);
        let e = rng.pick(&[10u64, 100, 1_000, 60_000]);
        let rule = Rule::new(Algorithm::LimitsSlidingWindow, limit, e * 1_000, None).unwrap();
        let mut lua = LimitsLua::default();
        let mut stored: Option<Limiter> = None;
        let mut t = 1_700_000_000_000 + rng.range(0, 1 << 20);
        let b = Bounds::DEFAULT;
        for step in 0..200 {
            t += rng.range(0, e / 2 + 1);
            let now = t * 1_000 + rng.range(0, 999);
            let n = rng.range(0, limit * 2);
            let context = || format!("seed {seed} step {step} t {t} n {n} limit {limit} e {e}");
            // The server expires a key whose state is over before any command sees it.
            if stored.as_ref().is_some_and(|l| l.is_over(now)) {
                stored = None;
            }
            match rng.range(0, 3) {
                0 => {
                    let d = Limiter::decide_with(stored.as_mut(), &rule, n, now, &b, 0).unwrap();
                    if let Outcome::Created(l) = d.outcome {
                        stored = Some(l);
                    }
                    // COST 0 is limits' acquire of 0 (the kind's COST_ZERO_WRITES): the shift,
                    // and on an absent limiter a current counter of 0. It replies allowed (a
                    // look) where limits' script answers whether the weighted count is within
                    // the limit.
                    let allowed = lua.acquire(limit, e, n, t);
                    if n > 0 {
                        assert_eq!(d.decision.allowed, allowed, "{}", context());
                    }
                }
                1 => {
                    let v = Limiter::charge(stored.as_mut(), &rule, n, now, &b).unwrap();
                    if let Outcome::Created(l) = v.outcome {
                        stored = Some(l);
                    }
                    if n > 0 {
                        lua.charge(e, n, t);
                    }
                }
                _ => {
                    let v = Limiter::refund(stored.as_mut(), &rule, n, now, &b).unwrap();
                    if v.outcome == Outcome::Emptied {
                        stored = None;
                    }
                    if n > 0 {
                        lua.refund(e, n, t);
                    }
                }
            }
            // Both read the same counters (after the shift a read makes).
            let (p, pt, c, ct) = lua.clone().get(e, t); // a look: its shift is not kept
            let got = stored.as_ref().map(|l| l.inspect(now));
            let want = [
                ("current", c),
                ("current_ttl_ms", ct),
                ("previous", p),
                ("previous_ttl_ms", pt),
            ];
            match got {
                Some(f) => assert_eq!(f[..4], want, "{}", context()),
                None => assert_eq!((c, p), (0, 0), "{}", context()),
            }
        }
    }
}
