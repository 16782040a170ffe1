//! Redis Cluster, 3 masters × 1 replica, healthy: a limiter key behaves as on one node whatever
//! its slot; every RL command's keys are found (COMMAND GETKEYS, key specs) so the cluster routes
//! it; replicas end with their master's dataset; replicas serve RL.PEEK after READONLY and
//! redirect RL.ALLOW. (Failover, resharding and restarts: tests/cluster_*.rs.)

mod common;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::cluster::{key_slot, one_key_per_slot, parse_redirect, Cluster, ClusterConfig, SLOTS};
use common::{Reply, Rl, Rng, Server, ALGOS};

#[test]
fn keyslot_matches_the_server() {
    let c = Cluster::start();
    let mut conn = c.nodes[0].conn();
    let mut rng = Rng::from_env("keyslot_matches_the_server");
    let mut keys: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{}".to_vec(),
        b"{}x".to_vec(),
        b"a{}b".to_vec(),
        b"{user}:1".to_vec(),
        b"x{user}y{z}".to_vec(),
        b"{{a}}".to_vec(),
        b"a{b".to_vec(),
        b"a}b{c}".to_vec(),
        b"123456789".to_vec(),
    ];
    for _ in 0..500 {
        let len = rng.below(12) as usize;
        let mut k = rng.bytes(len);
        for b in k.iter_mut() {
            // Plenty of braces so hash tags of every shape occur.
            *b = match *b % 8 {
                0 => b'{',
                1 => b'}',
                _ => *b,
            };
        }
        keys.push(k);
    }
    for k in &keys {
        let server = conn.cmd(&[b"CLUSTER".as_slice(), b"KEYSLOT", k]).int();
        assert_eq!(i64::from(key_slot(k)), server, "key {k:?}");
    }
    assert_eq!(key_slot(b"123456789"), 0x31C3 % SLOTS);
}

fn cmd_of(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace()
        .map(|a| a.as_bytes().to_vec())
        .collect()
}

/// 16,384 keys, one in every slot, plus hash-tagged keys sharing slots, each driven through the
/// same commands on the cluster and on a standalone server: every reply matches (allowed,
/// capacity and remaining exactly; the two time fields within the time between the two calls),
/// and every key lives on the master that serves its slot.
#[test]
fn every_slot_behaves_as_on_one_node() {
    let cluster = Cluster::start();
    let single = Server::start();
    let mut one = single.conn();
    let mut client = cluster.client();
    let started = Instant::now();

    let mut keys = one_key_per_slot("k:");
    for u in 0..300 {
        for part in ["a", "b", "c"] {
            keys.push(format!("{{user:{u}}}:{part}"));
        }
    }
    let rule = |i: usize| {
        let algo = ALGOS[i % ALGOS.len()];
        let limit = 1 + (i / 3) % 5;
        let window = ["1h", "2h", "365d"][(i / 15) % 3];
        format!("{limit} {window} ALGO {algo}")
    };
    let (mut allowed, mut denied) = (0, 0);
    for round in 0..7 {
        let cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let cost = (i + round) % 3;
                let verb = if (i + round) % 5 == 4 {
                    "PEEK"
                } else {
                    "ALLOW"
                };
                cmd_of(&format!("RL.{verb} {k} {} COST {cost}", rule(i)))
            })
            .collect();
        let on_cluster = client.pipeline(&cmds);
        for c in &cmds {
            one.send(c).unwrap();
        }
        let on_single: Vec<Reply> = cmds.iter().map(|_| one.read().unwrap()).collect();
        let tolerance = started.elapsed().as_millis() as i64 + 1000;
        for (i, (c, s)) in on_cluster.iter().zip(&on_single).enumerate() {
            let (c, s) = (Rl::from_reply(c), Rl::from_reply(s));
            let ctx = format!(
                "round {round}, key {} ({}): cluster {c:?}, single {s:?}",
                keys[i],
                rule(i)
            );
            assert_eq!(c.acr(), s.acr(), "{ctx}");
            assert!((c.reset_ms - s.reset_ms).abs() <= tolerance, "{ctx}");
            assert!((c.retry_ms - s.retry_ms).abs() <= tolerance, "{ctx}");
            assert_eq!(c.retry_ms == -1, s.retry_ms == -1, "{ctx}");
            if c.allowed {
                allowed += 1;
            } else {
                denied += 1;
            }
        }
    }
    eprintln!(
        "{} keys × 7 rounds: {allowed} allowed, {denied} denied",
        keys.len()
    );
    assert!(
        allowed > 10_000 && denied > 10_000,
        "the workload should mix outcomes"
    );

    // Same keys, types and expiry on both sides; each key on the master of its slot.
    let total: i64 = cluster
        .shards()
        .keys()
        .map(|&p| cluster.node_on(p).conn().cmd(&["DBSIZE"]).int())
        .sum();
    assert_eq!(total, one.cmd(&["DBSIZE"]).int());
    let slots = cluster.slots();
    for (i, k) in keys.iter().enumerate().step_by(7) {
        let slot = key_slot(k.as_bytes());
        let owner = slots
            .iter()
            .find(|r| r.start <= slot && slot <= r.end)
            .unwrap()
            .master;
        let mut c = cluster.node_on(owner).conn();
        assert_eq!(c.type_of(k), one.type_of(k), "{k}");
        let (ct, st) = (c.pexpiretime(k), one.pexpiretime(k));
        assert!(
            ct > 0 && (ct - st).abs() <= started.elapsed().as_millis() as i64 + 1000,
            "{k} ({}): {ct} vs {st}",
            rule(i)
        );
    }
    for r in &slots {
        let mut c = cluster.node_on(r.master).conn();
        for slot in [r.start, r.end] {
            let n = c
                .cmd(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
                .int();
            assert!(n >= 1, "slot {slot} on {} holds {n} keys", r.master);
        }
    }
    for u in 0..300 {
        let port = client.port_for(format!("{{user:{u}}}:a").as_bytes());
        let mut c = cluster.node_on(port).conn();
        for part in ["a", "b", "c"] {
            assert!(c.exists(format!("{{user:{u}}}:{part}")), "user {u} {part}");
        }
    }
}

/// One example call per RL command, keys written `$1`, `$2`, …: the test checks that the server
/// finds exactly these keys (COMMAND GETKEYS, key-spec flags) and routes the command by them.
/// A command the module registers without an example here fails the test: add one line.
/// Examples of commands this build does not register are skipped.
const EXAMPLES: &[&str] = &[
    "RL.ALLOW $1 5 1h",
    "RL.ALLOW $1 5 1h COST 2 ALGO gcra BURST 3",
    "RL.ALLOW $1 5 1h ALGO moving-window",
    "RL.PEEK $1 5 1h ALGO fixed-window",
    "RL.ALLOW $1 5 1h BLOCK 15m",
    "RL.ALLOWALL 2 $1 $2 60 1m 100000 1m COST 1500",
    "RL.ALLOWALL 3 $1 $2 $3 5 1h 10 1s ALGO gcra BLOCK 1m 7 1d ALGO moving-window",
    "RL.PEEKALL 2 $1 $2 5 1h 10 1s COST 2",
    "RL.CHARGE $1 100000 1m 48500",
    "RL.REFUND $1 100000 1m 500 ALGO fixed-window",
    "RL.INSPECT $1",
    "RL.SETSTATE $1 payload",
    "RL.APPLY $1 hit",
    "RL.THROTTLE $1 15 30 60",
    "CL.THROTTLE $1 15 30 60 2",
    "GCRA $1 15 30 0.5 TOKENS 2",
    "RL.ACQUIRE $1 10 30s",
    "RL.ACQUIRE $1 10 30s ID worker-1",
    "RL.RELEASE $1 worker-1",
    // Only with `enable-debug-command yes`; the key follows the PANIC-OPEN keyword.
    "RL.DEBUG PANIC-OPEN $1",
    "RL.DEBUG PANIC",
];

/// `COMMAND GETKEYSANDFLAGS` of `args`: (key, flags).
fn keys_and_flags(c: &mut common::Conn, args: &[String]) -> Vec<(String, Vec<String>)> {
    let mut v = vec!["COMMAND".to_string(), "GETKEYSANDFLAGS".to_string()];
    v.extend(args.iter().cloned());
    c.cmd(&v)
        .ok()
        .array()
        .iter()
        .map(|e| {
            let a = e.array();
            (a[0].text(), a[1].flat())
        })
        .collect()
}

#[test]
fn every_rl_command_declares_its_keys_and_is_routed_by_them() {
    check_every_command(&Cluster::start());
}

/// The same with `RL.DEBUG` loaded: Redis 7.0 and Valkey 8.1 route a module command in a cluster
/// by its legacy first/last/step key positions or its `getkeys-api` answer, never by key specs;
/// `RL.DEBUG PANIC-OPEN key` declares its key through `getkeys-api`.
#[test]
fn the_debug_command_is_routed_by_its_key() {
    check_every_command(
        &ClusterConfig::new(3, 1)
            .module_args(&["enable-debug-command", "yes"])
            .start(),
    );
}

fn check_every_command(cluster: &Cluster) {
    let shards = cluster.shards();
    let masters: Vec<u16> = shards.keys().copied().collect();
    let mut any = cluster.node_on(masters[0]).conn();
    let registered: Vec<String> = any
        .cmd(&["COMMAND", "LIST", "FILTERBY", "MODULE", "ratelimit"])
        .ok()
        .flat()
        .into_iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    assert!(
        registered.contains(&"rl.allow".to_string()),
        "{registered:?}"
    );
    let example_names: Vec<String> = EXAMPLES
        .iter()
        .map(|e| e.split_whitespace().next().unwrap().to_ascii_lowercase())
        .collect();
    for name in &registered {
        assert!(
            example_names.contains(name),
            "{name} is registered but has no example in EXAMPLES: add one"
        );
    }

    // Keys sharing a hash tag land in one slot; the tag is chosen per shard.
    let mut checked = 0;
    for example in EXAMPLES {
        let name = example
            .split_whitespace()
            .next()
            .unwrap()
            .to_ascii_lowercase();
        if !registered.contains(&name) {
            eprintln!("skipped (not registered by this build): {example}");
            continue;
        }
        let info = any.cmd(&["COMMAND", "INFO", &name]).ok();
        let info = info.array()[0].array();
        let flags = info[2].flat();
        let readonly = flags.contains(&"readonly".to_string());
        assert!(
            readonly != flags.contains(&"write".to_string()),
            "{name}: exactly one of readonly/write: {flags:?}"
        );
        let nkeys = (1..=9)
            .filter(|i| example.contains(&format!("${i}")))
            .count();
        if nkeys == 0 {
            // No key: no slot, so any master runs it (errors are fine, redirects are not).
            let mut v = vec!["COMMAND", "GETKEYS"];
            v.extend(example.split_whitespace());
            let r = any.cmd(&v);
            assert!(
                r.error().is_some() || r == Reply::Array(vec![]),
                "{example}: COMMAND GETKEYS {r:?}"
            );
            for &m in &masters {
                let r = cluster.node_on(m).conn().cmd_str(example);
                let e = r.error().unwrap_or_default();
                assert!(
                    !e.starts_with("MOVED") && !e.starts_with("ASK"),
                    "{example}: {e}"
                );
            }
            checked += 1;
            continue;
        }
        for (m, &master) in masters.iter().enumerate() {
            // `nkeys` keys in one slot served by `master`.
            let tag = (0..)
                .map(|n| format!("t{m}-{n}"))
                .find(|t| cluster.master_port_of_slot(key_slot(t.as_bytes())) == master)
                .unwrap();
            let keys: Vec<String> = (1..=nkeys).map(|i| format!("{{{tag}}}:k{i}")).collect();
            let mut line = example.to_string();
            for (i, k) in keys.iter().enumerate() {
                line = line.replace(&format!("${}", i + 1), k);
            }
            let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            let slot = key_slot(keys[0].as_bytes());

            // The server finds exactly these keys, read-only iff the command is.
            let found = keys_and_flags(&mut any, &args);
            let found_keys: Vec<String> = found.iter().map(|(k, _)| k.clone()).collect();
            assert_eq!(found_keys, keys, "{line}: COMMAND GETKEYSANDFLAGS");
            let mut v = vec!["COMMAND".to_string(), "GETKEYS".to_string()];
            v.extend(args.iter().cloned());
            assert_eq!(any.cmd(&v).ok().flat(), keys, "{line}: COMMAND GETKEYS");
            for (k, f) in &found {
                if readonly {
                    assert!(
                        f.contains(&"RO".to_string()) && !f.contains(&"RW".to_string()),
                        "{line}: key {k} flags {f:?}"
                    );
                } else {
                    assert!(
                        !f.contains(&"RO".to_string()),
                        "{line}: key {k} flags {f:?}"
                    );
                }
            }

            // Other masters redirect to the owner; so does the owner's replica (readonly
            // commands only after READONLY are served there).
            for &other in masters.iter().filter(|&&p| p != master) {
                let r = cluster.node_on(other).conn().cmd(&args);
                let e = r
                    .error()
                    .unwrap_or_else(|| panic!("{line} on a non-owner: {r:?}"));
                assert_eq!(
                    parse_redirect(e, "MOVED"),
                    Some((slot, master)),
                    "{line}: {e}"
                );
            }
            for &replica in &shards[&master] {
                let mut rc = cluster.node_on(replica).conn();
                let e = rc.cmd(&args);
                assert_eq!(
                    parse_redirect(e.expect_err(), "MOVED"),
                    Some((slot, master)),
                    "{line} on a replica"
                );
                rc.cmd(&["READONLY"]).ok();
                let r = rc.cmd(&args);
                let redirected = r.error().and_then(|e| parse_redirect(e, "MOVED"));
                if readonly {
                    assert_eq!(
                        redirected, None,
                        "{line} on a replica after READONLY: {r:?}"
                    );
                } else {
                    assert_eq!(
                        redirected,
                        Some((slot, master)),
                        "{line} on a replica after READONLY: {r:?}"
                    );
                }
            }
            // The owner runs it (errors such as a bad payload are fine; redirects are not).
            let r = cluster.node_on(master).conn().cmd(&args);
            if let Some(e) = r.error() {
                assert!(
                    !e.starts_with("MOVED") && !e.starts_with("ASK") && !e.starts_with("CROSSSLOT"),
                    "{line}: {e}"
                );
            }
            // Keys in different slots are refused.
            if nkeys > 1 {
                let mut cross = example.to_string();
                let mut used = Vec::new();
                for i in 1..=nkeys {
                    let k = (0..)
                        .map(|n| format!("x{i}-{n}"))
                        .find(|k| !used.contains(&key_slot(k.as_bytes())))
                        .unwrap();
                    used.push(key_slot(k.as_bytes()));
                    cross = cross.replace(&format!("${i}"), &k);
                }
                let r = cluster.node_on(master).conn().cmd_str(&cross);
                let e = r.error().unwrap_or_default().to_string();
                assert!(
                    e.starts_with("CROSSSLOT") || e.starts_with("MOVED"),
                    "{cross}: {r:?}"
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3 * 5,
        "checked only {checked} command × shard combinations"
    );
}

/// A random mix over 600 keys on all shards — every algorithm, COST 0 and over capacity, PEEK,
/// rule changes, short windows that expire, DEL, leases acquired, renewed and released,
/// MULTI/EXEC and EVAL on hash-tagged keys —
/// leaves every replica with its master's `DEBUG DIGEST` and expiry times.
#[test]
fn replicas_match_their_masters_after_a_mixed_workload() {
    let cluster = Cluster::start();
    let shards = cluster.shards();
    // Keys leave only through our commands (lazy expiry, replicated as DEL in stream order), so
    // the datasets can be compared at a quiet point.
    for &m in shards.keys() {
        cluster
            .node_on(m)
            .conn()
            .cmd_str("DEBUG SET-ACTIVE-EXPIRE 0")
            .ok();
    }
    let mut client = cluster.client();
    let mut rng = Rng::from_env("replicas_match_their_masters_after_a_mixed_workload");
    let keys: Vec<String> = (0..600).map(|i| format!("mix:{i}")).collect();
    let (mut writes, mut denied, mut errors) = (0, 0, 0);
    for op in 0..6000 {
        if op % 1000 == 999 {
            std::thread::sleep(std::time::Duration::from_millis(120)); // short windows pass
        }
        let i = rng.below(keys.len() as u64) as usize;
        let key = &keys[i];
        let algo = ALGOS[i % ALGOS.len()];
        let limit = *rng.pick(&[1u64, 2, 3, 5, 8]);
        let window = if i.is_multiple_of(4) {
            *rng.pick(&["100ms", "200ms"])
        } else {
            *rng.pick(&["1h", "2h"])
        };
        let mut args = format!("{limit} {window} ALGO {algo}");
        if algo == "gcra" && rng.chance(30) {
            args.push_str(&format!(" BURST {}", 1 + rng.below(6)));
        }
        let cost = match rng.below(10) {
            0 => 0,
            1 => 20,
            2 | 3 => rng.below(4),
            _ => 1,
        };
        let line = match rng.below(100) {
            0..=2 => format!("DEL {key}"),
            3..=12 => format!("RL.PEEK {key} {args} COST {cost}"),
            // Another algorithm than the key's: an error (and no write) when the key exists.
            13..=14 => format!(
                "RL.ALLOW {key} {limit} 1h ALGO {} COST {cost}",
                ALGOS[(i + 1) % ALGOS.len()]
            ),
            // Leases on keys of their own: acquire (caller and server ids), release.
            15..=19 => format!(
                "RL.ACQUIRE lease:{key} {limit} {window} ID w{}",
                rng.below(4)
            ),
            20..=21 => format!("RL.ACQUIRE lease:{key} {limit} {window}"),
            22..=24 => format!("RL.RELEASE lease:{key} w{}", rng.below(4)),
            _ => format!("RL.ALLOW {key} {args} COST {cost}"),
        };
        let r = client.cmd_str(&line);
        match &r {
            Reply::Error(_) => errors += 1,
            Reply::Array(_) if line.starts_with("RL.ALLOW") => {
                if Rl::from_reply(&r).allowed {
                    writes += 1;
                } else {
                    denied += 1;
                }
            }
            _ => {}
        }
    }
    // Transactions and scripts: several limiter keys of one slot in one atomic unit.
    for u in 0..30 {
        let (a, b) = (format!("{{tx{u}}}:a"), format!("{{tx{u}}}:b"));
        let port = client.port_for(a.as_bytes());
        let c = client.conn_to(port).unwrap();
        c.cmd(&["MULTI"]).ok();
        c.cmd(&["RL.ALLOW", &a, "3", "1h"]).ok();
        c.cmd(&["RL.ALLOW", &b, "3", "1h", "ALGO", "gcra", "COST", "2"])
            .ok();
        c.cmd(&["RL.PEEK", &a, "3", "1h"]).ok();
        assert_eq!(c.cmd(&["EXEC"]).ok().array().len(), 3);
        let script = "local x = redis.call('RL.ALLOW', KEYS[1], 2, '1h', 'ALGO', 'fixed-window') \
                      local y = redis.call('RL.ALLOW', KEYS[2], 2, '1h', 'ALGO', 'fixed-window') \
                      return {x[1], y[1]}";
        let r = c.cmd(&[
            "EVAL",
            script,
            "2",
            &format!("{{tx{u}}}:c"),
            &format!("{{tx{u}}}:d"),
        ]);
        assert_eq!(r.ints(), vec![1, 1]);
    }
    eprintln!("{writes} admitted, {denied} denied, {errors} errors (algorithm mismatches)");
    assert!(errors > 0, "the workload should include refused calls");
    assert!(
        writes > 1000 && denied > 500,
        "the workload should mix outcomes"
    );

    for (&m, replicas) in &shards {
        // WAIT on the connection that wrote: the replica has applied everything it sent.
        let c = client.conn_to(m).unwrap();
        assert_eq!(
            c.cmd(&["WAIT", "1", "30000"]).int(),
            1,
            "replica of {m} did not acknowledge"
        );
        let master = cluster.node_on(m);
        let n = master.conn().cmd(&["DBSIZE"]).int();
        assert!(n > 100, "master {m} holds only {n} keys");
        for &r in replicas {
            let replica = cluster.node_on(r);
            assert_eq!(
                replica.digest(),
                master.digest(),
                "DEBUG DIGEST of replica {r} vs master {m}"
            );
            assert_eq!(replica.conn().cmd(&["DBSIZE"]).int(), n);
        }
    }
    for k in &keys {
        let m = client.port_for(k.as_bytes());
        let mt = cluster.node_on(m).conn().pexpiretime(k);
        for &r in &shards[&m] {
            let mut rc = cluster.node_on(r).conn();
            rc.cmd(&["READONLY"]).ok();
            let rt = rc.pexpiretime(k);
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            // A short-window key that expired between the two reads.
            if (mt > 0 && mt <= now_ms && rt == -2) || (rt > 0 && rt <= now_ms && mt == -2) {
                continue;
            }
            assert_eq!(rt, mt, "PEXPIRETIME of {k}");
        }
    }
}

/// A replica answers RL.PEEK for its master's slots after READONLY (exactly what the master
/// answers, without writing), redirects it before READONLY and after READWRITE, and redirects
/// RL.ALLOW and RL.SETSTATE to its master always.
#[test]
fn replica_serves_peek_after_readonly_and_redirects_allow() {
    let cluster = Cluster::start();
    let shards = cluster.shards();
    let mut client = cluster.client();
    for (&m, replicas) in &shards {
        let key = (0..)
            .map(|n| format!("ro:{n}"))
            .find(|k| client.port_for(k.as_bytes()) == m)
            .unwrap();
        let other = (0..)
            .map(|n| format!("elsewhere:{n}"))
            .find(|k| client.port_for(k.as_bytes()) != m)
            .unwrap();
        let slot = key_slot(key.as_bytes());
        for _ in 0..3 {
            assert!(client.allow(&key, "5 1h ALGO gcra").allowed);
        }
        let mc = client.conn_to(m).unwrap();
        assert_eq!(mc.cmd(&["WAIT", "1", "30000"]).int(), 1);
        let on_master = cluster.node_on(m).conn().peek(&key, "5 1h ALGO gcra");
        assert_eq!(on_master.acr(), (true, 5, 1));
        let r = replicas[0];
        let replica = cluster.node_on(r);
        let mut rc = replica.conn();
        rc.cmd(&["CONFIG", "RESETSTAT"]).ok();
        let moved = |reply: Reply| reply.error().and_then(|e| parse_redirect(e, "MOVED"));

        assert_eq!(
            moved(rc.cmd_str(&format!("RL.PEEK {key} 5 1h ALGO gcra"))),
            Some((slot, m))
        );
        rc.cmd(&["READONLY"]).ok();
        let on_replica = rc.peek(&key, "5 1h ALGO gcra");
        assert_eq!(
            on_replica.acr(),
            on_master.acr(),
            "replica {on_replica:?} master {on_master:?}"
        );
        assert!((on_replica.reset_ms - on_master.reset_ms).abs() < 60_000);
        assert_eq!(
            rc.peek(format!("{{{key}}}:fresh"), "5 1h").acr(),
            (true, 5, 4)
        );
        for line in [
            format!("RL.ALLOW {key} 5 1h ALGO gcra"),
            format!("RL.ALLOW {key} 5 1h ALGO gcra COST 0"),
            format!("RL.SETSTATE {key} payload"),
        ] {
            assert_eq!(
                moved(rc.cmd_str(&line)),
                Some((slot, m)),
                "{line} on replica {r}"
            );
        }
        // A slot of another shard: redirected to that shard's master even after READONLY.
        let other_slot = key_slot(other.as_bytes());
        assert_eq!(
            moved(rc.cmd_str(&format!("RL.PEEK {other} 5 1h"))),
            Some((other_slot, client.port_for(other.as_bytes())))
        );
        rc.cmd(&["READWRITE"]).ok();
        assert_eq!(
            moved(rc.cmd_str(&format!("RL.PEEK {key} 5 1h ALGO gcra"))),
            Some((slot, m))
        );

        let stats = rc.info("commandstats");
        let calls = |name: &str| {
            common::info_field(&stats, &format!("cmdstat_{name}"))
                .and_then(|v| {
                    v.split(',')
                        .find_map(|kv| kv.strip_prefix("calls="))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "0".into())
        };
        assert_eq!(calls("rl.peek"), "2", "{stats}");
        assert_eq!(calls("rl.allow"), "0", "{stats}");
        assert_eq!(replica.digest(), cluster.node_on(m).digest());
        assert_eq!(
            client.peek(&key, "5 1h ALGO gcra").acr(),
            (true, 5, 1),
            "the master was charged"
        );
    }
}
