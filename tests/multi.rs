//! RL.ALLOWALL / RL.PEEKALL (several limits, all or nothing), RL.CHARGE / RL.REFUND (settle
//! after the work, debts) and BLOCK (penalties), on real servers: replies, errors, atomicity
//! under 200 concurrent clients, replication (also inside MULTI/EXEC and EVAL), AOF and RDB,
//! a debt versus a clock step on master and replica, and the command metadata.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{Conn, NodeConfig, Reply, Rl, Rng, Server, ALGOS};
use redis_ratelimit::algo::{Algorithm, GcraState, Limiter, Rule, State};
use redis_ratelimit::datatype::codec::encode;

/// One RL.ALLOWALL / RL.PEEKALL reply.
#[derive(Debug)]
struct All {
    allowed: bool,
    binding: i64,
    groups: Vec<Rl>,
}

fn parse_all(r: &Reply) -> All {
    let a = match r {
        Reply::Array(a) => a,
        other => panic!("expected an array, got {other:?}"),
    };
    All {
        allowed: a[0].int() == 1,
        binding: a[1].int(),
        groups: a[2..].iter().map(Rl::from_reply).collect(),
    }
}

fn all(c: &mut Conn, line: &str) -> All {
    let r = c.cmd_str(line);
    if let Some(e) = r.error() {
        panic!("{line}: {e}");
    }
    parse_all(&r)
}

/// Every string and integer in a reply, flattened, as text.
fn text_of(r: &Reply) -> String {
    match r {
        Reply::Array(a) => a.iter().map(text_of).collect::<Vec<_>>().join(" "),
        Reply::Int(i) => i.to_string(),
        Reply::Nil => "nil".into(),
        other => other.text(),
    }
}

fn err(c: &mut Conn, line: &str) -> String {
    c.cmd_str(line).expect_err().to_string()
}

#[test]
fn allowall_is_all_or_nothing_and_says_which_limit_decided() {
    let s = Server::start();
    let mut c = s.conn();
    // The AI-gateway shape: requests and tokens per minute, COST per group.
    let line = "RL.ALLOWALL 2 rpm:k42 tpm:k42 60 1m 100000 1m COST 1500";
    let a = all(&mut c, line);
    assert!(a.allowed);
    assert_eq!(a.groups.len(), 2);
    assert_eq!(a.groups[0].acr(), (true, 60, 59));
    assert_eq!(a.groups[1].acr(), (true, 100_000, 98_500));
    // Admitted: the group with the least remaining binds.
    assert_eq!(a.binding, 1);
    // Too many tokens: denied by group 2; group 1 is not charged.
    let before = (c.digest_value("rpm:k42"), c.pexpiretime("rpm:k42"));
    let a = all(
        &mut c,
        "RL.ALLOWALL 2 rpm:k42 tpm:k42 60 1m 100000 1m COST 99000",
    );
    assert!(!a.allowed);
    assert_eq!(a.binding, 2);
    assert_eq!(a.groups[0].acr(), (true, 60, 59)); // as it stands: nothing charged
    assert_eq!(a.groups[0].retry_ms, 0);
    assert!(!a.groups[1].allowed && a.groups[1].retry_ms > 0);
    assert_eq!(a.groups[1].remaining, 98_500);
    assert_eq!(
        (c.digest_value("rpm:k42"), c.pexpiretime("rpm:k42")),
        before
    );
    // RL.PEEKALL says what RL.ALLOWALL would, and writes nothing.
    let digest = c.cmd_str("DEBUG DIGEST").text();
    let p = all(
        &mut c,
        "RL.PEEKALL 2 rpm:k42 tpm:k42 60 1m 100000 1m COST 10",
    );
    assert!(p.allowed && p.groups[1].remaining == 98_490 && p.groups[0].remaining == 58);
    assert_eq!(c.cmd_str("DEBUG DIGEST").text(), digest);
    let p = all(&mut c, "RL.PEEKALL 1 fresh 5 1s");
    assert_eq!(
        (p.allowed, p.binding, p.groups[0].acr()),
        (true, 1, (true, 5, 4))
    );
    assert!(!c.exists("fresh"));

    // Denied by several groups: the largest retry_after binds; -1 (never) is the largest.
    for _ in 0..3 {
        c.allow("d:a", "3 1h ALGO fixed-window");
    }
    c.allow("d:b", "1 1s ALGO fixed-window");
    let a = all(
        &mut c,
        "RL.ALLOWALL 3 d:b d:a d:c 1 1s ALGO fixed-window 3 1h ALGO fixed-window 5 1m",
    );
    assert!(!a.allowed);
    assert_eq!(a.binding, 2, "{a:?}");
    assert!(a.groups[1].retry_ms > a.groups[0].retry_ms);
    assert_eq!(a.groups[2].acr(), (true, 5, 5));
    assert!(!c.exists("d:c"), "a denied call creates no key");
    let a = all(
        &mut c,
        "RL.ALLOWALL 2 d:a d:b 3 1h ALGO fixed-window 1 1s ALGO fixed-window COST 2",
    );
    assert_eq!((a.allowed, a.binding, a.groups[1].retry_ms), (false, 2, -1));

    // Every algorithm in one call, several times: each key counts exactly the admitted calls.
    let line = "RL.ALLOWALL 4 m:s m:f m:g m:m 3 1h 3 1h ALGO fixed-window 3 1h ALGO gcra \
                3 1h ALGO moving-window";
    let admitted = (0..5).filter(|_| all(&mut c, line).allowed).count();
    assert_eq!(admitted, 3);
    for (k, algo) in ["m:s", "m:f", "m:g", "m:m"].iter().zip(ALGOS) {
        let p = c.peek(k, &format!("3 1h ALGO {algo} COST 0"));
        assert_eq!(p.remaining, 0, "{k}");
    }
}

#[test]
fn multi_key_errors_leave_every_key_unchanged() {
    let s = Server::start();
    let mut c = s.conn();
    c.allow("e:a", "5 1h");
    c.cmd_str("SET e:str x").ok();
    let digest = c.cmd_str("DEBUG DIGEST").text();
    let cases = [
        (
            "RL.ALLOWALL 2 e:a e:a 5 1h 5 1h",
            "ERR key 'e:a' is named twice",
        ),
        (
            "RL.ALLOWALL 0 e:a 5 1h",
            "ERR numkeys must be an integer from 1 to 16 (ratelimit.max-keys)",
        ),
        (
            "RL.ALLOWALL 17 e:a 5 1h",
            "ERR numkeys must be an integer from 1 to 16 (ratelimit.max-keys)",
        ),
        (
            "RL.ALLOWALL x e:a 5 1h",
            "ERR numkeys must be an integer from 1 to 16 (ratelimit.max-keys)",
        ),
        (
            "RL.ALLOWALL 2 e:a e:b 5 1h",
            "ERR numkeys is 2: give 2 keys, then one rule group",
        ),
        (
            "RL.ALLOWALL 2 e:a e:b 5 1h 6 1h 7 1h",
            "ERR 2 keys need 2 rule groups (limit window [options] each), got 3",
        ),
        (
            "RL.ALLOWALL 2 e:a e:b 5 1h 0 1h",
            "ERR group 2: limit must be an integer",
        ),
        (
            "RL.ALLOWALL 1 e:a 5 1h NOPE 1",
            "ERR group 1: unknown option 'NOPE': expected COST, ALGO, BURST or BLOCK",
        ),
        ("RL.ALLOWALL 2 e:b e:str 5 1h 5 1h", "WRONGTYPE"),
        (
            "RL.ALLOWALL 2 e:b e:a 5 1h 5 1h ALGO gcra",
            "ERR key holds a sliding-window limiter, not gcra",
        ),
        (
            "RL.PEEKALL 2 e:a e:a 5 1h 5 1h",
            "ERR key 'e:a' is named twice",
        ),
        ("RL.CHARGE e:a 5 1h", "ERR wrong number of arguments"),
        (
            "RL.CHARGE e:a 5 1h -1",
            "ERR the amount must be an integer from 0 to",
        ),
        (
            "RL.REFUND e:a 5 1h 1 COST 1",
            "ERR unknown option 'COST': expected ALGO or BURST",
        ),
        (
            "RL.CHARGE e:a 5 1h 1 ALGO gcra",
            "ERR key holds a sliding-window limiter, not gcra",
        ),
        (
            "RL.CHARGE e:a 5 1h ALGO gcra 1",
            "ERR the amount must be an integer from 0 to",
        ),
        (
            "RL.ALLOW e:a 5 1h BLOCK 0",
            "ERR BLOCK must be a duration from 1 microsecond to 365d",
        ),
        (
            "RL.ALLOW e:a 5 1h BLOCK 1s BLOCK 1s",
            "ERR BLOCK given more than once",
        ),
    ];
    for (line, want) in cases {
        let e = err(&mut c, line);
        assert!(e.starts_with(want), "{line}: {e}");
    }
    assert_eq!(c.cmd_str("DEBUG DIGEST").text(), digest);
    assert!(!c.exists("e:b"));
}

#[test]
fn charge_past_the_capacity_is_a_debt_and_refund_gives_back() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let k = format!("c:{algo}");
        let rule = format!("10 1m ALGO {algo}");
        let settle = |n: u64| format!("10 1m {n} ALGO {algo}");
        // Charge 15 on a fresh key: 5 over the limit (within every kind's debt bound).
        let r = c.rl("CHARGE", &k, &settle(15));
        assert_eq!(r.acr(), (false, 10, 0), "{k}");
        assert!(r.retry_ms > 0 && r.reset_ms >= r.retry_ms, "{k}: {r:?}");
        common::assert_between(
            c.pttl(&k),
            r.reset_ms - 1_000,
            r.reset_ms + 1,
            "PTTL after CHARGE",
        );
        // Every request waits the debt out, and says exactly how long.
        let d = c.allow(&k, &rule);
        assert!(!d.allowed);
        common::assert_between(
            d.retry_ms,
            r.retry_ms - 1_000,
            r.retry_ms,
            "retry during debt",
        );
        // A refund of 10 leaves 5 charged: requests pass again.
        let r = c.rl("REFUND", &k, &settle(10));
        assert_eq!(r.acr(), (true, 10, 5), "{k}");
        assert_eq!(r.retry_ms, 0);
        common::assert_between(
            c.pttl(&k),
            r.reset_ms - 1_000,
            r.reset_ms + 1,
            "PTTL after REFUND",
        );
        // Never below empty: refunding more deletes the key (it equals an absent one).
        let r = c.rl("REFUND", &k, &settle(1000));
        assert_eq!(
            (r.acr(), r.retry_ms, r.reset_ms),
            ((true, 10, 10), 0, 0),
            "{k}"
        );
        assert!(!c.exists(&k), "{k}");
        // A refund on an absent key is a no-op that writes nothing.
        let r = c.rl("REFUND", &k, &settle(3));
        assert_eq!(r.acr(), (true, 10, 10));
        assert!(!c.exists(&k));
        // CHARGE 0 only looks.
        c.rl("CHARGE", &k, &settle(0));
        assert!(!c.exists(&k));
    }
    // gcra: the debt is bounded by one window: at most τ + W to wait.
    let r = c.rl("CHARGE", "g:big", "10 1m 1000000 ALGO gcra");
    common::assert_between(r.reset_ms, 119_000, 120_000, "gcra debt bound");
    // moving window: the refund takes from the newest runs; an older run stays.
    c.allow("mw", "10 1h ALGO moving-window COST 4");
    std::thread::sleep(Duration::from_millis(5));
    c.allow("mw", "10 1h ALGO moving-window COST 3");
    c.rl("REFUND", "mw", "10 1h 5 ALGO moving-window");
    let i = c.inspect("mw").unwrap();
    assert_eq!((i["count"].as_str(), i["runs"].as_str()), ("2", "1"));
}

#[test]
fn block_denies_for_its_duration_and_tells_the_truth() {
    let s = Server::start();
    let mut c = s.conn();
    for algo in ALGOS {
        let k = format!("b:{algo}");
        let rule = format!("1 1s ALGO {algo}");
        assert!(c.allow(&k, &format!("{rule} BLOCK 1m")).allowed);
        // PEEK predicts the block the denial would start.
        let p = c.peek(&k, &format!("{rule} BLOCK 1m"));
        assert_eq!(
            (p.allowed, p.remaining, p.retry_ms),
            (false, 0, 60_000),
            "{k}"
        );
        let d = c.allow(&k, &format!("{rule} BLOCK 1m"));
        assert_eq!((d.allowed, d.remaining), (false, 0));
        assert_eq!((d.retry_ms, d.reset_ms), (60_000, 60_000), "{k}");
        common::assert_between(c.pttl(&k), 55_000, 60_001, "PTTL of a blocked key");
        let at = c.pexpiretime(&k);
        let value = c.digest_value(&k);
        // During the block every request is denied (with or without BLOCK) and nothing is
        // written: the block is not extended.
        std::thread::sleep(Duration::from_millis(1_100));
        for args in [rule.clone(), format!("{rule} BLOCK 1m")] {
            let d = c.allow(&k, &args);
            assert!(!d.allowed, "{k}");
            common::assert_between(d.retry_ms, 50_000, 59_000, "retry during the block");
        }
        assert_eq!((c.pexpiretime(&k), c.digest_value(&k)), (at, value));
        let p = c.peek(&k, &rule);
        assert!(!p.allowed && p.remaining == 0);
        let i = c.inspect(&k).unwrap();
        let until: i64 = i["blocked_until_us"].parse().unwrap();
        common::assert_between(until / 1000, at - 1, at, "blocked_until_us");
    }
    // A short block ends: the key answers as its algorithm does.
    c.allow("short", "1 50ms ALGO fixed-window");
    assert!(
        !c.allow("short", "1 50ms ALGO fixed-window BLOCK 200ms")
            .allowed
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!c.allow("short", "1 50ms ALGO fixed-window").allowed);
    std::thread::sleep(Duration::from_millis(150));
    assert!(c.allow("short", "1 50ms ALGO fixed-window").allowed);
    assert_eq!(c.inspect("short").unwrap()["blocked_until_us"], "0");
    // A group's BLOCK in RL.ALLOWALL: only the denying group's key is blocked.
    c.allow("ga", "1 1s ALGO fixed-window");
    let a = all(
        &mut c,
        "RL.ALLOWALL 2 gb ga 5 1h BLOCK 1m 1 1s ALGO fixed-window BLOCK 10m",
    );
    assert!(!a.allowed && a.binding == 2);
    assert_eq!(a.groups[1].retry_ms, 600_000);
    assert!(!c.exists("gb"));
    assert_ne!(c.inspect("ga").unwrap()["blocked_until_us"], "0");
}

/// 200 clients at once, each one RL.ALLOWALL over two shared keys: each limit admits exactly
/// its limit, and both keys count exactly the admitted calls (the same requests).
#[test]
fn two_hundred_clients_on_two_shared_limits() {
    let s = Server::start();
    for (limits, admitted) in [((100, 100), 100usize), ((60, 150), 60)] {
        let line = format!(
            "RL.ALLOWALL 2 {{u}}:min {{u}}:day {} 1h ALGO fixed-window {} 1d ALGO moving-window",
            limits.0, limits.1
        );
        let barrier = Arc::new(Barrier::new(200));
        let handles: Vec<_> = (0..200)
            .map(|_| {
                let mut c = s.conn();
                let barrier = Arc::clone(&barrier);
                let line = line.clone();
                thread::spawn(move || {
                    barrier.wait();
                    all(&mut c, &line).allowed
                })
            })
            .collect();
        let got = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&a| a)
            .count();
        assert_eq!(got, admitted, "{line}");
        let mut c = s.conn();
        let i = c.inspect("{u}:min").unwrap();
        assert_eq!(i["count"], admitted.to_string());
        let i = c.inspect("{u}:day").unwrap();
        assert_eq!(i["count"], admitted.to_string());
        c.cmd_str("FLUSHALL").ok();
    }
}

/// A random mix of the new commands — also inside MULTI/EXEC and EVAL — on a master with a
/// replica and an AOF: master, replica, AOF replay and RDB reload end equal.
#[test]
fn replicas_aof_and_rdb_keep_the_new_commands_exact() {
    let master = Server::start_with(&[("appendonly", "yes"), ("appendfsync", "always")]);
    let mut m = master.conn();
    m.cmd_str("DEBUG SET-ACTIVE-EXPIRE 0").ok();
    let replica = master.start_replica();
    let mut rng = Rng::from_env("replicas_aof_and_rdb_keep_the_new_commands_exact");
    let keys: Vec<String> = (0..12).map(|i| format!("{{r}}:{i}")).collect();
    let rule = |i: usize| format!("5 1h ALGO {}", ALGOS[i % 4]);
    let settle = |i: usize, n: u64| format!("5 1h {n} ALGO {}", ALGOS[i % 4]);
    let pick = |rng: &mut Rng| rng.below(12) as usize;
    let command = |rng: &mut Rng| -> String {
        let i = pick(rng);
        match rng.below(6) {
            0 => format!("RL.CHARGE {} {}", keys[i], settle(i, rng.below(9))),
            1 => format!("RL.REFUND {} {}", keys[i], settle(i, rng.below(6))),
            2 => format!(
                "RL.ALLOW {} {} BLOCK {}s",
                keys[i],
                rule(i),
                1 + rng.below(100)
            ),
            _ => {
                let j = (i + 1 + rng.below(11) as usize) % 12;
                format!(
                    "RL.ALLOWALL 2 {} {} {} COST {} {} BLOCK 30s",
                    keys[i],
                    keys[j],
                    rule(i),
                    rng.below(3),
                    rule(j)
                )
            }
        }
    };
    for step in 0..400 {
        match step % 40 {
            13 => {
                m.cmd_str("MULTI").ok();
                for _ in 0..5 {
                    let line = command(&mut rng);
                    assert_eq!(m.cmd_str(&line), Reply::Status("QUEUED".into()));
                }
                m.cmd_str("EXEC").ok();
            }
            27 => {
                let script = "for i = 1, #ARGV, 1 do redis.call('RL.CHARGE', KEYS[1], '5', '1h', \
                              ARGV[i], 'ALGO', 'gcra') end \
                              return redis.call('RL.ALLOWALL', 2, KEYS[1], KEYS[2], '5', '1h', \
                              'ALGO', 'gcra', '5', '1h', 'ALGO', 'fixed-window', 'BLOCK', '1m')";
                let r = m.cmd(&["EVAL", script, "2", "{r}:s1", "{r}:s2", "3", "4"]);
                assert!(r.error().is_none(), "{r:?}");
            }
            _ => {
                let line = command(&mut rng);
                let r = m.cmd_str(&line);
                assert!(r.error().is_none(), "{line}: {r:?}");
            }
        }
    }
    master.wait_replicas(&mut m, 1);
    let mut r = replica.conn();
    assert_eq!(master.digest(), replica.digest(), "replica differs");
    let mut all_keys = keys.clone();
    all_keys.extend(["{r}:s1".to_string(), "{r}:s2".to_string()]);
    let expiries: Vec<i64> = all_keys.iter().map(|k| m.pexpiretime(k)).collect();
    for (k, at) in all_keys.iter().zip(&expiries) {
        assert_eq!(r.pexpiretime(k), *at, "{k}: replica expiry");
    }
    let stats = r.info("commandstats");
    assert!(!stats.contains("cmdstat_rl.allowall") && !stats.contains("cmdstat_rl.charge"));
    let digest = master.digest();
    // RDB reload, then AOF replay (the server replays its AOF on restart).
    m.cmd_str("DEBUG RELOAD").ok();
    assert_eq!(master.digest(), digest, "after DEBUG RELOAD");
    let mut master = master;
    drop(replica);
    master.restart();
    assert_eq!(master.digest(), digest, "after AOF replay");
    let mut m = master.conn();
    for (k, at) in all_keys.iter().zip(&expiries) {
        assert_eq!(m.pexpiretime(k), *at, "{k}: expiry after AOF replay");
    }
}

/// A gcra debt looks like a state ahead of the clock, but it is not a clock step: neither the
/// master nor a replica clamps it away, while a real step back is still clamped on both.
#[test]
fn a_debt_is_not_a_clock_step_on_master_and_replica() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut m = master.conn();
    let mut r = replica.conn();
    // 10 per minute (T = 6 s, τ = 60 s); 15 cells charged = 5 cells (30 s) of debt.
    let rule = "10 1m ALGO gcra";
    let c = m.rl("CHARGE", "debt", "10 1m 15 ALGO gcra");
    common::assert_between(c.retry_ms, 35_000, 36_000, "retry after the debt");
    master.wait_replicas(&mut m, 1);
    for conn in [&mut m, &mut r] {
        let p = conn.peek("debt", rule);
        common::assert_between(p.retry_ms, 29_000, 36_000, "debt kept");
        common::assert_between(p.reset_ms, 84_000, 90_000, "debt kept");
    }
    // The same tat a day ahead (a master whose clock stepped back) is clamped everywhere, to
    // at most τ + W for a key that was in debt.
    let now = m.time_us() as u64;
    let g = Rule::new(Algorithm::Gcra, 10, 60_000_000, None).unwrap();
    let ahead = Limiter {
        rule: g,
        state: State::Gcra(GcraState {
            tat_scaled: u128::from(now + 86_400_000_000) * 10,
            debt: true,
        }),
    };
    m.cmd(&[b"RL.SETSTATE".as_slice(), b"stepped", &encode(&ahead)])
        .ok();
    master.wait_replicas(&mut m, 1);
    for conn in [&mut m, &mut r] {
        let p = conn.peek("stepped", rule);
        common::assert_between(p.reset_ms, 114_000, 120_000, "clamped to τ + W");
    }
    let d = m.allow("stepped", rule);
    assert!(!d.allowed);
    master.wait_replicas(&mut m, 1);
    assert_eq!(master.digest(), replica.digest());
    assert_eq!(m.pexpiretime("stepped"), r.pexpiretime("stepped"));
    common::assert_between(m.pttl("stepped"), 113_000, 120_001, "the clamp was stored");
}

/// Keys with a block or a debt need this release to be read: the previous release refuses
/// their payloads (never misreads them), while plain keys still reach it byte for byte.
#[test]
fn the_previous_release_refuses_blocks_and_debts() {
    let old = NodeConfig::new().module(common::prev_module_path()).start();
    let new = Server::start();
    let mut o = old.conn();
    let mut n = new.conn();
    n.allow("plain", "5 1h ALGO gcra");
    n.allow("blocked", "1 1h ALGO fixed-window");
    n.allow("blocked", "1 1h ALGO fixed-window BLOCK 1m");
    n.rl("CHARGE", "debt", "5 1h 9 ALGO gcra");
    for (k, readable) in [("plain", true), ("blocked", false), ("debt", false)] {
        let dump = n.cmd(&["DUMP", k]).ok();
        let Reply::Bulk(bytes) = dump else {
            panic!("DUMP {k}: {dump:?}")
        };
        let r = o.cmd(&[b"RESTORE".as_slice(), k.as_bytes(), b"0", &bytes]);
        assert_eq!(r.error().is_none(), readable, "{k}: {r:?}");
    }
    old.assert_alive();
}

#[test]
fn command_docs_and_key_specs_describe_the_new_commands() {
    let s = Server::start();
    let mut c = s.conn();
    for (name, flag, ro) in [
        ("rl.allowall", "write", false),
        ("rl.peekall", "readonly", true),
        ("rl.charge", "write", false),
        ("rl.refund", "write", false),
    ] {
        let docs = c.cmd(&["COMMAND", "DOCS", name]).ok().flat();
        assert!(docs.contains(&"complexity".to_string()), "{name}: {docs:?}");
        let info = c.cmd(&["COMMAND", "INFO", name]).ok();
        let info = info.array()[0].array();
        assert_eq!(info[1].int(), -5, "{name} arity");
        assert!(info[2].flat().contains(&flag.to_string()), "{name}");
        let specs = text_of(&info[8]);
        assert!(
            specs.contains(if ro { "RO" } else { "RW" }),
            "{name}: {specs}"
        );
        if name.ends_with("all") {
            assert!(
                info[2].flat().contains(&"movablekeys".to_string()),
                "{name}"
            );
            assert!(specs.contains("keynum"), "{name}: {specs}");
        }
    }
    let keys = c
        .cmd_str("COMMAND GETKEYS RL.ALLOWALL 3 a b c 1 1s 2 2s COST 3 3 3s BLOCK 1m")
        .ok()
        .flat();
    assert_eq!(keys, ["a", "b", "c"]);
    let keys = c.cmd_str("COMMAND GETKEYS RL.PEEKALL 1 a 1 1s").ok().flat();
    assert_eq!(keys, ["a"]);
    let keys = c.cmd_str("COMMAND GETKEYS RL.REFUND k 1 1s 1").ok().flat();
    assert_eq!(keys, ["k"]);
}

#[test]
fn peekall_runs_on_a_replica_and_allowall_does_not() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut m = master.conn();
    all(&mut m, "RL.ALLOWALL 2 x y 2 1h 3 1h");
    master.wait_replicas(&mut m, 1);
    let mut r = replica.conn();
    let p = all(&mut r, "RL.PEEKALL 2 x y 2 1h 3 1h");
    assert_eq!((p.groups[0].remaining, p.groups[1].remaining), (0, 1));
    for line in [
        "RL.ALLOWALL 2 x y 2 1h 3 1h",
        "RL.CHARGE x 2 1h 1",
        "RL.REFUND x 2 1h 1",
    ] {
        assert!(err(&mut r, line).starts_with("READONLY"), "{line}");
    }
}

/// A denial that starts a block is a write (it aborts a WATCH); denials during the block are
/// not; charges and refunds are.
#[test]
fn what_is_signalled_as_a_write() {
    let s = Server::start();
    let mut c = s.conn();
    let mut other = s.conn();
    let mut aborted_by = |line: &str| -> bool {
        c.cmd_str("WATCH w").ok();
        c.cmd_str("MULTI").ok();
        c.cmd_str("PING");
        let r = other.cmd_str(line);
        assert!(r.error().is_none(), "{line}: {r:?}");
        c.cmd_str("EXEC") == Reply::Nil
    };
    assert!(aborted_by("RL.ALLOW w 1 1h"));
    assert!(!aborted_by("RL.ALLOW w 1 1h")); // a plain denial
    assert!(aborted_by("RL.ALLOW w 1 1h BLOCK 1m")); // starts the block
    assert!(!aborted_by("RL.ALLOW w 1 1h BLOCK 1m")); // during it
    assert!(!aborted_by("RL.ALLOWALL 1 w 1 1h BLOCK 1m"));
    assert!(aborted_by("RL.CHARGE w 1 1h 2"));
    assert!(aborted_by("RL.REFUND w 1 1h 1"));
    assert!(!aborted_by("RL.PEEKALL 1 w 1 1h"));
}
