//! `ALGO moving-window` against a real server: the exact sliding log, its replies, its memory,
//! and its O(1) replication (`RL.APPLY`) whatever the log's size.

mod common;

use std::thread::sleep;
use std::time::Duration;

use common::{assert_between, info_field, Conn, Reply, Server};
use redis_ratelimit::algo::{Algorithm, Bounds, Hit, Rule};
use redis_ratelimit::datatype::codec::encode_hit;

const MW: &str = "ALGO moving-window";

fn offset(c: &mut Conn) -> i64 {
    let info = c.info("replication");
    info_field(&info, "master_repl_offset")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn no_window_holds_more_than_the_limit() {
    let s = Server::start();
    let mut c = s.conn();
    let args = format!("3 300ms {MW}");
    // Three at once fill it; the fourth waits for the oldest to leave, exactly.
    let r = c.rl_pipeline("ALLOW", "k", &format!("{args} COST 2"), 1);
    assert_eq!(r[0].acr(), (true, 3, 1));
    sleep(Duration::from_millis(100));
    let r = c.allow("k", &args);
    assert_eq!(r.acr(), (true, 3, 0));
    let d = c.allow("k", &args);
    assert!(!d.allowed);
    // The cost-2 run (≈100 ms older) leaves first: retry ≈ 200 ms; reset = newest + W ≈ 300 ms.
    assert_between(d.retry_ms, 50, 200, "retry_after_ms");
    assert_between(d.reset_ms, 150, 300, "reset_after_ms");
    assert_between(c.pttl("k"), d.reset_ms - 20, d.reset_ms + 1, "PTTL");
    sleep(Duration::from_millis(d.retry_ms as u64 + 5));
    let r = c.allow("k", &format!("{args} COST 2"));
    assert!(r.allowed, "{r:?}");
    assert!(
        !c.allow("k", &args).allowed,
        "the 100 ms hit is still in the window"
    );
    // A cost above the limit can never pass.
    assert_eq!(c.allow("k", &format!("{args} COST 4")).retry_ms, -1);
}

#[test]
fn inspect_shows_the_log() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.inspect("m"), None);
    let t0 = c.time_us();
    c.allow("m", &format!("10 1h {MW} COST 3"));
    sleep(Duration::from_millis(5));
    c.allow("m", &format!("10 1h {MW}"));
    let f = c.inspect("m").unwrap();
    assert_eq!(f["algorithm"], "moving-window");
    assert_eq!(
        (f["limit"].as_str(), f["window_us"].as_str()),
        ("10", "3600000000")
    );
    assert_eq!(f["count"], "4");
    assert_eq!(f["runs"], "2");
    let oldest: i64 = f["oldest_us"].parse().unwrap();
    let newest: i64 = f["newest_us"].parse().unwrap();
    assert!(oldest >= t0 && newest - oldest >= 5_000, "{f:?}");
    assert_eq!((newest + 3_600_000_000 + 999) / 1000, c.pexpiretime("m"));
}

#[test]
fn a_million_cost_hit_is_one_run() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("one", &format!("1000000 1h {MW}"));
    let small = c.cmd(&["MEMORY", "USAGE", "one"]).int();
    let r = c.allow("big", &format!("1000000 1h {MW} COST 1000000"));
    assert_eq!(r.acr(), (true, 1_000_000, 0));
    let big = c.cmd(&["MEMORY", "USAGE", "big"]).int();
    assert_eq!(big, small, "memory must not grow with the cost");
    assert_eq!(c.inspect_int("big", "runs"), 1);
    assert!(!c.allow("big", &format!("1000000 1h {MW}")).allowed);
}

#[test]
fn memory_usage_reports_the_log() {
    let s = Server::start();
    let mut c = s.conn();
    // 1,000 single hits at distinct times (the server's µs clock moves between calls).
    for _ in 0..1_000 {
        c.allow("log", &format!("1000000 1h {MW}"));
    }
    let runs = c.inspect_int("log", "runs");
    assert!(runs > 500, "{runs} runs");
    let usage = c.cmd(&["MEMORY", "USAGE", "log"]).int();
    let one = {
        c.allow("one", &format!("1000000 1h {MW}"));
        c.cmd(&["MEMORY", "USAGE", "one"]).int()
    };
    let per_run = (usage - one) as f64 / runs as f64;
    eprintln!("MEMORY USAGE: 1 run {one} B, {runs} runs {usage} B: {per_run:.2} B per run");
    assert!(per_run <= 8.0, "{per_run} bytes per run");
    // 1,000 single hits spread evenly over the window (3.6 s apart in an hour), placed at their
    // times with RL.APPLY as a replica would: at most 8 bytes per entry, allocation included.
    let rule = Rule::new(Algorithm::MovingWindow, 1_000_000, 3_600_000_000, None).unwrap();
    let now = c.time_us() as u64;
    for i in 1..=1_000u64 {
        let at = now - 3_600_000_000 + i * 3_600_000;
        let hit = Hit {
            rule,
            now_us: at,
            cost: 1,
            bounds: Bounds::DEFAULT,
            after: None,
            needs_current_replay: false,
            refund: false,
            block: None,
        };
        c.send(&[
            b"RL.APPLY".as_slice(),
            b"spread",
            encode_hit(&hit).as_slice(),
        ])
        .unwrap();
    }
    for _ in 0..1_000 {
        assert_eq!(c.read().unwrap(), Reply::Status("OK".into()));
    }
    assert_eq!(c.inspect_int("spread", "runs"), 1_000);
    let usage = c.cmd(&["MEMORY", "USAGE", "spread"]).int();
    eprintln!("MEMORY USAGE of 1,000 hits spread over an hour: {usage} B");
    assert!(usage <= 8 * 1_000, "{usage} bytes for 1,000 entries");
}

#[test]
fn replication_is_o1_per_hit() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let args = format!("1000000 1h {MW}");
    for _ in 0..10 {
        c.rl_pipeline("ALLOW", "hot", &args, 1_000);
    }
    let runs = c.inspect_int("hot", "runs");
    assert!(runs > 2_000, "{runs} runs");
    // One hit on a key with thousands of runs moves the replication stream by a few dozen
    // bytes (RL.APPLY with the master's time), not by the log's size.
    let before = offset(&mut c);
    c.allow("hot", &args);
    let delta = offset(&mut c) - before;
    assert!(delta < 120, "one hit replicated {delta} bytes");
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    let mut r = replica.conn();
    assert_eq!(r.pexpiretime("hot"), c.pexpiretime("hot"));
    assert_eq!(r.inspect_int("hot", "runs"), runs + 1);
}

#[test]
fn a_rule_change_keeps_the_log() {
    let s = Server::start();
    let mut c = s.conn();
    for _ in 0..3 {
        assert!(c.allow("r", &format!("3 1h {MW}")).allowed);
    }
    assert!(!c.allow("r", &format!("3 1h {MW}")).allowed);
    // A higher limit admits at once; a lower one counts what is logged.
    assert!(c.allow("r", &format!("5 1h {MW}")).allowed);
    let d = c.allow("r", &format!("2 1h {MW}"));
    assert_eq!((d.allowed, d.remaining), (false, 0));
    // A shorter window drops what left it (and a later longer window does not bring it back).
    sleep(Duration::from_millis(600));
    let r = c.rl_pipeline("ALLOW", "r", &format!("1 500ms {MW}"), 1);
    assert!(r[0].allowed);
    let d = c.allow("r", &format!("5 1h {MW}"));
    assert_eq!((d.allowed, d.remaining), (true, 3));
}

/// Past the coalescing threshold (50,000 runs under the default cap) hits replicate in payload
/// version 3, with the cap and the master's `runs total`: the replica ends equal and agrees.
#[test]
fn a_log_past_the_threshold_replicates_exactly() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let args = format!("1000000000 1h {MW}");
    for _ in 0..7 {
        c.rl_pipeline("ALLOW", "big", &args, 10_000);
    }
    let runs = c.inspect_int("big", "runs");
    assert!((50_000..70_000).contains(&runs), "{runs} runs");
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    let mut r = replica.conn();
    assert_eq!(r.pexpiretime("big"), c.pexpiretime("big"));
    assert_eq!(r.stat("replica_mismatches"), 0);
    assert_eq!(r.stat("hits_refused"), 0);
}

/// A replayed hit whose log does not end as the master's did is counted (and logged once a
/// minute at most): a replica that missed a hit is detectable.
#[test]
fn a_replica_that_diverged_is_counted() {
    let s = Server::start();
    let mut c = s.conn();
    let now = c.time_us() as u64;
    let rule = Rule::new(Algorithm::MovingWindow, 100, 60_000_000, None).unwrap();
    let hit = |now_us, after| Hit {
        rule,
        now_us,
        cost: 1,
        bounds: Bounds::DEFAULT,
        after,
        needs_current_replay: true,
        refund: false,
        block: None,
    };
    // The master says its log held 2 runs totalling 2 after this hit: so does ours.
    for (i, after) in [(1, (1, 1)), (2, (2, 2))] {
        let payload = encode_hit(&hit(now + i, Some(after)));
        let r = c.cmd(&[b"RL.APPLY".as_slice(), b"k", payload.as_slice()]);
        assert_eq!(r, Reply::Status("OK".into()));
    }
    assert_eq!(c.stat("replica_mismatches"), 0);
    // Here it says 5 runs totalling 9: a hit went missing before.
    let payload = encode_hit(&hit(now + 3, Some((5, 9))));
    c.cmd(&[b"RL.APPLY".as_slice(), b"k", payload.as_slice()]);
    assert_eq!(c.stat("replica_mismatches"), 1);
    assert_eq!(c.inspect_int("k", "runs"), 3);
    // A payload of a later version that needs a newer reader is refused and counted.
    // (Version 4 is this release's refund / block hit: the later one is 5.)
    let mut later = encode_hit(&hit(now + 4, None)).as_slice().to_vec();
    later[0] = 5;
    later[1] = 5;
    let r = c.cmd(&[b"RL.APPLY".as_slice(), b"k", &later]);
    assert!(matches!(r, Reply::Error(_)), "{r:?}");
    assert_eq!(c.stat("hits_refused"), 1);
    // One it may read (oldest reader 3), with a record this release does not know, is applied.
    later[1] = 3;
    later.extend_from_slice(&[9, 1, 0x2a]);
    let r = c.cmd(&[b"RL.APPLY".as_slice(), b"k", &later]);
    assert_eq!(r, Reply::Status("OK".into()));
    assert_eq!(c.inspect_int("k", "runs"), 4);
}
