//! The storm: a large random mix of valid and invalid commands against the module's keys on a
//! real server with a replica attached — every command (multi-key ones with 1 to 17 keys,
//! debts, blocks, leases), random arities, random bytes, huge numbers, wrong key types, RESTORE
//! of damaged DUMP payloads of every kind (in debt and blocked too), RL.SETSTATE / RL.APPLY of
//! valid and damaged payloads (states, hits, lease effects), PERSIST, each alone, inside
//! MULTI/EXEC or inside EVAL. Then:
//!
//! * both servers are alive, and no reply or log line speaks of a panic;
//! * every error reply is of a class README lists (Errors), and so is every `INFO errorstats`
//!   class;
//! * every `ratelimit` key has a TTL (SCAN + TYPE + PTTL);
//! * the keys the storm did not target — of every type, limiters included — and the keys of
//!   other types it did target with RL commands are unchanged (`DEBUG DIGEST-VALUE`,
//!   `PEXPIRETIME`);
//! * the replica's `DEBUG DIGEST` equals the master's.
//!
//! Size: `RL_STORM_OPS` operations per server (default 200,000: seconds on a quiet machine, tens of
//! seconds on a busy one); `RL_SEED`
//! replays one. A new command is one line in [`COMMANDS`]; a new state kind is covered by
//! itself (dumps and payloads are made for every entry of `Algorithm::ALL`).

mod common;

use std::collections::BTreeMap;

use common::{info_field, mutate_dump, Conn, Reply, Rng, Server};
use redis_ratelimit::algo::leases::{self, encode_effect, Acquire, LeaseId};
use redis_ratelimit::algo::{Algorithm, Bounds, Limiter, Outcome, Replication, Rule};
use redis_ratelimit::datatype::codec::{encode, encode_hit};

/// The error classes the storm may meet (README, Errors): the module's own, and the server's
/// `BUSYKEY` (RESTORE onto an existing key without REPLACE) and `EXECABORT` (a MULTI in which
/// the server refused a command when queueing it, e.g. for its arity).
const ERROR_CLASSES: &[&str] = &["ERR", "WRONGTYPE", "BUSYKEY", "EXECABORT"];

/// Arguments after the key, from what the storm knows, mostly for a key of `algorithm`.
type Gen = fn(&mut Rng, &Material, Algorithm) -> Vec<Vec<u8>>;

/// Every command the storm sends at a key: its argument generator, and the algorithm its keys
/// hold if it only works on one. One line per command.
const COMMANDS: &[(&str, Gen, Option<Algorithm>)] = &[
    ("RL.ALLOW", rule_args, None),
    ("RL.PEEK", rule_args, None),
    ("RL.ALLOWALL", rule_args, None),
    ("RL.PEEKALL", rule_args, None),
    ("RL.CHARGE", settle_args, None),
    ("RL.REFUND", settle_args, None),
    ("RL.ACQUIRE", acquire_args, Some(Algorithm::Leases)),
    ("RL.RELEASE", release_args, Some(Algorithm::Leases)),
    ("RL.THROTTLE", throttle_args, Some(Algorithm::Gcra)),
    ("CL.THROTTLE", throttle_args, Some(Algorithm::Gcra)),
    ("GCRA", gcra_args, Some(Algorithm::Gcra)),
    ("RL.INSPECT", no_args, None),
    ("RL.SETSTATE", setstate_args, None),
    ("RL.APPLY", apply_args, None),
    ("RESTORE", restore_args, None),
    ("PERSIST", no_args, None),
];

/// Commands that take `numkeys key [key …]` and one generated argument list per key.
const NUMKEYS: &[&str] = &["RL.ALLOWALL", "RL.PEEKALL"];

/// Commands that may write a key of any type (never sent to keys of other types, which must
/// stay unchanged).
const REPLACING: &[&str] = &["RESTORE", "PERSIST"];

/// Keys the storm writes to: `s:<n>` mostly holds `Algorithm::ALL[n % kinds]`.
const STORM_KEYS: u64 = 48;

/// Keys of other types that the storm sends RL commands to (answered WRONGTYPE, unchanged).
const WRONG_TYPE: &[(&str, &str)] = &[
    ("w:string", "SET w:string v"),
    ("w:hash", "HSET w:hash f v"),
    ("w:list", "RPUSH w:list a b"),
    ("w:set", "SADD w:set a b"),
    ("w:zset", "ZADD w:zset 1 a"),
    ("w:stream", "XADD w:stream 1-1 f v"),
];

/// What the generators draw from: real DUMPs and valid payloads of every kind.
struct Material {
    dumps: Vec<(Algorithm, Vec<u8>)>,
    states: Vec<(Algorithm, Vec<u8>)>,
    hits: Vec<(Algorithm, Vec<u8>)>,
}

/// Mostly one of `algorithm`'s, else any.
fn of_kind(rng: &mut Rng, items: &[(Algorithm, Vec<u8>)], algorithm: Algorithm) -> Vec<u8> {
    let same: Vec<&Vec<u8>> = items
        .iter()
        .filter(|(a, _)| *a == algorithm)
        .map(|(_, b)| b)
        .collect();
    if !same.is_empty() && rng.chance(85) {
        return (*rng.pick(&same)).clone();
    }
    rng.pick(items).1.clone()
}

fn ops() -> usize {
    std::env::var("RL_STORM_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000)
}

fn pick_str<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

fn limit(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => "1".into(),
        1 => "2".into(),
        2..=4 => (1 + rng.below(20)).to_string(),
        5 => (1 + rng.below(1_000_000)).to_string(),
        6 => "9223372036854775807".into(),
        _ => rng.next_u64().to_string(),
    }
}

fn window(rng: &mut Rng) -> String {
    pick_str(
        rng,
        &[
            "1ms", "5ms", "50ms", "0.5ms", "200ms", "1s", "1.5s", "2", "10", "1m", "1h", "365d",
            "0.001ms",
        ],
    )
    .into()
}

fn algo(rng: &mut Rng, algorithm: Algorithm) -> String {
    if rng.chance(3) {
        return pick_str(rng, &["token-bucket", "", "GCRA ", "moving_window"]).into();
    }
    if rng.chance(10) {
        return rng.pick(Algorithm::ALL).name().to_string();
    }
    algorithm.name().to_string()
}

/// `limit window [COST n] [ALGO a] [BURST n] [BLOCK d]`, options in any order.
fn rule_args(rng: &mut Rng, _: &Material, algorithm: Algorithm) -> Vec<Vec<u8>> {
    let mut out = vec![limit(rng), window(rng)];
    let mut opts: Vec<[String; 2]> = Vec::new();
    if rng.chance(60) {
        let cost = match rng.below(5) {
            0 => "0".into(),
            1 => (1 + rng.below(3)).to_string(),
            2 => limit(rng),
            _ => "1".into(),
        };
        opts.push(["COST".into(), cost]);
    }
    if algorithm != Algorithm::SlidingWindow || rng.chance(50) {
        opts.push(["ALGO".into(), algo(rng, algorithm)]);
    }
    if (algorithm.takes_burst() && rng.chance(50)) || rng.chance(2) {
        opts.push(["BURST".into(), limit(rng)]);
    }
    if rng.chance(15) {
        opts.push(["BLOCK".into(), window(rng)]);
    }
    while !opts.is_empty() {
        let i = rng.below(opts.len() as u64) as usize;
        let [name, value] = opts.swap_remove(i);
        let name = if rng.chance(20) {
            name.to_lowercase()
        } else {
            name
        };
        out.extend([name, value]);
    }
    out.into_iter().map(String::into_bytes).collect()
}

/// `limit window n [ALGO a] [BURST n]` (`RL.CHARGE`, `RL.REFUND`): amounts up to far past the
/// capacity (debts).
fn settle_args(rng: &mut Rng, _: &Material, algorithm: Algorithm) -> Vec<Vec<u8>> {
    let amount = match rng.below(4) {
        0 => "0".into(),
        1 => (1 + rng.below(5)).to_string(),
        2 => (1 + rng.below(100)).to_string(),
        _ => limit(rng),
    };
    let mut out = vec![limit(rng), window(rng), amount];
    if algorithm != Algorithm::SlidingWindow || rng.chance(50) {
        out.extend(["ALGO".into(), algo(rng, algorithm)]);
    }
    if algorithm.takes_burst() && rng.chance(50) {
        out.extend(["BURST".into(), limit(rng)]);
    }
    out.into_iter().map(String::into_bytes).collect()
}

/// A lease id: a few names and numbers (the server's own ids are numbers too), long ones.
fn lease_id(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0..=2 => pick_str(rng, &["a", "b", "worker-1", "7", "007", "0"]).into(),
        3 => rng.next_u64().to_string().into_bytes(),
        4 => vec![b'x'; 1 + rng.below(140) as usize],
        _ => {
            let n = 1 + rng.below(20) as usize;
            rng.bytes(n)
        }
    }
}

/// `limit lease [ID id]` (`RL.ACQUIRE`).
fn acquire_args(rng: &mut Rng, _: &Material, _: Algorithm) -> Vec<Vec<u8>> {
    let limit = match rng.below(6) {
        0..=3 => (1 + rng.below(5)).to_string(),
        4 => pick_str(rng, &["10000", "10001", "0"]).into(),
        _ => limit(rng),
    };
    let mut out = vec![limit.into_bytes(), window(rng).into_bytes()];
    if rng.chance(60) {
        out.extend([b"ID".to_vec(), lease_id(rng)]);
    }
    out
}

/// `id` (`RL.RELEASE`).
fn release_args(rng: &mut Rng, _: &Material, _: Algorithm) -> Vec<Vec<u8>> {
    vec![lease_id(rng)]
}

fn throttle_args(rng: &mut Rng, _: &Material, _: Algorithm) -> Vec<Vec<u8>> {
    let mut out = vec![rng.below(20).to_string(), limit(rng), window(rng)];
    if rng.chance(50) {
        out.push(rng.below(4).to_string());
    }
    out.into_iter().map(String::into_bytes).collect()
}

fn gcra_args(rng: &mut Rng, _: &Material, _: Algorithm) -> Vec<Vec<u8>> {
    let period = pick_str(rng, &["1", "0.5", "60", "1e-3", ".25", "3600", "1e2"]);
    let mut out = vec![rng.below(20).to_string(), limit(rng), period.to_string()];
    if rng.chance(50) {
        out.extend(["TOKENS".into(), (1 + rng.below(4)).to_string()]);
    }
    out.into_iter().map(String::into_bytes).collect()
}

fn no_args(_: &mut Rng, _: &Material, _: Algorithm) -> Vec<Vec<u8>> {
    Vec::new()
}

/// Sometimes valid, often damaged bytes.
fn damaged(rng: &mut Rng, payload: &[u8]) -> Vec<u8> {
    let mut p = payload.to_vec();
    match rng.below(6) {
        0 | 1 => {}
        2 if !p.is_empty() => {
            let i = rng.below(p.len() as u64) as usize;
            p[i] ^= 1 << rng.below(8);
        }
        3 => p.truncate(rng.below(p.len() as u64 + 1) as usize),
        4 => {
            let n = 1 + rng.below(6) as usize;
            p.extend(rng.bytes(n));
        }
        _ => {
            let n = rng.below(40) as usize;
            p = rng.bytes(n);
        }
    }
    p
}

fn setstate_args(rng: &mut Rng, m: &Material, algorithm: Algorithm) -> Vec<Vec<u8>> {
    let state = of_kind(rng, &m.states, algorithm);
    vec![damaged(rng, &state)]
}

fn apply_args(rng: &mut Rng, m: &Material, algorithm: Algorithm) -> Vec<Vec<u8>> {
    let hit = of_kind(rng, &m.hits, algorithm);
    vec![damaged(rng, &hit)]
}

fn restore_args(rng: &mut Rng, m: &Material, algorithm: Algorithm) -> Vec<Vec<u8>> {
    let dump = of_kind(rng, &m.dumps, algorithm);
    let payload = if rng.chance(20) {
        dump
    } else {
        mutate_dump(rng, &dump)
    };
    let ttl = match rng.below(3) {
        0 => "0".to_string(), // no TTL: the module must give its keys one
        1 => (1 + rng.below(2_000)).to_string(),
        _ => (1 + rng.below(3_600_000)).to_string(),
    };
    let mut out = vec![ttl.into_bytes(), payload];
    if rng.chance(80) {
        out.push(b"REPLACE".to_vec());
    }
    out
}

/// An argument no command expects.
fn junk(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => Vec::new(),
        1 => b"-1".to_vec(),
        2 => b"18446744073709551616".to_vec(),
        3 => b"9223372036854775808".to_vec(),
        4 => b"99999999999999999999999999999999999999".to_vec(),
        5 => pick_str(rng, &["1e400", "NaN", "inf", "-0", "0x10", "1.5.5"]).into(),
        6 => vec![b'9'; 1 + rng.below(2_000) as usize],
        7 => pick_str(rng, &["COST", "ALGO", "BURST", "TOKENS", "REPLACE"]).into(),
        _ => {
            let n = rng.below(48) as usize;
            rng.bytes(n)
        }
    }
}

/// The args of `name`, with random damage: a missing, extra or replaced argument, or none.
fn arguments(rng: &mut Rng, m: &Material, gen: Gen, algorithm: Algorithm) -> Vec<Vec<u8>> {
    let args = gen(rng, m, algorithm);
    damage(rng, args)
}

/// A missing, extra or replaced argument, or none.
fn damage(rng: &mut Rng, mut args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    match rng.below(15) {
        0 if !args.is_empty() => {
            let n = rng.below(args.len() as u64) as usize;
            args.truncate(n);
        }
        1 => {
            let most = if rng.chance(5) { 60 } else { 3 };
            for _ in 0..1 + rng.below(most) {
                args.push(junk(rng));
            }
        }
        2 if !args.is_empty() => {
            let i = rng.below(args.len() as u64) as usize;
            args[i] = junk(rng);
        }
        _ => {}
    }
    args
}

/// A key for `name`: mostly one that holds `algorithm`, sometimes another storm key or a key of
/// another type.
fn key_for(rng: &mut Rng, name: &str, algorithm: Algorithm) -> String {
    let kinds = Algorithm::ALL.len() as u64;
    let index = Algorithm::ALL.iter().position(|&a| a == algorithm).unwrap() as u64;
    if rng.chance(6) && !REPLACING.contains(&name) {
        rng.pick(WRONG_TYPE).0.to_string()
    } else if rng.chance(85) {
        format!("s:{}", index + kinds * rng.below(STORM_KEYS / kinds))
    } else {
        format!("s:{}", rng.below(STORM_KEYS))
    }
}

/// One command: name, key, arguments (`numkeys`, the keys, a group per key for the multi-key
/// commands).
fn command(rng: &mut Rng, m: &Material) -> Vec<Vec<u8>> {
    let &(name, gen, only) = rng.pick(COMMANDS);
    let algorithm = only.unwrap_or_else(|| *rng.pick(Algorithm::ALL));
    if NUMKEYS.contains(&name) {
        let n = match rng.below(10) {
            0..=3 => 1,
            4..=7 => 2 + rng.below(3),
            8 => 1 + rng.below(16),
            _ => 17,
        };
        let kinds: Vec<Algorithm> = (0..n)
            .map(|_| {
                if rng.chance(70) {
                    algorithm
                } else {
                    *rng.pick(Algorithm::ALL)
                }
            })
            .collect();
        let numkeys = if rng.chance(5) {
            junk(rng)
        } else {
            n.to_string().into_bytes()
        };
        let mut cmd = vec![name.as_bytes().to_vec(), numkeys];
        for &a in &kinds {
            cmd.push(key_for(rng, name, a).into_bytes());
        }
        let mut groups = Vec::new();
        for &a in &kinds {
            groups.extend(gen(rng, m, a));
        }
        cmd.extend(damage(rng, groups));
        return cmd;
    }
    let key = key_for(rng, name, algorithm);
    let mut cmd = vec![name.as_bytes().to_vec(), key.into_bytes()];
    cmd.extend(arguments(rng, m, gen, algorithm));
    cmd
}

/// What the storm saw.
#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    errors: BTreeMap<String, usize>,
    /// Per command (the script's command for EVAL): (OK replies, error replies).
    per_command: BTreeMap<String, (usize, usize)>,
    /// Error texts (their start) and counts, with `RL_STORM_ERRORS` set.
    messages: BTreeMap<String, usize>,
}

impl Tally {
    /// One command's reply (`sent`: the command; for EVAL, the script's command counts).
    fn reply(&mut self, r: &Reply, sent: &[Vec<u8>]) {
        let name = if sent[0] == b"EVAL" {
            &sent[4]
        } else {
            &sent[0]
        };
        let entry = self
            .per_command
            .entry(String::from_utf8_lossy(name).into_owned())
            .or_default();
        match r {
            Reply::Error(e) => {
                entry.1 += 1;
                if std::env::var_os("RL_STORM_ERRORS").is_some() {
                    let text: String = e.chars().take(50).collect();
                    *self.messages.entry(text).or_default() += 1;
                }
            }
            _ => entry.0 += 1,
        }
        self.count(r, sent);
    }

    fn count(&mut self, r: &Reply, sent: &[Vec<u8>]) {
        let show = || {
            sent.iter()
                .map(|a| {
                    String::from_utf8_lossy(a)
                        .chars()
                        .take(60)
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        match r {
            Reply::Error(e) => {
                assert!(!e.contains("internal error"), "{e} after {}", show());
                let class = e.split(' ').next().unwrap_or_default().to_string();
                assert!(
                    ERROR_CLASSES.contains(&class.as_str()),
                    "error class {class} (not in README) after {}: {e}",
                    show()
                );
                *self.errors.entry(class).or_default() += 1;
            }
            _ => self.ok += 1,
        }
    }
}

/// Sends one operation (a command alone, in MULTI/EXEC or in EVAL) and returns what it sent.
fn send_op(c: &mut Conn, rng: &mut Rng, m: &Material) -> Vec<Vec<Vec<u8>>> {
    match rng.below(20) {
        0..=1 => {
            // MULTI/EXEC of 2-6 commands: one reply for each of MULTI, the queued, and EXEC.
            let mut sent = vec![vec![b"MULTI".to_vec()]];
            for _ in 0..2 + rng.below(5) {
                sent.push(command(rng, m));
            }
            sent.push(vec![b"EXEC".to_vec()]);
            for cmd in &sent {
                c.send(cmd).unwrap();
            }
            sent
        }
        2..=3 => {
            // EVAL: the command run by the script, its error returned as the reply.
            let cmd = command(rng, m);
            let mut eval: Vec<Vec<u8>> = vec![
                b"EVAL".to_vec(),
                b"return redis.pcall(ARGV[1], KEYS[1], unpack(ARGV, 2))".to_vec(),
                b"1".to_vec(),
                cmd[1].clone(),
                cmd[0].clone(),
            ];
            eval.extend(cmd[2..].iter().cloned());
            c.send(&eval).unwrap();
            vec![eval]
        }
        _ => {
            let cmd = command(rng, m);
            c.send(&cmd).unwrap();
            vec![cmd]
        }
    }
}

/// The commands that make a key of `a` with `hits` writes, or put it in debt, or block it.
fn make_key(c: &mut Conn, key: &str, a: Algorithm, limit: u64, window: &str, hits: usize) {
    for i in 0..hits {
        let cmd = if a == Algorithm::Leases {
            format!("RL.ACQUIRE {key} {limit} {window} ID w{i}")
        } else {
            format!("RL.ALLOW {key} {limit} {window} ALGO {}", a.name())
        };
        c.cmd_str(&cmd).ok();
    }
}

/// DUMPs of every kind (short and long states; rate limits also in debt and under a block), and
/// valid state payloads (the same), hit payloads (with refunds and blocks) and lease effects.
fn material(c: &mut Conn) -> Material {
    let now = c.time_us() as u64;
    let (mut dumps, mut states, mut hits) = (Vec::new(), Vec::new(), Vec::new());
    for (i, &a) in Algorithm::ALL.iter().enumerate() {
        for (n, (limit, window)) in [(10u64, "1h"), (1_000, "10s"), (3, "200ms")]
            .iter()
            .enumerate()
        {
            let key = format!("d:{i}:{n}");
            let mut variants = vec![(key.clone(), 1 + 10 * n)];
            if a.is_rate_limit() {
                variants.push((format!("{key}:debt"), 1));
                variants.push((format!("{key}:block"), 1));
            }
            for (key, writes) in variants {
                make_key(c, &key, a, *limit, window, writes);
                if key.ends_with(":debt") {
                    c.cmd_str(&format!(
                        "RL.CHARGE {key} {limit} {window} {} ALGO {}",
                        limit * 3,
                        a.name()
                    ))
                    .ok();
                }
                if key.ends_with(":block") {
                    c.cmd_str(&format!(
                        "RL.ALLOW {key} {limit} {window} ALGO {} COST {limit} BLOCK 1h",
                        a.name()
                    ))
                    .ok();
                }
                match c.cmd(&["DUMP", &key]) {
                    Reply::Bulk(b) => dumps.push((a, b)),
                    other => panic!("DUMP {key}: {other:?}"),
                }
                c.del(&key);
            }
        }
        for (limit, window_us, cost) in
            [(10, 3_600_000_000, 1), (5, 50_000, 5), (100, 2_000_000, 7)]
        {
            let rule = Rule::new(a, limit, window_us, None).unwrap();
            let b = Bounds::DEFAULT;
            for at in [now, now + 1_000, now.saturating_sub(window_us / 2)] {
                if a == Algorithm::Leases {
                    let req = Acquire::new(limit, window_us, LeaseId::parse(b"w")).unwrap();
                    let v = leases::acquire(None, &req, at).unwrap();
                    if let Outcome::Created(l) = v.outcome {
                        states.push((a, encode(&l)));
                        let e = v.effect.unwrap();
                        hits.push((a, encode_effect(&e, 1).as_slice().to_vec()));
                    }
                    continue;
                }
                let Outcome::Created(l) =
                    Limiter::charge(None, &rule, cost, at, &b).unwrap().outcome
                else {
                    continue;
                };
                states.push((a, encode(&l)));
                // In debt, and blocked.
                let mut debt = l.clone();
                Limiter::charge(Some(&mut debt), &rule, limit * 3, at, &b).unwrap();
                states.push((a, encode(&debt)));
                let mut blocked = debt.clone();
                Limiter::decide_with(Some(&mut blocked), &rule, 1, at, &b, 60_000_000).unwrap();
                states.push((a, encode(&blocked)));
                if a.replication() == Replication::Hits {
                    for bounds in [Bounds::DEFAULT, Bounds { max_runs: 1_000 }] {
                        let hit = l.hit(at, cost, &bounds).unwrap();
                        hits.push((a, encode_hit(&hit).as_slice().to_vec()));
                    }
                    for hit in [debt.refund_hit(at, 1, &b), blocked.hit(at, 0, &b)]
                        .into_iter()
                        .flatten()
                    {
                        hits.push((a, encode_hit(&hit).as_slice().to_vec()));
                    }
                }
            }
        }
    }
    Material {
        dumps,
        states,
        hits,
    }
}

/// Everything observable about the keys the storm must leave alone.
fn snapshot(c: &mut Conn, keys: &[String]) -> Vec<(String, String, i64, String)> {
    keys.iter()
        .map(|k| {
            let (digest, at, ty) = c.snapshot(k);
            (k.clone(), digest, at, ty)
        })
        .collect()
}

fn scan_all(c: &mut Conn) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    loop {
        let r = c.cmd(&["SCAN", &cursor, "COUNT", "1000"]);
        let items = r.array();
        cursor = items[0].text();
        keys.extend(items[1].flat());
        if cursor == "0" {
            return keys;
        }
    }
}

/// The storm on the server the harness runs (`RL_SERVER_BIN`: scripts/test runs it on Redis
/// 7.0 and Valkey 8.1).
#[test]
fn storm() {
    let master = Server::start();
    let replica = master.start_replica();
    let mut c = master.conn();
    let mut rng = Rng::from_env("storm");
    let m = material(&mut c);

    // Keys the storm never targets, of every type and every kind, and the wrong-type targets.
    let mut untouched: Vec<String> = Vec::new();
    for (key, setup) in WRONG_TYPE {
        c.cmd_str(setup).ok();
        untouched.push(key.to_string());
        let keep = key.replace("w:", "keep:");
        c.cmd_str(&setup.replace(key, &keep)).ok();
        untouched.push(keep);
    }
    c.cmd_str("SET keep:ttl v EX 36000").ok();
    untouched.push("keep:ttl".into());
    for &a in Algorithm::ALL {
        let key = format!("keep:rl:{}", a.name());
        make_key(&mut c, &key, a, 10, "1h", 2);
        if a.is_rate_limit() {
            let key = format!("keep:rl:{}:block", a.name());
            make_key(&mut c, &key, a, 1, "1h", 1);
            c.cmd_str(&format!("RL.ALLOW {key} 1 1h ALGO {} BLOCK 2h", a.name()))
                .ok();
            untouched.push(key);
            let key = format!("keep:rl:{}:debt", a.name());
            c.cmd_str(&format!("RL.CHARGE {key} 10 1h 25 ALGO {}", a.name()))
                .ok();
            untouched.push(key);
        }
        untouched.push(key);
    }
    let before = snapshot(&mut c, &untouched);

    let ops = ops();
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    let mut done = 0;
    while done < ops {
        let batch: Vec<Vec<Vec<Vec<u8>>>> = (0..50.min(ops - done))
            .map(|_| send_op(&mut c, &mut rng, &m))
            .collect();
        let mut read = || {
            c.read()
                .unwrap_or_else(|e| panic!("no reply ({e}): the server is down?\n{}", master.log()))
        };
        for op in &batch {
            if op[0][0] != b"MULTI" {
                tally.reply(&read(), &op[0]);
                continue;
            }
            // MULTI, the queued commands, EXEC: each queued command's result is in EXEC's.
            tally.count(&read(), &op[0]);
            let commands = &op[1..op.len() - 1];
            let mut queued = Vec::new();
            for cmd in commands {
                match read() {
                    Reply::Status(s) if s == "QUEUED" => queued.push(cmd),
                    other => tally.reply(&other, cmd),
                }
            }
            match read() {
                Reply::Array(results) => {
                    assert_eq!(results.len(), queued.len());
                    for (r, cmd) in results.iter().zip(queued) {
                        tally.reply(r, cmd);
                    }
                }
                other => tally.reply(&other, &op[op.len() - 1]),
            }
        }
        done += 50;
        if done % 5_000 == 0 {
            master.assert_alive();
        }
    }
    let elapsed = started.elapsed();
    master.assert_alive();
    replica.assert_alive();
    eprintln!(
        "storm on {}: {ops} operations in {elapsed:.1?}: {} replies OK, errors {:?}",
        common::server_bin(),
        tally.ok,
        tally.errors
    );
    let mut messages: Vec<_> = tally.messages.iter().collect();
    messages.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
    for (text, n) in messages.iter().take(25) {
        eprintln!("  {n:>7} {text}");
    }
    for (name, (ok, err)) in &tally.per_command {
        eprintln!("  {name:<12} {ok:>7} OK {err:>7} errors");
    }
    assert!(tally.ok > ops / 10 && tally.errors.values().sum::<usize>() > ops / 10);

    // Every ratelimit key has a TTL: a key RESTOREd with 0 gets it right after the command, a
    // PERSISTed one from the TTL sweep, within `1 s + 2 (K + S) / ttl-sweep-rate` (README,
    // Persistence): a few seconds at most here.
    let keys = scan_all(&mut c);
    let mut limiters = 0;
    for key in &keys {
        if c.type_of(key) != "ratelimit" {
            continue;
        }
        limiters += 1;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while c.pttl(key) == -1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let pttl = c.pttl(key);
        assert_ne!(pttl, -1, "{key} has no TTL");
    }
    eprintln!(
        "{} keys after the storm, {limiters} of them limiters",
        keys.len()
    );

    // The keys the storm did not write are as they were.
    let after = snapshot(&mut c, &untouched);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "changed by the storm");
    }

    // Every error class is one README lists; README lists them.
    let info = c.info("errorstats");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for line in info.lines().filter(|l| l.starts_with("errorstat_")) {
        let class = line["errorstat_".len()..].split(':').next().unwrap();
        assert!(ERROR_CLASSES.contains(&class), "INFO errorstats: {line}");
    }
    for class in ERROR_CLASSES {
        assert!(
            readme.contains(&format!("`{class}`")),
            "README does not list {class}"
        );
    }

    // The replica ends with the master's dataset: expiry paused on the master so that nothing
    // changes between the two digests.
    c.cmd_str("DEBUG SET-ACTIVE-EXPIRE 0").ok();
    master.wait_replicas(&mut c, 1);
    let mut rc = replica.conn();
    let (md, rd) = (
        c.cmd_str("DEBUG DIGEST").text(),
        rc.cmd_str("DEBUG DIGEST").text(),
    );
    assert_eq!(md, rd, "replica digest differs");
    assert_eq!(
        info_field(&c.info("keyspace"), "db0").map(|s| s.split(',').next().unwrap().to_string()),
        info_field(&rc.info("keyspace"), "db0").map(|s| s.split(',').next().unwrap().to_string()),
    );
    c.cmd_str("DEBUG SET-ACTIVE-EXPIRE 1").ok();
    for s in [&master, &replica] {
        let log = s.log();
        assert!(!log.contains("panic"), "{log}");
    }
}
