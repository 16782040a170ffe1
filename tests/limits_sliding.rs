//! `ALGO limits-sliding-window` on real servers: limits' sliding window counter in one key —
//! admissions, the counters' TTLs, reads that shift (RL.ALLOW … COST 0 writes, RL.PEEK does
//! not), effects replication and persistence.

mod common;

use common::{NodeConfig, Server};

const ALGO: &str = "ALGO limits-sliding-window";

#[test]
fn a_window_anchored_at_the_first_hit() {
    let s = Server::start();
    let mut c = s.conn();
    let args = format!("3 1s {ALGO}");
    let replies: Vec<_> = (0..4).map(|_| c.allow("k", &args)).collect();
    assert_eq!(
        replies.iter().map(|r| r.allowed).collect::<Vec<_>>(),
        [true, true, true, false]
    );
    assert_eq!(replies[0].remaining, 2);
    // The current counter was created for two windows, as limits' SET … PX 2000.
    let f = c.inspect("k").unwrap();
    assert_eq!(f["algorithm"], "limits-sliding-window");
    assert_eq!(f["current"], "3");
    let ttl: i64 = f["current_ttl_ms"].parse().unwrap();
    assert!((1_500..=2_000).contains(&ttl), "{ttl}");
    assert_eq!(f["previous"], "0");
    let pttl = c.pttl("k");
    assert!(
        (ttl - 2..=ttl + 2).contains(&pttl),
        "PTTL {pttl}, counter ttl {ttl}"
    );
}

#[test]
fn reads_shift_as_limits_does_and_replicate() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let args = format!("10 1s {ALGO}");
    for _ in 0..4 {
        assert!(c.allow("r", &args).allowed);
    }
    // After more than a second the current counter has less than a window left: the next
    // access shifts it. RL.PEEK reports the shift without storing it ...
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let before = c.digest_value("r");
    let p = c.peek("r", &format!("{args} COST 0"));
    assert!(p.allowed);
    assert_eq!(c.digest_value("r"), before, "RL.PEEK wrote");
    // ... RL.ALLOW … COST 0 (a write command, what rl:// sends for limits' reads) stores it.
    let r = c.allow("r", &format!("{args} COST 0"));
    assert_eq!(r.remaining, p.remaining);
    assert_ne!(c.digest_value("r"), before, "the shift was not stored");
    let f = c.inspect("r").unwrap();
    assert_eq!((f["previous"].as_str(), f["current"].as_str()), ("4", "0"));
    // On an absent limiter COST 0 is limits' acquire of 0: an empty current counter for 2E
    // (RL.PEEK still writes nothing).
    assert_eq!(c.peek("fresh", &format!("{args} COST 0")).remaining, 10);
    assert!(c.inspect("fresh").is_none(), "RL.PEEK created a key");
    let r = c.allow("fresh", &format!("{args} COST 0"));
    assert_eq!((r.allowed, r.remaining), (true, 10));
    let f = c.inspect("fresh").unwrap();
    assert_eq!((f["current"].as_str(), f["previous"].as_str()), ("0", "0"));
    let pttl = c.pttl("fresh");
    assert!(
        (1_001..=2_000).contains(&pttl),
        "a counter for 2 windows: {pttl}"
    );
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    assert_eq!(replica.conn().pexpiretime("r"), c.pexpiretime("r"));
    assert_eq!(replica.conn().pexpiretime("fresh"), c.pexpiretime("fresh"));
}

#[test]
fn survives_aof_and_rdb() {
    let mut s = NodeConfig::new().set("appendonly", "yes").start();
    let mut c = s.conn();
    for i in 0..20 {
        c.allow(
            format!("p:{}", i % 5),
            &format!("7 1h {ALGO} COST {}", 1 + i % 2),
        );
    }
    let digest = s.digest();
    let expiry = c.pexpiretime("p:1");
    s.restart();
    assert_eq!(s.digest(), digest);
    let mut c = s.conn();
    assert_eq!(c.pexpiretime("p:1"), expiry);
    c.cmd(&["DEBUG", "RELOAD"]);
    assert_eq!(s.digest(), digest);
}
