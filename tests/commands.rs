//! RL.ALLOW / RL.PEEK against a real server: exact reply fields for every algorithm, COST
//! semantics, PEEK = ALLOW without effects, TTLs, expiry, rule changes, TYPE/DEL, command
//! metadata and ACL.
//!
//! Timing: exact sequences use long windows (1 h) or pipelines (the server runs them back to
//! back); timing checks use the server's `TIME` to bound what the module saw, with ms margins.

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{assert_between, Conn, Reply, Rl, Server, ALGOS};

const HOUR_MS: i64 = 3_600_000;

/// `RL.ALLOW`/`RL.PEEK` args for `limit window` under `algo`.
fn rule(limit: u64, window: &str, algo: &str) -> String {
    format!("{limit} {window} ALGO {algo}")
}

#[test]
fn limit_3_sequence_for_every_algorithm() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let key = format!("seq:{algo}");
        let r = c.rl_pipeline("ALLOW", &key, &rule(3, "1h", algo), 4);
        for (i, rem) in [2, 1, 0].into_iter().enumerate() {
            assert_eq!(
                r[i].acr(),
                (true, 3, rem),
                "{algo} call {}: {:?}",
                i + 1,
                r[i]
            );
            assert_eq!(r[i].retry_ms, 0, "{algo}: {:?}", r[i]);
        }
        let d = r[3];
        assert_eq!(d.acr(), (false, 3, 0), "{algo} denied: {d:?}");
        assert!(d.retry_ms > 0, "{algo}: retry_after must be > 0: {d:?}");
        match algo {
            "fixed-window" => {
                for x in &r {
                    assert_between(x.reset_ms, HOUR_MS - 2_000, HOUR_MS, "fixed-window reset");
                }
                // Retry is the rest of the window, i.e. the reset.
                assert_between(d.retry_ms, d.reset_ms - 1, d.reset_ms + 1, "fixed retry");
            }
            "gcra" => {
                // Emission interval 20 min: each request adds 20 min of "debt".
                let t = HOUR_MS / 3;
                for (i, x) in r.iter().take(3).enumerate() {
                    let want = t * (i as i64 + 1);
                    assert_between(x.reset_ms, want - 2_000, want, "gcra reset");
                }
                assert_between(d.reset_ms, HOUR_MS - 2_000, HOUR_MS, "gcra reset (denied)");
                assert_between(d.retry_ms, t - 2_000, t, "gcra retry");
            }
            _ => {
                for x in &r {
                    assert_between(x.reset_ms, HOUR_MS, 2 * HOUR_MS, "sliding reset");
                }
                assert_between(d.retry_ms, 1, 2 * HOUR_MS, "sliding retry");
                assert!(d.retry_ms <= d.reset_ms, "{d:?}");
            }
        }
    }
}

#[test]
fn capacity_is_limit_or_burst() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.allow("a", "7 1h").acr(), (true, 7, 6));
    assert_eq!(c.allow("b", "7 1h ALGO fixed-window").acr(), (true, 7, 6));
    assert_eq!(c.allow("c", "7 1h ALGO gcra").acr(), (true, 7, 6));
    let r = c.allow("d", "10 1h ALGO gcra BURST 20");
    assert_eq!(r.acr(), (true, 20, 19));
    // Emission interval 6 min; reset = one interval of debt.
    assert_between(r.reset_ms, 360_000 - 50, 360_000, "gcra burst reset");
    let r = c.rl_pipeline("ALLOW", "d", "10 1h ALGO gcra BURST 20", 20);
    assert_eq!(r[18].acr(), (true, 20, 0));
    assert_eq!(r[19].acr(), (false, 20, 0));
    assert_between(r[19].retry_ms, 360_000 - 5_000, 360_000, "gcra burst retry");
    // BURST smaller than the limit.
    let r = c.rl_pipeline("ALLOW", "e", "10 1h ALGO gcra BURST 2", 3);
    assert_eq!(
        r.iter().map(Rl::acr).collect::<Vec<_>>(),
        vec![(true, 2, 1), (true, 2, 0), (false, 2, 0)]
    );
}

#[test]
fn default_algorithm_is_sliding_window() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("k", "5 1h");
    let e = c.rl_err("ALLOW", "k", "5 1h ALGO gcra");
    assert!(
        e.starts_with("ERR key holds a sliding-window limiter, not gcra"),
        "{e}"
    );
    assert_eq!(c.allow("k", "5 1h ALGO sliding-window").acr(), (true, 5, 3));
}

#[test]
fn fixed_window_starts_at_first_request_and_retry_is_rest_of_window() {
    let s = Server::start();
    let mut c = s.conn();
    let r1 = c.allow("fw", "2 10s ALGO fixed-window");
    assert_eq!(r1.acr(), (true, 2, 1));
    assert_eq!(
        r1.reset_ms, 10_000,
        "a fresh fixed window lasts exactly the window"
    );
    sleep(Duration::from_millis(150));
    let r2 = c.allow("fw", "2 10s ALGO fixed-window");
    assert_eq!(r2.acr(), (true, 2, 0));
    assert_between(r2.reset_ms, 5_000, 9_850, "reset after 150 ms");
    let d = c.allow("fw", "2 10s ALGO fixed-window");
    assert_eq!(d.acr(), (false, 2, 0));
    assert_between(
        d.retry_ms,
        d.reset_ms - 1,
        d.reset_ms + 1,
        "retry = rest of window",
    );
    assert!(d.retry_ms <= 9_850, "{d:?}");
}

#[test]
fn fixed_window_opens_again_after_the_window() {
    let s = Server::start();
    let mut c = s.conn();
    let args = "1 300ms ALGO fixed-window";
    let r = c.rl_pipeline("ALLOW", "fw", args, 2);
    assert_eq!(r[0].acr(), (true, 1, 0));
    assert_eq!(r[1].acr(), (false, 1, 0));
    assert_between(r[1].retry_ms, 1, 300, "retry");
    sleep(Duration::from_millis(r[1].retry_ms as u64 + 30));
    let r = c.allow("fw", args);
    assert_eq!(r.acr(), (true, 1, 0));
    assert_between(r.reset_ms, 250, 300, "new window");
}

#[test]
fn gcra_10_per_second_retries_after_one_interval() {
    let s = Server::start();
    let mut c = s.conn();
    let args = "10 1s ALGO gcra";
    let start = Instant::now();
    let r = c.rl_pipeline("ALLOW", "g", args, 11);
    let elapsed = start.elapsed().as_millis() as i64;
    for (i, x) in r.iter().take(10).enumerate() {
        assert_eq!(x.acr(), (true, 10, 9 - i as i64), "call {}: {x:?}", i + 1);
        let want = 100 * (i as i64 + 1);
        assert_between(x.reset_ms, want - elapsed - 1, want, "gcra reset");
    }
    let d = r[10];
    assert_eq!(d.acr(), (false, 10, 0));
    assert_between(d.retry_ms, (100 - elapsed - 1).max(1), 100, "gcra retry");
    let t = Instant::now();
    sleep(Duration::from_millis(d.retry_ms as u64 + 20));
    let r = c.allow("g", args);
    // One more interval has passed: exactly one more fits (more only if the sleep overshot by
    // further whole intervals).
    let extra = (t.elapsed().as_millis() as i64 - d.retry_ms) / 100;
    assert!(r.allowed, "{r:?}");
    assert_between(r.remaining, 0, extra, "remaining one interval later");
}

/// Waits until the server clock is `lo_us..hi_us` into an aligned window (of `w_us`) whose
/// index is at least `min_idx`, and returns that index.
fn wait_for_window_phase(c: &mut Conn, w_us: i64, lo_us: i64, hi_us: i64, min_idx: i64) -> i64 {
    loop {
        let now = c.time_us();
        let (idx, p) = (now / w_us, now % w_us);
        if idx >= min_idx && (lo_us..hi_us).contains(&p) {
            return idx;
        }
        let target = if idx < min_idx {
            min_idx * w_us + lo_us
        } else if p < lo_us {
            idx * w_us + lo_us
        } else {
            (idx + 1) * w_us + lo_us
        };
        sleep(Duration::from_micros((target - now) as u64 + 500));
    }
}

/// One attempt of the sliding-window weighting scenario; `Err` if the machine was too slow to
/// hit the phases it needs (the caller retries).
fn sliding_window_scenario(c: &mut Conn, key: &str) -> Result<(), String> {
    const W: i64 = 1_000_000; // µs
    let args = "3 1s";
    c.del(key);
    // Fill window k early on.
    let k = wait_for_window_phase(c, W, 0, 100_000, 0);
    let t0 = c.time_us();
    if t0 / W != k || t0 % W > 300_000 {
        return Err("late for the fill phase".into());
    }
    let r = c.rl_pipeline("ALLOW", key, args, 4);
    let t1 = c.time_us();
    if t1 / W != k {
        return Err("fill crossed a window boundary".into());
    }
    let (p0, p1) = (t0 % W, t1 % W);
    assert_eq!(
        r.iter().map(Rl::acr).collect::<Vec<_>>(),
        vec![(true, 3, 2), (true, 3, 1), (true, 3, 0), (false, 3, 0)]
    );
    // Full again at the end of window k+1.
    assert_between(
        r[0].reset_ms,
        (2 * W - p1) / 1000 - 1,
        (2 * W - p0) / 1000 + 1,
        "reset = until the end of the next window",
    );
    // Passes once 3 × (1 − e/W) + 1 ≤ 3 in window k+1, i.e. at e = W/3.
    assert_between(
        r[3].retry_ms,
        (W - p1 + W / 3) / 1000 - 1,
        (W - p0 + W / 3) / 1000 + 2,
        "retry = rest of window + W/3",
    );

    // Window k+1 at e ≈ 150 ms: weighted count 3 × 0.85 = 2.55, one more does not fit.
    wait_for_window_phase(c, W, 150_000, 250_000, k + 1);
    let t0 = c.time_us();
    let p = c.peek(key, args);
    let t1 = c.time_us();
    if t0 / W != k + 1 || t1 / W != k + 1 || t1 % W > 300_000 {
        return Err("late for the early-next-window phase".into());
    }
    assert_eq!(p.acr(), (false, 3, 0), "{p:?}");
    assert_between(
        p.retry_ms,
        (W / 3 - t1 % W) / 1000 - 1,
        (W / 3 - t0 % W) / 1000 + 2,
        "retry until e = W/3",
    );

    // Window k+1 at e ≈ 800 ms: weighted previous 3 × 0.2 = 0.6.
    wait_for_window_phase(c, W, 800_000, 850_000, k + 1);
    let t0 = c.time_us();
    let r = c.rl_pipeline("ALLOW", key, args, 3);
    let t1 = c.time_us();
    if t0 / W != k + 1 || t1 / W != k + 1 || t1 % W > 950_000 || t0 % W < 700_000 {
        return Err("late for the late-next-window phase".into());
    }
    // 0.6 + 1 → remaining floor(1.4) = 1; 0.6 + 2 → floor(0.4) = 0; 0.6 + 3 > 3 → denied.
    assert_eq!(
        r.iter().map(Rl::acr).collect::<Vec<_>>(),
        vec![(true, 3, 1), (true, 3, 0), (false, 3, 0)]
    );
    // Denied until window k+2 starts (then 2 × 1.0 + 1 ≤ 3).
    assert_between(
        r[2].retry_ms,
        (W - t1 % W) / 1000 - 1,
        (W - t0 % W) / 1000 + 2,
        "retry = rest of window k+1",
    );
    assert_between(
        r[1].reset_ms,
        (2 * W - t1 % W) / 1000 - 1,
        (2 * W - t0 % W) / 1000 + 2,
        "reset = until the end of window k+2",
    );
    Ok(())
}

#[test]
fn sliding_window_weights_the_previous_window() {
    let s = Server::start();
    let mut c = s.conn();
    let mut failures = Vec::new();
    for _ in 0..3 {
        match sliding_window_scenario(&mut c, "sw") {
            Ok(()) => return,
            Err(e) => failures.push(e),
        }
    }
    panic!("machine too slow for the phases of this test: {failures:?}");
}

#[test]
fn cost_semantics() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let base = rule(5, "1h", algo);
        let k = format!("cost:{algo}");
        // COST 0 on a missing key: a peek, no key.
        let r = c.allow(&k, &format!("{base} COST 0"));
        assert_eq!(
            r,
            Rl {
                allowed: true,
                capacity: 5,
                remaining: 5,
                retry_ms: 0,
                reset_ms: 0
            }
        );
        assert!(!c.exists(&k), "{algo}: COST 0 created the key");
        // cost > capacity on a missing key: never, no key.
        let r = c.allow(&k, &format!("{base} COST 6"));
        assert_eq!(
            r,
            Rl {
                allowed: false,
                capacity: 5,
                remaining: 5,
                retry_ms: -1,
                reset_ms: 0
            }
        );
        assert!(!c.exists(&k), "{algo}: cost > capacity created the key");
        // cost == capacity on a missing key passes.
        let r = c.allow(format!("{k}:full"), &format!("{base} COST 5"));
        assert_eq!(r.acr(), (true, 5, 0), "{algo}");

        let r = c.allow(&k, &format!("{base} COST 2"));
        assert_eq!(r.acr(), (true, 5, 3), "{algo}");
        let snap = c.snapshot(&k);
        let p = c.peek(&k, &format!("{base} COST 0"));
        let r = c.allow(&k, &format!("{base} COST 0"));
        assert_eq!(
            (r.acr(), r.retry_ms),
            ((true, 5, 3), 0),
            "{algo} COST 0: {r:?}"
        );
        assert_between(
            r.reset_ms,
            p.reset_ms - 2_000,
            p.reset_ms + 1,
            "COST 0 reset = peek",
        );
        assert_eq!(c.snapshot(&k), snap, "{algo}: COST 0 changed the key");
        let r = c.allow(&k, &format!("{base} COST 6"));
        assert_eq!((r.acr(), r.retry_ms), ((false, 5, 3), -1), "{algo}: {r:?}");
        assert_between(
            r.reset_ms,
            p.reset_ms - 2_000,
            p.reset_ms + 1,
            "cost>capacity reset",
        );
        assert_eq!(
            c.snapshot(&k),
            snap,
            "{algo}: cost > capacity changed the key"
        );
        // Partially available: 3 left, 4 asked → denied, remaining unchanged, no write.
        let r = c.allow(&k, &format!("{base} COST 4"));
        assert_eq!(r.acr(), (false, 5, 3), "{algo}");
        assert!(r.retry_ms > 0, "{algo}: {r:?}");
        assert_eq!(c.snapshot(&k), snap, "{algo}: a denial changed the key");
        let r = c.allow(&k, &format!("{base} COST 3"));
        assert_eq!(r.acr(), (true, 5, 0), "{algo}");
        let r = c.allow(&k, &base);
        assert_eq!(r.acr(), (false, 5, 0), "{algo}");
        assert!(r.retry_ms > 0, "{algo}: {r:?}");
        // COST 0 on an exhausted key still "passes" (it asks for nothing).
        let r = c.allow(&k, &format!("{base} COST 0"));
        assert_eq!((r.acr(), r.retry_ms), ((true, 5, 0), 0), "{algo}: {r:?}");
    }
    // gcra: capacity is BURST, also for COST.
    let g = "5 1h ALGO gcra BURST 8";
    assert_eq!(c.allow("gb", &format!("{g} COST 9")).retry_ms, -1);
    assert_eq!(c.allow("gb", &format!("{g} COST 8")).acr(), (true, 8, 0));
    // gcra partial denial waits for exactly the missing intervals (12 min each).
    let r = c.allow("gp", "5 1h ALGO gcra COST 3");
    assert_eq!(r.acr(), (true, 5, 2));
    let r = c.allow("gp", "5 1h ALGO gcra COST 4");
    assert_eq!(r.acr(), (false, 5, 2));
    assert_between(
        r.retry_ms,
        2 * 720_000 - 2_000,
        2 * 720_000,
        "gcra retry for 2 missing",
    );
    // Fixed window partial denial: the rest of the window.
    let r = c.allow("fp", "5 1h ALGO fixed-window COST 3");
    let d = c.allow("fp", "5 1h ALGO fixed-window COST 3");
    assert_eq!(d.acr(), (false, 5, 2));
    assert_between(d.retry_ms, r.reset_ms - 2_000, r.reset_ms, "fixed retry");
}

#[test]
fn peek_is_what_allow_would_reply_and_changes_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    let costs = [1u64, 2, 0, 1, 3, 9, 1, 1, 0, 2, 1, 1];
    for algo in ALGOS {
        for (limit, window) in [(6u64, "1h"), (4, "1d")] {
            let k = format!("peek:{algo}:{limit}");
            let p = c.peek(&k, &rule(limit, window, algo));
            assert!(!c.exists(&k), "{algo}: PEEK created the key");
            assert_eq!(p.acr(), (true, limit as i64, limit as i64 - 1));
            for cost in costs {
                let args = format!("{} COST {cost}", rule(limit, window, algo));
                let before = c.snapshot(&k);
                let existed = c.exists(&k);
                let p = c.peek(&k, &args);
                assert_eq!(c.snapshot(&k), before, "{algo} PEEK {args} changed the key");
                assert_eq!(c.exists(&k), existed);
                let a = c.allow(&k, &args);
                // The two calls are a round trip apart; a loaded machine can stall a second.
                let ctx = format!("{algo} {args}: peek {p:?} allow {a:?}");
                assert_eq!(p.acr(), a.acr(), "{ctx}");
                assert_between(a.retry_ms, p.retry_ms - 2_000, p.retry_ms + 1, &ctx);
                assert_between(a.reset_ms, p.reset_ms - 2_000, p.reset_ms + 1, &ctx);
            }
        }
    }
}

#[test]
fn every_write_leaves_a_ttl_equal_to_reset_after() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        for (limit, window) in [(3u64, "1h"), (5, "10s"), (2, "2s"), (4, "1.5m")] {
            let k = format!("ttl:{algo}:{window}");
            for i in 0..limit + 2 {
                let cost = if i == 1 { "COST 2" } else { "" };
                let args = format!("{} {cost}", rule(limit, window, algo));
                let r = c.allow(&k, &args);
                let pttl = c.pttl(&k);
                let ctx = format!("{algo} {args} call {i}: {r:?} PTTL {pttl}");
                assert!(pttl > 0, "no TTL: {ctx}");
                assert_between(pttl, r.reset_ms - 2_000, r.reset_ms + 2, &ctx);
            }
        }
    }
}

#[test]
fn keys_expire_and_then_reply_as_fresh() {
    let s = Server::start();
    let mut c = s.conn();
    for (algo, window, max_ms) in [
        ("fixed-window", "200ms", 200),
        ("sliding-window", "100ms", 200),
        ("gcra", "200ms", 200),
    ] {
        let k = format!("exp:{algo}");
        let args = rule(1, window, algo);
        let r = c.rl_pipeline("ALLOW", &k, &args, 2);
        assert_eq!(r[0].acr(), (true, 1, 0), "{algo}");
        assert_eq!(r[1].acr(), (false, 1, 0), "{algo}");
        assert_between(r[1].retry_ms, 1, max_ms, "retry within the window(s)");
        assert_between(c.pttl(&k), 1, max_ms + 1, "PTTL");
        let t = Instant::now();
        common::wait_until(Duration::from_secs(5), "key expiry", || !c.exists(&k));
        assert!(t.elapsed() < Duration::from_millis(max_ms as u64 + 1000));
        let p = c.peek(&k, &args);
        assert_eq!(
            (p.acr(), p.retry_ms),
            ((true, 1, 0), 0),
            "{algo} fresh peek"
        );
        assert!(!c.exists(&k));
        let a = c.allow(&k, &args);
        assert_eq!(
            (a.acr(), a.retry_ms),
            ((true, 1, 0), 0),
            "{algo} fresh allow"
        );
        assert_between(a.reset_ms, 1, max_ms, "fresh reset");
        if algo != "sliding-window" {
            assert_between(a.reset_ms, max_ms - 50, max_ms, "fresh reset");
        }
    }
}

#[test]
fn raising_the_limit_admits_more_lowering_admits_fewer() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ["fixed-window", "sliding-window"] {
        let k = format!("rule:{algo}");
        let r = c.rl_pipeline("ALLOW", &k, &rule(3, "1h", algo), 4);
        assert_eq!(r[3].acr(), (false, 3, 0), "{algo}");
        // Same counts, higher limit: exactly two more.
        let r = c.rl_pipeline("ALLOW", &k, &rule(5, "1h", algo), 3);
        assert_eq!(
            r.iter().map(Rl::acr).collect::<Vec<_>>(),
            vec![(true, 5, 1), (true, 5, 0), (false, 5, 0)],
            "{algo}"
        );
        // Lower limit: nothing passes, remaining never negative.
        let r = c.allow(&k, &rule(2, "1h", algo));
        assert_eq!(r.acr(), (false, 2, 0), "{algo}");
        assert!(r.retry_ms > 0);
        let pttl = c.pttl(&k);
        assert_between(
            pttl,
            r.reset_ms - 50,
            r.reset_ms + 2,
            "TTL after rule change",
        );
    }
    // A longer window keeps the count.
    let k = "rule:fw-window";
    c.rl_pipeline("ALLOW", k, "3 1h ALGO fixed-window", 2);
    let r = c.allow(k, "3 2h ALGO fixed-window");
    assert_eq!(r.acr(), (true, 3, 0));
    assert_between(
        c.pttl(k),
        r.reset_ms - 50,
        r.reset_ms + 2,
        "TTL after window change",
    );
    assert_eq!(c.allow(k, "3 2h ALGO fixed-window").acr(), (false, 3, 0));

    // gcra: a larger BURST admits exactly the extra capacity.
    let k = "rule:gcra";
    let r = c.rl_pipeline("ALLOW", k, "3 1h ALGO gcra", 4);
    assert_eq!(r[3].acr(), (false, 3, 0));
    let r = c.rl_pipeline("ALLOW", k, "3 1h ALGO gcra BURST 6", 4);
    assert_eq!(
        r.iter().map(Rl::acr).collect::<Vec<_>>(),
        vec![(true, 6, 2), (true, 6, 1), (true, 6, 0), (false, 6, 0)]
    );
    let r = c.allow(k, "3 1h ALGO gcra BURST 2");
    assert_eq!(r.acr(), (false, 2, 0));
}

#[test]
fn a_higher_limit_never_admits_fewer() {
    // For any state: peeking with a raised limit (or burst) gives at least the same remaining,
    // admits whatever the old rule admits, and never a later retry.
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let k = format!("mono:{algo}");
        for step in 0..8 {
            let old = c.peek(&k, &rule(4, "1h", algo));
            for (l, extra) in [(5, ""), (8, ""), (4, "BURST 6"), (8, "BURST 8")] {
                if algo != "gcra" && !extra.is_empty() {
                    continue;
                }
                let new = c.peek(&k, &format!("{} {extra}", rule(l, "1h", algo)));
                let ctx = format!("{algo} step {step} limit {l} {extra}: old {old:?} new {new:?}");
                assert!(new.remaining >= old.remaining, "{ctx}");
                assert!(new.allowed || !old.allowed, "{ctx}");
                if !new.allowed {
                    assert!(new.retry_ms <= old.retry_ms + 1, "{ctx}");
                }
            }
            c.allow(&k, &rule(4, "1h", algo));
        }
    }
}

#[test]
fn type_is_ratelimit_and_del_resets() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let k = format!("t:{algo}");
        let args = rule(2, "1h", algo);
        c.rl_pipeline("ALLOW", &k, &args, 3);
        assert_eq!(c.type_of(&k), "ratelimit");
        assert_eq!(c.del(&k), 1);
        assert!(!c.exists(&k));
        assert_eq!(c.allow(&k, &args).acr(), (true, 2, 1), "{algo} after DEL");
    }
}

#[test]
fn window_units() {
    let s = Server::start();
    let mut c = s.conn();
    for (w, ms) in [
        ("10", 10_000i64),
        ("1", 1_000),
        ("500ms", 500),
        ("1500ms", 1_500),
        ("1.5s", 1_500),
        ("0.25s", 250),
        ("2s", 2_000),
        ("1m", 60_000),
        ("1.5m", 90_000),
        ("1h", 3_600_000),
        ("0.5h", 1_800_000),
        ("1d", 86_400_000),
        ("365d", 365 * 86_400_000),
    ] {
        let k = format!("unit:{w}");
        let r = c.allow(&k, &format!("1 {w} ALGO fixed-window"));
        assert_eq!((r.acr(), r.reset_ms), ((true, 1, 0), ms), "window {w}");
        assert_between(c.pttl(&k), ms - 2_000, ms + 1, "PTTL");
    }
    // gcra sees the window in µs: 1000 per 1 ms is an interval of exactly 1 µs.
    let r = c.allow("unit:gcra-us", "1000 1ms ALGO gcra");
    assert_eq!(r.acr(), (true, 1000, 999));
}

#[test]
fn options_are_case_insensitive_and_in_any_order() {
    let s = Server::start();
    let mut c = s.conn();
    let r = Rl::from_reply(&c.cmd_str("rl.allow k1 3 1h algo GCRA burst 4 cost 2").ok());
    assert_eq!(r.acr(), (true, 4, 2));
    let r = Rl::from_reply(&c.cmd_str("Rl.Peek k1 3 1h Cost 1 Burst 4 Algo gcra").ok());
    assert_eq!(r.acr(), (true, 4, 1));
    let r = Rl::from_reply(&c.cmd_str("RL.ALLOW k2 3 1h cost 3 ALGO Fixed-Window").ok());
    assert_eq!(r.acr(), (true, 3, 0));
    let r = Rl::from_reply(&c.cmd_str("RL.ALLOW k3 3 1h ALGO SLIDING-WINDOW").ok());
    assert_eq!(r.acr(), (true, 3, 2));
}

#[test]
fn binary_keys_work() {
    let s = Server::start();
    let mut c = s.conn();
    let k: &[u8] = b"\xff\x00\xfe rl\r\nkey";
    assert_eq!(c.allow(k, "2 1h").acr(), (true, 2, 1));
    assert_eq!(c.allow(k, "2 1h").acr(), (true, 2, 0));
    assert_eq!(c.peek(k, "2 1h").acr(), (false, 2, 0));
    assert_eq!(c.type_of(k), "ratelimit");
    assert!(c.pttl(k) > 0);
    let keys = c.cmd(&["KEYS", "*"]);
    assert_eq!(keys, Reply::Array(vec![Reply::Bulk(k.to_vec())]));
}

/// `COMMAND INFO name` → (flags, key-spec flags of the first key spec).
fn command_info(c: &mut Conn, name: &str) -> (Vec<String>, Vec<String>) {
    let r = c.cmd(&["COMMAND", "INFO", name]).ok();
    let info = r.array()[0].array();
    assert_eq!(info[0].text(), name.to_ascii_lowercase());
    let flags = info[2].flat();
    let mut spec_flags = Vec::new();
    if let Some(Reply::Array(specs)) = info.get(8) {
        if let Some(Reply::Array(spec)) = specs.first() {
            for pair in spec.chunks(2) {
                if pair[0].text() == "flags" {
                    spec_flags = pair[1].flat();
                }
            }
        }
    }
    (flags, spec_flags)
}

#[test]
fn command_flags_and_keys() {
    let s = Server::start();
    let mut c = s.conn();
    let (flags, spec) = command_info(&mut c, "RL.ALLOW");
    for f in ["write", "denyoom", "fast"] {
        assert!(
            flags.contains(&f.to_string()),
            "RL.ALLOW flags {flags:?} lack {f}"
        );
    }
    assert!(!flags.contains(&"readonly".to_string()), "{flags:?}");
    assert!(
        spec.contains(&"RW".to_string()),
        "RL.ALLOW key spec {spec:?}"
    );
    let (flags, spec) = command_info(&mut c, "RL.PEEK");
    for f in ["readonly", "fast"] {
        assert!(
            flags.contains(&f.to_string()),
            "RL.PEEK flags {flags:?} lack {f}"
        );
    }
    for f in ["write", "denyoom"] {
        assert!(
            !flags.contains(&f.to_string()),
            "RL.PEEK flags {flags:?} have {f}"
        );
    }
    assert!(
        spec.contains(&"RO".to_string()),
        "RL.PEEK key spec {spec:?} is not RO"
    );
    assert!(
        !spec.contains(&"RW".to_string()),
        "RL.PEEK key spec {spec:?}"
    );

    for cmd in [
        "RL.ALLOW k 1 1",
        "RL.ALLOW k 1 1 COST 2 ALGO gcra BURST 3",
        "RL.PEEK k 1 1",
        "RL.SETSTATE k payload",
    ] {
        let r = c.cmd_str(&format!("COMMAND GETKEYS {cmd}"));
        assert_eq!(r, Reply::Array(vec![Reply::Bulk(b"k".to_vec())]), "{cmd}");
    }
}

#[test]
fn acl_read_only_selector_allows_peek_but_not_allow() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.allow("acl:k", "5 1h");
    let r = admin.cmd_str("ACL SETUSER reader on nopass %R~* +@all");
    if r.error().is_some() {
        eprintln!("skipped: ACL key selectors not supported: {r:?}");
        return;
    }
    let mut c = s.conn();
    c.cmd_str("AUTH reader x").ok();
    assert_eq!(c.peek("acl:k", "5 1h").acr(), (true, 5, 3));
    assert_eq!(c.peek("acl:other", "5 1h").acr(), (true, 5, 4));
    let e = c.rl_err("ALLOW", "acl:k", "5 1h");
    assert!(e.starts_with("NOPERM"), "{e}");
    assert_eq!(
        admin.peek("acl:k", "5 1h").remaining,
        3,
        "denied ALLOW changed the key"
    );
}

#[test]
fn sub_millisecond_times_round_up() {
    let s = Server::start();
    let mut c = s.conn();
    // Emission interval 500 µs, burst 1: the second request (µs later, same pipeline) must wait
    // a fraction of a millisecond, reported as 1 (rounded up, never 0 for a denial).
    let r = c.rl_pipeline("ALLOW", "g", "2000 1s ALGO gcra BURST 1", 2);
    assert_eq!((r[0].acr(), r[0].reset_ms), ((true, 1, 0), 1), "{:?}", r[0]);
    assert_eq!(
        (r[1].acr(), r[1].retry_ms),
        ((false, 1, 0), 1),
        "{:?}",
        r[1]
    );
    // A window of 0.6 µs rounds to 1 µs (nearest), 0.4 µs to 0 (refused).
    let r = c.allow("w", "1 0.0006ms ALGO fixed-window");
    assert_eq!(r.acr(), (true, 1, 0));
    let e = c.rl_err("ALLOW", "w2", "1 0.0004ms ALGO fixed-window");
    assert!(e.starts_with("ERR window must be"), "{e}");
    // 2.6 µs rounds to 3 µs: 3 per window is an interval of exactly 1 µs (truncating to 2 µs
    // would make it 0 and refuse the rule).
    let r = c.allow("g3", "3 0.0000026s ALGO gcra");
    assert_eq!(r.acr(), (true, 3, 2));
}

#[test]
fn largest_counts_do_not_overflow() {
    const MAX: i64 = i64::MAX;
    let s = Server::start();
    let mut c = s.conn();
    let r = c.allow("fw", &format!("{MAX} 1h ALGO fixed-window COST {MAX}"));
    assert_eq!((r.acr(), r.retry_ms), ((true, MAX, 0), 0));
    let r = c.allow("fw", &format!("{MAX} 1h ALGO fixed-window"));
    assert_eq!(r.acr(), (false, MAX, 0));
    assert_between(r.retry_ms, HOUR_MS - 2_000, HOUR_MS, "retry");
    let r = c.allow("sw", &format!("{MAX} 1h COST {}", MAX - 1));
    assert_eq!(r.acr(), (true, MAX, 1));
    let r = c.allow("sw", &format!("{MAX} 1h COST 2"));
    assert_eq!(r.acr(), (false, MAX, 1));
    assert_eq!(c.allow("sw", &format!("{MAX} 1h")).acr(), (true, MAX, 0));
    // gcra: a burst of 10⁹ at 1 ms per request is 11.6 days of tolerance.
    let r = c.allow("g", "1000 1s ALGO gcra BURST 1000000000 COST 1000000000");
    assert_eq!(r.acr(), (true, 1_000_000_000, 0));
    assert_between(r.reset_ms, 1_000_000_000 - 50, 1_000_000_000, "reset");
    let r = c.rl_pipeline("ALLOW", "g", "1000 1s ALGO gcra BURST 1000000000 COST 5", 1)[0];
    assert!(r.remaining < 1000, "{r:?}");

    // Sliding window: a previous window holding i64::MAX, weighted halfway through the next.
    const W: i64 = 1_000_000;
    let args = format!("{MAX} 1s");
    for attempt in 0..3 {
        c.del("swmax");
        let k = wait_for_window_phase(&mut c, W, 0, 200_000, 0);
        c.allow("swmax", &format!("{args} COST {MAX}"));
        if c.time_us() / W != k {
            continue;
        }
        wait_for_window_phase(&mut c, W, 500_000, 600_000, k + 1);
        let t0 = c.time_us();
        let p = c.peek("swmax", &args);
        let t1 = c.time_us();
        if t1 / W != k + 1 {
            assert!(attempt < 2, "machine too slow for this test");
            continue;
        }
        // remaining = MAX − MAX × (1 − e/W) − 1 = MAX × e/W − 1.
        let lo = (MAX as f64 * ((t0 % W) as f64 / W as f64)) * 0.999;
        let hi = (MAX as f64 * ((t1 % W) as f64 / W as f64)) * 1.001;
        assert!(p.allowed, "{p:?}");
        assert!(
            (lo..=hi).contains(&(p.remaining as f64)),
            "remaining {} not in [{lo}, {hi}]",
            p.remaining
        );
        return;
    }
}

#[test]
fn a_denial_under_a_changed_rule_stays_within_the_ttl() {
    // The key expires at PTTL, and then the limiter is full: a reply must not promise a later
    // reset (or a later retry) than that, also when the request is denied under a new rule
    // (denials write nothing, so the TTL stays what the old rule set).
    let s = Server::start();
    let mut c = s.conn();
    for (algo, first, second) in [
        ("fixed-window", "1 10s", "1 1h"),
        ("sliding-window", "1 10s", "1 1h"),
        ("gcra", "1 10s", "1 1h"),
        ("gcra", "3 10s COST 2", "1 10s"),
        ("gcra", "4 10s BURST 4 COST 4", "4 20s BURST 4"),
    ] {
        let k = format!("chg:{algo}:{first}");
        let a = c.allow(&k, &format!("{first} ALGO {algo}"));
        assert!(a.allowed);
        let r = c.allow(&k, &format!("{second} ALGO {algo}"));
        let pttl = c.pttl(&k);
        let ctx = format!("{algo}: `{first}` then `{second}` → {r:?}, PTTL {pttl}");
        assert!(!r.allowed, "{ctx}");
        assert!(pttl > 0, "{ctx}");
        assert!(
            r.reset_ms <= pttl + 50,
            "reset_after beyond the key's expiry: {ctx}"
        );
        assert!(
            r.retry_ms <= pttl + 50,
            "retry_after beyond the key's expiry: {ctx}"
        );
    }
}

#[test]
fn over_maxmemory_allow_is_refused_and_peek_still_answers() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("oom", "5 1h");
    let snap = c.snapshot("oom");
    c.cmd_str("CONFIG SET maxmemory-policy noeviction").ok();
    c.cmd_str("CONFIG SET maxmemory 1").ok();
    let e = c.rl_err("ALLOW", "oom", "5 1h");
    assert!(e.starts_with("OOM"), "{e}");
    let e = c.rl_err("ALLOW", "new", "5 1h");
    assert!(e.starts_with("OOM"), "{e}");
    assert_eq!(c.peek("oom", "5 1h").acr(), (true, 5, 3));
    assert_eq!(c.snapshot("oom"), snap);
    c.cmd_str("CONFIG SET maxmemory 0").ok();
    assert_eq!(c.allow("oom", "5 1h").acr(), (true, 5, 3));
}

#[test]
fn gcra_is_exact_at_high_rates() {
    // The review's cases: a full window's quota, spent at once, is back after one whole window
    // (the first release rounded the interval down: 600 ms instead of 1 s, 1 s instead of 1.9 s).
    let s = Server::start();
    let mut c = s.conn();
    for (limit, window, window_ms) in [
        (600_000, "1s", 1_000),
        (1_000_000, "1.9s", 1_900),
        (3, "1s", 1_000),
        (100, "1m", 60_000),
        (2_000, "1ms", 1),
    ] {
        let key = format!("g:{limit}:{window}");
        let args = format!("{limit} {window} ALGO gcra COST {limit}");
        let r = c.rl_pipeline("ALLOW", &key, &args, 2);
        assert!(r[0].allowed && r[0].remaining == 0, "{args}: {:?}", r[0]);
        assert_eq!(r[0].reset_ms, window_ms, "{args}");
        assert!(!r[1].allowed);
        // Back to back: the whole window minus the few ms between the two, never less.
        assert_between(r[1].retry_ms, window_ms * 9 / 10, window_ms, &args);
        let tat_us = c.inspect_int(&key, "tat_us");
        let pexpiretime = c.pexpiretime(&key);
        assert_eq!((tat_us + 999) / 1000, pexpiretime, "{args}");
    }
}

/// After a write, `PTTL` is `reset_after_ms` or one more: the key expires at the exact instant
/// rounded up to a ms, `reset_after_ms` is the duration rounded up (a fresh 1-minute window says
/// 60000). Read in the same transaction; on Redis 7.0, whose `PTTL` reads the clock again, it may
/// also fall in the next ms (one less).
#[test]
fn pttl_after_a_write_is_reset_after_or_one_more() {
    let s = Server::start();
    let mut c = s.conn();
    let info = c.info("server");
    let same_clock = info.contains("valkey_version");
    for algo in common::ALGOS {
        for i in 0..100 {
            let key = format!("pttl:{algo}:{}", i % 7);
            c.cmd(&["MULTI"]);
            c.cmd_str(&format!("RL.ALLOW {key} 1000 1m ALGO {algo}"));
            c.cmd(&["PTTL", &key]);
            let Reply::Array(r) = c.cmd(&["EXEC"]) else {
                panic!()
            };
            let reset = Rl::from_reply(&r[0]).reset_ms;
            let Reply::Int(pttl) = r[1] else {
                panic!("{r:?}")
            };
            let lo = if same_clock { reset } else { reset - 1 };
            assert!(
                (lo..=reset + 1).contains(&pttl),
                "{algo}: reset_after_ms {reset}, PTTL {pttl}"
            );
        }
    }
}
