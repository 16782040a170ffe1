//! Many clients at once on one key: the server runs commands one at a time, so exactly `limit`
//! pass (gcra may let one more through if an emission interval elapses meanwhile).

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{Rl, Server};

const CLIENTS: usize = 200;

/// `CLIENTS` threads, each with its own connection, released together, one RL.ALLOW each.
fn storm(s: &Server, key: &str, args: &str) -> Vec<Rl> {
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut c = s.conn();
            let barrier = Arc::clone(&barrier);
            let (key, args) = (key.to_string(), args.to_string());
            thread::spawn(move || {
                barrier.wait();
                c.allow(&key, &args)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn check(algo: &str, args: &str, lo: usize, hi: usize) {
    let s = Server::start();
    let key = format!("hot:{algo}");
    let replies = storm(&s, &key, args);
    let allowed = replies.iter().filter(|r| r.allowed).count();
    assert!(
        (lo..=hi).contains(&allowed),
        "{algo}: {allowed} of {CLIENTS} allowed, want {lo}..={hi}"
    );
    // Every admitted request saw a distinct remaining count: no two were charged the same unit.
    let mut rem: Vec<i64> = replies
        .iter()
        .filter(|r| r.allowed)
        .map(|r| r.remaining)
        .collect();
    rem.sort_unstable();
    rem.dedup();
    assert!(rem.len() >= 100, "{algo}: remaining values repeat: {rem:?}");
    for r in replies.iter().filter(|r| !r.allowed) {
        assert!(r.retry_ms > 0, "{algo}: denied without retry_after: {r:?}");
    }
    let mut c = s.conn();
    let p = c.peek(&key, args);
    assert!(
        !p.allowed || algo == "gcra",
        "{algo}: still admitting: {p:?}"
    );
    s.assert_alive();
}

#[test]
fn fixed_window_admits_exactly_the_limit() {
    check("fixed-window", "100 1h ALGO fixed-window", 100, 100);
}

#[test]
fn sliding_window_admits_exactly_the_limit() {
    check("sliding-window", "100 1h ALGO sliding-window", 100, 100);
}

#[test]
fn gcra_admits_the_burst() {
    check("gcra", "100 1h ALGO gcra BURST 100", 100, 101);
}

#[test]
fn moving_window_admits_exactly_the_limit() {
    check("moving-window", "100 1h ALGO moving-window", 100, 100);
}
