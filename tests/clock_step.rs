//! A clock step must not freeze limiters: a state "from the future" — written by a master whose
//! clock later stepped back, or by an old master ahead of the replica promoted in its place — is
//! read as the most restrictive state possible now. Emulated with RL.SETSTATE payloads a day
//! ahead of the server's clock, as such a master would have replicated them.

mod common;

use common::Server;
use redis_ratelimit::algo::{
    Algorithm, FixedWindowState, GcraState, Limiter, LimitsSlidingState, MovingWindowState, Rule,
    SlidingWindowState, State,
};
use redis_ratelimit::datatype::codec::encode;

const DAY_US: u64 = 86_400_000_000;
const MINUTE_MS: i64 = 60_000;

/// A full limiter (10 per minute) as written a day after `now_us`.
fn full_from_tomorrow(algorithm: Algorithm, now_us: u64) -> Limiter {
    let rule = Rule::new(algorithm, 10, 60_000_000, None).unwrap();
    let t = now_us + DAY_US;
    let state = match algorithm {
        Algorithm::SlidingWindow => State::SlidingWindow(SlidingWindowState {
            window_start_us: t - t % 60_000_000,
            current: 10,
            previous: 0,
        }),
        Algorithm::FixedWindow => State::FixedWindow(FixedWindowState {
            window_start_us: t,
            count: 10,
        }),
        Algorithm::Gcra => State::Gcra(GcraState::from_tat_us(&rule, t + 60_000_000)),
        Algorithm::MovingWindow => {
            State::MovingWindow(MovingWindowState::from_runs([(t - 1_000, 4), (t, 6)]).unwrap())
        }
        Algorithm::LimitsSlidingWindow => {
            State::LimitsSlidingWindow(LimitsSlidingState::new(10, t / 1000 + 120_000, 0, 0))
        }
        Algorithm::Leases => unreachable!("leases: tests/leases.rs"),
    };
    Limiter { rule, state }
}

#[test]
fn a_state_from_tomorrow_costs_at_most_two_windows() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    for algorithm in Algorithm::rate_limits() {
        let key = format!("k:{}", algorithm.name());
        let args = format!("10 1m ALGO {}", algorithm.name());
        let now = c.time_us() as u64;
        let payload = encode(&full_from_tomorrow(algorithm, now));
        c.cmd(&[b"RL.SETSTATE".as_slice(), key.as_bytes(), &payload])
            .ok();
        // As replicated: the TTL says a day.
        assert!(c.pttl(&key) > DAY_US as i64 / 1000 - MINUTE_MS, "{key}");
        // The first release answered retry ≈ reset ≈ 24 h here.
        let p = c.peek(&key, &args);
        assert!(!p.allowed);
        common::assert_between(p.retry_ms, 1, 2 * MINUTE_MS, "peek retry_after_ms");
        common::assert_between(p.reset_ms, 1, 2 * MINUTE_MS, "peek reset_after_ms");
        let before = c.stat("clamped");
        let r = c.allow(&key, &args);
        assert!(!r.allowed, "{key}: {r:?}");
        common::assert_between(r.retry_ms, 1, 2 * MINUTE_MS, "retry_after_ms");
        common::assert_between(r.reset_ms, 1, 2 * MINUTE_MS, "reset_after_ms");
        assert_eq!(c.stat("clamped"), before + 1);
        // The denial stored the clamped state: the TTL follows the reply.
        common::assert_between(c.pttl(&key), r.reset_ms - 1_000, r.reset_ms + 1, "PTTL");
        // Stored once: the next call is not ahead any more.
        c.allow(&key, &args);
        assert_eq!(c.stat("clamped"), before + 1);
    }
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    let mut r = replica.conn();
    for algorithm in Algorithm::rate_limits() {
        let key = format!("k:{}", algorithm.name());
        assert_eq!(r.pexpiretime(&key), c.pexpiretime(&key), "{key}");
    }
}

#[test]
fn a_promoted_replica_behind_the_old_master_keeps_limiting() {
    // The old master's clock was a day ahead: its states look a day ahead to the new master,
    // which must neither freeze them for a day nor forget them.
    let s = Server::start();
    let mut c = s.conn();
    let now = c.time_us() as u64;
    for algorithm in Algorithm::rate_limits() {
        let key = format!("p:{}", algorithm.name());
        let mut limiter = full_from_tomorrow(algorithm, now);
        // Half used instead of full.
        limiter.state = match limiter.state {
            State::SlidingWindow(s) => State::SlidingWindow(SlidingWindowState { current: 5, ..s }),
            State::FixedWindow(s) => State::FixedWindow(FixedWindowState { count: 5, ..s }),
            State::Gcra(_) => State::Gcra(GcraState::from_tat_us(
                &limiter.rule,
                now + DAY_US + 30_000_000,
            )),
            State::MovingWindow(_) => {
                State::MovingWindow(MovingWindowState::from_runs([(now + DAY_US, 5)]).unwrap())
            }
            State::LimitsSlidingWindow(_) => State::LimitsSlidingWindow(LimitsSlidingState::new(
                5,
                (now + DAY_US) / 1000 + 120_000,
                0,
                0,
            )),
            State::Leases(_) => unreachable!("leases: tests/leases.rs"),
            State::Blocked(_) => unreachable!("built unblocked"),
        };
        c.cmd(&[b"RL.SETSTATE".as_slice(), key.as_bytes(), &encode(&limiter)])
            .ok();
        let args = format!("10 1m ALGO {}", algorithm.name());
        let replies: Vec<_> = (0..20).map(|_| c.allow(&key, &args)).collect();
        let admitted = replies.iter().filter(|r| r.allowed).count();
        let last = replies.last().unwrap();
        if algorithm == Algorithm::Gcra {
            // A tat beyond now + τ is an empty bucket now: the next cell in one interval (6 s).
            assert_eq!(admitted, 0, "{key}");
            common::assert_between(last.retry_ms, 1, 6_000, "gcra retry_after_ms");
        } else {
            // The counts are kept (at most the 5 left pass), the window is now's.
            assert!((1..=5).contains(&admitted), "{key}: {admitted} admitted");
            common::assert_between(last.retry_ms, 1, 2 * MINUTE_MS, "retry_after_ms");
        }
        assert!(c.pttl(&key) <= 2 * MINUTE_MS, "{key}");
    }
}
