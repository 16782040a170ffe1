//! The compat commands against reference models written from the originals' definitions, on
//! random sequences, plus the parsers' tables.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use super::*;
use crate::algo::{Limiter, Outcome};

/// splitmix64: deterministic test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// ceil(a / b) for a ≥ 0, b > 0.
fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1) / b
}

/// The GCRA of redis-cell's README and brandur's "Rate limiting, cells and GCRA", in exact
/// arithmetic: emission interval `T = period / count`, delay variation tolerance
/// `τ = T × (max_burst + 1)`, theoretical arrival time `tat` (an absent or expired key is
/// `tat = now`). A request of `q` computes `new_tat = max(tat, now) + q·T` and is limited iff
/// `now < new_tat − τ`; then `retry_after = new_tat − τ − now` (−1 when `q·T > τ`: it can never
/// pass) and `ttl = tat − now`, else `tat = new_tat` and `ttl = new_tat − now`.
/// `remaining = floor((τ − ttl) / T)`, at least 0; `reset_after = ttl`; both times are replied
/// in whole seconds, rounded up (what redis-cell #56 asked for: waiting the reply's time is
/// enough). Time is kept in units of `1 / count` µs, where `T` is exactly `period_us`.
struct CellRef {
    max_burst: i128,
    count: i128,
    period_us: i128,
    tat: Option<i128>,
}

impl CellRef {
    fn new(max_burst: u64, count: u64, period_us: u64) -> CellRef {
        CellRef {
            max_burst: i128::from(max_burst),
            count: i128::from(count),
            period_us: i128::from(period_us),
            tat: None,
        }
    }

    fn throttle(&mut self, q: u64, now_us: u64) -> [i64; 5] {
        let t = self.period_us; // T, in units
        let tau = t * (self.max_burst + 1);
        let now = i128::from(now_us) * self.count;
        let tat = self.tat.filter(|&tat| tat > now).unwrap_or(now);
        let increment = i128::from(q) * t;
        let new_tat = tat.max(now) + increment;
        let allow_at = new_tat - tau;
        let second = self.count * 1_000_000;
        let (limited, retry, ttl) = if now < allow_at {
            let retry = if increment <= tau {
                ceil_div(allow_at - now, second) as i64
            } else {
                -1
            };
            (1, retry, tat - now)
        } else {
            if q > 0 {
                self.tat = Some(new_tat);
            }
            (0, -1, new_tat - now)
        };
        let remaining = ((tau - ttl).div_euclid(t)).max(0);
        [
            limited,
            (self.max_burst + 1) as i64,
            remaining as i64,
            retry,
            ceil_div(ttl, second) as i64,
        ]
    }
}

/// Redis's `GCRA` as its source defines it (src/gcra.c, redis/redis before #15191): all in
/// whole µs, `T = round(period_us / tokens)` (at least 1), `τ = T × (max_burst + 1)`;
/// otherwise the same steps as redis-cell, with `remaining = (τ − ttl) / T` truncated (C
/// division) when `τ − ttl > −T`, else 0, and both times `ceil(µs / 10⁶)`.
struct RedisGcraRef {
    max_burst: i128,
    t: i128,
    tat: Option<i128>,
}

impl RedisGcraRef {
    fn new(max_burst: u64, tokens: u64, period_us: u64) -> RedisGcraRef {
        let t = ((period_us as f64 / tokens as f64) + 0.5) as i128;
        RedisGcraRef {
            max_burst: i128::from(max_burst),
            t: t.max(1),
            tat: None,
        }
    }

    fn gcra(&mut self, q: u64, now_us: u64) -> [i64; 5] {
        let now = i128::from(now_us);
        let variance = self.t * (self.max_burst + 1);
        let tat = self.tat.filter(|&tat| tat > now).unwrap_or(now);
        let increment = self.t * i128::from(q);
        let new_tat = now.max(tat) + increment;
        let diff = now - (new_tat - variance);
        let (limited, retry, ttl) = if diff < 0 {
            let retry = if increment <= variance {
                ceil_div(-diff, 1_000_000) as i64
            } else {
                -1
            };
            (1, retry, tat - now)
        } else {
            self.tat = Some(new_tat);
            (0, -1, new_tat - now)
        };
        let next = variance - ttl;
        let remaining = if next > -self.t { next / self.t } else { 0 };
        [
            limited,
            (self.max_burst + 1) as i64,
            remaining as i64,
            retry,
            ceil_div(ttl, 1_000_000) as i64,
        ]
    }
}

/// What the module answers: the request through the stored limiter, as `charge` runs it.
struct Ours {
    stored: Option<Limiter>,
}

impl Ours {
    fn throttle(&mut self, req: &Request, now_us: u64) -> [i64; 5] {
        let (d, outcome) =
            Limiter::decide(self.stored.as_mut(), &req.rule, req.cost, now_us).unwrap();
        if let Outcome::Created(l) = outcome {
            self.stored = Some(l);
        }
        throttle_reply(&d)
    }
}

/// `(limit, window_us, burst, cost)` of a parsed request.
type Parsed = (u64, u64, u64, u64);

fn args(s: &str) -> Vec<&[u8]> {
    s.split_whitespace().map(str::as_bytes).collect()
}

fn throttle_req(s: &str) -> Request {
    parse_throttle(args(s)).unwrap()
}

/// A random rule as `(max_burst, count, period_us)`.
fn random_rule(rng: &mut Rng) -> (u64, u64, u64) {
    let max_burst = match rng.range(0, 3) {
        0 => 0,
        1 => rng.range(1, 5),
        2 => rng.range(1, 100),
        _ => rng.range(1, 1_000_000),
    };
    let count = match rng.range(0, 3) {
        0 => rng.pick(&[1, 2, 3, 7, 10, 30, 60]),
        1 => rng.range(1, 1000),
        2 => rng.pick(&[3_000_000, 600_000, 1_000_000, 10_000]),
        _ => rng.range(1, 10_000_000),
    };
    let period_us = match rng.range(0, 3) {
        0 => rng.pick(&[1, 2, 10, 60, 3600]) * 1_000_000,
        1 => rng.range(1, 10_000_000),
        2 => rng.pick(&[500_000, 1_500_000, 1_000_900, 333_333]),
        _ => rng.range(1, 86_400_000_000),
    };
    (max_burst, count, period_us)
}

fn random_gap(rng: &mut Rng, period_us: u64, count: u64) -> u64 {
    let t = (period_us / count).max(1);
    match rng.range(0, 5) {
        0 => 0,
        1 => rng.range(0, 10),
        2 => rng.range(0, t.saturating_mul(2)),
        3 => rng.range(0, 3_000_000),
        4 => rng.range(0, period_us.saturating_mul(2)),
        _ => rng.pick(&[1_000_000, 2_000_000, t]),
    }
}

#[test]
fn same_replies_as_the_redis_cell_definition() {
    let mut rng = Rng(0x5EED_CE11);
    let mut compared = [0u64; 2]; // admitted, limited
    for _ in 0..3_000 {
        let (max_burst, count, period_us) = random_rule(&mut rng);
        let Ok(rule) = gcra_rule(max_burst, count, period_us) else {
            continue; // tolerance above 100 years
        };
        let mut reference = CellRef::new(max_burst, count, period_us);
        let mut ours = Ours { stored: None };
        let mut now = 1_700_000_000_000_000 + rng.range(0, 1_000_000);
        for step in 0..40 {
            now += random_gap(&mut rng, period_us, count);
            let cost = match rng.range(0, 9) {
                0 => 0,
                1 => rng.range(0, max_burst + 2),
                2 => max_burst + 1,
                _ => 1,
            };
            let req = Request { rule, cost };
            let want = reference.throttle(cost, now);
            let got = ours.throttle(&req, now);
            assert_eq!(
                got, want,
                "rule {max_burst} {count} {period_us}µs, step {step}, cost {cost}, now {now}"
            );
            compared[want[0] as usize] += 1;
        }
    }
    assert!(compared[0] > 20_000 && compared[1] > 20_000, "{compared:?}");
}

#[test]
fn same_replies_as_redis_gcra_where_its_interval_is_whole_microseconds() {
    let mut rng = Rng(0x6C4A);
    let mut checked = 0;
    for _ in 0..3_000 {
        let (max_burst, count, period_us) = random_rule(&mut rng);
        // Redis rounds T to whole µs; where it is whole already the definitions coincide.
        let period_us = (period_us / count).max(1) * count;
        let Ok(rule) = gcra_rule(max_burst, count, period_us) else {
            continue;
        };
        let mut reference = RedisGcraRef::new(max_burst, count, period_us);
        let mut ours = Ours { stored: None };
        // Redis's clock is the command's ms snapshot.
        let mut now = 1_700_000_000_000_000;
        for step in 0..40 {
            now += random_gap(&mut rng, period_us, count) / 1000 * 1000;
            let cost = if rng.range(0, 4) == 0 {
                rng.range(1, max_burst + 2)
            } else {
                1
            };
            let want = reference.gcra(cost, now);
            let got = ours.throttle(&Request { rule, cost }, now);
            assert_eq!(
                got, want,
                "rule {max_burst} {count} {period_us}µs, step {step}, cost {cost}, now {now}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50_000, "{checked}");
}

#[test]
fn waiting_the_retry_after_is_enough() {
    // redis-cell #56: a client that waits exactly `retry_after` seconds must be admitted.
    let mut rng = Rng(56);
    let mut waited = 0;
    for _ in 0..3_000 {
        let (max_burst, count, period_us) = random_rule(&mut rng);
        let Ok(rule) = gcra_rule(max_burst, count, period_us) else {
            continue;
        };
        let mut stored: Option<Limiter> = None;
        let mut now = 1_700_000_000_000_000;
        for _ in 0..30 {
            now += random_gap(&mut rng, period_us, count);
            let cost = rng.range(1, max_burst + 1);
            let (d, outcome) = Limiter::decide(stored.as_mut(), &rule, cost, now).unwrap();
            if let Outcome::Created(l) = outcome {
                stored = Some(l);
            }
            let reply = throttle_reply(&d);
            if reply[0] == 1 {
                assert!(
                    reply[3] >= 1,
                    "a denial within capacity has a retry: {reply:?}"
                );
                let later = now + reply[3] as u64 * 1_000_000;
                let again = Limiter::peek(stored.as_ref(), &rule, cost, later).unwrap();
                assert!(
                    again.allowed,
                    "{rule:?} cost {cost}: {reply:?} then {again:?}"
                );
                waited += 1;
            }
        }
    }
    assert!(waited > 5_000, "{waited}");
}

#[test]
fn the_originals_round_where_the_module_is_exact() {
    let now = 1_700_000_000_000_000;
    // One per 1.0009 s: redis-cell 0.5 rounds the 0.9 ms down and says 1 s (a client waiting 1 s
    // is refused); Redis's GCRA and the module say 2.
    let req = throttle_req("0 10000 10009");
    let mut ours = Ours { stored: None };
    assert_eq!(ours.throttle(&req, now), [0, 1, 0, -1, 2]);
    assert_eq!(ours.throttle(&req, now + 50), [1, 1, 0, 2, 2]);
    let mut redis = RedisGcraRef::new(0, 10_000, 10_009_000_000);
    assert_eq!(redis.gcra(1, now), [0, 1, 0, -1, 2]);

    // 3,000,000 per second (T = ⅓ µs): Redis rounds T to 1 µs, so a whole second's quota takes
    // 3 s to come back; the module is exact (1 s).
    let req = throttle_req("2999999 3000000 1 3000000");
    let mut ours = Ours { stored: None };
    assert_eq!(ours.throttle(&req, now), [0, 3_000_000, 0, -1, 1]);
    let mut redis = RedisGcraRef::new(2_999_999, 3_000_000, 1_000_000);
    assert_eq!(redis.gcra(3_000_000, now), [0, 3_000_000, 0, -1, 3]);
    // After 1 ms the module has refilled exactly 3,000 tokens.
    let one = Request {
        rule: req.rule,
        cost: 1,
    };
    assert_eq!(
        ours.throttle(&one, now + 1_000),
        [0, 3_000_000, 2_999, -1, 1]
    );

    // 666,667 per second: T = 1.49999… µs, which Redis rounds to 1 µs. Half a second after the
    // whole burst was spent, the module has refilled what the rate allows (333,333 tokens),
    // Redis half as much again (500,000).
    let req = throttle_req("666666 666667 1 666667");
    let mut ours = Ours { stored: None };
    assert_eq!(ours.throttle(&req, now), [0, 666_667, 0, -1, 1]);
    let one = Request {
        rule: req.rule,
        cost: 1,
    };
    assert_eq!(ours.throttle(&one, now + 500_000)[2], 333_332);
    let mut redis = RedisGcraRef::new(666_666, 666_667, 1_000_000);
    assert_eq!(redis.gcra(666_667, now), [0, 666_667, 0, -1, 1]);
    assert_eq!(redis.gcra(1, now + 500_000)[2], 499_999);
}

#[test]
fn quantity_zero_only_looks() {
    let req = throttle_req("2 1 10 0");
    let (d, outcome) = Limiter::decide(None, &req.rule, 0, 0).unwrap();
    assert_eq!(outcome, Outcome::Unchanged);
    assert_eq!(throttle_reply(&d), [0, 3, 3, -1, 0]);
}

#[test]
fn throttle_arguments() {
    let ok: &[(&str, Parsed)] = &[
        // (args, (limit, window_us, burst, cost))
        ("15 30 60", (30, 60_000_000, 16, 1)),
        ("15 30 60 1", (30, 60_000_000, 16, 1)),
        ("0 1 1 0", (1, 1_000_000, 1, 0)),
        ("0 10 500ms 3", (10, 500_000, 1, 3)),
        ("4 1 1m", (1, 60_000_000, 5, 1)),
        ("007 01 0060 002", (1, 60_000_000, 8, 2)),
        (
            "9223372036854775806 9223372036854775807 365d 9223372036854775807",
            (MAX_COUNT, MAX_WINDOW_US, MAX_COUNT, MAX_COUNT),
        ),
    ];
    for (a, (limit, window, burst, cost)) in ok {
        let r = throttle_req(a);
        assert_eq!(
            (r.rule.limit(), r.rule.window_us(), r.rule.burst(), r.cost),
            (*limit, *window, *burst, *cost),
            "{a}"
        );
        assert_eq!(r.rule.algorithm(), Algorithm::Gcra);
    }
    let bad: &[(&str, CompatError)] = &[
        ("", CompatError::MaxBurst),
        ("-1 1 10", CompatError::MaxBurst),
        ("+1 1 10", CompatError::MaxBurst),
        ("abc 1 10", CompatError::MaxBurst),
        ("9223372036854775807 1 10", CompatError::MaxBurst),
        ("1", CompatError::CountPerPeriod),
        ("1 0 10", CompatError::CountPerPeriod),
        ("1 -1 10", CompatError::CountPerPeriod),
        ("1 9223372036854775808 10", CompatError::CountPerPeriod),
        ("1 1", CompatError::Window),
        ("1 1 0", CompatError::Window),
        ("1 1 -10", CompatError::Window),
        ("1 1 0.5", CompatError::Window),
        ("1 1 366d", CompatError::Window),
        ("1 1 9223372036854775807", CompatError::Window),
        ("1 1 10 -1", CompatError::Quantity),
        ("1 1 10 1.5", CompatError::Quantity),
        ("1 1 10 9223372036854775808", CompatError::Quantity),
        ("100 1 365d", CompatError::Tolerance),
    ];
    for (a, want) in bad {
        assert_eq!(parse_throttle(args(a)).unwrap_err(), *want, "{a:?}");
        assert!(want.message().starts_with("ERR "), "{want:?}");
    }
}

#[test]
fn gcra_arguments() {
    let ok: &[(&str, Parsed)] = &[
        ("15 30 60", (30, 60_000_000, 16, 1)),
        ("15 30 60 TOKENS 3", (30, 60_000_000, 16, 3)),
        ("15 30 60 tokens 3", (30, 60_000_000, 16, 3)),
        ("1 2 0.5", (2, 500_000, 2, 1)),
        ("1 2 60.0", (2, 60_000_000, 2, 1)),
        ("0 1 1e-6", (1, 1, 1, 1)),
        ("0 1 31536000", (1, MAX_WINDOW_US, 1, 1)),
    ];
    for (a, (limit, window, burst, cost)) in ok {
        let r = parse_gcra(args(a)).unwrap();
        assert_eq!(
            (r.rule.limit(), r.rule.window_us(), r.rule.burst(), r.cost),
            (*limit, *window, *burst, *cost),
            "{a}"
        );
    }
    let bad: &[(&str, CompatError)] = &[
        ("-1 1 10", CompatError::MaxBurst),
        ("1 0 10", CompatError::TokensPerPeriod),
        ("1 1.5 10", CompatError::TokensPerPeriod),
        ("1 1 0", CompatError::Seconds),
        ("1 1 -10", CompatError::Seconds),
        ("1 1 1e12", CompatError::Seconds),
        ("1 1 31536000.000001", CompatError::Seconds),
        ("1 1 0.0000001", CompatError::Seconds),
        ("1 1 1m", CompatError::Seconds),
        ("1 1 nan", CompatError::Seconds),
        ("1 1 10 TOKENS", CompatError::TokensMissing),
        ("1 1 10 TOKENS 0", CompatError::Tokens),
        ("1 1 10 TOKENS -1", CompatError::Tokens),
        (
            "1 1 10 COST 2",
            CompatError::UnknownOption(b"COST".to_vec()),
        ),
        ("100 1 31536000", CompatError::Tolerance),
    ];
    for (a, want) in bad {
        assert_eq!(parse_gcra(args(a)).unwrap_err(), *want, "{a:?}");
        assert!(want.message().starts_with("ERR "), "{want:?}");
    }
}

#[test]
fn seconds() {
    let ok: &[(&str, u64)] = &[
        ("1", 1_000_000),
        ("60", 60_000_000),
        ("+60", 60_000_000),
        ("0.5", 500_000),
        (".5", 500_000),
        ("5.", 5_000_000),
        ("0.000001", 1),
        ("0.0000015", 2),
        ("0.0000014999999999999999999999", 1),
        ("1.0000005", 1_000_001),
        ("0.10000000000000001", 100_000),
        ("1e3", 1_000_000_000),
        ("1E3", 1_000_000_000),
        ("1e+3", 1_000_000_000),
        ("2.5e-3", 2_500),
        ("25e-4", 2_500),
        ("0.0000000000000000000000000001e28", 1_000_000),
        ("100000000000000000000000000000e-29", 1_000_000),
        ("000000000000000000000000000060", 60_000_000),
        ("31536000", MAX_WINDOW_US),
        ("3.1536e7", MAX_WINDOW_US),
    ];
    for (s, us) in ok {
        assert_eq!(parse_seconds(s.as_bytes()), Some(*us), "{s}");
    }
    let bad = [
        "",
        "0",
        "0.0",
        "-1",
        "-0.5",
        ".",
        "e3",
        "1e",
        "1e+",
        "1.5.2",
        "1 ",
        " 1",
        "1s",
        "0x10",
        "inf",
        "nan",
        "1e400",
        "1e-400",
        "1e999999999999999999999",
        "31536000.0000006",
        "1,5",
        "++1",
        "0.0000004",
        "99999999999999999999999",
    ];
    for s in bad {
        assert_eq!(parse_seconds(s.as_bytes()), None, "{s:?}");
    }
}

#[test]
fn replies() {
    let d = |allowed, remaining, retry_after, reset_after_us| Decision {
        allowed,
        capacity: 5,
        remaining,
        retry_after,
        reset_after_us,
    };
    assert_eq!(
        throttle_reply(&d(true, 4, RetryAfter::Now, 1)),
        [0, 5, 4, -1, 1]
    );
    assert_eq!(
        throttle_reply(&d(true, 5, RetryAfter::Now, 0)),
        [0, 5, 5, -1, 0]
    );
    assert_eq!(
        throttle_reply(&d(false, 0, RetryAfter::After(1), 2_000_000)),
        [1, 5, 0, 1, 2]
    );
    assert_eq!(
        throttle_reply(&d(false, 0, RetryAfter::After(2_000_000), 2_000_001)),
        [1, 5, 0, 2, 3]
    );
    assert_eq!(
        throttle_reply(&d(false, 2, RetryAfter::Never, 7)),
        [1, 5, 2, -1, 1]
    );
    let huge = Decision {
        allowed: true,
        capacity: u64::MAX,
        remaining: u64::MAX,
        retry_after: RetryAfter::Now,
        reset_after_us: u64::MAX,
    };
    assert_eq!(
        throttle_reply(&huge),
        [0, i64::MAX, i64::MAX, -1, (u64::MAX / 1_000_000 + 1) as i64]
    );
}
