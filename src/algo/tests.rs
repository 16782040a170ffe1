//! Randomised comparison against the reference models, and properties on random states.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::reference::{self, BucketRef, FixedRef, LimitsLua, LogRef, Model, SlidingRef};
use super::*;
use crate::bits::{Packer, Unpacker};

/// splitmix64: small, deterministic, good enough for test inputs.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next() % span,
            None => self.next(),
        }
    }
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }
    /// Uniform-ish in `lo..=hi` for wide ranges.
    fn range128(&mut self, lo: u128, hi: u128) -> u128 {
        let wide = (u128::from(self.next()) << 64) | u128::from(self.next());
        match (hi - lo).checked_add(1) {
            Some(span) => lo + wide % span,
            None => wide,
        }
    }
}

/// The kinds whose whole generic contract holds (a cost of 0 never writes; `reset_after` is when
/// the full capacity is back). `limits-sliding-window` reproduces another library's semantics
/// instead and has its own comparison below; it joins the tests that hold for every kind.
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::SlidingWindow,
    Algorithm::FixedWindow,
    Algorithm::Gcra,
    Algorithm::MovingWindow,
];

/// Around 2024 in µs: realistic timestamps, far from 0 so small steps back stay positive.
pub(super) const BASE_US: u64 = 1_700_000_000_000_000;

pub(super) fn random_rule(rng: &mut Rng, algorithm: Algorithm) -> Rule {
    loop {
        let limit = match rng.range(0, 9) {
            0..=4 => rng.pick(&[1, 2, 3, 4, 5, 7, 10]),
            5..=7 => rng.range(1, 100),
            8 => rng.range(1, 1_000_000),
            _ => rng.pick(&[MAX_COUNT, MAX_COUNT / 3, 1 << 40]),
        };
        let window = match rng.range(0, 9) {
            0..=2 => rng.pick(&[1, 2, 3, 7, 10]),
            3..=5 => rng.range(1, 1_000),
            6..=7 => rng.pick(&[1_000_000, 60_000_000, 3_600_000_000]),
            8 => rng.range(1, 100_000_000),
            _ => MAX_WINDOW_US,
        };
        let burst = if algorithm == Algorithm::Gcra && rng.chance(50) {
            Some(match rng.range(0, 3) {
                0 => rng.range(1, 5),
                1 => limit,
                2 => rng.range(1, 1_000),
                _ => limit.saturating_mul(2),
            })
        } else {
            None
        };
        if let Ok(rule) = Rule::new(algorithm, limit, window, burst) {
            return rule;
        }
    }
}

/// A rule of the same algorithm, changing limit, window or both (or burst for gcra).
pub(super) fn changed_rule(rng: &mut Rng, rule: &Rule) -> Rule {
    loop {
        let fresh = random_rule(rng, rule.algorithm());
        let (limit, window) = match rng.range(0, 3) {
            0 => (fresh.limit(), rule.window_us()),
            1 => (rule.limit(), fresh.window_us()),
            2 => (
                rule.limit().saturating_add(rng.range(0, 3)),
                rule.window_us(),
            ),
            _ => (fresh.limit(), fresh.window_us()),
        };
        let burst = (rule.algorithm() == Algorithm::Gcra && rng.chance(50))
            .then(|| rng.range(1, 2 * rule.burst().min(1 << 40)));
        if let Ok(new) = Rule::new(rule.algorithm(), limit, window, burst) {
            return new;
        }
    }
}

pub(super) fn random_cost(rng: &mut Rng, rule: &Rule, last: Option<&Decision>) -> u64 {
    let cap = rule.capacity();
    match rng.range(0, 19) {
        0..=1 => 0,
        2..=8 => 1,
        9..=12 => rng.range(1, 5).min(cap),
        13..=14 => last.map_or(1, |d| d.remaining.max(1)).min(cap),
        15 => cap.saturating_add(1).min(MAX_COUNT),
        16 => cap,
        _ => rng.range(1, cap),
    }
}

pub(super) fn next_time(
    rng: &mut Rng,
    now: u64,
    rule: &Rule,
    stored: Option<&Limiter>,
    last: Option<&Decision>,
) -> u64 {
    let w = rule.window_us();
    let next = match rng.range(0, 19) {
        0..=3 => now,
        4..=7 => now + rng.range(1, 3),
        8 => now.saturating_sub(rng.range(1, 3)),
        9 if rng.chance(25) => now.saturating_sub(rng.range(w, 5 * w)), // a clock step back
        9 => now.saturating_sub(rng.range(0, w / 2)),
        10..=11 => {
            let edge = now - now % w + w; // next aligned boundary
            (edge + rng.range(0, 2)).saturating_sub(1)
        }
        12..=13 => match stored.map(Limiter::expires_at_us) {
            Some(exp) if exp > 0 => (exp + rng.range(0, 2)).saturating_sub(1),
            _ => now + 1,
        },
        14..=15 => match last.map(|d| d.retry_after) {
            Some(RetryAfter::After(d)) => (now + d + rng.range(0, 1)).saturating_sub(1),
            _ => now + rng.range(0, w),
        },
        16 => now + rng.range(0, w),
        17 => now + rng.range(0, 3 * w),
        18 => now + rng.range(2, 6) * w,
        _ => now + rng.range(0, 10_000),
    };
    // Keep time realistic (the spans searched by the reference stay small).
    next.clamp(BASE_US / 2, MAX_TIMESTAMP_US / 2)
}

/// Runs one random sequence of decisions against the real code and the reference model.
fn compare_sequence<M: Model>(seed: u64, algorithm: Algorithm, steps: usize) {
    let mut rng = Rng(seed);
    let mut rule = random_rule(&mut rng, algorithm);
    let mut now = BASE_US + rng.range(0, 1 << 40);
    let mut stored: Option<Limiter> = None;
    let mut model: Option<(Rule, M)> = None;
    let mut last: Option<Decision> = None;
    for step in 0..steps {
        if rng.chance(4) {
            rule = changed_rule(&mut rng, &rule);
        }
        now = next_time(&mut rng, now, &rule, stored.as_ref(), last.as_ref());
        let cost = random_cost(&mut rng, &rule, last.as_ref());
        let context = || {
            format!(
                "seed {seed} step {step}: rule {rule:?} cost {cost} now {now} stored {stored:?}"
            )
        };

        let peeked = Limiter::peek(stored.as_ref(), &rule, cost, now).unwrap();
        let (decision, written) = decide(stored.as_ref(), &rule, cost, now);
        assert_eq!(peeked, decision, "peek differs from decide: {}", context());
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
        assert_eq!(decision, expected, "{}", context());
        assert_eq!(written.is_some(), ref_written.is_some(), "{}", context());
        if let Some(w) = written {
            assert_eq!(w.rule, rule);
            assert!(w.is_valid(), "{}: wrote {w:?}", context());
            assert_eq!(
                w.expires_at_us(),
                now + decision.reset_after_us,
                "{}",
                context()
            );
            assert!(w.expires_at_us() > now);
            // The compact form the data type keeps it in gives back exactly this state.
            pack_round_trip(&w);
            stored = Some(w);
            model = Some((rule, ref_written.unwrap()));
        }
        last = Some(decision);
    }
}

#[test]
fn sliding_window_matches_reference() {
    for seed in 0..150 {
        compare_sequence::<SlidingRef>(seed, Algorithm::SlidingWindow, 400);
    }
}

#[test]
fn fixed_window_matches_reference() {
    for seed in 0..150 {
        compare_sequence::<FixedRef>(1_000 + seed, Algorithm::FixedWindow, 400);
    }
}

#[test]
fn moving_window_matches_reference() {
    for seed in 0..150 {
        compare_sequence::<LogRef>(3_000 + seed, Algorithm::MovingWindow, 400);
    }
}

#[test]
fn gcra_matches_reference() {
    for seed in 0..150 {
        compare_sequence::<BucketRef>(2_000 + seed, Algorithm::Gcra, 400);
    }
}

/// A random valid state for `rule` around `now` (including counts above the limit and, rarely,
/// a window start after `now`).
fn random_state(rng: &mut Rng, rule: &Rule, now: u64) -> State {
    let w = rule.window_us();
    let count = |rng: &mut Rng| match rng.range(0, 5) {
        0 => 0,
        1 => rule.limit(),
        2 => rng.range(0, rule.limit().saturating_add(2)).min(MAX_COUNT),
        3 => rng.range(0, 5),
        4 => rng.range(0, rule.limit()),
        _ => MAX_COUNT,
    };
    match rule.algorithm() {
        Algorithm::SlidingWindow => {
            let t = (now + rng.range(0, w)).saturating_sub(rng.range(0, 3 * w));
            State::SlidingWindow(SlidingWindowState {
                window_start_us: t - t % w,
                current: count(rng),
                previous: count(rng),
            })
        }
        Algorithm::FixedWindow => State::FixedWindow(FixedWindowState {
            window_start_us: (now + rng.range(0, 10)).saturating_sub(rng.range(0, 2 * w)),
            count: count(rng),
        }),
        Algorithm::Gcra => {
            // In units of 1/limit µs: T = window units, τ = burst × window units.
            let now_s = u128::from(now) * u128::from(rule.limit());
            let w = u128::from(rule.window_us());
            let tau = u128::from(rule.burst()) * w;
            let tat = match rng.range(0, 3) {
                0 => now_s - rng.range128(0, 2 * w),
                1 => now_s + rng.range128(0, tau),
                2 => now_s + tau + rng.range128(0, w), // ahead: a clock step back
                _ => now_s + rng.range128(0, 2 * tau + 5),
            };
            State::Gcra(GcraState {
                tat_scaled: tat,
                debt: rng.chance(20),
            })
        }
        Algorithm::LimitsSlidingWindow => {
            let t = now / 1000;
            let e = (w / 1000).max(1);
            let expire = |rng: &mut Rng| match rng.range(0, 4) {
                0 => 0,
                1 => t.saturating_sub(rng.range(0, e)),
                2 => t + rng.range(1, 2 * e),
                _ => t + rng.range(0, 4 * e), // sometimes ahead: a clock step back
            };
            let (ce, pe) = (expire(rng), expire(rng));
            let c = if ce == 0 { 0 } else { count(rng) };
            let p = if pe == 0 { 0 } else { count(rng) };
            State::LimitsSlidingWindow(LimitsSlidingState::new(c, ce, p, pe))
        }
        Algorithm::MovingWindow => loop {
            let n = rng.range(1, 6);
            let mut t = now.saturating_sub(rng.range(0, 2 * w));
            let mut runs = Vec::new();
            for _ in 0..n {
                runs.push((t, count(rng).max(1)));
                t += rng.range(1, w / 2 + 1);
                if t > now && !rng.chance(10) {
                    break; // rarely ahead: a clock step back
                }
            }
            if let Some(log) = MovingWindowState::from_runs(runs) {
                break State::MovingWindow(log);
            }
        },
        Algorithm::Leases => unreachable!("leases have their own tests (leases::tests)"),
    }
}

fn random_limiter(rng: &mut Rng) -> (Limiter, u64) {
    let algorithm = rng.pick(ALGORITHMS);
    let rule = random_rule(rng, algorithm);
    let now = BASE_US + rng.range(0, 1 << 45);
    let state = random_state(rng, &rule, now);
    let limiter = Limiter { rule, state };
    assert!(limiter.is_valid(), "{limiter:?}");
    (limiter, now)
}

/// `Limiter::decide` on a copy: the decision and the limiter it stored, if any.
fn decide(l: Option<&Limiter>, rule: &Rule, cost: u64, now: u64) -> (Decision, Option<Limiter>) {
    let mut copy = l.cloned();
    let (d, outcome) = Limiter::decide(copy.as_mut(), rule, cost, now).unwrap();
    let written = match outcome {
        Outcome::Unchanged | Outcome::Emptied => None,
        Outcome::Updated => copy,
        Outcome::Created(l) => Some(l),
    };
    (d, written)
}

/// After any decision, exactly `remaining` further cost-1 requests pass at the same instant.
#[test]
fn remaining_is_exact() {
    let mut rng = Rng(7);
    for _ in 0..10_000 {
        let (l, now) = random_limiter(&mut rng);
        let rule = if rng.chance(20) {
            changed_rule(&mut rng, &l.rule)
        } else {
            l.rule
        };
        let cost = random_cost(&mut rng, &rule, None);
        let (d, written) = decide(Some(&l), &rule, cost, now);
        let after = written.unwrap_or(l);
        let r = d.remaining;
        let after = &after;
        assert!(r <= rule.capacity());
        if r <= 20 {
            let mut cur = after.clone();
            for i in 0..r {
                let (d1, w) = decide(Some(&cur), &rule, 1, now);
                assert!(d1.allowed, "{i}/{r} of {cur:?}");
                assert_eq!(d1.remaining, r - i - 1);
                cur = w.unwrap();
            }
            assert!(
                !decide(Some(&cur), &rule, 1, now).0.allowed,
                "{after:?} {r}"
            );
        } else {
            // Equivalent for these algorithms: a cost-r request passes, r + 1 does not.
            let (d_r, _) = decide(Some(after), &rule, r, now);
            assert!(d_r.allowed && d_r.remaining == 0);
            assert!(!decide(Some(after), &rule, r + 1, now).0.allowed);
        }
    }
}

/// A denied request passes exactly `retry_after` later, and not 1 µs earlier; the full capacity
/// passes exactly `reset_after` later (both measured on what the call left stored).
#[test]
fn retry_after_and_reset_after_are_exact() {
    let mut rng = Rng(8);
    let mut denied = 0;
    let mut clamped = 0;
    for _ in 0..10_000 {
        // Under the stored rule: after a rule change the answers are exact once the
        // carried-over limiter is stored, which decide does (see
        // `decide_under_new_rule_is_carried_over`).
        let (l, now) = random_limiter(&mut rng);
        let rule = l.rule;
        let cost = random_cost(&mut rng, &rule, None);
        let (d, written) = decide(Some(&l), &rule, cost, now);
        // What RL.ALLOW leaves (a peek of a clamped state describes the clamped state).
        let after = match &written {
            Some(w) => Some(w.clone()),
            None if l.is_ahead(now) => l.carried_over(&rule, now).unwrap(),
            None => Some(l.clone()),
        };
        let after = after.as_ref();
        match d.retry_after {
            RetryAfter::After(delay) => {
                denied += 1;
                assert!(delay >= 1 && !d.allowed);
                if written.is_some() {
                    clamped += 1;
                }
                assert!(!decide(after, &rule, cost, now + delay - 1).0.allowed);
                assert!(decide(after, &rule, cost, now + delay).0.allowed);
            }
            RetryAfter::Never => assert!(cost > rule.capacity() && written.is_none()),
            RetryAfter::Now => assert!(d.allowed),
        }
        let (full, _) = decide(after, &rule, rule.capacity(), now + d.reset_after_us);
        assert!(
            full.allowed,
            "{l:?} cost {cost} now {now}: {d:?} then {full:?}"
        );
        if d.reset_after_us > 0 {
            let (not_yet, _) = decide(after, &rule, rule.capacity(), now + d.reset_after_us - 1);
            assert!(!not_yet.allowed, "{after:?} {d:?} {now}");
        }
        if let Some(w) = written {
            assert_eq!(w.expires_at_us() - now, d.reset_after_us);
        }
    }
    assert!(denied > 1_500, "too few denials exercised: {denied}");
    assert!(clamped > 50, "too few clamped states exercised: {clamped}");
}

/// From `expires_at` on, a stored limiter behaves exactly like an absent key.
#[test]
fn expired_state_is_absent() {
    let mut rng = Rng(9);
    for _ in 0..10_000 {
        let (l, now) = random_limiter(&mut rng);
        let exp = l.expires_at_us();
        // An empty state expires "at 0": it is absent at any time.
        let from = if exp == 0 { now } else { exp };
        let t = match rng.range(0, 2) {
            0 => from,
            1 => from + 1,
            _ => from + rng.range(0, 3 * l.rule.window_us()),
        };
        let cost = random_cost(&mut rng, &l.rule, None);
        assert_eq!(
            decide(Some(&l), &l.rule, cost, t),
            decide(None, &l.rule, cost, t),
            "{l:?} at {t}"
        );
    }
}

/// Raising the limit (and, for gcra, not lowering the burst) never denies what the old rule
/// admitted.
#[test]
fn raising_limit_never_denies_more() {
    let mut rng = Rng(10);
    let mut checked = 0;
    for _ in 0..10_000 {
        let (l, now) = random_limiter(&mut rng);
        let old = l.rule;
        let limit = old
            .limit()
            .saturating_add(rng.pick(&[0, 1, 2, 10, old.limit()]))
            .min(MAX_COUNT);
        let burst = (old.algorithm() == Algorithm::Gcra)
            .then(|| old.burst().saturating_add(rng.range(0, 3)).min(MAX_COUNT));
        let Ok(new) = Rule::new(old.algorithm(), limit, old.window_us(), burst) else {
            continue;
        };
        let now = now + rng.range(0, 3);
        let cost = random_cost(&mut rng, &old, None);
        if decide(Some(&l), &old, cost, now).0.allowed {
            checked += 1;
            let (d, _) = decide(Some(&l), &new, cost, now);
            assert!(d.allowed, "{l:?} {new:?} cost {cost} now {now}");
        }
    }
    assert!(checked > 2_000);
}

fn extreme(rng: &mut Rng) -> u64 {
    match rng.range(0, 7) {
        0 => 0,
        1 => u64::MAX,
        2 => MAX_COUNT,
        3 => MAX_TIMESTAMP_US,
        4 => u64::MAX - rng.range(0, 1_000),
        5 => rng.range(0, 10),
        6 => rng.next() >> rng.range(0, 63),
        _ => rng.next(),
    }
}

fn extreme_rule(rng: &mut Rng) -> Rule {
    let algorithm = rng.pick(Algorithm::ALL);
    loop {
        let e = extreme(rng);
        let limit = rng.pick(&[1, 2, MAX_COUNT, e]);
        let e = extreme(rng);
        let window = rng.pick(&[1, MAX_WINDOW_US, e % (MAX_WINDOW_US + 1)]);
        let burst = rng.chance(50).then(|| {
            let e = extreme(rng);
            rng.pick(&[1, MAX_COUNT, e])
        });
        if let Ok(rule) = Rule::new(algorithm, limit, window, burst) {
            return rule;
        }
        if rng.chance(30) {
            return random_rule(rng, algorithm);
        }
    }
}

/// Arbitrary (even invalid) states and extreme values never panic, overflow or underflow.
#[test]
fn never_panics_on_arbitrary_input() {
    let mut rng = Rng(11);
    for _ in 0..50_000 {
        let stored_rule = extreme_rule(&mut rng);
        let state = match rng.range(0, 2) {
            0 => State::SlidingWindow(SlidingWindowState {
                window_start_us: extreme(&mut rng),
                current: extreme(&mut rng),
                previous: extreme(&mut rng),
            }),
            1 => State::FixedWindow(FixedWindowState {
                window_start_us: extreme(&mut rng),
                count: extreme(&mut rng),
            }),
            _ => State::Gcra(GcraState {
                tat_scaled: u128::from(extreme(&mut rng)) * u128::from(extreme(&mut rng)),
                debt: rng.chance(50),
            }),
        };
        let l = Limiter {
            rule: stored_rule,
            state,
        };
        let _ = l.is_valid();
        let _ = l.expires_at_us();
        let rule = if rng.chance(50) {
            let mut r = extreme_rule(&mut rng);
            if rng.chance(50) {
                // Same algorithm as the state, possibly not as the stored rule.
                while r.algorithm() != l.state.algorithm() {
                    r = extreme_rule(&mut rng);
                }
            }
            r
        } else {
            stored_rule
        };
        let e = extreme(&mut rng);
        let cost = rng.pick(&[0, 1, MAX_COUNT, e % (MAX_COUNT + 1)]);
        let now = extreme(&mut rng);
        let _ = l.is_ahead(now);
        let peeked = Limiter::peek(Some(&l), &rule, cost, now);
        let mut copy = l.clone();
        match Limiter::decide(Some(&mut copy), &rule, cost, now) {
            Ok((d, outcome)) => {
                assert!(d.remaining <= d.capacity);
                assert_eq!(peeked, Ok(d));
                if outcome == Outcome::Updated {
                    let _ = copy.expires_at_us();
                    let _ = decide(Some(&copy), &rule, cost, now);
                }
            }
            Err(e) => assert_ne!(e.stored, e.requested),
        }
        let _ = Limiter::decide(None, &rule, cost, now);
    }
}

/// Under a new rule, a decision is the one taken against the carried-over limiter.
#[test]
fn decide_under_new_rule_is_carried_over() {
    let mut rng = Rng(13);
    for _ in 0..10_000 {
        let (l, now) = random_limiter(&mut rng);
        let rule = changed_rule(&mut rng, &l.rule);
        let now = now + rng.range(0, 2 * l.rule.window_us());
        let cost = random_cost(&mut rng, &rule, None);
        let carried = l.carried_over(&rule, now).unwrap();
        if let Some(c) = &carried {
            assert_eq!(c.rule, rule);
            assert!(c.is_valid(), "{l:?} -> {c:?} at {now}");
        }
        let (d, w) = decide(Some(&l), &rule, cost, now);
        let (d_carried, w_carried) = decide(carried.as_ref(), &rule, cost, now);
        assert_eq!(d, d_carried);
        match d.retry_after {
            // A denial under a new rule (or of a clamped state) stores the carried-over limiter.
            RetryAfter::After(_) if rule != l.rule || l.is_ahead(now) => {
                assert_eq!((w, w_carried), (carried, None))
            }
            _ => assert_eq!(w, w_carried),
        }
    }
}

#[test]
fn algorithm_mismatch_is_an_error() {
    let sliding = Rule::new(Algorithm::SlidingWindow, 5, 1_000, None).unwrap();
    let gcra = Rule::new(Algorithm::Gcra, 5, 1_000, None).unwrap();
    let (_, stored) = decide(None, &sliding, 1, BASE_US);
    let err = Limiter::decide(stored.clone().as_mut(), &gcra, 1, BASE_US).unwrap_err();
    assert_eq!(Limiter::peek(stored.as_ref(), &gcra, 1, BASE_US), Err(err));
    assert_eq!(
        err,
        AlgorithmMismatch {
            stored: Algorithm::SlidingWindow,
            requested: Algorithm::Gcra
        }
    );
}

#[test]
fn cost_zero_reports_without_writing() {
    let mut rng = Rng(12);
    for _ in 0..1_000 {
        let (l, now) = random_limiter(&mut rng);
        let (d, w) = decide(Some(&l), &l.rule, 0, now);
        assert!(d.allowed && w.is_none() && d.retry_after == RetryAfter::Now);
        // Same remaining / reset as a request beyond capacity (both only peek).
        let (over, w) = decide(Some(&l), &l.rule, l.rule.capacity() + 1, now);
        if l.rule.capacity() < MAX_COUNT {
            assert_eq!(over.retry_after, RetryAfter::Never);
            assert_eq!(
                (over.remaining, over.reset_after_us),
                (d.remaining, d.reset_after_us)
            );
            assert!(w.is_none());
        }
    }
}

#[test]
fn is_valid_checks_every_invariant() {
    let sliding = Rule::new(Algorithm::SlidingWindow, 5, 1_000, None).unwrap();
    let fixed = Rule::new(Algorithm::FixedWindow, 5, 1_000, None).unwrap();
    let gcra = Rule::new(Algorithm::Gcra, 5, 1_000, None).unwrap();
    let sw = |s, c, p| Limiter {
        rule: sliding,
        state: State::SlidingWindow(SlidingWindowState {
            window_start_us: s,
            current: c,
            previous: p,
        }),
    };
    assert!(sw(2_000, 5, 9).is_valid());
    assert!(sw(0, 0, 0).is_valid());
    assert!(!sw(2_001, 1, 1).is_valid());
    assert!(!sw(2_000, MAX_COUNT + 1, 0).is_valid());
    assert!(!sw(2_000, 0, MAX_COUNT + 1).is_valid());
    let last_aligned = MAX_TIMESTAMP_US - MAX_TIMESTAMP_US % 1_000;
    assert!(sw(last_aligned, 1, 1).is_valid());
    assert!(!sw(last_aligned + 1_000, 1, 1).is_valid());
    let fw = |s, c| FixedWindowState {
        window_start_us: s,
        count: c,
    };
    let ok = |rule, state| Limiter { rule, state }.is_valid();
    assert!(ok(
        fixed,
        State::FixedWindow(fw(MAX_TIMESTAMP_US, MAX_COUNT))
    ));
    assert!(!ok(fixed, State::FixedWindow(fw(MAX_TIMESTAMP_US + 1, 1))));
    assert!(!ok(fixed, State::FixedWindow(fw(1, MAX_COUNT + 1))));
    let tat = |us: u64| State::Gcra(GcraState::from_tat_us(&gcra, us));
    assert!(ok(gcra, tat(MAX_TIMESTAMP_US)));
    assert!(!ok(gcra, tat(MAX_TIMESTAMP_US + 1)));
    assert!(!ok(
        gcra,
        State::Gcra(GcraState {
            tat_scaled: u128::from(MAX_TIMESTAMP_US) * 5 + 1,
            debt: false,
        })
    ));
    // Variant must match the rule's algorithm.
    assert!(!ok(sliding, State::FixedWindow(fw(1, 1))));
    assert!(!ok(gcra, State::FixedWindow(fw(1, 1))));
    assert!(!ok(fixed, tat(1)));
}

#[test]
fn huge_values_at_the_edges() {
    // Largest limit and window: products need u128.
    let r = Rule::new(Algorithm::SlidingWindow, MAX_COUNT, MAX_WINDOW_US, None).unwrap();
    let now = MAX_TIMESTAMP_US - MAX_TIMESTAMP_US % MAX_WINDOW_US + 5;
    let (d, w) = decide(None, &r, MAX_COUNT, now);
    assert!(d.allowed && d.remaining == 0);
    let w = w.unwrap();
    assert!(w.is_valid());
    let (d, _) = decide(Some(&w), &r, 1, now);
    assert!(!d.allowed);
    let RetryAfter::After(delay) = d.retry_after else {
        panic!()
    };
    assert!(decide(Some(&w), &r, 1, now + delay).0.allowed);
    assert!(!decide(Some(&w), &r, 1, now + delay - 1).0.allowed);

    let r = Rule::new(Algorithm::FixedWindow, MAX_COUNT, MAX_WINDOW_US, None).unwrap();
    let (d, w) = decide(None, &r, MAX_COUNT, MAX_TIMESTAMP_US);
    assert!(d.allowed);
    assert_eq!(d.reset_after_us, MAX_WINDOW_US);
    let (d, _) = decide(w.as_ref(), &r, MAX_COUNT, MAX_TIMESTAMP_US);
    assert_eq!(d.retry_after, RetryAfter::After(MAX_WINDOW_US));

    // gcra with the largest tolerance.
    let r = Rule::new(Algorithm::Gcra, 1, 1, Some(MAX_GCRA_TOLERANCE_US)).unwrap();
    let (d, w) = decide(None, &r, MAX_GCRA_TOLERANCE_US, BASE_US);
    assert!(d.allowed && d.remaining == 0);
    assert_eq!(d.reset_after_us, MAX_GCRA_TOLERANCE_US);
    assert!(w.as_ref().unwrap().is_valid());
    let (d, _) = decide(w.as_ref(), &r, 1, BASE_US);
    assert_eq!(d.retry_after, RetryAfter::After(1));
    // Cost MAX_COUNT beyond a small capacity.
    let (d, _) = decide(w.as_ref(), &r, MAX_COUNT, BASE_US);
    assert_eq!(d.retry_after, RetryAfter::Never);
}

/// gcra by its definition: over any span `[a, b]` at most `burst + limit × (b − a) / window` is
/// admitted, for every rule the parser accepts (more than one request per µs included).
#[test]
fn gcra_never_admits_more_than_burst_plus_rate() {
    let mut rng = Rng(14);
    let mut admitted_total = 0u64;
    for _ in 0..300 {
        let rule = match rng.range(0, 3) {
            0 => Rule::new(Algorithm::Gcra, 600_000, 1_000_000, None).unwrap(),
            1 => Rule::new(Algorithm::Gcra, 1_000_000, 1_900_000, None).unwrap(),
            _ => random_rule(&mut rng, Algorithm::Gcra),
        };
        let (l, w, b) = (
            u128::from(rule.limit()),
            u128::from(rule.window_us()),
            u128::from(rule.burst()),
        );
        let mut now = BASE_US + rng.range(0, 1 << 30);
        let mut stored: Option<Limiter> = None;
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        for _ in 0..200 {
            now += match rng.range(0, 3) {
                0 => 0,
                1 => rng.range(1, 3),
                _ => rng.range(0, rule.window_us().min(1 << 40) / 4 + 1),
            };
            let cost = match rng.range(0, 2) {
                0 => 1,
                1 => rule.capacity(),
                _ => rng.range(1, rule.capacity()),
            };
            let (d, written) = decide(stored.as_ref(), &rule, cost, now);
            if d.allowed {
                admitted.push((now, cost));
                admitted_total += 1;
            }
            if written.is_some() {
                stored = written;
            }
        }
        for i in 0..admitted.len() {
            let mut sum = 0u128;
            for j in i..admitted.len() {
                sum += u128::from(admitted[j].1);
                let span = u128::from(admitted[j].0 - admitted[i].0);
                assert!(
                    sum * w <= b * w + l * span,
                    "{rule:?}: {sum} admitted within {span} µs"
                );
            }
        }
    }
    assert!(admitted_total > 10_000);
}

/// A state from a day in the future (a clock step back of a day) costs at most the waiting a
/// full limiter costs (two windows for sliding-window), and RL.ALLOW stores the clamped state
/// so that the TTL follows.
#[test]
fn a_clock_step_back_never_freezes_a_limiter() {
    const DAY: u64 = 86_400_000_000;
    for algorithm in Algorithm::rate_limits() {
        let rule = Rule::new(algorithm, 10, 60_000_000, None).unwrap();
        let now = BASE_US - BASE_US % 60_000_000 + 1_000;
        // Fill it up "tomorrow".
        let mut l: Option<Limiter> = None;
        for _ in 0..10 {
            let (d, w) = decide(l.as_ref(), &rule, 1, now + DAY);
            assert!(d.allowed);
            l = w;
        }
        let l = l.unwrap();
        assert!(l.is_ahead(now));
        let (d, written) = decide(Some(&l), &rule, 1, now);
        assert!(!d.allowed);
        let RetryAfter::After(retry) = d.retry_after else {
            panic!("{d:?}")
        };
        assert!(
            retry <= 2 * rule.window_us(),
            "{algorithm:?}: retry {retry}"
        );
        assert!(d.reset_after_us <= 2 * rule.window_us(), "{d:?}");
        let written = written.expect("a denial of a clamped state stores it");
        assert_eq!(written.expires_at_us(), now + d.reset_after_us);
        assert!(!written.is_ahead(now));
        assert!(decide(Some(&written), &rule, 1, now + retry).0.allowed);
    }
}

/// Moving window by its definition: no interval of length `window` ever holds more than
/// `limit`, whatever the costs (up to 1,000,000) and however the requests are spaced.
#[test]
fn moving_window_never_holds_more_than_limit_in_any_window() {
    let mut rng = Rng(15);
    for _ in 0..300 {
        let limit = *[1, 3, 10, 1_000, 1_000_000]
            .get(rng.range(0, 4) as usize)
            .unwrap();
        let w = rng.pick(&[1, 7, 1_000, 60_000_000]);
        let rule = Rule::new(Algorithm::MovingWindow, limit, w, None).unwrap();
        let mut now = BASE_US;
        let mut stored: Option<Limiter> = None;
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        for _ in 0..300 {
            now += rng.pick(&[0, 1, 2, w / 3, w / 2, w, w + 1]);
            let cost = match rng.range(0, 3) {
                0 => 1,
                1 => limit,
                _ => rng.range(1, limit),
            };
            let (d, written) = decide(stored.as_ref(), &rule, cost, now);
            if d.allowed {
                admitted.push((now, cost));
            }
            if written.is_some() {
                stored = written;
            }
        }
        for i in 0..admitted.len() {
            let sum: u64 = admitted[i..]
                .iter()
                .take_while(|&&(t, _)| t < admitted[i].0 + w)
                .map(|&(_, c)| c)
                .sum();
            assert!(
                sum <= limit,
                "{rule:?}: {sum} within one window from {}",
                admitted[i].0
            );
        }
    }
}

/// From the coalescing threshold on, an entry stays counted less than `g` past its exact
/// expiry, never longer, and never shorter: against the exact log of the same admissions, the
/// capped log admits only what the exact log admits and everything the exact log with every
/// entry lengthened by `g` admits; and under an unchanged rule it never exceeds its cap.
#[test]
fn moving_window_cap_is_a_bounded_approximation() {
    let mut rng = Rng(16);
    let mut stricter = 0;
    for _ in 0..300 {
        let cap = rng.range(3, 12) as usize;
        let bounds = Bounds { max_runs: cap };
        let rule = Rule::new(
            Algorithm::MovingWindow,
            rng.range(1, 60),
            rng.range(5, 2_000),
            None,
        )
        .unwrap();
        let w = rule.window_us();
        let g = moving_window::bucket_us(w, cap);
        let mut now = BASE_US;
        let mut stored: Option<Limiter> = None;
        let mut admitted: Vec<(u64, u64)> = Vec::new();
        for _ in 0..400 {
            let step = w / rng.pick(&[2, 8, 40]) + 1;
            now += rng.range(0, step);
            let cost = rng.range(1, rule.limit());
            let in_window = |extra: u64| -> u64 {
                admitted
                    .iter()
                    .filter(|&&(t, _)| t + w + extra > now)
                    .map(|&(_, c)| c)
                    .sum()
            };
            let exact_admits = in_window(0) + cost <= rule.limit();
            let lengthened_admits = in_window(g - 1) + cost <= rule.limit();
            let mut copy = stored.clone();
            let v = Limiter::decide_within(copy.as_mut(), &rule, cost, now, &bounds).unwrap();
            if v.decision.allowed {
                assert!(
                    exact_admits,
                    "capped log admitted what the exact log denies"
                );
                admitted.push((now, cost));
                stored = match v.outcome {
                    Outcome::Created(l) => Some(l),
                    _ => copy,
                };
                let l = stored.as_ref().unwrap();
                let State::MovingWindow(log) = &l.state else {
                    unreachable!()
                };
                assert!(
                    log.run_count() <= cap,
                    "{} runs, cap {cap}",
                    log.run_count()
                );
                assert!(l.is_valid());
            } else {
                assert!(
                    !lengthened_admits,
                    "denied what entries held {g} µs longer would admit: {rule:?} cap {cap}"
                );
                if exact_admits {
                    stricter += 1;
                }
            }
        }
    }
    assert!(stricter > 0, "the cap never mattered: test too weak");
}

/// Clients at 10 %, 50 % and 99 % of their limit, at rates far beyond the cap, are never
/// denied (the case: 10,000,000 per 10 s, a client at a tenth of it, 100,000 runs).
#[test]
fn moving_window_at_rates_beyond_the_cap_never_denies_clients_under_their_limit() {
    let cases = [
        // (limit, window µs, cap, fraction in per mille, seconds simulated)
        (10_000_000u64, 10_000_000u64, 100_000usize, 100u64, 30u64),
        (1_000_000, 1_000_000, 10_000, 100, 3),
        (1_000_000, 1_000_000, 10_000, 500, 3),
        (1_000_000, 1_000_000, 10_000, 990, 3),
    ];
    for (limit, w, cap, per_mille, secs) in cases {
        let rule = Rule::new(Algorithm::MovingWindow, limit, w, None).unwrap();
        let bounds = Bounds { max_runs: cap };
        let rate_per_window = limit * per_mille / 1_000;
        let hits = rate_per_window * secs * 1_000_000 / w;
        let mut stored: Option<Limiter> = None;
        let mut max_runs = 0;
        for k in 0..hits {
            // Evenly spaced: hit k at ⌊k·W / rate⌋.
            let now =
                BASE_US + (u128::from(k) * u128::from(w) / u128::from(rate_per_window)) as u64;
            let v = Limiter::decide_within(stored.as_mut(), &rule, 1, now, &bounds).unwrap();
            assert!(
                v.decision.allowed,
                "denied at hit {k} ({per_mille}‰ of {limit} per {w} µs)"
            );
            if let Outcome::Created(l) = v.outcome {
                stored = Some(l);
            }
            if let Some(State::MovingWindow(log)) = stored.as_ref().map(|l| &l.state) {
                max_runs = max_runs.max(log.run_count());
            }
        }
        assert!(
            max_runs <= cap && max_runs > cap / 3,
            "{max_runs} runs, cap {cap}"
        );
    }
}
/// A replica replaying the master's hits (`RL.APPLY`) ends with the master's log, through rule
/// changes, clock steps and conversions.
#[test]
fn moving_window_replay_reproduces_the_master() {
    let mut rng = Rng(17);
    for _ in 0..200 {
        let mut rule = random_rule(&mut rng, Algorithm::MovingWindow);
        let bounds = if rng.chance(50) {
            Bounds::DEFAULT
        } else {
            Bounds {
                max_runs: rng.range(3, 20) as usize,
            }
        };
        let mut now = BASE_US + rng.range(0, 1 << 30);
        let mut master: Option<Limiter> = None;
        let mut replica: Option<Limiter> = None;
        for _ in 0..200 {
            if rng.chance(5) {
                rule = changed_rule(&mut rng, &rule);
            }
            now = next_time(&mut rng, now, &rule, master.as_ref(), None);
            let cost = random_cost(&mut rng, &rule, None);
            let mut copy = master.clone();
            let v = Limiter::decide_within(copy.as_mut(), &rule, cost, now, &bounds).unwrap();
            let replicated = match v.outcome {
                Outcome::Unchanged | Outcome::Emptied => continue,
                Outcome::Updated => copy,
                Outcome::Created(l) => Some(l),
            };
            let charged = if v.decision.allowed { cost } else { 0 };
            // Through the wire format, as RL.APPLY receives it.
            let hit = replicated
                .as_ref()
                .unwrap()
                .hit(now, charged, &bounds)
                .unwrap();
            let payload = crate::datatype::codec::encode_hit(&hit);
            let hit = crate::datatype::codec::decode_hit(payload.as_slice()).unwrap();
            assert_eq!(
                hit.needs_current_replay,
                bounds != Bounds::DEFAULT || hit.after.is_some()
            );
            match Limiter::replay(replica.as_mut(), &hit).unwrap() {
                Outcome::Created(l) => replica = Some(l),
                Outcome::Emptied => replica = None,
                Outcome::Updated | Outcome::Unchanged => {}
            }
            master = replicated;
            assert_eq!(master, replica, "after {cost} at {now} under {rule:?}");
            assert!(replica.as_ref().unwrap().agrees_with(&hit));
        }
    }
}

/// 1,000 single hits spread over the window take at most 8 bytes each, and a hit of cost
/// 1,000,000 is one run.
#[test]
fn moving_window_log_is_compact() {
    let rule = Rule::new(Algorithm::MovingWindow, 1_000_000, 60_000_000, None).unwrap();
    for spacing in [60_000u64, 3_600] {
        let mut log = MovingWindowState::new(BASE_US, 1);
        for i in 1..1_000 {
            log.commit(&rule, &rule, BASE_US + i * spacing, 1, &Bounds::DEFAULT);
        }
        assert_eq!(log.run_count(), 1_000);
        let encoded = crate::datatype::codec::encode(&Limiter {
            rule,
            state: State::MovingWindow(log.clone()),
        });
        assert!(encoded.len() <= 8 * 1_000, "{} bytes", encoded.len());
    }
    let mut log = MovingWindowState::new(BASE_US, 1);
    log.commit(&rule, &rule, BASE_US + 1, 1_000_000 - 1, &Bounds::DEFAULT);
    assert_eq!((log.run_count(), log.total()), (2, 1_000_000));
}

/// The packed sizes the data type tries, smallest first: the value word, then a 16-byte block
/// (see `datatype::value`).
const PACKED_SIZES: [u32; 2] = [47, 112];

/// Packs `l` as the data type does and checks that it unpacks to exactly the same state; the
/// size used, `None` when it does not pack.
fn pack_round_trip(l: &Limiter) -> Option<u32> {
    for cap in PACKED_SIZES {
        let mut p = Packer::new(cap);
        if l.state.pack(&l.rule, &mut p) {
            let packed = p.finish();
            assert_eq!(packed.bits >> cap, 0, "{l:?}");
            let mut u = Unpacker::new(packed.bits, cap, packed.high);
            let state = l.rule.algorithm().unpack_state(&l.rule, &mut u);
            assert_eq!(state.as_ref(), Some(&l.state), "{cap} bits, {packed:?}");
            return Some(cap);
        }
    }
    None
}

/// Every state that packs comes back whole, random and extreme ones included.
#[test]
fn packed_states_unpack_to_themselves() {
    let mut rng = Rng(17);
    let mut packed = [0u32; 3];
    for _ in 0..50_000 {
        let (l, _) = random_limiter(&mut rng);
        let i = match pack_round_trip(&l) {
            Some(47) => 0,
            Some(_) => 1,
            None => 2,
        };
        packed[i] += 1;
    }
    // Most random states pack, into the word or a block.
    assert!(packed[0] > 10_000 && packed[1] > 1_000, "{packed:?}");
    for _ in 0..50_000 {
        let rule = extreme_rule(&mut rng);
        let state = match rule.algorithm() {
            Algorithm::SlidingWindow => State::SlidingWindow(SlidingWindowState {
                window_start_us: extreme(&mut rng) / rule.window_us() * rule.window_us(),
                current: extreme(&mut rng),
                previous: extreme(&mut rng),
            }),
            Algorithm::FixedWindow => State::FixedWindow(FixedWindowState {
                window_start_us: extreme(&mut rng),
                count: extreme(&mut rng),
            }),
            Algorithm::Gcra => State::Gcra(GcraState {
                tat_scaled: u128::from(extreme(&mut rng)) * u128::from(extreme(&mut rng)),
                debt: rng.chance(50),
            }),
            Algorithm::MovingWindow => {
                State::MovingWindow(MovingWindowState::new(extreme(&mut rng), extreme(&mut rng)))
            }
            Algorithm::Leases => {
                let lease = super::leases::Lease::new(
                    extreme(&mut rng),
                    super::leases::LeaseId::Num(extreme(&mut rng)),
                );
                let state = super::leases::LeasesState::from_parts(vec![lease], 1, 0);
                let Some(state) = state else { continue };
                // Leases stay boxed (see `datatype::value`).
                let l = Limiter {
                    rule,
                    state: State::Leases(state),
                };
                assert_eq!(pack_round_trip(&l), None);
                continue;
            }
            Algorithm::LimitsSlidingWindow => {
                let current_expire = extreme(&mut rng);
                let previous_expire = match rng.range(0, 2) {
                    0 => 0,
                    1 => current_expire.saturating_sub((rule.window_us() / 1000).max(1)),
                    _ => extreme(&mut rng),
                };
                State::LimitsSlidingWindow(LimitsSlidingState::new(
                    extreme(&mut rng),
                    current_expire,
                    extreme(&mut rng),
                    previous_expire,
                ))
            }
        };
        pack_round_trip(&Limiter { rule, state });
    }
    // A state under a penalty block stays boxed, whatever its kind's state.
    for _ in 0..1_000 {
        let (mut l, now) = random_limiter(&mut rng);
        l.state
            .set_block(Some(super::Block::new(now, rng.range(1, 1 << 30)).unwrap()));
        assert_eq!(pack_round_trip(&l), None, "{l:?}");
    }
}

/// gcra debts (`RL.CHARGE` past the capacity) pack too: into the value word where it has room
/// for a debt's depth (a bucket of `100/1h`), else into a block (`1000/1d` fills the word's 47
/// bits with its depth alone). Paying the debt off keeps the state packed.
#[test]
fn gcra_debts_pack() {
    const S: u64 = 1_000_000;
    let mut rng = Rng(23);
    for (limit, window, burst, debt_size) in [
        (100, 3_600 * S, None, 47),
        (100, 3_600 * S, Some(10), 47),
        (10, S, None, 47),
        (1_000, 86_400 * S, None, 112),
    ] {
        let rule = Rule::new(Algorithm::Gcra, limit, window, burst).unwrap();
        let mut now = 1_780_000_000_000_000 + rng.range(0, 1 << 40);
        let mut stored: Option<Limiter> = None;
        let (mut debts, mut plain) = (0, 0);
        for _ in 0..2_000 {
            now += rng.range(0, rule.window_us() / 4 + 2);
            let mut copy = stored.clone();
            let cost = rng.range(1, rule.capacity() + rule.capacity() / 2 + 2);
            let outcome = if rng.chance(10) {
                Limiter::charge(copy.as_mut(), &rule, cost, now, &Bounds::DEFAULT)
                    .unwrap()
                    .outcome
            } else {
                Limiter::decide(copy.as_mut(), &rule, cost.min(3), now)
                    .unwrap()
                    .1
            };
            let written = match outcome {
                Outcome::Unchanged | Outcome::Emptied => continue,
                Outcome::Updated => copy.unwrap(),
                Outcome::Created(l) => l,
            };
            let State::Gcra(g) = &written.state else {
                panic!("{written:?}")
            };
            if g.debt {
                debts += 1;
                assert_eq!(pack_round_trip(&written), Some(debt_size), "{written:?}");
            } else {
                plain += 1;
                assert_eq!(pack_round_trip(&written), Some(47), "{written:?}");
            }
            stored = Some(written);
        }
        assert!(debts > 50 && plain > 50, "{debts} {plain}");
    }
}

/// Under usual rules every state a client can produce packs into the value word: a counter key
/// then allocates nothing. Long sequences, rule changes within the set, clock jitter.
#[test]
fn usual_rules_always_pack_into_the_word() {
    const S: u64 = 1_000_000;
    let rules: Vec<Rule> = [
        (Algorithm::SlidingWindow, 100, 3_600 * S, None),
        (Algorithm::SlidingWindow, 10, S, None),
        (Algorithm::SlidingWindow, 1_000, 86_400 * S, None),
        (Algorithm::SlidingWindow, 10_000, 86_400 * S, None),
        (Algorithm::FixedWindow, 100, 3_600 * S, None),
        (Algorithm::FixedWindow, 10, S, None),
        (Algorithm::FixedWindow, 1_000, 86_400 * S, None),
        (Algorithm::Gcra, 100, 3_600 * S, None),
        (Algorithm::Gcra, 100, 3_600 * S, Some(10)),
        (Algorithm::Gcra, 10, S, None),
        (Algorithm::Gcra, 1_000, 86_400 * S, None),
        (Algorithm::Gcra, 10_000, 3_600 * S, None),
        (Algorithm::MovingWindow, 100, 3_600 * S, None),
        (Algorithm::LimitsSlidingWindow, 100, 3_600 * S, None),
        (Algorithm::LimitsSlidingWindow, 10, S, None),
        (Algorithm::LimitsSlidingWindow, 100, 86_400 * S, None),
    ]
    .into_iter()
    .map(|(a, l, w, b)| Rule::new(a, l, w, b).unwrap())
    .collect();
    let mut rng = Rng(19);
    for rule in &rules {
        let mut now = 1_780_000_000_000_000 + rng.range(0, 1 << 40);
        let mut stored: Option<Limiter> = None;
        let mut last = None;
        for _ in 0..3_000 {
            now += rng.range(0, rule.window_us() / 50 + 2);
            let cost = rng.range(1, 3).min(rule.capacity());
            let (d, written) = decide(stored.as_ref(), rule, cost, now);
            if let Some(w) = written {
                let one_run = !matches!(&w.state, State::MovingWindow(log) if log.run_count() > 1);
                if one_run {
                    assert_eq!(pack_round_trip(&w), Some(47), "{w:?}");
                }
                stored = Some(w);
            }
            last = Some(d);
        }
        assert!(last.is_some());
    }
}

/// `limits-sliding-window` against a transliteration of `limits`' own Lua scripts: the same
/// admissions, the same counters and TTLs after every hit and every read (reads shift as the
/// scripts do), `remaining` as limits' `get_window_stats` computes it, and `retry_after` the
/// first ms at which the script would admit the same hit.
#[test]
fn limits_sliding_window_matches_limits_scripts() {
    let mut rng = Rng(21);
    let mut admitted = 0;
    for _ in 0..300 {
        let limit = rng.pick(&[1, 2, 3, 5, 10, 100, 1_000]);
        let secs = rng.pick(&[1, 2, 10, 60, 3_600]);
        let rule = Rule::new(
            Algorithm::LimitsSlidingWindow,
            limit,
            secs * 1_000_000,
            None,
        )
        .unwrap();
        let e = secs * 1_000;
        let mut lua = LimitsLua::default();
        let mut stored: Option<Limiter> = None;
        let mut now = BASE_US + rng.range(0, 999);
        for _ in 0..300 {
            now += match rng.range(0, 5) {
                0 => 0,
                1 => rng.range(0, 1_000),
                2 => rng.range(0, e * 1_000 / 4),
                3 => rng.range(0, e * 1_000),
                _ => rng.range(0, 3 * e * 1_000),
            };
            let t = now / 1_000;
            // The server removes a key once its expiry ms has passed (PEXPIREAT: gone when
            // now > when), lazily: after that ms, it may still hold it.
            if stored
                .as_ref()
                .is_some_and(|l| l.is_over(now) && rng.chance(50))
            {
                stored = None;
            }
            if rng.chance(70) {
                let cost = match rng.range(0, 3) {
                    0 => 1,
                    1 => rng.range(0, limit + 1),
                    _ => rng.range(1, 3),
                };
                let mut probe = lua.clone();
                let want = lua.acquire(limit, e, cost, t);
                let (d, outcome) = Limiter::decide(stored.as_mut(), &rule, cost, now).unwrap();
                if let Outcome::Created(l) = outcome {
                    stored = Some(l);
                }
                assert_eq!(d.allowed, want, "{rule:?} cost {cost} at {t}");
                admitted += usize::from(want);
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
                // limits' read path (test / get_window_stats): RL.INSPECT, and on an existing
                // key whose current counter is alive RL.ALLOW … COST 0 to store the shift.
                let (pc, pt, cc, ct) = lua.get(e, t);
                let alive = stored.as_ref().is_some_and(|l| {
                    l.inspect(now)
                        .iter()
                        .any(|f| f.0 == "current_ttl_ms" && f.1 > 0)
                });
                let d = match stored.as_mut().filter(|_| alive) {
                    Some(l) => {
                        let (d, outcome) = Limiter::decide(Some(l), &rule, 0, now).unwrap();
                        assert_ne!(outcome, Outcome::Emptied);
                        d
                    }
                    None => Limiter::peek(stored.as_ref(), &rule, 0, now).unwrap(),
                };
                let fields = stored.as_ref().map_or_else(Vec::new, |l| l.inspect(now));
                assert_eq!(
                    LimitsLua::window_of(&fields),
                    (pc, pt, cc, ct),
                    "fields at {t}"
                );
                let weighted = LimitsLua::weighted((pc, pt, cc, ct), e);
                assert_eq!(d.remaining, limit.saturating_sub(weighted));
            }
            // The key lives exactly as long as limits' last key.
            if let Some(l) = &stored {
                let last = lua.last_expire_ms();
                if last >= t {
                    assert_eq!(l.expires_at_us(), last * 1_000);
                } else {
                    assert!(l.is_over(now));
                    if rng.chance(50) {
                        stored = None; // the server's expiry may have removed it
                        lua = LimitsLua::default();
                    }
                }
            }
        }
    }
    assert!(admitted > 1_000, "{admitted}");
}
