//! Master + replica: a random workload over many keys and all algorithms ends with identical
//! datasets and expiry times; only writes replicate (one RL.SETSTATE each: an allowed, charged
//! request, or a denied one under a changed rule, which stores the new rule);
//! RL.PEEK works on the replica and answers like the master; RL.ALLOW there is refused.

mod common;

use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{info_field, Conn, Rng, Server, ALGOS};

const LONG: [&str; 3] = ["1h", "30m", "2h"];
const SHORT: [&str; 3] = ["150ms", "250ms", "300ms"];
const LIMITS: [u64; 6] = [1, 2, 3, 5, 8, 20];

struct KeyRule {
    key: String,
    algo: &'static str,
    long: bool,
    limit: u64,
    window: &'static str,
    burst: Option<u64>,
    /// The rule of the last write: (limit, window, capacity).
    stored: Option<(u64, &'static str, u64)>,
}

impl KeyRule {
    fn args(&self) -> String {
        let mut a = format!("{} {} ALGO {}", self.limit, self.window, self.algo);
        if let Some(b) = self.burst {
            a.push_str(&format!(" BURST {b}"));
        }
        a
    }

    fn rule_id(&self) -> (u64, &'static str, u64) {
        (self.limit, self.window, self.capacity())
    }

    fn capacity(&self) -> u64 {
        self.burst.unwrap_or(self.limit)
    }

    fn new_rule(&mut self, rng: &mut Rng) {
        self.limit = *rng.pick(&LIMITS);
        self.window = if self.long {
            *rng.pick(&LONG)
        } else {
            *rng.pick(&SHORT)
        };
        self.burst = (self.algo == "gcra" && rng.chance(50)).then(|| 1 + rng.below(10));
    }
}

/// The replicated effects a replica applied: RL.SETSTATE (counters) and RL.APPLY (logs).
fn setstate_calls(c: &mut Conn) -> u64 {
    let stats = c.info("commandstats");
    ["cmdstat_rl.setstate", "cmdstat_rl.apply"]
        .iter()
        .map(|name| match info_field(&stats, name) {
            None => 0,
            Some(v) => v
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        })
        .sum()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn random_workload_converges() {
    let master = Server::start();
    let mut m = master.conn();
    // Only our own commands expire keys (lazily, replicated as DEL in stream order), so the
    // datasets can be compared at any quiet point.
    m.cmd_str("DEBUG SET-ACTIVE-EXPIRE 0").ok();
    let replica = master.start_replica();
    let mut r = replica.conn();
    r.cmd_str("CONFIG RESETSTAT").ok();

    let mut rng = Rng::from_env("random_workload_converges");
    let mut keys: Vec<KeyRule> = (0..36)
        .map(|i| {
            let mut k = KeyRule {
                key: format!("rk:{i}"),
                algo: ALGOS[i % ALGOS.len()],
                long: i % 2 == 1,
                limit: 1,
                window: "1h",
                burst: None,
                stored: None,
            };
            k.new_rule(&mut rng);
            k
        })
        .collect();
    let mut writes = 0u64;
    let (mut denied, mut peeks, mut errors) = (0u64, 0u64, 0u64);
    for op in 0..2000 {
        if op % 100 == 99 {
            sleep(Duration::from_millis(40)); // let short windows pass and keys expire
        }
        let i = rng.below(keys.len() as u64) as usize;
        if rng.chance(8) {
            keys[i].new_rule(&mut rng);
        }
        let k = &keys[i];
        let roll = rng.below(100);
        if roll < 5 {
            // Algorithm mismatch (an error if the key exists; a write if it expired: skip that).
            let other = ALGOS.iter().find(|a| **a != k.algo).unwrap();
            let reply = m.rl_raw("PEEK", &k.key, &format!("{} 1h ALGO {other}", k.limit));
            if reply.error().is_some() {
                errors += 1;
            }
            continue;
        }
        let cost = match roll {
            5..=14 => 0,
            15..=24 => k.capacity() + 1 + rng.below(3),
            25..=44 => rng.below(k.capacity() + 1),
            _ => 1,
        };
        let args = format!("{} COST {cost}", k.args());
        if rng.chance(15) {
            m.peek(&k.key, &args);
            peeks += 1;
        } else {
            let reply = m.allow(&k.key, &args);
            let rule = k.rule_id();
            if reply.allowed && cost > 0 {
                writes += 1;
                keys[i].stored = Some(rule);
            } else if !reply.allowed {
                denied += 1;
                // A live state under another rule: the denial stores the new rule.
                if reply.retry_ms > 0 && k.stored != Some(rule) {
                    writes += 1;
                    keys[i].stored = Some(rule);
                }
            }
        }
    }
    eprintln!("writes {writes}, denied {denied}, peeks {peeks}, errors {errors}");
    assert!(
        writes > 150 && denied > 100,
        "the workload should mix outcomes"
    );
    master.wait_replicas(&mut m, 1);

    assert_eq!(master.digest(), replica.digest(), "DEBUG DIGEST differs");
    assert_eq!(
        setstate_calls(&mut r),
        writes,
        "RL.SETSTATE on the replica must equal the writes (allowed charged requests and denials \
         under a changed rule)"
    );
    let stats = r.info("commandstats");
    assert!(!stats.contains("cmdstat_rl.allow"), "{stats}");
    assert!(!stats.contains("cmdstat_rl.peek"), "{stats}");

    for k in &keys {
        let rt = r.pexpiretime(&k.key);
        let mt = m.pexpiretime(&k.key);
        if rt > 0 && mt == -2 && rt <= now_ms() {
            continue; // expired between the two reads
        }
        assert_eq!(rt, mt, "PEXPIRETIME of {} (replica vs master)", k.key);
        if !k.long || mt < 0 {
            continue;
        }
        let args = k.args();
        let on_replica = r.peek(&k.key, &args);
        let on_master = m.peek(&k.key, &args);
        let ctx = format!("{}: replica {on_replica:?} master {on_master:?}", k.key);
        assert_eq!(on_replica.acr(), on_master.acr(), "{ctx}");
        common::assert_between(
            on_replica.reset_ms,
            on_master.reset_ms,
            on_master.reset_ms + 50,
            &ctx,
        );
        common::assert_between(
            on_replica.retry_ms,
            on_master.retry_ms,
            on_master.retry_ms + 50,
            &ctx,
        );
        let e = r.rl_err("ALLOW", &k.key, &args);
        assert!(e.starts_with("READONLY"), "RL.ALLOW on the replica: {e}");
    }
    // Peeks on the replica changed nothing there.
    assert_eq!(
        master.digest(),
        replica.digest(),
        "replica peeks changed it"
    );
    assert_eq!(setstate_calls(&mut r), writes);
}

#[test]
fn denials_peeks_and_cost_0_replicate_nothing() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut m = master.conn();
    let mut r = replica.conn();
    r.cmd_str("CONFIG RESETSTAT").ok();
    for algo in ALGOS {
        let k = format!("full:{algo}");
        for _ in 0..3 {
            assert!(m.allow(&k, &format!("3 1h ALGO {algo}")).allowed);
        }
    }
    master.wait_replicas(&mut m, 1);
    let offset = |m: &mut Conn| -> i64 {
        info_field(&m.info("replication"), "master_repl_offset")
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = offset(&mut m);
    for algo in ALGOS {
        let k = format!("full:{algo}");
        let args = format!("3 1h ALGO {algo}");
        for _ in 0..20 {
            assert!(!m.allow(&k, &args).allowed);
            m.peek(&k, &args);
            assert!(m.allow(&k, &format!("{args} COST 0")).allowed);
            assert_eq!(m.allow(&k, &format!("{args} COST 4")).retry_ms, -1);
            m.allow(format!("fresh:{algo}"), &format!("{args} COST 0"));
            m.allow(format!("fresh:{algo}"), &format!("{args} COST 9"));
            m.peek(format!("fresh:{algo}"), &args);
            let _ = m.rl_raw("ALLOW", &k, "0 1h");
        }
    }
    let delta = offset(&mut m) - before;
    // The only thing allowed into the stream meanwhile is the master's periodic PING.
    assert!(
        delta % 14 == 0 && delta <= 28,
        "denials/peeks/COST 0 moved the replication offset by {delta} bytes"
    );
    master.wait_replicas(&mut m, 1);
    assert_eq!(setstate_calls(&mut r), 3 * ALGOS.len() as u64);
    assert_eq!(master.digest(), replica.digest());
    assert_eq!(m.cmd_str("DBSIZE").int(), ALGOS.len() as i64);
}

#[test]
fn replica_has_the_same_expiry_and_refuses_writes() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut m = master.conn();
    let mut r = replica.conn();
    for algo in ALGOS {
        for (i, w) in ["1h", "10s", "1d", "1.5m"].into_iter().enumerate() {
            let k = format!("x:{algo}:{i}");
            m.allow(&k, &format!("4 {w} ALGO {algo}"));
            m.allow(&k, &format!("4 {w} ALGO {algo} COST 2"));
        }
    }
    master.wait_replicas(&mut m, 1);
    for algo in ALGOS {
        for i in 0..4 {
            let k = format!("x:{algo}:{i}");
            let mt = m.pexpiretime(&k);
            assert!(mt > now_ms(), "{k}: {mt}");
            assert_eq!(r.pexpiretime(&k), mt, "{k}: replica expiry differs");
            assert_eq!(r.type_of(&k), "ratelimit");
        }
    }
    let e = r.rl_err("ALLOW", "x:gcra:0", "4 1h ALGO gcra");
    assert!(e.starts_with("READONLY"), "{e}");
    let e = r.rl_err("ALLOW", "new", "4 1h");
    assert!(e.starts_with("READONLY"), "{e}");
    let e = r.cmd_str("RL.SETSTATE x:gcra:0 garbage");
    assert!(e.expect_err().starts_with("READONLY"), "{e:?}");
    // Peek on a missing key works on the replica too.
    assert_eq!(r.peek("missing", "4 1h").acr(), (true, 4, 3));
    assert_eq!(master.digest(), replica.digest());
}

#[test]
fn transactions_and_scripts_replicate_their_effects() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut m = master.conn();
    let mut r = replica.conn();
    r.cmd_str("CONFIG RESETSTAT").ok();
    m.cmd_str("MULTI").ok();
    for cmd in [
        "RL.ALLOW t:a 2 1h",
        "RL.ALLOW t:a 2 1h",
        "RL.ALLOW t:a 2 1h",
        "RL.PEEK t:a 2 1h",
        "RL.ALLOW t:b 5 1h ALGO gcra COST 3",
        "RL.ALLOW t:c 5 10s ALGO fixed-window",
    ] {
        assert_eq!(m.cmd_str(cmd), common::Reply::Status("QUEUED".into()));
    }
    let replies = m.cmd_str("EXEC").ok();
    let allowed: Vec<i64> = replies.array().iter().map(|x| x.ints()[0]).collect();
    assert_eq!(allowed, vec![1, 1, 0, 0, 1, 1]);
    let script = "local a = redis.call('RL.ALLOW', KEYS[1], ARGV[1], '1h', 'ALGO', 'gcra') \
                  local b = redis.call('RL.ALLOW', KEYS[1], ARGV[1], '1h', 'ALGO', 'gcra') \
                  local p = redis.call('RL.PEEK', KEYS[1], ARGV[1], '1h', 'ALGO', 'gcra') \
                  return {a[1], b[1], p[1], b[3]}";
    let r1 = m.cmd(&["EVAL", script, "1", "s:a", "1"]);
    assert_eq!(r1.ints(), vec![1, 0, 0, 0]);
    let r2 = m.cmd(&["EVAL", script, "1", "s:b", "3"]);
    assert_eq!(r2.ints(), vec![1, 1, 1, 1]);
    master.wait_replicas(&mut m, 1);
    assert_eq!(master.digest(), replica.digest());
    assert_eq!(setstate_calls(&mut r), 7);
    for k in ["t:a", "t:b", "t:c", "s:a", "s:b"] {
        assert_eq!(r.pexpiretime(k), m.pexpiretime(k), "{k}");
    }
}

#[test]
fn an_expired_key_peeks_as_fresh_on_master_and_replica() {
    let master = Server::start();
    let mut m = master.conn();
    m.cmd_str("DEBUG SET-ACTIVE-EXPIRE 0").ok();
    let replica = master.start_replica();
    let mut r = replica.conn();
    for algo in ALGOS {
        let k = format!("e:{algo}");
        let args = format!("1 100ms ALGO {algo}");
        assert!(m.allow(&k, &args).allowed);
        assert!(!m.allow(&k, &args).allowed);
    }
    master.wait_replicas(&mut m, 1);
    sleep(Duration::from_millis(350));
    for algo in ALGOS {
        let k = format!("e:{algo}");
        let args = format!("1 100ms ALGO {algo}");
        // Still in the replica's keyspace (the master has not expired it), but logically gone.
        let p = r.peek(&k, &args);
        assert_eq!(
            (p.acr(), p.retry_ms),
            ((true, 1, 0), 0),
            "replica {algo}: {p:?}"
        );
        let p = m.peek(&k, &args);
        assert_eq!(
            (p.acr(), p.retry_ms),
            ((true, 1, 0), 0),
            "master {algo}: {p:?}"
        );
        let a = m.allow(&k, &args);
        assert_eq!(
            (a.acr(), a.retry_ms),
            ((true, 1, 0), 0),
            "master {algo}: {a:?}"
        );
    }
    master.wait_replicas(&mut m, 1);
    assert_eq!(master.digest(), replica.digest());
}

#[test]
fn a_replica_loads_a_full_sync_diskless() {
    // The module handles RDB read errors and async loading, so a replica may parse the
    // master's stream straight into memory (swapdb: into a temporary db while serving).
    let master = Server::start();
    let mut m = master.conn();
    for algo in ALGOS {
        m.allow(format!("d:{algo}"), &format!("5 1h ALGO {algo} COST 2"));
    }
    let replica = common::NodeConfig::new()
        .set("repl-diskless-load", "swapdb")
        .replica_of(&master)
        .start();
    let mut r = replica.conn();
    common::wait_until(Duration::from_secs(20), "the replica to sync", || {
        r.info("replication").contains("master_link_status:up")
    });
    let log = replica.log();
    assert!(!log.contains("Skipping diskless-load"), "{log}");
    assert!(
        log.contains("with EOF to parser"),
        "not loaded diskless:\n{log}"
    );
    assert_eq!(replica.digest(), master.digest());
}
