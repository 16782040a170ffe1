//! Concurrency leases on real servers: RL.ACQUIRE / RL.RELEASE replies and errors, the key's
//! TTL (its last lease), WATCH and keyspace events on writes only, 200 clients on a limit of 10,
//! replicas / AOF / RDB agreeing on which leases exist and when each ends, O(1) replication
//! however many leases a key holds, clock steps, the TTL guard, and the RDB fixture.

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{info_field, wait_until, Conn, NodeConfig, Reply, Rng, Server};
use redis_ratelimit::algo::leases::{Acquire, Lease, LeaseId, LeasesState};
use redis_ratelimit::algo::{Limiter, State};
use redis_ratelimit::datatype::codec::encode;

/// One `RL.ACQUIRE` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    allowed: bool,
    id: Option<String>,
    in_flight: i64,
    retry_ms: i64,
    reset_ms: i64,
}

impl Grant {
    fn from_reply(r: &Reply) -> Grant {
        let a = r.array();
        assert_eq!(a.len(), 5, "{r:?}");
        let id = match &a[1] {
            Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Nil => None,
            other => panic!("id: {other:?}"),
        };
        let g = Grant {
            allowed: a[0].int() == 1,
            id,
            in_flight: a[2].int(),
            retry_ms: a[3].int(),
            reset_ms: a[4].int(),
        };
        assert_eq!(
            g.allowed,
            g.id.is_some(),
            "an id exactly when granted: {g:?}"
        );
        assert_eq!(
            g.allowed,
            g.retry_ms == 0,
            "retry 0 exactly when granted: {g:?}"
        );
        g
    }
}

trait Leases {
    fn acquire(&mut self, key: &str, args: &str) -> Grant;
    fn release(&mut self, key: &str, id: &str) -> i64;
}

impl Leases for Conn {
    fn acquire(&mut self, key: &str, args: &str) -> Grant {
        let r = self.rl_raw("ACQUIRE", key, args);
        if let Some(e) = r.error() {
            panic!("RL.ACQUIRE {key} {args}: {e}");
        }
        Grant::from_reply(&r)
    }

    fn release(&mut self, key: &str, id: &str) -> i64 {
        self.cmd(&["RL.RELEASE", key, id]).int()
    }
}

#[test]
fn acquire_renew_release_as_documented() {
    let s = Server::start();
    let mut c = s.conn();
    let g = c.acquire("db", "2 10s ID a");
    assert_eq!(
        (g.allowed, g.id.as_deref(), g.in_flight),
        (true, Some("a"), 1)
    );
    assert_eq!((g.retry_ms, g.reset_ms), (0, 10_000));
    // The server's id: the master's time in µs.
    let before = c.time_us();
    let g = c.acquire("db", "2 10s");
    let id: i64 = g.id.clone().unwrap().parse().unwrap();
    assert!(id >= before && id <= c.time_us(), "{id}");
    assert_eq!(g.in_flight, 2);
    // Full: denied until the earliest lease ends.
    let d = c.acquire("db", "2 10s ID b");
    assert_eq!((d.allowed, d.id, d.in_flight), (false, None, 2));
    common::assert_between(d.retry_ms, 5_000, 10_000, "retry_after_ms");
    common::assert_between(d.reset_ms, d.retry_ms, 10_000, "reset_after_ms");
    // The key's TTL is the last lease's end.
    let f = c.inspect("db").unwrap();
    assert_eq!(f["algorithm"], "leases");
    let last_end: i64 = f["last_end_us"].parse().unwrap();
    assert_eq!(c.pexpiretime("db"), (last_end + 999) / 1000);
    assert_eq!(f["in_flight"], "2");
    assert_eq!(f["last_id"], id.to_string());
    // Renewing a takes no second slot and moves its end (here: shorter).
    let g = c.acquire("db", "2 1s ID a");
    assert_eq!((g.allowed, g.in_flight), (true, 2));
    // A limit lowered below what is held: denied, and renewals still pass.
    assert!(!c.acquire("db", "1 10s").allowed);
    assert!(c.acquire("db", "1 10s ID a").allowed);
    // Release: 1 once, then 0; the last one deletes the key.
    assert_eq!(c.release("db", "a"), 1);
    assert_eq!(c.release("db", "a"), 0);
    assert_eq!(c.release("db", "nobody"), 0);
    assert_eq!(c.release("nokey", "a"), 0);
    assert_eq!(c.release("db", &id.to_string()), 1);
    assert!(!c.exists("db"));
    // A lease that outlives its duration frees itself, and the key goes with its last lease.
    let g = c.acquire("short", "1 60ms ID x");
    assert!(g.allowed);
    assert!(!c.acquire("short", "1 60ms ID y").allowed);
    wait_until(Duration::from_secs(5), "the lease to end", || {
        !c.exists("short")
    });
    assert!(c.acquire("short", "1 60ms ID y").allowed);
    assert_eq!(c.release("short", "x"), 0, "x ended long ago");
}

#[test]
fn errors_say_what_to_fix_and_leave_the_key_unchanged() {
    let s = Server::start();
    let mut c = s.conn();
    c.acquire("l", "3 1h ID a");
    c.allow("r", "3 1h");
    c.cmd(&["SET", "str", "x"]).ok();
    let before = s.digest();
    let cases: &[(&[&str], &str)] = &[
        (&["RL.ACQUIRE", "l"], "ERR wrong number of arguments"),
        (&["RL.ACQUIRE", "l", "1"], "ERR wrong number of arguments"),
        (&["RL.RELEASE", "l"], "ERR wrong number of arguments"),
        (
            &["RL.RELEASE", "l", "a", "b"],
            "ERR wrong number of arguments",
        ),
        (
            &["RL.ACQUIRE", "l", "0", "1s"],
            "ERR limit must be an integer from 1 to 10000 (the most leases one key holds: ratelimit.max-leases)",
        ),
        (
            &["RL.ACQUIRE", "l", "10001", "1s"],
            "ERR limit must be an integer from 1 to 10000 (the most leases one key holds: ratelimit.max-leases)",
        ),
        (
            &["RL.ACQUIRE", "l", "1", "1x"],
            "ERR lease must be a duration",
        ),
        (
            &["RL.ACQUIRE", "l", "1", "1s", "ID"],
            "ERR ID needs a value",
        ),
        (
            &["RL.ACQUIRE", "l", "1", "1s", "ID", ""],
            "ERR id must be 1 to 128 bytes",
        ),
        (
            &["RL.ACQUIRE", "l", "1", "1s", "ID", "a", "ID", "b"],
            "ERR ID given more than once",
        ),
        (
            &["RL.ACQUIRE", "l", "1", "1s", "COST", "2"],
            "ERR unknown option 'COST': expected ID",
        ),
        (&["RL.RELEASE", "l", ""], "ERR id must be 1 to 128 bytes"),
        (
            &["RL.ACQUIRE", "r", "1", "1s"],
            "ERR key holds a sliding-window limiter, not leases: DEL it to change algorithms",
        ),
        (
            &["RL.RELEASE", "r", "a"],
            "ERR key holds a sliding-window limiter, not leases: DEL it to change algorithms",
        ),
        (
            &["RL.ALLOW", "l", "3", "1h"],
            "ERR key holds a leases limiter, not sliding-window: use RL.ACQUIRE and RL.RELEASE \
             on it, or DEL it",
        ),
        (
            &["RL.PEEK", "l", "3", "1h", "ALGO", "gcra"],
            "ERR key holds a leases limiter, not gcra",
        ),
        (
            &["RL.THROTTLE", "l", "3", "1", "1"],
            "ERR key holds a leases limiter, not gcra",
        ),
        (
            &["RL.ALLOW", "x", "3", "1h", "ALGO", "leases"],
            "ERR ALGO leases is not a rate limit: leases are taken with RL.ACQUIRE and given back \
             with RL.RELEASE",
        ),
        (&["RL.ACQUIRE", "str", "1", "1s"], "WRONGTYPE"),
        (&["RL.RELEASE", "str", "a"], "WRONGTYPE"),
    ];
    for (args, want) in cases {
        let e = c.cmd(args).expect_err().to_string();
        assert!(e.starts_with(want), "{args:?}: {e}");
    }
    let long = "x".repeat(129);
    let e = c.cmd(&["RL.ACQUIRE", "l", "1", "1s", "ID", &long]);
    assert_eq!(e.expect_err(), "ERR id must be 1 to 128 bytes");
    assert_eq!(s.digest(), before);
    assert!(!c.exists("x"));
    // The unknown-ALGO list names the rate limits only.
    let e = c.rl_err("ALLOW", "x", "1 1s ALGO nope");
    assert!(
        e.ends_with(
            "use sliding-window, fixed-window, gcra, moving-window or limits-sliding-window"
        ),
        "{e}"
    );
}

#[test]
fn watch_and_keyspace_events_fire_on_writes_only() {
    let s = Server::start();
    let mut c = s.conn();
    let mut other = s.conn();
    c.cmd_str("CONFIG SET notify-keyspace-events KEA").ok();
    other.acquire("w", "1 1h ID a");
    let mut sub = s.conn();
    sub.cmd(&["PSUBSCRIBE", "__keyspace@0__:w"]);
    sub.set_read_timeout(Duration::from_millis(300));
    let drain = |sub: &mut Conn| {
        let mut events = Vec::new();
        while let Ok(r) = sub.read() {
            events.push(r.flat().last().cloned().unwrap_or_default());
        }
        events
    };
    let tx = |c: &mut Conn| {
        c.cmd(&["MULTI"]).ok();
        c.cmd(&["SET", "marker", "1"]);
        c.cmd(&["EXEC"])
    };
    // A denial, a release of nothing, an error: no event, WATCH intact.
    c.cmd(&["WATCH", "w"]).ok();
    assert!(!other.acquire("w", "1 1h ID b").allowed);
    assert_eq!(other.release("w", "b"), 0);
    other.rl_err("ACQUIRE", "w", "0 1h");
    assert!(matches!(tx(&mut c), Reply::Array(_)), "EXEC aborted");
    assert_eq!(drain(&mut sub), Vec::<String>::new());
    // A renewal, a release: events, and WATCH aborts.
    c.cmd(&["WATCH", "w"]).ok();
    assert!(other.acquire("w", "1 1h ID a").allowed);
    assert_eq!(tx(&mut c), Reply::Nil, "EXEC not aborted by a renewal");
    c.cmd(&["WATCH", "w"]).ok();
    assert_eq!(other.release("w", "a"), 1);
    assert_eq!(tx(&mut c), Reply::Nil, "EXEC not aborted by a release");
    assert_eq!(drain(&mut sub), ["rl.acquire", "rl.release", "del"]);
}

/// 200 clients acquire, hold a little, release, on one key of limit 10: counted from the
/// clients (incremented after a grant arrives, decremented before the release is sent), never
/// more than 10 hold a lease at once.
#[test]
fn two_hundred_clients_never_hold_more_than_ten() {
    let s = Server::start_with(&[("maxclients", "1000")]);
    let holding = Arc::new(AtomicI64::new(0));
    let most = Arc::new(AtomicI64::new(0));
    let grants = Arc::new(AtomicUsize::new(0));
    let port = s.port();
    let deadline = Instant::now() + Duration::from_secs(4);
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let (holding, most, grants) = (holding.clone(), most.clone(), grants.clone());
            thread::spawn(move || {
                let mut c = Conn::connect(port).unwrap();
                let mut rng = Rng::new(i);
                while Instant::now() < deadline {
                    // Leases far longer than any hold: none ends while its client holds it.
                    let g = c.acquire("pool", "10 60s");
                    if !g.allowed {
                        assert!(g.in_flight >= 10, "{g:?}");
                        thread::sleep(Duration::from_micros(rng.below(2_000)));
                        continue;
                    }
                    assert!(g.in_flight <= 10, "{g:?}");
                    let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    grants.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_micros(rng.below(3_000)));
                    holding.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(c.release("pool", g.id.as_deref().unwrap()), 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (most, grants) = (most.load(Ordering::SeqCst), grants.load(Ordering::SeqCst));
    eprintln!("200 clients: {grants} leases granted, at most {most} held at once");
    assert!(most <= 10, "{most} held at once");
    assert!(
        most >= 2 && grants >= 200,
        "too little contention to mean anything"
    );
    assert!(!s.conn().exists("pool"), "every lease was released");
}

/// A random lease workload: keys with long and short leases, caller and server ids, renewals,
/// releases (of held and unknown ids), limit changes, denials.
fn workload(c: &mut Conn, rng: &mut Rng, keys: &[String], steps: usize) {
    let mut ids: Vec<(String, String)> = Vec::new();
    for _ in 0..steps {
        let key = rng.pick(keys).clone();
        match rng.below(10) {
            0..=1 if !ids.is_empty() => {
                let (k, id) = ids.swap_remove(rng.below(ids.len() as u64) as usize);
                c.release(&k, &id);
            }
            2 => {
                c.release(&key, "nobody");
            }
            _ => {
                let limit = rng.pick(&[3, 5, 50]);
                // Keys end with a long lease so they outlive the test; short ones end inside.
                let lease = rng.pick(&["1h", "2h", "20ms", "50ms", "500ms"]);
                let id = match rng.below(3) {
                    0 => String::new(),
                    1 => format!(" ID w{}", rng.below(8)),
                    _ => format!(" ID {}", rng.below(5)),
                };
                let g = c.acquire(&key, &format!("{limit} {lease}{id}"));
                if let Some(id) = g.id {
                    ids.push((key, id));
                }
            }
        }
    }
    // Every key keeps one long lease, so none expires while the nodes are compared.
    for key in keys {
        let g = c.acquire(key, "100 3h ID keeper");
        assert!(g.allowed);
    }
}

/// Everything observable about the keys: the digest and each key's expiry and INSPECT fields
/// (without `now_us` and what is read at `now`).
fn observe(c: &mut Conn, keys: &[String]) -> (String, Vec<(i64, String)>) {
    let digest = c.cmd(&["DEBUG", "DIGEST"]).ok().text();
    let per_key = keys
        .iter()
        .map(|k| {
            let f = c.inspect(k).unwrap();
            let fixed = ["limit", "window_us", "stored", "longest_us", "last_id"]
                .map(|n| format!("{n}={}", f[n]))
                .join(" ");
            (c.pexpiretime(k), fixed)
        })
        .collect();
    (digest, per_key)
}

#[test]
fn replica_aof_and_rdb_agree_on_every_lease() {
    let mut master = NodeConfig::new()
        .set("appendonly", "yes")
        .set("appendfsync", "always")
        .start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let mut rng = Rng::from_env("replica_aof_and_rdb_agree_on_every_lease");
    let keys: Vec<String> = (0..12).map(|i| format!("lease:{i}")).collect();
    workload(&mut c, &mut rng, &keys, 1_500);
    master.wait_replicas(&mut c, 1);
    let want = observe(&mut c, &keys);
    let mut r = replica.conn();
    assert_eq!(observe(&mut r, &keys), want, "replica");
    assert_eq!(r.stat("replica_mismatches"), 0);
    assert_eq!(r.stat("hits_refused"), 0);
    // RDB: DEBUG RELOAD and a restart from the dump.
    c.cmd(&["DEBUG", "RELOAD"]).ok();
    assert_eq!(observe(&mut c, &keys), want, "DEBUG RELOAD");
    // AOF: the effects replayed at load, at the master's times.
    master.restart();
    let mut c = master.conn();
    assert_eq!(observe(&mut c, &keys), want, "AOF restart");
    // AOF rewrite (RL.SETSTATE of every key), more effects after it, restart.
    c.cmd(&["BGREWRITEAOF"]).ok();
    wait_until(Duration::from_secs(20), "BGREWRITEAOF", || {
        let info = c.info("persistence");
        info_field(&info, "aof_rewrite_in_progress").as_deref() == Some("0")
            && info_field(&info, "aof_rewrite_scheduled").as_deref() == Some("0")
    });
    workload(&mut c, &mut rng, &keys, 300);
    let want = observe(&mut c, &keys);
    master.restart();
    let mut c = master.conn();
    assert_eq!(observe(&mut c, &keys), want, "rewrite + AOF restart");
    // The replica re-synced with the restarted master and still agrees.
    let mut r = replica.conn();
    wait_until(Duration::from_secs(20), "the replica to catch up", || {
        c.cmd(&["WAIT", "1", "100"]).int() == 1 && observe(&mut r, &keys) == want
    });
    replica.assert_alive();
}

/// Ended leases go a few per write (the earliest, at most 64), not all in one: the same ones on
/// the master, its replica, after an RDB reload and after an AOF replay, and they count for
/// nothing meanwhile.
#[test]
fn ended_leases_go_a_few_per_write_alike_on_every_node() {
    let mut master = NodeConfig::new()
        .set("appendonly", "yes")
        .set("appendfsync", "always")
        .start();
    let replica = master.start_replica();
    let mut c = master.conn();
    assert!(c.acquire("lk", "10000 1h ID keeper").allowed);
    for i in 0..1_000 {
        let id = format!("worker-{i:05}");
        c.send(&["RL.ACQUIRE", "lk", "10000", "2s", "ID", id.as_str()])
            .unwrap();
    }
    for _ in 0..1_000 {
        assert!(Grant::from_reply(&c.read().unwrap()).allowed);
    }
    wait_until(Duration::from_secs(20), "the short leases to end", || {
        c.inspect_int("lk", "in_flight") == 1
    });
    // (Writes made while the 2 s leases were being taken dropped none: none had ended.)
    let mut stored = c.inspect_int("lk", "stored");
    assert_eq!(stored, 1_001);
    // A denial writes nothing: nothing is dropped.
    assert!(!c.acquire("lk", "1 1h ID other").allowed);
    assert_eq!(c.inspect_int("lk", "stored"), stored);
    for write in 0..6 {
        let g = c.acquire("lk", "10000 1h ID a");
        assert!(g.allowed && g.in_flight == 2);
        stored = stored + i64::from(write == 0) - 64;
        assert_eq!(c.inspect_int("lk", "stored"), stored);
    }
    let keys = ["lk".to_string()];
    master.wait_replicas(&mut c, 1);
    let want = observe(&mut c, &keys);
    assert_eq!(observe(&mut replica.conn(), &keys), want, "replica");
    assert_eq!(replica.conn().stat("replica_mismatches"), 0);
    c.cmd(&["DEBUG", "RELOAD"]).ok();
    assert_eq!(observe(&mut c, &keys), want, "DEBUG RELOAD");
    master.restart();
    let mut c = master.conn();
    assert_eq!(observe(&mut c, &keys), want, "AOF restart");
    // Enough writes drop them all.
    for _ in 0..20 {
        assert!(c.acquire("lk", "10000 1h ID a").allowed);
    }
    assert_eq!(c.inspect_int("lk", "stored"), 2);
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
}

/// However many leases a key holds, a write replicates in a few dozen bytes (the effect), and
/// the per-key bound holds.
#[test]
fn replication_stays_small_with_ten_thousand_leases() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let args: Vec<Vec<u8>> = ["RL.ACQUIRE", "big", "10000", "1h", "ID", ""]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    for i in 0..10_000 {
        let mut a = args.clone();
        a[5] = format!("worker-{i:05}").into_bytes();
        c.send(&a).unwrap();
    }
    for _ in 0..10_000 {
        assert!(Grant::from_reply(&c.read().unwrap()).allowed);
    }
    assert_eq!(c.inspect_int("big", "in_flight"), 10_000);
    let d = c.acquire("big", "10000 1h ID one-more");
    assert!(!d.allowed && d.in_flight == 10_000);
    let usage = c.cmd(&["MEMORY", "USAGE", "big"]).int();
    assert!(usage > 10_000 * 40, "MEMORY USAGE {usage}");
    master.wait_replicas(&mut c, 1);
    let offset = |c: &mut Conn| -> i64 {
        info_field(&c.info("replication"), "master_repl_offset")
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = offset(&mut c);
    for i in 0..100 {
        assert_eq!(c.release("big", &format!("worker-{i:05}")), 1);
        assert!(
            c.acquire("big", &format!("10000 1h ID worker-{i:05}"))
                .allowed
        );
    }
    let per_write = (offset(&mut c) - before) / 200;
    assert!(per_write < 150, "{per_write} bytes replicated per write");
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    assert_eq!(replica.conn().pexpiretime("big"), c.pexpiretime("big"));
}

/// A lease key written by a master whose clock was a day ahead costs at most one lease of
/// waiting, and the denial stores the clamp (so the TTL follows) on the replica too.
#[test]
fn a_state_from_tomorrow_costs_at_most_one_lease() {
    const DAY_US: u64 = 86_400_000_000;
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let now = c.time_us() as u64;
    let req = Acquire::new(2, 60_000_000, None).unwrap();
    let state = LeasesState::from_parts(
        vec![
            Lease::new(now + DAY_US, LeaseId::parse(b"a").unwrap()),
            Lease::new(now + DAY_US + 5, LeaseId::parse(b"b").unwrap()),
        ],
        60_000_000,
        0,
    )
    .unwrap();
    let payload = encode(&Limiter {
        rule: req.rule,
        state: State::Leases(state),
    });
    c.cmd(&[b"RL.SETSTATE".as_slice(), b"t", &payload]).ok();
    assert!(c.pttl("t") > 86_000_000);
    let before = c.stat("clamped");
    let d = c.acquire("t", "2 1m");
    assert!(!d.allowed);
    common::assert_between(d.retry_ms, 1, 60_000, "retry_after_ms");
    common::assert_between(d.reset_ms, 1, 60_000, "reset_after_ms");
    assert_eq!(c.stat("clamped"), before + 1);
    common::assert_between(c.pttl("t"), d.reset_ms - 1_000, d.reset_ms + 1, "PTTL");
    master.wait_replicas(&mut c, 1);
    assert_eq!(replica.digest(), master.digest());
    assert_eq!(replica.conn().pexpiretime("t"), c.pexpiretime("t"));
}

/// PERSIST cannot make a lease key immortal: the hook (Redis 7.0) or the next RL.ACQUIRE
/// (Valkey 8.1+, where the module does not subscribe) gives the TTL back.
#[test]
fn a_lease_key_never_lives_without_a_ttl() {
    let s = Server::start();
    let mut c = s.conn();
    c.acquire("p", "3 1h ID a");
    let at = c.pexpiretime("p");
    assert_eq!(c.cmd(&["PERSIST", "p"]).int(), 1);
    if c.pexpiretime("p") == -1 {
        // Valkey 8.1+: a denial or a release of nothing repairs it.
        c.release("p", "nobody");
    }
    assert_eq!(c.pexpiretime("p"), at);
}

/// `COPY` and `RENAME` keep leases and TTL; `DUMP` / `RESTORE` round-trip them.
#[test]
fn copy_and_restore_keep_every_lease() {
    let s = Server::start();
    let mut c = s.conn();
    c.acquire("src", "5 1h ID a");
    c.acquire("src", "5 30m");
    c.cmd(&["COPY", "src", "dst"]).int();
    assert_eq!(c.digest_value("dst"), c.digest_value("src"));
    assert_eq!(c.pexpiretime("dst"), c.pexpiretime("src"));
    assert_eq!(c.release("dst", "a"), 1);
    assert_eq!(
        c.inspect_int("src", "in_flight"),
        2,
        "the copy is independent"
    );
    let dump = match c.cmd(&["DUMP", "src"]) {
        Reply::Bulk(b) => b,
        other => panic!("{other:?}"),
    };
    let at = c.pexpiretime("src").to_string();
    c.cmd(&[
        b"RESTORE".as_slice(),
        b"back",
        at.as_bytes(),
        &dump,
        b"ABSTTL",
    ])
    .ok();
    assert_eq!(c.digest_value("back"), c.digest_value("src"));
    assert_eq!(c.pexpiretime("back"), c.pexpiretime("src"));
}

/// The previous release (scripts/prev-module) does not know leases and refuses them cleanly:
/// a dump holding a lease key stops its load (logged, nothing misread), a DUMP payload is
/// refused by RESTORE, and a lease effect in the replication stream is refused while the rate
/// limits around it still replicate.
#[test]
fn the_previous_release_refuses_leases_cleanly() {
    let prev = common::prev_module_path();
    // A dump with a lease key.
    let s = Server::start();
    let mut c = s.conn();
    c.allow("r", "10 1h");
    c.acquire("l", "3 1h ID a");
    let dump = match c.cmd(&["DUMP", "l"]) {
        Reply::Bulk(b) => b,
        other => panic!("{other:?}"),
    };
    c.cmd(&["SAVE"]).ok();
    let mut old = NodeConfig::new().module(prev.clone()).start();
    let mut o = old.conn();
    let e = o.cmd(&[b"RESTORE".as_slice(), b"l", b"0", &dump]);
    assert!(e.expect_err().contains("Bad data format"), "{e:?}");
    assert!(!o.exists("l"));
    fs::copy(s.dir().join("dump.rdb"), old.dir().join("dump.rdb")).unwrap();
    // Restarting on that dump: the server refuses to load it and exits (the harness panics).
    let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| old.restart()));
    assert!(
        started.is_err(),
        "the previous release loaded a dump with leases"
    );
    let log = old.log();
    assert!(log.contains("invalid ratelimit value"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    // A previous-release replica: the lease effect is refused, the rest replicates.
    let master = Server::start();
    let replica = master.start_replica_with(NodeConfig::new().module(prev));
    let mut m = master.conn();
    m.allow("before", "10 1h ALGO fixed-window");
    m.acquire("lease", "3 1h ID a");
    m.allow("after", "10 1h ALGO fixed-window");
    master.wait_replicas(&mut m, 1);
    let mut r = replica.conn();
    assert!(r.exists("before") && r.exists("after") && !r.exists("lease"));
    assert!(
        replica.log().contains("invalid ratelimit hit payload"),
        "{}",
        replica.log()
    );
    replica.assert_alive();
}

/// One line of tests/fixtures/leases.txt.
struct FixtureKey {
    key: String,
    limit: i64,
    longest_us: i64,
    last_id: i64,
    pexpiretime_ms: i64,
    ids: Vec<String>,
}

fn fixture_keys() -> Vec<FixtureKey> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/leases.txt");
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<i64>().unwrap();
            FixtureKey {
                key: f[0].to_string(),
                limit: n(1),
                longest_us: n(2),
                last_id: n(3),
                pexpiretime_ms: n(4),
                ids: f[5].split(',').map(str::to_string).collect(),
            }
        })
        .collect()
}

/// The lease keys of tests/fixtures/leases.rdb (saved by the release that introduced leases)
/// load unchanged and keep limiting: same expiry, same leases under the same ids.
#[test]
fn the_lease_fixture_loads_unchanged() {
    let mut s = Server::start();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/leases.rdb"),
        s.dir().join("dump.rdb"),
    )
    .unwrap();
    s.restart();
    let mut c = s.conn();
    let now_ms = c.time_us() / 1000;
    let mut present = 0;
    for k in fixture_keys() {
        if k.pexpiretime_ms <= now_ms {
            assert!(!c.exists(&k.key), "{} outlived its leases", k.key);
            continue;
        }
        present += 1;
        assert_eq!(c.pexpiretime(&k.key), k.pexpiretime_ms, "{}", k.key);
        let f = c.inspect(&k.key).unwrap();
        assert_eq!(f["algorithm"], "leases");
        assert_eq!(f["limit"], k.limit.to_string());
        assert_eq!(f["longest_us"], k.longest_us.to_string());
        assert_eq!(f["last_id"], k.last_id.to_string());
        assert_eq!(f["stored"], k.ids.len().to_string());
        assert_eq!(f["in_flight"], k.ids.len().to_string());
        // Every id holds its lease: renewing takes no new slot, releasing frees it.
        let first = &k.ids[0];
        let g = c.acquire(&k.key, &format!("{} 1m ID {first}", k.limit));
        assert_eq!(
            (g.allowed, g.in_flight),
            (true, k.ids.len() as i64),
            "{}",
            k.key
        );
        for id in &k.ids {
            assert_eq!(c.release(&k.key, id), 1, "{} {id}", k.key);
        }
        assert!(!c.exists(&k.key));
    }
    assert!(present >= 2, "the keys of 2090 are always there");
}

/// Writes tests/fixtures/leases.rdb and .txt (run by hand once, with `--ignored`; the files are
/// committed): keys whose leases end in 2090 (written with RL.SETSTATE, as a master would
/// replicate them) and one made by RL.ACQUIRE with 365-day leases.
#[test]
#[ignore]
fn write_the_lease_fixture() {
    let s = Server::start();
    let mut c = s.conn();
    const Y2090_US: u64 = 3_786_825_600_000_000;
    let lease = |end_us: u64, id: &[u8]| Lease::new(end_us, LeaseId::parse(id).unwrap());
    let crafted = [
        (
            "fx:lease:text",
            5u64,
            3_600_000_000u64,
            0u64,
            vec![
                lease(Y2090_US, b"job:42"),
                lease(Y2090_US, b"worker-1"),
                lease(Y2090_US + 7, b"w\xc3\xbc"),
            ],
        ),
        (
            "fx:lease:num",
            3,
            60_000_000,
            1_796_000_000_000_002,
            vec![
                lease(Y2090_US + 1, b"0"),
                lease(Y2090_US + 2, b"1796000000000001"),
                lease(Y2090_US + 3, b"1796000000000002"),
            ],
        ),
    ];
    for (key, limit, longest, last_id, leases) in crafted {
        let rule = Acquire::new(limit, longest, None).unwrap().rule;
        let state = LeasesState::from_parts(leases, longest, last_id).unwrap();
        let payload = encode(&Limiter {
            rule,
            state: State::Leases(state),
        });
        c.cmd(&[b"RL.SETSTATE".as_slice(), key.as_bytes(), &payload])
            .ok();
    }
    c.acquire("fx:lease:acquired", "4 365d ID a");
    c.acquire("fx:lease:acquired", "4 365d");
    c.cmd(&["SAVE"]).ok();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    fs::copy(s.dir().join("dump.rdb"), dir.join("leases.rdb")).unwrap();
    let mut txt = String::from(
        "# Keys in leases.rdb, saved by the release that introduced leases:\n\
         # key limit longest_us last_id pexpiretime_ms ids\n",
    );
    for key in ["fx:lease:text", "fx:lease:num", "fx:lease:acquired"] {
        let f = c.inspect(key).unwrap();
        let ids = match key {
            "fx:lease:text" => "job:42,worker-1,wü".to_string(),
            "fx:lease:num" => "0,1796000000000001,1796000000000002".to_string(),
            _ => format!("a,{}", f["last_id"]),
        };
        txt += &format!(
            "{key} {} {} {} {} {ids}\n",
            f["limit"],
            f["longest_us"],
            f["last_id"],
            c.pexpiretime(key)
        );
    }
    fs::write(dir.join("leases.txt"), txt).unwrap();
}

/// COMMAND DOCS states the bounded worst case; COMMAND INFO the arity, flags and key.
#[test]
fn command_docs_state_the_bound() {
    let s = Server::start();
    let mut c = s.conn();
    for (name, arity, flags) in [
        ("rl.acquire", -4, &["write", "denyoom"][..]),
        ("rl.release", 3, &["write"][..]),
    ] {
        let docs = c.cmd(&["COMMAND", "DOCS", name]).flat();
        let complexity = docs
            .iter()
            .skip_while(|f| *f != "complexity")
            .nth(1)
            .cloned()
            .unwrap_or_default();
        assert!(
            complexity.starts_with("O(N) worst case") && complexity.contains("at most 10000"),
            "{name}: {complexity}"
        );
        let info = c.cmd(&["COMMAND", "INFO", name]).ok();
        let info = info.array()[0].array();
        assert_eq!(info[1].int(), arity, "{name}");
        let got = info[2].flat();
        for f in flags {
            assert!(got.contains(&f.to_string()), "{name}: {got:?}");
        }
        assert!(
            !got.contains(&"fast".to_string()),
            "{name}: O(N) is not fast"
        );
    }
    let keys = c.cmd(&[
        "COMMAND",
        "GETKEYS",
        "RL.ACQUIRE",
        "k",
        "1",
        "1s",
        "ID",
        "x",
    ]);
    assert_eq!(keys.flat(), ["k"]);
    let keys = c.cmd(&["COMMAND", "GETKEYS", "RL.RELEASE", "k", "x"]);
    assert_eq!(keys.flat(), ["k"]);
}
